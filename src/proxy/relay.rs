//! NodePorts on 127.0.0.1, served in userspace.
//!
//! The kernel refuses to route a packet with a 127.0.0.0/8 source off the loopback device
//! unless `net.ipv4.conf.*.route_localnet` is set, so a DNAT of `127.0.0.1:<nodePort>` to a
//! pod address would leave the packet unroutable. Setting `route_localnet` opens the node to
//! martian-source attacks (upstream kube-proxy had a CVE about it), so k1s does not: instead
//! this relay listens on `127.0.0.1:<nodePort>` (TCP and UDP) and connects to an endpoint
//! chosen as the rules would choose for the host's own traffic: at random among the Service's
//! cluster-wide endpoints, sticky per client address with ClientIP affinity. A port is only
//! listened on while it has an endpoint, so with none the connection is refused, as the rules
//! reject. The relay owns its sockets and tasks; it never touches nftables.

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::model::{Protocol, ServiceInput};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A UDP client silent this long loses its upstream socket.
const UDP_IDLE: Duration = Duration::from_secs(60);

/// Where one loopback NodePort leads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayTarget {
    pub endpoints: Vec<SocketAddrV4>,
    pub affinity: Option<Duration>,
}

/// The loopback NodePorts the Services ask for: TCP and UDP ports with usable endpoints.
/// A port claimed twice keeps its first claimant (the API refuses such duplicates anyway).
pub fn targets<'a>(
    inputs: impl Iterator<Item = &'a ServiceInput>,
) -> BTreeMap<(Protocol, u16), RelayTarget> {
    let mut sorted: Vec<&ServiceInput> = inputs.collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    let mut out = BTreeMap::new();
    for input in sorted {
        for p in &input.ports {
            let Some(np) = p.node_port else { continue };
            if p.protocol == Protocol::Sctp {
                continue;
            }
            let endpoints: Vec<SocketAddrV4> = p
                .categorize()
                .cluster
                .iter()
                .map(|e| SocketAddrV4::new(e.ip, e.port))
                .collect();
            if endpoints.is_empty() {
                continue;
            }
            out.entry((p.protocol, np)).or_insert(RelayTarget {
                endpoints,
                affinity: p.affinity.map(|s| Duration::from_secs(u64::from(s))),
            });
        }
    }
    out
}

struct Listener {
    target: watch::Sender<RelayTarget>,
    stop: CancellationToken,
}

/// The running relay: one listener task per loopback NodePort.
pub struct Relay {
    listeners: HashMap<(Protocol, u16), Listener>,
    cancel: CancellationToken,
}

/// Picks an endpoint, keeping a client on its previous one under ClientIP affinity.
#[derive(Default)]
struct Chooser {
    sticky: Mutex<HashMap<Ipv4Addr, (SocketAddrV4, Instant)>>,
}

impl Chooser {
    /// Endpoints in the order to try them: the sticky one first, then a random order.
    fn order(&self, target: &RelayTarget, client: Ipv4Addr) -> Vec<SocketAddrV4> {
        let mut eps = target.endpoints.clone();
        eps.shuffle(&mut rand::thread_rng());
        if let Some(timeout) = target.affinity {
            let mut sticky = self.sticky.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            sticky.retain(|_, (_, seen)| now.duration_since(*seen) < timeout);
            if let Some((ep, _)) = sticky.get(&client).copied() {
                if let Some(i) = eps.iter().position(|e| *e == ep) {
                    eps.swap(0, i);
                }
            }
            if let Some(first) = eps.first() {
                sticky.insert(client, (*first, now));
            }
        }
        eps
    }
}

fn client_v4(addr: SocketAddr) -> Ipv4Addr {
    match addr {
        SocketAddr::V4(a) => *a.ip(),
        SocketAddr::V6(_) => Ipv4Addr::LOCALHOST,
    }
}

impl Relay {
    pub fn new(cancel: CancellationToken) -> Self {
        Relay {
            listeners: HashMap::new(),
            cancel,
        }
    }

