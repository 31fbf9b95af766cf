//! Table tests over whole manifests: the examples shipped with Bramble, and one bad manifest for
//! each kind of mistake, with the exact message a user sees.

use std::fs;
use std::path::Path;

use bramble_common::objects::{IntOrString, Object, ProbeAction, RestartPolicy, StrategyType, VolumeSource};
use bramble_common::{Manifests, parse_manifests};

fn errors(m: &Manifests) -> Vec<String> {
    m.errors.iter().map(ToString::to_string).collect()
}

fn example(name: &str) -> Manifests {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_manifests(name, &text)
}

#[test]
fn every_example_is_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let name = path.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_owned();
            let m = example(&name);
            assert!(m.is_ok(), "{name}: {:#?}", errors(&m));
            assert!(!m.objects.is_empty(), "{name}: no objects");
            seen += 1;
        }
    }
    assert!(seen >= 4, "only {seen} examples found");
}

#[test]
fn ignored_kubernetes_fields_are_named_in_warnings() {
    let m = example("nginx.yaml");
    let warnings: Vec<String> =
        m.objects.iter().flat_map(|o| &o.warnings).map(|w| w.problem.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "spec.template.spec.containers[0].securityContext: not supported by bramble, ignored",
            "spec.template.spec.tolerations: not supported by bramble, ignored",
        ]
    );
    assert_eq!(
        m.objects[0].warnings[0].to_string(),
        "nginx.yaml: document 1: deployment \"nginx-deployment\": spec.template.spec.containers[0].securityContext: not supported by bramble, ignored (line 48)"
    );
}

#[test]
fn image_pull_policy_is_read_and_checked() {
    use bramble_common::objects::PullPolicy;
    let m = example("nginx.yaml");
    let Object::Deployment(d) = &m.objects[0].object else { panic!("nginx.yaml starts with a Deployment") };
    assert_eq!(d.spec.template.spec.containers[0].image_pull_policy, Some(PullPolicy::IfNotPresent));
    let bad = parse_manifests(
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolicy: Sometimes\n",
    );
    assert_eq!(
        bad.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "bad.yaml: document 1: pod \"p\": spec.containers[0].imagePullPolicy: expected Always, IfNotPresent or Never, found \"Sometimes\" (line 9)"
        ]
    );
}

#[test]
fn generated_output_with_empty_status_is_quiet() {
    // `kubectl create --dry-run -o yaml` writes `creationTimestamp: null`, `strategy: {}`, `status: {}`.
    let m = example("guestbook.yaml");
    let leader = m.objects.iter().find(|o| o.object.metadata().name == "redis-leader").expect("redis-leader");
    assert!(leader.warnings.is_empty(), "{:?}", leader.warnings);
}

#[test]
fn kubernetes_defaults_are_applied() {
    let m = example("nginx.yaml");
    let Object::Deployment(d) = &m.objects[0].object else { panic!("not a deployment") };
    assert_eq!(d.spec.replicas, 3);
    assert_eq!(d.spec.progress_deadline_seconds, 600);
    assert_eq!(d.spec.min_ready_seconds, 0);
    assert_eq!(d.spec.revision_history_limit, 5);
    let rolling = d.spec.strategy.rolling_update.as_ref().expect("rolling update");
    assert_eq!(rolling.max_surge, IntOrString::Int(1));
    assert_eq!(rolling.max_unavailable, IntOrString::String("25%".into()));
    let pod = &d.spec.template.spec;
    assert_eq!(pod.restart_policy, RestartPolicy::Always);
    assert_eq!(pod.termination_grace_period_seconds, 30);
    let container = &pod.containers[0];
    assert_eq!(container.resources.limits.cpu.as_ref().map(|q| q.millis()), Some(500));
    assert_eq!(container.resources.limits.memory.as_ref().map(|q| q.value()), Some(128 << 20));
    let probe = container.readiness_probe.as_ref().expect("readiness probe");
    assert_eq!((probe.timeout_seconds, probe.failure_threshold, probe.success_threshold), (1, 3, 1));
    let ProbeAction::HttpGet(get) = &probe.action else { panic!("not httpGet") };
    assert_eq!(get.port, IntOrString::String("http".into()));
    assert_eq!(m.objects[0].object.metadata().namespace, None, "namespace is left to the applying context");

    let m = example("redis.yaml");
    let Object::Deployment(d) = &m.objects[0].object else { panic!("not a deployment") };
    assert_eq!(d.spec.strategy.type_, StrategyType::Recreate);
    assert_eq!(d.spec.strategy.rolling_update, None);
    let container = &d.spec.template.spec.containers[0];
    // A limit with no request requests the limit; a request with no limit stays unlimited.
    assert_eq!(container.resources.requests.memory.as_ref().map(|q| q.as_str()), Some("96Mi"));
    assert_eq!(container.resources.limits.cpu, None);
    assert!(matches!(d.spec.template.spec.volumes[0].source, VolumeSource::EmptyDir { .. }));
}

