//! The board's reconciler as a pure function: what should run (desired pods) and what does
//! (observed containers) in, the actions that close the gap out. No IO and no clock: time is
//! passed in as milliseconds of monotonic time, so every rule is tested by table.
//!
//! Rules, as kubelet keeps them:
//! - a container of a desired pod that is missing is started;
//! - one that exited is restarted as its pod's `restartPolicy` says, after an exponential
//!   backoff (the first restart at once, then 100 ms doubling up to 5 min; the count resets
//!   once a container has run for 10 min);
//! - one that could not be started (no image, a taken port, …) is tried again after the same
//!   backoff, whatever the restart policy (the cause may go away);
//! - one whose liveness probe failed is stopped like a pod being removed (SIGTERM, SIGKILL after
//!   the grace period) and then restarted as its policy says;
//! - the containers of a pod no longer desired get SIGTERM, then SIGKILL when the pod's grace
//!   period has passed, and the pod is removed once none runs.

use std::collections::BTreeSet;

use bramble_common::objects::{PodSpec, RestartPolicy};

/// First backoff step after the immediate restart.
pub const BACKOFF_BASE_MS: u64 = 100;
/// Longest wait between restarts.
pub const BACKOFF_MAX_MS: u64 = 5 * 60 * 1000;
/// Running this long forgives earlier crashes.
pub const BACKOFF_RESET_MS: u64 = 10 * 60 * 1000;

/// A pod this board should run.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredPod {
    /// Changes whenever the pod is replaced (a new spec gets a new uid).
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub spec: PodSpec,
}

/// What one container is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Running {
        started_ms: u64,
        /// The container's main process.
        pid: i32,
    },
    Exited {
        exit_code: i32,
        finished_ms: u64,
        ran_ms: u64,
    },
    /// The last start failed before any process ran; `attempts` in a row so far.
    Failed {
        failed_ms: u64,
        attempts: u32,
    },
}

/// One container the board has (or had) for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub name: String,
    pub state: ContainerState,
    /// Restarts so far (shown as the pod's restart count).
    pub restarts: u32,
    /// Crashes in a row, for the backoff (reset after a long run).
    pub crash_streak: u32,
    /// When SIGTERM was sent, if the container is being stopped.
    pub stop_requested_ms: Option<u64>,
    /// Its liveness (or startup) probe has failed: it is to be stopped and restarted.
    pub unhealthy: bool,
}

/// A pod the board has containers (or leftovers) of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPod {
    pub uid: String,
    pub containers: Vec<ObservedContainer>,
    /// The grace period the pod was started with.
    pub grace_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    Term,
    Kill,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start { pod_uid: String, container: String },
    Stop { pod_uid: String, container: String, signal: StopSignal },
    RemovePod { pod_uid: String },
}

/// The actions, and when to look again at the latest (a backoff or grace period ending).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub wake_at_ms: Option<u64>,
}

impl Plan {
    fn wake(&mut self, at: u64) {
        self.wake_at_ms = Some(self.wake_at_ms.map_or(at, |w| w.min(at)));
    }
}

/// The wait before restart number `streak + 1` of a container that crashed `streak` times in
/// a row: 0, 100 ms, 200 ms, 400 ms, … up to 5 min.
pub fn backoff_ms(streak: u32) -> u64 {
    match streak {
        0 => 0,
        n => BACKOFF_BASE_MS.saturating_mul(1u64 << (n - 1).min(32)).min(BACKOFF_MAX_MS),
    }
}

/// Whether a container that exited with `exit_code` is to run again.
pub fn restarts(policy: RestartPolicy, exit_code: i32) -> bool {
    match policy {
        RestartPolicy::Always => true,
        RestartPolicy::OnFailure => exit_code != 0,
        RestartPolicy::Never => false,
    }
}

