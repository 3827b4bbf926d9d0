//! Subresources: status, scale (autoscaling/v1 Scale over the replicas of a workload or a
//! custom resource), pods/binding, pods/eviction, serviceaccounts/token and
//! namespaces/finalize.

use super::auth::UserInfo;
use super::handlers::{
    delete_options, parse_body, patch_object, render_one, write_options, written,
};
use super::patch::{self, PatchType};
use super::request::Query;
use super::response::{self, Body, Format};
use super::ApiServer;
use crate::registry::{ApiError, ResourceInfo};
use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

#[allow(clippy::too_many_arguments)]
pub(super) async fn handle(
    srv: &Arc<ApiServer>,
    res: &Arc<ResourceInfo>,
    ns: Option<&str>,
    name: &str,
    sub: &str,
    verb: &str,
    headers: &HeaderMap,
    body: Bytes,
    query: &Query,
    fmt: Format,
    user: &UserInfo,
) -> Result<Response<Body>, ApiError> {
    if !res.subresources.iter().any(|s| s == sub) {
        return Err(ApiError::not_found_path());
    }
    let mismatch = || {
        ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({sub})"
        ))
    };
    match (sub, verb) {
        ("status", "get") => Ok(render_one(
            res,
            &srv.registry.get(res, ns, name).await?,
            fmt,
            query,
        )),
        ("status", "update") => {
            let obj = parse_body(headers, &body)?;
            let opts = write_options(query, headers, user)?;
            Ok(written(
                StatusCode::OK,
                srv.registry
                    .update(res, ns, name, obj, Some("status"), &opts)
                    .await?,
                fmt,
            ))
        }
        ("status", "patch") => Ok(written(
            StatusCode::OK,
            patch_object(
                srv,
                res,
                ns,
                name,
                Some("status"),
                headers,
                &body,
                query,
                user,
            )
            .await?,
            fmt,
        )),
        ("scale", "get") => {
            let obj = srv.registry.get(res, ns, name).await?;
            Ok(response::json_response(
                StatusCode::OK,
                &to_scale(res, &obj)?,
                json_fmt(fmt),
            ))
        }
        ("scale", "update") | ("scale", "patch") => {
            let opts = write_options(query, headers, user)?;
            for _ in 0..8 {
                let obj = srv.registry.get(res, ns, name).await?;
                let scale = to_scale(res, &obj)?;
                // A patch is preconditioned only by a resourceVersion it carries itself; the
                // one it merges onto is the current object's, so conflicts are retried.
                let mut own_rv = None;
                let wanted = if verb == "update" {
                    parse_body(headers, &body)?
                } else {
                    let ct = headers
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default();
                    let doc = parse_body(headers, &body)?;
                    own_rv = Some(
                        doc["metadata"]["resourceVersion"].is_string()
                            || doc.as_array().is_some_and(|ops| {
                                ops.iter()
                                    .any(|op| op["path"] == "/metadata/resourceVersion")
                            }),
                    );
                    match PatchType::from_content_type(
                        ct.split(';').next().unwrap_or_default().trim(),
                    ) {
                        Some(PatchType::Json) => patch::json_patch(&scale, &doc)
                            .map_err(|e| ApiError::bad_request(e.to_string()))?,
                        Some(PatchType::Merge) | Some(PatchType::StrategicMerge) => {
                            patch::try_merge_patch(&scale, &doc)
                                .map_err(|e| ApiError::bad_request(e.to_string()))?
                        }
                        _ => return Err(ApiError::unsupported_media_type(ct)),
                    }
                };
                let precondition = wanted["metadata"]["resourceVersion"]
                    .as_str()
                    .filter(|s| !s.is_empty() && own_rv != Some(false))
                    .map(String::from);
                let replicas = wanted["spec"]["replicas"].as_i64().ok_or_else(|| {
                    ApiError::bad_request("Scale.autoscaling/v1 spec.replicas must be an integer")
                })?;
                if replicas < 0 {
                    let e = crate::registry::rules::FieldError {
                        kind: crate::registry::rules::ErrorType::Invalid,
                        field: "spec.replicas".into(),
                        value: Some(replicas.to_string()),
                        detail: "must be greater than or equal to 0".into(),
                    };
                    return Err(ApiError::invalid(
                        crate::registry::Target {
                            group: "autoscaling",
                            resource: &res.plural,
                            kind: "Scale",
                            name,
                        },
                        &[e],
                    ));
                }
                let mut updated = obj.clone();
                if let Some(rv) = &precondition {
                    updated["metadata"]["resourceVersion"] = json!(rv);
                }
                set_path(&mut updated, &spec_replicas_path(res), json!(replicas));
                match srv
                    .registry
                    .update(res, ns, name, updated, None, &opts)
                    .await
                {
                    Ok(w) => {
                        return Ok(response::json_response(
                            StatusCode::OK,
                            &to_scale(res, &w.obj)?,
                            json_fmt(fmt),
                        ))
                    }
                    Err(e) if e.code == 409 && precondition.is_none() => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(ApiError::internal("too many conflicts updating scale"))
        }
        ("binding", "create") => {
            let b = parse_body(headers, &body)?;
            let node = b["target"]["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .ok_or_else(|| ApiError::bad_request("Binding target.name: Required value"))?;
            let ns = ns.unwrap_or("default");
            srv.registry.bind_pod(ns, name, node).await?;
            Ok(response::json_response(
                StatusCode::CREATED,
                &success(201),
                Format::Json,
            ))
        }
        ("eviction", "create") => {
            let b = parse_body(headers, &body)?;
            let opts = delete_options(
                query,
                serde_json::to_vec(&b["deleteOptions"])
                    .unwrap_or_default()
                    .as_slice(),
            )
            .or_else(|_| delete_options(query, b"{}"))?;
            super::eviction::evict(srv, ns.unwrap_or("default"), name, opts).await?;
            Ok(response::json_response(
                StatusCode::CREATED,
                &success(201),
                Format::Json,
            ))
        }
        ("token", "create") => {
            let b = parse_body(headers, &body)?;
            let out = super::satoken::token_request(srv, ns.unwrap_or("default"), name, b).await?;
            Ok(response::json_response(
                StatusCode::CREATED,
                &out,
                json_fmt(fmt),
            ))
        }
        ("log", "get") => {
            super::nodeproxy::pod_logs(srv, ns.unwrap_or("default"), name, query).await
        }
        ("finalize", "update") => {
            let b = parse_body(headers, &body)?;
            let obj = srv
                .registry
                .finalize_namespace(name, &b["spec"]["finalizers"])
                .await?;
            Ok(response::json_response(StatusCode::OK, &obj, json_fmt(fmt)))
        }
        _ => Err(mismatch()),
    }
}

fn json_fmt(fmt: Format) -> Format {
    if fmt == Format::Yaml {
        Format::Yaml
    } else {
        Format::Json
    }
}

fn success(code: u16) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": code})
}

fn spec_replicas_path(res: &ResourceInfo) -> String {
    res.custom
        .as_ref()
        .and_then(|c| c.spec_replicas_path.clone())
        .unwrap_or_else(|| ".spec.replicas".into())
}

fn get_path<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.trim_start_matches('.')
        .split('.')
        .fold(v, |v, k| &v[k])
}

