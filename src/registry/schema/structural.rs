//! The structural checks a CRD version's schema must pass before it is served, reported with
//! upstream's paths (`<path>.properties[spec].properties[replicas].type`) and wording.

use super::{go_quote, node, show, str_of, SchemaError, MAX_DEPTH};
use serde_json::{Map, Value};

const TYPES: [&str; 6] = ["array", "boolean", "integer", "number", "object", "string"];

#[derive(Clone, Copy, PartialEq)]
enum Level {
    Root,
    Field,
    Item,
    /// Inside `allOf`/`anyOf`/`oneOf`/`not`: value validations only, types optional.
    Junctor,
}

/// Checks `schema` (found at `path`, e.g. "spec.versions[0].schema.openAPIV3Schema") is
/// structural: typed everywhere except under preserve-unknown/int-or-string, no `$ref`, arrays
/// with `items`, well-formed extensions.
pub fn check_structural(schema: &Value, path: &str) -> Vec<SchemaError> {
    let mut errs = Vec::new();
    walk(schema, path, Level::Root, 0, &mut errs);
    errs
}

fn walk(schema: &Value, path: &str, level: Level, depth: usize, errs: &mut Vec<SchemaError>) {
    if depth > MAX_DEPTH {
        errs.push(SchemaError::forbidden(
            path,
            &format!("schema nesting exceeds the maximum depth of {MAX_DEPTH}"),
        ));
        return;
    }
    let Some(s) = node(schema) else {
        errs.push(SchemaError::invalid(
            path,
            &show(schema),
            "must be a schema object",
        ));
        return;
    };
    let at = |k: &str| format!("{path}.{k}");
    if s.contains_key("$ref") {
        errs.push(SchemaError::forbidden(&at("$ref"), "$ref is not supported"));
    }
    let ty = match s.get("type") {
        None => None,
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => Some(t.as_str()),
        Some(Value::String(t)) => {
            let supported: Vec<String> = TYPES.iter().map(|t| t.to_string()).collect();
            errs.push(SchemaError::not_supported(
                &at("type"),
                &go_quote(t),
                &supported,
            ));
            Some(t.as_str())
        }
        Some(other) => {
            errs.push(SchemaError::invalid(
                &at("type"),
                &show(other),
                "must be a string",
            ));
            None
        }
    };
    let preserve = s.get("x-kubernetes-preserve-unknown-fields");
    if matches!(preserve, Some(Value::Bool(false))) {
        errs.push(SchemaError::invalid(
            &at("x-kubernetes-preserve-unknown-fields"),
            "false",
            "must be true or undefined",
        ));
    }
    let preserve = matches!(preserve, Some(Value::Bool(true)));
    let int_or_string = matches!(s.get("x-kubernetes-int-or-string"), Some(Value::Bool(true)));
    let embedded = matches!(
        s.get("x-kubernetes-embedded-resource"),
        Some(Value::Bool(true))
    );
    let type_present = s.contains_key("type");

    if embedded && ty != Some("object") {
        let detail = "must be object if x-kubernetes-embedded-resource is true";
        match ty {
            None => errs.push(SchemaError::required(&at("type"), detail)),
            Some(t) => errs.push(SchemaError::invalid(&at("type"), &go_quote(t), detail)),
        }
    } else if !type_present && !int_or_string {
        match level {
            Level::Root => errs.push(SchemaError::required(
                &at("type"),
                "must not be empty at the root",
            )),
            Level::Item => errs.push(SchemaError::required(
                &at("type"),
                "must not be empty for specified array items",
            )),
            Level::Field if !preserve => errs.push(SchemaError::required(
                &at("type"),
                "must not be empty for specified object fields",
            )),
            _ => {}
        }
    }
    if let Some(t) = ty.filter(|_| int_or_string) {
        errs.push(SchemaError::invalid(
            &at("type"),
            &go_quote(t),
            "must be empty if x-kubernetes-int-or-string is true",
        ));
    }
    if let Some(t) = ty.filter(|t| level == Level::Root && *t != "object") {
        errs.push(SchemaError::invalid(
            &at("type"),
            &go_quote(t),
            "must be object at the root",
        ));
    }
    if matches!(s.get("uniqueItems"), Some(Value::Bool(true))) {
        errs.push(SchemaError::forbidden(
            &at("uniqueItems"),
            "uniqueItems cannot be set to true since the runtime complexity becomes quadratic",
        ));
    }
    let sub_level = |l: Level| {
        if level == Level::Junctor {
            Level::Junctor
        } else {
            l
        }
    };

    match s.get("properties") {
        None => {}
        Some(Value::Object(props)) => {
            if let Some(meta) = props.get("metadata").filter(|_| level == Level::Root) {
                metadata(meta, &format!("{path}.properties[metadata]"), errs);
            }
            for (k, p) in props {
                walk(
                    p,
                    &format!("{path}.properties[{k}]"),
                    sub_level(Level::Field),
                    depth + 1,
                    errs,
                );
            }
        }
        Some(other) => errs.push(SchemaError::invalid(
            &at("properties"),
            &show(other),
            "must be an object",
        )),
    }
    match s.get("additionalProperties") {
        None | Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => errs.push(SchemaError::forbidden(
            &at("additionalProperties"),
            "additionalProperties cannot be set to false",
        )),
        Some(a @ Value::Object(_)) => {
            if s.contains_key("properties") {
                errs.push(SchemaError::forbidden(
                    &at("additionalProperties"),
                    "additionalProperties and properties are mutual exclusive",
                ));
            }
            walk(
                a,
                &at("additionalProperties"),
                sub_level(Level::Field),
                depth + 1,
                errs,
            );
        }
        Some(other) => errs.push(SchemaError::invalid(
            &at("additionalProperties"),
            &show(other),
            "must be a boolean or a schema object",
        )),
    }
    match s.get("items") {
        None => {
            if ty == Some("array") && level != Level::Junctor {
                errs.push(SchemaError::required(&at("items"), "must be specified"));
            }
        }
        Some(it @ Value::Object(_)) => {
            walk(it, &at("items"), sub_level(Level::Item), depth + 1, errs)
        }
        Some(_) => errs.push(SchemaError::forbidden(
            &at("items"),
            "items must be a schema object and not an array",
        )),
    }
    for j in ["allOf", "anyOf", "oneOf"] {
        match s.get(j) {
            None => {}
            Some(Value::Array(alts)) => {
                for (i, alt) in alts.iter().enumerate() {
                    walk(
                        alt,
                        &format!("{path}.{j}[{i}]"),
                        Level::Junctor,
                        depth + 1,
                        errs,
                    );
                }
            }
            Some(other) => errs.push(SchemaError::invalid(
                &at(j),
                &show(other),
                "must be an array",
            )),
        }
    }
    if let Some(not) = s.get("not") {
        walk(not, &at("not"), Level::Junctor, depth + 1, errs);
    }
    list_type(s, ty, path, errs);
}

