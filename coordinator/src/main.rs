use std::process::ExitCode;

use clap::Parser;

/// Bramble's coordinator (also `bramble coordinator`).
#[derive(Parser)]
#[command(name = "bramble-coordinator", version)]
struct Cli {
    #[command(flatten)]
    args: bramble_coordinator::command::CoordinatorArgs,
}

fn main() -> ExitCode {
    bramble_coordinator::command::run(Cli::parse().args)
}
