//! Real containers through libcontainer and the shim, one at a time (`bramble-agent debug run`):
//! output and exit codes, limits in the container's cgroup files, OOM kills, detachment, and
//! that nothing is left behind.

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use bramble_tests::{
    binary, cgroup_dirs, cgroup_setting, import_busybox, kill_9, remove_cgroup, require_root, run, shims,
    text, wait_until,
};

/// A board's state and run directories with busybox imported; kills and cleans up whatever its
/// containers left, even when the test fails.
struct Board {
    state: tempfile::TempDir,
    run: tempfile::TempDir,
    ids: Vec<String>,
}

impl Board {
    fn new() -> Board {
        require_root();
        let board = Board {
            state: tempfile::tempdir().expect("state"),
            run: tempfile::tempdir().expect("run"),
            ids: Vec::new(),
        };
        import_busybox(&binary("bramble-agent"), board.state.path(), &[]);
        board
    }

    /// A container id unique to this test process.
    fn id(&mut self, name: &str) -> String {
        let id = format!("t{}-{name}", std::process::id());
        self.ids.push(id.clone());
        id
    }

    fn debug_run(&self, args: &[&str]) -> (i32, String, String) {
        let output = run(Command::new(binary("bramble-agent"))
            .arg("debug")
            .arg("--state-dir")
            .arg(self.state.path())
            .arg("--run-dir")
            .arg(self.run.path())
            .arg("run")
            .args(args));
        let (stdout, stderr) = text(&output);
        (output.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn status_file(&self, id: &str, name: &str) -> PathBuf {
        self.run.path().join("containers").join(id).join(name)
    }

    fn cgroup(id: &str) -> String {
        format!("bramble/debug/{id}")
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        let shims = shims(self.run.path());
        for id in &self.ids {
            for shim in shims.iter().filter(|s| &s.id == id) {
                kill_9(shim.container_pid);
            }
            let rootfs = self.run.path().join("containers").join(id).join("bundle/rootfs");
            let _ = Command::new("umount").arg("-l").arg(&rootfs).status();
            remove_cgroup(&Board::cgroup(id));
            for parent in cgroup_dirs("bramble/debug") {
                let _ = fs::remove_dir(parent); // only if empty
            }
        }
    }
}

fn mounts_under(dir: &std::path::Path) -> usize {
    let mounts = fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = dir.display().to_string();
    mounts.lines().filter(|l| l.contains(&dir)).count()
}

#[test]
fn output_and_exit_codes_come_back_and_nothing_is_left() {
    let mut board = Board::new();
    let id = board.id("exit");
    let (code, stdout, stderr) = board.debug_run(&[
        "busybox",
        "--id",
        &id,
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; hostname; exit 3",
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert_eq!(stdout, format!("out\nerr\n{id}\n"));
    assert_eq!(stderr, "exit code 3\n");
    assert_eq!(mounts_under(board.run.path()), 0, "the overlay is unmounted");
    assert!(cgroup_dirs(&Board::cgroup(&id)).is_empty(), "the cgroup is removed");
    assert!(!board.run.path().join("containers").join(&id).exists(), "the bundle is removed");
    assert!(!board.state.path().join("containers").join(&id).exists(), "the writable layer is removed");
}

#[test]
fn limits_are_in_the_containers_cgroup_files() {
    let mut board = Board::new();
    let id = board.id("limits");
    let (code, stdout, stderr) = board.debug_run(&[
        "busybox", "--id", &id, "--memory", "32Mi", "--cpu", "250m", "--pids", "50", "--detach", "--",
        "sleep", "30",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let pid: i32 = stdout.trim().parse().expect("the pid");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "detached: it runs after `debug run` returned"
    );
    assert_eq!(
        cgroup_setting(&Board::cgroup(&id), ("memory", "memory.limit_in_bytes"), "memory.max"),
        (32u64 << 20).to_string()
    );
    let cpu = cgroup_setting(&Board::cgroup(&id), ("cpu", "cpu.cfs_quota_us"), "cpu.max");
    assert!(cpu == "25000" || cpu == "25000 100000", "cpu quota for 250m: {cpu}");
    assert_eq!(cgroup_setting(&Board::cgroup(&id), ("pids", "pids.max"), "pids.max"), "50");
    // Killing the container by hand: the shim records it.
    kill_9(pid);
    let exit = wait_for_file(&board.status_file(&id, "exit.json"));
    assert_eq!(exit, r#"{"exit_code":137,"signal":9,"oom_killed":false}"#);
}

#[test]
fn a_container_over_its_memory_limit_is_reported_oom_killed() {
    let mut board = Board::new();
    let id = board.id("oom");
    let (code, _, stderr) = board.debug_run(&[
        "busybox",
        "--id",
        &id,
        "--memory",
        "16Mi",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]);
    assert_eq!(code, 137, "{stderr}");
    assert_eq!(stderr, "exit code 137 (OOMKilled)\n");
}

#[test]
fn a_missing_image_or_command_is_a_clear_error() {
    let mut board = Board::new();
    let id = board.id("missing");
    let (code, _, stderr) = board.debug_run(&["nginx:1.27", "--id", &id, "--", "true"]);
    assert_eq!((code, stderr.as_str()), (1, "error: no image nginx:1.27 in the store\n"));
    let (code, _, stderr) = board.debug_run(&["busybox", "--id", &id, "--", "/bin/no-such-program"]);
    assert_ne!(code, 0);
    assert!(stderr.contains(&format!("container {id}")), "{stderr}");
    assert!(stderr.contains("no-such-program"), "names the missing program: {stderr}");
    assert_eq!(mounts_under(board.run.path()), 0, "a failed start unmounts its root");
}

fn wait_for_file(path: &std::path::Path) -> String {
    let read = || fs::read_to_string(path).ok();
    wait_until(
        &format!("{} to appear", path.display()),
        Duration::from_secs(10),
        Duration::from_millis(20),
        read,
        String::new,
    )
}
