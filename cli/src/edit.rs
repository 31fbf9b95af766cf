//! The verbs that change objects: `scale`, `delete`, `cordon`, `uncordon`, `drain`.

use std::process::ExitCode;

use anyhow::bail;
use serde_json::json;

use crate::client::Client;
use crate::resource::Resource;

pub fn scale(client: &Client, target: &str, replicas: u32, namespace: &str) -> anyhow::Result<ExitCode> {
    let (resource, name) = Resource::parse_pair(target)?;
    if resource != Resource::Deployment {
        bail!("{target}: only deployments scale");
    }
    let body = serde_json::to_vec(&json!({"spec": {"replicas": replicas}}))?;
    client.put(&format!("{}/scale", resource.object(namespace, &name)), &body)?;
    println!("{}/{name} scaled", resource.singular());
    Ok(ExitCode::SUCCESS)
}

pub fn delete(client: &Client, resource: Resource, name: &str, namespace: &str) -> anyhow::Result<()> {
    client.delete(&resource.object(namespace, name))?;
    println!("{} \"{name}\" deleted", resource.singular());
    Ok(())
}

pub fn cordon(client: &Client, node: &str, cordoned: bool) -> anyhow::Result<ExitCode> {
    let body = serde_json::to_vec(&json!({"spec": {"unschedulable": cordoned}}))?;
    client.patch(&Resource::Node.object("", node), &body)?;
    println!("node/{node} {}", if cordoned { "cordoned" } else { "uncordoned" });
    Ok(ExitCode::SUCCESS)
}

/// `drain NODE`: cordon the board, then delete its pods; the coordinator starts a Deployment's
/// replacements on other boards. A bare Pod (no Deployment) would be lost, so, as with kubectl,
/// the drain stops before anything is changed unless `force`.
pub fn drain(client: &Client, node: &str, force: bool) -> anyhow::Result<ExitCode> {
    client.get(&Resource::Node.object("", node))?;
    let pods = client.get(&Resource::Pod.collection(None))?;
    let on_node: Vec<(String, String, bool)> = pods["items"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|p| p["spec"]["nodeName"] == node)
        .map(|p| {
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            let owned = p["metadata"]["ownerReferences"].as_array().is_some_and(|o| !o.is_empty());
            (text(&p["metadata"]["namespace"]), text(&p["metadata"]["name"]), owned)
        })
        .collect();
    let bare: Vec<String> =
        on_node.iter().filter(|(_, _, owned)| !owned).map(|(ns, name, _)| format!("{ns}/{name}")).collect();
    if !bare.is_empty() && !force {
        bail!(
            "cannot drain node {node}: these pods belong to no Deployment and would not be started elsewhere: {} \
             (--force deletes them)",
            bare.join(", ")
        );
    }
    cordon(client, node, true)?;
    for (namespace, name, _) in &on_node {
        client.delete(&Resource::Pod.object(namespace, name))?;
        println!("pod/{name} evicted");
    }
    println!("node/{node} drained");
    Ok(ExitCode::SUCCESS)
}
