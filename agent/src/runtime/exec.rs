//! `bramble-agent exec-in`: runs a command inside a running container's namespaces and cgroup
//! (what exec probes need), through libcontainer's tenant builder. Like the shim, it runs in a
//! fresh single-threaded process: joining a mount namespace is refused to threaded processes,
//! and forking from the agent is what deadlocked.

use std::path::Path;
use std::process::{Command, Stdio};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::wait::{WaitStatus, waitpid};

/// Runs `args` in container `id` (state under `root`) and returns its exit code (128 + signal
/// when killed). Must be called from a process that has started no thread.
pub fn exec_in(root: &Path, id: &str, args: Vec<String>) -> Result<i32, String> {
    let pid = ContainerBuilder::new(id.to_owned(), SyscallType::default())
        .with_root_path(root)
        .map_err(|e| format!("container {id}: {e}"))?
        .as_tenant()
        .with_container_args(args)
        .with_detach(false)
        .build()
        .map_err(|e| format!("container {id}: {e}"))?;
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("container {id}: waiting for the command: {e}")),
        }
    }
}

/// `bramble-agent exec-in` running `args` in container `id`, as the agent starts it (exec probes,
/// `bramble exec`): no standard input, both outputs piped.
pub fn exec_in_command(agent_binary: &Path, state_root: &Path, id: &str, args: &[String]) -> Command {
    let mut command = Command::new(agent_binary);
    command
        .arg("exec-in")
        .arg("--root")
        .arg(state_root)
        .arg("--id")
        .arg(id)
        .arg("--")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}
