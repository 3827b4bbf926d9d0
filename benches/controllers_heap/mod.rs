//! Who holds the pods: live heap bytes per pod, in process, as each holder starts in turn
//! over 3,000 bound pods: the API's memory store, the shared pod informer, controllers
//! subscribed to it (they should add next to nothing), the scheduler, the garbage
//! collector. A counting global allocator gives exact bytes where RSS only gives pages.

use k1s::controllers::informers::Informers;
use k1s::server::inprocess::InProcessApi;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The system allocator, counting the bytes live.
pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on unchanged to the system allocator; only a counter is kept.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout contract is passed on as is.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: `p` came from `alloc` above with this layout.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as for `dealloc`; `n` is the caller's new size.
        unsafe { System.realloc(p, l, n) }
    }
}

const PODS: usize = 3_000;

/// Live bytes once they stop moving (two samples a second apart within 200 KB).
async fn settled() -> isize {
    let mut last = LIVE.load(Ordering::Relaxed);
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = LIVE.load(Ordering::Relaxed);
        if (now - last).abs() < 200_000 {
            return now;
        }
        last = now;
    }
    last
}

fn row(holder: &str, from: isize, to: isize) {
    println!(
        "| {holder:<40} | {:>12.0} |",
        (to - from) as f64 / PODS as f64
    );
}

/// Pod `<app>-<i>`, bound to one of ten hollow nodes, with small requests: what both memory
/// measurements fill the caches with.
pub fn bound_pod(app: &str, i: usize) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{app}-{i}"), "labels": {"app": app, "tier": "bench"}},
        "spec": {"nodeName": format!("hollow-{}", i % 10),
            "containers": [{"name": "c", "image": "busybox",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .unwrap()
}

pub async fn heap_by_holder() {
    let client = InProcessApi::memory().await.unwrap().client;
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 0..10 {
        let n: Node =
            serde_json::from_value(json!({"metadata": {"name": format!("hollow-{i}")}})).unwrap();
        nodes.create(&PostParams::default(), &n).await.unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut at = settled().await;
    for i in 0..PODS {
        let p = bound_pod("heap", i);
        pods.create(&PostParams::default(), &p).await.unwrap();
    }
    let mut step = |holder: &str, now: isize| {
        row(holder, at, now);
        at = now;
    };
    step("API and memory store", settled().await);
    let cancel = CancellationToken::new();
    let informers = Informers::new(client.clone(), cancel.clone());
    informers
        .get::<Pod>()
        .store()
        .wait_until_ready()
        .await
        .unwrap();
    step("shared pod informer", settled().await);
    use k1s::controllers::{endpoints, endpointslice, job, podgc, replicaset};
    tokio::spawn(replicaset::run(informers.clone(), cancel.clone()));
    tokio::spawn(job::run(informers.clone(), cancel.clone()));
    tokio::spawn(endpointslice::run(informers.clone(), cancel.clone()));
    tokio::spawn(endpoints::run(informers.clone(), cancel.clone()));
    tokio::spawn(podgc::run(
        informers.clone(),
        Default::default(),
        cancel.clone(),
    ));
    step("5 pod controllers sharing it", settled().await);
    tokio::spawn(k1s::scheduler::run(informers.clone(), cancel.clone()));
    step("scheduler (on the shared informers)", settled().await);
    tokio::spawn(k1s::controllers::garbagecollector::run(
        client.clone(),
        cancel.clone(),
    ));
    step("garbage collector (metadata only)", settled().await);
    cancel.cancel();
}
