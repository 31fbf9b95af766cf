//! Container probes, as kubelet runs them. [`Probes`] is the pure bookkeeping of one container's
//! run (when each probe is due, thresholds, ready, unhealthy); [`run`] does one check, on a
//! thread of its own, with the probe's timeout:
//! - exec: the command inside the container's namespaces and cgroup (`bramble-agent exec-in`);
//! - httpGet: a plain HTTP/1.1 GET, success for status 200–399 (HTTPS is not supported);
//! - tcpSocket: a connection is accepted.
//!
//! Pods use the host's network, so the default host is 127.0.0.1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bramble_common::objects::{Container, HttpGetAction, IntOrString, Probe, ProbeAction, Scheme};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "startup",
            Kind::Liveness => "liveness",
            Kind::Readiness => "readiness",
        }
    }
}

#[derive(Debug, Clone)]
struct Track {
    kind: Kind,
    probe: Probe,
    due_ms: u64,
    failures: u32,
    successes: u32,
    in_flight: bool,
}

/// The probes of one run of one container.
#[derive(Debug, Clone)]
pub struct Probes {
    /// The run these belong to (its start time): results of an earlier run are dropped.
    pub run: u64,
    tracks: Vec<Track>,
    pub started: bool,
    pub ready: bool,
    pub unhealthy: bool,
    /// The latest failure, for status, until that probe passes again.
    pub message: Option<String>,
    failed: Option<Kind>,
}

impl Probes {
    /// A run of `container` that started at `started_ms`.
    pub fn new(container: &Container, started_ms: u64) -> Probes {
        let mut tracks = Vec::new();
        for (kind, probe) in [
            (Kind::Startup, &container.startup_probe),
            (Kind::Liveness, &container.liveness_probe),
            (Kind::Readiness, &container.readiness_probe),
        ] {
            if let Some(probe) = probe {
                let due_ms = started_ms + u64::from(probe.initial_delay_seconds) * 1000;
                tracks.push(Track {
                    kind,
                    probe: probe.clone(),
                    due_ms,
                    failures: 0,
                    successes: 0,
                    in_flight: false,
                });
            }
        }
        Probes {
            run: started_ms,
            started: container.startup_probe.is_none(),
            ready: container.readiness_probe.is_none(),
            unhealthy: false,
            message: None,
            failed: None,
            tracks,
        }
    }

    fn active(&self, kind: Kind) -> bool {
        match kind {
            Kind::Startup => !self.started,
            Kind::Liveness | Kind::Readiness => self.started,
        }
    }

    /// The probes due at `now_ms`, marked in flight.
    pub fn take_due(&mut self, now_ms: u64) -> Vec<(Kind, Probe)> {
        let mut due = Vec::new();
        for i in 0..self.tracks.len() {
            let t = &self.tracks[i];
            if !t.in_flight && t.due_ms <= now_ms && self.active(t.kind) && !self.unhealthy {
                due.push((t.kind, t.probe.clone()));
                self.tracks[i].in_flight = true;
            }
        }
        due
    }

    /// When the next probe is due, if any is waiting.
    pub fn next_due_ms(&self) -> Option<u64> {
        self.tracks.iter().filter(|t| !t.in_flight && self.active(t.kind)).map(|t| t.due_ms).min()
    }

    /// Takes one result in.
    pub fn record(&mut self, kind: Kind, outcome: Result<(), String>, now_ms: u64) {
        let Some(t) = self.tracks.iter_mut().find(|t| t.kind == kind) else { return };
        t.in_flight = false;
        t.due_ms = now_ms + u64::from(t.probe.period_seconds.max(1)) * 1000;
        match outcome {
            Ok(()) => {
                t.failures = 0;
                t.successes += 1;
                if self.failed == Some(kind) {
                    self.message = None;
                    self.failed = None;
                }
                match kind {
                    Kind::Startup => self.started = true,
                    Kind::Readiness if t.successes >= t.probe.success_threshold.max(1) => self.ready = true,
                    _ => {}
                }
            }
            Err(message) => {
                t.successes = 0;
                t.failures += 1;
                let reached = t.failures >= t.probe.failure_threshold.max(1);
                self.message = Some(format!("{} probe failed: {message}", kind.name()));
                self.failed = Some(kind);
                match kind {
                    Kind::Startup | Kind::Liveness if reached => self.unhealthy = true,
                    Kind::Readiness if reached => self.ready = false,
                    _ => {}
                }
            }
        }
    }
}

/// What a check needs besides the probe.
#[derive(Debug, Clone)]
pub struct Target {
    pub agent_binary: PathBuf,
    /// libcontainer's state root and the container's id, for exec.
    pub state_root: PathBuf,
    pub container_id: String,
    /// The container's ports, for named probe ports.
    pub container: Container,
}

/// Runs one check. Blocks for at most about the probe's timeout.
pub fn run(probe: &Probe, target: &Target) -> Result<(), String> {
    let timeout = Duration::from_secs(u64::from(probe.timeout_seconds.max(1)));
    match &probe.action {
        ProbeAction::Exec { command } => exec(command, target, timeout),
        ProbeAction::HttpGet(get) => http_get(get, target, timeout),
        ProbeAction::TcpSocket { port } => {
            let addr = address(None, port, &target.container)?;
            TcpStream::connect_timeout(&addr, timeout).map(|_| ()).map_err(|e| format!("tcp {addr}: {e}"))
        }
    }
}

