//! The StatefulSet controller: members `<set>-<ordinal>` with stable identity and storage
//! (`identity.rs`), created, replaced, scaled and rolled in upstream's order (`control.rs`),
//! a ControllerRevision per template (`history`) whose names are the pods'
//! `controller-revision-hash` and the status' currentRevision/updateRevision, and upstream's
//! status counts. It adopts orphan members its selector matches and releases those that
//! stop matching, reads pods, claims and revisions from reflector caches and writes only
//! through the API. It never deletes claims itself: retention works through owner
//! references that the garbage collector follows.

mod control;
mod identity;

use super::common::{self, Claim, Recorder};
use super::history;
use super::informers::Informers;
use control::{Pass, Rev};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use identity::{POD_INDEX_LABEL, POD_NAME_LABEL};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("statefulset {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
    #[error("statefulset {ns}/{name}: {source}")]
    History {
        ns: String,
        name: String,
        source: history::Error,
    },
    #[error("statefulset {ns}/{name}: {message}")]
    Invalid {
        ns: String,
        name: String,
        message: String,
    },
}

pub(super) struct Ctx {
    client: Client,
    pods: Store<Pod>,
    claims: Store<PersistentVolumeClaim>,
    revisions: Store<ControllerRevision>,
    recorder: Recorder,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let pod_informer = informers.get::<Pod>();
    let claim_informer = informers.get::<PersistentVolumeClaim>();
    let rev_informer = informers.get::<ControllerRevision>();
    let (pods, claims) = (pod_informer.store(), claim_informer.store());
    let revisions = rev_informer.store();
    let ctrl = Controller::new(
        Api::<StatefulSet>::all(client.clone()),
        watcher::Config::default(),
    );
    let sets = ctrl.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "statefulset-controller"),
        client,
        pods,
        claims,
        revisions,
    });
    ctrl.watches_shared_stream(pod_informer.subscribe(), move |pod: Arc<Pod>| {
        owners_of(&pod, &sets)
    })
    .watches_shared_stream(rev_informer.subscribe(), |cr: Arc<ControllerRevision>| {
        owner(&cr.metadata)
    })
    // claims only matter to the members that use them; their owners are pods or sets
    .watches_shared_stream(
        claim_informer.subscribe(),
        |c: Arc<PersistentVolumeClaim>| owner(&c.metadata),
    )
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "statefulset reconcile");
        }
    })
    .await;
}

fn owner(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<ObjectRef<StatefulSet>> {
    let ns = meta.namespace.clone().unwrap_or_default();
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.kind == "StatefulSet" && r.api_version == "apps/v1")
        .map(|r| ObjectRef::new(&r.name).within(&ns))
}

/// The sets a pod event concerns: its controller, or every set that could adopt it.
fn owners_of(pod: &Pod, sets: &Store<StatefulSet>) -> Vec<ObjectRef<StatefulSet>> {
    let ns = pod.namespace().unwrap_or_default();
    match common::controller_of(&pod.metadata) {
        Some(r) if r.kind == "StatefulSet" && r.api_version == "apps/v1" => {
            vec![ObjectRef::new(&r.name).within(&ns)]
        }
        Some(_) => vec![],
        None => sets
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .filter(|s| identity::ordinal_in(s, pod).is_some())
            .filter(|s| common::selects(s.spec.as_ref().map(|s| &s.selector), pod.labels()))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect(),
    }
}

