//! Writes: create, update (main resource and status), delete with finalizers and graceful
//! pod deletion, and deletecollection. Every write is a compare-and-swap on the store.

use super::{
    allow_create_on_update, codec, generate_name, resources, rules, services, strategy, target,
    without_timestamps,
};
use super::{
    ApiError, ApiResult, DeleteOptions, ListOptions, Registry, ResourceInfo, WriteOptions, Written,
};
use crate::apiserver::patch;
use crate::store::StoreError;
use serde_json::{json, Value};

impl Registry {
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
        if res.group.is_empty() && res.kind == "Pod" && res.custom.is_none() {
            self.mount_service_account(ns.unwrap_or("default"), &mut obj)
                .await?;
        }
        self.default_storage_class(res, &mut obj).await?;
        let now = strategy::now_rfc3339();
        let mut warnings = vec![];
        let mut obj = self.admit(res, obj, None, opts, &mut warnings)?;
        strategy::prepare_create(res, &mut obj, &now);
        opts.check(&obj, None)?;
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
        // Allocated values are the server's, owned by no field manager (as upstream).
        let allocation = self.allocate_service(res, &mut obj, None).await?;
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
        if let Some(t) = allocation {
            t.commit();
        }
        self.after_write(res).await;
        Ok(Written {
            obj,
            warnings,
            created: true,
        })
    }

    pub(super) async fn after_write(&self, res: &ResourceInfo) {
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
                Self::validate_custom_status(res, &merged, &old, &mut warnings)?;
                merged
            }
            Some(other) => {
                return Err(ApiError::not_found_path()
                    .with_message(format!("subresource {other} is not supported")))
            }
            None => {
                let mut obj = obj;
                strategy::keep_generation(&mut obj, &old);
                let mut obj = self.admit(res, obj, Some(&old), opts, &mut warnings)?;
                strategy::prepare_update(res, &mut obj, &old, &now);
                opts.check(&obj, Some(&old))?;
                obj
            }
        };
        let allocation = match subresource {
            None => self.allocate_service(res, &mut obj, Some(&old)).await?,
            Some(_) => None,
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
            if let Some(t) = allocation {
                t.commit();
            }
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
        if let Some(t) = allocation {
            t.commit();
        }
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
        if services::is_service(res) {
            // The allocators are built before any Service leaves the store, so the release
            // after the delete below never frees a value taken since.
            self.service_allocator().await?;
        }
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
            let before = obj.clone();
            let is_namespace = res.group.is_empty() && res.kind == "Namespace";
            if !is_namespace {
                if let Some(f) = gc_finalizers(res, &obj, opts) {
                    obj["metadata"]["finalizers"] = Value::Array(f);
                }
            }
            let has_finalizers = obj["metadata"]["finalizers"]
                .as_array()
                .is_some_and(|f| !f.is_empty());
            let grace = self.grace_period(res, &obj, opts);
            if has_finalizers || grace > 0 || is_namespace {
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
        self.release_service(res, obj).await;
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

pub const ORPHAN_FINALIZER: &str = "orphan";
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// The finalizers a delete leaves for the garbage collector, as upstream's generic store
/// sets them: `orphan` for Orphan (or orphanDependents=true), `foregroundDeletion` for
/// Foreground; an explicit policy replaces a finalizer an earlier delete set; without one,
/// the object's own finalizer stands, else the kind's default (core/v1
/// ReplicationControllers orphan for backwards compatibility; everything else, the apps/v1
/// workloads included, goes in the background). None when nothing changes.
fn gc_finalizers(res: &ResourceInfo, obj: &Value, opts: &DeleteOptions) -> Option<Vec<Value>> {
    let current: Vec<Value> = obj["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = |f: &str| current.iter().any(|v| v == f);
    let orphan_by_default = res.group.is_empty() && res.kind == "ReplicationController";
    let (orphan, foreground) = match (opts.propagation_policy.as_deref(), opts.orphan_dependents) {
        (Some("Orphan"), _) => (true, false),
        (Some("Foreground"), _) => (false, true),
        (Some(_), _) => (false, false),
        (None, Some(o)) => (o, false),
        (None, None) if has(ORPHAN_FINALIZER) => (true, false),
        (None, None) if has(FOREGROUND_FINALIZER) => (false, true),
        (None, None) => (orphan_by_default, false),
    };
    let mut out: Vec<Value> = current
        .iter()
        .filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    if orphan {
        out.push(json!(ORPHAN_FINALIZER));
    }
    if foreground {
        out.push(json!(FOREGROUND_FINALIZER));
    }
    let same = out.len() == current.len() && out.iter().all(|f| current.contains(f));
    (!same).then_some(out)
}