fn address(host: Option<&str>, port: &IntOrString, container: &Container) -> Result<SocketAddr, String> {
    let port = match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("port {n} is out of range"))?,
        IntOrString::String(name) => container
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .ok_or_else(|| format!("no container port is named {name:?}"))?,
    };
    let host = host.unwrap_or("127.0.0.1");
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port}: no address"))
}

fn http_get(get: &HttpGetAction, target: &Target, timeout: Duration) -> Result<(), String> {
    if get.scheme == Scheme::Https {
        return Err("HTTPS probes are not supported; use HTTP or tcpSocket".into());
    }
    let addr = address(get.host.as_deref(), &get.port, &target.container)?;
    let fail = |e: std::io::Error| format!("GET http://{addr}{}: {e}", get.path);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(fail)?;
    stream.set_read_timeout(Some(timeout)).map_err(fail)?;
    stream.set_write_timeout(Some(timeout)).map_err(fail)?;
    let mut request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: bramble-probe\r\nAccept: */*\r\nConnection: close\r\n",
        get.path
    );
    for header in &get.http_headers {
        request.push_str(&format!("{}: {}\r\n", header.name, header.value));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(fail)?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < head.len() && !head[..got].contains(&b'\n') {
        match stream.read(&mut head[got..]).map_err(fail)? {
            0 => break,
            n => got += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    let status = line.split_whitespace().nth(1).and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("GET http://{addr}{}: HTTP status {code}", get.path)),
        None => Err(format!("GET http://{addr}{}: not an HTTP answer", get.path)),
    }
}

fn exec(command: &[String], target: &Target, timeout: Duration) -> Result<(), String> {
    let mut child = crate::runtime::exec::exec_in_command(
        &target.agent_binary,
        &target.state_root,
        &target.container_id,
        command,
    )
    .spawn()
    .map_err(|e| format!("exec {}: {e}", target.agent_binary.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("exec {command:?}: timed out after {}s", timeout.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("exec {command:?}: {e}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let mut output = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.by_ref().take(4096).read_to_string(&mut output);
    }
    if output.trim().is_empty()
        && let Some(mut out) = child.stdout.take()
    {
        let _ = out.by_ref().take(4096).read_to_string(&mut output);
    }
    // libcontainer's "…: error in executing process : executable 'x' not found in $PATH".
    let output = output.trim().rsplit(" : ").next().unwrap_or_default().lines().next().unwrap_or_default();
    let code = status.code().map_or_else(|| "killed".to_owned(), |c| format!("exit code {c}"));
    match status.code() {
        Some(126) => Err(format!("exec {command:?}: {output}")),
        _ if output.is_empty() => Err(format!("exec {command:?}: {code}")),
        _ => Err(format!("exec {command:?}: {code}: {output}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(period: u32, failure_threshold: u32) -> Probe {
        Probe {
            action: ProbeAction::TcpSocket { port: IntOrString::Int(1) },
            initial_delay_seconds: 2,
            period_seconds: period,
            timeout_seconds: 1,
            failure_threshold,
            success_threshold: 1,
        }
    }

    #[test]
    fn liveness_fails_after_its_threshold_and_readiness_follows_results() {
        let mut c = Container::new("c", "busybox");
        c.liveness_probe = Some(probe(5, 2));
        c.readiness_probe = Some(probe(5, 1));
        let mut p = Probes::new(&c, 1_000);
        assert!(!p.ready && p.started && !p.unhealthy);
        assert_eq!(p.next_due_ms(), Some(3_000));
        assert!(p.take_due(2_999).is_empty());
        let due = p.take_due(3_000);
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), vec![Kind::Liveness, Kind::Readiness]);
        assert!(p.take_due(3_000).is_empty(), "in flight");
        p.record(Kind::Readiness, Ok(()), 3_010);
        assert!(p.ready);
        p.record(Kind::Liveness, Err("refused".into()), 3_010);
        assert!(!p.unhealthy, "one failure of two");
        assert_eq!(p.next_due_ms(), Some(8_010));
        p.record(Kind::Liveness, Err("refused".into()), 8_010);
        assert!(p.unhealthy);
        assert_eq!(p.message.as_deref(), Some("liveness probe failed: refused"));
        p.record(Kind::Readiness, Err("503".into()), 8_010);
        assert!(!p.ready);
    }

    #[test]
    fn a_startup_probe_holds_the_others_until_it_passes() {
        let mut c = Container::new("c", "busybox");
        c.startup_probe = Some(probe(1, 3));
        c.liveness_probe = Some(probe(1, 1));
        let mut p = Probes::new(&c, 0);
        assert!(!p.started);
        let due = p.take_due(2_000);
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), vec![Kind::Startup]);
        p.record(Kind::Startup, Ok(()), 2_000);
        assert!(p.started);
        assert_eq!(p.take_due(3_000).iter().map(|d| d.0).collect::<Vec<_>>(), vec![Kind::Liveness]);
    }

    #[test]
    fn named_ports_resolve_from_the_container() {
        let mut c = Container::new("c", "busybox");
        assert!(address(None, &IntOrString::String("http".into()), &c).is_err());
        c.ports.push(bramble_common::objects::ContainerPort {
            name: Some("http".into()),
            container_port: 8080,
            host_port: None,
            protocol: bramble_common::objects::Protocol::Tcp,
        });
        let addr = address(None, &IntOrString::String("http".into()), &c).expect("resolves");
        assert_eq!(addr.port(), 8080);
    }
}
