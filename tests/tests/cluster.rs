//! A cluster end to end: a real coordinator (`bramble coordinator`, embedded MQTT broker or
//! Mosquitto), three real agents as separate processes, each in its own network namespace with
//! its own address (veth to the host), real containers, and the real `bramble` client. The
//! harness is `bramble_tests::cluster`.

use std::fs;
use std::process::Command;

use bramble_tests::cluster::{
    Board, Coordinator, DEPLOYMENT, Mosquitto, Options, connections, container_pids, counts,
    delete_web_and_check_logs, join_boards, same_pods_after_restart, until, until_ready,
};
use bramble_tests::{free_port, http_get, kill_9, require_root, require_tool, run, text};

#[test]
fn three_boards_spread_scale_heal_and_refuse_strangers() {
    require_root();
    require_tool("ip");
    require_tool("nsenter");
    let mut coordinator = Coordinator::start(Options::default());
    let join = coordinator.secret("join-token");
    let mut boards = join_boards(&coordinator, 1..=3);
    let names: Vec<String> = boards.iter().map(|b| b.name.clone()).collect();

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

    // Drain: board 2 is cordoned and its replicas are started on the others.
    let drained = names[1].clone();
    let out = coordinator.bramble(&["drain", &drained]);
    assert!(
        out.contains(&format!("node/{drained} cordoned")) && out.contains(&format!("node/{drained} drained")),
        "{out}"
    );
    until(&coordinator, "6 replicas Running off the drained board", 40, || {
        coordinator
            .running_per_board()
            .filter(|m| !m.contains_key(&drained) && m.values().sum::<usize>() == 6)
    });
    until(&coordinator, "the drained board's containers stopped", 40, || {
        (boards[1].running_containers() == 0).then_some(())
    });
    assert!(
        coordinator.bramble(&["get", "nodes"]).contains("SchedulingDisabled"),
        "a drained board stays cordoned"
    );
    coordinator.bramble(&["uncordon", &drained]);

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

    logs_and_exec_reach_the_board(&coordinator, &boards);
    delete_web_and_check_logs(&coordinator, &boards);
}

/// A pod that writes a few lines, then a tick a second.
const TALKER: &str = "apiVersion: v1
kind: Pod
metadata:
  name: talker
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox:latest
    command: [sh, -c, 'echo line-1; echo line-2; while true; do sleep 1; echo tick; done']
";

/// `bramble logs` and `bramble exec` go through the coordinator and MQTT to the pod's board
/// (in its own network namespace) and back.
fn logs_and_exec_reach_the_board(coordinator: &Coordinator, boards: &[Board]) {
    let manifest = coordinator.dir.path().join("talker.yaml");
    fs::write(&manifest, TALKER).expect("manifest");
    coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    let node = until(coordinator, "the talker Running", 30, || {
        let pod = coordinator.items("pods").into_iter().find(|p| p["metadata"]["name"] == "talker")?;
        (pod["status"]["phase"] == "Running").then(|| pod["spec"]["nodeName"].as_str().map(str::to_owned))?
    });
    let board = boards.iter().find(|b| b.name == node).expect("the talker's board is one of ours");

    let logs = until(coordinator, "the talker's first lines in its logs", 20, || {
        let out = coordinator.bramble(&["logs", "talker"]);
        out.starts_with("line-1\nline-2\n").then_some(out)
    });
    assert!(logs.lines().skip(2).all(|l| l == "tick"), "{logs}");
    let last = coordinator.bramble(&["logs", "--tail", "1", "talker"]);
    assert_eq!(last.lines().count(), 1, "{last}");

    // exec: stdout and stderr apart, the exit code passed on.
    let exec = run(&mut coordinator.command(
        &["exec", "talker", "--", "sh", "-c", "echo out; echo err >&2; exit 3"],
        &coordinator.api_token,
    ));
    assert_eq!(exec.status.code(), Some(3), "{:?}", text(&exec));
    assert_eq!(text(&exec), ("out\n".to_owned(), "err\n".to_owned()));
    assert!(board.log().contains("exec in pod default/talker"), "exec is logged on the board");
    // One of a Deployment's pods, as kubectl picks one.
    let hostname = coordinator.bramble(&["exec", "deployment/web", "--", "cat", "/proc/1/cmdline"]);
    assert!(hostname.starts_with("sleep"), "{hostname:?}");

    // logs -f streams what is written after it began; when the client goes, the board stops.
    let mut follow = coordinator.command(&["logs", "-f", "--tail", "0", "talker"], &coordinator.api_token);
    let mut child = follow.stdout(std::process::Stdio::piped()).spawn().expect("bramble logs -f");
    let stdout = child.stdout.take().expect("piped");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().and_then(Result::ok);
    assert_eq!(first.as_deref(), Some("tick"), "a new line arrives through logs -f");
    let _ = child.kill();
    let _ = child.wait();
    until(coordinator, "the board told that the follow ended", 10, || {
        board.log().contains("cancelled").then_some(())
    });

    // Errors name what is wrong.
    let missing = run(&mut coordinator.command(&["logs", "nosuch"], &coordinator.api_token));
    assert!(text(&missing).1.contains("pod default/nosuch not found"), "{:?}", text(&missing));
    let wrong = run(&mut coordinator.command(&["logs", "-c", "other", "talker"], &coordinator.api_token));
    assert!(text(&wrong).1.contains("has no container \"other\""), "{:?}", text(&wrong));

    coordinator.bramble(&["delete", "pod", "talker"]);
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
    let mut coordinator = Coordinator::start(Options {
        broker: Some(format!("mqtt://127.0.0.1:{broker_port}")),
        ..Options::default()
    });
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
    // Requests and their answers pass the ACL too.
    let exec = coordinator.bramble(&["exec", "deployment/web", "--", "echo", "through mosquitto"]);
    assert_eq!(exec, "through mosquitto\n");

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

    delete_web_and_check_logs(&coordinator, &boards);
}

