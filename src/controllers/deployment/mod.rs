//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets named
//! `<deployment>-<pod-template-hash>` (hash: `rollout::template_hash`). RollingUpdate grows
//! the new set and shrinks the old ones within maxSurge/maxUnavailable; Recreate scales the
//! old sets to zero, waits for their pods to go, then starts the new set. It keeps revision
//! annotations (so `kubectl rollout history/undo` work), honours `spec.paused`, scales
//! proportionally, trims old sets to revisionHistoryLimit, and reports status with the
//! Available and Progressing conditions (progressDeadlineSeconds). It reads ReplicaSets
//! from a reflector cache, writes through the API, and never touches pods itself.

use super::common::{self, Claim, Recorder};
use super::informers::Informers;
use super::rollout::{self, Rs, DESIRED_REPLICAS};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

mod pass;
mod status;

use pass::{rs_view, same_template, Pass};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("deployment {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
    #[error("deployment {ns}/{name}: {message}")]
    Invalid {
        ns: String,
        name: String,
        message: String,
    },
}

pub(super) struct Ctx {
    pub(super) client: Client,
    pub(super) sets: Store<ReplicaSet>,
    pub(super) recorder: Recorder,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let set_informer = informers.get::<ReplicaSet>();
    let sets = set_informer.store();
    let ctrl = Controller::new(
        Api::<Deployment>::all(client.clone()),
        watcher::Config::default(),
    );
    let deployments = ctrl.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "deployment-controller"),
        client,
        sets,
    });
    ctrl.watches_shared_stream(set_informer.subscribe(), move |rs: Arc<ReplicaSet>| {
        owners_of(&rs, &deployments)
    })
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "deployment reconcile");
        }
    })
    .await;
}

fn owners_of(rs: &ReplicaSet, deployments: &Store<Deployment>) -> Vec<ObjectRef<Deployment>> {
    let ns = rs.namespace().unwrap_or_default();
    match common::controller_of(&rs.metadata) {
        Some(r) if r.kind == "Deployment" && r.api_version == "apps/v1" => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => vec![],
        None => deployments
            .state()
            .iter()
            .filter(|d| d.namespace().as_deref() == Some(ns.as_str()))
            .filter(|d| common::selects(d.spec.as_ref().map(|s| &s.selector), rs.labels()))
            .map(|d| ObjectRef::from_obj(d.as_ref()))
            .collect(),
    }
}

