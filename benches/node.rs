//! The node agent under load, as root: `cargo bench --bench node`. Starts a release `k1s
//! server` with its node, a registry on loopback with busybox, then
//! - pod start latency: 50 pods of a present image created at 10 pods/s, create → Running
//!   (seen through a watch), p50/p99, with the agent's own stage timings from its log
//!   (network namespace, CNI, image+volumes+rootfs, shim create, shim start);
//! - memory: the server's RSS and PSS with no pods, and the shims' with 20 running pods.
//!
//! Prints tables; cleans up its pods, bridge and rules.

#[path = "../tests/image_support/mod.rs"]
mod image_support;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PODS: usize = 50;
const MEMORY_PODS: usize = 20;
const CIDR: &str = "10.210.0.0/16";

struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
        let _ = Command::new("ip").args(["link", "del", "k1s0"]).status();
        for args in [
            vec![
                "-D",
                "POSTROUTING",
                "-s",
                "10.210.0.0/24",
                "-j",
                "K1S-MASQ-k1s0",
            ],
            vec!["-F", "K1S-MASQ-k1s0"],
            vec!["-X", "K1S-MASQ-k1s0"],
        ] {
            let _ = Command::new("iptables")
                .args(["-w", "-t", "nat"])
                .args(&args)
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// (RSS, PSS) in KiB of a process.
fn memory(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

fn shim_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            (cmd.contains(" shim --dir /run/k1s/pods/")).then_some(pid)
        })
        .collect()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": {"bench": "node"}},
        "spec": {
            "nodeName": "bench",
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}]
        }
    }))
    .unwrap()
}