#[test]
fn objects_round_trip_through_json() {
    for name in ["nginx.yaml", "redis.yaml", "guestbook.yaml", "hello.yaml"] {
        for item in example(name).objects {
            let json = serde_json::to_string(&item.object).expect("serializes");
            let back: Object = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{name}: {e}\n{json}"));
            assert_eq!(back, item.object, "{name}");
            let value: serde_json::Value = serde_json::from_str(&json).expect("json");
            assert_eq!(value["kind"], item.object.kind().name(), "{name}");
            assert_eq!(value["apiVersion"], item.object.kind().api_version(), "{name}");
        }
    }
}

/// A valid Deployment as document 2 (after a Namespace), with `{FIELD}` markers to break.
const WEB: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: team-a
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: busybox:1.36
        ports:
        - name: http
          containerPort: 8080
        resources:
          requests:
            memory: 64Mi
          limits:
            memory: 128Mi
";

#[test]
fn the_base_manifest_is_valid() {
    let m = parse_manifests("web.yaml", WEB);
    assert!(m.is_ok(), "{:?}", errors(&m));
    assert_eq!(m.objects.len(), 2);
}

#[test]
fn each_kind_of_mistake_names_file_document_object_and_field() {
    let prefix = "web.yaml: document 2: deployment \"web\": ";
    let cases: &[(&str, &str, &str, &str)] = &[
        // what, replace this, with this, expected message after the prefix
        (
            "bad quantity",
            "memory: 128Mi",
            "memory: 12XB",
            "spec.template.spec.containers[0].resources.limits.memory: invalid quantity \"12XB\" (line 31)",
        ),
        (
            "unknown field",
            "        image: busybox:1.36\n",
            "        image: busybox:1.36\n        imagePolicy: Always\n",
            "spec.template.spec.containers[0].imagePolicy: unknown field (line 24)",
        ),
        (
            "wrong type",
            "replicas: 2",
            "replicas: three",
            "spec.replicas: expected an integer, found \"three\" (line 12)",
        ),
        ("negative", "replicas: 2", "replicas: -1", "spec.replicas: must not be negative (line 12)"),
        (
            "number for a string",
            "image: busybox:1.36",
            "image: 5",
            "spec.template.spec.containers[0].image: expected a string, found 5 (quote it: \"5\") (line 23)",
        ),
        (
            "missing image",
            "        image: busybox:1.36\n",
            "",
            "spec.template.spec.containers[0].image: required field is missing (line 22)",
        ),
        (
            "selector mismatch",
            "      app: web\n  template",
            "      app: api\n  template",
            "spec.selector: does not match the template's labels (wants app=api) (line 13)",
        ),
        (
            "duplicate container",
            "        resources:",
            "      - name: web\n        image: busybox\n        resources:",
            "spec.template.spec.containers[1].name: duplicate container name \"web\" (line 27)",
        ),
        (
            "duplicate port",
            "          containerPort: 8080\n",
            "          containerPort: 8080\n        - containerPort: 8080\n",
            "spec.template.spec.containers[0].ports[1].containerPort: duplicate port 8080/TCP (also at spec.template.spec.containers[0].ports[0]) (line 27)",
        ),
        (
            "probe port",
            "        resources:",
            "        livenessProbe:\n          httpGet:\n            port: health\n        resources:",
            "spec.template.spec.containers[0].livenessProbe.httpGet.port: no port named \"health\" in container \"web\" (line 29)",
        ),
        (
            "request over limit",
            "memory: 64Mi",
            "memory: 256Mi",
            "spec.template.spec.containers[0].resources.requests.memory: request 256Mi is more than the limit 128Mi (line 29)",
        ),
        (
            "recreate with rolling update",
            "  replicas: 2\n",
            "  replicas: 2\n  strategy:\n    type: Recreate\n    rollingUpdate:\n      maxSurge: 1\n",
            "spec.strategy.rollingUpdate: may not be set when strategy type is Recreate (line 15)",
        ),
        (
            "bad surge",
            "  replicas: 2\n",
            "  replicas: 2\n  strategy:\n    rollingUpdate:\n      maxSurge: lots\n",
            "spec.strategy.rollingUpdate.maxSurge: expected a number or a percentage such as \"25%\", found \"lots\" (line 15)",
        ),
        (
            "missing volume",
            "        resources:",
            "        volumeMounts:\n        - name: data\n          mountPath: /data\n        resources:",
            "spec.template.spec.containers[0].volumeMounts[0].name: no volume named \"data\" in the pod (line 28)",
        ),
        (
            "restart policy",
            "      containers:",
            "      restartPolicy: Never\n      containers:",
            "spec.template.spec.restartPolicy: must be Always in a Deployment's template (line 21)",
        ),
        (
            "label value",
            "      app: web\n    spec",
            "      app: web\n        version: \"1.0 beta\"\n    spec",
            "spec.template.metadata.labels.version: invalid label value \"1.0 beta\": must consist of letters, digits, '-', '_' and '.' (line 20)",
        ),
    ];
    for (what, from, to, want) in cases {
        assert!(WEB.contains(from), "{what}: the base has no {from:?}");
        let text = WEB.replacen(from, to, 1);
        let m = parse_manifests("web.yaml", &text);
        let got = errors(&m);
        assert_eq!(got, vec![format!("{prefix}{want}")], "{what}");
        assert_eq!(m.objects.len(), 1, "{what}: the valid document 1 is still read");
    }
}

