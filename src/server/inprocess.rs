//! The API half of the control plane, built in process: store, registry and API server wired
//! as `k1s server` wires them, with the in-process client and the namespaces every cluster has.
//! The server uses the same pieces (`open_registry`, `ensure_namespaces`); tests and benchmarks
//! use `InProcessApi` to get that API without TLS, a listener or a data directory. It owns no
//! tasks and starts no controllers: callers spawn what they need on the client it returns.

use crate::apiserver::auth::{Authorizer, MastersOnly};
use crate::apiserver::ApiServer;
use crate::registry::{ApiError, Catalog, Registry, ServiceConfig};
use crate::store::Store;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use std::sync::Arc;

/// What can fail while building the API.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The CRDs already in the store could not be loaded into the catalog.
    #[error("loading custom resource definitions: {0}")]
    Crds(ApiError),
    #[error("{action} namespace {name}")]
    Namespace {
        action: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// A registry on `store` allocating Service addresses from `services`, with the custom
/// resources already in the store served.
pub async fn open_registry(store: Store, services: ServiceConfig) -> Result<Registry, SetupError> {
    let registry = Registry::with_services(store, Arc::new(Catalog::new()), services);
    registry.refresh_crds().await.map_err(SetupError::Crds)?;
    Ok(registry)
}

/// Create the namespaces in `names` that do not exist yet; one created meanwhile is fine.
pub async fn ensure_namespaces(client: &kube::Client, names: &[&str]) -> Result<(), SetupError> {
    let api: Api<Namespace> = Api::all(client.clone());
    let failed = |action, name: &str| {
        let name = name.to_string();
        move |source| SetupError::Namespace {
            action,
            name,
            source,
        }
    };
    for name in names {
        if api
            .get_opt(name)
            .await
            .map_err(failed("reading", name))?
            .is_some()
        {
            continue;
        }
        let ns = Namespace {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        let params = PostParams {
            field_manager: Some("k1s".into()),
            ..Default::default()
        };
        match api.create(&params, &ns).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(failed("creating", name)(e)),
        }
    }
    Ok(())
}

/// An API served in process, and the client that reaches it as the server's own identity.
pub struct InProcessApi {
    pub store: Store,
    pub registry: Registry,
    pub api: Arc<ApiServer>,
    pub client: kube::Client,
}

impl InProcessApi {
    /// An API on `store`, to be adjusted before `build`: by default authorized as
    /// `system:masters` only, with the default Service ranges, advertising
    /// `127.0.0.1:6443`, and with the `default` namespace.
    pub fn builder(store: Store) -> Builder {
        Builder {
            store,
            services: ServiceConfig::default(),
            authorizer: Arc::new(MastersOnly),
            advertise: "127.0.0.1:6443".into(),
            namespaces: vec!["default".into()],
        }
    }

    /// The default API on a memory store.
    pub async fn memory() -> Result<InProcessApi, SetupError> {
        Self::builder(Store::memory()).build().await
    }
}

/// The choices `InProcessApi::builder` leaves open.
pub struct Builder {
    store: Store,
    services: ServiceConfig,
    authorizer: Arc<dyn Authorizer>,
    advertise: String,
    namespaces: Vec<String>,
}

impl Builder {
    /// The Service CIDR and node port range to allocate from.
    pub fn services(mut self, services: ServiceConfig) -> Self {
        self.services = services;
        self
    }

    /// Who may do what (RBAC in the server).
    pub fn authorizer(mut self, authorizer: Arc<dyn Authorizer>) -> Self {
        self.authorizer = authorizer;
        self
    }

    /// The address discovery and the service-account issuer's metadata name.
    pub fn advertise(mut self, address: impl Into<String>) -> Self {
        self.advertise = address.into();
        self
    }

    /// The namespaces to make sure of, in place of `default` (none for an empty list).
    pub fn namespaces<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.namespaces = names.iter().map(|n| n.as_ref().to_string()).collect();
        self
    }

    pub async fn build(self) -> Result<InProcessApi, SetupError> {
        let registry = open_registry(self.store.clone(), self.services).await?;
        let api = ApiServer::new(registry.clone(), self.authorizer, self.advertise);
        let client = crate::client::in_process(api.clone(), crate::client::server_identity());
        let names: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        ensure_namespaces(&client, &names).await?;
        Ok(InProcessApi {
            store: self.store,
            registry,
            api,
            client,
        })
    }
}
