//! A minimal HTTP/1.1 client for registries on hyper 1 and tokio-rustls (ring): one
//! connection per request, plain HTTP for `http://` endpoints, and per-host TLS from
//! `registries.yaml` (extra CA, client certificate, skip-verify). Written on the stack k1s
//! already links instead of reqwest because registries.yaml needs per-endpoint TLS identities
//! and roots that a shared client cannot express. It knows nothing about the distribution
//! protocol and never follows redirects itself (the caller drops credentials across hosts).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use super::error::RegistryError;
use super::registries::TlsConfig;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A registry that makes no progress for this long (no response headers, no body data) is
/// treated as gone: kubelet's `--image-pull-progress-deadline` default. Never a bound on a
/// whole pull, which would fail big layers on slow links.
pub const PROGRESS_DEADLINE: Duration = Duration::from_secs(60);

pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Incoming,
    /// The client's progress deadline, for reading the body.
    progress: Duration,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Read the whole body, refusing more than `limit` bytes.
    pub async fn bytes(mut self, limit: u64) -> Result<Bytes, RegistryError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(RegistryError::Protocol(format!(
                    "response body larger than {limit} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }

    /// The next data chunk of the body, `None` at the end; a registry that sends nothing
    /// for the progress deadline fails it.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, RegistryError> {
        next_chunk(&mut self.body, self.progress).await
    }
}

async fn next_chunk(
    body: &mut Incoming,
    progress: Duration,
) -> Result<Option<Bytes>, RegistryError> {
    loop {
        let frame = tokio::time::timeout(progress, body.frame())
            .await
            .map_err(|_| {
                RegistryError::Timeout(format!(
                    "no data from the registry for {} (image pull progress deadline)",
                    secs(progress)
                ))
            })?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(RegistryError::Http(e.to_string())),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

pub struct HttpClient {
    /// TLS configs by endpoint host and settings; building one reads the system roots and
    /// key files.
    tls: Mutex<HashMap<String, Arc<rustls::ClientConfig>>>,
    /// How long a registry may make no progress before the request fails.
    progress: Duration,
}

impl Default for HttpClient {
    fn default() -> Self {
        Self::with_progress_deadline(PROGRESS_DEADLINE)
    }
}

impl HttpClient {
    pub fn with_progress_deadline(progress: Duration) -> Self {
        HttpClient {
            tls: Mutex::default(),
            progress,
        }
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, String)],
        body: Option<Bytes>,
        tls: Option<&TlsConfig>,
    ) -> Result<Response, RegistryError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| RegistryError::Protocol(format!("invalid url {url:?}: {e}")))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(RegistryError::Protocol(format!("unsupported url {url:?}"))),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| RegistryError::Protocol(format!("url without host {url:?}")))?
            .clone();
        let host = authority.host().to_string();
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let addr = format!("{}:{}", host, port);
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&addr))
            .await
            .map_err(|_| RegistryError::Timeout(format!("connecting to {addr}")))?
            .map_err(|e| RegistryError::Connect(format!("{addr}: {e}")))?;
        let _ = tcp.set_nodelay(true);

        let path = uri
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into());
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", authority.as_str())
            .header("user-agent", "k1s");
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(Full::new(body.unwrap_or_default()))
            .map_err(|e| RegistryError::Protocol(e.to_string()))?;

        let resp = if https {
            let config = self.tls_config(authority.as_str(), tls)?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| RegistryError::Tls(format!("server name {host:?}: {e}")))?;
            let stream = tokio::time::timeout(
                CONNECT_TIMEOUT,
                tokio_rustls::TlsConnector::from(config).connect(name, tcp),
            )
            .await
            .map_err(|_| RegistryError::Timeout(format!("tls handshake with {addr}")))?
            .map_err(|e| RegistryError::Tls(format!("{addr}: {e}")))?;
            exchange(TokioIo::new(stream), req, self.progress).await?
        } else {
            exchange(TokioIo::new(tcp), req, self.progress).await?
        };
        let (parts, body) = resp.into_parts();
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
            progress: self.progress,
        })
    }

    fn tls_config(
        &self,
        host: &str,
        tls: Option<&TlsConfig>,
    ) -> Result<Arc<rustls::ClientConfig>, RegistryError> {
        // Keyed by settings too: a redirect target may be reached with and without them.
        let key = format!("{host}|{tls:?}");
        let mut cache = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cache.get(&key) {
            return Ok(c.clone());
        }
        let config = Arc::new(build_tls(tls.cloned().unwrap_or_default())?);
        cache.insert(key, config.clone());
        Ok(config)
    }
}

async fn exchange<I>(
    io: I,
    req: Request<Full<Bytes>>,
    progress: Duration,
) -> Result<http::Response<Incoming>, RegistryError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| RegistryError::Http(e.to_string()))?;
    // The connection task ends when the response body is dropped or fully read.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    tokio::time::timeout(progress, sender.send_request(req))
        .await
        .map_err(|_| {
            RegistryError::Timeout(format!(
                "no response headers from the registry within {} (image pull progress deadline)",
                secs(progress)
            ))
        })?
        .map_err(|e| RegistryError::Http(e.to_string()))
}

/// A deadline as a user wrote it: whole seconds, or milliseconds below a second.
fn secs(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn build_tls(tls: TlsConfig) -> Result<rustls::ClientConfig, RegistryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Tls(e.to_string()))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped: a registry with its own ca_file must
        // still work on a node with a broken system bundle.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(ca) = &tls.ca_file {
            let certs = read_certs(ca)?;
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| RegistryError::Tls(format!("ca_file {}: {e}", ca.display())))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert)?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| RegistryError::Tls(format!("key_file {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| RegistryError::Tls(format!("client certificate: {e}")))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| RegistryError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(RegistryError::Tls(format!(
            "{}: no PEM certificates",
            path.display()
        )));
    }
    Ok(certs)
}

/// `insecure_skip_verify: true`: accept any server certificate, but still check handshake
/// signatures so the session keys are bound to the presented key.
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
