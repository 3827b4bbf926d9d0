//! The scheduler against the in-process API: Node objects written by hand (allocatable,
//! Ready), pods created through the API, and what the scheduler writes back (bindings,
//! events, the PodScheduled condition, preemption).

mod common;

use common::inprocess::Cluster;
use k1s::server::inprocess::InProcessApi;
use k8s_openapi::api::core::v1::{Event, Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn api_only() -> kube::Client {
    InProcessApi::memory().await.unwrap().client
}

fn start(client: &kube::Client) -> Cluster {
    let c = Cluster::on(client.clone());
    tokio::spawn(k1s::scheduler::run(c.informers.clone(), c.cancel.clone()));
    c
}

async fn cluster() -> Cluster {
    start(&api_only().await)
}

/// A Ready node with `cpu` cores, 8Gi of memory and room for 110 pods, plus `extra`
/// merged into the object (labels, taints, ...).
async fn node(client: &kube::Client, name: &str, cpu: &str, extra: Value) {
    let mut n = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "10Gi"},
            "capacity": {"cpu": cpu, "memory": "8Gi", "pods": "110", "ephemeral-storage": "10Gi"},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        }
    });
    merge(&mut n, extra);
    let api: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(n).unwrap();
    let created = api.create(&PostParams::default(), &node).await.unwrap();
    if created
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .is_none()
    {
        let mut with_status = created.clone();
        with_status.status = node.status.clone();
        api.replace_status(name, &PostParams::default(), &with_status)
            .await
            .unwrap();
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// A pod with one container requesting `cpu`, plus `extra` merged into it.
async fn pod(client: &kube::Client, name: &str, cpu: &str, extra: Value) {
    let mut p = json!({
        "metadata": {"name": name},
        "spec": {"containers": [{
            "name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}
        }]}
    });
    merge(&mut p, extra);
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &serde_json::from_value(p).unwrap())
        .await
        .unwrap();
}

async fn get(client: &kube::Client, name: &str) -> Pod {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.get(name).await.unwrap()
}

fn node_name(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone()
}

/// Poll `f` for up to 20 s.
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    f: impl FnMut() -> F,
) -> T {
    common::eventually(20, what, f).await
}

async fn bound(client: &kube::Client, name: &str) -> String {
    eventually(&format!("{name} to be bound"), || async {
        node_name(&get(client, name).await)
    })
    .await
}

/// The message of the pod's FailedScheduling event once there is one.
async fn failed_scheduling(client: &kube::Client, name: &str) -> String {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    eventually(&format!("FailedScheduling for {name}"), || async {
        let events = api.list(&ListParams::default()).await.unwrap();
        events
            .items
            .into_iter()
            .rfind(|e| {
                e.involved_object.name.as_deref() == Some(name)
                    && e.reason.as_deref() == Some("FailedScheduling")
            })
            .and_then(|e| {
                assert_eq!(e.type_.as_deref(), Some("Warning"));
                assert_eq!(
                    e.source.as_ref().and_then(|s| s.component.as_deref()),
                    Some("default-scheduler")
                );
                e.message
            })
    })
    .await
}

async fn still_pending(client: &kube::Client, name: &str) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        node_name(&get(client, name).await),
        None,
        "{name} was bound"
    );
}

