//! Names derived from content, shared by the agent (static manifests) and the coordinator, so
//! both give a pod the same uid for the same spec.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::objects::PodSpec;

/// Ten hex digits of a SHA-256 of `value`'s JSON: stable for equal values. Used for pod uids
/// and Deployment template hashes (`pod-template-hash`).
pub fn short_hash(value: &impl Serialize) -> String {
    let json = serde_json::to_vec(value).expect("objects are plain data and always serialize");
    Sha256::digest(&json).iter().take(5).map(|b| format!("{b:02x}")).collect()
}

/// The uid of pod `namespace/name` running `spec`: `<name>-<short hash of all three>`, so a
/// changed spec is a new pod.
pub fn pod_uid(namespace: &str, name: &str, spec: &PodSpec) -> String {
    format!("{name}-{}", short_hash(&(namespace, name, spec)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_ten_hex_digits_and_stable() {
        let a = short_hash(&("x", 1));
        assert_eq!(a.len(), 10);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, short_hash(&("x", 1)));
        assert_ne!(a, short_hash(&("x", 2)));
    }
}
