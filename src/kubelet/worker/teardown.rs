//! The end of a pod on this node: stopping every container and releasing the network and
//! container filesystems, removing the pod's directories and logs, and deleting the API object
//! once nothing is left (which ends a graceful deletion). Hooks are `stopping`'s.

use super::{pod_key, Worker};
use crate::cni::{netns, PodNet};
use crate::kubelet::volumes;
use crate::sandbox::shim::ShimClient;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Preconditions};
use std::time::Duration;

impl Worker {
    /// Stop every container (SIGTERM, SIGKILL after `grace`), release the network and the
    /// container filesystems. Idempotent.
    pub async fn stop(&mut self, grace: Duration) {
        let dir = self.shim_dir();
        let shim = match self.shim.take() {
            Some(s) => Some(s),
            None => ShimClient::connect(&dir).await.ok(),
        };
        if let Some(shim) = shim {
            if let Err(e) = shim.shutdown(grace).await {
                tracing::warn!(pod = %self.uid, error = %e, "stopping the pod's shim");
            }
        }
        let containers = self.pod_dir().join("containers");
        if let Ok(entries) = std::fs::read_dir(&containers) {
            for e in entries.flatten() {
                let _ = crate::sandbox::image::ImageStore::unmount_rootfs(&e.path());
            }
        }
        let net = PodNet::new(self.uid.clone(), self.netns_path());
        if let Err(e) = self.rt.network.teardown(&net).await {
            tracing::warn!(pod = %self.uid, error = %e, "tearing down the pod network");
        }
        let p = self.netns_path();
        let _ = tokio::task::spawn_blocking(move || netns::remove(&p)).await;
        self.pod_ips.clear();
        // Last: while the shim directory exists, a restarted agent knows there is something
        // of this pod left to clean up.
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Everything of the pod on this node is gone: remove its directories, and the API object
    /// (grace 0, only this incarnation), which ends a graceful deletion.
    pub(super) async fn finish_deletion(&mut self, pod: &Pod) {
        self.remove_files();
        let api: Api<Pod> = Api::namespaced(
            self.rt.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or(""), &dp)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod_key(pod), error = %e, "removing the deleted pod"),
        }
    }

    /// The pod's API object is gone: stop what is left and forget it.
    pub async fn forget(&mut self) {
        self.stop(Duration::from_secs(2)).await;
        self.remove_files();
    }

    /// The pod's directories and its logs (`/var/log/pods/<ns>_<name>_<uid>`), as upstream
    /// removes them with the pod.
    pub(super) fn remove_files(&self) {
        let dir = self.pod_dir();
        // Removing recursively through a mount that could not be undone would reach into
        // what it shows (a volume, a host path): such a pod directory stays.
        match volumes::cleanup(&dir) {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e) => {
                tracing::warn!(pod = %self.uid, error = %e, "pod volumes left in place");
            }
        }
        let suffix = format!("_{}", self.uid);
        if let Ok(entries) = std::fs::read_dir(&self.rt.log_dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(&suffix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}
