//! Liveness, readiness and startup probes with upstream's timing (initialDelaySeconds,
//! periodSeconds, timeoutSeconds, successThreshold, failureThreshold) and handlers: httpGet,
//! tcpSocket and grpc from the node to the pod's address, and exec through the pod's shim
//! (handed in by the caller). It decides; the worker acts (marks ready, restarts).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// The future of an exec probe: Ok(exit code).
pub type ExecFuture = Pin<Box<dyn Future<Output = Result<i32, String>> + Send>>;

/// Runs an exec probe's command in the container; Ok(exit code).
pub type ExecFn<'a> = &'a mut (dyn FnMut(
    Vec<String>,
    Duration,
) -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send>>
             + Send);

#[derive(Debug, Default)]
struct State {
    successes: u32,
    failures: u32,
    last_run: Option<Instant>,
    /// The verdict after thresholds; None until decided.
    ok: Option<bool>,
    last_error: String,
}

/// What the probes say about one running container instance.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub started: bool,
    pub ready: bool,
    /// Set when the liveness or startup probe failed for good: restart with this message.
    pub kill: Option<String>,
    /// Probe failures to report as Unhealthy events.
    pub unhealthy: Vec<String>,
}

/// Probe state of a pod's containers, keyed by container instance id.
#[derive(Default)]
pub struct Prober {
    states: HashMap<(String, Kind), State>,
}

impl Prober {
    /// Forget instances that no longer run.
    pub fn retain(&mut self, live: &[String]) {
        self.states.retain(|(id, _), _| live.contains(id));
    }

    /// Run the probes of container `c` (instance `id`, running for `age`) that are due.
    pub async fn check(
        &mut self,
        c: &Container,
        id: &str,
        age: Duration,
        ip: IpAddr,
        exec: ExecFn<'_>,
    ) -> Verdict {
        let mut v = Verdict {
            started: true,
            ready: true,
            kill: None,
            unhealthy: Vec::new(),
        };
        if let Some(p) = &c.startup_probe {
            let st = self.step(c, id, Kind::Startup, p, age, ip, exec).await;
            v.unhealthy.extend(st.1);
            match st.0 {
                Some(true) => {}
                Some(false) => {
                    v.started = false;
                    v.ready = false;
                    v.kill = Some(format!(
                        "Container {} failed startup probe, will be restarted",
                        c.name
                    ));
                    return v;
                }
                None => {
                    v.started = false;
                    v.ready = false;
                    return v;
                }
            }
        }
        if let Some(p) = &c.liveness_probe {
            let st = self.step(c, id, Kind::Liveness, p, age, ip, exec).await;
            v.unhealthy.extend(st.1);
            if st.0 == Some(false) {
                v.kill = Some(format!(
                    "Container {} failed liveness probe, will be restarted",
                    c.name
                ));
            }
        }
        if let Some(p) = &c.readiness_probe {
            let st = self.step(c, id, Kind::Readiness, p, age, ip, exec).await;
            v.unhealthy.extend(st.1);
            v.ready = st.0 == Some(true);
        }
        v
    }

    #[allow(clippy::too_many_arguments)]
    async fn step(
        &mut self,
        c: &Container,
        id: &str,
        kind: Kind,
        p: &Probe,
        age: Duration,
        ip: IpAddr,
        exec: ExecFn<'_>,
    ) -> (Option<bool>, Vec<String>) {
        let period = Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64);
        let delay = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        let st = self.states.entry((id.to_string(), kind)).or_default();
        // Once started, a startup probe is done for this instance.
        if kind == Kind::Startup && st.ok == Some(true) {
            return (Some(true), Vec::new());
        }
        let due = age >= delay && st.last_run.is_none_or(|t| t.elapsed() >= period);
        if !due {
            // Readiness starts out false, liveness out fine, as upstream.
            let initial = match kind {
                Kind::Readiness | Kind::Startup => None,
                Kind::Liveness => Some(true),
            };
            return (st.ok.or(initial), Vec::new());
        }
        st.last_run = Some(Instant::now());
        let timeout = Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64);
        let result = run(p, c, ip, timeout, exec).await;
        let st = self.states.entry((id.to_string(), kind)).or_default();
        let mut unhealthy = Vec::new();
        match result {
            Ok(()) => {
                st.successes += 1;
                st.failures = 0;
                let need = if kind == Kind::Readiness {
                    p.success_threshold.unwrap_or(1).max(1) as u32
                } else {
                    1
                };
                if st.successes >= need {
                    st.ok = Some(true);
                }
            }
            Err(e) => {
                st.failures += 1;
                st.successes = 0;
                st.last_error = e.clone();
                unhealthy.push(format!("{} probe failed: {e}", kind.name()));
                if st.failures >= p.failure_threshold.unwrap_or(3).max(1) as u32 {
                    st.ok = Some(false);
                    // Start counting afresh for the next instance's verdict.
                    st.failures = 0;
                }
            }
        }
        let initial = if kind == Kind::Liveness {
            Some(true)
        } else {
            None
        };
        (st.ok.or(initial), unhealthy)
    }
}

