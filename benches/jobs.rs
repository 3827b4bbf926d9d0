//! Job controller benchmark: one Job of many completions run to Complete through the
//! in-process API, with the Job controller as in `k1s server` and a stand-in kubelet that
//! marks every new pod Succeeded as soon as a watch shows it. Prints the time from creating
//! the Job to its Complete condition and the completions per second, for the in-memory store
//! and for sled on disk (durable writes). Each completion costs the controller a pod create,
//! a status record of the finished pod, a finalizer removal and a count.
//!
//! Run: `cargo bench --bench jobs`. K1S_BENCH_COMPLETIONS and K1S_BENCH_PARALLELISM override
//! the sizes (200 and 20).

use futures::StreamExt;
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn env(name: &str, default: i32) -> i32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn run(label: &str, store: Store, completions: i32, parallelism: i32) {
    let client = InProcessApi::builder(store).build().await.unwrap().client;
    let cancel = CancellationToken::new();
    let informers = k1s::controllers::informers::Informers::new(client.clone(), cancel.clone());
    tokio::spawn(k1s::controllers::job::run(informers, cancel.clone()));

    // The stand-in kubelet.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let kubelet = {
        let pods = pods.clone();
        let cancel = cancel.clone();
        tokio::spawn(async move {
            let mut done = HashSet::new();
            let mut events = watcher(pods.clone(), watcher::Config::default())
                .applied_objects()
                .boxed();
            loop {
                let p = tokio::select! {
                    _ = cancel.cancelled() => return,
                    e = events.next() => match e { Some(Ok(p)) => p, Some(Err(_)) => continue, None => return },
                };
                let phase = p.status.as_ref().and_then(|s| s.phase.clone());
                if phase.as_deref() != Some("Pending") || !done.insert(p.name_any()) {
                    continue;
                }
                let st = json!({"status": {"phase": "Succeeded"}});
                for _ in 0..50 {
                    let r = pods
                        .patch_status(&p.name_any(), &PatchParams::default(), &Patch::Merge(&st))
                        .await;
                    match r {
                        Ok(_) => break,
                        // deleted meanwhile (the Job controller removed a surplus pod)
                        Err(kube::Error::Api(e)) if e.code == 404 => break,
                        Err(e) => eprintln!("kubelet: {}: {e}", p.name_any()),
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        })
    };

    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "bench"},
        "spec": {"completions": completions, "parallelism": parallelism,
            "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    let start = Instant::now();
    jobs.create(&PostParams::default(), &job).await.unwrap();
    let deadline = start + Duration::from_secs(60);
    loop {
        let j = jobs.get("bench").await.unwrap();
        let complete = j
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Complete" && c.status == "True")
            });
        if complete {
            let s = j.status.unwrap();
            assert_eq!(s.succeeded, Some(completions));
            assert_eq!(
                s.failed, None,
                "no pod failed, none may be counted as failed"
            );
            break;
        }
        if Instant::now() >= deadline {
            let all = pods.list(&Default::default()).await.unwrap();
            let mut phases = std::collections::BTreeMap::new();
            for p in &all.items {
                let ph = p
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                let fin = p.metadata.finalizers.clone().unwrap_or_default().len();
                let del = p.metadata.deletion_timestamp.is_some();
                *phases
                    .entry(format!("{ph} fin={fin} del={del}"))
                    .or_insert(0) += 1;
            }
            panic!("the job did not complete: {:?}\npods: {phases:?}", j.status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    let created = pods.list(&Default::default()).await.unwrap().items.len();
    println!(
        "{label:<8} {completions:>11} {parallelism:>11} {created:>9} {:>9.2} {:>10.1}",
        took.as_secs_f64(),
        f64::from(completions) / took.as_secs_f64()
    );
    cancel.cancel();
    let _ = kubelet.await;
}

fn main() {
    let completions = env("K1S_BENCH_COMPLETIONS", 200);
    let parallelism = env("K1S_BENCH_PARALLELISM", 20);
    // One runtime per store, so nothing of the first run lingers into the second.
    let rt = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime")
    };
    println!("store    completions parallelism pods made  total s  per second");
    rt().block_on(run("memory", Store::memory(), completions, parallelism));
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = Store::open_sled(&dir.path().join("db"), 32 << 20).expect("sled");
    rt().block_on(run("sled", sled, completions, parallelism));
}
