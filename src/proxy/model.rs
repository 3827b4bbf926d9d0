//! The proxy's view of one Service: its ports (ClusterIP, NodePort, externalIPs, load-balancer
//! ingress IPs, traffic policies, session affinity) and, per port, the endpoints its
//! EndpointSlices list, reduced to what the rules need. Also the endpoint categorisation
//! upstream kube-proxy applies (ready endpoints, terminating-but-serving ones as fallback,
//! this node's endpoints for the `Local` policies). Pure: no I/O, no API calls; it never
//! decides how rules are written.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Upstream's default ClientIP affinity timeout (3 hours).
const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

/// A Service by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        ServiceKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub fn parse(s: Option<&str>) -> Option<Protocol> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The name nftables and conntrack use.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// One endpoint of one service port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    /// On this node (for the `Local` traffic policies).
    pub local: bool,
}

/// One port of a Service, with its endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// The port's name ("" when the Service has a single unnamed port).
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    pub cluster_ip: Ipv4Addr,
    pub node_port: Option<u16>,
    pub external_ips: Vec<Ipv4Addr>,
    pub lb_ips: Vec<Ipv4Addr>,
    /// ClientIP session affinity timeout in seconds.
    pub affinity: Option<u32>,
    pub external_local: bool,
    pub internal_local: bool,
    /// Sorted by address, without duplicates.
    pub endpoints: Vec<Endpoint>,
}

/// Everything the proxy programs for one Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceInput {
    pub key: ServiceKey,
    pub ports: Vec<ServicePort>,
}

fn ipv4(s: &str) -> Option<Ipv4Addr> {
    s.parse().ok()
}

/// The proxy's view of `svc` and its slices, or None when nothing is proxied for it
/// (ExternalName and headless Services, Services without an IPv4 ClusterIP yet).
pub fn service_input(
    svc: &Service,
    slices: &[&EndpointSlice],
    node_name: &str,
) -> Option<ServiceInput> {
    let key = ServiceKey::new(
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
    );
    let spec = svc.spec.as_ref()?;
    let ty = spec.type_.as_deref().unwrap_or("ClusterIP");
    if ty == "ExternalName" {
        return None;
    }
    let cluster_ip = ipv4(spec.cluster_ip.as_deref()?)?;
    let with_node_ports = ty == "NodePort" || ty == "LoadBalancer";
    let external_ips: Vec<Ipv4Addr> = spec
        .external_ips
        .iter()
        .flatten()
        .filter_map(|s| ipv4(s))
        .collect();
    let lb_ips: Vec<Ipv4Addr> = if ty == "LoadBalancer" {
        svc.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|i| i.ip.as_deref().and_then(ipv4))
            .collect()
    } else {
        Vec::new()
    };
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .filter(|t| *t > 0)
            .unwrap_or(DEFAULT_AFFINITY_SECONDS)
    });
    let external_local = spec.external_traffic_policy.as_deref() == Some("Local");
    let internal_local = spec.internal_traffic_policy.as_deref() == Some("Local");

    let mut ports = Vec::new();
    for p in spec.ports.iter().flatten() {
        let Some(protocol) = Protocol::parse(p.protocol.as_deref()) else {
            continue;
        };
        let Ok(port) = u16::try_from(p.port) else {
            continue;
        };
        let name = p.name.clone().unwrap_or_default();
        let node_port = p
            .node_port
            .filter(|_| with_node_ports)
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n != 0);
        ports.push(ServicePort {
            endpoints: endpoints_for(slices, &name, protocol, node_name),
            name,
            protocol,
            port,
            cluster_ip,
            node_port,
            external_ips: external_ips.clone(),
            lb_ips: lb_ips.clone(),
            affinity,
            external_local,
            internal_local,
        });
    }
    ports.sort_by(|a, b| (&a.name, a.protocol).cmp(&(&b.name, b.protocol)));
    Some(ServiceInput { key, ports })
}

