//! The node agent's registration, seen from kubectl: the server's own Node with its labels,
//! taints, capacity and pod CIDR, Ready once it has a CIDR, and its Lease renewed.

mod common;

use common::TestServer;
use std::time::{Duration, Instant};

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn server_registers_its_node() {
    let s = TestServer::start_with(&[
        "--node-name",
        "edge-1",
        "--node-ip",
        "192.0.2.7",
        "--node-label",
        "zone=attic,tier=edge",
        "--node-taint",
        "dedicated=gpu:NoSchedule",
        "--cluster-cidr",
        "10.99.0.0/16",
        "--kubelet-port",
        "0",
    ]);
    wait_for("the node to be Ready", || {
        let (ok, out, _) = s.kubectl(&[
            "get",
            "node",
            "edge-1",
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]);
        ok && out == "True"
    });
    let table = s.k(&["get", "nodes"]);
    assert!(table.contains("edge-1"), "{table}");
    assert!(table.contains("Ready"), "{table}");
    assert!(table.contains("control-plane"), "{table}");

    let node: serde_json::Value =
        serde_json::from_str(&s.k(&["get", "node", "edge-1", "-o", "json"])).unwrap();
    assert_eq!(node["spec"]["podCIDR"], "10.99.0.0/24");
    assert_eq!(node["spec"]["podCIDRs"][0], "10.99.0.0/24");
    let labels = &node["metadata"]["labels"];
    assert_eq!(labels["zone"], "attic");
    assert_eq!(labels["tier"], "edge");
    assert_eq!(labels["kubernetes.io/hostname"], "edge-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(node["spec"]["taints"][0]["key"], "dedicated");
    assert_eq!(node["spec"]["taints"][0]["effect"], "NoSchedule");
    let status = &node["status"];
    assert_eq!(status["addresses"][0]["type"], "InternalIP");
    assert_eq!(status["addresses"][0]["address"], "192.0.2.7");
    assert_eq!(status["allocatable"]["pods"], "110");
    assert!(
        status["capacity"]["cpu"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert_eq!(status["nodeInfo"]["operatingSystem"], "linux");
    assert!(
        status["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .unwrap()
            > 0
    );
    for kind in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        let c = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == kind)
            .unwrap_or_else(|| panic!("condition {kind}"));
        assert_eq!(c["status"], "False");
    }

    let lease: serde_json::Value = serde_json::from_str(&s.k(&[
        "get",
        "lease",
        "-n",
        "kube-node-lease",
        "edge-1",
        "-o",
        "json",
    ]))
    .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "edge-1");
    assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(lease["metadata"]["ownerReferences"][0]["kind"], "Node");
    assert_eq!(
        lease["metadata"]["ownerReferences"][0]["uid"],
        node["metadata"]["uid"]
    );
}

#[test]
fn restart_keeps_the_node_and_an_admins_changes() {
    let mut s = TestServer::start_with(&["--node-name", "edge-2", "--kubelet-port", "0"]);
    wait_for("the pod CIDR", || {
        let (ok, out, _) = s.kubectl(&["get", "node", "edge-2", "-o", "jsonpath={.spec.podCIDR}"]);
        ok && !out.is_empty()
    });
    s.k(&["cordon", "edge-2"]);
    s.k(&["label", "node", "edge-2", "owner=me"]);
    let uid = s.k(&["get", "node", "edge-2", "-o", "jsonpath={.metadata.uid}"]);
    s.stop();
    s.spawn();
    let node: serde_json::Value =
        serde_json::from_str(&s.k(&["get", "node", "edge-2", "-o", "json"])).unwrap();
    assert_eq!(node["metadata"]["uid"], uid.as_str());
    assert_eq!(node["spec"]["unschedulable"], true);
    assert_eq!(node["metadata"]["labels"]["owner"], "me");
    assert_eq!(node["spec"]["podCIDR"], "10.42.0.0/24");
}

#[test]
fn bad_node_flags_are_refused_at_start() {
    for (flag, value, needle) in [
        ("--node-taint", "dedicated=gpu", "not a taint"),
        ("--node-taint", "dedicated=gpu:Sometimes", "effect"),
        ("--node-label", "no-equals-sign", "not a label"),
        ("--node-label", "bad key=x", "label"),
        ("--node-ip", "300.1.1.1", "invalid"),
    ] {
        let out = std::process::Command::new(common::k1s_bin())
            .args(["server", "--config", "/dev/null", flag, value])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flag} {value} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{flag} {value}: {err}");
    }
}
