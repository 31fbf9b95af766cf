//! YAML text to a small tree of [`Node`]s that remember their line, with hard limits.
//!
//! yaml-rust2's own loader recurses once per nesting level and expands aliases without bound,
//! so a hostile or broken manifest could overflow the stack or exhaust memory. This module
//! drives the event parser itself with an explicit stack, caps nesting depth, and caps the
//! number of nodes a document may expand to.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Deepest nesting accepted. Kubernetes objects nest about a dozen levels.
pub const MAX_DEPTH: usize = 64;
/// Most nodes one document may hold after alias expansion ("billion laughs" guard).
pub const MAX_NODES: usize = 1_000_000;

/// A YAML value with the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: u32,
}

/// A YAML value after core-schema resolution of plain scalars.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// Kept as written so quantities like `0.5` parse exactly.
    Float(String),
    String(String),
    Seq(Vec<Node>),
    /// Entries in document order; keys are the scalar keys as text.
    Map(Vec<(String, Node)>),
}

impl Value {
    /// What the value is, for messages: `"a mapping"`, `"a list"`, or the scalar as written.
    pub fn describe(&self) -> String {
        match self {
            Value::Null => "null".to_owned(),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => f.clone(),
            Value::String(s) => {
                let mut shown: String = s.chars().take(60).collect();
                if shown.len() < s.len() {
                    shown.push('…');
                }
                format!("{shown:?}")
            }
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }
}

/// One document of a stream: its 1-based position and its root (`None` for an empty document).
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub index: usize,
    pub root: Option<Node>,
}

/// Why a YAML stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {document}: line {line} column {column}: {message}")]
pub struct YamlError {
    pub document: usize,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses every document of a YAML (or JSON) stream.
pub fn parse_documents(text: &str) -> Result<Vec<Document>, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    loop {
        let (event, mark) = match parser.next_token() {
            Ok(next) => next,
            Err(scan) => {
                let mark = *scan.marker();
                return Err(builder.error(mark, scan.info().to_owned()));
            }
        };
        if event == Event::StreamEnd {
            break;
        }
        builder.on_event(event, mark)?;
    }
    Ok(builder.documents)
}

enum Open {
    Seq(Vec<Node>, u32, usize),
    /// Entries so far, a key (and its line) waiting for its value, line, anchor.
    Map(Vec<(String, Node)>, Option<(String, u32)>, u32, usize),
}

#[derive(Default)]
struct Builder {
    documents: Vec<Document>,
    stack: Vec<Open>,
    anchors: HashMap<usize, Node>,
    nodes_in_document: usize,
    root: Option<Node>,
}

impl Builder {
    fn error(&self, mark: Marker, message: String) -> YamlError {
        YamlError { document: self.documents.len() + 1, line: mark.line(), column: mark.col() + 1, message }
    }

    fn on_event(&mut self, event: Event, mark: Marker) -> Result<(), YamlError> {
        let line = u32::try_from(mark.line()).unwrap_or(u32::MAX);
        match event {
            Event::DocumentStart => {
                self.anchors.clear();
                self.nodes_in_document = 0;
                self.root = None;
            }
            Event::DocumentEnd => {
                let index = self.documents.len() + 1;
                // An empty document (`---` then nothing) arrives as a null scalar.
                let root = self.root.take().filter(|n| n.value != Value::Null);
                self.documents.push(Document { index, root });
            }
            Event::Scalar(text, style, anchor, tag) => {
                // `!!str 80` stays text; any other plain scalar resolves by the core schema.
                let explicit_str = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let value = if style == TScalarStyle::Plain && !explicit_str {
                    resolve_plain(text)
                } else {
                    Value::String(text)
                };
                self.push(Node { value, line }, anchor, mark)?;
            }
            Event::SequenceStart(anchor, _) => {
                self.open(Open::Seq(Vec::new(), line, anchor), mark)?;
            }
            Event::MappingStart(anchor, _) => {
                self.open(Open::Map(Vec::new(), None, line, anchor), mark)?;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Open::Seq(items, line, anchor)) => (Node { value: Value::Seq(items), line }, anchor),
                    Some(Open::Map(entries, _, line, anchor)) => {
                        let entries = expand_merge_keys(entries).map_err(|m| self.error(mark, m))?;
                        (Node { value: Value::Map(entries), line }, anchor)
                    }
                    None => return Err(self.error(mark, "unbalanced end of collection".to_owned())),
                };
                self.complete(node, anchor, mark)?;
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(self.error(mark, "alias to an unknown anchor".to_owned()));
                };
                let target = target.clone();
                self.count(count_nodes(&target), mark)?;
                self.complete(target, 0, mark)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn count(&mut self, n: usize, mark: Marker) -> Result<(), YamlError> {
        self.nodes_in_document = self.nodes_in_document.saturating_add(n);
        if self.nodes_in_document > MAX_NODES {
            return Err(self.error(mark, format!("document expands to more than {MAX_NODES} nodes")));
        }
        Ok(())
    }

