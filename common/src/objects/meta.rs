//! Object metadata and the small shared value types (`IntOrString`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decode::{Fields, Path, Problems};
use crate::yaml::{Node, Value};

/// The namespace of an object that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Kubernetes metadata fields that the cluster sets itself; read from `kubectl get -o yaml`
/// output and ignored.
const SET_BY_CLUSTER: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    pub name: String,
    /// `None` means the namespace of the context applying it (`default` unless told).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ObjectMeta {
    pub fn namespace_or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }

    pub(crate) fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<ObjectMeta> {
        let name = f.required_string("name", problems);
        let namespace = f.string("namespace", problems);
        let labels = f.string_map("labels", problems);
        let annotations = f.string_map("annotations", problems);
        f.ignore(&["generateName", "ownerReferences", "finalizers"], problems);
        f.skip(SET_BY_CLUSTER);
        f.finish(problems);
        Some(ObjectMeta { name: name?, namespace, labels, annotations })
    }
}

/// The metadata of a pod template: labels and annotations only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateMeta {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl TemplateMeta {
    pub(crate) fn decode(mut f: Fields<'_>, problems: &mut Problems) -> TemplateMeta {
        let labels = f.string_map("labels", problems);
        let annotations = f.string_map("annotations", problems);
        f.ignore(&["name", "namespace", "generateName", "ownerReferences", "finalizers"], problems);
        f.skip(SET_BY_CLUSTER);
        f.finish(problems);
        TemplateMeta { labels, annotations }
    }
}

/// A number or a string, as in Kubernetes ports (`8080` or `http`) and surges (`1` or `25%`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl IntOrString {
    pub(crate) fn decode(node: &Node, path: &Path, problems: &mut Problems) -> Option<IntOrString> {
        match &node.value {
            Value::Int(i) => Some(IntOrString::Int(*i)),
            Value::String(s) => Some(IntOrString::String(s.clone())),
            other => {
                problems.error(path, format!("expected an integer or a string, found {}", other.describe()));
                None
            }
        }
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}
