//! The DaemonSet controller against the in-process API: placement over nodes (selectors,
//! affinity, taints, nodes coming and going), rolling updates within maxUnavailable and
//! maxSurge, OnDelete, failed pods, and ControllerRevision history with undo as kubectl
//! does it (a strategic merge patch of the revision's data). No scheduler or kubelet runs:
//! tests mark pods Running and Ready themselves. StatefulSets are in `statefulsets.rs`.

mod common;
mod sets_support;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use sets_support::*;
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The label daemon pods carry: the DaemonSet's template generation.
const GENERATION: &str = "pod-template-generation";
const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn daemonset(name: &str, image: &str, extra: serde_json::Value) -> DaemonSet {
    let mut v = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    });
    merge(&mut v["spec"], extra);
    serde_json::from_value(v).unwrap()
}

fn pinned(p: &Pod) -> String {
    let a = p
        .spec
        .as_ref()
        .unwrap()
        .affinity
        .as_ref()
        .expect("affinity");
    let terms = &a
        .node_affinity
        .as_ref()
        .unwrap()
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms;
    assert_eq!(terms.len(), 1);
    let f = &terms[0].match_fields.as_ref().unwrap()[0];
    assert_eq!(
        (f.key.as_str(), f.operator.as_str()),
        ("metadata.name", "In")
    );
    f.values.as_ref().unwrap()[0].clone()
}

async fn pinned_nodes(c: &Client, app: &str) -> Vec<String> {
    let mut v: Vec<String> = live_pods(c, app).await.iter().map(pinned).collect();
    v.sort();
    v
}

#[tokio::test]
async fn daemonset_follows_nodes_selectors_and_taints() {
    let c = cluster().await;
    node(&c.client, "a", &[("role", "edge")], &[]).await;
    node(
        &c.client,
        "b",
        &[("role", "edge")],
        &["dedicated=db:NoSchedule"],
    )
    .await;
    node(&c.client, "c", &[], &[]).await;
    let api: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
    let ds = daemonset(
        "agent",
        "busybox:1",
        json!({"template": {"spec": {"nodeSelector": {"role": "edge"}}}}),
    );
    let ds = api.create(&PostParams::default(), &ds).await.unwrap();
    let pods = eventually(10, "a pod on a", || async {
        let p = live_pods(&c.client, "agent").await;
        (p.len() == 1).then_some(p)
    })
    .await;
    let p = &pods[0];
    assert_eq!(pinned(p), "a");
    assert!(
        p.spec.as_ref().unwrap().node_name.is_none(),
        "the scheduler binds it"
    );
    assert!(p.name_any().starts_with("agent-"));
    let r = &p.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (r.kind.as_str(), r.uid.as_str(), r.controller),
        ("DaemonSet", ds.uid().unwrap().as_str(), Some(true))
    );
    let tolerations: HashSet<(String, String)> = p
        .spec
        .as_ref()
        .unwrap()
        .tolerations
        .as_ref()
        .unwrap()
        .iter()
        .map(|t| (t.key.clone().unwrap(), t.effect.clone().unwrap()))
        .collect();
    for (k, e) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        assert!(
            tolerations.contains(&(k.to_string(), e.to_string())),
            "{k} {e}: {tolerations:?}"
        );
    }
    assert!(!tolerations
        .iter()
        .any(|(k, _)| k == "node.kubernetes.io/network-unavailable"));
    // The pod carries the revision's hash, the revision carries the template's labels.
    let revs = revisions(&c.client, "agent").await;
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].revision, 1);
    let hash = label(p, HASH).to_string();
    assert_eq!(revs[0].name_any(), format!("agent-{hash}"));
    assert_eq!(revs[0].labels()[HASH], hash);

    // Relabel c, add d: pods follow. Remove d, unlabel c, evict from a: they go.
    patch_node(
        &c.client,
        "c",
        json!({"metadata": {"labels": {"role": "edge"}}}),
    )
    .await;
    node(&c.client, "d", &[("role", "edge")], &[]).await;
    eventually(10, "pods on a, c, d", || async {
        (pinned_nodes(&c.client, "agent").await == ["a", "c", "d"]).then_some(())
    })
    .await;
    Api::<Node>::all(c.client.clone())
        .delete("d", &DeleteParams::default())
        .await
        .unwrap();
    patch_node(
        &c.client,
        "c",
        json!({"metadata": {"labels": {"role": null}}}),
    )
    .await;
    eventually(10, "pods on a only", || async {
        (pinned_nodes(&c.client, "agent").await == ["a"]).then_some(())
    })
    .await;
    // The tolerated NoSchedule taint on b is fine once the template tolerates it.
    let tol = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}}}});
    api.patch("agent", &PatchParams::default(), &Patch::Merge(&tol))
        .await
        .unwrap();
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "agent", done.clone());
    eventually(10, "pods on a and b", || async {
        (pinned_nodes(&c.client, "agent").await == ["a", "b"]).then_some(())
    })
    .await;
    let st = eventually(10, "status", || async {
        let d = api.get("agent").await.unwrap();
        let s = d.status?;
        (s.desired_number_scheduled == 2
            && s.current_number_scheduled == 2
            && s.number_ready == 2
            && s.number_available == Some(2)
            && s.updated_number_scheduled == Some(2)
            && s.number_misscheduled == 0
            && s.observed_generation == d.metadata.generation)
            .then_some(s)
    })
    .await;
    assert_eq!(st.number_unavailable, None);
    // A NoExecute taint on a evicts; a NoSchedule one on b keeps the pod there
    // (misscheduled no more counted as desired).
    patch_node(
        &c.client,
        "a",
        json!({"spec": {"taints": [{"key": "gone", "effect": "NoExecute"}]}}),
    )
    .await;
    patch_node(
        &c.client,
        "b",
        json!({"spec": {"taints": [
            {"key": "dedicated", "value": "db", "effect": "NoSchedule"},
            {"key": "full", "effect": "NoSchedule"}
        ]}}),
    )
    .await;
    eventually(10, "pod on b only", || async {
        (pinned_nodes(&c.client, "agent").await == ["b"]).then_some(())
    })
    .await;
    eventually(10, "misscheduled", || async {
        let s = api.get("agent").await.unwrap().status?;
        (s.desired_number_scheduled == 0 && s.number_misscheduled == 1).then_some(())
    })
    .await;
    let ev = events(&c.client, "agent").await;
    assert!(
        ev.iter()
            .any(|(r, m)| r == "SuccessfulCreate" && m.starts_with("Created pod: agent-")),
        "{ev:?}"
    );
    assert!(ev.iter().any(|(r, _)| r == "SuccessfulDelete"), "{ev:?}");
    done.cancel();
}