    fn open(&mut self, open: Open, mark: Marker) -> Result<(), YamlError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(self.error(mark, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        self.count(1, mark)?;
        self.stack.push(open);
        Ok(())
    }

    fn push(&mut self, node: Node, anchor: usize, mark: Marker) -> Result<(), YamlError> {
        self.count(1, mark)?;
        self.complete(node, anchor, mark)
    }

    /// Places a finished node into its parent (or as the document root).
    fn complete(&mut self, node: Node, anchor: usize, mark: Marker) -> Result<(), YamlError> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Open::Seq(items, ..)) => items.push(node),
            Some(Open::Map(entries, pending, ..)) => match pending.take() {
                Some((key, key_line)) => {
                    if entries.iter().any(|(k, _)| *k == key) {
                        let message = format!("duplicate key {key:?}");
                        return Err(self.error(mark, message));
                    }
                    let mut node = node;
                    if matches!(node.value, Value::Seq(_) | Value::Map(_)) {
                        // A block collection starts on the line after its key; point at the key.
                        node.line = node.line.min(key_line);
                    }
                    entries.push((key, node));
                }
                None => match key_text(&node.value) {
                    Some(key) => *pending = Some((key, node.line)),
                    None => return Err(self.error(mark, "mapping keys must be scalars".to_owned())),
                },
            },
        }
        Ok(())
    }
}

/// YAML merge keys, as kubectl reads them: `<<: *defaults` (or a list of such) adds the
/// entries of those mappings that the mapping does not set itself; earlier ones win.
fn expand_merge_keys(entries: Vec<(String, Node)>) -> Result<Vec<(String, Node)>, String> {
    if !entries.iter().any(|(k, _)| k == MERGE_KEY) {
        return Ok(entries);
    }
    let (merges, mut own): (Vec<_>, Vec<_>) = entries.into_iter().partition(|(k, _)| k == MERGE_KEY);
    for (_, merge) in merges {
        let sources = match merge.value {
            Value::Map(entries) => vec![entries],
            Value::Seq(items) => items
                .into_iter()
                .map(|item| match item.value {
                    Value::Map(entries) => Ok(entries),
                    _ => Err(()),
                })
                .collect::<Result<_, _>>()
                .map_err(|()| "a merge key (<<) takes a mapping or a list of mappings".to_owned())?,
            _ => return Err("a merge key (<<) takes a mapping or a list of mappings".to_owned()),
        };
        for (key, value) in sources.into_iter().flatten() {
            if !own.iter().any(|(k, _)| *k == key) {
                own.push((key, value));
            }
        }
    }
    Ok(own)
}

const MERGE_KEY: &str = "<<";

fn key_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some(String::new()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.clone()),
        Value::String(s) => Some(s.clone()),
        Value::Seq(_) | Value::Map(_) => None,
    }
}

fn count_nodes(node: &Node) -> usize {
    let mut count = 0usize;
    let mut pending = vec![node];
    while let Some(n) = pending.pop() {
        count += 1;
        match &n.value {
            Value::Seq(items) => pending.extend(items.iter()),
            Value::Map(entries) => pending.extend(entries.iter().map(|(_, v)| v)),
            _ => {}
        }
    }
    count
}

