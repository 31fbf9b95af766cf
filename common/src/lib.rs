//! Bramble's shared vocabulary: the objects (a Kubernetes-YAML-compatible subset), their
//! decoding and validation, and the wire protocol between coordinator and boards.
//!
//! No IO and no async here: every function takes text or values and returns values, so the
//! agent, the coordinator and the CLI agree on meaning by sharing this crate.

pub mod decode;
pub mod identity;
pub mod image_ref;
pub mod manifest;
pub mod objects;
pub mod platform;
pub mod quantity;
pub mod validate;
pub mod wire;
pub mod yaml;

pub use manifest::{
    Diagnostic, ManifestObject, Manifests, parse_manifest_bytes, parse_manifests, render_report,
};
pub use objects::{Kind, Object};
pub use quantity::Quantity;
