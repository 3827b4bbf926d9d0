//! The scheduler's part in delayed volume binding (upstream's VolumeBinding PreBind): before
//! a pod is bound, each unbound PersistentVolumeClaim it uses whose StorageClass binds
//! WaitForFirstConsumer is annotated with `volume.kubernetes.io/selected-node`, so the
//! provisioner makes its volume on the pod's node. It never binds claims itself (the
//! PV controller does); claims already bound are the volume filter's (`volumebinding`).

use super::Error;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;

pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

pub async fn select_node(client: &Client, pod: &Pod, node: &str) -> Result<(), Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let claims: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect();
    if claims.is_empty() {
        return Ok(());
    }
    let err = |source| Error::Volumes {
        pod: format!("{ns}/{}", pod.metadata.name.as_deref().unwrap_or_default()),
        node: node.to_string(),
        source,
    };
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let classes: Api<StorageClass> = Api::all(client.clone());
    for name in claims {
        let Some(pvc) = api.get_opt(name).await.map_err(err)? else {
            continue;
        };
        let spec = pvc.spec.unwrap_or_default();
        let annotated = pvc
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(SELECTED_NODE));
        if spec.volume_name.as_deref().is_some_and(|v| !v.is_empty()) || annotated {
            continue;
        }
        let Some(class) = spec.storage_class_name.filter(|c| !c.is_empty()) else {
            continue;
        };
        let delayed = classes
            .get_opt(&class)
            .await
            .map_err(err)?
            .is_some_and(|sc| sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        if delayed {
            let patch = json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(err)?;
        }
    }
    Ok(())
}
