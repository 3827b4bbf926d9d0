//! API benchmark: latency and throughput of create, get, list and watch delivery through the
//! real HTTPS API of a `k1s server` process with durable writes, side by side with the same
//! write workload against Debian's etcd on loopback; then restart-to-ready time and idle RSS.
//!
//! Run: `cargo bench --bench api` (prints a table). Set K1S_BENCH_QUICK=1 for a short run,
//! K1S_BENCH_ONLY=list for only the list and Table rows (the pods are created unpaced).

#[path = "../tests/common/mod.rs"]
mod common;

use common::TestServer;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Stats {
    name: String,
    samples: Vec<Duration>,
    wall: Duration,
}

impl Stats {
    fn pct(&self, p: f64) -> f64 {
        let mut s = self.samples.clone();
        s.sort();
        if s.is_empty() {
            return 0.0;
        }
        let i = ((s.len() as f64 * p).ceil() as usize).clamp(1, s.len()) - 1;
        s[i].as_secs_f64() * 1000.0
    }
    fn row(&self) -> String {
        format!(
            "| {:<44} | {:>7} | {:>9.2} | {:>9.2} | {:>10.0} |",
            self.name,
            self.samples.len(),
            self.pct(0.50),
            self.pct(0.99),
            self.samples.len() as f64 / self.wall.as_secs_f64()
        )
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "registry.local/bench:1", "resources": {"requests": {"cpu": "10m"}}}]}
    }))
    .expect("pod")
}

/// `total` operations from `clients` concurrent tasks, optionally paced at `rate` per second.
async fn run<F, Fut>(name: &str, clients: usize, total: usize, rate: Option<f64>, op: F) -> Stats
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..clients {
        let op = op.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = vec![];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return lat;
                }
                if let Some(r) = rate {
                    let due = start + Duration::from_secs_f64(i as f64 / r);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t = Instant::now();
                op(i).await;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut samples = vec![];
    for t in tasks {
        samples.extend(t.await.expect("task"));
    }
    Stats {
        name: name.into(),
        samples,
        wall: start.elapsed(),
    }
}

struct Etcd {
    child: std::process::Child,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("port")
}

