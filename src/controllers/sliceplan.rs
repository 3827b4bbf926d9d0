//! The EndpointSlice controller's plan for one Service: from its selected pods and its
//! current slices, which slices to create, update and delete. Endpoints are grouped by
//! their resolved port set (a named targetPort may differ per pod), at most 100 per slice;
//! an endpoint stays in the slice it is in, new ones fill slices with room before new
//! slices are made, and a Service without endpoints keeps one empty placeholder slice, as
//! upstream's reconciler does. Pure: no I/O; the controller carries the plan out.

use super::endpointutil as eu;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use std::collections::BTreeMap;
use std::sync::Arc;

pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
pub const MAX_ENDPOINTS: usize = 100;
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

#[derive(Debug, Default)]
pub struct Plan {
    pub create: Vec<EndpointSlice>,
    pub update: Vec<EndpointSlice>,
    pub delete: Vec<EndpointSlice>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

/// The address type of the Service's primary family.
pub fn address_type(svc: &Service) -> &'static str {
    let fam = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first().cloned());
    if fam.as_deref() == Some("IPv6") {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn endpoint(pod: &Pod, svc: &Service, ip: String, nodes: &BTreeMap<String, Arc<Node>>) -> Endpoint {
    let serving = crate::controllers::podutil::is_ready(pod);
    let terminating = pod.metadata.deletion_timestamp.is_some();
    let publish = eu::publish_not_ready(svc);
    let ready = publish || (serving && !terminating);
    let node_name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .filter(|n| !n.is_empty());
    let zone = node_name
        .as_ref()
        .and_then(|n| nodes.get(n))
        .and_then(|n| n.labels().get(ZONE_LABEL).cloned())
        .filter(|z| !z.is_empty());
    Endpoint {
        addresses: vec![ip],
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(serving),
            terminating: Some(terminating),
        }),
        hostname: eu::hostname(pod, svc),
        node_name,
        target_ref: Some(ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.namespace(),
            name: Some(pod.name_any()),
            uid: pod.uid(),
            ..Default::default()
        }),
        zone,
        ..Default::default()
    }
}

fn ports_key(ports: &[EndpointPort]) -> String {
    serde_json::to_string(ports).unwrap_or_default()
}

/// Desired endpoints by port set: key -> (ports, endpoints by address).
type Groups = BTreeMap<String, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)>;

fn desired(svc: &Service, pods: &[Arc<Pod>], nodes: &BTreeMap<String, Arc<Node>>) -> Groups {
    let v6 = address_type(svc) == "IPv6";
    let sports = eu::service_ports(svc);
    let mut groups: Groups = BTreeMap::new();
    for pod in eu::selected_pods(svc, pods) {
        if !eu::should_be_in_endpoints(&pod, true) {
            continue;
        }
        let Some(ip) = eu::pod_ip_of_family(&pod, v6) else {
            continue;
        };
        let ports: Vec<EndpointPort> = sports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: Some(sp.name.clone().unwrap_or_default()),
                    port: Some(eu::target_port(&pod, sp)?),
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        let ep = endpoint(&pod, svc, ip.clone(), nodes);
        groups
            .entry(ports_key(&ports))
            .or_insert_with(|| (ports, BTreeMap::new()))
            .1
            .insert(ip, ep);
    }
    groups
}

fn sorted(mut eps: Vec<Endpoint>) -> Vec<Endpoint> {
    eps.sort_by(|a, b| a.addresses.cmp(&b.addresses));
    eps
}

/// The labels, owner and ports every slice of the Service carries.
fn base_slice(
    svc: &Service,
    ports: Option<Vec<EndpointPort>>,
    trigger: &Option<String>,
) -> EndpointSlice {
    let mut labels = eu::copied_labels(svc);
    labels.insert(LABEL_SERVICE_NAME.into(), svc.name_any());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let annotations = trigger
        .as_ref()
        .map(|t| BTreeMap::from([(eu::TRIGGER_TIME.to_string(), t.clone())]));
    EndpointSlice {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", svc.name_any())),
            namespace: svc.namespace(),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![super::common::owner_ref(svc)]),
            ..Default::default()
        },
        address_type: address_type(svc).into(),
        endpoints: vec![],
        ports,
    }
}

/// `existing` with `base`'s labels, owner and ports and these endpoints; None if nothing
/// would change.
fn refreshed(
    existing: &EndpointSlice,
    base: &EndpointSlice,
    eps: Vec<Endpoint>,
) -> Option<EndpointSlice> {
    let eps = sorted(eps);
    let same = existing.endpoints == eps
        && existing.ports == base.ports
        && existing.metadata.labels == base.metadata.labels
        && existing.metadata.owner_references == base.metadata.owner_references;
    if same {
        return None;
    }
    let mut s = existing.clone();
    s.metadata.labels = base.metadata.labels.clone();
    s.metadata.owner_references = base.metadata.owner_references.clone();
    let mut ann = s.metadata.annotations.clone().unwrap_or_default();
    ann.extend(base.metadata.annotations.clone().unwrap_or_default());
    s.metadata.annotations = Some(ann);
    s.ports = base.ports.clone();
    s.endpoints = eps;
    Some(s)
}

