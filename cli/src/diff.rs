//! `bramble diff -f FILE`: what `apply -f` would change, object by object, as a unified diff of
//! YAML: the live object (without what the coordinator adds: status, the revision annotation)
//! against the object as it would be stored. Exits 0 when nothing would change, 1 when
//! something would, as `kubectl diff` does; errors fail before anything is compared.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde_json::Value;
use similar::TextDiff;

use crate::client::Client;
use crate::get::to_yaml;
use crate::manifest_files;
use crate::resource::Resource;

/// What the coordinator writes itself (besides `status` and a pod's `spec.nodeName`); an applied
/// object never carries it.
const SERVER_ANNOTATIONS: [&str; 1] = ["deployment.kubernetes.io/revision"];
const SERVER_METADATA: [&str; 3] = ["uid", "creationTimestamp", "ownerReferences"];

pub fn run(client: &Client, filenames: &[PathBuf], recursive: bool, namespace: &str) -> ExitCode {
    // 1 means "something would change": an error must not look like that.
    compare(client, filenames, recursive, namespace).unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::from(2)
    })
}

fn compare(
    client: &Client,
    filenames: &[PathBuf],
    recursive: bool,
    namespace: &str,
) -> anyhow::Result<ExitCode> {
    let Some(manifests) = manifest_files::read_valid(filenames, recursive) else {
        return Ok(ExitCode::from(2));
    };
    let mut changed = false;
    for item in &manifests.objects {
        let mut object = item.object.clone();
        let resource = Resource::parse(object.kind().name())?;
        if object.kind().is_namespaced() {
            object.metadata_mut().namespace.get_or_insert_with(|| namespace.to_owned());
        }
        let meta = object.metadata();
        let path = resource.object(meta.namespace.as_deref().unwrap_or(namespace), &meta.name);
        let live = client.get_if_present(&path)?.map(|v| to_yaml(&comparable(v))).unwrap_or_default();
        let merged = to_yaml(&serde_json::to_value(&object)?);
        if live == merged {
            continue;
        }
        changed = true;
        let name = format!("{}/{}", resource.singular(), meta.name);
        let diff = TextDiff::from_lines(&live, &merged);
        let text = diff
            .unified_diff()
            .context_radius(3)
            .header(&format!("live/{name}"), &format!("merged/{name}"))
            .to_string();
        if std::io::stdout().lock().write_all(text.as_bytes()).is_err() {
            break; // the reader of our output went away
        }
    }
    Ok(if changed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// A live object without what only the coordinator writes.
fn comparable(mut live: Value) -> Value {
    let Some(object) = live.as_object_mut() else { return live };
    object.remove("status");
    if let Some(spec) = object.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("nodeName");
    }
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        for key in SERVER_METADATA {
            meta.remove(key);
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            for key in SERVER_ANNOTATIONS {
                annotations.remove(key);
            }
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    live
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_the_coordinator_adds_is_not_a_difference() {
        let live = json!({
            "kind": "Deployment",
            "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 3},
            "status": {"replicas": 3},
        });
        assert_eq!(
            comparable(live),
            json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}})
        );
        let pod = json!({"metadata": {"name": "p", "uid": "p-1", "creationTimestamp": 5}, "spec": {"nodeName": "pi-1", "x": 1}});
        assert_eq!(comparable(pod), json!({"metadata": {"name": "p"}, "spec": {"x": 1}}));
        let kept = json!({"metadata": {"name": "web", "annotations": {"team": "a", "deployment.kubernetes.io/revision": "2"}}});
        assert_eq!(comparable(kept), json!({"metadata": {"name": "web", "annotations": {"team": "a"}}}));
    }
}
