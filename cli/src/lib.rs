//! `bramble`, the kubectl-like client. One module per verb; this file parses the command line
//! and dispatches.

mod apply;
mod client;
mod describe;
mod diff;
mod edit;
mod get;
mod manifest_files;
mod pod_cmd;
mod resource;
mod rollout;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "bramble", version, about = "Run containers on a cluster of small boards, kubectl-style")]
struct Cli {
    #[command(flatten)]
    connection: client::Connection,
    /// The namespace of namespaced objects.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    namespace: String,
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
    /// Create or update objects from manifests.
    Apply {
        /// A file, a directory of .yaml/.yml/.json files, or - for standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        filenames: Vec<PathBuf>,
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// List objects: nodes, pods, deployments, services, configmaps, namespaces.
    Get {
        resource: String,
        name: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// wide, json or yaml.
        #[arg(short = 'o', long, value_parser = get::parse_output)]
        output: Option<get::Output>,
    },
    /// Show one object in words, with its status and what it owns: `describe pod NAME`,
    /// `describe deployment/web`, `describe node pi-1`.
    Describe {
        /// TYPE/NAME, or TYPE then NAME.
        target: String,
        name: Option<String>,
    },
    /// Show what `apply -f` would change, as a unified diff of each object (live, then as it
    /// would be); exits 1 when anything would change.
    Diff {
        #[arg(short = 'f', long = "filename", required = true)]
        filenames: Vec<PathBuf>,
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Watch, list, undo, pause or resume a Deployment's rollout.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
    },
    /// Set a Deployment's number of replicas: `scale deployment/web --replicas 3`.
    Scale {
        target: String,
        #[arg(long)]
        replicas: u32,
    },
    /// Delete objects: `delete deployment/web`, `delete pod web-x`, or `delete -f FILE`.
    Delete {
        /// TYPE/NAME, or TYPE NAME…
        targets: Vec<String>,
        #[arg(short = 'f', long = "filename")]
        filenames: Vec<PathBuf>,
    },
    /// Let no new pods onto a board.
    Cordon { node: String },
    /// Let new pods onto a board again.
    Uncordon { node: String },
    /// Cordon a board and move its pods away (a Deployment's are started on other boards).
    Drain {
        node: String,
        /// Also delete pods no Deployment owns (they are not started elsewhere).
        #[arg(long)]
        force: bool,
    },
    /// Print a container's output: `logs web-6f9c-xk2p`, `logs -f deployment/web`.
    Logs {
        /// A pod, `pod/NAME`, or `deployment/NAME` (one of its pods).
        pod: String,
        /// The container; may be left out when the pod has one.
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Keep printing what the container writes.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<u32>,
    },
    /// Run a command in a pod's container: `exec web-6f9c-xk2p -- cat /etc/hostname`.
    Exec {
        /// A pod, `pod/NAME`, or `deployment/NAME` (one of its pods).
        pod: String,
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run the coordinator (the control plane) with its embedded MQTT broker.
    Coordinator(bramble_coordinator::command::CoordinatorArgs),
}

/// Runs the command line; the exit code is 0 only if everything succeeded.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let namespace = cli.namespace;
    let result = match cli.command {
        Command::Validate { filenames, recursive } => validate::run(&filenames, recursive),
        Command::Coordinator(args) => return bramble_coordinator::command::run(args),
        command => client::Client::new(&cli.connection).and_then(|client| match command {
            Command::Apply { filenames, recursive } => apply::run(&client, &filenames, recursive, &namespace),
            Command::Get { resource, name, all_namespaces, output } => {
                let resource = resource::Resource::parse(&resource)?;
                let namespace = (!all_namespaces).then_some(namespace.as_str());
                get::run(&client, resource, name.as_deref(), namespace, output.unwrap_or(get::Output::Table))
            }
            Command::Describe { target, name } => {
                let (resource, name) = match name {
                    Some(name) => (resource::Resource::parse(&target)?, name),
                    None => resource::Resource::parse_pair(&target)?,
                };
                describe::run(&client, resource, &name, &namespace)
            }
            Command::Diff { filenames, recursive } => {
                Ok(diff::run(&client, &filenames, recursive, &namespace))
            }
            Command::Rollout { command } => rollout::run(&client, command, &namespace),
            Command::Scale { target, replicas } => edit::scale(&client, &target, replicas, &namespace),
            Command::Delete { targets, filenames } => delete(&client, &targets, &filenames, &namespace),
            Command::Cordon { node } => edit::cordon(&client, &node, true),
            Command::Uncordon { node } => edit::cordon(&client, &node, false),
            Command::Drain { node, force } => edit::drain(&client, &node, force),
            Command::Logs { pod, container, follow, tail } => {
                pod_cmd::logs(&client, &pod, &namespace, container.as_deref(), follow, tail)
            }
            Command::Exec { pod, container, command } => {
                pod_cmd::exec(&client, &pod, &namespace, container.as_deref(), &command)
            }
            Command::Validate { .. } | Command::Coordinator(_) => Ok(ExitCode::SUCCESS),
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `delete TYPE/NAME…`, `delete TYPE NAME…` or `delete -f FILE`.
fn delete(
    client: &client::Client,
    targets: &[String],
    files: &[PathBuf],
    namespace: &str,
) -> anyhow::Result<ExitCode> {
    let mut named: Vec<(resource::Resource, String, String)> = Vec::new();
    if !files.is_empty() {
        let Some(manifests) = manifest_files::read_valid(files, false) else {
            return Ok(ExitCode::FAILURE);
        };
        for item in manifests.objects {
            let meta = item.object.metadata();
            let kind = resource::Resource::parse(item.object.kind().name())?;
            named.push((
                kind,
                meta.namespace.clone().unwrap_or_else(|| namespace.to_owned()),
                meta.name.clone(),
            ));
        }
    }
    match targets.first() {
        Some(first) if !first.contains('/') => {
            let kind = resource::Resource::parse(first)?;
            named.extend(targets[1..].iter().map(|n| (kind, namespace.to_owned(), n.clone())));
        }
        _ => {
            for target in targets {
                let (kind, name) = resource::Resource::parse_pair(target)?;
                named.push((kind, namespace.to_owned(), name));
            }
        }
    }
    if named.is_empty() {
        anyhow::bail!("nothing to delete: name TYPE/NAME or -f FILE");
    }
    let mut failed = false;
    for (kind, ns, name) in named {
        if let Err(e) = edit::delete(client, kind, &name, &ns) {
            eprintln!("error: {e:#}");
            failed = true;
        }
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
