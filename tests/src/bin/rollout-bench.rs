//! Benchmark (issue "Immutable images…", Must show 2): on a real cluster on this machine (a
//! coordinator, three boards in their own network namespaces, Debian's docker-registry), the
//! time of a rolling update of 6 replicas over 3 boards (Kubernetes' default 25 %/25 %) from one
//! pinned image to another, and the bytes each board pulls for the new image, which shares its
//! base layer with the one running: only the new layer travels. The whole image's size is
//! printed beside it.
//!
//! Usage: rollout-bench [RUNS] (default 3), as root, after `cargo build --workspace`.

use std::time::{Duration, Instant};

use bramble_tests::busybox_layout;
use bramble_tests::cluster::{Board, join_boards_with_registry, until};
use bramble_tests::registry::{Registry, random_bytes};

/// The size of the layer the new image adds.
const NEW_LAYER_BYTES: usize = 4 << 20;

fn deployment(image: &str, version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: {version}
spec:
  replicas: 6
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: {image}
        command: [sleep, \"100000\"]
        env: [{{name: VERSION, value: {version}}}]
        resources:
          requests: {{cpu: 10m, memory: 8Mi}}
"
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn main() {
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let registry = Registry::start();
    registry.push(&format!("oci:{}:latest", busybox_layout().display()), "app:1");
    registry.push_with_file("app:1", "app:2", "/data", &random_bytes(NEW_LAYER_BYTES));
    let (coordinator, boards, host) = join_boards_with_registry(registry.port, 61..=63);

    let apply = |version: &str| {
        let manifest = coordinator.dir.path().join(format!("web-{version}.yaml"));
        let image = format!("{host}/app:{}", &version[1..]);
        std::fs::write(&manifest, deployment(&image, version)).expect("manifest");
        coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    };
    // Every pod of the wanted version Running and Ready, and no other.
    let rolled_out = |version: &str| {
        let pods = coordinator.pods();
        let done = pods.len() == 6
            && pods.iter().all(|p| {
                p["status"]["phase"] == "Running"
                    && p["status"]["conditions"][0]["status"] == "True"
                    && p["spec"]["containers"][0]["env"][0]["value"] == version
            });
        done.then_some(())
    };
    apply("v1");
    until(&coordinator, "6 replicas of v1 Running", 120, || rolled_out("v1"));

    let mut seconds = Vec::new();
    for run in 0..runs {
        // v1 → v2 → v1 …: the first v2 pulls; later ones find both images on the boards.
        let version = if run % 2 == 0 { "v2" } else { "v1" };
        let started = Instant::now();
        apply(version);
        until(&coordinator, &format!("the rollout to {version}"), 180, || rolled_out(version));
        let elapsed = started.elapsed().as_secs_f64();
        println!("run {}: rolling update to {version}: {elapsed:.2} s", run + 1);
        seconds.push(elapsed);
        std::thread::sleep(Duration::from_secs(1));
    }

    // What each board pulled for app:2 (its agent logs the exact bytes).
    let pulled: Vec<u64> = boards
        .iter()
        .filter_map(|b| {
            let log = b.log();
            let line = log.lines().find(|l| l.contains("pulled image") && l.contains("/app:2"))?.to_owned();
            line.split(" over the network (").nth(1)?.split(" bytes").next()?.parse().ok()
        })
        .collect();
    let (_, digest) = registry.manifest("app:2");
    let (manifest, _) = registry.manifest(&format!("app@{digest}"));
    let whole: u64 =
        manifest["layers"].as_array().into_iter().flatten().filter_map(|l| l["size"].as_u64()).sum();
    let new_layer =
        manifest["layers"].as_array().and_then(|l| l.last()).and_then(|l| l["size"].as_u64()).unwrap_or(0);

    println!();
    println!(
        "Rolling update of 6 replicas over 3 boards (RollingUpdate 25 %/25 %, pinned digests), {runs} runs"
    );
    println!(
        "  median {:.2} s, min {:.2} s, max {:.2} s",
        median(&mut seconds.clone()),
        seconds.iter().copied().fold(f64::INFINITY, f64::min),
        seconds.iter().copied().fold(0.0, f64::max)
    );
    println!("Bytes pulled per board for app:2, which shares busybox's layer with app:1");
    for (board, bytes) in boards.iter().zip(&pulled) {
        println!("  {}: {bytes} bytes", board.name);
    }
    println!("  the whole image's layers: {whole} bytes; its new layer alone: {new_layer} bytes");
    assert_eq!(pulled.len(), 3, "every board pulled app:2 once");
    coordinator.bramble(&["delete", "deployment/web"]);
    until(&coordinator, "no containers left", 60, || {
        (boards.iter().map(Board::running_containers).sum::<usize>() == 0).then_some(())
    });
}
