//! Test PKI: a CA, a server certificate for 127.0.0.1 and a client certificate, written as
//! PEM files for docker-registry (server side), skopeo (`--dest-cert-dir`) and
//! registries.yaml (`ca_file`, `cert_file`, `key_file`).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

pub struct TlsFiles {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// ca.crt + client.cert + client.key, the layout containers/image (skopeo) reads.
    pub skopeo_dir: PathBuf,
}

pub fn generate(dir: &Path) -> anyhow::Result<TlsFiles> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "k1s test ca");
    let ca_key = KeyPair::generate()?;
    let ca = ca_params.self_signed(&ca_key)?;

    let mut server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])?;
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate()?;
    let server = server.signed_by(&server_key, &ca, &ca_key)?;

    let mut client = CertificateParams::new(Vec::<String>::new())?;
    client
        .distinguished_name
        .push(rcgen::DnType::CommonName, "k1s node");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate()?;
    let client = client.signed_by(&client_key, &ca, &ca_key)?;

    std::fs::create_dir_all(dir)?;
    let write = |name: &str, pem: String| -> anyhow::Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, pem)?;
        Ok(p)
    };
    let skopeo_dir = dir.join("skopeo");
    std::fs::create_dir_all(&skopeo_dir)?;
    std::fs::write(skopeo_dir.join("ca.crt"), ca.pem())?;
    std::fs::write(skopeo_dir.join("client.cert"), client.pem())?;
    std::fs::write(skopeo_dir.join("client.key"), client_key.serialize_pem())?;
    Ok(TlsFiles {
        ca: write("ca.pem", ca.pem())?,
        server_cert: write("server.pem", server.pem())?,
        server_key: write("server-key.pem", server_key.serialize_pem())?,
        client_cert: write("client.pem", client.pem())?,
        client_key: write("client-key.pem", client_key.serialize_pem())?,
        skopeo_dir,
    })
}
