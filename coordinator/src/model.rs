//! The coordinator's desired state in memory: applied objects, the pods made from them and
//! where each is bound, Deployment revisions and remembered boards. Every change goes through
//! a method that marks its key dirty; [`Cluster::take_writes`] turns the dirty keys into one
//! store batch, so only what changed is written.

use std::collections::{BTreeMap, BTreeSet};

use bramble_common::Object;
use bramble_common::identity::short_hash;
use bramble_common::objects::{Deployment, Kind, PodSpec, PodTemplateSpec};
use serde::{Deserialize, Serialize};

use crate::store::{Snapshot, Table, Write};

/// A pod the coordinator keeps: made by a Deployment, or a Pod object applied as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub namespace: String,
    pub name: String,
    /// Changes whenever what the pod runs changes; boards replace a pod whose uid changed.
    pub uid: String,
    /// The Deployment that made it (in the same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The hash of the Deployment template it was made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_hash: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub spec: PodSpec,
    /// The board it is bound to; `None` while Pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Why it is not bound, as the scheduler said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_reason: Option<String>,
    /// Unix seconds of its creation by the coordinator (for AGE).
    #[serde(default)]
    pub created: u64,
}

impl PodRecord {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// `namespace/deployment` of its owner.
    pub fn owner_key(&self) -> Option<String> {
        self.owner.as_ref().map(|o| format!("{}/{o}", self.namespace))
    }
}

/// One pod template of a Deployment, numbered in the order they were applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub number: u64,
    pub template_hash: String,
    pub template: PodTemplateSpec,
    /// The Deployment's `kubernetes.io/change-cause` annotation when this template was applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_cause: Option<String>,
    /// Each image as the template names it, to the digest it resolved to when this revision
    /// was made (`docker.io/library/nginx:1.27@sha256:…`); its pods run these.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pins: BTreeMap<String, String>,
}

/// The annotation `rollout history` shows for each revision.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// What the coordinator remembers of a board between its own restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub cordoned: bool,
    /// The generation of the desired set last published for it.
    pub generation: u64,
}

/// `Kind/namespace/name` (`Kind/name` for kinds without a namespace).
pub fn object_key(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.is_namespaced() { format!("{kind}/{namespace}/{name}") } else { format!("{kind}/{name}") }
}

pub fn key_of(object: &Object) -> String {
    let meta = object.metadata();
    object_key(object.kind(), meta.namespace_or_default(), &meta.name)
}

#[derive(Debug, Default)]
pub struct Cluster {
    objects: BTreeMap<String, Object>,
    pods: BTreeMap<String, PodRecord>,
    revisions: BTreeMap<String, Revision>,
    nodes: BTreeMap<String, NodeRecord>,
    dirty: BTreeSet<(Table, String)>,
}

impl Cluster {
    /// The cluster a store holds; rows that do not decode are skipped and described.
    pub fn from_snapshot(snapshot: &Snapshot) -> (Cluster, Vec<String>) {
        fn rows<T: for<'de> Deserialize<'de>>(
            snapshot: &Snapshot,
            table: Table,
            problems: &mut Vec<String>,
        ) -> BTreeMap<String, T> {
            let mut out = BTreeMap::new();
            for (key, value) in snapshot.get(&table).into_iter().flatten() {
                match serde_json::from_slice(value) {
                    Ok(row) => {
                        out.insert(key.clone(), row);
                    }
                    Err(e) => problems.push(format!("{table:?} {key}: {e}; skipped")),
                }
            }
            out
        }
        let mut problems = Vec::new();
        let cluster = Cluster {
            objects: rows(snapshot, Table::Objects, &mut problems),
            pods: rows(snapshot, Table::Pods, &mut problems),
            revisions: rows(snapshot, Table::Revisions, &mut problems),
            nodes: rows(snapshot, Table::Nodes, &mut problems),
            dirty: BTreeSet::new(),
        };
        (cluster, problems)
    }

