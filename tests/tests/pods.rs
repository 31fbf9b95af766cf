//! The agent daemon end to end: `bramble-agent run` over a manifests directory, with real
//! containers (libcontainer, shims, overlayfs, cgroups), real probes and a real HTTP server.
//! Each test has its own agent, directories and pod names (`t<pid>-…`), so tests run side by
//! side; a guard kills and cleans up everything an agent made, also when a test fails.

use std::fs;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::Duration;

use bramble_tests::{
    alive, binary, board_binary, cgroup_dirs, cgroup_setting, free_port, http_get, import_busybox, kill_9,
    kill_child, kill_containers, pod_cgroup, remove_cgroup, require_root, run, shims, spawn_agent_run, text,
    unmount_under, wait_until,
};
use serde_json::Value;

/// One board: an agent process and its directories.
struct Agent {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The agent binary: the workspace's debug build, or the static board build.
    exe: PathBuf,
}

impl Agent {
    fn new() -> Agent {
        Agent::with_state_on(None)
    }

    /// An agent running the static build boards get (`cross/build-agent.sh`, reaper built in).
    fn board() -> Agent {
        Agent::with(board_binary(), None)
    }

    /// An agent whose state directory is a tmpfs of `size` (a small disk that can fill up), or
    /// a plain directory.
    fn with_state_on(size: Option<&str>) -> Agent {
        Agent::with(binary("bramble-agent"), size)
    }

