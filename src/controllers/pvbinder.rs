//! The PersistentVolume binder (upstream's PV controller, binding half). For an unbound
//! claim it picks a volume: one pre-bound to it (`claimRef`), the one it names
//! (`volumeName`), or the smallest Available volume of the same class and volume mode that
//! has every access mode it asks for, enough capacity, the labels its selector wants and,
//! when the class waits for a consumer, node affinity allowing the selected node. It then
//! binds both sides (claimRef and `pv.kubernetes.io/bound-by-controller` on the volume,
//! volumeName and `pv.kubernetes.io/bind-completed` on the claim, Bound phases, the claim's
//! capacity). A volume whose claim is gone becomes Released; with reclaim Retain it stays so,
//! a provisioned one is left to its provisioner, others Fail as upstream (no in-tree deleter).
//! A claim whose volume vanished is Lost. Claims of a class with a provisioner and no volume
//! wait for it. Volumes are not created or deleted here; everything goes through the API.

use super::common::Recorder;
use super::pvmatch as matching;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
pub use crate::scheduler::volumes::SELECTED_NODE;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name}: {what}: {source}")]
    Api {
        kind: &'static str,
        name: String,
        what: &'static str,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    recorder: Recorder,
    /// The last waiting reason reported per claim uid.
    reported: Mutex<HashMap<String, String>>,
}

fn api_err(
    kind: &'static str,
    name: String,
    what: &'static str,
) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Api {
        kind,
        name,
        what,
        source,
    }
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let claim_ctrl = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    );
    let volume_ctrl = Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    );
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "persistentvolume-controller"),
        client: client.clone(),
        claims: claim_ctrl.store(),
        volumes: volume_ctrl.store(),
        reported: Mutex::new(HashMap::new()),
    });
    // Volume changes wake the claims they could serve; claim changes wake their volumes.
    let claims = ctx.claims.clone();
    let claim_ctrl = claim_ctrl
        .watches(
            Api::<PersistentVolume>::all(client.clone()),
            watcher::Config::default(),
            move |pv: PersistentVolume| claims_for(&pv, &claims),
        )
        .graceful_shutdown_on({
            let c = cancel.clone();
            async move { c.cancelled().await }
        })
        .run(reconcile_claim, error_policy, ctx.clone())
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "claim binder reconcile");
            }
        });
    let volumes = ctx.volumes.clone();
    let volume_ctrl = volume_ctrl
        .watches(
            Api::<PersistentVolumeClaim>::all(client),
            watcher::Config::default(),
            move |pvc: PersistentVolumeClaim| volumes_for(&pvc, &volumes),
        )
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile_volume, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "volume binder reconcile");
            }
        });
    tokio::join!(claim_ctrl, volume_ctrl);
}

fn error_policy<K>(_obj: Arc<K>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %e, "volume binding, retrying");
    Action::requeue(Duration::from_secs(2))
}

fn claims_for(
    pv: &PersistentVolume,
    claims: &Store<PersistentVolumeClaim>,
) -> Vec<ObjectRef<PersistentVolumeClaim>> {
    if let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
        if let (Some(ns), Some(name)) = (&r.namespace, &r.name) {
            return vec![ObjectRef::new(name).within(ns)];
        }
    }
    claims
        .state()
        .iter()
        .filter(|c| matching::volume_name(c).is_none())
        .map(|c| ObjectRef::from_obj(c.as_ref()))
        .collect()
}

fn volumes_for(
    pvc: &PersistentVolumeClaim,
    volumes: &Store<PersistentVolume>,
) -> Vec<ObjectRef<PersistentVolume>> {
    let ns = pvc.namespace();
    let name = pvc.name_any();
    volumes
        .state()
        .iter()
        .filter(|v| {
            matching::volume_name(pvc) == Some(v.name_any().as_str())
                || v.spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_some_and(|r| r.namespace == ns && r.name.as_deref() == Some(name.as_str()))
        })
        .map(|v| ObjectRef::from_obj(v.as_ref()))
        .collect()
}

fn annotation<'a>(meta: &'a kube::api::ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Ctx>,
) -> Result<Action, Error> {
    if claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    match matching::volume_name(&claim) {
        Some(v) => sync_bound_claim(&ctx, &claim, v).await,
        None => sync_unbound_claim(&ctx, &claim).await,
    }
}

