//! The Job controller: runs a Job's pods to completion as upstream's does. Each pass claims
//! the pods the Job's selector matches (adopting orphans, releasing strays), lets `sync` decide
//! what to count, create and delete, then writes in upstream's safe order: pods deleted and
//! created, finished pods recorded in `status.uncountedTerminatedPods` (or the completed and
//! failed indexes), their `batch.kubernetes.io/job-tracking` finalizers removed, and only then
//! the totals and the final condition, so no pod is counted twice or lost across a crash. It
//! reads pods and Jobs from reflector caches and writes only through the API; it never
//! deletes the Job itself (the TTL-after-finished controller does) nor touches pods another
//! controller owns.

pub mod indexes;
mod orphans;
pub mod pods;
pub mod policy;
pub mod status;
pub mod sync;

pub use status::finished;

use super::common::{self, Claim, Expect, Recorder};
use super::informers::Informers;
use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("job {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    jobs: Store<Job>,
    recorder: Recorder,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let pod_informer = informers.get::<Pod>();
    let pods = pod_informer.store();
    let own = informers.get::<Job>();
    // The controller's own kind triggers on Jobs that exist, as `Controller::new` would.
    let ctrl = Controller::for_shared_stream(own.subscribe_applied(), own.store());
    let jobs = ctrl.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "job-controller"),
        client,
        pods,
        jobs: jobs.clone(),
    });
    let (orphan_tx, orphan_rx) = tokio::sync::mpsc::unbounded_channel();
    let orphans = orphans::run(ctx.client.clone(), orphan_rx, cancel.clone());
    let controller = ctrl
        .watches_shared_stream(pod_informer.subscribe(), move |pod: Arc<Pod>| {
            let owners = owners_of(&pod, &jobs);
            let known = owners.iter().any(|o| jobs.get(o).is_some());
            // A deleted pod may outlive its Job's entry in the cache by a moment: let the orphan
            // loop check such pods against the API.
            let deleting = pod.metadata.deletion_timestamp.is_some();
            if (!known || deleting) && orphans::candidate(&pod) {
                let _ = orphan_tx.send(pod);
            }
            owners
        })
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "job reconcile");
            }
        });
    // Both end on cancellation; the orphan loop lives no longer than the controller.
    tokio::join!(controller, orphans);
}

fn selector(job: &Job) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector> {
    job.spec.as_ref()?.selector.as_ref()
}

/// The Jobs a pod event concerns: its controller, or every Job that could adopt it.
fn owners_of(pod: &Pod, jobs: &Store<Job>) -> Vec<ObjectRef<Job>> {
    let ns = pod.namespace().unwrap_or_default();
    match common::controller_of(&pod.metadata) {
        Some(r) if r.kind == "Job" && r.api_version == "batch/v1" => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => vec![],
        None => jobs
            .state()
            .iter()
            .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
            .filter(|j| common::selects(selector(j), pod.labels()))
            .map(|j| ObjectRef::from_obj(j.as_ref()))
            .collect(),
    }
}

