//! The verbs on a resource: get, list, create, update, patch, delete, deletecollection, with
//! their query parameters and output formats. Each parses, calls the registry, and renders.

use super::auth::{GrantWrite, UserInfo};
use super::patch::{self, PatchType};
use super::request::{Query, RequestInfo};
use super::response::{self, Body, Format};
use super::{listbody, printers, read_body, subresources, watch, ApiServer};
use crate::registry::selectors::{FieldSelector, LabelSelector};
use crate::registry::{
    codec, ApiError, DeleteOptions, FieldValidation, ListOptions, ResourceInfo, WriteGuard,
    WriteOptions, Written,
};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

pub(super) async fn resource<B>(
    srv: &Arc<ApiServer>,
    req: Request<B>,
    info: RequestInfo,
    query: Query,
    fmt: Format,
    user: &UserInfo,
) -> Result<Response<Body>, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let cat = srv.registry.catalog().snapshot();
    let res = cat
        .lookup(&info.group, &info.version, &info.resource)
        .ok_or_else(ApiError::not_found_path)?;
    if !res.namespaced && info.namespace.is_some() {
        return Err(ApiError::not_found_path());
    }
    if !res.verbs.contains(&info.verb) && info.subresource.is_none() {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let ns = if res.namespaced {
        info.namespace.clone()
    } else {
        None
    };
    if res.namespaced && ns.is_none() && !matches!(info.verb.as_str(), "list" | "watch") {
        return Err(ApiError::not_found_path());
    }
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let ns = ns.as_deref();
    if let Some(sub) = info.subresource.as_deref() {
        let name = info.name.as_deref().unwrap_or_default();
        let body = if matches!(info.verb.as_str(), "create" | "update" | "patch") {
            read_body(&headers, body).await?
        } else {
            Bytes::new()
        };
        return subresources::handle(
            srv, &res, ns, name, sub, &info.verb, &headers, body, &query, fmt, user,
        )
        .await;
    }
    match info.verb.as_str() {
        "get" => {
            let name = info.name.as_deref().unwrap_or_default();
            let obj = srv.registry.get(&res, ns, name).await?;
            Ok(render_one(&res, &obj, fmt, &query))
        }
        "list" => list(srv, &res, ns, &query, fmt).await,
        "watch" => watch::handle(srv, res.clone(), ns.map(String::from), &query, fmt).await,
        "create" => {
            if crate::registry::resources::is_review(&res.group) {
                let body = read_body(&headers, body).await?;
                let obj = parse_body(&headers, &body)?;
                let out = super::reviews::answer(srv.authorizer.as_ref(), &res, ns, &obj, user)?;
                return Ok(response::json_response(
                    StatusCode::CREATED,
                    &out,
                    json_or_yaml(fmt),
                ));
            }
            let body = read_body(&headers, body).await?;
            let obj = parse_body(&headers, &body)?;
            let mut opts = write_options(&query, &headers, user)?;
            guard_grants(srv, &res, ns, user, &mut opts);
            let w = srv.registry.create(&res, ns, obj, &opts).await?;
            Ok(written(StatusCode::CREATED, w, fmt))
        }
        "update" => {
            let name = info.name.as_deref().unwrap_or_default();
            let body = read_body(&headers, body).await?;
            let obj = parse_body(&headers, &body)?;
            let mut opts = write_options(&query, &headers, user)?;
            guard_grants(srv, &res, ns, user, &mut opts);
            let w = srv
                .registry
                .update(&res, ns, name, obj, None, &opts)
                .await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(written(code, w, fmt))
        }
        "patch" => {
            let name = info.name.as_deref().unwrap_or_default();
            let body = read_body(&headers, body).await?;
            let w = patch_object(srv, &res, ns, name, None, &headers, &body, &query, user).await?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(written(code, w, fmt))
        }
        "delete" => {
            let name = info.name.as_deref().unwrap_or_default();
            let body = read_body(&headers, body).await?;
            let opts = delete_options(&query, &body)?;
            let (obj, _gone) = srv.registry.delete(&res, ns, name, &opts).await?;
            Ok(response::json_response(
                StatusCode::OK,
                &obj,
                json_or_yaml(fmt),
            ))
        }
        "deletecollection" => {
            let body = read_body(&headers, body).await?;
            let opts = delete_options(&query, &body)?;
            let lo = list_options(&res, &query)?;
            let items = srv.registry.delete_collection(&res, ns, &lo, &opts).await?;
            let list = json!({"kind": res.list_kind, "apiVersion": res.api_version(), "metadata": {}, "items": items});
            Ok(response::json_response(
                StatusCode::OK,
                &list,
                json_or_yaml(fmt),
            ))
        }
        _ => Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        )),
    }
}

