//! Bramble's coordinator: holds desired state, watches boards over MQTT, schedules pods across
//! boards and heals. The CLI embeds it as `bramble coordinator`.

pub mod controller;
pub mod model;
pub mod nodes;
pub mod scheduler;
pub mod store;

#[cfg(test)]
mod fixtures;

/// What the coordinator binary answers until it is built.
pub const NOT_BUILT: &str =
    "the coordinator is not built yet: boards run static manifests with `bramble-agent` for now";
