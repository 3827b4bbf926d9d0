//! Manifests directory benchmark, through the in-process API on sled (durable writes, as the
//! server runs): what staging and the first apply of the bundled manifests add to start-up
//! (on a fresh data dir, and again on a restart with the same data dir), and the time from a
//! file written into the directory to its object readable through the API (a new file, and
//! an edit of an existing one). Prints p50 and p99 of each.
//!
//! Run: `cargo bench --bench deploy`. K1S_BENCH_DEPLOY_N overrides the number of samples (20).

use k1s::deploy::{Config, TemplateVars};
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::Api;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn row(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{what:<52} {:>9.2} {:>9.2} {:>5}",
        pct(&samples, 0.5),
        pct(&samples, 0.99),
        samples.len()
    );
}

/// An API server on a sled store in `data`, as `k1s server` builds it.
async fn api(data: &Path) -> (kube::Client, Store) {
    let store = Store::open_sled(&data.join("db"), 16 * 1024 * 1024).unwrap();
    let api = InProcessApi::builder(store)
        .namespaces(&["default", "kube-system"])
        .build()
        .await
        .unwrap();
    (api.client, api.store)
}

fn config(data: &Path) -> Config {
    Config {
        dir: data.join("manifests"),
        vars: TemplateVars {
            cluster_dns: "10.43.0.10".into(),
            cluster_domain: "cluster.local".into(),
            data_dir: data.display().to_string(),
            default_local_storage_path: data.join("storage").display().to_string(),
        },
        disables: Default::default(),
        resync: k1s::deploy::RESYNC,
    }
}

/// Time `deploy::start` (stage, CRD, bundled apply) on a fresh data dir, then again over the
/// same store and directory, as a restart of the server finds them.
async fn startup(n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut fresh, mut again) = (vec![], vec![]);
    for _ in 0..n {
        let dir = tempfile::tempdir().unwrap();
        let (client, store) = api(dir.path()).await;
        for samples in [&mut fresh, &mut again] {
            let cancel = CancellationToken::new();
            let mut tasks = JoinSet::new();
            let t = Instant::now();
            k1s::deploy::start(
                client.clone(),
                config(dir.path()),
                &mut tasks,
                cancel.clone(),
            )
            .await
            .unwrap();
            samples.push(t.elapsed());
            cancel.cancel();
            while tasks.join_next().await.is_some() {}
        }
        store.close().await.unwrap();
    }
    (fresh, again)
}

async fn visible(api: &Api<ConfigMap>, name: &str, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(cm)) = api.get_opt(name).await {
            if cm
                .data
                .as_ref()
                .and_then(|d| d.get("v"))
                .map(String::as_str)
                == Some(value)
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{name}={value} never appeared");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn write(dir: &Path, file: &str, name: &str, value: &str) {
    let tmp = dir.join(format!(".{file}.new"));
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, namespace: default}}\ndata: {{v: \"{value}\"}}\n"
    );
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(file)).unwrap();
}

/// File written → object readable, for new files and for edits of one file.
async fn file_to_object(n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().unwrap();
    let (client, store) = api(dir.path()).await;
    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let cfg = config(dir.path());
    let mdir = cfg.dir.clone();
    k1s::deploy::start(client.clone(), cfg, &mut tasks, cancel.clone())
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let (mut created, mut edited) = (vec![], vec![]);
    for i in 0..n {
        let name = format!("new-{i}");
        let t = Instant::now();
        write(&mdir, &format!("{name}.yaml"), &name, "1");
        visible(&cms, &name, "1").await;
        created.push(t.elapsed());
    }
    for i in 0..n {
        let value = format!("edit-{i}");
        let t = Instant::now();
        write(&mdir, "edited.yaml", "edited", &value);
        visible(&cms, "edited", &value).await;
        edited.push(t.elapsed());
    }
    cancel.cancel();
    while tasks.join_next().await.is_some() {}
    store.close().await.unwrap();
    (created, edited)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("K1S_BENCH_DEPLOY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    println!(
        "{:<52} {:>9} {:>9} {:>5}",
        "measure", "p50 ms", "p99 ms", "n"
    );
    let (fresh, again) = startup(n).await;
    row("start-up: stage + CRD + bundled apply, fresh", fresh);
    row("start-up: stage + CRD + bundled apply, restart", again);
    let (created, edited) = file_to_object(n).await;
    row("new file written -> object readable", created);
    row("file edited -> new value readable", edited);
}
