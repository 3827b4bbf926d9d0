//! Services against the in-process API (an in-memory or sled store and the server's own
//! `kube::Client`): allocation in the registry (`alloc`), the EndpointSlice, Endpoints and
//! ServiceLB controllers driven by pods and nodes the tests create and mark Running and
//! Ready through their status (`controllers`), and the default Services (`defaults`). No
//! scheduler or kubelet runs here.

#[path = "services/alloc.rs"]
mod alloc;
mod common;
#[path = "services/controllers.rs"]
mod controllers;
#[path = "services/defaults.rs"]
mod defaults;

pub use common::eventually;
use k1s::registry::{Registry, ServiceConfig};
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use kube::api::{Api, PostParams};
use kube::Client;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

pub struct Cluster {
    pub client: Client,
    pub registry: Registry,
    pub store: Store,
    pub cancel: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A sled store in `dir`; waits for a closed predecessor's file lock to go.
pub async fn sled(dir: &Path) -> Store {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open_sled(&dir.join("db"), 8 << 20) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("opening the store: {e}"),
        }
    }
}

pub async fn cluster() -> Cluster {
    cluster_with(ServiceConfig::default()).await
}

pub async fn cluster_with(cfg: ServiceConfig) -> Cluster {
    cluster_on(Store::memory(), cfg).await
}

/// A cluster on `store` with the `default` and `kube-system` namespaces (kept if present).
pub async fn cluster_on(store: Store, cfg: ServiceConfig) -> Cluster {
    let api = InProcessApi::builder(store)
        .services(cfg)
        .namespaces(&["default", "kube-system"])
        .build()
        .await
        .expect("building the in-process api");
    Cluster {
        client: api.client,
        registry: api.registry,
        store: api.store,
        cancel: CancellationToken::new(),
    }
}
