//! The scheduler: binds pending pods (no `spec.nodeName`, `schedulerName` unset or
//! `default-scheduler`) to nodes. Informers keep a cache of nodes with per-node aggregates
//! and a priority queue of pending pods; each attempt filters every node, scores the ones
//! left and binds through `pods/binding`, or records why nothing fits (event and
//! PodScheduled condition) and tries preemption. It reaches the cluster only through the
//! `kube::Client` it is given, never the store or the registry, and keeps no state another
//! component relies on: a restarted scheduler rebuilds everything from a list.

mod binder;
mod cache;
mod cycle;
mod filters;
mod informers;
mod interpod;
mod preempt;
mod queue;
pub(crate) mod resources;
mod scores;
pub mod selectors;
#[cfg(test)]
mod testutil;
mod volumebinding;
pub(crate) mod volumes;

use crate::controllers::informers::Informers;
use cache::{Cache, PodInfo};
use cycle::Decision;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use queue::{Popped, Queue};
use rand::SeedableRng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub const SCHEDULER_NAME: &str = "default-scheduler";
/// Bindings in flight at once: binding is an API round trip, scheduling is not. Enough
/// that one group commit of the store carries many of them.
const PARALLEL_BINDS: usize = 128;
/// Scheduled events, and failure reports (condition and event), being written at once. They
/// are written after the binding, off its critical path and outside its limit (upstream hands
/// them to an asynchronous broadcaster), and fewer at once than bindings so that a burst
/// binds first.
const PARALLEL_EVENTS: usize = 16;
/// A binding not answered by then is abandoned and retried. Conflicts are retried too:
/// if someone else bound the pod meanwhile, the watch takes it out of the queue.
const BIND_TIMEOUT: Duration = Duration::from_secs(30);
/// The same failure is reported again (event and condition) at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("binding pod {pod} to node {node}: {source}")]
    Bind {
        pod: String,
        node: String,
        source: kube::Error,
    },
    #[error("binding pod {pod} to node {node}: no answer")]
    BindTimeout { pod: String, node: String },
    #[error("recording event {reason} for pod {pod}: {source}")]
    Event {
        pod: String,
        reason: String,
        source: kube::Error,
    },
    #[error("setting the PodScheduled condition of pod {pod}: {source}")]
    Status { pod: String, source: kube::Error },
    #[error("choosing node {node} for the volumes of pod {pod}: {source}")]
    Volumes {
        pod: String,
        node: String,
        source: kube::Error,
    },
    #[error("deleting preemption victim {pod}: {source}")]
    Evict { pod: String, source: kube::Error },
}

/// State shared by the informers, the scheduling loop and the binding tasks.
pub(crate) struct Shared {
    client: Client,
    cache: Mutex<Cache>,
    queue: Queue,
    /// Limits the Scheduled events written at once.
    events: Arc<Semaphore>,
    pods_synced: Notify,
    nodes_synced: Notify,
    claims_synced: Notify,
    volumes_synced: Notify,
    /// Last failure message reported per pod, and when, to avoid an event per retry.
    reported: Mutex<HashMap<String, (String, Instant)>>,
}

impl Shared {
    fn cache(&self) -> MutexGuard<'_, Cache> {
        self.cache.lock().expect("scheduler cache lock")
    }
}

