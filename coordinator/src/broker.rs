//! The embedded MQTT broker (rmqtt), so a newcomer needs nothing else. It enforces the rules of
//! [`crate::acl`] through rmqtt's hooks and keeps retained messages in memory (the coordinator
//! republishes every board's desired set from its store when it starts).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use bramble_common::wire::Topics;
use rmqtt::codec::v5::SubscribeAckReason;
use rmqtt::context::ServerContext;
use rmqtt::hook::{Handler, HookResult, Parameter, ReturnType, Type};
use rmqtt::net::Builder;
use rmqtt::retain::{RetainStorage, RetainTree};
use rmqtt::server::MqttServer;
use rmqtt::topic::Topic;
use rmqtt::types::{AuthResult, PublishAclResult, Retain, SubscribeAclResult, TopicFilter, TopicName};
use tokio::sync::RwLock;

use crate::acl::{self, Client, Secrets};
use crate::server::log;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("mqtt listener {addr}: {message}")]
    Listen { addr: SocketAddr, message: String },
}

/// Starts the broker on `addr`; it runs until the process ends.
pub async fn start(addr: SocketAddr, secrets: Secrets, topics: Topics) -> Result<(), BrokerError> {
    let fail = |e: &dyn std::fmt::Display| BrokerError::Listen { addr, message: e.to_string() };
    let scx = ServerContext::new().build().await;
    *scx.extends.retain_mut().await = Box::new(MemoryRetain::default());
    let register = scx.extends.hook_mgr().register();
    for typ in [Type::ClientAuthenticate, Type::MessagePublishCheckAcl, Type::ClientSubscribeCheckAcl] {
        register.add(typ, Box::new(Rules { secrets: secrets.clone(), topics: topics.clone() })).await;
    }
    register.start().await;
    let listener = Builder::new()
        .name("bramble")
        .laddr(addr)
        .allow_anonymous(false)
        // A restarted coordinator binds again at once, while the killed one's connections
        // linger in TIME_WAIT (SO_REUSEADDR; not SO_REUSEPORT, which would let two share it).
        .reuseaddr(Some(true))
        // Boards choose short keepalives; rmqtt closes a silent session after 1.5 × keepalive.
        .min_keepalive(1)
        .max_keepalive(300)
        .max_packet_size(bramble_common::wire::MAX_PACKET_BYTES as u32)
        .session_expiry_interval(Duration::from_secs(0))
        // The coordinator's session carries every board's messages: with rmqtt's default of
        // 16 unacknowledged QoS 1 messages and 1,000 queued, a burst of observed pods from
        // 1,000 boards overflowed and was dropped (pods stayed Pending). Boards receive little.
        .max_inflight(std::num::NonZeroU16::new(1024).unwrap_or(std::num::NonZeroU16::MIN))
        .max_mqueue_len(100_000)
        .bind()
        .map_err(|e| fail(&e))?
        .tcp()
        .map_err(|e| fail(&e))?;
    let server = MqttServer::new(scx).listener(listener).build();
    tokio::spawn(async move {
        if let Err(e) = server.run().await {
            log(format!("mqtt broker stopped: {e}"));
        }
    });
    Ok(())
}

struct Rules {
    secrets: Secrets,
    topics: Topics,
}

fn client_of(username: Option<&str>) -> Option<Client> {
    match username? {
        acl::COORDINATOR_USER => Some(Client::Coordinator),
        node => Some(Client::Board(node.to_owned())),
    }
}

#[async_trait]
impl Handler for Rules {
    async fn hook(&self, param: &Parameter, acc: Option<HookResult>) -> ReturnType {
        match param {
            Parameter::ClientAuthenticate(info) => {
                let user = info.username().map(|u| u.as_ref());
                let password = info.password().map(|p| p.as_ref());
                let result = match acl::authenticate(&self.secrets, user, password) {
                    Ok(client) => AuthResult::Allow(client == Client::Coordinator, None),
                    Err(refusal) => {
                        log(format!("mqtt connection refused: {refusal}"));
                        AuthResult::BadUsernameOrPassword
                    }
                };
                (false, Some(HookResult::AuthResult(result)))
            }
            Parameter::MessagePublishCheckAcl(session, publish) => {
                // The user name was authenticated at connect; the coordinator skips this hook.
                let client = client_of(session.id.username.as_ref().map(|u| u.as_ref()));
                let topic: &str = publish.topic.as_ref();
                if client.is_some_and(|c| acl::may_publish(&self.topics, &c, topic)) {
                    (false, Some(HookResult::PublishAclResult(PublishAclResult::allow())))
                } else {
                    eprintln!(
                        "bramble coordinator: refused publish to {topic} by {}",
                        session.id.username_ref()
                    );
                    (false, Some(HookResult::PublishAclResult(PublishAclResult::rejected(true, None))))
                }
            }
            Parameter::ClientSubscribeCheckAcl(session, subscribe) => {
                let client = client_of(session.id.username.as_ref().map(|u| u.as_ref()));
                let filter: &str = subscribe.topic_filter.as_ref();
                if client.is_some_and(|c| acl::may_subscribe(&self.topics, &c, filter)) {
                    let granted = SubscribeAclResult::new_success(subscribe.opts.qos(), None);
                    (false, Some(HookResult::SubscribeAclResult(granted)))
                } else {
                    eprintln!(
                        "bramble coordinator: refused subscription to {filter} by {}",
                        session.id.username_ref()
                    );
                    let refused = SubscribeAclResult::new_failure(SubscribeAckReason::NotAuthorized);
                    (false, Some(HookResult::SubscribeAclResult(refused)))
                }
            }
            _ => (true, acc),
        }
    }
}

/// Retained messages in memory, matched by topic filter.
#[derive(Default)]
struct MemoryRetain {
    messages: RwLock<RetainTree<Retain>>,
    count: std::sync::atomic::AtomicIsize,
}

#[async_trait]
impl RetainStorage for MemoryRetain {
    fn enable(&self) -> bool {
        true
    }

    async fn set(&self, topic: &TopicName, retain: Retain, _expiry: Option<Duration>) -> rmqtt::Result<()> {
        let topic = Topic::from_str(topic)?;
        let mut messages = self.messages.write().await;
        // An empty payload clears the topic's retained message.
        if retain.publish.payload.is_empty() {
            messages.remove(&topic);
        } else {
            messages.insert(&topic, retain);
        }
        self.count.store(messages.values_size() as isize, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    async fn get(&self, filter: &TopicFilter) -> rmqtt::Result<Vec<(TopicName, Retain)>> {
        let filter = Topic::from_str(filter)?;
        let messages = self.messages.read().await;
        Ok(messages
            .matches(&filter)
            .into_iter()
            .map(|(topic, retain)| (TopicName::from(topic.to_string()), retain))
            .collect())
    }

    async fn count(&self) -> isize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn max(&self) -> isize {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }
}
