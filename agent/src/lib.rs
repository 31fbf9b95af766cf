//! `bramble-agent`, the one binary on each board. It will run the board's pods as OCI
//! containers (the agent issue); today it checks manifests with the same rules as the
//! coordinator, so a board can vet what it is given.

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
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { files } => validate::run(&files),
    }
}
