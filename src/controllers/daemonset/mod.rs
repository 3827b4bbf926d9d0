//! The DaemonSet controller: one pod per eligible node (`nodes.rs` decides eligibility as
//! upstream does), pinned there with a required node affinity that the scheduler honours.
//! It follows nodes as they come, go and change labels or taints, keeps a ControllerRevision
//! per template (`history`), labels pods with `controller-revision-hash`, replaces old pods
//! with RollingUpdate (maxUnavailable or maxSurge, `plan.rs`) or leaves them to the user
//! (OnDelete), deletes failed pods with a per-node back-off, and reports upstream's status
//! counts; `pass.rs` makes the writes. It reads nodes, pods and revisions from reflector
//! caches and writes only through the API; it never binds pods itself and never touches
//! pods another controller owns.

mod nodes;
mod pass;
mod plan;

use pass::Pass;

use super::common::{self, Recorder};
use super::history::{self, REVISION_LABEL};
use super::informers::Informers;
use super::rollout;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use plan::{Limits, NodeState};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("daemonset {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
    #[error("daemonset {ns}/{name}: {source}")]
    History {
        ns: String,
        name: String,
        source: history::Error,
    },
    #[error("daemonset {ns}/{name}: {message}")]
    Invalid {
        ns: String,
        name: String,
        message: String,
    },
}

/// Failed-pod back-off per DaemonSet and node: 1 s doubling to 15 min, as upstream.
type Backoff = Mutex<HashMap<String, (Instant, Duration)>>;

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
    backoff: Backoff,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let pod_informer = informers.get::<Pod>();
    let node_informer = informers.get::<Node>();
    let rev_informer = informers.get::<ControllerRevision>();
    let (pods, nodes) = (pod_informer.store(), node_informer.store());
    let revisions = rev_informer.store();
    let ctrl = Controller::new(
        Api::<DaemonSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = ctrl.store();
    let all = sets.clone();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "daemonset-controller"),
        client,
        pods,
        nodes,
        revisions,
        backoff: Mutex::new(HashMap::new()),
    });
    ctrl.watches_shared_stream(pod_informer.subscribe(), move |pod: Arc<Pod>| {
        owners_of(&pod, &sets)
    })
    .watches_shared_stream(node_informer.subscribe(), move |_: Arc<Node>| {
        all.state()
            .iter()
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect::<Vec<_>>()
    })
    .watches_shared_stream(rev_informer.subscribe(), |cr: Arc<ControllerRevision>| {
        let ns = cr.namespace().unwrap_or_default();
        common::controller_of(&cr.metadata)
            .filter(|r| r.kind == "DaemonSet")
            .map(|r| ObjectRef::new(&r.name).within(&ns))
    })
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "daemonset reconcile");
        }
    })
    .await;
}

/// The DaemonSets a pod event concerns: its controller, or every set that could adopt it.
fn owners_of(pod: &Pod, sets: &Store<DaemonSet>) -> Vec<ObjectRef<DaemonSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match common::controller_of(&pod.metadata) {
        Some(r) if r.kind == "DaemonSet" && r.api_version == "apps/v1" => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => vec![],
        None => sets
            .state()
            .iter()
            .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
            .filter(|d| common::selects(d.spec.as_ref().map(|s| &s.selector), pod.labels()))
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect(),
    }
}

