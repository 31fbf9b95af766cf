//! The MQTT wire protocol between coordinator and boards: topic names and versioned JSON
//! payloads. This is the only module that knows topic strings. `docs/protocol.md` describes it
//! for other clients, with an example of every payload (a test decodes each one).
//!
//! Per board `NODE`, under a prefix (default `bramble/`):
//!
//! | topic                    | retained | from        | payload            |
//! |--------------------------|----------|-------------|--------------------|
//! | `nodes/NODE/status`      | yes      | board, will | [`NodeStatus`]     |
//! | `nodes/NODE/health`      | no       | board       | [`NodeHealth`]     |
//! | `nodes/NODE/desired`     | yes      | coordinator | [`DesiredPods`]    |
//! | `nodes/NODE/observed`    | yes      | board       | [`ObservedPods`]   |
//! | `nodes/NODE/requests`    | no       | coordinator | [`Request`]        |
//! | `nodes/NODE/responses`   | no       | board       | [`Response`]       |
//!
//! A payload is one JSON object whose `v` field is the protocol version; field names are
//! camelCase, as in Kubernetes objects. Receivers drop, with a log line and a counter, anything
//! malformed, oversized or of another version.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::objects::PodSpec;
use crate::validate::dns_subdomain;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
pub const DEFAULT_PREFIX: &str = "bramble/";
/// Largest payload accepted; a desired set of a few hundred pods fits easily.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
/// The MQTT packet limit clients and broker set: a largest payload and its topic and headers.
pub const MAX_PACKET_BYTES: usize = MAX_PAYLOAD_BYTES + 4096;

/// Why a topic or payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("payload of {size} bytes is larger than {MAX_PAYLOAD_BYTES}")]
    TooLarge { size: usize },
    #[error("malformed payload: {0}")]
    Malformed(String),
    #[error("protocol version {found} is not {VERSION}")]
    UnsupportedVersion { found: u32 },
    #[error("invalid topic prefix {0:?}: must end with '/' and contain no '+', '#' or NUL")]
    InvalidPrefix(String),
    #[error("invalid node name {name:?}: {why}")]
    InvalidNodeName { name: String, why: String },
}

/// What a board topic carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Status,
    Health,
    Desired,
    Observed,
    Requests,
    Responses,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Status,
        Channel::Health,
        Channel::Desired,
        Channel::Observed,
        Channel::Requests,
        Channel::Responses,
    ];

    fn segment(self) -> &'static str {
        match self {
            Channel::Status => "status",
            Channel::Health => "health",
            Channel::Desired => "desired",
            Channel::Observed => "observed",
            Channel::Requests => "requests",
            Channel::Responses => "responses",
        }
    }
}

/// Topic names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics { prefix: DEFAULT_PREFIX.to_owned() }
    }
}

impl Topics {
    pub fn new(prefix: &str) -> Result<Topics, WireError> {
        let valid = prefix.ends_with('/') && !prefix.contains(['+', '#', '\0']);
        if !valid {
            return Err(WireError::InvalidPrefix(prefix.to_owned()));
        }
        Ok(Topics { prefix: prefix.to_owned() })
    }

    /// The topic of one board's channel. Node names are DNS subdomains, so never wildcards.
    pub fn node(&self, node: &str, channel: Channel) -> Result<String, WireError> {
        check_node_name(node)?;
        Ok(format!("{}nodes/{node}/{}", self.prefix, channel.segment()))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A channel's topic with `placeholder` for the node name (`%u` in a Mosquitto ACL).
    pub fn pattern(&self, placeholder: &str, channel: Channel) -> String {
        format!("{}nodes/{placeholder}/{}", self.prefix, channel.segment())
    }

    /// The filter matching one channel of every board (for the coordinator).
    pub fn all_nodes(&self, channel: Channel) -> String {
        self.pattern("+", channel)
    }

    /// Which board and channel a topic belongs to, if it is one of ours.
    pub fn parse<'t>(&self, topic: &'t str) -> Option<(&'t str, Channel)> {
        let rest = topic.strip_prefix(&self.prefix)?.strip_prefix("nodes/")?;
        let (node, segment) = rest.split_once('/')?;
        let channel = Channel::ALL.into_iter().find(|c| c.segment() == segment)?;
        check_node_name(node).ok()?;
        Some((node, channel))
    }
}

