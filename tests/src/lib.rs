//! Helpers for end-to-end tests: finding the workspace's built binaries and running them as
//! real processes.

pub mod cluster;
pub mod registry;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// A binary of the workspace, built by `cargo build --workspace` next to the test executable.
///
/// Panics with what to run when it is missing: a test must not silently test nothing.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    // target/<profile>/deps/<test> (a test) or target/<profile>/<bench> (a benchmark binary)
    // -> target/<profile>/<name>
    let mut dir = exe.parent().expect("executables live in target/<profile>");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target/<profile>/deps has a parent");
    }
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: run `cargo build --workspace` before the tests", path.display());
    path
}

/// The static agent boards get, built for this machine's CPU by `cross/build-agent.sh`
/// (`scripts/test.sh` builds it before the tests).
pub fn board_binary() -> PathBuf {
    let target = format!("{}-unknown-linux-musl", std::env::consts::ARCH);
    let debug = binary("bramble-agent");
    let target_dir = debug.parent().and_then(Path::parent).expect("binaries live in target/<profile>");
    let path = target_dir.join(&target).join("release").join("bramble-agent");
    assert!(
        path.exists(),
        "{} is missing: run `cross/build-agent.sh {target}` before the tests",
        path.display()
    );
    path
}

/// Runs a command to completion, capturing its output.
pub fn run(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"))
}

/// Standard output and error as text, for assertion messages.
pub fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Fails the test with what to do when not running as root (containers, mounts, device nodes).
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (real containers, mounts and device nodes): run it as root, as CI does"
    );
}

/// Fails the test naming the package to install when a tool it needs is missing.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    assert!(found, "{tool} is missing: run scripts/setup.sh as root");
}

/// A multi-arch (amd64 + arm64) busybox OCI layout built by umoci from Debian's busybox-static,
/// made once per run under `target/test-fixtures`.
pub fn busybox_layout() -> PathBuf {
    static LAYOUT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    LAYOUT
        .get_or_init(|| {
            require_tool("umoci");
            // Built once, cached by the script under a name that changes with it.
            let script = workspace_root().join("scripts/build-busybox-image.sh");
            let output = run(Command::new("bash").arg(&script).arg("--cached"));
            assert!(output.status.success(), "building the busybox image failed: {:?}", text(&output));
            PathBuf::from(text(&output).0.trim())
        })
        .clone()
}

/// A process started by a container's shim, as its `shim.json` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimRecord {
    /// The container id (the directory's name).
    pub id: String,
    pub shim_pid: i32,
    pub container_pid: i32,
}

/// Every container under `run_dir/containers` whose shim wrote `shim.json`.
pub fn shims(run_dir: &Path) -> Vec<ShimRecord> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(run_dir.join("containers")).into_iter().flatten().flatten() {
        if let Ok(bytes) = std::fs::read(entry.path().join("shim.json"))
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
        {
            let pid = |k: &str| v[k].as_i64().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
            found.push(ShimRecord {
                id: entry.file_name().to_string_lossy().into_owned(),
                shim_pid: pid("shim_pid"),
                container_pid: pid("container_pid"),
            });
        }
    }
    found
}

/// SIGKILL to `pid`, if it is a real process id; gone already is fine.
pub fn kill_9(pid: i32) {
    if pid > 1 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Every directory of cgroup `relative` (such as `bramble/<pod uid>`): one per v1 hierarchy,
/// and the v2 one at the root.
pub fn cgroup_dirs(relative: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join(relative))
        .chain([root.join(relative)])
        .filter(|p| p.is_dir())
        .collect()
}

/// Removes cgroup `relative` and its child groups, in every hierarchy (a test's clean-up;
/// groups still in use stay).
pub fn remove_cgroup(relative: &str) {
    for group in cgroup_dirs(relative) {
        for child in std::fs::read_dir(&group).into_iter().flatten().flatten() {
            if child.path().is_dir() {
                let _ = std::fs::remove_dir(child.path());
            }
        }
        let _ = std::fs::remove_dir(&group);
    }
}

