//! What a pod's containers read from the API through the worker: ConfigMaps, Secrets and the
//! Services for env (`Sources`), the volumes kept up to date, and the claims bound to
//! PersistentVolumes. Reads only; it writes nothing to the API.

use super::{pod_key, Worker};
use crate::kubelet::env::Sources;
use crate::kubelet::{env, volumes};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use kube::api::Api;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

impl Worker {
    /// Bring ConfigMap, Secret and downward API volumes up to date every 10 s; the files
    /// change in place, atomically, under the containers' feet as upstream's do.
    pub(super) async fn refresh_volumes(&mut self, pod: &Pod) {
        if self
            .volumes_refreshed
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.volumes_refreshed = Some(Instant::now());
        if !self.pod_dir().join("volumes").exists() {
            return;
        }
        let none = Container::default();
        match self.sources(pod, &none).await {
            Ok(src) => {
                if let Err(e) = volumes::prepare(pod, &self.pod_dir(), &src) {
                    tracing::debug!(pod = %pod_key(pod), error = %e, "refreshing volumes");
                }
            }
            Err(e) => tracing::debug!(pod = %pod_key(pod), error = %e, "refreshing volumes"),
        }
    }

    /// The ConfigMaps and Secrets the pod's volumes and this container's environment name, and
    /// the tokens of its projected volumes.
    pub(super) async fn sources(&self, pod: &Pod, c: &Container) -> Result<Sources, String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (mut cms, mut secrets) = env::referenced(c);
        let (vcms, vsecrets) = volumes::referenced(pod);
        cms.extend(vcms);
        secrets.extend(vsecrets);
        let mut src = Sources::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.rt.client.clone(), ns);
        for n in cms {
            if let Some(cm) = cm_api.get_opt(&n).await.map_err(|e| e.to_string())? {
                src.config_maps.insert(n, cm);
            }
        }
        let s_api: Api<Secret> = Api::namespaced(self.rt.client.clone(), ns);
        for n in secrets {
            if let Some(s) = s_api.get_opt(&n).await.map_err(|e| e.to_string())? {
                src.secrets.insert(n, s);
            }
        }
        src.tokens = self.tokens.for_pod(&self.rt.client, pod).await?;
        src.services = self.services(pod).await.map_err(|e| e.to_string())?;
        src.claims = self.claims(pod).await.map_err(|e| e.to_string())?;
        Ok(src)
    }

    /// The host directories of the pod's bound claims: the PersistentVolume's `hostPath` or
    /// `local` path (what the local-path provisioner and static node-local volumes use).
    /// Claims not bound yet, or bound to a kind of volume this node cannot mount, are left
    /// out, so the pod waits with the reason in its status.
    pub(super) async fn claims(&self, pod: &Pod) -> Result<BTreeMap<String, PathBuf>, kube::Error> {
        use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.rt.client.clone(), ns);
        let pvs: Api<PersistentVolume> = Api::all(self.rt.client.clone());
        let mut out = BTreeMap::new();
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone());
        for name in names {
            let Some(pvc) = pvcs.get_opt(&name).await? else {
                continue;
            };
            let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let Some(pv_name) = pvc.spec.and_then(|s| s.volume_name).filter(|_| bound) else {
                continue;
            };
            let Some(pv) = pvs.get_opt(&pv_name).await? else {
                continue;
            };
            let spec = pv.spec.unwrap_or_default();
            let path = spec
                .host_path
                .map(|h| h.path)
                .or(spec.local.map(|l| l.path));
            if let Some(p) = path {
                out.insert(name, PathBuf::from(p));
            }
        }
        Ok(out)
    }

    /// The Services whose variables the pod gets: its namespace's (with service links) and
    /// the API's `kubernetes` Service.
    pub(super) async fn services(&self, pod: &Pod) -> Result<Vec<Service>, kube::Error> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let mut out = vec![];
        if links {
            let api: Api<Service> = Api::namespaced(self.rt.client.clone(), ns);
            out = api.list(&Default::default()).await?.items;
        }
        if !(links && ns == "default") {
            let api: Api<Service> = Api::namespaced(self.rt.client.clone(), "default");
            out.extend(api.get_opt("kubernetes").await?);
        }
        Ok(out)
    }
}
