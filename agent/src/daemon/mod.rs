//! `bramble-agent run`: the board's daemon. One loop on one thread:
//!
//! 1. read the manifests directory when it changed → desired pods;
//! 2. observe the containers (the shims' files in the run directory, the pod records);
//! 3. `reconcile::plan(desired, observed, now)` → actions, executed here;
//! 4. start the probes that are due (each on a short-lived thread);
//! 5. write `RUN/status.json` if it changed; sleep until the plan, a probe, a shim (a container
//!    ended: the shim sends a datagram to `RUN/agent.sock`) or the next manifest poll.
//!
//! Containers are never created from this process (it has threads): the shim does it.

mod manifests;
pub mod records;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bramble_common::Object;
use bramble_common::objects::{Container, Protocol, PullPolicy, VolumeSource};
use bramble_common::platform::Platform;
use bramble_common::wire::{self, DesiredPods, ObservedPods, PodPhase, PodReport};
use heapless::Deque;
use nix::fcntl::{Flock, FlockArg};

use crate::cluster::{ClusterOptions, Session};
use crate::desired::desired_pods;
use crate::fsutil::{disk_space, write_atomic};
use crate::health::HealthMonitor;
use crate::image::{ImageStore, Progress, PullOptions};
use crate::log;
use crate::probe::{self, Probes};
use crate::reconcile::{
    self, Action, BACKOFF_RESET_MS, ContainerState, DesiredPod, ObservedContainer, ObservedPod, StopSignal,
};
use crate::runtime::{self, ContainerStatus, Runtime, Signal, spec};
use crate::status::{self, AgentStatus, PodStatus, State, Terminated, human_bytes};
use records::{ContainerRecord, ExitRecord, PodRecord, PodStore, StartFailure};

/// How often the manifests directory is looked at.
const MANIFEST_POLL_MS: u64 = 1000;
/// The longest sleep between two rounds.
const MAX_SLEEP_MS: u64 = 1000;
/// The grace period of a container nobody declared (no record to say otherwise).
const ORPHAN_GRACE_MS: u64 = 30_000;
/// The state disk must keep this much free for a container to start (its writable layer, its
/// log and the pod's records live there).
const MIN_FREE_STATE_BYTES: u64 = 16 << 20;
/// How many ends of each container status remembers.
const HISTORY: usize = 8;

/// Where the daemon keeps and finds things.
#[derive(Debug, Clone)]
pub struct Options {
    pub state_dir: PathBuf,
    pub run_dir: PathBuf,
    pub manifests: PathBuf,
    /// Join a cluster over MQTT (`--server`).
    pub cluster: Option<ClusterOptions>,
    /// Registries pulled from over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
}

enum Event {
    /// A shim says a container ended.
    Wake,
    /// The coordinator's desired pods for this board.
    Assigned(DesiredPods),
    Probe {
        id: String,
        run: u64,
        kind: probe::Kind,
        outcome: Result<(), String>,
    },
    /// A pull ended: what it did, or why it failed.
    Pulled {
        image: String,
        outcome: Result<String, String>,
    },
}

/// An image pull the daemon started.
enum PullState {
    /// `failures`: of the pulls of this image before this one, in a row.
    Running { progress: Arc<Mutex<Progress>>, failures: u32 },
    /// Failed; tried again once `retry_ms` passed, waiting twice as long after each failure.
    Failed { message: String, retry_ms: u64, failures: u32 },
}

/// How long after a failed pull the next one may start: 10 s doubling to 5 min, as kubelet's
/// image pull back-off.
fn pull_backoff_ms(failures: u32) -> u64 {
    (10_000u64 << failures.saturating_sub(1).min(5)).min(300_000)
}

/// The id of a pod's container: `<pod uid>_<container>` (neither part can hold `_`).
pub fn container_id(uid: &str, container: &str) -> String {
    format!("{uid}_{container}")
}

fn split_id(id: &str) -> Option<(&str, &str)> {
    id.split_once('_')
}

