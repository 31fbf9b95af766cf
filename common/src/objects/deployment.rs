//! `apps/v1 Deployment`: a number of replicas of a pod template, and how to roll it out.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{IntOrString, ObjectMeta, TemplateMeta};
use super::pod::{PodSpec, PodTemplateSpec, required_spec};
use crate::decode::{Fields, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub metadata: ObjectMeta,
    pub spec: DeploymentSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentSpec {
    pub replicas: u32,
    pub selector: LabelSelector,
    pub template: PodTemplateSpec,
    pub strategy: DeploymentStrategy,
    pub revision_history_limit: u32,
    pub min_ready_seconds: u32,
    pub progress_deadline_seconds: u32,
    #[serde(default)]
    pub paused: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl LabelSelector {
    /// Whether every label the selector asks for is in `labels` with the same value.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStrategy {
    #[serde(rename = "type")]
    pub type_: StrategyType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_update: Option<RollingUpdate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StrategyType {
    RollingUpdate,
    Recreate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollingUpdate {
    pub max_surge: IntOrString,
    pub max_unavailable: IntOrString,
}

impl Default for RollingUpdate {
    /// Kubernetes' defaults: 25 % each.
    fn default() -> Self {
        RollingUpdate {
            max_surge: IntOrString::String("25%".to_owned()),
            max_unavailable: IntOrString::String("25%".to_owned()),
        }
    }
}

impl Deployment {
    pub(crate) fn decode(
        f: &mut Fields<'_>,
        metadata: Option<ObjectMeta>,
        problems: &mut Problems,
    ) -> Option<Deployment> {
        let spec = required_spec(f, problems, DeploymentSpec::decode);
        Some(Deployment { metadata: metadata?, spec: spec? })
    }
}

impl DeploymentSpec {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<DeploymentSpec> {
        let replicas = f.int("replicas", problems).unwrap_or(1);
        let selector = f.require_map("selector", problems).map(|mut s| {
            let match_labels = s.string_map("matchLabels", problems);
            s.ignore(&["matchExpressions"], problems);
            s.finish(problems);
            LabelSelector { match_labels }
        });
        let template = f.require_map("template", problems).and_then(|mut t| {
            let metadata = t.map("metadata", problems).map(|m| TemplateMeta::decode(m, problems));
            let spec = required_spec(&mut t, problems, PodSpec::decode);
            t.finish(problems);
            spec.map(|spec| PodTemplateSpec { metadata: metadata.unwrap_or_default(), spec })
        });
        let strategy = match f.map("strategy", problems) {
            Some(s) => decode_strategy(s, problems),
            None => DeploymentStrategy {
                type_: StrategyType::RollingUpdate,
                rolling_update: Some(RollingUpdate::default()),
            },
        };
        let revision_history_limit = f.int("revisionHistoryLimit", problems).unwrap_or(10);
        let min_ready_seconds = f.int("minReadySeconds", problems).unwrap_or(0);
        let progress_deadline_seconds = f.int("progressDeadlineSeconds", problems).unwrap_or(600);
        let paused = f.bool("paused", problems).unwrap_or(false);
        f.finish(problems);
        Some(DeploymentSpec {
            replicas,
            selector: selector?,
            template: template?,
            strategy,
            revision_history_limit,
            min_ready_seconds,
            progress_deadline_seconds,
            paused,
        })
    }
}

fn decode_strategy(mut f: Fields<'_>, problems: &mut Problems) -> DeploymentStrategy {
    let type_ = match f.string("type", problems).as_deref() {
        None | Some("RollingUpdate") => StrategyType::RollingUpdate,
        Some("Recreate") => StrategyType::Recreate,
        Some(other) => {
            problems.error(&f.path("type"), format!("expected RollingUpdate or Recreate, found {other:?}"));
            StrategyType::RollingUpdate
        }
    };
    let rolling_path = f.path("rollingUpdate");
    let rolling_update = f.map("rollingUpdate", problems).map(|mut r| {
        let defaults = RollingUpdate::default();
        let mut surge_or = |key: &str, default: IntOrString, problems: &mut Problems| {
            let path = r.path(key);
            r.take(key).and_then(|n| IntOrString::decode(n, &path, problems)).unwrap_or(default)
        };
        let max_surge = surge_or("maxSurge", defaults.max_surge, problems);
        let max_unavailable = surge_or("maxUnavailable", defaults.max_unavailable, problems);
        r.finish(problems);
        RollingUpdate { max_surge, max_unavailable }
    });
    f.finish(problems);
    match type_ {
        StrategyType::RollingUpdate => {
            DeploymentStrategy { type_, rolling_update: Some(rolling_update.unwrap_or_default()) }
        }
        StrategyType::Recreate => {
            if rolling_update.is_some() {
                problems.error(&rolling_path, "may not be set when strategy type is Recreate");
            }
            DeploymentStrategy { type_, rolling_update: None }
        }
    }
}
