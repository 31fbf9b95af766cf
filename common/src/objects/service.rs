//! `v1 Service`: a stable name and port in front of the pods its selector picks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::meta::{IntOrString, ObjectMeta};
use super::pod::{Protocol, required_spec};
use crate::decode::{Fields, Problems};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub metadata: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    #[serde(rename = "type")]
    pub type_: ServiceType,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: u16,
    pub target_port: IntOrString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_port: Option<u16>,
}

const SERVICE_SPEC_IGNORED: &[&str] = &[
    "clusterIP",
    "clusterIPs",
    "sessionAffinity",
    "sessionAffinityConfig",
    "externalTrafficPolicy",
    "internalTrafficPolicy",
    "externalIPs",
    "loadBalancerIP",
    "loadBalancerSourceRanges",
    "loadBalancerClass",
    "ipFamilies",
    "ipFamilyPolicy",
    "publishNotReadyAddresses",
    "healthCheckNodePort",
    "allocateLoadBalancerNodePorts",
    "trafficDistribution",
];

impl Service {
    pub(crate) fn decode(
        f: &mut Fields<'_>,
        metadata: Option<ObjectMeta>,
        problems: &mut Problems,
    ) -> Option<Service> {
        let spec = required_spec(f, problems, ServiceSpec::decode);
        Some(Service { metadata: metadata?, spec: spec? })
    }
}

impl ServiceSpec {
    fn decode(mut f: Fields<'_>, problems: &mut Problems) -> Option<ServiceSpec> {
        let type_ = match f.string("type", problems).as_deref() {
            None | Some("ClusterIP") => ServiceType::ClusterIP,
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some(other) => {
                problems.error(
                    &f.path("type"),
                    format!("expected ClusterIP, NodePort or LoadBalancer, found {other:?}"),
                );
                ServiceType::ClusterIP
            }
        };
        let selector = f.string_map("selector", problems);
        let ports = f.list_of("ports", problems, |mut p, problems| {
            let name = p.string("name", problems);
            let protocol = Protocol::decode(&mut p, problems);
            let port = p.require_int::<u16>("port", problems);
            let target_path = p.path("targetPort");
            let target_port =
                p.take("targetPort").and_then(|n| IntOrString::decode(n, &target_path, problems));
            let node_port = p.int::<u16>("nodePort", problems);
            p.ignore(&["appProtocol"], problems);
            p.finish(problems);
            let port = port?;
            Some(ServicePort {
                name,
                protocol,
                port,
                target_port: target_port.unwrap_or(IntOrString::Int(i64::from(port))),
                node_port,
            })
        });
        f.ignore(SERVICE_SPEC_IGNORED, problems);
        f.ignore(&["externalName"], problems);
        f.finish(problems);
        Some(ServiceSpec { type_, selector, ports })
    }
}
