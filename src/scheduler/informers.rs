//! What keeps the scheduler's cache and queue current: pods and nodes from the server's
//! shared informers (the same copies the controllers hold), and watches of its own over
//! PersistentVolumeClaims and PersistentVolumes: bound pods update their node's aggregates, pending
//! pods for this scheduler enter the queue, and changes that may make room (a node added or
//! changed, a bound pod gone, a claim or volume added or changed) retry the unschedulable
//! pods. A re-list drops what disappeared meanwhile. It must never write to the API or
//! place pods.

use super::cache::{terminated, PodInfo};
use super::{Shared, SCHEDULER_NAME};
use crate::controllers::informers::{Change, Informer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// How often pending pods are listed again, so that an event lost between a watch ending
/// and resuming cannot leave a pod pending for good (level-triggered repair).
const RESYNC: Duration = Duration::from_secs(30);

fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Whether this scheduler is responsible for the pod.
pub fn ours(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.scheduler_name.as_deref())
        .is_none_or(|n| n.is_empty() || n == SCHEDULER_NAME)
}

fn claim_key(c: &PersistentVolumeClaim) -> String {
    format!(
        "{}/{}",
        c.metadata.namespace.as_deref().unwrap_or(""),
        c.metadata.name.as_deref().unwrap_or("")
    )
}

fn bound_node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

impl Shared {
    fn apply_pod(&self, pod: Arc<Pod>) {
        let key = pod_key(&pod);
        if terminated(&pod) {
            self.queue.delete(&key);
            if self.cache().remove(&key) {
                self.queue.move_all();
            }
            return;
        }
        if let Some(node) = bound_node(&pod).map(String::from) {
            self.queue.delete(&key);
            let info = Arc::new(PodInfo::new(pod));
            let mut cache = self.cache();
            let was_assumed = cache.is_assumed(&key);
            let new = cache.place(info, &node, false);
            drop(cache);
            // a pod we did not place may be what a pending pod's affinity waits for
            if new && !was_assumed {
                self.queue.move_all();
            }
            return;
        }
        if pod.metadata.deletion_timestamp.is_some() || !ours(&pod) {
            self.queue.delete(&key);
            self.cache().unnominate(&key);
            return;
        }
        let mut cache = self.cache();
        if cache.node_of(&key).is_some() {
            return;
        }
        let nominated = pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.clone());
        match nominated.filter(|n| !n.is_empty()) {
            Some(node) => cache.nominate(Arc::new(PodInfo::new(pod.clone())), &node),
            None => cache.unnominate(&key),
        }
        drop(cache);
        self.queue.add_or_update(&key, pod);
    }

    fn delete_pod(&self, key: &str) {
        self.queue.delete(key);
        if self.cache().remove(key) {
            self.queue.move_all();
        }
    }

    pub async fn watch_pods(self: Arc<Self>, pods: Informer<Pod>) {
        let changes = pods.changes();
        futures::pin_mut!(changes);
        // A re-list tells what vanished meanwhile as deleted, then everything again.
        while let Some(change) = changes.next().await {
            match change {
                Change::Applied(p) => self.apply_pod(p),
                Change::Deleted(p) => self.delete_pod(&pod_key(&p)),
                Change::Synced => self.pods_synced.notify_one(),
            }
        }
    }

    fn apply_node(&self, node: Arc<Node>) {
        if self.cache().set_node(node) {
            self.queue.move_all();
        }
    }

    pub async fn watch_nodes(self: Arc<Self>, nodes: Informer<Node>) {
        let changes = nodes.changes();
        futures::pin_mut!(changes);
        while let Some(change) = changes.next().await {
            match change {
                Change::Applied(n) => self.apply_node(n),
                Change::Deleted(n) => {
                    self.cache()
                        .remove_node(n.metadata.name.as_deref().unwrap_or(""));
                }
                Change::Synced => self.nodes_synced.notify_one(),
            }
        }
    }

    fn apply_claim(&self, c: &PersistentVolumeClaim) {
        if self.cache().volumes.set_claim(c) {
            self.queue.move_all();
        }
    }

    pub async fn watch_claims(self: Arc<Self>) {
        let api: Api<PersistentVolumeClaim> = Api::all(self.client.clone());
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut seen = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(c)) => self.apply_claim(&c),
                Ok(watcher::Event::Delete(c)) => {
                    self.cache().volumes.remove_claim(&claim_key(&c));
                }
                Ok(watcher::Event::Init) => seen.clear(),
                Ok(watcher::Event::InitApply(c)) => {
                    seen.insert(claim_key(&c));
                    self.apply_claim(&c);
                }
                Ok(watcher::Event::InitDone) => {
                    self.cache().volumes.retain_claims(&seen);
                    self.claims_synced.notify_one();
                }
                Err(e) => tracing::debug!(error = %e, "scheduler claim watch"),
            }
        }
    }

    fn apply_volume(&self, v: &PersistentVolume) {
        if self.cache().volumes.set_volume(v) {
            self.queue.move_all();
        }
    }

    pub async fn watch_volumes(self: Arc<Self>) {
        let api: Api<PersistentVolume> = Api::all(self.client.clone());
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut seen = HashSet::new();
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::Apply(v)) => self.apply_volume(&v),
                Ok(watcher::Event::Delete(v)) => {
                    let name = v.metadata.name.as_deref().unwrap_or("");
                    self.cache().volumes.remove_volume(name);
                }
                Ok(watcher::Event::Init) => seen.clear(),
                Ok(watcher::Event::InitApply(v)) => {
                    seen.insert(v.metadata.name.clone().unwrap_or_default());
                    self.apply_volume(&v);
                }
                Ok(watcher::Event::InitDone) => {
                    self.cache().volumes.retain_volumes(&seen);
                    self.volumes_synced.notify_one();
                }
                Err(e) => tracing::debug!(error = %e, "scheduler volume watch"),
            }
        }
    }

    /// Lists the pods with no node every `RESYNC` and queues any the watch did not bring.
    pub async fn resync_pending(self: Arc<Self>) {
        let api: Api<Pod> = Api::all(self.client.clone());
        let params = ListParams::default().fields("spec.nodeName=");
        loop {
            tokio::time::sleep(RESYNC).await;
            match api.list(&params).await {
                Ok(list) => {
                    for pod in list.items {
                        if !self.queue.contains(&pod_key(&pod)) {
                            self.apply_pod(Arc::new(pod));
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "scheduler resync"),
            }
        }
    }
}
