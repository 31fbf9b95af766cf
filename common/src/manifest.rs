//! Manifest files: a YAML (or JSON) stream of objects in, decoded and validated objects out,
//! with every problem named by file, document, object and field path.
//!
//! ```text
//! web.yaml: document 2: deployment "web": spec.template.spec.containers[0].resources.limits.memory: invalid quantity "12XB" (line 21)
//! ```

use std::collections::BTreeMap;
use std::fmt;

use crate::decode::{Fields, Path, Problem, Problems};
use crate::objects::{Kind, Object, TypeOf, decode_node, decode_object, read_type};
use crate::validate::validate;
use crate::yaml::{Node, parse_documents};

/// Largest manifest text read (a file of Kubernetes objects is rarely over a few hundred KiB).
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;

/// An error or warning, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file as the user named it, or `<stdin>`.
    pub source: String,
    /// 1-based document in the stream; 0 when the problem is with the whole stream.
    pub document: usize,
    /// `deployment "web"`, when the object's kind (and name) could be read.
    pub object: Option<String>,
    pub problem: Problem,
    /// 1-based line of the field at fault, or of its nearest written parent.
    pub line: Option<u32>,
}

impl Diagnostic {
    /// A problem with a whole file or stream, not one of its documents.
    pub fn for_source(source: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            source: source.to_owned(),
            document: 0,
            object: None,
            problem: Problem { path: Path::root(), message: message.into() },
            line: None,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.source)?;
        if self.document > 0 {
            write!(f, "document {}: ", self.document)?;
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        f.write_str(&self.problem_at_line())
    }
}

impl Diagnostic {
    /// The field, the message and the line, without file, document or object:
    /// `spec.replicas: expected an integer, found "three" (line 12)`.
    pub fn problem_at_line(&self) -> String {
        match self.line {
            Some(line) => format!("{} (line {line})", self.problem),
            None => self.problem.to_string(),
        }
    }
}

/// One object read from a manifest, with the warnings about its fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestObject {
    pub source: String,
    pub document: usize,
    pub object: Object,
    pub warnings: Vec<Diagnostic>,
}

/// Everything read from one manifest: the valid objects and the errors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Manifests {
    pub objects: Vec<ManifestObject>,
    pub errors: Vec<Diagnostic>,
}

impl Manifests {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    /// Adds another manifest's results (for a directory of files).
    pub fn extend(&mut self, other: Manifests) {
        self.objects.extend(other.objects);
        self.errors.extend(other.errors);
    }
}

/// Reads every object of a manifest's raw bytes, which must be UTF-8 text.
pub fn parse_manifest_bytes(source: &str, bytes: &[u8]) -> Manifests {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_manifests(source, text),
        Err(e) => {
            let message = format!("not UTF-8 text (byte {})", e.valid_up_to());
            Manifests { objects: Vec::new(), errors: vec![Diagnostic::for_source(source, message)] }
        }
    }
}

/// Reads every object of a YAML stream named `source` (a `v1 List` counts as its items).
pub fn parse_manifests(source: &str, text: &str) -> Manifests {
    let mut out = Manifests::default();
    if text.len() > MAX_MANIFEST_BYTES {
        let message = format!(
            "is {} bytes or more, over the {MAX_MANIFEST_BYTES} bytes a manifest may have",
            text.len()
        );
        out.errors.push(Diagnostic::for_source(source, message));
        return out;
    }
    let documents = match parse_documents(text) {
        Ok(documents) => documents,
        Err(e) => {
            out.errors.push(Diagnostic {
                document: e.document,
                line: u32::try_from(e.line).ok(),
                ..Diagnostic::for_source(source, format!("invalid YAML: {} (column {})", e.message, e.column))
            });
            return out;
        }
    };
    for document in documents {
        let Some(root) = &document.root else { continue };
        let mut reader = DocumentReader { source, document: document.index, root, out: &mut out };
        reader.read(root, &Path::root());
    }
    check_duplicates(source, &mut out);
    out
}

struct DocumentReader<'a> {
    source: &'a str,
    document: usize,
    root: &'a Node,
    out: &'a mut Manifests,
}

