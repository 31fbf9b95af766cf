//! `bramble coordinator --with-agent`: an agent on the coordinator's own machine, so one command
//! gives a single-board cluster (as `k3s server` does). The agent is the ordinary
//! `bramble-agent run` as a child process, joined with the join token (through the environment,
//! not the command line, which every user can read), started again if it exits, and stopped
//! with SIGTERM when the coordinator stops; its pods outlive it, as they outlive any agent.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

fn log(line: impl AsRef<str>) {
    eprintln!("bramble coordinator: {}", line.as_ref());
}

/// What to start.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The `bramble-agent` executable.
    pub exe: PathBuf,
    /// `mqtt://HOST:PORT` of the broker.
    pub server: String,
    pub prefix: String,
    /// The file holding the join token; the coordinator creates it at its first start.
    pub token_file: PathBuf,
    /// More arguments for `bramble-agent run` (`--agent-arg`).
    pub extra: Vec<String>,
}

/// `bramble-agent` next to this executable, else the one on `PATH`.
pub fn agent_executable() -> PathBuf {
    std::env::current_exe()
        .ok()
        .map(|exe| exe.with_file_name("bramble-agent"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from("bramble-agent"))
}

/// The supervising thread's handle.
#[derive(Debug)]
pub struct Supervisor {
    pid: Arc<AtomicI32>,
    stopping: Arc<AtomicBool>,
}

impl Supervisor {
    /// Starts supervising in a thread of its own.
    pub fn start(spec: AgentSpec) -> Supervisor {
        let supervisor = Supervisor { pid: Arc::default(), stopping: Arc::default() };
        let (pid, stopping) = (Arc::clone(&supervisor.pid), Arc::clone(&supervisor.stopping));
        let spawned =
            std::thread::Builder::new().name("agent".into()).spawn(move || supervise(&spec, &pid, &stopping));
        if let Err(e) = spawned {
            log(format!("cannot start the agent's supervisor: {e}"));
        }
        supervisor
    }

    /// SIGTERM to the agent; it is not started again.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let pid = self.pid.load(Ordering::SeqCst);
        if pid > 0 {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}

fn read_token(path: &Path, stopping: &AtomicBool) -> Option<String> {
    loop {
        if stopping.load(Ordering::SeqCst) {
            return None;
        }
        if let Ok(token) = std::fs::read_to_string(path)
            && !token.trim().is_empty()
        {
            return Some(token.trim().to_owned());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn supervise(spec: &AgentSpec, pid: &AtomicI32, stopping: &AtomicBool) {
    let Some(token) = read_token(&spec.token_file, stopping) else { return };
    while !stopping.load(Ordering::SeqCst) {
        let child = Command::new(&spec.exe)
            .arg("run")
            .args(["--server", &spec.server, "--prefix", &spec.prefix])
            .args(&spec.extra)
            .env("BRAMBLE_JOIN_TOKEN", &token)
            .spawn();
        match child {
            Ok(mut child) => {
                pid.store(i32::try_from(child.id()).unwrap_or(0), Ordering::SeqCst);
                if stopping.load(Ordering::SeqCst) {
                    // stop() came between the start and the store above.
                    let _ = child.kill();
                }
                log(format!("started {} (pid {}) joined to {}", spec.exe.display(), child.id(), spec.server));
                let status = child.wait();
                pid.store(0, Ordering::SeqCst);
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let how = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                log(format!("the agent exited ({how}); starting it again in 5 s"));
            }
            Err(e) => log(format!("cannot start {}: {e}; trying again in 5 s", spec.exe.display())),
        }
        for _ in 0..50 {
            if stopping.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
