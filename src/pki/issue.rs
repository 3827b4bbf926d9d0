//! Issuing leaf certificates (serving and client) signed by the cluster CA.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

use super::ca::CertAuthority;
use super::{der, PkiError, BACKDATE};

/// A subject alternative name, normalised for comparison.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum SanEntry {
    /// Lowercased DNS name.
    Dns(String),
    Ip(IpAddr),
}

impl SanEntry {
    /// Parse a hostname or IP address as given on the command line.
    pub(crate) fn parse(raw: &str) -> Result<Self, PkiError> {
        let name = raw.trim();
        // Accept the bracketed IPv6 form people copy from URLs.
        let unbracketed = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        if let Ok(ip) = unbracketed.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        let invalid = |reason: &str| PkiError::InvalidSan {
            name: raw.to_string(),
            reason: reason.to_string(),
        };
        if name.is_empty() {
            return Err(invalid("empty name"));
        }
        if name.len() > 253 {
            return Err(invalid("longer than 253 characters"));
        }
        // dNSName is an IA5String; restricting to hostname characters (plus
        // a leading wildcard label) keeps certificate verifiers from
        // rejecting the whole certificate over one odd entry.
        let ok_chars = name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '*'));
        if !ok_chars {
            return Err(invalid(
                "only letters, digits, '-', '.', '_' and '*' are allowed",
            ));
        }
        if name.split('.').any(str::is_empty) {
            return Err(invalid("empty dns label"));
        }
        Ok(Self::Dns(name.to_ascii_lowercase()))
    }

    pub(crate) fn to_der(&self) -> Vec<u8> {
        match self {
            // GeneralName dNSName [2] IMPLICIT IA5String
            Self::Dns(name) => der::tlv(0x82, name.as_bytes()),
            // GeneralName iPAddress [7] IMPLICIT OCTET STRING
            Self::Ip(IpAddr::V4(ip)) => der::tlv(0x87, &ip.octets()),
            Self::Ip(IpAddr::V6(ip)) => der::tlv(0x87, &ip.octets()),
        }
    }
}

impl std::fmt::Display for SanEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

/// What a leaf certificate is for.
pub(crate) enum Usage<'a> {
    /// TLS server with these subject alternative names.
    Server(&'a [SanEntry]),
    /// TLS client.
    Client,
}

/// Everything that varies between the leaves this module issues.
pub(crate) struct LeafSpec<'a> {
    pub(crate) common_name: &'a str,
    pub(crate) organizations: &'a [&'a str],
    pub(crate) usage: Usage<'a>,
    pub(crate) validity: Duration,
}

/// A freshly issued certificate and its new private key, both PEM.
pub(crate) struct IssuedPair {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
}

/// Generate a new P-256 key and a certificate for it signed by `ca`.
pub(crate) fn issue_leaf(
    ca: &CertAuthority,
    spec: &LeafSpec<'_>,
    now_unix: u64,
) -> Result<IssuedPair, PkiError> {
    let what = format!("certificate for {:?}", spec.common_name);
    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| PkiError::Generate {
            what: "certificate key",
            source,
        })?;

    let mut serial = [0u8; 16];
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut serial)
        .map_err(|e| PkiError::Sign {
            what: what.clone(),
            reason: format!("no randomness for the serial number: {e:?}"),
        })?;
    // Keep the serial positive and exactly 16 bytes long (RFC 5280 allows
    // up to 20 octets, and a non-zero top byte keeps the encoding minimal).
    serial[0] = (serial[0] & 0x7f) | 0x40;

    let not_before = now_unix.saturating_sub(BACKDATE.as_secs());
    // 9999-12-31T23:59:59Z is the largest time X.509 can express.
    let not_after = now_unix
        .saturating_add(spec.validity.as_secs())
        .min(253_402_300_799);
    let validity = der::sequence(&[
        &der::x509_time(to_i64(not_before)),
        &der::x509_time(to_i64(not_after)),
    ]);

    let subject = subject_name(spec.common_name, spec.organizations)?;

    let (eku, sans) = match spec.usage {
        Usage::Server(sans) => (der::oid::SERVER_AUTH, Some(sans)),
        Usage::Client => (der::oid::CLIENT_AUTH, None),
    };
    let mut extensions = vec![
        // BasicConstraints: an empty SEQUENCE means cA = FALSE.
        der::extension(der::oid::BASIC_CONSTRAINTS, true, &der::sequence(&[])),
        // KeyUsage digitalSignature only: ECDSA keys never encipher.
        der::extension(der::oid::KEY_USAGE, true, &[0x03, 0x02, 0x07, 0x80]),
        der::extension(
            der::oid::EXT_KEY_USAGE,
            false,
            &der::sequence(&[&der::oid(eku)]),
        ),
    ];
    if let Some(sans) = sans.filter(|s| !s.is_empty()) {
        let names: Vec<Vec<u8>> = sans.iter().map(SanEntry::to_der).collect();
        let refs: Vec<&[u8]> = names.iter().map(Vec::as_slice).collect();
        extensions.push(der::extension(
            der::oid::SUBJECT_ALT_NAME,
            false,
            &der::sequence(&refs),
        ));
    }

    let cert_der = ca.sign(
        &what,
        &serial,
        &validity,
        &subject,
        &key.public_key_der(),
        extensions,
    )?;
    Ok(IssuedPair {
        cert_pem: to_pem("CERTIFICATE", &cert_der),
        key_pem: key.serialize_pem(),
    })
}

/// Subject Name with one RDN per organization (Kubernetes groups) followed
/// by the common name (the user).
fn subject_name(common_name: &str, organizations: &[&str]) -> Result<Vec<u8>, PkiError> {
    if common_name.is_empty() {
        return Err(PkiError::InvalidSubject(
            "common name must not be empty".into(),
        ));
    }
    let rdn = |attr_oid: &[u8], value: &str| {
        let atv = der::sequence(&[
            &der::oid(attr_oid),
            &der::tlv(der::TAG_UTF8_STRING, value.as_bytes()),
        ]);
        der::constructed(der::TAG_SET, &[&atv])
    };
    let mut rdns: Vec<Vec<u8>> = Vec::with_capacity(organizations.len() + 1);
    for org in organizations {
        if org.is_empty() {
            return Err(PkiError::InvalidSubject(
                "organization (group) must not be empty".into(),
            ));
        }
        rdns.push(rdn(der::oid::ORGANIZATION, org));
    }
    rdns.push(rdn(der::oid::COMMON_NAME, common_name));
    let refs: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    Ok(der::sequence(&refs))
}

fn to_i64(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// PEM armour with the conventional 64-character lines.
pub(crate) fn to_pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
