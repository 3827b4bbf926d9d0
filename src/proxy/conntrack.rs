//! Which conntrack entries go stale when a UDP Service changes. UDP has no connection close,
//! so an entry keeps sending a client's datagrams to the endpoint chosen first, even after
//! that endpoint is gone, and an entry made while the Service had no endpoints keeps them
//! from being DNATed once it has some. Upstream kube-proxy deletes both kinds; so does k1s.
//! Pure: it computes filters, the `Kernel` runs them. TCP entries are left alone (a reset
//! ends them).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use super::model::{Protocol, ServiceInput, ServicePort};

/// One `conntrack -D` invocation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConntrackFilter {
    pub protocol: Protocol,
    /// The address the client sent to (a service IP); None for NodePorts (any local address).
    pub orig_dst: Option<Ipv4Addr>,
    pub orig_port_dst: u16,
    /// Only entries DNATed to this endpoint.
    pub dst_nat: Option<Ipv4Addr>,
}

impl ConntrackFilter {
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["-D".to_string(), "-p".into(), self.protocol.as_str().into()];
        if let Some(ip) = self.orig_dst {
            a.extend(["--orig-dst".into(), ip.to_string()]);
        }
        a.extend(["--orig-port-dst".into(), self.orig_port_dst.to_string()]);
        if let Some(ip) = self.dst_nat {
            a.extend(["--dst-nat".into(), ip.to_string()]);
        }
        a
    }
}

fn service_ips(p: &ServicePort) -> impl Iterator<Item = Ipv4Addr> + '_ {
    std::iter::once(p.cluster_ip)
        .chain(p.external_ips.iter().copied())
        .chain(p.lb_ips.iter().copied())
}

/// The entries to delete after a Service went from `old` to `new`.
pub fn stale_flows(
    old: Option<&ServiceInput>,
    new: Option<&ServiceInput>,
) -> BTreeSet<ConntrackFilter> {
    let mut out = BTreeSet::new();
    let ports = |i: Option<&ServiceInput>| -> Vec<ServicePort> {
        i.map(|i| i.ports.clone()).unwrap_or_default()
    };
    let (old_ports, new_ports) = (ports(old), ports(new));
    let same = |a: &ServicePort, b: &ServicePort| a.name == b.name && a.protocol == b.protocol;
    for o in old_ports.iter().filter(|p| p.protocol == Protocol::Udp) {
        let n = new_ports.iter().find(|n| same(o, n));
        let old_eps: BTreeSet<Ipv4Addr> = o.categorize().reachable.iter().map(|e| e.ip).collect();
        let new_eps: BTreeSet<Ipv4Addr> = n
            .map(|n| n.categorize().reachable.iter().map(|e| e.ip).collect())
            .unwrap_or_default();
        for gone in old_eps.difference(&new_eps) {
            for ip in service_ips(o) {
                out.insert(ConntrackFilter {
                    protocol: Protocol::Udp,
                    orig_dst: Some(ip),
                    orig_port_dst: o.port,
                    dst_nat: Some(*gone),
                });
            }
            if let Some(np) = o.node_port {
                out.insert(ConntrackFilter {
                    protocol: Protocol::Udp,
                    orig_dst: None,
                    orig_port_dst: np,
                    dst_nat: Some(*gone),
                });
            }
        }
    }
    for n in new_ports.iter().filter(|p| p.protocol == Protocol::Udp) {
        let had_endpoints = old_ports
            .iter()
            .find(|o| same(o, n))
            .is_some_and(|o| o.categorize().any);
        if had_endpoints || !n.categorize().any {
            continue;
        }
        // Entries made while the port was rejected or dropped would keep it unreachable.
        for ip in service_ips(n) {
            out.insert(ConntrackFilter {
                protocol: Protocol::Udp,
                orig_dst: Some(ip),
                orig_port_dst: n.port,
                dst_nat: None,
            });
        }
        if let Some(np) = n.node_port {
            out.insert(ConntrackFilter {
                protocol: Protocol::Udp,
                orig_dst: None,
                orig_port_dst: np,
                dst_nat: None,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::model::{Endpoint, ServiceKey};
    use super::*;

    fn dns(protocol: Protocol, eps: &[u8]) -> ServiceInput {
        ServiceInput {
            key: ServiceKey::new("kube-system", "kube-dns"),
            ports: vec![ServicePort {
                name: "dns".into(),
                protocol,
                port: 53,
                cluster_ip: Ipv4Addr::new(10, 43, 0, 10),
                node_port: Some(30053),
                external_ips: vec![],
                lb_ips: vec![],
                affinity: None,
                external_local: false,
                internal_local: false,
                endpoints: eps
                    .iter()
                    .map(|l| Endpoint {
                        ip: Ipv4Addr::new(10, 42, 0, *l),
                        port: 53,
                        ready: true,
                        serving: true,
                        terminating: false,
                        local: true,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn removed_udp_endpoints_lose_their_entries() {
        let old = dns(Protocol::Udp, &[1, 2]);
        let new = dns(Protocol::Udp, &[1]);
        let f: Vec<_> = stale_flows(Some(&old), Some(&new)).into_iter().collect();
        assert_eq!(f.len(), 2);
        assert_eq!(
            f[1].args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-dst",
                "10.43.0.10",
                "--orig-port-dst",
                "53",
                "--dst-nat",
                "10.42.0.2"
            ]
        );
        assert_eq!(
            f[0].args(),
            [
                "-D",
                "-p",
                "udp",
                "--orig-port-dst",
                "30053",
                "--dst-nat",
                "10.42.0.2"
            ]
        );
    }

    #[test]
    fn a_udp_service_getting_its_first_endpoint_clears_old_entries() {
        let old = dns(Protocol::Udp, &[]);
        let new = dns(Protocol::Udp, &[1]);
        let f = stale_flows(Some(&old), Some(&new));
        assert!(f
            .iter()
            .any(|f| f.orig_dst == Some(Ipv4Addr::new(10, 43, 0, 10)) && f.dst_nat.is_none()));
        assert!(stale_flows(Some(&new), Some(&new)).is_empty());
    }

    #[test]
    fn tcp_is_left_alone_and_deleted_services_flush_everything() {
        let old = dns(Protocol::Tcp, &[1]);
        assert!(stale_flows(Some(&old), None).is_empty());
        let old = dns(Protocol::Udp, &[1]);
        assert_eq!(stale_flows(Some(&old), None).len(), 2);
    }
}
