//! `Cni`, the real `PodNetwork`: attaches pods to the k1s network with the plugin binaries, and
//! detaches them from what the cache recorded at ADD, so DEL works after an agent restart and
//! with whatever configuration was in force when the pod was set up. It owns the ordering of
//! one attachment (cache intent, loopback, the `k1s` list, cache result) and the node's
//! masquerade rule; it must never create or remove the namespace itself.

use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{json, Map, Value};

use crate::cni::cache::{CacheEntry, ResultCache};
use crate::cni::config::{self, CniConfig, CNI_VERSION, NETWORK_NAME, REQUIRED_PLUGINS};
use crate::cni::error::CniError;
use crate::cni::exec::PluginExec;
use crate::cni::masq::Masquerade;
use crate::cni::netns;
use crate::cni::result::CniResult;
use crate::cni::runtime::{Attachment, NetworkConfigList, Runtime};
use crate::cni::{NetFuture, NetStatus, PodNet, PodNetwork};

/// The pod network of one node, run with the standard CNI plugins.
#[derive(Debug)]
pub struct Cni {
    cfg: CniConfig,
    list: NetworkConfigList,
    loopback: NetworkConfigList,
    runtime: Runtime,
    cache: ResultCache,
    masq: Masquerade,
    masq_ready: AtomicBool,
}

