//! `v1 Namespace`: a scope for names, one per team or application.

use serde::{Deserialize, Serialize};

use super::meta::ObjectMeta;
use crate::decode::{Fields, Problems};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    pub metadata: ObjectMeta,
}

impl Namespace {
    pub(crate) fn decode(
        f: &mut Fields<'_>,
        metadata: Option<ObjectMeta>,
        problems: &mut Problems,
    ) -> Option<Namespace> {
        f.ignore(&["spec"], problems);
        Some(Namespace { metadata: metadata? })
    }
}