#[tokio::test]
async fn pod_lands_on_the_node_with_room() {
    let c = cluster().await;
    node(&c.client, "small", "1", json!({})).await;
    node(&c.client, "big", "4", json!({})).await;
    pod(&c.client, "p", "2", json!({})).await;
    assert_eq!(bound(&c.client, "p").await, "big");
    let p = get(&c.client, "p").await;
    let conds = p.status.unwrap().conditions.unwrap();
    assert!(conds
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
    let api: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let msg = eventually("the Scheduled event", || async {
        let events = api.list(&ListParams::default()).await.unwrap().items;
        events
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Scheduled"))
            .and_then(|e| e.message)
    })
    .await;
    assert_eq!(msg, "Successfully assigned default/p to big");
}

#[tokio::test]
async fn node_selector_and_affinity_are_respected() {
    let c = cluster().await;
    node(
        &c.client,
        "ssd",
        "4",
        json!({"metadata": {"labels": {"disk": "ssd", "cores": "8"}}}),
    )
    .await;
    node(
        &c.client,
        "hdd",
        "4",
        json!({"metadata": {"labels": {"disk": "hdd", "cores": "2"}}}),
    )
    .await;
    pod(
        &c.client,
        "sel",
        "100m",
        json!({"spec": {"nodeSelector": {"disk": "ssd"}}}),
    )
    .await;
    let required = |exprs: Value, fields: Value| {
        json!({"spec": {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": exprs, "matchFields": fields}]
        }}}}})
    };
    pod(
        &c.client,
        "notin",
        "100m",
        required(
            json!([{"key": "disk", "operator": "NotIn", "values": ["ssd"]}]),
            json!([]),
        ),
    )
    .await;
    pod(
        &c.client,
        "gt",
        "100m",
        required(
            json!([{"key": "cores", "operator": "Gt", "values": ["4"]}]),
            json!([]),
        ),
    )
    .await;
    pod(
        &c.client,
        "field",
        "100m",
        required(
            json!([]),
            json!([{"key": "metadata.name", "operator": "In", "values": ["hdd"]}]),
        ),
    )
    .await;
    pod(
        &c.client,
        "nowhere",
        "100m",
        required(json!([{"key": "gpu", "operator": "Exists"}]), json!([])),
    )
    .await;
    let preferred = json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}}
    ]}}}});
    pod(&c.client, "prefers", "100m", preferred).await;
    assert_eq!(bound(&c.client, "sel").await, "ssd");
    assert_eq!(bound(&c.client, "notin").await, "hdd");
    assert_eq!(bound(&c.client, "gt").await, "ssd");
    assert_eq!(bound(&c.client, "field").await, "hdd");
    assert_eq!(bound(&c.client, "prefers").await, "hdd");
    let msg = failed_scheduling(&c.client, "nowhere").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
}

#[tokio::test]
async fn tainted_node_is_avoided_unless_tolerated() {
    let c = cluster().await;
    let taint = json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]},
        "metadata": {"labels": {"role": "cp"}}});
    node(&c.client, "cp", "4", taint).await;
    node(&c.client, "worker", "4", json!({})).await;
    for i in 0..3 {
        pod(&c.client, &format!("p{i}"), "100m", json!({})).await;
    }
    for i in 0..3 {
        assert_eq!(bound(&c.client, &format!("p{i}")).await, "worker");
    }
    let on_cp = json!({"spec": {"nodeSelector": {"role": "cp"}}});
    pod(&c.client, "untolerated", "100m", on_cp.clone()).await;
    let mut tolerant = on_cp;
    merge(
        &mut tolerant,
        json!({"spec": {"tolerations": [
        {"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"}]}}),
    );
    pod(&c.client, "tolerant", "100m", tolerant).await;
    assert_eq!(bound(&c.client, "tolerant").await, "cp");
    let msg = failed_scheduling(&c.client, "untolerated").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
         1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
}

#[tokio::test]
async fn not_ready_and_cordoned_nodes_get_no_pods() {
    let c = cluster().await;
    node(
        &c.client,
        "down",
        "4",
        json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
    )
    .await;
    node(
        &c.client,
        "cordoned",
        "4",
        json!({"spec": {"unschedulable": true}}),
    )
    .await;
    pod(&c.client, "p", "100m", json!({})).await;
    let msg = failed_scheduling(&c.client, "p").await;
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
         1 node(s) were unschedulable. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    node(&c.client, "up", "4", json!({})).await;
    assert_eq!(bound(&c.client, "p").await, "up");
}

#[tokio::test]
async fn too_big_pod_waits_then_lands_on_a_new_node() {
    let c = cluster().await;
    node(&c.client, "small", "1", json!({})).await;
    pod(&c.client, "big", "2", json!({})).await;
    let msg = failed_scheduling(&c.client, "big").await;
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
         1 No preemption victims found for incoming pod."
    );
    let p = get(&c.client, "big").await;
    let cond = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .expect("PodScheduled condition");
    assert_eq!(cond.status, "False");
    assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(cond.message.as_deref(), Some(msg.as_str()));
    node(&c.client, "large", "4", json!({})).await;
    assert_eq!(bound(&c.client, "big").await, "large");
}