fn json_or_yaml(fmt: Format) -> Format {
    if fmt == Format::Yaml {
        Format::Yaml
    } else {
        Format::Json
    }
}

pub(super) fn written(code: StatusCode, w: Written, fmt: Format) -> Response<Body> {
    response::with_warnings(
        response::json_response(code, &w.obj, json_or_yaml(fmt)),
        &w.warnings,
    )
}

/// An object in the requested format (a one-row Table for kubectl get).
pub(super) fn render_one(
    res: &ResourceInfo,
    obj: &Value,
    fmt: Format,
    query: &Query,
) -> Response<Body> {
    if fmt == Format::Table {
        let t = table(
            res,
            std::slice::from_ref(obj),
            query,
            json!({"resourceVersion": obj["metadata"]["resourceVersion"]}),
        );
        return response::json_response(StatusCode::OK, &t, Format::Json);
    }
    if fmt == Format::Metadata {
        return response::json_response(StatusCode::OK, &response::partial(obj), Format::Json);
    }
    response::json_response(StatusCode::OK, obj, json_or_yaml(fmt))
}

pub(super) fn table(res: &ResourceInfo, objs: &[Value], query: &Query, list_meta: Value) -> Value {
    let now = jiff::Timestamp::now();
    let (columns, cells) = listbody::printer(res);
    let rows = objs.iter().map(|o| (cells(o, now), o)).collect();
    printers::table(&columns, rows, listbody::include_object(query), list_meta)
}

async fn list(
    srv: &Arc<ApiServer>,
    res: &Arc<ResourceInfo>,
    ns: Option<&str>,
    query: &Query,
    fmt: Format,
) -> Result<Response<Body>, ApiError> {
    let lo = list_options(res, query)?;
    let page = srv.registry.list(res, ns, &lo).await?;
    match fmt {
        Format::Json => return listbody::json(res, page),
        Format::Table => return listbody::table(res, page, query),
        Format::Metadata => return listbody::metadata(page),
        _ => {}
    }
    let meta = page.list_meta();
    let objs = page
        .items
        .iter()
        .map(codec::decode)
        .collect::<Result<Vec<_>, _>>()?;
    let list = json!({"kind": res.list_kind, "apiVersion": res.api_version(), "metadata": meta, "items": objs});
    Ok(response::json_response(StatusCode::OK, &list, Format::Yaml))
}

pub(super) fn list_options(res: &ResourceInfo, q: &Query) -> Result<ListOptions, ApiError> {
    let limit = match q.get("limit") {
        Some(l) if !l.is_empty() => l
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?
            .max(0) as usize,
        _ => 0,
    };
    Ok(ListOptions {
        label_selector: LabelSelector::parse(q.get("labelSelector").unwrap_or_default())?,
        field_selector: FieldSelector::parse(
            q.get("fieldSelector").unwrap_or_default(),
            &res.group,
            &res.kind,
            res.namespaced,
        )?,
        limit,
        continue_token: q
            .get("continue")
            .filter(|c| !c.is_empty())
            .map(String::from),
        resource_version: q.get("resourceVersion").map(String::from),
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|c| !c.is_empty())
            .map(String::from),
    })
}

/// Parse a JSON or YAML body into an object.
pub(super) fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let mt = ct.split(';').next().unwrap_or_default().trim();
    let v: Value = match mt {
        "application/json"
        | ""
        | "*/*"
        | "application/merge-patch+json"
        | "application/json-patch+json"
        | "application/strategic-merge-patch+json" => {
            serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be parsed as JSON: {e}"
                ))
            })?
        }
        "application/yaml" | "application/apply-patch+yaml" | "application/apply-patch+json" => {
            serde_yaml::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body of the request could not be parsed as YAML: {e}"
                ))
            })?
        }
        "application/vnd.kubernetes.protobuf" => super::protobuf::decode(body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request could not be decoded as protobuf: {e}"
            ))
        })?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    Ok(v)
}

