//! The scheduler's view of the cluster: nodes and, per node, running aggregates of the pods
//! bound (or assumed bound) to it: requested resources, pod count, host ports. It is fed
//! only by watch events and by the scheduler's own assumptions, so that placing one pod
//! never scans every pod. It must never call the API or decide placements.

use super::resources::{self, Resources, CPU, MEMORY, PODS};
use super::volumebinding::Volumes;
use k8s_openapi::api::core::v1::{Affinity, Node, Pod, PodAffinityTerm};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// A host port in use: protocol, host IP ("" for any) and port.
pub type HostPort = (String, String, i32);

/// What the scheduler keeps of a pod: precomputed once per pod version.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub key: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub priority: i32,
    pub requests: Resources,
    /// cpu (millicores) and memory of `requests`, and whether it asks for nothing else,
    /// so that the common fit check compares integers.
    pub core: (i64, i64),
    pub only_core: bool,
    /// The pod has a nodeSelector or required node affinity.
    pub node_constrained: bool,
    pub ports: Vec<HostPort>,
    pub terminating: bool,
    pub pod: Arc<Pod>,
}

impl PodInfo {
    pub fn new(pod: Arc<Pod>) -> PodInfo {
        let meta = &pod.metadata;
        let namespace = meta.namespace.clone().unwrap_or_default();
        let key = format!("{namespace}/{}", meta.name.clone().unwrap_or_default());
        let spec = pod.spec.as_ref();
        let ports = spec
            .into_iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let host = p.host_port.filter(|h| *h > 0)?;
                let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                Some((proto, p.host_ip.clone().unwrap_or_default(), host))
            })
            .collect();
        let requests = resources::pod_requests(&pod);
        let node_constrained = spec.is_some_and(|s| {
            s.node_selector.as_ref().is_some_and(|n| !n.is_empty())
                || s.affinity
                    .as_ref()
                    .and_then(|a| a.node_affinity.as_ref())
                    .is_some_and(|a| {
                        a.required_during_scheduling_ignored_during_execution
                            .is_some()
                    })
        });
        PodInfo {
            key,
            namespace,
            labels: meta.labels.clone().unwrap_or_default(),
            priority: spec.and_then(|s| s.priority).unwrap_or(0),
            core: core_amounts(&requests),
            only_core: requests.keys().all(|k| k == CPU || k == MEMORY),
            requests,
            node_constrained,
            ports,
            terminating: meta.deletion_timestamp.is_some(),
            pod,
        }
    }

    pub fn affinity(&self) -> Option<&Affinity> {
        self.pod.spec.as_ref()?.affinity.as_ref()
    }

    /// The pod's required anti-affinity terms (existing pods' terms repel newcomers).
    pub fn required_anti_affinity(&self) -> &[PodAffinityTerm] {
        self.affinity()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or(&[])
    }
}

fn core_amounts(r: &Resources) -> (i64, i64) {
    let get = |k: &str| r.get(k).copied().unwrap_or(0);
    (get(CPU), get(MEMORY))
}

/// What every attempt reads of a Node, extracted once per Node version: a pod with no
/// tolerations, selectors or extended resources is then judged from this record and the
/// node's aggregates alone, without walking the Node object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    /// The Ready condition is True.
    pub ready: bool,
    pub cordoned: bool,
    /// Some taint has effect NoSchedule or NoExecute.
    pub hard_taints: bool,
    /// Some taint has effect PreferNoSchedule.
    pub soft_taints: bool,
    pub has_images: bool,
    /// Allocatable cpu (millicores), memory and pods.
    pub cpu: i64,
    pub memory: i64,
    pub pods: i64,
}

impl NodeFacts {
    fn of(node: &Node, allocatable: &Resources) -> NodeFacts {
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let taints = spec.and_then(|s| s.taints.as_deref()).unwrap_or(&[]);
        let get = |k: &str| allocatable.get(k).copied().unwrap_or(0);
        NodeFacts {
            ready: status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "True"),
            cordoned: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            hard_taints: taints
                .iter()
                .any(|t| t.effect == "NoSchedule" || t.effect == "NoExecute"),
            soft_taints: taints.iter().any(|t| t.effect == "PreferNoSchedule"),
            has_images: status
                .and_then(|s| s.images.as_ref())
                .is_some_and(|i| !i.is_empty()),
            cpu: get(CPU),
            memory: get(MEMORY),
            pods: get(PODS),
        }
    }
}

/// One node and the aggregates of the pods on it.
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    pub name: String,
    pub node: Option<Arc<Node>>,
    /// `status.allocatable` of `node`, parsed once per Node version rather than per attempt.
    allocatable: Resources,
    pub facts: NodeFacts,
    pub requested: Resources,
    /// cpu and memory of `requested`, as integers for the common fit check.
    pub requested_core: (i64, i64),
    /// cpu and memory with zero requests counted at the scoring defaults.
    pub non_zero: (i64, i64),
    pub ports: HashMap<HostPort, usize>,
    pub pods: BTreeMap<String, Arc<PodInfo>>,
}

impl NodeInfo {
    /// A node known by name only, as yet without its Node object or pods.
    pub fn new(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.node.as_ref()?.metadata.labels.as_ref()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels()?.get(key).map(String::as_str)
    }

    pub fn allocatable(&self) -> &Resources {
        &self.allocatable
    }

    /// Sets (or with `None`, forgets) the Node object, keeping what is derived from it.
    pub fn set_node(&mut self, node: Option<Arc<Node>>) {
        self.allocatable = resources::to_resources(
            node.as_ref()
                .and_then(|n| n.status.as_ref())
                .and_then(|s| s.allocatable.as_ref()),
        );
        self.facts = node
            .as_deref()
            .map(|n| NodeFacts::of(n, &self.allocatable))
            .unwrap_or_default();
        self.node = node;
    }

