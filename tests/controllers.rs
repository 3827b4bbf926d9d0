//! The workload controllers against the in-process API: ReplicaSet, Deployment, garbage
//! collector and ServiceAccount. No scheduler or kubelet runs here: tests mark pods Running
//! and Ready themselves through pods/status.

mod common;

use common::eventually;
use common::inprocess::Cluster;
use k1s::controllers::informers::Informers;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

type Start = fn(Informers, CancellationToken) -> futures::future::BoxFuture<'static, ()>;

async fn cluster(controllers: &[Start]) -> Cluster {
    let c = Cluster::new().await;
    // One set of informers for the cluster, shared by its controllers as in the server.
    for start in controllers {
        tokio::spawn(start(c.informers.clone(), c.cancel.clone()));
    }
    c
}

fn rs_ctrl(i: Informers, t: CancellationToken) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(k1s::controllers::replicaset::run(i, t))
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
    assert!(
        reasons.iter().any(|r| r == "SuccessfulCreate"),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r == "SuccessfulDelete"),
        "{reasons:?}"
    );
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
    let o = got
        .iter()
        .find(|p| p.name_any() == "orphan")
        .expect("orphan kept");
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

fn deploy_ctrl(i: Informers, t: CancellationToken) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(k1s::controllers::deployment::run(i, t))
}

fn deployment(name: &str, replicas: i32, image: &str, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    }))
    .unwrap()
}