fn set_path(v: &mut Value, path: &str, val: Value) {
    let keys: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    let mut cur = v;
    for k in &keys[..keys.len() - 1] {
        if !cur[*k].is_object() {
            cur[*k] = json!({});
        }
        cur = &mut cur[*k];
    }
    cur[keys[keys.len() - 1]] = val;
}

/// The autoscaling/v1 Scale view of an object.
fn to_scale(res: &ResourceInfo, obj: &Value) -> Result<Value, ApiError> {
    let (spec, status, selector) = match &res.custom {
        Some(c) => {
            let spec = get_path(
                obj,
                c.spec_replicas_path.as_deref().unwrap_or(".spec.replicas"),
            )
            .as_i64()
            .unwrap_or(0);
            let status = c
                .status_replicas_path
                .as_deref()
                .map(|p| get_path(obj, p).as_i64().unwrap_or(0))
                .unwrap_or(0);
            let sel = c
                .label_selector_path
                .as_deref()
                .and_then(|p| get_path(obj, p).as_str().map(String::from));
            (spec, status, sel)
        }
        None => {
            let sel = &obj["spec"]["selector"];
            let sel = if res.kind == "ReplicationController" {
                sel.as_object().map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
            } else {
                Some(format_selector(sel))
            };
            (
                obj["spec"]["replicas"].as_i64().unwrap_or(1),
                obj["status"]["replicas"].as_i64().unwrap_or(0),
                sel,
            )
        }
    };
    let m = &obj["metadata"];
    let mut scale = json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {"name": m["name"], "namespace": m["namespace"], "uid": m["uid"], "resourceVersion": m["resourceVersion"], "creationTimestamp": m["creationTimestamp"]},
        "spec": {"replicas": spec},
        "status": {"replicas": status},
    });
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        scale["status"]["selector"] = json!(s);
    }
    Ok(scale)
}

/// metav1.LabelSelector in its string form ("app=web,tier in (a,b)").
pub fn format_selector(sel: &Value) -> String {
    let mut parts: Vec<String> = sel["matchLabels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    for e in sel["matchExpressions"].as_array().into_iter().flatten() {
        let key = e["key"].as_str().unwrap_or_default();
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", vals.join(",")),
            "NotIn" => format!("{key} notin ({})", vals.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        });
    }
    parts.join(",")
}
