//! A cluster end to end: a real coordinator (`bramble coordinator`, embedded MQTT broker),
//! three real agents as separate processes, each in its own network namespace with its own
//! address (veth to the host), real containers, and the real `bramble` client. Names, ports and
//! namespaces are unique to the test process; guards remove every process, container, mount,
//! cgroup and namespace, also when the test fails.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bramble_tests::{
    alive, binary, free_port, http_get, import_busybox, kill_child, kill_containers, pod_cgroup,
    remove_cgroup, require_root, require_tool, run, shims, spawn_agent_run, text, unmount_under, wait_until,
};
use serde_json::Value;

/// A network namespace joined to the host by a veth pair: host side `10.X.Y.1`, board side
/// `10.X.Y.2`.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
}

impl Netns {
    fn new(index: u32) -> Netns {
        let pid = std::process::id();
        let name = format!("brm{pid}-{index}");
        let (host_if, board_if) =
            (format!("bh{}{index}", pid % 100_000), format!("bb{}{index}", pid % 100_000));
        let (x, y) = (200 + pid % 50, (pid / 50 % 50) * 5 + index);
        let host_ip = format!("10.{x}.{y}.1");
        let board_ip = format!("10.{x}.{y}.2");
        let netns = Netns { name: name.clone(), host_if: host_if.clone(), host_ip: host_ip.clone() };
        let ip = |args: &[&str]| {
            let output = run(Command::new("ip").args(args));
            assert!(output.status.success(), "ip {args:?}: {:?}", text(&output));
        };
        ip(&["netns", "add", &name]);
        ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &board_if]);
        ip(&["link", "set", &board_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&["-n", &name, "addr", "add", &format!("{board_ip}/24"), "dev", &board_if]);
        ip(&["-n", &name, "link", "set", &board_if, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// `bramble coordinator` on free ports with its own data directory.
struct Coordinator {
    dir: tempfile::TempDir,
    child: Option<Child>,
    api_port: u16,
    mqtt_port: u16,
    /// Read once the coordinator has made it.
    api_token: String,
}

impl Coordinator {
    fn start() -> Coordinator {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut coordinator = Coordinator {
            dir,
            child: None,
            api_port: free_port(),
            mqtt_port: free_port(),
            api_token: String::new(),
        };
        let log = fs::File::create(coordinator.dir.path().join("coordinator.log")).expect("log");
        let child = Command::new(binary("bramble"))
            .arg("coordinator")
            .arg("--data-dir")
            .arg(coordinator.dir.path().join("data"))
            .args(["--listen", &format!("0.0.0.0:{}", coordinator.api_port)])
            .args(["--mqtt-listen", &format!("0.0.0.0:{}", coordinator.mqtt_port)])
            .args(["--node-grace", "3s"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the coordinator");
        coordinator.child = Some(child);
        let token = coordinator.dir.path().join("data/api-token");
        let ready = || {
            (token.exists() && TcpStream::connect(("127.0.0.1", coordinator.api_port)).is_ok()).then_some(())
        };
        wait_until(
            "the coordinator's API",
            Duration::from_secs(20),
            Duration::from_millis(100),
            ready,
            || coordinator.log(),
        );
        coordinator.api_token = coordinator.secret("api-token");
        coordinator
    }

    fn secret(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join("data").join(name)).expect("token file").trim().to_owned()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("coordinator.log")).unwrap_or_default()
    }

    /// `bramble ARGS` against this coordinator with `token`, and no config file.
    fn command(&self, args: &[&str], token: &str) -> Command {
        let mut command = Command::new(binary("bramble"));
        command
            .args(args)
            .env("BRAMBLE_SERVER", format!("http://127.0.0.1:{}", self.api_port))
            .env("BRAMBLE_TOKEN", token)
            .env("BRAMBLE_CONFIG", "/nonexistent");
        command
    }

    /// `bramble ARGS` against this coordinator; panics with its output if it fails.
    fn bramble(&self, args: &[&str]) -> String {
        let output = run(&mut self.command(args, &self.api_token));
        let (out, err) = text(&output);
        assert!(
            output.status.success(),
            "bramble {args:?} failed: {err}\n{out}\ncoordinator:\n{}",
            self.log()
        );
        out
    }

    fn pods(&self) -> Vec<Value> {
        let list: Value = serde_json::from_str(&self.bramble(&["get", "pods", "-o", "json"])).expect("json");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// Running pods per board, if every pod is Running and Ready.
    fn running_per_board(&self) -> Option<BTreeMap<String, usize>> {
        let mut out = BTreeMap::new();
        for pod in self.pods() {
            let ready =
                pod["status"]["phase"] == "Running" && pod["status"]["conditions"][0]["status"] == "True";
            if !ready {
                return None;
            }
            *out.entry(pod["spec"]["nodeName"].as_str()?.to_owned()).or_default() += 1;
        }
        Some(out)
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        kill_child(&mut self.child);
    }
}

/// One board: an agent process in its network namespace, and its directories.
struct Board {
    name: String,
    dir: tempfile::TempDir,
    netns: Netns,
    child: Option<Child>,
}

impl Board {
    fn new(index: u32) -> Board {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("manifests")).expect("manifests dir");
        let board = Board {
            name: format!("b{}-{index}", std::process::id()),
            dir,
            netns: Netns::new(index),
            child: None,
        };
        import_busybox(&binary("bramble-agent"), &board.state(), &[]);
        board
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    fn start(&mut self, coordinator: &Coordinator, token: &str) {
        // nsenter joins only the network namespace: `ip netns exec` would also remount /sys,
        // hiding the host's cgroup hierarchies from the agent.
        let mut nsenter = Command::new("nsenter");
        nsenter.arg(format!("--net=/run/netns/{}", self.netns.name)).arg("--").arg(binary("bramble-agent"));
        let server = format!("mqtt://{}:{}", self.netns.host_ip, coordinator.mqtt_port);
        let extra =
            ["--server", &server, "--token", token, "--name", &self.name, "--health-interval-ms", "500"];
        self.child = Some(spawn_agent_run(nsenter, self.dir.path(), &extra));
    }

    /// SIGKILL to the agent only: its containers keep running.
    fn kill_agent(&mut self) {
        kill_child(&mut self.child);
    }

    /// Containers running on this board now (their shims' records).
    fn running_containers(&self) -> usize {
        shims(&self.run_dir()).iter().filter(|s| alive(s.container_pid.into())).count()
    }
}

impl Drop for Board {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- agent log of board {}:\n{}", self.name, self.log());
        }
        self.kill_agent();
        let records = kill_containers(&self.run_dir());
        unmount_under(&self.run_dir(), None);
        for uid in records.iter().filter_map(|s| s.pod_uid()) {
            remove_cgroup(&pod_cgroup(uid));
        }
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 6
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox:latest
        command: [sleep, \"100000\"]
        resources:
          requests: {cpu: 10m, memory: 8Mi}
";

/// Waits for `check`; on timeout the failure shows the coordinator's log.
fn until<T>(coordinator: &Coordinator, what: &str, secs: u64, check: impl FnMut() -> Option<T>) -> T {
    wait_until(what, Duration::from_secs(secs), Duration::from_millis(300), check, || {
        let pods = run(&mut coordinator.command(&["get", "pods", "-o", "wide"], &coordinator.api_token));
        format!("pods:\n{}\ncoordinator log:\n{}", text(&pods).0, coordinator.log())
    })
}

fn counts(map: &BTreeMap<String, usize>) -> Vec<usize> {
    map.values().copied().collect()
}

#[test]
fn three_boards_spread_scale_heal_and_refuse_strangers() {
    require_root();
    require_tool("ip");
    require_tool("nsenter");
    let coordinator = Coordinator::start();
    let join = coordinator.secret("join-token");
    let mut boards: Vec<Board> = (1..=3).map(Board::new).collect();
    for board in &mut boards {
        board.start(&coordinator, &join);
    }
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();
    until(&coordinator, "three boards Ready", 30, || {
        let out = coordinator.bramble(&["get", "nodes"]);
        names
            .iter()
            .all(|n| out.lines().any(|l| l.starts_with(n.as_str()) && l.contains(" Ready ")))
            .then_some(())
    });

    // Requests without the token are refused.
    let answer = http_get(coordinator.api_port, "/api/v1/pods").expect("an answer");
    assert!(answer.lines().next().unwrap_or_default().contains("401"), "no token, no answer");
    let refused = run(&mut coordinator.command(&["get", "pods"], "not-the-token"));
    assert!(!refused.status.success());
    assert!(text(&refused).1.contains("wrong bearer token"), "{:?}", text(&refused));

    // Apply: 6 replicas spread 2/2/2.
    let manifest = coordinator.dir.path().join("web.yaml");
    fs::write(&manifest, DEPLOYMENT).expect("manifest");
    let out = coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    assert_eq!(out.trim(), "deployment.apps/web created");
    let spread = until(&coordinator, "6 replicas Running 2/2/2", 60, || {
        coordinator.running_per_board().filter(|m| counts(m) == [2, 2, 2])
    });
    assert_eq!(spread.keys().cloned().collect::<Vec<_>>(), names);
    for board in &boards {
        assert_eq!(board.running_containers(), 2, "board {} runs its two replicas", board.name);
    }

    // Scale to 9, then to 1.
    coordinator.bramble(&["scale", "deployment/web", "--replicas", "9"]);
    until(&coordinator, "9 replicas Running 3/3/3", 60, || {
        coordinator.running_per_board().filter(|m| counts(m) == [3, 3, 3])
    });
    coordinator.bramble(&["scale", "deployment/web", "--replicas", "1"]);
    until(&coordinator, "1 replica left, 1 container in the cluster", 60, || {
        let pods = coordinator.running_per_board()?;
        let containers: usize = boards.iter().map(Board::running_containers).sum();
        (pods.values().sum::<usize>() == 1 && containers == 1).then_some(())
    });
    coordinator.bramble(&["scale", "deployment/web", "--replicas", "6"]);
    until(&coordinator, "back to 2/2/2", 60, || {
        coordinator.running_per_board().filter(|m| counts(m) == [2, 2, 2])
    });

    // Board 1's agent is killed: its connection closes, the last will marks it NotReady, and
    // its replicas run elsewhere.
    let lost = names[0].clone();
    boards[0].kill_agent();
    until(&coordinator, "6 replicas Running on the two other boards", 30, || {
        coordinator.running_per_board().filter(|m| !m.contains_key(&lost) && m.values().sum::<usize>() == 6)
    });
    assert_eq!(boards[0].running_containers(), 2, "a board without its agent keeps its containers");
    let nodes = coordinator.bramble(&["get", "nodes"]);
    assert!(nodes.lines().any(|l| l.starts_with(lost.as_str()) && l.contains("NotReady")), "{nodes}");

    // It comes back: it gets its up-to-date (empty) assignment and removes the surplus.
    boards[0].start(&coordinator, &join);
    until(&coordinator, "the returning board stops its old replicas", 40, || {
        (boards[0].running_containers() == 0).then_some(())
    });
    let after = coordinator.running_per_board().expect("all Running");
    assert_eq!(after.values().sum::<usize>(), 6, "still 6 replicas: {after:?}");

    // A board with a wrong join token is refused and never listed.
    let mut stranger = Board::new(4);
    stranger.start(&coordinator, "not-the-join-token");
    until(&coordinator, "the stranger is told its token is wrong", 20, || {
        stranger.log().contains("wrong join token").then_some(())
    });
    let nodes = coordinator.bramble(&["get", "nodes"]);
    assert!(!nodes.contains(&stranger.name), "{nodes}");
    assert!(coordinator.log().contains(&format!("user \"{}\": wrong password or join token", stranger.name)));
    drop(stranger);

    coordinator.bramble(&["delete", "deployment/web"]);
    until(&coordinator, "no containers left", 30, || {
        (boards.iter().map(Board::running_containers).sum::<usize>() == 0).then_some(())
    });
    for board in &boards {
        assert!(!board.log().contains("panicked"), "{}", board.log());
    }
}