async fn wait_running(api: &Api<Pod>, names: &[String]) -> HashMap<String, Instant> {
    let mut seen = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while seen.len() < names.len() && Instant::now() < deadline {
        for p in api
            .list(&ListParams::default().labels("bench=node"))
            .await
            .unwrap()
        {
            let n = p.metadata.name.clone().unwrap_or_default();
            if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
                seen.entry(n).or_insert_with(Instant::now);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

async fn delete_all(api: &Api<Pod>) {
    let _ = api
        .delete_collection(
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
            &ListParams::default().labels("bench=node"),
        )
        .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if api
            .list(&ListParams::default().labels("bench=node"))
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(false)
            && shim_pids().is_empty()
            && std::fs::read_dir("/run/k1s/netns")
                .map(|d| d.count() == 0)
                .unwrap_or(true)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Medians of the agent's stage timings (milliseconds) from its log.
fn stages(log: &Path) -> Vec<(&'static str, f64, f64)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut out = Vec::new();
    for (label, marker, field) in [
        ("network namespace", "pod sandbox ready", "netns_ms="),
        (
            "CNI ADD (bridge, portmap, loopback)",
            "pod sandbox ready",
            "cni_ms=",
        ),
        (
            "image, volumes, rootfs, spec",
            "container started",
            "prepare_ms=",
        ),
        (
            "shim create (libcontainer)",
            "container started",
            "create_ms=",
        ),
        ("shim start", "container started", "start_ms="),
    ] {
        let mut v: Vec<f64> = text
            .lines()
            .filter(|l| l.contains(marker))
            .filter_map(|l| {
                let plain: String = strip_ansi(l);
                let i = plain.find(field)? + field.len();
                plain[i..].split_whitespace().next()?.parse().ok()
            })
            .collect();
        let p50 = percentile(&mut v, 0.5);
        let p99 = percentile(&mut v, 0.99);
        out.push((label, p50, p99));
    }
    out
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\u{1b}') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, c) => out.push(c),
        }
    }
    out
}

#[tokio::main]
async fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bench node: needs root (containers, CNI)");
        return;
    }
    let registry = image_support::registry::Registry::start(None).expect("registry");
    registry
        .push("busybox", "library/busybox:latest")
        .expect("push");
    let dir = tempfile::tempdir().unwrap();
    let regfile = dir.path().join("registries.yaml");
    std::fs::write(
        &regfile,
        image_support::mirror_yaml("docker.io", &registry.addr()),
    )
    .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let log = dir.path().join("server.log");
    let child = Command::new(env!("CARGO_BIN_EXE_k1s"))
        .args([
            "server",
            "--config",
            "/dev/null",
            "--https-listen-port",
            "0",
            "--bind-address",
            "127.0.0.1",
        ])
        .args([
            "--kubelet-port",
            "0",
            "--node-name",
            "bench",
            "--cluster-cidr",
            CIDR,
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--write-kubeconfig")
        .arg(&kubeconfig)
        .arg("--private-registry")
        .arg(&regfile)
        .env("K1S_LOG", "info")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("k1s");
    let server = Server { child, _dir: dir };
    while !kubeconfig.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    // Wait for the node, then warm the image cache with one pod.
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(client.clone());
    loop {
        let ready = nodes
            .get_opt("bench")
            .await
            .ok()
            .flatten()
            .and_then(|n| n.status)
            .and_then(|s| s.conditions)
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if ready {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    api.create(&PostParams::default(), &pod("warm"))
        .await
        .unwrap();
    wait_running(&api, &["warm".to_string()]).await;
    delete_all(&api).await;

    let server_pid = server.child.id();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (idle_rss, idle_pss) = memory(server_pid);

    // Pod start latency: 50 pods at 10/s.
    let _ = std::fs::write(&log, b"");
    let mut watch = api
        .watch(&WatchParams::default().labels("bench=node"), "0")
        .await
        .unwrap()
        .boxed();
    let mut created: HashMap<String, Instant> = HashMap::new();
    let mut running: HashMap<String, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut i = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    while running.len() < PODS && Instant::now() < deadline {
        tokio::select! {
            _ = tick.tick(), if i < PODS => {
                let name = format!("p{i:03}");
                created.insert(name.clone(), Instant::now());
                api.create(&PostParams::default(), &pod(&name)).await.unwrap();
                i += 1;
            }
            ev = watch.next() => {
                if let Some(Ok(WatchEvent::Modified(p) | WatchEvent::Added(p))) = ev {
                    if p.status.and_then(|s| s.phase).as_deref() == Some("Running") {
                        running.entry(p.metadata.name.unwrap_or_default()).or_insert_with(Instant::now);
                    }
                }
            }
        }
    }
    let mut lat: Vec<f64> = running
        .iter()
        .filter_map(|(n, t)| Some((*t - *created.get(n)?).as_secs_f64() * 1e3))
        .collect();
    println!("\npod start latency, {} of {PODS} pods Running (create → Running seen by a watch), 10 pods/s, image present", lat.len());
    println!("| measure | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: |");
    let (p50, p99) = (percentile(&mut lat, 0.5), percentile(&mut lat, 0.99));
    println!("| create → Running | {p50:.1} | {p99:.1} |");
    for (label, p50, p99) in stages(&log) {
        println!("| agent: {label} | {p50:.1} | {p99:.1} |");
    }

    // Memory with 20 running pods.
    delete_all(&api).await;
    let names: Vec<String> = (0..MEMORY_PODS).map(|i| format!("m{i:02}")).collect();
    for n in &names {
        api.create(&PostParams::default(), &pod(n)).await.unwrap();
    }
    wait_running(&api, &names).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (busy_rss, busy_pss) = memory(server_pid);
    let shims = shim_pids();
    let (mut shim_rss, mut shim_pss) = (0u64, 0u64);
    for pid in &shims {
        let (r, p) = memory(*pid);
        shim_rss += r;
        shim_pss += p;
    }
    let per = |v: u64| v as f64 / 1024.0 / shims.len().max(1) as f64;
    println!("\nmemory (MiB)");
    println!("| what | RSS | PSS |");
    println!("| --- | ---: | ---: |");
    println!(
        "| k1s server, node, no pods | {:.1} | {:.1} |",
        idle_rss as f64 / 1024.0,
        idle_pss as f64 / 1024.0
    );
    println!(
        "| k1s server with {MEMORY_PODS} pods | {:.1} | {:.1} |",
        busy_rss as f64 / 1024.0,
        busy_pss as f64 / 1024.0
    );
    println!(
        "| {} shims, total | {:.1} | {:.1} |",
        shims.len(),
        shim_rss as f64 / 1024.0,
        shim_pss as f64 / 1024.0
    );
    println!("| per shim | {:.2} | {:.2} |", per(shim_rss), per(shim_pss));
    println!(
        "| server + shims with {MEMORY_PODS} pods | {:.1} | {:.1} |",
        (busy_rss + shim_rss) as f64 / 1024.0,
        (busy_pss + shim_pss) as f64 / 1024.0
    );
    delete_all(&api).await;
    drop(server);
    let _: PathBuf = regfile;
}
