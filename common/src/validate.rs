//! Rules a decoded object must keep, as Kubernetes checks them: names, selectors, ports,
//! probes, volumes and resources. Works on typed objects, so the coordinator can run the same
//! rules on objects that reach it as JSON.

use std::collections::{BTreeMap, BTreeSet};

use crate::decode::{Path, Problem, Problems};
use crate::objects::{
    ConfigMap, Container, Deployment, IntOrString, Object, ObjectMeta, PodSpec, ProbeAction, RestartPolicy,
    Service, ServiceType, VolumeSource,
};

/// Every rule `object` breaks, with the path of the field at fault.
pub fn validate(object: &Object) -> Vec<Problem> {
    let mut problems = Problems::default();
    let root = Path::root();
    let meta = object.metadata();
    let name_path = root.field("metadata").field("name");
    if object.kind().is_namespaced() && !matches!(object, Object::Service(_)) {
        check_dns_subdomain(&meta.name, &name_path, &mut problems);
    } else {
        check_dns_label(&meta.name, &name_path, &mut problems);
    }
    check_meta(meta, &root.field("metadata"), &mut problems);
    match object {
        Object::Deployment(d) => check_deployment(d, &mut problems),
        Object::Pod(p) => check_pod_spec(&p.spec, &root.field("spec"), &mut problems),
        Object::Service(s) => check_service(s, &mut problems),
        Object::ConfigMap(c) => check_config_map(c, &mut problems),
        Object::Namespace(_) => {}
    }
    problems.errors
}

fn check_meta(meta: &ObjectMeta, path: &Path, problems: &mut Problems) {
    if let Some(ns) = &meta.namespace {
        check_dns_label(ns, &path.field("namespace"), problems);
    }
    check_labels(&meta.labels, &path.field("labels"), problems);
    for key in meta.annotations.keys() {
        if let Err(why) = qualified_name(key) {
            problems.error(&path.field("annotations").field(key), format!("invalid key: {why}"));
        }
    }
}

fn check_labels(labels: &BTreeMap<String, String>, path: &Path, problems: &mut Problems) {
    for (key, value) in labels {
        if let Err(why) = qualified_name(key) {
            problems.error(&path.field(key), format!("invalid label key: {why}"));
        }
        if let Err(why) = label_value(value) {
            problems.error(&path.field(key), format!("invalid label value {value:?}: {why}"));
        }
    }
}

fn check_deployment(d: &Deployment, problems: &mut Problems) {
    let spec = root_spec();
    let selector = &d.spec.selector.match_labels;
    let template_labels = &d.spec.template.metadata.labels;
    if selector.is_empty() {
        problems.error(&spec.field("selector"), "must select at least one label (matchLabels)");
    } else if !d.spec.selector.matches(template_labels) {
        let wanted: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        problems.error(
            &spec.field("selector"),
            format!("does not match the template's labels (wants {})", wanted.join(",")),
        );
    }
    check_labels(selector, &spec.field("selector").field("matchLabels"), problems);
    let template = spec.field("template");
    check_labels(template_labels, &template.field("metadata").field("labels"), problems);
    let pod = template.field("spec");
    if d.spec.template.spec.restart_policy != RestartPolicy::Always {
        problems.error(&pod.field("restartPolicy"), "must be Always in a Deployment's template");
    }
    check_pod_spec(&d.spec.template.spec, &pod, problems);
    if let Some(rolling) = &d.spec.strategy.rolling_update {
        let path = spec.field("strategy").field("rollingUpdate");
        let surge = check_int_or_percent(&rolling.max_surge, &path.field("maxSurge"), false, problems);
        let unavailable =
            check_int_or_percent(&rolling.max_unavailable, &path.field("maxUnavailable"), true, problems);
        if surge == Some(0) && unavailable == Some(0) {
            problems.error(&path.field("maxUnavailable"), "may not be 0 when maxSurge is 0");
        }
    }
}

fn root_spec() -> Path {
    Path::root().field("spec")
}

