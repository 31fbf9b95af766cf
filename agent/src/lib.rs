//! `bramble-agent`, the one binary on each board: it runs the board's pods as OCI containers
//! (`run`), keeps its image store (`image`), reports (`status`, `logs`) and checks manifests
//! with the same rules as the coordinator (`validate`).

pub mod cluster;
pub mod daemon;
mod debug_cmd;
pub mod desired;
mod fsutil;
mod health;
pub mod image;
mod image_cmd;
mod logs_cmd;
pub mod probe;
pub mod reconcile;
mod requests;
pub mod runtime;
pub mod status;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bramble-agent", version, about = "Bramble's agent for one board")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifest files: print each object and its warnings, or the errors.
    Validate {
        /// Manifest files (YAML or JSON, several documents each).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage the board's images: import, ls, rm.
    Image {
        /// Where the agent keeps its state.
        #[arg(long, default_value = DEFAULT_STATE_DIR, global = true)]
        state_dir: PathBuf,
        #[command(subcommand)]
        command: image_cmd::ImageCommand,
    },
    /// Run the board's pods: the daemon.
    Run {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(long, default_value = DEFAULT_RUN_DIR)]
        run_dir: PathBuf,
        /// The directory of manifests (Pods, Deployments) this board runs.
        #[arg(long, default_value = DEFAULT_MANIFESTS_DIR)]
        manifests: PathBuf,
        /// Join a cluster: the coordinator's MQTT broker, mqtt://HOST:PORT.
        #[arg(long, requires = "token")]
        server: Option<String>,
        /// The cluster's join token (the coordinator prints it and keeps it in its data dir).
        #[arg(long, env = "BRAMBLE_JOIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The board's name in the cluster; the hostname when left out.
        #[arg(long)]
        name: Option<String>,
        /// A label for nodeSelector, KEY=VALUE (repeatable).
        #[arg(long = "label", value_parser = cluster::parse_label)]
        labels: Vec<(String, String)>,
        /// The prefix of every MQTT topic.
        #[arg(long, default_value = bramble_common::wire::DEFAULT_PREFIX)]
        prefix: String,
        /// How often health goes to the coordinator, in milliseconds; keep it well under the
        /// coordinator's --node-grace.
        #[arg(long, default_value_t = 5000)]
        health_interval_ms: u64,
        /// A registry pulled from over plain HTTP instead of HTTPS (`host:port`; repeatable).
        #[arg(long = "insecure-registry")]
        insecure_registries: Vec<String>,
    },
    /// Show the board's facts and its pods' status.
    Status {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[arg(long, default_value = DEFAULT_RUN_DIR)]
        run_dir: PathBuf,
        /// Output format: `json`, or a table when left out.
        #[arg(short = 'o', long, value_parser = ["json"])]
        output: Option<String>,
    },
    /// Print a container's output.
    Logs {
        #[arg(long, default_value = DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
        #[command(flatten)]
        args: logs_cmd::LogsArgs,
    },
    /// Run one container to its end, outside any pod (for trying images and for benchmarks).
    Debug {
        #[arg(long, default_value = DEFAULT_STATE_DIR, global = true)]
        state_dir: PathBuf,
        #[arg(long, default_value = DEFAULT_RUN_DIR, global = true)]
        run_dir: PathBuf,
        #[command(subcommand)]
        command: debug_cmd::DebugCommand,
    },
    /// The per-container shim (started by the agent, not by people).
    #[command(hide = true)]
    Shim(#[command(flatten)] runtime::shim::ShimArgs),
    /// Runs a command in a running container (exec probes use it).
    #[command(hide = true)]
    ExecIn {
        /// libcontainer's state root.
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        id: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// The agent's run directory (tmpfs, gone at reboot) unless told otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/bramble";

/// Where the daemon reads manifests unless told otherwise.
pub const DEFAULT_MANIFESTS_DIR: &str = "/etc/bramble/manifests";

/// The agent's state directory unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bramble";

/// A line of the agent's log (standard error).
pub(crate) fn log(line: impl AsRef<str>) {
    eprintln!("bramble-agent: {}", line.as_ref());
}

fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(|h| h.to_lowercase())
        .unwrap_or_else(|| "bramble".to_owned())
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => validate::run(&files),
        Command::Run {
            state_dir,
            run_dir,
            manifests,
            server,
            token,
            name,
            labels,
            prefix,
            health_interval_ms,
            insecure_registries,
        } => {
            let cluster = server.map(|server| cluster::ClusterOptions {
                server,
                token: token.unwrap_or_default(),
                node: name.unwrap_or_else(hostname),
                labels: labels.into_iter().collect(),
                prefix,
                health_interval_ms: health_interval_ms.max(100),
            });
            daemon::run(&daemon::Options { state_dir, run_dir, manifests, cluster, insecure_registries })
        }
        Command::Status { state_dir, run_dir, output } => {
            status::command(&state_dir, &run_dir, output.is_some())
        }
        Command::Logs { state_dir, args } => logs_cmd::run(&state_dir, &args),
        Command::Image { state_dir, command } => image_cmd::run(&state_dir, command),
        Command::Debug { state_dir, run_dir, command } => debug_cmd::run(&state_dir, &run_dir, command),
        Command::Shim(args) => match runtime::shim::launch(&args) {
            Ok(pid) => {
                println!("started {pid}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        Command::ExecIn { root, id, command } => match runtime::exec::exec_in(&root, &id, command) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(255)),
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(126)
            }
        },
    }
}
