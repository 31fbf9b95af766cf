//! `bramble describe TYPE NAME` (or `TYPE/NAME`): one object in words, as `kubectl describe`
//! shows it: its fields, its status as the boards report it, and what it owns (a Deployment's
//! pods, a board's pods).

use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use serde_json::Value;

use crate::client::Client;
use crate::get::{age, s, to_yaml, unix_now};
use crate::resource::Resource;

pub fn run(client: &Client, resource: Resource, name: &str, namespace: &str) -> anyhow::Result<ExitCode> {
    let object = client.get(&resource.object(namespace, name))?;
    let text = match resource {
        Resource::Pod => pod(&object),
        Resource::Deployment => {
            let pods = client.get(&Resource::Pod.collection(Some(namespace)))?;
            deployment(&object, items(&pods))
        }
        Resource::Node => {
            let pods = client.get(&Resource::Pod.collection(None))?;
            node(&object, items(&pods))
        }
        Resource::Service | Resource::ConfigMap | Resource::Namespace => other(&object),
    };
    // A reader that went away (`| head`) is no error.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn items(list: &Value) -> &[Value] {
    list["items"].as_array().map(Vec::as_slice).unwrap_or_default()
}

/// `key=value` pairs of a map, comma-separated, or `<none>`.
fn pairs(map: &Value) -> String {
    let text: Vec<String> =
        map.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={}", s(v))).collect();
    if text.is_empty() { "<none>".into() } else { text.join(",") }
}

/// One `Label:  value` line, values aligned as kubectl aligns them.
fn line(out: &mut String, indent: usize, label: &str, value: impl std::fmt::Display) {
    let label = format!("{label}:");
    let _ = writeln!(
        out,
        "{:indent$}{label:<width$}{value}",
        "",
        width = 16usize.saturating_sub(indent).max(label.len() + 1)
    );
}

fn header(out: &mut String, object: &Value) {
    let meta = &object["metadata"];
    line(out, 0, "Name", s(&meta["name"]));
    if !meta["namespace"].is_null() {
        line(out, 0, "Namespace", s(&meta["namespace"]));
    }
    line(out, 0, "Labels", pairs(&meta["labels"]));
    if meta["annotations"].as_object().is_some_and(|a| !a.is_empty()) {
        line(out, 0, "Annotations", pairs(&meta["annotations"]));
    }
}

/// The containers of a pod spec, indented by `indent`.
fn containers(out: &mut String, spec: &Value, indent: usize) {
    let _ = writeln!(out, "{:indent$}Containers:", "");
    let inner = indent + 2;
    for c in spec["containers"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "{:inner$}{}:", "", s(&c["name"]));
        let at = inner + 2;
        line(out, at, "Image", s(&c["image"]));
        let words = |v: &Value| v.as_array().into_iter().flatten().map(s).collect::<Vec<_>>().join(" ");
        if !c["command"].as_array().is_none_or(Vec::is_empty) {
            line(out, at, "Command", words(&c["command"]));
        }
        if !c["args"].as_array().is_none_or(Vec::is_empty) {
            line(out, at, "Args", words(&c["args"]));
        }
        let ports: Vec<String> = c["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| {
                let protocol = p["protocol"].as_str().unwrap_or("TCP");
                match p["hostPort"].as_u64() {
                    Some(host) => format!("{}/{protocol} (host {host})", s(&p["containerPort"])),
                    None => format!("{}/{protocol}", s(&p["containerPort"])),
                }
            })
            .collect();
        if !ports.is_empty() {
            line(out, at, "Ports", ports.join(", "));
        }
        for (label, key) in [("Limits", "limits"), ("Requests", "requests")] {
            let resources = &c["resources"][key];
            if resources.as_object().is_some_and(|r| !r.is_empty()) {
                let text: Vec<String> = resources
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| format!("{k}: {}", s(v)))
                    .collect();
                line(out, at, label, text.join(", "));
            }
        }
        for (label, key) in
            [("Liveness", "livenessProbe"), ("Readiness", "readinessProbe"), ("Startup", "startupProbe")]
        {
            if let Some(probe) = c[key].as_object() {
                line(out, at, label, probe_text(probe));
            }
        }
        let env: Vec<String> = c["env"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| format!("{}={}", s(&e["name"]), s(&e["value"])))
            .collect();
        if !env.is_empty() {
            line(out, at, "Environment", env.join(", "));
        }
    }
}

/// `http-get :8080/healthz delay=2s timeout=1s period=10s #success=1 #failure=3`, as kubectl.
fn probe_text(probe: &serde_json::Map<String, Value>) -> String {
    let action = if let Some(get) = probe.get("httpGet") {
        format!("http-get :{}{}", s(&get["port"]), s(&get["path"]))
    } else if let Some(tcp) = probe.get("tcpSocket") {
        format!("tcp-socket :{}", s(&tcp["port"]))
    } else if let Some(exec) = probe.get("exec") {
        let words: Vec<String> = exec["command"].as_array().into_iter().flatten().map(s).collect();
        format!("exec [{}]", words.join(" "))
    } else {
        "?".into()
    };
    let n = |k: &str| probe.get(k).and_then(Value::as_u64).unwrap_or(0);
    format!(
        "{action} delay={}s timeout={}s period={}s #success={} #failure={}",
        n("initialDelaySeconds"),
        n("timeoutSeconds"),
        n("periodSeconds"),
        n("successThreshold"),
        n("failureThreshold")
    )
}

