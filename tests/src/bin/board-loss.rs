//! Benchmark: the time from losing a board to all of its replicas Running elsewhere, on a real
//! cluster (`bramble_tests::cluster`: a coordinator with its embedded broker, three agents in
//! their own network namespaces, real containers), with the coordinator's default node grace
//! and with `--node-grace 2s`. Run by `bench/board-loss.sh`, as root.
//!
//! Two ways to lose a board:
//! - power cut: kill -9 of the agent and of every container on the board; the agent's TCP
//!   connection closes, so the broker sends its last will at once;
//! - cut link: the host end of the board's veth goes down; nothing is closed, the board just
//!   falls silent, and only missing health tells (the grace).
//!
//! The clock starts just before the loss and stops at the first poll (every 50 ms) where the
//! coordinator reports all 6 replicas Running and Ready, none on the lost board.

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

use bramble_tests::cluster::{Board, Coordinator, DEPLOYMENT, Options, until, until_ready};
use bramble_tests::{kill_containers, require_root, require_tool};

const REPLICAS: usize = 6;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    PowerCut,
    CutLink,
}

impl Loss {
    fn describe(self) -> &'static str {
        match self {
            Loss::PowerCut => "power cut (kill -9 agent + containers)",
            Loss::CutLink => "cut link (veth down)",
        }
    }
}

struct Setting {
    name: &'static str,
    node_grace: &'static str,
    health_interval_ms: u64,
    goal_s: f64,
}

fn main() {
    require_root();
    require_tool("ip");
    require_tool("nsenter");
    let runs: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let settings = [
        Setting { name: "default", node_grace: "10s", health_interval_ms: 5000, goal_s: 15.0 },
        Setting { name: "--node-grace 2s", node_grace: "2s", health_interval_ms: 500, goal_s: 5.0 },
    ];
    let mut rows = Vec::new();
    for setting in &settings {
        let times = measure(setting, runs);
        for loss in [Loss::PowerCut, Loss::CutLink] {
            let mut secs: Vec<f64> = times.iter().filter(|(l, _)| *l == loss).map(|(_, s)| *s).collect();
            secs.sort_by(f64::total_cmp);
            rows.push((setting, loss, secs));
        }
    }

    println!();
    println!(
        "Board loss -> all its replicas Running elsewhere (3 boards, {REPLICAS} replicas, {runs} runs each)"
    );
    println!(
        "{:<17} {:<9} {:<8} {:<40} {:>8} {:>7} {:>7} {:>6}",
        "setting", "grace", "health", "loss", "median", "min", "max", "goal"
    );
    for (setting, loss, secs) in &rows {
        let median = secs.get(secs.len() / 2).copied().unwrap_or(f64::NAN);
        let (min, max) =
            (secs.first().copied().unwrap_or(f64::NAN), secs.last().copied().unwrap_or(f64::NAN));
        let verdict = if max <= setting.goal_s { "met" } else { "MISSED" };
        println!(
            "{:<17} {:<9} {:<8} {:<40} {:>7.2}s {:>6.2}s {:>6.2}s {:>4}s {verdict}",
            setting.name,
            setting.node_grace,
            format!("{}ms", setting.health_interval_ms),
            loss.describe(),
            median,
            min,
            max,
            setting.goal_s
        );
    }
    println!(
        "Published defaults of others (not run here): Kubernetes ~6 min (node-monitor-grace-period 40 s, then \
         5 min eviction), Docker Swarm ~15 s, Nomad ~20 s."
    );
}

/// One cluster for `setting`; each run loses the board with the most replicas, times the
/// move, then heals it. Returns (loss, seconds) per run.
fn measure(setting: &Setting, runs: usize) -> Vec<(Loss, f64)> {
    eprintln!(
        "== {} (--node-grace {}, health every {} ms)",
        setting.name, setting.node_grace, setting.health_interval_ms
    );
    let coordinator =
        Coordinator::start(Options { node_grace: setting.node_grace.into(), ..Options::default() });
    let join = coordinator.secret("join-token");
    let mut boards: Vec<Board> = (1..=3).map(Board::new).collect();
    for board in &mut boards {
        board.start_with(coordinator.mqtt_port, &join, setting.health_interval_ms);
    }
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();
    until_ready(&coordinator, &names, "three boards Ready");
    let manifest = coordinator.dir.path().join("web.yaml");
    fs::write(&manifest, DEPLOYMENT).expect("manifest");
    coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    until(&coordinator, "6 replicas Running", 60, || all_running(&coordinator));

    let mut times = Vec::new();
    for run in 0..runs {
        for loss in [Loss::PowerCut, Loss::CutLink] {
            let per_board = until(&coordinator, "6 replicas Running", 60, || all_running(&coordinator));
            let (lost_name, _) = per_board.iter().max_by_key(|(_, n)| **n).expect("a board with replicas");
            let lost = boards.iter().position(|b| &b.name == lost_name).expect("a known board");
            let started = Instant::now();
            match loss {
                Loss::PowerCut => {
                    boards[lost].kill_agent();
                    kill_containers(&boards[lost].run_dir());
                }
                Loss::CutLink => boards[lost].set_link(false),
            }
            let lost_name = boards[lost].name.clone();
            loop {
                if all_running(&coordinator).is_some_and(|m| !m.contains_key(&lost_name)) {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(120),
                    "replicas not moved in 120 s:\n{}",
                    coordinator.log()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            let secs = started.elapsed().as_secs_f64();
            eprintln!("run {}: {}: {secs:.2} s", run + 1, loss.describe());
            times.push((loss, secs));

            // Heal: the board comes back, gets its empty assignment and is Ready again.
            match loss {
                Loss::PowerCut => {
                    boards[lost].start_with(coordinator.mqtt_port, &join, setting.health_interval_ms)
                }
                Loss::CutLink => boards[lost].set_link(true),
            }
            // After a cut link it must stop the replicas that now run elsewhere (after a power
            // cut it has none left, and being Ready again is the heal).
            if loss == Loss::CutLink {
                until(&coordinator, "the healed board's old replicas stopped", 90, || {
                    (boards[lost].running_containers() == 0).then_some(())
                });
            }
            until_ready(&coordinator, &names, "every board Ready after the heal");
        }
    }
    times
}

/// Replicas per board, once all of them are Running and Ready.
fn all_running(coordinator: &Coordinator) -> Option<BTreeMap<String, usize>> {
    coordinator.running_per_board().filter(|m| m.values().sum::<usize>() == REPLICAS)
}