    fn with(exe: PathBuf, size: Option<&str>) -> Agent {
        require_root();
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("manifests")).expect("manifests dir");
        let agent = Agent { dir, child: None, exe };
        if let Some(size) = size {
            fs::create_dir_all(agent.state()).expect("state dir");
            let mounted = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "bramble-test-state"])
                .arg(agent.state())
                .status()
                .expect("mount");
            assert!(mounted.success());
        }
        agent.import(&[]);
        agent
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("agent.log")
    }

    fn import(&self, extra: &[&str]) {
        import_busybox(&self.exe, &self.state(), extra);
    }

    fn start(&mut self) {
        self.child = Some(spawn_agent_run(Command::new(&self.exe), self.dir.path(), &[]));
    }

    fn kill_9(&mut self) {
        kill_child(&mut self.child);
    }

    fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Writes a manifest the way editors and `kubectl apply` tools do: a new file renamed in.
    fn apply(&self, file: &str, yaml: &str) {
        let temp = self.manifests().join(format!(".{file}.tmp"));
        fs::write(&temp, yaml).expect("write manifest");
        fs::rename(&temp, self.manifests().join(file)).expect("rename manifest");
    }

    fn delete(&self, file: &str) {
        fs::remove_file(self.manifests().join(file)).expect("remove manifest");
    }

    fn status(&self) -> Value {
        let output = run(Command::new(&self.exe)
            .arg("status")
            .arg("--state-dir")
            .arg(self.state())
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(["-o", "json"]));
        assert!(output.status.success(), "{:?}", text(&output));
        serde_json::from_slice(&output.stdout).expect("status is JSON")
    }

    fn pod(&self, name: &str) -> Option<Value> {
        self.status()["pods"].as_array()?.iter().find(|p| p["name"] == name).cloned()
    }

    /// Waits until pod `name`'s status satisfies `ok`, and returns that status.
    fn wait_pod(&self, name: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let last = std::cell::RefCell::new(Value::Null);
        let check = || {
            let pod = self.pod(name).unwrap_or(Value::Null);
            let done = ok(&pod);
            *last.borrow_mut() = pod.clone();
            done.then_some(pod)
        };
        let context = || format!("status: {:#}\nagent log:\n{}", last.borrow(), self.log());
        wait_until(
            &format!("pod {name}: {what}"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            check,
            context,
        )
    }

    /// The shim record of the container whose main process is `container_pid`.
    fn shim_of(&self, container_pid: i64) -> bramble_tests::ShimRecord {
        let shims = shims(&self.run_dir());
        shims.into_iter().find(|s| i64::from(s.container_pid) == container_pid).expect("shim.json")
    }

    /// SIGKILL to the single-container pod's process `pid`; waits until it runs again, ready.
    fn kill_and_wait_restart(&self, pod: &str, pid: i64) -> Value {
        kill_9(i32::try_from(pid).expect("pid"));
        self.wait_pod(pod, "a restart", |p| container(p, 0)["restartCount"] == 1 && p["ready"] == true)
    }

    fn wait_gone(&self, name: &str) {
        let gone = || self.pod(name).is_none().then_some(());
        let context = || format!("agent log:\n{}", self.log());
        wait_until(
            &format!("pod {name} to go"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            gone,
            context,
        );
    }

    /// What a reboot leaves: no processes, no mounts, an empty run directory.
    fn reboot(&mut self) {
        self.power_off();
        fs::remove_dir_all(self.run_dir()).expect("clear the run directory");
    }

    /// Kills the agent, the shims and the containers, and unmounts the containers' roots.
    fn power_off(&mut self) {
        self.kill_9();
        kill_containers(&self.run_dir());
        unmount_under(&self.run_dir(), Some(&self.state()));
    }

    /// The pod uids this board has records or containers of.
    fn uids(&self) -> Vec<String> {
        let mut uids: Vec<String> = fs::read_dir(self.state().join("pods"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_owned))
            .collect();
        for entry in fs::read_dir(self.run_dir().join("containers")).into_iter().flatten().flatten() {
            if let Some((uid, _)) = entry.file_name().to_str().and_then(|n| n.split_once('_')) {
                uids.push(uid.to_owned());
            }
        }
        uids
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let uids = self.uids();
        self.power_off();
        for uid in uids {
            remove_cgroup(&pod_cgroup(&uid));
        }
    }
}

/// A name unique to this test process.
fn name(base: &str) -> String {
    format!("t{}-{base}", std::process::id())
}

fn container(pod: &Value, i: usize) -> &Value {
    &pod["containers"][i]
}

fn running_pid(pod: &Value, i: usize) -> Option<i64> {
    container(pod, i)["state"]["running"]["pid"].as_i64()
}

fn pod_yaml(name: &str, spec: &str) -> String {
    format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n{spec}")
}

fn httpd_pod(name: &str, port: u16) -> String {
    pod_yaml(
        name,
        &format!(
            "  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox:latest
    command: [busybox, httpd, -f, -v, -p, \"{port}\", -h, /www]
    ports:
    - containerPort: {port}
      hostPort: {port}
    readinessProbe:
      httpGet: {{path: /index.html, port: {port}}}
      periodSeconds: 1
"
        ),
    )
}

#[test]
fn a_pod_serves_httpd_on_its_host_port_and_a_killed_container_is_restarted() {
    let mut agent = Agent::new();
    agent.start();
    let pod = name("hello");
    let port = free_port();
    agent.apply("hello.yaml", &httpd_pod(&pod, port));
    let status = agent.wait_pod(&pod, "ready", |p| p["ready"] == true);
    assert_eq!(status["phase"], "Running");
    let answer = http_get(port, "/").expect("httpd answers");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("hello from bramble"), "{answer}");

    // The shim became the small reaper (same pid), and the container is its child.
    let first = running_pid(&status, 0).expect("a pid");
    let shim = agent.shim_of(first);
    let cmdline = fs::read(format!("/proc/{}/cmdline", shim.shim_pid)).expect("the shim's command line");
    assert!(cmdline.starts_with(b"bramble-reaper\0--id\0"), "{}", String::from_utf8_lossy(&cmdline));
    let stat = fs::read_to_string(format!("/proc/{first}/stat")).expect("the container's stat");
    let parent = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)).expect("ppid");
    assert_eq!(parent, shim.shim_pid.to_string(), "the container's parent is its reaper");

    let status = agent.kill_and_wait_restart(&pod, first);
    let second = running_pid(&status, 0).expect("a pid");
    assert_ne!(first, second);
    assert_eq!(container(&status, 0)["lastState"]["exitCode"], 137);
    assert!(http_get(port, "/").is_some_and(|a| a.contains("hello from bramble")));

    // The output of both runs, through the logs command.
    let output = run(Command::new(binary("bramble-agent"))
        .arg("logs")
        .arg("--state-dir")
        .arg(agent.state())
        .arg(&pod)
        .args(["--tail", "1"]));
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("response:200"), "{stdout}");
    let table = run(Command::new(binary("bramble-agent"))
        .arg("status")
        .arg("--state-dir")
        .arg(agent.state())
        .arg("--run-dir")
        .arg(agent.run_dir()));
    let (table, _) = text(&table);
    let row = table.lines().find(|l| l.contains(&pod)).expect("a row for the pod");
    assert!(row.contains("Running") && row.contains("1/1") && row.contains("137 (Error)"), "{table}");
}