pub fn plan(desired: &[DesiredPod], observed: &[ObservedPod], now_ms: u64) -> Plan {
    let mut plan = Plan::default();
    for pod in desired {
        let seen = observed.iter().find(|o| o.uid == pod.uid);
        for container in &pod.spec.containers {
            let found = seen.and_then(|o| o.containers.iter().find(|c| c.name == container.name));
            let start = || Action::Start { pod_uid: pod.uid.clone(), container: container.name.clone() };
            match found.map(|c| (&c.state, c)) {
                None => plan.actions.push(start()),
                Some((ContainerState::Running { .. }, c)) => {
                    if c.unhealthy {
                        stop_gracefully(&mut plan, &pod.uid, c, grace_ms(&pod.spec), now_ms);
                    }
                }
                Some((ContainerState::Failed { failed_ms, attempts }, _)) => {
                    let due = failed_ms.saturating_add(backoff_ms(*attempts));
                    if now_ms >= due {
                        plan.actions.push(start());
                    } else {
                        plan.wake(due);
                    }
                }
                Some((ContainerState::Exited { exit_code, finished_ms, ran_ms }, c)) => {
                    if !restarts(pod.spec.restart_policy, *exit_code) {
                        continue;
                    }
                    let streak = if *ran_ms >= BACKOFF_RESET_MS { 0 } else { c.crash_streak };
                    let due = finished_ms.saturating_add(backoff_ms(streak));
                    if now_ms >= due {
                        plan.actions.push(start());
                    } else {
                        plan.wake(due);
                    }
                }
            }
        }
    }
    let wanted: BTreeSet<&str> = desired.iter().map(|p| p.uid.as_str()).collect();
    for pod in observed.iter().filter(|o| !wanted.contains(o.uid.as_str())) {
        let mut running = false;
        for c in &pod.containers {
            if !matches!(c.state, ContainerState::Running { .. }) {
                continue;
            }
            running = true;
            stop_gracefully(&mut plan, &pod.uid, c, pod.grace_ms, now_ms);
        }
        if !running {
            plan.actions.push(Action::RemovePod { pod_uid: pod.uid.clone() });
        }
    }
    plan
}

/// The grace period a pod's containers get between SIGTERM and SIGKILL.
pub fn grace_ms(spec: &PodSpec) -> u64 {
    spec.termination_grace_period_seconds.saturating_mul(1000)
}