async fn sync_unbound_claim(ctx: &Ctx, claim: &PersistentVolumeClaim) -> Result<Action, Error> {
    let key = format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    );
    let class_name = matching::class_of_claim(claim);
    let class = match class_name.is_empty() {
        true => None,
        false => Api::<StorageClass>::all(ctx.client.clone())
            .get_opt(class_name)
            .await
            .map_err(api_err("claim", key.clone(), "reading its storage class"))?,
    };
    let delayed = class
        .as_ref()
        .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
    let selected = annotation(&claim.metadata, SELECTED_NODE);
    if delayed && selected.is_none() {
        event_once(
            ctx,
            claim,
            "WaitForFirstConsumer",
            "waiting for first consumer to be created before binding".into(),
        )
        .await;
        return Ok(Action::await_change());
    }
    let node = match selected {
        Some(n) => Some(
            Api::<Node>::all(ctx.client.clone())
                .get_opt(n)
                .await
                .map_err(api_err("claim", key.clone(), "reading its selected node"))?
                .map(|node| (n.to_string(), node.labels().clone()))
                .unwrap_or_else(|| (n.to_string(), Default::default())),
        ),
        None => None,
    };
    let volumes = ctx.volumes.state();
    if let Some(pv) = matching::find_volume(claim, &volumes, node.as_ref()) {
        bind(ctx, claim, &pv).await?;
        return Ok(Action::await_change());
    }
    match class {
        Some(c) if !c.provisioner.is_empty() && c.provisioner != "kubernetes.io/no-provisioner" => {
            if annotation(&claim.metadata, STORAGE_PROVISIONER).is_none() {
                let patch = json!({"metadata": {"annotations": {
                    STORAGE_PROVISIONER: c.provisioner, BETA_STORAGE_PROVISIONER: c.provisioner}}});
                Api::<PersistentVolumeClaim>::namespaced(
                    ctx.client.clone(),
                    &claim.namespace().unwrap_or_default(),
                )
                .patch(
                    &claim.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(api_err("claim", key, "naming its provisioner"))?;
            }
            let msg = format!("Waiting for a volume to be created either by the external provisioner '{}' or manually by the system administrator. If volume creation is delayed, please verify that the provisioner is running and correctly registered.", c.provisioner);
            event_once(ctx, claim, "ExternalProvisioning", msg).await;
        }
        Some(_) => {
            event_once(
                ctx,
                claim,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
            )
            .await
        }
        None if class_name.is_empty() => {
            event_once(
                ctx,
                claim,
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set".into(),
            )
            .await
        }
        None => {
            let msg = format!("storageclass.storage.k8s.io \"{class_name}\" not found");
            event_once(ctx, claim, "ProvisioningFailed", msg).await
        }
    }
    set_claim_phase(ctx, claim, "Pending", None).await?;
    // A volume event wakes this claim through its own watch, but the volumes are read from
    // the other controller's cache, which may not hold the new volume yet: look again
    // shortly, as upstream's binder resyncs pending claims.
    Ok(Action::requeue(Duration::from_secs(2)))
}