/// YAML 1.2 core schema for plain scalars, as yaml-rust2 resolves them.
fn resolve_plain(text: String) -> Value {
    use yaml_rust2::Yaml;
    match Yaml::from_str(&text) {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Int(i),
        Yaml::Real(r) => Value::Float(r),
        _ => Value::String(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        let docs = parse_documents(text).expect("valid yaml");
        docs.into_iter().next().and_then(|d| d.root).map(|n| n.value).unwrap_or(Value::Null)
    }

    #[test]
    fn scalars_resolve_like_the_core_schema() {
        let cases = [
            ("a: 1", Value::Int(1)),
            ("a: '1'", Value::String("1".into())),
            ("a: 0.5", Value::Float("0.5".into())),
            ("a: true", Value::Bool(true)),
            ("a: ~", Value::Null),
            ("a: 128Mi", Value::String("128Mi".into())),
            ("a: !!str 80", Value::String("80".into())),
        ];
        for (text, want) in cases {
            let Value::Map(entries) = one(text) else { panic!("{text}: not a map") };
            assert_eq!(entries[0].1.value, want, "{text}");
        }
    }

    #[test]
    fn documents_are_numbered_and_empty_ones_kept() {
        let docs = parse_documents("a: 1\n---\n---\nb: 2\n").expect("valid yaml");
        let indexes: Vec<_> = docs.iter().map(|d| (d.index, d.root.is_some())).collect();
        assert_eq!(indexes, vec![(1, true), (2, false), (3, true)]);
    }

    #[test]
    fn lines_are_remembered() {
        let Value::Map(entries) = one("a: 1\nb:\n  c: 2\n") else { panic!("not a map") };
        assert_eq!(entries[1].0, "b");
        let Value::Map(inner) = &entries[1].1.value else { panic!("not a map") };
        assert_eq!(inner[0].1.line, 3);
    }

    #[test]
    fn syntax_errors_name_document_and_line() {
        let err = parse_documents("a: 1\n---\nb: [1, 2\nc: 3\n").expect_err("broken");
        assert_eq!(err.document, 2);
        assert!(err.line >= 3, "{err}");
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        // Flow nesting: the scanner's own limit answers first.
        assert!(parse_documents(&"[".repeat(100_000)).is_err());
        // Block nesting has no limit in the scanner: ours answers.
        let text: String = (0..10_000).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        let err = parse_documents(&text).expect_err("too deep");
        assert!(err.message.contains("nesting deeper"), "{err}");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse_documents(&text).expect_err("bomb");
        assert!(err.message.contains("more than"), "{err}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = parse_documents("a: 1\na: 2\n").expect_err("dup");
        assert!(err.message.contains("duplicate key \"a\""), "{err}");
    }

    #[test]
    fn merge_keys_fill_in_what_the_mapping_does_not_set() {
        let text = "base: &base {image: busybox, cpu: 1}\nextra: &extra {tty: true}\nc:\n  <<: [*base, *extra]\n  cpu: 2\n";
        let Value::Map(entries) = one(text) else { panic!("not a map") };
        let Value::Map(c) = &entries[2].1.value else { panic!("not a map") };
        let got: Vec<(&str, &Value)> = c.iter().map(|(k, v)| (k.as_str(), &v.value)).collect();
        assert_eq!(
            got,
            vec![
                ("cpu", &Value::Int(2)),
                ("image", &Value::String("busybox".into())),
                ("tty", &Value::Bool(true)),
            ]
        );
        let err = parse_documents("a:\n  <<: 5\n").expect_err("not a mapping");
        assert!(err.message.contains("merge key"), "{err}");
    }

    #[test]
    fn aliases_copy_their_anchor() {
        let Value::Map(entries) = one("a: &x {b: 1}\nc: *x\n") else { panic!("not a map") };
        assert_eq!(entries[0].1.value, entries[1].1.value);
    }
}