pub(crate) fn port_of(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .or_else(|| name.parse().ok())
            .ok_or_else(|| format!("port {name:?} is not a port of container {}", c.name)),
    }
}

/// Run one probe once.
pub async fn run(
    p: &Probe,
    c: &Container,
    ip: IpAddr,
    timeout: Duration,
    exec: ExecFn<'_>,
) -> Result<(), String> {
    if let Some(h) = &p.http_get {
        let host: IpAddr = h.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(ip);
        let addr = SocketAddr::new(host, port_of(&h.port, c)?);
        let path = h
            .path
            .clone()
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into());
        let https = h.scheme.as_deref() == Some("HTTPS");
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        return tokio::time::timeout(timeout, http_get(addr, &path, https, &headers))
            .await
            .map_err(|_| {
                format!(
                    "Get \"{}://{addr}{path}\": context deadline exceeded",
                    if https { "https" } else { "http" }
                )
            })?;
    }
    if let Some(t) = &p.tcp_socket {
        let host: IpAddr = t.host.as_deref().and_then(|h| h.parse().ok()).unwrap_or(ip);
        let addr = SocketAddr::new(host, port_of(&t.port, c)?);
        return match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
        };
    }
    if let Some(g) = &p.grpc {
        let addr = SocketAddr::new(
            ip,
            u16::try_from(g.port).map_err(|_| "invalid port".to_string())?,
        );
        return tokio::time::timeout(
            timeout,
            grpc_health(addr, g.service.as_deref().unwrap_or("")),
        )
        .await
        .map_err(|_| format!("timeout: health rpc did not complete within {timeout:?}"))?;
    }
    if let Some(e) = &p.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return match exec(cmd, timeout).await {
            Ok(0) => Ok(()),
            Ok(code) => Err(format!("command exited with {code}")),
            Err(e) => Err(e),
        };
    }
    Err("the probe has no handler".into())
}

async fn http_get(
    addr: SocketAddr,
    path: &str,
    https: bool,
    headers: &[(String, String)],
) -> Result<(), String> {
    let status = get(addr, path, https, headers, "kube-probe/1.33").await?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}

/// One GET from the node, certificates unverified as upstream's probes and hooks do; the
/// response status, or the transport error in Go's words (`Get "<url>": ...`).
pub(crate) async fn get(
    addr: SocketAddr,
    path: &str,
    https: bool,
    headers: &[(String, String)],
    user_agent: &str,
) -> Result<u16, String> {
    let url = format!("{}://{addr}{path}", if https { "https" } else { "http" });
    let fail = |e: String| format!("Get \"{url}\": {e}");
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut req = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(http::header::USER_AGENT, user_agent);
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| fail(e.to_string()))?;
    let status = if https {
        // Upstream does not verify probe certificates either.
        let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(std::sync::Arc::new(NoVerify))
        .with_no_client_auth();
        let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(cfg))
            .connect(
                rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
                tcp,
            )
            .await
            .map_err(|e| fail(e.to_string()))?;
        send(TokioIo::new(tls), req).await.map_err(fail)?
    } else {
        send(TokioIo::new(tcp), req).await.map_err(fail)?
    };
    Ok(status)
}

async fn send<T>(io: TokioIo<T>, req: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    Ok(resp.status().as_u16())
}

