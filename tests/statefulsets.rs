//! The StatefulSet controller against the in-process API: ordered creation that waits for
//! readiness, Parallel, ordinals, scale down from the highest ordinal, failed members
//! replaced, claims from volumeClaimTemplates and their retention policy, partitioned and
//! maxUnavailable rolling updates, OnDelete, revisions with undo as kubectl does it, and
//! status counts. No scheduler or kubelet runs: tests mark pods Running and Ready.

mod common;
mod sets_support;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use sets_support::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn statefulset(name: &str, replicas: i32, extra: serde_json::Value) -> StatefulSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": format!("{name}-svc"),
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "v1"}]}
            }
        }
    });
    merge(&mut v["spec"], extra);
    serde_json::from_value(v).unwrap()
}

/// Record the order in which pods with `app=<app>` are deleted.
fn deletions(client: &Client, app: &str) -> Order {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let out = seen.clone();
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let cfg = watcher::Config::default().labels(&format!("app={app}"));
    tokio::spawn(async move {
        use futures::StreamExt;
        let mut s = std::pin::pin!(watcher(api, cfg).default_backoff());
        while let Some(Ok(ev)) = s.next().await {
            if let watcher::Event::Delete(p) = ev {
                seen.lock().unwrap().push(p.name_any());
            }
        }
    });
    out
}

