//! The k1s pod network as CNI configuration: `CniConfig` (what the agent knows: bin dirs, state
//! dir, the node's pod CIDR, the cluster CIDR, bridge name, MTU) and the configuration lists
//! generated from it: `k1s` (bridge with host-local IPAM, then portmap) for the pod interface
//! and `k1s-loopback` for `lo`. It must never run anything or touch the host.
//!
//! Written for Debian's containernetworking-plugins v1.1.1, which speak spec 1.0.0. The bridge
//! plugin's `ipMasq` is off on purpose: it masquerades everything leaving the node's pod CIDR,
//! including traffic to pods on other nodes, while k1s must masquerade only traffic leaving the
//! cluster CIDR. One node-wide rule does that instead (see `masq`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnetwork::IpNetwork;
use serde_json::{json, Value};

use crate::cni::error::CniError;
use crate::cni::runtime::{NetworkConfigList, DEFAULT_PLUGIN_TIMEOUT};

/// The spec version the generated lists declare. v1.1.1 plugins support it; so do all later.
pub const CNI_VERSION: &str = "1.0.0";
/// The name of the pod network list (and of its cache files and host-local state directory).
pub const NETWORK_NAME: &str = "k1s";
pub const LOOPBACK_NETWORK_NAME: &str = "k1s-loopback";
pub const DEFAULT_BRIDGE: &str = "k1s0";
/// The plugins k1s's lists use; `Cni::new` checks that each is installed.
pub const REQUIRED_PLUGINS: [&str; 4] = ["bridge", "host-local", "portmap", "loopback"];

/// Debian installs plugins in /usr/lib/cni, upstream's tarball in /opt/cni/bin.
pub fn default_bin_dirs() -> Vec<PathBuf> {
    vec!["/usr/lib/cni".into(), "/opt/cni/bin".into()]
}

/// How the node's pod network is set up.
#[derive(Debug, Clone)]
pub struct CniConfig {
    /// Searched in order for plugin binaries.
    pub bin_dirs: Vec<PathBuf>,
    /// k1s's own CNI state: `results/` (the ADD cache) and `networks/` (host-local's leases),
    /// e.g. `/var/lib/k1s/agent/cni`.
    pub state_dir: PathBuf,
    /// This node's slice of the cluster CIDR; the bridge's address is its first address.
    pub pod_cidr: IpNetwork,
    pub cluster_cidr: IpNetwork,
    pub bridge: String,
    pub mtu: Option<u32>,
    /// Bound on one plugin call.
    pub plugin_timeout: Duration,
}

impl CniConfig {
    /// The defaults k3s users expect: plugins in the usual dirs, bridge `k1s0`, the kernel's MTU.
    pub fn new(state_dir: PathBuf, pod_cidr: IpNetwork, cluster_cidr: IpNetwork) -> Self {
        CniConfig {
            bin_dirs: default_bin_dirs(),
            state_dir,
            pod_cidr,
            cluster_cidr,
            bridge: DEFAULT_BRIDGE.into(),
            mtu: None,
            plugin_timeout: DEFAULT_PLUGIN_TIMEOUT,
        }
    }

    /// Checks the configuration and returns the pod CIDR normalised to its network address.
    pub fn validate(&self) -> Result<IpNetwork, CniError> {
        check_ifname("bridge name", &self.bridge)?;
        let pod = IpNetwork::new(self.pod_cidr.network(), self.pod_cidr.prefix())
            .map_err(|e| CniError::invalid("pod cidr", self.pod_cidr.to_string(), e.to_string()))?;
        let (max_prefix, min_mtu) = match pod {
            IpNetwork::V4(_) => (30, 68),
            IpNetwork::V6(_) => (126, 1280),
        };
        if pod.prefix() > max_prefix {
            return Err(CniError::invalid(
                "pod cidr",
                pod.to_string(),
                format!("prefix must be /{max_prefix} or shorter to hold a gateway and pods"),
            ));
        }
        if pod.is_ipv4() != self.cluster_cidr.is_ipv4()
            || self.cluster_cidr.prefix() > pod.prefix()
            || !self.cluster_cidr.contains(pod.network())
        {
            return Err(CniError::invalid(
                "pod cidr",
                pod.to_string(),
                format!("must lie inside the cluster cidr {}", self.cluster_cidr),
            ));
        }
        if let Some(mtu) = self.mtu {
            if !(min_mtu..=65535).contains(&mtu) {
                return Err(CniError::invalid(
                    "mtu",
                    mtu.to_string(),
                    format!("must be between {min_mtu} and 65535"),
                ));
            }
        }
        Ok(pod)
    }

    pub fn results_dir(&self) -> PathBuf {
        self.state_dir.join("results")
    }

    /// host-local's `dataDir`: its leases live under k1s's data dir, not /var/lib/cni, so
    /// removing k1s removes them.
    pub fn ipam_dir(&self) -> PathBuf {
        self.state_dir.join("networks")
    }
}

/// The first address of `net`: the bridge's address and the pods' gateway.
pub fn gateway_of(net: IpNetwork) -> Option<IpAddr> {
    match net {
        IpNetwork::V4(n) => n.nth(1).map(IpAddr::V4),
        IpNetwork::V6(n) => {
            let first = u128::from(n.network()).checked_add(1)?;
            Some(IpAddr::V6(first.into()))
        }
    }
}

