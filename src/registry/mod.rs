//! Typed objects on top of the store: the only writer to it.
//!
//! The registry turns API operations on a resource (create, get, list, update, delete, watch)
//! into store operations: server-owned metadata, defaulting, validation, conflicts on
//! resourceVersion, finalizers and graceful deletion, selectors and pagination. It knows
//! nothing of HTTP; the apiserver calls it and maps `ApiError` to a `Status`.

mod admit;
pub mod cel;
pub mod codec;
pub mod error;
mod list;
pub mod resources;
pub mod rules;
mod sa_admission;
pub mod schema;
pub mod selectors;
pub mod services;
mod special;
pub mod storageclass;
pub mod strategy;
pub mod typed;
mod watch;
mod write;

/// An object as a list reads it: its stored bytes and revisions (render with `codec`).
pub use crate::store::KeyValue;
pub use error::{ApiError, ApiResult, Target};
pub use list::{ListOptions, ListPage};
pub use resources::{Catalog, ResourceInfo};
pub use sa_admission::TOKEN_DIR;
pub use services::ServiceConfig;
pub use watch::{WatchEvent, WatchOptions};

use crate::store::Store;
use serde_json::{json, Value};
use std::sync::Arc;

/// How a write handles unknown fields (the `fieldValidation` query parameter).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    #[default]
    Warn,
    Strict,
}

#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    pub dry_run: bool,
    pub field_manager: String,
    pub field_validation: FieldValidation,
    /// Set by server-side apply, which records its own managedFields.
    pub skip_managed_fields: bool,
    /// Run on the object about to be stored, after validation (the apiserver's RBAC
    /// escalation check).
    pub guard: Option<WriteGuard>,
}

/// A last check on a write: called with the object to store and the stored one (None on
/// create); an error refuses the write.
#[derive(Clone)]
pub struct WriteGuard(pub Arc<GuardFn>);

pub type GuardFn = dyn Fn(&Value, Option<&Value>) -> ApiResult<()> + Send + Sync;

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriteGuard")
    }
}

impl WriteOptions {
    fn check(&self, obj: &Value, old: Option<&Value>) -> ApiResult<()> {
        match &self.guard {
            Some(g) => (g.0)(obj, old),
            None => Ok(()),
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub propagation_policy: Option<String>,
    /// The deprecated `orphanDependents`; an explicit propagationPolicy wins over it.
    pub orphan_dependents: Option<bool>,
}

/// A write's result: the object as stored and the warnings for the client.
#[derive(Debug)]
pub struct Written {
    pub obj: Value,
    pub warnings: Vec<String>,
    /// true if the object did not exist before (for 201 vs 200)
    pub created: bool,
}

#[derive(Clone)]
pub struct Registry {
    store: Store,
    catalog: Arc<Catalog>,
    services: Arc<services::Allocator>,
}

pub(crate) fn target<'a>(res: &'a ResourceInfo, name: &'a str) -> Target<'a> {
    Target {
        group: &res.group,
        resource: &res.plural,
        kind: &res.kind,
        name,
    }
}

pub(crate) fn ns_target(name: &str) -> Target<'_> {
    Target {
        group: "",
        resource: "namespaces",
        kind: "Namespace",
        name,
    }
}

impl Registry {
    /// A registry with the default service CIDR and node port range.
    pub fn new(store: Store, catalog: Arc<Catalog>) -> Registry {
        Registry::with_services(store, catalog, ServiceConfig::default())
    }

    /// A registry allocating Service IPs and node ports from `cfg`.
    pub fn with_services(store: Store, catalog: Arc<Catalog>, cfg: ServiceConfig) -> Registry {
        Registry {
            store,
            catalog,
            services: services::Allocator::new(cfg),
        }
    }

    pub fn service_config(&self) -> &ServiceConfig {
        self.services.config()
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Load the CRDs in the store into the catalog. Called at start and after CRD writes.
    pub async fn refresh_crds(&self) -> ApiResult<()> {
        let data = self.catalog.snapshot();
        let Some(crd) = data.by_kind("apiextensions.k8s.io", "CustomResourceDefinition") else {
            return Ok(());
        };
        let page = self.list(&crd, None, &ListOptions::default()).await?;
        let crds: Vec<Value> = page
            .items
            .iter()
            .filter_map(|kv| codec::decode(kv).ok())
            .collect();
        self.catalog.set_custom(&crds);
        Ok(())
    }

    pub async fn get(&self, res: &ResourceInfo, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let kv = self
            .store
            .get(&res.key(ns, name))
            .await
            .map_err(|e| ApiError::from_store(e, target(res, name)))?
            .ok_or_else(|| ApiError::not_found(target(res, name)))?;
        codec::decode(&kv)
    }
}

impl ApiError {
    pub fn with_message(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

pub(crate) fn invalid_raw(
    res: &ResourceInfo,
    name: &str,
    msgs: &[String],
    se: &[schema::SchemaError],
) -> ApiError {
    let joined = if msgs.len() == 1 {
        msgs[0].clone()
    } else {
        format!("[{}]", msgs.join(", "))
    };
    let causes: Vec<Value> = se
        .iter()
        .map(|e| json!({"reason": e.reason, "message": e.message.split_once(": ").map(|x| x.1).unwrap_or_default(), "field": e.field}))
        .collect();
    let mut details = json!({"name": name, "kind": res.kind, "causes": causes, "group": res.group});
    if res.group.is_empty() {
        details.as_object_mut().map(|d| d.remove("group"));
    }
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("{} \"{}\" is invalid: {}", res.kind, name, joined),
        details: Some(details),
    }
}

/// Objects that a PUT may create, as upstream allows.
pub(crate) fn allow_create_on_update(res: &ResourceInfo) -> bool {
    res.group.is_empty() && matches!(res.kind.as_str(), "Endpoints" | "Event")
        || res.group == "coordination.k8s.io"
        || res.group == "events.k8s.io"
        || res.group == "discovery.k8s.io"
}

/// Compare objects ignoring managedFields timestamps, so a no-op write is not stored.
pub(crate) fn without_timestamps(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(mf) = v["metadata"]["managedFields"].as_array_mut() {
        for e in mf {
            if let Some(o) = e.as_object_mut() {
                o.remove("time");
            }
        }
    }
    v
}

/// generateName plus five characters from upstream's alphabet (no vowels, no confusables).
pub fn generate_name(base: &str) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    let base = if base.len() > 58 { &base[..58] } else { base };
    let suffix: String = (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{base}{suffix}")
}
