//! Kubernetes strategic merge patch.
//!
//! Maps merge recursively and `null` deletes. How a list merges depends on
//! the field's patch strategy from the schema table: by merge key, as a set
//! of primitives, or (the default) replaced wholesale. The directives
//! `$patch`, `$retainKeys`, `$deleteFromPrimitiveList/<field>` and
//! `$setElementOrder/<field>` are honoured and never left in the result.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::schema::{builtin_root, ListSpec, Node, Strategy};
use super::{check_depth, PatchError};

const PATCH: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const DELETE_FROM: &str = "$deleteFromPrimitiveList/";
const SET_ORDER: &str = "$setElementOrder/";

/// Apply a strategic merge patch to an object of a built-in kind. Custom
/// resources have no patch strategies; callers use a merge patch for them,
/// and asking for one here is an error, as it is upstream.
pub fn strategic_merge_patch(
    group: &str,
    kind: &str,
    doc: &Value,
    patch: &Value,
) -> Result<Value, PatchError> {
    let root = builtin_root(group, kind).ok_or_else(|| PatchError::UnsupportedKind {
        kind: if group.is_empty() {
            kind.to_owned()
        } else {
            format!("{kind}.{group}")
        },
    })?;
    check_depth(doc, "object")?;
    check_depth(patch, "patch")?;
    let Value::Object(p) = patch else {
        return Err(PatchError::InvalidPatch(
            "a strategic merge patch must be a JSON object".into(),
        ));
    };
    let original = doc.as_object().cloned().unwrap_or_default();
    Ok(Value::Object(merge_map(original, p, root, "")?))
}

fn directive_err(path: &str, message: impl Into<String>) -> PatchError {
    PatchError::Directive {
        path: if path.is_empty() {
            ".".into()
        } else {
            path.to_owned()
        },
        message: message.into(),
    }
}

fn is_directive_key(k: &str) -> bool {
    k == PATCH || k == RETAIN_KEYS || k.starts_with(DELETE_FROM) || k.starts_with(SET_ORDER)
}

pub(crate) fn merge_map(
    mut original: Map<String, Value>,
    patch: &Map<String, Value>,
    node: Node,
    path: &str,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(d) = patch.get(PATCH) {
        match d.as_str() {
            Some("replace") => {
                // The patch's map stands alone; clean it of directives.
                let rest: Map<String, Value> = patch
                    .iter()
                    .filter(|(k, _)| k.as_str() != PATCH)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                return merge_map(Map::new(), &rest, node, path);
            }
            Some("delete") => return Ok(Map::new()),
            Some("merge") => {}
            _ => return Err(directive_err(path, format!("unknown patch type {d}"))),
        }
    }

    if let Some(rk) = patch.get(RETAIN_KEYS) {
        let keys: Vec<&str> = rk
            .as_array()
            .and_then(|a| a.iter().map(Value::as_str).collect::<Option<Vec<_>>>())
            .ok_or_else(|| directive_err(path, "$retainKeys must be a list of strings"))?;
        for k in patch.keys().filter(|k| !is_directive_key(k)) {
            if !keys.contains(&k.as_str()) {
                return Err(directive_err(
                    path,
                    format!("{k:?} is not present in the $retainKeys list"),
                ));
            }
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }

    for (k, v) in patch {
        let Some(field) = k.strip_prefix(DELETE_FROM) else {
            continue;
        };
        let values = v.as_array().ok_or_else(|| {
            directive_err(path, format!("{k} must be a list of values to delete"))
        })?;
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|x| !values.contains(x));
        }
    }

    for (k, pv) in patch {
        if is_directive_key(k) {
            continue;
        }
        let child = node.field(k);
        let child_path = format!("{path}.{k}");
        if pv.is_null() {
            original.remove(k);
            continue;
        }
        let merged = match original.remove(k) {
            Some(Value::Object(om)) if pv.is_object() => {
                let pm = pv.as_object().map(|m| m.to_owned()).unwrap_or_default();
                match pm.get(PATCH).and_then(Value::as_str) {
                    // A map deleted by directive disappears from its parent.
                    Some("delete") => continue,
                    _ => Value::Object(merge_map(om, &pm, child, &child_path)?),
                }
            }
            Some(Value::Array(ol)) if pv.is_array() => {
                let pl = pv.as_array().map(Vec::as_slice).unwrap_or(&[]);
                Value::Array(merge_list(ol, pl, child.list_spec(), &child_path)?)
            }
            _ => match clean(pv, child, &child_path)? {
                Some(v) => v,
                None => continue,
            },
        };
        original.insert(k.clone(), merged);
    }

    for (k, order) in patch {
        let Some(field) = k.strip_prefix(SET_ORDER) else {
            continue;
        };
        let order = order
            .as_array()
            .ok_or_else(|| directive_err(path, format!("{k} must be a list")))?;
        if let Some(Value::Array(list)) = original.get_mut(field) {
            let spec = node.field(field).list_spec();
            reorder(list, order, spec);
        }
    }
    Ok(original)
}

/// A patch value that lands where the original has nothing (or something of
/// another type): merge it into an empty value so directives and nulls
/// inside it are resolved rather than stored. `None` means "delete".
fn clean(pv: &Value, node: Node, path: &str) -> Result<Option<Value>, PatchError> {
    Ok(Some(match pv {
        Value::Object(pm) => {
            if pm.get(PATCH).and_then(Value::as_str) == Some("delete") {
                return Ok(None);
            }
            Value::Object(merge_map(Map::new(), pm, node, path)?)
        }
        Value::Array(pl) => Value::Array(merge_list(Vec::new(), pl, node.list_spec(), path)?),
        other => other.clone(),
    }))
}

