//! Helpers for the proxy's tests and benchmark: a private network of namespaces (a "node"
//! with a bridge, "pods" on it, and an outside "client"), removed when dropped even after a
//! failure; tiny TCP/UDP servers in the pods that answer with their name and the peer they
//! see; connecting from any of the namespaces; and an in-process API with the proxy running
//! inside the node's namespace. Nothing here touches the host's own network namespace.
#![allow(dead_code)]

use std::future::Future;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use k1s::proxy::{ProxyConfig, TABLE};
use k1s::server::inprocess::InProcessApi;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;
use tokio_util::sync::CancellationToken;

pub const NODE: &str = "node-a";
pub const NODE_IP: &str = "192.168.77.1";
pub const CLIENT_IP: &str = "192.168.77.2";
pub const BRIDGE_IP: &str = "10.42.0.1";

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the proxy tests need root (network namespaces and nftables)"
    );
}

pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A private network: node, `pods` pods on its bridge (10.42.0.2, .3, ...), and a client
/// outside (192.168.77.2) whose default route is the node.
pub struct TestNet {
    pub node: String,
    pub client: String,
    pub pods: Vec<String>,
    cancel: CancellationToken,
}

impl Drop for TestNet {
    fn drop(&mut self) {
        self.cancel.cancel();
        for ns in self.pods.iter().chain([&self.client, &self.node]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

pub fn pod_ip(i: usize) -> String {
    format!("10.42.0.{}", i + 2)
}

impl TestNet {
    pub fn new(pods: usize) -> TestNet {
        require_root();
        let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let t = TestNet {
            node: format!("k1s-pxt-{id}-n"),
            client: format!("k1s-pxt-{id}-c"),
            pods: (0..pods).map(|i| format!("k1s-pxt-{id}-p{i}")).collect(),
            cancel: CancellationToken::new(),
        };
        for ns in t.pods.iter().chain([&t.client, &t.node]) {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        let n = t.node.as_str();
        sh(&["ip", "-n", n, "link", "add", "br0", "type", "bridge"]);
        sh(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            &format!("{BRIDGE_IP}/24"),
            "dev",
            "br0",
        ]);
        sh(&["ip", "-n", n, "link", "set", "br0", "up"]);
        for (i, p) in t.pods.iter().enumerate() {
            let host = format!("vp{i}");
            sh(&[
                "ip", "-n", n, "link", "add", &host, "type", "veth", "peer", "name", "eth0",
                "netns", p,
            ]);
            sh(&["ip", "-n", n, "link", "set", &host, "master", "br0", "up"]);
            sh(&[
                "ip",
                "-n",
                n,
                "link",
                "set",
                &host,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ]);
            sh(&[
                "ip",
                "-n",
                p,
                "addr",
                "add",
                &format!("{}/24", pod_ip(i)),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", p, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", p, "route", "add", "default", "via", BRIDGE_IP]);
        }
        let c = t.client.as_str();
        sh(&[
            "ip", "-n", n, "link", "add", "ext0", "type", "veth", "peer", "name", "eth0", "netns",
            c,
        ]);
        sh(&[
            "ip",
            "-n",
            n,
            "addr",
            "add",
            &format!("{NODE_IP}/24"),
            "dev",
            "ext0",
        ]);
        sh(&["ip", "-n", n, "link", "set", "ext0", "up"]);
        sh(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", c, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", c, "route", "add", "default", "via", NODE_IP]);
        sh(&["ip", "-n", n, "route", "add", "default", "via", CLIENT_IP]);
        sh(&[
            "ip",
            "netns",
            "exec",
            n,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        for (i, p) in t.pods.iter().enumerate() {
            serve(p, format!("p{i}"), 8080, t.cancel.clone());
        }
        t
    }

    /// The node's table as `nft list table` prints it, or None when it does not exist.
    pub fn table(&self) -> Option<String> {
        let out = Command::new("ip")
            .args([
                "netns", "exec", &self.node, "nft", "list", "table", "ip", TABLE,
            ])
            .output()
            .expect("spawn nft");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    pub fn config(&self) -> ProxyConfig {
        ProxyConfig::new(
            NODE,
            vec![NODE_IP.parse().unwrap()],
            "10.42.0.0/16".parse().unwrap(),
            "10.43.0.0/16".parse().unwrap(),
        )
    }

    /// Runs `f` on a runtime whose threads all live in the node's namespace, so the proxy
    /// started inside it programs (and relays) there.
    pub fn on_node<F, Fut, T>(&self, f: F) -> T
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T>,
        T: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.node);
        std::thread::spawn(move || {
            enter(&path);
            let p = path.clone();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_start(move || enter(&p))
                .build()
                .unwrap();
            rt.block_on(f())
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

/// Moves the calling thread into the named network namespace.
pub fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("entering {path}: {e}"));
}

/// Runs blocking `f` on a fresh thread inside namespace `ns`.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter(&path);
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// A TCP and a UDP server on `port` in namespace `ns`, answering `<name> <peer ip>`.
pub fn serve(ns: &str, name: String, port: u16, cancel: CancellationToken) {
    let path = format!("/run/netns/{ns}");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        enter(&path);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let tcp = tokio::net::TcpListener::bind(("0.0.0.0", port)).await.unwrap();
            let udp = tokio::net::UdpSocket::bind(("0.0.0.0", port)).await.unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 1500];
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    Ok((mut c, peer)) = tcp.accept() => {
                        use tokio::io::AsyncWriteExt;
                        let _ = c.set_nodelay(true);
                        let _ = c.write_all(format!("{name} {}\n", peer.ip()).as_bytes()).await;
                    }
                    Ok((_, peer)) = udp.recv_from(&mut buf) => {
                        let _ = udp.send_to(format!("{name} {}\n", peer.ip()).as_bytes(), peer).await;
                    }
                }
            }
        });
    });
    ready_rx.recv().expect("server started");
}

