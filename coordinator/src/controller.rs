//! The coordinator's reconciler: from the applied objects, the pods kept and the boards'
//! conditions to the changes that make the pods match (`plan`, pure), then what each board
//! should run (`desired_sets`, pure). [`apply`] carries a plan out on the in-memory cluster.
//!
//! - A Deployment keeps `replicas` pods of its current template, named as Kubernetes names
//!   them (`web-<template hash>-<5 random>`). Pods of an earlier template are replaced as its
//!   strategy says (`rollout::step`: rolling with `maxSurge`/`maxUnavailable`, or recreate;
//!   nothing while paused or past its progress deadline), pods on a NotReady board are
//!   replaced elsewhere, and a surplus is removed: unbound pods first, then those on boards
//!   not Ready, then those on the boards with the most replicas, newest first.
//! - A Pod object is kept as one pod; a changed spec replaces it.
//! - Unbound pods go to the scheduler; what it cannot place stays Pending with its reason.

use std::collections::{BTreeMap, BTreeSet};

use bramble_common::Object;
use bramble_common::identity::{pod_uid, short_hash};
use bramble_common::objects::{Deployment, Kind, Pod};
use bramble_common::wire::PodAssignment;

use crate::model::{Cluster, PodRecord, object_key};
use crate::nodes::Condition;
use crate::rollout::{self, Availability};
use crate::scheduler::{self, Board, Decision, HOSTNAME_LABEL, Placement, PodRequest, Resources};

/// The label Kubernetes puts on a Deployment's pods with their template's hash.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

/// A board as the controller needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub name: String,
    pub condition: Condition,
    pub cordoned: bool,
    /// Its labels, with `kubernetes.io/arch` and `kubernetes.io/hostname`.
    pub labels: BTreeMap<String, String>,
    pub allocatable: Resources,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Create(Box<PodRecord>),
    Delete { key: String, reason: String },
    Bind { key: String, node: String },
    Unschedulable { key: String, reason: String },
}

/// What one round of planning knows besides the cluster.
#[derive(Debug, Clone, Copy)]
pub struct Round<'a> {
    pub nodes: &'a [NodeFacts],
    pub placement: Placement,
    /// Unix seconds, stamped on new pods.
    pub now: u64,
    pub availability: &'a Availability,
    /// Deployments (`namespace/name`) whose rollout is paused or past its progress deadline.
    pub frozen: &'a BTreeSet<String>,
}

/// The changes that bring the pods in line with the objects and boards. `suffix` gives the
/// random part of a new pod's name.
pub fn plan(cluster: &Cluster, round: &Round, suffix: &mut dyn FnMut() -> String) -> Vec<Change> {
    let mut planner = Planner {
        cluster,
        conditions: round.nodes.iter().map(|n| (n.name.as_str(), &n.condition)).collect(),
        now: round.now,
        availability: round.availability,
        frozen: round.frozen,
        names: cluster.pods().map(PodRecord::key).collect(),
        changes: Vec::new(),
        deleted: BTreeSet::new(),
        created: Vec::new(),
        lost: BTreeMap::new(),
    };
    // Each Deployment's pods, found in one pass over the pods.
    let mut owned: BTreeMap<(&str, &str), Vec<&PodRecord>> = BTreeMap::new();
    for pod in cluster.pods() {
        if let Some(owner) = &pod.owner {
            owned.entry((pod.namespace.as_str(), owner.as_str())).or_default().push(pod);
        } else if cluster.object(&object_key(Kind::Pod, &pod.namespace, &pod.name)).is_none() {
            planner.delete(pod.key(), "its object was deleted".into());
        }
    }
    for object in cluster.objects() {
        match object {
            Object::Deployment(d) => {
                let pods = owned.remove(&(d.metadata.namespace_or_default(), d.metadata.name.as_str()));
                planner.deployment(d, pods.unwrap_or_default(), suffix);
            }
            Object::Pod(p) => planner.pod_object(p),
            Object::Namespace(_) | Object::Service(_) | Object::ConfigMap(_) => {}
        }
    }
    // Pods of Deployments that are gone.
    for pod in owned.into_values().flatten() {
        planner.delete(pod.key(), "its object was deleted".into());
    }
    planner.schedule(round.nodes, round.placement)
}