impl DocumentReader<'_> {
    fn read(&mut self, node: &Node, path: &Path) {
        let mut problems = Problems::default();
        let Some(mut fields) = Fields::of(node, path, &mut problems) else {
            return self.report(path, None, problems, None);
        };
        match read_type(&mut fields, &mut problems) {
            TypeOf::Object(kind) => {
                let decoded = decode_object(fields, kind, &mut problems);
                let label = Some(object_label(kind, decoded.name.as_deref()));
                self.report(path, label, problems, decoded.object);
            }
            TypeOf::List => {
                // A `v1 List` (as `kubectl get -o yaml` prints): each item is an object.
                let items = fields.list("items", &mut problems);
                fields.skip(&["apiVersion", "metadata"]);
                fields.finish(&mut problems);
                self.report(path, None, problems, None);
                for (i, item) in items {
                    let item_path = path.field("items").index(i);
                    let mut item_problems = Problems::default();
                    let decoded = decode_node(item, &item_path, &mut item_problems);
                    let label = decoded.kind.map(|k| object_label(k, decoded.name.as_deref()));
                    self.report(&item_path, label, item_problems, decoded.object);
                }
            }
            TypeOf::Invalid => self.report(path, None, problems, None),
        }
    }

    /// Records one object's problems; `path` is where the object sits in the document.
    fn report(&mut self, path: &Path, label: Option<String>, mut problems: Problems, object: Option<Object>) {
        if let Some(object) = &object {
            // Validation speaks of paths within the object.
            let found = validate(object).into_iter().map(|p| Problem { path: path.join(&p.path), ..p });
            problems.errors.extend(found);
        }
        let locate = |problem: Problem| Diagnostic {
            source: self.source.to_owned(),
            document: self.document,
            object: label.clone(),
            line: Some(problem.path.line_in(self.root)),
            problem,
        };
        let errors: Vec<Diagnostic> = problems.errors.into_iter().map(locate).collect();
        let warnings: Vec<Diagnostic> = problems.warnings.into_iter().map(locate).collect();
        match object {
            Some(object) if errors.is_empty() => {
                let source = self.source.to_owned();
                self.out.objects.push(ManifestObject { source, document: self.document, object, warnings });
            }
            _ => self.out.errors.extend(errors),
        }
    }
}

/// `deployment "web"`, as messages name objects.
pub fn object_label(kind: Kind, name: Option<&str>) -> String {
    let kind = kind.name().to_lowercase();
    match name {
        Some(name) => format!("{kind} {name:?}"),
        None => kind,
    }
}

/// The same object twice in one manifest is a mistake: the second would silently win.
fn check_duplicates(source: &str, out: &mut Manifests) {
    let mut seen: BTreeMap<(Kind, String), usize> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for (i, item) in out.objects.iter().enumerate() {
        let key = (item.object.kind(), item.object.qualified_name());
        if let Some(first) = seen.insert(key, item.document) {
            duplicates.push((i, first));
        }
    }
    for (i, first) in duplicates.iter().rev() {
        let item = out.objects.remove(*i);
        let meta = item.object.metadata();
        out.errors.push(Diagnostic {
            source: source.to_owned(),
            document: item.document,
            object: Some(object_label(item.object.kind(), Some(&meta.name))),
            problem: Problem {
                path: Path::root(),
                message: format!("defined again (first in document {first})"),
            },
            line: None,
        });
    }
}

/// One line saying what an object is: `Deployment default/web: 3 replicas of nginx:1.27`.
pub fn summary(object: &Object) -> String {
    let what = match object {
        Object::Deployment(d) => {
            let images: Vec<&str> =
                d.spec.template.spec.containers.iter().map(|c| c.image.as_str()).collect();
            let replicas = d.spec.replicas;
            let plural = if replicas == 1 { "" } else { "s" };
            format!("{replicas} replica{plural} of {}", images.join(", "))
        }
        Object::Pod(p) => {
            let images: Vec<&str> = p.spec.containers.iter().map(|c| c.image.as_str()).collect();
            images.join(", ")
        }
        Object::Service(s) => {
            let ports: Vec<String> =
                s.spec.ports.iter().map(|p| format!("{}->{}", p.port, p.target_port)).collect();
            format!("{:?} {}", s.spec.type_, ports.join(", "))
        }
        Object::ConfigMap(c) => format!("{} keys", c.data.len() + c.binary_data.len()),
        Object::Namespace(_) => String::new(),
    };
    let name = format!("{} {}", object.kind(), object.qualified_name());
    if what.is_empty() { name } else { format!("{name}: {what}") }
}

/// What `validate` prints: each object and its warnings, then each error, then a count.
pub fn render_report(manifests: &Manifests) -> String {
    let mut out = String::new();
    for item in &manifests.objects {
        out.push_str(&format!("{}: document {}: {}\n", item.source, item.document, summary(&item.object)));
        for warning in &item.warnings {
            out.push_str(&format!("  warning: {}\n", warning.problem_at_line()));
        }
    }
    let warnings: usize = manifests.objects.iter().map(|o| o.warnings.len()).sum();
    for error in &manifests.errors {
        out.push_str(&format!("error: {error}\n"));
    }
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    out.push_str(&format!(
        "{}, {}, {}\n",
        plural(manifests.objects.len(), "object"),
        plural(warnings, "warning"),
        plural(manifests.errors.len(), "error")
    ));
    out
}
