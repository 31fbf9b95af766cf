//! A cluster on one machine for end-to-end tests and benchmarks: a real coordinator
//! (`bramble coordinator`, embedded broker or Mosquitto), real agents as separate processes,
//! each in its own network namespace with its own address (veth to the host), real containers.
//! Names, ports and namespaces are unique to the process; guards remove every process,
//! container, mount, cgroup and namespace, also when a test fails.

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::{
    alive, binary, free_port, import_busybox, kill_child, kill_containers, pod_cgroup, remove_cgroup,
    require_tool, run, shims, spawn_agent_run, spawn_logged, text, unmount_under, wait_until,
};

/// The Deployment the tests and benchmarks run: 6 replicas of `sleep` in busybox, small
/// requests, a short grace period.
pub const DEPLOYMENT: &str = "apiVersion: apps/v1
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

/// A network namespace joined to the host by a veth pair: host side `10.X.Y.1`, board side
/// `10.X.Y.2`.
#[derive(Debug)]
pub struct Netns {
    pub name: String,
    pub host_if: String,
    pub host_ip: String,
    /// The board's own address, where its pods' hostPorts answer.
    pub board_ip: String,
}

impl Netns {
    pub fn new(index: u32) -> Netns {
        let pid = std::process::id();
        let name = format!("brm{pid}-{index}");
        let (host_if, board_if) =
            (format!("bh{}{index}", pid % 100_000), format!("bb{}{index}", pid % 100_000));
        // 10.X.Y.0/24 from the process id and the index (below 64), so that runs side by side
        // do not meet; every octet stays below 256 whatever the pid.
        assert!(index < 64, "board index {index}: indices go up to 63");
        let (x, y) = (100 + pid % 100, (pid / 100 % 4) * 64 + index);
        let host_ip = format!("10.{x}.{y}.1");
        let board_ip = format!("10.{x}.{y}.2");
        let netns = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            host_ip: host_ip.clone(),
            board_ip: board_ip.clone(),
        };
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
        // The host's other addresses (a registry listening on another board's host side) are
        // reached through it too.
        ip(&["-n", &name, "route", "add", "default", "via", &host_ip]);
        netns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// How to start a coordinator.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `bramble-coordinator` executable to run, or `None` for `bramble coordinator`.
    pub program: Option<PathBuf>,
    /// `--broker URL`, if the coordinator uses an external broker.
    pub broker: Option<String>,
    /// `--node-grace`.
    pub node_grace: String,
    /// More arguments.
    pub extra: Vec<String>,
    /// `--pin-images`: off unless a test runs its own registry, so that no test asks Docker
    /// Hub for the digest of the busybox it built itself.
    pub pin_images: bool,
}

impl Default for Options {
    /// `bramble coordinator` with its embedded broker, a node grace of 3 s, and tags unpinned.
    fn default() -> Options {
        Options { program: None, broker: None, node_grace: "3s".into(), extra: Vec::new(), pin_images: false }
    }
}

/// A coordinator on free ports with its own data directory.
#[derive(Debug)]
pub struct Coordinator {
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    pub api_port: u16,
    pub mqtt_port: u16,
    options: Options,
    /// Read once the coordinator has made it.
    pub api_token: String,
}