fn pod(object: &Value) -> String {
    let mut out = String::new();
    header(&mut out, object);
    let (meta, spec, status) = (&object["metadata"], &object["spec"], &object["status"]);
    let node = spec["nodeName"].as_str().unwrap_or("<none>");
    line(&mut out, 0, "Node", node);
    line(&mut out, 0, "Age", age(meta["creationTimestamp"].as_u64().unwrap_or(0), unix_now()));
    line(&mut out, 0, "Status", s(&status["phase"]));
    if !status["reason"].is_null() {
        line(&mut out, 0, "Reason", s(&status["reason"]));
    }
    if !status["message"].is_null() {
        line(&mut out, 0, "Message", s(&status["message"]));
    }
    if let Some(owner) = meta["ownerReferences"].as_array().and_then(|o| o.first()) {
        line(&mut out, 0, "Controlled By", format!("{}/{}", s(&owner["kind"]), s(&owner["name"])));
    }
    line(&mut out, 0, "Restart Count", s(&status["restartCount"]));
    containers(&mut out, spec, 0);
    out.push_str("Conditions:\n  Type   Status\n");
    for condition in status["conditions"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "  {:<6} {}", s(&condition["type"]), s(&condition["status"]));
    }
    if let Some(selector) = spec["nodeSelector"].as_object().filter(|m| !m.is_empty()) {
        line(&mut out, 0, "Node-Selectors", pairs(&Value::Object(selector.clone())));
    }
    out
}

fn deployment(object: &Value, pods: &[Value]) -> String {
    let mut out = String::new();
    header(&mut out, object);
    let (spec, status, name) = (&object["spec"], &object["status"], &object["metadata"]["name"]);
    line(&mut out, 0, "Selector", pairs(&spec["selector"]["matchLabels"]));
    line(
        &mut out,
        0,
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            s(&spec["replicas"]),
            s(&status["updatedReplicas"]),
            s(&status["replicas"]),
            s(&status["availableReplicas"]),
            status["replicas"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(status["availableReplicas"].as_u64().unwrap_or(0)),
        ),
    );
    let strategy = &spec["strategy"];
    line(&mut out, 0, "StrategyType", s(&strategy["type"]));
    line(&mut out, 0, "MinReadySeconds", s(&spec["minReadySeconds"]));
    if let Some(rolling) = strategy["rollingUpdate"].as_object() {
        line(
            &mut out,
            0,
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                s(&rolling["maxUnavailable"]),
                s(&rolling["maxSurge"])
            ),
        );
    }
    out.push_str("Pod Template:\n");
    line(&mut out, 2, "Labels", pairs(&spec["template"]["metadata"]["labels"]));
    containers(&mut out, &spec["template"]["spec"], 2);
    let owned: Vec<&Value> = pods
        .iter()
        .filter(|p| {
            p["metadata"]["ownerReferences"].as_array().is_some_and(|o| o.iter().any(|o| &o["name"] == name))
        })
        .collect();
    pod_table(&mut out, &owned, false);
    out
}

/// The pods of an object as a small table (`Pods:` then NAME STATUS NODE, or with namespaces).
fn pod_table(out: &mut String, pods: &[&Value], with_namespace: bool) {
    if pods.is_empty() {
        out.push_str("Pods:           <none>\n");
        return;
    }
    let _ = writeln!(out, "Pods:           ({} in total)", pods.len());
    let rows: Vec<[String; 4]> = pods
        .iter()
        .map(|p| {
            [
                s(&p["metadata"]["namespace"]),
                s(&p["metadata"]["name"]),
                s(&p["status"]["phase"]),
                p["spec"]["nodeName"].as_str().unwrap_or("<none>").to_owned(),
            ]
        })
        .collect();
    let headers = ["NAMESPACE", "NAME", "STATUS", "NODE"];
    let columns: Vec<usize> = if with_namespace { vec![0, 1, 2, 3] } else { vec![1, 2, 3] };
    let widths: Vec<usize> = columns
        .iter()
        .map(|&c| rows.iter().map(|r| r[c].len()).chain([headers[c].len()]).max().unwrap_or(0))
        .collect();
    let mut print = |cells: Vec<&str>| {
        let text: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        let _ = writeln!(out, "  {}", text.join("   ").trim_end());
    };
    print(columns.iter().map(|&c| headers[c]).collect());
    for row in &rows {
        print(columns.iter().map(|&c| row[c].as_str()).collect());
    }
}

