//! Builders for the scheduler's unit tests: nodes and pods from JSON fragments merged onto
//! sensible defaults (a Ready node with 4 cpu, 8Gi, 110 pods; a pod with one container).

use super::cache::{Cache, NodeInfo, PodInfo};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

pub fn node(name: &str, extra: Value) -> Node {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110", "ephemeral-storage": "10Gi"},
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    });
    merge(&mut n, extra);
    serde_json::from_value(n).expect("node")
}

pub fn pod_obj(name: &str, extra: Value) -> Pod {
    let mut p = json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    });
    merge(&mut p, extra);
    serde_json::from_value(p).expect("pod")
}

pub fn pod(name: &str, extra: Value) -> PodInfo {
    PodInfo::new(Arc::new(pod_obj(name, extra)))
}

/// A pod requesting `cpu` and `memory`.
pub fn sized(name: &str, cpu: &str, memory: &str, extra: Value) -> PodInfo {
    let mut e = json!({"spec": {"containers": [{"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}});
    merge(&mut e, extra);
    pod(name, e)
}

pub fn info(node: Node) -> NodeInfo {
    let mut info = NodeInfo::new(node.metadata.name.as_deref().unwrap_or_default());
    info.set_node(Some(Arc::new(node)));
    info
}

/// A cache holding `nodes` and the `pods` placed on the named nodes.
pub fn cache(nodes: Vec<Node>, pods: Vec<(&str, PodInfo)>) -> Cache {
    let mut c = Cache::default();
    for n in nodes {
        c.set_node(Arc::new(n));
    }
    for (node, p) in pods {
        c.place(Arc::new(p), node, false);
    }
    c
}
