//! `bramble`, the kubectl-like client. One module per verb; this file parses the command line
//! and dispatches.

mod manifest_files;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bramble", version, about = "Run containers on a cluster of small boards, kubectl-style")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check manifests without applying them: print each object and its warnings, or the errors.
    Validate {
        /// A file, a directory of .yaml/.yml/.json files, or - for standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        filenames: Vec<PathBuf>,
        /// Also read the directories under a directory.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
}

/// Runs the command line; the exit code is 0 only if everything succeeded.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { filenames, recursive } => validate::run(&filenames, recursive),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
