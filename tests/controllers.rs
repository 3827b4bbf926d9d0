//! The workload controllers against the in-process API: ReplicaSet, Deployment, garbage
//! collector and ServiceAccount. No scheduler or kubelet runs here: tests mark pods Running
//! and Ready themselves through pods/status.

use k1s::apiserver::{auth::MastersOnly, ApiServer};
use k1s::registry::{Catalog, Registry};
use k1s::store::Store;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

struct Cluster {
    client: Client,
    cancel: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

type Start = fn(Client, CancellationToken) -> futures::future::BoxFuture<'static, ()>;

async fn cluster(controllers: &[Start]) -> Cluster {
    let store = Store::memory();
    let registry = Registry::new(store, Arc::new(Catalog::new()));
    let api = ApiServer::new(registry, Arc::new(MastersOnly), "127.0.0.1:6443".into());
    let client = k1s::client::in_process(api, k1s::client::server_identity());
    let ns: Api<Namespace> = Api::all(client.clone());
    let mut d = Namespace::default();
    d.metadata.name = Some("default".into());
    ns.create(&PostParams::default(), &d).await.unwrap();
    let cancel = CancellationToken::new();
    for c in controllers {
        tokio::spawn(c(client.clone(), cancel.clone()));
    }
    Cluster { client, cancel }
}

fn rs_ctrl(c: Client, t: CancellationToken) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(k1s::controllers::replicaset::run(c, t))
}

/// Poll `f` until it returns Some, or panic after `secs`.
async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn replicaset(name: &str, replicas: i32) -> ReplicaSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    }))
    .unwrap()
}

/// Live (not terminating) pods with `app=<app>`.
async fn live_pods(client: &Client, app: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let l = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap();
    l.items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Mark a pod Running and Ready, as a kubelet would.
async fn make_ready(client: &Client, name: &str) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let st = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}});
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => panic!("marking {name} ready: {e}"),
    }
}

#[tokio::test]
async fn replicaset_creates_scales_and_owns_its_pods() {
    let c = cluster(&[rs_ctrl]).await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let rs = api
        .create(&PostParams::default(), &replicaset("web", 3))
        .await
        .unwrap();
    let pods = eventually(10, "3 pods", || async {
        let p = live_pods(&c.client, "web").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    for p in &pods {
        assert!(p.name_any().starts_with("web-"));
        assert_eq!(p.name_any().len(), "web-".len() + 5);
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(r.uid, rs.uid().unwrap());
        assert_eq!(r.kind, "ReplicaSet");
        assert_eq!(r.controller, Some(true));
        assert_eq!(r.block_owner_deletion, Some(true));
    }
    for p in &pods {
        make_ready(&c.client, &p.name_any()).await;
    }
    eventually(10, "status", || async {
        let s = api.get("web").await.unwrap().status?;
        (s.replicas == 3
            && s.ready_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.fully_labeled_replicas == Some(3)
            && s.observed_generation == Some(1))
        .then_some(())
    })
    .await;
    // Scale up through the scale subresource, then down.
    let scale = json!({"spec": {"replicas": 5}});
    api.patch_scale("web", &PatchParams::default(), &Patch::Merge(&scale))
        .await
        .unwrap();
    eventually(10, "5 pods", || async {
        (live_pods(&c.client, "web").await.len() == 5).then_some(())
    })
    .await;
    // Never more than asked for, even while the cache catches up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(live_pods(&c.client, "web").await.len(), 5);
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually(10, "1 pod", || async {
        (live_pods(&c.client, "web").await.len() == 1).then_some(())
    })
    .await;
    eventually(10, "status of 1", || async {
        let rs = api.get("web").await.unwrap();
        let s = rs.status?;
        (s.replicas == 1 && s.observed_generation == rs.metadata.generation).then_some(())
    })
    .await;
    // Events kubectl describe shows.
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let evs = events
        .list(&ListParams::default().fields("involvedObject.name=web"))
        .await
        .unwrap();
    let reasons: Vec<_> = evs.items.iter().filter_map(|e| e.reason.clone()).collect();
    assert!(reasons.iter().any(|r| r == "SuccessfulCreate"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "SuccessfulDelete"), "{reasons:?}");
}

#[tokio::test]
async fn replicaset_adopts_orphans_and_releases_strays() {
    let c = cluster(&[rs_ctrl]).await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let orphan: Pod = serde_json::from_value(json!({
        "metadata": {"name": "orphan", "labels": {"app": "adopt"}},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &orphan).await.unwrap();
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let rs = api
        .create(&PostParams::default(), &replicaset("adopt", 2))
        .await
        .unwrap();
    let got = eventually(10, "adoption", || async {
        let p = live_pods(&c.client, "adopt").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let o = got.iter().find(|p| p.name_any() == "orphan").expect("orphan kept");
    assert_eq!(
        o.metadata.owner_references.as_ref().unwrap()[0].uid,
        rs.uid().unwrap()
    );
    // Relabel it: the set lets it go and makes a new one.
    pods.patch(
        "orphan",
        &PatchParams::default(),
        &Patch::Merge(&json!({"metadata": {"labels": {"app": "other"}}})),
    )
    .await
    .unwrap();
    eventually(10, "release", || async {
        let p = pods.get("orphan").await.unwrap();
        let owned = p
            .metadata
            .owner_references
            .is_some_and(|r| r.iter().any(|r| r.uid == rs.uid().unwrap()));
        let n = live_pods(&c.client, "adopt").await.len();
        (!owned && n == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn replicaset_deletes_unready_and_newest_pods_first() {
    let c = cluster(&[rs_ctrl]).await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &replicaset("order", 4))
        .await
        .unwrap();
    let mut pods = eventually(10, "4 pods", || async {
        let p = live_pods(&c.client, "order").await;
        (p.len() == 4).then_some(p)
    })
    .await;
    pods.sort_by_key(|p| p.name_any());
    // Two ready, two pending: the pending ones go first.
    for p in &pods[..2] {
        make_ready(&c.client, &p.name_any()).await;
    }
    eventually(10, "2 ready", || async {
        let s = api.get("order").await.unwrap().status?;
        (s.ready_replicas == Some(2)).then_some(())
    })
    .await;
    api.patch(
        "order",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    let left = eventually(10, "2 pods", || async {
        let p = live_pods(&c.client, "order").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let mut names: Vec<_> = left.iter().map(|p| p.name_any()).collect();
    names.sort();
    assert_eq!(names, [pods[0].name_any(), pods[1].name_any()]);
    api.delete("order", &DeleteParams::default()).await.unwrap();
}