    /// The ports currently listened on.
    pub fn ports(&self) -> Vec<(Protocol, u16)> {
        let mut p: Vec<_> = self.listeners.keys().copied().collect();
        p.sort();
        p
    }

    /// Listens on the ports of `targets` and stops listening on the others. False when some
    /// port could not be bound.
    pub fn update(&mut self, targets: BTreeMap<(Protocol, u16), RelayTarget>) -> bool {
        let mut all_bound = true;
        self.listeners.retain(|key, l| {
            let keep = targets.contains_key(key);
            if !keep {
                l.stop.cancel();
            }
            keep
        });
        for (key, target) in targets {
            if let Some(l) = self.listeners.get(&key) {
                l.target.send_if_modified(|t| {
                    let changed = *t != target;
                    *t = target.clone();
                    changed
                });
                continue;
            }
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, key.1));
            let stop = self.cancel.child_token();
            let (tx, rx) = watch::channel(target);
            let started = match key.0 {
                Protocol::Tcp => std::net::TcpListener::bind(addr)
                    .and_then(|l| {
                        l.set_nonblocking(true)?;
                        TcpListener::from_std(l)
                    })
                    .map(|l| {
                        tokio::spawn(serve_tcp(l, rx, stop.clone()));
                    }),
                Protocol::Udp => std::net::UdpSocket::bind(addr)
                    .and_then(|s| {
                        s.set_nonblocking(true)?;
                        UdpSocket::from_std(s)
                    })
                    .map(|s| {
                        tokio::spawn(serve_udp(Arc::new(s), rx, stop.clone()));
                    }),
                Protocol::Sctp => continue,
            };
            match started {
                Ok(()) => {
                    self.listeners.insert(key, Listener { target: tx, stop });
                }
                Err(e) => {
                    all_bound = false;
                    tracing::warn!(%addr, error = %e, "cannot serve a NodePort on loopback");
                }
            }
        }
        all_bound
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for l in self.listeners.values() {
            l.stop.cancel();
        }
    }
}

async fn serve_tcp(
    listener: TcpListener,
    target: watch::Receiver<RelayTarget>,
    stop: CancellationToken,
) {
    let chooser = Arc::new(Chooser::default());
    loop {
        let (mut conn, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "accepting on a loopback NodePort");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let order = chooser.order(&target.borrow(), client_v4(peer));
        let stop = stop.clone();
        tokio::spawn(async move {
            let _ = conn.set_nodelay(true);
            for ep in order {
                let Ok(Ok(mut up)) =
                    tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep)).await
                else {
                    continue;
                };
                let _ = up.set_nodelay(true);
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::io::copy_bidirectional(&mut conn, &mut up) => {}
                }
                return;
            }
        });
    }
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    target: watch::Receiver<RelayTarget>,
    stop: CancellationToken,
) {
    let chooser = Chooser::default();
    let sessions: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = tokio::select! {
            _ = stop.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(_) => continue,
            },
        };
        let existing = sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&peer)
            .cloned();
        let up = match existing {
            Some(up) => up,
            None => {
                let Some(ep) = chooser
                    .order(&target.borrow(), client_v4(peer))
                    .first()
                    .copied()
                else {
                    continue;
                };
                let Ok(up) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
                    continue;
                };
                if up.connect(ep).await.is_err() {
                    continue;
                }
                let up = Arc::new(up);
                sessions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(peer, up.clone());
                tokio::spawn(udp_replies(
                    up.clone(),
                    socket.clone(),
                    peer,
                    sessions.clone(),
                    stop.clone(),
                ));
                up
            }
        };
        let _ = up.send(&buf[..n]).await;
    }
}

/// Carries an endpoint's replies back to one client until it goes quiet.
async fn udp_replies(
    up: Arc<UdpSocket>,
    down: Arc<UdpSocket>,
    peer: SocketAddr,
    sessions: Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = tokio::time::timeout(UDP_IDLE, up.recv(&mut buf)) => match r {
                Ok(Ok(n)) => {
                    let _ = down.send_to(&buf[..n], peer).await;
                }
                _ => break,
            },
        }
    }
    sessions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&peer);
}

