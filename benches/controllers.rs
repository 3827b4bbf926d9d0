//! Control-loop costs, as root or not: `cargo bench --bench controllers`.
//! - A Deployment of 100 replicas, in process, with the ReplicaSet and Deployment controllers,
//!   the garbage collector and the scheduler on 3 hollow nodes, and a fake kubelet that marks
//!   each bound pod Running and Ready: the time from the Deployment's create to all 100 pods
//!   bound, to all Running, and to the Deployment reporting 100 available; and the API
//!   requests the control plane made (counted under its client), per pod.
//! - Memory: a real `k1s server --disable-agent` process, its RSS with 0, 5,000 and 10,000
//!   pods bound to hollow nodes, once the controllers' caches hold them; the growth per
//!   1,000 pods, beside the size of the pods as JSON.
//! - Who holds them: live heap bytes per pod by holder, in process (`controllers_heap/`).

#[path = "../tests/common/mod.rs"]
mod common;
mod controllers_heap;

#[global_allocator]
static ALLOC: controllers_heap::Counting = controllers_heap::Counting;

use futures::future::BoxFuture;
use futures::StreamExt;
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Requests by kind ("list", "watch", "get", "create", "update", "patch", "delete").
type Counts = Arc<Mutex<BTreeMap<&'static str, u64>>>;

/// The in-process service with every request counted.
#[derive(Clone)]
struct Counting {
    inner: k1s::client::InProcess,
    counts: Counts,
}

fn verb(req: &http::Request<kube::client::Body>) -> &'static str {
    let query = req.uri().query().unwrap_or("");
    match *req.method() {
        http::Method::GET if query.contains("watch=true") || query.contains("watch=1") => "watch",
        http::Method::GET => {
            // A collection path ends in the plural; an object path has a name after it.
            let path = req.uri().path();
            let segments = path.trim_end_matches('/').split('/').count();
            let named = if path.starts_with("/api/") {
                segments % 2 == 1
            } else {
                segments.is_multiple_of(2)
            };
            if named || path.ends_with("/status") {
                "get"
            } else {
                "list"
            }
        }
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE => "delete",
        _ => "other",
    }
}

impl tower::Service<http::Request<kube::client::Body>> for Counting {
    type Response =
        <k1s::client::InProcess as tower::Service<http::Request<kube::client::Body>>>::Response;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<kube::client::Body>) -> Self::Future {
        *self.counts.lock().unwrap().entry(verb(&req)).or_default() += 1;
        Box::pin(self.inner.call(req))
    }
}

fn hollow_node(name: &str) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1100"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1100"},
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }))
    .unwrap()
}

/// Creates the node, then writes its status (a create drops status, as upstream's does).
async fn add_node(client: &kube::Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n = hollow_node(name);
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let status = json!({"status": n.status});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// Marks every bound pod Running and Ready, as a kubelet would, through its own client.
fn fake_kubelet(client: kube::Client, cancel: CancellationToken) {
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, "default");
        let stream = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        futures::pin_mut!(stream);
        loop {
            let p = tokio::select! {
                _ = cancel.cancelled() => return,
                p = stream.next() => p,
            };
            let Some(Ok(p)) = p else { continue };
            let bound = p.spec.as_ref().is_some_and(|s| s.node_name.is_some());
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            if !bound || phase == Some("Running") || p.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let status = json!({"status": {
                "phase": "Running",
                "startTime": now,
                "podIP": "10.42.0.9",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "True", "lastTransitionTime": now},
                ],
                "containerStatuses": [{"name": "c", "image": "busybox", "imageID": "", "ready": true,
                    "restartCount": 0, "started": true, "state": {"running": {"startedAt": now}}}],
            }});
            let name = p.metadata.name.clone().unwrap_or_default();
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
        }
    });
}

