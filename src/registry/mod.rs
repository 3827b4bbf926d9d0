//! Typed objects on top of the store: the only writer to it.
//!
//! The registry turns API operations on a resource (create, get, list, update, delete, watch)
//! into store operations: server-owned metadata, defaulting, validation, conflicts on
//! resourceVersion, finalizers and graceful deletion, selectors and pagination. It knows
//! nothing of HTTP; the apiserver calls it and maps `ApiError` to a `Status`.

pub mod codec;
pub mod error;
mod list;
pub mod resources;
pub mod rules;
pub mod schema;
pub mod selectors;
mod special;
pub mod strategy;
pub mod typed;
mod watch;

pub use error::{ApiError, ApiResult, Target};
pub use list::{ListOptions, ListPage};
pub use resources::{Catalog, ResourceInfo};
pub use watch::{WatchEvent, WatchOptions};

use crate::apiserver::patch;
use crate::store::{Store, StoreError};
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
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub propagation_policy: Option<String>,
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
}

fn target<'a>(res: &'a ResourceInfo, name: &'a str) -> Target<'a> {
    Target {
        group: &res.group,
        resource: &res.plural,
        kind: &res.kind,
        name,
    }
}

fn ns_target(name: &str) -> Target<'_> {
    Target {
        group: "",
        resource: "namespaces",
        kind: "Namespace",
        name,
    }
}