/// SIGTERM first, SIGKILL once `grace_ms` has passed since.
fn stop_gracefully(plan: &mut Plan, pod_uid: &str, c: &ObservedContainer, grace_ms: u64, now_ms: u64) {
    let stop = |signal| Action::Stop { pod_uid: pod_uid.to_owned(), container: c.name.clone(), signal };
    match c.stop_requested_ms {
        None => {
            plan.actions.push(stop(StopSignal::Term));
            plan.wake(now_ms.saturating_add(grace_ms));
        }
        Some(asked) if now_ms >= asked.saturating_add(grace_ms) => plan.actions.push(stop(StopSignal::Kill)),
        Some(asked) => plan.wake(asked.saturating_add(grace_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bramble_common::objects::Container;

    fn spec(policy: RestartPolicy, containers: &[&str]) -> PodSpec {
        PodSpec {
            containers: containers.iter().map(|name| Container::new(name, "busybox")).collect(),
            volumes: vec![],
            restart_policy: policy,
            node_selector: Default::default(),
            termination_grace_period_seconds: 30,
            host_network: false,
        }
    }

    fn desired(uid: &str, policy: RestartPolicy, containers: &[&str]) -> DesiredPod {
        DesiredPod {
            uid: uid.into(),
            namespace: "default".into(),
            name: uid.into(),
            spec: spec(policy, containers),
        }
    }

    fn container(name: &str, state: ContainerState, streak: u32) -> ObservedContainer {
        ObservedContainer {
            name: name.into(),
            state,
            restarts: streak,
            crash_streak: streak,
            stop_requested_ms: None,
            unhealthy: false,
        }
    }

    fn observed(uid: &str, containers: Vec<ObservedContainer>) -> ObservedPod {
        ObservedPod { uid: uid.into(), containers, grace_ms: 30_000 }
    }

    fn start(uid: &str, c: &str) -> Action {
        Action::Start { pod_uid: uid.into(), container: c.into() }
    }

    fn exited(code: i32, finished_ms: u64) -> ContainerState {
        ContainerState::Exited { exit_code: code, finished_ms, ran_ms: 1_000 }
    }

    #[test]
    fn missing_containers_start_and_running_ones_are_left_alone() {
        let want = [desired("a", RestartPolicy::Always, &["web", "sidecar"])];
        let have =
            [observed("a", vec![container("web", ContainerState::Running { started_ms: 0, pid: 7 }, 0)])];
        assert_eq!(plan(&want, &have, 10).actions, vec![start("a", "sidecar")]);
        assert_eq!(plan(&want, &[], 10).actions, vec![start("a", "web"), start("a", "sidecar")]);
    }

    #[test]
    fn restart_policies() {
        let cases = [
            (RestartPolicy::Always, 0, true),
            (RestartPolicy::Always, 1, true),
            (RestartPolicy::OnFailure, 0, false),
            (RestartPolicy::OnFailure, 137, true),
            (RestartPolicy::Never, 1, false),
        ];
        for (policy, code, restart) in cases {
            let want = [desired("a", policy, &["c"])];
            let have = [observed("a", vec![container("c", exited(code, 0), 0)])];
            let actions = plan(&want, &have, 0).actions;
            assert_eq!(actions == vec![start("a", "c")], restart, "{policy:?} exit {code}");
        }
    }

    #[test]
    fn backoff_grows_to_five_minutes_and_resets_after_a_long_run() {
        let steps: Vec<u64> = (0..16).map(backoff_ms).collect();
        assert_eq!(&steps[..5], &[0, 100, 200, 400, 800]);
        assert_eq!(*steps.last().expect("steps"), BACKOFF_MAX_MS);
        assert!(steps.windows(2).all(|w| w[0] <= w[1]));

        let want = [desired("a", RestartPolicy::Always, &["c"])];
        // Third crash in a row at t=1000: the restart waits 200 ms.
        let have = [observed("a", vec![container("c", exited(1, 1_000), 2)])];
        let early = plan(&want, &have, 1_100);
        assert_eq!(early.actions, vec![]);
        assert_eq!(early.wake_at_ms, Some(1_200));
        assert_eq!(plan(&want, &have, 1_200).actions, vec![start("a", "c")]);
        // After ten minutes of running, a crash restarts at once again.
        let long_run = ContainerState::Exited { exit_code: 1, finished_ms: 1_000, ran_ms: BACKOFF_RESET_MS };
        let have = [observed("a", vec![container("c", long_run, 12)])];
        assert_eq!(plan(&want, &have, 1_000).actions, vec![start("a", "c")]);
    }

    #[test]
    fn pods_no_longer_desired_are_stopped_gracefully_then_removed() {
        let running = ContainerState::Running { started_ms: 0, pid: 7 };
        let stop = |signal| Action::Stop { pod_uid: "old".into(), container: "c".into(), signal };
        let have = vec![observed("old", vec![container("c", running.clone(), 0)])];
        let first = plan(&[], &have, 5_000);
        assert_eq!(first.actions, vec![stop(StopSignal::Term)]);
        assert_eq!(first.wake_at_ms, Some(35_000));

        let mut asked = have.clone();
        asked[0].containers[0].stop_requested_ms = Some(5_000);
        let waiting = plan(&[], &asked, 20_000);
        assert_eq!((waiting.actions, waiting.wake_at_ms), (vec![], Some(35_000)));
        assert_eq!(plan(&[], &asked, 35_000).actions, vec![stop(StopSignal::Kill)]);

        let gone = [observed("old", vec![container("c", exited(143, 21_000), 0)])];
        assert_eq!(plan(&[], &gone, 21_000).actions, vec![Action::RemovePod { pod_uid: "old".into() }]);
        let empty = [observed("old", vec![])];
        assert_eq!(plan(&[], &empty, 0).actions, vec![Action::RemovePod { pod_uid: "old".into() }]);
    }

    #[test]
    fn a_changed_pod_is_a_new_uid_the_old_one_stops_the_new_one_starts() {
        let want = [desired("new", RestartPolicy::Always, &["c"])];
        let have =
            [observed("old", vec![container("c", ContainerState::Running { started_ms: 0, pid: 7 }, 0)])];
        let actions = plan(&want, &have, 0).actions;
        assert_eq!(
            actions,
            vec![
                start("new", "c"),
                Action::Stop { pod_uid: "old".into(), container: "c".into(), signal: StopSignal::Term }
            ]
        );
    }

    #[test]
    fn failed_starts_are_retried_with_backoff_whatever_the_policy() {
        let want = [desired("a", RestartPolicy::Never, &["c"])];
        let failed = |attempts| ContainerState::Failed { failed_ms: 1_000, attempts };
        let have = [observed("a", vec![container("c", failed(3), 0)])];
        let early = plan(&want, &have, 1_100);
        assert_eq!((early.actions, early.wake_at_ms), (vec![], Some(1_400)));
        assert_eq!(plan(&want, &have, 1_400).actions, vec![start("a", "c")]);
    }

    #[test]
    fn an_unhealthy_container_is_stopped_within_its_grace_period() {
        let want = [desired("a", RestartPolicy::Always, &["c"])];
        let mut sick = container("c", ContainerState::Running { started_ms: 0, pid: 7 }, 0);
        sick.unhealthy = true;
        let stop = |signal| Action::Stop { pod_uid: "a".into(), container: "c".into(), signal };
        let first = plan(&want, &[observed("a", vec![sick.clone()])], 1_000);
        assert_eq!((first.actions, first.wake_at_ms), (vec![stop(StopSignal::Term)], Some(31_000)));
        sick.stop_requested_ms = Some(1_000);
        assert_eq!(plan(&want, &[observed("a", vec![sick.clone()])], 2_000).actions, vec![]);
        assert_eq!(plan(&want, &[observed("a", vec![sick])], 31_000).actions, vec![stop(StopSignal::Kill)]);
    }
}
