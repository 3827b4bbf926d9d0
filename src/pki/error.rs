//! Error type for the PKI module.

use std::path::PathBuf;

/// Everything that can go wrong while creating, loading or using the
/// cluster's certificates. Messages name the file or the step that failed so
/// an operator can act on them without reading code.
#[derive(thiserror::Error, Debug)]
pub enum PkiError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot create directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("cannot set permissions of {path}: {source}")]
    Permissions {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error("invalid certificate in {path}: {reason}")]
    InvalidCertificate { path: PathBuf, reason: String },

    #[error("invalid private key in {path}: {reason}")]
    InvalidKey { path: PathBuf, reason: String },

    #[error(
        "{present} exists but {missing} is missing; restore it, or remove both to create a new cluster ca"
    )]
    IncompleteCa { present: PathBuf, missing: PathBuf },

    #[error("invalid subject alternative name {name:?}: {reason}")]
    InvalidSan { name: String, reason: String },

    #[error("invalid certificate subject: {0}")]
    InvalidSubject(String),

    #[error("failed to generate {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },

    #[error("failed to sign {what}: {reason}")]
    Sign { what: String, reason: String },

    #[error("failed to build tls {what}: {source}")]
    Tls {
        what: &'static str,
        source: rustls::Error,
    },

    #[error("failed to build client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}
