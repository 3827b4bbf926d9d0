//! Checks for the `x-kubernetes-*` extensions that upstream runs after schema validation:
//! embedded resources (`apiVersion`/`kind`) and list-type `set`/`map` uniqueness.

use super::validate::key_of;
use super::{canonical, child, go_quote, index, items, node, properties, show, SchemaError};
use serde_json::{Map, Value};
use std::collections::HashSet;

/// `x-kubernetes-list-type: set`: every later duplicate is reported.
pub(super) fn list_set(errs: &mut Vec<SchemaError>, a: &[Value], path: &str) {
    let mut seen = HashSet::new();
    for (i, x) in a.iter().enumerate() {
        if !seen.insert(key_of(x)) {
            errs.push(SchemaError::duplicate(&index(path, i), &show(x)));
        }
    }
}

/// `x-kubernetes-list-type: map`: items are objects, unique by their key fields (a missing key
/// counts as its default; items missing a key without default are left to `required`).
pub(super) fn list_map(
    errs: &mut Vec<SchemaError>,
    s: &Map<String, Value>,
    a: &[Value],
    path: &str,
) {
    let keys: Vec<&str> = match s.get("x-kubernetes-list-map-keys") {
        Some(Value::Array(k)) => k.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let item_props = items(s).and_then(node).and_then(properties);
    let mut seen = HashSet::new();
    for (i, x) in a.iter().enumerate() {
        let m = match x {
            Value::Null => continue,
            Value::Object(m) => m,
            other => {
                errs.push(SchemaError::invalid(
                    &index(path, i),
                    &show(other),
                    "must be an object for an array of list-type map",
                ));
                continue;
            }
        };
        if keys.is_empty() {
            continue;
        }
        let mut tuple = Map::new();
        let mut complete = true;
        for k in &keys {
            let found = m.get(*k).or_else(|| {
                item_props
                    .and_then(|p| p.get(*k))
                    .and_then(node)
                    .and_then(|p| p.get("default"))
            });
            match found {
                Some(v) => {
                    tuple.insert((*k).to_string(), v.clone());
                }
                None => complete = false,
            }
        }
        if !complete {
            continue; // the required check reports missing keys
        }
        let tuple = Value::Object(tuple);
        if !seen.insert(key_of(&tuple)) {
            let mut shown = String::new();
            canonical(&tuple, &mut shown);
            errs.push(SchemaError::duplicate(&index(path, i), &shown));
        }
    }
}

/// Embedded resources need a non-empty `kind` and a well-formed `apiVersion`.
pub(super) fn embedded(errs: &mut Vec<SchemaError>, m: &Map<String, Value>, path: &str) {
    let api = child(path, "apiVersion");
    match m.get("apiVersion") {
        None => errs.push(SchemaError::required(&api, "must not be empty")),
        Some(Value::String(v)) if v.is_empty() => {
            errs.push(SchemaError::invalid(&api, "\"\"", "must not be empty"))
        }
        Some(Value::String(v)) if v.matches('/').count() > 1 => errs.push(SchemaError::invalid(
            &api,
            &go_quote(v),
            &format!("unexpected GroupVersion string: {v}"),
        )),
        Some(Value::String(_)) => {}
        Some(other) => errs.push(SchemaError::invalid(&api, &show(other), "must be a string")),
    }
    let kind = child(path, "kind");
    match m.get("kind") {
        None => errs.push(SchemaError::required(&kind, "must not be empty")),
        Some(Value::String(v)) if v.is_empty() => {
            errs.push(SchemaError::invalid(&kind, "\"\"", "must not be empty"))
        }
        Some(Value::String(_)) => {}
        Some(other) => errs.push(SchemaError::invalid(
            &kind,
            &show(other),
            "must be a string",
        )),
    }
}
