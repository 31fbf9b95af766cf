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

/// An error with its causes, each said once: `error sending request: client error (Connect):
/// Connection refused`. Libraries such as reqwest keep the cause out of their own message.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