fn error_policy(_job: Arc<Job>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    let Error::Api { source, .. } = e;
    if matches!(source, kube::Error::Api(s) if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "job sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The Job's pods, after adopting orphans it selects and releasing those it no longer does.
async fn claim_pods(
    ctx: &Ctx,
    job: &Job,
    api: &Api<Pod>,
    expect: &mut Vec<Expect>,
) -> Result<Vec<Arc<Pod>>, kube::Error> {
    let ns = job.namespace().unwrap_or_default();
    let uid = job.uid().unwrap_or_default();
    let deleting = job.meta().deletion_timestamp.is_some();
    let mut owned = vec![];
    let mut may_adopt: Option<bool> = None;
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let matches = common::selects(selector(job), pod.labels());
        let rv = pod.resource_version().unwrap_or_default();
        match common::claim(&uid, deleting, &pod.metadata, matches) {
            Claim::Keep(true) => owned.push(pod),
            Claim::Keep(false) => {}
            Claim::Adopt => {
                if may_adopt.is_none() {
                    let fresh = Api::<Job>::namespaced(ctx.client.clone(), &ns)
                        .get_opt(&job.name_any())
                        .await?;
                    may_adopt = Some(fresh.is_some_and(|f| {
                        f.uid().as_deref() == Some(uid.as_str())
                            && f.meta().deletion_timestamp.is_none()
                    }));
                }
                if may_adopt != Some(true) {
                    continue;
                }
                match common::set_controller(api, &pod, Some(common::owner_ref(job)), "").await {
                    Ok(p) => owned.push(Arc::new(p)),
                    Err(kube::Error::Api(e)) if e.code == 404 => continue,
                    Err(e) => return Err(e),
                }
                expect.push(Expect::Changed(pod.name_any(), rv));
            }
            Claim::Release => {
                match common::set_controller(api, &pod, None, &uid).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 => continue,
                    Err(e) => return Err(e),
                }
                expect.push(Expect::Changed(pod.name_any(), rv));
            }
        }
    }
    Ok(owned)
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let mut expect = vec![];
    let mut expect_job = vec![];
    let owned = claim_pods(&ctx, &job, &pod_api, &mut expect)
        .await
        .map_err(err)?;

    // A finished or deleted Job only lets go of its pods.
    if finished(&job).is_some() || job.meta().deletion_timestamp.is_some() {
        let held: Vec<&Pod> = owned
            .iter()
            .map(|p| p.as_ref())
            .filter(|p| pods::has_finalizer(p))
            .collect();
        let (_, failed) = pods::remove_finalizers(&pod_api, &held, &mut expect).await;
        if let Some(e) = failed {
            return Err(err(e));
        }
        return Ok(Action::await_change());
    }

    let now = Timestamp::now();
    let plan = sync::plan(&job, &owned, now);
    for (warning, reason, msg) in &plan.events {
        ctx.recorder
            .publish(job.as_ref(), *warning, reason, msg.clone())
            .await;
    }
    let (deleted, del_err) =
        pods::delete(&ctx.recorder, &job, &pod_api, &plan.delete, &mut expect).await;
    let new_pods: Vec<Pod> = plan
        .create
        .iter()
        .map(|(ix, failures)| pods::pod_for(&job, *ix, *failures))
        .collect();
    let (created, create_err) =
        pods::create(&ctx.recorder, &job, &pod_api, new_pods, &mut expect).await;

    // Record what is about to be counted before any finalizer goes.
    let stored = status::Status::of(&job);
    let mut rv = job.resource_version();
    let mut st = plan.status.clone();
    let recorded = st.uncounted_succeeded != stored.uncounted_succeeded
        || st.uncounted_failed != stored.uncounted_failed
        || st.completed_indexes != stored.completed_indexes
        || st.failed_indexes != stored.failed_indexes
        || st.conditions != stored.conditions;
    let mut written = stored.clone();
    if recorded {
        let patch = st.to_patch(rv.as_deref());
        let fresh = match job_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(j) => j,
            Err(e) => {
                // Nothing is released until it is recorded; see this pass's pod writes first.
                common::wait_for_cache(&ctx.pods, &ns, &expect, Duration::from_secs(5)).await;
                return Err(err(e));
            }
        };
        rv = fresh.resource_version();
        written = st.clone();
    }
    let (released, fin_err) =
        pods::remove_finalizers(&pod_api, &plan.to_finalize, &mut expect).await;

    let deleted_uids: HashSet<&str> = plan
        .delete
        .iter()
        .take(deleted)
        .filter_map(|p| p.metadata.uid.as_deref())
        .collect();
    let still_active: Vec<&&Pod> = plan
        .active
        .iter()
        .filter(|p| {
            !p.metadata
                .uid
                .as_deref()
                .is_some_and(|u| deleted_uids.contains(u))
        })
        .collect();
    let ready = still_active
        .iter()
        .filter(|p| super::podutil::is_ready(p))
        .count();
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    let event = sync::finish(
        &mut st,
        &job,
        &owned,
        &released,
        count(still_active.len() + created),
        count(ready),
        plan.terminating + count(deleted),
        plan.target.as_ref(),
        now,
    );
    let mut failure = del_err.or(create_err).or(fin_err);
    if st != written || recorded {
        // The next pass must not read a Job older than this pass's status writes: it would
        // miss pods counted here and make up for them.
        expect_job.push(Expect::Changed(
            name.clone(),
            job.resource_version().unwrap_or_default(),
        ));
    }
    if st != written {
        let patch = st.to_patch(rv.as_deref());
        if let Err(e) = job_api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            failure.get_or_insert(e);
        }
    }
    if let Some((warning, reason, msg)) = event.filter(|_| failure.is_none()) {
        ctx.recorder
            .publish(job.as_ref(), warning, reason, msg)
            .await;
    }
    // Even after a failure: the next pass must see this one's creations and deletions, or it
    // would make them again.
    let caught_up = common::wait_for_cache(&ctx.pods, &ns, &expect, Duration::from_secs(5)).await
        && common::wait_for_cache(&ctx.jobs, &ns, &expect_job, Duration::from_secs(5)).await;
    if let Some(e) = failure {
        return Err(err(e));
    }
    Ok(match (caught_up, plan.requeue) {
        (false, _) => Action::requeue(Duration::from_secs(1)),
        (true, Some(d)) => Action::requeue(d),
        (true, None) => Action::await_change(),
    })
}