#[tokio::test]
async fn host_ports_conflict() {
    let c = cluster().await;
    node(&c.client, "a", "4", json!({})).await;
    node(&c.client, "b", "4", json!({})).await;
    let port = json!({"spec": {"containers": [{"name": "c", "image": "busybox",
        "ports": [{"containerPort": 80, "hostPort": 8080}]}]}});
    for i in 0..3 {
        pod(&c.client, &format!("web{i}"), "100m", port.clone()).await;
    }
    let mut nodes = Vec::new();
    let mut pending = Vec::new();
    for i in 0..3 {
        let name = format!("web{i}");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(n) = node_name(&get(&c.client, &name).await) {
                nodes.push(n);
                break;
            }
            if Instant::now() > deadline {
                pending.push(name);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    nodes.sort();
    assert_eq!(nodes, ["a", "b"]);
    assert_eq!(pending.len(), 1);
    let msg = failed_scheduling(&c.client, &pending[0]).await;
    assert!(
        msg.starts_with("0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."),
        "{msg}"
    );
}

#[tokio::test]
async fn anti_affinity_spreads_two_pods() {
    let c = cluster().await;
    node(&c.client, "a", "4", json!({})).await;
    node(&c.client, "b", "4", json!({})).await;
    let spec = json!({"metadata": {"labels": {"app": "db"}}, "spec": {"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchLabels": {"app": "db"}},
            "topologyKey": "kubernetes.io/hostname"}]}}}});
    pod(&c.client, "db0", "100m", spec.clone()).await;
    pod(&c.client, "db1", "100m", spec.clone()).await;
    let (n0, n1) = (bound(&c.client, "db0").await, bound(&c.client, "db1").await);
    assert_ne!(n0, n1);
    pod(&c.client, "db2", "100m", spec).await;
    let msg = failed_scheduling(&c.client, "db2").await;
    assert!(
        msg.contains("2 node(s) didn't match pod anti-affinity rules"),
        "{msg}"
    );
    // required affinity: goes where a db pod is
    let with_db0 = json!({"spec": {"affinity": {"podAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [{
            "labelSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]},
            "topologyKey": "kubernetes.io/hostname"}]}}}});
    pod(&c.client, "follower", "100m", with_db0).await;
    let f = bound(&c.client, "follower").await;
    assert!(f == n0 || f == n1);
}

#[tokio::test]
async fn topology_spread_balances_zones() {
    let c = cluster().await;
    let zone = |z: &str| json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}});
    node(&c.client, "a1", "8", zone("a")).await;
    node(&c.client, "a2", "8", zone("a")).await;
    node(&c.client, "b1", "8", zone("b")).await;
    let spec = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
        "whenUnsatisfiable": "DoNotSchedule", "labelSelector": {"matchLabels": {"app": "web"}}}]}});
    let mut zones = std::collections::BTreeMap::new();
    for i in 0..6 {
        let name = format!("web{i}");
        pod(&c.client, &name, "100m", spec.clone()).await;
        let n = bound(&c.client, &name).await;
        *zones.entry(n.chars().next().unwrap()).or_insert(0) += 1;
    }
    assert_eq!(zones.get(&'a'), Some(&3), "{zones:?}");
    assert_eq!(zones.get(&'b'), Some(&3), "{zones:?}");
}

#[tokio::test]
async fn higher_priority_is_scheduled_first() {
    let client = api_only().await;
    // room for one pod only; both wait in the queue before the scheduler starts
    node(&client, "n", "1", json!({})).await;
    pod(&client, "low", "800m", json!({"spec": {"priority": 10}})).await;
    pod(&client, "high", "800m", json!({"spec": {"priority": 1000}})).await;
    let c = start(&client);
    assert_eq!(bound(&c.client, "high").await, "n");
    still_pending(&c.client, "low").await;
}

