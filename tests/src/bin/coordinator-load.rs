//! Load tool and benchmark: N simulated boards (default 1,000) speak the real wire protocol to a
//! real coordinator over MQTT (its embedded broker), each sending health at 1 Hz, and the
//! coordinator's CPU and memory are measured while it keeps them. Run by
//! `bench/coordinator-load.sh`, as root.
//!
//! A simulated board does what `bramble-agent run --server` does on the wire: it connects with
//! its name and the join token and a retained last will, subscribes to its desired pods, then
//! publishes itself online (retained); it publishes health every second; and on every desired
//! set it publishes its observed pods, all Running and Ready (it starts no container).
//!
//! Usage: coordinator-load COORDINATOR_BINARY [BOARDS] [PODS] [SECONDS]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bramble_common::wire::{
    self, Channel, DesiredPods, NodeHealth, NodeStatus, ObservedPods, PodPhase, PodReport, Topics,
};
use bramble_coordinator::command::raise_open_files_limit;
use bramble_tests::cluster::{Coordinator, Options};
use bramble_tests::wait_until;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};

/// What the simulated boards did, for the report.
#[derive(Debug, Default)]
struct Counters {
    connected: AtomicU64,
    /// Health messages handed to the client (queued; sent unless the connection drops).
    health_sent: AtomicU64,
    desired_received: AtomicU64,
    observed_sent: AtomicU64,
}

/// CPU time (user + system) of process `pid` in seconds, and its resident and peak resident
/// memory in bytes, from /proc.
fn usage(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, f)| f.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5); index 0 here is field 3.
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().unwrap_or(100) as f64;
    let cpu = (ticks(11) + ticks(12)) / hz;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (cpu, kb("VmRSS:"), kb("VmHWM:"))
}

