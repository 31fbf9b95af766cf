//! `bramble rollout status|history|undo|pause|resume deployment/NAME`, as kubectl has them.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use serde_json::{Value, json};

use crate::client::Client;
use crate::get::to_yaml;
use crate::resource::Resource;

#[derive(Debug, clap::Subcommand)]
pub enum RolloutCommand {
    /// Wait until the Deployment's pods all run its current template and are available.
    Status {
        target: String,
        /// Give up after this long (`90s`, `5m`); waits for ever when left out.
        #[arg(long, value_parser = bramble_coordinator::command::parse_duration)]
        timeout: Option<Duration>,
    },
    /// List the Deployment's revisions, or show one with --revision.
    History {
        target: String,
        #[arg(long)]
        revision: Option<u64>,
    },
    /// Go back to the previous revision, or to --to-revision N.
    Undo {
        target: String,
        #[arg(long, default_value_t = 0)]
        to_revision: u64,
    },
    /// Stop the rollout where it is; changes to the template wait until resume.
    Pause { target: String },
    /// Let a paused rollout go on.
    Resume { target: String },
}

fn deployment(target: &str) -> anyhow::Result<String> {
    let (resource, name) = Resource::parse_pair(target)?;
    if resource != Resource::Deployment {
        bail!("{target}: rollout works on deployments (deployment/NAME)");
    }
    Ok(name)
}

