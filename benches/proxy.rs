//! The service proxy with real nftables in a private network namespace (as root): `cargo
//! bench --bench proxy`. For 100, 1,000 and 10,000 Services (one endpoint each) written to an
//! in-process API, it times the initial full transaction, then the time from an EndpointSlice
//! write to the transaction carrying it being committed by the kernel, and how long `nft`
//! itself took. Then the first-packet latency (TCP connect and first byte) through a
//! ClusterIP next to the same straight to the pod's address. Prints tables (milliseconds).

#[path = "../tests/proxy_support/mod.rs"]
mod proxy_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use k1s::proxy::conntrack::ConntrackFilter;
use k1s::proxy::{self, Kernel, KernelError, NftCli};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use proxy_support::*;
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const CHANGES: usize = 20;

/// The real kernel, reporting when each transaction was committed, how long nft took, and
/// the CPU time it used (the machine may be busy with other work; CPU time is what the
/// transaction costs).
struct Timed {
    inner: NftCli,
    done: mpsc::UnboundedSender<(Instant, Duration, Duration, String)>,
}

/// CPU time used by this process's finished children (only nft runs here).
fn children_cpu() -> Duration {
    use nix::sys::resource::{getrusage, UsageWho};
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    let tv =
        |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

impl Kernel for Timed {
    fn apply<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<(), KernelError>> {
        Box::pin(async move {
            let started = Instant::now();
            let cpu = children_cpu();
            let r = self.inner.apply(script).await;
            let _ = self.done.send((
                Instant::now(),
                started.elapsed(),
                children_cpu().saturating_sub(cpu),
                script.to_string(),
            ));
            r
        })
    }

    fn flush_conntrack<'a>(
        &'a self,
        filter: &'a ConntrackFilter,
    ) -> BoxFuture<'a, Result<(), KernelError>> {
        self.inner.flush_conntrack(filter)
    }

    fn list_chain<'a>(
        &'a self,
        table: &'a str,
        chain: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, KernelError>> {
        self.inner.list_chain(table, chain)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let p = |q: f64| ms(v[((v.len() - 1) as f64 * q).round() as usize]);
    (p(0.5), p(0.99), ms(*v.last().unwrap()))
}

fn cluster_ip(i: usize) -> String {
    format!("10.43.{}.{}", 1 + i / 250, 1 + i % 250)
}

async fn round(net: Arc<TestNet>, n: usize) {
    let c = api().await;
    let svcs: Api<Service> = Api::namespaced(c.clone(), "default");
    let setup = Instant::now();
    for i in 0..n {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("s{i}")},
            "spec": {"clusterIP": cluster_ip(i), "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
        }))
        .unwrap();
        svcs.create(&PostParams::default(), &svc).await.unwrap();
        put_slice(
            &c,
            &format!("s{i}"),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            &[ready(0)],
        )
        .await;
    }
    let setup = setup.elapsed();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let kernel = Arc::new(Timed {
        inner: NftCli,
        done: tx,
    });
    let cancel = CancellationToken::new();
    let started = Instant::now();
    tokio::spawn(proxy::run_with_kernel(
        c.clone(),
        net.config(),
        kernel,
        cancel.clone(),
    ));
    let (at, _, full_cpu, script) = rx.recv().await.expect("initial transaction");
    let full = at - started;
    let full_bytes = script.len();

    let mut lat = Vec::new();
    let mut nft = Vec::new();
    let mut cpu = Vec::new();
    let mut bytes = Vec::new();
    for k in 0..CHANGES {
        let i = (k * 7919) % n;
        let name = format!("s{i}");
        let marker = format!("default/{name}/");
        let eps = if k % 2 == 0 {
            vec![ready(0), ready(1)]
        } else {
            vec![ready(1)]
        };
        let t0 = Instant::now();
        put_slice(
            &c,
            &name,
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            &eps,
        )
        .await;
        loop {
            let (at, took, used, script) = rx.recv().await.expect("transaction");
            if script.contains(&marker) {
                lat.push(at - t0);
                nft.push(took);
                cpu.push(used);
                bytes.push(script.len());
                break;
            }
        }
    }
    // The last change is live: the service now reaches p1.
    let ip = cluster_ip(((CHANGES - 1) * 7919) % n);
    let seen = tcp_from(&net.client, &format!("{ip}:80"), 3);
    assert!(
        seen.iter()
            .all(|r| r.as_ref().is_ok_and(|s| s.starts_with("p1 "))),
        "{seen:?}"
    );
    cancel.cancel();
    let (p50, p99, max) = summary(lat);
    let (n50, _, _) = summary(nft);
    let (c50, _, _) = summary(cpu);
    println!(
        "{n:>8} {:>9.0} {:>9.0} {:>9.0} {:>8} {:>10.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8}",
        ms(setup),
        ms(full),
        ms(full_cpu),
        full_bytes / 1024,
        p50,
        p99,
        max,
        n50,
        c50,
        bytes.iter().sum::<usize>() / bytes.len()
    );
}

