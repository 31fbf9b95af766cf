//! The board's MQTT session with the cluster (`bramble-agent run --server`): one thread that
//! connects with the node name and the join token, subscribes to the board's desired pods
//! before it announces itself online (so an assignment sent at once is not lost), hands each
//! desired set to the daemon, and publishes what the daemon reports. The last will marks the
//! board offline; after every reconnect the status and the last observed pods go out again.
//!
//! The daemon never waits on the network: it hands messages over with `try_publish`, and a
//! board without its coordinator keeps running what it was last told.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bramble_common::wire::{
    self, Channel, DesiredPods, NodeHealth, NodeStatus, ObservedPods, Request, Response, Topics,
};

use crate::log;
use crate::requests::{Reply, Requests};
use rumqttc::{
    Client, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Packet, QoS, SubscribeFilter,
};

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// `mqtt://HOST:PORT`.
    pub server: String,
    pub token: String,
    pub node: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub prefix: String,
    pub health_interval_ms: u64,
}

/// The daemon's handle on the session.
pub struct Session {
    client: Client,
    node: String,
    observed_topic: String,
    health_topic: String,
    /// The last observed pods, republished after a reconnect.
    last_observed: Arc<Mutex<Option<Vec<u8>>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Session {
    /// Starts the session thread; `deliver` gets each desired set that arrives, `requests`
    /// serves `logs` and `exec`.
    pub fn start(
        options: &ClusterOptions,
        deliver: impl Fn(DesiredPods) + Send + 'static,
        requests: Requests,
    ) -> Result<Session, String> {
        let (host, port) = wire::parse_broker_url(&options.server).map_err(|e| format!("--server: {e}"))?;
        let topics = Topics::new(&options.prefix).map_err(|e| e.to_string())?;
        let node = options.node.clone();
        let topic = |channel| topics.node(&node, channel).map_err(|e| format!("--name: {e}"));
        let (status_topic, desired_topic) = (topic(Channel::Status)?, topic(Channel::Desired)?);
        let requests_topic = topic(Channel::Requests)?;
        let status = |online| {
            wire::encode(&NodeStatus {
                node: node.clone(),
                online,
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                arch: bramble_common::platform::Platform::of_this_build().architecture,
                labels: options.labels.clone(),
            })
        };
        let (online, offline) = (status(true), status(false));

        let mut mqtt = MqttOptions::new(format!("bramble-agent-{node}"), host, port);
        mqtt.set_credentials(node.clone(), options.token.clone());
        mqtt.set_keep_alive(Duration::from_secs(5));
        mqtt.set_clean_session(true);
        mqtt.set_max_packet_size(wire::MAX_PACKET_BYTES, wire::MAX_PACKET_BYTES);
        mqtt.set_last_will(LastWill::new(status_topic.clone(), offline, QoS::AtLeastOnce, true));
        let (client, mut connection) = Client::new(mqtt, 64);
        let session = Session {
            client: client.clone(),
            node: node.clone(),
            observed_topic: topic(Channel::Observed)?,
            health_topic: topic(Channel::Health)?,
            last_observed: Arc::default(),
        };
        let responses: Arc<dyn Reply> =
            Arc::new(Responses { client: client.clone(), topic: topic(Channel::Responses)? });
        let observed = Arc::clone(&session.last_observed);
        let observed_topic = session.observed_topic.clone();
        let server = options.server.clone();
        std::thread::Builder::new()
            .name("mqtt".into())
            .spawn(move || {
                let mut last_error = String::new();
                let mut dropped = 0u64;
                for notification in connection.iter() {
                    match notification {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            log(format!("connected to {server} as {node}"));
                            last_error.clear();
                            let filters = [&desired_topic, &requests_topic]
                                .map(|t| SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                            let _ = client.try_subscribe_many(filters);
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            // Subscribed to the assignments: now announce, and say what runs.
                            let _ = client.try_publish(status_topic.clone(), QoS::AtLeastOnce, true, online.clone());
                            let last = observed.lock().map(|o| o.clone()).unwrap_or_default();
                            if let Some(bytes) = last {
                                let _ = client.try_publish(observed_topic.clone(), QoS::AtLeastOnce, true, bytes);
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if p.topic == desired_topic => {
                            match wire::decode::<DesiredPods>(&p.payload) {
                                Ok(desired) if desired.node == node => deliver(desired),
                                Ok(desired) => {
                                    dropped += 1;
                                    log(format!("dropped desired pods for {} on {}: not this board ({dropped} dropped)", desired.node, p.topic));
                                }
                                Err(e) => {
                                    dropped += 1;
                                    log(format!("dropped a message on {}: {e} ({dropped} dropped)", p.topic));
                                }
                            }
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) if p.topic == requests_topic => {
                            match wire::decode::<Request>(&p.payload) {
                                Ok(request) => requests.handle(request, Arc::clone(&responses)),
                                Err(e) => {
                                    dropped += 1;
                                    log(format!("dropped a message on {}: {e} ({dropped} dropped)", p.topic));
                                }
                            }
                        }
                        Ok(_) => {}
                        Err(e) => {
                            let error = match &e {
                                ConnectionError::ConnectionRefused(
                                    ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized,
                                ) => format!("{server} refused board {node}: wrong join token (--token)"),
                                other => format!("{server}: {other}"),
                            };
                            if error != last_error {
                                log(format!("{error}; retrying every 2s, pods keep running"));
                                last_error = error;
                            }
                            std::thread::sleep(Duration::from_secs(2));
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the mqtt thread: {e}"))?;
        Ok(session)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Publishes the observed pods (retained) if they changed, and keeps them for the next
    /// reconnect.
    pub fn publish_observed(&self, observed: &ObservedPods) {
        let bytes = wire::encode(observed);
        let Ok(mut last) = self.last_observed.lock() else { return };
        if last.as_ref() == Some(&bytes) {
            return;
        }
        *last = Some(bytes.clone());
        self.publish(&self.observed_topic, true, bytes);
    }

    pub fn publish_health(&self, health: &NodeHealth) {
        self.publish(&self.health_topic, false, wire::encode(health));
    }

    fn publish(&self, topic: &str, retain: bool, bytes: Vec<u8>) {
        // While disconnected the queue fills and messages are dropped: health is periodic and
        // the observed pods go out again after the reconnect.
        let _ = self.client.try_publish(topic, QoS::AtLeastOnce, retain, bytes);
    }
}

/// Answers to requests, on the board's `responses` topic.
struct Responses {
    client: Client,
    topic: String,
}

impl Reply for Responses {
    fn send(&self, response: &Response) -> bool {
        let bytes = wire::encode(response);
        // The queue is full while the link is down or the output outruns it: wait up to 10 s
        // for room, then give the request up rather than hold a thread forever.
        for _ in 0..100 {
            if self.client.try_publish(&self.topic, QoS::AtLeastOnce, false, bytes.clone()).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

/// `key=value` of `--label`.
pub fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("--label {text:?}: expected KEY=VALUE"))?;
    bramble_common::validate::qualified_name(key).map_err(|e| format!("--label {text:?}: {e}"))?;
    bramble_common::validate::label_value(value).map_err(|e| format!("--label {text:?}: {e}"))?;
    Ok((key.to_owned(), value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(parse_label("disk=ssd"), Ok(("disk".into(), "ssd".into())));
        assert!(parse_label("disk").is_err());
        assert!(parse_label("bad key=x").is_err());
    }
}