/// Checks `3` or `25%`; gives the number either way, for the both-zero rule.
fn check_int_or_percent(
    value: &IntOrString,
    path: &Path,
    at_most_all: bool,
    problems: &mut Problems,
) -> Option<i64> {
    let (n, percent) = match value {
        IntOrString::Int(n) => (*n, false),
        IntOrString::String(s) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) => (n, true),
            None => {
                problems
                    .error(path, format!("expected a number or a percentage such as \"25%\", found {s:?}"));
                return None;
            }
        },
    };
    if n < 0 {
        problems.error(path, "must not be negative");
        return None;
    }
    if at_most_all && percent && n > 100 {
        problems.error(path, "must not be more than 100%");
    }
    Some(n)
}

fn check_pod_spec(spec: &PodSpec, path: &Path, problems: &mut Problems) {
    if spec.containers.is_empty() {
        problems.error(&path.field("containers"), "must have at least one container");
    }
    let mut volume_names = BTreeSet::new();
    for (i, volume) in spec.volumes.iter().enumerate() {
        let vpath = path.field("volumes").index(i);
        check_dns_label(&volume.name, &vpath.field("name"), problems);
        if !volume_names.insert(volume.name.as_str()) {
            problems.error(&vpath.field("name"), format!("duplicate volume name {:?}", volume.name));
        }
        if let VolumeSource::HostPath { path: host, .. } = &volume.source
            && !host.starts_with('/')
        {
            problems.error(
                &vpath.field("hostPath").field("path"),
                format!("must be an absolute path, found {host:?}"),
            );
        }
    }
    let mut container_names = BTreeSet::new();
    let mut container_ports = BTreeMap::new();
    let mut host_ports = BTreeMap::new();
    let mut port_names = BTreeSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let cpath = path.field("containers").index(i);
        check_dns_label(&container.name, &cpath.field("name"), problems);
        if !container_names.insert(container.name.as_str()) {
            problems.error(&cpath.field("name"), format!("duplicate container name {:?}", container.name));
        }
        if container.image.chars().any(char::is_whitespace) {
            problems.error(
                &cpath.field("image"),
                format!("must not contain spaces, found {:?}", container.image),
            );
        }
        for (j, port) in container.ports.iter().enumerate() {
            let ppath = cpath.field("ports").index(j);
            if port.container_port == 0 {
                problems.error(&ppath.field("containerPort"), "must be between 1 and 65535");
            }
            if let Some(name) = &port.name {
                if let Err(why) = port_name(name) {
                    problems.error(&ppath.field("name"), format!("invalid port name {name:?}: {why}"));
                } else if !port_names.insert(name.as_str()) {
                    problems.error(&ppath.field("name"), format!("duplicate port name {name:?}"));
                }
            }
            let key = (port.container_port, port.protocol);
            if let Some(first) = container_ports.insert(key, ppath.clone()) {
                problems.error(
                    &ppath.field("containerPort"),
                    format!(
                        "duplicate port {}/{} (also at {first})",
                        port.container_port,
                        port.protocol.name()
                    ),
                );
            }
            if let Some(host_port) = port.host_port {
                if host_port == 0 {
                    problems.error(&ppath.field("hostPort"), "must be between 1 and 65535");
                } else if spec.host_network && host_port != port.container_port {
                    problems
                        .error(&ppath.field("hostPort"), "must equal containerPort when hostNetwork is true");
                }
                if let Some(first) = host_ports.insert((host_port, port.protocol), ppath.clone()) {
                    problems.error(
                        &ppath.field("hostPort"),
                        format!("duplicate host port {host_port}/{} (also at {first})", port.protocol.name()),
                    );
                }
            }
        }
        for (j, env) in container.env.iter().enumerate() {
            if env.name.is_empty() || env.name.contains('=') || env.name.contains('\0') {
                problems.error(
                    &cpath.field("env").index(j).field("name"),
                    format!("invalid variable name {:?}", env.name),
                );
            }
        }
        check_resources(container, &cpath.field("resources"), problems);
        check_probes(container, &cpath, problems);
        let mut mount_paths = BTreeSet::new();
        for (j, mount) in container.volume_mounts.iter().enumerate() {
            let mpath = cpath.field("volumeMounts").index(j);
            if !volume_names.contains(mount.name.as_str()) {
                problems.error(&mpath.field("name"), format!("no volume named {:?} in the pod", mount.name));
            }
            if !mount.mount_path.starts_with('/') {
                problems.error(
                    &mpath.field("mountPath"),
                    format!("must be an absolute path, found {:?}", mount.mount_path),
                );
            } else if !mount_paths.insert(mount.mount_path.as_str()) {
                problems.error(&mpath.field("mountPath"), format!("{:?} is mounted twice", mount.mount_path));
            }
        }
    }
    check_labels(&spec.node_selector, &path.field("nodeSelector"), problems);
}

