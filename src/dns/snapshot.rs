//! The immutable index of cluster state that queries are answered from: namespaces, services
//! (ClusterIP, headless, ExternalName) with their ports, the ready endpoints of their
//! EndpointSlices, and the reverse map from IP to names. It is rebuilt whole from the
//! reflectors' caches on every change and swapped in, so a query never waits on the API or a
//! lock held by a writer. It must never talk to the API or hold anything but plain data.

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A port of a Service or of an EndpointSlice. Names and protocols are lowercase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub protocol: String,
    /// `None` for a slice without ports (its endpoints get A records, no SRV).
    pub port: Option<u16>,
}

impl Port {
    /// Whether a query's `_port._proto` labels (empty: any) select this port.
    pub fn matches(&self, name: &str, protocol: &str) -> bool {
        (name.is_empty() || name == self.name) && (protocol.is_empty() || protocol == self.protocol)
    }
}

/// One ready address of a Service's endpoints.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub ip: IpAddr,
    /// The endpoint's DNS label: its `hostname`, or the dashed form of its IP.
    pub label: String,
    /// The ports of the slice it came from.
    pub ports: Arc<[Port]>,
}

#[derive(Debug, Clone)]
pub enum Kind {
    /// A virtual IP per family.
    ClusterIp(Vec<IpAddr>),
    Headless,
    /// The CNAME target, lowercase, without the trailing dot.
    ExternalName(String),
}

#[derive(Debug, Clone)]
pub struct Svc {
    pub kind: Kind,
    pub ports: Vec<Port>,
    pub endpoints: Vec<Endpoint>,
}

/// Everything a query is answered from.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// False until every reflector has listed once: cluster names then get SERVFAIL, as
    /// CoreDNS answers before its caches sync, rather than a false NXDOMAIN.
    pub synced: bool,
    pub namespaces: HashSet<String>,
    /// Keyed by `<service>.<namespace>`, lowercase, the way the name appears in a query.
    pub services: HashMap<String, Svc>,
    /// IP to the names of its PTR record (without the zone).
    pub reverse: HashMap<IpAddr, Vec<String>>,
    /// The ClusterIPs of `kube-dns` in kube-system: the addresses of the zone's name server.
    pub dns_ips: Vec<IpAddr>,
    /// The SOA serial: the build time in seconds, as CoreDNS uses its last-modified time.
    pub serial: u32,
}

/// The dashed form of an address used as a DNS label (`10-42-0-5`, `fd00--1`).
pub fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => {
            let s = v6.to_string().replace(':', "-");
            if s.ends_with('-') {
                format!("{s}0")
            } else {
                s
            }
        }
    }
}

fn service_ports(svc: &Service) -> Vec<Port> {
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    spec.ports
        .iter()
        .flatten()
        .map(|p| Port {
            name: p.name.clone().unwrap_or_default().to_ascii_lowercase(),
            protocol: p
                .protocol
                .clone()
                .unwrap_or_else(|| "TCP".into())
                .to_ascii_lowercase(),
            port: u16::try_from(p.port).ok(),
        })
        .collect()
}

fn service_kind(svc: &Service) -> Option<Kind> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        let target = spec.external_name.as_deref()?.trim_end_matches('.');
        // An address is not a name: CoreDNS publishes nothing for it.
        if target.is_empty() || target.parse::<IpAddr>().is_ok() {
            return None;
        }
        return Some(Kind::ExternalName(target.to_ascii_lowercase()));
    }
    let ips: Vec<IpAddr> = match (&spec.cluster_ips, &spec.cluster_ip) {
        (Some(ips), _) if !ips.is_empty() => ips.iter().filter_map(|i| i.parse().ok()).collect(),
        (_, Some(ip)) => ip.parse().ok().into_iter().collect(),
        _ => Vec::new(),
    };
    if ips.is_empty() {
        // `None`, or not yet allocated: both are served from endpoints.
        Some(Kind::Headless)
    } else {
        Some(Kind::ClusterIp(ips))
    }
}