fn field_manager(q: &Query, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        if m.len() > 128 {
            return Err(ApiError::bad_request(
                "fieldManager: Too long: may not be more than 128 bytes",
            ));
        }
        return Ok(m.to_string());
    }
    let ua = headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    let prefix = ua.split('/').next().unwrap_or("unknown");
    Ok(prefix.chars().take(128).collect())
}

pub(super) fn write_options(
    q: &Query,
    headers: &HeaderMap,
    _user: &UserInfo,
) -> Result<WriteOptions, ApiError> {
    let field_validation = match q.get("fieldValidation") {
        None | Some("") | Some("Warn") => FieldValidation::Warn,
        Some("Strict") => FieldValidation::Strict,
        Some("Ignore") => FieldValidation::Ignore,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation: Unsupported value: \"{other}\": supported values: \"Ignore\", \"Strict\", \"Warn\""
            )))
        }
    };
    let dry_run = match q.get("dryRun") {
        None | Some("") => false,
        Some("All") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
            )))
        }
    };
    Ok(WriteOptions {
        dry_run,
        field_manager: field_manager(q, headers)?,
        field_validation,
        skip_managed_fields: false,
        guard: None,
    })
}

/// Writes of roles and bindings pass the authorizer's escalation check on the object as it
/// will be stored.
fn guard_grants(
    srv: &Arc<ApiServer>,
    res: &ResourceInfo,
    ns: Option<&str>,
    user: &UserInfo,
    opts: &mut WriteOptions,
) {
    if res.group != "rbac.authorization.k8s.io" {
        return;
    }
    let authz = srv.authorizer.clone();
    let (user, resource, ns) = (user.clone(), res.plural.clone(), ns.map(String::from));
    opts.guard = Some(WriteGuard(Arc::new(
        move |obj: &Value, old: Option<&Value>| {
            authz.check_grant(
                &user,
                &GrantWrite {
                    group: "rbac.authorization.k8s.io",
                    resource: &resource,
                    namespace: ns.as_deref(),
                    name: obj["metadata"]["name"].as_str().unwrap_or_default(),
                    obj,
                    old,
                },
            )
        },
    )));
}

pub(super) fn delete_options(q: &Query, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let b: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let grace = match q.get("gracePeriodSeconds") {
        Some(g) => Some(
            g.parse::<i64>()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        ),
        None => b["gracePeriodSeconds"].as_i64(),
    };
    let dry_run = q.get("dryRun") == Some("All")
        || b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    let propagation = q
        .get("propagationPolicy")
        .map(String::from)
        .or_else(|| b["propagationPolicy"].as_str().map(String::from));
    if let Some(p) = &propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!(
                "propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(DeleteOptions {
        dry_run,
        grace_period_seconds: grace,
        precondition_uid: b["preconditions"]["uid"].as_str().map(String::from),
        precondition_rv: b["preconditions"]["resourceVersion"]
            .as_str()
            .map(String::from),
        propagation_policy: propagation,
        orphan_dependents: match q.get("orphanDependents") {
            Some(v) => {
                Some(v.parse::<bool>().map_err(|_| {
                    ApiError::bad_request(format!("invalid orphanDependents {v:?}"))
                })?)
            }
            None => b["orphanDependents"].as_bool(),
        },
    })
}