#[test]
fn document_level_mistakes() {
    let cases: &[(&str, &str)] = &[
        (
            "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n",
            "x.yaml: document 1: kind: unsupported kind \"StatefulSet\"; bramble reads Deployment, Pod, Namespace, Service, ConfigMap (line 2)",
        ),
        (
            "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: db\n",
            "x.yaml: document 1: apiVersion: expected \"apps/v1\" for kind Deployment, found \"extensions/v1beta1\" (line 1)",
        ),
        (
            "kind: Pod\nmetadata:\n  name: p\n",
            "x.yaml: document 1: apiVersion: required field is missing (line 1)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Web_1\nspec:\n  containers: [{name: c, image: x}]\n",
            "x.yaml: document 1: pod \"Web_1\": metadata.name: invalid name \"Web_1\": must consist of lowercase letters, digits, '-' and '.' (line 4)",
        ),
        ("- just\n- a list\n", "x.yaml: document 1: expected a mapping, found a list (line 1)"),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [\n",
            "x.yaml: document 1: invalid YAML: while parsing a node, did not find expected node content (column 1) (line 7)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n",
            "x.yaml: document 1: pod \"p\": spec: required field is missing (line 1)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nspec:\n  containers: []\n",
            "x.yaml: document 1: pod: metadata: required field is missing (line 1)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n",
            "x.yaml: document 1: pod \"p\": spec.containers: must have at least one container (line 6)",
        ),
    ];
    for (text, want) in cases {
        let m = parse_manifests("x.yaml", text);
        assert_eq!(errors(&m), vec![(*want).to_owned()], "{text}");
    }
}

#[test]
fn every_mistake_in_a_document_is_reported_at_once() {
    let text = WEB.replacen("replicas: 2", "replicas: two", 1).replacen("memory: 128Mi", "memory: 12XB", 1);
    let m = parse_manifests("web.yaml", &text);
    assert_eq!(m.errors.len(), 2, "{:?}", errors(&m));
}

#[test]
fn lists_and_duplicates() {
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: a\n- apiVersion: v1\n  kind: Namespace\n  metadata:\n    name: B\n";
    let m = parse_manifests("list.yaml", list);
    assert_eq!(m.objects.len(), 1);
    assert_eq!(
        errors(&m),
        [
            "list.yaml: document 1: namespace \"B\": items[1].metadata.name: invalid name \"B\": must consist of lowercase letters, digits and '-' (line 11)"
        ]
    );
    let twice = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n";
    let m = parse_manifests("twice.yaml", twice);
    assert_eq!(errors(&m), ["twice.yaml: document 2: namespace \"a\": defined again (first in document 1)"]);
}