/// The endpoints the slices give the service port `name`/`protocol`: slice ports are matched
/// by name, as upstream does, and each endpoint contributes its first address.
fn endpoints_for(
    slices: &[&EndpointSlice],
    name: &str,
    protocol: Protocol,
    node_name: &str,
) -> Vec<Endpoint> {
    let mut found: BTreeMap<(Ipv4Addr, u16), Endpoint> = BTreeMap::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find_map(|p| {
            let same = p.name.as_deref().unwrap_or("") == name
                && Protocol::parse(p.protocol.as_deref()) == Some(protocol);
            same.then_some(p.port).flatten()
        }) else {
            continue;
        };
        let Ok(port) = u16::try_from(port) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| ipv4(a)) else {
                continue;
            };
            let c = ep.conditions.as_ref();
            let ready = c.and_then(|c| c.ready).unwrap_or(true);
            let endpoint = Endpoint {
                ip,
                port,
                ready,
                serving: c.and_then(|c| c.serving).unwrap_or(ready),
                terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                local: ep.node_name.as_deref() == Some(node_name),
            };
            // The same address in two slices (during a handover): prefer the ready copy.
            match found.get(&(ip, port)) {
                Some(old) if old.ready || !endpoint.ready => {}
                _ => {
                    found.insert((ip, port), endpoint);
                }
            }
        }
    }
    found.into_values().collect()
}

/// Which endpoints a service port's rules use, as upstream's `CategorizeEndpoints`.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Categorized<'a> {
    /// Endpoints for the `Cluster` policy: the ready ones, or when none is ready anywhere,
    /// the terminating ones still serving.
    pub cluster: Vec<&'a Endpoint>,
    /// This node's endpoints for the `Local` policies, with the same fallback.
    pub local: Vec<&'a Endpoint>,
    /// The union of both: the endpoints that get a chain.
    pub reachable: Vec<&'a Endpoint>,
    /// Some usable endpoint exists on some node.
    pub any: bool,
}

