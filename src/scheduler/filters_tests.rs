//! Unit tests of the node-local filters: a pod and a node in, a verdict out.

use super::*;
use crate::scheduler::testutil::{info, node, pod, sized};
use serde_json::json;
use std::sync::Arc;

#[test]
fn unschedulable_node_unless_tolerated() {
    let n = node("n", json!({"spec": {"unschedulable": true}}));
    assert_eq!(
        node_unschedulable(&pod("p", json!({})), &n),
        Err(Reject::hard("node(s) were unschedulable"))
    );
    let tolerant = pod(
        "p",
        json!({"spec": {"tolerations": [{"key": UNSCHEDULABLE_TAINT, "operator": "Exists", "effect": "NoSchedule"}]}}),
    );
    assert_eq!(node_unschedulable(&tolerant, &n), Ok(()));
}

#[test]
fn requested_node_name() {
    let n = node("n", json!({}));
    assert!(node_name(&pod("p", json!({"spec": {"nodeName": "n"}})), &n).is_ok());
    assert!(node_name(&pod("p", json!({"spec": {"nodeName": "other"}})), &n).is_err());
    assert!(node_name(&pod("p", json!({})), &n).is_ok());
}

#[test]
fn taints_need_tolerations_except_prefer_no_schedule() {
    let n = node(
        "n",
        json!({"spec": {"taints": [
            {"key": "soft", "effect": "PreferNoSchedule"},
            {"key": "gpu", "value": "a100", "effect": "NoExecute"}]}}),
    );
    assert_eq!(
        taints(&pod("p", json!({})), &n),
        Err(Reject::hard("node(s) had untolerated taint {gpu: a100}"))
    );
    let ok = pod(
        "p",
        json!({"spec": {"tolerations": [{"key": "gpu", "operator": "Equal", "value": "a100"}]}}),
    );
    assert_eq!(taints(&ok, &n), Ok(()));
}

#[test]
fn not_ready_nodes_only_for_tolerating_pods() {
    let down = node(
        "n",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    let unknown = node(
        "n",
        json!({"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
    );
    assert_eq!(
        ready(&pod("p", json!({})), &down),
        Err(Reject::hard(
            "node(s) had untolerated taint {node.kubernetes.io/not-ready: }"
        ))
    );
    assert!(ready(&pod("p", json!({})), &unknown).unwrap_err().reasons[0].contains("unreachable"));
    let tolerant = pod(
        "p",
        json!({"spec": {"tolerations": [{"key": NOT_READY_TAINT, "operator": "Exists"}]}}),
    );
    assert_eq!(ready(&tolerant, &down), Ok(()));
    assert_eq!(ready(&pod("p", json!({})), &node("n", json!({}))), Ok(()));
}

#[test]
fn node_selector_and_required_affinity() {
    let n = node("n", json!({"metadata": {"labels": {"disk": "ssd"}}}));
    assert!(node_affinity(
        &pod("p", json!({"spec": {"nodeSelector": {"disk": "ssd"}}})),
        &n
    )
    .is_ok());
    let wrong = pod("p", json!({"spec": {"nodeSelector": {"disk": "hdd"}}}));
    assert_eq!(
        node_affinity(&wrong, &n),
        Err(Reject::hard(
            "node(s) didn't match Pod's node affinity/selector"
        ))
    );
    let affinity = |op: &str| {
        pod(
            "p",
            json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
                {"nodeSelectorTerms": [{"matchExpressions": [{"key": "disk", "operator": op, "values": ["ssd"]}]}]}}}}}),
        )
    };
    assert!(node_affinity(&affinity("In"), &n).is_ok());
    assert!(node_affinity(&affinity("NotIn"), &n).is_err());
}

#[test]
fn host_port_conflicts() {
    let mut n = info(node("n", json!({})));
    let web = |name: &str, ip: &str, proto: &str| {
        pod(
            name,
            json!({"spec": {"containers": [{"name": "c", "image": "x",
                "ports": [{"containerPort": 80, "hostPort": 8080, "hostIP": ip, "protocol": proto}]}]}}),
        )
    };
    n.add_pod(Arc::new(web("a", "10.0.0.1", "TCP")));
    assert!(host_ports(&web("b", "10.0.0.2", "TCP"), &n).is_ok());
    assert!(host_ports(&web("b", "10.0.0.1", "UDP"), &n).is_ok());
    assert!(host_ports(&web("b", "10.0.0.1", "TCP"), &n).is_err());
    assert!(host_ports(&web("b", "0.0.0.0", "TCP"), &n).is_err());
    n.remove_pod("default/a");
    assert!(host_ports(&web("b", "10.0.0.1", "TCP"), &n).is_ok());
}