/// `bramble coordinator --with-agent`: one command, a one-board cluster. The agent it starts
/// joins with the join token, runs what is applied, is started again when it dies (its pods go
/// on), and is stopped with the coordinator.
#[test]
fn coordinator_with_agent_is_a_one_board_cluster() {
    require_root();
    let board = Board::new(9);
    let agent_arg = |flag: &str, value: &str| format!("--agent-arg=--{flag}={value}");
    let extra = [
        "--with-agent".to_owned(),
        agent_arg("state-dir", &board.state().display().to_string()),
        agent_arg("run-dir", &board.run_dir().display().to_string()),
        agent_arg("manifests", &board.dir.path().join("manifests").display().to_string()),
        agent_arg("name", &board.name),
        agent_arg("health-interval-ms", "500"),
    ];
    let mut coordinator = Coordinator::start(Options { extra: extra.to_vec(), ..Options::default() });
    until_ready(&coordinator, std::slice::from_ref(&board.name), "the coordinator's own board Ready");

    let manifest = coordinator.dir.path().join("web.yaml");
    fs::write(&manifest, DEPLOYMENT.replace("replicas: 6", "replicas: 2")).expect("manifest");
    coordinator.bramble(&["apply", "-f", manifest.to_str().expect("utf-8 path")]);
    until(&coordinator, "2 replicas Running on the one board", 60, || {
        let per_board = coordinator.running_per_board()?;
        (per_board.get(&board.name) == Some(&2) && board.running_containers() == 2).then_some(())
    });

    // diff: nothing to change for what was applied; a changed number of replicas is shown.
    let path = manifest.to_str().expect("utf-8 path");
    let same = run(&mut coordinator.command(&["diff", "-f", path], &coordinator.api_token));
    assert_eq!((same.status.code(), text(&same).0), (Some(0), String::new()), "{:?}", text(&same));
    let changed = coordinator.dir.path().join("web-3.yaml");
    fs::write(&changed, DEPLOYMENT.replace("replicas: 6", "replicas: 3")).expect("manifest");
    let diff = run(&mut coordinator
        .command(&["diff", "-f", changed.to_str().expect("utf-8 path")], &coordinator.api_token));
    let shown = text(&diff).0;
    assert_eq!(diff.status.code(), Some(1), "{:?}", text(&diff));
    assert!(shown.contains("--- live/deployment.apps/web\n+++ merged/deployment.apps/web\n"), "{shown}");
    assert!(shown.contains("\n-  replicas: 2\n+  replicas: 3\n"), "{shown}");
    assert_eq!(shown.lines().filter(|l| l.starts_with(['-', '+'])).count(), 4, "only the replicas: {shown}");

    // describe: a Deployment with its pods, a board with its pods, a pod with its owner.
    let deployment = coordinator.bramble(&["describe", "deployment/web"]);
    assert!(
        deployment.contains("Replicas:       2 desired | 2 updated | 2 total | 2 available"),
        "{deployment}"
    );
    let pods: Vec<String> =
        coordinator.pods().iter().filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned)).collect();
    assert!(pods.iter().all(|p| deployment.contains(p.as_str())), "{deployment}");
    let node = coordinator.bramble(&["describe", "node", &board.name]);
    assert!(node.contains("Pods:           (2 in total)") && node.contains("Ready  True"), "{node}");
    let pod = coordinator.bramble(&["describe", "pod", &pods[0]]);
    assert!(
        pod.contains("Controlled By:  Deployment/web") && pod.contains("Command:    sleep 100000"),
        "{pod}"
    );

    // The agent dies: the coordinator starts it again, and its pods were never stopped.
    let agent_pids = |log: &str| -> Vec<i32> {
        log.lines()
            .filter_map(|l| l.split_once("(pid ").and_then(|(_, rest)| rest.split_once(')')))
            .filter_map(|(pid, _)| pid.parse().ok())
            .collect()
    };
    let first = *agent_pids(&coordinator.log()).first().expect("the coordinator logs the agent it started");
    let containers = board.container_pids();
    kill_9(first);
    let second =
        until(&coordinator, "the agent started again", 30, || agent_pids(&coordinator.log()).get(1).copied());
    until(&coordinator, "2 replicas reported Running after the agent's restart", 30, || {
        (coordinator.running_per_board()?.get(&board.name) == Some(&2)).then_some(())
    });
    assert_eq!(board.container_pids(), containers, "the agent's restart restarted no container");

    // The coordinator stops (SIGTERM): its agent stops too; the pods outlive both.
    coordinator.terminate();
    until(&coordinator, "the agent gone with the coordinator", 10, || {
        (!std::path::Path::new(&format!("/proc/{second}")).exists()).then_some(())
    });
    assert_eq!(board.container_pids(), containers, "pods outlive the agent");
}
