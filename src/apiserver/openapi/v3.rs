//! OpenAPI 3.0 documents, one per group-version, in the layout the
//! Kubernetes API server serves under `/openapi/v3/<api/v1 | apis/g/v>`.

use super::paths::{self, Body, KindInfo, Operation, Param, PathItem, Resolve};
use super::schema::{self, GVK_EXT, V3_PREFIX};
use serde_json::{json, Map, Value};

const RESPONSE_TYPES: [&str; 2] = ["application/json", "application/yaml"];
const REQUEST_TYPES: [&str; 2] = ["application/json", "application/yaml"];

/// Builds the document of one group-version. `lookup` resolves a
/// definition name to its canonical schema.
pub(super) fn document<'a>(
    group: &str,
    version: &str,
    kinds: &[KindInfo],
    resolve: Resolve,
    lookup: &dyn Fn(&str) -> Option<&'a Value>,
) -> Value {
    let items = paths::group_version_paths(group, version, kinds, resolve);
    let mut roots = Vec::new();
    for k in kinds {
        roots.push(k.def.clone());
        roots.push(k.list.clone());
    }
    let mut out_paths = Map::new();
    for item in &items {
        for op in &item.operations {
            roots.extend(op.request.iter().cloned());
            for (_, body) in &op.responses {
                if let Body::Def(d) = body {
                    roots.push(d.clone());
                }
            }
        }
        out_paths.insert(item.path.clone(), path_item(item));
    }
    roots.push(schema::WATCH_EVENT.into());
    let mut schemas = Map::new();
    for name in schema::closure(roots, lookup) {
        if let Some(def) = lookup(&name) {
            schemas.insert(name, schema::to_v3(def.clone()));
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "unversioned"},
        "paths": out_paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {
                    "description": "Bearer Token authentication",
                    "in": "header",
                    "name": "authorization",
                    "type": "apiKey",
                },
            },
        },
        "security": [{"BearerToken": []}],
    })
}

fn parameter(p: &Param) -> Value {
    let mut v = json!({
        "name": p.name,
        "in": p.location,
        "description": p.description,
        "schema": {"type": p.ty, "uniqueItems": true},
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn content(types: &[&str], schema: Value) -> Value {
    let mut map = Map::new();
    for t in types {
        map.insert((*t).to_string(), json!({ "schema": schema }));
    }
    Value::Object(map)
}

fn operation(op: &Operation) -> Value {
    let mut v = json!({
        "tags": [op.tag],
        "description": op.description,
        "operationId": op.id,
    });
    if !op.params.is_empty() {
        v["parameters"] = op.params.iter().map(|p| parameter(p)).collect();
    }
    if let Some(req) = &op.request {
        let types = op.patch.map_or(REQUEST_TYPES.to_vec(), paths::sorted);
        v["requestBody"] = json!({
            "content": content(&types, json!({"$ref": format!("{V3_PREFIX}{req}")})),
            "required": op.method != "delete",
        });
    }
    let mut responses = Map::new();
    for (code, body) in &op.responses {
        let described = match body {
            Body::Def(d) => content(&RESPONSE_TYPES, json!({"$ref": format!("{V3_PREFIX}{d}")})),
            Body::Text => content(&["*/*"], json!({"type": "string"})),
        };
        responses.insert(
            (*code).to_string(),
            json!({"description": code_text(code), "content": described}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    v["responses"] = Value::Object(responses);
    v["x-kubernetes-action"] = op.action.into();
    if !op.gvk.is_null() {
        v[GVK_EXT] = op.gvk.clone();
    }
    v
}

pub(super) fn code_text(code: &str) -> &'static str {
    match code {
        "201" => "Created",
        "202" => "Accepted",
        _ => "OK",
    }
}

fn path_item(item: &PathItem) -> Value {
    let mut v = Map::new();
    for op in &item.operations {
        v.insert(op.method.into(), operation(op));
    }
    if !item.params.is_empty() {
        v.insert(
            "parameters".into(),
            item.params.iter().map(|p| parameter(p)).collect(),
        );
    }
    Value::Object(v)
}
