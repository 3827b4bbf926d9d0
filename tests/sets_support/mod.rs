//! Harness for the DaemonSet and StatefulSet tests: an in-process API (memory store) with
//! the controllers under test and the garbage collector, helpers to make nodes, to play
//! the kubelet's part (mark pods Running and Ready through pods/status, fail them), and to
//! poll until a condition holds. No scheduler or kubelet runs unless a test starts one.
#![allow(dead_code)]

pub use crate::common::eventually;
pub use crate::common::inprocess::Cluster;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The label naming the revision a pod was made from.
pub const HASH: &str = "controller-revision-hash";

/// A fresh API with the DaemonSet, StatefulSet and garbage collector controllers.
pub async fn cluster() -> Cluster {
    let c = Cluster::new().await;
    tokio::spawn(k1s::controllers::daemonset::run(
        c.informers.clone(),
        c.cancel.clone(),
    ));
    tokio::spawn(k1s::controllers::statefulset::run(
        c.informers.clone(),
        c.cancel.clone(),
    ));
    tokio::spawn(k1s::controllers::garbagecollector::run(
        c.client.clone(),
        c.cancel.clone(),
    ));
    c
}

/// Create a node with these labels and taints (`key=value:Effect` or `key:Effect`).
pub async fn node(client: &Client, name: &str, labels: &[(&str, &str)], taints: &[&str]) -> Node {
    let taints: Vec<_> = taints
        .iter()
        .map(|t| {
            let (kv, effect) = t.split_once(':').unwrap();
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            json!({"key": k, "value": v, "effect": effect})
        })
        .collect();
    let labels: serde_json::Map<_, _> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints},
    }))
    .unwrap();
    Api::<Node>::all(client.clone())
        .create(&PostParams::default(), &n)
        .await
        .unwrap()
}

pub async fn patch_node(client: &Client, name: &str, patch: serde_json::Value) {
    Api::<Node>::all(client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Live (not terminating) pods with `app=<app>`, sorted by name.
pub async fn live_pods(client: &Client, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let l = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    let mut v: Vec<Pod> = l
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    v.sort_by_key(|p| p.name_any());
    v
}

pub fn names(pods: &[Pod]) -> Vec<String> {
    pods.iter().map(|p| p.name_any()).collect()
}

pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn image_of(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

pub fn label<'a>(p: &'a Pod, k: &str) -> &'a str {
    p.labels().get(k).map(String::as_str).unwrap_or("")
}

async fn set_status(client: &Client, name: &str, st: serde_json::Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    match api
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": st })),
        )
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => panic!("setting the status of {name}: {e}"),
    }
}

/// Mark a pod Running and Ready, as a kubelet would.
pub async fn make_ready(client: &Client, name: &str) {
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    set_status(
        client,
        name,
        json!({"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now}
        ]}),
    )
    .await;
}

pub async fn make_failed(client: &Client, name: &str) {
    set_status(client, name, json!({"phase": "Failed", "conditions": []})).await;
}

/// A stand-in kubelet for pods with `app=<app>`: every live pod becomes ready.
pub fn auto_ready(client: Client, app: &str, cancel: CancellationToken) {
    let app = app.to_string();
    tokio::spawn(async move {
        while !cancel.is_cancelled() {
            for p in live_pods(&client, &app).await {
                if !is_ready(&p) {
                    make_ready(&client, &p.name_any()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Reasons and messages of the events about `name`.
pub async fn events(client: &Client, name: &str) -> Vec<(String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default().fields(&format!("involvedObject.name={name}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Merge `b` into `a` (objects key by key, anything else replaced).
pub fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// The node a daemon pod is pinned to by its required node affinity.
pub async fn revisions(c: &Client, app: &str) -> Vec<ControllerRevision> {
    let api: Api<ControllerRevision> = Api::namespaced(c.clone(), "default");
    let mut v = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items;
    v.sort_by_key(|r| r.revision);
    v
}

/// What `kubectl rollout undo --to-revision=n` sends: the revision's data as a strategic
/// merge patch.
pub async fn undo<K>(api: &Api<K>, name: &str, rev: &ControllerRevision)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let data = rev.data.as_ref().unwrap().0.clone();
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&data))
        .await
        .unwrap();
}
