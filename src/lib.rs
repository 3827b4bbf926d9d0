//! k1s: a Kubernetes distribution in one binary. See DESIGN.md for the map; `server` is the
//! composition root.

pub mod apiserver;
pub mod cli;
pub mod client;
pub mod cni;
pub mod config;
pub mod controllers;
pub mod cron;
pub mod deploy;
pub mod dns;
pub mod goduration;
pub mod kubelet;
pub mod pki;
pub mod proxy;
pub mod registry;
pub mod sandbox;
pub mod scheduler;
pub mod server;
pub mod store;

/// The machine architecture in Kubernetes' spelling (amd64, arm64, arm).
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}
