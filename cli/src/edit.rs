//! The verbs that change one object: `scale`, `delete`, `cordon`, `uncordon`.

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
