//! The local-path provisioner, k3s's default storage (rancher/local-path-provisioner's
//! behaviour). The `local-path` StorageClass (default class, provisioner
//! `rancher.io/local-path`, WaitForFirstConsumer, reclaim Delete) is not made here: it is the
//! bundled manifest `manifests/local-storage.yaml`, applied by the manifests directory
//! (`deploy`). For a claim of a class with that provisioner, once the scheduler has picked its
//! node (`volume.kubernetes.io/selected-node`), a directory
//! `<data-dir>/storage/pvc-<uid>_<ns>_<name>` and a hostPath PersistentVolume `pvc-<uid>`
//! with node affinity to that node, pre-bound to the claim (the binder completes the bind);
//! and when such a volume is Released with reclaim Delete, the directory and the volume go.
//! Retain keeps both. It never touches a volume another provisioner made, nor a path
//! outside its storage directory.
//!
//! Multi-node limitation: the provisioner runs in the server and makes and removes
//! directories on the server's own filesystem. That is right while the server is the only
//! node (today); once `k1s agent` joins other nodes, the directory must be made on the
//! selected node (upstream runs a helper pod there), and until then volumes for other nodes
//! are refused with a ProvisioningFailed event.

use super::common::Recorder;
use super::pvbinder::{PROVISIONED_BY, SELECTED_NODE};
use super::pvmatch;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const PROVISIONER: &str = "rancher.io/local-path";
pub const CLASS_NAME: &str = "local-path";
/// The node the volume was made on, as local-path-provisioner records it.
const NODE_ANNOTATION: &str = "local.path.provisioner/selected-node";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{kind} {name}: {what}: {source}")]
    Api {
        kind: &'static str,
        name: String,
        what: &'static str,
        source: kube::Error,
    },
    #[error("volume directory {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct Config {
    /// Where volumes' directories go: `<data-dir>/storage`.
    pub storage_dir: PathBuf,
    /// The server's own node, if it runs one: the only node directories can be made on.
    pub node_name: Option<String>,
}

struct Ctx {
    client: Client,
    cfg: Config,
    recorder: Recorder,
}

pub async fn run(client: Client, cfg: Config, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), PROVISIONER),
        client: client.clone(),
        cfg,
    });
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on({
        let c = cancel.clone();
        async move { c.cancelled().await }
    })
    .run(provision, error_policy, ctx.clone())
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "local-path provisioning");
        }
    });
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(client),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reclaim, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "local-path reclaim");
        }
    });
    tokio::join!(claims, volumes);
}

