//! Pod networking for the node agent: pinned network namespaces (`netns`), running the standard
//! CNI plugin binaries as child processes (`exec`, `runtime`, `result`, `cache`), the k1s pod
//! network built from the node's pod CIDR (`config`, `masq`), and the `PodNetwork` boundary the
//! agent drives, with its real (`Cni`) and in-memory (`FakeNetwork`) implementations.
//!
//! This module must never know Kubernetes API types: the kubelet translates a Pod into a
//! `PodNet` and a `NetStatus` back into `podIPs`. It never links a CNI library, and it never
//! creates or deletes the namespace inside `setup`/`teardown`: the agent pins the namespace with
//! `netns::create` before `setup` and removes it with `netns::remove` after `teardown` (in that
//! order, because the plugins clean up inside the namespace on DEL).
//!
//! Host-network pods do not come here at all: they share the node's namespace, get the node's
//! addresses as their pod IPs, and have no CNI attachment to set up or tear down.

pub mod cache;
pub mod config;
pub mod error;
pub mod exec;
pub mod fake;
pub mod masq;
pub mod netns;
pub mod network;
pub mod result;
pub mod runtime;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub use config::CniConfig;
pub use error::CniError;
pub use fake::FakeNetwork;
pub use network::Cni;

/// The boxed future the trait's methods return, so `Arc<dyn PodNetwork>` works.
pub type NetFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, CniError>> + Send + 'a>>;

/// A pod's network, as the node agent sees it.
pub trait PodNetwork: Send + Sync {
    /// Attaches the pod's namespace to the pod network and returns its addresses. Calling it
    /// again for an attached pod returns the same status without touching the network.
    fn setup<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, NetStatus>;
    /// Detaches the pod and releases its address and host ports. Idempotent: a pod that was
    /// never set up, or is already torn down, is fine.
    fn teardown<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, ()>;
    /// The pod's status as recorded at setup (from the cache; no plugin runs), None if it is not
    /// attached.
    fn status<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, Option<NetStatus>>;
}

/// One pod's attachment request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNet {
    /// The pod UID; used as the CNI container id.
    pub id: String,
    /// The pinned namespace (see `netns`).
    pub netns: PathBuf,
    /// The interface name inside the pod, normally `eth0`.
    pub ifname: String,
    pub port_mappings: Vec<PortMapping>,
}

/// A hostPort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
    /// Only this host address, or all when None.
    pub host_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// What the agent reports as the pod's network status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetStatus {
    /// The pod's addresses on its interface, first is primary.
    pub ips: Vec<IpAddr>,
    pub gateway: Option<IpAddr>,
    /// The interface inside the pod the addresses are on.
    pub interface: String,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl PodNet {
    /// A pod on `eth0` with no host ports.
    pub fn new(id: impl Into<String>, netns: impl Into<PathBuf>) -> Self {
        PodNet {
            id: id.into(),
            netns: netns.into(),
            ifname: "eth0".into(),
            port_mappings: Vec::new(),
        }
    }

    /// Rejects what would break a plugin or escape a path: the id becomes part of file names
    /// and iptables comments, the interface name a kernel name.
    pub fn validate(&self) -> Result<(), CniError> {
        let id = &self.id;
        let id_ok = !id.is_empty()
            && id.len() <= 128
            && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !id_ok {
            return Err(CniError::invalid(
                "pod id",
                id.as_str(),
                "must be 1-128 of [A-Za-z0-9_.-], starting alphanumeric",
            ));
        }
        config::check_ifname("interface name", &self.ifname)?;
        if self.ifname == "lo" {
            return Err(CniError::invalid(
                "interface name",
                "lo",
                "is the loopback interface, which k1s sets up itself",
            ));
        }
        if !self.netns.is_absolute() {
            return Err(CniError::invalid(
                "network namespace path",
                self.netns.display().to_string(),
                "must be absolute",
            ));
        }
        for (i, pm) in self.port_mappings.iter().enumerate() {
            if pm.host_port == 0 || pm.container_port == 0 {
                return Err(CniError::invalid(
                    "port mapping",
                    format!("{pm:?}"),
                    "ports must be 1-65535",
                ));
            }
            let clash = self.port_mappings[..i].iter().any(|o| {
                o.host_port == pm.host_port && o.protocol == pm.protocol && o.host_ip == pm.host_ip
            });
            if clash {
                return Err(CniError::invalid(
                    "port mapping",
                    format!("{pm:?}"),
                    "host port and protocol used twice",
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_pod_input() {
        let ok = PodNet::new("5f0c1a2b-0000-4000-8000-000000000001", "/run/k1s/netns/x");
        assert!(ok.validate().is_ok());
        let bad_ids = ["", "-x", "../etc", "a/b", "a b", "a;b", &"x".repeat(200)];
        for id in bad_ids {
            let p = PodNet {
                id: id.to_string(),
                ..ok.clone()
            };
            assert!(
                p.validate()
                    .unwrap_err()
                    .to_string()
                    .contains("invalid pod id"),
                "{id}"
            );
        }
        let p = PodNet {
            ifname: "eth0/../x".into(),
            ..ok.clone()
        };
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("interface name"));
        let p = PodNet {
            netns: "relative".into(),
            ..ok.clone()
        };
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("must be absolute"));
        let pm = PortMapping {
            host_port: 80,
            container_port: 8080,
            protocol: Protocol::Tcp,
            host_ip: None,
        };
        let p = PodNet {
            port_mappings: vec![pm, pm],
            ..ok.clone()
        };
        assert!(p.validate().unwrap_err().to_string().contains("used twice"));
        let p = PodNet {
            port_mappings: vec![PortMapping { host_port: 0, ..pm }],
            ..ok
        };
        assert!(p.validate().unwrap_err().to_string().contains("1-65535"));
    }
}
