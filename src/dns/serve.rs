//! The socket loops: UDP (answered inline when no upstream is needed, a bounded number of
//! upstream lookups in flight) and TCP (two-byte length prefix, several queries per
//! connection answered in order, an idle timeout, a bound on open connections). They own no
//! DNS logic, which is the handler's, and they never stop serving because of one bad packet
//! or one slow client.

use super::handler::{Handler, Step, Transport};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Serve UDP until cancelled.
pub async fn udp(
    handler: Arc<Handler>,
    sock: Arc<UdpSocket>,
    max_forwards: usize,
    cancel: CancellationToken,
) {
    let forwards = Arc::new(Semaphore::new(max_forwards.max(1)));
    let serve = async {
        let mut buf = vec![0u8; 65535];
        loop {
            let (n, peer) = match sock.recv_from(&mut buf).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(error = %e, "dns udp receive");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                }
            };
            match handler.handle(&buf[..n], Transport::Udp) {
                Step::Reply(bytes) => send(&sock, &bytes, peer).await,
                Step::Forward(pending) => {
                    // Past the bound the query is dropped: the client retries, as it would
                    // if the packet had been lost, instead of memory growing without limit.
                    let Ok(permit) = forwards.clone().try_acquire_owned() else {
                        continue;
                    };
                    let (handler, sock) = (handler.clone(), sock.clone());
                    tokio::spawn(async move {
                        let bytes = handler.forward(*pending).await;
                        send(&sock, &bytes, peer).await;
                        drop(permit);
                    });
                }
                Step::Drop => {}
            }
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = serve => {}
    }
}

async fn send(sock: &UdpSocket, bytes: &[u8], peer: std::net::SocketAddr) {
    // The socket is almost always writable: try without a wakeup first.
    match sock.try_send_to(bytes, peer) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            if let Err(e) = sock.send_to(bytes, peer).await {
                tracing::debug!(error = %e, %peer, "dns udp send");
            }
        }
        Err(e) => tracing::debug!(error = %e, %peer, "dns udp send"),
    }
}

/// TCP limits.
#[derive(Debug, Clone, Copy)]
pub struct TcpLimits {
    pub max_connections: usize,
    pub idle_timeout: Duration,
}

/// Serve TCP until cancelled.
pub async fn tcp(
    handler: Arc<Handler>,
    listener: TcpListener,
    limits: TcpLimits,
    cancel: CancellationToken,
) {
    let conns = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // out of descriptors and the like: do not spin
                tracing::debug!(error = %e, "dns tcp accept");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Ok(permit) = conns.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "dns tcp connection refused: too many open");
            continue;
        };
        let (handler, cancel) = (handler.clone(), cancel.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = connection(&handler, stream, limits.idle_timeout) => {}
            }
            drop(permit);
        });
    }
}

/// Answer the queries of one connection in order until it closes, idles or misbehaves.
async fn connection(handler: &Handler, mut stream: TcpStream, idle: Duration) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    loop {
        let len = match tokio::time::timeout(idle, stream.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            _ => return,
        };
        buf.resize(len, 0);
        match tokio::time::timeout(idle, stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        let bytes = match handler.handle(&buf, Transport::Tcp) {
            Step::Reply(bytes) => bytes,
            Step::Forward(pending) => handler.forward(*pending).await,
            Step::Drop => return,
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            return;
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        match tokio::time::timeout(idle, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}
