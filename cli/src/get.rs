//! `bramble get nodes|pods|deployments|… [NAME] [-n NS | -A] [-o wide|json|yaml]`: tables as
//! kubectl prints them, or the objects themselves.

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::client::Client;
use crate::resource::Resource;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
}

pub fn parse_output(text: &str) -> Result<Output, String> {
    match text {
        "wide" => Ok(Output::Wide),
        "json" => Ok(Output::Json),
        "yaml" => Ok(Output::Yaml),
        other => Err(format!("{other:?}: expected wide, json or yaml")),
    }
}

pub fn run(
    client: &Client,
    resource: Resource,
    name: Option<&str>,
    namespace: Option<&str>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let value = match name {
        Some(name) => client.get(&resource.object(namespace.unwrap_or("default"), name))?,
        None => client.get(&resource.collection(namespace))?,
    };
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&value)?),
        Output::Yaml => print!("{}", to_yaml(&value)),
        Output::Table | Output::Wide => {
            let items = match value["items"].as_array() {
                Some(items) => items.clone(),
                None => vec![value],
            };
            if items.is_empty() {
                match namespace {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
                return Ok(ExitCode::SUCCESS);
            }
            print!("{}", table(resource, &items, namespace.is_none(), output == Output::Wide));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON value as a table cell: strings without quotes, nothing for null.
pub(crate) fn s(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `5s`, `3m`, `2h`, `4d`, as kubectl shows an age.
pub fn age(created: u64, now: u64) -> String {
    if created == 0 {
        return "<unknown>".into();
    }
    let secs = now.saturating_sub(created);
    match secs {
        0..120 => format!("{secs}s"),
        120..7200 => format!("{}m", secs / 60),
        7200..172_800 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

fn table(resource: Resource, items: &[Value], all_namespaces: bool, wide: bool) -> String {
    let now = unix_now();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let namespaced = !matches!(resource, Resource::Node | Resource::Namespace);
    let with_ns = all_namespaces && namespaced;
    let mut header: Vec<&str> = if with_ns { vec!["NAMESPACE", "NAME"] } else { vec!["NAME"] };
    match resource {
        Resource::Node => {
            header.extend(["STATUS", "ARCH", "PODS", "VERSION"]);
            if wide {
                header.extend(["CPUS", "MEMORY", "CPU%", "MESSAGE"]);
            }
        }
        Resource::Pod => {
            header.extend(["READY", "STATUS", "RESTARTS", "AGE"]);
            if wide {
                header.extend(["NODE", "MESSAGE"]);
            }
        }
        Resource::Deployment => {
            header.extend(["READY", "UP-TO-DATE", "AVAILABLE"]);
            if wide {
                header.extend(["CONTAINERS", "IMAGES", "SELECTOR"]);
            }
        }
        Resource::Service | Resource::ConfigMap | Resource::Namespace => {}
    }
    for item in items {
        let meta = &item["metadata"];
        let mut row = Vec::new();
        if with_ns {
            row.push(s(&meta["namespace"]));
        }
        row.push(s(&meta["name"]));
        match resource {
            Resource::Node => {
                let condition = &item["status"]["conditions"][0];
                let mut status = match condition["status"].as_str() {
                    Some("True") => "Ready".to_owned(),
                    Some("False") => "NotReady".to_owned(),
                    _ => "Unknown".to_owned(),
                };
                if item["spec"]["unschedulable"] == Value::Bool(true) {
                    status.push_str(",SchedulingDisabled");
                }
                row.push(status);
                row.push(s(&item["status"]["nodeInfo"]["architecture"]));
                row.push(s(&item["status"]["capacity"]["pods"]));
                row.push(s(&item["status"]["nodeInfo"]["agentVersion"]));
                if wide {
                    let health = &item["status"]["health"];
                    row.push(s(&item["status"]["capacity"]["cpu"]));
                    row.push(human(health["memoryTotalBytes"].as_u64().unwrap_or(0)));
                    row.push(health["cpuPercent"].as_f64().map_or(String::new(), |c| format!("{c:.0}%")));
                    row.push(s(&condition["message"]));
                }
            }
            Resource::Pod => {
                let containers = item["spec"]["containers"].as_array().map_or(0, Vec::len);
                let ready = item["status"]["conditions"][0]["status"] == "True";
                row.push(format!("{}/{containers}", if ready { containers } else { 0 }));
                let phase = s(&item["status"]["phase"]);
                let reason = s(&item["status"]["reason"]);
                // As kubectl: the waiting reason (CrashLoopBackOff, ContainerCreating) over the phase.
                let shown = if reason.is_empty() || (phase == "Running" && reason == "ProbeFailed") {
                    phase
                } else {
                    reason
                };
                row.push(shown);
                row.push(s(&item["status"]["restartCount"]));
                row.push(age(meta["creationTimestamp"].as_u64().unwrap_or(0), now));
                if wide {
                    let node = s(&item["spec"]["nodeName"]);
                    row.push(if node.is_empty() { "<none>".into() } else { node });
                    row.push(s(&item["status"]["message"]));
                }
            }
            Resource::Deployment => {
                let status = &item["status"];
                let replicas = item["spec"]["replicas"].as_u64().unwrap_or(0);
                row.push(format!("{}/{replicas}", status["readyReplicas"].as_u64().unwrap_or(0)));
                row.push(s(&status["updatedReplicas"]));
                row.push(s(&status["availableReplicas"]));
                if wide {
                    let containers = item["spec"]["template"]["spec"]["containers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    row.push(containers.iter().map(|c| s(&c["name"])).collect::<Vec<_>>().join(","));
                    row.push(containers.iter().map(|c| s(&c["image"])).collect::<Vec<_>>().join(","));
                    let labels =
                        item["spec"]["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
                    row.push(
                        labels.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(","),
                    );
                }
            }
            Resource::Service | Resource::ConfigMap | Resource::Namespace => {}
        }
        rows.push(row);
    }
    render(&header, &rows)
}

fn human(bytes: u64) -> String {
    if bytes == 0 {
        return String::new();
    }
    let gib = bytes as f64 / f64::from(1u32 << 30);
    if gib >= 1.0 { format!("{gib:.1}Gi") } else { format!("{}Mi", bytes >> 20) }
}

/// Columns padded to their widest cell and three spaces apart, as kubectl prints them.
fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        let last = cells.len().saturating_sub(1);
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}   "));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// JSON as YAML (block style), for `-o yaml`.
pub fn to_yaml(value: &Value) -> String {
    fn convert(value: &Value) -> yaml_rust2::Yaml {
        use yaml_rust2::Yaml;
        match value {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Yaml::Integer(i),
                None => Yaml::Real(n.to_string()),
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(items) => Yaml::Array(items.iter().map(convert).collect()),
            Value::Object(map) => {
                Yaml::Hash(map.iter().map(|(k, v)| (Yaml::String(k.clone()), convert(v))).collect())
            }
        }
    }
    let mut out = String::new();
    let mut emitter = yaml_rust2::YamlEmitter::new(&mut out);
    if emitter.dump(&convert(value)).is_err() {
        return format!("{value}\n");
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_table_looks_like_kubectls() {
        let pod = json!({
            "metadata": {"name": "web-abc-x1", "namespace": "default", "creationTimestamp": 1000},
            "spec": {"containers": [{"name": "c"}], "nodeName": "pi-1"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}], "restartCount": 2},
        });
        let text = table(Resource::Pod, &[pod], false, true);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME         READY   STATUS    RESTARTS   AGE"), "{text}");
        assert!(lines[1].starts_with("web-abc-x1   1/1     Running   2"), "{text}");
        assert!(lines[1].contains("pi-1"), "{text}");
    }

    #[test]
    fn ages_and_yaml() {
        assert_eq!(age(100, 105), "5s");
        assert_eq!(age(0, 105), "<unknown>");
        assert_eq!(age(1, 601), "10m");
        assert_eq!(age(1, 1 + 3 * 86_400), "3d");
        let yaml = to_yaml(&json!({"kind": "Pod", "spec": {"replicas": 2}}));
        assert!(yaml.contains("kind: Pod") && yaml.contains("replicas: 2"), "{yaml}");
    }
}