fn error_policy(_s: Arc<StatefulSet>, e: &Error, _ctx: Arc<Ctx>) -> Action {
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
    tracing::warn!(error = %e, "statefulset sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Members this set controls, after adopting orphans (selected and named for it) and
/// releasing members that no longer match.
async fn claim_pods(
    ctx: &Ctx,
    set: &StatefulSet,
    api: &Api<Pod>,
    err: impl Fn(kube::Error) -> Error,
) -> Result<Vec<Arc<Pod>>, Error> {
    let ns = set.namespace().unwrap_or_default();
    let uid = set.uid().unwrap_or_default();
    let deleting = set.metadata.deletion_timestamp.is_some();
    let selector = set.spec.as_ref().map(|s| &s.selector);
    let mut owned = vec![];
    for pod in ctx.pods.state() {
        if pod.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let matches =
            identity::ordinal_in(set, &pod).is_some() && common::selects(selector, pod.labels());
        let adopt = match common::claim(&uid, deleting, &pod.metadata, matches) {
            Claim::Keep(true) => {
                owned.push(pod);
                continue;
            }
            Claim::Keep(false) => continue,
            Claim::Adopt => Some(common::owner_ref(set)),
            Claim::Release => None,
        };
        let adopting = adopt.is_some();
        match common::set_controller(api, &pod, adopt, &uid).await {
            Ok(p) if adopting => owned.push(Arc::new(p)),
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(owned)
}

async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.claims.wait_until_ready().await;
    let _ = ctx.revisions.wait_until_ready().await;
    let ns = set.namespace().unwrap_or_default();
    let name = set.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let herr = |source| Error::History {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let pod_api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let pods = claim_pods(&ctx, &set, &pod_api, err).await?;
    let spec = set.spec.clone().unwrap_or_default();
    let old_status = set.status.clone().unwrap_or_default();

    // Revisions: the update revision matches the template; the current one is the status'.
    let revs: Api<ControllerRevision> = Api::namespaced(ctx.client.clone(), &ns);
    let mut revisions = history::claim(&revs, &ctx.revisions, set.as_ref(), Some(&spec.selector))
        .await
        .map_err(herr)?;
    let want = history::Wanted {
        template: &spec.template,
        collision_count: old_status.collision_count,
        hash_label: history::HASH_LABEL,
    };
    let update_cr = match history::current(&revs, set.as_ref(), &revisions, &want).await {
        Ok((cr, _)) => cr,
        Err(history::Error::Collision { name: taken }) => {
            let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
            let count = old_status.collision_count.unwrap_or(0) + 1;
            let patch = json!({"status": {"collisionCount": count}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(err)?;
            return Err(herr(history::Error::Collision { name: taken }));
        }
        Err(e) => return Err(herr(e)),
    };
    revisions.retain(|r| r.name_any() != update_cr.name_any());
    revisions.push(update_cr.clone());
    history::sort(&mut revisions);
    let update = Rev {
        name: update_cr.name_any(),
        template: spec.template.clone(),
    };
    let current = revisions
        .iter()
        .find(|r| Some(r.name_any()) == old_status.current_revision)
        .and_then(|r| {
            Some(Rev {
                name: r.name_any(),
                template: history::template_of(r)?,
            })
        })
        .unwrap_or(Rev {
            name: update.name.clone(),
            template: update.template.clone(),
        });

    let mut pass = Pass {
        ctx: &ctx,
        set: &set,
        ns: ns.clone(),
        pods: pod_api,
        claims: Api::namespaced(ctx.client.clone(), &ns),
        expect: vec![],
        recheck: None,
    };
    let synced = control::sync(&mut pass, &pods, &current, &update).await;
    let caught_up =
        common::wait_for_cache(&ctx.pods, &ns, &pass.expect, Duration::from_secs(5)).await;

    // Status from what the cache shows now.
    let uid = set.uid();
    let mine: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .filter(|p| {
            common::controller_of(&p.metadata).map(|r| Some(&r.uid) == uid.as_ref()) == Some(true)
        })
        .collect();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let now = Timestamp::now();
    let mut status = StatefulSetStatus {
        observed_generation: set.metadata.generation,
        current_revision: Some(current.name.clone()),
        update_revision: Some(update.name.clone()),
        collision_count: Some(old_status.collision_count.unwrap_or(0)),
        conditions: old_status.conditions.clone(),
        ..Default::default()
    };
    let (mut ready, mut available, mut cur, mut upd) = (0, 0, 0, 0);
    for p in &mine {
        if control::running_ready(p) {
            ready += 1;
            if crate::controllers::podutil::available(p, min_ready, now).is_ok() {
                available += 1;
            }
        }
        if p.metadata.deletion_timestamp.is_none() {
            cur += i32::from(control::revision(p) == current.name);
            upd += i32::from(control::revision(p) == update.name);
        }
    }
    let replicas = identity::replicas(&set);
    status.replicas = mine.len() as i32;
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status.current_replicas = Some(cur);
    status.updated_replicas = Some(upd);
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    if rolling && upd == replicas && ready == replicas && status.replicas == replicas {
        status.current_replicas = Some(upd);
        status.current_revision = status.update_revision.clone();
    }
    if status != old_status && set.metadata.deletion_timestamp.is_none() {
        let api: Api<StatefulSet> = Api::namespaced(ctx.client.clone(), &ns);
        match api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "status": status })),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(err(e)),
        }
    }

    // History beyond the limit goes, except the current and update revisions and any a
    // member still runs.
    let live: Vec<String> = mine
        .iter()
        .map(|p| control::revision(p).to_string())
        .collect();
    let keep = [
        status.current_revision.clone(),
        status.update_revision.clone(),
    ];
    history::truncate(
        &revs,
        &revisions,
        spec.revision_history_limit.unwrap_or(10),
        |r| {
            let n = r.name_any();
            live.contains(&n) || keep.iter().any(|k| k.as_deref() == Some(n.as_str()))
        },
    )
    .await
    .map_err(herr)?;
    synced?;
    Ok(match (caught_up, pass.recheck) {
        (false, _) => Action::requeue(Duration::from_secs(1)),
        (_, Some(d)) => Action::requeue(d),
        _ => Action::await_change(),
    })
}
