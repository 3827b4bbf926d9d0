//! Pruning: dropping fields the schema does not specify, as upstream's structural pruning does.
//!
//! The object root and every `x-kubernetes-embedded-resource` object keep `apiVersion`, `kind`
//! and `metadata`; their `metadata` is cut down to the ObjectMeta fields. Subtrees under
//! `x-kubernetes-preserve-unknown-fields: true` keep unknown fields, while their specified
//! properties are still pruned.

use super::{
    additional, child, drop_deep, flag, index, items, node, properties, Additional, MAX_DEPTH,
};
use serde_json::{Map, Value};

const META_FIELDS: [&str; 3] = ["apiVersion", "kind", "metadata"];

/// The fields of ObjectMeta; anything else under an object's `metadata` is pruned.
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Removes fields not in the schema, at every level, and returns the pruned paths
/// ("spec.foo", "spec.items[0].bar", "metadata.foo") in the order they were found.
pub fn prune(schema: &Value, obj: &mut Value) -> Vec<String> {
    let mut pruned = Vec::new();
    walk(Some(schema), obj, "", true, 0, &mut pruned);
    pruned
}

fn is_meta(k: &str) -> bool {
    META_FIELDS.contains(&k)
}

/// Prunes `metadata` of a resource (root or embedded) down to ObjectMeta.
fn prune_metadata(m: &mut Map<String, Value>, path: &str, pruned: &mut Vec<String>) {
    if let Some(Value::Object(meta)) = m.get_mut("metadata") {
        let meta_path = child(path, "metadata");
        meta.retain(|k, v| {
            let keep = OBJECT_META_FIELDS.contains(&k.as_str());
            if !keep {
                pruned.push(child(&meta_path, k));
                drop_deep(std::mem::take(v));
            }
            keep
        });
    }
}

fn walk(
    schema: Option<&Value>,
    v: &mut Value,
    path: &str,
    resource_root: bool,
    depth: usize,
    pruned: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let empty = Map::new();
    // The root of a resource is always treated as an (embedded) object, even without a schema.
    let s = schema
        .and_then(node)
        .or(if resource_root { Some(&empty) } else { None });
    let embedded = resource_root || s.is_some_and(|s| flag(s, "x-kubernetes-embedded-resource"));
    if let Some(s) = s.filter(|s| flag(s, "x-kubernetes-preserve-unknown-fields")) {
        skip(s, v, path, embedded, depth, pruned);
        return;
    }
    match v {
        Value::Object(m) => {
            let Some(s) = s else {
                for (k, c) in std::mem::take(m) {
                    pruned.push(child(path, &k));
                    drop_deep(c);
                }
                return;
            };
            if embedded {
                prune_metadata(m, path, pruned);
            }
            let props = properties(s);
            let extra = additional(s);
            m.retain(|k, c| {
                if embedded && is_meta(k) {
                    return true;
                }
                let sub = match (props.and_then(|p| p.get(k)), extra) {
                    (Some(ps), _) => Some(Some(ps)),
                    (None, Additional::Schema(a)) => Some(Some(a)),
                    (None, Additional::Allowed(true)) => Some(None),
                    _ => None,
                };
                match sub {
                    Some(sub) => {
                        if c.is_object() || c.is_array() {
                            walk(sub, c, &child(path, k), false, depth + 1, pruned);
                        }
                        true
                    }
                    None => {
                        if !(is_meta(k) && path.is_empty()) {
                            pruned.push(child(path, k));
                        }
                        drop_deep(std::mem::take(c));
                        false
                    }
                }
            });
        }
        Value::Array(a) => {
            let it = s.and_then(items);
            for (i, c) in a.iter_mut().enumerate() {
                if c.is_object() || c.is_array() {
                    walk(it, c, &index(path, i), false, depth + 1, pruned);
                }
            }
        }
        _ => {}
    }
}

/// Under `x-kubernetes-preserve-unknown-fields`: unknown fields stay, specified ones are pruned.
fn skip(
    s: &Map<String, Value>,
    v: &mut Value,
    path: &str,
    embedded: bool,
    depth: usize,
    pruned: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(m) => {
            if embedded {
                prune_metadata(m, path, pruned);
            }
            let props = properties(s);
            let extra = additional(s);
            for (k, c) in m.iter_mut() {
                if (embedded && is_meta(k)) || !(c.is_object() || c.is_array()) {
                    continue;
                }
                let sub = match (props.and_then(|p| p.get(k)), extra) {
                    (Some(ps), _) => Some(Some(ps)),
                    (None, Additional::Schema(a)) => Some(Some(a)),
                    (None, Additional::Allowed(true)) => Some(None),
                    _ => None,
                };
                if let Some(sub) = sub {
                    walk(sub, c, &child(path, k), false, depth + 1, pruned);
                }
            }
        }
        Value::Array(a) => {
            let Some(it) = items(s).and_then(node) else {
                return;
            };
            let item_embedded = flag(it, "x-kubernetes-embedded-resource");
            for (i, c) in a.iter_mut().enumerate() {
                if c.is_object() || c.is_array() {
                    skip(it, c, &index(path, i), item_embedded, depth + 1, pruned);
                }
            }
        }
        _ => {}
    }
}