/// grpc.health.v1.Health/Check over plain HTTP/2: SERVING is success.
async fn grpc_health(addr: SocketAddr, service: &str) -> Result<(), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("failed to connect service {addr}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // HealthCheckRequest { service = 1 }, in a gRPC length-prefixed frame.
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        msg.push(service.len() as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    frame.extend_from_slice(&msg);
    let req = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from(frame)))
        .map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let grpc_status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("0")
        .to_string();
    if grpc_status != "0" {
        return Err(format!("rpc error: code = {grpc_status}"));
    }
    let body = collected.to_bytes();
    // HealthCheckResponse { status = 1 (enum) }; SERVING is 1.
    let status = body
        .get(5..)
        .and_then(|m| {
            (m.first() == Some(&0x08))
                .then(|| m.get(1).copied())
                .flatten()
        })
        .unwrap_or(0);
    if status == 1 {
        Ok(())
    } else {
        Err(format!("service unhealthy (responded with {status})"))
    }
}

#[derive(Debug)]
struct NoVerify;

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(probe: serde_json::Value) -> Container {
        serde_json::from_value(serde_json::json!({
            "name": "c", "ports": [{"name": "http", "containerPort": 0}],
            "readinessProbe": probe
        }))
        .unwrap()
    }

    fn no_exec() -> impl FnMut(Vec<String>, Duration) -> ExecFuture + Send {
        |_, _| Box::pin(async { Err("no exec".to_string()) })
    }

    #[tokio::test]
    async fn http_and_tcp_probes_against_a_real_listener() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]);
                    let code = if req.starts_with("GET /ok ") {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let _ = s
                        .write_all(
                            format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes(),
                        )
                        .await;
                });
            }
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut exec = no_exec();
        let ok = container(serde_json::json!({"httpGet": {"path": "/ok", "port": port}}));
        let p = ok.readiness_probe.clone().unwrap();
        assert!(run(&p, &ok, ip, Duration::from_secs(1), &mut exec)
            .await
            .is_ok());
        let bad = container(serde_json::json!({"httpGet": {"path": "/bad", "port": port}}));
        let p = bad.readiness_probe.clone().unwrap();
        let e = run(&p, &bad, ip, Duration::from_secs(1), &mut exec)
            .await
            .unwrap_err();
        assert_eq!(e, "HTTP probe failed with statuscode: 503");
        let tcp = container(serde_json::json!({"tcpSocket": {"port": port}}));
        let p = tcp.readiness_probe.clone().unwrap();
        assert!(run(&p, &tcp, ip, Duration::from_secs(1), &mut exec)
            .await
            .is_ok());
        let closed = container(serde_json::json!({"tcpSocket": {"port": 1}}));
        let p = closed.readiness_probe.clone().unwrap();
        assert!(run(&p, &closed, ip, Duration::from_secs(1), &mut exec)
            .await
            .is_err());
        let named = container(serde_json::json!({"tcpSocket": {"port": "nope"}}));
        let p = named.readiness_probe.clone().unwrap();
        let e = run(&p, &named, ip, Duration::from_secs(1), &mut exec)
            .await
            .unwrap_err();
        assert!(e.contains("is not a port of container c"), "{e}");
    }

    #[tokio::test]
    async fn thresholds_decide_readiness_and_liveness() {
        let c: Container = serde_json::from_value(serde_json::json!({
            "name": "c",
            "livenessProbe": {"exec": {"command": ["x"]}, "periodSeconds": 1, "failureThreshold": 2},
            "readinessProbe": {"exec": {"command": ["x"]}, "periodSeconds": 1, "successThreshold": 1}
        }))
        .unwrap();
        let code = std::sync::Arc::new(std::sync::atomic::AtomicI32::new(1));
        let c2 = code.clone();
        let mut exec = move |_: Vec<String>,
                             _: Duration|
              -> Pin<Box<dyn Future<Output = Result<i32, String>> + Send>> {
            let v = c2.load(std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move { Ok(v) })
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let mut p = Prober::default();
        let v = p
            .check(&c, "id1", Duration::from_secs(5), ip, &mut exec)
            .await;
        assert!(!v.ready && v.kill.is_none() && v.unhealthy.len() == 2);
        p.states.values_mut().for_each(|s| s.last_run = None);
        let v = p
            .check(&c, "id1", Duration::from_secs(6), ip, &mut exec)
            .await;
        assert!(
            v.kill.is_some(),
            "two liveness failures should restart: {v:?}"
        );
        code.store(0, std::sync::atomic::Ordering::SeqCst);
        p.states.values_mut().for_each(|s| s.last_run = None);
        let v = p
            .check(&c, "id1", Duration::from_secs(7), ip, &mut exec)
            .await;
        assert!(v.ready && v.kill.is_none());
    }
}
