//! Container images on the node: references normalised as Docker does, pulls over the OCI
//! distribution protocol (mirrors, rewrites, auth and TLS from k3s's `registries.yaml`),
//! layers unpacked once into a content-addressed store shared by every image and container,
//! image metadata persisted so a restarted agent knows its images offline, overlayfs root
//! filesystems for containers, tarball import for air-gapped nodes, and garbage collection.
//!
//! This module knows nothing of the Kubernetes API: the node agent translates pod specs and
//! imagePullSecrets into plain calls here, and copies our error text into pod status.
//!
//! Code map: `reference` (names), `manifest` (JSON documents, platforms, digests),
//! `registries` + `auth` (configuration and credentials), `http` + `client` (the wire),
//! `unpack` (tar to directory), `layers` (the content-addressed layer store), `store` (the
//! `ImageStore` and its metadata), `pull`, `import`, `mount`, `gc`.

mod auth;
mod client;
mod error;
mod gc;
mod http;
mod import;
mod layers;
mod manifest;
mod mount;
mod pull;
mod reference;
mod registries;
mod store;
mod unpack;
#[cfg(test)]
mod unpack_tests;

pub use auth::{parse_docker_config_json, RegistryAuth};
pub use error::{EndpointFailure, ImageError, RegistryError};
pub use manifest::Platform;
pub use reference::Reference;
pub use registries::{Endpoint, Registries, TlsConfig};
pub use store::{Image, ImageConfig, ImageStore, PullPolicy};