/// Milliseconds of `CLOCK_BOOTTIME`.
fn now_ms() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| {
            u64::try_from(t.tv_sec()).unwrap_or(0) * 1000
                + u64::try_from(t.tv_nsec()).unwrap_or(0) / 1_000_000
        })
        .unwrap_or(0)
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub fn run(options: &Options) -> ExitCode {
    match Daemon::new(options) {
        Ok(mut daemon) => daemon.serve(),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Daemon {
    options: Options,
    runtime: Runtime,
    images: ImageStore,
    pods: PodStore,
    records: BTreeMap<String, PodRecord>,
    manifests: manifests::ManifestDir,
    manifest_errors: Vec<String>,
    /// The pods of the manifests directory.
    manifest_pods: Vec<DesiredPod>,
    /// The coordinator's latest desired set for this board (kept in `STATE/assigned.json`).
    assigned: Option<DesiredPods>,
    /// Both of the above: what the reconciler keeps running.
    desired: Vec<DesiredPod>,
    session: Option<Session>,
    health: Option<HealthMonitor>,
    /// The assignment changed since the observed pods were last reported.
    assignment_changed: bool,
    /// Desired sets dropped as stale.
    stale: u64,
    /// The status last written to `RUN/status.json`.
    written_status: Option<AgentStatus>,
    /// Container id → when SIGTERM was sent, and whether SIGKILL was (its end not seen yet).
    stopping: BTreeMap<String, (u64, bool)>,
    probes: BTreeMap<String, Probes>,
    history: BTreeMap<String, Deque<Terminated, HISTORY>>,
    /// The last failure logged per container, so each is logged once.
    logged: BTreeMap<String, String>,
    /// Image pulls by image reference: one at a time per image, however many pods want it.
    pulls: BTreeMap<String, PullState>,
    board_memory: u64,
    boot_id: String,
    events: Receiver<Event>,
    sender: Sender<Event>,
    next_scan_ms: u64,
    _lock: Flock<fs::File>,
}

impl Daemon {
    fn new(options: &Options) -> Result<Daemon, String> {
        for dir in [&options.state_dir, &options.run_dir] {
            fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        let lock_path = options.run_dir.join("agent.lock");
        let lock_file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| format!("{}: {e}", lock_path.display()))?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|_| {
            format!("another bramble-agent runs with run directory {}", options.run_dir.display())
        })?;
        let runtime =
            Runtime::for_this_binary(&options.state_dir, &options.run_dir).map_err(|e| e.to_string())?;
        let images = ImageStore::open(&options.state_dir).map_err(|e| e.to_string())?;
        let pods = PodStore::new(&options.state_dir);
        let boot_id =
            fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_owned();
        let (loaded, problems) = pods.load_all();
        for problem in problems {
            log(format!("ignoring a pod record: {problem}"));
        }
        let mut records = BTreeMap::new();
        for mut record in loaded {
            if record.adopt_boot(&boot_id)
                && let Err(e) = pods.save(&record)
            {
                log(format!("pod {}/{}: cannot record: {e}", record.namespace, record.name));
            }
            records.insert(record.uid.clone(), record);
        }
        let (sender, events) = mpsc::channel();
        listen_for_shims(&runtime.notify_socket(), sender.clone())?;
        let assigned_path = options.state_dir.join(ASSIGNED_FILE);
        let assigned = match fs::read(&assigned_path) {
            Ok(bytes) => match wire::decode::<DesiredPods>(&bytes) {
                Ok(set) => Some(set),
                Err(e) => {
                    log(format!("ignoring {}: {e}", assigned_path.display()));
                    None
                }
            },
            Err(_) => None,
        };
        let (session, health) = match &options.cluster {
            Some(cluster) => {
                let to_daemon = sender.clone();
                let deliver = move |set| {
                    let _ = to_daemon.send(Event::Assigned(set));
                };
                let health =
                    HealthMonitor::new(&cluster.node, options.state_dir.clone(), cluster.health_interval_ms);
                let requests = crate::requests::Requests::new(crate::requests::Board {
                    state_dir: options.state_dir.clone(),
                    agent_binary: runtime.agent_binary.clone(),
                    state_root: runtime.state_root(),
                });
                (Some(Session::start(cluster, deliver, requests)?), Some(health))
            }
            None => (None, None),
        };
        Ok(Daemon {
            manifests: manifests::ManifestDir::new(&options.manifests),
            options: options.clone(),
            runtime,
            images,
            pods,
            records,
            manifest_errors: Vec::new(),
            manifest_pods: Vec::new(),
            assigned,
            desired: Vec::new(),
            session,
            health,
            assignment_changed: true,
            stale: 0,
            stopping: BTreeMap::new(),
            written_status: None,
            probes: BTreeMap::new(),
            history: BTreeMap::new(),
            logged: BTreeMap::new(),
            pulls: BTreeMap::new(),
            board_memory: status::board_memory(),
            boot_id,
            events,
            sender,
            next_scan_ms: 0,
            _lock: lock,
        })
    }

    fn serve(&mut self) -> ExitCode {
        log(format!(
            "running: manifests {}, state {}, run {}",
            self.options.manifests.display(),
            self.options.state_dir.display(),
            self.options.run_dir.display()
        ));
        loop {
            let wake_at = self.round();
            let timeout = wake_at.saturating_sub(now_ms()).clamp(1, MAX_SLEEP_MS);
            match self.events.recv_timeout(Duration::from_millis(timeout)) {
                Ok(event) => {
                    self.handle(event);
                    while let Ok(event) = self.events.try_recv() {
                        self.handle(event);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return ExitCode::FAILURE,
            }
        }
    }

    fn handle(&mut self, event: Event) {
        if let Event::Assigned(set) = event {
            self.take_assignment(set);
            return;
        }
        if let Event::Pulled { image, outcome } = event {
            self.pulled(image, outcome);
            return;
        }
        let Event::Probe { id, run, kind, outcome } = event else { return };
        let Some(probes) = self.probes.get_mut(&id).filter(|p| p.run == run) else { return };
        let was = (probes.ready, probes.unhealthy);
        probes.record(kind, outcome, now_ms());
        let now = (probes.ready, probes.unhealthy);
        let message = probes.message.clone().unwrap_or_default();
        let who = self.describe(&id);
        if now.1 && !was.1 {
            log(format!("{who}: {message}; restarting it"));
        } else if was.0 && !now.0 {
            log(format!("{who}: not ready: {message}"));
        } else if !was.0 && now.0 {
            log(format!("{who}: ready"));
        }
    }

    /// One round; returns when the next is due at the latest.
    fn round(&mut self) -> u64 {
        let now = now_ms();
        if now >= self.next_scan_ms {
            self.read_manifests();
            self.next_scan_ms = now + MANIFEST_POLL_MS;
        }
        let mut observed = self.observe(now);
        let plan = reconcile::plan(&self.desired, &observed, now);
        if !plan.actions.is_empty() {
            for action in plan.actions {
                self.execute(action, now);
            }
            observed = self.observe(now_ms());
        }
        self.start_probes(&observed, now_ms());
        let report = self.status(&observed);
        let changed = self.written_status.as_ref() != Some(&report);
        self.report_to_cluster(&report, changed, now_ms());
        // Written when it changed (compared in memory; a failed write is tried next round).
        if changed {
            match status::write(&self.options.run_dir, &report) {
                Ok(()) => self.written_status = Some(report),
                Err(e) => log(format!("cannot write status: {e}")),
            }
        }
        let probe_due = self.probes.values().filter_map(Probes::next_due_ms).min();
        let health_due = self.health.as_ref().map(HealthMonitor::next_ms);
        [plan.wake_at_ms, probe_due, Some(self.next_scan_ms), health_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + MAX_SLEEP_MS)
    }

    fn read_manifests(&mut self) {
        let objects = match self.manifests.read_if_changed() {
            None => return,
            Some(Ok(read)) => {
                let fresh: Vec<&String> =
                    read.errors.iter().filter(|e| !self.manifest_errors.contains(e)).collect();
                for error in fresh {
                    log(format!("manifest error: {error}"));
                }
                self.manifest_errors = read.errors;
                read.objects
            }
            Some(Err(e)) => {
                // No directory (yet): keep what was last desired.
                log(format!("cannot read the manifests directory: {e}; keeping the last desired pods"));
                // What was recorded is used as it is, not recorded again.
                if let Some(objects) = fs::read(self.desired_path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Vec<Object>>(&b).ok())
                {
                    self.manifest_pods = desired_pods(&objects);
                    self.update_desired();
                }
                return;
            }
        };
        match serde_json::to_vec_pretty(&objects) {
            Ok(bytes) => {
                if let Err(e) = write_atomic(&self.desired_path(), &bytes) {
                    log(format!("cannot record the desired pods: {e}"));
                }
            }
            Err(e) => log(format!("cannot record the desired pods: {e}")),
        }
        self.manifest_pods = desired_pods(&objects);
        self.update_desired();
    }

    /// What to run: the manifests' pods and the coordinator's.
    fn update_desired(&mut self) {
        let mut desired = self.manifest_pods.clone();
        if let Some(set) = &self.assigned {
            desired.extend(set.pods.iter().map(|p| DesiredPod {
                uid: p.uid.clone(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                spec: p.spec.clone(),
            }));
        }
        self.desired = desired;
    }

    /// A desired set from the coordinator: taken if newer than the one held, and kept on disk
    /// (before it is acted on) so that a reboot without the coordinator runs it too.
    fn take_assignment(&mut self, set: DesiredPods) {
        if let Some(held) = &self.assigned {
            if set.generation < held.generation {
                self.stale += 1;
                log(format!(
                    "dropped desired pods of generation {} older than {} ({} dropped)",
                    set.generation, held.generation, self.stale
                ));
                return;
            }
            if *held == set {
                return;
            }
        }
        if let Err(e) = write_atomic(&self.options.state_dir.join(ASSIGNED_FILE), &wire::encode(&set)) {
            log(format!("cannot record the desired pods: {e}"));
        }
        let count = set.pods.len();
        log(format!("desired pods from the coordinator: {count} (generation {})", set.generation));
        self.assigned = Some(set);
        self.assignment_changed = true;
        self.update_desired();
    }

    /// Publishes the assigned pods' status when the report or the assignment changed, and
    /// health when due.
    fn report_to_cluster(&mut self, report: &AgentStatus, report_changed: bool, now: u64) {
        let (Some(session), Some(health)) = (&self.session, &mut self.health) else { return };
        if report_changed || self.assignment_changed {
            self.assignment_changed = false;
            let assigned: BTreeSet<&str> =
                self.assigned.iter().flat_map(|a| a.pods.iter().map(|p| p.uid.as_str())).collect();
            session.publish_observed(&ObservedPods {
                node: session.node().to_owned(),
                generation: self.assigned.as_ref().map_or(0, |a| a.generation),
                pods: report
                    .pods
                    .iter()
                    .filter(|p| assigned.contains(p.uid.as_str()))
                    .map(pod_report)
                    .collect(),
            });
        }
        if health.due(now) {
            let running = report.pods.iter().filter(|p| p.phase == "Running").count();
            let sample = health.sample(running as u32, report.pods.len() as u32);
            session.publish_health(&sample);
        }
    }

    fn desired_path(&self) -> PathBuf {
        self.options.state_dir.join("desired.json")
    }

    fn describe(&self, id: &str) -> String {
        let (uid, name) = split_id(id).unwrap_or((id, ""));
        match self.records.get(uid) {
            Some(r) => format!("pod {}/{}: container {name}", r.namespace, r.name),
            None => format!("container {id}"),
        }
    }

    /// What runs, from the shims' files and the records; ends seen for the first time are
    /// recorded.
    fn observe(&mut self, now: u64) -> Vec<ObservedPod> {
        let mut by_pod: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (uid, record) in &self.records {
            by_pod.entry(uid.clone()).or_default().extend(record.containers.keys().cloned());
        }
        for id in self.runtime.container_ids() {
            if let Some((uid, name)) = split_id(&id) {
                by_pod.entry(uid.to_owned()).or_default().insert(name.to_owned());
            }
        }
        let mut observed = Vec::new();
        for (uid, names) in by_pod {
            let mut containers = Vec::new();
            for name in names {
                let id = container_id(&uid, &name);
                if let Some(c) = self.observe_container(&uid, &name, &id, now) {
                    containers.push(c);
                }
            }
            let grace_ms = self.records.get(&uid).map_or(ORPHAN_GRACE_MS, |r| r.grace_ms);
            observed.push(ObservedPod { uid, containers, grace_ms });
        }
        observed
    }

    fn observe_container(&mut self, uid: &str, name: &str, id: &str, now: u64) -> Option<ObservedContainer> {
        let status = self.runtime.status(id);
        // A directory without shim files: a start cut off midway, to be cleaned up.
        let has_dir = || self.runtime.status_dir(id).exists();
        let Some(record) = self.records.get_mut(uid) else {
            // Nobody declared it: report it so the plan stops and removes it.
            let state = match status {
                ContainerStatus::Running(s) => {
                    ContainerState::Running { started_ms: now, pid: s.container_pid }
                }
                ContainerStatus::Exited(e) => {
                    ContainerState::Exited { exit_code: e.exit_code, finished_ms: 0, ran_ms: 0 }
                }
                ContainerStatus::Lost(_) => {
                    ContainerState::Exited { exit_code: 255, finished_ms: 0, ran_ms: 0 }
                }
                ContainerStatus::Absent if has_dir() => {
                    ContainerState::Exited { exit_code: 255, finished_ms: 0, ran_ms: 0 }
                }
                ContainerStatus::Absent => return None,
            };
            return Some(self.observed(id, name, state, 0, 0));
        };
        let c = record.containers.entry(name.to_owned()).or_default();
        let mut changed = false;
        let mut ended = None;
        match &status {
            ContainerStatus::Running(_) => {
                if c.running_since_ms.is_none() {
                    // Started by an agent that died before it could record it.
                    c.running_since_ms = Some(now);
                    c.started_at = Some(unix_now());
                    changed = true;
                }
            }
            ContainerStatus::Exited(_) | ContainerStatus::Lost(_) | ContainerStatus::Absent => {
                if let Some(since) = c.running_since_ms.take() {
                    let (exit_code, reason) = match &status {
                        ContainerStatus::Exited(e) if e.oom_killed => (e.exit_code, "OOMKilled"),
                        ContainerStatus::Exited(e) if e.exit_code == 0 => (0, "Completed"),
                        ContainerStatus::Exited(e) => (e.exit_code, "Error"),
                        _ => (255, "Lost"),
                    };
                    let exit = ExitRecord {
                        exit_code,
                        reason: reason.to_owned(),
                        finished_ms: now,
                        ran_ms: now.saturating_sub(since),
                        finished_at: unix_now(),
                    };
                    ended = Some(exit.clone());
                    c.last_exit = Some(exit);
                    changed = true;
                }
            }
        }
        let state = match &status {
            ContainerStatus::Running(s) => ContainerState::Running {
                started_ms: c.running_since_ms.unwrap_or(now),
                pid: s.container_pid,
            },
            _ => match (&c.failure, &c.last_exit) {
                (Some(f), _) => ContainerState::Failed { failed_ms: f.failed_ms, attempts: f.attempts },
                (None, Some(e)) => ContainerState::Exited {
                    exit_code: e.exit_code,
                    finished_ms: e.finished_ms,
                    ran_ms: e.ran_ms,
                },
                (None, None) if has_dir() => {
                    ContainerState::Exited { exit_code: 255, finished_ms: 0, ran_ms: 0 }
                }
                (None, None) => return None,
            },
        };
        let (restarts, streak) = (c.restarts, c.crash_streak);
        if changed {
            self.save(uid);
        }
        if let Some(exit) = ended {
            log(format!("{}: exited with code {} ({})", self.describe(id), exit.exit_code, exit.reason));
            self.stopping.remove(id);
            self.probes.remove(id);
            let history = self.history.entry(id.to_owned()).or_default();
            if history.is_full() {
                history.pop_front();
            }
            let _ = history.push_back(Terminated::from(&exit));
        }
        Some(self.observed(id, name, state, restarts, streak))
    }

    fn observed(
        &self,
        id: &str,
        name: &str,
        state: ContainerState,
        restarts: u32,
        streak: u32,
    ) -> ObservedContainer {
        let unhealthy = match &state {
            ContainerState::Running { started_ms, .. } => {
                self.probes.get(id).is_some_and(|p| p.run == *started_ms && p.unhealthy)
            }
            _ => false,
        };
        ObservedContainer {
            name: name.to_owned(),
            state,
            restarts,
            crash_streak: streak,
            stop_requested_ms: self.stopping.get(id).map(|(since, _)| *since),
            unhealthy,
        }
    }

    /// Writes a pod's record; a failure (a full disk) keeps the old file whole, is logged once,
    /// and the next change tries again.
    fn save(&mut self, uid: &str) {
        let Some(record) = self.records.get(uid) else { return };
        let key = format!("record {uid}");
        match self.pods.save(record) {
            Ok(()) => {
                self.logged.remove(&key);
            }
            Err(e) => {
                let message =
                    format!("pod {}/{}: cannot record its state: {e}", record.namespace, record.name);
                if self.logged.get(&key) != Some(&message) {
                    log(&message);
                    self.logged.insert(key, message);
                }
            }
        }
    }

    fn execute(&mut self, action: Action, now: u64) {
        match action {
            Action::Start { pod_uid, container } => self.start(&pod_uid, &container, now),
            Action::Stop { pod_uid, container, signal } => {
                let id = container_id(&pod_uid, &container);
                let (signal, what) = match signal {
                    StopSignal::Term => (Signal::SIGTERM, "stopping (SIGTERM)"),
                    StopSignal::Kill => (Signal::SIGKILL, "still running after its grace period: SIGKILL"),
                };
                let (_, killed) = self.stopping.entry(id.clone()).or_insert((now, false));
                // SIGKILL may be planned again before its end is seen: say it once.
                let first_kill = signal == Signal::SIGKILL && !std::mem::replace(killed, true);
                if signal == Signal::SIGTERM || first_kill {
                    log(format!("{}: {what}", self.describe(&id)));
                }
                if let Err(e) = self.runtime.signal(&id, signal) {
                    log(e.to_string());
                }
            }
            Action::RemovePod { pod_uid } => self.remove_pod(&pod_uid),
        }
    }

    fn start(&mut self, uid: &str, name: &str, now: u64) {
        let Some(pod) = self.desired.iter().find(|p| p.uid == uid).cloned() else { return };
        let Some(container) = pod.spec.containers.iter().find(|c| c.name == name).cloned() else { return };
        let id = container_id(uid, name);
        let record = self.records.entry(uid.to_owned()).or_insert_with(|| PodRecord {
            uid: uid.to_owned(),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            grace_ms: reconcile::grace_ms(&pod.spec),
            boot_id: self.boot_id.clone(),
            containers: pod
                .spec
                .containers
                .iter()
                .map(|c| (c.name.clone(), ContainerRecord::default()))
                .collect(),
        });
        record.containers.entry(name.to_owned()).or_default();
        // The previous run's mount, bundle and writable layer go first (before the disk check,
        // which should count the space they free): a restart starts from the image.
        let begun = Instant::now();
        let outcome = match self.runtime.remove(&id) {
            Ok(()) => self.try_start(&pod, &container, &id),
            Err(e) => Err(("CreateContainerError", format!("cleaning its previous run: {e}"))),
        };
        let outcome = match outcome {
            Err(("ImageNotPresent", _)) if container.image_pull_policy != Some(PullPolicy::Never) => {
                Err(self.pull(&container.image, now))
            }
            other => other,
        };
        let who = self.describe(&id);
        let Some(c) = self.records.get_mut(uid).and_then(|r| r.containers.get_mut(name)) else { return };
        match outcome {
            Ok(pid) => {
                if c.ever_started() {
                    c.restarts += 1;
                    let long_run = c.last_exit.as_ref().is_some_and(|e| e.ran_ms >= BACKOFF_RESET_MS);
                    c.crash_streak = if long_run { 1 } else { c.crash_streak + 1 };
                }
                c.running_since_ms = Some(now);
                c.started_at = Some(unix_now());
                c.failure = None;
                self.logged.remove(&id);
                log(format!("{who}: started, pid {pid}, in {} ms", begun.elapsed().as_millis()));
            }
            Err((reason, message)) => {
                let attempts = c.failure.as_ref().map_or(0, |f| f.attempts) + 1;
                c.failure = Some(StartFailure {
                    reason: reason.to_owned(),
                    message: message.clone(),
                    failed_ms: now,
                    attempts,
                });
                // A pull in progress is logged by the pull, not by every container waiting.
                if self.logged.get(&id) != Some(&message) && reason != "ImagePulling" {
                    log(format!("{who}: cannot start: {reason}: {message}"));
                    self.logged.insert(id.clone(), message);
                }
            }
        }
        self.save(uid);
    }

    /// Where the pull of `image` stands, as a container's waiting reason; starts it when none
    /// runs and no back-off holds it.
    fn pull(&mut self, image: &str, now: u64) -> (&'static str, String) {
        match self.pulls.get(image) {
            Some(PullState::Running { progress, .. }) => {
                let p = progress.lock().map(|p| *p).unwrap_or_default();
                let done = if p.layers == 0 {
                    String::new()
                } else {
                    format!(": {} of {} layers, {}", p.layers_done, p.layers, human_bytes(p.bytes))
                };
                return ("ImagePulling", format!("pulling image {image}{done}"));
            }
            Some(PullState::Failed { message, retry_ms, .. }) if now < *retry_ms => {
                return ("ImagePullBackOff", message.clone());
            }
            _ => {}
        }
        let progress = Arc::new(Mutex::new(Progress::default()));
        let failures = match self.pulls.get(image) {
            Some(PullState::Failed { failures, .. }) => *failures,
            _ => 0,
        };
        self.pulls.insert(image.to_owned(), PullState::Running { progress: Arc::clone(&progress), failures });
        let (store, sender, reference) = (self.images.clone(), self.sender.clone(), image.to_owned());
        let options = PullOptions {
            insecure_registries: self.options.insecure_registries.clone(),
            attempts: 3,
            ..PullOptions::default()
        };
        log(format!("pulling image {image}"));
        let spawned = std::thread::Builder::new().name("pull".into()).spawn(move || {
            let mut report = |p: Progress| {
                if let Ok(mut shared) = progress.lock() {
                    *shared = p;
                }
            };
            let outcome = store
                .pull(&reference, &Platform::of_this_build(), &options, &mut report)
                .map(|pulled| {
                    format!(
                        "{} layers fetched, {} already stored, {} over the network ({} bytes)",
                        pulled.layers_fetched,
                        pulled.layers_present,
                        human_bytes(pulled.bytes_fetched),
                        pulled.bytes_fetched
                    )
                })
                .map_err(|e| e.to_string());
            let _ = sender.send(Event::Pulled { image: reference, outcome });
        });
        if let Err(e) = spawned {
            self.pulls.remove(image);
            return ("ErrImagePull", format!("pull {image}: cannot start a thread: {e}"));
        }
        ("ImagePulling", format!("pulling image {image}"))
    }

    /// A pull ended: the containers waiting for it start now, or wait for the next try.
    fn pulled(&mut self, image: String, outcome: Result<String, String>) {
        let now = now_ms();
        let failures = match self.pulls.get(&image) {
            Some(PullState::Running { failures, .. } | PullState::Failed { failures, .. }) => *failures,
            None => 0,
        };
        match outcome {
            Ok(summary) => {
                log(format!("pulled image {image}: {summary}"));
                self.pulls.remove(&image);
            }
            Err(message) => {
                let failures = failures + 1;
                let retry_ms = now + pull_backoff_ms(failures);
                log(format!("{message}; next try in {} s", pull_backoff_ms(failures) / 1000));
                self.pulls.insert(image.clone(), PullState::Failed { message, retry_ms, failures });
            }
        }
        // Containers held back by this pull are started (or told why not) at once, not after
        // their start back-off.
        for record in self.records.values_mut() {
            for c in record.containers.values_mut() {
                if c.failure.as_ref().is_some_and(|f| f.reason == "ImagePulling") {
                    c.failure = None;
                }
            }
        }
    }

    /// Checks what can be checked before anything is made, then starts the container.
    fn try_start(
        &self,
        pod: &DesiredPod,
        container: &Container,
        id: &str,
    ) -> Result<i32, (&'static str, String)> {
        let asked: u64 = pod
            .spec
            .containers
            .iter()
            .filter_map(|c| c.resources.limits.memory.as_ref())
            .map(|q| q.value())
            .sum();
        if asked > self.board_memory {
            return Err((
                "InsufficientMemory",
                format!(
                    "the pod's containers ask for {} of memory (resources.limits.memory) but this board has {}",
                    human_bytes(asked),
                    human_bytes(self.board_memory)
                ),
            ));
        }
        self.check_state_disk().map_err(|e| ("StateDiskFull", e))?;
        self.check_host_ports(pod, container).map_err(|e| ("HostPortInUse", e))?;
        let image = match self.images.get(&container.image) {
            Ok(Some(image)) => image,
            Ok(None) => {
                return Err((
                    "ImageNotPresent",
                    format!(
                        "image {} is not in this board's image store (bramble-agent image import FILE adds it)",
                        container.image
                    ),
                ));
            }
            Err(e) => return Err(("ImageInspectError", e.to_string())),
        };
        let layers = self.images.layer_dirs(&image).map_err(|e| ("ImageCorrupt", e.to_string()))?;
        let binds = self.binds(pod, container).map_err(|e| ("VolumeError", e))?;
        let hostname: String = pod.name.chars().take(63).collect();
        let cgroup_path = format!("{}/{}/{}", runtime::cgroups::ROOT, pod.uid, container.name);
        let config = spec::build(&spec::SpecInput {
            container,
            image: &image.run,
            hostname: hostname.trim_end_matches(['-', '.']),
            cgroup_path: &cgroup_path,
            binds,
            pids_limit: spec::DEFAULT_PIDS_LIMIT,
            resolv_conf: spec::host_resolv_conf(),
        });
        self.runtime.start(id, &layers, &config).map_err(|e| ("CreateContainerError", e.to_string()))
    }

    fn volumes_dir(&self, uid: &str) -> PathBuf {
        self.options.state_dir.join("volumes").join(uid)
    }

    fn binds(&self, pod: &DesiredPod, container: &Container) -> Result<Vec<spec::BindMount>, String> {
        let mut binds = Vec::new();
        for mount in &container.volume_mounts {
            let Some(volume) = pod.spec.volumes.iter().find(|v| v.name == mount.name) else {
                return Err(format!("volumeMounts: the pod has no volume named {:?}", mount.name));
            };
            let source = match &volume.source {
                VolumeSource::HostPath { path, type_ } => {
                    let p = Path::new(path);
                    let made = match type_.as_deref() {
                        Some("DirectoryOrCreate") => fs::create_dir_all(p),
                        Some("FileOrCreate") => {
                            fs::OpenOptions::new().create(true).append(true).open(p).map(|_| ())
                        }
                        _ => Ok(()),
                    };
                    made.map_err(|e| format!("volume {}: hostPath {path}: {e}", volume.name))?;
                    if !p.exists() {
                        return Err(format!(
                            "volume {}: hostPath {path} does not exist on this board",
                            volume.name
                        ));
                    }
                    p.to_path_buf()
                }
                VolumeSource::EmptyDir { .. } => {
                    let dir = self.volumes_dir(&pod.uid).join(&volume.name);
                    fs::create_dir_all(&dir)
                        .map_err(|e| format!("volume {}: {}: {e}", volume.name, dir.display()))?;
                    dir
                }
                VolumeSource::Unsupported { kind } => {
                    return Err(format!(
                        "volume {}: {kind} volumes are not supported by Bramble",
                        volume.name
                    ));
                }
            };
            binds.push(spec::BindMount {
                source: source.display().to_string(),
                destination: mount.mount_path.clone(),
                read_only: mount.read_only,
            });
        }
        Ok(binds)
    }

    fn check_state_disk(&self) -> Result<(), String> {
        let dir = &self.options.state_dir;
        let (_, free) = disk_space(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if free < MIN_FREE_STATE_BYTES {
            return Err(format!(
                "the state disk ({}) has {} free; a container needs at least {}",
                dir.display(),
                human_bytes(free),
                human_bytes(MIN_FREE_STATE_BYTES)
            ));
        }
        Ok(())
    }

    /// A hostPort another process holds (by binding it for a moment) is refused, naming the
    /// pod that declares it when one does.
    fn check_host_ports(&self, pod: &DesiredPod, container: &Container) -> Result<(), String> {
        for port in &container.ports {
            let Some(host_port) = port.host_port else { continue };
            let free = match port.protocol {
                Protocol::Tcp => TcpListener::bind(("0.0.0.0", host_port)).is_ok(),
                Protocol::Udp => UdpSocket::bind(("0.0.0.0", host_port)).is_ok(),
                Protocol::Sctp => true,
            };
            if free {
                continue;
            }
            let holder = self.desired.iter().find(|other| {
                other.uid != pod.uid
                    && other
                        .spec
                        .containers
                        .iter()
                        .flat_map(|c| &c.ports)
                        .any(|p| p.host_port == Some(host_port) && p.protocol == port.protocol)
            });
            let proto = port.protocol.name();
            return Err(match holder {
                Some(other) => format!(
                    "hostPort {host_port}/{proto} is taken by pod {}/{} on this board",
                    other.namespace, other.name
                ),
                None => format!("hostPort {host_port}/{proto} is already in use on this board"),
            });
        }
        Ok(())
    }

    fn remove_pod(&mut self, uid: &str) {
        let mut names: BTreeSet<String> =
            self.records.get(uid).map(|r| r.containers.keys().cloned().collect()).unwrap_or_default();
        for id in self.runtime.container_ids() {
            if let Some((u, name)) = split_id(&id)
                && u == uid
            {
                names.insert(name.to_owned());
            }
        }
        let who =
            self.records.get(uid).map_or_else(|| uid.to_owned(), |r| format!("{}/{}", r.namespace, r.name));
        for name in &names {
            let id = container_id(uid, name);
            if let Err(e) = self.runtime.remove(&id) {
                log(format!("pod {who}: cannot remove container {name}: {e}"));
                return;
            }
            let log_path = self.runtime.paths(&id).log;
            for path in [runtime::logs::rotated(&log_path), log_path] {
                let _ = fs::remove_file(path);
            }
            self.probes.remove(&id);
            self.stopping.remove(&id);
            self.history.remove(&id);
            self.logged.remove(&id);
        }
        let volumes = self.volumes_dir(uid);
        if let Err(e) = fs::remove_dir_all(&volumes)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log(format!("pod {who}: cannot remove {}: {e}", volumes.display()));
        }
        if let Err(e) = self.pods.delete(uid) {
            log(format!("pod {who}: cannot remove its record: {e}"));
            return;
        }
        self.records.remove(uid);
        log(format!("pod {who}: removed"));
    }

    fn start_probes(&mut self, observed: &[ObservedPod], now: u64) {
        let mut running = BTreeSet::new();
        for pod in &self.desired {
            let Some(seen) = observed.iter().find(|o| o.uid == pod.uid) else { continue };
            for container in &pod.spec.containers {
                let Some(ContainerState::Running { started_ms, .. }) =
                    seen.containers.iter().find(|c| c.name == container.name).map(|c| &c.state)
                else {
                    continue;
                };
                let id = container_id(&pod.uid, &container.name);
                running.insert(id.clone());
                let probes =
                    self.probes.entry(id.clone()).or_insert_with(|| Probes::new(container, *started_ms));
                if probes.run != *started_ms {
                    *probes = Probes::new(container, *started_ms);
                }
                for (kind, probe) in probes.take_due(now) {
                    let target = probe::Target {
                        agent_binary: self.runtime.agent_binary.clone(),
                        state_root: self.runtime.state_root(),
                        container_id: id.clone(),
                        container: container.clone(),
                    };
                    let (sender, id, run) = (self.sender.clone(), id.clone(), probes.run);
                    std::thread::spawn(move || {
                        let outcome = probe::run(&probe, &target);
                        let _ = sender.send(Event::Probe { id, run, kind, outcome });
                    });
                }
            }
        }
        self.probes.retain(|id, _| running.contains(id));
    }

    fn status(&self, observed: &[ObservedPod]) -> AgentStatus {
        let mut pods = Vec::new();
        let mut uids: BTreeSet<&str> = self.desired.iter().map(|p| p.uid.as_str()).collect();
        uids.extend(self.records.keys().map(String::as_str));
        for uid in uids {
            let desired = self.desired.iter().find(|p| p.uid == uid);
            let record = self.records.get(uid);
            let (namespace, name, names): (String, String, Vec<String>) = match (desired, record) {
                (Some(d), _) => (
                    d.namespace.clone(),
                    d.name.clone(),
                    d.spec.containers.iter().map(|c| c.name.clone()).collect(),
                ),
                (None, Some(r)) => {
                    (r.namespace.clone(), r.name.clone(), r.containers.keys().cloned().collect())
                }
                (None, None) => continue,
            };
            let seen = observed.iter().find(|o| o.uid == uid);
            let mut containers = Vec::new();
            for cname in names {
                let id = container_id(uid, &cname);
                let rec = record.and_then(|r| r.containers.get(&cname));
                let state_seen =
                    seen.and_then(|o| o.containers.iter().find(|c| c.name == cname)).map(|c| &c.state);
                let last = rec.and_then(|r| r.last_exit.as_ref()).map(Terminated::from);
                let probes = self.probes.get(&id);
                let (state, ready) = match state_seen {
                    Some(ContainerState::Running { pid, .. }) => {
                        let pid = *pid;
                        let ready = probes.is_none_or(|p| p.started && p.ready && !p.unhealthy);
                        (
                            State::Running { pid, started_at: rec.and_then(|r| r.started_at).unwrap_or(0) },
                            ready,
                        )
                    }
                    Some(ContainerState::Failed { .. }) => {
                        let f = rec.and_then(|r| r.failure.as_ref());
                        let (reason, message) =
                            f.map_or_else(Default::default, |f| (f.reason.clone(), f.message.clone()));
                        (State::Waiting { reason, message }, false)
                    }
                    Some(ContainerState::Exited { exit_code, .. }) => {
                        let restarting =
                            desired.is_some_and(|d| reconcile::restarts(d.spec.restart_policy, *exit_code));
                        match (&last, restarting) {
                            (Some(t), true) => (
                                State::Waiting {
                                    reason: "CrashLoopBackOff".into(),
                                    message: format!(
                                        "restarting after exit code {} ({})",
                                        t.exit_code, t.reason
                                    ),
                                },
                                false,
                            ),
                            (Some(t), false) => (State::Terminated(t.clone()), false),
                            (None, _) => (
                                State::Terminated(Terminated {
                                    exit_code: *exit_code,
                                    reason: "Error".into(),
                                    finished_at: 0,
                                }),
                                false,
                            ),
                        }
                    }
                    None => {
                        (State::Waiting { reason: "ContainerCreating".into(), message: String::new() }, false)
                    }
                };
                containers.push(status::ContainerStatus {
                    name: cname.clone(),
                    ready,
                    restart_count: rec.map_or(0, |r| r.restarts),
                    last_state: if matches!(state, State::Terminated(_)) { None } else { last },
                    state,
                    probe_message: probes.and_then(|p| p.message.clone()),
                    recent_exits: self
                        .history
                        .get(&id)
                        .map(|h| h.iter().cloned().collect())
                        .unwrap_or_default(),
                });
            }
            let ever_ran = |c: &status::ContainerStatus| {
                record.and_then(|r| r.containers.get(&c.name)).is_some_and(ContainerRecord::ever_started)
            };
            let phase = if desired.is_none() {
                "Terminating"
            } else if !containers.is_empty()
                && containers.iter().all(|c| matches!(c.state, State::Terminated(_)))
            {
                let all_ok =
                    containers.iter().all(|c| matches!(&c.state, State::Terminated(t) if t.exit_code == 0));
                if all_ok { "Succeeded" } else { "Failed" }
            } else if containers.iter().any(|c| !ever_ran(c)) {
                "Pending"
            } else {
                "Running"
            };
            let waiting = containers.iter().find_map(|c| match &c.state {
                State::Waiting { reason, message } if reason != "ContainerCreating" => {
                    Some((reason.clone(), format!("container {}: {message}", c.name)))
                }
                _ => None,
            });
            let probe_message = containers
                .iter()
                .find_map(|c| c.probe_message.as_ref().map(|m| format!("container {}: {m}", c.name)));
            let (reason, message) = match (waiting, probe_message) {
                (Some((r, m)), _) => (Some(r), Some(m)),
                (None, Some(m)) => (Some("ProbeFailed".to_owned()), Some(m)),
                (None, None) => (None, None),
            };
            pods.push(PodStatus {
                namespace,
                name,
                uid: uid.to_owned(),
                phase: phase.to_owned(),
                ready: phase == "Running" && containers.iter().all(|c| c.ready),
                reason,
                message,
                containers,
            });
        }
        pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        AgentStatus { agent_pid: std::process::id(), pods, manifest_errors: self.manifest_errors.clone() }
    }
}

/// Where the coordinator's last desired set is kept.
const ASSIGNED_FILE: &str = "assigned.json";

/// A pod's status as the wire protocol reports it.
fn pod_report(pod: &PodStatus) -> PodReport {
    let phase = match pod.phase.as_str() {
        "Running" => PodPhase::Running,
        "Succeeded" => PodPhase::Succeeded,
        "Failed" => PodPhase::Failed,
        "Pending" => PodPhase::Pending,
        _ => PodPhase::Unknown,
    };
    let last_exit_code =
        pod.containers.iter().find_map(|c| c.last_state.as_ref().map(|t| t.exit_code)).or_else(|| {
            pod.containers.iter().find_map(|c| match &c.state {
                State::Terminated(t) => Some(t.exit_code),
                _ => None,
            })
        });
    PodReport {
        namespace: pod.namespace.clone(),
        name: pod.name.clone(),
        uid: pod.uid.clone(),
        phase,
        ready: pod.ready,
        restarts: pod.containers.iter().map(|c| c.restart_count).sum(),
        last_exit_code,
        // `ImagePullBackOff: container c: pull …: manifest unknown`, as the protocol shows it.
        reason: match (&pod.reason, &pod.message) {
            (Some(reason), Some(message)) if !message.is_empty() => Some(format!("{reason}: {message}")),
            (reason, _) => reason.clone(),
        },
    }
}

/// Binds the socket shims write to when a container ends, and forwards each datagram as a
/// wake-up.
fn listen_for_shims(path: &Path, sender: Sender<Event>) -> Result<(), String> {
    let _ = fs::remove_file(path);
    let socket = UnixDatagram::bind(path).map_err(|e| format!("{}: {e}", path.display()))?;
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while socket.recv(&mut buf).is_ok() {
            if sender.send(Event::Wake).is_err() {
                break;
            }
        }
    });
    Ok(())
}