pub fn run(client: &Client, command: RolloutCommand, namespace: &str) -> anyhow::Result<ExitCode> {
    let path = |name: &str| Resource::Deployment.object(namespace, name);
    match command {
        RolloutCommand::Status { target, timeout } => {
            let name = deployment(&target)?;
            status(client, &path(&name), &Resource::Pod.collection(Some(namespace)), &name, timeout)
        }
        RolloutCommand::History { target, revision } => {
            let name = deployment(&target)?;
            let list = client.get(&format!("{}/revisions", path(&name)))?;
            let items = list["items"].as_array().map(Vec::as_slice).unwrap_or_default();
            match revision {
                Some(n) => {
                    let Some(found) = items.iter().find(|r| r["revision"] == n) else {
                        bail!("deployment {namespace}/{name}: no revision {n} in its history");
                    };
                    println!("deployment.apps/{name} with revision #{n}");
                    println!("Pod Template:");
                    for line in to_yaml(&found["template"]).lines().skip(1) {
                        println!("  {line}");
                    }
                }
                None => {
                    println!("deployment.apps/{name}");
                    println!("REVISION  CHANGE-CAUSE");
                    for item in items {
                        let cause = item["changeCause"].as_str().unwrap_or("<none>");
                        println!("{:<9} {cause}", item["revision"].as_u64().unwrap_or(0));
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Undo { target, to_revision } => {
            let name = deployment(&target)?;
            let body = serde_json::to_vec(&json!({"toRevision": to_revision}))?;
            let answer = client.post(&format!("{}/rollback", path(&name)), &[], &body)?;
            println!("{}", answer["message"].as_str().unwrap_or("rolled back"));
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Pause { target } => pause(client, &path(&deployment(&target)?), true),
        RolloutCommand::Resume { target } => pause(client, &path(&deployment(&target)?), false),
    }
}

fn pause(client: &Client, path: &str, paused: bool) -> anyhow::Result<ExitCode> {
    let body = serde_json::to_vec(&json!({"spec": {"paused": paused}}))?;
    let answer = client.patch(path, &body)?;
    println!("{}", answer["message"].as_str().unwrap_or_default());
    Ok(ExitCode::SUCCESS)
}

/// Where the rollout stands, as `kubectl rollout status` words it; `None` when it is done.
fn progress(d: &Value) -> anyhow::Result<Option<String>> {
    let name = d["metadata"]["name"].as_str().unwrap_or_default();
    let status = &d["status"];
    let conditions = status["conditions"].as_array().map(Vec::as_slice).unwrap_or_default();
    let progressing = conditions.iter().find(|c| c["type"] == "Progressing");
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        bail!("deployment {name:?} exceeded its progress deadline");
    }
    let count = |v: &Value| v.as_u64().unwrap_or(0);
    let (wanted, total) = (count(&d["spec"]["replicas"]), count(&status["replicas"]));
    let (updated, available) = (count(&status["updatedReplicas"]), count(&status["availableReplicas"]));
    let waiting = format!("Waiting for deployment {name:?} rollout to finish");
    Ok(if updated < wanted {
        Some(format!("{waiting}: {updated} out of {wanted} new replicas have been updated..."))
    } else if total > updated {
        Some(format!("{waiting}: {} old replicas are pending termination...", total - updated))
    } else if available < updated {
        Some(format!("{waiting}: {available} of {updated} updated replicas are available..."))
    } else {
        None
    })
}

/// Why pods of Deployment `name` wait on their image (`ImagePulling: … 1 of 2 layers, 3.0Mi`,
/// `ImagePullBackOff: …`), as the boards report it.
fn pulls(pods: &Value, name: &str) -> Vec<String> {
    pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| {
            p["metadata"]["ownerReferences"].as_array().is_some_and(|o| o.iter().any(|o| o["name"] == name))
        })
        .filter(|p| p["status"]["reason"].as_str().is_some_and(|r| r.starts_with("ImagePull")))
        .map(|p| {
            let (pod, status) = (&p["metadata"]["name"], &p["status"]);
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            format!("  pod {}: {}: {}", text(pod), text(&status["reason"]), text(&status["message"]))
        })
        .collect()
}

fn status(
    client: &Client,
    path: &str,
    pods_path: &str,
    name: &str,
    timeout: Option<Duration>,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let (mut last, mut last_pulls) = (String::new(), Vec::new());
    loop {
        let d = client.get(path)?;
        let Some(message) = progress(&d)? else {
            println!("deployment {name:?} successfully rolled out");
            return Ok(ExitCode::SUCCESS);
        };
        if message != last {
            println!("{message}");
            last = message;
        }
        // Where image pulls stand, while the boards pull.
        let pulling = pulls(&client.get(pods_path)?, name);
        for line in pulling.iter().filter(|l| !last_pulls.contains(*l)) {
            println!("{line}");
        }
        last_pulls = pulling;
        if timeout.is_some_and(|t| started.elapsed() >= t) {
            bail!("timed out waiting for the rollout to finish");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(wanted: u64, total: u64, updated: u64, available: u64, reason: &str) -> Value {
        json!({"metadata": {"name": "web"}, "spec": {"replicas": wanted},
            "status": {"replicas": total, "updatedReplicas": updated, "availableReplicas": available,
                "conditions": [{"type": "Progressing", "reason": reason}]}})
    }

    #[test]
    fn pulls_of_the_deployments_pods_are_shown() {
        let pods = json!({"items": [
            {"metadata": {"name": "web-a", "ownerReferences": [{"name": "web"}]},
             "status": {"reason": "ImagePulling", "message": "container c: pulling image x: 1 of 2 layers, 3.0Mi"}},
            {"metadata": {"name": "web-b", "ownerReferences": [{"name": "web"}]}, "status": {"phase": "Running"}},
            {"metadata": {"name": "db-a", "ownerReferences": [{"name": "db"}]}, "status": {"reason": "ImagePullBackOff"}},
        ]});
        assert_eq!(
            pulls(&pods, "web"),
            ["  pod web-a: ImagePulling: container c: pulling image x: 1 of 2 layers, 3.0Mi"]
        );
    }

    #[test]
    fn status_words_as_kubectl() {
        let at = |v: Value| progress(&v).expect("no error");
        let waiting = "Waiting for deployment \"web\" rollout to finish: ";
        assert_eq!(
            at(d(4, 5, 1, 4, "ReplicaSetUpdated")),
            Some(format!("{waiting}1 out of 4 new replicas have been updated..."))
        );
        assert_eq!(
            at(d(4, 5, 4, 4, "ReplicaSetUpdated")),
            Some(format!("{waiting}1 old replicas are pending termination..."))
        );
        assert_eq!(
            at(d(4, 4, 4, 3, "ReplicaSetUpdated")),
            Some(format!("{waiting}3 of 4 updated replicas are available..."))
        );
        assert_eq!(at(d(4, 4, 4, 4, "NewReplicaSetAvailable")), None);
        assert!(progress(&d(4, 5, 1, 4, "ProgressDeadlineExceeded")).is_err());
    }
}
