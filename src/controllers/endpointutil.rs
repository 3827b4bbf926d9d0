//! What the EndpointSlice and Endpoints controllers share, as upstream's endpoint utilities
//! define it: which pods a Service selects, which of them belong in its endpoints, their
//! readiness, the hostname rule for StatefulSet pods and the resolution of a Service port's
//! targetPort in a pod. Pure functions over cached objects; nothing here writes.

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The annotation both controllers stamp with the time of the change they publish.
pub const TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// The Service's selector, if it has a non-empty one (empty means "not managed here").
pub fn selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    svc.spec
        .as_ref()?
        .selector
        .as_ref()
        .filter(|s| !s.is_empty())
}

/// Whether the controllers publish endpoints for this Service at all.
pub fn managed(svc: &Service) -> bool {
    let external_name = svc
        .spec
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        .is_some_and(|t| t == "ExternalName");
    !external_name && selector(svc).is_some()
}

pub fn selects(sel: &BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.labels();
    sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pods of the Service's namespace its selector matches, sorted by name.
pub fn selected_pods(svc: &Service, pods: &[Arc<Pod>]) -> Vec<Arc<Pod>> {
    let Some(sel) = selector(svc) else {
        return vec![];
    };
    let ns = svc.namespace();
    let mut out: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| p.namespace() == ns && selects(sel, p))
        .cloned()
        .collect();
    out.sort_by_key(|p| p.name_any());
    out
}

pub fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// Upstream's `ShouldPodBeInEndpoints`: not finished, has an IP, and (unless
/// `include_terminating`) not being deleted.
pub fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or_default();
    if phase == "Succeeded" || phase == "Failed" {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// The pod's IPs, primary first.
pub fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(st) = pod.status.as_ref() else {
        return vec![];
    };
    let mut ips: Vec<String> = st
        .pod_ips
        .iter()
        .flatten()
        .map(|i| i.ip.clone())
        .filter(|i| !i.is_empty())
        .collect();
    if ips.is_empty() {
        if let Some(ip) = st.pod_ip.as_ref().filter(|i| !i.is_empty()) {
            ips.push(ip.clone());
        }
    }
    ips
}

/// The pod's IPv4 (or IPv6) address, if it has one.
pub fn pod_ip_of_family(pod: &Pod, v6: bool) -> Option<String> {
    pod_ips(pod).into_iter().find(|ip| {
        ip.parse::<std::net::IpAddr>()
            .is_ok_and(|a| a.is_ipv6() == v6)
    })
}

/// Upstream's `ShouldSetHostname`: StatefulSet-style pods whose subdomain is the Service.
pub fn hostname(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let h = spec.hostname.as_ref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == Some(svc.name_any().as_str())
        && pod.namespace() == svc.namespace())
    .then(|| h.clone())
}

/// The container port a Service port reaches in this pod: a number as is, a name looked up
/// in the pod's container ports with the same protocol. None if the name is not there.
pub fn target_port(pod: &Pod, sp: &ServicePort) -> Option<i32> {
    let proto = sp.protocol.as_deref().unwrap_or("TCP");
    match &sp.target_port {
        None => Some(sp.port),
        Some(IntOrString::Int(0)) => Some(sp.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            pod.spec
                .as_ref()?
                .containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == proto
                })
                .map(|p| p.container_port)
        }
    }
}

/// The Service's ports.
pub fn service_ports(svc: &Service) -> Vec<ServicePort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
}

pub fn is_headless(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

/// The Service's labels with the headless marker, as both controllers copy them.
pub fn copied_labels(svc: &Service) -> BTreeMap<String, String> {
    let mut labels = svc.labels().clone();
    labels.remove("service.kubernetes.io/headless");
    if is_headless(svc) {
        labels.insert("service.kubernetes.io/headless".into(), String::new());
    }
    labels
}

/// The newest time a selected pod changed readiness or was created, as upstream's trigger
/// time tracker approximates the last change: the latest Ready transition, creation or
/// deletion mark among the pods.
pub fn last_change(svc: &Service, pods: &[Arc<Pod>]) -> Option<String> {
    let mut latest = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
    for p in pods {
        let ready_t = p
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_transition_time.as_ref())
            .map(|t| t.0);
        let times = [
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.metadata.deletion_timestamp.as_ref().map(|t| t.0),
            ready_t,
        ];
        for t in times.into_iter().flatten() {
            if latest.is_none_or(|l| t > l) {
                latest = Some(t);
            }
        }
    }
    latest.map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn named_target_ports_resolve_per_pod_and_protocol() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"}
            ]}]}
        }))
        .unwrap();
        let sp = |tp: serde_json::Value, proto: &str| -> ServicePort {
            serde_json::from_value(json!({"port": 80, "targetPort": tp, "protocol": proto}))
                .unwrap()
        };
        assert_eq!(target_port(&pod, &sp(json!("http"), "TCP")), Some(8080));
        assert_eq!(target_port(&pod, &sp(json!("http"), "UDP")), None);
        assert_eq!(target_port(&pod, &sp(json!("dns"), "UDP")), Some(5353));
        assert_eq!(target_port(&pod, &sp(json!(9000), "TCP")), Some(9000));
        assert_eq!(target_port(&pod, &sp(json!("nope"), "TCP")), None);
    }
}