impl Registry {
    pub fn new(store: Store, catalog: Arc<Catalog>) -> Registry {
        Registry { store, catalog }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn store_revision(&self) -> u64 {
        self.store.current_revision()
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

    /// Check the namespace of a namespaced write exists and is not terminating.
    async fn check_namespace(&self, res: &ResourceInfo, ns: Option<&str>) -> ApiResult<()> {
        if !res.namespaced {
            return Ok(());
        }
        let ns =
            ns.ok_or_else(|| ApiError::bad_request("the namespace of the object is required"))?;
        let key = format!("/registry/core/namespaces/{ns}");
        let kv = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, ns_target(ns)))?
            .ok_or_else(|| ApiError::not_found(ns_target(ns)))?;
        let nsobj = codec::decode(&kv)?;
        if nsobj["status"]["phase"] == "Terminating"
            || !nsobj["metadata"]["deletionTimestamp"].is_null()
        {
            let mut e = ApiError::forbidden(format!(
                "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.plural,
                "",
            ));
            e.message = format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            );
            return Err(e);
        }
        Ok(())
    }

    /// Decode against the kind's type, then default, prune and validate.
    fn admit(
        &self,
        res: &ResourceInfo,
        obj: Value,
        old: Option<&Value>,
        opts: &WriteOptions,
        warnings: &mut Vec<String>,
    ) -> ApiResult<Value> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let (mut obj, unknown) = match &res.custom {
            None => typed::decode_strict(&res.group, &res.kind, &obj).map_err(|e| {
                ApiError::bad_request(format!("{} in body is invalid: {e}", res.kind))
            })?,
            Some(c) => {
                let mut obj = obj;
                let unknown = match &c.schema {
                    Some(s) if !c.preserve_unknown => schema::prune(s, &mut obj),
                    _ => vec![],
                };
                (obj, unknown)
            }
        };
        if !unknown.is_empty() {
            match opts.field_validation {
                FieldValidation::Strict => {
                    let list: Vec<String> = unknown
                        .iter()
                        .map(|u| format!("unknown field \"{u}\""))
                        .collect();
                    return Err(ApiError::bad_request(format!(
                        "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
                        res.kind,
                        res.version,
                        res.kind,
                        list.join(", ")
                    )));
                }
                FieldValidation::Warn => {
                    warnings.extend(unknown.iter().map(|u| format!("unknown field \"{u}\"")))
                }
                FieldValidation::Ignore => {}
            }
        }
        match &res.custom {
            None => rules::default_object(&res.group, &res.version, &res.kind, &mut obj),
            Some(c) => {
                if let Some(s) = &c.schema {
                    schema::apply_defaults(s, &mut obj);
                }
            }
        }
        let errs: Vec<rules::FieldError> = match &res.custom {
            None => rules::validate(&res.group, &res.version, &res.kind, &obj, old),
            Some(c) => {
                let errs = rules::validate("", "", "", &obj, old);
                if let Some(s) = &c.schema {
                    let se = schema::validate(s, &obj);
                    if !se.is_empty() {
                        let msgs: Vec<String> = errs
                            .iter()
                            .map(|e| e.message())
                            .chain(se.iter().map(|e| e.message.clone()))
                            .collect();
                        return Err(invalid_raw(res, &name, &msgs, &se));
                    }
                }
                errs
            }
        };
        if !errs.is_empty() {
            return Err(ApiError::invalid(target(res, &name), &errs));
        }
        if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
            let mut se = vec![];
            for (i, v) in obj["spec"]["versions"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                let s = &v["schema"]["openAPIV3Schema"];
                if !s.is_null() {
                    se.extend(schema::check_structural(
                        s,
                        &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    ));
                }
            }
            if !se.is_empty() {
                let msgs: Vec<String> = se.iter().map(|e| e.message.clone()).collect();
                return Err(invalid_raw(res, &name, &msgs, &se));
            }
        }
        Ok(obj)
    }

    fn check_type_meta(res: &ResourceInfo, obj: &Value) -> ApiResult<()> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be a JSON object",
            ));
        }
        if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
            if av != res.api_version() {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    res.api_version()
                )));
            }
        }
        if let Some(k) = obj.get("kind").and_then(Value::as_str) {
            if k != res.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({k}) does not match the expected kind ({})",
                    res.kind
                )));
            }
        }
        if !obj["metadata"].is_null() && !obj["metadata"].is_object() {
            return Err(ApiError::bad_request(
                "metadata in body must be of type object",
            ));
        }
        Ok(())
    }

    fn set_scope(res: &ResourceInfo, obj: &mut Value, ns: Option<&str>) -> ApiResult<()> {
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        let m = obj["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        if res.namespaced {
            let ns = ns.unwrap_or("default");
            match m.get("namespace").and_then(Value::as_str) {
                Some(b) if !b.is_empty() && b != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ))
                }
                _ => {
                    m.insert("namespace".into(), json!(ns));
                }
            }
        } else {
            m.remove("namespace");
        }
        Ok(())
    }

    pub async fn create(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        Self::check_type_meta(res, &obj)?;
        Self::set_scope(res, &mut obj, ns)?;
        let meta = &mut obj["metadata"];
        let name = meta["name"].as_str().unwrap_or_default().to_string();
        let name = if name.is_empty() {
            match meta["generateName"].as_str() {
                Some(g) if !g.is_empty() => {
                    let n = generate_name(g);
                    meta["name"] = json!(n);
                    n
                }
                _ => {
                    let e = rules::FieldError {
                        kind: rules::ErrorType::Required,
                        field: "metadata.name".into(),
                        value: None,
                        detail: "name or generateName is required".into(),
                    };
                    return Err(ApiError::invalid(target(res, ""), &[e]));
                }
            }
        } else {
            name
        };
        self.check_namespace(res, ns).await?;
        let now = strategy::now_rfc3339();
        let mut warnings = vec![];
        let mut obj = self.admit(res, obj, None, opts, &mut warnings)?;
        strategy::prepare_create(res, &mut obj, &now);
        if !opts.skip_managed_fields {
            patch::track_update(
                &res.group,
                &res.kind,
                &res.api_version(),
                None,
                &mut obj,
                &opts.field_manager,
                "",
                &now,
            );
        }
        if opts.dry_run {
            return Ok(Written {
                obj,
                warnings,
                created: true,
            });
        }
        let key = res.key(ns, &name);
        let kv = self
            .store
            .create(&key, codec::encode(&obj)?)
            .await
            .map_err(|e| ApiError::from_store(e, target(res, &name)))?;
        codec::set_rv(&mut obj, kv.mod_revision);
        self.after_write(res).await;
        Ok(Written {
            obj,
            warnings,
            created: true,
        })
    }

    async fn after_write(&self, res: &ResourceInfo) {
        if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
            if let Err(e) = self.refresh_crds().await {
                tracing::warn!(error = %e, "reloading custom resource definitions");
            }
        }
    }

    /// Replace an object (PUT). `subresource` is None or "status". The body's
    /// resourceVersion, if any, is the precondition; without one the update is unconditional.
    pub async fn update(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        subresource: Option<&str>,
        opts: &WriteOptions,
    ) -> ApiResult<Written> {
        Self::check_type_meta(res, &obj)?;
        Self::set_scope(res, &mut obj, ns)?;
        match obj["metadata"]["name"].as_str() {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )))
            }
            _ => obj["metadata"]["name"] = json!(name),
        }
        let key = res.key(ns, name);
        let precondition = match &obj["metadata"]["resourceVersion"] {
            Value::String(s) if !s.is_empty() => Some(
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {s:?}")))?,
            ),
            _ => None,
        };
        let Some(kv) = self
            .store
            .get(&key)
            .await
            .map_err(|e| ApiError::from_store(e, target(res, name)))?
        else {
            if allow_create_on_update(res) && subresource.is_none() {
                return self.create(res, ns, obj, opts).await;
            }
            return Err(ApiError::not_found(target(res, name)));
        };
        if precondition.is_some_and(|p| p != kv.mod_revision) {
            return Err(ApiError::stale(target(res, name)));
        }
        let old = codec::decode(&kv)?;
        let now = strategy::now_rfc3339();
        let mut warnings = vec![];
        let mut obj = match subresource {
            Some("status") => {
                let merged = strategy::prepare_status_update(&obj, &old);
                let errs = match &res.custom {
                    None => {
                        rules::validate_status(&res.group, &res.version, &res.kind, &merged, &old)
                    }
                    Some(_) => vec![],
                };
                if !errs.is_empty() {
                    return Err(ApiError::invalid(target(res, name), &errs));
                }
                merged
            }
            Some(other) => {
                return Err(ApiError::not_found_path()
                    .with_message(format!("subresource {other} is not supported")))
            }
            None => {
                let mut obj = self.admit(res, obj, Some(&old), opts, &mut warnings)?;
                strategy::prepare_update(res, &mut obj, &old, &now);
                obj
            }
        };
        codec::set_rv(&mut obj, kv.mod_revision);
        if !opts.skip_managed_fields {
            patch::track_update(
                &res.group,
                &res.kind,
                &res.api_version(),
                Some(&old),
                &mut obj,
                &opts.field_manager,
                subresource.unwrap_or(""),
                &now,
            );
        }
        if without_timestamps(&obj) == without_timestamps(&old) {
            return Ok(Written {
                obj: old,
                warnings,
                created: false,
            });
        }
        if opts.dry_run {
            return Ok(Written {
                obj,
                warnings,
                created: false,
            });
        }
        let finishing = !old["metadata"]["deletionTimestamp"].is_null()
            && obj["metadata"]["finalizers"]
                .as_array()
                .is_none_or(|f| f.is_empty());
        if finishing {
            let kv = self
                .store
                .delete(&key, Some(kv.mod_revision))
                .await
                .map_err(|e| ApiError::from_store(e, target(res, name)))?;
            codec::set_rv(&mut obj, kv.mod_revision);
            self.after_delete(res, &obj).await;
            return Ok(Written {
                obj,
                warnings,
                created: false,
            });
        }
        let new_kv = self
            .store
            .update(&key, codec::encode(&obj)?, kv.mod_revision)
            .await
            .map_err(|e| ApiError::from_store(e, target(res, name)))?;
        codec::set_rv(&mut obj, new_kv.mod_revision);
        self.after_write(res).await;
        Ok(Written {
            obj,
            warnings,
            created: false,
        })
    }

    /// Delete, honouring finalizers (the object stays, with a deletionTimestamp, until they
    /// are gone) and graceful pod deletion (the node agent finishes it).
    pub async fn delete(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<(Value, bool)> {
        let key = res.key(ns, name);
        loop {
            let kv = self
                .store
                .get(&key)
                .await
                .map_err(|e| ApiError::from_store(e, target(res, name)))?
                .ok_or_else(|| ApiError::not_found(target(res, name)))?;
            let mut obj = codec::decode(&kv)?;
            if let Some(uid) = &opts.precondition_uid {
                let actual = obj["metadata"]["uid"].as_str().unwrap_or_default();
                if uid != actual {
                    return Err(ApiError::conflict(
                        target(res, name),
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                if *rv != kv.mod_revision.to_string() {
                    return Err(ApiError::conflict(
                        target(res, name),
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            kv.mod_revision
                        ),
                    ));
                }
            }
            let has_finalizers = obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            let is_namespace = res.group.is_empty() && res.kind == "Namespace";
            let grace = self.grace_period(res, &obj, opts);
            if has_finalizers || grace > 0 || is_namespace {
                let before = obj.clone();
                let m = &mut obj["metadata"];
                let marked = !m["deletionTimestamp"].is_null();
                let shorter = m["deletionGracePeriodSeconds"]
                    .as_i64()
                    .is_some_and(|g| grace < g);
                if !marked || shorter {
                    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace);
                    m["deletionTimestamp"] = json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
                    m["deletionGracePeriodSeconds"] = json!(grace);
                }
                if is_namespace {
                    obj["status"]["phase"] = json!("Terminating");
                }
                if obj == before || opts.dry_run {
                    return Ok((obj, false));
                }
                match self
                    .store
                    .update(&key, codec::encode(&obj)?, kv.mod_revision)
                    .await
                {
                    Ok(kv) => {
                        codec::set_rv(&mut obj, kv.mod_revision);
                        return Ok((obj, false));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(ApiError::from_store(e, target(res, name))),
                }
            }
            if opts.dry_run {
                return Ok((obj, true));
            }
            match self.store.delete(&key, Some(kv.mod_revision)).await {
                Ok(kv) => {
                    codec::set_rv(&mut obj, kv.mod_revision);
                    self.after_delete(res, &obj).await;
                    return Ok((obj, true));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_store(e, target(res, name))),
            }
        }
    }

    /// Pods bound to a node get a grace period; the node agent deletes them when their
    /// containers are gone. Unbound or finished pods go at once.
    fn grace_period(&self, res: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> i64 {
        if !(res.group.is_empty() && res.kind == "Pod") {
            return 0;
        }
        let phase = obj["status"]["phase"].as_str().unwrap_or_default();
        if obj["spec"]["nodeName"]
            .as_str()
            .unwrap_or_default()
            .is_empty()
            || phase == "Succeeded"
            || phase == "Failed"
        {
            return 0;
        }
        let g = opts
            .grace_period_seconds
            .or_else(|| obj["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        g.max(0)
    }

    async fn after_delete(&self, res: &ResourceInfo, obj: &Value) {
        if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
            // the CRD's objects go with it, as upstream's CRD finalizer does
            for r in resources::custom_resources(obj) {
                let page = self.list(&r, None, &ListOptions::default()).await;
                for kv in page.map(|p| p.items).unwrap_or_default() {
                    if let Err(e) = self.store.delete(&kv.key, None).await {
                        tracing::warn!(key = %kv.key, error = %e, "deleting custom resource of a deleted definition");
                    }
                }
            }
            self.after_write(res).await;
        }
    }

    /// Delete every object matching the list options, one by one.
    pub async fn delete_collection(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
        lo: &ListOptions,
        opts: &DeleteOptions,
    ) -> ApiResult<Vec<Value>> {
        let page = self.list(res, ns, lo).await?;
        let mut out = vec![];
        for kv in page.items {
            let obj = codec::decode(&kv)?;
            let name = obj["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ons = obj["metadata"]["namespace"].as_str().map(String::from);
            match self.delete(res, ons.as_deref(), &name, opts).await {
                Ok((o, _)) => out.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl ApiError {
    pub fn with_message(mut self, m: String) -> Self {
        self.message = m;
        self
    }
}

fn invalid_raw(
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
fn allow_create_on_update(res: &ResourceInfo) -> bool {
    res.group.is_empty() && matches!(res.kind.as_str(), "Endpoints" | "Event")
        || res.group == "coordination.k8s.io"
        || res.group == "events.k8s.io"
        || res.group == "discovery.k8s.io"
}

/// Compare objects ignoring managedFields timestamps, so a no-op write is not stored.
fn without_timestamps(v: &Value) -> Value {
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
