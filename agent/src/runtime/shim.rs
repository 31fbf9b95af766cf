//! The per-container shim, `bramble-agent shim`: the container's parent for its whole life.
//!
//! libcontainer forks; forking from the multi-threaded agent deadlocked a static musl build
//! (a child hung on an allocator lock). So the agent starts this fresh, single-threaded process
//! instead, which forks once to detach (the agent's death must not end the container), creates
//! and starts the container, reports its pid, then copies its output to a capped log, reaps it,
//! and records how it ended in `exit.json` where a restarted agent finds it. It stays
//! single-threaded throughout.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe, setsid};
use serde::{Deserialize, Serialize};

use super::logs::RotatingLog;
use crate::fsutil::write_atomic;

/// What the shim needs to know.
#[derive(Debug, Clone)]
pub struct ShimArgs {
    pub id: String,
    pub bundle: PathBuf,
    /// libcontainer's state root.
    pub root: PathBuf,
    pub log: PathBuf,
    pub log_max_bytes: u64,
    /// Where `shim.json` and `exit.json` go.
    pub status_dir: PathBuf,
    /// A datagram socket told the container's id once it has ended (the agent's wake-up).
    pub notify: Option<PathBuf>,
}

/// Written when the container runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    pub shim_pid: i32,
    pub container_pid: i32,
}

/// Written when the container has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// The exit code, or 128 + the signal, as shells and Kubernetes report it.
    pub exit_code: i32,
    #[serde(default)]
    pub signal: Option<i32>,
    /// The kernel's OOM killer ended it (counted in the container's cgroup).
    #[serde(default)]
    pub oom_killed: bool,
}

pub const SHIM_STATE: &str = "shim.json";
pub const EXIT_INFO: &str = "exit.json";

/// Runs the shim: returns once the container runs (with its pid) or could not be started.
/// Must be called from a process that has started no thread.
pub fn launch(args: &ShimArgs) -> Result<i32, String> {
    let (ready_read, ready_write) = pipe().map_err(|e| format!("pipe: {e}"))?;
    // SAFETY: `bramble-agent shim` is a fresh process that has started no thread (clap parsing
    // only), so the child may run arbitrary code after fork.
    #[allow(unsafe_code)]
    let forked = unsafe { fork() };
    match forked.map_err(|e| format!("fork: {e}"))? {
        ForkResult::Parent { .. } => {
            drop(ready_write);
            let mut answer = String::new();
            File::from(ready_read)
                .read_to_string(&mut answer)
                .map_err(|e| format!("reading the shim: {e}"))?;
            match answer.trim().strip_prefix("ok ") {
                Some(pid) => pid.parse().map_err(|_| format!("the shim said {answer:?}")),
                None if answer.is_empty() => Err("the shim died before the container started".to_owned()),
                None => Err(answer.trim().trim_start_matches("error ").to_owned()),
            }
        }
        ForkResult::Child => {
            drop(ready_read);
            let code = supervise(args, ready_write);
            std::process::exit(code);
        }
    }
}

