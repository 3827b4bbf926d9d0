//! Service allocation benchmark: 5,000 ClusterIP Services created through the in-process
//! API (the server's own client: no TCP, no TLS) by 8 concurrent clients, each getting a
//! ClusterIP from the /16 service CIDR, on the in-memory store and on sled (durable
//! writes, as the server runs). Prints creates per second and the p50/p99 create latency,
//! the allocator alone (IPs per second taken from an empty /16 until 5,000 are out), and
//! on sled the time to rebuild the allocators from the stored Services after a reopen.
//!
//! Run: `cargo bench --bench services`. K1S_BENCH_SERVICES overrides the count.

use k1s::registry::services::range::IpRange;
use k1s::registry::Registry;
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CREATORS: usize = 8;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

async fn setup(store: Store) -> (kube::Client, Registry) {
    let api = InProcessApi::builder(store).build().await.unwrap();
    (api.client, api.registry)
}

async fn run(label: &str, store: Store, count: usize) {
    let (client, registry) = setup(store).await;
    let api: Api<Service> = Api::namespaced(client, "default");
    let lat: Arc<Mutex<Vec<Duration>>> = Default::default();
    let ips: Arc<Mutex<HashSet<String>>> = Default::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut creators = Vec::new();
    for _ in 0..CREATORS {
        let (api, next, lat, ips) = (api.clone(), next.clone(), lat.clone(), ips.clone());
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return;
                }
                let s: Service = serde_json::from_value(json!({
                    "metadata": {"name": format!("svc-{i}")},
                    "spec": {"selector": {"app": "bench"}, "ports": [{"port": 80, "targetPort": 8080}]}
                }))
                .unwrap();
                let t = Instant::now();
                let made = api.create(&PostParams::default(), &s).await.unwrap();
                lat.lock().unwrap().push(t.elapsed());
                let ip = made.spec.unwrap().cluster_ip.unwrap();
                assert!(ips.lock().unwrap().insert(ip), "an address given twice");
            }
        }));
    }
    for c in creators {
        c.await.unwrap();
    }
    let wall = start.elapsed();
    let mut lat = lat.lock().unwrap().clone();
    lat.sort();
    assert_eq!(registry.service_allocations().await.unwrap().0, count);
    println!(
        "| {:<6} | {:>8} | {:>9.0} | {:>10.0} | {:>7.2} | {:>7.2} |",
        label,
        count,
        wall.as_secs_f64() * 1000.0,
        count as f64 / wall.as_secs_f64(),
        pct(&lat, 0.50),
        pct(&lat, 0.99),
    );
}

fn allocator_only(count: usize) {
    let mut r = IpRange::new("10.43.0.0/16".parse().unwrap());
    let t = Instant::now();
    for _ in 0..count {
        r.offsets.take_next().unwrap();
    }
    let e = t.elapsed();
    println!(
        "allocator alone: {count} IPs from an empty /16 in {:.2} ms ({:.0} ns per IP)",
        e.as_secs_f64() * 1000.0,
        e.as_nanos() as f64 / count as f64
    );
}

fn main() {
    let count: usize = std::env::var("K1S_BENCH_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("services: {count} ClusterIP Services created by {CREATORS} concurrent clients; every one gets an address of 10.43.0.0/16");
    println!("| store  | services | wall ms   | creates/s  | p50 ms  | p99 ms  |");
    println!("|--------|----------|-----------|------------|---------|---------|");
    rt.block_on(run("memory", Store::memory(), count));
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = Store::open_sled(&dir.path().join("db"), 32 << 20).expect("sled");
    rt.block_on(run("sled", sled.clone(), count));
    rt.block_on(async {
        sled.close().await.expect("close");
    });
    drop(sled);
    allocator_only(count);
    // Reopen: the first Service write rebuilds the allocators from the store.
    rt.block_on(async {
        let store = loop {
            match Store::open_sled(&dir.path().join("db"), 32 << 20) {
                Ok(s) => break s,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (_client, registry) = setup(store).await;
        let t = Instant::now();
        let (ips, _) = registry.service_allocations().await.unwrap();
        println!(
            "rebuild after reopen: {ips} allocated IPs read back from sled in {:.1} ms",
            t.elapsed().as_secs_f64() * 1000.0
        );
    });
}
