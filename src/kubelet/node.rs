//! This node's `Node` object: what the machine has (capacity, addresses, nodeInfo) read once
//! at start, the labels and taints from the flags, and the conditions the agent reports. It
//! registers the Node and keeps its status current; it never touches pods.

use crate::cli::NodeTaint;
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

/// The most pods a node runs, as upstream's default `maxPods`.
pub const MAX_PODS: u32 = 110;
/// The kubelet version a node reports: the Kubernetes version k1s serves, as k3s does.
pub const KUBELET_VERSION: &str = concat!("v1.33.0+k1s-", env!("CARGO_PKG_VERSION"));

/// What the agent was told about its node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub ip: IpAddr,
    pub labels: Vec<(String, String)>,
    pub taints: Vec<NodeTaint>,
    /// A server node: labelled `node-role.kubernetes.io/control-plane`.
    pub control_plane: bool,
    /// The port the agent's HTTPS server listens on (logs), reported in the Node.
    pub kubelet_port: u16,
}

/// Facts about the machine, read once at start.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    pub hostname: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub ephemeral_bytes: u64,
    pub machine_id: String,
    pub boot_id: String,
    pub system_uuid: String,
    pub kernel: String,
    pub os_image: String,
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Machine {
    /// Read the machine's facts; `data_dir` is where ephemeral storage lives.
    pub fn probe(data_dir: &Path) -> Machine {
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .map(|kb| kb * 1024)
            .unwrap_or(0);
        let ephemeral_bytes = nix::sys::statvfs::statvfs(data_dir)
            // The field types are narrower on 32-bit ARM, hence the casts.
            .map(
                #[allow(clippy::unnecessary_cast)]
                |s| s.blocks() as u64 * s.fragment_size() as u64,
            )
            .unwrap_or(0);
        let os_image = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_string())
            })
            .unwrap_or_else(|| "Linux".into());
        let uname = nix::sys::utsname::uname().ok();
        Machine {
            hostname: nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "localhost".into()),
            cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            memory_bytes,
            ephemeral_bytes,
            machine_id: read_trimmed("/etc/machine-id"),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            system_uuid: read_trimmed("/sys/class/dmi/id/product_uuid"),
            kernel: uname
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            os_image,
        }
    }
}

/// The node name used when `--node-name` is not given: the host name, lowercased, as k3s.
pub fn default_node_name(machine: &Machine) -> String {
    machine.hostname.to_lowercase()
}

fn labels(cfg: &NodeConfig) -> BTreeMap<String, String> {
    let arch = crate::arch().to_string();
    let mut l = BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), cfg.name.clone()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), arch.clone()),
        ("beta.kubernetes.io/os".to_string(), "linux".to_string()),
        ("beta.kubernetes.io/arch".to_string(), arch),
    ]);
    if cfg.control_plane {
        l.insert(
            "node-role.kubernetes.io/control-plane".into(),
            "true".into(),
        );
    }
    for (k, v) in &cfg.labels {
        l.insert(k.clone(), v.clone());
    }
    l
}

fn taints(cfg: &NodeConfig) -> Vec<Taint> {
    cfg.taints
        .iter()
        .map(|t| Taint {
            key: t.key.clone(),
            value: t.value.clone(),
            effect: t.effect.clone(),
            time_added: None,
        })
        .collect()
}

/// Why the node is or is not ready, as the Ready condition says it.
#[derive(Debug, Clone, PartialEq)]
pub struct Readiness {
    pub ready: bool,
    pub reason: String,
    pub message: String,
}

impl Readiness {
    pub fn ready() -> Readiness {
        Readiness {
            ready: true,
            reason: "KubeletReady".into(),
            message: "kubelet is posting ready status".into(),
        }
    }

    pub fn not_ready(message: impl Into<String>) -> Readiness {
        Readiness {
            ready: false,
            reason: "KubeletNotReady".into(),
            message: message.into(),
        }
    }
}

fn condition(kind: &str, status: bool, reason: &str, message: &str, now: &Time) -> NodeCondition {
    NodeCondition {
        type_: kind.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    }
}

/// The node's status as the agent reports it.
pub fn status(cfg: &NodeConfig, m: &Machine, readiness: &Readiness) -> NodeStatus {
    let now = Time(jiff::Timestamp::now());
    let resources = BTreeMap::from([
        ("cpu".to_string(), Quantity(m.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", m.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(MAX_PODS.to_string())),
        (
            "ephemeral-storage".to_string(),
            Quantity(format!("{}Ki", m.ephemeral_bytes / 1024)),
        ),
    ]);
    NodeStatus {
        capacity: Some(resources.clone()),
        allocatable: Some(resources),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: cfg.ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: m.hostname.clone(),
            },
        ]),
        conditions: Some(vec![
            condition(
                "MemoryPressure",
                false,
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
                &now,
            ),
            condition(
                "DiskPressure",
                false,
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
                &now,
            ),
            condition(
                "PIDPressure",
                false,
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
                &now,
            ),
            condition(
                "Ready",
                readiness.ready,
                &readiness.reason,
                &readiness.message,
                &now,
            ),
        ]),
        daemon_endpoints: Some(NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(cfg.kubelet_port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: crate::arch().into(),
            boot_id: m.boot_id.clone(),
            container_runtime_version: concat!("k1s://", env!("CARGO_PKG_VERSION")).into(),
            kernel_version: m.kernel.clone(),
            kube_proxy_version: String::new(),
            kubelet_version: KUBELET_VERSION.into(),
            machine_id: m.machine_id.clone(),
            operating_system: "linux".into(),
            os_image: m.os_image.clone(),
            system_uuid: m.system_uuid.clone(),
            swap: None,
        }),
        ..Default::default()
    }
}