type Order = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Wait for as many deletions as `want` has, then check their order.
async fn deleted_in_order(order: &Order, want: &[&str]) {
    eventually(10, "deletions", || async {
        (order.lock().unwrap().len() >= want.len()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(*order.lock().unwrap(), want);
}

#[tokio::test]
async fn statefulset_ordered_creation_scale_down_and_status() {
    let c = cluster().await;
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    let set = api
        .create(&PostParams::default(), &statefulset("web", 3, json!({})))
        .await
        .unwrap();
    for i in 0..3 {
        let want: Vec<String> = (0..=i).map(|o| format!("web-{o}")).collect();
        eventually(10, "the next member", || async {
            (names(&live_pods(&c.client, "web").await) == want).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            names(&live_pods(&c.client, "web").await),
            want,
            "waits for web-{i} to be ready"
        );
        make_ready(&c.client, &format!("web-{i}")).await;
    }
    let pods = live_pods(&c.client, "web").await;
    let rev = eventually(10, "status", || async {
        let s = api.get("web").await.unwrap().status?;
        (s.replicas == 3
            && s.ready_replicas == Some(3)
            && s.available_replicas == Some(3)
            && s.current_replicas == Some(3)
            && s.updated_replicas == Some(3)
            && s.current_revision == s.update_revision
            && s.observed_generation == Some(1)
            && s.collision_count == Some(0))
        .then(|| s.update_revision.unwrap())
    })
    .await;
    for (i, p) in pods.iter().enumerate() {
        assert_eq!(
            label(p, "statefulset.kubernetes.io/pod-name"),
            format!("web-{i}")
        );
        assert_eq!(label(p, "apps.kubernetes.io/pod-index"), i.to_string());
        assert_eq!(label(p, HASH), rev);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("web-{i}").as_str()));
        assert_eq!(spec.subdomain.as_deref(), Some("web-svc"));
        assert_eq!(
            p.metadata.owner_references.as_ref().unwrap()[0].uid,
            set.uid().unwrap()
        );
    }
    let revs = revisions(&c.client, "web").await;
    assert_eq!(revs.len(), 1);
    assert_eq!((revs[0].name_any(), revs[0].revision), (rev.clone(), 1));
    let ev = events(&c.client, "web").await;
    assert!(
        ev.contains(&(
            "SuccessfulCreate".into(),
            "create Pod web-0 in StatefulSet web successful".into()
        )),
        "{ev:?}"
    );

    // A failed member is replaced under the same name.
    make_failed(&c.client, "web-1").await;
    let fresh = eventually(10, "web-1 again", || async {
        let p = live_pods(&c.client, "web")
            .await
            .into_iter()
            .find(|p| p.name_any() == "web-1")?;
        (p.uid() != pods[1].uid()).then_some(p)
    })
    .await;
    assert_eq!(label(&fresh, HASH), rev);
    make_ready(&c.client, "web-1").await;

    // Scale down: highest ordinal first, one at a time.
    let order = deletions(&c.client, "web");
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually(10, "one member", || async {
        (names(&live_pods(&c.client, "web").await) == ["web-0"]).then_some(())
    })
    .await;
    deleted_in_order(&order, &["web-2", "web-1"]).await;
    eventually(10, "status of 1", || async {
        let s = api.get("web").await.unwrap().status?;
        (s.replicas == 1 && s.ready_replicas == Some(1) && s.observed_generation == Some(2))
            .then_some(())
    })
    .await;
    // Scale up again: web-1 comes back.
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 2}})),
    )
    .await
    .unwrap();
    eventually(10, "web-1 back", || async {
        (names(&live_pods(&c.client, "web").await) == ["web-0", "web-1"]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_parallel_with_ordinals_start() {
    let c = cluster().await;
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    let set = statefulset(
        "par",
        3,
        json!({"podManagementPolicy": "Parallel", "ordinals": {"start": 5}}),
    );
    api.create(&PostParams::default(), &set).await.unwrap();
    eventually(10, "all at once", || async {
        (names(&live_pods(&c.client, "par").await) == ["par-5", "par-6", "par-7"]).then_some(())
    })
    .await;
    let p = &live_pods(&c.client, "par").await[0];
    assert_eq!(label(p, "apps.kubernetes.io/pod-index"), "5");
    // Scaling down in parallel does not wait for readiness either.
    api.patch_scale(
        "par",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually(10, "one left", || async {
        (names(&live_pods(&c.client, "par").await) == ["par-5"]).then_some(())
    })
    .await;
    eventually(10, "status", || async {
        let s = api.get("par").await.unwrap().status?;
        (s.replicas == 1 && s.ready_replicas == Some(0)).then_some(())
    })
    .await;
}

fn claims_spec(policy: serde_json::Value) -> serde_json::Value {
    json!({
        "podManagementPolicy": "Parallel",
        "persistentVolumeClaimRetentionPolicy": policy,
        "volumeClaimTemplates": [{
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
        }]
    })
}

async fn claim_names(c: &Client) -> Vec<String> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(c.clone(), "default");
    let mut v: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|c| c.metadata.deletion_timestamp.is_none())
        .map(|c| c.name_any())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn statefulset_claims_outlive_pods_and_follow_retention() {
    let c = cluster().await;
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    // Retain (the default): claims stay through scale down and deletion.
    api.create(
        &PostParams::default(),
        &statefulset("keep", 2, claims_spec(json!({}))),
    )
    .await
    .unwrap();
    eventually(10, "claims", || async {
        (claim_names(&c.client).await == ["data-keep-0", "data-keep-1"]).then_some(())
    })
    .await;
    let pods = eventually(10, "members", || async {
        let p = live_pods(&c.client, "keep").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let vol = &pods[1].spec.as_ref().unwrap().volumes.as_ref().unwrap()[0];
    assert_eq!(vol.name, "data");
    assert_eq!(
        vol.persistent_volume_claim.as_ref().unwrap().claim_name,
        "data-keep-1"
    );
    let pvc: Api<PersistentVolumeClaim> = Api::namespaced(c.client.clone(), "default");
    let claim = pvc.get("data-keep-0").await.unwrap();
    assert_eq!(claim.labels()["app"], "keep");
    assert!(claim.metadata.owner_references.is_none_or(|r| r.is_empty()));
    let ev = events(&c.client, "keep").await;
    assert!(
        ev.iter().any(|(r, m)| r == "SuccessfulCreate"
            && m == "create Claim data-keep-0 Pod keep-0 in StatefulSet keep success"),
        "{ev:?}"
    );
    api.patch_scale(
        "keep",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 0}})),
    )
    .await
    .unwrap();
    eventually(10, "no members", || async {
        live_pods(&c.client, "keep").await.is_empty().then_some(())
    })
    .await;
    api.delete("keep", &DeleteParams::default()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(claim_names(&c.client).await, ["data-keep-0", "data-keep-1"]);
    for n in ["data-keep-0", "data-keep-1"] {
        pvc.delete(n, &DeleteParams::default()).await.unwrap();
    }

    // whenScaled: Delete: a scaled-away member's claim goes with it; whenDeleted: Delete:
    // the rest go with the set.
    let policy = json!({"whenScaled": "Delete", "whenDeleted": "Delete"});
    let set = api
        .create(
            &PostParams::default(),
            &statefulset("gone", 3, claims_spec(policy)),
        )
        .await
        .unwrap();
    eventually(10, "claims", || async {
        (claim_names(&c.client).await == ["data-gone-0", "data-gone-1", "data-gone-2"])
            .then_some(())
    })
    .await;
    let owners = pvc
        .get("data-gone-0")
        .await
        .unwrap()
        .metadata
        .owner_references
        .unwrap();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].uid.as_str()),
        ("StatefulSet", set.uid().unwrap().as_str())
    );
    api.patch_scale(
        "gone",
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    eventually(10, "scaled claims gone", || async {
        (claim_names(&c.client).await == ["data-gone-0"]).then_some(())
    })
    .await;
    api.delete("gone", &DeleteParams::default()).await.unwrap();
    eventually(10, "all claims gone", || async {
        claim_names(&c.client).await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn statefulset_partitioned_rolling_update_and_undo() {
    let c = cluster().await;
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    let set = statefulset(
        "db",
        3,
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}),
    );
    api.create(&PostParams::default(), &set).await.unwrap();
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "db", done.clone());
    let first = eventually(15, "ready", || async {
        let s = api.get("db").await.unwrap().status?;
        (s.ready_replicas == Some(3)
            && s.current_revision.is_some()
            && s.current_revision == s.update_revision)
            .then(|| s.current_revision.unwrap())
    })
    .await;
    let order = deletions(&c.client, "db");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let img =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&img))
        .await
        .unwrap();
    let second = eventually(15, "the partition updated", || async {
        let s = api.get("db").await.unwrap().status?;
        let images: Vec<String> = live_pods(&c.client, "db")
            .await
            .iter()
            .map(image_of)
            .collect();
        (images == ["v1", "v1", "v2"]
            && s.updated_replicas == Some(1)
            && s.current_replicas == Some(2)
            && s.ready_replicas == Some(3)
            && s.current_revision.as_deref() == Some(first.as_str()))
        .then(|| s.update_revision.unwrap())
    })
    .await;
    assert_ne!(first, second);
    tokio::time::sleep(Duration::from_millis(300)).await;
    deleted_in_order(&order, &["db-2"]).await;
    // Drop the partition: the rest roll, highest ordinal first.
    let p0 = json!({"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}});
    api.patch("db", &PatchParams::default(), &Patch::Merge(&p0))
        .await
        .unwrap();
    eventually(15, "rolled out", || async {
        let s = api.get("db").await.unwrap().status?;
        (s.updated_replicas == Some(3)
            && s.ready_replicas == Some(3)
            && s.current_revision.as_deref() == Some(second.as_str()))
        .then_some(())
    })
    .await;
    deleted_in_order(&order, &["db-2", "db-1", "db-0"]).await;
    for p in live_pods(&c.client, "db").await {
        assert_eq!(label(&p, HASH), second);
    }
    // Undo to the first revision: it comes back renumbered.
    let revs = revisions(&c.client, "db").await;
    assert_eq!(
        revs.iter()
            .map(|r| (r.name_any(), r.revision))
            .collect::<Vec<_>>(),
        [(first.clone(), 1), (second.clone(), 2)]
    );
    undo(&api, "db", &revs[0]).await;
    eventually(15, "rolled back", || async {
        let s = api.get("db").await.unwrap().status?;
        let images: Vec<String> = live_pods(&c.client, "db")
            .await
            .iter()
            .map(image_of)
            .collect();
        (images == ["v1", "v1", "v1"]
            && s.current_revision.as_deref() == Some(first.as_str())
            && s.updated_replicas == Some(3))
        .then_some(())
    })
    .await;
    let revs = revisions(&c.client, "db").await;
    assert_eq!(
        revs.iter()
            .map(|r| (r.name_any(), r.revision))
            .collect::<Vec<_>>(),
        [(second, 2), (first, 3)]
    );
    done.cancel();
}

#[tokio::test]
async fn statefulset_on_delete_and_max_unavailable() {
    let c = cluster().await;
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &statefulset("od", 2, json!({"updateStrategy": {"type": "OnDelete"}})),
    )
    .await
    .unwrap();
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "od", done.clone());
    eventually(15, "ready", || async {
        let s = api.get("od").await.unwrap().status?;
        (s.ready_replicas == Some(2)).then_some(())
    })
    .await;
    let img =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}});
    api.patch("od", &PatchParams::default(), &Patch::Merge(&img))
        .await
        .unwrap();
    eventually(10, "update revision", || async {
        let s = api.get("od").await.unwrap().status?;
        (s.update_revision != s.current_revision && s.observed_generation == Some(2)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let images: Vec<String> = live_pods(&c.client, "od")
        .await
        .iter()
        .map(image_of)
        .collect();
    assert_eq!(images, ["v1", "v1"]);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.delete("od-1", &DeleteParams::default()).await.unwrap();
    eventually(10, "od-1 at v2", || async {
        let images: Vec<String> = live_pods(&c.client, "od")
            .await
            .iter()
            .map(image_of)
            .collect();
        (images == ["v1", "v2"]).then_some(())
    })
    .await;
    eventually(10, "counts", || async {
        let s = api.get("od").await.unwrap().status?;
        (s.updated_replicas == Some(1) && s.current_replicas == Some(1)).then_some(())
    })
    .await;
    done.cancel();

    // maxUnavailable 2 of 4: two members roll at once, no more.
    let set = statefulset(
        "mu",
        4,
        json!({"podManagementPolicy": "Parallel",
        "updateStrategy": {"rollingUpdate": {"maxUnavailable": 2}}}),
    );
    api.create(&PostParams::default(), &set).await.unwrap();
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "mu", done.clone());
    eventually(15, "ready", || async {
        let s = api.get("mu").await.unwrap().status?;
        (s.ready_replicas == Some(4)).then_some(())
    })
    .await;
    done.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    api.patch("mu", &PatchParams::default(), &Patch::Merge(&img))
        .await
        .unwrap();
    eventually(10, "two rolled", || async {
        let images: Vec<String> = live_pods(&c.client, "mu")
            .await
            .iter()
            .map(image_of)
            .collect();
        (images == ["v1", "v1", "v2", "v2"]).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let images: Vec<String> = live_pods(&c.client, "mu")
        .await
        .iter()
        .map(image_of)
        .collect();
    assert_eq!(images, ["v1", "v1", "v2", "v2"]);
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "mu", done.clone());
    eventually(15, "all rolled", || async {
        let images: Vec<String> = live_pods(&c.client, "mu")
            .await
            .iter()
            .map(image_of)
            .collect();
        (images == ["v2"; 4]).then_some(())
    })
    .await;
    done.cancel();
}

#[tokio::test]
async fn statefulset_waits_for_min_ready_seconds() {
    let c = cluster().await;
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    let set = statefulset("slow", 2, json!({"minReadySeconds": 2}));
    api.create(&PostParams::default(), &set).await.unwrap();
    eventually(10, "slow-0", || async {
        (names(&live_pods(&c.client, "slow").await) == ["slow-0"]).then_some(())
    })
    .await;
    make_ready(&c.client, "slow-0").await;
    eventually(10, "ready, not yet available", || async {
        let s = api.get("slow").await.unwrap().status?;
        (s.ready_replicas == Some(1) && s.available_replicas == Some(0)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(names(&live_pods(&c.client, "slow").await), ["slow-0"]);
    eventually(10, "slow-1 once slow-0 is available", || async {
        (names(&live_pods(&c.client, "slow").await) == ["slow-0", "slow-1"]).then_some(())
    })
    .await;
    eventually(10, "slow-0 available", || async {
        let s = api.get("slow").await.unwrap().status?;
        (s.available_replicas == Some(1) && s.replicas == 2).then_some(())
    })
    .await;
}