#[test]
fn the_static_board_binary_runs_pods_through_its_built_in_reaper() {
    let mut agent = Agent::board();
    agent.start();
    let pod = name("board");
    let port = free_port();
    agent.apply("board.yaml", &httpd_pod(&pod, port));
    let status = agent.wait_pod(&pod, "ready", |p| p["ready"] == true);
    assert!(http_get(port, "/").is_some_and(|a| a.contains("hello from bramble")));
    let first = running_pid(&status, 0).expect("a pid");
    let shim = agent.shim_of(first);
    // The reaper runs from memory, out of the agent binary, not from a file beside it.
    let exe = fs::read_link(format!("/proc/{}/exe", shim.shim_pid)).expect("the shim's executable");
    assert!(exe.to_string_lossy().starts_with("/memfd:bramble-reaper"), "{}", exe.display());

    let status = agent.kill_and_wait_restart(&pod, first);
    assert_eq!(container(&status, 0)["lastState"]["exitCode"], 137);
    assert!(http_get(port, "/").is_some_and(|a| a.contains("hello from bramble")));
}

#[test]
fn an_agent_without_a_reaper_refuses_to_start() {
    require_root();
    // A hard link of the agent in a directory of its own (the same file system as the build, so
    // no copy): no bramble-reaper beside it, and none built in (a plain cargo build).
    let agent = binary("bramble-agent");
    let dir = tempfile::tempdir_in(agent.parent().expect("target dir")).expect("temp dir");
    let lonely = dir.path().join("bramble-agent");
    fs::hard_link(&agent, &lonely).expect("hard link");
    let output = run(Command::new(&lonely)
        .arg("run")
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .arg("--run-dir")
        .arg(dir.path().join("run"))
        .arg("--manifests")
        .arg(dir.path().join("manifests")));
    let (_, stderr) = text(&output);
    assert!(!output.status.success());
    let expected = format!("{} does not exist", dir.path().join("bramble-reaper").display());
    assert!(
        stderr.contains("bramble-reaper is not built into this agent") && stderr.contains(&expected),
        "{stderr}"
    );
}

