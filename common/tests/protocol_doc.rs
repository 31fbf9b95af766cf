//! `docs/protocol.md` is the protocol's description for other clients: every topic is in it,
//! every payload type has an example, and every example decodes with `wire` and says nothing
//! the code would ignore (each field written in the example comes back from the decoded value).

use std::path::Path;

use bramble_common::wire::{
    self, Channel, DesiredPods, Message, NodeHealth, NodeStatus, ObservedPods, Request, Response, Topics,
};
use serde_json::Value;

const PAYLOADS: [&str; 6] =
    ["NodeStatus", "NodeHealth", "DesiredPods", "ObservedPods", "Request", "Response"];

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `(payload type, JSON text, line)` of every `<!-- example: TYPE -->` followed by a json block.
fn examples(doc: &str) -> Vec<(String, String, usize)> {
    let mut found = Vec::new();
    let mut lines = doc.lines().enumerate();
    while let Some((n, line)) = lines.next() {
        let Some(kind) = line.strip_prefix("<!-- example: ").and_then(|l| l.strip_suffix(" -->")) else {
            continue;
        };
        assert_eq!(
            lines.next().map(|(_, l)| l),
            Some("```json"),
            "line {}: an example is a json block",
            n + 2
        );
        let body: Vec<&str> = lines.by_ref().map(|(_, l)| l).take_while(|l| *l != "```").collect();
        found.push((kind.to_owned(), body.join("\n"), n + 1));
    }
    found
}

/// Decodes `text` as `T`, encodes it again, and checks that every field of `text` came back.
fn round_trip<T: Message>(text: &str) -> Result<(), String> {
    let decoded: T = wire::decode(text.as_bytes()).map_err(|e| e.to_string())?;
    let written: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let again: Value = serde_json::from_slice(&wire::encode(&decoded)).map_err(|e| e.to_string())?;
    contained(&written, &again, "")
}

/// Every field of `part` is in `whole` with the same value (fields `whole` adds are defaults).
fn contained(part: &Value, whole: &Value, at: &str) -> Result<(), String> {
    match (part, whole) {
        (Value::Object(p), Value::Object(w)) => p.iter().try_for_each(|(k, v)| {
            let field = format!("{at}.{k}");
            w.get(k)
                .ok_or_else(|| format!("{field} is not a field the code knows"))
                .and_then(|wv| contained(v, wv, &field))
        }),
        (Value::Array(p), Value::Array(w)) if p.len() == w.len() => {
            p.iter().zip(w).enumerate().try_for_each(|(i, (pv, wv))| contained(pv, wv, &format!("{at}[{i}]")))
        }
        _ if part == whole => Ok(()),
        _ => Err(format!("{at}: the example says {part}, the code reads {whole}")),
    }
}

#[test]
fn every_example_in_the_protocol_doc_decodes_and_every_field_is_read() {
    let doc = doc();
    let examples = examples(&doc);
    for (kind, text, line) in &examples {
        let outcome = match kind.as_str() {
            "NodeStatus" => round_trip::<NodeStatus>(text),
            "NodeHealth" => round_trip::<NodeHealth>(text),
            "DesiredPods" => round_trip::<DesiredPods>(text),
            "ObservedPods" => round_trip::<ObservedPods>(text),
            "Request" => round_trip::<Request>(text),
            "Response" => round_trip::<Response>(text),
            other => Err(format!("no payload type {other}")),
        };
        if let Err(e) = outcome {
            panic!("docs/protocol.md line {line}: {kind} example: {e}\n{text}");
        }
    }
    for kind in PAYLOADS {
        assert!(examples.iter().any(|(k, _, _)| k == kind), "docs/protocol.md has no example of {kind}");
    }
}

#[test]
fn every_topic_is_in_the_protocol_doc() {
    let doc = doc();
    let topics = Topics::default();
    for channel in Channel::ALL {
        let topic = topics.node("node", channel).expect("a valid node name").replace("/node/", "/NODE/");
        assert!(doc.contains(&format!("`{topic}`")), "docs/protocol.md does not describe {topic}");
    }
}

#[test]
fn a_wrong_example_is_caught() {
    // The checks themselves: a misspelt field, a wrong value, a wrong version.
    let typo = r#"{"v": 1, "node": "pi-1", "online": true, "agentVersoin": "0.1.0"}"#;
    assert!(round_trip::<NodeStatus>(typo).is_err_and(|e| e.contains("agentVersoin")));
    let wrong = r#"{"v": 1, "id": "a", "seq": 0, "done": "yes"}"#;
    assert!(round_trip::<Response>(wrong).is_err());
    assert!(round_trip::<NodeStatus>(r#"{"v": 2, "node": "pi-1", "online": true}"#).is_err());
}