/// `mqtt://HOST[:PORT]` (port 1883 when left out; `[::1]` for IPv6) to host and port.
pub fn parse_broker_url(url: &str) -> Result<(String, u16), String> {
    let rest =
        url.strip_prefix("mqtt://").ok_or_else(|| format!("broker {url:?}: expected mqtt://HOST:PORT"))?;
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            let port = port.parse().map_err(|_| format!("broker {url:?}: bad port {port:?}"))?;
            Ok((host.trim_start_matches('[').trim_end_matches(']').to_owned(), port))
        }
        _ if !rest.is_empty() => Ok((rest.to_owned(), 1883)),
        _ => Err(format!("broker {url:?}: no host")),
    }
}

pub fn check_node_name(name: &str) -> Result<(), WireError> {
    dns_subdomain(name).map_err(|why| WireError::InvalidNodeName { name: name.to_owned(), why })
}

/// A payload type of the protocol.
pub trait Message: Serialize + DeserializeOwned {}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u32,
}

/// The JSON bytes of a message, with the protocol version.
pub fn encode<T: Message>(message: &T) -> Vec<u8> {
    serde_json::to_vec(&Envelope { v: VERSION, body: message }).expect(
        "messages are plain structs of strings, numbers and string-keyed maps, which always serialize",
    )
}

/// A message from bytes off the network: size, then version, then shape.
pub fn decode<T: Message>(payload: &[u8]) -> Result<T, WireError> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(WireError::TooLarge { size: payload.len() });
    }
    let version: VersionOnly =
        serde_json::from_slice(payload).map_err(|e| WireError::Malformed(e.to_string()))?;
    if version.v != VERSION {
        return Err(WireError::UnsupportedVersion { found: version.v });
    }
    let envelope: Envelope<T> =
        serde_json::from_slice(payload).map_err(|e| WireError::Malformed(e.to_string()))?;
    Ok(envelope.body)
}

/// Retained on `nodes/NODE/status`; the board's last will sets `online: false`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub node: String,
    pub online: bool,
    #[serde(default)]
    pub agent_version: String,
    /// `arm64`, `arm`, `amd64`, as `kubernetes.io/arch`.
    #[serde(default)]
    pub arch: String,
    /// Labels the board was given when it joined (`--label disk=ssd`), for `nodeSelector`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}
impl Message for NodeStatus {}

/// Sent every few seconds on `nodes/NODE/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeHealth {
    pub node: String,
    /// Boards have no real-time clock: time is the board's uptime, not a date.
    pub uptime_seconds: u64,
    pub cpus: u32,
    pub cpu_percent: f32,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub disk_total_bytes: u64,
    pub disk_available_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_celsius: Option<f32>,
    pub pods_running: u32,
    pub pods_total: u32,
}
impl Message for NodeHealth {}