async fn ds_nodes(c: &Client, n: usize) {
    for i in 0..n {
        node(c, &format!("n{i}"), &[], &[]).await;
    }
}

/// Pods per state: (old live, new live, new ready).
async fn split(c: &Client, app: &str, image: &str) -> (usize, usize, usize) {
    let pods = live_pods(c, app).await;
    let new: Vec<&Pod> = pods.iter().filter(|p| image_of(p) == image).collect();
    (
        pods.len() - new.len(),
        new.len(),
        new.iter().filter(|p| is_ready(p)).count(),
    )
}

#[tokio::test]
async fn daemonset_rolling_update_within_max_unavailable_and_undo() {
    let c = cluster().await;
    ds_nodes(&c.client, 4).await;
    let api: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
    let ds = daemonset(
        "roll",
        "v1",
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}),
    );
    api.create(&PostParams::default(), &ds).await.unwrap();
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "roll", done.clone());
    eventually(10, "4 ready", || async {
        let s = api.get("roll").await.unwrap().status?;
        (s.number_available == Some(4)).then_some(())
    })
    .await;
    done.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for p in live_pods(&c.client, "roll").await {
        assert_eq!(label(&p, GENERATION), "1");
    }
    // A change outside the template bumps metadata.generation but not the template
    // generation the pods are labelled with.
    let min_ready = json!({"spec": {"minReadySeconds": 0, "revisionHistoryLimit": 5}});
    let d = api
        .patch("roll", &PatchParams::default(), &Patch::Merge(&min_ready))
        .await
        .unwrap();
    assert_eq!(d.metadata.generation, Some(2));
    assert_eq!(d.annotations()[TEMPLATE_GENERATION], "1");

    let img =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}});
    let d = api
        .patch("roll", &PatchParams::default(), &Patch::Merge(&img))
        .await
        .unwrap();
    assert_eq!(d.annotations()[TEMPLATE_GENERATION], "2");
    eventually(10, "two replaced", || async {
        (split(&c.client, "roll", "v2").await == (2, 2, 0)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        split(&c.client, "roll", "v2").await,
        (2, 2, 0),
        "no more than maxUnavailable at once"
    );
    // One new pod ready: one more old pod may go.
    let new: Vec<Pod> = live_pods(&c.client, "roll")
        .await
        .into_iter()
        .filter(|p| image_of(p) == "v2")
        .collect();
    make_ready(&c.client, &new[0].name_any()).await;
    eventually(10, "third replaced", || async {
        (split(&c.client, "roll", "v2").await == (1, 3, 1)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(split(&c.client, "roll", "v2").await, (1, 3, 1));
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "roll", done.clone());
    eventually(10, "rolled out", || async {
        let d = api.get("roll").await.unwrap();
        let s = d.status?;
        (s.updated_number_scheduled == Some(4)
            && s.number_available == Some(4)
            && s.observed_generation == d.metadata.generation)
            .then_some(())
    })
    .await;
    let revs = revisions(&c.client, "roll").await;
    assert_eq!(revs.iter().map(|r| r.revision).collect::<Vec<_>>(), [1, 2]);
    for p in live_pods(&c.client, "roll").await {
        assert_eq!(label(&p, HASH), revs[1].labels()[HASH]);
        assert_eq!(label(&p, GENERATION), "2");
    }
    // Undo to revision 1 as kubectl does: revision 1 comes back as revision 3.
    undo(&api, "roll", &revs[0]).await;
    eventually(10, "rolled back", || async {
        let pods = live_pods(&c.client, "roll").await;
        let s = api.get("roll").await.unwrap().status?;
        (pods.len() == 4
            && pods.iter().all(|p| image_of(p) == "v1")
            && s.updated_number_scheduled == Some(4)
            && s.number_available == Some(4))
        .then_some(())
    })
    .await;
    // The undo is a template change like any other.
    for p in live_pods(&c.client, "roll").await {
        assert_eq!(label(&p, GENERATION), "3");
    }
    let after = revisions(&c.client, "roll").await;
    assert_eq!(
        after
            .iter()
            .map(|r| (r.name_any(), r.revision))
            .collect::<Vec<_>>(),
        [(revs[1].name_any(), 2), (revs[0].name_any(), 3)]
    );
    let d = api.get("roll").await.unwrap();
    assert_eq!(
        image_of(&Pod {
            spec: d.spec.unwrap().template.spec,
            ..Default::default()
        }),
        "v1"
    );
    done.cancel();
}

#[tokio::test]
async fn daemonset_surges_before_removing_old_pods() {
    let c = cluster().await;
    ds_nodes(&c.client, 3).await;
    let api: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
    let ds = daemonset(
        "surge",
        "v1",
        json!({"updateStrategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}}),
    );
    api.create(&PostParams::default(), &ds).await.unwrap();
    let done = CancellationToken::new();
    auto_ready(c.client.clone(), "surge", done.clone());
    eventually(10, "3 available", || async {
        let s = api.get("surge").await.unwrap().status?;
        (s.number_available == Some(3)).then_some(())
    })
    .await;
    done.cancel();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let img =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "v2"}]}}}});
    api.patch("surge", &PatchParams::default(), &Patch::Merge(&img))
        .await
        .unwrap();
    // Step by step: one extra pod, ready, then its old pod goes and the next node surges.
    for step in 0..3 {
        eventually(10, "a surge pod", || async {
            let (old, new, ready) = split(&c.client, "surge", "v2").await;
            (old == 3 - step && new == step + 1 && ready == step).then_some(())
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            split(&c.client, "surge", "v2").await,
            (3 - step, step + 1, step),
            "step {step}"
        );
        let waiting: Vec<Pod> = live_pods(&c.client, "surge")
            .await
            .into_iter()
            .filter(|p| image_of(p) == "v2" && !is_ready(p))
            .collect();
        make_ready(&c.client, &waiting[0].name_any()).await;
    }
    eventually(10, "surged through", || async {
        let s = api.get("surge").await.unwrap().status?;
        (split(&c.client, "surge", "v2").await == (0, 3, 3)
            && s.updated_number_scheduled == Some(3))
        .then_some(())
    })
    .await;
}

