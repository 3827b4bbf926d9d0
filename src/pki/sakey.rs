//! The service-account signing key (`<data-dir>/server/tls/service.key`): an ECDSA P-256 key
//! that signs the JSON Web Tokens the API server issues to service accounts, and checks them
//! when they come back. Created once; replacing it would invalidate every token in the
//! cluster, so an unreadable key is an error, never a reason to make a new one.

use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use sha2::{Digest, Sha256};

use super::{files, PkiError};

/// Signs and verifies ES256 signatures with the cluster's service-account key.
#[derive(Clone)]
pub struct ServiceAccountKey {
    pair: Arc<EcdsaKeyPair>,
    rng: SystemRandom,
    /// The key's id in token headers: the unpadded base64url SHA-256 of its public point.
    pub key_id: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountKey {
    /// Load `service.key` from `dir`, creating it when absent.
    pub fn load_or_create(dir: &Path) -> Result<ServiceAccountKey, PkiError> {
        let path = dir.join("service.key");
        let pem = if path.exists() {
            files::read_private_pem(&path)?
        } else {
            let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|source| {
                PkiError::Generate {
                    what: "service-account key",
                    source,
                }
            })?;
            let pem = key.serialize_pem();
            files::write_private_pem(&path, &pem)?;
            tracing::info!(path = %path.display(), "created service-account signing key");
            pem
        };
        let invalid = |reason: String| PkiError::InvalidKey {
            path: path.clone(),
            reason,
        };
        let key = KeyPair::from_pem(&pem).map_err(|e| invalid(e.to_string()))?;
        let rng = SystemRandom::new();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
                .map_err(|e| invalid(format!("not an ECDSA P-256 key: {e}")))?;
        let key_id = URL_SAFE_NO_PAD.encode(Sha256::digest(pair.public_key().as_ref()));
        Ok(ServiceAccountKey {
            pair: Arc::new(pair),
            rng,
            key_id,
        })
    }

    /// The raw ES256 signature (r || s, 64 bytes) of `msg`.
    pub fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, PkiError> {
        self.pair
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|e| PkiError::Sign {
                what: "service-account token".into(),
                reason: e.to_string(),
            })
    }

    /// Whether `sig` is this key's ES256 signature of `msg`.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(msg, sig)
            .is_ok()
    }

    /// The public key as a JSON Web Key (for `/openid/v1/jwks`).
    pub fn jwk(&self) -> serde_json::Value {
        // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.pair.public_key().as_ref();
        serde_json::json!({
            "kty": "EC",
            "crv": "P-256",
            "alg": "ES256",
            "use": "sig",
            "kid": self.key_id,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_created_once_and_signs_what_it_verifies() {
        let dir = tempfile::tempdir().unwrap();
        let a = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        let b = ServiceAccountKey::load_or_create(dir.path()).unwrap();
        assert_eq!(
            a.key_id, b.key_id,
            "the key was replaced on the second load"
        );
        let sig = a.sign(b"payload").unwrap();
        assert!(b.verify(b"payload", &sig));
        assert!(!b.verify(b"payloaD", &sig));
        let other = ServiceAccountKey::load_or_create(tempfile::tempdir().unwrap().path()).unwrap();
        assert!(!other.verify(b"payload", &sig));
    }

    #[test]
    fn a_corrupt_key_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("service.key"), "not a key").unwrap();
        let err = ServiceAccountKey::load_or_create(dir.path()).unwrap_err();
        assert!(err.to_string().contains("service.key"), "{err}");
    }
}
