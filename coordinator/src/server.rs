//! `bramble coordinator`: one loop owns the cluster. Inputs (messages from boards, API calls, a
//! tick) are closed enums on one channel; after each batch the loop plans (`controller`),
//! commits what changed to the store, and publishes each board's desired set when it changed.
//! The broker client, the embedded broker and the HTTP server are tasks at the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::http::StatusCode;
use bramble_common::Object;
use bramble_common::identity::short_hash;
use bramble_common::objects::{DEFAULT_NAMESPACE, Deployment, Kind};
use bramble_common::wire::{
    self, Action, Channel, DesiredPods, NodeHealth, NodeStatus, ObservedPods, PodAssignment, Request,
    Response, Topics,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::json;
use tokio::sync::mpsc;

use crate::acl::{COORDINATOR_USER, Secrets};
use crate::api::{self, ApiCall, ApiReply, ApiRequest, status};
use crate::controller::{self, Change, NodeFacts, Round};
use crate::images::{Pins, Resolver};
use crate::model::{CHANGE_CAUSE, Cluster, NodeRecord, PodRecord, key_of, object_key};
use crate::nodes::{Condition, Nodes};
use crate::rollout::{Availability, RolloutStatus};
use crate::scheduler::{ARCH_LABEL, Placement, Resources};
use crate::secrets;
use crate::store::{RedbStore, Store, Write};
use crate::views;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// The HTTP API.
    pub listen: SocketAddr,
    /// Where the embedded broker listens (when `broker` is `None`).
    pub mqtt_listen: SocketAddr,
    /// An external broker, `mqtt://HOST:PORT`.
    pub broker: Option<String>,
    pub node_grace: Duration,
    pub placement: Placement,
    pub prefix: String,
    /// Resolve the tags of applied Deployments to digests (`--pin-images`).
    pub pin_images: bool,
    /// Registries reached over plain HTTP (`--insecure-registry`).
    pub insecure_registries: Vec<String>,
}

enum Input {
    Connected,
    Message { topic: String, payload: Vec<u8> },
    Api(ApiCall),
}

