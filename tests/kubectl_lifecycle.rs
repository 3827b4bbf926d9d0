//! End-to-end with the real kubectl against a real `k1s server` (without its node agent):
//! the default `local-path` StorageClass, static PV/PVC binding as `kubectl get pv,pvc`
//! shows it, and `kubectl drain` against a PodDisruptionBudget. A helper thread plays the
//! kubelet of two registered nodes: it renews their leases, marks pods bound to them
//! Running and Ready, and finishes pods being deleted.

mod common;
use common::{wait_for, Background, TestServer};
use std::time::{Duration, Instant};

fn lease(node: &str) -> String {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ");
    format!(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {{name: {node}, namespace: kube-node-lease}}\n\
         spec: {{holderIdentity: {node}, leaseDurationSeconds: 40, renewTime: \"{now}\"}}\n"
    )
}

/// Registers a node as a kubelet would: the Node, its Ready status, its Lease.
fn register_node(s: &TestServer, name: &str) {
    s.k_in(
        &["apply", "-f", "-"],
        &format!("apiVersion: v1\nkind: Node\nmetadata:\n  name: {name}\n  labels: {{kubernetes.io/hostname: {name}}}\n"),
    );
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    let status = format!(
        r#"{{"status":{{"conditions":[{{"type":"Ready","status":"True","reason":"KubeletReady","message":"ok","lastHeartbeatTime":"{now}","lastTransitionTime":"{now}"}}],"allocatable":{{"cpu":"4","memory":"8Gi","pods":"110"}},"capacity":{{"cpu":"4","memory":"8Gi","pods":"110"}}}}}}"#
    );
    s.k(&[
        "patch",
        "node",
        name,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
    s.k_in(&["apply", "-f", "-"], &lease(name));
}

/// Plays the kubelet of `nodes` until dropped.
fn fake_kubelet(s: &TestServer, nodes: &[&str]) -> Background {
    let k = s.kubectl_for_thread();
    let nodes: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    let ready = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    let tmpl = r#"{range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}"#;
    let mut renewed = Instant::now() - Duration::from_secs(60);
    Background::every(Duration::from_millis(200), move || {
        if renewed.elapsed() > Duration::from_secs(5) {
            for n in &nodes {
                k.out(&["apply", "-f", "-"], Some(&lease(n)));
            }
            renewed = Instant::now();
        }
        let pods = k.out(&["get", "pods", "-o", &format!("jsonpath={tmpl}")], None);
        for line in pods.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [name, _, node, _deleting] if nodes.iter().any(|n| n == node) => {
                    k.out(
                        &["delete", "pod", name, "--grace-period=0", "--force"],
                        None,
                    );
                }
                [name, "Pending", node] if nodes.iter().any(|n| n == node) => {
                    let patch = ["patch", "pod", name, "--subresource=status", "--type=merge"];
                    k.out(&[&patch[..], &["-p", ready]].concat(), None);
                }
                _ => {}
            }
        }
    })
}

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.local/web:1.0}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
"#;

#[test]
fn kubectl_drain_waits_for_the_disruption_budget() {
    let s = TestServer::start();
    register_node(&s, "worker-a");
    let _kubelet = fake_kubelet(&s, &["worker-a", "worker-b"]);
    s.k_in(&["apply", "-f", "-"], DEPLOY);
    wait_for("both pods ready on worker-a", 60, || {
        let out = s.k(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.currentHealthy} {.status.disruptionsAllowed}",
        ]);
        out.trim() == "2 1"
    });
    // the replacement of the first evicted pod can go only to worker-b
    register_node(&s, "worker-b");
    let (ok, out, err) = s.kubectl(&["drain", "worker-a", "--ignore-daemonsets", "--timeout=90s"]);
    assert!(ok, "drain failed:\nstdout: {out}\nstderr: {err}");
    let all = format!("{out}{err}");
    assert!(all.contains("node/worker-a cordoned"), "{all}");
    assert!(
        all.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "the budget never held an eviction back:\n{all}"
    );
    assert!(all.contains("node/worker-a drained"), "{all}");
    let nodes = s.k(&["get", "nodes"]);
    let a = nodes
        .lines()
        .find(|l| l.starts_with("worker-a"))
        .expect("worker-a listed");
    assert!(a.contains("SchedulingDisabled"), "{nodes}");
    let taints = s.k(&[
        "get",
        "node",
        "worker-a",
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert!(
        taints.contains("node.kubernetes.io/unschedulable"),
        "{taints}"
    );
    let on_b = s.k(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    assert_eq!(
        on_b.split_whitespace().collect::<Vec<_>>(),
        ["worker-b", "worker-b"],
        "{on_b}"
    );
    s.k(&["uncordon", "worker-a"]);
    wait_for("unschedulable taint removed", 20, || {
        !s.k(&[
            "get",
            "node",
            "worker-a",
            "-o",
            "jsonpath={.spec.taints[*].key}",
        ])
        .contains("unschedulable")
    });
}

const STATIC: &str = r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: static-1g}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {path: /tmp/k1s-static-1g}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: claim}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  resources: {requests: {storage: 500Mi}}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: defaulted}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

#[test]
fn kubectl_shows_the_default_class_and_bound_volumes() {
    let s = TestServer::start();
    let sc = s.k(&["get", "sc"]);
    let line = sc
        .lines()
        .find(|l| l.starts_with("local-path"))
        .unwrap_or_else(|| panic!("{sc}"));
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cols[..6],
        [
            "local-path",
            "(default)",
            "rancher.io/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ],
        "{sc}"
    );
    s.k_in(&["apply", "-f", "-"], STATIC);
    wait_for("claim bound", 20, || {
        s.k(&["get", "pvc", "claim", "-o", "jsonpath={.status.phase}"]) == "Bound"
    });
    let out = s.k(&["get", "pv,pvc"]);
    let pv = out
        .lines()
        .find(|l| l.starts_with("persistentvolume/static-1g"))
        .unwrap_or_else(|| panic!("{out}"));
    for want in ["1Gi", "RWO", "Retain", "Bound", "default/claim", "manual"] {
        assert!(pv.contains(want), "{want} missing:\n{out}");
    }
    let claim = out
        .lines()
        .find(|l| l.starts_with("persistentvolumeclaim/claim"))
        .unwrap_or_else(|| panic!("{out}"));
    for want in ["Bound", "static-1g", "1Gi", "RWO", "manual"] {
        assert!(claim.contains(want), "{want} missing:\n{out}");
    }
    // no class given: the default one, waiting for a consumer
    let defaulted = s.k(&[
        "get",
        "pvc",
        "defaulted",
        "-o",
        "jsonpath={.spec.storageClassName} {.status.phase}",
    ]);
    assert_eq!(defaulted, "local-path Pending");
    wait_for("waiting event", 20, || {
        s.k(&["describe", "pvc", "defaulted"])
            .contains("waiting for first consumer to be created before binding")
    });
}
