//! Bramble's coordinator: it will hold desired state, watch boards over MQTT, schedule pods
//! across boards, heal and roll out (the coordinator issue). Nothing of that is built yet;
//! this crate exists so the workspace has its final shape and the CLI can embed it later as
//! `bramble coordinator`.

/// What the coordinator binary answers until it is built.
pub const NOT_BUILT: &str =
    "the coordinator is not built yet: boards run static manifests with `bramble-agent` for now";
