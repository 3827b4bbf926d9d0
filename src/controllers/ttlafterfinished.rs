//! The TTL-after-finished controller: deletes a finished Job (Complete or Failed) once
//! `spec.ttlSecondsAfterFinished` seconds have passed since it finished, with background
//! propagation so the garbage collector removes its pods. It requeues each Job for the moment
//! it expires, and re-reads the Job from the API before deleting (the TTL may have changed
//! or the Job been replaced). It never touches a Job that has not finished.

use super::informers::Informers;
use super::job::finished;
use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::{Client, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ttl of job {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let jobs = informers.get::<Job>();
    let ctrl = Controller::for_shared_stream(jobs.subscribe_applied(), jobs.store());
    ctrl.graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, Arc::new(Ctx { client }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "ttl-after-finished reconcile");
            }
        })
        .await;
}

fn error_policy(_job: Arc<Job>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "ttl-after-finished failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// How long until the Job expires: None if it never does, zero if it has.
pub fn time_left(job: &Job, now: Timestamp) -> Option<Duration> {
    if job.meta().deletion_timestamp.is_some() {
        return None;
    }
    let ttl = job.spec.as_ref()?.ttl_seconds_after_finished?;
    let (_, at) = finished(job)?;
    // Upstream takes the finish time from the condition; without one, the Job just finished.
    let expires = at.unwrap_or(now) + SignedDuration::from_secs(i64::from(ttl));
    let left = expires.duration_since(now);
    Some(Duration::try_from(left.max(SignedDuration::ZERO)).unwrap_or_default())
}

async fn reconcile(job: Arc<Job>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = job.namespace().unwrap_or_default();
    let name = job.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let Some(left) = time_left(&job, Timestamp::now()) else {
        return Ok(Action::await_change());
    };
    if !left.is_zero() {
        return Ok(Action::requeue(left + Duration::from_millis(50)));
    }
    let api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let Some(fresh) = api.get_opt(&name).await.map_err(err)? else {
        return Ok(Action::await_change());
    };
    match time_left(&fresh, Timestamp::now()) {
        Some(d) if d.is_zero() => {}
        Some(d) => return Ok(Action::requeue(d + Duration::from_millis(50))),
        None => return Ok(Action::await_change()),
    }
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: fresh.uid(),
            resource_version: fresh.resource_version(),
        }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(err(e)),
    }
    Ok(Action::await_change())
}