/// One TCP exchange: the server's answer line.
pub fn tcp_get(addr: &str, timeout: Duration) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut c = TcpStream::connect_timeout(&addr, timeout)?;
    c.set_read_timeout(Some(timeout))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s.trim().to_string())
}

/// TCP exchanges from namespace `ns`.
pub fn tcp_from(ns: &str, addr: &str, n: usize) -> Vec<std::io::Result<String>> {
    let addr = addr.to_string();
    in_ns(ns, move || {
        (0..n)
            .map(|_| tcp_get(&addr, Duration::from_secs(2)))
            .collect()
    })
}

/// One UDP exchange from namespace `ns`, from a fixed local port.
pub fn udp_from(ns: &str, local_port: u16, addr: &str) -> std::io::Result<String> {
    let addr = addr.to_string();
    in_ns(ns, move || {
        let s = UdpSocket::bind(("0.0.0.0", local_port))?;
        s.set_read_timeout(Some(Duration::from_secs(1)))?;
        s.send_to(b"hi", &addr)?;
        let mut buf = [0u8; 1500];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).trim().to_string())
    })
}

/// A connection attempt's outcome and how long it took.
pub fn connect_outcome(ns: &str, addr: &str, timeout: Duration) -> (std::io::ErrorKind, Duration) {
    let addr: SocketAddr = addr.parse().unwrap();
    in_ns(ns, move || {
        let started = Instant::now();
        let r = TcpStream::connect_timeout(&addr, timeout).map(|mut c| {
            let mut s = String::new();
            c.set_read_timeout(Some(timeout)).unwrap();
            c.read_to_string(&mut s).map(|_| ())
        });
        let kind = match r {
            Ok(Ok(())) => std::io::ErrorKind::Other,
            Ok(Err(e)) | Err(e) => e.kind(),
        };
        (kind, started.elapsed())
    })
}

/// An in-process API server with the `default` namespace.
pub async fn api() -> Client {
    InProcessApi::memory().await.unwrap().client
}

pub async fn create_service(client: &Client, spec: serde_json::Value) -> Service {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(spec).unwrap();
    api.create(&PostParams::default(), &svc).await.unwrap()
}

pub async fn set_lb_ingress(client: &Client, name: &str, ip: &str) {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let st = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

/// An endpoint of a slice: pod index, node, ready/serving/terminating.
#[derive(Clone, Copy)]
pub struct Ep {
    pub pod: usize,
    pub node: &'static str,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

pub fn ready(pod: usize) -> Ep {
    Ep {
        pod,
        node: NODE,
        ready: true,
        serving: true,
        terminating: false,
    }
}

pub fn slice_json(svc: &str, ports: serde_json::Value, eps: &[Ep]) -> serde_json::Value {
    let endpoints: Vec<serde_json::Value> = eps
        .iter()
        .map(|e| {
            json!({"addresses": [pod_ip(e.pod)], "nodeName": e.node,
                   "conditions": {"ready": e.ready, "serving": e.serving, "terminating": e.terminating}})
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{svc}-x"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "ports": ports,
        "endpoints": endpoints,
    })
}

/// Creates or replaces the Service's slice.
pub async fn put_slice(client: &Client, svc: &str, ports: serde_json::Value, eps: &[Ep]) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let body = slice_json(svc, ports, eps);
    let name = format!("{svc}-x");
    api.patch(
        &name,
        &PatchParams::apply("proxy-test").force(),
        &Patch::Apply(&body),
    )
    .await
    .unwrap();
}

/// Polls `f` until it returns Some, or panics after `secs`.
pub async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
