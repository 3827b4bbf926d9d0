//! Node lifecycle, pod GC, disruption budgets with the eviction subresource, and storage
//! (default class, local-path provisioner, PV binder) against the in-process API. No
//! kubelet runs here: tests create Nodes and Leases themselves and mark pods through
//! pods/status; time-driven controllers get a fake clock that tests move forward.

mod common;

use common::eventually;
use k1s::controllers::clock::{Clock, FakeClock};
use k1s::controllers::{disruption, localpath, nodelifecycle, podgc, pvbinder};
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, DeleteParams, EvictParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The in-process cluster, and the clock the node lifecycle and pod GC controllers read.
struct Cluster {
    base: common::inprocess::Cluster,
    clock: Arc<FakeClock>,
}

impl std::ops::Deref for Cluster {
    type Target = common::inprocess::Cluster;

    fn deref(&self) -> &Self::Target {
        &self.base
    }
}

async fn cluster() -> Cluster {
    Cluster {
        base: common::inprocess::Cluster::with_namespaces(&["default", "kube-node-lease"]).await,
        clock: Arc::new(FakeClock::default()),
    }
}

impl Cluster {
    fn node_lifecycle(&self) {
        let cfg = nodelifecycle::Config {
            monitor_period: Duration::from_millis(50),
            clock: self.clock.clone(),
            ..Default::default()
        };
        tokio::spawn(nodelifecycle::run(
            self.informers.clone(),
            cfg,
            self.cancel.clone(),
        ));
    }

    /// Wait until the node lifecycle controller has looked at `node` before the clock
    /// moves (a node's grace period counts from when the controller first hears from it):
    /// a cordon it answers with a taint proves it has.
    async fn settle(&self, node: &str) {
        for (unschedulable, tainted) in [(json!(true), true), (json!(null), false)] {
            let patch = json!({"spec": {"unschedulable": unschedulable}});
            self.nodes()
                .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .unwrap();
            eventually(10, "the controller to see the node", || async {
                let n = self.nodes().get(node).await.unwrap();
                let has = taint_keys(&n).iter().any(|t| t.contains("unschedulable"));
                (has == tainted).then_some(())
            })
            .await;
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }
}

/// A node that reports Ready (as a kubelet would) with a fresh lease.
async fn ready_node(c: &Cluster, name: &str) {
    let node: Node = serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"kubernetes.io/hostname": name}}}))
    .unwrap();
    c.nodes()
        .create(&PostParams::default(), &node)
        .await
        .unwrap();
    post_status(c, name, "True").await;
    renew_lease(c, name).await;
}

async fn post_status(c: &Cluster, name: &str, ready: &str) {
    let now = c.clock.now().to_string();
    let cond = |t: &str, s: &str| {
        json!({"type": t, "status": s, "reason": "Kubelet", "message": "",
        "lastHeartbeatTime": now, "lastTransitionTime": now})
    };
    let status = json!({"status": {
        "conditions": [cond("Ready", ready), cond("MemoryPressure", "False"),
            cond("DiskPressure", "False"), cond("PIDPressure", "False")],
        "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
    }});
    c.nodes()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn renew_lease(c: &Cluster, name: &str) {
    let api: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
            "renewTime": c.clock.now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()},
    }))
    .unwrap();
    match api.get_opt(name).await.unwrap() {
        None => {
            api.create(&PostParams::default(), &lease).await.unwrap();
        }
        Some(_) => {
            api.patch(name, &PatchParams::default(), &Patch::Merge(&lease))
                .await
                .unwrap();
        }
    }
}

/// A pod bound to `node`, marked Running and Ready.
async fn running_pod(c: &Cluster, name: &str, node: &str, tolerations: serde_json::Value) {
    let mut spec = json!({"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]});
    if !tolerations.is_null() {
        spec["tolerations"] = tolerations;
    }
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": name, "labels": {"app": "web"}}, "spec": spec}),
    )
    .unwrap();
    c.pods().create(&PostParams::default(), &pod).await.unwrap();
    mark_ready(c, name).await;
}

async fn mark_ready(c: &Cluster, name: &str) {
    let st = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
    c.pods()
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

fn taint_keys(node: &Node) -> Vec<String> {
    let mut v: Vec<String> = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .into_iter()
        .flatten()
        .map(|t| format!("{}:{}", t.key, t.effect))
        .collect();
    v.sort();
    v
}

fn condition(node: &Node, t: &str) -> (String, String) {
    let c = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == t))
        .unwrap();
    (c.status.clone(), c.reason.clone().unwrap_or_default())
}