fn slice_ports(slice: &EndpointSlice) -> Arc<[Port]> {
    let ports: Vec<Port> = match slice.ports.as_ref().filter(|p| !p.is_empty()) {
        None => vec![Port {
            name: String::new(),
            protocol: String::new(),
            port: None,
        }],
        Some(ports) => ports
            .iter()
            .map(|p| Port {
                name: p.name.clone().unwrap_or_default().to_ascii_lowercase(),
                protocol: p
                    .protocol
                    .clone()
                    .unwrap_or_else(|| "TCP".into())
                    .to_ascii_lowercase(),
                port: p.port.and_then(|p| u16::try_from(p).ok()),
            })
            .collect(),
    };
    ports.into()
}

/// Build a snapshot from the reflectors' current objects.
pub fn build(
    namespaces: &[Arc<Namespace>],
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    synced: bool,
) -> Snapshot {
    let mut snap = Snapshot {
        synced,
        serial: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as u32)
            .unwrap_or(1),
        ..Default::default()
    };
    for ns in namespaces {
        if let Some(name) = ns.metadata.name.as_deref() {
            snap.namespaces.insert(name.to_ascii_lowercase());
        }
    }
    // Which services publish not-ready addresses, by key.
    let mut publish_not_ready = HashSet::new();
    for svc in services {
        let (Some(name), Some(ns)) = (
            svc.metadata.name.as_deref(),
            svc.metadata.namespace.as_deref(),
        ) else {
            continue;
        };
        let Some(kind) = service_kind(svc) else {
            continue;
        };
        let key = format!("{name}.{ns}").to_ascii_lowercase();
        if svc
            .spec
            .as_ref()
            .and_then(|s| s.publish_not_ready_addresses)
            .unwrap_or(false)
        {
            publish_not_ready.insert(key.clone());
        }
        if let Kind::ClusterIp(ips) = &kind {
            if ns == "kube-system" && name == "kube-dns" {
                snap.dns_ips.clone_from(ips);
            }
            for ip in ips {
                // One PTR per ClusterIP; the first service seen keeps it.
                snap.reverse.entry(*ip).or_insert_with(|| vec![key.clone()]);
            }
        }
        snap.namespaces.insert(ns.to_ascii_lowercase());
        snap.services.insert(
            key,
            Svc {
                kind,
                ports: service_ports(svc),
                endpoints: Vec::new(),
            },
        );
    }
    let cluster_ips: HashSet<IpAddr> = snap.reverse.keys().copied().collect();
    let mut endpoint_ptrs: Vec<(IpAddr, String)> = Vec::new();
    for slice in slices {
        let (Some(ns), Some(svc_name)) = (
            slice.metadata.namespace.as_deref(),
            slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL)),
        ) else {
            continue;
        };
        let key = format!("{svc_name}.{ns}").to_ascii_lowercase();
        let Some(svc) = snap.services.get_mut(&key) else {
            continue;
        };
        if matches!(svc.kind, Kind::ExternalName(_)) {
            continue;
        }
        let all = publish_not_ready.contains(&key);
        let ports = slice_ports(slice);
        for ep in &slice.endpoints {
            let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
            if !ready && !all {
                continue;
            }
            for addr in &ep.addresses {
                let Ok(ip) = addr.parse::<IpAddr>() else {
                    continue;
                };
                let label = ep
                    .hostname
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| dashed(&ip));
                endpoint_ptrs.push((ip, format!("{label}.{key}")));
                svc.endpoints.push(Endpoint {
                    ip,
                    label,
                    ports: ports.clone(),
                });
            }
        }
    }
    for (ip, name) in endpoint_ptrs {
        // A ClusterIP's PTR wins over endpoints; an endpoint in several services gets one
        // PTR per service, as CoreDNS.
        if cluster_ips.contains(&ip) {
            continue;
        }
        let names = snap.reverse.entry(ip).or_default();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    snap
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashed_forms() {
        assert_eq!(dashed(&"10.42.0.5".parse().unwrap()), "10-42-0-5");
        assert_eq!(dashed(&"fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(dashed(&"fd00::".parse().unwrap()), "fd00--0");
    }

    #[test]
    fn port_matching() {
        let p = Port {
            name: "http".into(),
            protocol: "tcp".into(),
            port: Some(80),
        };
        assert!(p.matches("", ""));
        assert!(p.matches("http", "tcp"));
        assert!(!p.matches("http", "udp"));
        assert!(!p.matches("https", ""));
    }
}
