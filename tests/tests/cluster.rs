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
    alive, binary, free_port, http_get, import_busybox, kill_9, kill_child, kill_containers, pod_cgroup,
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
        let (x, y) = (200 + pid % 50, (pid / 50 % 25) * 10 + index);
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
    /// `--broker URL`, if the coordinator uses an external broker.
    broker: Option<String>,
    /// Read once the coordinator has made it.
    api_token: String,
}

impl Coordinator {
    /// Starts a coordinator with its embedded broker, or with `broker` (`mqtt://HOST:PORT`).
    fn start(broker: Option<String>) -> Coordinator {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut coordinator = Coordinator {
            dir,
            child: None,
            api_port: free_port(),
            mqtt_port: free_port(),
            broker,
            api_token: String::new(),
        };
        coordinator.spawn();
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

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("coordinator.log"))
            .expect("log");
        let mut command = Command::new(binary("bramble"));
        command
            .arg("coordinator")
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen", &format!("0.0.0.0:{}", self.api_port)])
            .args(["--mqtt-listen", &format!("0.0.0.0:{}", self.mqtt_port)])
            .args(["--node-grace", "3s"]);
        if let Some(broker) = &self.broker {
            command.args(["--broker", broker]);
        }
        let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("start the coordinator");
        self.child = Some(child);
    }

    /// kill -9, then the same command again on the same data directory and ports.
    fn kill_and_restart(&mut self) {
        kill_child(&mut self.child);
        self.spawn();
        let port = self.api_port;
        wait_until(
            "the restarted coordinator's API",
            Duration::from_secs(20),
            Duration::from_millis(100),
            || TcpStream::connect(("127.0.0.1", port)).is_ok().then_some(()),
            || self.log(),
        );
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

/// Mosquitto 2 on a free port, with a password file (the coordinator's MQTT secret, and the
/// join token for each board) and the ACL `bramble coordinator --print-mosquitto-acl` prints.
struct Mosquitto {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
}

impl Mosquitto {
    fn start(port: u16, coordinator: &Coordinator, boards: &[&str]) -> Mosquitto {
        require_tool("mosquitto");
        require_tool("mosquitto_passwd");
        let dir = tempfile::tempdir().expect("temp dir");
        let path = |name: &str| dir.path().join(name);
        let passwd = path("passwd");
        let mut users = vec![("bramble-coordinator".to_owned(), coordinator.secret("mqtt-password"))];
        let join = coordinator.secret("join-token");
        users.extend(boards.iter().map(|b| ((*b).to_owned(), join.clone())));
        for (user, password) in &users {
            let create: &[&str] = if passwd.exists() { &[] } else { &["-c"] };
            let output = run(Command::new("mosquitto_passwd")
                .args(create)
                .arg("-b")
                .arg(&passwd)
                .args([user, password]));
            assert!(output.status.success(), "mosquitto_passwd: {:?}", text(&output));
        }
        let acl = coordinator.bramble(&["coordinator", "--print-mosquitto-acl"]);
        fs::write(path("acl"), acl).expect("acl file");
        let config = format!(
            "user root\nper_listener_settings false\nallow_anonymous false\npersistence false\n\
             password_file {}\nacl_file {}\nlistener {port} 0.0.0.0\nlog_dest stderr\n",
            passwd.display(),
            path("acl").display()
        );
        fs::write(path("mosquitto.conf"), config).expect("mosquitto.conf");
        let mut mosquitto = Mosquitto { dir, child: None, port };
        mosquitto.spawn();
        mosquitto
    }

    fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("mosquitto.log"))
            .expect("log");
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mosquitto");
        self.child = Some(child);
        let port = self.port;
        wait_until(
            "mosquitto listening",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || TcpStream::connect(("127.0.0.1", port)).is_ok().then_some(()),
            || fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default(),
        );
    }

    /// kill -9 and start again: every connection drops and, without persistence, every
    /// retained message is gone.
    fn kill_and_restart(&mut self) {
        kill_child(&mut self.child);
        self.spawn();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default();
            eprintln!("--- mosquitto log:\n{log}");
        }
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

    /// Starts the agent, joining the broker on `mqtt_port` through the board's veth.
    fn start(&mut self, mqtt_port: u16, token: &str) {
        // nsenter joins only the network namespace: `ip netns exec` would also remount /sys,
        // hiding the host's cgroup hierarchies from the agent.
        let mut nsenter = Command::new("nsenter");
        nsenter.arg(format!("--net=/run/netns/{}", self.netns.name)).arg("--").arg(binary("bramble-agent"));
        let server = format!("mqtt://{}:{mqtt_port}", self.netns.host_ip);
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
        self.container_pids().len()
    }

    /// The process of every container running on this board, by container id.
    fn container_pids(&self) -> BTreeMap<String, i32> {
        shims(&self.run_dir())
            .into_iter()
            .filter(|s| alive(s.container_pid.into()))
            .map(|s| (s.id, s.container_pid))
            .collect()
    }

    /// Cuts (`false`) or restores (`true`) the board's link: the host end of its veth goes
    /// down, so the board falls silent without closing its connection, as on a Wi-Fi loss.
    fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        let output = run(Command::new("ip").args(["link", "set", &self.netns.host_if, state]));
        assert!(output.status.success(), "ip link set {state}: {:?}", text(&output));
    }

    /// Starts a container by hand with the board's runtime (`bramble-agent debug run`), named
    /// like a pod's container but in no assignment; returns its id.
    fn start_stray_container(&self) -> String {
        let id = format!("stray{}_c", std::process::id());
        let output = run(Command::new(binary("bramble-agent"))
            .arg("debug")
            .arg("--state-dir")
            .arg(self.state())
            .arg("--run-dir")
            .arg(self.run_dir())
            .args(["run", "--detach", "--id", &id, "busybox:latest", "--"])
            .args(["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]));
        assert!(output.status.success(), "debug run: {:?}", text(&output));
        id
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
        for record in &records {
            remove_cgroup(&format!("bramble/debug/{}", record.id));
            if let Some(uid) = record.pod_uid() {
                remove_cgroup(&pod_cgroup(uid));
            }
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

/// The process of every container running in the cluster, by board and container id.
fn container_pids(boards: &[Board]) -> BTreeMap<String, BTreeMap<String, i32>> {
    boards.iter().map(|b| (b.name.clone(), b.container_pids())).collect()
}

/// Waits until every board in `names` is listed Ready.
fn until_ready(coordinator: &Coordinator, names: &[String], what: &str) {
    until(coordinator, what, 40, || {
        let out = coordinator.bramble(&["get", "nodes"]);
        names
            .iter()
            .all(|n| out.lines().any(|l| l.starts_with(n.as_str()) && l.contains(" Ready ")))
            .then_some(())
    });
}

/// After a restart of the control plane (coordinator or broker): waits until every board is
/// heard again and reports the replicas it ran `before` Running, lets more than a node grace
/// pass (a board wrongly marked NotReady would lose its pods by then), and checks that every
/// container is the same process as before.
fn same_pods_after_restart(
    coordinator: &Coordinator,
    boards: &[Board],
    before: &BTreeMap<String, BTreeMap<String, i32>>,
    what: &str,
) {
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();
    let per_board: BTreeMap<String, usize> =
        before.iter().filter(|(_, c)| !c.is_empty()).map(|(b, c)| (b.clone(), c.len())).collect();
    until_ready(coordinator, &names, &format!("every board Ready again after {what}"));
    until(coordinator, &format!("the replicas reported Running {per_board:?} after {what}"), 40, || {
        coordinator.running_per_board().filter(|m| *m == per_board)
    });
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(&container_pids(boards), before, "{what} restarted no container");
    assert_eq!(coordinator.running_per_board(), Some(per_board), "after {what}");
}

/// How many times the agent log of each board says it connected.
fn connections(boards: &[Board]) -> Vec<usize> {
    boards.iter().map(|b| b.log().matches("connected to mqtt://").count()).collect()
}

#[test]
fn three_boards_spread_scale_heal_and_refuse_strangers() {
    require_root();
    require_tool("ip");
    require_tool("nsenter");
    let mut coordinator = Coordinator::start(None);
    let join = coordinator.secret("join-token");
    let mut boards: Vec<Board> = (1..=3).map(Board::new).collect();
    for board in &mut boards {
        board.start(coordinator.mqtt_port, &join);
    }
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();
    until_ready(&coordinator, &names, "three boards Ready");

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

    // A container started by hand on a board, named like a pod's but in no assignment, is
    // removed; the board's replicas are left alone.
    let replicas = boards[1].container_pids();
    let stray = boards[1].start_stray_container();
    until(&coordinator, "the hand-started container removed", 30, || {
        (!boards[1].container_pids().contains_key(&stray)).then_some(())
    });
    assert_eq!(boards[1].container_pids(), replicas, "the replicas were not touched");

    // A replica's process killed by hand is started again.
    let (id, pid) = replicas.iter().next().map(|(id, pid)| (id.clone(), *pid)).expect("a replica");
    kill_9(pid);
    until(&coordinator, "the killed replica started again", 30, || {
        boards[1].container_pids().get(&id).filter(|new| **new != pid).map(|_| ())
    });

    // The coordinator (and with it the embedded broker) is killed and restarted: the boards
    // reconnect and no pod is restarted.
    let before = container_pids(&boards);
    coordinator.kill_and_restart();
    same_pods_after_restart(&coordinator, &boards, &before, "a coordinator restart");

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
    boards[0].start(coordinator.mqtt_port, &join);
    until(&coordinator, "the returning board stops its old replicas", 40, || {
        (boards[0].running_containers() == 0).then_some(())
    });
    let after = coordinator.running_per_board().expect("all Running");
    assert_eq!(after.values().sum::<usize>(), 6, "still 6 replicas: {after:?}");

    // A board with a wrong join token is refused and never listed.
    let mut stranger = Board::new(4);
    stranger.start(coordinator.mqtt_port, "not-the-join-token");
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

/// The same cluster through Mosquitto 2 (`--broker`), with its password file and the generated
/// ACL: a board reads only its own assignment; a cut link moves the board's replicas and the
/// surplus goes when it heals; a Mosquitto restart and a coordinator restart restart no pod.
#[test]
fn mosquitto_broker_cut_link_and_restarts() {
    require_root();
    require_tool("ip");
    require_tool("nsenter");
    require_tool("mosquitto_sub");
    let broker_port = free_port();
    let mut coordinator = Coordinator::start(Some(format!("mqtt://127.0.0.1:{broker_port}")));
    let join = coordinator.secret("join-token");
    let mut boards: Vec<Board> = (5..=7).map(Board::new).collect();
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();
    let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut mosquitto = Mosquitto::start(broker_port, &coordinator, &name_refs);
    for board in &mut boards {
        board.start(broker_port, &join);
    }
    until_ready(&coordinator, &names, "three boards Ready through Mosquitto");

    let manifest = coordinator.dir.path().join("web.yaml");
    fs::write(&manifest, DEPLOYMENT).expect("manifest");
    coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    until(&coordinator, "6 replicas Running 2/2/2", 60, || {
        coordinator.running_per_board().filter(|m| counts(m) == [2, 2, 2])
    });

    // The ACL: a board's credentials read its own retained assignment, not another board's.
    let read_desired = |user: &str, of: &str| {
        let topic = format!("bramble/nodes/{of}/desired");
        let output = run(Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &broker_port.to_string(), "-u", user, "-P", &join])
            .args(["-t", &topic, "-C", "1", "-W", "3"]));
        text(&output).0
    };
    assert!(
        read_desired(&names[0], &names[0]).contains("\"generation\""),
        "a board reads its own assignment"
    );
    assert_eq!(read_desired(&names[0], &names[1]), "", "a board cannot read another board's assignment");

    // Board 5's link is cut: it falls silent without closing its connection; after the grace
    // (3 s here) it is NotReady and its replicas run elsewhere, while its containers go on.
    let lost = names[0].clone();
    boards[0].set_link(false);
    until(&coordinator, "6 replicas Running on the two boards still linked", 40, || {
        coordinator.running_per_board().filter(|m| !m.contains_key(&lost) && m.values().sum::<usize>() == 6)
    });
    assert_eq!(boards[0].running_containers(), 2, "a cut-off board keeps its containers");
    let nodes = coordinator.bramble(&["get", "nodes"]);
    assert!(nodes.lines().any(|l| l.starts_with(lost.as_str()) && l.contains("NotReady")), "{nodes}");

    // The link heals: the board gets its up-to-date (empty) assignment and removes the surplus.
    boards[0].set_link(true);
    until(&coordinator, "the healed board stops its old replicas", 60, || {
        (boards[0].running_containers() == 0).then_some(())
    });
    until_ready(&coordinator, &names, "the healed board Ready again");
    let after = coordinator.running_per_board().expect("all Running");
    assert_eq!(after.values().sum::<usize>(), 6, "still 6 replicas: {after:?}");

    // Mosquitto is killed and restarted (its retained messages are gone): every board
    // reconnects, the coordinator republishes the assignments, and no pod is restarted.
    let before = container_pids(&boards);
    let connected = connections(&boards);
    mosquitto.kill_and_restart();
    until(&coordinator, "every board reconnected to the restarted Mosquitto", 40, || {
        connections(&boards).iter().zip(&connected).all(|(now, then)| now > then).then_some(())
    });
    same_pods_after_restart(&coordinator, &boards, &before, "a Mosquitto restart");

    // The coordinator is killed and restarted: no pod is restarted.
    coordinator.kill_and_restart();
    same_pods_after_restart(&coordinator, &boards, &before, "a coordinator restart");

    coordinator.bramble(&["delete", "deployment/web"]);
    until(&coordinator, "no containers left", 30, || {
        (boards.iter().map(Board::running_containers).sum::<usize>() == 0).then_some(())
    });
    for board in &boards {
        assert!(!board.log().contains("panicked"), "{}", board.log());
    }
}
