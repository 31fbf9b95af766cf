//! Scheduler throughput: 10,000 pods (200 Deployments of 50 replicas) placed on 1,000 boards of
//! mixed Raspberry Pi kinds, once with `Spread` and once with `Pack`; prints the median of 5
//! runs each. Goal: < 100 ms. `cargo bench -p bramble-coordinator --bench scheduler`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bramble_common::objects::Protocol;
use bramble_coordinator::scheduler::{
    ARCH_LABEL, Board, Decision, HOSTNAME_LABEL, HostPort, Placement, PodRequest, Resources, schedule,
};

const MI: u64 = 1 << 20;

fn boards(n: usize) -> Vec<Board> {
    // (memory, arch): Zero 2, Pi 3, Pi 4 4 GB, Pi 5 8 GB; every tenth a 32-bit board.
    let kinds = [(512 * MI, "arm64"), (1024 * MI, "arm64"), (4096 * MI, "arm64"), (8192 * MI, "arm64")];
    (0..n)
        .map(|i| {
            let (memory, arch) = kinds[i % kinds.len()];
            let arch = if i % 10 == 9 { "arm" } else { arch };
            let name = format!("pi-{i:04}");
            Board {
                labels: BTreeMap::from([
                    (ARCH_LABEL.to_owned(), arch.to_owned()),
                    (HOSTNAME_LABEL.to_owned(), name.clone()),
                ]),
                name,
                ready: i % 97 != 0,
                allocatable: Resources { cpu_millis: 3900, memory_bytes: memory - 128 * MI },
                ..Board::default()
            }
        })
        .collect()
}

fn pods(deployments: usize, replicas: usize) -> Vec<PodRequest> {
    let mut pods = Vec::with_capacity(deployments * replicas);
    for d in 0..deployments {
        for r in 0..replicas {
            let mut pod = PodRequest {
                key: format!("default/app-{d:03}-{r:02}"),
                owner: Some(format!("default/app-{d:03}")),
                requests: Resources {
                    cpu_millis: 50 + (d as u64 % 4) * 50,
                    memory_bytes: (16 + (d as u64 % 8) * 16) * MI,
                },
                ..PodRequest::default()
            };
            if d % 5 == 0 {
                pod.node_selector.insert(ARCH_LABEL.to_owned(), "arm64".to_owned());
            }
            if d % 50 == 0 {
                pod.host_ports.push(HostPort { protocol: Protocol::Tcp, port: 8000 + d as u16 });
            }
            pods.push(pod);
        }
    }
    pods
}

fn main() {
    let boards = boards(1000);
    let pods = pods(200, 50);
    println!(
        "scheduler: {} pods ({} Deployments) on {} boards, median of 5 runs",
        pods.len(),
        200,
        boards.len()
    );
    for placement in [Placement::Spread, Placement::Pack] {
        let mut times: Vec<Duration> = Vec::new();
        let mut decisions = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            decisions = schedule(&pods, &boards, placement);
            times.push(start.elapsed());
        }
        times.sort();
        let placed = decisions.iter().filter(|d| matches!(d, Decision::Bind { .. })).count();
        let mut per_board: BTreeMap<&str, usize> = BTreeMap::new();
        for d in &decisions {
            if let Decision::Bind { board, .. } = d {
                *per_board.entry(board.as_str()).or_default() += 1;
            }
        }
        println!(
            "  {placement:?}: {:.1} ms (goal < 100 ms); {placed} placed, {} pending; {} boards used, {}..{} pods each",
            times[2].as_secs_f64() * 1000.0,
            decisions.len() - placed,
            per_board.len(),
            per_board.values().min().copied().unwrap_or(0),
            per_board.values().max().copied().unwrap_or(0),
        );
    }
}