fn error_policy(_d: Arc<DaemonSet>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    if matches!(e, Error::Api { source: kube::Error::Api(s), .. } if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    if matches!(
        e,
        Error::History {
            source: history::Error::Collision { .. },
            ..
        }
    ) {
        return Action::requeue(Duration::from_millis(50));
    }
    tracing::warn!(error = %e, "daemonset sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Group the pods by the node they are meant for; every existing node gets an entry.
fn node_states<'a>(
    ds: &DaemonSet,
    nodes: &[Arc<Node>],
    pods: &'a [Arc<Pod>],
) -> Vec<NodeState<'a>> {
    let mut by_node: BTreeMap<String, NodeState<'a>> = BTreeMap::new();
    for n in nodes {
        let name = n.name_any();
        by_node.insert(
            name.clone(),
            NodeState {
                name,
                elig: Some(nodes::eligibility(ds, n)),
                pods: vec![],
            },
        );
    }
    for p in pods {
        let Some(target) = nodes::target_node(p) else {
            continue;
        };
        by_node
            .entry(target.clone())
            .or_insert_with(|| NodeState {
                name: target,
                elig: None,
                pods: vec![],
            })
            .pods
            .push(p.as_ref());
    }
    by_node.into_values().collect()
}

/// (maxSurge, maxUnavailable) for `desired` nodes; both zero would stall, so unavailable
/// becomes 1 then. Percentages round up for both, as upstream's DaemonSet does.
fn limits(ds: &DaemonSet, desired: usize) -> Result<(usize, usize), String> {
    let ru = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.clone())
        .unwrap_or_default();
    let total = i32::try_from(desired).unwrap_or(i32::MAX);
    let surge = rollout::scaled(
        ru.max_surge.as_ref().unwrap_or(&IntOrString::Int(0)),
        total,
        true,
    )?;
    let unavailable = rollout::scaled(
        ru.max_unavailable.as_ref().unwrap_or(&IntOrString::Int(1)),
        total,
        true,
    )?;
    let (surge, mut unavailable) = (surge.max(0) as usize, unavailable.max(0) as usize);
    if desired > 0 && surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable))
}