fn error_policy(_d: Arc<Deployment>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    if matches!(e, Error::Api { source: kube::Error::Api(s), .. } if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "deployment sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(d: Arc<Deployment>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.sets.wait_until_ready().await;
    let ns = d.namespace().unwrap_or_default();
    let spec = d.spec.clone().unwrap_or_default();
    let (max_surge, max_unavailable) = match rollout::fenceposts(&spec) {
        Ok(f) => f,
        Err(message) => {
            let name = d.name_any();
            return Err(Error::Invalid { ns, name, message });
        }
    };
    let mut pass = Pass {
        ctx: &ctx,
        d: &d,
        api: Api::namespaced(ctx.client.clone(), &ns),
        spec,
        ns: ns.clone(),
        expect: vec![],
        max_surge,
        created: None,
    };
    let deleting = d.metadata.deletion_timestamp.is_some();
    let uid = d.uid().unwrap_or_default();
    let mut owned: Vec<ReplicaSet> = vec![];
    for rs in ctx.sets.state() {
        if rs.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let matches = common::selects(Some(&pass.spec.selector), rs.labels());
        match common::claim(&uid, deleting, &rs.metadata, matches) {
            Claim::Keep(true) => owned.push((*rs).clone()),
            Claim::Keep(false) => {}
            Claim::Adopt => {
                let r = common::owner_ref(d.as_ref());
                let adopted = common::set_controller(&pass.api, rs.as_ref(), Some(r), "").await;
                owned.push(adopted.map_err(|e| pass.err(e))?);
            }
            Claim::Release => {
                common::set_controller(&pass.api, rs.as_ref(), None, &uid)
                    .await
                    .map_err(|e| pass.err(e))?;
            }
        }
    }
    owned.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.as_ref().map(|t| t.0),
            a.name_any(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.as_ref().map(|t| t.0),
                b.name_any(),
            ))
    });
    let new_idx = owned.iter().position(|rs| {
        same_template(
            rs.spec.as_ref().and_then(|s| s.template.as_ref()),
            &pass.spec.template,
        )
    });
    let mut new = new_idx.map(|i| owned.remove(i));
    let old = owned;
    if deleting {
        return status::finish(pass, new.as_ref(), &old, max_unavailable).await;
    }
    let revision = old
        .iter()
        .map(|r| rollout::revision_of(r.metadata.annotations.as_ref()))
        .max()
        .unwrap_or(0)
        + 1;
    if let Some(n) = &new {
        pass.sync_revision(n, revision).await?;
    }
    let desired = pass.spec.replicas.unwrap_or(1);
    let paused = pass.spec.paused == Some(true);
    let active: Vec<&ReplicaSet> = new
        .iter()
        .chain(old.iter())
        .filter(|r| rs_view(r).spec > 0)
        .collect();
    let scaling = active.iter().any(|r| {
        r.annotations()
            .get(DESIRED_REPLICAS)
            .and_then(|v| v.parse::<i32>().ok())
            != Some(desired)
    });
    let mut wait = None;
    if scaling {
        scale(&mut pass, new.as_ref(), &old, desired, active.len()).await?;
    } else if paused {
        // a paused deployment only scales
    } else if rollout::is_recreate(&pass.spec) {
        let mut wrote = false;
        for rs in old.iter().filter(|r| rs_view(r).spec > 0) {
            wrote |= pass.scale(rs, 0).await?;
        }
        if !wrote {
            if old_pods_running(&pass, &old).await? {
                wait = Some(Duration::from_secs(1));
            } else {
                match &new {
                    Some(n) => {
                        pass.scale(n, desired).await?;
                    }
                    None => new = Some(pass.create_new(desired, revision).await?),
                }
            }
        }
    } else {
        match &new {
            None => {
                let n = rollout::new_replicas(
                    desired,
                    max_surge,
                    Rs::default(),
                    &old.iter().map(rs_view).collect::<Vec<_>>(),
                );
                new = Some(pass.create_new(n, revision).await?);
            }
            Some(n) => {
                let olds: Vec<Rs> = old.iter().map(rs_view).collect();
                let target = rollout::new_replicas(desired, max_surge, rs_view(n), &olds);
                if !pass.scale(n, target).await? {
                    let targets =
                        rollout::scale_down_old(desired, max_unavailable, rs_view(n), &olds);
                    for (rs, t) in old.iter().zip(targets) {
                        if t != rs_view(rs).spec {
                            pass.scale(rs, t).await?;
                        }
                    }
                }
            }
        }
    }
    let action = status::finish(pass, new.as_ref(), &old, max_unavailable).await?;
    Ok(match wait {
        Some(w) => Action::requeue(w),
        None => action,
    })
}

/// Scaling only (paused, or spec.replicas changed): resize the active sets, proportionally
/// when a rollout is under way.
async fn scale(
    pass: &mut Pass<'_>,
    new: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    desired: i32,
    active: usize,
) -> Result<(), Error> {
    let mut sets: Vec<&ReplicaSet> = new.into_iter().chain(old.iter().rev()).collect();
    if active <= 1 {
        let target = sets
            .iter()
            .find(|r| rs_view(r).spec > 0)
            .or(sets.first())
            .copied();
        if let Some(t) = target {
            pass.scale(t, desired).await?;
        }
        return Ok(());
    }
    let saturated = Rs {
        spec: desired,
        available: desired,
    };
    if new.is_some_and(|n| rs_view(n) == saturated) {
        for rs in old.iter().filter(|r| rs_view(r).spec > 0) {
            pass.scale(rs, 0).await?;
        }
        return Ok(());
    }
    sets.retain(|r| rs_view(r).spec > 0);
    let surge = if rollout::is_recreate(&pass.spec) {
        0
    } else {
        pass.max_surge
    };
    let sizes: Vec<i32> = sets.iter().map(|r| rs_view(r).spec).collect();
    let targets = rollout::proportional(&sizes, desired + surge);
    for (rs, t) in sets.into_iter().zip(targets) {
        pass.scale(rs, t).await?;
    }
    Ok(())
}

/// Recreate waits until no pod of an old set is left running or terminating.
async fn old_pods_running(pass: &Pass<'_>, old: &[ReplicaSet]) -> Result<bool, Error> {
    let uids: Vec<String> = old.iter().filter_map(|r| r.uid()).collect();
    let sel =
        kube::core::Selector::try_from(pass.spec.selector.clone()).map_err(|e| Error::Invalid {
            ns: pass.ns.clone(),
            name: pass.d.name_any(),
            message: e.to_string(),
        })?;
    let pods: Api<Pod> = Api::namespaced(pass.ctx.client.clone(), &pass.ns);
    let list = pods
        .list_metadata(&ListParams::default().labels(&sel.to_string()))
        .await
        .map_err(|e| pass.err(e))?;
    Ok(list
        .items
        .iter()
        .any(|p| common::controller_of(&p.metadata).is_some_and(|r| uids.contains(&r.uid))))
}
