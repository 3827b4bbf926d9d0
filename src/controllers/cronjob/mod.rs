//! The CronJob controller: creates a Job from `spec.jobTemplate` at each scheduled time
//! (`<cronjob>-<minutes since the epoch>`, with the scheduled time in the
//! `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation and a controller reference),
//! in the CronJob's `timeZone` or the system's, honouring `suspend`, `concurrencyPolicy`
//! (Allow, Forbid, Replace), `startingDeadlineSeconds` and upstream's limit of 100 missed
//! start times; keeps `status.active`, `lastScheduleTime` and `lastSuccessfulTime`; and
//! deletes finished Jobs past `successfulJobsHistoryLimit`/`failedJobsHistoryLimit`. It
//! requeues each CronJob for just after its next scheduled time: there is no polling loop.
//! Time comes from a `Clock`, so tests can jump ahead. It never touches the Jobs' pods (the
//! Job controller and the garbage collector own those).

pub mod clock;
pub mod times;

use super::common::{self, Recorder};
use super::informers::Informers;
use super::job::finished;
use crate::cron::Schedule;
use clock::{Clock, SystemClock};
use futures::StreamExt;
use jiff::tz::TimeZone;
use jiff::Zoned;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use times::{History, Missed};
use tokio_util::sync::CancellationToken;

/// The annotation that records which scheduled time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cronjob {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    jobs: Store<Job>,
    recorder: Recorder,
    clock: Arc<dyn Clock>,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    run_with_clock(informers, Arc::new(SystemClock), cancel).await
}

/// The controller with a given clock (tests pass a `ManualClock`).
pub async fn run_with_clock(
    informers: Informers,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) {
    let client = informers.client().clone();
    let job_informer = informers.get::<Job>();
    let jobs = job_informer.store();
    let ctrl = Controller::new(
        Api::<CronJob>::all(client.clone()),
        watcher::Config::default(),
    );
    let ticks = clock.ticks();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "cronjob-controller"),
        client,
        jobs,
        clock,
    });
    ctrl.watches_shared_stream(job_informer.subscribe(), |job: Arc<Job>| {
        let ns = job.namespace().unwrap_or_default();
        common::controller_of(&job.metadata)
            .filter(|r| r.kind == "CronJob" && r.api_version == "batch/v1")
            .map(|r| ObjectRef::new(&r.name).within(&ns))
    })
    .reconcile_all_on(ticks)
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "cronjob reconcile");
        }
    })
    .await;
}

