//! Cluster DNS benchmark: the server runs on a current-thread runtime pinned to CPU 0, with
//! 1,000 ClusterIP Services in 10 namespaces from the in-process API; a load generator
//! pinned to CPU 1 keeps a fixed number of UDP queries in flight (closed loop) and measures
//! each one. Prints queries/s, p50/p99 latency and the server thread's CPU use for cluster
//! names, for search-path names (NXDOMAIN) and for external names served from the cache,
//! and, when `dnsperf` is installed, dnsperf's numbers for the same queries side by side.
//! "q/s per core" divides the rate by the server thread's CPU use (from /proc): the rate one
//! busy core sustains, whatever else the machine is running.
//!
//! Run: `cargo bench --bench dns`. K1S_BENCH_SECS sets the seconds per row (default 3),
//! K1S_BENCH_INFLIGHT the queries in flight (default 32).

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k1s::dns::{handler::query, DnsConfig};
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SERVICES: usize = 1000;
const NAMESPACES: usize = 10;
const EXTERNAL: usize = 100;

fn pin(cpu: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(cpu).is_ok() {
        let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
    }
}

/// CPU seconds used so far by thread `tid` of this process.
fn thread_cpu(tid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    ticks / hz
}

/// An upstream that answers every A question with one address, TTL 300.
fn fake_upstream() -> SocketAddr {
    let sock = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = sock.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                continue;
            };
            let Ok(req) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut m = Message::response(req.metadata.id, req.op_code);
            m.queries = req.queries.clone();
            let name = req.queries[0].name().clone();
            m.answers.push(Record::from_rdata(
                name,
                300,
                RData::A(A::new(192, 0, 2, 1)),
            ));
            let _ = sock.send_to(&m.to_vec().unwrap(), peer);
        }
    });
    addr
}

async fn cluster() -> kube::Client {
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("ns-{i}")).collect();
    let client = InProcessApi::builder(Store::memory())
        .namespaces(&namespaces)
        .build()
        .await
        .unwrap()
        .client;
    for i in 0..SERVICES {
        let api: Api<Service> = Api::namespaced(client.clone(), &format!("ns-{}", i % NAMESPACES));
        let s: Service = serde_json::from_value(json!({
            "metadata": {"name": format!("svc-{i}")},
            "spec": {"clusterIP": format!("10.43.{}.{}", 10 + i / 250, i % 250 + 1),
                     "ports": [{"name": "http", "port": 80}]}
        }))
        .unwrap();
        api.create(&PostParams::default(), &s).await.unwrap();
    }
    client
}

struct Row {
    qps: f64,
    p50_us: f64,
    p99_us: f64,
    cpu: f64,
    errors: usize,
}