/// The root's `metadata` may only constrain `name` and `generateName`.
fn metadata(meta: &Value, path: &str, errs: &mut Vec<SchemaError>) {
    let Some(props) = node(meta)
        .and_then(|m| m.get("properties"))
        .and_then(Value::as_object)
    else {
        return;
    };
    if props.keys().any(|k| k != "name" && k != "generateName") {
        errs.push(SchemaError::forbidden(
            &format!("{path}.properties"),
            "must not specify anything other than name and generateName, but metadata is implicitly specified",
        ));
    }
}

fn list_type(s: &Map<String, Value>, ty: Option<&str>, path: &str, errs: &mut Vec<SchemaError>) {
    let at = |k: &str| format!("{path}.{k}");
    let list_type = s.get("x-kubernetes-list-type");
    let keys = s.get("x-kubernetes-list-map-keys");
    if let Some(lt) = list_type {
        let supported = ["atomic", "set", "map"].map(String::from);
        match lt.as_str() {
            Some("atomic" | "set" | "map") => {}
            _ => errs.push(SchemaError::not_supported(
                &at("x-kubernetes-list-type"),
                &show(lt),
                &supported,
            )),
        }
        if ty != Some("array") {
            errs.push(SchemaError::invalid(
                &at("x-kubernetes-list-type"),
                &show(lt),
                "must only be used if type is array",
            ));
        }
    }
    let is_map = list_type.and_then(Value::as_str) == Some("map");
    match keys {
        Some(k) if !is_map => errs.push(SchemaError::forbidden(
            &at("x-kubernetes-list-map-keys"),
            &format!(
                "must only be set if x-kubernetes-list-type is map, got {}",
                show(k)
            ),
        )),
        None | Some(Value::Array(_))
            if is_map && keys.and_then(Value::as_array).is_none_or(|k| k.is_empty()) =>
        {
            errs.push(SchemaError::required(
                &at("x-kubernetes-list-map-keys"),
                "must not be empty if x-kubernetes-list-type is map",
            ));
        }
        Some(Value::Array(k)) if is_map => {
            let item_props = s
                .get("items")
                .and_then(node)
                .and_then(|i| i.get("properties"))
                .and_then(Value::as_object);
            let all_props = k.iter().all(|k| {
                k.as_str()
                    .is_some_and(|k| item_props.is_some_and(|p| p.contains_key(k)))
            });
            if !all_props {
                errs.push(SchemaError::invalid(
                    &at("x-kubernetes-list-map-keys"),
                    &show(&Value::Array(k.clone())),
                    "entries must all be names of item properties",
                ));
            }
            if s.get("items")
                .and_then(node)
                .and_then(|i| str_of(i, "type"))
                != Some("object")
            {
                errs.push(SchemaError::invalid(
                    &at("items.type"),
                    &show(
                        s.get("items")
                            .and_then(|i| i.get("type"))
                            .unwrap_or(&Value::Null),
                    ),
                    "must be object when x-kubernetes-list-type is map",
                ));
            }
        }
        Some(other) if is_map => errs.push(SchemaError::invalid(
            &at("x-kubernetes-list-map-keys"),
            &show(other),
            "must be an array of strings",
        )),
        _ => {}
    }
}