/// PATCH on an object or its status: apply the patch to the current object and write it
/// back, retrying on a conflict unless the patch itself carries a resourceVersion.
#[allow(clippy::too_many_arguments)]
pub(super) async fn patch_object(
    srv: &Arc<ApiServer>,
    res: &Arc<ResourceInfo>,
    ns: Option<&str>,
    name: &str,
    subresource: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    query: &Query,
    user: &UserInfo,
) -> Result<Written, ApiError> {
    let ct = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let pt = PatchType::from_content_type(ct)
        .filter(|pt| *pt != PatchType::StrategicMerge || !res.is_custom())
        .ok_or_else(|| ApiError::unsupported_patch_type(PatchType::accepted(res.is_custom())))?;
    let mut opts = write_options(query, headers, user)?;
    guard_grants(srv, res, ns, user, &mut opts);
    let patch_doc = parse_body(headers, body)?;
    if pt == PatchType::Apply && query.get("fieldManager").is_none_or(|m| m.is_empty()) {
        return Err(ApiError::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
    }
    let force = query.flag("force");
    if force && pt != PatchType::Apply {
        return Err(ApiError::bad_request(
            "force: Invalid value: true: may not be specified for non-apply patch",
        ));
    }
    for _attempt in 0..16 {
        let current = match srv.registry.get(res, ns, name).await {
            Ok(o) => Some(o),
            Err(e) if e.code == 404 && pt == PatchType::Apply && subresource.is_none() => None,
            Err(e) => return Err(e),
        };
        let now = crate::registry::strategy::now_rfc3339();
        let patched = match (pt, &current) {
            (PatchType::Json, Some(c)) => patch::json_patch(c, &patch_doc).map_err(patch_error)?,
            (PatchType::Merge, Some(c)) => {
                patch::try_merge_patch(c, &patch_doc).map_err(patch_error)?
            }
            (PatchType::StrategicMerge, Some(c)) => {
                patch::strategic_merge_patch(&res.group, &res.kind, c, &patch_doc)
                    .map_err(patch_error)?
            }
            (PatchType::Apply, live) => {
                check_applied(res, name, &patch_doc)?;
                opts.skip_managed_fields = true;
                patch::apply(
                    &res.group,
                    &res.kind,
                    &res.api_version(),
                    live.as_ref(),
                    &patch_doc,
                    &opts.field_manager,
                    force,
                    &now,
                )
                .map_err(|e| apply_error(res, e))?
            }
            (_, None) => unreachable!("non-apply patches return 404 above"),
        };
        let Some(current) = current else {
            return srv.registry.create(res, ns, patched, &opts).await;
        };
        let own_rv =
            patched["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"];
        match srv
            .registry
            .update(res, ns, name, patched, subresource, &opts)
            .await
        {
            Err(e) if e.code == 409 && e.reason == "Conflict" && own_rv => continue,
            other => return other,
        }
    }
    Err(ApiError::conflict(
        crate::registry::Target {
            group: &res.group,
            resource: &res.plural,
            kind: &res.kind,
            name,
        },
        "too many conflicts applying the patch",
    ))
}

fn check_applied(res: &ResourceInfo, name: &str, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the apply configuration must be an object",
        ));
    }
    if obj["apiVersion"].as_str().is_none_or(|s| s.is_empty())
        || obj["kind"].as_str().is_none_or(|s| s.is_empty())
    {
        return Err(ApiError::bad_request(
            "invalid object type: apiVersion and kind must be set in an apply configuration",
        ));
    }
    if let Some(n) = obj["metadata"]["name"].as_str() {
        if n != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
    }
    if obj["kind"] != json!(res.kind) {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({}) does not match the expected kind ({})",
            obj["kind"].as_str().unwrap_or_default(),
            res.kind
        )));
    }
    Ok(())
}

fn patch_error(e: patch::PatchError) -> ApiError {
    let mut err = ApiError::bad_request(e.to_string());
    if matches!(e, patch::PatchError::TestFailed { .. }) {
        err = ApiError::internal(e.to_string());
        err.code = 422;
        err.reason = "Invalid";
    }
    err
}

fn apply_error(res: &ResourceInfo, e: patch::PatchError) -> ApiError {
    match &e {
        patch::PatchError::Conflict(conflicts) => {
            let causes: Vec<Value> = conflicts
                .iter()
                .map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with {}", c.manager_display()), "field": c.field}))
                .collect();
            ApiError {
                code: 409,
                reason: "Conflict",
                message: e.to_string(),
                details: Some(json!({"causes": causes, "kind": res.plural})),
            }
        }
        _ => ApiError::bad_request(e.to_string()),
    }
}