/// The detached shim: start the container, tell the launcher, then see it to its end.
fn supervise(args: &ShimArgs, ready: OwnedFd) -> i32 {
    let mut ready = File::from(ready);
    let _ = setsid();
    detach_stdio();
    // One pipe for both streams, so the log keeps their order.
    let pipes =
        pipe().map_err(std::io::Error::from).and_then(|(read, write)| Ok((read, write.try_clone()?, write)));
    let (out_read, out_write, err_write) = match pipes {
        Ok(p) => p,
        Err(e) => return report(&mut ready, Err(format!("pipe: {e}"))),
    };
    let built = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(&args.root)
        .and_then(|b| b.validate_id())
        .map(|b| b.with_stdout(out_write).with_stderr(err_write))
        .and_then(|b| b.as_init(&args.bundle).with_systemd(false).with_detach(true).build());
    let mut container = match built {
        Ok(c) => c,
        Err(e) => return report(&mut ready, Err(format!("creating container {}: {e}", args.id))),
    };
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return report(&mut ready, Err(format!("starting container {}: {e}", args.id)));
    }
    let Some(pid) = container.pid() else {
        let _ = container.delete(true);
        return report(&mut ready, Err(format!("container {} has no pid after start", args.id)));
    };
    let state = ShimState { shim_pid: std::process::id() as i32, container_pid: pid.as_raw() };
    let state_bytes = serde_json::to_vec(&state).expect("plain data serializes");
    if let Err(e) = write_atomic(&args.status_dir.join(SHIM_STATE), &state_bytes) {
        let _ = container.delete(true);
        return report(&mut ready, Err(format!("recording container {}: {e}", args.id)));
    }
    report(&mut ready, Ok(pid.as_raw()));
    drop(ready);

    // One thread does it all (no copier thread: a shim per container must stay small). The
    // output ends when every process of the container is gone (they die with its init, the
    // pid namespace's first process), and then the container is reaped.
    let mut log = RotatingLog::open(&args.log, args.log_max_bytes);
    copy_output(out_read, &mut log);
    let mut exit = wait_for(pid);
    exit.oom_killed = oom_killed(&args.bundle);
    let _ = container.delete(true);
    let exit_bytes = serde_json::to_vec(&exit).expect("plain data serializes");
    let written = write_atomic(&args.status_dir.join(EXIT_INFO), &exit_bytes);
    if let Some(notify) = &args.notify
        && let Ok(socket) = std::os::unix::net::UnixDatagram::unbound()
    {
        // Nobody listening (the agent is down) is fine: it reads exit.json when it is back.
        let _ = socket.send_to(args.id.as_bytes(), notify);
    }
    match written {
        Ok(_) => 0,
        Err(_) => 1,
    }
}

fn report(ready: &mut File, outcome: Result<i32, String>) -> i32 {
    let (line, code) = match outcome {
        Ok(pid) => (format!("ok {pid}\n"), 0),
        Err(e) => (format!("error {}\n", e.replace('\n', " ")), 1),
    };
    let _ = ready.write_all(line.as_bytes());
    code
}

/// Points the shim's own stdio at /dev/null: nobody reads the launcher's pipes any more.
fn detach_stdio() {
    if let Ok(null) = fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        for target in [0, 1, 2] {
            let _ = nix::unistd::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), target);
        }
    }
}

fn copy_output(pipe: OwnedFd, log: &mut RotatingLog) {
    let mut pipe = File::from(pipe);
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Ok(0) | Err(_) => break,
            Ok(n) => log.write(&buf[..n]),
        }
    }
}

fn wait_for(pid: Pid) -> ExitInfo {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => {
                return ExitInfo { exit_code: code, signal: None, oom_killed: false };
            }
            Ok(WaitStatus::Signaled(_, signal, _)) => {
                let signal = signal as i32;
                return ExitInfo { exit_code: 128 + signal, signal: Some(signal), oom_killed: false };
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return ExitInfo { exit_code: 255, signal: None, oom_killed: false },
        }
    }
}

/// Whether the container's memory cgroup counted an OOM kill (cgroup v2 `memory.events`, or
/// v1 `memory.oom_control`).
fn oom_killed(bundle: &Path) -> bool {
    let Some(cgroup) = cgroup_path(bundle) else { return false };
    let candidates = [
        PathBuf::from("/sys/fs/cgroup").join(&cgroup).join("memory.events"),
        PathBuf::from("/sys/fs/cgroup/memory").join(&cgroup).join("memory.oom_control"),
    ];
    candidates.iter().filter_map(|p| fs::read_to_string(p).ok()).any(|text| {
        text.lines().any(|line| {
            line.strip_prefix("oom_kill ").and_then(|n| n.trim().parse::<u64>().ok()).is_some_and(|n| n > 0)
        })
    })
}

/// The container's cgroup path from its bundle's config, relative to a hierarchy's root.
pub fn cgroup_path(bundle: &Path) -> Option<String> {
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).ok()?).ok()?;
    Some(config["linux"]["cgroupsPath"].as_str()?.trim_start_matches('/').to_owned())
}
