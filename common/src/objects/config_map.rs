//! `v1 ConfigMap`: named configuration text for pods.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use crate::decode::{Fields, Problems};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMap {
    pub metadata: ObjectMeta,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Base64 text, as in Kubernetes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, String>,
    #[serde(default)]
    pub immutable: bool,
}

impl ConfigMap {
    pub(crate) fn decode(
        f: &mut Fields<'_>,
        metadata: Option<ObjectMeta>,
        problems: &mut Problems,
    ) -> Option<ConfigMap> {
        let data = f.string_map("data", problems);
        let binary_data = f.string_map("binaryData", problems);
        let immutable = f.bool("immutable", problems).unwrap_or(false);
        Some(ConfigMap { metadata: metadata?, data, binary_data, immutable })
    }
}