#[tokio::test]
async fn daemonset_on_delete_failed_pods_and_history_limit() {
    let c = cluster().await;
    ds_nodes(&c.client, 2).await;
    let api: Api<DaemonSet> = Api::namespaced(c.client.clone(), "default");
    let ds = daemonset(
        "od",
        "v1",
        json!({"updateStrategy": {"type": "OnDelete"}, "revisionHistoryLimit": 1}),
    );
    api.create(&PostParams::default(), &ds).await.unwrap();
    let pods = eventually(10, "2 pods", || async {
        let p = live_pods(&c.client, "od").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    for v in ["v2", "v3", "v4"] {
        let img =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": v}]}}}});
        api.patch("od", &PatchParams::default(), &Patch::Merge(&img))
            .await
            .unwrap();
        eventually(10, "a revision", || async {
            revisions(&c.client, "od")
                .await
                .iter()
                .any(|r| {
                    r.data.as_ref().is_some_and(|d| {
                        d.0["spec"]["template"]["spec"]["containers"][0]["image"] == v
                    })
                })
                .then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // OnDelete: nothing replaced.
    assert_eq!(names(&live_pods(&c.client, "od").await), names(&pods));
    // History: the current revision, the one the pods run (live), and one more at most.
    let revs = revisions(&c.client, "od").await;
    assert_eq!(
        revs.iter().map(|r| r.revision).collect::<Vec<_>>(),
        [1, 3, 4],
        "{revs:?}"
    );
    // A deleted pod comes back at the current revision; a failed one is replaced too.
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pod_api
        .delete(&pods[0].name_any(), &DeleteParams::default())
        .await
        .unwrap();
    make_failed(&c.client, &pods[1].name_any()).await;
    eventually(10, "both replaced at v4", || async {
        let p = live_pods(&c.client, "od").await;
        (p.len() == 2 && p.iter().all(|p| image_of(p) == "v4")).then_some(())
    })
    .await;
    let ev = events(&c.client, "od").await;
    assert!(
        ev.iter()
            .any(|(r, m)| r == "FailedDaemonPod" && m.contains("will try to kill it")),
        "{ev:?}"
    );
    eventually(10, "history trimmed", || async {
        (revisions(&c.client, "od")
            .await
            .iter()
            .map(|r| r.revision)
            .collect::<Vec<_>>()
            == [3, 4])
        .then_some(())
    })
    .await;
}