async fn deployment_of_100(label: &str, store: Store) {
    const REPLICAS: usize = 100;
    let built = InProcessApi::builder(store).build().await.unwrap();
    let counts: Counts = Default::default();
    let control = kube::Client::new(
        Counting {
            inner: k1s::client::in_process_service(built.api, k1s::client::server_identity()),
            counts: counts.clone(),
        },
        "default",
    );
    let outside = built.client;
    for i in 0..3 {
        add_node(&outside, &format!("hollow-{i}")).await;
    }
    let cancel = CancellationToken::new();
    let informers = k1s::controllers::informers::Informers::new(control.clone(), cancel.clone());
    tokio::spawn(k1s::controllers::replicaset::run(
        informers.clone(),
        cancel.clone(),
    ));
    tokio::spawn(k1s::controllers::deployment::run(
        informers.clone(),
        cancel.clone(),
    ));
    tokio::spawn(k1s::controllers::garbagecollector::run(
        control.clone(),
        cancel.clone(),
    ));
    tokio::spawn(k1s::scheduler::run(informers.clone(), cancel.clone()));
    fake_kubelet(outside.clone(), cancel.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before: u64 = counts.lock().unwrap().values().sum();
    let baseline = counts.lock().unwrap().clone();

    let deployments: Api<Deployment> = Api::namespaced(outside.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(outside.clone(), "default");
    let dep: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "spec": {
            "replicas": REPLICAS,
            "selector": {"matchLabels": {"app": "big"}},
            "template": {
                "metadata": {"labels": {"app": "big"}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "resources": {"requests": {"cpu": "10m"}}}]}
            }
        }
    }))
    .unwrap();
    let start = Instant::now();
    deployments
        .create(&PostParams::default(), &dep)
        .await
        .unwrap();
    let (mut bound_at, mut running_at) = (None, None);
    let available_at = loop {
        let list = pods.list(&Default::default()).await.unwrap().items;
        let bound = list
            .iter()
            .filter(|p| p.spec.as_ref().is_some_and(|s| s.node_name.is_some()))
            .count();
        let running = list
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        if bound >= REPLICAS && bound_at.is_none() {
            bound_at = Some(start.elapsed());
        }
        if running >= REPLICAS && running_at.is_none() {
            running_at = Some(start.elapsed());
        }
        let d = deployments.get("big").await.unwrap();
        if d.status.and_then(|s| s.available_replicas) == Some(REPLICAS as i32) {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "not rolled out: {bound} bound, {running} running"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    // Let the last status writes land before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    cancel.cancel();
    let after = counts.lock().unwrap().clone();
    let total: u64 = after.values().sum::<u64>() - before;
    let by_verb: Vec<String> = after
        .iter()
        .map(|(k, v)| (k, v - baseline.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    let ms =
        |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.0}", d.as_secs_f64() * 1000.0));
    println!(
        "| {label:<6} | {:>8} | {:>10} | {:>12} | {:>8} | {:>7.2} | {} |",
        ms(bound_at),
        ms(running_at),
        ms(Some(available_at)),
        total,
        total as f64 / REPLICAS as f64,
        by_verb.join(", "),
    );
}

/// RSS once it has stopped growing: three samples 500 ms apart within 1%.
async fn settled_rss(pid: u32) -> u64 {
    let mut last = common::rss_kib(pid);
    let mut steady = 0;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = common::rss_kib(pid);
        if now.abs_diff(last) * 100 <= last {
            steady += 1;
            if steady == 3 {
                return now;
            }
        } else {
            steady = 0;
        }
        last = now;
    }
    last
}

async fn memory_per_pod() {
    let s = common::TestServer::start();
    let pid = s.child.as_ref().unwrap().id();
    let client = s.client().await;
    for i in 0..10 {
        add_node(&client, &format!("hollow-{i}")).await;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let empty = settled_rss(pid).await;
    println!(
        "| {:>6} | {:>8.1} | {:>21} | {:>20} |",
        0,
        empty as f64 / 1024.0,
        "-",
        "-"
    );
    let mut have = 0usize;
    let mut prev = empty;
    let mut json_bytes = 0usize;
    for target in [5_000usize, 10_000] {
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(have));
        let mut workers = Vec::new();
        for _ in 0..16 {
            let (pods, next) = (pods.clone(), next.clone());
            workers.push(tokio::spawn(async move {
                let mut bytes = 0;
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= target {
                        return bytes;
                    }
                    let p = controllers_heap::bound_pod("mem", i);
                    let created = pods.create(&PostParams::default(), &p).await.unwrap();
                    bytes += serde_json::to_vec(&created).unwrap().len();
                }
            }));
        }
        for w in workers {
            json_bytes += w.await.unwrap();
        }
        let rss = settled_rss(pid).await;
        let per_1000 = (rss as f64 - prev as f64) / 1024.0 / ((target - have) as f64 / 1000.0);
        println!(
            "| {:>6} | {:>8.1} | {:>21.2} | {:>20.2} |",
            target,
            rss as f64 / 1024.0,
            per_1000,
            json_bytes as f64 / target as f64 * 1000.0 / 1024.0 / 1024.0,
        );
        have = target;
        prev = rss;
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!("Deployment of 100 replicas on 3 hollow nodes, in process (ms from create; requests by the controllers and the scheduler)");
    println!("| store  | bound ms | running ms | available ms | requests | per pod | by kind |");
    println!("|--------|----------|------------|--------------|----------|---------|---------|");
    rt.block_on(deployment_of_100("memory", Store::memory()));
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = Store::open_sled(&dir.path().join("db"), 32 << 20).expect("sled");
    rt.block_on(deployment_of_100("sled", sled));

    println!();
    println!("k1s server --disable-agent, RSS with pods bound to 10 hollow nodes (MiB)");
    println!("|   pods |      RSS | growth per 1,000 pods | pods' JSON per 1,000 |");
    println!("|--------|----------|-----------------------|----------------------|");
    rt.block_on(memory_per_pod());

    println!();
    println!("Live heap per pod by holder, in process, 3,000 bound pods (bytes)");
    println!("| holder                                   |    heap/pod |");
    println!("|------------------------------------------|-------------|");
    rt.block_on(controllers_heap::heap_by_holder());
}
