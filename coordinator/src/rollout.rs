//! Rollouts, pure: when a Deployment's template changes, which new pods to make and which old
//! ones to remove this round, as Kubernetes' deployment controller decides it for
//! `RollingUpdate` (`maxSurge`, `maxUnavailable`, `minReadySeconds`) and `Recreate`; and how far
//! a rollout is ([`RolloutStatus`]), for the API, `rollout status` and the progress deadline.

use std::collections::BTreeMap;

use bramble_common::objects::{Deployment, IntOrString, StrategyType};

use crate::model::PodRecord;

/// When each pod (by key) was last seen to turn Ready, on the coordinator's monotonic clock.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Availability {
    pub now_ms: u64,
    pub ready_since_ms: BTreeMap<String, u64>,
}

impl Availability {
    pub fn ready(&self, key: &str) -> bool {
        self.ready_since_ms.contains_key(key)
    }

    /// Ready for at least `min_ready_seconds`, as Kubernetes counts a pod available.
    pub fn available(&self, key: &str, min_ready_seconds: u32) -> bool {
        self.ready_since_ms
            .get(key)
            .is_some_and(|since| self.now_ms.saturating_sub(*since) >= u64::from(min_ready_seconds) * 1000)
    }

    /// Records which pods are Ready now; a pod that stops being Ready starts again from zero.
    pub fn observe(&mut self, now_ms: u64, ready: impl IntoIterator<Item = String>) {
        self.now_ms = now_ms;
        let mut next = BTreeMap::new();
        for key in ready {
            let since = self.ready_since_ms.get(&key).copied().unwrap_or(now_ms);
            next.insert(key, since);
        }
        self.ready_since_ms = next;
    }
}

/// How far a Deployment's pods are from its template, as its `status` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolloutStatus {
    /// Every pod it owns, of any template.
    pub replicas: usize,
    /// Pods of the current template.
    pub updated: usize,
    pub ready: usize,
    /// Ready for `minReadySeconds`.
    pub available: usize,
    /// Pods of the current template that are available.
    pub updated_available: usize,
}

impl RolloutStatus {
    pub fn of(d: &Deployment, hash: &str, pods: &[&PodRecord], availability: &Availability) -> RolloutStatus {
        let min_ready = d.spec.min_ready_seconds;
        let mut status = RolloutStatus { replicas: pods.len(), ..RolloutStatus::default() };
        for pod in pods {
            let key = pod.key();
            let updated = pod.template_hash.as_deref() == Some(hash);
            let available = availability.available(&key, min_ready);
            status.updated += usize::from(updated);
            status.ready += usize::from(availability.ready(&key));
            status.available += usize::from(available);
            status.updated_available += usize::from(updated && available);
        }
        status
    }

    /// Every pod is of the current template and available.
    pub fn complete(&self, replicas: u32) -> bool {
        let replicas = replicas as usize;
        self.replicas == replicas && self.updated == replicas && self.updated_available == replicas
    }
}

/// `maxSurge` (rounded up) and `maxUnavailable` (rounded down) as numbers of pods; both 0 is
/// refused by validation, and taken as 1 unavailable here too.
pub fn limits(d: &Deployment) -> (usize, usize) {
    let replicas = d.spec.replicas as usize;
    let rolling = d.spec.strategy.rolling_update.clone().unwrap_or_default();
    let resolve = |value: &IntOrString, round_up: bool| -> usize {
        match value {
            IntOrString::Int(n) => usize::try_from(*n).unwrap_or(0),
            IntOrString::String(s) => {
                let percent: usize = s.trim_end_matches('%').parse().unwrap_or(0);
                let scaled = percent * replicas;
                if round_up { scaled.div_ceil(100) } else { scaled / 100 }
            }
        }
    };
    let surge = resolve(&rolling.max_surge, true);
    let unavailable = resolve(&rolling.max_unavailable, false);
    if surge == 0 && unavailable == 0 { (0, 1) } else { (surge, unavailable) }
}

/// This round of a rollout: how many pods of the new template to make, and which old pods
/// to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    pub create: usize,
    pub delete: Vec<String>,
}

