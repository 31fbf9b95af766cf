//! Objects as the HTTP API shows them: Kubernetes' JSON shapes (`NodeList`, `PodList`,
//! `DeploymentList`), with status aggregated from what the boards report. Pure.

use std::collections::BTreeMap;

use bramble_common::Object;
use bramble_common::identity::short_hash;
use bramble_common::objects::Deployment;
use bramble_common::wire::{PodPhase, PodReport};
use serde_json::{Value, json};

use crate::controller::NodeFacts;
use crate::model::{Cluster, PodRecord};
use crate::nodes::{Condition, Nodes};
use crate::rollout::{Availability, RolloutStatus};

pub fn list(kind: &str, api_version: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": api_version, "kind": format!("{kind}List"), "items": items})
}

/// What the pod's board last said of it, if it is bound and reported.
fn report<'a>(pod: &PodRecord, nodes: &'a Nodes) -> Option<&'a PodReport> {
    let observed = nodes.view(pod.node.as_deref()?)?.observed.as_ref()?;
    observed.pods.iter().find(|r| r.uid == pod.uid)
}

/// Whether the pod's board last reported it Ready.
pub fn reported_ready(pod: &PodRecord, nodes: &Nodes) -> bool {
    report(pod, nodes).is_some_and(|r| r.ready)
}

/// Phase, readiness, restarts and reason of a pod, as `bramble get pods` shows them.
pub fn pod_status(pod: &PodRecord, nodes: &Nodes, facts: &[NodeFacts]) -> Value {
    let node_condition =
        pod.node.as_deref().and_then(|n| facts.iter().find(|f| f.name == n)).map(|f| &f.condition);
    let (phase, ready, restarts, reason, message) = match (report(pod, nodes), &pod.node) {
        (_, None) => ("Pending", false, 0, Some("Unschedulable".to_owned()), pod.pending_reason.clone()),
        (_, Some(node)) if matches!(node_condition, Some(Condition::NotReady { .. })) => {
            ("Unknown", false, 0, Some("NodeLost".to_owned()), Some(format!("board {node} is not ready")))
        }
        (None, Some(_)) => ("Pending", false, 0, Some("ContainerCreating".to_owned()), None),
        (Some(r), _) => {
            let phase = match r.phase {
                PodPhase::Pending => "Pending",
                PodPhase::Running => "Running",
                PodPhase::Succeeded => "Succeeded",
                PodPhase::Failed => "Failed",
                PodPhase::Unknown => "Unknown",
            };
            // The board says `Reason: message`.
            let (reason, message) = match r.reason.as_deref().map(|text| text.split_once(": ")) {
                Some(Some((reason, message))) => (Some(reason.to_owned()), Some(message.to_owned())),
                _ => (r.reason.clone(), None),
            };
            (phase, r.ready, r.restarts, reason, message)
        }
    };
    let ready_status = if ready { "True" } else { "False" };
    let mut status = json!({
        "phase": phase,
        "conditions": [{"type": "Ready", "status": ready_status}],
        "restartCount": restarts,
    });
    if let Some(reason) = reason {
        status["reason"] = json!(reason);
    }
    if let Some(message) = message {
        status["message"] = json!(message);
    }
    status
}

pub fn pod(pod: &PodRecord, nodes: &Nodes, facts: &[NodeFacts]) -> Value {
    let mut spec = serde_json::to_value(&pod.spec).unwrap_or(Value::Null);
    if let Some(node) = &pod.node {
        spec["nodeName"] = json!(node);
    }
    let mut metadata = json!({
        "name": pod.name,
        "namespace": pod.namespace,
        "uid": pod.uid,
        "labels": pod.labels,
        "creationTimestamp": pod.created,
    });
    if let Some(owner) = &pod.owner {
        metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "Deployment", "name": owner}]);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": spec,
        "status": pod_status(pod, nodes, facts),
    })
}

/// A Deployment with its status: counts of its pods and the `Progressing` and `Available`
/// conditions `rollout status` reads; `stalled` when its rollout passed its progress deadline.
pub fn deployment(d: &Deployment, cluster: &Cluster, availability: &Availability, stalled: bool) -> Value {
    let namespace = d.metadata.namespace_or_default();
    let hash = short_hash(&d.spec.template);
    let owned: Vec<&PodRecord> = cluster
        .pods()
        .filter(|p| p.namespace == namespace && p.owner.as_deref() == Some(d.metadata.name.as_str()))
        .collect();
    let status = RolloutStatus::of(d, &hash, &owned, availability);
    let mut value = serde_json::to_value(Object::Deployment(d.clone())).unwrap_or(Value::Null);
    if let Some(revision) = cluster.revision(namespace, &d.metadata.name, &hash) {
        value["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(revision.to_string());
    }
    let (progressing, reason, message) = if stalled {
        (
            "False",
            "ProgressDeadlineExceeded",
            format!("revision {hash} made no progress in {}s", d.spec.progress_deadline_seconds),
        )
    } else if d.spec.paused {
        ("Unknown", "DeploymentPaused", "the rollout is paused".to_owned())
    } else if status.complete(d.spec.replicas) {
        ("True", "NewReplicaSetAvailable", format!("revision {hash} has successfully progressed"))
    } else {
        ("True", "ReplicaSetUpdated", format!("revision {hash} is progressing"))
    };
    let (_, max_unavailable) = crate::rollout::limits(d);
    let enough = status.available + max_unavailable >= d.spec.replicas as usize;
    value["status"] = json!({
        "replicas": status.replicas,
        "updatedReplicas": status.updated,
        "readyReplicas": status.ready,
        "availableReplicas": status.available,
        "unavailableReplicas": status.replicas.saturating_sub(status.available),
        "conditions": [
            {"type": "Available", "status": if enough { "True" } else { "False" },
             "reason": if enough { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" }},
            {"type": "Progressing", "status": progressing, "reason": reason, "message": message},
        ],
    });
    value
}

/// A board as a Kubernetes Node; `pods` is how many pods are bound to it.
pub fn node(facts: &NodeFacts, nodes: &Nodes, pods: usize) -> Value {
    let view = nodes.view(&facts.name);
    let status = view.and_then(|v| v.status.as_ref());
    let health = view.and_then(|v| v.health.as_ref());
    let (ready, reason, message) = match &facts.condition {
        Condition::Ready => ("True", "BoardReady", String::from("the board sends health")),
        Condition::NotReady { reason } => ("False", "BoardNotReady", reason.clone()),
        Condition::Unknown => (
            "Unknown",
            "NotHeardYet",
            String::from("no health heard from it yet since it came online or the coordinator started"),
        ),
    };
    let mut labels: BTreeMap<String, String> = facts.labels.clone();
    labels.entry(crate::scheduler::HOSTNAME_LABEL.into()).or_insert_with(|| facts.name.clone());
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": facts.name, "labels": labels},
        "spec": {"unschedulable": facts.cordoned},
        "status": {
            "conditions": [{"type": "Ready", "status": ready, "reason": reason, "message": message}],
            "capacity": {
                "cpu": health.map_or(0, |h| h.cpus).to_string(),
                "memory": health.map_or(0, |h| h.memory_total_bytes).to_string(),
                "pods": pods.to_string(),
            },
            "nodeInfo": {
                "architecture": status.map_or("", |s| s.arch.as_str()),
                "agentVersion": status.map_or("", |s| s.agent_version.as_str()),
            },
            "health": health,
        },
    })
}
