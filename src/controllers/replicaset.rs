//! The ReplicaSet controller: keeps `spec.replicas` active pods for every ReplicaSet. It
//! adopts orphan pods its selector matches and releases owned pods that stop matching
//! (upstream's ControllerRefManager), creates missing pods in slow-start batches from the
//! template (`<rs>-<5 random chars>`, controller reference with blockOwnerDeletion), deletes
//! surplus ones in upstream's order, and reports replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas (minReadySeconds), observedGeneration and the
//! ReplicaFailure condition. It reads pods from a reflector cache and writes only through
//! the API; it never touches pods another controller owns.

use super::common::{self, Claim, Expect, Recorder};
use super::podutil;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// At most this many pods are created or deleted in one pass (upstream's burstReplicas).
const BURST: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("replicaset {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    recorder: Recorder,
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let (pods, writer) = reflector::store::<Pod>();
    let pod_events = reflector::reflector(
        writer,
        watcher(Api::<Pod>::all(client.clone()), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects();
    let ctrl = Controller::new(
        Api::<ReplicaSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = ctrl.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "replicaset-controller"),
        client,
        pods,
    });
    ctrl.watches_stream(pod_events, move |pod: Pod| owners_of(&pod, &sets))
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "replicaset reconcile");
            }
        })
        .await;
}

/// The ReplicaSets a pod event concerns: its controller, or every set that could adopt it.
fn owners_of(pod: &Pod, sets: &Store<ReplicaSet>) -> Vec<ObjectRef<ReplicaSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match common::controller_of(&pod.metadata) {
        Some(r) if r.kind == "ReplicaSet" && r.api_version == "apps/v1" => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => vec![],
        None => sets
            .state()
            .iter()
            .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
            .filter(|rs| {
                let sel = rs.spec.as_ref().map(|s| &s.selector);
                common::selects(sel, pod.labels())
            })
            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
            .collect(),
    }
}

fn error_policy(_rs: Arc<ReplicaSet>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    let Error::Api { source, .. } = e;
    if matches!(source, kube::Error::Api(s) if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "replicaset sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(rs: Arc<ReplicaSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let uid = rs.uid().unwrap_or_default();
    let spec = rs.spec.clone().unwrap_or_default();
    let deleting = rs.metadata.deletion_timestamp.is_some();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut expect = vec![];

    // Claim: adopt orphans, release what no longer matches.
    let mut owned: Vec<Arc<Pod>> = vec![];
    let mut may_adopt: Option<bool> = None;
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let matches = common::selects(Some(&spec.selector), pod.labels());
        let rv = pod.resource_version().unwrap_or_default();
        match common::claim(&uid, deleting, &pod.metadata, matches) {
            Claim::Keep(true) => owned.push(pod),
            Claim::Keep(false) => {}
            Claim::Adopt => {
                if may_adopt.is_none() {
                    may_adopt = Some(
                        still_ours(&ctx.client, &ns, &name, &uid)
                            .await
                            .map_err(err)?,
                    );
                }
                if may_adopt != Some(true) {
                    continue;
                }
                let r = common::owner_ref(rs.as_ref());
                match common::set_controller(&pod_api, &pod, Some(r), "").await {
                    Ok(p) => owned.push(Arc::new(p)),
                    Err(kube::Error::Api(e)) if e.code == 404 => continue,
                    Err(e) => return Err(err(e)),
                }
                expect.push(Expect::Changed(pod.name_any(), rv));
            }
            Claim::Release => {
                match common::set_controller(&pod_api, &pod, None, &uid).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => continue,
                    Err(e) => return Err(err(e)),
                }
                expect.push(Expect::Changed(pod.name_any(), rv));
            }
        }
    }
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| podutil::is_active(p))
        .collect();

    let mut failure = None;
    if !deleting {
        let want = usize::try_from(spec.replicas.unwrap_or(1)).unwrap_or(0);
        if active.len() < want {
            let count = (want - active.len()).min(BURST);
            failure = create_pods(&ctx, &rs, &pod_api, count, &mut expect).await;
        } else if active.len() > want {
            let mut doomed = active.clone();
            podutil::rank_for_deletion(&mut doomed);
            doomed.truncate((active.len() - want).min(BURST));
            failure = delete_pods(&ctx, &rs, &pod_api, &doomed, &mut expect).await;
        }
    }

    let caught_up = common::wait_for_cache(&ctx.pods, &ns, &expect, Duration::from_secs(5)).await;
    let now = Timestamp::now();
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let mut ready = 0;
    let mut available = 0;
    let mut next_check: Option<Duration> = None;
    for p in &active {
        if podutil::is_ready(p) {
            ready += 1;
        }
        match podutil::available(p, spec.min_ready_seconds.unwrap_or(0), now) {
            Ok(()) => available += 1,
            Err(Some(wait)) => {
                let wait = Duration::try_from(wait).unwrap_or_default() + Duration::from_millis(50);
                next_check = Some(next_check.map_or(wait, |n| n.min(wait)));
            }
            Err(None) => {}
        }
    }
    let labeled = active
        .iter()
        .filter(|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.labels().get(k) == Some(v))
        })
        .count();
    let old = rs.status.clone().unwrap_or_default();
    let mut conditions = old.conditions.clone().unwrap_or_default();
    let had_failure = conditions.iter().any(|c| c.type_ == "ReplicaFailure");
    match (&failure, had_failure) {
        (Some((reason, message)), false) => conditions.push(ReplicaSetCondition {
            type_: "ReplicaFailure".into(),
            status: "True".into(),
            reason: Some(reason.to_string()),
            message: Some(message.clone()),
            last_transition_time: Some(Time(now)),
        }),
        (None, true) => conditions.retain(|c| c.type_ != "ReplicaFailure"),
        _ => {}
    }
    let n = |v: Option<i32>| v.unwrap_or(0);
    let count = |c: usize| i32::try_from(c).unwrap_or(i32::MAX);
    let status = json!({
        "replicas": count(active.len()),
        "fullyLabeledReplicas": count(labeled),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs.metadata.generation.unwrap_or(0),
        "conditions": if conditions.is_empty() { None } else { Some(&conditions) },
    });
    let unchanged = old.replicas == count(active.len())
        && n(old.fully_labeled_replicas) == count(labeled)
        && n(old.ready_replicas) == ready
        && n(old.available_replicas) == available
        && old.observed_generation == rs.metadata.generation
        && old.conditions.clone().unwrap_or_default() == conditions;
    if !unchanged {
        let api: Api<ReplicaSet> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
        {
            Ok(_) | Err(kube::Error::Api(_)) if deleting => {}
            Ok(_) => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(match (caught_up, failure.is_some(), next_check) {
        (false, _, _) => Action::requeue(Duration::from_secs(1)),
        (_, true, _) => Action::requeue(Duration::from_secs(5)),
        (_, _, Some(d)) => Action::requeue(d),
        _ => Action::await_change(),
    })
}

/// Upstream re-reads the owner before adopting: a cached owner may already be gone or
/// replaced by a namesake.
async fn still_ours(client: &Client, ns: &str, name: &str, uid: &str) -> Result<bool, kube::Error> {
    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.is_some_and(|fresh| {
        fresh.uid().as_deref() == Some(uid) && fresh.metadata.deletion_timestamp.is_none()
    }))
}

fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let template = rs
        .spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name_any())),
            namespace: rs.namespace(),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![common::owner_ref(rs)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// Create `count` pods in slow-start batches; stop at the first batch with a failure and
/// return it as (reason, message) for the ReplicaFailure condition.
async fn create_pods(
    ctx: &Ctx,
    rs: &ReplicaSet,
    api: &Api<Pod>,
    count: usize,
    expect: &mut Vec<Expect>,
) -> Option<(&'static str, String)> {
    let pod = pod_from_template(rs);
    for batch in podutil::slow_start_batches(count) {
        let results = futures::future::join_all((0..batch).map(|_| async {
            let r = api.create(&PostParams::default(), &pod).await;
            match &r {
                Ok(p) => {
                    let msg = format!("Created pod: {}", p.name_any());
                    ctx.recorder
                        .publish(rs, false, "SuccessfulCreate", msg)
                        .await;
                }
                Err(e) => {
                    let msg = format!("Error creating: {}", api_message(e));
                    ctx.recorder.publish(rs, true, "FailedCreate", msg).await;
                }
            }
            r
        }))
        .await;
        let mut failed = None;
        for r in results {
            match r {
                Ok(p) => expect.push(Expect::Present(p.name_any())),
                Err(e) => failed = Some(("FailedCreate", api_message(&e))),
            }
        }
        if failed.is_some() {
            return failed;
        }
    }
    None
}

async fn delete_pods(
    ctx: &Ctx,
    rs: &ReplicaSet,
    api: &Api<Pod>,
    doomed: &[&Pod],
    expect: &mut Vec<Expect>,
) -> Option<(&'static str, String)> {
    let results = futures::future::join_all(doomed.iter().map(|p| async {
        let name = p.name_any();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: p.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let r = match api.delete(&name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        };
        match &r {
            Ok(()) => {
                let msg = format!("Deleted pod: {name}");
                ctx.recorder
                    .publish(rs, false, "SuccessfulDelete", msg)
                    .await;
            }
            Err(e) => {
                let msg = format!("Error deleting: {}", api_message(e));
                ctx.recorder.publish(rs, true, "FailedDelete", msg).await;
            }
        }
        (name, r)
    }))
    .await;
    let mut failed = None;
    for (name, r) in results {
        match r {
            Ok(()) => expect.push(Expect::Gone(name)),
            Err(e) => failed = Some(("FailedDelete", api_message(&e))),
        }
    }
    failed
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}
