//! Bramble's coordinator: it will hold desired state, watch boards over MQTT, schedule pods
//! across boards, heal and roll out (the coordinator issue). Built so far: the scheduler
//! (`scheduler`, pure). The CLI will embed the rest as `bramble coordinator`.

pub mod scheduler;

/// What the coordinator binary answers until it is built.
pub const NOT_BUILT: &str =
    "the coordinator is not built yet: boards run static manifests with `bramble-agent` for now";