fn is_on_delete(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

async fn reconcile(ds: Arc<DaemonSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.nodes.wait_until_ready().await;
    let _ = ctx.revisions.wait_until_ready().await;
    let ns = ds.namespace().unwrap_or_default();
    let name = ds.name_any();
    let mut pass = Pass {
        ctx: &ctx,
        ds: &ds,
        pods: Api::namespaced(ctx.client.clone(), &ns),
        ns: ns.clone(),
        name: name.clone(),
        expect: vec![],
        failure: false,
    };
    let spec = ds.spec.clone().unwrap_or_default();
    let sel = &spec.selector;
    if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
    {
        let msg = "This daemon set is selecting all pods. A non-empty selector is required.";
        ctx.recorder
            .publish(ds.as_ref(), true, "SelectingAll", msg.into())
            .await;
        return Ok(Action::await_change());
    }
    let owned = pass.claim_pods().await?;
    if ds.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }

    // History: the current revision, and the hash its pods carry.
    let revs: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let revisions = history::claim(&revs, &ctx.revisions, ds.as_ref(), Some(sel))
        .await
        .map_err(|e| pass.history_err(e))?;
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    let want = history::Wanted {
        template: &spec.template,
        collision_count: collisions,
        hash_label: REVISION_LABEL,
    };
    let cur = match history::current(&revs, ds.as_ref(), &revisions, &want).await {
        Ok((cur, _)) => cur,
        Err(history::Error::Collision { name: taken }) => {
            let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
            let patch = json!({"status": {"collisionCount": collisions.unwrap_or(0) + 1}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(|e| pass.err(e))?;
            return Err(pass.history_err(history::Error::Collision { name: taken }));
        }
        Err(e) => return Err(pass.history_err(e)),
    };
    let hash = cur
        .labels()
        .get(REVISION_LABEL)
        .cloned()
        .unwrap_or_default();

    let nodes = ctx.nodes.state();
    let now = Timestamp::now();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let active: Vec<Arc<Pod>> = owned.clone();
    let states = node_states(&ds, &nodes, &active);
    let desired = states
        .iter()
        .filter(|n| n.elig.is_some_and(|e| e.should_run))
        .count();
    let (max_surge, max_unavailable) = limits(&ds, desired).map_err(|message| Error::Invalid {
        ns: ns.clone(),
        name: name.clone(),
        message,
    })?;
    let rolling = !is_on_delete(&ds);
    let surging = rolling && max_surge > 0;
    let plan = plan::manage(&states, &hash, surging, min_ready, now);
    let mut requeue: Option<Duration> = None;
    let mut to_delete = plan.delete.clone();
    for (pod, node) in &plan.failed {
        match backoff(
            &ctx.backoff,
            &format!("{}/{node}", ds.uid().unwrap_or_default()),
        ) {
            Some(wait) => requeue = Some(requeue.map_or(wait, |r| r.min(wait))),
            None => {
                let msg = format!(
                    "Found failed daemon pod {ns}/{pod} on node {node}, will try to kill it"
                );
                ctx.recorder
                    .publish(ds.as_ref(), true, "FailedDaemonPod", msg)
                    .await;
                to_delete.push(pod.clone());
            }
        }
    }
    pass.create(&plan.create, &hash).await;
    pass.delete(&to_delete, &owned).await;
    if pass.expect.is_empty() && rolling {
        let l = Limits {
            max_surge,
            max_unavailable,
            desired,
            min_ready,
        };
        let step = plan::rolling(&states, &hash, l, now);
        pass.create(&step.create, &hash).await;
        pass.delete(&step.delete, &owned).await;
    }
    let caught_up =
        common::wait_for_cache(&ctx.pods, &ns, &pass.expect, Duration::from_secs(5)).await;

    // History beyond the limit goes, except revisions live pods still run.
    let mine: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| {
            common::controller_of(&p.metadata).and_then(|r| ds.uid().map(|u| r.uid == u))
                == Some(true)
        })
        .collect();
    let live: Vec<String> = mine
        .iter()
        .filter_map(|p| p.labels().get(REVISION_LABEL).cloned())
        .collect();
    let old: Vec<ControllerRevision> = revisions
        .into_iter()
        .filter(|r| r.name_any() != cur.name_any())
        .collect();
    history::truncate(
        &revs,
        &old,
        spec.revision_history_limit.unwrap_or(10),
        |r| {
            r.labels()
                .get(REVISION_LABEL)
                .is_some_and(|h| live.contains(h))
        },
    )
    .await
    .map_err(|e| pass.history_err(e))?;

    let states = node_states(&ds, &ctx.nodes.state(), &mine);
    let c = plan::counts(&states, &hash, min_ready, Timestamp::now());
    let old_status = ds.status.clone().unwrap_or_default();
    let status = DaemonSetStatus {
        collision_count: old_status.collision_count,
        conditions: old_status.conditions.clone(),
        current_number_scheduled: c.current,
        desired_number_scheduled: c.desired,
        number_available: Some(c.available),
        number_misscheduled: c.misscheduled,
        number_ready: c.ready,
        number_unavailable: Some(c.desired - c.available).filter(|n| *n > 0),
        observed_generation: ds.metadata.generation,
        updated_number_scheduled: Some(c.updated),
    };
    if status != old_status {
        let api: Api<DaemonSet> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": with_nulls(&status) })),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(pass.err(e)),
        }
    }
    if let Some(w) = c.recheck {
        let w = Duration::try_from(w).unwrap_or_default() + Duration::from_millis(50);
        requeue = Some(requeue.map_or(w, |r| r.min(w)));
    }
    Ok(match (caught_up, pass.failure, requeue) {
        (false, _, _) => Action::requeue(Duration::from_secs(1)),
        (_, true, _) => Action::requeue(Duration::from_secs(5)),
        (_, _, Some(d)) => Action::requeue(d),
        // an update in progress moves on pod events; this is a safety net
        _ if c.updated < c.desired || c.available < c.desired => {
            Action::requeue(Duration::from_secs(30))
        }
        _ => Action::await_change(),
    })
}

/// The status as a merge patch: fields now unset are sent as null, so they are cleared
/// (numberUnavailable goes when every pod is available).
fn with_nulls(status: &DaemonSetStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_else(|_| json!({}));
    if let Some(m) = v.as_object_mut() {
        for k in [
            "numberUnavailable",
            "numberAvailable",
            "updatedNumberScheduled",
            "collisionCount",
            "conditions",
        ] {
            m.entry(k).or_insert(serde_json::Value::Null);
        }
    }
    v
}

/// `None` if a failed pod under `key` may be deleted now (and the back-off grows), else
/// how long to wait.
fn backoff(b: &Backoff, key: &str) -> Option<Duration> {
    let mut map = b.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    match map.get(key).copied() {
        Some((until, _)) if until > now => Some(until - now),
        Some((_, step)) => {
            let next = (step * 2).min(Duration::from_secs(900));
            map.insert(key.into(), (now + next, next));
            None
        }
        None => {
            map.insert(
                key.into(),
                (now + Duration::from_secs(1), Duration::from_secs(1)),
            );
            None
        }
    }
}
