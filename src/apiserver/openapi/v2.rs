//! The swagger 2.0 document served at `/openapi/v2`: every group-version in
//! one document, definitions under `#/definitions/`.

use super::paths::{self, Body, KindInfo, Operation, Param, PathItem, Resolve};
use super::schema::{self, GVK_EXT, V2_PREFIX};
use super::v3::code_text;
use serde_json::{json, Map, Value};

/// One group-version's input to the document.
pub(super) struct Gv<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kinds: &'a [KindInfo],
}

/// Builds the whole document. `lookup` resolves a definition name to its
/// canonical schema.
pub(super) fn document<'a>(
    gvs: &[Gv],
    resolve: Resolve,
    lookup: &dyn Fn(&str) -> Option<&'a Value>,
    version: &str,
) -> Value {
    let mut roots = vec![schema::WATCH_EVENT.to_string()];
    let mut out_paths = Map::new();
    for gv in gvs {
        for item in paths::group_version_paths(gv.group, gv.version, gv.kinds, resolve) {
            for op in &item.operations {
                roots.extend(op.request.iter().cloned());
                for (_, body) in &op.responses {
                    if let Body::Def(d) = body {
                        roots.push(d.clone());
                    }
                }
            }
            out_paths.insert(item.path.clone(), path_item(&item));
        }
        for k in gv.kinds {
            roots.push(k.def.clone());
            roots.push(k.list.clone());
        }
    }
    let mut definitions = Map::new();
    for name in schema::closure(roots, lookup) {
        if let Some(def) = lookup(&name) {
            let v2 = schema::to_v2(&name, def.clone());
            definitions.insert(name, v2);
        }
    }
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": out_paths,
        "definitions": definitions,
        "securityDefinitions": {
            "BearerToken": {
                "description": "Bearer Token authentication",
                "in": "header",
                "name": "authorization",
                "type": "apiKey",
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
        "type": p.ty,
        "uniqueItems": true,
    });
    if p.location == "path" {
        v["required"] = true.into();
    }
    v
}

fn operation(op: &Operation) -> Value {
    let consumes: Vec<&str> = op.patch.map_or_else(|| vec!["*/*"], paths::sorted);
    let produces: Vec<&str> = if op.responses.iter().any(|(_, b)| matches!(b, Body::Text)) {
        vec!["*/*"]
    } else {
        vec!["application/json", "application/yaml"]
    };
    let mut params: Vec<Value> = Vec::new();
    if let Some(req) = &op.request {
        params.push(json!({
            "name": "body",
            "in": "body",
            "required": op.method != "delete",
            "schema": {"$ref": format!("{V2_PREFIX}{req}")},
        }));
    }
    params.extend(op.params.iter().map(|p| parameter(p)));
    let mut responses = Map::new();
    for (code, body) in &op.responses {
        let schema = match body {
            Body::Def(d) => json!({"$ref": format!("{V2_PREFIX}{d}")}),
            Body::Text => json!({"type": "string"}),
        };
        responses.insert(
            (*code).to_string(),
            json!({"description": code_text(code), "schema": schema}),
        );
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut v = json!({
        "description": op.description,
        "consumes": consumes,
        "produces": produces,
        "schemes": ["https"],
        "tags": [op.tag],
        "operationId": op.id,
        "responses": responses,
        "x-kubernetes-action": op.action,
    });
    if !params.is_empty() {
        v["parameters"] = Value::Array(params);
    }
    if !op.gvk.is_null() {
        v[GVK_EXT] = op.gvk.clone();
    }
    v
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