/// Plan the slices of `svc`. `existing` are the slices this controller manages for it.
pub fn plan(
    svc: &Service,
    pods: &[Arc<Pod>],
    nodes: &BTreeMap<String, Arc<Node>>,
    existing: &[Arc<EndpointSlice>],
) -> Plan {
    let mut out = Plan::default();
    let trigger = eu::last_change(svc, &eu::selected_pods(svc, pods));
    let mut groups = desired(svc, pods, nodes);
    let total: usize = groups.values().map(|(_, e)| e.len()).sum();
    let uid = svc.uid();
    let mut existing: Vec<&Arc<EndpointSlice>> = existing.iter().collect();
    existing.sort_by_key(|s| s.name_any());
    // Slices kept, by port key: (slice as it will be, endpoints count, changed).
    let mut kept: BTreeMap<String, Vec<(EndpointSlice, bool)>> = BTreeMap::new();
    let mut unused: Vec<EndpointSlice> = vec![];
    for s in existing {
        let ours = s
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| Some(&r.uid) == uid.as_ref());
        let key = ports_key(s.ports.as_deref().unwrap_or_default());
        let group = groups.get_mut(&key);
        match group {
            Some((ports, want)) if ours && s.address_type == address_type(svc) => {
                let eps: Vec<Endpoint> = s
                    .endpoints
                    .iter()
                    .filter_map(|e| want.remove(e.addresses.first()?))
                    .collect();
                if eps.is_empty() {
                    unused.push(s.as_ref().clone());
                    continue;
                }
                let base = base_slice(svc, Some(ports.clone()), &trigger);
                let (slice, changed) = match refreshed(s, &base, eps.clone()) {
                    Some(n) => (n, true),
                    None => (s.as_ref().clone(), false),
                };
                kept.entry(key).or_default().push((slice, changed));
            }
            _ => unused.push(s.as_ref().clone()),
        }
    }
    // New endpoints: into kept slices with room, then new slices.
    for (key, (ports, want)) in groups {
        let mut rest: Vec<Endpoint> = want.into_values().collect();
        let slices = kept.entry(key).or_default();
        for (slice, changed) in slices.iter_mut() {
            let room = MAX_ENDPOINTS.saturating_sub(slice.endpoints.len());
            if room == 0 || rest.is_empty() {
                continue;
            }
            let take: Vec<Endpoint> = rest.drain(..room.min(rest.len())).collect();
            let mut eps = slice.endpoints.clone();
            eps.extend(take);
            let base = base_slice(svc, Some(ports.clone()), &trigger);
            if let Some(n) = refreshed(slice, &base, eps) {
                *slice = n;
                *changed = true;
            }
        }
        for chunk in rest.chunks(MAX_ENDPOINTS) {
            let mut s = base_slice(svc, Some(ports.clone()), &trigger);
            s.endpoints = sorted(chunk.to_vec());
            out.create.push(s);
        }
    }
    // Slices that would go are reused for new ones (the placeholder first), as upstream
    // does, so scaling up from zero rewrites a slice rather than replacing it.
    unused.sort_by_key(|s| !s.endpoints.is_empty());
    let creates = std::mem::take(&mut out.create);
    for want in creates {
        let reusable = unused
            .iter()
            .position(|s| s.address_type == want.address_type);
        match reusable.map(|i| unused.remove(i)) {
            Some(old) => {
                let mut n = refreshed(&old, &want, want.endpoints.clone()).unwrap_or(old);
                n.ports = want.ports.clone();
                out.update.push(n);
            }
            None => out.create.push(want),
        }
    }
    for (slice, changed) in kept.into_values().flatten() {
        if changed {
            out.update.push(slice);
        }
    }
    if total == 0 {
        // One empty placeholder, reusing a slice we had if there is one.
        let base = base_slice(svc, None, &trigger);
        match unused
            .iter()
            .position(|s| s.address_type == address_type(svc))
        {
            Some(i) => {
                let s = unused.remove(i);
                let placeholder =
                    s.ports.as_ref().is_none_or(Vec::is_empty) && s.endpoints.is_empty();
                let owner_ok = s.metadata.owner_references == base.metadata.owner_references;
                let labels_ok = s.metadata.labels == base.metadata.labels;
                if !(placeholder && owner_ok && labels_ok) {
                    let mut n = refreshed(&s, &base, vec![]).unwrap_or(s);
                    n.ports = None;
                    out.update.push(n);
                }
            }
            None => out.create.push(base),
        }
    }
    out.delete = unused;
    out
}
