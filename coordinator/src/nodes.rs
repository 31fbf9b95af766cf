//! Boards as the coordinator hears them over MQTT: the last status, health and observed pods
//! of each, when it was last heard, and from that whether it is Ready. Pure: the caller passes
//! the time (milliseconds of a monotonic clock).

use std::collections::BTreeMap;

use bramble_common::wire::{NodeHealth, NodeStatus, ObservedPods};

/// Whether a board can be counted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Ready,
    /// Its pods are replaced elsewhere.
    NotReady {
        reason: String,
    },
    /// Not heard yet since the coordinator started, or online without a health message yet
    /// (its capacity unknown), within the grace period: its pods stay, nothing new is placed.
    Unknown,
}

impl Condition {
    pub fn is_ready(&self) -> bool {
        *self == Condition::Ready
    }
}

/// What was last heard of one board.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeView {
    pub status: Option<NodeStatus>,
    pub health: Option<NodeHealth>,
    pub observed: Option<ObservedPods>,
    /// When anything was last heard from it (status online or health).
    pub last_heard_ms: Option<u64>,
}

/// Why a message from a board was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("payload names node {payload:?}, topic names {topic:?}")]
    WrongNode { topic: String, payload: String },
    #[error("observed generation {got} is older than {have}")]
    StaleGeneration { got: u64, have: u64 },
}

#[derive(Debug)]
pub struct Nodes {
    views: BTreeMap<String, NodeView>,
    started_ms: u64,
    grace_ms: u64,
}

impl Nodes {
    pub fn new(started_ms: u64, grace_ms: u64) -> Nodes {
        Nodes { views: BTreeMap::new(), started_ms, grace_ms }
    }

    pub fn views(&self) -> &BTreeMap<String, NodeView> {
        &self.views
    }

    pub fn view(&self, name: &str) -> Option<&NodeView> {
        self.views.get(name)
    }

    fn check_node(topic: &str, payload: &str) -> Result<(), Refused> {
        if topic == payload {
            Ok(())
        } else {
            Err(Refused::WrongNode { topic: topic.to_owned(), payload: payload.to_owned() })
        }
    }

    pub fn on_status(&mut self, node: &str, status: NodeStatus, now_ms: u64) -> Result<(), Refused> {
        Self::check_node(node, &status.node)?;
        let view = self.views.entry(node.to_owned()).or_default();
        if status.online {
            view.last_heard_ms = Some(now_ms);
        }
        view.status = Some(status);
        Ok(())
    }

    pub fn on_health(&mut self, node: &str, health: NodeHealth, now_ms: u64) -> Result<(), Refused> {
        Self::check_node(node, &health.node)?;
        let view = self.views.entry(node.to_owned()).or_default();
        view.last_heard_ms = Some(now_ms);
        view.health = Some(health);
        Ok(())
    }

    pub fn on_observed(&mut self, node: &str, observed: ObservedPods) -> Result<(), Refused> {
        Self::check_node(node, &observed.node)?;
        let view = self.views.entry(node.to_owned()).or_default();
        if let Some(have) = view.observed.as_ref().map(|o| o.generation)
            && observed.generation < have
        {
            return Err(Refused::StaleGeneration { got: observed.generation, have });
        }
        view.observed = Some(observed);
        Ok(())
    }

    /// The condition of board `name` at `now_ms`.
    pub fn condition(&self, name: &str, now_ms: u64) -> Condition {
        let grace_s = self.grace_ms as f64 / 1000.0;
        let Some(view) = self.views.get(name) else {
            return if now_ms.saturating_sub(self.started_ms) < self.grace_ms {
                Condition::Unknown
            } else {
                Condition::NotReady {
                    reason: format!("not heard from in {grace_s}s since the coordinator started"),
                }
            };
        };
        if view.status.as_ref().is_some_and(|s| !s.online) {
            return Condition::NotReady { reason: "the board's connection closed (last will)".into() };
        }
        match view.last_heard_ms {
            Some(at) if now_ms.saturating_sub(at) <= self.grace_ms => {
                if view.health.is_some() {
                    Condition::Ready
                } else {
                    Condition::Unknown
                }
            }
            Some(_) if view.health.is_none() => {
                Condition::NotReady { reason: format!("online, but no health within {grace_s}s") }
            }
            Some(at) => {
                let silent = now_ms.saturating_sub(at) as f64 / 1000.0;
                Condition::NotReady { reason: format!("no health for {silent:.1}s (grace {grace_s}s)") }
            }
            None if now_ms.saturating_sub(self.started_ms) < self.grace_ms => Condition::Unknown,
            None => Condition::NotReady { reason: "never announced itself online".into() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: &str, online: bool) -> NodeStatus {
        NodeStatus {
            node: node.into(),
            online,
            agent_version: "0.1.0".into(),
            arch: "arm64".into(),
            labels: BTreeMap::new(),
        }
    }

    fn health(node: &str) -> NodeHealth {
        NodeHealth {
            node: node.into(),
            uptime_seconds: 1,
            cpus: 4,
            cpu_percent: 1.0,
            memory_total_bytes: 1 << 30,
            memory_available_bytes: 1 << 29,
            disk_total_bytes: 1 << 34,
            disk_available_bytes: 1 << 33,
            temperature_celsius: None,
            pods_running: 0,
            pods_total: 0,
        }
    }

    #[test]
    fn readiness_follows_last_will_and_silence() {
        let mut nodes = Nodes::new(0, 10_000);
        assert_eq!(nodes.condition("pi-1", 5_000), Condition::Unknown, "within the start grace");
        assert!(matches!(nodes.condition("pi-1", 10_001), Condition::NotReady { .. }));

        nodes.on_status("pi-1", status("pi-1", true), 1_000).expect("taken");
        assert_eq!(nodes.condition("pi-1", 2_000), Condition::Unknown, "online, capacity not known yet");
        let Condition::NotReady { reason } = nodes.condition("pi-1", 11_001) else { panic!("no health") };
        assert!(reason.contains("no health within"), "{reason}");
        nodes.on_health("pi-1", health("pi-1"), 9_000).expect("taken");
        assert_eq!(nodes.condition("pi-1", 19_000), Condition::Ready, "health keeps it ready");
        let Condition::NotReady { reason } = nodes.condition("pi-1", 19_001) else { panic!("silent board") };
        assert!(reason.contains("no health for 10.0s"), "{reason}");

        nodes.on_health("pi-1", health("pi-1"), 20_000).expect("taken");
        nodes.on_status("pi-1", status("pi-1", false), 20_001).expect("taken");
        let Condition::NotReady { reason } = nodes.condition("pi-1", 20_002) else { panic!("last will") };
        assert!(reason.contains("last will"), "{reason}");
        nodes.on_status("pi-1", status("pi-1", true), 30_000).expect("taken");
        assert_eq!(nodes.condition("pi-1", 30_001), Condition::Ready, "back online");
    }

    #[test]
    fn a_payload_for_another_board_or_an_older_generation_is_refused() {
        let mut nodes = Nodes::new(0, 10_000);
        assert!(matches!(nodes.on_health("pi-1", health("pi-2"), 1), Err(Refused::WrongNode { .. })));
        assert!(nodes.view("pi-1").is_none(), "nothing recorded");
        let observed = |generation| ObservedPods { node: "pi-1".into(), generation, pods: Vec::new() };
        nodes.on_observed("pi-1", observed(5)).expect("taken");
        assert_eq!(nodes.on_observed("pi-1", observed(4)), Err(Refused::StaleGeneration { got: 4, have: 5 }));
        nodes.on_observed("pi-1", observed(5)).expect("the same generation again is taken");
    }
}