#[test]
fn json_manifests_are_read_too() {
    let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"busybox","resources":{"limits":{"cpu":0.5}}}]}}"#;
    let m = parse_manifests("pod.json", json);
    assert!(m.is_ok(), "{:?}", errors(&m));
    let Object::Pod(pod) = &m.objects[0].object else { panic!("not a pod") };
    assert_eq!(pod.spec.containers[0].resources.limits.cpu.as_ref().map(|q| q.millis()), Some(500));
}

#[test]
fn host_network_ports_are_host_ports() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  hostNetwork: true\n  containers:\n  - name: c\n    image: busybox\n    ports:\n    - containerPort: 80\n";
    let m = parse_manifests("p.yaml", text);
    let Object::Pod(pod) = &m.objects[0].object else { panic!("not a pod") };
    assert_eq!(pod.spec.containers[0].ports[0].host_port, Some(80));
    let clash = text.replace("- containerPort: 80", "- containerPort: 80\n      hostPort: 81");
    let m = parse_manifests("p.yaml", &clash);
    assert_eq!(
        errors(&m),
        [
            "p.yaml: document 1: pod \"p\": spec.containers[0].ports[0].hostPort: must equal containerPort when hostNetwork is true (line 12)"
        ]
    );
}

#[test]
fn unsupported_volume_kinds_warn_and_say_what_follows() {
    let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n  volumes:\n  - name: cfg\n    configMap:\n      name: settings\n";
    let m = parse_manifests("p.yaml", text);
    assert!(m.is_ok(), "{:?}", errors(&m));
    let warning = m.objects[0].warnings[0].to_string();
    assert_eq!(
        warning,
        "p.yaml: document 1: pod \"p\": spec.volumes[0].configMap: configMap volumes are not supported by bramble, ignored; a pod that mounts this volume cannot start (line 11)"
    );
}

#[test]
fn anchors_and_merge_keys_work_as_with_kubectl() {
    let text = "\
apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
  - &app
    name: app
    image: busybox
    resources:
      limits: &small {cpu: 100m, memory: 32Mi}
  - <<: *app
    name: sidecar
    resources:
      limits: *small
";
    let m = parse_manifests("p.yaml", text);
    assert!(m.is_ok(), "{:?}", errors(&m));
    let Object::Pod(pod) = &m.objects[0].object else { panic!("not a pod") };
    let sidecar = &pod.spec.containers[1];
    assert_eq!((sidecar.name.as_str(), sidecar.image.as_str()), ("sidecar", "busybox"));
    assert_eq!(sidecar.resources.limits.memory.as_ref().map(|q| q.as_str()), Some("32Mi"));
}

#[test]
fn a_required_field_set_to_null_is_missing_not_silently_dropped() {
    // `key: null` is unset, as in Kubernetes; the document must say so, never vanish.
    let prefix = "web.yaml: document 2: deployment \"web\": ";
    let cases: &[(&str, &str, &str)] = &[
        (
            "  selector:\n    matchLabels:\n      app: web\n",
            "  selector: null\n",
            "spec.selector: required field is missing (line 13)",
        ),
        (
            "          containerPort: 8080\n",
            "          containerPort: null\n",
            "spec.template.spec.containers[0].ports[0].containerPort: required field is missing (line 26)",
        ),
        (
            "        image: busybox:1.36\n",
            "        image: null\n",
            "spec.template.spec.containers[0].image: required field is missing (line 23)",
        ),
        (
            "      containers:\n",
            "      containers: null\n      unused:\n",
            "spec.template.spec.containers: required field is missing (line 21)",
        ),
    ];
    for (from, to, want) in cases {
        assert!(WEB.contains(from), "the base has no {from:?}");
        let text = WEB.replacen(from, to, 1);
        let m = parse_manifests("web.yaml", &text);
        let got = errors(&m);
        assert!(got.contains(&format!("{prefix}{want}")), "{to:?}: {got:#?}");
        assert_eq!(m.objects.len(), 1, "{to:?}: only document 1 is read");
    }
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: null\n";
    assert_eq!(
        errors(&parse_manifests("s.yaml", service)),
        ["s.yaml: document 1: service \"s\": spec.ports[0].port: required field is missing (line 7)"]
    );
    let no_meta = "apiVersion: v1\nkind: Namespace\nmetadata: null\n";
    assert_eq!(
        errors(&parse_manifests("n.yaml", no_meta)),
        ["n.yaml: document 1: namespace: metadata: required field is missing (line 3)"]
    );
}
