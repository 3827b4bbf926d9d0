//! rustls configurations built from the cluster PKI, and the webpki checks
//! used to decide whether stored leaf certificates are still good.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::{Pki, PkiError};

/// ALPN protocols the API server offers, preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// An explicit ring provider, so nothing depends on a process-wide default
/// having been installed.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca_der: &CertificateDer<'static>) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca_der.clone()).map_err(|source| PkiError::Tls {
        what: "root store from the cluster ca",
        source,
    })?;
    Ok(Arc::new(roots))
}

/// Decode a PEM certificate and key held in memory (already validated on
/// load, so failures here mean a bug or memory corruption, reported anyway).
fn cert_and_key(
    cert_pem: &str,
    key_pem: &str,
    what: &'static str,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), PkiError> {
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| PkiError::Tls {
        what,
        source: rustls::Error::General(format!("certificate pem: {e}")),
    })?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| PkiError::Tls {
        what,
        source: rustls::Error::General(format!("private key pem: {e}")),
    })?;
    Ok((cert, key))
}

impl Pki {
    /// Server configuration for the API server: presents the serving
    /// certificate, offers h2 and HTTP/1.1, and asks for — but does not
    /// require — a client certificate verified against the cluster CA.
    /// Anonymous clients complete the handshake so the HTTP layer can
    /// answer them with 401 instead of a TLS alert.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, PkiError> {
        const WHAT: &str = "server config";
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            roots(&self.ca.cert_der)?,
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()?;
        let (cert, key) = cert_and_key(&self.serving_cert_pem, &self.serving_key_pem, WHAT)?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| PkiError::Tls { what: WHAT, source })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .map_err(|source| PkiError::Tls { what: WHAT, source })?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// Client configuration trusting only the cluster CA and presenting the
    /// admin certificate. No ALPN is set, so the server falls back to
    /// protocol detection; clone the config and set `alpn_protocols` to
    /// force one.
    pub fn admin_client_config(&self) -> Result<Arc<ClientConfig>, PkiError> {
        const WHAT: &str = "admin client config";
        let (cert, key) = cert_and_key(&self.admin_cert_pem, &self.admin_key_pem, WHAT)?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| PkiError::Tls { what: WHAT, source })?
            .with_root_certificates(roots(&self.ca.cert_der)?)
            .with_client_auth_cert(vec![cert], key)
            .map_err(|source| PkiError::Tls { what: WHAT, source })?;
        Ok(Arc::new(config))
    }
}

impl Pki {
    /// Server configuration for a node agent: presents `cert_pem`, and requires a client
    /// certificate signed by the cluster CA (the API server's kubelet client).
    pub fn node_server_config(
        &self,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<ServerConfig>, PkiError> {
        const WHAT: &str = "node server config";
        let provider = provider();
        let verifier = WebPkiClientVerifier::builder_with_provider(
            roots(&self.ca.cert_der)?,
            provider.clone(),
        )
        .build()?;
        let (cert, key) = cert_and_key(cert_pem, key_pem, WHAT)?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| PkiError::Tls { what: WHAT, source })?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .map_err(|source| PkiError::Tls { what: WHAT, source })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Client configuration trusting the cluster CA and presenting `cert_pem` (the API
    /// server's certificate for talking to node agents).
    pub fn client_config(
        &self,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<ClientConfig>, PkiError> {
        const WHAT: &str = "client config";
        let (cert, key) = cert_and_key(cert_pem, key_pem, WHAT)?;
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|source| PkiError::Tls { what: WHAT, source })?
            .with_root_certificates(roots(&self.ca.cert_der)?)
            .with_client_auth_cert(vec![cert], key)
            .map_err(|source| PkiError::Tls { what: WHAT, source })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Check with webpki that `leaf` chains to the CA, is currently valid and is
/// usable as a TLS server certificate for 127.0.0.1 (always among the
/// serving certificate's names). Returns the reason on failure.
pub(crate) fn check_serving_leaf(
    ca_der: &CertificateDer<'static>,
    leaf: &CertificateDer<'static>,
) -> Result<(), String> {
    let verifier = WebPkiServerVerifier::builder_with_provider(
        roots(ca_der).map_err(|e| e.to_string())?,
        provider(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST).into());
    verifier
        .verify_server_cert(leaf, &[], &name, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Check with webpki that `leaf` chains to the CA, is currently valid and is
/// usable as a TLS client certificate. Returns the reason on failure.
pub(crate) fn check_client_leaf(
    ca_der: &CertificateDer<'static>,
    leaf: &CertificateDer<'static>,
) -> Result<(), String> {
    let verifier = WebPkiClientVerifier::builder_with_provider(
        roots(ca_der).map_err(|e| e.to_string())?,
        provider(),
    )
    .build()
    .map_err(|e| e.to_string())?;
    verifier
        .verify_client_cert(leaf, &[], UnixTime::now())
        .map(|_| ())
        .map_err(|e| e.to_string())
}
