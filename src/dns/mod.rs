//! Cluster DNS, served by every node's agent in place of a CoreDNS pod: the records of the
//! Kubernetes DNS specification for the cluster domain (answered from a snapshot of Services,
//! EndpointSlices and Namespaces kept by reflectors), PTR records for cluster addresses, and
//! everything else forwarded to the host's resolvers through a cache. The wire format is
//! hickory-proto's; the socket loops, the zone logic and the forwarder are ours because
//! hickory's server and resolver crates bring a runtime shape and weight we do not need.
//! Sockets are bound by the caller, so tests use port 0. It reads the cluster only through
//! `kube::Client` and never writes to it.

mod cache;
pub mod cluster;
mod forward;
pub mod handler;
pub mod serve;
pub mod snapshot;
mod watch;

pub use forward::nameservers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cluster domain: {0}")]
    Domain(String),
    #[error("reading the upstream resolvers from {path}: {source}")]
    ResolvConf {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the dns socket's address: {0}")]
    Socket(std::io::Error),
}

/// What the server answers and how.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// The cluster domain (`cluster.local`).
    pub domain: String,
    /// Where the upstream nameservers are read from.
    pub resolv_conf: PathBuf,
    /// Upstreams to use instead of those of `resolv_conf` (tests give a port).
    pub upstreams: Vec<SocketAddr>,
    /// Addresses this server is reached at besides its sockets' own (the cluster DNS
    /// Service IP): never used as upstreams.
    pub own_addresses: Vec<SocketAddr>,
    /// TTL of cluster records and of the zone's negative answers (CoreDNS: 5 s).
    pub ttl: u32,
    /// How long one upstream gets to answer.
    pub upstream_timeout: Duration,
    /// Entries in the upstream answer cache, and the longest any is kept.
    pub cache_entries: usize,
    pub cache_max_ttl: Duration,
    /// Upstream lookups in flight for UDP clients.
    pub max_forwards: usize,
    pub max_tcp_connections: usize,
    pub tcp_idle_timeout: Duration,
}

impl DnsConfig {
    pub fn new(domain: &str) -> Self {
        DnsConfig {
            domain: domain.to_string(),
            resolv_conf: "/etc/resolv.conf".into(),
            upstreams: Vec::new(),
            own_addresses: Vec::new(),
            ttl: 5,
            upstream_timeout: Duration::from_secs(2),
            cache_entries: 10_000,
            cache_max_ttl: Duration::from_secs(30),
            max_forwards: 1024,
            max_tcp_connections: 256,
            tcp_idle_timeout: Duration::from_secs(10),
        }
    }
}

/// Bind the UDP socket and TCP listener of `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, TcpListener)> {
    let udp = UdpSocket::bind(addr).await?;
    let tcp = TcpListener::bind(addr).await?;
    Ok((udp, tcp))
}

/// Serve cluster DNS on the given sockets until cancelled.
pub async fn run(
    client: kube::Client,
    config: DnsConfig,
    udp: UdpSocket,
    tcp: TcpListener,
    cancel: CancellationToken,
) -> Result<(), DnsError> {
    let local = udp.local_addr().map_err(DnsError::Socket)?;
    let zone = cluster::Zone::new(&config.domain, config.ttl, vec![local.ip()])
        .map_err(DnsError::Domain)?;
    let follow_resolv_conf = config.upstreams.is_empty();
    let upstreams = if follow_resolv_conf {
        match std::fs::read_to_string(&config.resolv_conf) {
            Ok(text) => nameservers(&text),
            Err(source) => {
                let e = DnsError::ResolvConf {
                    path: config.resolv_conf.clone(),
                    source,
                };
                tracing::warn!(error = %e, "cluster dns starts without upstreams; it reads the file again every {}s", RESOLV_CONF_CHECK.as_secs());
                Vec::new()
            }
        }
    } else {
        config.upstreams.clone()
    };
    let mut own = config.own_addresses.clone();
    own.push(local);
    own.push(tcp.local_addr().map_err(DnsError::Socket)?);
    let upstreams_at_start = upstreams.clone();
    let forwarder = forward::Forwarder::new(
        upstreams,
        &own,
        config.upstream_timeout,
        cache::Cache::new(config.cache_entries, config.cache_max_ttl),
    );
    if forwarder.upstreams().is_empty() && follow_resolv_conf {
        tracing::warn!(resolv_conf = %config.resolv_conf.display(), "cluster dns has no upstream nameserver: names outside the cluster will fail");
    }
    tracing::info!(%local, domain = %zone.domain, upstreams = ?forwarder.upstreams(), "cluster dns serving");

    let (tx, rx) = tokio::sync::watch::channel(Arc::new(snapshot::Snapshot::default()));
    let handler = Arc::new(handler::Handler::new(rx, zone, forwarder));
    let limits = serve::TcpLimits {
        max_connections: config.max_tcp_connections,
        idle_timeout: config.tcp_idle_timeout,
    };
    // Separate tasks, so a busy UDP socket never polls the watches or the TCP listener.
    let watcher = tokio::spawn(watch::run(client, tx, cancel.clone()));
    if follow_resolv_conf {
        tokio::spawn(follow_upstreams(
            handler.clone(),
            config.resolv_conf.clone(),
            upstreams_at_start,
            cancel.clone(),
        ));
    }
    let tcp = tokio::spawn(serve::tcp(handler.clone(), tcp, limits, cancel.clone()));
    serve::udp(handler, Arc::new(udp), config.max_forwards, cancel).await;
    let _ = tokio::join!(watcher, tcp);
    Ok(())
}

/// How often the resolv.conf is read again for changed upstreams (a DHCP lease, a VPN).
const RESOLV_CONF_CHECK: Duration = Duration::from_secs(5);

/// Keeps the forwarder's upstreams those of `path`, read every `RESOLV_CONF_CHECK`. A file
/// that is missing or unreadable for a moment keeps the last upstreams.
async fn follow_upstreams(
    handler: Arc<handler::Handler>,
    path: PathBuf,
    mut last: Vec<SocketAddr>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(RESOLV_CONF_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        let now = nameservers(&text);
        if now != last {
            tracing::info!(resolv_conf = %path.display(), upstreams = ?now, "cluster dns upstreams changed");
            handler.forwarder().set_upstreams(now.clone());
            last = now;
        }
    }
}
