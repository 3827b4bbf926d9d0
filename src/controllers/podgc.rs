//! Pod garbage collection, as upstream's podgc controller: every `period` it force-deletes
//! (grace period 0) pods bound to Nodes that no longer exist (after the node has been
//! missing for a quarantine, then confirmed absent by a fresh read, since a watch cache may
//! lag), terminating pods that were never scheduled, and terminating pods on not-ready
//! nodes that carry the `node.kubernetes.io/out-of-service` taint; and when more terminated
//! (Succeeded or Failed) pods exist than the threshold, it deletes the oldest of them. Pods
//! it deletes while they still run are first marked Failed with a DisruptionTarget
//! condition. It reads pods and nodes from reflector caches and writes only through the API.

use super::clock::{Clock, SystemClock};
use super::informers::Informers;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const OUT_OF_SERVICE: &str = "node.kubernetes.io/out-of-service";

#[derive(Clone)]
pub struct Config {
    /// How often to sweep (upstream's gcCheckPeriod).
    pub period: Duration,
    /// Terminated pods kept before the oldest go (`--terminated-pod-gc-threshold`); 0 keeps
    /// them all.
    pub terminated_threshold: usize,
    /// How long a node must be missing before its pods go.
    pub quarantine: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            period: Duration::from_secs(20),
            terminated_threshold: 12_500,
            quarantine: Duration::from_secs(40),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("pod gc: {what} {name}: {source}")]
    Api {
        what: &'static str,
        name: String,
        source: kube::Error,
    },
}

struct Gc {
    client: Client,
    cfg: Config,
    pods: Store<Pod>,
    nodes: Store<Node>,
    /// Nodes seen missing, and since when (on the controller's clock).
    missing: HashMap<String, Timestamp>,
}

pub async fn run(informers: Informers, cfg: Config, cancel: CancellationToken) {
    let client = informers.client().clone();
    let pods = informers.get::<Pod>().store();
    let nodes = informers.get::<Node>().store();
    let mut gc = Gc {
        client,
        cfg,
        pods: pods.clone(),
        nodes: nodes.clone(),
        missing: HashMap::new(),
    };
    let sweeper = async {
        if pods.wait_until_ready().await.is_err() || nodes.wait_until_ready().await.is_err() {
            return;
        }
        loop {
            if let Err(e) = gc.sweep().await {
                tracing::warn!(error = %e, "pod garbage collection");
            }
            tokio::time::sleep(gc.cfg.period).await;
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = sweeper => {}
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn terminated(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The terminated pods to delete so that at most `threshold` remain: the oldest first (by
/// creation time, then name, for a stable order).
pub fn terminated_surplus(pods: &[Arc<Pod>], threshold: usize) -> Vec<Arc<Pod>> {
    if threshold == 0 {
        return vec![];
    }
    let mut done: Vec<Arc<Pod>> = pods
        .iter()
        .filter(|p| terminated(p) && p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect();
    if done.len() <= threshold {
        return vec![];
    }
    done.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.namespace(),
            p.name_any(),
        )
    });
    done.truncate(done.len() - threshold);
    done
}

/// A node that is not ready (False or Unknown) and is tainted out of service.
fn out_of_service(node: &Node) -> bool {
    let tainted = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == OUT_OF_SERVICE && t.effect == "NoExecute")
        });
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    tainted && !ready
}

impl Gc {
    async fn sweep(&mut self) -> Result<(), Error> {
        let pods = self.pods.state();
        for pod in terminated_surplus(&pods, self.cfg.terminated_threshold) {
            self.force_delete(&pod, None).await?;
        }
        self.orphaned(&pods).await?;
        for pod in &pods {
            if pod.metadata.deletion_timestamp.is_none() {
                continue;
            }
            match node_of(pod) {
                None => self.force_delete(pod, None).await?,
                Some(n) => {
                    let node = self.nodes.get(&ObjectRef::new(n));
                    if node.is_some_and(|n| out_of_service(&n)) {
                        let why = "PodGC: node is out-of-service";
                        self.force_delete(pod, Some(why)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Pods on nodes that have been missing for the quarantine and are confirmed gone.
    async fn orphaned(&mut self, pods: &[Arc<Pod>]) -> Result<(), Error> {
        let now = self.cfg.clock.now();
        let known: HashSet<String> = self.nodes.state().iter().map(|n| n.name_any()).collect();
        let wanted: HashSet<&str> = pods.iter().filter_map(|p| node_of(p)).collect();
        self.missing
            .retain(|n, _| !known.contains(n) && wanted.contains(n.as_str()));
        let quarantine =
            SignedDuration::try_from(self.cfg.quarantine).unwrap_or(SignedDuration::MAX);
        let mut gone = HashSet::new();
        for n in wanted.iter().filter(|n| !known.contains(**n)) {
            let since = *self.missing.entry(n.to_string()).or_insert(now);
            if now < since + quarantine {
                continue;
            }
            let api: Api<Node> = Api::all(self.client.clone());
            match api.get_opt(n).await {
                Ok(None) => {
                    gone.insert(n.to_string());
                }
                Ok(Some(_)) => {}
                Err(source) => {
                    return Err(Error::Api {
                        what: "reading node",
                        name: n.to_string(),
                        source,
                    })
                }
            }
        }
        for pod in pods
            .iter()
            .filter(|p| node_of(p).is_some_and(|n| gone.contains(n)))
        {
            tracing::info!(pod = %pod.name_any(), node = node_of(pod), "deleting the pod of a deleted node");
            self.force_delete(pod, Some("PodGC: node no longer exists"))
                .await?;
        }
        Ok(())
    }

    /// Delete with grace period 0; a pod still running is marked Failed with a
    /// DisruptionTarget condition first (`why` is its message).
    async fn force_delete(&self, pod: &Pod, why: Option<&str>) -> Result<(), Error> {
        let ns = pod.namespace().unwrap_or_default();
        let name = pod.name_any();
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &ns);
        let err = |what, source| Error::Api {
            what,
            name: format!("{ns}/{name}"),
            source,
        };
        if let Some(message) = why.filter(|_| !terminated(pod)) {
            let now = Timestamp::now().to_string();
            let patch = json!({"status": {"phase": "Failed", "conditions": [{
                "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
                "message": message, "lastTransitionTime": now,
            }]}});
            match api
                .patch_status(&name, &PatchParams::default(), &Patch::Strategic(patch))
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
                Err(e) => return Err(err("marking pod failed", e)),
            }
        }
        let mut dp = DeleteParams::default().grace_period(0);
        dp.preconditions = pod.uid().map(|uid| kube::api::Preconditions {
            uid: Some(uid),
            resource_version: None,
        });
        match api.delete(&name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(err("deleting pod", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, created: i64) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "d",
                    "creationTimestamp": Timestamp::from_second(created).unwrap().to_string()},
                "status": {"phase": phase},
            }))
            .unwrap(),
        )
    }

    #[test]
    fn oldest_terminated_pods_go_first() {
        let pods = vec![
            pod("new-done", "Succeeded", 30),
            pod("running", "Running", 1),
            pod("old-failed", "Failed", 10),
            pod("mid-done", "Succeeded", 20),
        ];
        let names = |v: Vec<Arc<Pod>>| v.iter().map(|p| p.name_any()).collect::<Vec<_>>();
        assert_eq!(
            names(terminated_surplus(&pods, 1)),
            ["old-failed", "mid-done"]
        );
        assert!(terminated_surplus(&pods, 3).is_empty());
        assert!(terminated_surplus(&pods, 0).is_empty());
    }
}
