//! Structural defaulting: `default` values of properties, `additionalProperties` and `items`
//! are applied where the object has the field missing (or null while the field is not
//! nullable), recursively, including inside freshly defaulted values. A `default: null` and a
//! default on the root are ignored, as upstream does.

use super::{additional, flag, items, node, properties, Additional, MAX_DEPTH};
use serde_json::Value;

/// Applies the schema's defaults to `obj` in place. Idempotent.
pub fn apply_defaults(schema: &Value, obj: &mut Value) {
    walk(schema, obj, 0);
}

/// The default of a schema node, if it has a usable one.
fn default_of(schema: &Value) -> Option<&Value> {
    node(schema)?.get("default").filter(|d| !d.is_null())
}

fn nullable(schema: &Value) -> bool {
    node(schema).is_some_and(|s| flag(s, "nullable"))
}

/// Replaces a null `v` by the schema's default when the schema is not nullable.
fn fill_null(schema: &Value, v: &mut Value) {
    if !v.is_null() || nullable(schema) {
        return;
    }
    if let Some(d) = default_of(schema) {
        *v = d.clone();
    }
}

fn walk(schema: &Value, v: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(s) = node(schema) else {
        return;
    };
    match v {
        Value::Object(m) => {
            let props = properties(s);
            if let Some(props) = props {
                for (k, ps) in props {
                    let Some(d) = default_of(ps) else {
                        continue;
                    };
                    let missing = match m.get(k) {
                        None => true,
                        Some(Value::Null) => !nullable(ps),
                        Some(_) => false,
                    };
                    if missing {
                        m.insert(k.clone(), d.clone());
                    }
                }
            }
            let extra = match additional(s) {
                Additional::Schema(a) => Some(a),
                _ => None,
            };
            for (k, c) in m.iter_mut() {
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    walk(ps, c, depth + 1);
                } else if let Some(a) = extra {
                    fill_null(a, c);
                    walk(a, c, depth + 1);
                }
            }
        }
        Value::Array(a) => {
            if let Some(it) = items(s) {
                for c in a.iter_mut() {
                    fill_null(it, c);
                    walk(it, c, depth + 1);
                }
            }
        }
        _ => {}
    }
}