/// Keep the transition times of conditions whose status did not change, so `kubectl
/// describe` shows when a condition really last changed.
pub fn carry_transitions(new: &mut NodeStatus, old: Option<&NodeStatus>) {
    let Some(old) = old.and_then(|s| s.conditions.as_ref()) else {
        return;
    };
    for c in new.conditions.iter_mut().flatten() {
        if let Some(o) = old.iter().find(|o| o.type_ == c.type_) {
            if o.status == c.status {
                c.last_transition_time = o.last_transition_time.clone();
            }
        }
    }
}

/// Create the Node, or on restart bring an existing one's labels, taints from the flags and
/// status up to date (an administrator's own labels, taints and `unschedulable` stay).
pub async fn register(
    client: &kube::Client,
    cfg: &NodeConfig,
    m: &Machine,
    readiness: &Readiness,
) -> Result<Node, kube::Error> {
    let api: Api<Node> = Api::all(client.clone());
    let mut st = status(cfg, m, readiness);
    match api.get_opt(&cfg.name).await? {
        None => {
            let node = Node {
                metadata: kube::api::ObjectMeta {
                    name: Some(cfg.name.clone()),
                    labels: Some(labels(cfg)),
                    ..Default::default()
                },
                spec: Some(NodeSpec {
                    taints: Some(taints(cfg)).filter(|t| !t.is_empty()),
                    ..Default::default()
                }),
                status: None,
            };
            api.create(&PostParams::default(), &node).await?;
            tracing::info!(node = %cfg.name, "registered node");
        }
        Some(existing) => {
            let mut all_taints = existing
                .spec
                .as_ref()
                .and_then(|s| s.taints.clone())
                .unwrap_or_default();
            for t in taints(cfg) {
                if !all_taints
                    .iter()
                    .any(|o| o.key == t.key && o.effect == t.effect)
                {
                    all_taints.push(t);
                }
            }
            let patch = json!({
                "metadata": {"labels": labels(cfg)},
                "spec": {"taints": all_taints},
            });
            api.patch(&cfg.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            carry_transitions(&mut st, existing.status.as_ref());
        }
    }
    api.patch_status(
        &cfg.name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": st })),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NodeConfig {
        NodeConfig {
            name: "edge-1".into(),
            ip: "192.0.2.10".parse().unwrap(),
            labels: vec![("zone".into(), "attic".into())],
            taints: vec![NodeTaint {
                key: "dedicated".into(),
                value: Some("gpu".into()),
                effect: "NoSchedule".into(),
            }],
            control_plane: true,
            kubelet_port: 10250,
        }
    }

    #[test]
    fn labels_and_taints_from_flags() {
        let l = labels(&cfg());
        assert_eq!(l["kubernetes.io/hostname"], "edge-1");
        assert_eq!(l["node-role.kubernetes.io/control-plane"], "true");
        assert_eq!(l["zone"], "attic");
        assert_eq!(l["kubernetes.io/arch"], crate::arch());
        let t = taints(&cfg());
        assert_eq!(t[0].key, "dedicated");
        assert_eq!(t[0].effect, "NoSchedule");
    }

    #[test]
    fn status_reports_the_machine() {
        let m = Machine::probe(Path::new("/"));
        assert!(m.cpus >= 1 && m.memory_bytes > 0);
        let st = status(&cfg(), &m, &Readiness::not_ready("network not ready"));
        assert_eq!(st.allocatable.as_ref().unwrap()["pods"].0, "110");
        let ready = st
            .conditions
            .as_ref()
            .unwrap()
            .iter()
            .find(|c| c.type_ == "Ready")
            .unwrap();
        assert_eq!(ready.status, "False");
        assert_eq!(ready.message.as_deref(), Some("network not ready"));
        assert_eq!(st.addresses.as_ref().unwrap()[0].address, "192.0.2.10");
    }

    #[test]
    fn unchanged_conditions_keep_their_transition_time() {
        let m = Machine::default();
        let mut old = status(&cfg(), &m, &Readiness::ready());
        let then = Time(jiff::Timestamp::from_second(1_000_000).unwrap());
        for c in old.conditions.iter_mut().flatten() {
            c.last_transition_time = Some(then.clone());
        }
        let mut new = status(&cfg(), &m, &Readiness::not_ready("x"));
        carry_transitions(&mut new, Some(&old));
        for c in new.conditions.unwrap() {
            if c.type_ == "Ready" {
                assert_ne!(c.last_transition_time, Some(then.clone()));
            } else {
                assert_eq!(c.last_transition_time, Some(then.clone()));
            }
        }
    }
}