#[cfg(test)]
mod tests {
    use super::super::model::{Endpoint, ServiceKey, ServicePort};
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn input(node_port: u16, ep: SocketAddrV4) -> ServiceInput {
        ServiceInput {
            key: ServiceKey::new("default", "web"),
            ports: vec![ServicePort {
                name: String::new(),
                protocol: Protocol::Tcp,
                port: 80,
                cluster_ip: Ipv4Addr::new(10, 43, 0, 5),
                node_port: Some(node_port),
                external_ips: vec![],
                lb_ips: vec![],
                affinity: None,
                external_local: true,
                internal_local: false,
                endpoints: vec![Endpoint {
                    ip: *ep.ip(),
                    port: ep.port(),
                    ready: true,
                    serving: true,
                    terminating: false,
                    local: false,
                }],
            }],
        }
    }

    #[test]
    fn targets_use_cluster_endpoints_even_with_local_policy() {
        let ep = SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, 9), 8080);
        let t = targets([input(30080, ep)].iter());
        assert_eq!(t[&(Protocol::Tcp, 30080)].endpoints, vec![ep]);
        let mut none = input(30080, ep);
        none.ports[0].endpoints.clear();
        assert!(targets([none].iter()).is_empty());
    }

    #[test]
    fn affinity_keeps_a_client_on_its_endpoint() {
        let eps: Vec<SocketAddrV4> = (1..=8)
            .map(|i| SocketAddrV4::new(Ipv4Addr::new(10, 42, 0, i), 80))
            .collect();
        let t = RelayTarget {
            endpoints: eps,
            affinity: Some(Duration::from_secs(60)),
        };
        let c = Chooser::default();
        let first = c.order(&t, Ipv4Addr::LOCALHOST)[0];
        for _ in 0..20 {
            assert_eq!(c.order(&t, Ipv4Addr::LOCALHOST)[0], first);
        }
    }

    #[tokio::test]
    async fn relays_udp_both_ways_per_client() {
        let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let ep = match backend.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 64];
            while let Ok((n, peer)) = backend.recv_from(&mut buf).await {
                let mut reply = b"re:".to_vec();
                reply.extend_from_slice(&buf[..n]);
                let _ = backend.send_to(&reply, peer).await;
            }
        });
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut udp = input(port, ep);
        udp.ports[0].protocol = Protocol::Udp;
        let mut relay = Relay::new(CancellationToken::new());
        assert!(relay.update(targets([udp].iter())));
        for word in ["one", "two"] {
            let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            c.send_to(word.as_bytes(), ("127.0.0.1", port))
                .await
                .unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = tokio::time::timeout(Duration::from_secs(2), c.recv_from(&mut buf))
                .await
                .expect("a reply")
                .unwrap();
            assert_eq!(&buf[..n], format!("re:{word}").as_bytes());
            assert_eq!(from.port(), port, "replies come from the NodePort");
        }
    }

    #[tokio::test]
    async fn relays_tcp_from_loopback_to_the_endpoint_and_refuses_without_one() {
        // An "endpoint" on loopback: the relay only needs an address it can connect to.
        let backend = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = match backend.local_addr().unwrap() {
            SocketAddr::V4(a) => a,
            _ => unreachable!(),
        };
        tokio::spawn(async move {
            while let Ok((mut c, _)) = backend.accept().await {
                let _ = c.write_all(b"hello").await;
            }
        });
        // A free port for the "NodePort".
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut relay = Relay::new(CancellationToken::new());
        assert!(relay.update(targets([input(port, ep)].iter())));
        assert_eq!(relay.ports(), vec![(Protocol::Tcp, port)]);
        let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).await.unwrap();
        assert_eq!(got, "hello");

        assert!(relay.update(BTreeMap::new()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let err = TcpStream::connect(("127.0.0.1", port)).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    }
}
