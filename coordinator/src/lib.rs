//! Bramble's coordinator: holds desired state, watches boards over MQTT, schedules pods across
//! boards and heals. The CLI embeds it as `bramble coordinator`.

pub mod acl;
pub mod api;
pub mod broker;
pub mod command;
pub mod controller;
pub mod images;
pub mod model;
pub mod nodes;
pub mod rollout;
pub mod scheduler;
pub mod secrets;
pub mod server;
pub mod store;
pub mod views;
pub mod with_agent;

#[cfg(test)]
mod fixtures;