fn pod_ready(p: &Pod) -> Option<String> {
    p.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

async fn terminating(c: &Cluster, name: &str) -> bool {
    c.pods()
        .get_opt(name)
        .await
        .unwrap()
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

#[tokio::test]
async fn silent_node_goes_unknown_tainted_and_its_pods_are_evicted_by_toleration() {
    let c = cluster().await;
    ready_node(&c, "n1").await;
    let unreachable = |secs: Option<i64>| {
        let mut t = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"});
        if let Some(s) = secs {
            t["tolerationSeconds"] = json!(s);
        }
        json!([t])
    };
    running_pod(&c, "short", "n1", unreachable(Some(30))).await;
    running_pod(&c, "default", "n1", json!(null)).await;
    running_pod(&c, "forever", "n1", unreachable(None)).await;
    c.node_lifecycle();
    c.settle("n1").await;
    // heard from recently: nothing happens
    c.clock.advance(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let n = c.nodes().get("n1").await.unwrap();
    assert_eq!(condition(&n, "Ready").0, "True");
    assert!(taint_keys(&n).is_empty());
    // silent past the grace period
    c.clock.advance(Duration::from_secs(11));
    let n = eventually(10, "node unknown and tainted", || async {
        let n = c.nodes().get("n1").await.unwrap();
        (taint_keys(&n).len() == 2).then_some(n)
    })
    .await;
    for t in ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert_eq!(
            condition(&n, t),
            ("Unknown".into(), "NodeStatusUnknown".into())
        );
    }
    let ready = n.status.as_ref().unwrap().conditions.as_ref().unwrap();
    let msg = ready
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap()
        .message
        .clone();
    assert_eq!(msg.as_deref(), Some("Kubelet stopped posting node status."));
    assert_eq!(
        taint_keys(&n),
        [
            "node.kubernetes.io/unreachable:NoExecute",
            "node.kubernetes.io/unreachable:NoSchedule"
        ]
    );
    eventually(10, "pods marked not ready", || async {
        let pods = c.pods().list(&Default::default()).await.unwrap();
        pods.items
            .iter()
            .all(|p| pod_ready(p).as_deref() == Some("False"))
            .then_some(())
    })
    .await;
    // tolerated for now
    tokio::time::sleep(Duration::from_millis(300)).await;
    for p in ["short", "default", "forever"] {
        assert!(!terminating(&c, p).await, "{p} evicted too early");
    }
    c.clock.advance(Duration::from_secs(31));
    eventually(10, "short evicted", || async {
        terminating(&c, "short").await.then_some(())
    })
    .await;
    let short = c.pods().get("short").await.unwrap();
    let conds = short.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "DisruptionTarget"
            && c.reason.as_deref() == Some("DeletionByTaintManager")));
    assert!(!terminating(&c, "default").await);
    c.clock.advance(Duration::from_secs(270));
    eventually(10, "default evicted", || async {
        terminating(&c, "default").await.then_some(())
    })
    .await;
    c.clock.advance(Duration::from_secs(3600));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!terminating(&c, "forever").await);
    // an untolerated NoExecute taint evicts at once
    running_pod(&c, "plain", "n1", json!(null)).await;
    let mut n = c.nodes().get("n1").await.unwrap();
    let mut taints = n.spec.as_ref().unwrap().taints.clone().unwrap();
    taints.push(
        serde_json::from_value(json!({"key": "example.com/broken", "effect": "NoExecute"}))
            .unwrap(),
    );
    n.spec.as_mut().unwrap().taints = Some(taints);
    c.nodes()
        .replace("n1", &PostParams::default(), &n)
        .await
        .unwrap();
    eventually(10, "plain evicted", || async {
        terminating(&c, "plain").await.then_some(())
    })
    .await;
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let evs = events.list(&Default::default()).await.unwrap();
    assert!(evs
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("TaintManagerEviction")));
}

