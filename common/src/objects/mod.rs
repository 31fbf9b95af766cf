//! The objects Bramble understands, a subset of Kubernetes' `apps/v1` and `v1` kinds, and their
//! decoding from a YAML tree.
//!
//! Field names follow Kubernetes (camelCase in JSON and YAML); defaults are filled in by the
//! decoders as Kubernetes fills them, so every other crate sees complete objects.

mod config_map;
mod deployment;
mod meta;
mod namespace;
mod pod;
mod service;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use config_map::ConfigMap;
pub use deployment::{
    Deployment, DeploymentSpec, DeploymentStrategy, LabelSelector, RollingUpdate, StrategyType,
};
pub use meta::{DEFAULT_NAMESPACE, IntOrString, ObjectMeta, TemplateMeta};
pub use namespace::Namespace;
pub use pod::{
    Container, ContainerPort, EnvVar, HttpGetAction, HttpHeader, Pod, PodSpec, PodTemplateSpec, Probe,
    ProbeAction, Protocol, PullPolicy, ResourceList, ResourceRequirements, RestartPolicy, Scheme, Volume,
    VolumeMount, VolumeSource,
};
pub use service::{Service, ServicePort, ServiceSpec, ServiceType};

use crate::decode::{Fields, Path, Problems};
use crate::yaml::Node;

/// The kinds of object Bramble reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Kind {
    Deployment,
    Pod,
    Namespace,
    Service,
    ConfigMap,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Deployment, Kind::Pod, Kind::Namespace, Kind::Service, Kind::ConfigMap];

    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Deployment => "apps/v1",
            Kind::Pod | Kind::Namespace | Kind::Service | Kind::ConfigMap => "v1",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
            Kind::Service => "Service",
            Kind::ConfigMap => "ConfigMap",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn is_namespaced(self) -> bool {
        self != Kind::Namespace
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Any object Bramble reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind")]
pub enum Object {
    Deployment(Deployment),
    Pod(Pod),
    Namespace(Namespace),
    Service(Service),
    ConfigMap(ConfigMap),
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Deployment(_) => Kind::Deployment,
            Object::Pod(_) => Kind::Pod,
            Object::Namespace(_) => Kind::Namespace,
            Object::Service(_) => Kind::Service,
            Object::ConfigMap(_) => Kind::ConfigMap,
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Deployment(o) => &o.metadata,
            Object::Pod(o) => &o.metadata,
            Object::Namespace(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
        }
    }

    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Deployment(o) => &mut o.metadata,
            Object::Pod(o) => &mut o.metadata,
            Object::Namespace(o) => &mut o.metadata,
            Object::Service(o) => &mut o.metadata,
            Object::ConfigMap(o) => &mut o.metadata,
        }
    }

    /// `namespace/name` for namespaced kinds, `name` otherwise.
    pub fn qualified_name(&self) -> String {
        let meta = self.metadata();
        if self.kind().is_namespaced() {
            format!("{}/{}", meta.namespace_or_default(), meta.name)
        } else {
            meta.name.clone()
        }
    }
}

/// Serialized as Kubernetes does: `apiVersion` and `kind` beside the object's own fields.
impl Serialize for Object {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Tagged<'a, T: Serialize> {
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            kind: &'static str,
            #[serde(flatten)]
            object: &'a T,
        }
        let kind = self.kind();
        let (api_version, kind) = (kind.api_version(), kind.name());
        match self {
            Object::Deployment(object) => Tagged { api_version, kind, object }.serialize(serializer),
            Object::Pod(object) => Tagged { api_version, kind, object }.serialize(serializer),
            Object::Namespace(object) => Tagged { api_version, kind, object }.serialize(serializer),
            Object::Service(object) => Tagged { api_version, kind, object }.serialize(serializer),
            Object::ConfigMap(object) => Tagged { api_version, kind, object }.serialize(serializer),
        }
    }
}

/// What decoding one object's tree gave: whatever could be learnt of its identity, and the
/// object itself when it had no errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub kind: Option<Kind>,
    pub name: Option<String>,
    pub object: Option<Object>,
}

/// What `apiVersion` and `kind` say a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeOf {
    Object(Kind),
    /// A `v1 List`, whose `items` are objects.
    List,
    /// Not a pair Bramble supports; the error is recorded.
    Invalid,
}

/// Reads the `apiVersion` and `kind` of an object, recording an error if they are not a pair
/// Bramble supports.
pub fn read_type(fields: &mut Fields<'_>, problems: &mut Problems) -> TypeOf {
    let api_version = fields.required_string("apiVersion", problems);
    let Some(kind_name) = fields.required_string("kind", problems) else {
        return TypeOf::Invalid;
    };
    if kind_name == "List" {
        return TypeOf::List;
    }
    let Some(kind) = Kind::from_name(&kind_name) else {
        let supported: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
        let message = format!("unsupported kind {kind_name:?}; bramble reads {}", supported.join(", "));
        problems.error(&fields.path("kind"), message);
        return TypeOf::Invalid;
    };
    match api_version {
        Some(v) if v == kind.api_version() => TypeOf::Object(kind),
        Some(v) => {
            let message = format!("expected {:?} for kind {kind}, found {v:?}", kind.api_version());
            problems.error(&fields.path("apiVersion"), message);
            TypeOf::Invalid
        }
        None => TypeOf::Invalid,
    }
}

/// Decodes one object of a known kind from its mapping (with `apiVersion` and `kind` read).
pub fn decode_object(mut fields: Fields<'_>, kind: Kind, problems: &mut Problems) -> Decoded {
    let errors_before = problems.errors.len();
    let metadata = fields.require_map("metadata", problems).and_then(|m| ObjectMeta::decode(m, problems));
    let name = metadata.as_ref().map(|m| m.name.clone());
    fields.ignore(&["status"], problems);
    let object = match kind {
        Kind::Deployment => Deployment::decode(&mut fields, metadata, problems).map(Object::Deployment),
        Kind::Pod => Pod::decode(&mut fields, metadata, problems).map(Object::Pod),
        Kind::Namespace => Namespace::decode(&mut fields, metadata, problems).map(Object::Namespace),
        Kind::Service => Service::decode(&mut fields, metadata, problems).map(Object::Service),
        Kind::ConfigMap => ConfigMap::decode(&mut fields, metadata, problems).map(Object::ConfigMap),
    };
    fields.finish(problems);
    if object.is_none() && problems.errors.len() == errors_before {
        // Never drop a document without saying why.
        problems.error(&Path::root(), "could not be read");
    }
    let object = if problems.errors.len() > errors_before { None } else { object };
    Decoded { kind: Some(kind), name, object }
}

/// Decodes a whole object tree (with `apiVersion` and `kind`) found at `path`.
pub fn decode_node(node: &Node, path: &Path, problems: &mut Problems) -> Decoded {
    let unknown = Decoded { kind: None, name: None, object: None };
    let Some(mut fields) = Fields::of(node, path, problems) else { return unknown };
    match read_type(&mut fields, problems) {
        TypeOf::Object(kind) => decode_object(fields, kind, problems),
        TypeOf::List => {
            problems.error(&fields.path("kind"), "a List may not be nested in a List");
            unknown
        }
        TypeOf::Invalid => unknown,
    }
}