fn image_of(p: &Pod) -> String {
    p.spec.as_ref().unwrap().containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A stand-in kubelet: every pod whose image is not "bad" becomes ready.
fn auto_ready(client: Client, cancel: CancellationToken) {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        while !cancel.is_cancelled() {
            for p in api.list(&ListParams::default()).await.unwrap().items {
                if !ready(&p) && p.metadata.deletion_timestamp.is_none() && image_of(&p) != "bad" {
                    make_ready(&client, &p.name_any()).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Most live pods, fewest ready pods, and every distinct (live, ready) seen.
type Extremes = (usize, usize, Vec<(usize, usize)>);

/// Samples (live pods, ready pods) of `app` until cancelled; returns the extremes seen.
fn monitor(
    client: Client,
    app: &'static str,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<Extremes> {
    tokio::spawn(async move {
        let (mut max_live, mut min_ready, mut seen) = (0, usize::MAX, vec![]);
        while !cancel.is_cancelled() {
            let pods = live_pods(&client, app).await;
            let r = pods.iter().filter(|p| ready(p)).count();
            max_live = max_live.max(pods.len());
            min_ready = min_ready.min(r);
            if seen.last() != Some(&(pods.len(), r)) {
                seen.push((pods.len(), r));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (max_live, min_ready, seen)
    })
}

fn condition(d: &Deployment, type_: &str) -> Option<(String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone().unwrap_or_default()))
}

/// Wait for a finished rollout as `kubectl rollout status` judges it.
async fn rolled_out(api: &Api<Deployment>, name: &str, replicas: i32) -> Deployment {
    eventually(30, "rollout", || async {
        let d = api.get(name).await.unwrap();
        let s = d.status.clone()?;
        let done = s.observed_generation >= d.metadata.generation
            && s.updated_replicas == Some(replicas)
            && s.replicas == Some(replicas)
            && s.available_replicas == Some(replicas)
            && condition(&d, "Progressing")
                == Some(("True".into(), "NewReplicaSetAvailable".into()))
            && condition(&d, "Available")
                == Some(("True".into(), "MinimumReplicasAvailable".into()));
        done.then_some(d)
    })
    .await
}

async fn sets_of(client: &Client, app: &str) -> Vec<ReplicaSet> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let mut l = api
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items;
    l.sort_by_key(|r| {
        r.annotations()
            .get("deployment.kubernetes.io/revision")
            .cloned()
            .unwrap_or_default()
    });
    l
}

fn set_image(image: &str) -> Patch<serde_json::Value> {
    Patch::Merge(
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}),
    )
}

#[tokio::test]
async fn deployment_rolls_out_within_surge_and_unavailability() {
    let c = cluster(&[rs_ctrl, deploy_ctrl]).await;
    auto_ready(c.client.clone(), c.cancel.clone());
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}});
    let d = deployment("roll", 4, "v1", strategy);
    api.create(&PostParams::default(), &d).await.unwrap();
    let d = rolled_out(&api, "roll", 4).await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "1");
    let sets = sets_of(&c.client, "roll").await;
    assert_eq!(sets.len(), 1);
    let hash = sets[0].labels()["pod-template-hash"].clone();
    assert_eq!(sets[0].name_any(), format!("roll-{hash}"));
    assert_eq!(
        sets[0].annotations()["deployment.kubernetes.io/revision"],
        "1"
    );
    for p in live_pods(&c.client, "roll").await {
        assert_eq!(p.labels()["pod-template-hash"], hash);
    }

    let stop = CancellationToken::new();
    let watch = monitor(c.client.clone(), "roll", stop.clone());
    api.patch("roll", &PatchParams::default(), &set_image("v2"))
        .await
        .unwrap();
    let d = rolled_out(&api, "roll", 4).await;
    stop.cancel();
    let (max_live, min_ready, seen) = watch.await.unwrap();
    assert!(max_live <= 5, "surge exceeded: {seen:?}");
    assert!(min_ready >= 3, "too many unavailable: {seen:?}");
    assert!(seen.len() > 2, "no rollout observed: {seen:?}");
    println!("rolling update (live, ready) steps: {seen:?}");
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "2");
    let pods = live_pods(&c.client, "roll").await;
    assert!(pods.iter().all(|p| image_of(p) == "v2"));
    let sets = sets_of(&c.client, "roll").await;
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0].spec.as_ref().unwrap().replicas, Some(0));
    assert_eq!(
        sets[1].annotations()["deployment.kubernetes.io/revision"],
        "2"
    );

    // kubectl rollout undo: the template of revision 1 comes back; its set is reused and
    // becomes revision 3.
    api.patch("roll", &PatchParams::default(), &set_image("v1"))
        .await
        .unwrap();
    let d = rolled_out(&api, "roll", 4).await;
    assert_eq!(d.annotations()["deployment.kubernetes.io/revision"], "3");
    let sets = sets_of(&c.client, "roll").await;
    assert_eq!(sets.len(), 2);
    let back = sets
        .iter()
        .find(|r| r.labels()["pod-template-hash"] == hash)
        .unwrap();
    assert_eq!(back.annotations()["deployment.kubernetes.io/revision"], "3");
    assert_eq!(
        back.annotations()["deployment.kubernetes.io/revision-history"],
        "1"
    );
    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    let evs = events
        .list(
            &ListParams::default()
                .fields("involvedObject.name=roll,involvedObject.kind=Deployment"),
        )
        .await
        .unwrap();
    assert!(evs
        .items
        .iter()
        .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet")));
}

#[tokio::test]
async fn a_bad_image_leaves_the_old_pods_serving() {
    let c = cluster(&[rs_ctrl, deploy_ctrl]).await;
    auto_ready(c.client.clone(), c.cancel.clone());
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let mut d = deployment("bad", 4, "v1", json!({"type": "RollingUpdate"}));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    rolled_out(&api, "bad", 4).await;
    api.patch("bad", &PatchParams::default(), &set_image("bad"))
        .await
        .unwrap();
    // 25% of 4: surge 1, unavailable 1: three old pods keep serving.
    let d = eventually(15, "deadline exceeded", || async {
        let d = api.get("bad").await.unwrap();
        (condition(&d, "Progressing") == Some(("False".into(), "ProgressDeadlineExceeded".into())))
            .then_some(d)
    })
    .await;
    let pods = live_pods(&c.client, "bad").await;
    let serving = pods
        .iter()
        .filter(|p| ready(p) && image_of(p) == "v1")
        .count();
    assert_eq!(serving, 3, "{:?}", d.status);
    assert!(pods.len() <= 5);
    assert_eq!(condition(&d, "Available").unwrap().0, "True");
}

