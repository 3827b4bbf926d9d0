//! End-to-end: the workload controllers of a real `k1s server`, driven by the real kubectl:
//! rollout status, history and undo, describe's events, and cascading deletes. The server
//! runs without its node agent, so a helper thread plays the kubelet and marks pods Ready
//! through `kubectl patch --subresource=status`.

mod common;
use common::{wait_for, Background, TestServer};
use std::time::Duration;

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.local/web:1.0
"#;

/// Marks every pod Ready until dropped.
fn fake_kubelet(s: &TestServer) -> Background {
    let k = s.kubectl_for_thread();
    let ready = r#"{"status":{"phase":"Running","conditions":[{"type":"Ready","status":"True"}]}}"#;
    let tmpl = r#"{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}"#;
    Background::every(Duration::from_millis(100), move || {
        let pods = k.out(&["get", "pods", "-o", &format!("jsonpath={tmpl}")], None);
        for line in pods.lines() {
            let mut parts = line.split_whitespace();
            if let (Some(name), Some("Pending")) = (parts.next(), parts.next()) {
                let patch = ["patch", "pod", name, "--subresource=status", "--type=merge"];
                k.out(&[&patch[..], &["-p", ready]].concat(), None);
            }
        }
    })
}

#[test]
fn rollout_status_history_undo_and_describe() {
    let s = TestServer::start();
    let _kubelet = fake_kubelet(&s);
    s.k_in(&["apply", "-f", "-"], DEPLOY);
    let out = s.k(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let ready = s.k(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.status.readyReplicas}/{.status.updatedReplicas}",
    ]);
    assert_eq!(ready, "3/3");

    s.k(&["set", "image", "deploy/web", "web=registry.local/web:2.0"]);
    let out = s.k(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let history = s.k(&["rollout", "history", "deploy/web"]);
    assert!(history.contains("REVISION"), "{history}");
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let rev1 = s.k(&["rollout", "history", "deploy/web", "--revision=1"]);
    assert!(rev1.contains("registry.local/web:1.0"), "{rev1}");

    let out = s.k(&["rollout", "undo", "deploy/web"]);
    assert!(out.contains("rolled back"), "{out}");
    let out = s.k(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    let image = s.k(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "registry.local/web:1.0");
    let history = s.k(&["rollout", "history", "deploy/web"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");

    let describe = s.k(&["describe", "deploy", "web"]);
    for want in [
        "ScalingReplicaSet",
        "Available",
        "MinimumReplicasAvailable",
        "NewReplicaSetAvailable",
        "deployment-controller",
    ] {
        assert!(describe.contains(want), "missing {want}:\n{describe}");
    }
    let rs = s.k(&[
        "get",
        "rs",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let describe = s.k(&["describe", "rs", &rs]);
    assert!(describe.contains("SuccessfulCreate"), "{describe}");

    // Scale through kubectl, then pause: a template change makes no new set.
    s.k(&["scale", "deploy/web", "--replicas=5"]);
    s.k(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    s.k(&["rollout", "pause", "deploy/web"]);
    s.k(&["set", "image", "deploy/web", "web=registry.local/web:3.0"]);
    std::thread::sleep(Duration::from_millis(500));
    let sets = s.k(&["get", "rs", "-l", "app=web", "-o", "name"]);
    assert_eq!(sets.lines().count(), 2, "{sets}");
    s.k(&["rollout", "resume", "deploy/web"]);
    s.k(&["rollout", "status", "deploy/web", "--timeout=60s"]);
    let sets = s.k(&["get", "rs", "-l", "app=web", "-o", "name"]);
    assert_eq!(sets.lines().count(), 3, "{sets}");
}

#[test]
fn kubectl_delete_cascades() {
    let s = TestServer::start();
    s.k_in(&["apply", "-f", "-"], DEPLOY);
    let count = |what: &str| {
        s.k(&["get", what, "-l", "app=web", "-o", "name"])
            .lines()
            .count()
    };
    wait_for("3 pods", 30, || count("pods") == 3);
    // Orphan: the set goes, its pods stay; the deployment makes the set again (same name,
    // new uid), which adopts the three orphans instead of making new pods.
    let uids = |what: &str, path: &str| {
        s.k(&[
            "get",
            what,
            "-l",
            "app=web",
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    let old_uid = uids("rs", "{.items[*].metadata.uid}");
    let rs = s.k(&["get", "rs", "-l", "app=web", "-o", "name"]);
    s.k(&["delete", rs.trim(), "--cascade=orphan"]);
    wait_for("a new set", 30, || {
        let now = uids("rs", "{.items[*].metadata.uid}");
        !now.is_empty() && !now.contains(&old_uid)
    });
    let new_uid = uids("rs", "{.items[*].metadata.uid}");
    wait_for("adoption", 30, || {
        let owners = uids("pods", "{.items[*].metadata.ownerReferences[0].uid}");
        owners.split_whitespace().filter(|u| *u == new_uid).count() == 3
    });
    assert_eq!(count("pods"), 3);
    // Background (kubectl's default): everything goes.
    s.k(&["delete", "deploy", "web"]);
    wait_for("cascade", 30, || count("rs") == 0 && count("pods") == 0);
    // Foreground: kubectl waits until the dependents are gone.
    s.k_in(&["apply", "-f", "-"], DEPLOY);
    wait_for("3 pods again", 30, || count("pods") == 3);
    let out = s.k(&["delete", "deploy", "web", "--cascade=foreground"]);
    assert!(out.contains("deleted"), "{out}");
    wait_for("foreground cascade", 30, || {
        count("rs") == 0 && count("pods") == 0 && !s.kubectl(&["get", "deploy", "web"]).0
    });
    // A default service account in every namespace.
    s.k(&["create", "namespace", "team"]);
    wait_for("default service account", 30, || {
        s.kubectl(&["get", "sa", "default", "-n", "team"]).0
    });
}