#[test]
fn resources_fit_against_allocatable() {
    let mut n = info(node(
        "n",
        json!({"status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "2", "example.com/dongle": "1"}}}),
    ));
    n.add_pod(Arc::new(sized("a", "1500m", "512Mi", json!({}))));
    assert!(fits(&sized("b", "500m", "512Mi", json!({})), &n).is_ok());
    assert_eq!(
        fits(&sized("b", "600m", "600Mi", json!({})), &n),
        Err(Reject {
            reasons: vec!["Insufficient cpu".into(), "Insufficient memory".into()],
            unresolvable: false
        })
    );
    n.add_pod(Arc::new(sized("c", "10m", "1Mi", json!({}))));
    assert_eq!(
        fits(&sized("d", "1m", "1Mi", json!({})), &n)
            .unwrap_err()
            .reasons,
        ["Too many pods"]
    );
    n.remove_pod("default/c");
    let dongle = |n: &str| {
        pod(
            "e",
            json!({"spec": {"containers": [{"name": "c", "image": "x",
            "resources": {"requests": {"example.com/dongle": n}}}]}}),
        )
    };
    assert!(fits(&dongle("1"), &n).is_ok());
    assert_eq!(
        fits(&dongle("2"), &n).unwrap_err().reasons,
        ["Insufficient example.com/dongle"]
    );
    // terminated pods are not in the cache at all; removing frees their share
    n.remove_pod("default/a");
    assert!(fits(&sized("b", "2", "1Gi", json!({})), &n).is_ok());
}

#[test]
fn allocatable_follows_node_updates() {
    // the cache parses allocatable once per Node version: a resize must be seen at once
    let small = node("n", json!({"status": {"allocatable": {"cpu": "1"}}}));
    let mut c = crate::scheduler::testutil::cache(vec![small], vec![]);
    let big_pod = sized("p", "2", "1Mi", json!({}));
    assert_eq!(
        fits(&big_pod, &c.nodes["n"]).unwrap_err().reasons,
        ["Insufficient cpu"]
    );
    c.set_node(Arc::new(node(
        "n",
        json!({"status": {"allocatable": {"cpu": "4"}}}),
    )));
    assert!(fits(&big_pod, &c.nodes["n"]).is_ok());
    // a node gone with pods still on it keeps its aggregates but offers nothing
    c.place(Arc::new(sized("q", "1", "1Mi", json!({}))), "n", false);
    c.remove_node("n");
    assert!(c.nodes["n"].allocatable().is_empty());
    assert!(run_all(&big_pod, &c.nodes["n"]).is_err());
}

#[test]
fn node_facts_follow_node_updates() {
    // run_all skips the filters a node's facts rule out: the facts must track the Node
    let not_ready = node(
        "n",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    );
    let mut c = crate::scheduler::testutil::cache(vec![not_ready], vec![]);
    let p = pod("p", json!({}));
    assert_eq!(
        run_all(&p, &c.nodes["n"]).unwrap_err().reasons,
        ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"]
    );
    let tainted = node(
        "n",
        json!({"spec": {"taints": [{"key": "gpu", "value": "yes", "effect": "NoExecute"}]}}),
    );
    c.set_node(Arc::new(tainted));
    assert_eq!(
        run_all(&p, &c.nodes["n"]).unwrap_err().reasons,
        ["node(s) had untolerated taint {gpu: yes}"]
    );
    c.set_node(Arc::new(node(
        "n",
        json!({"spec": {"unschedulable": true}}),
    )));
    assert_eq!(
        run_all(&p, &c.nodes["n"]).unwrap_err().reasons,
        ["node(s) were unschedulable"]
    );
    c.set_node(Arc::new(node("n", json!({}))));
    assert_eq!(run_all(&p, &c.nodes["n"]), Ok(()));
    let picky = pod("q", json!({"spec": {"nodeSelector": {"disk": "ssd"}}}));
    assert!(picky.node_constrained && !p.node_constrained);
    assert_eq!(
        run_all(&picky, &c.nodes["n"]).unwrap_err().reasons,
        ["node(s) didn't match Pod's node affinity/selector"]
    );
}

#[test]
fn first_failing_filter_wins() {
    let n = info(node(
        "n",
        json!({"spec": {"unschedulable": true, "taints": [{"key": "x", "effect": "NoSchedule"}]}}),
    ));
    assert_eq!(
        run_all(&pod("p", json!({})), &n).unwrap_err().reasons,
        ["node(s) were unschedulable"]
    );
}