/// Retained on `nodes/NODE/desired`: the whole set of pods the board should run. A board
/// reconciles to the newest generation it has seen and ignores older ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredPods {
    pub node: String,
    pub generation: u64,
    pub pods: Vec<PodAssignment>,
}
impl Message for DesiredPods {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAssignment {
    pub namespace: String,
    pub name: String,
    /// Changes when the pod is replaced, even under the same name.
    pub uid: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub spec: PodSpec,
}

/// Retained on `nodes/NODE/observed`, published when anything in it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedPods {
    pub node: String,
    /// The generation of [`DesiredPods`] the board last reconciled to.
    pub generation: u64,
    pub pods: Vec<PodReport>,
}
impl Message for ObservedPods {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReport {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub phase: PodPhase,
    pub ready: bool,
    pub restarts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_exit_code: Option<i32>,
    /// Why the pod is not running as declared (`OOMKilled`, `ImageNotFound: …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// Sent to a board on `nodes/NODE/requests`: something to do now and answer on
/// `nodes/NODE/responses` under the same `id` (`bramble logs`, `bramble exec`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request {
    /// Chosen by the sender, unique among its requests in flight.
    pub id: String,
    pub namespace: String,
    pub pod: String,
    /// The pod's only container when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    pub action: Action,
}
impl Message for Request {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Action {
    /// The container's output: the last `tail` lines (all when left out), then, with `follow`,
    /// what it writes until the request is cancelled or the container ends.
    Logs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tail: Option<u32>,
        #[serde(default)]
        follow: bool,
    },
    /// A command run in the container; its output comes back in chunks, then its exit code.
    Exec { command: Vec<String> },
    /// Stops a `follow` or a running exec of request `id`.
    Cancel { id: String },
}

/// One piece of the answer to a [`Request`], on `nodes/NODE/responses`. Chunks of one request
/// come in `seq` order; the last has `done: true` (and `exitCode` for an exec, or `error`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Response {
    pub id: String,
    pub seq: u32,
    /// Output as text (invalid UTF-8 replaced), at most [`MAX_CHUNK_BYTES`] per chunk.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
    /// Which output of an exec `data` comes from; logs (both outputs in one file) leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<OutputStream>,
    #[serde(default)]
    pub done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the request could not be carried out (`pod default/web not on this board`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
impl Message for Response {}

/// The largest `data` of one [`Response`].
pub const MAX_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OutputStream {
    Stdout,
    Stderr,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let topics = Topics::default();
        let topic = topics.node("pi-1", Channel::Desired).expect("valid node");
        assert_eq!(topic, "bramble/nodes/pi-1/desired");
        assert_eq!(topics.parse(&topic), Some(("pi-1", Channel::Desired)));
        assert_eq!(topics.parse("bramble/nodes/pi-1/other"), None);
        assert_eq!(topics.parse("other/nodes/pi-1/status"), None);
        assert_eq!(topics.all_nodes(Channel::Health), "bramble/nodes/+/health");
    }

    #[test]
    fn broker_urls() {
        assert_eq!(parse_broker_url("mqtt://10.0.0.1:1884"), Ok(("10.0.0.1".into(), 1884)));
        assert_eq!(parse_broker_url("mqtt://pi-hub"), Ok(("pi-hub".into(), 1883)));
        assert_eq!(parse_broker_url("mqtt://[::1]:1883"), Ok(("::1".into(), 1883)));
        assert!(parse_broker_url("http://x:1").is_err());
        assert!(parse_broker_url("mqtt://x:port").is_err());
        assert!(parse_broker_url("mqtt://").is_err());
    }

    #[test]
    fn wildcards_never_enter_topics() {
        let topics = Topics::default();
        for bad in ["+", "#", "a/b", "", "Pi"] {
            assert!(topics.node(bad, Channel::Status).is_err(), "{bad}");
        }
        assert!(Topics::new("bramble").is_err());
        assert!(Topics::new("home/#/").is_err());
        assert!(Topics::new("home/bramble/").is_ok());
    }

    #[test]
    fn messages_round_trip_with_version() {
        let status = NodeStatus {
            node: "pi-1".into(),
            online: true,
            agent_version: "0.1.0".into(),
            arch: "arm64".into(),
            labels: BTreeMap::new(),
        };
        let bytes = encode(&status);
        let text = String::from_utf8(bytes.clone()).expect("utf-8");
        assert!(text.starts_with("{\"v\":1,"), "{text}");
        assert_eq!(decode::<NodeStatus>(&bytes), Ok(status));
    }

    #[test]
    fn bad_payloads_are_refused_not_panicked_on() {
        assert!(matches!(decode::<NodeStatus>(b"{"), Err(WireError::Malformed(_))));
        assert!(matches!(decode::<NodeStatus>(b"[]"), Err(WireError::Malformed(_))));
        assert_eq!(
            decode::<NodeStatus>(br#"{"v":2,"node":"a","online":true}"#),
            Err(WireError::UnsupportedVersion { found: 2 })
        );
        assert!(matches!(decode::<NodeStatus>(br#"{"v":1,"node":5}"#), Err(WireError::Malformed(_))));
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(decode::<NodeStatus>(&big), Err(WireError::TooLarge { size: MAX_PAYLOAD_BYTES + 1 }));
    }
}
