//! Field-by-field decoding of a YAML [`Node`] tree into typed objects, with field paths.
//!
//! Decoders read a mapping through [`Fields`], which remembers which keys were read: keys that
//! Kubernetes has but Bramble does not act on are passed to [`Fields::ignore`] (a warning each),
//! and whatever is left when [`Fields::finish`] runs is an unknown field (an error). Problems
//! accumulate in [`Problems`] so that one run reports every mistake in a document, not only the
//! first.

use std::collections::BTreeMap;
use std::fmt;

use crate::yaml::{Node, Value};

/// Where a field is: `spec.template.spec.containers[0].resources.limits.memory`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
}

impl Path {
    pub fn root() -> Path {
        Path::default()
    }

    pub fn field(&self, name: &str) -> Path {
        let mut segments = self.0.clone();
        segments.push(Segment::Field(name.to_owned()));
        Path(segments)
    }

    pub fn index(&self, index: usize) -> Path {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        Path(segments)
    }

    /// `other` taken as relative to this path.
    pub fn join(&self, other: &Path) -> Path {
        Path(self.0.iter().chain(&other.0).cloned().collect())
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The line of the deepest node along this path that exists in `root`.
    pub fn line_in(&self, root: &Node) -> u32 {
        let mut node = root;
        for segment in &self.0 {
            let next = match (segment, &node.value) {
                (Segment::Field(name), Value::Map(entries)) => {
                    entries.iter().find(|(k, _)| k == name).map(|(_, v)| v)
                }
                (Segment::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        node.line
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Field(name) if is_plain_field_name(name) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                Segment::Field(name) => write!(f, "[{name:?}]")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain_field_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// One error or warning found while decoding or validating an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: Path,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_root() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Errors and warnings gathered while decoding one object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Problems {
    pub fn error(&mut self, path: &Path, message: impl Into<String>) {
        self.errors.push(Problem { path: path.clone(), message: message.into() });
    }

    pub fn warn(&mut self, path: &Path, message: impl Into<String>) {
        self.warnings.push(Problem { path: path.clone(), message: message.into() });
    }
}

/// The warning for a Kubernetes field Bramble accepts but does not act on.
pub const IGNORED: &str = "not supported by bramble, ignored";

/// Reads the entries of one mapping, remembering which were read.
#[derive(Debug)]
pub struct Fields<'n> {
    path: Path,
    entries: &'n [(String, Node)],
    read: Vec<bool>,
}

impl<'n> Fields<'n> {
    /// Starts reading `node` as a mapping, or records "expected a mapping".
    pub fn of(node: &'n Node, path: &Path, problems: &mut Problems) -> Option<Fields<'n>> {
        match &node.value {
            Value::Map(entries) => {
                Some(Fields { path: path.clone(), entries, read: vec![false; entries.len()] })
            }
            other => {
                problems.error(path, format!("expected a mapping, found {}", other.describe()));
                None
            }
        }
    }

    /// The path of this mapping itself.
    pub fn own_path(&self) -> &Path {
        &self.path
    }

    /// Whether the key is written at all, even as `key: null`.
    pub fn is_present(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The keys not read so far.
    pub fn unread_keys(&self) -> Vec<String> {
        self.entries.iter().zip(&self.read).filter(|(_, read)| !**read).map(|((k, _), _)| k.clone()).collect()
    }

    /// The path of one of this mapping's fields.
    pub fn path(&self, key: &str) -> Path {
        self.path.field(key)
    }

    /// Takes a field; `key: null` counts as absent, as in Kubernetes.
    pub fn take(&mut self, key: &str) -> Option<&'n Node> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        self.read[i] = true;
        let node = &self.entries[i].1;
        (node.value != Value::Null).then_some(node)
    }

    pub fn string(&mut self, key: &str, problems: &mut Problems) -> Option<String> {
        let path = self.path(key);
        self.take(key).and_then(|n| as_string(n, &path, problems))
    }

    /// A field that must be set: its node, or the error "required field is missing" when it is
    /// absent or null (`key: null` is unset, as in Kubernetes). Every required field is read
    /// through here, so none can go missing without an error.
    pub fn require(&mut self, key: &str, problems: &mut Problems) -> Option<&'n Node> {
        let node = self.take(key);
        if node.is_none() {
            problems.error(&self.path(key), "required field is missing");
        }
        node
    }

    /// A required nested mapping.
    pub fn require_map(&mut self, key: &str, problems: &mut Problems) -> Option<Fields<'n>> {
        let path = self.path(key);
        self.require(key, problems).and_then(|n| Fields::of(n, &path, problems))
    }

    /// A required whole number that fits `T`.
    pub fn require_int<T: TryFrom<i64>>(&mut self, key: &str, problems: &mut Problems) -> Option<T> {
        let path = self.path(key);
        self.require(key, problems).and_then(|n| as_int(n, &path, problems))
    }

    /// A string that must be set and non-empty.
    pub fn required_string(&mut self, key: &str, problems: &mut Problems) -> Option<String> {
        let path = self.path(key);
        let value = self.require(key, problems).and_then(|n| as_string(n, &path, problems))?;
        if value.is_empty() {
            problems.error(&path, "must not be empty");
            return None;
        }
        Some(value)
    }

    pub fn bool(&mut self, key: &str, problems: &mut Problems) -> Option<bool> {
        let path = self.path(key);
        match self.take(key).map(|n| &n.value) {
            None => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                problems.error(&path, format!("expected true or false, found {}", other.describe()));
                None
            }
        }
    }

    /// A whole number that fits `T` (which bounds it).
    pub fn int<T: TryFrom<i64>>(&mut self, key: &str, problems: &mut Problems) -> Option<T> {
        let path = self.path(key);
        self.take(key).and_then(|n| as_int(n, &path, problems))
    }

    pub fn strings(&mut self, key: &str, problems: &mut Problems) -> Vec<String> {
        let path = self.path(key);
        self.list(key, problems)
            .into_iter()
            .filter_map(|(i, n)| as_string(n, &path.index(i), problems))
            .collect()
    }

    /// A mapping of strings to strings, such as labels.
    pub fn string_map(&mut self, key: &str, problems: &mut Problems) -> BTreeMap<String, String> {
        let path = self.path(key);
        let Some(node) = self.take(key) else { return BTreeMap::new() };
        let Some(mut fields) = Fields::of(node, &path, problems) else { return BTreeMap::new() };
        let mut out = BTreeMap::new();
        for (k, v) in fields.entries {
            if let Some(s) = as_string(v, &path.field(k), problems) {
                out.insert(k.clone(), s);
            }
        }
        fields.read.fill(true);
        out
    }

    /// A nested mapping.
    pub fn map(&mut self, key: &str, problems: &mut Problems) -> Option<Fields<'n>> {
        let path = self.path(key);
        self.take(key).and_then(|n| Fields::of(n, &path, problems))
    }

    /// The items of a list, each with its index.
    pub fn list(&mut self, key: &str, problems: &mut Problems) -> Vec<(usize, &'n Node)> {
        let path = self.path(key);
        match self.take(key).map(|n| &n.value) {
            None => Vec::new(),
            Some(Value::Seq(items)) => items.iter().enumerate().collect(),
            Some(other) => {
                problems.error(&path, format!("expected a list, found {}", other.describe()));
                Vec::new()
            }
        }
    }

    /// Each item of a list of mappings, decoded by `decode`.
    pub fn list_of<T>(
        &mut self,
        key: &str,
        problems: &mut Problems,
        mut decode: impl FnMut(Fields<'n>, &mut Problems) -> Option<T>,
    ) -> Vec<T> {
        let path = self.path(key);
        self.list(key, problems)
            .into_iter()
            .filter_map(|(i, node)| {
                let fields = Fields::of(node, &path.index(i), problems)?;
                let errors_before = problems.errors.len();
                let item = decode(fields, problems);
                if item.is_none() && problems.errors.len() == errors_before {
                    // A decoder that gives nothing must say why: an item never just disappears.
                    problems.error(&path.index(i), "could not be read");
                }
                item
            })
            .collect()
    }

    /// Kubernetes fields Bramble accepts but does not act on: a warning for each one set to
    /// something (`status: {}` and `creationTimestamp: null` from generated manifests are quiet).
    pub fn ignore(&mut self, keys: &[&str], problems: &mut Problems) {
        for key in keys {
            if let Some(i) = self.entries.iter().position(|(k, _)| k == key) {
                self.read[i] = true;
                let empty = match &self.entries[i].1.value {
                    Value::Null => true,
                    Value::Map(m) => m.is_empty(),
                    Value::Seq(s) => s.is_empty(),
                    _ => false,
                };
                if !empty {
                    problems.warn(&self.path(key), IGNORED);
                }
            }
        }
    }

    /// Fields Kubernetes fills in itself (uid, status, …): accepted silently when present.
    pub fn skip(&mut self, keys: &[&str]) {
        for key in keys {
            if let Some(i) = self.entries.iter().position(|(k, _)| k == key) {
                self.read[i] = true;
            }
        }
    }

    /// Records every field that was not read as unknown.
    pub fn finish(self, problems: &mut Problems) {
        for ((key, _), read) in self.entries.iter().zip(&self.read) {
            if !read {
                problems.error(&self.path.field(key), "unknown field");
            }
        }
    }
}

pub fn as_string(node: &Node, path: &Path, problems: &mut Problems) -> Option<String> {
    match &node.value {
        Value::String(s) => Some(s.clone()),
        other @ (Value::Int(_) | Value::Float(_) | Value::Bool(_)) => {
            let shown = other.describe();
            problems.error(path, format!("expected a string, found {shown} (quote it: \"{shown}\")"));
            None
        }
        other => {
            problems.error(path, format!("expected a string, found {}", other.describe()));
            None
        }
    }
}

pub fn as_int<T: TryFrom<i64>>(node: &Node, path: &Path, problems: &mut Problems) -> Option<T> {
    match &node.value {
        Value::Int(i) => match T::try_from(*i) {
            Ok(v) => Some(v),
            Err(_) => {
                let message =
                    if *i < 0 { "must not be negative".to_owned() } else { format!("{i} is too large") };
                problems.error(path, message);
                None
            }
        },
        other => {
            problems.error(path, format!("expected an integer, found {}", other.describe()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse_documents;

    fn root(text: &str) -> Node {
        let docs = parse_documents(text).expect("valid yaml");
        docs.into_iter().next().and_then(|d| d.root).expect("a document")
    }

    #[test]
    fn paths_print_like_kubernetes() {
        let p = Path::root().field("spec").field("containers").index(0).field("name");
        assert_eq!(p.to_string(), "spec.containers[0].name");
        let p = Path::root().field("metadata").field("labels").field("app.kubernetes.io/name");
        assert_eq!(p.to_string(), "metadata.labels[\"app.kubernetes.io/name\"]");
    }

    #[test]
    fn unknown_ignored_and_wrong_types_are_reported() {
        let node = root("name: web\nreplicas: three\nimagePullPolicy: Always\nfoo: 1\n");
        let mut problems = Problems::default();
        let mut f = Fields::of(&node, &Path::root(), &mut problems).expect("a map");
        assert_eq!(f.string("name", &mut problems).as_deref(), Some("web"));
        assert_eq!(f.int::<u32>("replicas", &mut problems), None);
        f.ignore(&["imagePullPolicy"], &mut problems);
        f.finish(&mut problems);
        let errors: Vec<String> = problems.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors, vec!["replicas: expected an integer, found \"three\"", "foo: unknown field"]);
        let warnings: Vec<String> = problems.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(warnings, vec![format!("imagePullPolicy: {IGNORED}")]);
    }

    #[test]
    fn numbers_where_strings_belong_suggest_quoting() {
        let node = root("value: 8080\n");
        let mut problems = Problems::default();
        let mut f = Fields::of(&node, &Path::root(), &mut problems).expect("a map");
        assert_eq!(f.string("value", &mut problems), None);
        assert_eq!(
            problems.errors[0].to_string(),
            "value: expected a string, found 8080 (quote it: \"8080\")"
        );
    }

    #[test]
    fn negative_and_oversized_integers_are_refused() {
        let node = root("a: -1\nb: 70000\n");
        let mut problems = Problems::default();
        let mut f = Fields::of(&node, &Path::root(), &mut problems).expect("a map");
        assert_eq!(f.int::<u32>("a", &mut problems), None);
        assert_eq!(f.int::<u16>("b", &mut problems), None);
        let errors: Vec<String> = problems.errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors, vec!["a: must not be negative", "b: 70000 is too large"]);
    }

    #[test]
    fn line_of_a_path_is_the_deepest_existing_node() {
        let node = root("spec:\n  containers:\n  - name: a\n    image: x\n");
        let p = Path::root().field("spec").field("containers").index(0).field("image");
        assert_eq!(p.line_in(&node), 4);
        let missing = Path::root().field("spec").field("containers").index(0).field("ports");
        assert_eq!(missing.line_in(&node), 3);
    }
}
