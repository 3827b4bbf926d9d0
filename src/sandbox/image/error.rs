//! Errors of the image store. Each variant carries the reference, path, digest or registry
//! endpoint it failed on, because the node agent copies these messages into the pod status
//! (`ErrImagePull`, `ErrImageNeverPull`) where a user reads them without our logs. Registry
//! errors keep the registry's own code and message text. This module never logs.

use std::path::PathBuf;

/// One failed attempt against one registry endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointFailure {
    /// `scheme://host[:port]` of the endpoint tried.
    pub endpoint: String,
    pub error: RegistryError,
}

/// What a registry endpoint answered (or why it could not be asked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered with an error status; `message` holds its error body
    /// (`CODE: message` entries of the distribution error envelope, or the raw text).
    #[error("{status}: {message}")]
    Status { status: u16, message: String },
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("tls: {0}")]
    Tls(String),
    #[error("http: {0}")]
    Http(String),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("bad response: {0}")]
    Protocol(String),
    #[error("timed out: {0}")]
    Timeout(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("registries config {path}: {reason}")]
    RegistriesConfig { path: String, reason: String },

    #[error("docker config json: {0}")]
    DockerConfig(String),

    #[error("failed to pull image {reference:?}: {}", format_failures(.failures))]
    Pull {
        reference: String,
        failures: Vec<EndpointFailure>,
    },

    #[error("image {reference:?} is not present with pull policy of Never")]
    NeverPull { reference: String },

    #[error(
        "image {reference:?}: no manifest for platform {platform} in index (has: {available})"
    )]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },

    #[error("{what} {digest}: digest mismatch, content hashes to {actual}")]
    DigestMismatch {
        what: String,
        digest: String,
        actual: String,
    },

    #[error("invalid {what} for {reference:?}: {reason}")]
    InvalidManifest {
        what: &'static str,
        reference: String,
        reason: String,
    },

    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType { what: String, media_type: String },

    #[error("layer {digest}: {reason}")]
    Layer { digest: String, reason: String },

    #[error("archive {path}: {reason}")]
    Archive { path: PathBuf, reason: String },

    #[error("image {0:?} not found in the store")]
    NotFound(String),

    #[error("mount {target}: {reason}")]
    Mount { target: PathBuf, reason: String },

    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("corrupt store metadata {path}: {reason}")]
    Metadata { path: PathBuf, reason: String },
}

impl ImageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ImageError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

fn format_failures(failures: &[EndpointFailure]) -> String {
    match failures {
        [] => "no endpoint to try".to_string(),
        [one] => format!("{}: {}", one.endpoint, one.error),
        [first, rest @ ..] => {
            let mut s = format!("{}: {}", first.endpoint, first.error);
            for f in rest {
                s.push_str(&format!("; also tried {}: {}", f.endpoint, f.error));
            }
            s
        }
    }
}