fn check_resources(container: &Container, path: &Path, problems: &mut Problems) {
    let r = &container.resources;
    let pairs = [("cpu", &r.requests.cpu, &r.limits.cpu), ("memory", &r.requests.memory, &r.limits.memory)];
    for (resource, request, limit) in pairs {
        if let (Some(request), Some(limit)) = (request, limit)
            && request > limit
        {
            problems.error(
                &path.field("requests").field(resource),
                format!("request {request} is more than the limit {limit}"),
            );
        }
    }
}

fn check_probes(container: &Container, path: &Path, problems: &mut Problems) {
    for (field, probe) in container.probes() {
        let ppath = path.field(field);
        let counts = [
            ("periodSeconds", probe.period_seconds),
            ("timeoutSeconds", probe.timeout_seconds),
            ("failureThreshold", probe.failure_threshold),
            ("successThreshold", probe.success_threshold),
        ];
        for (name, value) in counts {
            if value == 0 {
                problems.error(&ppath.field(name), "must be at least 1");
            }
        }
        if field != "readinessProbe" && probe.success_threshold > 1 {
            problems.error(&ppath.field("successThreshold"), "must be 1 for liveness and startup probes");
        }
        let port = match &probe.action {
            ProbeAction::HttpGet(get) => Some((ppath.field("httpGet").field("port"), &get.port)),
            ProbeAction::TcpSocket { port } => Some((ppath.field("tcpSocket").field("port"), port)),
            ProbeAction::Exec { .. } => None,
        };
        match port {
            Some((path, IntOrString::Int(n))) if !(1..=65535).contains(n) => {
                problems.error(&path, format!("must be between 1 and 65535, found {n}"));
            }
            Some((path, IntOrString::String(name)))
                if !container.ports.iter().any(|p| p.name.as_deref() == Some(name)) =>
            {
                problems.error(&path, format!("no port named {name:?} in container {:?}", container.name));
            }
            _ => {}
        }
    }
}

fn check_service(s: &Service, problems: &mut Problems) {
    let spec = root_spec();
    check_labels(&s.spec.selector, &spec.field("selector"), problems);
    if s.spec.ports.is_empty() {
        problems.error(&spec.field("ports"), "must have at least one port");
    }
    let mut names = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for (i, port) in s.spec.ports.iter().enumerate() {
        let ppath = spec.field("ports").index(i);
        match &port.name {
            None if s.spec.ports.len() > 1 => {
                problems.error(&ppath.field("name"), "required when a service has more than one port")
            }
            Some(name) if !names.insert(name.as_str()) => {
                problems.error(&ppath.field("name"), format!("duplicate port name {name:?}"))
            }
            Some(name) => {
                if let Err(why) = dns_label(name) {
                    problems.error(&ppath.field("name"), format!("invalid port name {name:?}: {why}"));
                }
            }
            None => {}
        }
        if port.port == 0 {
            problems.error(&ppath.field("port"), "must be between 1 and 65535");
        }
        if !ports.insert((port.port, port.protocol)) {
            problems.error(
                &ppath.field("port"),
                format!("duplicate port {}/{}", port.port, port.protocol.name()),
            );
        }
        match &port.target_port {
            IntOrString::Int(n) if !(1..=65535).contains(n) => {
                problems.error(&ppath.field("targetPort"), format!("must be between 1 and 65535, found {n}"));
            }
            IntOrString::String(name) => {
                if let Err(why) = port_name(name) {
                    problems.error(&ppath.field("targetPort"), format!("invalid port name {name:?}: {why}"));
                }
            }
            IntOrString::Int(_) => {}
        }
        if port.node_port.is_some() && s.spec.type_ == ServiceType::ClusterIP {
            problems.error(&ppath.field("nodePort"), "may only be set when type is NodePort or LoadBalancer");
        }
    }
}

