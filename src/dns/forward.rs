//! Forwarding of names outside the cluster to the host's upstream resolvers (the nameservers
//! of its resolv.conf, as CoreDNS's `forward . /etc/resolv.conf`), through the answer cache:
//! UDP from a fresh random port with a random ID, TCP again when the answer comes back
//! truncated, the next upstream on a timeout or error, and an error (SERVFAIL to the client)
//! when none answers. It never forwards to this server's own address, and it never answers
//! from anything but an upstream's reply or the cache.

use super::cache::{Answer, Cache};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The EDNS payload size asked of upstreams (the DNS flag day 2020 value).
const UPSTREAM_PAYLOAD: u16 = 1232;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream nameserver configured")]
    NoUpstreams,
    #[error("upstream {upstream} did not answer within {timeout:?}")]
    Timeout {
        upstream: SocketAddr,
        timeout: Duration,
    },
    #[error("upstream {upstream}: {source}")]
    Io {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {upstream} sent a malformed answer: {reason}")]
    Malformed {
        upstream: SocketAddr,
        reason: String,
    },
    #[error("encoding the query for {name}: {reason}")]
    Encode { name: String, reason: String },
}

/// The nameservers of a resolv.conf, on port 53.
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // a zone index (`fe80::1%eth0`) cannot be used by a socket address; drop it
            let addr = words.next()?.split('%').next()?;
            addr.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

pub struct Forwarder {
    /// Replaced whole when the resolv.conf changes; a query uses the list it started with.
    upstreams: RwLock<Arc<Vec<SocketAddr>>>,
    own: Vec<SocketAddr>,
    timeout: Duration,
    next: AtomicUsize,
    pub cache: Cache,
}

impl Forwarder {
    /// `own` are the addresses this server answers on: never forwarded to, so a host whose
    /// resolv.conf names the node itself cannot make a query loop.
    pub fn new(
        upstreams: Vec<SocketAddr>,
        own: &[SocketAddr],
        timeout: Duration,
        cache: Cache,
    ) -> Self {
        let f = Forwarder {
            upstreams: RwLock::new(Arc::new(Vec::new())),
            own: own.to_vec(),
            timeout,
            next: AtomicUsize::new(0),
            cache,
        };
        f.set_upstreams(upstreams);
        f
    }