fn node(object: &Value, pods: &[Value]) -> String {
    let mut out = String::new();
    header(&mut out, object);
    let (spec, status, name) = (&object["spec"], &object["status"], &object["metadata"]["name"]);
    line(&mut out, 0, "Unschedulable", s(&spec["unschedulable"]));
    out.push_str("Conditions:\n  Type   Status  Reason  Message\n");
    for c in status["conditions"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<6} {:<7} {}  {}",
            s(&c["type"]),
            s(&c["status"]),
            s(&c["reason"]),
            s(&c["message"])
        );
    }
    out.push_str("Capacity:\n");
    let capacity = &status["capacity"];
    line(&mut out, 2, "cpu", s(&capacity["cpu"]));
    let memory: u64 = s(&capacity["memory"]).parse().unwrap_or(0);
    line(&mut out, 2, "memory", format!("{}Mi", memory / (1024 * 1024)));
    line(&mut out, 2, "pods", s(&capacity["pods"]));
    out.push_str("System Info:\n");
    line(&mut out, 2, "Architecture", s(&status["nodeInfo"]["architecture"]));
    line(&mut out, 2, "Agent Version", s(&status["nodeInfo"]["agentVersion"]));
    let health = &status["health"];
    if health.is_object() {
        out.push_str("Health:\n");
        let mib = |v: &Value| format!("{} MiB", v.as_u64().unwrap_or(0) / (1024 * 1024));
        line(
            &mut out,
            2,
            "CPU",
            format!("{:.0} % of {}", health["cpuPercent"].as_f64().unwrap_or(0.0), s(&health["cpus"])),
        );
        line(
            &mut out,
            2,
            "Memory",
            format!("{} free of {}", mib(&health["memoryAvailableBytes"]), mib(&health["memoryTotalBytes"])),
        );
        line(
            &mut out,
            2,
            "Disk",
            format!("{} free of {}", mib(&health["diskAvailableBytes"]), mib(&health["diskTotalBytes"])),
        );
        if let Some(t) = health["temperatureCelsius"].as_f64() {
            line(&mut out, 2, "Temperature", format!("{t:.1} °C"));
        }
        line(&mut out, 2, "Uptime", format!("{}s", s(&health["uptimeSeconds"])));
    }
    let on_node: Vec<&Value> = pods.iter().filter(|p| &p["spec"]["nodeName"] == name).collect();
    pod_table(&mut out, &on_node, true);
    out
}

/// Services, ConfigMaps, Namespaces: the header, then the rest of the object as YAML.
fn other(object: &Value) -> String {
    let mut out = String::new();
    header(&mut out, object);
    let mut rest = object.clone();
    if let Some(map) = rest.as_object_mut() {
        for key in ["apiVersion", "kind", "metadata"] {
            map.remove(key);
        }
    }
    if rest.as_object().is_some_and(|m| !m.is_empty()) {
        for text in to_yaml(&rest).lines() {
            let _ = writeln!(out, "{text}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pod_in_words() {
        let pod = json!({
            "metadata": {"name": "web-6f9c-xk2p", "namespace": "default", "labels": {"app": "web"},
                "ownerReferences": [{"kind": "Deployment", "name": "web"}], "creationTimestamp": 0},
            "spec": {"nodeName": "pi-1", "containers": [{"name": "c", "image": "busybox:latest",
                "command": ["sleep", "100"], "ports": [{"containerPort": 80, "hostPort": 8080, "protocol": "TCP"}],
                "resources": {"limits": {"memory": "16Mi"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 0,
                    "timeoutSeconds": 1, "periodSeconds": 2, "successThreshold": 1, "failureThreshold": 3}}]},
            "status": {"phase": "Running", "restartCount": 1, "conditions": [{"type": "Ready", "status": "True"}]},
        });
        let text = pod_text(&pod);
        for expected in [
            "Name:           web-6f9c-xk2p\n",
            "Node:           pi-1\n",
            "Controlled By:  Deployment/web\n",
            "    Ports:      80/TCP (host 8080)\n",
            "    Limits:     memory: 16Mi\n",
            "    Readiness:  http-get :80/ delay=0s timeout=1s period=2s #success=1 #failure=3\n",
            "  Ready  True\n",
        ] {
            assert!(text.contains(expected), "{expected:?} in:\n{text}");
        }
    }

    fn pod_text(value: &Value) -> String {
        pod(value)
    }

    #[test]
    fn a_deployment_lists_its_pods_only() {
        let deployment_value = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}, "minReadySeconds": 0,
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
            "status": {"replicas": 2, "updatedReplicas": 2, "availableReplicas": 1},
        });
        let owned = |name: &str, owner: &str| {
            json!({"metadata": {"name": name, "namespace": "default", "ownerReferences": [{"name": owner}]},
                "spec": {"nodeName": "pi-1"}, "status": {"phase": "Running"}})
        };
        let pods = [owned("web-a", "web"), owned("other-b", "other")];
        let text = deployment(&deployment_value, &pods);
        assert!(
            text.contains("Replicas:       2 desired | 2 updated | 2 total | 1 available | 1 unavailable\n"),
            "{text}"
        );
        assert!(text.contains("RollingUpdateStrategy: 25% max unavailable, 25% max surge\n"), "{text}");
        assert!(text.contains("  web-a   Running   pi-1\n"), "{text}");
        assert!(!text.contains("other-b"), "{text}");
    }
}
