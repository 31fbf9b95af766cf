//! Objects for unit tests, from YAML as users write them.

use bramble_common::{Object, parse_manifests};

pub fn object(yaml: &str) -> Object {
    let mut manifests = parse_manifests("test.yaml", yaml);
    assert!(manifests.is_ok(), "{:?}", manifests.errors);
    manifests.objects.remove(0).object
}

pub fn deployment(name: &str, replicas: u32, image: &str) -> Object {
    object(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    ))
}