fn error_policy<K>(_obj: Arc<K>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "local-path provisioner, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The directory of a claim's volume.
pub fn volume_dir(storage: &Path, claim: &PersistentVolumeClaim) -> PathBuf {
    storage.join(format!(
        "pvc-{}_{}_{}",
        claim.uid().unwrap_or_default(),
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    ))
}

async fn provision(claim: Arc<PersistentVolumeClaim>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if claim.metadata.deletion_timestamp.is_some() || pvmatch::volume_name(&claim).is_some() {
        return Ok(Action::await_change());
    }
    let key = format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    );
    let api_err = |what| {
        let name = key.clone();
        move |source| Error::Api {
            kind: "claim",
            name,
            what,
            source,
        }
    };
    let class_name = pvmatch::class_of_claim(&claim);
    if class_name.is_empty() {
        return Ok(Action::await_change());
    }
    let Some(class) = Api::<StorageClass>::all(ctx.client.clone())
        .get_opt(class_name)
        .await
        .map_err(api_err("reading its class"))?
        .filter(|c| c.provisioner == PROVISIONER)
    else {
        return Ok(Action::await_change());
    };
    let pv_name = format!("pvc-{}", claim.uid().unwrap_or_default());
    let volumes: Api<PersistentVolume> = Api::all(ctx.client.clone());
    if volumes
        .get_opt(&pv_name)
        .await
        .map_err(api_err("reading its volume"))?
        .is_some()
    {
        return Ok(Action::await_change());
    }
    let selected = claim
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SELECTED_NODE).cloned());
    let node = match selected {
        Some(n) => n,
        None if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") => {
            return Ok(Action::await_change())
        }
        // Immediate binding: upstream needs a node too; on one node, it is that one.
        None => {
            let nodes = Api::<Node>::all(ctx.client.clone())
                .list(&Default::default())
                .await
                .map_err(api_err("listing nodes"))?;
            match nodes.items.as_slice() {
                [only] => only.name_any(),
                _ => {
                    fail(&ctx, &claim, "configuration error, no node was specified").await;
                    return Ok(Action::await_change());
                }
            }
        }
    };
    if ctx.cfg.node_name.as_ref().is_some_and(|own| *own != node) {
        fail(
            &ctx,
            &claim,
            &format!(
                "cannot make a volume on node {node:?}: only the server's own node is supported"
            ),
        )
        .await;
        return Ok(Action::await_change());
    }
    let spec = claim.spec.clone().unwrap_or_default();
    if spec.selector.is_some() {
        fail(&ctx, &claim, "claim Selector is not supported").await;
        return Ok(Action::await_change());
    }
    if spec.volume_mode.as_deref() == Some("Block") {
        fail(&ctx, &claim, "Block volume mode is not supported").await;
        return Ok(Action::await_change());
    }
    ctx.recorder
        .publish(
            claim.as_ref(),
            false,
            "Provisioning",
            format!("External provisioner is provisioning volume for claim \"{key}\""),
        )
        .await;
    let dir = volume_dir(&ctx.cfg.storage_dir, &claim);
    make_dir(&dir)?;
    let storage = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned());
    let pv: PersistentVolume = serde_json::from_value(json!({
        "metadata": {
            "name": pv_name,
            "annotations": {PROVISIONED_BY: PROVISIONER, NODE_ANNOTATION: node},
        },
        "spec": {
            "capacity": {"storage": storage.map(|q| q.0).unwrap_or_else(|| "0".into())},
            "accessModes": spec.access_modes.clone().unwrap_or_default(),
            "persistentVolumeReclaimPolicy": class.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
            "storageClassName": class_name,
            "volumeMode": "Filesystem",
            "hostPath": {"path": dir.to_string_lossy(), "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
            ]}]}},
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": claim.namespace(), "name": claim.name_any(),
                "uid": claim.uid(), "resourceVersion": claim.resource_version(),
            },
        },
    }))
    .expect("a provisioned volume is well formed");
    match volumes.create(&PostParams::default(), &pv).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => return Ok(Action::await_change()),
        Err(e) => return Err(api_err("creating its volume")(e)),
    }
    tracing::info!(claim = %key, volume = %pv_name, path = %dir.display(), "provisioned volume");
    ctx.recorder
        .publish(
            claim.as_ref(),
            false,
            "ProvisioningSucceeded",
            format!("Successfully provisioned volume {pv_name}"),
        )
        .await;
    Ok(Action::await_change())
}

fn make_dir(dir: &Path) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| Error::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(err)?;
    // any container user may write its volume, as local-path-provisioner makes it
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).map_err(err)
}

async fn fail(ctx: &Ctx, claim: &PersistentVolumeClaim, why: &str) {
    ctx.recorder
        .publish(
            claim,
            true,
            "ProvisioningFailed",
            format!(
                "failed to provision volume with StorageClass {:?}: {why}",
                pvmatch::class_of_claim(claim)
            ),
        )
        .await;
}

/// A Released volume of ours with reclaim Delete: remove its directory, then the volume.
async fn reclaim(pv: Arc<PersistentVolume>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ours = pv
        .annotations()
        .get(PROVISIONED_BY)
        .is_some_and(|p| p == PROVISIONER);
    let spec = pv.spec.clone().unwrap_or_default();
    let delete = spec.persistent_volume_reclaim_policy.as_deref() == Some("Delete");
    if !ours
        || !delete
        || pvmatch::phase(&pv) != "Released"
        || pv.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let name = pv.name_any();
    let path = spec
        .host_path
        .map(|h| PathBuf::from(h.path))
        .or_else(|| spec.local.map(|l| PathBuf::from(l.path)));
    let node = pv.annotations().get(NODE_ANNOTATION).cloned();
    let on_this_node = node.is_none() || ctx.cfg.node_name.is_none() || node == ctx.cfg.node_name;
    if let Some(path) = path.filter(|p| p.parent() == Some(ctx.cfg.storage_dir.as_path())) {
        if on_this_node {
            match std::fs::remove_dir_all(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(Error::Dir { path, source }),
            }
        }
    }
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .delete(&name, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(source) => {
            return Err(Error::Api {
                kind: "volume",
                name,
                what: "deleting",
                source,
            })
        }
    }
    tracing::info!(volume = %pv.name_any(), "deleted released volume");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_names_follow_local_path_provisioner() {
        let claim: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": {"name": "data", "namespace": "web", "uid": "1234"}
        }))
        .unwrap();
        assert_eq!(
            volume_dir(Path::new("/var/lib/k1s/storage"), &claim),
            PathBuf::from("/var/lib/k1s/storage/pvc-1234_web_data")
        );
    }
}
