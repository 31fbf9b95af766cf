//! `bramble-agent debug run IMAGE [-- ARGS…]`: one container from the store, started the way
//! pods' containers are (overlay root, OCI bundle, shim), waited for, its output printed.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bramble_common::objects::{Container, ResourceList, ResourceRequirements};
use bramble_common::quantity::Quantity;
use clap::Subcommand;

use crate::image::ImageStore;
use crate::runtime::{Runtime, spec};

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Run IMAGE once and print its output and exit code.
    Run {
        image: String,
        /// A container id (letters, digits, '-', '_', '.'); unique per run.
        #[arg(long, default_value = "debug")]
        id: String,
        #[arg(long)]
        memory: Option<String>,
        #[arg(long)]
        cpu: Option<String>,
        #[arg(long, default_value_t = spec::DEFAULT_PIDS_LIMIT)]
        pids: i64,
        /// Leave it running and print its pid instead of waiting for it.
        #[arg(long)]
        detach: bool,
        /// The command, replacing the image's.
        #[arg(last = true)]
        command: Vec<String>,
    },
}

pub fn run(state_dir: &Path, run_dir: &Path, command: DebugCommand) -> ExitCode {
    match execute(state_dir, run_dir, command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn execute(state_dir: &Path, run_dir: &Path, command: DebugCommand) -> Result<ExitCode, String> {
    let DebugCommand::Run { image, id, memory, cpu, pids, detach, command } = command;
    let parse = |q: Option<String>| q.map(|q| Quantity::parse(&q).map_err(|e| e.to_string())).transpose();
    let limits = ResourceList { cpu: parse(cpu)?, memory: parse(memory)? };
    let store = ImageStore::open(state_dir).map_err(|e| e.to_string())?;
    let record = store
        .get(&image)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no image {image} in the store"))?;
    let layers = store.layer_dirs(&record).map_err(|e| e.to_string())?;
    let mut container = Container::new(&id, &image);
    container.command = command;
    container.resources = ResourceRequirements { requests: ResourceList::default(), limits };
    let cgroup_path = format!("{}/debug/{id}", crate::runtime::cgroups::ROOT);
    let config = spec::build(&spec::SpecInput {
        container: &container,
        image: &record.run,
        hostname: &id,
        cgroup_path: &cgroup_path,
        binds: vec![],
        pids_limit: pids,
        resolv_conf: spec::host_resolv_conf(),
    });
    let runtime = Runtime::for_this_binary(state_dir, run_dir).map_err(|e| e.to_string())?;
    runtime.remove(&id).map_err(|e| e.to_string())?;
    let pid = runtime.start(&id, &layers, &config).map_err(|e| e.to_string())?;
    if detach {
        println!("{pid}");
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = runtime.exit_info(&id) {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!("container {id} still runs after 10 minutes"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = std::fs::read_to_string(runtime.paths(&id).log).unwrap_or_default();
    print!("{log}");
    runtime.remove(&id).map_err(|e| e.to_string())?;
    let reason = if exit.oom_killed { " (OOMKilled)" } else { "" };
    eprintln!("exit code {}{reason}", exit.exit_code);
    Ok(ExitCode::from(u8::try_from(exit.exit_code).unwrap_or(255)))
}
