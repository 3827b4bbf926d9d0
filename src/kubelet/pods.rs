//! The pods bound to this node, watched through the API, each handed to its own worker task
//! (one per pod uid, never two at once). A worker is told of every change and also wakes on
//! its own timer; when a pod disappears from the API its worker cleans up and ends. After
//! the first list, sandboxes left on the node by pods the API no longer has are removed.

use super::worker::Worker;
use super::Runtime;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

type Latest = watch::Sender<Option<Arc<Pod>>>;

pub async fn run(rt: Arc<Runtime>, cancel: CancellationToken) {
    let api: Api<Pod> = Api::all(rt.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", rt.node_name));
    let stream = watcher(api, cfg);
    futures::pin_mut!(stream);
    let mut workers: HashMap<String, Latest> = HashMap::new();
    let mut tasks = JoinSet::new();
    let mut relist: Option<HashSet<String>> = None;
    let mut swept = false;
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            ev = stream.next() => ev,
        };
        let ev = match ev {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "watching this node's pods");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            None => break,
        };
        match ev {
            Event::Init => relist = Some(HashSet::new()),
            Event::InitApply(pod) | Event::Apply(pod) => {
                let Some(uid) = pod.metadata.uid.clone() else {
                    continue;
                };
                if let Some(seen) = relist.as_mut() {
                    seen.insert(uid.clone());
                }
                let pod = Arc::new(pod);
                match workers.get(&uid) {
                    Some(tx) => {
                        let _ = tx.send(Some(pod));
                    }
                    None => {
                        let (tx, rx) = watch::channel(Some(pod));
                        workers.insert(uid.clone(), tx);
                        tasks.spawn(work(rt.clone(), uid, rx, cancel.clone()));
                    }
                }
            }
            Event::Delete(pod) => {
                if let Some(tx) = pod.metadata.uid.as_ref().and_then(|u| workers.remove(u)) {
                    let _ = tx.send(None);
                }
            }
            Event::InitDone => {
                let seen = relist.take().unwrap_or_default();
                workers.retain(|uid, tx| {
                    let keep = seen.contains(uid);
                    if !keep {
                        let _ = tx.send(None);
                    }
                    keep
                });
                if !swept {
                    swept = true;
                    for uid in orphans(&rt, &seen) {
                        tracing::info!(pod = %uid, "removing the sandbox of a pod the API no longer has");
                        let rt = rt.clone();
                        tasks.spawn(async move { Worker::new(rt, uid).forget().await });
                    }
                }
            }
        }
    }
    // Pods keep running when the agent stops: their shims outlive it.
    drop(workers);
    tasks.abort_all();
}

/// Pod sandboxes on this node (shim dirs, network namespaces, pod dirs) whose uid the API
/// does not have.
fn orphans(rt: &Runtime, live: &HashSet<String>) -> Vec<String> {
    let mut out = HashSet::new();
    for dir in [
        rt.run_dir.join("pods"),
        rt.run_dir.join("netns"),
        rt.state_dir.join("pods"),
    ] {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let uid = e.file_name().to_string_lossy().into_owned();
                if !live.contains(&uid) {
                    out.insert(uid);
                }
            }
        }
    }
    out.into_iter().collect()
}

async fn work(
    rt: Arc<Runtime>,
    uid: String,
    mut rx: watch::Receiver<Option<Arc<Pod>>>,
    cancel: CancellationToken,
) {
    let mut worker = Worker::new(rt, uid);
    // Tell the worker as soon as its pod is being deleted, or force-deleted, even in the
    // middle of a sync. Ends on its own: at a forced deletion, or when the sender goes with
    // the agent.
    let (gone, forced) = (worker.gone(), worker.forced());
    let mut deletions = rx.clone();
    tokio::spawn(async move {
        loop {
            let (deleting, now) = match deletions.borrow_and_update().as_ref() {
                None => (true, true),
                Some(p) => (
                    p.metadata.deletion_timestamp.is_some(),
                    p.metadata.deletion_grace_period_seconds == Some(0),
                ),
            };
            if deleting {
                gone.cancel();
            }
            if now {
                forced.cancel();
                return;
            }
            if deletions.changed().await.is_err() {
                return;
            }
        }
    });
    loop {
        let pod = rx.borrow_and_update().clone();
        let Some(pod) = pod else {
            worker.forget().await;
            return;
        };
        let wait = worker
            .sync(&pod)
            .await
            .unwrap_or(std::time::Duration::from_secs(3600));
        tokio::select! {
            _ = cancel.cancelled() => return,
            r = rx.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
