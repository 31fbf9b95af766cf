//! The coordinator's command line, shared by `bramble coordinator` and `bramble-coordinator`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bramble_common::wire::Topics;

use crate::scheduler::Placement;
use crate::server::{self, Config, log};
use crate::with_agent;

#[derive(Debug, clap::Args)]
pub struct CoordinatorArgs {
    /// Where the store and the tokens live.
    #[arg(long, default_value = "/var/lib/bramble/coordinator")]
    pub data_dir: PathBuf,
    /// The HTTP API's address.
    #[arg(long, default_value = "0.0.0.0:6443")]
    pub listen: SocketAddr,
    /// The embedded MQTT broker's address.
    #[arg(long, default_value = "0.0.0.0:1883")]
    pub mqtt_listen: SocketAddr,
    /// Use this MQTT broker (mqtt://HOST:PORT, Mosquitto 2 works) instead of the embedded one.
    #[arg(long)]
    pub broker: Option<String>,
    /// How long a board may stay silent before it is NotReady and its pods move (e.g. 10s, 2s,
    /// 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub node_grace: Duration,
    /// spread: even out the load; pack: fill fewer boards.
    #[arg(long, default_value = "spread", value_parser = parse_placement)]
    pub placement: Placement,
    /// The prefix of every MQTT topic.
    #[arg(long, default_value = bramble_common::wire::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Resolve each applied Deployment's image tags to digests, kept in its revision, so every
    /// replica runs the same bytes even if a tag moves (`--pin-images=false` keeps tags).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pin_images: bool,
    /// A registry reached over plain HTTP when pinning (`host:port`; repeatable).
    #[arg(long = "insecure-registry")]
    pub insecure_registries: Vec<String>,
    /// Print the Mosquitto ACL file for these topics and exit.
    #[arg(long)]
    pub print_mosquitto_acl: bool,
    /// Also run a board's agent on this machine (`bramble-agent run`, joined with the join
    /// token): a one-machine cluster in one command.
    #[arg(long)]
    pub with_agent: bool,
    /// An argument for that agent's `bramble-agent run` (repeatable), e.g.
    /// `--agent-arg=--state-dir=/srv/bramble`.
    #[arg(long = "agent-arg", requires = "with_agent", allow_hyphen_values = true)]
    pub agent_args: Vec<String>,
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?}: expected a duration such as 10s, 2s or 500ms");
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(bad());
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    if !value.is_finite() || value <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(value * scale))
}

fn parse_placement(text: &str) -> Result<Placement, String> {
    match text {
        "spread" => Ok(Placement::Spread),
        "pack" => Ok(Placement::Pack),
        other => Err(format!("{other:?}: expected spread or pack")),
    }
}

pub fn run(args: CoordinatorArgs) -> ExitCode {
    if args.print_mosquitto_acl {
        return match Topics::new(&args.prefix) {
            Ok(topics) => {
                print!("{}", crate::acl::mosquitto_acl(&topics));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    raise_open_files_limit();
    let agent = args.with_agent.then(|| {
        let server = args.broker.clone().unwrap_or_else(|| {
            let ip = args.mqtt_listen.ip();
            let host = if ip.is_unspecified() { "127.0.0.1".to_owned() } else { ip.to_string() };
            format!("mqtt://{host}:{}", args.mqtt_listen.port())
        });
        with_agent::Supervisor::start(with_agent::AgentSpec {
            exe: with_agent::agent_executable(),
            server,
            prefix: args.prefix.clone(),
            token_file: args.data_dir.join(crate::secrets::JOIN_TOKEN_FILE),
            extra: args.agent_args.clone(),
        })
    });
    let config = Config {
        data_dir: args.data_dir,
        listen: args.listen,
        mqtt_listen: args.mqtt_listen,
        broker: args.broker,
        node_grace: args.node_grace,
        placement: args.placement,
        prefix: args.prefix,
        pin_images: args.pin_images,
        insecure_registries: args.insecure_registries,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = async {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    let result = runtime.block_on(server::run(config, shutdown));
    if let Some(agent) = agent {
        agent.stop();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Every board holds a connection to the embedded broker: lift the soft limit on open files
/// (often 1,024) to the hard one, as a service manager's `LimitNOFILE` would.
pub fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
        && let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard)
    {
        log(format!("cannot raise the open files limit from {soft} to {hard}: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("s").is_err());
    }
}
