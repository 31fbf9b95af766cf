//! `bramble-agent`, the one binary on each board. It will run the board's pods as OCI
//! containers (the agent issue); today it checks manifests with the same rules as the
//! coordinator and keeps the board's image store.

mod fsutil;
pub mod image;
mod image_cmd;
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
}

/// The agent's state directory unless told otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/bramble";

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => validate::run(&files),
        Command::Image { state_dir, command } => image_cmd::run(&state_dir, command),
    }
}
