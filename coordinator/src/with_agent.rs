//! `bramble coordinator --with-agent`: an agent on the coordinator's own machine, so one command
//! gives a single-board cluster (as `k3s server` does). The agent is the ordinary
//! `bramble-agent run` as a child process, joined with the join token (through the environment,
//! not the command line, which every user can read), started again if it exits, and stopped
//! with SIGTERM when the coordinator stops; its pods outlive it, as they outlive any agent.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::server::log;

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
    /// The running agent; only the supervisor reaps it, under this lock, so a signal never
    /// reaches a recycled pid.
    child: Arc<Mutex<Option<Child>>>,
    stopping: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    /// Starts supervising in a thread of its own.
    pub fn start(spec: AgentSpec) -> Supervisor {
        let (child, stopping) = (Arc::<Mutex<Option<Child>>>::default(), Arc::<AtomicBool>::default());
        let (c, s) = (Arc::clone(&child), Arc::clone(&stopping));
        let thread = std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || supervise(&spec, &c, &s))
            .map_err(|e| log(format!("cannot start the agent's supervisor: {e}")))
            .ok();
        Supervisor { child, stopping, thread }
    }

    /// SIGTERM to the agent, which is not started again; waits up to 5 s for its end (then
    /// SIGKILL), so it is reaped here and not left to whatever is PID 1.
    pub fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Ok(guard) = self.child.lock()
            && let Some(child) = guard.as_ref()
        {
            let _ = kill(Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)), Signal::SIGTERM);
        }
        let Some(thread) = self.thread.take() else { return };
        for _ in 0..50 {
            if thread.is_finished() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if !thread.is_finished()
            && let Ok(mut guard) = self.child.lock()
            && let Some(child) = guard.as_mut()
        {
            log("the agent did not stop within 5 s of SIGTERM: SIGKILL");
            let _ = child.kill();
        }
        let _ = thread.join();
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

/// Waits for the agent in `slot` to end, polling under the lock; its exit status.
fn wait(slot: &Mutex<Option<Child>>) -> String {
    loop {
        if let Ok(mut guard) = slot.lock() {
            let Some(child) = guard.as_mut() else { return "gone".into() };
            match child.try_wait() {
                Ok(Some(status)) => {
                    *guard = None;
                    return status.to_string();
                }
                Ok(None) => {}
                Err(e) => {
                    *guard = None;
                    return e.to_string();
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn supervise(spec: &AgentSpec, slot: &Mutex<Option<Child>>, stopping: &AtomicBool) {
    let Some(token) = read_token(&spec.token_file, stopping) else { return };
    while !stopping.load(Ordering::SeqCst) {
        let spawned = Command::new(&spec.exe)
            .arg("run")
            .args(["--server", &spec.server, "--prefix", &spec.prefix])
            .args(&spec.extra)
            .env("BRAMBLE_JOIN_TOKEN", &token)
            .spawn();
        match spawned {
            Ok(mut child) => {
                log(format!("started {} (pid {}) joined to {}", spec.exe.display(), child.id(), spec.server));
                match slot.lock() {
                    Ok(mut guard) => *guard = Some(child),
                    Err(_) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                }
                if stopping.load(Ordering::SeqCst) {
                    // stop() came between the start and the store above.
                    if let Ok(mut guard) = slot.lock()
                        && let Some(child) = guard.as_mut()
                    {
                        let _ = child.kill();
                    }
                }
                let how = wait(slot);
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
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