/// One simulated board until the process ends.
async fn board(name: String, port: u16, token: String, topics: Topics, counters: Arc<Counters>) {
    let topic = |channel| topics.node(&name, channel).expect("a valid node name");
    let (status, desired, health, observed) =
        (topic(Channel::Status), topic(Channel::Desired), topic(Channel::Health), topic(Channel::Observed));
    let announce = |online| {
        wire::encode(&NodeStatus {
            node: name.clone(),
            online,
            agent_version: "load".into(),
            arch: "arm64".into(),
            labels: BTreeMap::new(),
        })
    };
    let mut options = MqttOptions::new(format!("bramble-agent-{name}"), "127.0.0.1", port);
    options.set_credentials(name.clone(), token);
    options.set_keep_alive(Duration::from_secs(5));
    options.set_max_packet_size(wire::MAX_PACKET_BYTES, wire::MAX_PACKET_BYTES);
    options.set_last_will(LastWill::new(status.clone(), announce(false), QoS::AtLeastOnce, true));
    let (client, mut eventloop) = AsyncClient::new(options, 16);

    let health_client = client.clone();
    let (health_name, health_counters) = (name.clone(), Arc::clone(&counters));
    tokio::spawn(async move {
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let sample = NodeHealth {
                node: health_name.clone(),
                uptime_seconds: started.elapsed().as_secs(),
                cpus: 4,
                cpu_percent: 12.5,
                memory_total_bytes: 4 << 30,
                memory_available_bytes: 3 << 30,
                disk_total_bytes: 32 << 30,
                disk_available_bytes: 20 << 30,
                temperature_celsius: Some(48.5),
                pods_running: 3,
                pods_total: 3,
            };
            if health_client.try_publish(&health, QoS::AtLeastOnce, false, wire::encode(&sample)).is_ok() {
                health_counters.health_sent.fetch_add(1, Ordering::Relaxed);
            }
        }
    });

    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                counters.connected.fetch_add(1, Ordering::Relaxed);
                // try_: this task polls the event loop, so it must never wait on its queue.
                let _ = client.try_subscribe(&desired, QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                let _ = client.try_publish(&status, QoS::AtLeastOnce, true, announce(true));
            }
            Ok(Event::Incoming(Packet::Publish(p))) if p.topic == desired => {
                counters.desired_received.fetch_add(1, Ordering::Relaxed);
                let Ok(set) = wire::decode::<DesiredPods>(&p.payload) else { continue };
                let pods = set
                    .pods
                    .iter()
                    .map(|a| PodReport {
                        namespace: a.namespace.clone(),
                        name: a.name.clone(),
                        uid: a.uid.clone(),
                        phase: PodPhase::Running,
                        ready: true,
                        restarts: 0,
                        last_exit_code: None,
                        reason: None,
                    })
                    .collect();
                let report = ObservedPods { node: name.clone(), generation: set.generation, pods };
                if client.try_publish(&observed, QoS::AtLeastOnce, true, wire::encode(&report)).is_ok() {
                    counters.observed_sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
}

fn deployments(count: usize, replicas: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app{i}\nspec:\n  replicas: {replicas}\n  \
                 selector:\n    matchLabels: {{app: app{i}}}\n  template:\n    metadata:\n      labels: {{app: app{i}}}\n    \
                 spec:\n      containers:\n      - name: c\n        image: busybox:latest\n        resources:\n          \
                 requests: {{cpu: 50m, memory: 32Mi}}\n---\n"
            )
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let exe =
        args.get(1).expect("usage: coordinator-load COORDINATOR_BINARY [BOARDS] [PODS] [SECONDS]").clone();
    let arg = |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (boards, pods, seconds) = (arg(2, 1000), arg(3, 3000), arg(4, 30));
    raise_open_files_limit();
    let coordinator = Coordinator::start(Options {
        program: Some(exe.into()),
        node_grace: "10s".into(),
        ..Options::default()
    });
    let join = coordinator.secret("join-token");
    let topics = Topics::new(wire::DEFAULT_PREFIX).expect("the default prefix");
    let counters = Arc::new(Counters::default());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");

    let (_, rss_idle, _) = usage(coordinator.pid().unwrap_or(0));
    let connecting = Instant::now();
    runtime.block_on(async {
        for i in 0..boards {
            let name = format!("sim-{i:04}");
            tokio::spawn(board(
                name,
                coordinator.mqtt_port,
                join.clone(),
                topics.clone(),
                Arc::clone(&counters),
            ));
            // 200 new connections a second, as boards coming up after a power cut might.
            if i % 20 == 19 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    let ready = |coordinator: &Coordinator| {
        coordinator.items("nodes").iter().filter(|n| n["status"]["conditions"][0]["status"] == "True").count()
    };
    wait_until(
        "every simulated board Ready",
        Duration::from_secs(120),
        Duration::from_secs(1),
        || (ready(&coordinator) == boards).then_some(()),
        || coordinator.log(),
    );
    let joined = connecting.elapsed();
    eprintln!("{boards} boards Ready in {:.1} s", joined.as_secs_f64());

    // Pods: 10 Deployments sharing `pods` replicas.
    let manifest = coordinator.dir.path().join("apps.yaml");
    std::fs::write(&manifest, deployments(10, pods / 10)).expect("manifest");
    let placing = Instant::now();
    coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    let phases = |coordinator: &Coordinator| {
        let mut phases: BTreeMap<String, usize> = BTreeMap::new();
        for pod in coordinator.items("pods") {
            *phases.entry(pod["status"]["phase"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        }
        phases
    };
    wait_until(
        &format!("{pods} pods Running"),
        Duration::from_secs(120),
        Duration::from_secs(1),
        || (phases(&coordinator).get("Running") == Some(&pods)).then_some(()),
        || format!("phases: {:?}\n{:?}", phases(&coordinator), counters),
    );
    eprintln!("{pods} pods Running in {:.1} s", placing.elapsed().as_secs_f64());

    // Steady state: health from every board at 1 Hz.
    std::thread::sleep(Duration::from_secs(5));
    let (cpu_before, _, _) = usage(coordinator.pid().unwrap_or(0));
    let health_before = counters.health_sent.load(Ordering::Relaxed);
    let window = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds as u64));
    let (cpu_after, rss, peak) = usage(coordinator.pid().unwrap_or(0));
    let elapsed = window.elapsed().as_secs_f64();
    let health_rate = (counters.health_sent.load(Ordering::Relaxed) - health_before) as f64 / elapsed;
    let cpu_percent = (cpu_after - cpu_before) / elapsed * 100.0;
    let still_ready = ready(&coordinator);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);

    println!();
    println!("Coordinator under {boards} simulated boards (embedded broker, real wire protocol over MQTT)");
    println!("  boards connected            {}", counters.connected.load(Ordering::Relaxed));
    println!("  boards Ready after window   {still_ready}");
    println!("  pods Running                {pods} (10 Deployments)");
    println!("  health messages/s           {health_rate:.0}");
    println!("  desired sets received       {}", counters.desired_received.load(Ordering::Relaxed));
    println!("  observed sets sent          {}", counters.observed_sent.load(Ordering::Relaxed));
    println!("  measured over               {elapsed:.1} s of steady state");
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "  CPU                         {cpu_percent:.1} % of one core   (goal < 25 %: {})",
        verdict(cpu_percent < 25.0)
    );
    println!(
        "  RSS                         {:.1} MiB   (goal < 150 MB: {})",
        mib(rss),
        verdict(rss < 150_000_000)
    );
    println!(
        "  peak RSS                    {:.1} MiB   (idle before the boards: {:.1} MiB)",
        mib(peak),
        mib(rss_idle)
    );
    drop(runtime);
}