impl Coordinator {
    /// Starts a coordinator and waits for its API.
    pub fn start(options: Options) -> Coordinator {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut coordinator = Coordinator {
            dir,
            child: None,
            api_port: free_port(),
            mqtt_port: free_port(),
            options,
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

    /// The coordinator's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn spawn(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("coordinator.log"))
            .expect("log");
        let mut command = match &self.options.program {
            Some(program) => Command::new(program),
            None => {
                let mut bramble = Command::new(binary("bramble"));
                bramble.arg("coordinator");
                bramble
            }
        };
        command
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen", &format!("0.0.0.0:{}", self.api_port)])
            .args(["--mqtt-listen", &format!("0.0.0.0:{}", self.mqtt_port)])
            .args(["--node-grace", &self.options.node_grace])
            .arg(format!("--pin-images={}", self.options.pin_images));
        if let Some(broker) = &self.options.broker {
            command.args(["--broker", broker]);
        }
        command.args(&self.options.extra);
        let child = command.stdout(Stdio::null()).stderr(log).spawn().expect("start the coordinator");
        self.child = Some(child);
    }

    /// SIGTERM, as a service manager stops it, and its end.
    pub fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait();
        }
    }

    /// kill -9, then the same command again on the same data directory and ports.
    pub fn kill_and_restart(&mut self) {
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

    pub fn secret(&self, name: &str) -> String {
        fs::read_to_string(self.dir.path().join("data").join(name)).expect("token file").trim().to_owned()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("coordinator.log")).unwrap_or_default()
    }

    /// `bramble ARGS` against this coordinator with `token`, and no config file.
    pub fn command(&self, args: &[&str], token: &str) -> Command {
        let mut command = Command::new(binary("bramble"));
        command
            .args(args)
            .env("BRAMBLE_SERVER", format!("http://127.0.0.1:{}", self.api_port))
            .env("BRAMBLE_TOKEN", token)
            .env("BRAMBLE_CONFIG", "/nonexistent");
        command
    }

    /// `bramble ARGS` against this coordinator; panics with its output if it fails.
    pub fn bramble(&self, args: &[&str]) -> String {
        let output = run(&mut self.command(args, &self.api_token));
        let (out, err) = text(&output);
        assert!(
            output.status.success(),
            "bramble {args:?} failed: {err}\n{out}\ncoordinator:\n{}",
            self.log()
        );
        out
    }

    /// `bramble get KIND -A -o json`: the objects of every namespace.
    pub fn items(&self, kind: &str) -> Vec<Value> {
        let list: Value =
            serde_json::from_str(&self.bramble(&["get", kind, "-A", "-o", "json"])).expect("json");
        list["items"].as_array().cloned().unwrap_or_default()
    }

    pub fn pods(&self) -> Vec<Value> {
        self.items("pods")
    }

    /// Running pods per board, if every pod is Running and Ready.
    pub fn running_per_board(&self) -> Option<BTreeMap<String, usize>> {
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
#[derive(Debug)]
pub struct Mosquitto {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

impl Mosquitto {
    pub fn start(port: u16, coordinator: &Coordinator, boards: &[&str]) -> Mosquitto {
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

    pub fn spawn(&mut self) {
        let log = self.dir.path().join("mosquitto.log");
        let child = spawn_logged(
            Command::new("mosquitto").arg("-c").arg(self.dir.path().join("mosquitto.conf")),
            &log,
        );
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
    pub fn kill_and_restart(&mut self) {
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
#[derive(Debug)]
pub struct Board {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub netns: Netns,
    /// More `bramble-agent run` arguments (`--insecure-registry …`).
    pub extra_args: Vec<String>,
    child: Option<Child>,
}

impl Board {
    pub fn new(index: u32) -> Board {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(dir.path().join("manifests")).expect("manifests dir");
        let board = Board {
            name: format!("b{}-{index}", std::process::id()),
            dir,
            netns: Netns::new(index),
            extra_args: Vec::new(),
            child: None,
        };
        import_busybox(&binary("bramble-agent"), &board.state(), &[]);
        board
    }

    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Starts the agent, joining the broker on `mqtt_port` through the board's veth, with
    /// health every 500 ms.
    pub fn start(&mut self, mqtt_port: u16, token: &str) {
        self.start_with(mqtt_port, token, 500);
    }

    /// Starts the agent with health every `health_interval_ms`.
    pub fn start_with(&mut self, mqtt_port: u16, token: &str, health_interval_ms: u64) {
        // nsenter joins only the network namespace: `ip netns exec` would also remount /sys,
        // hiding the host's cgroup hierarchies from the agent.
        let mut nsenter = Command::new("nsenter");
        nsenter.arg(format!("--net=/run/netns/{}", self.netns.name)).arg("--").arg(binary("bramble-agent"));
        let server = format!("mqtt://{}:{mqtt_port}", self.netns.host_ip);
        let health = health_interval_ms.to_string();
        let mut extra = vec![
            "--server",
            &server,
            "--token",
            token,
            "--name",
            &self.name,
            "--health-interval-ms",
            &health,
        ];
        extra.extend(self.extra_args.iter().map(String::as_str));
        self.child = Some(spawn_agent_run(nsenter, self.dir.path(), &extra));
    }

    /// SIGKILL to the agent only: its containers keep running.
    pub fn kill_agent(&mut self) {
        kill_child(&mut self.child);
    }

    /// Containers running on this board now (their shims' records).
    pub fn running_containers(&self) -> usize {
        self.container_pids().len()
    }

    /// The process of every container running on this board, by container id.
    pub fn container_pids(&self) -> BTreeMap<String, i32> {
        shims(&self.run_dir())
            .into_iter()
            .filter(|s| alive(s.container_pid.into()))
            .map(|s| (s.id, s.container_pid))
            .collect()
    }

    /// Cuts (`false`) or restores (`true`) the board's link: the host end of its veth goes
    /// down, so the board falls silent without closing its connection, as on a Wi-Fi loss.
    pub fn set_link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        let output = run(Command::new("ip").args(["link", "set", &self.netns.host_if, state]));
        assert!(output.status.success(), "ip link set {state}: {:?}", text(&output));
    }

    /// Starts a container by hand with the board's runtime (`bramble-agent debug run`), named
    /// like a pod's container but in no assignment; returns its id.
    pub fn start_stray_container(&self) -> String {
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
        // An agent this test did not start itself (`coordinator --with-agent`).
        let _ = Command::new("pkill")
            .args(["-9", "-f", "--"])
            .arg(format!("--run-dir[= ]{}", self.run_dir().display()))
            .status();
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

/// Waits for `check`; on timeout the failure shows the coordinator's log.
pub fn until<T>(coordinator: &Coordinator, what: &str, secs: u64, check: impl FnMut() -> Option<T>) -> T {
    wait_until(what, Duration::from_secs(secs), Duration::from_millis(300), check, || {
        let pods = run(&mut coordinator.command(&["get", "pods", "-o", "wide"], &coordinator.api_token));
        format!("pods:\n{}\ncoordinator log:\n{}", text(&pods).0, coordinator.log())
    })
}

pub fn counts(map: &BTreeMap<String, usize>) -> Vec<usize> {
    map.values().copied().collect()
}

/// The process of every container running in the cluster, by board and container id.
pub fn container_pids(boards: &[Board]) -> BTreeMap<String, BTreeMap<String, i32>> {
    boards.iter().map(|b| (b.name.clone(), b.container_pids())).collect()
}

/// Waits until every board in `names` is listed Ready.
/// Boards numbered `indices`, joined to the coordinator's embedded broker with its join token,
/// once all of them are Ready.
pub fn join_boards(coordinator: &Coordinator, indices: std::ops::RangeInclusive<u32>) -> Vec<Board> {
    let join = coordinator.secret("join-token");
    let mut boards: Vec<Board> = indices.map(Board::new).collect();
    for board in &mut boards {
        board.start(coordinator.mqtt_port, &join);
    }
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();
    until_ready(coordinator, &names, &format!("{} boards Ready", names.len()));
    boards
}

/// A coordinator that pins images to digests and boards numbered `indices` that pull them, all
/// reaching the registry on `registry_port` of this machine at the host side of the first
/// board's link, `HOST:PORT` (returned, to name images by); once every board is Ready.
pub fn join_boards_with_registry(
    registry_port: u16,
    indices: std::ops::RangeInclusive<u32>,
) -> (Coordinator, Vec<Board>, String) {
    let mut boards: Vec<Board> = indices.map(Board::new).collect();
    let host = format!("{}:{registry_port}", boards[0].netns.host_ip);
    let insecure = vec!["--insecure-registry".to_owned(), host.clone()];
    let coordinator =
        Coordinator::start(Options { pin_images: true, extra: insecure.clone(), ..Options::default() });
    let join = coordinator.secret("join-token");
    for board in &mut boards {
        board.extra_args = insecure.clone();
        board.start(coordinator.mqtt_port, &join);
    }
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();
    until_ready(&coordinator, &names, &format!("{} boards Ready", names.len()));
    (coordinator, boards, host)
}

pub fn until_ready(coordinator: &Coordinator, names: &[String], what: &str) {
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
pub fn same_pods_after_restart(
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
pub fn connections(boards: &[Board]) -> Vec<usize> {
    boards.iter().map(|b| b.log().matches("connected to mqtt://").count()).collect()
}

/// Deletes the test Deployment, waits until no board runs a container, and checks that no
/// agent panicked.
pub fn delete_web_and_check_logs(coordinator: &Coordinator, boards: &[Board]) {
    coordinator.bramble(&["delete", "deployment/web"]);
    until(coordinator, "no containers left", 30, || {
        (boards.iter().map(Board::running_containers).sum::<usize>() == 0).then_some(())
    });
    for board in boards {
        assert!(!board.log().contains("panicked"), "{}", board.log());
    }
}