#[tokio::test]
async fn preemption_evicts_lower_priority_pods() {
    let c = cluster().await;
    node(&c.client, "n", "1", json!({})).await;
    pod(&c.client, "low", "800m", json!({"spec": {"priority": 10}})).await;
    assert_eq!(bound(&c.client, "low").await, "n");
    pod(
        &c.client,
        "polite",
        "800m",
        json!({"spec": {"priority": 1000, "preemptionPolicy": "Never"}}),
    )
    .await;
    let msg = failed_scheduling(&c.client, "polite").await;
    assert_eq!(
        msg,
        "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never."
    );
    pod(
        &c.client,
        "high",
        "800m",
        json!({"spec": {"priority": 1000}}),
    )
    .await;
    // the victim is deleted (gracefully: a bound pod waits for its node agent)
    eventually("the victim to be terminating", || async {
        let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        match api.get_opt("low").await.unwrap() {
            None => Some(()),
            Some(p) => p.metadata.deletion_timestamp.map(|_| ()),
        }
    })
    .await;
    let nominated = eventually("nominatedNodeName", || async {
        get(&c.client, "high").await.status?.nominated_node_name
    })
    .await;
    assert_eq!(nominated, "n");
    // the node agent finishes the deletion
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let _ = api
        .delete("low", &DeleteParams::default().grace_period(0))
        .await;
    assert_eq!(bound(&c.client, "high").await, "n");
    // the equal-priority pod that may not preempt did not take the freed room
    still_pending(&c.client, "polite").await;
}

async fn create<K>(client: &kube::Client, ns: Option<&str>, obj: Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns.unwrap_or("default"));
    api.create(
        &PostParams::default(),
        &serde_json::from_value(obj).unwrap(),
    )
    .await
    .unwrap();
}

/// A local PersistentVolume that only `host` reaches, and a claim bound to it.
async fn local_volume(client: &kube::Client, pv: &str, claim: &str, host: &str) {
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let v = json!({
        "metadata": {"name": pv},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "",
            "local": {"path": format!("/mnt/{pv}")},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}},
        }
    });
    volumes
        .create(&PostParams::default(), &serde_json::from_value(v).unwrap())
        .await
        .unwrap();
    create::<PersistentVolumeClaim>(
        client,
        None,
        json!({
            "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "", "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}}},
        }),
    )
    .await;
}

fn with_claim(claim: &str) -> Value {
    json!({"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": claim}}]}})
}

#[tokio::test]
async fn a_bound_local_volume_keeps_its_pods_on_its_node() {
    let c = cluster().await;
    node(&c.client, "a", "4", json!({})).await;
    node(&c.client, "b", "4", json!({})).await;
    local_volume(&c.client, "pv-a", "data-a", "a").await;
    // Pods of the claim go where the volume is, whatever the spreading scores say.
    for i in 0..4 {
        let name = format!("user-{i}");
        pod(&c.client, &name, "100m", with_claim("data-a")).await;
        assert_eq!(bound(&c.client, &name).await, "a");
    }

    // A volume on a node that is not there: no node fits, in upstream's words.
    local_volume(&c.client, "pv-c", "data-c", "c").await;
    pod(&c.client, "waits", "100m", with_claim("data-c")).await;
    assert_eq!(
        failed_scheduling(&c.client, "waits").await,
        "0/2 nodes are available: 2 node(s) had volume node affinity conflict. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
    still_pending(&c.client, "waits").await;
    node(&c.client, "c", "4", json!({})).await;
    assert_eq!(bound(&c.client, "waits").await, "c");

    // A claim that does not exist yet holds the pod until it is created.
    pod(&c.client, "early", "100m", with_claim("later")).await;
    assert_eq!(
        failed_scheduling(&c.client, "early").await,
        "0/3 nodes are available: persistentvolumeclaim \"later\" not found. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
    );
    still_pending(&c.client, "early").await;
    create::<PersistentVolumeClaim>(
        &c.client,
        None,
        json!({
            "metadata": {"name": "later"},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                "resources": {"requests": {"storage": "1Gi"}}},
        }),
    )
    .await;
    bound(&c.client, "early").await;
}
