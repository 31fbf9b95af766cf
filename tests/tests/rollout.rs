//! Rollouts end to end on the cluster harness: a real coordinator, three agents each in its own
//! network namespace, real containers serving HTTP on a hostPort, and the real `bramble`
//! client. A checker asks every board for its page all along: a rolling update with
//! `maxUnavailable: 1` never has more than one board down; an update whose readiness probe
//! never passes stops at its progress deadline with the old pods serving; `rollout undo`
//! restates the previous revision; `rollout pause` holds a change back until `resume`.

use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bramble_tests::cluster::{Coordinator, Options, delete_web_and_check_logs, join_boards, until};
use bramble_tests::{http_get_at, require_root, require_tool, run, text};

/// A Deployment of busybox httpd on hostPort 8080 serving `version`; ready when `ready_path`
/// answers.
fn web(version: &str, ready_path: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    kubernetes.io/change-cause: {version}
spec:
  replicas: 3
  progressDeadlineSeconds: 10
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 0, maxUnavailable: 1}}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox:latest
        command: [sh, -c, 'mkdir -p /srv && echo {version} > /srv/index.html && exec busybox httpd -f -p 8080 -h /srv']
        ports:
        - {{containerPort: 8080, hostPort: 8080}}
        readinessProbe:
          httpGet: {{path: {ready_path}, port: 8080}}
          periodSeconds: 1
"
    )
}

/// What each board serves on port 8080 now (`None`: nothing answers).
fn pages(ips: &[String]) -> Vec<Option<String>> {
    ips.iter()
        .map(|ip| {
            let answer = http_get_at(ip, 8080, "/")?;
            let (head, body) = answer.split_once("\r\n\r\n")?;
            head.contains(" 200 ").then(|| body.trim().to_owned())
        })
        .collect()
}

/// Asks every board for its page until stopped; keeps the fewest boards seen serving at once.
struct Checker {
    stop: Arc<AtomicBool>,
    fewest: Arc<Mutex<usize>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checker {
    fn start(ips: Vec<String>) -> Checker {
        let (stop, fewest) = (Arc::new(AtomicBool::new(false)), Arc::new(Mutex::new(usize::MAX)));
        let (stop_flag, fewest_seen) = (Arc::clone(&stop), Arc::clone(&fewest));
        let thread = std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                let serving = pages(&ips).iter().filter(|p| p.is_some()).count();
                if let Ok(mut fewest) = fewest_seen.lock() {
                    *fewest = (*fewest).min(serving);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Checker { stop, fewest, thread: Some(thread) }
    }

    /// The fewest boards that served at once since the last call; starts counting again.
    fn take_fewest(&self) -> usize {
        self.fewest.lock().map(|mut f| std::mem::replace(&mut *f, usize::MAX)).unwrap_or(0)
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn rolling_update_stalled_update_undo_and_pause() {
    require_root();
    require_tool("ip");
    require_tool("nsenter");
    let coordinator = Coordinator::start(Options::default());
    let boards = join_boards(&coordinator, 11..=13);
    let ips: Vec<String> = boards.iter().map(|b| b.netns.board_ip.clone()).collect();
    let apply = |version: &str, ready_path: &str| {
        let path = coordinator.dir.path().join(format!("web-{version}.yaml"));
        fs::write(&path, web(version, ready_path)).expect("manifest");
        coordinator.bramble(&["apply", "-f", path.to_str().expect("utf-8 path")])
    };
    let serving = |version: &str| pages(&ips).iter().all(|p| p.as_deref() == Some(version));
    let rollout_status = |timeout: &str| {
        run(&mut coordinator
            .command(&["rollout", "status", "deployment/web", "--timeout", timeout], &coordinator.api_token))
    };

    apply("v1", "/index.html");
    until(&coordinator, "every board serving v1", 60, || serving("v1").then_some(()));
    let checker = Checker::start(ips.clone());
    checker.take_fewest();

    // A rolling update: one board at a time, never two down.
    assert_eq!(apply("v2", "/index.html").trim(), "deployment.apps/web configured");
    let status = rollout_status("120s");
    let (out, err) = text(&status);
    assert!(status.status.success(), "{out}{err}\n{}", coordinator.log());
    assert!(out.contains("Waiting for deployment \"web\" rollout to finish"), "{out}");
    assert!(out.trim_end().ends_with("deployment \"web\" successfully rolled out"), "{out}");
    until(&coordinator, "every board serving v2", 30, || serving("v2").then_some(()));
    assert!(checker.take_fewest() >= 2, "maxUnavailable 1 of 3: at least two boards served throughout");

    // An update that never becomes ready stops at its deadline; the old pods keep serving.
    apply("v3", "/never-there.html");
    let status = rollout_status("90s");
    assert!(!status.status.success());
    assert!(text(&status).1.contains("exceeded its progress deadline"), "{:?}", text(&status));
    let served = pages(&ips);
    assert_eq!(served.iter().filter(|p| p.as_deref() == Some("v2")).count(), 2, "{served:?}");
    assert!(checker.take_fewest() >= 2, "the stalled rollout took down one board at most");
    assert!(coordinator.log().contains("ProgressDeadlineExceeded"));

    // Undo restates v2 (no registry, the image is on the boards): all three serve it again.
    let undo = coordinator.bramble(&["rollout", "undo", "deployment/web"]);
    assert_eq!(undo.trim(), "deployment.apps/web rolled back");
    assert!(rollout_status("120s").status.success());
    until(&coordinator, "every board serving v2 after the undo", 30, || serving("v2").then_some(()));
    let history = coordinator.bramble(&["rollout", "history", "deployment/web"]);
    let rows: Vec<&str> = history.lines().skip(2).collect();
    assert_eq!(rows, ["1         v1", "3         v3", "4         v2"], "{history}");

    // Paused: a new template waits, even across an apply, until resume.
    assert_eq!(
        coordinator.bramble(&["rollout", "pause", "deployment/web"]).trim(),
        "deployment.apps/web paused"
    );
    apply("v4", "/index.html");
    std::thread::sleep(Duration::from_secs(4));
    assert!(serving("v2"), "nothing moves while paused: {:?}", pages(&ips));
    coordinator.bramble(&["rollout", "resume", "deployment/web"]);
    assert!(rollout_status("120s").status.success());
    until(&coordinator, "every board serving v4 after resume", 30, || serving("v4").then_some(()));
    assert!(checker.take_fewest() >= 2, "undo and resume rolled one board at a time");
    drop(checker);

    delete_web_and_check_logs(&coordinator, &boards);
}