fn merge_list(
    mut original: Vec<Value>,
    patch: &[Value],
    spec: ListSpec,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let elem = spec.elem_node();
    match spec.strategy {
        Strategy::Replace => patch
            .iter()
            .enumerate()
            .filter_map(|(i, item)| clean(item, elem, &format!("{path}[{i}]")).transpose())
            .collect(),
        Strategy::MergeSet => {
            let mut replace = false;
            let mut values = Vec::new();
            for item in patch {
                match item.as_object().and_then(|m| m.get(PATCH)) {
                    Some(d) if d == "replace" => replace = true,
                    Some(d) => {
                        return Err(directive_err(
                            path,
                            format!("unsupported patch type {d} in a list of primitives"),
                        ));
                    }
                    None => values.push(item.clone()),
                }
            }
            if replace {
                return Ok(values);
            }
            // Keyed by serialised value so large sets stay linear.
            let mut seen: HashSet<String> = original.iter().map(Value::to_string).collect();
            for v in values {
                if seen.insert(v.to_string()) {
                    original.push(v);
                }
            }
            Ok(original)
        }
        Strategy::MergeKey(key) => merge_keyed(original, patch, key, elem, path),
    }
}

fn merge_keyed(
    mut original: Vec<Value>,
    patch: &[Value],
    key: &str,
    elem: Node,
    path: &str,
) -> Result<Vec<Value>, PatchError> {
    let mut replace = false;
    let mut deletes: Vec<&Value> = Vec::new();
    let mut merges: Vec<(&Value, Map<String, Value>)> = Vec::new();
    for item in patch {
        let obj = item.as_object().ok_or_else(|| {
            directive_err(
                path,
                format!("list items must be objects with merge key {key:?}, got {item}"),
            )
        })?;
        let kv = obj.get(key).filter(|v| !v.is_null());
        match obj.get(PATCH).map(|d| (d, d.as_str())) {
            Some((_, Some("delete"))) => deletes.push(kv.ok_or_else(|| {
                directive_err(path, format!("delete directive without merge key {key:?}"))
            })?),
            Some((_, Some("replace"))) => replace = true,
            Some((d, _)) if d != "merge" => {
                return Err(directive_err(path, format!("unknown patch type {d}")));
            }
            _ => {
                let kv = kv.ok_or_else(|| {
                    directive_err(
                        path,
                        format!("list item does not contain declared merge key {key:?}"),
                    )
                })?;
                let mut m = obj.clone();
                m.remove(PATCH);
                merges.push((kv, m));
            }
        }
    }
    if replace {
        let mut out = Vec::with_capacity(merges.len());
        for (_, m) in merges {
            out.push(Value::Object(merge_map(Map::new(), &m, elem, path)?));
        }
        return Ok(out);
    }
    // Items are found by their serialised merge key so that long lists
    // merge in linear time.
    let id = |v: &Value| v.get(key).map(Value::to_string);
    let deletes: HashSet<String> = deletes.iter().map(|d| d.to_string()).collect();
    original.retain(|o| id(o).is_none_or(|k| !deletes.contains(&k)));
    let mut index: HashMap<String, usize> = HashMap::new();
    for (i, o) in original.iter().enumerate() {
        if let Some(k) = id(o) {
            index.entry(k).or_insert(i);
        }
    }
    for (kv, m) in merges {
        let item_path = format!("{path}[{key}={kv}]");
        match index
            .get(&kv.to_string())
            .and_then(|&i| original.get_mut(i))
        {
            Some(slot) => {
                let base = match std::mem::take(slot) {
                    Value::Object(o) => o,
                    _ => Map::new(),
                };
                *slot = Value::Object(merge_map(base, &m, elem, &item_path)?);
            }
            None => {
                index.insert(kv.to_string(), original.len());
                original.push(Value::Object(merge_map(Map::new(), &m, elem, &item_path)?));
            }
        }
    }
    Ok(original)
}

/// Honour `$setElementOrder`: items named in `order` take that relative
/// order; items only the server knows keep their positions relative to
/// the others.
fn reorder(list: &mut Vec<Value>, order: &[Value], spec: ListSpec) {
    let identity = |v: &Value| -> Value {
        match spec.strategy {
            Strategy::MergeKey(key) => v.get(key).cloned().unwrap_or(Value::Null),
            _ => v.clone(),
        }
    };
    let mut wanted: HashMap<String, usize> = HashMap::new();
    for (pos, o) in order.iter().enumerate() {
        let id = identity(o);
        if !id.is_null() {
            wanted.entry(id.to_string()).or_insert(pos);
        }
    }
    let mut ordered: Vec<(usize, usize, Value)> = Vec::new();
    let mut server_only: Vec<(usize, Value)> = Vec::new();
    for (idx, item) in std::mem::take(list).into_iter().enumerate() {
        match wanted.get(&identity(&item).to_string()) {
            Some(&pos) => ordered.push((pos, idx, item)),
            None => server_only.push((idx, item)),
        }
    }
    ordered.sort_by_key(|(pos, _, _)| *pos);
    let mut ordered = ordered.into_iter().peekable();
    let mut server_only = server_only.into_iter().peekable();
    loop {
        let take_server = match (server_only.peek(), ordered.peek()) {
            (Some((s, _)), Some((_, o, _))) => s < o,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        if take_server {
            if let Some((_, v)) = server_only.next() {
                list.push(v);
            }
        } else if let Some((_, _, v)) = ordered.next() {
            list.push(v);
        }
    }
}
