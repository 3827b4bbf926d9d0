//! Real TLS handshakes over loopback against `Pki::server_config`.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::tests::config;
use super::*;

/// What the server saw of one connection.
struct ServerSide {
    handshake: Result<(), String>,
    peer_certs: Option<Vec<CertificateDer<'static>>>,
    alpn: Option<Vec<u8>>,
}

/// Accept one connection, complete the handshake, echo one byte back.
async fn serve_once(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> ServerSide {
    let (tcp, _) = listener.accept().await.expect("accept");
    match TlsAcceptor::from(config).accept(tcp).await {
        Ok(mut tls) => {
            let (_, conn) = tls.get_ref();
            let peer_certs = conn.peer_certificates().map(|c| c.to_vec());
            let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
            let mut byte = [0u8; 1];
            if tls.read_exact(&mut byte).await.is_ok() {
                let _ = tls.write_all(&byte).await;
                let _ = tls.shutdown().await;
            }
            ServerSide {
                handshake: Ok(()),
                peer_certs,
                alpn,
            }
        }
        Err(e) => ServerSide {
            handshake: Err(e.to_string()),
            peer_certs: None,
            alpn: None,
        },
    }
}

/// Connect with `client` as `name`, exchange one byte. Returns the client's
/// view (Ok only if the byte came back) and the server's.
async fn exchange(
    pki: &Pki,
    client: Arc<ClientConfig>,
    name: &str,
) -> (Result<(), String>, ServerSide) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(serve_once(
        listener,
        pki.server_config().expect("server config"),
    ));

    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client)
            .connect(server_name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        tls.write_all(b"x").await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        // With TLS 1.3 the server judges the client certificate after the
        // client considers the handshake done; a rejection shows up here.
        tls.read_exact(&mut byte).await.map_err(|e| e.to_string())?;
        Ok(())
    }
    .await;
    (client_result, server.await.expect("server task"))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn trusting(pki: &Pki) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_cert_pem.as_bytes()).expect("ca"))
        .expect("add");
    roots
}

fn anonymous_client(pki: &Pki) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(trusting(pki))
            .with_no_client_auth(),
    )
}

fn client_with_cert(pki: &Pki, cert_pem: &str, key_pem: &str) -> Arc<ClientConfig> {
    Arc::new(
        ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(trusting(pki))
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key"),
            )
            .expect("client auth"),
    )
}

#[tokio::test]
async fn admin_client_is_authenticated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    let (client, server) = exchange(
        &pki,
        pki.admin_client_config().expect("client"),
        "localhost",
    )
    .await;
    client.expect("client side");
    server.handshake.expect("server side");
    let certs = server.peer_certs.expect("peer certificates");
    let user = user_from_cert(&certs[0]).expect("user");
    assert_eq!(user.name, "system:admin");
    assert_eq!(user.groups, ["system:masters"]);
}

#[tokio::test]
async fn issued_client_cert_is_authenticated() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    let (cert, key) = pki
        .issue_client_cert("system:node:edge-1", &["system:nodes", "extra"], 30)
        .expect("issue");
    let (client, server) = exchange(&pki, client_with_cert(&pki, &cert, &key), "127.0.0.1").await;
    client.expect("client side");
    let certs = server.peer_certs.expect("peer certificates");
    let user = user_from_cert(&certs[0]).expect("user");
    assert_eq!(user.name, "system:node:edge-1");
    assert_eq!(user.groups, ["system:nodes", "extra"]);
}

#[tokio::test]
async fn anonymous_client_completes_handshake() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    let (client, server) = exchange(&pki, anonymous_client(&pki), "localhost").await;
    client.expect("client side");
    server.handshake.expect("server side");
    assert!(server.peer_certs.is_none());
}

#[tokio::test]
async fn client_cert_from_other_ca_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    let other = Pki::load_or_create(&config(&tmp.path().join("other"), &[])).expect("other");
    let client = client_with_cert(&pki, &other.admin_cert_pem, &other.admin_key_pem);
    let (client, server) = exchange(&pki, client, "localhost").await;
    assert!(client.is_err(), "client should see the rejection");
    let err = server
        .handshake
        .expect_err("server must reject the certificate");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn serving_cert_matches_expected_names_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &["api.edge.example", "192.0.2.5"]))
        .expect("create");
    for name in [
        "localhost",
        "127.0.0.1",
        "api.edge.example",
        "192.0.2.5",
        "kubernetes.default.svc.cluster.local",
        "10.43.0.1",
    ] {
        let (client, _) = exchange(&pki, anonymous_client(&pki), name).await;
        client.unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let (client, _) = exchange(&pki, anonymous_client(&pki), "elsewhere.example").await;
    assert!(client.is_err());
}

#[tokio::test]
async fn server_offers_h2_then_http11() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    for (offer, expected) in [
        (vec![b"h2".to_vec(), b"http/1.1".to_vec()], b"h2".to_vec()),
        (vec![b"http/1.1".to_vec()], b"http/1.1".to_vec()),
    ] {
        let mut client = (*pki.admin_client_config().expect("client")).clone();
        client.alpn_protocols = offer;
        let (result, server) = exchange(&pki, Arc::new(client), "localhost").await;
        result.expect("client side");
        assert_eq!(server.alpn, Some(expected));
    }
}