#[tokio::test]
async fn a_node_that_comes_back_loses_its_taints_and_cordon_is_a_taint() {
    let c = cluster().await;
    ready_node(&c, "n1").await;
    c.node_lifecycle();
    c.settle("n1").await;
    c.clock.advance(Duration::from_secs(41));
    eventually(10, "node unreachable", || async {
        let n = c.nodes().get("n1").await.unwrap();
        (taint_keys(&n).len() == 2).then_some(())
    })
    .await;
    // the kubelet is back: renews its lease and posts Ready
    renew_lease(&c, "n1").await;
    post_status(&c, "n1", "True").await;
    eventually(10, "taints removed", || async {
        let n = c.nodes().get("n1").await.unwrap();
        (taint_keys(&n).is_empty() && condition(&n, "Ready").0 == "True").then_some(())
    })
    .await;
    // a kubelet reporting NotReady
    post_status(&c, "n1", "False").await;
    eventually(10, "not-ready taints", || async {
        let n = c.nodes().get("n1").await.unwrap();
        (taint_keys(&n)
            == [
                "node.kubernetes.io/not-ready:NoExecute",
                "node.kubernetes.io/not-ready:NoSchedule",
            ])
        .then_some(())
    })
    .await;
    post_status(&c, "n1", "True").await;
    // kubectl cordon sets spec.unschedulable
    let cordon = json!({"spec": {"unschedulable": true}});
    c.nodes()
        .patch("n1", &PatchParams::default(), &Patch::Merge(&cordon))
        .await
        .unwrap();
    eventually(10, "unschedulable taint", || async {
        let n = c.nodes().get("n1").await.unwrap();
        (taint_keys(&n) == ["node.kubernetes.io/unschedulable:NoSchedule"]).then_some(())
    })
    .await;
    let uncordon = json!({"spec": {"unschedulable": null}});
    c.nodes()
        .patch("n1", &PatchParams::default(), &Patch::Merge(&uncordon))
        .await
        .unwrap();
    eventually(10, "unschedulable taint removed", || async {
        let n = c.nodes().get("n1").await.unwrap();
        taint_keys(&n).is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn pod_gc_removes_orphans_after_quarantine_and_old_terminated_pods() {
    let c = cluster().await;
    ready_node(&c, "n1").await;
    ready_node(&c, "n2").await;
    running_pod(&c, "on-n1", "n1", json!(null)).await;
    running_pod(&c, "on-n2", "n2", json!(null)).await;
    for i in 1..=4 {
        let name = format!("done-{i}");
        running_pod(&c, &name, "n1", json!(null)).await;
        let st = json!({"status": {"phase": "Succeeded"}});
        c.pods()
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&st))
            .await
            .unwrap();
    }
    let cfg = podgc::Config {
        period: Duration::from_millis(50),
        terminated_threshold: 2,
        clock: c.clock.clone(),
        ..Default::default()
    };
    tokio::spawn(podgc::run(c.informers.clone(), cfg, c.cancel.clone()));
    eventually(10, "oldest terminated pods deleted", || async {
        let gone = c.pods().get_opt("done-1").await.unwrap().is_none()
            && c.pods().get_opt("done-2").await.unwrap().is_none();
        gone.then_some(())
    })
    .await;
    assert!(c.pods().get_opt("done-3").await.unwrap().is_some());
    assert!(c.pods().get_opt("done-4").await.unwrap().is_some());
    // n2 goes away: its pod stays through the quarantine, then goes
    c.nodes()
        .delete("n2", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(c.pods().get_opt("on-n2").await.unwrap().is_some());
    // the quarantine counts from when a sweep first finds the node missing, which the
    // test cannot see: move the clock past it until the pod goes
    eventually(10, "orphan deleted", || async {
        c.clock.advance(Duration::from_secs(41));
        c.pods()
            .get_opt("on-n2")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(c.pods().get_opt("on-n1").await.unwrap().is_some());
    // a terminating pod on a not-ready node marked out of service is force deleted
    c.pods()
        .delete("on-n1", &DeleteParams::default())
        .await
        .unwrap();
    assert!(terminating(&c, "on-n1").await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.pods().get_opt("on-n1").await.unwrap().is_some());
    post_status(&c, "n1", "False").await;
    let taint = json!({"spec": {"taints": [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]}});
    c.nodes()
        .patch("n1", &PatchParams::default(), &Patch::Merge(&taint))
        .await
        .unwrap();
    eventually(10, "out-of-service pod deleted", || async {
        c.pods()
            .get_opt("on-n1")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

async fn budget_status(c: &Cluster, gen: i64) -> serde_json::Value {
    let api: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), "default");
    eventually(10, "budget status", || async {
        let b = api.get("web").await.unwrap();
        let st = b.status?;
        (st.observed_generation == Some(gen)).then(|| serde_json::to_value(st).unwrap())
    })
    .await
}

/// A ReplicaSet scaled to 4 (no controller runs for it) with three ready pods it owns.
async fn owned_pods(c: &Cluster) {
    let rs: ReplicaSet = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let rs = Api::<ReplicaSet>::namespaced(c.client.clone(), "default")
        .create(&PostParams::default(), &rs)
        .await
        .unwrap();
    for i in 1..=3 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{i}"), "labels": {"app": "web"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                    "uid": rs.uid(), "controller": true}]},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }))
        .unwrap();
        c.pods().create(&PostParams::default(), &pod).await.unwrap();
        mark_ready(c, &format!("web-{i}")).await;
    }
}

#[tokio::test]
async fn budget_status_counts_as_upstream() {
    let c = cluster().await;
    owned_pods(&c).await;
    tokio::spawn(disruption::run(
        c.informers.clone(),
        disruption::Config::default(),
        c.cancel.clone(),
    ));
    let api: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &pdb).await.unwrap();
    let st = budget_status(&c, 1).await;
    assert_eq!(
        (
            st["expectedPods"].clone(),
            st["desiredHealthy"].clone(),
            st["currentHealthy"].clone(),
            st["disruptionsAllowed"].clone()
        ),
        (json!(3), json!(2), json!(3), json!(1))
    );
    assert_eq!(st["conditions"][0]["type"], "DisruptionAllowed");
    assert_eq!(st["conditions"][0]["status"], "True");
    assert_eq!(st["conditions"][0]["reason"], "SufficientPods");
    // percentages and maxUnavailable count against the controller's scale (4)
    let cases = [
        (
            json!({"minAvailable": "50%", "maxUnavailable": null}),
            4,
            2,
            1,
        ),
        (json!({"minAvailable": null, "maxUnavailable": 1}), 4, 3, 0),
        (json!({"maxUnavailable": "50%"}), 4, 2, 1),
        (json!({"maxUnavailable": "25%"}), 4, 3, 0),
    ];
    for (gen, (spec, expected, desired, allowed)) in (2..).zip(cases) {
        api.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": spec})),
        )
        .await
        .unwrap();
        let st = budget_status(&c, gen).await;
        assert_eq!(st["expectedPods"], expected, "{spec}");
        assert_eq!(st["desiredHealthy"], desired, "{spec}");
        assert_eq!(st["disruptionsAllowed"], allowed, "{spec}");
        let reason = if allowed > 0 {
            "SufficientPods"
        } else {
            "InsufficientPods"
        };
        assert_eq!(st["conditions"][0]["reason"], reason);
    }
    // a pod that stops being ready stops counting
    let st = json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}});
    c.pods()
        .patch_status("web-1", &PatchParams::default(), &Patch::Strategic(st))
        .await
        .unwrap();
    eventually(10, "healthy count drops", || async {
        let b = api.get("web").await.unwrap().status?;
        (b.current_healthy == 2).then_some(())
    })
    .await;
    // a pod without a controller makes a maxUnavailable budget fail safe
    let orphan: Pod = serde_json::from_value(
        json!({"metadata": {"name": "stray", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .unwrap();
    c.pods()
        .create(&PostParams::default(), &orphan)
        .await
        .unwrap();
    eventually(10, "sync failed", || async {
        let b = api.get("web").await.unwrap().status?;
        let cond = b.conditions?.pop()?;
        (cond.reason == "SyncFailed" && b.disruptions_allowed == 0).then_some(())
    })
    .await;
}

fn status_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn eviction_honours_the_budget() {
    let c = cluster().await;
    owned_pods(&c).await;
    tokio::spawn(disruption::run(
        c.informers.clone(),
        disruption::Config::default(),
        c.cancel.clone(),
    ));
    let api: Api<PodDisruptionBudget> = Api::namespaced(c.client.clone(), "default");
    let pdb: PodDisruptionBudget = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"minAvailable": 3, "selector": {"matchLabels": {"app": "web"}}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &pdb).await.unwrap();
    budget_status(&c, 1).await;
    let err = c
        .pods()
        .evict("web-1", &EvictParams::default())
        .await
        .unwrap_err();
    assert_eq!(
        status_code(err),
        (
            429,
            "Cannot evict pod as it would violate the pod's disruption budget.".into()
        )
    );
    assert!(!terminating(&c, "web-1").await);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"minAvailable": 2}})),
    )
    .await
    .unwrap();
    budget_status(&c, 2).await;
    // dry run: allowed, but nothing changes
    let dry = EvictParams {
        post_options: PostParams {
            dry_run: true,
            ..Default::default()
        },
        ..Default::default()
    };
    c.pods().evict("web-1", &dry).await.unwrap();
    assert!(!terminating(&c, "web-1").await);
    let b = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(b.disruptions_allowed, 1);
    assert!(b.disrupted_pods.is_none());
    // a real eviction uses the budget up
    c.pods()
        .evict("web-1", &EvictParams::default())
        .await
        .unwrap();
    assert!(terminating(&c, "web-1").await);
    let b = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(b.disruptions_allowed, 0);
    let err = c
        .pods()
        .evict("web-2", &EvictParams::default())
        .await
        .unwrap_err();
    assert_eq!(status_code(err).0, 429);
    eventually(10, "controller recounts", || async {
        let b = api.get("web").await.unwrap().status?;
        (b.current_healthy == 2 && b.disrupted_pods.is_none()).then_some(())
    })
    .await;
    // an unready pod may go while the budget is met (IfHealthyBudget)
    let unready: Pod = serde_json::from_value(json!({"metadata": {"name": "web-4", "labels": {"app": "web"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
            "uid": Api::<ReplicaSet>::namespaced(c.client.clone(), "default").get("web").await.unwrap().uid(),
            "controller": true}]},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap();
    c.pods()
        .create(&PostParams::default(), &unready)
        .await
        .unwrap();
    let st = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}});
    c.pods()
        .patch_status("web-4", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    c.pods()
        .evict("web-4", &EvictParams::default())
        .await
        .unwrap();
    // bound, so deleted gracefully: it stays a while, marked with why it goes
    let evicted = c.pods().get("web-4").await.unwrap();
    assert!(evicted.metadata.deletion_timestamp.is_some());
    let conds = evicted.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "DisruptionTarget"
            && c.reason.as_deref() == Some("EvictionByEvictionAPI")));
    // two budgets over one pod: upstream refuses with 500
    let mut second = pdb.clone();
    second.metadata.name = Some("web-too".into());
    api.create(&PostParams::default(), &second).await.unwrap();
    let err = c
        .pods()
        .evict("web-2", &EvictParams::default())
        .await
        .unwrap_err();
    let (code, msg) = status_code(err);
    assert_eq!(code, 500);
    assert!(msg.contains("more than one PodDisruptionBudget"), "{msg}");
}

