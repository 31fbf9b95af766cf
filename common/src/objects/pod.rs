//! `v1 Pod` and the pod spec shared with templates: containers, probes, resources, volumes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{IntOrString, ObjectMeta, TemplateMeta};
use crate::decode::{Fields, IGNORED, Problems};
use crate::quantity::Quantity;
use crate::yaml::Value;

/// Kubernetes' default grace period between SIGTERM and SIGKILL.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: u64 = 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pod {
    pub metadata: ObjectMeta,
    pub spec: PodSpec,
}

impl Pod {
    pub(crate) fn decode(
        f: &mut Fields<'_>,
        metadata: Option<ObjectMeta>,
        problems: &mut Problems,
    ) -> Option<Pod> {
        let spec = required_spec(f, problems, PodSpec::decode);
        Some(Pod { metadata: metadata?, spec: spec? })
    }
}

/// Decodes the `spec` field with `decode`, or records that it is missing.
pub(crate) fn required_spec<T>(
    f: &mut Fields<'_>,
    problems: &mut Problems,
    decode: impl FnOnce(Fields<'_>, &mut Problems) -> Option<T>,
) -> Option<T> {
    f.require_map("spec", problems).and_then(|spec| decode(spec, problems))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodTemplateSpec {
    #[serde(default)]
    pub metadata: TemplateMeta,
    pub spec: PodSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Volume>,
    pub restart_policy: RestartPolicy,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    pub termination_grace_period_seconds: u64,
    #[serde(default)]
    pub host_network: bool,
}

/// Pod spec fields Kubernetes has and Bramble does not act on.
const POD_SPEC_IGNORED: &[&str] = &[
    "initContainers",
    "ephemeralContainers",
    "affinity",
    "tolerations",
    "serviceAccountName",
    "serviceAccount",
    "automountServiceAccountToken",
    "securityContext",
    "dnsPolicy",
    "dnsConfig",
    "imagePullSecrets",
    "priorityClassName",
    "priority",
    "preemptionPolicy",
    "schedulerName",
    "nodeName",
    "hostname",
    "subdomain",
    "setHostnameAsFQDN",
    "enableServiceLinks",
    "hostPID",
    "hostIPC",
    "hostUsers",
    "shareProcessNamespace",
    "topologySpreadConstraints",
    "runtimeClassName",
    "hostAliases",
    "readinessGates",
    "overhead",
    "activeDeadlineSeconds",
    "os",
    "schedulingGates",
    "resourceClaims",
    "resources",
];

impl PodSpec {
    pub(crate) fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<PodSpec> {
        let containers = match f.require("containers", problems) {
            Some(_) => f.list_of("containers", problems, Container::decode),
            None => Vec::new(),
        };
        let volumes = f.list_of("volumes", problems, Volume::decode);
        let restart_policy = f.string("restartPolicy", problems).and_then(|s| {
            let policy = RestartPolicy::from_name(&s);
            if policy.is_none() {
                problems.error(
                    &f.path("restartPolicy"),
                    format!("expected Always, OnFailure or Never, found {s:?}"),
                );
            }
            policy
        });
        let node_selector = f.string_map("nodeSelector", problems);
        let termination_grace_period_seconds = f.int("terminationGracePeriodSeconds", problems);
        let host_network = f.bool("hostNetwork", problems).unwrap_or(false);
        f.ignore(POD_SPEC_IGNORED, problems);
        f.finish(problems);
        let mut spec = PodSpec {
            containers,
            volumes,
            restart_policy: restart_policy.unwrap_or(RestartPolicy::Always),
            node_selector,
            termination_grace_period_seconds: termination_grace_period_seconds
                .unwrap_or(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS),
            host_network,
        };
        if spec.host_network {
            // As Kubernetes: on the host network a declared port is taken on the host too.
            for port in spec.containers.iter_mut().flat_map(|c| c.ports.iter_mut()) {
                port.host_port.get_or_insert(port.container_port);
            }
        }
        Some(spec)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RestartPolicy {
    Always,
    OnFailure,
    Never,
}

impl RestartPolicy {
    fn from_name(name: &str) -> Option<RestartPolicy> {
        match name {
            "Always" => Some(RestartPolicy::Always),
            "OnFailure" => Some(RestartPolicy::OnFailure),
            "Never" => Some(RestartPolicy::Never),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    /// When the board pulls the image: `IfNotPresent` unless said (Bramble never re-pulls a
    /// tag it has; a pinned digest is how to get new bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default)]
    pub resources: ResourceRequirements,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_probe: Option<Probe>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// `imagePullPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PullPolicy {
    /// Kubernetes pulls on every start; a board pulls only what it lacks, as `IfNotPresent`.
    Always,
    IfNotPresent,
    /// Never pulled: the image must have been imported on the board.
    Never,
}

const CONTAINER_IGNORED: &[&str] = &[
    "securityContext",
    "lifecycle",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "stdin",
    "stdinOnce",
    "tty",
    "envFrom",
    "resizePolicy",
    "restartPolicy",
    "volumeDevices",
];

impl Container {
    /// A container running `image` with nothing else set, as Kubernetes defaults it.
    pub fn new(name: &str, image: &str) -> Container {
        Container {
            name: name.to_owned(),
            image: image.to_owned(),
            image_pull_policy: None,
            command: Vec::new(),
            args: Vec::new(),
            working_dir: None,
            env: Vec::new(),
            ports: Vec::new(),
            resources: ResourceRequirements::default(),
            liveness_probe: None,
            readiness_probe: None,
            startup_probe: None,
            volume_mounts: Vec::new(),
        }
    }

    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<Container> {
        let name = f.required_string("name", problems);
        let image = f.required_string("image", problems);
        let image_pull_policy = match f.string("imagePullPolicy", problems).as_deref() {
            None => None,
            Some("Always") => Some(PullPolicy::Always),
            Some("IfNotPresent") => Some(PullPolicy::IfNotPresent),
            Some("Never") => Some(PullPolicy::Never),
            Some(other) => {
                let path = f.path("imagePullPolicy");
                problems.error(&path, format!("expected Always, IfNotPresent or Never, found {other:?}"));
                None
            }
        };
        let command = f.strings("command", problems);
        let args = f.strings("args", problems);
        let working_dir = f.string("workingDir", problems);
        let env = f.list_of("env", problems, EnvVar::decode);
        let ports = f.list_of("ports", problems, ContainerPort::decode);
        let resources = f.map("resources", problems).map(|r| ResourceRequirements::decode(r, problems));
        let liveness_probe = f.map("livenessProbe", problems).and_then(|p| Probe::decode(p, problems));
        let readiness_probe = f.map("readinessProbe", problems).and_then(|p| Probe::decode(p, problems));
        let startup_probe = f.map("startupProbe", problems).and_then(|p| Probe::decode(p, problems));
        let volume_mounts = f.list_of("volumeMounts", problems, VolumeMount::decode);
        f.ignore(CONTAINER_IGNORED, problems);
        f.finish(problems);
        Some(Container {
            name: name?,
            image: image?,
            image_pull_policy,
            command,
            args,
            working_dir,
            env,
            ports,
            resources: resources.unwrap_or_default(),
            liveness_probe,
            readiness_probe,
            startup_probe,
            volume_mounts,
        })
    }

    /// The probes this container has, with the field name each sits under.
    pub fn probes(&self) -> impl Iterator<Item = (&'static str, &Probe)> {
        [
            ("livenessProbe", self.liveness_probe.as_ref()),
            ("readinessProbe", self.readiness_probe.as_ref()),
            ("startupProbe", self.startup_probe.as_ref()),
        ]
        .into_iter()
        .filter_map(|(field, probe)| probe.map(|p| (field, p)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

impl EnvVar {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<EnvVar> {
        let name = f.required_string("name", problems);
        let value = f.string("value", problems).unwrap_or_default();
        f.ignore(&["valueFrom"], problems);
        f.finish(problems);
        Some(EnvVar { name: name?, value })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub(crate) fn decode(f: &mut Fields<'_>, problems: &mut Problems) -> Protocol {
        match f.string("protocol", problems).as_deref() {
            None | Some("TCP") => Protocol::Tcp,
            Some("UDP") => Protocol::Udp,
            Some("SCTP") => Protocol::Sctp,
            Some(other) => {
                problems.error(&f.path("protocol"), format!("expected TCP, UDP or SCTP, found {other:?}"));
                Protocol::Tcp
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub container_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
    pub protocol: Protocol,
}

impl ContainerPort {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<ContainerPort> {
        let name = f.string("name", problems);
        let container_port = f.require_int::<u16>("containerPort", problems);
        let host_port = f.int::<u16>("hostPort", problems);
        let protocol = Protocol::decode(&mut f, problems);
        f.ignore(&["hostIP"], problems);
        f.finish(problems);
        Some(ContainerPort { name, container_port: container_port?, host_port, protocol })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceRequirements {
    #[serde(default)]
    pub requests: ResourceList,
    #[serde(default)]
    pub limits: ResourceList,
}

impl ResourceRequirements {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> ResourceRequirements {
        let requests =
            f.map("requests", problems).map(|r| ResourceList::decode(r, problems)).unwrap_or_default();
        let limits = f.map("limits", problems).map(|r| ResourceList::decode(r, problems)).unwrap_or_default();
        f.ignore(&["claims"], problems);
        f.finish(problems);
        // As Kubernetes: a limit with no request requests the limit.
        ResourceRequirements {
            requests: ResourceList {
                cpu: requests.cpu.or_else(|| limits.cpu.clone()),
                memory: requests.memory.or_else(|| limits.memory.clone()),
            },
            limits,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceList {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

impl ResourceList {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> ResourceList {
        let cpu = quantity(&mut f, "cpu", problems);
        let memory = quantity(&mut f, "memory", problems);
        // Any other resource (ephemeral-storage, hugepages-2Mi, vendor devices) is not managed.
        let others: Vec<String> = f.unread_keys();
        let others: Vec<&str> = others.iter().map(String::as_str).collect();
        f.ignore(&others, problems);
        f.finish(problems);
        ResourceList { cpu, memory }
    }
}

/// A quantity field, written as a string (`128Mi`) or a bare number (`0.5`, `2`).
pub(crate) fn quantity(f: &mut Fields<'_>, key: &str, problems: &mut Problems) -> Option<Quantity> {
    let path = f.path(key);
    let node = f.take(key)?;
    let text = match &node.value {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => x.clone(),
        other => {
            problems.error(
                &path,
                format!("expected a quantity such as \"128Mi\" or \"250m\", found {}", other.describe()),
            );
            return None;
        }
    };
    match Quantity::parse(&text) {
        Ok(q) => Some(q),
        Err(e) => {
            problems.error(&path, e.to_string());
            None
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Probe {
    #[serde(flatten)]
    pub action: ProbeAction,
    pub initial_delay_seconds: u32,
    pub period_seconds: u32,
    pub timeout_seconds: u32,
    pub failure_threshold: u32,
    pub success_threshold: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeAction {
    Exec { command: Vec<String> },
    HttpGet(HttpGetAction),
    TcpSocket { port: IntOrString },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    pub path: String,
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub scheme: Scheme,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub http_headers: Vec<HttpHeader>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    pub value: String,
}

impl Probe {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<Probe> {
        let errors_before = problems.errors.len();
        let mut actions = Vec::new();
        if let Some(mut exec) = f.map("exec", problems) {
            let command = exec.strings("command", problems);
            if command.is_empty() {
                problems.error(&exec.path("command"), "required field is missing");
            }
            exec.finish(problems);
            actions.push(ProbeAction::Exec { command });
        }
        if let Some(mut get) = f.map("httpGet", problems) {
            let path = get.string("path", problems).unwrap_or_else(|| "/".to_owned());
            let port = port_field(&mut get, "port", problems);
            let host = get.string("host", problems);
            let scheme = match get.string("scheme", problems).as_deref() {
                None | Some("HTTP") => Scheme::Http,
                Some("HTTPS") => Scheme::Https,
                Some(other) => {
                    problems.error(&get.path("scheme"), format!("expected HTTP or HTTPS, found {other:?}"));
                    Scheme::Http
                }
            };
            let http_headers = get.list_of("httpHeaders", problems, |mut h, problems| {
                let name = h.required_string("name", problems);
                let value = h.string("value", problems).unwrap_or_default();
                h.finish(problems);
                Some(HttpHeader { name: name?, value })
            });
            get.finish(problems);
            if let Some(port) = port {
                actions.push(ProbeAction::HttpGet(HttpGetAction { path, port, host, scheme, http_headers }));
            }
        }
        if let Some(mut tcp) = f.map("tcpSocket", problems) {
            let port = port_field(&mut tcp, "port", problems);
            tcp.ignore(&["host"], problems);
            tcp.finish(problems);
            if let Some(port) = port {
                actions.push(ProbeAction::TcpSocket { port });
            }
        }
        let grpc = f.path("grpc");
        let has_grpc = f.take("grpc").is_some();
        let initial_delay_seconds = f.int("initialDelaySeconds", problems).unwrap_or(0);
        let period_seconds = f.int("periodSeconds", problems).unwrap_or(10);
        let timeout_seconds = f.int("timeoutSeconds", problems).unwrap_or(1);
        let failure_threshold = f.int("failureThreshold", problems).unwrap_or(3);
        let success_threshold = f.int("successThreshold", problems).unwrap_or(1);
        f.ignore(&["terminationGracePeriodSeconds"], problems);
        let path = f.own_path().clone();
        f.finish(problems);
        if has_grpc {
            problems.warn(&grpc, "grpc probes are not supported by bramble; this probe is ignored");
            if actions.is_empty() {
                return None;
            }
        }
        let action = match actions.len() {
            1 => actions.pop()?,
            0 if problems.errors.len() == errors_before => {
                problems.error(&path, "a probe needs one of exec, httpGet or tcpSocket");
                return None;
            }
            0 => return None,
            _ => {
                problems.error(&path, "a probe may have only one of exec, httpGet or tcpSocket");
                return None;
            }
        };
        Some(Probe {
            action,
            initial_delay_seconds,
            period_seconds,
            timeout_seconds,
            failure_threshold,
            success_threshold,
        })
    }
}

/// A required port: a number, or the name of a container port.
fn port_field(f: &mut Fields<'_>, key: &str, problems: &mut Problems) -> Option<IntOrString> {
    let path = f.path(key);
    f.require(key, problems).and_then(|node| IntOrString::decode(node, &path, problems))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
}

impl VolumeMount {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<VolumeMount> {
        let name = f.required_string("name", problems);
        let mount_path = f.required_string("mountPath", problems);
        let read_only = f.bool("readOnly", problems).unwrap_or(false);
        f.ignore(&["subPath", "subPathExpr", "mountPropagation", "recursiveReadOnly"], problems);
        f.finish(problems);
        Some(VolumeMount { name: name?, mount_path: mount_path?, read_only })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    #[serde(flatten)]
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeSource {
    HostPath {
        path: String,
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        type_: Option<String>,
    },
    EmptyDir {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        medium: Option<String>,
        #[serde(rename = "sizeLimit", default, skip_serializing_if = "Option::is_none")]
        size_limit: Option<Quantity>,
    },
    /// A Kubernetes volume type Bramble does not provide; a pod using it cannot start.
    Unsupported { kind: String },
}

/// Kubernetes volume types that Bramble does not provide.
const VOLUME_TYPES_UNSUPPORTED: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

const HOST_PATH_TYPES: &[&str] =
    &["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"];

impl Volume {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<Volume> {
        let errors_before = problems.errors.len();
        let name = f.required_string("name", problems);
        let mut sources = Vec::new();
        if let Some(mut host) = f.map("hostPath", problems) {
            let path = host.required_string("path", problems);
            let type_ = host.string("type", problems);
            if let Some(t) = &type_
                && !HOST_PATH_TYPES.contains(&t.as_str())
            {
                problems.error(
                    &host.path("type"),
                    format!("expected one of {}, found {t:?}", HOST_PATH_TYPES[1..].join(", ")),
                );
            }
            host.finish(problems);
            if let Some(path) = path {
                sources.push(VolumeSource::HostPath { path, type_ });
            }
        }
        if let Some(mut empty) = f.map("emptyDir", problems) {
            let medium = empty.string("medium", problems);
            if let Some(m) = &medium
                && !m.is_empty()
                && m != "Memory"
            {
                problems.error(&empty.path("medium"), format!("expected \"\" or \"Memory\", found {m:?}"));
            }
            let size_limit = quantity(&mut empty, "sizeLimit", problems);
            empty.finish(problems);
            sources.push(VolumeSource::EmptyDir { medium, size_limit });
        } else if f.is_present("emptyDir") {
            f.skip(&["emptyDir"]);
            // `emptyDir: {}` is the usual spelling, `emptyDir:` (null) is seen too.
            sources.push(VolumeSource::EmptyDir { medium: None, size_limit: None });
        }
        for kind in VOLUME_TYPES_UNSUPPORTED {
            if f.is_present(kind) {
                f.skip(&[kind]);
                problems.warn(
                    &f.path(kind),
                    format!("{kind} volumes are {IGNORED}; a pod that mounts this volume cannot start"),
                );
                sources.push(VolumeSource::Unsupported { kind: (*kind).to_owned() });
            }
        }
        let path = f.own_path().clone();
        f.finish(problems);
        let source = match sources.len() {
            1 => sources.pop()?,
            0 => {
                if problems.errors.len() == errors_before {
                    problems.error(&path, "a volume needs a source: hostPath or emptyDir");
                }
                return None;
            }
            _ => {
                problems.error(&path, "a volume may have only one source");
                return None;
            }
        };
        Some(Volume { name: name?, source })
    }
}