/// The `k1s` list: bridge (gateway, hairpin, host-local IPAM on the pod CIDR with a default
/// route) then portmap (hostPorts, with SNAT so hairpin and localhost connections work).
pub fn pod_network_list(cfg: &CniConfig) -> Result<NetworkConfigList, CniError> {
    let pod = cfg.validate()?;
    let gateway = gateway_of(pod)
        .ok_or_else(|| CniError::invalid("pod cidr", pod.to_string(), "has no first address"))?;
    let default_route = if pod.is_ipv4() { "0.0.0.0/0" } else { "::/0" };
    let mut bridge = json!({
        "type": "bridge",
        "bridge": cfg.bridge,
        "isGateway": true,
        "ipMasq": false,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "ranges": [[{ "subnet": pod.to_string(), "gateway": gateway.to_string() }]],
            "routes": [{ "dst": default_route }],
            "dataDir": cfg.ipam_dir(),
        },
    });
    if let Some(mtu) = cfg.mtu {
        bridge["mtu"] = json!(mtu);
    }
    let portmap = json!({
        "type": "portmap",
        "capabilities": { "portMappings": true },
        "snat": true,
    });
    NetworkConfigList::from_value(json!({
        "cniVersion": CNI_VERSION,
        "name": NETWORK_NAME,
        "plugins": [bridge, portmap],
    }))
}

/// The `k1s-loopback` list: brings `lo` up in the pod's namespace.
pub fn loopback_list() -> NetworkConfigList {
    let v: Value = json!({
        "cniVersion": CNI_VERSION,
        "name": LOOPBACK_NETWORK_NAME,
        "plugins": [{ "type": "loopback" }],
    });
    // A constant that always validates; a failure here is a bug in this file.
    NetworkConfigList::from_value(v).expect("the loopback list is valid")
}

/// Linux interface names: 1 to 15 bytes, no '/', ':' or whitespace, not "." or "..".
pub fn check_ifname(what: &'static str, name: &str) -> Result<(), CniError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(CniError::invalid(
            what,
            name,
            "must be 1-15 bytes without '/', ':' or whitespace",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> CniConfig {
        CniConfig::new(
            "/var/lib/k1s/agent/cni".into(),
            "10.42.3.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
        )
    }

    #[test]
    fn generates_the_k1s_list() {
        let mut c = cfg();
        c.mtu = Some(1450);
        let list = pod_network_list(&c).unwrap();
        assert_eq!(list.plugin_types(), vec!["bridge", "portmap"]);
        let expected = json!({
            "cniVersion": "1.0.0",
            "name": "k1s",
            "plugins": [
                {
                    "type": "bridge", "bridge": "k1s0", "isGateway": true, "ipMasq": false,
                    "hairpinMode": true, "mtu": 1450,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": "10.42.3.0/24", "gateway": "10.42.3.1"}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": "/var/lib/k1s/agent/cni/networks"
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}, "snat": true}
            ]
        });
        assert_eq!(list.to_value(), expected);
    }

    #[test]
    fn leaves_mtu_out_when_unset_and_normalises_the_cidr() {
        let mut c = cfg();
        c.pod_cidr = "10.42.3.77/24".parse().unwrap();
        let v = pod_network_list(&c).unwrap().to_value();
        assert!(v["plugins"][0].get("mtu").is_none());
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.42.3.0/24"
        );
    }

    #[test]
    fn ipv6_pod_cidr_gets_a_v6_default_route() {
        let mut c = cfg();
        c.pod_cidr = "fd42:0:0:3::/64".parse().unwrap();
        c.cluster_cidr = "fd42::/48".parse().unwrap();
        let v = pod_network_list(&c).unwrap().to_value();
        assert_eq!(
            v["plugins"][0]["ipam"]["ranges"][0][0]["gateway"],
            "fd42:0:0:3::1"
        );
        assert_eq!(v["plugins"][0]["ipam"]["routes"][0]["dst"], "::/0");
    }

    #[test]
    fn rejects_bad_configs() {
        type Mutation = Box<dyn Fn(&mut CniConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (
                Box::new(|c| c.bridge = "a-very-long-bridge-name".into()),
                "bridge name",
            ),
            (Box::new(|c| c.bridge = "br/0".into()), "bridge name"),
            (Box::new(|c| c.bridge = String::new()), "bridge name"),
            (
                Box::new(|c| c.pod_cidr = "10.42.3.0/31".parse().unwrap()),
                "/30 or shorter",
            ),
            (
                Box::new(|c| c.pod_cidr = "10.99.0.0/24".parse().unwrap()),
                "inside the cluster cidr",
            ),
            (
                Box::new(|c| c.pod_cidr = "10.0.0.0/8".parse().unwrap()),
                "inside the cluster cidr",
            ),
            (
                Box::new(|c| c.pod_cidr = "fd00::/64".parse().unwrap()),
                "inside the cluster cidr",
            ),
            (Box::new(|c| c.mtu = Some(20)), "mtu"),
            (Box::new(|c| c.mtu = Some(70000)), "mtu"),
        ];
        for (mutate, needle) in cases {
            let mut c = cfg();
            mutate(&mut c);
            let msg = pod_network_list(&c).unwrap_err().to_string();
            assert!(msg.contains(needle), "{msg} should mention {needle}");
        }
    }

    #[test]
    fn loopback_list_is_one_plugin() {
        assert_eq!(loopback_list().plugin_types(), vec!["loopback"]);
        assert_eq!(loopback_list().name(), "k1s-loopback");
    }
}