/// One line on standard error, the coordinator's log.
pub(crate) fn log(line: impl AsRef<str>) {
    eprintln!("bramble coordinator: {}", line.as_ref());
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// A random five-character pod name suffix, from Kubernetes' alphabet (no vowels).
fn pod_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Runs the coordinator until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("data dir {}", config.data_dir.display()))?;
    let tokens = secrets::load_or_create(&config.data_dir)?;
    for path in &tokens.created {
        let what = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let value = std::fs::read_to_string(path).unwrap_or_default();
        log(format!("created {what} (kept in {}): {}", path.display(), value.trim()));
    }
    let topics = Topics::new(&config.prefix)?;
    let store = RedbStore::open(&config.data_dir.join("state.redb"))?;
    let snapshot = store.load()?;
    let (cluster, problems) = Cluster::from_snapshot(&snapshot);
    for problem in problems {
        log(format!("store: {problem}"));
    }

    let broker_url = match &config.broker {
        Some(url) => url.clone(),
        None => {
            let secrets = Secrets {
                coordinator_password: tokens.mqtt_password.clone(),
                join_token: tokens.join.clone(),
            };
            crate::broker::start(config.mqtt_listen, secrets, topics.clone()).await?;
            log(format!("mqtt broker listening on {}", config.mqtt_listen));
            let port = config.mqtt_listen.port();
            format!("mqtt://127.0.0.1:{port}")
        }
    };
    let (host, port) = wire::parse_broker_url(&broker_url).map_err(anyhow::Error::msg)?;
    let (inputs, mut rx) = mpsc::channel::<Input>(4096);
    let mut options = MqttOptions::new(format!("{COORDINATOR_USER}-{}", std::process::id()), host, port);
    options.set_credentials(COORDINATOR_USER, tokens.mqtt_password.clone());
    options.set_keep_alive(Duration::from_secs(10));
    options.set_max_packet_size(wire::MAX_PACKET_BYTES, wire::MAX_PACKET_BYTES);
    options.set_request_channel_capacity(4096);
    let (client, eventloop) = AsyncClient::new(options, 4096);
    spawn_mqtt(eventloop, client.clone(), topics.clone(), inputs.clone(), broker_url.clone());

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("http api {}", config.listen))?;
    let (api_tx, mut api_rx) = mpsc::channel::<ApiCall>(256);
    let resolver =
        config.pin_images.then(|| Resolver { insecure_registries: config.insecure_registries.clone() });
    api::serve(listener, tokens.api.clone(), api_tx, resolver);
    log(format!("http api listening on {}", config.listen));
    let api_inputs = inputs.clone();
    tokio::spawn(async move {
        while let Some(call) = api_rx.recv().await {
            if api_inputs.send(Input::Api(call)).await.is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut coordinator = Coordinator {
        cluster,
        store: Box::new(store),
        unsaved: Vec::new(),
        nodes: Nodes::new(0, config.node_grace.as_millis() as u64),
        started,
        published: BTreeMap::new(),
        client,
        topics,
        placement: config.placement,
        dropped: 0,
        requests: BTreeMap::new(),
        availability: Availability::default(),
        progress: BTreeMap::new(),
        stalled: BTreeSet::new(),
    };
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        // Every tick reconciles (silences turn into NotReady with time alone); between ticks
        // only inputs that may change the plan do: routine health from 1,000 boards would
        // otherwise re-plan the cluster a thousand times a second.
        let due = tokio::select! {
            () = &mut shutdown => break,
            _ = tick.tick() => {
                coordinator.sweep_requests();
                true
            }
            input = rx.recv() => {
                let Some(input) = input else { break };
                let mut due = coordinator.handle(input);
                while let Ok(input) = rx.try_recv() {
                    due |= coordinator.handle(input);
                }
                due
            }
        };
        if due {
            coordinator.reconcile();
        }
    }
    Ok(())
}

fn spawn_mqtt(
    mut eventloop: rumqttc::EventLoop,
    client: AsyncClient,
    topics: Topics,
    inputs: mpsc::Sender<Input>,
    url: String,
) {
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    log(format!("connected to the mqtt broker {url}"));
                    last_error.clear();
                    // Health is periodic: at most once, outside the broker's in-flight window,
                    // which then stays free for status and observed pods (at least once).
                    let filters = [Channel::Status, Channel::Health, Channel::Observed, Channel::Responses]
                        .map(|c| {
                            let qos = if c == Channel::Health { QoS::AtMostOnce } else { QoS::AtLeastOnce };
                            rumqttc::SubscribeFilter::new(topics.all_nodes(c), qos)
                        });
                    if let Err(e) = client.subscribe_many(filters).await {
                        log(format!("cannot subscribe: {e}"));
                    }
                    if inputs.send(Input::Connected).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let input = Input::Message { topic: p.topic.clone(), payload: p.payload.to_vec() };
                    if inputs.send(input).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    let error = e.to_string();
                    if error != last_error {
                        log(format!("mqtt broker {url}: {error}; retrying every second"));
                        last_error = error;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
}

struct Coordinator {
    cluster: Cluster,
    store: Box<dyn Store>,
    /// Writes that failed to commit, tried again next round.
    unsaved: Vec<Write>,
    nodes: Nodes,
    started: Instant,
    /// The desired set last published per board (empty after a reconnect: all go again).
    published: BTreeMap<String, Vec<PodAssignment>>,
    client: AsyncClient,
    topics: Topics,
    placement: Placement,
    /// Messages dropped as malformed, refused or stale.
    dropped: u64,
    /// Logs and exec requests sent to boards and not finished, by id.
    requests: BTreeMap<String, PendingRequest>,
    /// Since when each pod has been Ready (for `minReadySeconds`).
    availability: Availability,
    /// Each Deployment's rollout as last seen, and since when it has not moved.
    progress: BTreeMap<String, Progress>,
    /// Deployments whose rollout passed its progress deadline.
    stalled: BTreeSet<String>,
}

/// A Deployment's rollout as last seen.
struct Progress {
    hash: String,
    status: RolloutStatus,
    /// When `status` last changed (coordinator milliseconds).
    since_ms: u64,
}

/// A request on a board whose answer goes to an HTTP client.
struct PendingRequest {
    node: String,
    chunks: mpsc::Sender<Response>,
    /// The `seq` expected next: QoS 1 may deliver a chunk twice.
    next_seq: u32,
}

impl Coordinator {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Takes one input; true when it may change the plan, so a reconcile should follow at once.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Connected => {
                self.published.clear();
                true
            }
            Input::Message { topic, payload } => self.on_message(&topic, &payload),
            Input::Api(call) => {
                // Reads (a dashboard polling `get pods`) change nothing to plan.
                let changes = matches!(
                    call.request,
                    ApiRequest::Apply { .. }
                        | ApiRequest::Delete { .. }
                        | ApiRequest::Scale { .. }
                        | ApiRequest::Rollback { .. }
                        | ApiRequest::Pause { .. }
                        | ApiRequest::Cordon { .. }
                );
                let answer = self.answer(call.request);
                let _ = call.reply.send(answer);
                changes
            }
        }
    }

    /// Takes a board's message; true unless it is routine health from a Ready board whose
    /// capacity did not change (or was dropped).
    fn on_message(&mut self, topic: &str, payload: &[u8]) -> bool {
        let Some((node, channel)) = self.topics.parse(topic) else {
            return false;
        };
        let now = self.now_ms();
        let result = match channel {
            Channel::Status => wire::decode::<NodeStatus>(payload)
                .map_err(|e| e.to_string())
                .and_then(|m| self.nodes.on_status(node, m, now).map_err(|e| e.to_string()))
                .map(|()| true),
            Channel::Health => wire::decode::<NodeHealth>(payload).map_err(|e| e.to_string()).and_then(|m| {
                let capacity = |h: &NodeHealth| (h.cpus, h.memory_total_bytes);
                let routine = self.nodes.condition(node, now).is_ready()
                    && self.nodes.view(node).and_then(|v| v.health.as_ref()).map(capacity)
                        == Some(capacity(&m));
                self.nodes.on_health(node, m, now).map_err(|e| e.to_string()).map(|()| !routine)
            }),
            Channel::Observed => wire::decode::<ObservedPods>(payload)
                .map_err(|e| e.to_string())
                .and_then(|m| self.nodes.on_observed(node, m).map_err(|e| e.to_string()))
                .map(|()| true),
            Channel::Responses => wire::decode::<Response>(payload)
                .map_err(|e| e.to_string())
                .and_then(|m| self.on_response(node, m))
                .map(|()| false),
            Channel::Desired | Channel::Requests => Ok(false),
        };
        result.unwrap_or_else(|e| {
            self.dropped += 1;
            log(format!("dropped a message on {topic} ({} dropped so far): {e}", self.dropped));
            false
        })
    }

    /// Hands a chunk of a board's answer to the HTTP client waiting for it.
    fn on_response(&mut self, node: &str, response: Response) -> Result<(), String> {
        let Some(pending) = self.requests.get_mut(&response.id) else {
            // A chunk after the client went away, or a duplicate of the last one.
            return Ok(());
        };
        if pending.node != node {
            return Err(format!(
                "response to request {} from {node}, which was sent to {}",
                response.id, pending.node
            ));
        }
        if response.seq < pending.next_seq {
            return Ok(()); // delivered twice
        }
        if response.seq > pending.next_seq {
            log(format!(
                "request {}: chunks {}..{} from {node} lost",
                response.id, pending.next_seq, response.seq
            ));
        }
        let Some(next) = response.seq.checked_add(1) else {
            return Err(format!("response to request {}: seq {} is out of range", response.id, response.seq));
        };
        pending.next_seq = next;
        let (id, done) = (response.id.clone(), response.done);
        if pending.chunks.try_send(response).is_err() {
            // The client is gone, or reads so slowly that 64 chunks wait: stop the board's work.
            self.cancel(&id);
        } else if done {
            self.requests.remove(&id);
        }
        Ok(())
    }

    /// Ends requests whose client went away (the board stops its work) or whose board is
    /// NotReady (the client is told).
    fn sweep_requests(&mut self) {
        let now = self.now_ms();
        let ids: Vec<String> = self.requests.keys().cloned().collect();
        for id in ids {
            let Some(pending) = self.requests.get(&id) else { continue };
            if pending.chunks.is_closed() {
                self.cancel(&id);
            } else if let crate::nodes::Condition::NotReady { reason } =
                self.nodes.condition(&pending.node, now)
            {
                let error = format!("board {} is NotReady: {reason}", pending.node);
                let _ = pending.chunks.try_send(Response {
                    id: id.clone(),
                    done: true,
                    error: Some(error),
                    ..Response::default()
                });
                self.requests.remove(&id);
            }
        }
    }

    /// Forgets request `id` and tells its board to stop it.
    fn cancel(&mut self, id: &str) {
        let Some(pending) = self.requests.remove(id) else { return };
        self.send_request(
            &pending.node,
            Request {
                id: format!("{id}-cancel"),
                namespace: String::new(),
                pod: String::new(),
                container: None,
                action: Action::Cancel { id: id.to_owned() },
            },
        );
    }

    fn send_request(&self, node: &str, request: Request) -> bool {
        let Ok(topic) = self.topics.node(node, Channel::Requests) else { return false };
        match self.client.try_publish(topic, QoS::AtLeastOnce, false, wire::encode(&request)) {
            Ok(()) => true,
            Err(e) => {
                log(format!("cannot send request {} to {node}: {e}", request.id));
                false
            }
        }
    }

    /// Sends logs or exec to the board of pod `namespace/name`; the answer names the board.
    fn pod_request(
        &mut self,
        namespace: String,
        name: String,
        container: Option<String>,
        action: Action,
        chunks: mpsc::Sender<Response>,
    ) -> ApiReply {
        let key = format!("{namespace}/{name}");
        let Some(pod) = self.cluster.pod(&key) else {
            return status(StatusCode::NOT_FOUND, "NotFound", format!("pod {key} not found"));
        };
        let Some(node) = pod.node.clone() else {
            return status(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                format!("pod {key} is Pending: not on a board yet"),
            );
        };
        if let crate::nodes::Condition::NotReady { reason } = self.nodes.condition(&node, self.now_ms()) {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "BoardNotReady",
                format!("pod {key} is on board {node}, which is NotReady: {reason}"),
            );
        }
        let id = {
            use rand::Rng;
            format!("{:016x}", rand::rng().random::<u64>())
        };
        let request = Request { id: id.clone(), namespace, pod: name, container, action };
        if !self.send_request(&node, request) {
            return status(
                StatusCode::SERVICE_UNAVAILABLE,
                "Busy",
                "the coordinator's mqtt queue is full; try again",
            );
        }
        self.requests.insert(id.clone(), PendingRequest { node: node.clone(), chunks, next_seq: 0 });
        (StatusCode::OK, json!({"kind": "PodRequest", "id": id, "node": node}))
    }

    /// How many pods are bound to board `name`.
    fn pods_on(&self, name: &str) -> usize {
        self.cluster.pods().filter(|p| p.node.as_deref() == Some(name)).count()
    }

    /// Every board the coordinator knows: remembered in the store or heard from.
    fn facts(&self) -> Vec<NodeFacts> {
        let now = self.now_ms();
        let mut names: Vec<&String> = self.cluster.nodes().keys().collect();
        names.extend(self.nodes.views().keys());
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let view = self.nodes.view(name);
                let status = view.and_then(|v| v.status.as_ref());
                let health = view.and_then(|v| v.health.as_ref());
                let mut labels = status.map(|s| s.labels.clone()).unwrap_or_default();
                if let Some(s) = status.filter(|s| !s.arch.is_empty()) {
                    labels.insert(ARCH_LABEL.to_owned(), s.arch.clone());
                }
                NodeFacts {
                    name: name.clone(),
                    condition: self.nodes.condition(name, now),
                    cordoned: self.cluster.nodes().get(name).is_some_and(|n| n.cordoned),
                    labels,
                    allocatable: health.map_or(Resources::default(), |h| Resources {
                        cpu_millis: u64::from(h.cpus) * 1000,
                        memory_bytes: h.memory_total_bytes,
                    }),
                }
            })
            .collect()
    }

    fn reconcile(&mut self) {
        // Boards heard from are remembered, so their sets are republished after a restart.
        let heard: Vec<String> =
            self.nodes.views().keys().filter(|n| !self.cluster.nodes().contains_key(*n)).cloned().collect();
        for name in heard {
            self.cluster.put_node(&name, NodeRecord::default());
        }
        let facts = self.facts();
        let frozen = self.observe_rollouts(&facts);
        let round = Round {
            nodes: &facts,
            placement: self.placement,
            now: unix_now(),
            availability: &self.availability,
            frozen: &frozen,
        };
        let changes = controller::plan(&self.cluster, &round, &mut pod_suffix);
        for change in &changes {
            match change {
                Change::Delete { key, reason } => log(format!("pod {key}: removed: {reason}")),
                Change::Bind { key, node } => log(format!("pod {key}: bound to {node}")),
                Change::Unschedulable { key, reason } => log(format!("pod {key}: pending: {reason}")),
                Change::Create(_) => {}
            }
        }
        controller::apply(&mut self.cluster, changes);
        if !self.save() {
            // Nothing is published that the store does not hold: a restart must find the same pods.
            return;
        }
        let sets = controller::desired_sets(&self.cluster, facts.iter().map(|f| f.name.as_str()));
        for (node, pods) in sets {
            if self.published.get(&node) == Some(&pods) {
                continue;
            }
            let mut record = self.cluster.nodes().get(&node).cloned().unwrap_or_default();
            let generation = (record.generation + 1).max(unix_ms());
            let Ok(topic) = self.topics.node(&node, Channel::Desired) else { continue };
            let message = DesiredPods { node: node.clone(), generation, pods: pods.clone() };
            match self.client.try_publish(topic, QoS::AtLeastOnce, true, wire::encode(&message)) {
                Ok(()) => {
                    record.generation = generation;
                    self.cluster.put_node(&node, record);
                    self.published.insert(node, pods);
                }
                Err(e) => log(format!("cannot publish the desired pods of {node}: {e}; retrying")),
            }
        }
        self.save();
    }

    /// Notes which pods are Ready and how far each rollout is; returns the Deployments whose
    /// rollout must not move: paused, or without progress for `progressDeadlineSeconds`.
    fn observe_rollouts(&mut self, facts: &[NodeFacts]) -> BTreeSet<String> {
        let now = self.now_ms();
        let lost: BTreeSet<&str> = facts
            .iter()
            .filter(|f| matches!(f.condition, Condition::NotReady { .. }))
            .map(|f| f.name.as_str())
            .collect();
        let ready = self
            .cluster
            .pods()
            .filter(|p| {
                p.node.as_deref().is_some_and(|n| !lost.contains(n)) && views::reported_ready(p, &self.nodes)
            })
            .map(PodRecord::key);
        self.availability.observe(now, ready);
        let mut owned: BTreeMap<String, Vec<&PodRecord>> = BTreeMap::new();
        for pod in self.cluster.pods() {
            if let Some(owner) = pod.owner_key() {
                owned.entry(owner).or_default().push(pod);
            }
        }
        let (mut frozen, mut stalled, mut progress) = (BTreeSet::new(), BTreeSet::new(), BTreeMap::new());
        for object in self.cluster.objects() {
            let Object::Deployment(d) = object else { continue };
            let key = format!("{}/{}", d.metadata.namespace_or_default(), d.metadata.name);
            let hash = short_hash(&d.spec.template);
            let pods = owned.get(&key).map(Vec::as_slice).unwrap_or_default();
            let status = RolloutStatus::of(d, &hash, pods, &self.availability);
            // A paused rollout's clock starts again when it resumes.
            let since_ms = match self.progress.get(&key) {
                Some(p) if p.hash == hash && p.status == status && !d.spec.paused => p.since_ms,
                _ => now,
            };
            let deadline_ms = u64::from(d.spec.progress_deadline_seconds) * 1000;
            if !status.complete(d.spec.replicas) && now.saturating_sub(since_ms) > deadline_ms {
                if !self.stalled.contains(&key) {
                    log(format!(
                        "deployment {key}: revision {hash} made no progress in {}s (ProgressDeadlineExceeded); its old pods are kept",
                        d.spec.progress_deadline_seconds
                    ));
                }
                stalled.insert(key.clone());
            }
            if d.spec.paused || stalled.contains(&key) {
                frozen.insert(key.clone());
            }
            progress.insert(key, Progress { hash, status, since_ms });
        }
        (self.progress, self.stalled) = (progress, stalled);
        frozen
    }

    /// Changes the stored Deployment `namespace/name` with `edit`, which says what it did or
    /// refuses with a reply.
    fn edit_deployment(
        &mut self,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Deployment, &Cluster) -> Result<serde_json::Value, ApiReply>,
    ) -> ApiReply {
        let key = object_key(Kind::Deployment, namespace, name);
        let Some(Object::Deployment(mut d)) = self.cluster.object(&key).cloned() else {
            return status(StatusCode::NOT_FOUND, "NotFound", not_found(Kind::Deployment, namespace, name));
        };
        match edit(&mut d, &self.cluster) {
            Ok(answer) => {
                self.cluster.put_object(Object::Deployment(d));
                (StatusCode::OK, answer)
            }
            Err(reply) => reply,
        }
    }

    /// Restates an earlier revision's template (`rollout undo`): revision `to` (0: the one
    /// before the current), which then becomes the newest revision.
    fn rollback(&mut self, namespace: &str, name: &str, to: u64) -> ApiReply {
        self.edit_deployment(namespace, name, |d, cluster| {
            let current = short_hash(&d.spec.template);
            let revisions = cluster.revisions(namespace, name);
            let target = if to == 0 {
                revisions.iter().rev().find(|r| r.template_hash != current)
            } else {
                revisions.iter().find(|r| r.number == to)
            };
            let Some(target) = target else {
                let message = if to == 0 {
                    format!("deployment {namespace}/{name}: no earlier revision to roll back to")
                } else {
                    format!("deployment {namespace}/{name}: no revision {to} in its history")
                };
                return Err(status(StatusCode::BAD_REQUEST, "BadRequest", message));
            };
            if target.template_hash == current {
                let message = format!("skipped rollback (current template already matches revision {})", target.number);
                return Err((StatusCode::OK, json!({"kind": "Status", "status": "Success", "message": message})));
            }
            d.spec.template = target.template.clone();
            match &target.change_cause {
                Some(cause) => d.metadata.annotations.insert(CHANGE_CAUSE.to_owned(), cause.clone()),
                None => d.metadata.annotations.remove(CHANGE_CAUSE),
            };
            Ok(json!({"kind": "Status", "status": "Success", "message": format!("deployment.apps/{name} rolled back")}))
        })
    }

    /// Commits what changed; false if the store refused (kept for the next round).
    fn save(&mut self) -> bool {
        self.unsaved.extend(self.cluster.take_writes());
        if self.unsaved.is_empty() {
            return true;
        }
        match self.store.commit(&self.unsaved) {
            Ok(()) => {
                self.unsaved.clear();
                true
            }
            Err(e) => {
                log(format!("cannot save the cluster state: {e}; retrying"));
                false
            }
        }
    }

    fn answer(&mut self, request: ApiRequest) -> ApiReply {
        let facts = self.facts();
        match request {
            ApiRequest::Apply { namespace, objects, pins } => self.apply(&namespace, objects, &pins),
            ApiRequest::Pod { namespace, name, container, action, chunks } => {
                self.pod_request(namespace, name, container, action, chunks)
            }
            ApiRequest::ListNodes => {
                // Pods per board counted once, not once per board.
                let mut pods: BTreeMap<&str, usize> = BTreeMap::new();
                for node in self.cluster.pods().filter_map(|p| p.node.as_deref()) {
                    *pods.entry(node).or_default() += 1;
                }
                let count = |name: &str| pods.get(name).copied().unwrap_or(0);
                let items = facts.iter().map(|f| views::node(f, &self.nodes, count(&f.name))).collect();
                (StatusCode::OK, views::list("Node", "v1", items))
            }
            ApiRequest::GetNode { name } => match facts.iter().find(|f| f.name == name) {
                Some(f) => (StatusCode::OK, views::node(f, &self.nodes, self.pods_on(&name))),
                None => status(StatusCode::NOT_FOUND, "NotFound", format!("node {name} not found")),
            },
            ApiRequest::Cordon { name, cordoned } => {
                if !facts.iter().any(|f| f.name == name) {
                    return status(StatusCode::NOT_FOUND, "NotFound", format!("node {name} not found"));
                }
                let mut record = self.cluster.nodes().get(&name).cloned().unwrap_or_default();
                record.cordoned = cordoned;
                self.cluster.put_node(&name, record);
                let facts = self.facts();
                let node = facts
                    .iter()
                    .find(|f| f.name == name)
                    .map(|f| views::node(f, &self.nodes, self.pods_on(&name)));
                (StatusCode::OK, node.unwrap_or_default())
            }
            ApiRequest::List { kind: Kind::Pod, namespace } => {
                let items = self
                    .cluster
                    .pods()
                    .filter(|p| namespace.as_deref().is_none_or(|ns| p.namespace == ns))
                    .map(|p| views::pod(p, &self.nodes, &facts))
                    .collect();
                (StatusCode::OK, views::list("Pod", "v1", items))
            }
            ApiRequest::Get { kind: Kind::Pod, namespace, name } => {
                match self.cluster.pod(&format!("{namespace}/{name}")) {
                    Some(p) => (StatusCode::OK, views::pod(p, &self.nodes, &facts)),
                    None => {
                        status(StatusCode::NOT_FOUND, "NotFound", format!("pod {namespace}/{name} not found"))
                    }
                }
            }
            ApiRequest::Delete { kind: Kind::Pod, namespace, name } => {
                let key = format!("{namespace}/{name}");
                let Some(pod) = self.cluster.pod(&key).cloned() else {
                    return status(StatusCode::NOT_FOUND, "NotFound", format!("pod {key} not found"));
                };
                if pod.owner.is_none() {
                    self.cluster.delete_object(&object_key(Kind::Pod, &namespace, &name));
                }
                self.cluster.delete_pod(&key);
                (
                    StatusCode::OK,
                    json!({"kind": "Status", "status": "Success", "message": format!("pod \"{name}\" deleted")}),
                )
            }
            ApiRequest::List { kind, namespace } => {
                let items = self
                    .cluster
                    .objects()
                    .filter(|o| o.kind() == kind)
                    .filter(|o| {
                        namespace.as_deref().is_none_or(|ns| o.metadata().namespace_or_default() == ns)
                    })
                    .map(|o| self.object_view(o))
                    .collect();
                (StatusCode::OK, views::list(kind.name(), kind.api_version(), items))
            }
            ApiRequest::Get { kind, namespace, name } => {
                match self.cluster.object(&object_key(kind, &namespace, &name)) {
                    Some(o) => (StatusCode::OK, self.object_view(o)),
                    None => status(StatusCode::NOT_FOUND, "NotFound", not_found(kind, &namespace, &name)),
                }
            }
            ApiRequest::Delete { kind, namespace, name } => {
                match self.cluster.delete_object(&object_key(kind, &namespace, &name)) {
                    Some(_) => {
                        let message = format!("{} \"{name}\" deleted", kind.name().to_lowercase());
                        (StatusCode::OK, json!({"kind": "Status", "status": "Success", "message": message}))
                    }
                    None => status(StatusCode::NOT_FOUND, "NotFound", not_found(kind, &namespace, &name)),
                }
            }
            ApiRequest::Scale { namespace, name, replicas } => self.edit_deployment(&namespace, &name, |d, _| {
                d.spec.replicas = replicas;
                Ok(json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": {"name": name, "namespace": namespace}, "spec": {"replicas": replicas}}))
            }),
            ApiRequest::Pause { namespace, name, paused } => self.edit_deployment(&namespace, &name, |d, _| {
                d.spec.paused = paused;
                let what = if paused { "paused" } else { "resumed" };
                Ok(json!({"kind": "Status", "status": "Success", "message": format!("deployment.apps/{name} {what}")}))
            }),
            ApiRequest::Rollback { namespace, name, to_revision } => self.rollback(&namespace, &name, to_revision),
            ApiRequest::Revisions { namespace, name } => {
                if self.cluster.object(&object_key(Kind::Deployment, &namespace, &name)).is_none() {
                    return status(StatusCode::NOT_FOUND, "NotFound", not_found(Kind::Deployment, &namespace, &name));
                }
                let items: Vec<serde_json::Value> = self
                    .cluster
                    .revisions(&namespace, &name)
                    .into_iter()
                    .map(|r| json!({"revision": r.number, "templateHash": r.template_hash, "changeCause": r.change_cause, "template": r.template}))
                    .collect();
                (StatusCode::OK, json!({"kind": "DeploymentRevisionList", "apiVersion": "bramble.dev/v1", "items": items}))
            }
        }
    }

    fn object_view(&self, object: &Object) -> serde_json::Value {
        match object {
            Object::Deployment(d) => {
                let key = format!("{}/{}", d.metadata.namespace_or_default(), d.metadata.name);
                views::deployment(d, &self.cluster, &self.availability, self.stalled.contains(&key))
            }
            other => serde_json::to_value(other).unwrap_or_default(),
        }
    }

    /// Applies manifests: each object is created, configured or unchanged, as `kubectl apply`
    /// says. Nothing is applied if any document has an error.
    fn apply(&mut self, namespace: &str, objects: Vec<Object>, pins: &Pins) -> ApiReply {
        let mut results = Vec::new();
        for mut object in objects {
            set_namespace(&mut object, namespace);
            let key = key_of(&object);
            let live = self.cluster.object(&key);
            // `rollout pause` is not undone by applying a manifest that does not mention it, as
            // with kubectl apply; `rollout resume` undoes it.
            if let (Some(Object::Deployment(live)), Object::Deployment(applied)) = (live, &mut object) {
                applied.spec.paused |= live.spec.paused;
            }
            let existed = live.is_some();
            let pinned: BTreeMap<String, String> =
                pins.iter().filter_map(|(image, pin)| Some((image.clone(), pin.clone().ok()?))).collect();
            let changed = self.cluster.put_object_pinned(object.clone(), &pinned);
            let result = match (existed, changed) {
                (false, _) => "created",
                (true, true) => "configured",
                (true, false) => "unchanged",
            };
            let kind = object.kind();
            let group = if kind == Kind::Deployment { ".apps" } else { "" };
            results.push(json!({
                "object": format!("{}{group}/{}", kind.name().to_lowercase(), object.metadata().name),
                "namespace": object.metadata().namespace,
                "result": result,
            }));
        }
        // An image that could not be pinned runs by its tag: said, not refused.
        let warnings: Vec<String> = pins
            .iter()
            .filter_map(|(image, pin)| {
                pin.as_ref().err().map(|e| format!("image {image}: not pinned to a digest: {e}"))
            })
            .collect();
        (
            StatusCode::OK,
            json!({"kind": "ApplyResult", "apiVersion": "bramble.dev/v1", "items": results, "warnings": warnings}),
        )
    }
}

fn not_found(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.is_namespaced() {
        format!("{} {namespace}/{name} not found", kind.name().to_lowercase())
    } else {
        format!("{} {name} not found", kind.name().to_lowercase())
    }
}

/// Objects without a namespace take the one applied to (`default` unless told).
fn set_namespace(object: &mut Object, namespace: &str) {
    if !object.kind().is_namespaced() {
        return;
    }
    let namespace = if namespace.is_empty() { DEFAULT_NAMESPACE } else { namespace };
    object.metadata_mut().namespace.get_or_insert_with(|| namespace.to_owned());
}