async fn sync_bound_claim(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    volume: &str,
) -> Result<Action, Error> {
    let pv = Api::<PersistentVolume>::all(ctx.client.clone())
        .get_opt(volume)
        .await
        .map_err(api_err("volume", volume.into(), "reading"))?;
    let Some(pv) = pv else {
        if claim.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Lost") {
            ctx.recorder
                .publish(
                    claim,
                    true,
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!".into(),
                )
                .await;
        }
        set_claim_phase(ctx, claim, "Lost", None).await?;
        return Ok(Action::await_change());
    };
    let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    let ours = claim_ref.is_some_and(|r| {
        r.namespace == claim.namespace()
            && r.name.as_deref() == Some(claim.name_any().as_str())
            && r.uid
                .as_deref()
                .is_none_or(|u| u.is_empty() || Some(u) == claim.uid().as_deref())
    });
    if claim_ref.is_none() || ours {
        if claim_ref.is_none()
            || annotation(&claim.metadata, BIND_COMPLETED).is_none()
            || matching::phase(&pv) != "Bound"
        {
            if let Err(why) = matching::satisfies(claim, &pv) {
                event_once(
                    ctx,
                    claim,
                    "VolumeMismatch",
                    format!("Cannot bind to requested volume \"{volume}\": {why}"),
                )
                .await;
                return Ok(Action::await_change());
            }
            bind(ctx, claim, &pv).await?;
        } else {
            set_claim_phase(ctx, claim, "Bound", Some(&pv)).await?;
        }
        return Ok(Action::await_change());
    }
    if annotation(&claim.metadata, BIND_COMPLETED).is_some() {
        event_once(
            ctx,
            claim,
            "ClaimMisbound",
            "Two claims are bound to the same volume, this one is bound incorrectly".into(),
        )
        .await;
        set_claim_phase(ctx, claim, "Lost", None).await?;
    } else {
        event_once(
            ctx,
            claim,
            "FailedBinding",
            format!("volume \"{volume}\" already bound to a different claim."),
        )
        .await;
    }
    Ok(Action::await_change())
}