/// Closed-loop load: `inflight` sockets, each with one query outstanding.
fn load(server: SocketAddr, queries: &[Vec<u8>], secs: u64, inflight: usize, tid: i32) -> Row {
    pin(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let queries: Arc<Vec<Vec<u8>>> = Arc::new(queries.to_vec());
    rt.block_on(async move {
        let cpu0 = thread_cpu(tid);
        let start = Instant::now();
        let until = start + Duration::from_secs(secs);
        let mut workers = Vec::new();
        for w in 0..inflight {
            let queries = queries.clone();
            workers.push(tokio::spawn(async move {
                let sock = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .unwrap();
                sock.connect(server).await.unwrap();
                let mut lat = Vec::with_capacity(100_000);
                let mut errors = 0;
                let mut buf = vec![0u8; 4096];
                let mut i = w * 7919;
                let mut id: u16 = w as u16;
                while Instant::now() < until {
                    let mut q = queries[i % queries.len()].clone();
                    i += 1;
                    id = id.wrapping_add(1);
                    q[..2].copy_from_slice(&id.to_be_bytes());
                    let sent = Instant::now();
                    sock.send(&q).await.unwrap();
                    loop {
                        match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf))
                            .await
                        {
                            Ok(Ok(n)) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                                lat.push(sent.elapsed());
                                // SERVFAIL or worse is an error; NXDOMAIN is a valid answer
                                if buf[3] & 0x0f == 2 {
                                    errors += 1;
                                }
                                break;
                            }
                            Ok(_) => continue,
                            Err(_) => {
                                errors += 1;
                                break;
                            }
                        }
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for w in workers {
            let (lat, e) = w.await.unwrap();
            all.extend(lat);
            errors += e;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let cpu = (thread_cpu(tid) - cpu0) / elapsed;
        all.sort();
        let pct = |p: f64| {
            let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
            all[i].as_secs_f64() * 1e6
        };
        Row {
            qps: all.len() as f64 / elapsed,
            p50_us: pct(0.5),
            p99_us: pct(0.99),
            cpu,
            errors,
        }
    })
}

/// dnsperf over the same names, pinned to CPU 1: (queries/s, average latency µs).
fn dnsperf(
    server: SocketAddr,
    names: &[String],
    secs: u64,
    inflight: usize,
    tid: i32,
) -> Option<(f64, f64, f64)> {
    let dir = tempfile::tempdir().ok()?;
    let data = dir.path().join("queries");
    let text: String = names.iter().map(|n| format!("{n} A\n")).collect();
    std::fs::write(&data, text).ok()?;
    let cpu0 = thread_cpu(tid);
    let started = Instant::now();
    let out = std::process::Command::new("taskset")
        .args(["-c", "1", "dnsperf", "-s", "127.0.0.1", "-p"])
        .arg(server.port().to_string())
        .arg("-d")
        .arg(&data)
        .args([
            "-l",
            &secs.to_string(),
            "-q",
            &inflight.to_string(),
            "-c",
            "4",
        ])
        .output()
        .ok()?;
    let cpu = (thread_cpu(tid) - cpu0) / started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |key: &str| -> Option<f64> {
        let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
        line.split(':')
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((
        field("Queries per second")?,
        field("Average Latency (s)")? * 1e6,
        cpu,
    ))
}

/// What one fully busy server core would answer, from the queries answered per second of
/// the server thread's CPU time: on a shared machine the load generator, not the server, is
/// often what limits the measured rate.
fn per_core(qps: f64, cpu: f64) -> f64 {
    if cpu > 0.0 {
        qps / cpu
    } else {
        f64::NAN
    }
}

fn encode(names: &[String]) -> Vec<Vec<u8>> {
    names
        .iter()
        .map(|n| {
            query(0, &Name::from_ascii(n).unwrap(), RecordType::A, Some(1232))
                .to_vec()
                .unwrap()
        })
        .collect()
}

fn main() {
    let secs: u64 = std::env::var("K1S_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let inflight: usize = std::env::var("K1S_BENCH_INFLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    let api_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let client = api_rt.block_on(cluster());
    let upstream = fake_upstream();

    let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let server = udp.local_addr().unwrap();
    let tcp = std::net::TcpListener::bind(server).unwrap();
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let cancel = tokio_util::sync::CancellationToken::new();
    let stop = cancel.clone();
    let dns_thread = std::thread::spawn(move || {
        pin(0);
        // SAFETY: gettid has no preconditions.
        tid_tx.send(unsafe { libc::gettid() }).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            udp.set_nonblocking(true).unwrap();
            tcp.set_nonblocking(true).unwrap();
            let udp = tokio::net::UdpSocket::from_std(udp).unwrap();
            let tcp = tokio::net::TcpListener::from_std(tcp).unwrap();
            let mut config = DnsConfig::new("cluster.local");
            config.upstreams = vec![upstream];
            k1s::dns::run(client, config, udp, tcp, stop).await.unwrap();
        });
    });
    let tid = tid_rx.recv().unwrap();

    let cluster_names: Vec<String> = (0..SERVICES)
        .map(|i| format!("svc-{i}.ns-{}.svc.cluster.local.", i % NAMESPACES))
        .collect();
    let search_names: Vec<String> = (0..EXTERNAL)
        .map(|i| format!("host-{i}.example.com.ns-0.svc.cluster.local."))
        .collect();
    let external_names: Vec<String> = (0..EXTERNAL)
        .map(|i| format!("host-{i}.example.com."))
        .collect();

    // wait for the snapshot to hold every service, then fill the cache
    let probe = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let ask = |name: &str| -> Option<Message> {
        let q = query(1, &Name::from_ascii(name).unwrap(), RecordType::A, None);
        probe.send_to(&q.to_vec().unwrap(), server).ok()?;
        let mut buf = [0u8; 4096];
        let n = probe.recv(&mut buf).ok()?;
        Message::from_vec(&buf[..n]).ok()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while ask(cluster_names.last().unwrap()).is_none_or(|m| m.answers.is_empty()) {
        assert!(Instant::now() < deadline, "the dns server did not sync");
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in &external_names {
        assert!(
            ask(n).is_some_and(|m| !m.answers.is_empty()),
            "upstream answer for {n}"
        );
    }

    println!("cluster dns, server pinned to cpu 0 (current-thread runtime), load on cpu 1, {inflight} queries in flight, {secs} s per row");
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>11} {:>13} {:>7}",
        "queries", "q/s", "p50 µs", "p99 µs", "server cpu", "q/s per core", "errors"
    );
    let rows = [
        ("cluster names (A, 1000 services)", &cluster_names),
        ("search-path names (NXDOMAIN)", &search_names),
        ("external names, cached (A)", &external_names),
    ];
    for (label, names) in rows {
        let r = load(server, &encode(names), secs, inflight, tid);
        println!(
            "{:<44} {:>10.0} {:>10.1} {:>10.1} {:>10.1}% {:>13.0} {:>7}",
            format!("{label}, k1s load"),
            r.qps,
            r.p50_us,
            r.p99_us,
            r.cpu * 100.0,
            per_core(r.qps, r.cpu),
            r.errors
        );
        match dnsperf(server, names, secs, inflight, tid) {
            Some((qps, avg, cpu)) => println!(
                "{:<44} {:>10.0} {:>21} {:>10.1}% {:>13.0}",
                format!("{label}, dnsperf"),
                qps,
                format!("avg {avg:.1}"),
                cpu * 100.0,
                per_core(qps, cpu)
            ),
            None => println!(
                "{:<44} (dnsperf not installed)",
                format!("{label}, dnsperf")
            ),
        }
    }
    cancel.cancel();
    let _ = dns_thread.join();
}
