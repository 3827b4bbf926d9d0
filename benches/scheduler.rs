//! Scheduler benchmark through the in-process API (the server's own client: no TCP, no TLS),
//! with the scheduler running as in `k1s server`, on hollow nodes (Node objects with no
//! agent), for the in-memory store and for sled on disk (durable writes, as the server runs):
//! - streaming: 1,000 pods created by 8 clients while the scheduler runs, onto 10 nodes;
//!   throughput from the first create to the last binding, and the p50/p99 time from a pod's
//!   creation to its binding as a watch sees it;
//! - backlog: 10,000 pods created while no scheduler runs, then the scheduler started, onto
//!   100 and onto 1,000 nodes; throughput from its start to the last binding.
//!
//! Run: `cargo bench --bench scheduler`. K1S_BENCH_PODS scales the pod counts down (it
//! replaces 10,000; the streaming case uses a tenth).

use futures::StreamExt;
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const CREATORS: usize = 8;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn setup(store: Store, nodes: usize) -> kube::Client {
    let client = InProcessApi::builder(store).build().await.unwrap().client;
    let node_count = nodes;
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..node_count {
        let n: Node = serde_json::from_value(json!({
            "metadata": {"name": format!("node-{i}"), "labels": {"kubernetes.io/hostname": format!("node-{i}")}},
            "status": {
                "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                "conditions": [{"type": "Ready", "status": "True"}],
            }
        }))
        .unwrap();
        let created = nodes.create(&PostParams::default(), &n).await.unwrap();
        if created
            .status
            .as_ref()
            .and_then(|s| s.allocatable.as_ref())
            .is_none()
        {
            let mut s = created;
            s.status = n.status.clone();
            let name = format!("node-{i}");
            nodes
                .replace_status(&name, &PostParams::default(), &s)
                .await
                .unwrap();
        }
    }
    client
}

/// Creates `pods` pods with `CREATORS` concurrent clients, recording when each was created.
async fn create_pods(api: &Api<Pod>, pods: usize, created: &Arc<Mutex<HashMap<String, Instant>>>) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..CREATORS {
        let (api, next, created) = (api.clone(), next.clone(), created.clone());
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= pods {
                    return;
                }
                let name = format!("bench-{i}");
                let p: Pod = serde_json::from_value(json!({
                    "metadata": {"name": name, "labels": {"app": "bench"}},
                    "spec": {"containers": [{"name": "c", "image": "registry.local/bench:1",
                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}
                }))
                .unwrap();
                let t = Instant::now();
                api.create(&PostParams::default(), &p).await.unwrap();
                created.lock().unwrap().insert(name, t);
            }
        }));
    }
    for c in creators {
        c.await.unwrap();
    }
}

/// One scenario. `backlog`: every pod exists before the scheduler starts.
async fn run(label: &str, store: Store, nodes: usize, pods: usize, backlog: bool) {
    let client = setup(store, nodes).await;
    let cancel = CancellationToken::new();
    if !backlog {
        tokio::spawn(k1s::scheduler::run(
            k1s::controllers::informers::Informers::new(client.clone(), cancel.clone()),
            cancel.clone(),
        ));
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let created: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let bound: Arc<Mutex<HashMap<String, Instant>>> = Default::default();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    {
        let bound = bound.clone();
        let stream = watcher(api.clone(), watcher::Config::default())
            .default_backoff()
            .applied_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            let mut done = Some(done_tx);
            while let Some(ev) = stream.next().await {
                // a watch ended by the server (a burst outran it) resumes on the next poll
                let Ok(p) = ev else { continue };
                let on_node = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
                if on_node {
                    let mut b = bound.lock().unwrap();
                    b.entry(p.metadata.name.clone().unwrap())
                        .or_insert_with(Instant::now);
                    if b.len() == pods {
                        if let Some(tx) = done.take() {
                            let _ = tx.send(());
                        }
                    }
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut start = Instant::now();
    create_pods(&api, pods, &created).await;
    let created_all = start.elapsed();
    if backlog {
        // The clock starts with the scheduler, over a full queue.
        start = Instant::now();
        tokio::spawn(k1s::scheduler::run(
            k1s::controllers::informers::Informers::new(client.clone(), cancel.clone()),
            cancel.clone(),
        ));
    }
    let progress = {
        let (created, bound) = (created.clone(), bound.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                let (c, b) = (created.lock().unwrap().len(), bound.lock().unwrap().len());
                eprintln!("  ... {c} created, {b} bound");
            }
        })
    };
    if tokio::time::timeout(Duration::from_secs(180), done_rx)
        .await
        .is_err()
    {
        let listed = api.list(&Default::default()).await.unwrap().items;
        let unbound: Vec<_> = listed
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_none())
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let seen = bound.lock().unwrap().len();
        panic!("not all pods bound: the watch saw {seen}, a list shows unbound {unbound:?}");
    }
    progress.abort();
    let wall = start.elapsed();
    cancel.cancel();
    let mut lat: Vec<Duration> = if backlog {
        Vec::new()
    } else {
        let created = created.lock().unwrap();
        let bound = bound.lock().unwrap();
        created
            .iter()
            .map(|(n, t)| bound[n].saturating_duration_since(*t))
            .collect()
    };
    lat.sort();
    let mut per_node: HashMap<String, usize> = HashMap::new();
    for p in api.list(&Default::default()).await.unwrap() {
        *per_node
            .entry(p.spec.unwrap().node_name.unwrap())
            .or_default() += 1;
    }
    let (lo, hi) = (
        per_node.values().min().copied().unwrap_or(0),
        per_node.values().max().copied().unwrap_or(0),
    );
    let (p50, p99) = if lat.is_empty() {
        ("-".to_string(), "-".to_string())
    } else {
        (
            format!("{:.1}", pct(&lat, 0.50)),
            format!("{:.1}", pct(&lat, 0.99)),
        )
    };
    println!(
        "| {:<10} | {:<9} | {:>6} | {:>5} | {:>12.0} | {:>14.1} | {:>8} | {:>8} | {:>8} |",
        label,
        if backlog { "backlog" } else { "streaming" },
        pods,
        nodes,
        pods as f64 / wall.as_secs_f64(),
        created_all.as_secs_f64() * 1000.0,
        p50,
        p99,
        format!("{lo}-{hi}"),
    );
}

fn main() {
    let backlog: usize = std::env::var("K1S_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("scheduler on hollow nodes; pods/s = pods bound per second (streaming: from the first create; backlog: from the scheduler's start); latency = create to bound (watch)");
    println!("| store      | case      |   pods | nodes | pods/s bound | all created ms | p50 ms   | p99 ms   | per node |");
    println!("|------------|-----------|--------|-------|--------------|----------------|----------|----------|----------|");
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (10, backlog / 10, false),
        (100, backlog, true),
        (1_000, backlog, true),
    ];
    for (i, (nodes, pods, is_backlog)) in cases.into_iter().enumerate() {
        rt.block_on(run("memory", Store::memory(), nodes, pods, is_backlog));
        let sled = Store::open_sled(&dir.path().join(format!("db-{i}")), 32 << 20).expect("sled");
        rt.block_on(run("sled", sled, nodes, pods, is_backlog));
    }
}
