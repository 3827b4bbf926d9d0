//! The Deployment's status as upstream computes it (replica counts, the Available and
//! Progressing conditions with the progress deadline), its revision annotation, and the
//! trimming of old ReplicaSets to revisionHistoryLimit once a rollout is complete.

use super::super::common;
use super::super::rollout::{self, REVISION};
use super::pass::{rs_view, Pass};
use super::Error;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use serde_json::json;
use std::time::Duration;

/// Status, conditions, the deployment's revision annotation and old-set cleanup.
pub(super) async fn finish(
    mut pass: Pass<'_>,
    new: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    max_unavailable: i32,
) -> Result<Action, Error> {
    let caught_up = common::wait_for_cache(
        &pass.ctx.sets,
        &pass.ns,
        &pass.expect,
        Duration::from_secs(5),
    )
    .await;
    let d = pass.d;
    let desired = pass.spec.replicas.unwrap_or(1);
    let st = |r: &ReplicaSet| r.status.clone().unwrap_or_default();
    let all: Vec<&ReplicaSet> = new.into_iter().chain(old.iter()).collect();
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.iter().map(|r| f(r)).sum::<i32>();
    let available = sum(&|r| st(r).available_replicas.unwrap_or(0));
    let old_status = d.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: Some(sum(&|r| st(r).replicas)),
        updated_replicas: Some(new.map(|n| st(n).replicas).unwrap_or(0)),
        ready_replicas: Some(sum(&|r| st(r).ready_replicas.unwrap_or(0))),
        available_replicas: Some(available),
        unavailable_replicas: Some((desired - available).max(0)),
        collision_count: old_status.collision_count,
        conditions: old_status.conditions.clone(),
        terminating_replicas: None,
    };
    let now = Timestamp::now();
    let new_name = new.map(|n| n.name_any()).unwrap_or_default();
    let (ok, reason, msg) = if available >= desired - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    set_condition(&mut status, "Available", ok, reason, msg.into(), now, false);
    let complete = new.is_some()
        && status.updated_replicas == Some(desired)
        && status.replicas == Some(desired)
        && available == desired;
    let progressing = get_condition(&status, "Progressing").cloned();
    let paused = pass.spec.paused == Some(true);
    let deadline = pass
        .spec
        .progress_deadline_seconds
        .filter(|s| *s != i32::MAX);
    let mut requeue = None;
    if paused {
        if progressing.as_ref().and_then(|c| c.reason.as_deref()) != Some("DeploymentPaused") {
            set_condition(
                &mut status,
                "Progressing",
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
                false,
            );
        }
    } else if let Some(name) = &pass.created {
        let msg = format!("Created new replica set \"{name}\"");
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            msg,
            now,
            true,
        );
    } else if progressing.as_ref().and_then(|c| c.reason.as_deref()) == Some("DeploymentPaused") {
        set_condition(
            &mut status,
            "Progressing",
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed".into(),
            now,
            false,
        );
    } else if progressing.is_none() && new.is_some() {
        let msg = format!("Found new replica set \"{new_name}\"");
        set_condition(
            &mut status,
            "Progressing",
            "True",
            "FoundNewReplicaSet",
            msg,
            now,
            false,
        );
    } else if let (Some(secs), Some(cond)) = (deadline, &progressing) {
        let was_complete = cond.reason.as_deref() == Some("NewReplicaSetAvailable")
            && status.replicas == status.updated_replicas;
        let moved = status.updated_replicas > old_status.updated_replicas
            || status.replicas.unwrap_or(0) - status.updated_replicas.unwrap_or(0)
                < old_status.replicas.unwrap_or(0) - old_status.updated_replicas.unwrap_or(0)
            || status.ready_replicas > old_status.ready_replicas
            || available > old_status.available_replicas.unwrap_or(0);
        let since = cond.last_update_time.as_ref().map(|t| t.0).unwrap_or(now);
        let due = since + SignedDuration::from_secs(i64::from(secs));
        if was_complete {
        } else if complete {
            let msg = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
            set_condition(
                &mut status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                msg,
                now,
                true,
            );
        } else if moved {
            let msg = format!("ReplicaSet \"{new_name}\" is progressing.");
            set_condition(
                &mut status,
                "Progressing",
                "True",
                "ReplicaSetUpdated",
                msg,
                now,
                true,
            );
            requeue = Some(Duration::from_secs(u64::from(secs.unsigned_abs())));
        } else if cond.reason.as_deref() == Some("ProgressDeadlineExceeded") {
        } else if now > due {
            let msg = format!("ReplicaSet \"{new_name}\" has timed out progressing.");
            set_condition(
                &mut status,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                msg,
                now,
                true,
            );
        } else {
            requeue = Some(
                Duration::try_from(due.duration_since(now)).unwrap_or_default()
                    + Duration::from_secs(1),
            );
        }
    }
    if status != old_status {
        let api: Api<Deployment> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
        let patch = json!({ "status": status });
        match api
            .patch_status(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(pass.err(e)),
        }
    }
    if let Some(n) = new {
        let rev = n.annotations().get(REVISION).cloned().unwrap_or_default();
        if d.annotations().get(REVISION) != Some(&rev) && d.metadata.deletion_timestamp.is_none() {
            let api: Api<Deployment> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
            let patch = json!({"metadata": {"annotations": { REVISION: rev }}});
            api.patch(
                &d.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| pass.err(e))?;
        }
    }
    if complete && !paused {
        cleanup(&mut pass, old).await?;
    }
    Ok(match (caught_up, requeue) {
        (false, _) => Action::requeue(Duration::from_secs(1)),
        (_, Some(d)) => Action::requeue(d),
        _ => Action::await_change(),
    })
}

/// Delete the oldest idle old sets beyond revisionHistoryLimit (default 10).
async fn cleanup(pass: &mut Pass<'_>, old: &[ReplicaSet]) -> Result<(), Error> {
    let limit = usize::try_from(pass.spec.revision_history_limit.unwrap_or(10)).unwrap_or(0);
    let mut idle: Vec<&ReplicaSet> = old
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    if idle.len() <= limit {
        return Ok(());
    }
    idle.sort_by_key(|r| rollout::revision_of(r.metadata.annotations.as_ref()));
    let extra = idle.len() - limit;
    for rs in idle.into_iter().take(extra) {
        let st = rs.status.clone().unwrap_or_default();
        if st.replicas != 0
            || rs_view(rs).spec != 0
            || rs.metadata.generation > st.observed_generation
        {
            continue;
        }
        match pass
            .api
            .delete(&rs.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(pass.err(e)),
        }
    }
    Ok(())
}

fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Set a condition as upstream does: lastTransitionTime moves only when status changes;
/// an identical status and reason is left alone unless `touch` (progress was seen).
fn set_condition(
    s: &mut DeploymentStatus,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
    touch: bool,
) {
    let conds = s.conditions.get_or_insert_with(Vec::new);
    let existing = conds.iter_mut().find(|c| c.type_ == type_);
    match existing {
        Some(c) if c.status == status && c.reason.as_deref() == Some(reason) && !touch => {}
        Some(c) => {
            if c.status != status {
                c.last_transition_time = Some(Time(now));
            }
            c.status = status.into();
            c.reason = Some(reason.into());
            c.message = Some(message);
            c.last_update_time = Some(Time(now));
        }
        None => conds.push(DeploymentCondition {
            type_: type_.into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message),
            last_transition_time: Some(Time(now)),
            last_update_time: Some(Time(now)),
        }),
    }
}