impl ServicePort {
    /// Reached other than by its ClusterIP (NodePort, externalIPs, load-balancer IPs).
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some() || !self.external_ips.is_empty() || !self.lb_ips.is_empty()
    }

    pub fn external_policy_local(&self) -> bool {
        self.external_local && self.externally_accessible()
    }

    /// Even with `externalTrafficPolicy: Local`, pod and host traffic to external addresses
    /// is short-circuited to the cluster-wide endpoints.
    pub fn uses_cluster_endpoints(&self) -> bool {
        !self.internal_local || self.externally_accessible()
    }

    pub fn uses_local_endpoints(&self) -> bool {
        self.internal_local || self.external_policy_local()
    }

    pub fn categorize(&self) -> Categorized<'_> {
        let eps = &self.endpoints;
        let mut out = Categorized::default();
        let usable_fallback = |e: &&Endpoint| e.serving && e.terminating;
        if self.uses_cluster_endpoints() {
            out.cluster = eps.iter().filter(|e| e.ready).collect();
            if out.cluster.is_empty() {
                out.cluster = eps.iter().filter(usable_fallback).collect();
            }
            out.any = !out.cluster.is_empty();
        }
        if !self.uses_local_endpoints() {
            out.reachable = out.cluster.clone();
            return out;
        }
        out.any |= eps.iter().any(|e| e.ready || (e.serving && e.terminating));
        out.local = eps.iter().filter(|e| e.local && e.ready).collect();
        if out.local.is_empty() {
            out.local = eps
                .iter()
                .filter(|e| e.local && e.serving && e.terminating)
                .collect();
        }
        if !self.uses_cluster_endpoints() {
            out.reachable = out.local.clone();
            return out;
        }
        let mut all: Vec<&Endpoint> = out.cluster.iter().chain(&out.local).copied().collect();
        all.sort();
        all.dedup();
        out.reachable = all;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn svc(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn slice(endpoints: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "default",
                         "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": endpoints,
        }))
        .unwrap()
    }

    #[test]
    fn headless_and_external_name_services_are_not_proxied() {
        let s = svc(json!({"clusterIP": "None", "ports": [{"port": 80}]}));
        assert!(service_input(&s, &[], "n1").is_none());
        let s = svc(json!({"type": "ExternalName", "externalName": "example.com"}));
        assert!(service_input(&s, &[], "n1").is_none());
    }

    #[test]
    fn ports_match_slice_ports_by_name_and_conditions_default_as_the_api_says() {
        let s = svc(json!({"clusterIP": "10.43.0.5", "type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080},
                      {"name": "other", "port": 81}]}));
        let sl = slice(json!([
            {"addresses": ["10.42.0.7"], "nodeName": "n1"},
            {"addresses": ["10.42.0.8"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["fd00::1"]},
        ]));
        let input = service_input(&s, &[&sl], "n1").unwrap();
        let http = &input.ports[0];
        assert_eq!(http.name, "http");
        assert_eq!(http.node_port, Some(30080));
        assert_eq!(http.endpoints.len(), 2);
        assert!(http.endpoints[0].ready && http.endpoints[0].serving && http.endpoints[0].local);
        assert!(!http.endpoints[1].ready && http.endpoints[1].terminating);
        assert_eq!(http.endpoints[0].port, 8080);
        assert!(
            input.ports[1].endpoints.is_empty(),
            "no slice port named other"
        );
    }

    #[test]
    fn node_ports_only_count_for_node_port_and_load_balancer_types() {
        let s = svc(json!({"clusterIP": "10.43.0.5", "ports": [{"port": 80, "nodePort": 30080}]}));
        assert_eq!(
            service_input(&s, &[], "n1").unwrap().ports[0].node_port,
            None
        );
    }

    #[test]
    fn affinity_timeout_comes_from_the_config_or_the_default() {
        let s = svc(json!({"clusterIP": "10.43.0.5", "ports": [{"port": 80}],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}));
        assert_eq!(
            service_input(&s, &[], "n").unwrap().ports[0].affinity,
            Some(60)
        );
        let s = svc(json!({"clusterIP": "10.43.0.5", "ports": [{"port": 80}],
            "sessionAffinity": "ClientIP"}));
        assert_eq!(
            service_input(&s, &[], "n").unwrap().ports[0].affinity,
            Some(10_800)
        );
    }

    fn ep(last: u8, ready: bool, serving: bool, terminating: bool, local: bool) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 42, 0, last),
            port: 80,
            ready,
            serving,
            terminating,
            local,
        }
    }

    fn port(endpoints: Vec<Endpoint>) -> ServicePort {
        ServicePort {
            name: String::new(),
            protocol: Protocol::Tcp,
            port: 80,
            cluster_ip: Ipv4Addr::new(10, 43, 0, 5),
            node_port: None,
            external_ips: vec![],
            lb_ips: vec![],
            affinity: None,
            external_local: false,
            internal_local: false,
            endpoints,
        }
    }

    #[test]
    fn terminating_endpoints_are_used_only_when_none_is_ready() {
        let p = port(vec![
            ep(1, true, true, false, false),
            ep(2, false, true, true, false),
        ]);
        let c = p.categorize();
        assert_eq!(c.cluster.len(), 1);
        assert_eq!(c.cluster[0].ip, Ipv4Addr::new(10, 42, 0, 1));
        let p = port(vec![
            ep(2, false, true, true, false),
            ep(3, false, false, true, false),
        ]);
        let c = p.categorize();
        assert_eq!(c.cluster.len(), 1);
        assert_eq!(c.cluster[0].ip, Ipv4Addr::new(10, 42, 0, 2));
        assert!(c.any);
        let p = port(vec![ep(3, false, false, false, false)]);
        assert!(!p.categorize().any);
    }

    #[test]
    fn local_policies_pick_this_nodes_endpoints() {
        let mut p = port(vec![
            ep(1, true, true, false, false),
            ep(2, true, true, false, true),
        ]);
        p.internal_local = true;
        let c = p.categorize();
        assert!(c.cluster.is_empty());
        assert_eq!(c.local.len(), 1);
        assert_eq!(c.reachable.len(), 1);
        assert!(c.any);

        p.internal_local = false;
        p.external_local = true;
        p.node_port = Some(30000);
        let c = p.categorize();
        assert_eq!(c.cluster.len(), 2);
        assert_eq!(c.local.len(), 1);
        assert_eq!(c.reachable.len(), 2);

        p.endpoints[1].local = false;
        let c = p.categorize();
        assert!(c.local.is_empty());
        assert!(c.any);
    }
}