fn claim(
    name: &str,
    class: Option<&str>,
    size: &str,
    extra: serde_json::Value,
) -> PersistentVolumeClaim {
    let mut spec =
        json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}});
    if let Some(c) = class {
        spec["storageClassName"] = json!(c);
    }
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            spec[k] = v.clone();
        }
    }
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn claim_phase(c: &PersistentVolumeClaim) -> String {
    c.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn volume_phase(v: &PersistentVolume) -> String {
    v.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

#[tokio::test]
async fn local_path_provisions_for_the_first_consumer_and_reclaims() {
    let c = cluster().await;
    let data = tempfile::tempdir().unwrap();
    let storage_dir = data.path().join("storage");
    // the bundled manifest's class, applied twice as a restart does
    let manifest = k1s::deploy::stage::bundled("local-storage", &Default::default()).unwrap();
    let applier = k1s::deploy::apply::Applier::new(c.client.clone());
    for _ in 0..2 {
        for o in k1s::deploy::decode::decode(manifest.as_bytes(), false).unwrap() {
            applier.apply(&o).await.unwrap();
        }
    }
    ready_node(&c, "n1").await;
    tokio::spawn(pvbinder::run(c.client.clone(), c.cancel.clone()));
    tokio::spawn(localpath::run(
        c.client.clone(),
        localpath::Config {
            storage_dir: storage_dir.clone(),
            node_name: Some("n1".into()),
        },
        c.cancel.clone(),
    ));
    tokio::spawn(k1s::scheduler::run(c.informers.clone(), c.cancel.clone()));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    // the default class is filled in; "" means no class and stays
    let data_claim = claims
        .create(
            &PostParams::default(),
            &claim("data", None, "1Gi", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(
        data_claim
            .spec
            .as_ref()
            .unwrap()
            .storage_class_name
            .as_deref(),
        Some("local-path")
    );
    let none = claims
        .create(
            &PostParams::default(),
            &claim("none", Some(""), "1Gi", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(
        none.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("")
    );
    // WaitForFirstConsumer: nothing until a pod using it is scheduled
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(volumes
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(claim_phase(&claims.get("data").await.unwrap()), "Pending");
    let pod: Pod = serde_json::from_value(json!({"metadata": {"name": "user"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}))
    .unwrap();
    c.pods().create(&PostParams::default(), &pod).await.unwrap();
    let bound = eventually(20, "claim bound", || async {
        let cl = claims.get("data").await.unwrap();
        (claim_phase(&cl) == "Bound").then_some(cl)
    })
    .await;
    assert_eq!(
        bound
            .annotations()
            .get("volume.kubernetes.io/selected-node")
            .map(String::as_str),
        Some("n1")
    );
    let pv_name = format!("pvc-{}", bound.uid().unwrap());
    assert_eq!(
        bound.spec.as_ref().unwrap().volume_name.as_deref(),
        Some(pv_name.as_str())
    );
    assert_eq!(
        bound.status.as_ref().unwrap().capacity.as_ref().unwrap()["storage"].0,
        "1Gi"
    );
    let pv = eventually(10, "volume bound", || async {
        let v = volumes.get(&pv_name).await.unwrap();
        (volume_phase(&v) == "Bound").then_some(v)
    })
    .await;
    let dir = storage_dir.join(format!("pvc-{}_default_data", bound.uid().unwrap()));
    assert!(dir.is_dir(), "{} missing", dir.display());
    let spec = pv.spec.unwrap();
    assert_eq!(spec.host_path.unwrap().path, dir.to_string_lossy());
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    let term = &spec
        .node_affinity
        .unwrap()
        .required
        .unwrap()
        .node_selector_terms[0];
    assert_eq!(
        term.match_expressions.as_ref().unwrap()[0]
            .values
            .as_deref(),
        Some(&["n1".to_string()][..])
    );
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let evs = events.list(&Default::default()).await.unwrap();
    assert!(evs
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("ProvisioningSucceeded")));
    // deleting the claim with reclaim Delete removes the directory and the volume
    claims
        .delete("data", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "volume deleted", || async {
        volumes
            .get_opt(&pv_name)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(!dir.exists());
    // Retain, and Immediate binding: made at once on the only node, kept when released
    let retain: k8s_openapi::api::storage::v1::StorageClass = serde_json::from_value(json!({
        "metadata": {"name": "keep"}, "provisioner": "rancher.io/local-path",
        "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"}))
    .unwrap();
    Api::<k8s_openapi::api::storage::v1::StorageClass>::all(c.client.clone())
        .create(&PostParams::default(), &retain)
        .await
        .unwrap();
    let kept = claims
        .create(
            &PostParams::default(),
            &claim("kept", Some("keep"), "2Gi", json!({})),
        )
        .await
        .unwrap();
    let pv_name = format!("pvc-{}", kept.uid().unwrap());
    eventually(10, "retained claim bound", || async {
        (claim_phase(&claims.get("kept").await.unwrap()) == "Bound").then_some(())
    })
    .await;
    let dir = storage_dir.join(format!("pvc-{}_default_kept", kept.uid().unwrap()));
    assert!(dir.is_dir());
    claims
        .delete("kept", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "volume released", || async {
        let v = volumes.get(&pv_name).await.unwrap();
        (volume_phase(&v) == "Released").then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(volumes.get_opt(&pv_name).await.unwrap().is_some());
    assert!(dir.is_dir());
}

fn static_pv(
    name: &str,
    size: &str,
    labels: serde_json::Value,
    extra: serde_json::Value,
) -> PersistentVolume {
    let mut spec = json!({"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
        "storageClassName": "manual", "hostPath": {"path": format!("/tmp/{name}")}});
    if let Some(o) = extra.as_object() {
        for (k, v) in o {
            spec[k] = v.clone();
        }
    }
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}, "spec": spec}))
        .unwrap()
}

#[tokio::test]
async fn static_volumes_bind_by_the_rules() {
    let c = cluster().await;
    tokio::spawn(pvbinder::run(c.client.clone(), c.cancel.clone()));
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let volumes: Api<PersistentVolume> = Api::all(c.client.clone());
    for pv in [
        static_pv("big", "10Gi", json!({}), json!({})),
        static_pv("small", "1Gi", json!({}), json!({})),
        static_pv("gold", "5Gi", json!({"tier": "gold"}), json!({})),
        static_pv(
            "rox",
            "1Gi",
            json!({}),
            json!({"accessModes": ["ReadOnlyMany"]}),
        ),
        static_pv("named", "3Gi", json!({}), json!({})),
        static_pv(
            "reserved",
            "3Gi",
            json!({}),
            json!({"claimRef": {"namespace": "default", "name": "wants-reserved"}}),
        ),
    ] {
        volumes.create(&PostParams::default(), &pv).await.unwrap();
    }
    eventually(10, "volumes available", || async {
        let l = volumes.list(&Default::default()).await.unwrap();
        l.items
            .iter()
            .all(|v| volume_phase(v) == "Available")
            .then_some(())
    })
    .await;
    let bound_to = |name: &'static str| {
        let claims = claims.clone();
        async move {
            eventually(10, name, || async {
                let cl = claims.get(name).await.unwrap();
                (claim_phase(&cl) == "Bound").then(|| cl.spec.unwrap().volume_name.unwrap())
            })
            .await
        }
    };
    // the smallest that fits
    claims
        .create(
            &PostParams::default(),
            &claim("fits", Some("manual"), "500Mi", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(bound_to("fits").await, "small");
    // a selector
    let sel = json!({"selector": {"matchLabels": {"tier": "gold"}}});
    claims
        .create(
            &PostParams::default(),
            &claim("picky", Some("manual"), "1Gi", sel),
        )
        .await
        .unwrap();
    assert_eq!(bound_to("picky").await, "gold");
    // volumeName, and a volume pre-bound by claimRef
    let named = json!({"volumeName": "named"});
    claims
        .create(
            &PostParams::default(),
            &claim("by-name", Some("manual"), "1Gi", named),
        )
        .await
        .unwrap();
    assert_eq!(bound_to("by-name").await, "named");
    claims
        .create(
            &PostParams::default(),
            &claim("wants-reserved", Some("manual"), "1Gi", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(bound_to("wants-reserved").await, "reserved");
    // access modes: only rox offers ReadOnlyMany
    let rox = json!({"accessModes": ["ReadOnlyMany"]});
    claims
        .create(
            &PostParams::default(),
            &claim("reader", Some("manual"), "1Gi", rox),
        )
        .await
        .unwrap();
    assert_eq!(bound_to("reader").await, "rox");
    // too big for what is left: stays Pending with an event
    claims
        .create(
            &PostParams::default(),
            &claim("huge", Some("manual"), "50Gi", json!({})),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(claim_phase(&claims.get("huge").await.unwrap()), "Pending");
    let v = volumes.get("small").await.unwrap();
    assert_eq!(volume_phase(&v), "Bound");
    let r = v.spec.unwrap().claim_ref.unwrap();
    assert_eq!(
        (r.namespace.as_deref(), r.name.as_deref()),
        (Some("default"), Some("fits"))
    );
    assert_eq!(
        v.metadata.annotations.unwrap()["pv.kubernetes.io/bound-by-controller"],
        "yes"
    );
    let cl = claims.get("fits").await.unwrap();
    assert_eq!(cl.annotations()["pv.kubernetes.io/bind-completed"], "yes");
    // the claim goes: the volume (Retain by default) is Released and stays
    claims
        .delete("fits", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "released", || async {
        (volume_phase(&volumes.get("small").await.unwrap()) == "Released").then_some(())
    })
    .await;
    // a released volume is not handed to a new claim
    claims
        .create(
            &PostParams::default(),
            &claim("again", Some("manual"), "500Mi", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(bound_to("again").await, "big");
    // the volume of a bound claim disappears: the claim is Lost
    volumes
        .delete("named", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "lost", || async {
        (claim_phase(&claims.get("by-name").await.unwrap()) == "Lost").then_some(())
    })
    .await;
}