fn error_policy(_cj: Arc<CronJob>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    let Error::Api { source, .. } = e;
    if matches!(source, kube::Error::Api(s) if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "cronjob sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

async fn reconcile(cj: Arc<CronJob>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.jobs.wait_until_ready().await;
    let ns = cj.namespace().unwrap_or_default();
    let name = cj.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let uid = cj.uid().unwrap_or_default();
    let old_status = cj.status.clone().unwrap_or_default();
    let mut status = old_status.clone();
    let job_api: Api<Job> = Api::namespaced(ctx.client.clone(), &ns);
    let jobs: Vec<Arc<Job>> = ctx
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.namespace().as_deref() == Some(ns.as_str()))
        .filter(|j| common::controller_of(&j.metadata).is_some_and(|r| r.uid == uid))
        .collect();

    // The active list against the Jobs as they are.
    let mut active = status.active.take().unwrap_or_default();
    for job in &jobs {
        let Some((kind, _)) = finished(job) else {
            continue;
        };
        let juid = job.uid();
        if active.iter().any(|r| r.uid == juid) {
            active.retain(|r| r.uid != juid);
            let msg = format!("Saw completed job: {}, condition: {kind}", job.name_any());
            ctx.recorder
                .publish(cj.as_ref(), false, "SawCompletedJob", msg)
                .await;
        }
        if kind == "Complete" {
            let done = job.status.as_ref().and_then(|s| s.completion_time.clone());
            if let Some(t) = done {
                if status
                    .last_successful_time
                    .as_ref()
                    .is_none_or(|l| l.0 < t.0)
                {
                    status.last_successful_time = Some(t);
                }
            }
        }
    }
    let mut gone = vec![];
    for r in &active {
        let cached = jobs.iter().any(|j| j.uid() == r.uid);
        if cached {
            continue;
        }
        // The cache may not show a Job just created: ask the API before forgetting it.
        let jn = r.name.clone().unwrap_or_default();
        let fresh = job_api.get_opt(&jn).await.map_err(err)?;
        if fresh.is_none_or(|j| j.uid() != r.uid) {
            gone.push(r.uid.clone());
            let msg = format!("Active job went missing: {jn}");
            ctx.recorder
                .publish(cj.as_ref(), true, "MissingJob", msg)
                .await;
        }
    }
    active.retain(|r| !gone.contains(&r.uid));
    status.active = Some(active);

    let action = if cj.meta().deletion_timestamp.is_some() {
        Action::await_change()
    } else {
        cleanup_history(&ctx, &cj, &jobs, &job_api).await;
        schedule_next(&ctx, &cj, &mut status, &job_api)
            .await
            .map_err(err)?
    };

    if status.active.as_ref().is_some_and(Vec::is_empty) {
        status.active = None;
    }
    if status != old_status {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ns);
        // Guarded by the resourceVersion read: a pass on a stale copy must not undo a newer one.
        let patch = json!({
            "metadata": {"resourceVersion": cj.resource_version()},
            "status": {
                "active": status.active,
                "lastScheduleTime": status.last_schedule_time,
                "lastSuccessfulTime": status.last_successful_time,
            }
        });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(action)
}

/// Create the Job due now, if any; return when to look again.
async fn schedule_next(
    ctx: &Ctx,
    cj: &CronJob,
    status: &mut CronJobStatus,
    job_api: &Api<Job>,
) -> Result<Action, kube::Error> {
    let spec = cj.spec.clone().unwrap_or_default();
    if spec.suspend == Some(true) {
        return Ok(Action::await_change());
    }
    let tz = match spec.time_zone.as_deref() {
        None => TimeZone::system(),
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                let msg = format!("invalid timeZone: {name:?}: {e}");
                ctx.recorder.publish(cj, true, "UnknownTimeZone", msg).await;
                return Ok(Action::await_change());
            }
        },
    };
    let sched = match Schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            let msg = format!("unparseable schedule: {:?} : {e}", spec.schedule);
            ctx.recorder
                .publish(cj, true, "UnparseableSchedule", msg)
                .await;
            return Ok(Action::await_change());
        }
    };
    let now = ctx.clock.now().to_zoned(tz);
    let hist = History {
        created: cj
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0)
            .unwrap_or_else(|| now.timestamp()),
        last_schedule: status.last_schedule_time.as_ref().map(|t| t.0),
        starting_deadline_seconds: spec.starting_deadline_seconds,
    };
    let again = |h: &History| match times::requeue_after(h, &now, &sched) {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    };
    let (_, due, missed) = match times::most_recent(&hist, &now, &sched, true) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("invalid schedule: {}: {e}", spec.schedule);
            ctx.recorder.publish(cj, true, "InvalidSchedule", msg).await;
            return Ok(Action::await_change());
        }
    };
    if let Missed::Many(n) = missed {
        let msg = format!(
            "too many missed start times: {n}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
        );
        ctx.recorder
            .publish(cj, true, "TooManyMissedTimes", msg)
            .await;
    }
    let Some(due) = due else {
        return Ok(again(&hist));
    };
    if let Some(d) = spec.starting_deadline_seconds {
        if due.timestamp() + jiff::SignedDuration::from_secs(d) < now.timestamp() {
            let msg = format!(
                "Missed scheduled time to start a job: {}",
                times::rfc3339(&due)
            );
            ctx.recorder.publish(cj, true, "MissSchedule", msg).await;
            return Ok(again(&hist));
        }
    }
    let job_name = times::job_name(&cj.name_any(), &due);
    let active = status.active.get_or_insert_with(Vec::new);
    let already = active
        .iter()
        .any(|r| r.name.as_deref() == Some(job_name.as_str()))
        || status.last_schedule_time.as_ref().map(|t| t.0) == Some(due.timestamp());
    if already {
        return Ok(again(&hist));
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            let msg = "Not starting job because prior execution is running and concurrency policy is Forbid";
            ctx.recorder
                .publish(cj, false, "JobAlreadyActive", msg.into())
                .await;
            return Ok(again(&hist));
        }
        Some("Replace") => {
            for r in std::mem::take(active) {
                let jn = r.name.clone().unwrap_or_default();
                let dp = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: Some(r.uid.clone().unwrap_or_default()),
                        resource_version: None,
                    }),
                    ..DeleteParams::background()
                };
                match job_api.delete(&jn, &dp).await {
                    Ok(_) => {
                        let msg = format!("Deleted job {jn}");
                        ctx.recorder
                            .publish(cj, false, "SuccessfulDelete", msg)
                            .await;
                    }
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                    Err(e) => {
                        active.push(r);
                        return Err(e);
                    }
                }
            }
        }
        _ => {}
    }
    let job = job_from_template(cj, &job_name, &due);
    let created = match job_api.create(&PostParams::default(), &job).await {
        Ok(j) => {
            let msg = format!("Created job {job_name}");
            ctx.recorder
                .publish(cj, false, "SuccessfulCreate", msg)
                .await;
            j
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            // Created earlier by this controller (its status write was lost) or by someone
            // else: record it if it is ours.
            let Some(existing) = job_api.get_opt(&job_name).await? else {
                return Ok(Action::requeue(Duration::from_secs(1)));
            };
            let ours = common::controller_of(&existing.metadata)
                .is_some_and(|r| Some(&r.uid) == cj.metadata.uid.as_ref());
            if !ours {
                return Ok(again(&hist));
            }
            existing
        }
        Err(e) => {
            let msg = format!("Error creating job: {e}");
            ctx.recorder.publish(cj, true, "FailedCreate", msg).await;
            return Err(e);
        }
    };
    if finished(&created).is_none() && !active.iter().any(|r| r.uid == created.uid()) {
        active.push(job_ref(&created));
    }
    status.last_schedule_time = Some(Time(due.timestamp()));
    let hist = History {
        last_schedule: Some(due.timestamp()),
        ..hist
    };
    Ok(again(&hist))
}