/// Runs the scheduler until `cancel` fires.
/// Pods and nodes come from the server's shared informers, so the scheduler holds the same
/// copies as the controllers; claims and volumes from watches of its own.
pub async fn run(informers: Informers, cancel: CancellationToken) {
    let shared = Arc::new(Shared {
        client: informers.client().clone(),
        cache: Mutex::new(Cache::default()),
        queue: Queue::default(),
        events: Arc::new(Semaphore::new(PARALLEL_EVENTS)),
        pods_synced: Notify::new(),
        nodes_synced: Notify::new(),
        claims_synced: Notify::new(),
        volumes_synced: Notify::new(),
        reported: Mutex::new(HashMap::new()),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(shared.clone().watch_pods(informers.get::<Pod>()));
    tasks.spawn(shared.clone().watch_nodes(informers.get::<Node>()));
    tasks.spawn(shared.clone().watch_claims());
    tasks.spawn(shared.clone().watch_volumes());
    // decisions need the whole picture: wait for both initial lists
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = async {
            shared.nodes_synced.notified().await;
            shared.pods_synced.notified().await;
            shared.claims_synced.notified().await;
            shared.volumes_synced.notified().await;
        } => {}
    }
    tasks.spawn(shared.clone().resync_pending());
    tracing::info!("scheduler started");
    let binds = Arc::new(Semaphore::new(PARALLEL_BINDS));
    let mut rng = rand::rngs::StdRng::from_entropy();
    let mut next_start = 0;
    while let Some(popped) = shared.queue.pop(&cancel).await {
        while tasks.try_join_next().is_some() {}
        let info = Arc::new(PodInfo::new(popped.pod.clone()));
        let decision = {
            let mut cache = shared.cache();
            if cache.node_of(&popped.key).is_some() {
                drop(cache);
                shared.queue.done(&popped.key);
                continue;
            }
            let d = cycle::schedule_from(&info, &cache, &mut rng, &mut next_start);
            if let Decision::Place(node) = &d {
                // assume the placement now so the next pod sees this one's requests
                cache.place(info.clone(), node, true);
            }
            d
        };
        match decision {
            Decision::Place(node) => {
                let Ok(permit) = binds.clone().acquire_owned().await else {
                    break;
                };
                let shared = shared.clone();
                tasks.spawn(async move { shared.bind(popped, node, permit).await });
            }
            Decision::NoFit(diag) => {
                let nominated = preempt::try_preempt(&shared, &info, &diag);
                let may = preempt::may_preempt(&info);
                let message = if nominated.is_some() {
                    cycle::failure_message(&diag, None)
                } else {
                    cycle::failure_message(&diag, Some(&cycle::preemption_message(&diag, may)))
                };
                shared.queue.failed(popped.moves, &popped.key, true);
                let shared = shared.clone();
                tasks.spawn(async move {
                    // The report's future (the API calls') is made only once a slot is free:
                    // thousands of waiting reports hold a few hundred bytes each, not kilobytes.
                    let Ok(_permit) = shared.events.acquire().await else {
                        return;
                    };
                    Box::pin(shared.report_failure(&popped, &message, nominated)).await;
                });
            }
        }
    }
    tasks.shutdown().await;
}

impl Shared {
    /// Binds the pod, holding `permit` for the binding only: the Scheduled event that
    /// follows waits for a permit of its own.
    async fn bind(&self, popped: Popped, node: String, permit: OwnedSemaphorePermit) {
        let pod = &popped.pod;
        let bind = async {
            volumes::select_node(&self.client, pod, &node).await?;
            binder::bind(&self.client, pod, &node).await
        };
        // a binding that never answers must not hold the pod's assumed place for good
        let result = tokio::time::timeout(BIND_TIMEOUT, bind)
            .await
            .unwrap_or_else(|_| {
                Err(Error::BindTimeout {
                    pod: popped.key.clone(),
                    node: node.clone(),
                })
            });
        drop(permit);
        match result {
            Ok(()) => {
                self.queue.done(&popped.key);
                self.reported
                    .lock()
                    .expect("reported lock")
                    .remove(&popped.key);
                let (ns, name) = popped.key.split_once('/').unwrap_or(("", &popped.key));
                let msg = format!("Successfully assigned {ns}/{name} to {node}");
                let Ok(_permit) = self.events.acquire().await else {
                    return;
                };
                if let Err(e) = binder::event(&self.client, pod, "Normal", "Scheduled", &msg).await
                {
                    tracing::debug!(error = %e, "scheduler event");
                }
            }
            Err(Error::Bind {
                source: kube::Error::Api(e),
                ..
            }) if e.code == 404 => {
                // deleted meanwhile: the watch will tell
                self.cache().remove(&popped.key);
                self.queue.done(&popped.key);
            }
            Err(e) => {
                tracing::warn!(error = %e, "binding failed, retrying");
                self.cache().remove(&popped.key);
                self.queue.failed(popped.moves, &popped.key, false);
            }
        }
    }

    /// Marks the pod unschedulable and records the event. The caller holds an events slot:
    /// thousands of pods failing at once (a restart with no node ready) must not put
    /// thousands of writes in flight.
    async fn report_failure(&self, popped: &Popped, message: &str, nominated: Option<String>) {
        {
            let mut reported = self.reported.lock().expect("reported lock");
            let now = Instant::now();
            if let Some((last, at)) = reported.get(&popped.key) {
                if last == message && now.duration_since(*at) < REPORT_EVERY && nominated.is_none()
                {
                    return;
                }
            }
            reported.insert(popped.key.clone(), (message.to_string(), now));
        }
        tracing::debug!(pod = %popped.key, %message, "pod unschedulable");
        let pod = &popped.pod;
        // the condition first: whoever sees the event finds the pod already marked, as
        // upstream's asynchronous events make it look; a pod marked so already is left alone
        if !binder::marked_unschedulable(pod, message, nominated.as_deref()) {
            if let Err(e) =
                binder::mark_unschedulable(&self.client, pod, message, nominated.as_deref()).await
            {
                tracing::debug!(error = %e, "scheduler status");
            }
        }
        if let Err(e) =
            binder::event(&self.client, pod, "Warning", "FailedScheduling", message).await
        {
            tracing::debug!(error = %e, "scheduler event");
        }
    }
}
