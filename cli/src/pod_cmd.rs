//! `logs` and `exec`: the coordinator passes them to the pod's board over MQTT and streams the
//! answer back.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;

use anyhow::{Context, bail};
use bramble_common::wire::{OutputStream, Response};
use serde_json::json;

use crate::client::Client;
use crate::resource::Resource;

/// The pod `target` names: `NAME`, `pod/NAME`, or `deployment/NAME` (one of its Running pods,
/// as kubectl picks one).
fn pod_name(client: &Client, target: &str, namespace: &str) -> anyhow::Result<String> {
    if !target.contains('/') {
        return Ok(target.to_owned());
    }
    let (resource, name) = Resource::parse_pair(target)?;
    match resource {
        Resource::Pod => Ok(name),
        Resource::Deployment => {
            let pods = client.get(&Resource::Pod.collection(Some(namespace)))?;
            let mut names: Vec<(bool, &str)> = pods["items"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter(|p| {
                    p["metadata"]["ownerReferences"]
                        .as_array()
                        .is_some_and(|owners| owners.iter().any(|o| o["name"] == name.as_str()))
                })
                .filter_map(|p| Some((p["status"]["phase"] != "Running", p["metadata"]["name"].as_str()?)))
                .collect();
            names.sort();
            match names.first() {
                Some((_, pod)) => {
                    if names.len() > 1 {
                        eprintln!("Found {} pods, using pod/{pod}", names.len());
                    }
                    Ok((*pod).to_owned())
                }
                None => bail!("deployment {namespace}/{name} has no pods"),
            }
        }
        other => bail!("{target}: logs and exec take a pod or a deployment, not a {}", other.singular()),
    }
}

pub fn logs(
    client: &Client,
    target: &str,
    namespace: &str,
    container: Option<&str>,
    follow: bool,
    tail: Option<u32>,
) -> anyhow::Result<ExitCode> {
    let pod = pod_name(client, target, namespace)?;
    let tail = tail.map(|n| n.to_string());
    let mut query = vec![("follow", if follow { "true" } else { "false" })];
    if let Some(tail) = &tail {
        query.push(("tailLines", tail));
    }
    if let Some(container) = container {
        query.push(("container", container));
    }
    let path = format!("{}/log", Resource::Pod.object(namespace, &pod));
    let mut body = client.get_stream(&path, &query)?;
    let mut reader = body.as_reader();
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = reader.read(&mut buf).with_context(|| format!("logs of pod {namespace}/{pod}"))?;
        if n == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        if out.write_all(&buf[..n]).and_then(|()| out.flush()).is_err() {
            return Ok(ExitCode::SUCCESS); // the reader of our output went away
        }
    }
}

/// Runs `command` in the pod; its output goes to ours, and its exit code becomes ours.
pub fn exec(
    client: &Client,
    target: &str,
    namespace: &str,
    container: Option<&str>,
    command: &[String],
) -> anyhow::Result<ExitCode> {
    let pod = pod_name(client, target, namespace)?;
    let path = format!("{}/exec", Resource::Pod.object(namespace, &pod));
    let body = serde_json::to_vec(&json!({"command": command, "container": container}))?;
    let mut answer = client.post_stream(&path, &body)?;
    let reader = BufReader::new(answer.as_reader());
    for line in reader.lines() {
        let line = line.with_context(|| format!("exec in pod {namespace}/{pod}"))?;
        let chunk: Response = serde_json::from_str(&line).with_context(|| {
            format!("exec in pod {namespace}/{pod}: a line that is not a chunk: {line:?}")
        })?;
        let written = match chunk.stream {
            Some(OutputStream::Stderr) => {
                let mut err = std::io::stderr().lock();
                err.write_all(chunk.data.as_bytes()).and_then(|()| err.flush())
            }
            _ => {
                let mut out = std::io::stdout().lock();
                out.write_all(chunk.data.as_bytes()).and_then(|()| out.flush())
            }
        };
        if written.is_err() {
            return Ok(ExitCode::FAILURE);
        }
        if let Some(error) = chunk.error {
            bail!("exec in pod {namespace}/{pod}: {error}");
        }
        if chunk.done {
            let code = chunk.exit_code.unwrap_or(0);
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(255)));
        }
    }
    bail!("exec in pod {namespace}/{pod}: the answer ended before the command did")
}