    pub fn add_pod(&mut self, p: Arc<PodInfo>) {
        resources::add(&mut self.requested, &p.requests);
        self.requested_core = core_amounts(&self.requested);
        let (c, m) = resources::non_zero(&p.requests);
        self.non_zero.0 += c;
        self.non_zero.1 += m;
        for port in &p.ports {
            *self.ports.entry(port.clone()).or_insert(0) += 1;
        }
        self.pods.insert(p.key.clone(), p);
    }

    pub fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let p = self.pods.remove(key)?;
        resources::sub(&mut self.requested, &p.requests);
        self.requested_core = core_amounts(&self.requested);
        let (c, m) = resources::non_zero(&p.requests);
        self.non_zero.0 -= c;
        self.non_zero.1 -= m;
        for port in &p.ports {
            if let Some(n) = self.ports.get_mut(port) {
                *n -= 1;
                if *n == 0 {
                    self.ports.remove(port);
                }
            }
        }
        Some(p)
    }
}

/// Whether a pod has finished and no longer holds anything on its node.
pub fn terminated(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    matches!(phase, Some("Succeeded") | Some("Failed"))
}

#[derive(Debug, Default)]
pub struct Cache {
    pub nodes: BTreeMap<String, NodeInfo>,
    /// pod key -> the node it is on (bound or assumed).
    placed: HashMap<String, String>,
    /// Pods placed by this scheduler whose binding the watch has not confirmed yet.
    assumed: HashSet<String>,
    /// Placed pods with required anti-affinity: the only existing pods a newcomer must
    /// be checked against, kept apart so that check does not scan every pod.
    pub with_anti_affinity: HashMap<String, Arc<PodInfo>>,
    /// Pending pods nominated to a node by preemption: pods of lower or equal priority
    /// must leave them the room the victims free.
    nominated: HashMap<String, (String, Arc<PodInfo>)>,
    /// The claims and volumes pods mount, for the volume filter.
    pub volumes: Volumes,
}

impl Cache {
    /// Adds or replaces a node; returns whether anything the filters read changed.
    pub fn set_node(&mut self, node: Arc<Node>) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self
            .nodes
            .entry(name.clone())
            .or_insert_with(|| NodeInfo::new(&name));
        let changed = info
            .node
            .as_ref()
            .is_none_or(|old| scheduling_view(old) != scheduling_view(&node));
        info.set_node(Some(node));
        changed
    }

    pub fn remove_node(&mut self, name: &str) {
        if let Some(info) = self.nodes.get_mut(name) {
            info.set_node(None);
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
    }

    /// Records a pod bound to `node` (from the watch, or assumed by the scheduler).
    /// Returns true when the pod was not known on that node before.
    pub fn place(&mut self, info: Arc<PodInfo>, node: &str, assumed: bool) -> bool {
        let key = info.key.clone();
        let known = self.placed.get(&key).is_some_and(|n| n == node);
        self.remove(&key);
        self.nominated.remove(&key);
        if assumed {
            self.assumed.insert(key.clone());
        }
        if !info.required_anti_affinity().is_empty() {
            self.with_anti_affinity.insert(key.clone(), info.clone());
        }
        self.placed.insert(key, node.to_string());
        self.nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeInfo::new(node))
            .add_pod(info);
        !known
    }

    /// Forgets a pod; returns whether it was placed on a node.
    pub fn remove(&mut self, key: &str) -> bool {
        self.assumed.remove(key);
        self.nominated.remove(key);
        self.with_anti_affinity.remove(key);
        let Some(node) = self.placed.remove(key) else {
            return false;
        };
        if let Some(info) = self.nodes.get_mut(&node) {
            info.remove_pod(key);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(&node);
            }
        }
        true
    }

    pub fn nominate(&mut self, info: Arc<PodInfo>, node: &str) {
        self.nominated
            .insert(info.key.clone(), (node.to_string(), info));
    }

    pub fn unnominate(&mut self, key: &str) {
        self.nominated.remove(key);
    }

    /// The node as `pod` must see it: with the pods nominated there that are at least as
    /// important counted as if already placed.
    pub fn with_nominated<'a>(
        &self,
        pod: &PodInfo,
        info: &'a NodeInfo,
    ) -> std::borrow::Cow<'a, NodeInfo> {
        let mut view = std::borrow::Cow::Borrowed(info);
        for (key, (node, p)) in &self.nominated {
            if node == &info.name && key != &pod.key && p.priority >= pod.priority {
                view.to_mut().add_pod(p.clone());
            }
        }
        view
    }

    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains(key)
    }

    /// Where a pod is placed, if anywhere.
    pub fn node_of(&self, key: &str) -> Option<&str> {
        self.placed.get(key).map(String::as_str)
    }
}

/// The parts of a Node that filters and scores read; heartbeats that change nothing else
/// must not wake every unschedulable pod.
fn scheduling_view(n: &Node) -> serde_json::Value {
    let status = n.status.as_ref();
    let conditions: Vec<(String, String)> = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| (c.type_.clone(), c.status.clone()))
        .collect();
    serde_json::json!({
        "labels": n.metadata.labels,
        "spec": n.spec,
        "allocatable": status.and_then(|s| s.allocatable.as_ref()),
        "conditions": conditions,
        "images": status.and_then(|s| s.images.as_ref()).map(|i| i.len()),
    })
}
