//! The cluster certificate authority: creating it, loading it back, and
//! signing leaf certificates with its key.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::SigningKey;
use rustls::SignatureScheme;

use super::{der, inspect, PkiError};

/// Validity of a newly created cluster CA.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A loaded or freshly created CA, ready to sign.
pub(crate) struct CertAuthority {
    pub(crate) cert_pem: String,
    pub(crate) cert_der: CertificateDer<'static>,
    /// Raw DER of the CA's subject Name; copied verbatim into the issuer
    /// field of every leaf so name chaining matches byte for byte.
    pub(crate) subject_der: Vec<u8>,
    /// The CA's subject key identifier, echoed as the leaves' authority key
    /// identifier to help chain building.
    key_id: Option<Vec<u8>>,
    signer: Arc<dyn SigningKey>,
}

impl CertAuthority {
    /// Create a new self-signed ECDSA P-256 CA valid for ten years.
    /// Returns the CA and its private key PEM (for the caller to persist).
    pub(crate) fn create(now_unix: u64) -> Result<(Self, String), PkiError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
            PkiError::Generate {
                what: "ca key",
                source,
            }
        })?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("k1s-server-ca@{now_unix}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        // Backdated so nodes whose clocks lag slightly still accept it.
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let not_before = now_unix.saturating_sub(super::BACKDATE.as_secs());
        params.not_before = epoch + Duration::from_secs(not_before);
        params.not_after = epoch + Duration::from_secs(now_unix) + CA_VALIDITY;
        let cert = params
            .self_signed(&key)
            .map_err(|source| PkiError::Generate {
                what: "ca certificate",
                source,
            })?;
        let key_pem = key.serialize_pem();
        let ca = Self::from_pem(
            &cert.pem(),
            &key_pem,
            Path::new("ca.crt"),
            Path::new("ca.key"),
        )?;
        Ok((ca, key_pem))
    }

    /// Build a CA from PEM text; the paths are only used in error messages.
    pub(crate) fn from_pem(
        cert_pem: &str,
        key_pem: &str,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Self, PkiError> {
        let cert_der = inspect::parse_cert_pem(cert_pem, cert_path)?;
        let facts = inspect::facts(&cert_der).map_err(|reason| PkiError::InvalidCertificate {
            path: cert_path.to_path_buf(),
            reason,
        })?;
        if !facts.is_ca {
            return Err(PkiError::InvalidCertificate {
                path: cert_path.to_path_buf(),
                reason: "not a ca certificate (basic constraints ca=false)".into(),
            });
        }
        let spki = inspect::key_spki(key_pem, key_path)?;
        if spki != facts.spki_der {
            return Err(PkiError::InvalidKey {
                path: key_path.to_path_buf(),
                reason: format!(
                    "key does not match the certificate in {}",
                    cert_path.display()
                ),
            });
        }
        let signer = load_signer(key_pem, key_path)?;
        Ok(Self {
            cert_pem: cert_pem.to_string(),
            cert_der,
            subject_der: facts.subject_der,
            key_id: facts.subject_key_id,
            signer,
        })
    }

    /// Sign `tbs_parts` (the TBSCertificate fields after version, serial and
    /// signature algorithm, i.e. from validity on) as a certificate issued by
    /// this CA. Returns the complete certificate DER.
    pub(crate) fn sign(
        &self,
        what: &str,
        serial: &[u8],
        validity: &[u8],
        subject: &[u8],
        spki: &[u8],
        extensions: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, PkiError> {
        let sign_err = |reason: String| PkiError::Sign {
            what: what.to_string(),
            reason,
        };
        let algorithm = der::sequence(&[&der::oid(der::oid::ECDSA_WITH_SHA256)]);
        let mut exts = extensions;
        if let Some(id) = &self.key_id {
            // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING }
            let aki = der::sequence(&[&der::tlv(0x80, id)]);
            exts.push(der::extension(der::oid::AUTHORITY_KEY_ID, false, &aki));
        }
        let ext_refs: Vec<&[u8]> = exts.iter().map(Vec::as_slice).collect();
        let ext_block = der::constructed(0xa3, &[&der::sequence(&ext_refs)]);
        let tbs = der::sequence(&[
            // [0] EXPLICIT Version v3
            &der::constructed(0xa0, &[&der::unsigned_integer(&[2])]),
            &der::unsigned_integer(serial),
            &algorithm,
            &self.subject_der,
            validity,
            subject,
            spki,
            &ext_block,
        ]);
        let signer = self
            .signer
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .ok_or_else(|| sign_err("the ca key is not an ecdsa p-256 key".into()))?;
        let signature = signer.sign(&tbs).map_err(|e| sign_err(e.to_string()))?;
        Ok(der::sequence(&[
            &tbs,
            &algorithm,
            &der::bit_string(&signature),
        ]))
    }
}

/// Turn a PEM private key into a rustls signing key (ring provider).
fn load_signer(key_pem: &str, key_path: &Path) -> Result<Arc<dyn SigningKey>, PkiError> {
    let invalid = |reason: String| PkiError::InvalidKey {
        path: key_path.to_path_buf(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| invalid(format!("no usable pem private key: {e}")))?;
    rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid(e.to_string()))
}
