//! Tracking finalizers of pods whose Job is gone. The Job controller only reconciles Jobs that
//! exist, so a pod left with `batch.kubernetes.io/job-tracking` after its Job was deleted
//! (the garbage collector then deletes it, and it would hang in Terminating) is handed here
//! from the pod event stream. Upstream's controller does the same from its pod handler. The
//! Job is looked up through the API before the finalizer goes, so a cache that has not caught
//! up yet never frees a live Job's pod.

use super::pods::{self, has_finalizer};
use crate::controllers::common;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Whether a pod with the tracking finalizer names a Job as controller (so it may be one of
/// ours left behind).
pub fn candidate(pod: &Pod) -> bool {
    has_finalizer(pod)
        && common::controller_of(&pod.metadata)
            .is_some_and(|r| r.kind == "Job" && r.api_version == "batch/v1")
}

/// Release the pods sent on `rx` whose controlling Job no longer exists.
pub async fn run(
    client: Client,
    mut rx: mpsc::UnboundedReceiver<Arc<Pod>>,
    cancel: CancellationToken,
) {
    loop {
        let pod = tokio::select! {
            _ = cancel.cancelled() => return,
            p = rx.recv() => match p { Some(p) => p, None => return },
        };
        let Some(owner) = common::controller_of(&pod.metadata).cloned() else {
            continue;
        };
        let ns = pod.namespace().unwrap_or_default();
        let jobs: Api<Job> = Api::namespaced(client.clone(), &ns);
        let alive = match jobs.get_opt(&owner.name).await {
            Ok(j) => j.is_some_and(|j| j.uid().as_deref() == Some(owner.uid.as_str())),
            Err(e) => {
                tracing::debug!(error = %e, pod = %pod.name_any(), "looking up a pod's job");
                true
            }
        };
        if alive {
            continue;
        }
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let mut expect = vec![];
        if let (_, Some(e)) = pods::remove_finalizers(&api, &[&pod], &mut expect).await {
            tracing::debug!(error = %e, pod = %pod.name_any(), "releasing an orphan job pod");
        }
    }
}