/// Bind `pv` and `claim` to each other: the volume first, as upstream, so a crash between
/// the writes leaves a volume pre-bound to its claim, which the next pass completes.
async fn bind(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    pv: &PersistentVolume,
) -> Result<(), Error> {
    let ns = claim.namespace().unwrap_or_default();
    let pv_name = pv.name_any();
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    let claim_ref = ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("PersistentVolumeClaim".into()),
        namespace: Some(ns.clone()),
        name: Some(claim.name_any()),
        uid: claim.uid(),
        resource_version: claim.resource_version(),
        field_path: None,
    };
    let had_ref = pv
        .spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some();
    let mut patch = json!({
        "metadata": {"resourceVersion": pv.resource_version()},
        "spec": {"claimRef": claim_ref},
    });
    if !had_ref {
        patch["metadata"]["annotations"] = json!({BOUND_BY_CONTROLLER: "yes"});
    }
    let pv = volumes
        .patch(&pv_name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(api_err("volume", pv_name.clone(), "binding to its claim"))?;
    set_volume_phase(ctx, &pv, "Bound").await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    let mut annotations = json!({BIND_COMPLETED: "yes"});
    if matching::volume_name(claim).is_none() {
        annotations[BOUND_BY_CONTROLLER] = json!("yes");
    }
    let patch = json!({
        "metadata": {"resourceVersion": claim.resource_version(), "annotations": annotations},
        "spec": {"volumeName": pv_name},
    });
    let claim = claims
        .patch(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map_err(api_err(
            "claim",
            format!("{ns}/{}", claim.name_any()),
            "binding to its volume",
        ))?;
    set_claim_phase(ctx, &claim, "Bound", Some(&pv)).await?;
    ctx.reported
        .lock()
        .expect("reported lock")
        .remove(&claim.uid().unwrap_or_default());
    tracing::info!(claim = %format!("{ns}/{}", claim.name_any()), volume = %pv_name, "bound claim");
    Ok(())
}

async fn set_claim_phase(
    ctx: &Ctx,
    claim: &PersistentVolumeClaim,
    phase: &str,
    pv: Option<&PersistentVolume>,
) -> Result<(), Error> {
    let current = claim.status.clone().unwrap_or_default();
    let mut status = json!({"phase": phase});
    match pv.and_then(|p| p.spec.as_ref()) {
        Some(spec) => {
            status["accessModes"] = json!(spec.access_modes);
            status["capacity"] = json!(spec.capacity);
        }
        None if phase != "Bound" => {
            status["accessModes"] = json!(null);
            status["capacity"] = json!(null);
        }
        None => {}
    }
    let unchanged = current.phase.as_deref() == Some(phase)
        && (pv.is_none()
            || (json!(current.capacity) == status["capacity"]
                && json!(current.access_modes) == status["accessModes"]));
    if unchanged {
        return Ok(());
    }
    let ns = claim.namespace().unwrap_or_default();
    Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
        .patch_status(
            &claim.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .map_err(api_err(
            "claim",
            format!("{ns}/{}", claim.name_any()),
            "setting its phase",
        ))?;
    Ok(())
}

async fn set_volume_phase(ctx: &Ctx, pv: &PersistentVolume, phase: &str) -> Result<(), Error> {
    if matching::phase(pv) == phase {
        return Ok(());
    }
    let now = crate::registry::strategy::now_rfc3339();
    let status = json!({"status": {"phase": phase, "lastPhaseTransitionTime": now}});
    Api::<PersistentVolume>::all(ctx.client.clone())
        .patch_status(
            &pv.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .map_err(api_err("volume", pv.name_any(), "setting its phase"))?;
    Ok(())
}

async fn reconcile_volume(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pv.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = pv.name_any();
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
        set_volume_phase(&ctx, &pv, "Available").await?;
        return Ok(Action::await_change());
    };
    if r.uid.as_deref().is_none_or(str::is_empty) {
        // pre-bound by name: waiting for its claim
        set_volume_phase(&ctx, &pv, "Available").await?;
        return Ok(Action::await_change());
    }
    let (ns, claim_name) = (
        r.namespace.clone().unwrap_or_default(),
        r.name.clone().unwrap_or_default(),
    );
    let cached = ctx.claims.get(&ObjectRef::new(&claim_name).within(&ns));
    // a claim missing from the cache may just be new: read it fresh before releasing
    let claim = match cached.filter(|c| c.uid() == r.uid) {
        Some(c) => Some((*c).clone()),
        None => Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&claim_name)
            .await
            .map_err(api_err("volume", name.clone(), "reading its claim"))?
            .filter(|c| c.uid() == r.uid),
    };
    match claim {
        Some(c) => match matching::volume_name(&c) {
            Some(v) if v == name => set_volume_phase(&ctx, &pv, "Bound").await?,
            // the claim has not been updated yet: its binder is on it
            None => {}
            Some(_) if annotation(&pv.metadata, BOUND_BY_CONTROLLER).is_some() => {
                // the claim went to another volume: free this one
                let patch = json!({"metadata": {"resourceVersion": pv.resource_version(),
                    "annotations": {BOUND_BY_CONTROLLER: null}}, "spec": {"claimRef": null}});
                Api::<PersistentVolume>::all(ctx.client.clone())
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .map_err(api_err("volume", name.clone(), "unbinding"))?;
            }
            Some(_) => {}
        },
        None => release(&ctx, &pv).await?,
    }
    // The claim was read from the claim controller's cache, which can still hold a claim
    // whose deletion woke this volume: look again later, as upstream resyncs volumes.
    Ok(Action::requeue(Duration::from_secs(10)))
}

/// The claim is gone: Released, then what the reclaim policy says.
async fn release(ctx: &Ctx, pv: &PersistentVolume) -> Result<(), Error> {
    if matches!(matching::phase(pv), "Released" | "Failed") {
        return Ok(());
    }
    set_volume_phase(ctx, pv, "Released").await?;
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    let provisioned = annotation(&pv.metadata, PROVISIONED_BY).is_some();
    let (reason, msg) = match policy {
        "Delete" if !provisioned => ("VolumeFailedDelete", format!("error getting deleter volume plugin for volume \"{}\": no deletable volume plugin matched", pv.name_any())),
        "Recycle" => ("VolumeFailedRecycle", "no volume plugin matched".to_string()),
        _ => return Ok(()),
    };
    ctx.recorder.publish(pv, true, reason, msg).await;
    let mut pv = pv.clone();
    pv.status.get_or_insert_with(Default::default).phase = Some("Released".into());
    set_volume_phase(ctx, &pv, "Failed").await
}

/// Events about a claim's wait are repeated on every pass upstream; here once per reason
/// in a row per claim, so a waiting claim does not fill the event list.
async fn event_once(ctx: &Ctx, claim: &PersistentVolumeClaim, reason: &str, msg: String) {
    let uid = claim.uid().unwrap_or_default();
    let fresh = ctx
        .reported
        .lock()
        .expect("reported lock")
        .insert(uid, reason.to_string())
        .as_deref()
        != Some(reason);
    if fresh {
        let warning = !matches!(reason, "WaitForFirstConsumer" | "ExternalProvisioning");
        ctx.recorder.publish(claim, warning, reason, msg).await;
    }
}
