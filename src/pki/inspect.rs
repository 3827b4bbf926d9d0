//! Reading certificates and keys back: PEM decoding, the facts the renewal
//! logic needs, and the Kubernetes identity of a client certificate.

use std::net::IpAddr;
use std::path::Path;

use rcgen::KeyPair;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::PkiError;

/// The authenticated identity carried by a client certificate, as
/// Kubernetes interprets it: user name from the CN, groups from the O
/// attributes.
#[derive(Clone, Debug, PartialEq)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

/// Extract the user from a verified leaf certificate (DER). Returns `None`
/// when the certificate cannot be parsed or has no usable common name.
pub fn user_from_cert(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let subject = cert.subject();
    let name = subject.iter_common_name().next()?.as_str().ok()?;
    if name.is_empty() {
        return None;
    }
    let groups = subject
        .iter_organization()
        .filter_map(|attr| attr.as_str().ok())
        .map(str::to_string)
        .collect();
    Some(UserInfo {
        name: name.to_string(),
        groups,
    })
}

/// What the load/renew logic needs to know about a certificate.
#[derive(Debug)]
pub(crate) struct CertFacts {
    pub(crate) subject_der: Vec<u8>,
    pub(crate) issuer_der: Vec<u8>,
    pub(crate) spki_der: Vec<u8>,
    pub(crate) subject_key_id: Option<Vec<u8>>,
    pub(crate) not_after_unix: i64,
    pub(crate) is_ca: bool,
    /// DNS names, lowercased.
    pub(crate) dns_names: Vec<String>,
    pub(crate) ip_addresses: Vec<IpAddr>,
}

/// Decode the first certificate of a PEM text.
pub(crate) fn parse_cert_pem(pem: &str, path: &Path) -> Result<CertificateDer<'static>, PkiError> {
    CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| PkiError::InvalidCertificate {
        path: path.to_path_buf(),
        reason: format!("no pem certificate: {e}"),
    })
}

/// The SubjectPublicKeyInfo DER of a PEM private key, used to check that a
/// key file belongs to its certificate.
pub(crate) fn key_spki(key_pem: &str, path: &Path) -> Result<Vec<u8>, PkiError> {
    KeyPair::from_pem(key_pem)
        .map(|key| key.public_key_der())
        .map_err(|e| PkiError::InvalidKey {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Parse a certificate DER into [`CertFacts`]; the error is a reason text
/// for the caller to attach to a path.
pub(crate) fn facts(der: &[u8]) -> Result<CertFacts, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err("trailing data after certificate".into());
    }
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    let mut subject_key_id = None;
    let mut is_ca = false;
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => dns_names.push(dns.to_ascii_lowercase()),
                        GeneralName::IPAddress(bytes) => {
                            if let Some(ip) = ip_from_bytes(bytes) {
                                ip_addresses.push(ip);
                            }
                        }
                        _ => {}
                    }
                }
            }
            ParsedExtension::SubjectKeyIdentifier(id) => subject_key_id = Some(id.0.to_vec()),
            ParsedExtension::BasicConstraints(bc) => is_ca = bc.ca,
            _ => {}
        }
    }
    Ok(CertFacts {
        subject_der: cert.subject().as_raw().to_vec(),
        issuer_der: cert.issuer().as_raw().to_vec(),
        spki_der: cert.public_key().raw.to_vec(),
        subject_key_id,
        not_after_unix: cert.validity().not_after.timestamp(),
        is_ca,
        dns_names,
        ip_addresses,
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}