fn start_etcd() -> Option<Etcd> {
    let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())?;
    let dir = tempfile::tempdir().ok()?;
    let (port, peer) = (free_port(), free_port());
    let child = std::process::Command::new(bin)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen-client-urls", &format!("http://127.0.0.1:{port}")])
        .args([
            "--advertise-client-urls",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args(["--listen-peer-urls", &format!("http://127.0.0.1:{peer}")])
        .args([
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ])
        .args([
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{peer}"),
        ])
        .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let e = Etcd {
        child,
        _dir: dir,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(e);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

type HttpClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<bytes::Bytes>,
>;

async fn etcd_put(client: &HttpClient, port: u16, key: &str, value: &[u8]) {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = serde_json::json!({"key": b64.encode(key), "value": b64.encode(value)}).to_string();
    let req = http::Request::post(format!("http://127.0.0.1:{port}/v3/kv/put"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(body)))
        .expect("request");
    let resp = client.request(req).await.expect("etcd put");
    assert!(resp.status().is_success(), "etcd put: {}", resp.status());
    let _ = http_body_util::BodyExt::collect(resp.into_body()).await;
}

/// One GET of `url` by curl with the admin certificate over `proto` (`--http2`,
/// `--http1.1`), the body discarded: the time from the TLS session being up to the last
/// byte. Asserts the protocol was the one asked for and the body is at least `min` bytes.
fn curl_list(tls: &std::path::Path, url: &str, proto: &str, accept: &str, min: usize) -> Duration {
    let out = std::process::Command::new("curl")
        .args(["-sS", "-o", "/dev/null", proto, "-H"])
        .arg(format!("Accept: {accept}"))
        .args([
            "-w",
            "%{time_appconnect} %{time_total} %{size_download} %{http_version} %{http_code}",
        ])
        .arg("--cacert")
        .arg(tls.join("ca.crt"))
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        f.len(),
        5,
        "curl output: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = if proto == "--http2" { "2" } else { "1.1" };
    assert_eq!((f[3], f[4]), (want, "200"), "curl {proto}: {text}");
    assert!(
        f[2].parse::<usize>().unwrap_or(0) >= min,
        "short body: {text}"
    );
    let secs = |s: &str| s.parse::<f64>().expect("curl time");
    Duration::from_secs_f64((secs(f[1]) - secs(f[0])).max(0.0))
}

fn print_rows(rows: &[Stats]) {
    println!("\n| operation                                    | samples |  p50 (ms) |  p99 (ms) |    ops/s   |");
    println!("|----------------------------------------------|---------|-----------|-----------|------------|");
    for r in rows {
        println!("{}", r.row());
    }
}

fn main() {
    let quick = std::env::var("K1S_BENCH_QUICK").is_ok();
    let only_list = std::env::var("K1S_BENCH_ONLY").as_deref() == Ok("list");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let n_list = if quick { 2_000 } else { 10_000 };
        let paced = match (only_list, quick) {
            (true, _) => 0,
            (false, true) => 400,
            (false, false) => 2_000,
        };
        let mut s = TestServer::start();
        let client = s.client().await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let mut rows = vec![];

        if !only_list {
            let p = pods.clone();
            rows.push(run("create pod, 200/s paced, 8 clients", 8, paced, Some(200.0), move |i| {
                let p = p.clone();
                async move {
                    p.create(&PostParams::default(), &pod(&format!("paced-{i}"))).await.expect("create");
                }
            }).await);
        }
        let p = pods.clone();
        rows.push(run("create pod, unpaced, 16 clients", 16, n_list - paced, None, move |i| {
            let p = p.clone();
            async move {
                p.create(&PostParams::default(), &pod(&format!("bulk-{i}"))).await.expect("create");
            }
        }).await);
        if !only_list {
            let p = pods.clone();
            rows.push(run("get pod, 16 clients", 16, 4_000, None, move |i| {
                let p = p.clone();
                async move {
                    p.get(&format!("paced-{}", i % paced)).await.expect("get");
                }
            }).await);
        }
        // the whole response body read, not parsed, so the figure is the server's
        for (label, accept) in [("JSON", "application/json"), ("Table", "application/json;as=Table;v=v1;g=meta.k8s.io")] {
            let c = client.clone();
            rows.push(run(&format!("list {n_list} pods ({label}), 1 client"), 1, 10, None, move |_| {
                let c = c.clone();
                async move {
                    let req = http::Request::get("/api/v1/namespaces/default/pods").header("accept", accept).body(Vec::new()).expect("request");
                    let body = c.request_text(req).await.expect("list");
                    assert!(body.len() > n_list * 100);
                }
            })
            .await);
        }

        // the same lists over HTTP/2 (as kubectl reads them) and HTTP/1.1, by curl on a fresh
        // connection each: timed from the TLS session being up to the last byte
        for (label, proto, accept) in [
            ("JSON, HTTP/2", "--http2", "application/json"),
            ("Table, HTTP/2", "--http2", "application/json;as=Table;v=v1;g=meta.k8s.io"),
            ("JSON, HTTP/1.1", "--http1.1", "application/json"),
        ] {
            let (tls, url) = (s.tls_dir(), s.url("/api/v1/namespaces/default/pods"));
            let name = format!("list {n_list} pods ({label}), curl");
            rows.push(tokio::task::spawn_blocking(move || {
                let start = Instant::now();
                let samples = (0..10).map(|_| curl_list(&tls, &url, proto, accept, n_list * 100)).collect();
                Stats { name, samples, wall: start.elapsed() }
            }).await.expect("curl lists"));
        }

        if only_list {
            print_rows(&rows);
            return;
        }

        // watch delivery: time from a create being acknowledged... measured as create-sent to event-received
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut w = cms.watch(&WatchParams::default(), "0").await.expect("watch").boxed();
        let mut lat = vec![];
        let start = Instant::now();
        for i in 0..200 {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(format!("w-{i}"));
            let sent = Instant::now();
            let c2 = cms.clone();
            let create = tokio::spawn(async move { c2.create(&PostParams::default(), &cm).await.expect("create") });
            loop {
                match w.next().await {
                    Some(Ok(WatchEvent::Added(c))) if c.metadata.name.as_deref() == Some(&format!("w-{i}")) => break,
                    Some(Ok(_)) => continue,
                    other => panic!("watch ended: {other:?}"),
                }
            }
            lat.push(sent.elapsed());
            create.await.expect("create task");
        }
        rows.push(Stats { name: "watch: create sent -> event received".into(), samples: lat, wall: start.elapsed() });

        // the same write workload against etcd
        let etcd = start_etcd();
        let mut ratio = String::new();
        if let Some(e) = &etcd {
            let http: HttpClient = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
            let value = serde_json::to_vec(&pod("etcd-sample")).expect("json");
            let port = e.port;
            let (h, v) = (http.clone(), value.clone());
            let paced_etcd = run("etcd put (pod-sized), 200/s paced, 8 clients", 8, paced, Some(200.0), move |i| {
                let (h, v) = (h.clone(), v.clone());
                async move { etcd_put(&h, port, &format!("/registry/pods/default/paced-{i}"), &v).await }
            })
            .await;
            let (h, v) = (http.clone(), value.clone());
            let bulk_etcd = run("etcd put (pod-sized), unpaced, 16 clients", 16, n_list - paced, None, move |i| {
                let (h, v) = (h.clone(), v.clone());
                async move { etcd_put(&h, port, &format!("/registry/pods/default/bulk-{i}"), &v).await }
            })
            .await;
            ratio = format!(
                "k1s/etcd ratios: paced create p99 {:.2}x, unpaced throughput {:.2}x",
                rows[0].pct(0.99) / paced_etcd.pct(0.99),
                (rows[1].samples.len() as f64 / rows[1].wall.as_secs_f64()) / (bulk_etcd.samples.len() as f64 / bulk_etcd.wall.as_secs_f64()),
            );
            rows.push(paced_etcd);
            rows.push(bulk_etcd);
        }

        let db = s.data_dir().join("data/server/db");
        let du = std::process::Command::new("du").args(["-sk"]).arg(&db).output().ok().map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().next().unwrap_or("?").to_string());
        // restart on the existing data dir: time to ready, then idle RSS
        s.stop();
        let t = Instant::now();
        s.spawn();
        let ready = t.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_full = s.child.as_ref().map(|c| common::rss_kib(c.id())).unwrap_or(0);
        drop(s);
        let empty = TestServer::start();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let rss_empty = empty.child.as_ref().map(|c| common::rss_kib(c.id())).unwrap_or(0);

        print_rows(&rows);
        if etcd.is_none() {
            println!("(etcd not installed: no side-by-side; scripts/setup.sh installs etcd-server)");
        }
        println!("{ratio}");
        println!("\nrestart to ready on a data dir with {n_list} pods: {:.0} ms (written kubeconfig after /readyz is ok)", ready.as_secs_f64() * 1000.0);
        println!("idle RSS: empty cluster {} KiB; with {n_list} pods {} KiB", rss_empty, rss_full);
        println!("store on disk after the run: {} KiB", du.unwrap_or_else(|| "?".into()));
    });
}