fn check_config_map(c: &ConfigMap, problems: &mut Problems) {
    for (field, map) in [("data", &c.data), ("binaryData", &c.binary_data)] {
        for key in map.keys() {
            let valid = !key.is_empty()
                && key.len() <= 253
                && key != "."
                && key != ".."
                && key.chars().all(|ch| ch.is_ascii_alphanumeric() || "-._".contains(ch));
            if !valid {
                problems.error(
                    &Path::root().field(field).field(key),
                    "invalid key: use letters, digits, '-', '_' or '.' (at most 253)",
                );
            }
        }
    }
    for key in c.data.keys().filter(|k| c.binary_data.contains_key(*k)) {
        problems.error(&Path::root().field("binaryData").field(key), "the key is in data too");
    }
}

fn check_dns_label(name: &str, path: &Path, problems: &mut Problems) {
    if let Err(why) = dns_label(name) {
        problems.error(path, format!("invalid name {name:?}: {why}"));
    }
}

fn check_dns_subdomain(name: &str, path: &Path, problems: &mut Problems) {
    if let Err(why) = dns_subdomain(name) {
        problems.error(path, format!("invalid name {name:?}: {why}"));
    }
}

/// A DNS-1123 label: at most 63 lowercase letters, digits and '-', starting and ending with a
/// letter or digit (namespaces, services, containers, volumes).
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 63 {
        return Err("must be 1 to 63 characters".to_owned());
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("must consist of lowercase letters, digits and '-'".to_owned());
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters (deployments, pods,
/// config maps, node names).
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters".to_owned());
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.') {
        return Err("must consist of lowercase letters, digits, '-' and '.'".to_owned());
    }
    if name.split('.').any(|part| part.is_empty() || part.starts_with('-') || part.ends_with('-')) {
        return Err("each dot-separated part must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A label or annotation key: an optional DNS subdomain prefix and '/', then a name of at most
/// 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns_subdomain(prefix).map_err(|why| format!("prefix {prefix:?} {why}"))?;
    }
    if name.is_empty() || name.len() > 63 {
        return Err("the name part must be 1 to 63 characters".to_owned());
    }
    label_value(name)
}

/// A label value: empty, or at most 63 letters, digits, '-', '_' and '.', starting and ending
/// with a letter or digit.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > 63 {
        return Err("must be at most 63 characters".to_owned());
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
        return Err("must consist of letters, digits, '-', '_' and '.'".to_owned());
    }
    let first_last = [value.as_bytes()[0], value.as_bytes()[value.len() - 1]];
    if !first_last.iter().all(u8::is_ascii_alphanumeric) {
        return Err("must start and end with a letter or digit".to_owned());
    }
    Ok(())
}

/// A port name (IANA service name): at most 15 lowercase letters, digits and '-', with a
/// letter, not starting or ending with '-', no "--".
pub fn port_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 15 {
        return Err("must be 1 to 15 characters".to_owned());
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err("must consist of lowercase letters, digits and '-'".to_owned());
    }
    if !name.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("must contain a letter".to_owned());
    }
    if name.starts_with('-') || name.ends_with('-') || name.contains("--") {
        return Err("must not start or end with '-' or contain \"--\"".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns_label("web-1").is_ok());
        for bad in ["", "Web", "-web", "web-", "web.app", &"a".repeat(64)] {
            assert!(dns_label(bad).is_err(), "{bad}");
        }
        assert!(dns_subdomain("web.example-1.io").is_ok());
        assert!(dns_subdomain("web..io").is_err());
        assert!(qualified_name("app.kubernetes.io/name").is_ok());
        assert!(qualified_name("app").is_ok());
        assert!(qualified_name("Bad_Prefix/x").is_err());
        assert!(qualified_name("x/").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_3-rc").is_ok());
        assert!(label_value("-x").is_err());
        assert!(port_name("http").is_ok());
        assert!(port_name("8080").is_err());
        assert!(port_name("a--b").is_err());
        assert!(port_name("very-long-port-name").is_err());
    }
}