/// Calls `check` every `poll` until it gives a value, and returns it; panics after `timeout`,
/// naming `what` and adding `context()` (an agent's log, say).
pub fn wait_until<T>(
    what: &str,
    timeout: Duration,
    poll: Duration,
    mut check: impl FnMut() -> Option<T>,
    context: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "waited {} s for {what}\n{}", timeout.as_secs(), context());
        std::thread::sleep(poll);
    }
}

/// A cgroup setting of group `group` (relative to the hierarchy roots, e.g. `bramble/x/c`):
/// the v1 file `(controller, file)` where this host has v1 controllers, else the v2 `file`.
pub fn cgroup_setting(group: &str, v1: (&str, &str), v2: &str) -> String {
    let root = Path::new("/sys/fs/cgroup");
    let candidates = [root.join(v1.0).join(group).join(v1.1), root.join(group).join(v2)];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_else(|| panic!("none of {candidates:?} exists"))
        .trim()
        .to_owned()
}

/// SIGKILL to every shim and container under `run_dir`, as a power cut would; returns their
/// records (for the cgroups to remove).
pub fn kill_containers(run_dir: &Path) -> Vec<ShimRecord> {
    let records = shims(run_dir);
    for shim in &records {
        kill_9(shim.shim_pid);
        kill_9(shim.container_pid);
    }
    std::thread::sleep(Duration::from_millis(200));
    records
}

/// Lazily unmounts, newest first, every mount under `dir` and the mount at `also`.
pub fn unmount_under(dir: &Path, also: Option<&Path>) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let dir = dir.display().to_string();
    let also = also.map(|p| p.display().to_string());
    for line in mounts.lines().rev() {
        if let Some(target) =
            line.split(' ').nth(1).filter(|t| t.starts_with(&dir) || Some(*t) == also.as_deref())
        {
            let _ = Command::new("umount").arg("-l").arg(target).status();
        }
    }
}

impl ShimRecord {
    /// The pod uid of the container (`<pod uid>_<container>`).
    pub fn pod_uid(&self) -> Option<&str> {
        self.id.split_once('_').map(|(uid, _)| uid)
    }
}

/// Pod `uid`'s cgroup, relative to the hierarchies' roots.
pub fn pod_cgroup(uid: &str) -> String {
    format!("bramble/{uid}")
}

/// Imports the busybox test image into the agent state directory `state` with agent `exe`.
pub fn import_busybox(exe: &Path, state: &Path, extra: &[&str]) {
    let output = run(Command::new(exe)
        .args(["image", "--state-dir"])
        .arg(state)
        .arg("import")
        .arg(busybox_layout())
        .args(extra));
    assert!(output.status.success(), "{:?}", text(&output));
}

/// Whether process `pid` exists.
pub fn alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A TCP port nobody uses right now, on any address.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("0.0.0.0:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Starts a server process with its standard error appended to `log` (standard output to
/// nothing); panics if it cannot start.
pub fn spawn_logged(command: &mut Command, log: &Path) -> std::process::Child {
    let file = std::fs::OpenOptions::new().create(true).append(true).open(log).expect("log file");
    command
        .stdout(std::process::Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?} does not start: {e}"))
}

/// `GET path` on 127.0.0.1:`port` over HTTP/1.0: the whole answer, or `None` if it failed.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    http_get_at("127.0.0.1", port, path)
}

/// `GET path` on `host`:`port` over HTTP/1.0: the whole answer, or `None` if it failed.
pub fn http_get_at(host: &str, port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((host, port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    Some(answer)
}

/// Starts `bramble-agent run` through `command` (the agent binary, or a wrapper such as
/// nsenter whose arguments end with it) for a board directory laid out as `state/`, `run/` and
/// `manifests/`, appending its log to `agent.log`; `extra` arguments follow.
pub fn spawn_agent_run(mut command: Command, board_dir: &Path, extra: &[&str]) -> std::process::Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(board_dir.join("agent.log"))
        .expect("agent log");
    command
        .arg("run")
        .arg("--state-dir")
        .arg(board_dir.join("state"))
        .arg("--run-dir")
        .arg(board_dir.join("run"))
        .arg("--manifests")
        .arg(board_dir.join("manifests"))
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the agent")
}

/// SIGKILL to a child process, if any, and its reaping.
pub fn kill_child(child: &mut Option<std::process::Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
}