/// The state of one round of planning.
struct Planner<'a> {
    cluster: &'a Cluster,
    conditions: BTreeMap<&'a str, &'a Condition>,
    now: u64,
    availability: &'a Availability,
    frozen: &'a BTreeSet<String>,
    /// Every pod key in use, so new names never clash.
    names: BTreeSet<String>,
    changes: Vec<Change>,
    deleted: BTreeSet<String>,
    created: Vec<PodRecord>,
    /// Pods on NotReady boards, per owning Deployment: each is deleted once a replacement is
    /// bound this round. Without a place for the replacement the pod stays, so a lone board
    /// that comes back finds its pods as they were.
    lost: BTreeMap<String, Vec<(String, String)>>,
}

impl<'a> Planner<'a> {
    fn delete(&mut self, key: String, reason: String) {
        self.changes.push(Change::Delete { key: key.clone(), reason });
        self.deleted.insert(key);
    }

    fn condition(&self, node: Option<&str>) -> Option<&Condition> {
        node.and_then(|n| self.conditions.get(n)).copied()
    }

    fn deployment(&mut self, d: &Deployment, pods: Vec<&'a PodRecord>, suffix: &mut dyn FnMut() -> String) {
        let namespace = d.metadata.namespace_or_default();
        let hash = short_hash(&d.spec.template);
        let owner = format!("{namespace}/{}", d.metadata.name);
        let (mut new, mut old): (Vec<&PodRecord>, Vec<&PodRecord>) = (Vec::new(), Vec::new());
        for pod in pods {
            let current = pod.template_hash.as_deref() == Some(hash.as_str());
            if let Some(Condition::NotReady { .. }) = self.condition(pod.node.as_deref()) {
                let node = pod.node.clone().unwrap_or_default();
                if current {
                    self.lost.entry(owner.clone()).or_default().push((pod.key(), node));
                } else {
                    // An old pod on a lost board serves nobody: the rollout replaces it.
                    self.delete(pod.key(), format!("board {node} is not ready"));
                }
            } else if current {
                new.push(pod);
            } else {
                old.push(pod);
            }
        }
        let replicas = d.spec.replicas as usize;
        // Lost pods wait for their replacements to be placed, but only as many as are still
        // wanted beside the placed pods: after a scale down the rest go now.
        let wanted = replicas.saturating_sub(new.iter().filter(|p| p.node.is_some()).count());
        let unwanted: Vec<(String, String)> =
            self.lost.get_mut(&owner).map(|l| l.split_off(wanted.min(l.len()))).unwrap_or_default();
        for (key, node) in unwanted {
            self.delete(key, format!("board {node} is not ready"));
        }
        if new.len() > replicas {
            self.remove_surplus(&mut new, replicas);
        }
        let create = if old.is_empty() {
            replicas - new.len()
        } else {
            let step = rollout::step(d, &new, &old, self.availability, self.frozen.contains(&owner));
            for key in step.delete {
                self.delete(key, format!("replaced by revision {hash}"));
            }
            step.create
        };
        for _ in 0..create {
            let name = loop {
                let name = format!("{}-{hash}-{}", d.metadata.name, suffix());
                if self.names.insert(format!("{namespace}/{name}")) {
                    break name;
                }
            };
            let mut labels = d.spec.template.metadata.labels.clone();
            labels.insert(TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
            let mut spec = d.spec.template.spec.clone();
            // The revision's pinned digests: every replica runs the same bytes.
            if let Some(revision) = self.cluster.revision_of(namespace, &d.metadata.name, &hash) {
                for container in &mut spec.containers {
                    if let Some(pinned) = revision.pins.get(&container.image) {
                        container.image = pinned.clone();
                    }
                }
            }
            self.created.push(PodRecord {
                uid: pod_uid(namespace, &name, &spec),
                namespace: namespace.to_owned(),
                name,
                owner: Some(d.metadata.name.clone()),
                template_hash: Some(hash.clone()),
                labels,
                spec,
                node: None,
                pending_reason: None,
                created: self.now,
            });
        }
    }

    /// Removes the least useful of `keep` down to `replicas`: unbound pods first, then those on
    /// boards not Ready, then those on the boards with the most replicas, newest first.
    fn remove_surplus(&mut self, keep: &mut Vec<&PodRecord>, replicas: usize) {
        let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
        for pod in keep.iter() {
            *per_node.entry(pod.node.as_deref().unwrap_or("")).or_default() += 1;
        }
        keep.sort_by_key(|p| {
            let node = p.node.as_deref();
            (
                node.is_some(),
                self.condition(node).is_some_and(Condition::is_ready),
                std::cmp::Reverse(per_node.get(node.unwrap_or("")).copied().unwrap_or(0)),
                std::cmp::Reverse(p.created),
                std::cmp::Reverse(p.name.clone()),
            )
        });
        let surplus = keep.len() - replicas;
        for pod in keep.drain(..surplus) {
            self.delete(pod.key(), "scaled down".into());
        }
    }

    /// A Pod object is one pod; a changed spec replaces it.
    fn pod_object(&mut self, p: &Pod) {
        let namespace = p.metadata.namespace_or_default();
        let uid = pod_uid(namespace, &p.metadata.name, &p.spec);
        let key = format!("{namespace}/{}", p.metadata.name);
        match self.cluster.pod(&key) {
            Some(existing) if existing.uid == uid && existing.owner.is_none() => return,
            Some(_) => self.delete(key, "its spec changed".into()),
            None => {}
        }
        self.created.push(PodRecord {
            namespace: namespace.to_owned(),
            name: p.metadata.name.clone(),
            uid,
            owner: None,
            template_hash: None,
            labels: p.metadata.labels.clone(),
            spec: p.spec.clone(),
            node: None,
            pending_reason: None,
            created: self.now,
        });
    }

    /// Places what is unbound; the changes of the whole round.
    fn schedule(mut self, nodes: &[NodeFacts], placement: Placement) -> Vec<Change> {
        let kept: Vec<&PodRecord> =
            self.cluster.pods().filter(|p| !self.deleted.contains(&p.key())).collect();
        let boards = boards(nodes, &kept);
        let mut pending: Vec<&PodRecord> = kept.into_iter().filter(|p| p.node.is_none()).collect();
        pending.extend(self.created.iter());
        pending.sort_by_key(|p| p.key());
        let requests: Vec<PodRequest> = pending
            .iter()
            .map(|p| PodRequest::from_spec(&p.key(), p.owner_key().as_deref(), &p.spec))
            .collect();
        let decisions = scheduler::schedule(&requests, &boards, placement);
        let mut placed = Vec::with_capacity(decisions.len());
        for (pod, decision) in pending.iter().zip(decisions) {
            match decision {
                Decision::Bind { board, .. } => {
                    let replaced = pod.owner_key().and_then(|o| self.lost.get_mut(&o)).and_then(Vec::pop);
                    if let Some((key, node)) = replaced {
                        self.changes.push(Change::Delete {
                            key: key.clone(),
                            reason: format!("board {node} is not ready; replaced by {}", pod.name),
                        });
                        self.deleted.insert(key);
                    }
                    placed.push(Change::Bind { key: pod.key(), node: board });
                }
                // Said once: a reason already recorded on a kept pod is not said again.
                Decision::Pending { reason, .. } => {
                    let known = self.cluster.pod(&pod.key()).is_some();
                    if !known || pod.pending_reason.as_deref() != Some(reason.as_str()) {
                        placed.push(Change::Unschedulable { key: pod.key(), reason });
                    }
                }
            }
        }
        self.changes.extend(self.created.into_iter().map(|p| Change::Create(Box::new(p))));
        self.changes.extend(placed);
        self.changes
    }
}

/// The boards for the scheduler, with what the kept pods already take of them.
fn boards(nodes: &[NodeFacts], kept: &[&PodRecord]) -> Vec<Board> {
    let mut boards: Vec<Board> = nodes
        .iter()
        .map(|n| {
            let mut labels = n.labels.clone();
            labels.entry(HOSTNAME_LABEL.to_owned()).or_insert_with(|| n.name.clone());
            Board {
                name: n.name.clone(),
                ready: n.condition.is_ready(),
                cordoned: n.cordoned,
                labels,
                allocatable: n.allocatable,
                ..Board::default()
            }
        })
        .collect();
    let index: BTreeMap<String, usize> =
        boards.iter().enumerate().map(|(i, b)| (b.name.clone(), i)).collect();
    for pod in kept {
        let Some(&i) = pod.node.as_ref().and_then(|n| index.get(n)) else { continue };
        let board = &mut boards[i];
        let request = PodRequest::from_spec(&pod.key(), None, &pod.spec);
        board.requested.cpu_millis += request.requests.cpu_millis;
        board.requested.memory_bytes += request.requests.memory_bytes;
        board.host_ports.extend(request.host_ports.iter().copied());
        if let Some(owner) = pod.owner_key() {
            *board.owners.entry(owner).or_default() += 1;
        }
    }
    boards
}

/// Carries `changes` out on `cluster`.
pub fn apply(cluster: &mut Cluster, changes: Vec<Change>) {
    for change in changes {
        match change {
            Change::Create(pod) => cluster.put_pod(*pod),
            Change::Delete { key, .. } => {
                cluster.delete_pod(&key);
            }
            Change::Bind { key, node } => {
                if let Some(mut pod) = cluster.pod(&key).cloned() {
                    pod.node = Some(node);
                    pod.pending_reason = None;
                    cluster.put_pod(pod);
                }
            }
            Change::Unschedulable { key, reason } => {
                if let Some(mut pod) = cluster.pod(&key).cloned() {
                    pod.pending_reason = Some(reason);
                    cluster.put_pod(pod);
                }
            }
        }
    }
}

/// What each board should run: the pods bound to it, by key. Every board in `nodes` gets a
/// set, empty if nothing is bound to it.
pub fn desired_sets<'a>(
    cluster: &Cluster,
    nodes: impl IntoIterator<Item = &'a str>,
) -> BTreeMap<String, Vec<PodAssignment>> {
    let mut sets: BTreeMap<String, Vec<PodAssignment>> =
        nodes.into_iter().map(|n| (n.to_owned(), Vec::new())).collect();
    for pod in cluster.pods() {
        let Some(node) = &pod.node else { continue };
        sets.entry(node.clone()).or_default().push(PodAssignment {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
            labels: pod.labels.clone(),
            spec: pod.spec.clone(),
        });
    }
    sets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{deployment, object};

    fn node(name: &str, condition: Condition) -> NodeFacts {
        NodeFacts {
            name: name.into(),
            condition,
            cordoned: false,
            labels: BTreeMap::new(),
            allocatable: Resources { cpu_millis: 4000, memory_bytes: 4 << 30 },
        }
    }

    fn ready(names: &[&str]) -> Vec<NodeFacts> {
        names.iter().map(|n| node(n, Condition::Ready)).collect()
    }

    /// Plans and applies until nothing changes; returns the changes of the first round.
    fn settle(cluster: &mut Cluster, nodes: &[NodeFacts]) -> Vec<Change> {
        let mut counter = 0u32;
        let mut suffix = || {
            counter += 1;
            format!("p{counter:04}")
        };
        let (availability, frozen) = (Availability::default(), BTreeSet::new());
        let round = Round {
            nodes,
            placement: Placement::Spread,
            now: 100,
            availability: &availability,
            frozen: &frozen,
        };
        let first = plan(cluster, &round, &mut suffix);
        apply(cluster, first.clone());
        let again = plan(cluster, &round, &mut suffix);
        assert!(again.is_empty(), "a second round changes nothing: {again:?}");
        first
    }

    fn per_node(cluster: &Cluster) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for pod in cluster.pods() {
            *out.entry(pod.node.clone().unwrap_or_default()).or_default() += 1;
        }
        out
    }

    #[test]
    fn six_replicas_spread_two_two_two_and_scale_both_ways() {
        let mut cluster = Cluster::default();
        cluster.put_object(deployment("web", 6, "busybox"));
        let nodes = ready(&["pi-1", "pi-2", "pi-3"]);
        settle(&mut cluster, &nodes);
        assert_eq!(per_node(&cluster).into_values().collect::<Vec<_>>(), [2, 2, 2]);
        let pod = cluster.pods().next().expect("a pod");
        let parts: Vec<&str> = pod.name.split('-').collect();
        assert_eq!((parts.len(), parts[0], parts[1].len()), (3, "web", 10), "{}", pod.name);
        assert!(parts[2].starts_with('p'), "{}", pod.name);
        assert_eq!(pod.labels.get("app").map(String::as_str), Some("web"));
        assert!(pod.labels.contains_key(TEMPLATE_HASH_LABEL));

        cluster.put_object(deployment("web", 9, "busybox"));
        settle(&mut cluster, &nodes);
        assert_eq!(per_node(&cluster).into_values().collect::<Vec<_>>(), [3, 3, 3]);

        cluster.put_object(deployment("web", 1, "busybox"));
        let changes = settle(&mut cluster, &nodes);
        assert_eq!(changes.iter().filter(|c| matches!(c, Change::Delete { .. })).count(), 8);
        assert_eq!(cluster.pods().count(), 1);
    }

    #[test]
    fn pods_of_a_lost_board_are_replaced_and_its_set_empties() {
        let mut cluster = Cluster::default();
        cluster.put_object(deployment("web", 6, "busybox"));
        let mut nodes = ready(&["pi-1", "pi-2", "pi-3"]);
        settle(&mut cluster, &nodes);
        let before: BTreeSet<String> = cluster.pods().map(PodRecord::key).collect();

        nodes[1].condition = Condition::NotReady { reason: "silent".into() };
        let changes = settle(&mut cluster, &nodes);
        let deleted: Vec<&Change> = changes.iter().filter(|c| matches!(c, Change::Delete { .. })).collect();
        assert_eq!(deleted.len(), 2, "{changes:?}");
        assert!(
            matches!(deleted[0], Change::Delete { reason, .. } if reason.starts_with("board pi-2 is not ready; replaced by web-")),
            "{changes:?}"
        );
        assert_eq!(per_node(&cluster), BTreeMap::from([("pi-1".into(), 3), ("pi-3".into(), 3)]));
        let sets = desired_sets(&cluster, ["pi-1", "pi-2", "pi-3"]);
        assert!(sets["pi-2"].is_empty(), "the lost board is told to run nothing");
        let after: BTreeSet<String> = cluster.pods().map(PodRecord::key).collect();
        assert_eq!(before.intersection(&after).count(), 4, "the four healthy replicas stay as they are");

        // It comes back: nothing moves back, the count stays 6.
        nodes[1].condition = Condition::Ready;
        let changes = settle(&mut cluster, &nodes);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(cluster.pods().count(), 6);
    }

    #[test]
    fn pods_of_a_lost_board_stay_while_no_other_board_can_take_them() {
        let mut cluster = Cluster::default();
        cluster.put_object(deployment("web", 2, "busybox"));
        let mut nodes = ready(&["pi-1"]);
        settle(&mut cluster, &nodes);
        let before: BTreeSet<String> = cluster.pods().map(PodRecord::key).collect();

        nodes[0].condition = Condition::NotReady { reason: "silent".into() };
        let changes = settle(&mut cluster, &nodes);
        assert!(!changes.iter().any(|c| matches!(c, Change::Delete { .. })), "{changes:?}");
        let pending = cluster.pods().filter(|p| p.node.is_none()).count();
        assert_eq!(pending, 2, "replacements wait for a board");
        assert_eq!(desired_sets(&cluster, ["pi-1"])["pi-1"].len(), 2, "the board keeps its set");

        // It comes back: the waiting replacements go, its own pods stay as they were.
        nodes[0].condition = Condition::Ready;
        settle(&mut cluster, &nodes);
        let after: BTreeSet<String> = cluster.pods().map(PodRecord::key).collect();
        assert_eq!(after, before);

        // Lost again, then scaled to 0: the lost pods are not kept waiting for a place.
        nodes[0].condition = Condition::NotReady { reason: "silent".into() };
        settle(&mut cluster, &nodes);
        cluster.put_object(deployment("web", 0, "busybox"));
        settle(&mut cluster, &nodes);
        assert_eq!(cluster.pods().count(), 0, "{:?}", cluster.pods().map(PodRecord::key).collect::<Vec<_>>());
    }

    #[test]
    fn a_board_not_heard_yet_after_a_restart_keeps_its_pods() {
        let mut cluster = Cluster::default();
        cluster.put_object(deployment("web", 3, "busybox"));
        let mut nodes = ready(&["pi-1", "pi-2", "pi-3"]);
        settle(&mut cluster, &nodes);
        nodes[0].condition = Condition::Unknown;
        assert!(settle(&mut cluster, &nodes).is_empty());
    }

    /// Rounds of plan and apply in which a bound pod turns Ready one round after it was bound
    /// (100 ms a round), until nothing changes. Returns the fewest Ready pods and the most pods
    /// seen after any round.
    fn roll(cluster: &mut Cluster, nodes: &[NodeFacts], frozen: &BTreeSet<String>) -> (usize, usize) {
        let mut counter = 0u32;
        let mut suffix = || {
            counter += 1;
            format!("r{counter:04}")
        };
        let mut availability = Availability::default();
        let (mut fewest_ready, mut most) = (usize::MAX, 0);
        for round_number in 1..200u64 {
            let bound: Vec<String> =
                cluster.pods().filter(|p| p.node.is_some()).map(PodRecord::key).collect();
            let round =
                Round { nodes, placement: Placement::Spread, now: 100, availability: &availability, frozen };
            let changes = plan(cluster, &round, &mut suffix);
            if changes.is_empty() {
                return (fewest_ready, most);
            }
            apply(cluster, changes);
            availability.observe(round_number * 100, bound.into_iter().filter(|k| cluster.pod(k).is_some()));
            fewest_ready = fewest_ready.min(availability.ready_since_ms.len());
            most = most.max(cluster.pods().count());
        }
        panic!("the rollout never settled");
    }

    #[test]
    fn a_new_template_rolls_out_within_surge_and_unavailable() {
        let mut cluster = Cluster::default();
        cluster.put_object(deployment("web", 4, "busybox"));
        let nodes = ready(&["pi-1", "pi-2", "pi-3"]);
        roll(&mut cluster, &nodes, &BTreeSet::new());
        cluster.put_object(deployment("web", 4, "busybox:1.36"));
        let (fewest_ready, most) = roll(&mut cluster, &nodes, &BTreeSet::new());
        assert!(fewest_ready >= 3, "25 % of 4 may be unavailable: {fewest_ready} ready at one point");
        assert!(most <= 5, "25 % of 4 may surge: {most} pods at one point");
        assert_eq!(cluster.pods().count(), 4);
        assert!(cluster.pods().all(|p| p.spec.containers[0].image == "busybox:1.36"));
    }

    #[test]
    fn a_paused_or_stalled_rollout_keeps_its_old_pods() {
        let mut cluster = Cluster::default();
        cluster.put_object(deployment("web", 2, "busybox"));
        let nodes = ready(&["pi-1"]);
        roll(&mut cluster, &nodes, &BTreeSet::new());
        let before: BTreeSet<String> = cluster.pods().map(PodRecord::key).collect();
        cluster.put_object(deployment("web", 2, "busybox:1.36"));
        roll(&mut cluster, &nodes, &BTreeSet::from(["default/web".to_owned()]));
        assert_eq!(cluster.pods().map(PodRecord::key).collect::<BTreeSet<_>>(), before);
    }

    #[test]
    fn a_deleted_deployment_removes_its_pods() {
        let mut cluster = Cluster::default();
        cluster.put_object(deployment("web", 2, "busybox"));
        let nodes = ready(&["pi-1"]);
        settle(&mut cluster, &nodes);
        cluster.delete_object("Deployment/default/web");
        settle(&mut cluster, &nodes);
        assert_eq!(cluster.pods().count(), 0);
    }

    #[test]
    fn unplaceable_pods_stay_pending_with_the_reason_once() {
        let mut cluster = Cluster::default();
        cluster.put_object(object(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: big\nspec:\n  containers:\n  - name: c\n    image: busybox\n    resources:\n      requests: {memory: 64Gi}\n",
        ));
        let nodes = ready(&["pi-1", "pi-2"]);
        settle(&mut cluster, &nodes);
        let pod = cluster.pod("default/big").expect("kept");
        assert_eq!(pod.node, None);
        assert_eq!(pod.pending_reason.as_deref(), Some("0/2 boards: 2 insufficient memory"));
    }

    #[test]
    fn a_changed_pod_spec_replaces_the_pod() {
        let mut cluster = Cluster::default();
        let pod = |image: &str| {
            object(&format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: one\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
            ))
        };
        cluster.put_object(pod("busybox"));
        let nodes = ready(&["pi-1"]);
        settle(&mut cluster, &nodes);
        let uid = cluster.pod("default/one").expect("made").uid.clone();
        cluster.put_object(pod("busybox:1.36"));
        settle(&mut cluster, &nodes);
        let now = cluster.pod("default/one").expect("remade");
        assert_ne!(now.uid, uid);
        assert_eq!(now.node.as_deref(), Some("pi-1"));
    }
}