    /// The writes that bring the store up to date, clearing the dirty marks.
    pub fn take_writes(&mut self) -> Vec<Write> {
        fn row<T: Serialize>(rows: &BTreeMap<String, T>, key: &str) -> Option<Vec<u8>> {
            rows.get(key).map(|r| serde_json::to_vec(r).expect("rows are plain data and always serialize"))
        }
        std::mem::take(&mut self.dirty)
            .into_iter()
            .map(|(table, key)| {
                let value = match table {
                    Table::Objects => row(&self.objects, &key),
                    Table::Pods => row(&self.pods, &key),
                    Table::Revisions => row(&self.revisions, &key),
                    Table::Nodes => row(&self.nodes, &key),
                };
                match value {
                    Some(value) => Write::Put { table, key, value },
                    None => Write::Delete { table, key },
                }
            })
            .collect()
    }

    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.objects.values()
    }

    pub fn object(&self, key: &str) -> Option<&Object> {
        self.objects.get(key)
    }

    /// Stores `object`; returns whether anything changed.
    pub fn put_object(&mut self, object: Object) -> bool {
        self.put_object_pinned(object, &BTreeMap::new())
    }

    /// Stores `object`; a Deployment template seen for the first time becomes a revision that
    /// keeps the digests `pins` gives for its images (an existing revision keeps its own).
    pub fn put_object_pinned(&mut self, object: Object, pins: &BTreeMap<String, String>) -> bool {
        let key = key_of(&object);
        if self.objects.get(&key) == Some(&object) {
            return false;
        }
        if let Object::Deployment(d) = &object {
            self.record_revision(d, pins);
        }
        self.objects.insert(key.clone(), object);
        self.dirty.insert((Table::Objects, key));
        true
    }

    pub fn delete_object(&mut self, key: &str) -> Option<Object> {
        let removed = self.objects.remove(key)?;
        self.dirty.insert((Table::Objects, key.to_owned()));
        if let Object::Deployment(d) = &removed {
            let prefix = format!("{}/{}/", d.metadata.namespace_or_default(), d.metadata.name);
            let gone: Vec<String> =
                self.revisions.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
            for key in gone {
                self.revisions.remove(&key);
                self.dirty.insert((Table::Revisions, key));
            }
        }
        Some(removed)
    }

    /// Makes `d`'s template its newest revision, as Kubernetes numbers them: a template seen
    /// before (an undo, or an older manifest applied again) moves up to the next number. Keeps
    /// `revisionHistoryLimit` revisions besides the newest.
    fn record_revision(&mut self, d: &Deployment, pins: &BTreeMap<String, String>) {
        let hash = short_hash(&d.spec.template);
        let prefix = format!("{}/{}/", d.metadata.namespace_or_default(), d.metadata.name);
        let revision_key = format!("{prefix}{hash}");
        let last = self
            .revisions(d.metadata.namespace_or_default(), &d.metadata.name)
            .last()
            .map_or(0, |r| r.number);
        let change_cause = d.metadata.annotations.get(CHANGE_CAUSE).cloned();
        let existing = self.revisions.get(&revision_key);
        let number = match existing {
            Some(r) if r.number == last && r.change_cause == change_cause => return,
            Some(r) if r.number == last => last,
            _ => last + 1,
        };
        // Resolved once, when the template is first seen: an undo restates the same digests.
        let pins = match existing {
            Some(r) => r.pins.clone(),
            None => d
                .spec
                .template
                .spec
                .containers
                .iter()
                .filter_map(|c| Some((c.image.clone(), pins.get(&c.image)?.clone())))
                .collect(),
        };
        let revision =
            Revision { number, template_hash: hash, template: d.spec.template.clone(), change_cause, pins };
        self.revisions.insert(revision_key.clone(), revision);
        self.dirty.insert((Table::Revisions, revision_key));
        let mut numbered: Vec<(u64, String)> = self
            .revisions
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, r)| (r.number, k.clone()))
            .collect();
        numbered.sort();
        let keep = d.spec.revision_history_limit as usize + 1;
        let namespace = d.metadata.namespace_or_default();
        for (_, key) in numbered.iter().take(numbered.len().saturating_sub(keep)) {
            // A revision whose pods still run (a rollout under way) stays, as Kubernetes keeps a
            // ReplicaSet with replicas: an undo must find it.
            let hash = key.rsplit('/').next().unwrap_or_default();
            let running = self.pods.values().any(|p| {
                p.namespace == namespace
                    && p.owner.as_deref() == Some(d.metadata.name.as_str())
                    && p.template_hash.as_deref() == Some(hash)
            });
            if !running {
                self.revisions.remove(key);
                self.dirty.insert((Table::Revisions, key.clone()));
            }
        }
    }

    /// A Deployment's revisions, oldest first.
    pub fn revisions(&self, namespace: &str, deployment: &str) -> Vec<&Revision> {
        let prefix = format!("{namespace}/{deployment}/");
        let mut out: Vec<&Revision> = self
            .revisions
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, r)| r)
            .collect();
        out.sort_by_key(|r| r.number);
        out
    }

    /// The revision of a Deployment's template.
    pub fn revision_of(&self, namespace: &str, deployment: &str, template_hash: &str) -> Option<&Revision> {
        self.revisions.get(&format!("{namespace}/{deployment}/{template_hash}"))
    }

    /// The revision number of a Deployment's template.
    pub fn revision(&self, namespace: &str, deployment: &str, template_hash: &str) -> Option<u64> {
        self.revision_of(namespace, deployment, template_hash).map(|r| r.number)
    }

    pub fn pods(&self) -> impl Iterator<Item = &PodRecord> {
        self.pods.values()
    }

    pub fn pod(&self, key: &str) -> Option<&PodRecord> {
        self.pods.get(key)
    }

    pub fn put_pod(&mut self, pod: PodRecord) {
        let key = pod.key();
        if self.pods.get(&key) != Some(&pod) {
            self.pods.insert(key.clone(), pod);
            self.dirty.insert((Table::Pods, key));
        }
    }

    pub fn delete_pod(&mut self, key: &str) -> Option<PodRecord> {
        let removed = self.pods.remove(key)?;
        self.dirty.insert((Table::Pods, key.to_owned()));
        Some(removed)
    }

    pub fn nodes(&self) -> &BTreeMap<String, NodeRecord> {
        &self.nodes
    }

    pub fn put_node(&mut self, name: &str, record: NodeRecord) {
        if self.nodes.get(name) != Some(&record) {
            self.nodes.insert(name.to_owned(), record);
            self.dirty.insert((Table::Nodes, name.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::deployment;
    use crate::store::{MemoryStore, Store};

    #[test]
    fn only_changed_rows_are_written_and_reload_gives_the_same_cluster() {
        let mut store = MemoryStore::default();
        let mut cluster = Cluster::default();
        assert!(cluster.put_object(deployment("web", 2, "busybox")));
        let writes = cluster.take_writes();
        assert_eq!(writes.len(), 2, "the object and its first revision: {writes:?}");
        store.commit(&writes).expect("commit");
        assert!(
            !cluster.put_object(deployment("web", 2, "busybox")),
            "the same object again changes nothing"
        );
        assert!(cluster.take_writes().is_empty());
        assert!(cluster.put_object(deployment("web", 2, "busybox:1.36")));
        assert!(cluster.put_object(deployment("web", 3, "busybox:1.36")));
        store.commit(&cluster.take_writes()).expect("commit");

        let (reloaded, problems) = Cluster::from_snapshot(&store.load().expect("load"));
        assert!(problems.is_empty(), "{problems:?}");
        let hashes: Vec<(u64, String)> =
            reloaded.revisions.values().map(|r| (r.number, r.template_hash.clone())).collect();
        assert_eq!(hashes.len(), 2);
        assert!(hashes.iter().any(|(n, _)| *n == 2), "the second template is revision 2: {hashes:?}");
        assert_eq!(reloaded.objects, cluster.objects);
    }

    #[test]
    fn a_template_applied_again_becomes_the_newest_revision_and_old_ones_are_pruned() {
        let mut cluster = Cluster::default();
        let numbers = |cluster: &Cluster| -> Vec<(u64, String)> {
            let revisions = cluster.revisions("default", "web");
            revisions.iter().map(|r| (r.number, r.template.spec.containers[0].image.clone())).collect()
        };
        for image in ["busybox:1", "busybox:2", "busybox:1"] {
            cluster.put_object(deployment("web", 1, image));
        }
        assert_eq!(numbers(&cluster), [(2, "busybox:2".into()), (3, "busybox:1".into())]);
        for n in 3..20 {
            cluster.put_object(deployment("web", 1, &format!("busybox:{n}")));
        }
        let kept = numbers(&cluster);
        assert_eq!(kept.len(), 11, "revisionHistoryLimit 10 and the current one: {kept:?}");
        assert_eq!(kept.last(), Some(&(20, "busybox:19".into())));
    }

    #[test]
    fn a_revision_keeps_the_digests_it_was_made_with() {
        let mut cluster = Cluster::default();
        let pins = |digest: &str| BTreeMap::from([("busybox:1".to_owned(), format!("busybox:1@{digest}"))]);
        cluster.put_object_pinned(deployment("web", 1, "busybox:1"), &pins("a"));
        // Scaled: the same template, the same revision and digest, whatever the tag says now.
        cluster.put_object_pinned(deployment("web", 2, "busybox:1"), &pins("b"));
        cluster.put_object_pinned(deployment("web", 2, "busybox:2"), &BTreeMap::new());
        // Back to the first template (an undo): its digest, not the tag's new one.
        cluster.put_object_pinned(deployment("web", 2, "busybox:1"), &pins("c"));
        let revisions = cluster.revisions("default", "web");
        let newest = revisions.last().expect("revisions");
        assert_eq!(
            (newest.number, newest.pins.get("busybox:1").map(String::as_str)),
            (3, Some("busybox:1@a"))
        );
        assert!(revisions[0].pins.is_empty(), "busybox:2 was not pinned: {:?}", revisions[0]);
    }

    #[test]
    fn a_row_that_does_not_decode_is_skipped_and_named() {
        let mut snapshot = Snapshot::new();
        snapshot.entry(Table::Pods).or_default().insert("default/x".into(), b"{".to_vec());
        let (cluster, problems) = Cluster::from_snapshot(&snapshot);
        assert_eq!(cluster.pods().count(), 0);
        assert!(problems[0].contains("default/x"), "{problems:?}");
    }
}
