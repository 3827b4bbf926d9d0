//! Store write benchmark: throughput and latency for one and sixteen writers (group commit),
//! and the disk footprint of sled under churn with compaction.
//!
//! `cargo bench --bench store_churn` (set STORE_CHURN_UPDATES to change the churn size).

use bytes::Bytes;
use k1s::store::Store;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const VALUE_LEN: usize = 256;

struct Run {
    ops: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    fn row(&mut self, backend: &str, case: &str) {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 * p) as usize)
                .min(self.latencies.len().saturating_sub(1));
            self.latencies.get(i).copied().unwrap_or_default()
        };
        println!(
            "| {backend:<6} | {case:<22} | {:>7} | {:>9.0} | {:>9.3} | {:>9.3} |",
            self.ops,
            self.ops as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
        );
    }
}

/// Creates `writers * keys_per_writer` keys under `tag`; returns their revisions.
async fn setup(store: &Store, tag: &str, writers: usize, keys_per_writer: usize) -> Vec<u64> {
    let value = Bytes::from(vec![b'x'; VALUE_LEN]);
    let mut revs = Vec::new();
    for w in 0..writers {
        for k in 0..keys_per_writer {
            let kv = store
                .create(&format!("/bench/{tag}/{w}/{k}"), value.clone())
                .await
                .expect("create");
            revs.push(kv.mod_revision);
        }
    }
    revs
}

/// `writers` tasks each CAS-update their own keys (from `setup`) `per_writer` times.
async fn churn(
    store: &Store,
    tag: &str,
    revs: &mut [u64],
    writers: usize,
    per_writer: usize,
) -> Run {
    let keys_per_writer = revs.len() / writers;
    let value = Bytes::from(vec![b'x'; VALUE_LEN]);
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            let tag = tag.to_string();
            let mut mine: Vec<u64> = revs[w * keys_per_writer..(w + 1) * keys_per_writer].to_vec();
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let k = i % keys_per_writer;
                    let t = Instant::now();
                    let kv = store
                        .update(&format!("/bench/{tag}/{w}/{k}"), value.clone(), mine[k])
                        .await
                        .expect("update");
                    lat.push(t.elapsed());
                    mine[k] = kv.mod_revision;
                }
                (w, mine, lat)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for t in tasks {
        let (w, mine, lat) = t.await.expect("writer task");
        revs[w * keys_per_writer..(w + 1) * keys_per_writer].copy_from_slice(&mine);
        latencies.extend(lat);
    }
    Run {
        ops: writers * per_writer,
        elapsed: start.elapsed(),
        latencies,
    }
}

/// Like `churn` for keys `/bench/churn/0/0..n`, with `total` updates spread over `writers`
/// tasks that each own the keys `k` with `k % writers == w`.
async fn churn_spread(store: &Store, revs: &mut [u64], writers: usize, total: usize) -> Run {
    let value = Bytes::from(vec![b'x'; VALUE_LEN]);
    let start = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let value = value.clone();
            let mut mine: Vec<(usize, u64)> = revs
                .iter()
                .copied()
                .enumerate()
                .filter(|(k, _)| k % writers == w)
                .collect();
            let per_writer = total / writers;
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_writer);
                for i in 0..per_writer {
                    let slot = i % mine.len();
                    let (k, rev) = mine[slot];
                    let t = Instant::now();
                    let kv = store
                        .update(&format!("/bench/churn/0/{k}"), value.clone(), rev)
                        .await
                        .expect("update");
                    lat.push(t.elapsed());
                    mine[slot].1 = kv.mod_revision;
                }
                (mine, lat)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut ops = 0;
    for t in tasks {
        let (mine, lat) = t.await.expect("writer task");
        for (k, rev) in mine {
            revs[k] = rev;
        }
        ops += lat.len();
        latencies.extend(lat);
    }
    Run {
        ops,
        elapsed: start.elapsed(),
        latencies,
    }
}

async fn case(
    store: &Store,
    tag: &str,
    writers: usize,
    per_writer: usize,
    keys_per_writer: usize,
) -> Run {
    let mut revs = setup(store, tag, writers, keys_per_writer).await;
    churn(store, tag, &mut revs, writers, per_writer).await
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

async fn bench() {
    let dir = std::env::temp_dir().join(format!("k1s-store-bench-{}", std::process::id()));
    let churn_updates: usize = std::env::var("STORE_CHURN_UPDATES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    println!("| backend | case                   |     ops |     ops/s |  p50 (ms) |  p99 (ms) |");
    println!("|---------|------------------------|---------|-----------|-----------|-----------|");
    let mem = Store::memory();
    case(&mem, "m1", 1, 20_000, 100)
        .await
        .row("memory", "1 writer");
    case(&mem, "m16", 16, 2_000, 4)
        .await
        .row("memory", "16 writers");

    let sled = Store::open_sled(&dir.join("latency"), 32 << 20).expect("open sled");
    case(&sled, "s1", 1, 1_000, 100)
        .await
        .row("sled", "1 writer");
    case(&sled, "s16", 16, 500, 4)
        .await
        .row("sled", "16 writers");
    sled.close().await.expect("close");
    drop(sled);

    // Churn: the same 100 keys rewritten over and over, compactor running with no retention.
    let store = Store::open_sled(&dir.join("churn"), 32 << 20).expect("open sled");
    let cancel = CancellationToken::new();
    let compactor =
        store.spawn_compactor(Duration::from_millis(200), Duration::ZERO, cancel.clone());
    let writers = 16;
    // 100 keys over 16 writers: the first four writers own seven keys, the rest six.
    let mut revs = setup(&store, "churn", 1, 100).await;
    let before = store.size_on_disk().await;
    let mut samples = Vec::new();
    let chunks = 10;
    let mut total = Run {
        ops: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for _ in 0..chunks {
        let r = churn_spread(&store, &mut revs, writers, churn_updates / chunks).await;
        total.ops += r.ops;
        total.elapsed += r.elapsed;
        total.latencies.extend(r.latencies);
        samples.push((store.current_revision(), store.size_on_disk().await));
    }
    total.row("sled", "churn 16w + compactor");
    // Let the compactor catch up, then measure at rest.
    let head = store.current_revision();
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.compacted_revision() < head && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    let _ = compactor.await;
    let after = store.size_on_disk().await;
    store.close().await.expect("close");
    let closed = store.size_on_disk().await;
    println!();
    println!(
        "sled disk under churn ({} updates of 100 keys, compactor every 200 ms, retention 0):",
        head - 100
    );
    println!("  before churn        : {}", mib(before));
    for (rev, size) in &samples {
        println!("  at revision {rev:>7} : {}", mib(*size));
    }
    println!(
        "  after compaction    : {} (compacted to {})",
        mib(after),
        store.compacted_revision()
    );
    println!("  after close         : {}", mib(closed));
    drop(store);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!("cleanup {}: {e}", dir.display());
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench());
}
