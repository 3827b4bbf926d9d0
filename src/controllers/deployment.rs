//! The Deployment controller: rolls a Deployment's pod template out through ReplicaSets named
//! `<deployment>-<pod-template-hash>` (hash: `rollout::template_hash`). RollingUpdate grows
//! the new set and shrinks the old ones within maxSurge/maxUnavailable; Recreate scales the
//! old sets to zero, waits for their pods to go, then starts the new set. It keeps revision
//! annotations (so `kubectl rollout history/undo` work), honours `spec.paused`, scales
//! proportionally, trims old sets to revisionHistoryLimit, and reports status with the
//! Available and Progressing conditions (progressDeadlineSeconds). It reads ReplicaSets
//! from a reflector cache, writes through the API, and never touches pods itself.

use super::common::{self, Claim, Expect, Recorder};
use super::rollout::REVISION_HISTORY;
use super::rollout::{self, Rs, DESIRED_REPLICAS, HASH_LABEL, MAX_REPLICAS, REVISION};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::apps::v1::{DeploymentStatus, ReplicaSetSpec};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

struct Ctx {
    client: Client,
    sets: Store<ReplicaSet>,
    recorder: Recorder,
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let (sets, writer) = reflector::store::<ReplicaSet>();
    let set_events = reflector::reflector(
        writer,
        watcher(
            Api::<ReplicaSet>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
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
    ctrl.watches_stream(set_events, move |rs: ReplicaSet| {
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

/// One pass over a Deployment: the writes it made and what it learnt.
struct Pass<'a> {
    ctx: &'a Ctx,
    d: &'a Deployment,
    spec: DeploymentSpec,
    api: Api<ReplicaSet>,
    ns: String,
    expect: Vec<Expect>,
    max_surge: i32,
    created: Option<String>,
}

fn rs_view(rs: &ReplicaSet) -> Rs {
    Rs {
        spec: rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        available: rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0),
    }
}

/// Templates equal but for the hash label (upstream's EqualIgnoreHash).
fn same_template(a: Option<&PodTemplateSpec>, b: &PodTemplateSpec) -> bool {
    let norm = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        let m = t.metadata.get_or_insert_with(Default::default);
        if let Some(l) = m.labels.as_mut() {
            l.remove(HASH_LABEL);
        }
        if m.labels.as_ref().is_some_and(|l| l.is_empty()) {
            m.labels = None;
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    a.is_some_and(|a| norm(a) == norm(b))
}

impl Pass<'_> {
    fn err(&self, source: kube::Error) -> Error {
        Error::Api {
            ns: self.ns.clone(),
            name: self.d.name_any(),
            source,
        }
    }

    /// Scale `rs` to `replicas`, refreshing its desired/max annotations. Returns whether it
    /// wrote anything.
    async fn scale(&mut self, rs: &ReplicaSet, replicas: i32) -> Result<bool, Error> {
        let desired = self.spec.replicas.unwrap_or(1);
        let ann = rs.annotations();
        let current = rs_view(rs).spec;
        let fresh_ann = ann.get(DESIRED_REPLICAS) == Some(&desired.to_string())
            && ann.get(MAX_REPLICAS) == Some(&(desired + self.max_surge).to_string());
        if current == replicas && fresh_ann {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": rs.resource_version(),
                "annotations": {
                    DESIRED_REPLICAS: desired.to_string(),
                    MAX_REPLICAS: (desired + self.max_surge).to_string(),
                },
            },
            "spec": {"replicas": replicas},
        });
        self.api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| self.err(e))?;
        self.expect.push(Expect::Changed(
            rs.name_any(),
            rs.resource_version().unwrap_or_default(),
        ));
        if current != replicas {
            let dir = if replicas > current { "up" } else { "down" };
            let msg = format!(
                "Scaled {dir} replica set {} from {current} to {replicas}",
                rs.name_any()
            );
            self.ctx
                .recorder
                .publish(self.d, false, "ScalingReplicaSet", msg)
                .await;
        }
        Ok(true)
    }

    /// Create the new ReplicaSet for the current template, or find the one a lagging cache
    /// did not show yet. A namesake with another template is a hash collision: bump
    /// status.collisionCount so the next pass hashes differently.
    async fn create_new(&mut self, replicas: i32, revision: i64) -> Result<ReplicaSet, Error> {
        let d = self.d;
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = rollout::template_hash(&self.spec.template, collisions);
        let mut template = self.spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = self.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut annotations: BTreeMap<String, String> = d
            .annotations()
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("deployment.kubernetes.io/")
                    && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let desired = self.spec.replicas.unwrap_or(1);
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + self.max_surge).to_string());
        let name = format!("{}-{hash}", d.name_any());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.ns.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![common::owner_ref(d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: self.spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match self.api.create(&PostParams::default(), &rs).await {
            Ok(rs) => {
                self.expect.push(Expect::Present(name.clone()));
                self.created = Some(name.clone());
                let msg = format!("Scaled up replica set {name} from 0 to {replicas}");
                self.ctx
                    .recorder
                    .publish(d, false, "ScalingReplicaSet", msg)
                    .await;
                Ok(rs)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = self.api.get(&name).await.map_err(|e| self.err(e))?;
                let ours = common::controller_of(&existing.metadata).map(|r| r.uid.as_str())
                    == d.metadata.uid.as_deref();
                let template = existing.spec.as_ref().and_then(|s| s.template.as_ref());
                if ours && same_template(template, &self.spec.template) {
                    return Ok(existing);
                }
                let count = collisions.unwrap_or(0) + 1;
                let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &self.ns);
                let patch = json!({"status": {"collisionCount": count}});
                api.patch_status(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(|e| self.err(e))?;
                Err(Error::Invalid {
                    ns: self.ns.clone(),
                    name: d.name_any(),
                    message: format!("hash collision with replica set {name}, retrying"),
                })
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Give the new set the next revision when an older template comes back (rollback),
    /// remembering its former revisions as upstream does.
    async fn sync_revision(&mut self, rs: &ReplicaSet, revision: i64) -> Result<(), Error> {
        let current = rollout::revision_of(rs.metadata.annotations.as_ref());
        if current >= revision {
            return Ok(());
        }
        let mut history: Vec<String> = rs
            .annotations()
            .get(REVISION_HISTORY)
            .map(|h| h.split(',').map(String::from).collect())
            .unwrap_or_default();
        if current > 0 {
            history.push(current.to_string());
        }
        let mut ann = json!({ REVISION: revision.to_string() });
        if !history.is_empty() {
            ann[REVISION_HISTORY] = json!(history.join(","));
        }
        let patch =
            json!({"metadata": {"annotations": ann, "resourceVersion": rs.resource_version()}});
        self.api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| self.err(e))?;
        self.expect.push(Expect::Changed(
            rs.name_any(),
            rs.resource_version().unwrap_or_default(),
        ));
        Ok(())
    }
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
        return finish(pass, new.as_ref(), &old, max_unavailable).await;
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
    let action = finish(pass, new.as_ref(), &old, max_unavailable).await?;
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

/// Status, conditions, the deployment's revision annotation and old-set cleanup.
async fn finish(
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