impl Cni {
    /// Validates the configuration, generates the network lists and checks that every plugin
    /// they use is installed. Touches nothing on the host.
    pub fn new(cfg: CniConfig) -> Result<Self, CniError> {
        let list = config::pod_network_list(&cfg)?;
        let pod_cidr = cfg.validate()?;
        let exec = PluginExec::new(cfg.bin_dirs.clone(), cfg.plugin_timeout);
        for plugin in REQUIRED_PLUGINS {
            exec.find(plugin)?;
        }
        Ok(Cni {
            masq: Masquerade::new(&cfg.bridge, pod_cidr, cfg.cluster_cidr),
            cache: ResultCache::new(cfg.results_dir()),
            loopback: config::loopback_list(),
            runtime: Runtime::new(exec),
            list,
            cfg,
            masq_ready: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &CniConfig {
        &self.cfg
    }

    /// The `k1s` configuration list as generated.
    pub fn network_list(&self) -> &NetworkConfigList {
        &self.list
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// For agent start: asks every plugin (VERSION) whether it speaks the spec version the
    /// lists declare, and installs the masquerade rule.
    pub async fn preflight(&self) -> Result<(), CniError> {
        for plugin in REQUIRED_PLUGINS {
            let supported = self.runtime.versions(plugin, CNI_VERSION).await?;
            if !supported.iter().any(|v| v == CNI_VERSION) {
                return Err(CniError::UnsupportedVersion {
                    plugin: plugin.to_string(),
                    wanted: CNI_VERSION.to_string(),
                    supported,
                });
            }
        }
        self.ensure_host_rules().await
    }

    /// Installs or repairs the node's masquerade rule. Setup does this once per instance; the
    /// agent may call it again on its periodic sync.
    pub async fn ensure_host_rules(&self) -> Result<(), CniError> {
        self.masq.ensure().await?;
        self.masq_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Removes the node's masquerade rule (uninstall, tests).
    pub async fn remove_host_rules(&self) -> Result<(), CniError> {
        self.masq_ready.store(false, Ordering::Release);
        self.masq.remove().await
    }

    /// The masquerade chain this instance owns.
    pub fn masquerade_chain(&self) -> &str {
        self.masq.chain()
    }

    /// CNI CHECK of an attached pod against what ADD returned.
    pub async fn check(&self, pod: &PodNet) -> Result<(), CniError> {
        pod.validate()?;
        let entry = self.cache.load(NETWORK_NAME, &pod.id, &pod.ifname).await?;
        let Some((entry, prev)) = entry.and_then(|e| e.result.clone().map(|r| (e, r))) else {
            return Err(CniError::invalid("pod", pod.id.as_str(), "is not attached"));
        };
        let list = NetworkConfigList::from_value(entry.config.clone())?;
        let att = self.attachment(
            pod,
            &entry.netns.display().to_string(),
            entry.capability_args,
        );
        self.runtime
            .check(
                &self.loopback,
                &self.lo(&att),
                &json!({"cniVersion": CNI_VERSION}),
            )
            .await?;
        self.runtime.check(&list, &att, &prev).await
    }

    async fn do_setup(&self, pod: &PodNet) -> Result<NetStatus, CniError> {
        pod.validate()?;
        if !netns::exists(&pod.netns) {
            return Err(CniError::invalid(
                "network namespace path",
                pod.netns.display().to_string(),
                "is not a pinned network namespace (netns::create it first)",
            ));
        }
        if !self.masq_ready.load(Ordering::Acquire) {
            self.ensure_host_rules().await?;
        }
        match self.cache.load(NETWORK_NAME, &pod.id, &pod.ifname).await {
            Ok(Some(e))
                if e.result.is_some()
                    && e.netns == pod.netns
                    && e.netns_inode.is_some()
                    && e.netns_inode == netns::inode(&pod.netns) =>
            {
                if let Some(Ok(status)) = e.result.as_ref().map(|r| status_of(r, &pod.ifname)) {
                    return Ok(status);
                }
                self.do_teardown(pod).await?;
            }
            // An ADD that crashed half-way, or one into a namespace since replaced: undo it
            // before starting over, so its address and rules do not leak.
            Ok(Some(_)) | Err(CniError::CorruptCache { .. }) => self.do_teardown(pod).await?,
            Ok(None) => {}
            Err(e) => return Err(e),
        }

        let caps = capability_args(pod);
        let mut entry = CacheEntry::new(
            NETWORK_NAME,
            &pod.id,
            &pod.ifname,
            &pod.netns,
            self.list.to_value(),
            caps.clone(),
        );
        self.cache.store(&entry).await?;

        let att = self.attachment(pod, &pod.netns.display().to_string(), caps);
        let added = async {
            self.runtime.add(&self.loopback, &self.lo(&att)).await?;
            self.runtime.add(&self.list, &att).await
        }
        .await;
        let (raw, typed) = match added {
            Ok(r) => r,
            Err(e) => {
                // Leave nothing behind; the caller retries with a clean slate.
                if let Err(undo) = self.runtime.del(&self.list, &att, None).await {
                    tracing::warn!(pod = %pod.id, error = %undo, "cni DEL after failed ADD also failed");
                } else {
                    let _ = self.cache.remove(NETWORK_NAME, &pod.id, &pod.ifname).await;
                }
                return Err(e);
            }
        };
        let status = status_from(&typed, &pod.ifname);
        entry.result = Some(raw);
        self.cache.store(&entry).await?;
        Ok(status)
    }

    async fn do_teardown(&self, pod: &PodNet) -> Result<(), CniError> {
        pod.validate()?;
        let (list, caps, prev, ns_path) = match self
            .cache
            .load(NETWORK_NAME, &pod.id, &pod.ifname)
            .await
        {
            Ok(Some(e)) => match NetworkConfigList::from_value(e.config) {
                Ok(list) => (list, e.capability_args, e.result, e.netns),
                Err(err) => {
                    tracing::warn!(pod = %pod.id, error = %err, "cached cni config unusable, deleting with the current one");
                    (self.list.clone(), e.capability_args, e.result, e.netns)
                }
            },
            Ok(None) => (
                self.list.clone(),
                capability_args(pod),
                None,
                pod.netns.clone(),
            ),
            Err(err @ CniError::CorruptCache { .. }) => {
                tracing::warn!(pod = %pod.id, error = %err, "deleting with the current cni config");
                (
                    self.list.clone(),
                    capability_args(pod),
                    None,
                    pod.netns.clone(),
                )
            }
            Err(err) => return Err(err),
        };
        // Plugins clean up inside the namespace when it is there; with an empty CNI_NETNS they
        // still release the address and host ports (bridge v1.1.1 checks for exactly that).
        let alive = netns::exists(&ns_path);
        let ns = if alive {
            ns_path.display().to_string()
        } else {
            String::new()
        };
        let att = self.attachment(pod, &ns, caps);
        self.runtime.del(&list, &att, prev.as_ref()).await?;
        if alive {
            self.runtime
                .del(&self.loopback, &self.lo(&att), None)
                .await?;
        }
        self.cache.remove(NETWORK_NAME, &pod.id, &pod.ifname).await
    }

    async fn do_status(&self, pod: &PodNet) -> Result<Option<NetStatus>, CniError> {
        pod.validate()?;
        let Some(entry) = self.cache.load(NETWORK_NAME, &pod.id, &pod.ifname).await? else {
            return Ok(None);
        };
        let Some(raw) = entry.result else {
            return Ok(None);
        };
        status_of(&raw, &pod.ifname)
            .map(Some)
            .map_err(|reason| CniError::CorruptCache {
                path: self.cache.path(NETWORK_NAME, &pod.id, &pod.ifname),
                reason,
            })
    }

    fn attachment(&self, pod: &PodNet, netns: &str, caps: Map<String, Value>) -> Attachment {
        Attachment {
            container_id: pod.id.clone(),
            netns: netns.to_string(),
            ifname: pod.ifname.clone(),
            cni_args: String::new(),
            capability_args: caps,
        }
    }

    fn lo(&self, att: &Attachment) -> Attachment {
        Attachment {
            ifname: "lo".into(),
            capability_args: Map::new(),
            ..att.clone()
        }
    }
}

impl PodNetwork for Cni {
    fn setup<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, NetStatus> {
        Box::pin(self.do_setup(pod))
    }

    fn teardown<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, ()> {
        Box::pin(self.do_teardown(pod))
    }

    fn status<'a>(&'a self, pod: &'a PodNet) -> NetFuture<'a, Option<NetStatus>> {
        Box::pin(self.do_status(pod))
    }
}

/// `portMappings` as portmap reads it from runtimeConfig. Always present (maybe empty), as
/// kubelet does, so the cache records that the pod had none.
fn capability_args(pod: &PodNet) -> Map<String, Value> {
    let maps: Vec<Value> = pod
        .port_mappings
        .iter()
        .map(|pm| {
            let mut m = json!({
                "hostPort": pm.host_port,
                "containerPort": pm.container_port,
                "protocol": pm.protocol.as_str(),
            });
            if let Some(ip) = pm.host_ip {
                m["hostIP"] = json!(ip.to_string());
            }
            m
        })
        .collect();
    let mut caps = Map::new();
    caps.insert("portMappings".into(), Value::Array(maps));
    caps
}

fn status_of(raw: &Value, ifname: &str) -> Result<NetStatus, String> {
    CniResult::from_value(raw).map(|r| status_from(&r, ifname))
}

fn status_from(r: &CniResult, ifname: &str) -> NetStatus {
    let ips = r.sandbox_ips(ifname);
    NetStatus {
        gateway: ips.iter().find_map(|ip| ip.gateway),
        ips: ips.iter().map(|ip| ip.address.ip()).collect(),
        interface: ifname.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::{PortMapping, Protocol};

    #[test]
    fn port_mappings_become_runtime_config() {
        let mut pod = PodNet::new("p1", "/run/k1s/netns/p1");
        assert_eq!(
            Value::Object(capability_args(&pod)),
            json!({"portMappings": []})
        );
        pod.port_mappings = vec![
            PortMapping {
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None,
            },
            PortMapping {
                host_port: 5353,
                container_port: 53,
                protocol: Protocol::Udp,
                host_ip: Some("192.0.2.2".parse().unwrap()),
            },
        ];
        assert_eq!(
            Value::Object(capability_args(&pod)),
            json!({"portMappings": [
                {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "192.0.2.2"}
            ]})
        );
    }

    #[test]
    fn status_takes_the_sandbox_interface_addresses() {
        let raw = json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "k1s0"}, {"name": "eth0", "sandbox": "/run/k1s/netns/p"}],
            "ips": [{"address": "10.42.0.7/24", "gateway": "10.42.0.1", "interface": 1}]
        });
        let s = status_of(&raw, "eth0").unwrap();
        assert_eq!(
            s.ips,
            vec!["10.42.0.7".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(s.gateway, Some("10.42.0.1".parse().unwrap()));
        assert_eq!(s.interface, "eth0");
    }

    #[test]
    fn new_fails_naming_a_missing_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = CniConfig::new(
            dir.path().into(),
            "10.42.0.0/24".parse().unwrap(),
            "10.42.0.0/16".parse().unwrap(),
        );
        cfg.bin_dirs = vec![dir.path().into()];
        let msg = Cni::new(cfg).unwrap_err().to_string();
        assert!(msg.contains("cni plugin bridge not found"), "{msg}");
    }
}
