//! The pods a board should run from the objects in its manifests directory, as kubelet reads
//! static pods: Pods as they are, and Deployments expanded here into `replicas` pods named
//! `NAME-<template hash>-<n>`. Pure.
//!
//! A pod's uid is a digest of what it runs (namespace, name, spec): a changed manifest gives a
//! new uid, and the reconciler replaces the old pod with the new one.

use bramble_common::Object;
use bramble_common::identity::{pod_uid, short_hash};
use bramble_common::objects::{DEFAULT_NAMESPACE, PodSpec};

use crate::reconcile::DesiredPod;

fn pod(namespace: &str, name: String, spec: &PodSpec) -> DesiredPod {
    DesiredPod {
        uid: pod_uid(namespace, &name, spec),
        namespace: namespace.to_owned(),
        name,
        spec: spec.clone(),
    }
}

/// The desired pods of `objects`; objects without a namespace go to `default`. Kinds that do
/// not make pods (Service, ConfigMap, Namespace) are passed over.
pub fn desired_pods(objects: &[Object]) -> Vec<DesiredPod> {
    let mut pods = Vec::new();
    for object in objects {
        let namespace = object.metadata().namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE);
        match object {
            Object::Pod(p) => pods.push(pod(namespace, p.metadata.name.clone(), &p.spec)),
            Object::Deployment(d) => {
                let hash = short_hash(&d.spec.template);
                for i in 0..d.spec.replicas {
                    let name = format!("{}-{hash}-{i}", d.metadata.name);
                    pods.push(pod(namespace, name, &d.spec.template.spec));
                }
            }
            Object::Service(_) | Object::ConfigMap(_) | Object::Namespace(_) => {}
        }
    }
    pods
}

#[cfg(test)]
mod tests {
    use super::*;
    use bramble_common::parse_manifests;

    fn objects(text: &str) -> Vec<Object> {
        let m = parse_manifests("t.yaml", text);
        assert!(m.is_ok(), "{:?}", m.errors);
        m.objects.into_iter().map(|o| o.object).collect()
    }

    const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n";

    #[test]
    fn deployments_expand_to_replicas_with_stable_names() {
        let pods = desired_pods(&objects(DEPLOYMENT));
        let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names.len(), 3);
        let hash = &names[0]["web-".len().."web-".len() + 10];
        assert_eq!(names, [format!("web-{hash}-0"), format!("web-{hash}-1"), format!("web-{hash}-2")]);
        assert!(pods.iter().all(|p| p.namespace == "default"));
        // Same manifest, same pods: nothing restarts when the file is read again.
        assert_eq!(desired_pods(&objects(DEPLOYMENT)), pods);
    }

    #[test]
    fn a_changed_template_changes_names_and_uids() {
        let before = desired_pods(&objects(DEPLOYMENT));
        let after = desired_pods(&objects(&DEPLOYMENT.replace("image: busybox", "image: busybox:1.36")));
        assert!(before.iter().zip(&after).all(|(b, a)| b.uid != a.uid && b.name != a.name));
        let scaled = desired_pods(&objects(&DEPLOYMENT.replace("replicas: 3", "replicas: 1")));
        assert_eq!(scaled[..], before[..1], "scaling down keeps the first pods as they are");
    }

    #[test]
    fn pods_keep_their_names_and_other_kinds_make_none() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: hello\n  namespace: lab\nspec:\n  containers:\n  - name: c\n    image: busybox\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n";
        let pods = desired_pods(&objects(text));
        assert_eq!(pods.len(), 1);
        assert_eq!((pods[0].namespace.as_str(), pods[0].name.as_str()), ("lab", "hello"));
        assert!(pods[0].uid.starts_with("hello-"));
    }
}