fn job_from_template(cj: &CronJob, name: &str, due: &Zoned) -> Job {
    let tmpl = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = tmpl.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP.into(), times::rfc3339(due));
    Job {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: cj.namespace(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![common::owner_ref(cj)]),
            ..Default::default()
        },
        spec: tmpl.spec,
        status: None,
    }
}

/// Delete the oldest finished Jobs past the history limits (background propagation, so their
/// pods go too).
async fn cleanup_history(ctx: &Ctx, cj: &CronJob, jobs: &[Arc<Job>], api: &Api<Job>) {
    let spec = cj.spec.clone().unwrap_or_default();
    for (kind, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&Arc<Job>> = jobs
            .iter()
            .filter(|j| j.meta().deletion_timestamp.is_none())
            .filter(|j| finished(j).is_some_and(|(k, _)| k == kind))
            .collect();
        let keep = usize::try_from(limit).unwrap_or(0);
        if done.len() <= keep {
            continue;
        }
        done.sort_by_key(|j| {
            let st = j
                .status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .map(|t| t.0);
            // upstream's order: by start time, Jobs that never started last, then by name
            (st.is_none(), st, j.name_any())
        });
        let excess = done.len() - keep;
        for j in done.into_iter().take(excess) {
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: j.uid(),
                    resource_version: None,
                }),
                ..DeleteParams::background()
            };
            match api.delete(&j.name_any(), &dp).await {
                Ok(_) => {
                    let msg = format!("Deleted job {}", j.name_any());
                    ctx.recorder
                        .publish(cj, false, "SuccessfulDelete", msg)
                        .await;
                }
                Err(e) => {
                    let msg = format!("Deleted job {} failed: {e}", j.name_any());
                    ctx.recorder.publish(cj, true, "FailedDelete", msg).await;
                }
            }
        }
    }
}
