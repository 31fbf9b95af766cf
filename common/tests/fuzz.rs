//! Fuzzing the manifest reader with proptest: no input may panic it, and what it accepts must
//! hold up (valid on re-validation, unchanged through JSON).
//!
//! `BRAMBLE_FUZZ_CASES` sets the cases per property (default 2,000; the closing notes of the
//! workspace issue record a run of a million).

use bramble_common::validate::validate;
use bramble_common::yaml::parse_documents;
use bramble_common::{Manifests, Object, parse_manifest_bytes, parse_manifests};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

const EXAMPLES: [&str; 4] = [
    include_str!("../../examples/nginx.yaml"),
    include_str!("../../examples/redis.yaml"),
    include_str!("../../examples/guestbook.yaml"),
    include_str!("../../examples/hello.yaml"),
];

fn config() -> ProptestConfig {
    let cases = std::env::var("BRAMBLE_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(2_000);
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    }
}

/// What must hold for any input: every error names the file, every non-empty document gives
/// an object or an error (none vanishes), and every accepted object is valid and survives a
/// JSON round trip.
fn check(source: &str, text: &str, m: &Manifests) -> Result<(), TestCaseError> {
    if let Ok(documents) = parse_documents(text) {
        for document in documents.iter().filter(|d| d.root.is_some()) {
            let seen = m.objects.iter().any(|o| o.document == document.index)
                || m.errors.iter().any(|e| e.document == document.index || e.document == 0);
            prop_assert!(seen, "document {} gave neither an object nor an error", document.index);
        }
    }
    for error in &m.errors {
        prop_assert!(error.to_string().starts_with(&format!("{source}: ")), "{error}");
    }
    for item in &m.objects {
        prop_assert!(validate(&item.object).is_empty(), "accepted an invalid object: {:?}", item.object);
        let json = serde_json::to_string(&item.object).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Object =
            serde_json::from_str(&json).map_err(|e| TestCaseError::fail(format!("{e}: {json}")))?;
        prop_assert_eq!(&back, &item.object);
    }
    Ok(())
}

/// An edit to a real manifest.
#[derive(Debug, Clone)]
enum Edit {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    Reindent { line: usize, spaces: usize },
    SwapLineFrom { line: usize, example: usize, other: usize },
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        Just(": ".to_owned()),
        Just("\n- ".to_owned()),
        Just("{".to_owned()),
        Just("]".to_owned()),
        Just("&a ".to_owned()),
        Just("*a".to_owned()),
        Just("\n---\n".to_owned()),
        Just("'".to_owned()),
        Just("\"\\u".to_owned()),
        Just("!!int ".to_owned()),
        Just("null".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("1e400".to_owned()),
        Just("\t".to_owned()),
        "[ -~]{0,12}",
    ];
    prop_oneof![
        (0usize..4000, 0usize..40).prop_map(|(at, len)| Edit::Delete { at, len }),
        (0usize..4000, snippet).prop_map(|(at, text)| Edit::Insert { at, text }),
        (0usize..200).prop_map(|line| Edit::DuplicateLine { line }),
        (0usize..200, 0usize..9).prop_map(|(line, spaces)| Edit::Reindent { line, spaces }),
        (0usize..200, 0usize..4, 0usize..200).prop_map(|(line, example, other)| Edit::SwapLineFrom {
            line,
            example,
            other
        }),
    ]
}

fn apply(text: &str, edit: &Edit) -> String {
    let floor =
        |s: &str, at: usize| (0..=at.min(s.len())).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    match edit {
        Edit::Delete { at, len } => {
            let start = floor(text, *at);
            let end = floor(text, start + len);
            format!("{}{}", &text[..start], &text[end..])
        }
        Edit::Insert { at, text: snippet } => {
            let at = floor(text, *at);
            format!("{}{snippet}{}", &text[..at], &text[at..])
        }
        Edit::DuplicateLine { line } => {
            if let Some(l) = lines.get(line % lines.len().max(1)).cloned() {
                lines.insert(line % lines.len(), l);
            }
            lines.join("\n")
        }
        Edit::Reindent { line, spaces } => {
            if let Some(l) = lines.get_mut(line % text.lines().count().max(1)) {
                *l = format!("{}{}", " ".repeat(*spaces), l.trim_start());
            }
            lines.join("\n")
        }
        Edit::SwapLineFrom { line, example, other } => {
            let donor: Vec<&str> = EXAMPLES[*example].lines().collect();
            if let (Some(l), Some(d)) =
                (lines.get_mut(line % text.lines().count().max(1)), donor.get(other % donor.len()))
            {
                *l = (*d).to_owned();
            }
            lines.join("\n")
        }
    }
}

/// Field names Bramble knows, so random trees reach deep into the decoders.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "spec",
    "replicas",
    "selector",
    "matchLabels",
    "template",
    "containers",
    "image",
    "command",
    "args",
    "env",
    "value",
    "ports",
    "containerPort",
    "hostPort",
    "protocol",
    "resources",
    "requests",
    "limits",
    "cpu",
    "memory",
    "livenessProbe",
    "readinessProbe",
    "httpGet",
    "tcpSocket",
    "exec",
    "port",
    "path",
    "volumes",
    "volumeMounts",
    "mountPath",
    "hostPath",
    "emptyDir",
    "strategy",
    "type",
    "rollingUpdate",
    "maxSurge",
    "maxUnavailable",
    "restartPolicy",
    "hostNetwork",
    "items",
    "data",
    "targetPort",
    "nodePort",
    "status",
];

fn tree() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0i64..70_000).prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        prop_oneof![
            Just("apps/v1"),
            Just("v1"),
            Just("Deployment"),
            Just("Pod"),
            Just("Service"),
            Just("ConfigMap"),
            Just("Namespace"),
            Just("List"),
            Just("web"),
            Just("128Mi"),
            Just("250m"),
            Just("12XB"),
            Just("25%"),
            Just("http"),
            Just("/"),
            Just("Always"),
            Just("Recreate"),
            Just("TCP"),
            Just("busybox"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        "[ -~]{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(8, 200, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|entries| {
                Value::Object(entries.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A tree that starts as a real object header, so most cases get past `kind`.
fn object_tree() -> impl Strategy<Value = serde_json::Value> {
    let kinds = prop::sample::select(vec![
        ("apps/v1", "Deployment"),
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "ConfigMap"),
        ("v1", "Namespace"),
    ]);
    (kinds, tree(), tree()).prop_map(|((api, kind), metadata, spec)| {
        serde_json::json!({ "apiVersion": api, "kind": kind, "metadata": metadata, "spec": spec })
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let m = parse_manifest_bytes("fuzz.yaml", &bytes);
        check("fuzz.yaml", &String::from_utf8_lossy(&bytes), &m)?;
    }

    #[test]
    fn yaml_shaped_text_never_panics(text in "[a-z0-9 :\\-\\[\\]{},&*!|>'\"#%@\n\t.]{0,600}") {
        let m = parse_manifests("fuzz.yaml", &text);
        check("fuzz.yaml", &text, &m)?;
    }

    #[test]
    fn edited_real_manifests_never_panic(example in 0usize..4, edits in prop::collection::vec(edit(), 1..6)) {
        let mut text = EXAMPLES[example].to_owned();
        for e in &edits {
            text = apply(&text, e);
        }
        let m = parse_manifests("fuzz.yaml", &text);
        check("fuzz.yaml", &text, &m)?;
    }

    #[test]
    fn random_object_trees_never_panic(value in object_tree()) {
        let json = value.to_string();
        let m = parse_manifests("fuzz.json", &json);
        check("fuzz.json", &json, &m)?;
    }
}
