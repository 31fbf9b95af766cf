//! `bramble-agent`, the one binary on each board. It will run the board's pods as OCI
//! containers (the agent issue); today it checks manifests with the same rules as the
//! coordinator and keeps the board's image store.

mod debug_cmd;
pub mod desired;
mod fsutil;
pub mod image;
mod image_cmd;
pub mod reconcile;
pub mod runtime;
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
    Shim {
        #[arg(long)]
        id: String,
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        root: PathBuf,
        #[arg(long)]
        log: PathBuf,
        #[arg(long)]
        log_max_bytes: u64,
        #[arg(long)]
        status_dir: PathBuf,
    },
}

/// The agent's run directory (tmpfs, gone at reboot) unless told otherwise.
pub const DEFAULT_RUN_DIR: &str = "/run/bramble";

/// The agent's state directory unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bramble";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => validate::run(&files),
        Command::Image { state_dir, command } => image_cmd::run(&state_dir, command),
        Command::Debug { state_dir, run_dir, command } => debug_cmd::run(&state_dir, &run_dir, command),
        Command::Shim { id, bundle, root, log, log_max_bytes, status_dir } => {
            let args = runtime::shim::ShimArgs { id, bundle, root, log, log_max_bytes, status_dir };
            match runtime::shim::launch(&args) {
                Ok(pid) => {
                    println!("started {pid}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