#[test]
fn a_removed_manifest_stops_and_cleans_its_pod() {
    let mut agent = Agent::new();
    agent.start();
    let pod = name("gone");
    let port = free_port();
    let yaml = httpd_pod(&pod, port)
        .replace("  containers:\n", "  volumes:\n  - name: scratch\n    emptyDir: {}\n  containers:\n")
        + "    volumeMounts:\n    - {name: scratch, mountPath: /scratch}\n";
    agent.apply("gone.yaml", &yaml);
    let status = agent.wait_pod(&pod, "ready", |p| p["ready"] == true);
    let pid = running_pid(&status, 0).expect("a pid");
    let uid = status["uid"].as_str().expect("uid").to_owned();
    let id = format!("{uid}_httpd");
    assert!(!cgroup_dirs(&pod_cgroup(&uid)).is_empty(), "the pod has cgroups while it runs");
    assert!(agent.state().join("volumes").join(&uid).join("scratch").is_dir());

    agent.delete("gone.yaml");
    agent.wait_gone(&pod);
    // busybox httpd as PID 1 ignores SIGTERM: the agent had to SIGKILL it after 2 s.
    assert!(agent.log().contains("still running after its grace period: SIGKILL"), "{}", agent.log());
    assert!(!alive(pid), "process {pid} is left");
    assert!(shims(&agent.run_dir()).is_empty(), "shim files are left");
    let mounts = fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(!mounts.contains(&agent.run_dir().display().to_string()), "a mount is left:\n{mounts}");
    assert_eq!(cgroup_dirs(&pod_cgroup(&uid)), Vec::<PathBuf>::new(), "cgroups are left");
    for left in [
        agent.run_dir().join("containers").join(&id),
        agent.run_dir().join("libcontainer").join(&id),
        agent.state().join("containers").join(&id),
        agent.state().join("logs").join(format!("{id}.log")),
        agent.state().join("pods").join(format!("{uid}.json")),
        agent.state().join("volumes").join(&uid),
    ] {
        assert!(!left.exists(), "{} is left", left.display());
    }
    assert!(http_get(port, "/").is_none(), "the port still answers");
}

#[test]
fn agent_kill_9_adopts_its_containers_and_a_reboot_brings_them_back() {
    let mut agent = Agent::new();
    agent.start();
    let signals = agent.dir.path().join("signals");
    fs::create_dir_all(&signals).expect("signals dir");
    let (sleeper, quitter) = (name("sleeper"), name("quitter"));
    agent.apply(
        "sleeper.yaml",
        &pod_yaml(
            &sleeper,
            "  containers:\n  - name: c\n    image: busybox:latest\n    command: [sleep, \"1000\"]\n",
        ),
    );
    let quit = format!(
        "  restartPolicy: Never
  volumes:
  - name: signals
    hostPath: {{path: {}}}
  containers:
  - name: c
    image: busybox:latest
    command: [sh, -c, 'while [ ! -e /signals/go ]; do sleep 0.1; done; exit 7']
    volumeMounts:
    - {{name: signals, mountPath: /signals}}
",
        signals.display()
    );
    agent.apply("quitter.yaml", &pod_yaml(&quitter, &quit));
    let before = agent.wait_pod(&sleeper, "running", |p| running_pid(p, 0).is_some());
    agent.wait_pod(&quitter, "running", |p| running_pid(p, 0).is_some());
    let pid = running_pid(&before, 0).expect("pid");

    // The agent dies; the containers do not. One of them ends while no agent runs.
    agent.kill_9();
    fs::write(signals.join("go"), b"").expect("signal");
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(pid));
    agent.start();
    let after = agent.wait_pod(&quitter, "its exit code", |p| {
        container(p, 0)["state"]["terminated"]["exitCode"].is_number()
    });
    assert_eq!(container(&after, 0)["state"]["terminated"]["exitCode"], 7, "{after:#}");
    assert_eq!(after["phase"], "Failed");
    // The ended container's libcontainer state is gone (nothing may join a reused pid); its
    // end is recorded.
    let id = format!("{}_c", after["uid"].as_str().expect("uid"));
    assert!(agent.run_dir().join("containers").join(&id).join("exit.json").exists());
    let state = agent.run_dir().join("libcontainer").join(&id).join("state.json");
    assert!(!state.exists(), "{} is left", state.display());
    let adopted = agent.wait_pod(&sleeper, "running", |p| running_pid(p, 0).is_some());
    assert_eq!(running_pid(&adopted, 0), Some(pid), "the same process, adopted");
    assert_eq!(container(&adopted, 0)["restartCount"], 0);
    let starts = agent.log().matches(&format!("pod default/{sleeper}: container c: started")).count();
    assert_eq!(starts, 1, "no second start:\n{}", agent.log());

    // A reboot: every process gone, the run directory empty. The pods come back.
    agent.reboot();
    agent.start();
    let back = agent.wait_pod(&sleeper, "running again", |p| running_pid(p, 0).is_some());
    assert_ne!(running_pid(&back, 0), Some(pid));
    assert_eq!(container(&back, 0)["lastState"]["reason"], "Lost");
    let still = agent.pod(&quitter).expect("the quitter is still known");
    assert_eq!(
        container(&still, 0)["state"]["terminated"]["exitCode"],
        7,
        "restartPolicy Never holds across reboot"
    );
}

