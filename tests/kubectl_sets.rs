//! End-to-end: StatefulSets and DaemonSets of a real `k1s server`, driven by the real
//! kubectl: apply, `get` columns, `rollout status`, `rollout history` and `rollout undo`.
//! The server runs without its node agent (its scheduler still binds pods to the Nodes the
//! test registers), so a helper thread plays the kubelet: it marks bound pods Ready and
//! finishes the graceful deletion of pods being deleted.

mod common;
use common::{Background, TestServer};
use std::time::Duration;

const NODES: &str = r#"
apiVersion: v1
kind: Node
metadata:
  name: edge-1
  labels: {kubernetes.io/hostname: edge-1}
---
apiVersion: v1
kind: Node
metadata:
  name: edge-2
  labels: {kubernetes.io/hostname: edge-2}
"#;

const NODE_STATUS: &str = r#"{"status":{"capacity":{"cpu":"4","memory":"8Gi","pods":"110"},"allocatable":{"cpu":"4","memory":"8Gi","pods":"110"},"conditions":[{"type":"Ready","status":"True","reason":"KubeletReady","message":"ready"}]}}"#;

const SETS: &str = r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 3
  serviceName: web
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:1.0
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      containers:
      - name: agent
        image: registry.local/agent:1.0
"#;

/// Marks bound pods Ready and completes deletions, until dropped.
fn fake_kubelet(s: &TestServer) -> Background {
    let k = s.kubectl_for_thread();
    let ready = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    let tmpl = r#"{range .items[*]}{.metadata.name} {.status.phase} {.spec.nodeName} {.metadata.deletionTimestamp}{"\n"}{end}"#;
    Background::every(Duration::from_millis(100), move || {
        let pods = k.out(&["get", "pods", "-o", &format!("jsonpath={tmpl}")], None);
        for line in pods.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            match f.as_slice() {
                [name, _, _, _deleting] => {
                    let delete = ["delete", "pod", name, "--grace-period=0", "--force"];
                    k.out(&[&delete[..], &["--wait=false"]].concat(), None);
                }
                [name, "Pending", _node] => {
                    let patch = ["patch", "pod", name, "--subresource=status", "--type=merge"];
                    k.out(&[&patch[..], &["-p", ready]].concat(), None);
                }
                _ => {}
            }
        }
    })
}

fn revisions(history: &str) -> Vec<String> {
    history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

fn rolled_out(s: &TestServer, what: &str) {
    let out = s.k(&["rollout", "status", what, "--timeout=90s"]);
    assert!(
        out.contains("successfully rolled out") || out.contains("roll out complete"),
        "{what}: {out}"
    );
}

#[test]
fn statefulset_and_daemonset_with_kubectl() {
    let s = TestServer::start();
    s.k_in(&["apply", "-f", "-"], NODES);
    for n in ["edge-1", "edge-2"] {
        s.k(&[
            "patch",
            "node",
            n,
            "--subresource=status",
            "--type=merge",
            "-p",
            NODE_STATUS,
        ]);
    }
    let _kubelet = fake_kubelet(&s);
    s.k_in(&["apply", "-f", "-"], SETS);
    rolled_out(&s, "statefulset/web");
    rolled_out(&s, "daemonset/agent");

    // Columns as upstream prints them.
    let sts = s.k(&["get", "statefulset", "web"]);
    let mut lines = sts.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["NAME", "READY", "AGE"],
        "{sts}"
    );
    assert_eq!(
        lines
            .next()
            .unwrap()
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>(),
        ["web", "3/3"],
        "{sts}"
    );
    let ds = s.k(&["get", "daemonset", "agent"]);
    let mut lines = ds.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ],
        "{ds}"
    );
    assert_eq!(
        lines
            .next()
            .unwrap()
            .split_whitespace()
            .take(7)
            .collect::<Vec<_>>(),
        ["agent", "2", "2", "2", "2", "2", "<none>"],
        "{ds}"
    );
    let nodes = s.k(&[
        "get",
        "pods",
        "-l",
        "app=agent",
        "-o",
        "jsonpath={.items[*].spec.nodeName}",
    ]);
    let mut nodes: Vec<&str> = nodes.split_whitespace().collect();
    nodes.sort();
    assert_eq!(
        nodes,
        ["edge-1", "edge-2"],
        "one daemon pod bound to each node"
    );
    let host = s.k(&[
        "get",
        "pod",
        "web-1",
        "-o",
        "jsonpath={.spec.hostname}.{.spec.subdomain}",
    ]);
    assert_eq!(host, "web-1.web");

    for (what, container, image) in [
        ("statefulset/web", "web", "registry.local/web"),
        ("daemonset/agent", "agent", "registry.local/agent"),
    ] {
        s.k(&["set", "image", what, &format!("{container}={image}:2.0")]);
        rolled_out(&s, what);
        let history = s.k(&["rollout", "history", what]);
        assert_eq!(revisions(&history), ["1", "2"], "{what}: {history}");
        let rev1 = s.k(&["rollout", "history", what, "--revision=1"]);
        assert!(rev1.contains(&format!("{image}:1.0")), "{what}: {rev1}");

        let out = s.k(&["rollout", "undo", what]);
        assert!(out.contains("rolled back"), "{what}: {out}");
        rolled_out(&s, what);
        let current = s.k(&[
            "get",
            what,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ]);
        assert_eq!(current, format!("{image}:1.0"), "{what}");
        let history = s.k(&["rollout", "history", what]);
        assert_eq!(revisions(&history), ["2", "3"], "{what}: {history}");
        let app = what.split('/').nth(1).unwrap();
        let images = s.k(&[
            "get",
            "pods",
            "-l",
            &format!("app={app}"),
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        assert!(
            images
                .split_whitespace()
                .all(|i| i == format!("{image}:1.0")),
            "{what}: {images}"
        );
    }
    let events = s.k(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(
        events.contains("create Pod web-0 in StatefulSet web successful"),
        "{events}"
    );
    let describe = s.k(&["describe", "daemonset", "agent"]);
    assert!(describe.contains("SuccessfulCreate"), "{describe}");
}