/// Connect and read the first byte, from the client namespace, `n` times.
fn first_packet(client: &str, addr: &str, n: usize) -> Vec<Duration> {
    let addr: SocketAddr = addr.parse().unwrap();
    in_ns(client, move || {
        (0..n)
            .map(|_| {
                use std::io::Read;
                let t = Instant::now();
                let mut c =
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap();
                let mut b = [0u8; 1];
                c.read_exact(&mut b).unwrap();
                t.elapsed()
            })
            .collect()
    })
}

fn main() {
    let net = Arc::new(TestNet::new(2));
    println!(
        "EndpointSlice write (in-process API) to nft transaction committed, {CHANGES} changes each, times in ms"
    );
    println!(
        "{:>8} {:>9} {:>9} {:>9} {:>8} {:>10} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "services",
        "setup",
        "full",
        "full cpu",
        "full KiB",
        "change p50",
        "p99",
        "max",
        "nft p50",
        "nft cpu",
        "tx bytes"
    );
    for n in [100, 1_000, 10_000] {
        let nn = net.clone();
        net.on_node(move || round(nn, n));
    }

    // First packet: one Service in front of p0, against p0 directly.
    let nn = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service_for_bench(&c).await;
        put_slice(
            &c,
            "fp",
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
            &[ready(0)],
        )
        .await;
        let cancel = CancellationToken::new();
        tokio::spawn(proxy::run(c.clone(), nn.config(), cancel.clone()));
        eventually(30, "rules", || {
            nn.table().filter(|t| t.contains("10.43.200.1 . tcp . 80"))
        })
        .await;
        let rounds = 500;
        let (mut via, mut direct) = (Vec::new(), Vec::new());
        for _ in 0..10 {
            via.extend(first_packet(&nn.client, "10.43.200.1:80", rounds / 10));
            direct.extend(first_packet(
                &nn.client,
                &format!("{}:8080", pod_ip(0)),
                rounds / 10,
            ));
        }
        cancel.cancel();
        println!();
        println!(
            "first packet (TCP connect + first byte) from outside the node, {rounds} each, ms"
        );
        println!("{:<24} {:>8} {:>8} {:>8}", "path", "p50", "p99", "max");
        let (a, b, c1) = summary(via.clone());
        println!("{:<24} {:>8.3} {:>8.3} {:>8.3}", "ClusterIP", a, b, c1);
        let (d, e, f) = summary(direct.clone());
        println!("{:<24} {:>8.3} {:>8.3} {:>8.3}", "pod IP", d, e, f);
        println!("{:<24} {:>8.2}", "ratio p50", a / d);
    });
}

async fn create_service_for_bench(c: &kube::Client) {
    create_service(c, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "fp"},
        "spec": {"clusterIP": "10.43.200.1", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})).await;
}
