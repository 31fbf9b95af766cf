//! The per-container shim, `bramble-agent shim`: starts the container, then becomes its reaper.
//!
//! libcontainer forks; forking from the multi-threaded agent deadlocked a static musl build
//! (a child hung on an allocator lock). So the agent starts this fresh, single-threaded process
//! instead, which forks once to detach (the agent's death must not end the container), creates
//! and starts the container, records its pid, and then replaces itself (exec: same pid, so the
//! container stays its child) with `bramble-reaper`, a few tens of kilobytes instead of this
//! binary's megabytes. The reaper reports the pid to the launcher, copies the container's output
//! to a capped log, reaps it, and records how it ended in `exit.json` where a restarted agent
//! finds it (the `bramble-reaper` crate).

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::unistd::{ForkResult, fork, pipe, setsid};
use serde::{Deserialize, Serialize};

use super::reaper;
use crate::fsutil::write_atomic;

/// What the shim needs to know (its command line, written by `Runtime::start`).
#[derive(Debug, Clone, clap::Args)]
pub struct ShimArgs {
    #[arg(long)]
    pub id: String,
    #[arg(long)]
    pub bundle: PathBuf,
    /// libcontainer's state root.
    #[arg(long)]
    pub root: PathBuf,
    #[arg(long)]
    pub log: PathBuf,
    #[arg(long)]
    pub log_max_bytes: u64,
    /// Where `shim.json` and `exit.json` go.
    #[arg(long)]
    pub status_dir: PathBuf,
    /// A datagram socket told the container's id once it has ended (the agent's wake-up).
    #[arg(long)]
    pub notify: Option<PathBuf>,
    /// The container's cgroup (`linux.cgroupsPath` of its config), where its OOM kills count.
    #[arg(long)]
    pub cgroup: Option<String>,
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

/// The detached shim: start the container, then become its reaper (which tells the launcher).
fn supervise(args: &ShimArgs, ready: OwnedFd) -> i32 {
    let mut ready = File::from(ready);
    let _ = setsid();
    detach_stdio();
    // Loaded first: without a reaper no container may start, as nothing would record its end.
    let reaper = match reaper::locate().and_then(|r| r.load()) {
        Ok(r) => r,
        Err(e) => return report(&mut ready, Err(format!("container {}: {e}", args.id))),
    };
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

    // The reaper inherits the output pipe and the ready pipe, nothing else.
    let keep = [out_read.as_raw_fd(), ready.as_raw_fd()];
    close_on_exec_all_but(&keep);
    let error = reaper.exec(&reaper_args(args, pid.as_raw(), keep[0], keep[1]));
    let _ = container.delete(true);
    // No reaper, no record: the pid in shim.json is reaped and may be reused.
    let _ = fs::remove_file(args.status_dir.join(SHIM_STATE));
    report(&mut ready, Err(format!("container {}: {error}", args.id)))
}

/// The reaper's command line (its `args` module documents it).
fn reaper_args(args: &ShimArgs, pid: i32, output_fd: RawFd, ready_fd: RawFd) -> Vec<CString> {
    let mut words: Vec<Vec<u8>> = Vec::new();
    let mut flag = |name: &str, value: &[u8]| {
        words.push(name.as_bytes().to_vec());
        words.push(value.to_vec());
    };
    let path = |p: &Path| p.as_os_str().as_encoded_bytes().to_vec();
    flag("--id", args.id.as_bytes());
    flag("--pid", pid.to_string().as_bytes());
    flag("--output-fd", output_fd.to_string().as_bytes());
    flag("--ready-fd", ready_fd.to_string().as_bytes());
    flag("--log", &path(&args.log));
    flag("--log-max-bytes", args.log_max_bytes.to_string().as_bytes());
    flag("--exit-file", &path(&args.status_dir.join(EXIT_INFO)));
    for counter in args.cgroup.iter().flat_map(|cgroup| super::cgroups::oom_counters(cgroup)) {
        flag("--oom-file", &path(&counter));
    }
    if let Some(notify) = &args.notify {
        flag("--notify", &path(notify));
    }
    flag("--state-file", &path(&args.root.join(&args.id).join("state.json")));
    // Paths and ids come from the agent and hold no NUL; one that did would be left out.
    words.into_iter().filter_map(|w| CString::new(w).ok()).collect()
}

/// Marks every open descriptor but stdio and `keep` close-on-exec.
fn close_on_exec_all_but(keep: &[RawFd]) {
    let Ok(entries) = fs::read_dir("/proc/self/fd") else { return };
    let fds: Vec<RawFd> = entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    for fd in fds.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        let _ = fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC));
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

/// The container's cgroup path from its bundle's config, relative to a hierarchy's root.
pub fn cgroup_path(bundle: &Path) -> Option<String> {
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(bundle.join("config.json")).ok()?).ok()?;
    Some(config["linux"]["cgroupsPath"].as_str()?.trim_start_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bramble_reaper::sys::Ended;

    #[test]
    fn the_reaper_reads_the_shims_command_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        let shim = ShimArgs {
            id: "u1_web".to_owned(),
            bundle: dir.path().join("bundle"),
            root: dir.path().join("root"),
            log: dir.path().join("logs/u1_web.log"),
            log_max_bytes: 4096,
            status_dir: dir.path().join("status"),
            notify: Some(dir.path().join("agent.sock")),
            cgroup: Some("/bramble/u1/web".to_owned()),
        };
        let words = reaper_args(&shim, 4242, 7, 8);
        let (parsed, outcome) = bramble_reaper::args::Parsed::from_args(words.iter().map(CString::as_c_str));
        assert_eq!(outcome, Ok(()));
        let args = parsed.complete().expect("complete");
        let text = |s: &std::ffi::CStr| s.to_string_lossy().into_owned();
        assert_eq!(
            (text(args.id), args.pid, args.output_fd, args.ready_fd),
            ("u1_web".to_owned(), 4242, 7, Some(8))
        );
        assert_eq!(text(args.log), shim.log.display().to_string());
        assert_eq!(args.log_max_bytes, 4096);
        assert_eq!(text(args.exit_file), shim.status_dir.join(EXIT_INFO).display().to_string());
        let oom: Vec<String> = args.oom_files().map(text).collect();
        assert_eq!(
            oom,
            [
                "/sys/fs/cgroup/bramble/u1/web/memory.events",
                "/sys/fs/cgroup/memory/bramble/u1/web/memory.oom_control"
            ]
        );
        assert_eq!(args.notify.map(text), Some(dir.path().join("agent.sock").display().to_string()));
        assert_eq!(
            args.state_file.map(text),
            Some(dir.path().join("root/u1_web/state.json").display().to_string())
        );
    }

    #[test]
    fn the_agent_reads_what_the_reaper_records() {
        let cases = [
            (Ended::Signaled(9), true, ExitInfo { exit_code: 137, signal: Some(9), oom_killed: true }),
            (Ended::Exited(3), false, ExitInfo { exit_code: 3, signal: None, oom_killed: false }),
        ];
        for (ended, oom, expected) in cases {
            let json = bramble_reaper::Exit::new(Ok(ended), oom).json();
            let read: ExitInfo = serde_json::from_slice(json.as_bytes()).expect("the agent parses it");
            assert_eq!(read, expected);
        }
    }
}