    pub fn upstreams(&self) -> Arc<Vec<SocketAddr>> {
        self.upstreams
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Use these upstreams from now on (this server's own addresses are left out).
    pub fn set_upstreams(&self, upstreams: Vec<SocketAddr>) {
        let own = &self.own;
        let upstreams: Vec<SocketAddr> = upstreams
            .into_iter()
            .filter(|u| {
                !own.iter()
                    .any(|o| o.port() == u.port() && (o.ip() == u.ip() || o.ip().is_unspecified()))
            })
            .collect();
        *self.upstreams.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(upstreams);
    }

    /// Resolve `name` upstream (or from the cache). `lower` is its lowercase text, the cache
    /// key.
    pub async fn resolve(
        &self,
        name: &Name,
        lower: &str,
        qtype: RecordType,
    ) -> Result<Answer, ForwardError> {
        if let Some(hit) = self.cache.get(lower, qtype) {
            return Ok(hit);
        }
        let upstreams = self.upstreams();
        if upstreams.is_empty() {
            return Err(ForwardError::NoUpstreams);
        }
        let id: u16 = rand::random();
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(name.clone(), qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(UPSTREAM_PAYLOAD);
        query.set_edns(edns);
        let bytes = query.to_vec().map_err(|e| ForwardError::Encode {
            name: lower.to_string(),
            reason: e.to_string(),
        })?;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for i in 0..upstreams.len() {
            let upstream = upstreams[(start + i) % upstreams.len()];
            match self.exchange(upstream, &bytes, id, name, qtype).await {
                Ok(msg) => {
                    let answer = Answer {
                        rcode: msg.metadata.response_code,
                        answers: msg.answers,
                        authorities: msg.authorities,
                        additionals: msg.additionals,
                    };
                    self.cache.insert(lower, qtype, &answer);
                    return Ok(answer);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "dns forward");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(ForwardError::NoUpstreams))
    }

    async fn exchange(
        &self,
        upstream: SocketAddr,
        query: &[u8],
        id: u16,
        name: &Name,
        qtype: RecordType,
    ) -> Result<Message, ForwardError> {
        let timeout = self.timeout;
        let timed_out = || ForwardError::Timeout { upstream, timeout };
        let msg = tokio::time::timeout(timeout, udp_exchange(upstream, query, id, name, qtype))
            .await
            .map_err(|_| timed_out())??;
        if !msg.metadata.truncation {
            return Ok(msg);
        }
        tokio::time::timeout(timeout, tcp_exchange(upstream, query, id, name, qtype))
            .await
            .map_err(|_| timed_out())?
    }
}

/// Whether `msg` answers our query (a spoofed or late reply does not).
fn check(
    upstream: SocketAddr,
    msg: Message,
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Result<Message, ForwardError> {
    let ok = msg.metadata.id == id
        && msg.metadata.message_type == MessageType::Response
        && msg
            .queries
            .first()
            .is_some_and(|q| q.query_type() == qtype && q.name().eq_ignore_root(name));
    if ok {
        Ok(msg)
    } else {
        Err(ForwardError::Malformed {
            upstream,
            reason: "the answer does not match the question".into(),
        })
    }
}

async fn udp_exchange(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Result<Message, ForwardError> {
    let io = |source| ForwardError::Io { upstream, source };
    let local: SocketAddr = match upstream {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = UdpSocket::bind(local).await.map_err(io)?;
    sock.connect(upstream).await.map_err(io)?;
    sock.send(query).await.map_err(io)?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = sock.recv(&mut buf).await.map_err(io)?;
        // Anything that is not our answer is ignored: the real one may still come.
        let Ok(msg) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if let Ok(msg) = check(upstream, msg, id, name, qtype) {
            return Ok(msg);
        }
    }
}

async fn tcp_exchange(
    upstream: SocketAddr,
    query: &[u8],
    id: u16,
    name: &Name,
    qtype: RecordType,
) -> Result<Message, ForwardError> {
    let io = |source| ForwardError::Io { upstream, source };
    let mut stream = TcpStream::connect(upstream).await.map_err(io)?;
    let len = u16::try_from(query.len()).map_err(|_| ForwardError::Encode {
        name: name.to_ascii(),
        reason: "query longer than 65535 bytes".into(),
    })?;
    let mut framed = Vec::with_capacity(query.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await.map_err(io)?;
    let len = stream.read_u16().await.map_err(io)?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.map_err(io)?;
    let msg = Message::from_vec(&buf).map_err(|e| ForwardError::Malformed {
        upstream,
        reason: e.to_string(),
    })?;
    check(upstream, msg, id, name, qtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_resolv_conf() {
        let text = "# comment\nsearch lan\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\n\
                    nameserver bogus\noptions ndots:2\nnameserver 2001:db8::53\n";
        let ns = nameservers(text);
        assert_eq!(
            ns,
            vec![
                "192.0.2.1:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap(),
                "[2001:db8::53]:53".parse().unwrap(),
            ]
        );
    }

    #[test]
    fn never_forwards_to_itself() {
        let own: SocketAddr = "192.0.2.10:53".parse().unwrap();
        let f = Forwarder::new(
            vec![own, "192.0.2.1:53".parse().unwrap()],
            &[own],
            Duration::from_secs(1),
            Cache::new(1, Duration::from_secs(1)),
        );
        assert_eq!(*f.upstreams(), ["192.0.2.1:53".parse().unwrap()]);
        f.set_upstreams(vec!["192.0.2.2:53".parse().unwrap(), own]);
        assert_eq!(*f.upstreams(), ["192.0.2.2:53".parse().unwrap()]);
    }
}
