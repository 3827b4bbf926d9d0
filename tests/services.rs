//! Services against the in-process API (an in-memory or sled store and the server's own
//! `kube::Client`): allocation in the registry (`alloc`), the EndpointSlice, Endpoints and
//! ServiceLB controllers driven by pods and nodes the tests create and mark Running and
//! Ready through their status (`controllers`), and the default Services (`defaults`). No
//! scheduler or kubelet runs here.

#[path = "services/alloc.rs"]
mod alloc;
#[path = "services/controllers.rs"]
mod controllers;
#[path = "services/defaults.rs"]
mod defaults;

use k1s::apiserver::{auth::MastersOnly, ApiServer};
use k1s::registry::{Catalog, Registry, ServiceConfig};
use k1s::store::Store;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use kube::Client;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
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
    let registry = Registry::with_services(store.clone(), Arc::new(Catalog::new()), cfg);
    let api = ApiServer::new(
        registry.clone(),
        Arc::new(MastersOnly),
        "127.0.0.1:6443".into(),
    );
    let client = k1s::client::in_process(api, k1s::client::server_identity());
    let ns: Api<Namespace> = Api::all(client.clone());
    for name in ["default", "kube-system"] {
        let mut d = Namespace::default();
        d.metadata.name = Some(name.into());
        match ns.create(&PostParams::default(), &d).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => panic!("creating namespace {name}: {e}"),
        }
    }
    Cluster {
        client,
        registry,
        store,
        cancel: CancellationToken::new(),
    }
}

/// Poll `f` until it returns Some, or panic after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