#[tokio::test]
async fn pause_stops_the_rollout_and_resume_finishes_it() {
    let c = cluster(&[rs_ctrl, deploy_ctrl]).await;
    auto_ready(c.client.clone(), c.cancel.clone());
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("pause", 2, "v1", json!({})),
    )
    .await
    .unwrap();
    rolled_out(&api, "pause", 2).await;
    api.patch(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    api.patch("pause", &PatchParams::default(), &set_image("v2"))
        .await
        .unwrap();
    eventually(10, "paused condition", || async {
        let d = api.get("pause").await.unwrap();
        (condition(&d, "Progressing") == Some(("Unknown".into(), "DeploymentPaused".into())))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sets_of(&c.client, "pause").await.len(), 1);
    assert!(live_pods(&c.client, "pause")
        .await
        .iter()
        .all(|p| image_of(p) == "v1"));
    api.patch(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": false}})),
    )
    .await
    .unwrap();
    rolled_out(&api, "pause", 2).await;
    assert!(live_pods(&c.client, "pause")
        .await
        .iter()
        .all(|p| image_of(p) == "v2"));
    // Scaling through the scale subresource.
    api.patch_scale(
        "pause",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    rolled_out(&api, "pause", 5).await;
}

#[tokio::test]
async fn recreate_deletes_old_pods_before_creating_new_ones() {
    let c = cluster(&[rs_ctrl, deploy_ctrl]).await;
    auto_ready(c.client.clone(), c.cancel.clone());
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("re", 3, "v1", json!({"type": "Recreate"})),
    )
    .await
    .unwrap();
    rolled_out(&api, "re", 3).await;
    let stop = CancellationToken::new();
    let (client, s) = (c.client.clone(), stop.clone());
    let watch = tokio::spawn(async move {
        let mut mixed = vec![];
        while !s.is_cancelled() {
            let images: Vec<String> = live_pods(&client, "re")
                .await
                .iter()
                .map(image_of)
                .collect();
            if images.iter().any(|i| i == "v1") && images.iter().any(|i| i == "v2") {
                mixed.push(images);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        mixed
    });
    api.patch("re", &PatchParams::default(), &set_image("v2"))
        .await
        .unwrap();
    rolled_out(&api, "re", 3).await;
    stop.cancel();
    let mixed = watch.await.unwrap();
    assert!(mixed.is_empty(), "old and new pods together: {mixed:?}");
}

#[tokio::test]
async fn deployment_of_100_replicas() {
    let c = cluster(&[rs_ctrl, deploy_ctrl]).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let started = Instant::now();
    api.create(
        &PostParams::default(),
        &deployment("big", 100, "v1", json!({})),
    )
    .await
    .unwrap();
    eventually(60, "100 pods", || async {
        (live_pods(&c.client, "big").await.len() == 100).then_some(())
    })
    .await;
    let created = started.elapsed();
    eventually(30, "status", || async {
        let d = api.get("big").await.unwrap();
        (d.status?.replicas == Some(100)).then_some(())
    })
    .await;
    println!(
        "100 replicas: pods created in {created:?}, status in {:?}",
        started.elapsed()
    );
}

fn gc_ctrl(i: Informers, t: CancellationToken) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(k1s::controllers::garbagecollector::run(
        i.client().clone(),
        t,
    ))
}

fn sa_ctrl(i: Informers, t: CancellationToken) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(k1s::controllers::serviceaccount::run(i.client().clone(), t))
}

#[tokio::test]
async fn deleting_a_deployment_collects_its_sets_and_pods() {
    let c = cluster(&[rs_ctrl, deploy_ctrl, gc_ctrl]).await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("gone", 3, "v1", json!({})),
    )
    .await
    .unwrap();
    eventually(10, "3 pods", || async {
        (live_pods(&c.client, "gone").await.len() == 3).then_some(())
    })
    .await;
    // What kubectl delete sends.
    api.delete("gone", &DeleteParams::background())
        .await
        .unwrap();
    eventually(15, "sets and pods collected", || async {
        let sets = sets_of(&c.client, "gone").await.len();
        let pods = live_pods(&c.client, "gone").await.len();
        (sets == 0 && pods == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn foreground_deletion_keeps_the_owner_until_its_dependents_are_gone() {
    let c = cluster(&[rs_ctrl, gc_ctrl]).await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &replicaset("fg", 2))
        .await
        .unwrap();
    let two = eventually(10, "2 pods", || async {
        let p = live_pods(&c.client, "fg").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    // One pod holds on (a finalizer of its own), so the owner must wait for it.
    let held = two[0].name_any();
    let hold = json!({"metadata": {"finalizers": ["test.k1s.io/hold"]}});
    pods.patch(&held, &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .unwrap();
    api.delete("fg", &DeleteParams::foreground()).await.unwrap();
    let rs = eventually(10, "dependents deleted", || async {
        let rs = api.get_opt("fg").await.unwrap()?;
        let other_gone = pods.get_opt(&two[1].name_any()).await.unwrap().is_none();
        let held_terminating = pods
            .get(&held)
            .await
            .unwrap()
            .metadata
            .deletion_timestamp
            .is_some();
        (other_gone && held_terminating).then_some(rs)
    })
    .await;
    assert!(rs.metadata.deletion_timestamp.is_some());
    assert_eq!(rs.finalizers(), ["foregroundDeletion"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        api.get_opt("fg").await.unwrap().is_some(),
        "owner went first"
    );
    let release = json!({"metadata": {"finalizers": null}});
    pods.patch(&held, &PatchParams::default(), &Patch::Merge(&release))
        .await
        .unwrap();
    eventually(10, "owner deleted", || async {
        api.get_opt("fg").await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn orphan_deletion_leaves_the_pods_without_their_owner() {
    let c = cluster(&[rs_ctrl, gc_ctrl]).await;
    let api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &replicaset("orph", 2))
        .await
        .unwrap();
    eventually(10, "2 pods", || async {
        (live_pods(&c.client, "orph").await.len() == 2).then_some(())
    })
    .await;
    // kubectl delete --cascade=orphan
    api.delete("orph", &DeleteParams::orphan()).await.unwrap();
    eventually(10, "owner deleted", || async {
        api.get_opt("orph").await.unwrap().is_none().then_some(())
    })
    .await;
    let pods = live_pods(&c.client, "orph").await;
    assert_eq!(pods.len(), 2);
    assert!(pods.iter().all(|p| p
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|r| r.is_empty())));
}

#[tokio::test]
async fn objects_whose_owners_are_gone_are_collected() {
    use k8s_openapi::api::core::v1::ConfigMap;
    let c = cluster(&[gc_ctrl]).await;
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let owner = cms
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .unwrap();
    let dep = |name: &str, uid: &str| -> k8s_openapi::api::core::v1::ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}
        ]}}))
        .unwrap()
    };
    cms.create(&PostParams::default(), &dep("kept", &owner.uid().unwrap()))
        .await
        .unwrap();
    cms.create(&PostParams::default(), &dep("dangling", "no-such-uid"))
        .await
        .unwrap();
    eventually(10, "dangling collected", || async {
        cms.get_opt("dangling")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    assert!(cms.get_opt("kept").await.unwrap().is_some());
    cms.delete("owner", &DeleteParams::default()).await.unwrap();
    eventually(10, "dependent collected", || async {
        cms.get_opt("kept").await.unwrap().is_none().then_some(())
    })
    .await;
}

#[tokio::test]
async fn every_namespace_gets_a_default_service_account() {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let c = cluster(&[sa_ctrl]).await;
    let ns: Api<Namespace> = Api::all(c.client.clone());
    ns.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap(),
    )
    .await
    .unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "team");
    eventually(10, "default service account", || async {
        sas.get_opt("default").await.unwrap().map(|_| ())
    })
    .await;
    let old = sas.get("default").await.unwrap().uid();
    sas.delete("default", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "recreated", || async {
        let sa = sas.get_opt("default").await.unwrap()?;
        (sa.uid() != old).then_some(())
    })
    .await;
    let d: Api<ServiceAccount> = Api::namespaced(c.client.clone(), "default");
    eventually(10, "in default too", || async {
        d.get_opt("default").await.unwrap().map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn deletes_default_as_upstream() {
    use k8s_openapi::api::core::v1::ReplicationController;
    // No controllers: the finalizers stay for a garbage collector to act on.
    let c = cluster(&[]).await;
    let rcs: Api<ReplicationController> = Api::namespaced(c.client.clone(), "default");
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "rc"},
        "spec": {"selector": {"app": "rc"}, "template": {
            "metadata": {"labels": {"app": "rc"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }}
    }))
    .unwrap();
    rcs.create(&PostParams::default(), &rc).await.unwrap();
    rcs.delete("rc", &DeleteParams::default()).await.unwrap();
    let got = rcs.get("rc").await.unwrap();
    assert!(got.metadata.deletion_timestamp.is_some());
    assert_eq!(
        got.finalizers(),
        ["orphan"],
        "core/v1 RCs orphan by default"
    );
    // A later delete with an explicit policy replaces the finalizer.
    rcs.delete("rc", &DeleteParams::foreground()).await.unwrap();
    assert_eq!(
        rcs.get("rc").await.unwrap().finalizers(),
        ["foregroundDeletion"]
    );
    rcs.delete("rc", &DeleteParams::background()).await.unwrap();
    assert!(rcs.get_opt("rc").await.unwrap().is_none());
    // apps/v1 kinds go at once without a policy.
    let sets: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");
    sets.create(&PostParams::default(), &replicaset("now", 1))
        .await
        .unwrap();
    sets.delete("now", &DeleteParams::default()).await.unwrap();
    assert!(sets.get_opt("now").await.unwrap().is_none());
}

fn rc_ctrl(i: Informers, t: CancellationToken) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(k1s::controllers::replicationcontroller::run(i, t))
}

#[tokio::test]
async fn replication_controllers_work_like_replica_sets() {
    use k8s_openapi::api::core::v1::ReplicationController;
    let c = cluster(&[rc_ctrl, gc_ctrl]).await;
    let rcs: Api<ReplicationController> = Api::namespaced(c.client.clone(), "default");
    let rc: ReplicationController = serde_json::from_value(json!({
        "metadata": {"name": "legacy"},
        "spec": {"replicas": 2, "template": {
            "metadata": {"labels": {"app": "legacy"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}
        }}
    }))
    .unwrap();
    let rc = rcs.create(&PostParams::default(), &rc).await.unwrap();
    let pods = eventually(10, "2 pods", || async {
        let p = live_pods(&c.client, "legacy").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    for p in &pods {
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (r.kind.as_str(), r.api_version.as_str()),
            ("ReplicationController", "v1")
        );
        assert_eq!(r.uid, rc.uid().unwrap());
        make_ready(&c.client, &p.name_any()).await;
    }
    eventually(10, "status", || async {
        let s = rcs.get("legacy").await.unwrap().status?;
        (s.replicas == 2 && s.ready_replicas == Some(2) && s.available_replicas == Some(2))
            .then_some(())
    })
    .await;
    // Deleted through the API without options, a core/v1 RC orphans its pods.
    rcs.delete("legacy", &DeleteParams::default())
        .await
        .unwrap();
    eventually(10, "owner deleted", || async {
        rcs.get_opt("legacy").await.unwrap().is_none().then_some(())
    })
    .await;
    let left = live_pods(&c.client, "legacy").await;
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|p| p
        .metadata
        .owner_references
        .as_ref()
        .is_none_or(|r| r.is_empty())));
}