/// The next step from `new` (pods of the current template) and `old` (of earlier ones), both
/// without pods on lost boards. `frozen` (paused, or past its progress deadline) makes no new
/// pod beyond the missing count and removes no old one.
pub fn step(
    d: &Deployment,
    new: &[&PodRecord],
    old: &[&PodRecord],
    availability: &Availability,
    frozen: bool,
) -> Step {
    let replicas = d.spec.replicas as usize;
    let total = new.len() + old.len();
    if frozen {
        return Step { create: replicas.saturating_sub(total), delete: Vec::new() };
    }
    if d.spec.strategy.type_ == StrategyType::Recreate {
        // Every old pod goes first; the new ones come once none is left.
        return Step { create: 0, delete: old.iter().map(|p| p.key()).collect() };
    }
    let (surge, max_unavailable) = limits(d);
    let min_ready = d.spec.min_ready_seconds;
    let available = |p: &PodRecord| availability.available(&p.key(), min_ready);

    // Scale up the new pods as far as the surge allows; removal waits for the next round.
    let create = replicas.saturating_sub(new.len()).min((replicas + surge).saturating_sub(total));
    if create > 0 {
        return Step { create, delete: Vec::new() };
    }
    // Scale down the old ones while enough stay available: unavailable old pods first (they
    // serve nobody), then available ones as far as `maxUnavailable` allows.
    let min_available = replicas.saturating_sub(max_unavailable);
    let new_unavailable = new.iter().filter(|p| !available(p)).count();
    let mut budget = total.saturating_sub(min_available).saturating_sub(new_unavailable);
    let mut delete = Vec::new();
    let (old_available, old_unavailable): (Vec<&PodRecord>, Vec<&PodRecord>) =
        old.iter().copied().partition(|p| available(p));
    for pod in old_unavailable.iter().take(budget) {
        delete.push(pod.key());
    }
    budget -= delete.len();
    let all_available = new.iter().filter(|p| available(p)).count() + old_available.len();
    let may_lose = all_available.saturating_sub(min_available).min(budget);
    // Of the available old pods the most recently made go first (Kubernetes also prefers the
    // youngest); ties by name for a stable order.
    let mut candidates = old_available;
    candidates.sort_by_key(|p| (std::cmp::Reverse(p.created), std::cmp::Reverse(p.name.clone())));
    delete.extend(candidates.iter().take(may_lose).map(|p| p.key()));
    Step { create: 0, delete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::object;
    use bramble_common::Object;

    fn deployment(replicas: u32, strategy: &str, min_ready: u32) -> Deployment {
        let yaml = format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {replicas}\n  minReadySeconds: {min_ready}\n  strategy: {strategy}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n"
        );
        match object(&yaml) {
            Object::Deployment(d) => d,
            other => panic!("not a deployment: {other:?}"),
        }
    }

    fn pods(prefix: &str, hash: &str, n: usize) -> Vec<PodRecord> {
        let spec = deployment(1, "{type: RollingUpdate}", 0).spec.template.spec;
        (0..n)
            .map(|i| PodRecord {
                namespace: "default".into(),
                name: format!("{prefix}{i}"),
                uid: format!("{prefix}{i}-uid"),
                owner: Some("web".into()),
                template_hash: Some(hash.into()),
                labels: BTreeMap::new(),
                spec: spec.clone(),
                node: Some("pi-1".into()),
                pending_reason: None,
                created: i as u64,
            })
            .collect()
    }

    fn ready(now_ms: u64, since: &[(&[PodRecord], u64)]) -> Availability {
        let mut availability = Availability { now_ms, ..Availability::default() };
        for (pods, at) in since {
            for pod in *pods {
                availability.ready_since_ms.insert(pod.key(), *at);
            }
        }
        availability
    }

    #[test]
    fn limits_round_surge_up_and_unavailable_down() {
        let rolling = |surge: &str, unavailable: &str| {
            format!(
                "{{type: RollingUpdate, rollingUpdate: {{maxSurge: {surge}, maxUnavailable: {unavailable}}}}}"
            )
        };
        assert_eq!(limits(&deployment(4, "{type: RollingUpdate}", 0)), (1, 1), "25 % of 4");
        assert_eq!(limits(&deployment(6, "{type: RollingUpdate}", 0)), (2, 1), "25 % of 6: 1.5 up, 1.5 down");
        assert_eq!(limits(&deployment(3, &rolling("1", "0"), 0)), (1, 0));
        assert_eq!(limits(&deployment(10, &rolling("'50%'", "'10%'"), 0)), (5, 1));
        assert_eq!(limits(&deployment(1, &rolling("'10%'", "'10%'"), 0)), (1, 0), "a 10 % surge of 1 is 1");
    }

    /// Four replicas, 25 %/25 %: each round as the controller would see it.
    #[test]
    fn a_rolling_update_surges_one_and_keeps_three_available() {
        let d = deployment(4, "{type: RollingUpdate}", 0);
        let old = pods("old-", "a", 4);
        let old_refs: Vec<&PodRecord> = old.iter().collect();
        let all_ready = ready(10_000, &[(&old, 0)]);

        // Round 1: one new pod (surge 1).
        let s = step(&d, &[], &old_refs, &all_ready, false);
        assert_eq!(s, Step { create: 1, delete: vec![] });

        // Round 2: the new pod is not ready: one old pod may go (3 stay available).
        let new = pods("new-", "b", 1);
        let new_refs: Vec<&PodRecord> = new.iter().collect();
        let s = step(&d, &new_refs, &old_refs, &all_ready, false);
        assert_eq!(s, Step { create: 0, delete: vec!["default/old-3".into()] }, "the youngest old pod");

        // Round 3: 1 new (not ready) + 3 old: one more new may come.
        let s = step(&d, &new_refs, &old_refs[..3], &all_ready, false);
        assert_eq!(s.create, 1);

        // Round 4: 2 new (not ready) + 3 old = 5 = 4 + surge: nothing may go, nothing may come.
        let new = pods("new-", "b", 2);
        let new_refs: Vec<&PodRecord> = new.iter().collect();
        let s = step(&d, &new_refs, &old_refs[..3], &all_ready, false);
        assert_eq!(s, Step::default(), "3 available is the minimum: it waits for the new pods");

        // Round 5: both new pods ready: two old pods may go (5 available, 3 needed).
        let both_ready = ready(10_000, &[(&old, 0), (&new, 9_000)]);
        let s = step(&d, &new_refs, &old_refs[..3], &both_ready, false);
        assert_eq!(s.delete.len(), 2, "{s:?}");
    }

    #[test]
    fn min_ready_seconds_holds_the_old_pods_back() {
        let d = deployment(2, "{type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}", 5);
        let (old, new) = (pods("old-", "a", 2), pods("new-", "b", 1));
        let (old_refs, new_refs): (Vec<&PodRecord>, Vec<&PodRecord>) =
            (old.iter().collect(), new.iter().collect());
        let young = ready(10_000, &[(&old, 0), (&new, 7_000)]);
        assert_eq!(step(&d, &new_refs, &old_refs, &young, false), Step::default(), "ready 3 s of 5");
        let grown = ready(12_000, &[(&old, 0), (&new, 7_000)]);
        assert_eq!(step(&d, &new_refs, &old_refs, &grown, false).delete.len(), 1, "ready 5 s");
    }

    #[test]
    fn unavailable_old_pods_go_first_and_frozen_rollouts_do_nothing() {
        let d = deployment(3, "{type: RollingUpdate, rollingUpdate: {maxSurge: 0, maxUnavailable: 1}}", 0);
        let old = pods("old-", "a", 3);
        let old_refs: Vec<&PodRecord> = old.iter().collect();
        // old-0 is not ready: it goes, not a serving one.
        let availability = ready(10_000, &[(&old[1..], 0)]);
        assert_eq!(step(&d, &[], &old_refs, &availability, false).delete, vec!["default/old-0".to_owned()]);
        assert_eq!(step(&d, &[], &old_refs, &availability, true), Step::default());
        assert_eq!(step(&d, &[], &old_refs[..1], &availability, true).create, 2, "frozen still fills up");
    }

    #[test]
    fn recreate_removes_every_old_pod_before_any_new_one() {
        let d = deployment(3, "{type: Recreate}", 0);
        let old = pods("old-", "a", 3);
        let old_refs: Vec<&PodRecord> = old.iter().collect();
        let s = step(&d, &[], &old_refs, &ready(0, &[(&old, 0)]), false);
        assert_eq!((s.create, s.delete.len()), (0, 3));
    }

    #[test]
    fn readiness_since_is_kept_while_ready_and_forgotten_when_not() {
        let mut availability = Availability::default();
        availability.observe(1_000, ["default/a".to_owned()]);
        availability.observe(5_000, ["default/a".to_owned(), "default/b".to_owned()]);
        assert_eq!(availability.ready_since_ms["default/a"], 1_000);
        assert!(availability.available("default/a", 4) && !availability.available("default/b", 1));
        availability.observe(6_000, ["default/b".to_owned()]);
        assert!(!availability.ready("default/a"));
    }
}
