//! Admission of a write: type and scope checks, the namespace's existence and state, strict
//! decoding against the kind's type (or a CRD's schema), defaulting, pruning and validation.

use super::{cel, codec, ApiError, ApiResult, Registry, ResourceInfo};
use super::{invalid_raw, ns_target, rules, schema, target, typed, FieldValidation, WriteOptions};
use serde_json::{json, Value};

impl Registry {
    /// Check the namespace of a namespaced write exists and is not terminating.
    pub(super) async fn check_namespace(
        &self,
        res: &ResourceInfo,
        ns: Option<&str>,
    ) -> ApiResult<()> {
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
    pub(super) fn admit(
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
        if let (true, Some(old)) = (super::services::is_service(res), old) {
            super::services::fields::drop_type_dependent_fields(&mut obj, old);
        }
        let errs: Vec<rules::FieldError> = match &res.custom {
            None => rules::validate(&res.group, &res.version, &res.kind, &obj, old),
            Some(c) => {
                let errs = rules::validate("", "", "", &obj, old);
                if let Some(s) = &c.schema {
                    let mut se = schema::validate(s, &obj);
                    let (ce, ratcheted) = cel::validate_custom(&c.cel, &obj, old, &se);
                    se.extend(ce);
                    warnings.extend(ratcheted);
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
                    let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
                    let structural = schema::check_structural(s, &path);
                    if structural.is_empty() {
                        se.extend(cel::check_crd_rules(s, &path));
                    }
                    se.extend(structural);
                }
            }
            if !se.is_empty() {
                let msgs: Vec<String> = se.iter().map(|e| e.message.clone()).collect();
                return Err(invalid_raw(res, &name, &msgs, &se));
            }
        }
        Ok(obj)
    }

    /// Validation of a custom resource's status update: the schema and the CEL rules on the
    /// whole object, as upstream's status strategy checks it.
    pub(super) fn validate_custom_status(
        res: &ResourceInfo,
        obj: &Value,
        old: &Value,
        warnings: &mut Vec<String>,
    ) -> ApiResult<()> {
        let Some(c) = &res.custom else {
            return Ok(());
        };
        let Some(s) = &c.schema else {
            return Ok(());
        };
        // A status update changes only status: schema errors elsewhere were there before and
        // are left alone, as upstream's ratcheting leaves unchanged fields.
        let mut se: Vec<schema::SchemaError> = schema::validate(s, obj)
            .into_iter()
            .filter(|e| {
                e.field == "status"
                    || e.field.starts_with("status.")
                    || e.field.starts_with("status[")
            })
            .collect();
        let (ce, ratcheted) = cel::validate_custom(&c.cel, obj, Some(old), &se);
        se.extend(ce);
        warnings.extend(ratcheted);
        if se.is_empty() {
            return Ok(());
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        let msgs: Vec<String> = se.iter().map(|e| e.message.clone()).collect();
        Err(invalid_raw(res, name, &msgs, &se))
    }

    pub(super) fn check_type_meta(res: &ResourceInfo, obj: &Value) -> ApiResult<()> {
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

    pub(super) fn set_scope(
        res: &ResourceInfo,
        obj: &mut Value,
        ns: Option<&str>,
    ) -> ApiResult<()> {
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
}
