//! The ReplicaSet controller: keeps `spec.replicas` active pods for every ReplicaSet. It
//! adopts orphan pods its selector matches and releases owned pods that stop matching
//! (upstream's ControllerRefManager), creates missing pods in slow-start batches from the
//! template (`<rs>-<5 random chars>`, controller reference with blockOwnerDeletion), deletes
//! surplus ones in upstream's order, and reports replicas, fullyLabeledReplicas,
//! readyReplicas, availableReplicas (minReadySeconds), observedGeneration and the
//! ReplicaFailure condition. It reads pods from a reflector cache and writes only through
//! the API; it never touches pods another controller owns. It is generic over `PodSet`, so
//! the ReplicationController controller is this one over the older kind.

use super::common::{self, Claim, Expect, Recorder};
use super::informers::Informers;
use super::podutil;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use std::fmt::Debug;
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

/// What the controller needs of the kind it runs for: ReplicaSet here, and the
/// ReplicationController (`replicationcontroller.rs`), the same logic over an older kind.
pub trait PodSet:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The reporting component of its events.
    const COMPONENT: &'static str;
    fn selector(&self) -> Option<LabelSelector>;
    fn replicas(&self) -> i32;
    fn template(&self) -> Option<PodTemplateSpec>;
    fn min_ready_seconds(&self) -> i32;
}

impl PodSet for ReplicaSet {
    const COMPONENT: &'static str = "replicaset-controller";
    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn template(&self) -> Option<PodTemplateSpec> {
        self.spec.as_ref().and_then(|s| s.template.clone())
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    recorder: Recorder,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    run_for::<ReplicaSet>(informers, cancel).await
}

/// The controller for one kind of pod set.
pub async fn run_for<K: PodSet>(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let pod_informer = informers.get::<Pod>();
    let pods = pod_informer.store();
    let own = informers.get::<K>();
    // The controller's own kind triggers on sets that exist, as `Controller::new` would.
    let ctrl = Controller::for_shared_stream(own.subscribe_applied(), own.store());
    let sets = ctrl.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), K::COMPONENT),
        client,
        pods,
    });
    ctrl.watches_shared_stream(pod_informer.subscribe(), move |pod: Arc<Pod>| {
        owners_of(&pod, &sets)
    })
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile::<K>, error_policy::<K>, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "replicaset reconcile");
        }
    })
    .await;
}

/// The sets a pod event concerns: its controller, or every set that could adopt it.
fn owners_of<K: PodSet>(pod: &Pod, sets: &Store<K>) -> Vec<ObjectRef<K>> {
    let ns = pod.namespace().unwrap_or_default();
    match common::controller_of(&pod.metadata) {
        Some(r) if r.kind == K::kind(&()) && r.api_version == K::api_version(&()) => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => vec![],
        None => sets
            .state()
            .iter()
            .filter(|rs| rs.namespace().as_deref() == Some(ns.as_str()))
            .filter(|rs| common::selects(rs.selector().as_ref(), pod.labels()))
            .map(|rs| ObjectRef::from_obj(rs.as_ref()))
            .collect(),
    }
}

fn error_policy<K: PodSet>(_rs: Arc<K>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    let Error::Api { source, .. } = e;
    if matches!(source, kube::Error::Api(s) if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "replicaset sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile<K: PodSet>(rs: Arc<K>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let ns = rs.namespace().unwrap_or_default();
    let name = rs.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let uid = rs.uid().unwrap_or_default();
    let selector = rs.selector();
    let deleting = rs.meta().deletion_timestamp.is_some();
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let mut expect = vec![];

    // Claim: adopt orphans, release what no longer matches.
    let mut owned: Vec<Arc<Pod>> = vec![];
    let mut may_adopt: Option<bool> = None;
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let matches = common::selects(selector.as_ref(), pod.labels());
        let rv = pod.resource_version().unwrap_or_default();
        match common::claim(&uid, deleting, &pod.metadata, matches) {
            Claim::Keep(true) => owned.push(pod),
            Claim::Keep(false) => {}
            Claim::Adopt => {
                if may_adopt.is_none() {
                    may_adopt = Some(
                        still_ours::<K>(&ctx.client, &ns, &name, &uid)
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
        let want = usize::try_from(rs.replicas()).unwrap_or(0);
        if active.len() < want {
            let count = (want - active.len()).min(BURST);
            failure = create_pods(&ctx, rs.as_ref(), &pod_api, count, &mut expect).await;
        } else if active.len() > want {
            let mut doomed = active.clone();
            podutil::rank_for_deletion(&mut doomed);
            doomed.truncate((active.len() - want).min(BURST));
            failure = delete_pods(&ctx, rs.as_ref(), &pod_api, &doomed, &mut expect).await;
        }
    }

    let caught_up = common::wait_for_cache(&ctx.pods, &ns, &expect, Duration::from_secs(5)).await;
    let now = Timestamp::now();
    let template_labels = rs
        .template()
        .and_then(|t| t.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    let mut ready = 0;
    let mut available = 0;
    let mut next_check: Option<Duration> = None;
    for p in &active {
        if podutil::is_ready(p) {
            ready += 1;
        }
        match podutil::available(p, rs.min_ready_seconds(), now) {
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
    // The two kinds' statuses have the same shape: work on it as JSON.
    let old = serde_json::to_value(rs.as_ref())
        .map(|v| v["status"].clone())
        .unwrap_or_default();
    let mut conditions: Vec<Value> = old["conditions"].as_array().cloned().unwrap_or_default();
    let had_failure = conditions.iter().any(|c| c["type"] == "ReplicaFailure");
    match (&failure, had_failure) {
        (Some((reason, message)), false) => conditions.push(json!({
            "type": "ReplicaFailure",
            "status": "True",
            "reason": reason,
            "message": message,
            "lastTransitionTime": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })),
        (None, true) => conditions.retain(|c| c["type"] != "ReplicaFailure"),
        _ => {}
    }
    let count = |c: usize| i64::try_from(c).unwrap_or(i64::MAX);
    let status = json!({
        "replicas": count(active.len()),
        "fullyLabeledReplicas": count(labeled),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs.meta().generation.unwrap_or(0),
        "conditions": if conditions.is_empty() { None } else { Some(&conditions) },
    });
    let n = |k: &str| old[k].as_i64().unwrap_or(0);
    let unchanged = n("replicas") == count(active.len())
        && n("fullyLabeledReplicas") == count(labeled)
        && n("readyReplicas") == ready
        && n("availableReplicas") == available
        && old["observedGeneration"].as_i64() == rs.meta().generation
        && old["conditions"].as_array().cloned().unwrap_or_default() == conditions;
    if !unchanged {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
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
async fn still_ours<K: PodSet>(
    client: &Client,
    ns: &str,
    name: &str,
    uid: &str,
) -> Result<bool, kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    Ok(api.get_opt(name).await?.is_some_and(|fresh| {
        fresh.uid().as_deref() == Some(uid) && fresh.meta().deletion_timestamp.is_none()
    }))
}

fn pod_from_template<K: PodSet>(rs: &K) -> Pod {
    let template = rs.template().unwrap_or_default();
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
async fn create_pods<K: PodSet>(
    ctx: &Ctx,
    rs: &K,
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

async fn delete_pods<K: PodSet>(
    ctx: &Ctx,
    rs: &K,
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
