//! Resource names as kubectl takes them (`pods`, `po`, `deployment/web`) and their API paths.

use anyhow::bail;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Node,
    Pod,
    Deployment,
    Service,
    ConfigMap,
    Namespace,
}

impl Resource {
    pub fn parse(name: &str) -> anyhow::Result<Resource> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "nodes" | "node" | "no" => Resource::Node,
            "pods" | "pod" | "po" => Resource::Pod,
            "deployments" | "deployment" | "deploy" | "deployment.apps" | "deployments.apps" => {
                Resource::Deployment
            }
            "services" | "service" | "svc" => Resource::Service,
            "configmaps" | "configmap" | "cm" => Resource::ConfigMap,
            "namespaces" | "namespace" | "ns" => Resource::Namespace,
            other => bail!(
                "the server doesn't have a resource type {other:?} (bramble knows nodes, pods, deployments, services, configmaps, namespaces)"
            ),
        })
    }

    /// `deployment/web` → (Deployment, "web").
    pub fn parse_pair(text: &str) -> anyhow::Result<(Resource, String)> {
        match text.split_once('/') {
            Some((kind, name)) if !name.is_empty() => Ok((Resource::parse(kind)?, name.to_owned())),
            _ => bail!("{text:?}: expected TYPE/NAME, e.g. deployment/web"),
        }
    }

    fn namespaced(self) -> bool {
        !matches!(self, Resource::Node | Resource::Namespace)
    }

    fn plural(self) -> &'static str {
        match self {
            Resource::Node => "nodes",
            Resource::Pod => "pods",
            Resource::Deployment => "deployments",
            Resource::Service => "services",
            Resource::ConfigMap => "configmaps",
            Resource::Namespace => "namespaces",
        }
    }

    /// How kubectl names one object of this kind in messages (`deployment.apps/web`).
    pub fn singular(self) -> &'static str {
        match self {
            Resource::Node => "node",
            Resource::Pod => "pod",
            Resource::Deployment => "deployment.apps",
            Resource::Service => "service",
            Resource::ConfigMap => "configmap",
            Resource::Namespace => "namespace",
        }
    }

    fn prefix(self) -> &'static str {
        if self == Resource::Deployment { "/apis/apps/v1" } else { "/api/v1" }
    }

    /// The collection's path; `None` namespace means every namespace.
    pub fn collection(self, namespace: Option<&str>) -> String {
        match namespace {
            Some(ns) if self.namespaced() => format!("{}/namespaces/{ns}/{}", self.prefix(), self.plural()),
            _ => format!("{}/{}", self.prefix(), self.plural()),
        }
    }

    pub fn object(self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection(Some(namespace)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(Resource::parse("po").expect("known"), Resource::Pod);
        assert!(Resource::parse("widgets").is_err());
        let (kind, name) = Resource::parse_pair("deploy/web").expect("pair");
        assert_eq!(kind.object("lab", &name), "/apis/apps/v1/namespaces/lab/deployments/web");
        assert_eq!(Resource::Pod.collection(None), "/api/v1/pods");
        assert_eq!(Resource::Node.collection(Some("default")), "/api/v1/nodes");
        assert_eq!(Resource::Node.object("default", "pi-1"), "/api/v1/nodes/pi-1");
        assert!(Resource::parse_pair("web").is_err());
    }
}