#[test]
fn failing_probes_restart_or_mark_not_ready_with_their_reason() {
    let mut agent = Agent::new();
    agent.start();
    let (live, ready, missing) = (name("live"), name("ready"), name("missing"));
    agent.apply(
        "live.yaml",
        &pod_yaml(
            &live,
            "  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    command: [sh, -c, 'touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 1000']
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 2
",
        ),
    );
    agent.apply(
        "ready.yaml",
        &pod_yaml(
            &ready,
            "  containers:
  - name: c
    image: busybox:latest
    command: [sleep, \"1000\"]
    readinessProbe:
      exec: {command: [sh, -c, 'test -e /tmp/ready']}
      periodSeconds: 1
",
        ),
    );
    agent.apply(
        "missing.yaml",
        &pod_yaml(
            &missing,
            "  containers:
  - name: c
    image: busybox:latest
    command: [sleep, \"1000\"]
    readinessProbe:
      exec: {command: [/no/such/binary]}
      periodSeconds: 1
",
        ),
    );
    let restarted = agent.wait_pod(&live, "a liveness restart", |p| {
        container(p, 0)["restartCount"].as_u64().is_some_and(|n| n >= 1) && running_pid(p, 0).is_some()
    });
    assert!(agent.log().contains("liveness probe failed"), "{}", agent.log());
    assert_eq!(restarted["phase"], "Running");

    let not_ready = agent.wait_pod(&ready, "a failed readiness probe", |p| {
        p["message"].as_str().is_some_and(|m| m.contains("readiness probe failed"))
    });
    assert_eq!(not_ready["ready"], false);
    assert_eq!(not_ready["phase"], "Running");
    assert!(running_pid(&not_ready, 0).is_some(), "readiness never restarts");
    assert_eq!(container(&not_ready, 0)["restartCount"], 0);
    // Once the check passes, the pod is ready.
    let pid = running_pid(&not_ready, 0).expect("pid");
    fs::write(format!("/proc/{pid}/root/tmp/ready"), b"").expect("make it ready");
    agent.wait_pod(&ready, "ready", |p| p["ready"] == true);

    let no_binary = agent.wait_pod(&missing, "the probe's reason", |p| p["message"].is_string());
    let message = no_binary["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("readiness probe failed")
            && message.contains("/no/such/binary")
            && message.contains("not found"),
        "{message}"
    );
    assert_eq!(no_binary["ready"], false);
}

#[test]
fn limits_reach_the_cgroup_and_an_oom_kill_is_reported() {
    let mut agent = Agent::new();
    agent.start();
    let (limited, hungry) = (name("limited"), name("hungry"));
    agent.apply(
        "limited.yaml",
        &pod_yaml(
            &limited,
            "  containers:
  - name: c
    image: busybox:latest
    command: [sleep, \"1000\"]
    resources:
      limits: {cpu: 250m, memory: 32Mi}
",
        ),
    );
    agent.apply(
        "hungry.yaml",
        &pod_yaml(
            &hungry,
            "  restartPolicy: Never
  containers:
  - name: c
    image: busybox:latest
    command: [dd, if=/dev/zero, of=/dev/null, bs=64M, count=1]
    resources:
      limits: {memory: 16Mi}
",
        ),
    );
    let status = agent.wait_pod(&limited, "running", |p| running_pid(p, 0).is_some());
    let uid = status["uid"].as_str().expect("uid");
    let memory =
        cgroup_setting(&format!("{}/c", pod_cgroup(uid)), ("memory", "memory.limit_in_bytes"), "memory.max");
    assert_eq!(memory, "33554432");
    let cpu = cgroup_setting(&format!("{}/c", pod_cgroup(uid)), ("cpu", "cpu.cfs_quota_us"), "cpu.max");
    assert!(cpu == "25000" || cpu == "25000 100000", "{cpu}");

    let oom = agent.wait_pod(&hungry, "its end", |p| container(p, 0)["state"]["terminated"].is_object());
    let terminated = &container(&oom, 0)["state"]["terminated"];
    assert_eq!(
        (terminated["exitCode"].as_i64(), terminated["reason"].as_str()),
        (Some(137), Some("OOMKilled"))
    );
}

#[test]
fn bad_input_gives_one_clear_reason_each() {
    let mut agent = Agent::new();
    agent.import(&["--name", "broken:1"]);
    // A corrupt store: the layer of broken:1 (shared with busybox:latest here, so this board
    // runs no busybox pod) vanishes from under it.
    for layer in fs::read_dir(agent.state().join("images/layers")).expect("layers").flatten() {
        fs::remove_dir_all(layer.path()).expect("remove a layer");
    }
    agent.start();
    let taken = TcpListener::bind("0.0.0.0:0").expect("hold a port");
    let port = taken.local_addr().expect("addr").port();
    let (no_image, broken, greedy, clash) = (name("noimage"), name("broken"), name("greedy"), name("clash"));
    let simple = |image: &str, extra: &str| {
        format!("  containers:\n  - name: c\n    image: {image}\n    command: [sleep, \"1000\"]\n{extra}")
    };
    // Never pulled: a missing image is only reported (a pull would go to Docker Hub).
    agent
        .apply("noimage.yaml", &pod_yaml(&no_image, &simple("busybox:9.99", "    imagePullPolicy: Never\n")));
    agent.apply("broken.yaml", &pod_yaml(&broken, &simple("broken:1", "")));
    agent.apply(
        "greedy.yaml",
        &pod_yaml(&greedy, &simple("busybox:9.99", "    resources:\n      limits: {memory: 64Ti}\n")),
    );
    agent.apply(
        "clash.yaml",
        &pod_yaml(
            &clash,
            &simple("broken:1", &format!("    ports:\n    - {{containerPort: {port}, hostPort: {port}}}\n")),
        ),
    );
    agent.apply(
        "bad.yaml",
        &pod_yaml("bad", &simple("busybox", "    resources:\n      limits: {memory: 12XB}\n")),
    );

    let expect = [
        (&no_image, "ImageNotPresent", "image busybox:9.99 is not in this board's image store".to_owned()),
        (&broken, "ImageCorrupt", "layer".to_owned()),
        (&greedy, "InsufficientMemory", "ask for 64.0Ti of memory".to_owned()),
        (&clash, "HostPortInUse", format!("hostPort {port}/TCP is already in use on this board")),
    ];
    for (pod, reason, words) in &expect {
        let status = agent.wait_pod(pod, reason, |p| p["reason"] == *reason);
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains(words.as_str()), "{pod}: {message}");
        assert_eq!(status["phase"], "Pending");
        assert_eq!(container(&status, 0)["state"]["waiting"]["reason"], *reason);
    }
    let errors = agent.status()["manifestErrors"].clone();
    let error = errors[0].as_str().unwrap_or_default();
    assert!(error.contains("bad.yaml") && error.contains("invalid quantity \"12XB\""), "{errors:#}");
    // Retries happen (with backoff), yet each reason is logged once, and nothing ran.
    std::thread::sleep(Duration::from_secs(2));
    let log = agent.log();
    for (pod, reason, _) in &expect {
        let lines = log.lines().filter(|l| l.contains(pod.as_str()) && l.contains(reason)).count();
        assert_eq!(lines, 1, "{pod}: {reason} logged {lines} times:\n{log}");
    }
    assert_eq!(log.lines().filter(|l| l.contains("12XB")).count(), 1, "{log}");
    assert!(shims(&agent.run_dir()).is_empty(), "a container was made");
    assert!(!agent.run_dir().join("containers").read_dir().is_ok_and(|mut d| d.next().is_some()));
    drop(taken);
}

#[test]
fn a_full_state_disk_is_a_clear_reason_and_corrupts_no_state() {
    let mut agent = Agent::with_state_on(Some("48m"));
    agent.start();
    let (first, second) = (name("first"), name("second"));
    let sleeper = |n: &str| {
        pod_yaml(n, "  containers:\n  - name: c\n    image: busybox:latest\n    command: [sleep, \"1000\"]\n")
    };
    agent.apply("first.yaml", &sleeper(&first));
    let before = agent.wait_pod(&first, "running", |p| running_pid(p, 0).is_some());
    let uid = before["uid"].as_str().expect("uid").to_owned();

    // Fill the disk to the last byte.
    let filler = agent.state().join("filler");
    let mut file = fs::File::create(&filler).expect("filler");
    let chunk = vec![0u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    drop(file);

    agent.apply("second.yaml", &sleeper(&second));
    let full = agent.wait_pod(&second, "StateDiskFull", |p| p["reason"] == "StateDiskFull");
    let message = full["message"].as_str().unwrap_or_default();
    assert!(message.contains("the state disk") && message.contains("free"), "{message}");
    // The running pod's end cannot be recorded now: its record stays whole (the old one).
    kill_9(i32::try_from(running_pid(&before, 0).expect("pid")).expect("pid"));
    agent.wait_pod(&first, "StateDiskFull on restart", |p| p["reason"] == "StateDiskFull");
    let record = fs::read(agent.state().join("pods").join(format!("{uid}.json"))).expect("record");
    let record: Value = serde_json::from_slice(&record).expect("the record is whole JSON");
    assert_eq!(record["uid"], uid.as_str());
    let log = agent.log();
    assert_eq!(
        log.lines().filter(|l| l.contains(&second) && l.contains("StateDiskFull")).count(),
        1,
        "{log}"
    );

    // Space again: both run.
    fs::remove_file(&filler).expect("remove filler");
    agent.wait_pod(&second, "running", |p| running_pid(p, 0).is_some());
    let after = agent.wait_pod(&first, "running again", |p| running_pid(p, 0).is_some());
    assert_eq!(container(&after, 0)["restartCount"], 1);
}

#[test]
fn a_container_nobody_declares_is_stopped_and_removed() {
    let mut agent = Agent::new();
    agent.start();
    let pod = name("stray");
    let spec = "  containers:\n  - name: c\n    image: busybox:latest\n    command: [sleep, \"1000\"]\n";
    agent.apply("stray.yaml", &pod_yaml(&pod, spec));
    let status = agent.wait_pod(&pod, "running", |p| running_pid(p, 0).is_some());
    let pid = running_pid(&status, 0).expect("pid");
    let uid = status["uid"].as_str().expect("uid").to_owned();

    // While the agent is down, its manifest and its record go: the container is nobody's.
    agent.kill_9();
    agent.delete("stray.yaml");
    fs::remove_file(agent.state().join("pods").join(format!("{uid}.json"))).expect("remove the record");
    agent.start();
    let gone = || {
        let left =
            alive(pid) || !shims(&agent.run_dir()).is_empty() || !cgroup_dirs(&pod_cgroup(&uid)).is_empty();
        (!left).then_some(())
    };
    let context = || format!("agent log:\n{}", agent.log());
    wait_until(
        "the stray container to go",
        Duration::from_secs(60),
        Duration::from_millis(200),
        gone,
        context,
    );
    // Without a record, the grace period is Kubernetes' default: SIGTERM, then SIGKILL.
    let log = agent.log();
    assert!(log.contains(&format!("container {uid}_c: stopping (SIGTERM)")), "{log}");
    assert!(!agent.run_dir().join("containers").join(format!("{uid}_c")).exists());
    assert!(!agent.state().join("containers").join(format!("{uid}_c")).exists());
}
