//! Field sets of objects: the set an apply configuration specifies, and the
//! fields added, changed or removed between two versions of an object.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::fieldset::{FieldSet, PathElem};
use super::schema::{item_key, ListType, Node};

/// The keys of every item of an associative list, or a description of
/// why the list cannot be treated as one (an item without its keys, or two
/// items with the same keys).
pub(crate) fn list_keys(keys: &[&str], items: &[Value]) -> Result<Vec<String>, String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let k = item_key(keys, item)
            .ok_or_else(|| format!("list item {i} lacks the key field(s) {}", keys.join(", ")))?;
        if !seen.insert(k.clone()) {
            return Err(format!("duplicate entries for key {k}"));
        }
        out.push(k);
    }
    Ok(out)
}

/// The fields an apply configuration sets: its leaves, each list item it
/// names, and (for maps that are not structs) every key.
pub(crate) fn to_field_set(value: &Value, node: Node) -> Result<FieldSet, String> {
    let mut set = FieldSet::default();
    match value {
        Value::Object(m) if node != Node::Atomic => walk_map(m, node, &mut set)?,
        _ => {}
    }
    Ok(set)
}

fn walk_map(m: &Map<String, Value>, node: Node, set: &mut FieldSet) -> Result<(), String> {
    for (k, c) in m {
        let child = node.field(k);
        let mut cs = FieldSet::default();
        walk_value(c, child, &mut cs)?;
        if !node.is_struct() {
            // Keys of a map are owned themselves, not only their leaves.
            cs.member = true;
        }
        set.attach(PathElem::Field(k.clone()), cs);
    }
    Ok(())
}

fn walk_value(v: &Value, node: Node, cs: &mut FieldSet) -> Result<(), String> {
    match v {
        Value::Object(cm) if node != Node::Atomic && !cm.is_empty() => walk_map(cm, node, cs),
        Value::Array(items) => match node.list_spec().list_type() {
            ListType::Atomic => {
                cs.member = true;
                Ok(())
            }
            ListType::Set => {
                for item in items {
                    cs.insert(&[PathElem::Value(item.to_string())]);
                }
                Ok(())
            }
            ListType::Map(keys) => {
                let elem = node.list_spec().elem_node();
                for (item, key) in items.iter().zip(list_keys(keys, items)?) {
                    let mut is = FieldSet {
                        member: true,
                        ..FieldSet::default()
                    };
                    if let Value::Object(im) = item {
                        walk_map(im, elem, &mut is)?;
                    }
                    cs.attach(PathElem::Key(key), is);
                }
                Ok(())
            }
        },
        _ => {
            cs.member = true;
            Ok(())
        }
    }
}

/// What changed between two versions of an object.
#[derive(Default, Debug)]
pub(crate) struct Comparison {
    pub added: FieldSet,
    pub modified: FieldSet,
    pub removed: FieldSet,
}

impl Comparison {
    pub(crate) fn changed(&self) -> FieldSet {
        let mut s = self.added.clone();
        s.union(&self.modified);
        s
    }
}

pub(crate) fn compare(old: &Value, new: &Value, node: Node) -> Comparison {
    let mut c = Comparison::default();
    let mut path = Vec::new();
    compare_values(old, new, node, &mut path, &mut c);
    c
}

fn compare_values(
    old: &Value,
    new: &Value,
    node: Node,
    path: &mut Vec<PathElem>,
    c: &mut Comparison,
) {
    if node == Node::Atomic {
        if old != new {
            c.modified.insert(path);
        }
        return;
    }
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            for (k, nv) in n {
                path.push(PathElem::Field(k.clone()));
                let child = node.field(k);
                match o.get(k) {
                    Some(ov) => compare_values(ov, nv, child, path, c),
                    None => added_subtree(nv, child, path, false, &mut c.added),
                }
                path.pop();
            }
            for k in o.keys().filter(|k| !n.contains_key(*k)) {
                path.push(PathElem::Field(k.clone()));
                c.removed.insert(path);
                path.pop();
            }
        }
        (Value::Array(o), Value::Array(n)) => compare_lists(o, n, node, path, c),
        _ => {
            if old != new {
                c.modified.insert(path);
                if new.is_object() || new.is_array() {
                    added_subtree(new, node, path, false, &mut c.added);
                }
            }
        }
    }
}

fn compare_lists(
    o: &[Value],
    n: &[Value],
    node: Node,
    path: &mut Vec<PathElem>,
    c: &mut Comparison,
) {
    let spec = node.list_spec();
    match spec.list_type() {
        ListType::Atomic => {
            if o != n {
                c.modified.insert(path);
            }
        }
        ListType::Set => {
            let old: HashSet<String> = o.iter().map(Value::to_string).collect();
            let new: HashSet<String> = n.iter().map(Value::to_string).collect();
            for v in n.iter().map(Value::to_string).filter(|v| !old.contains(v)) {
                path.push(PathElem::Value(v));
                c.added.insert(path);
                path.pop();
            }
            for v in o.iter().map(Value::to_string).filter(|v| !new.contains(v)) {
                path.push(PathElem::Value(v));
                c.removed.insert(path);
                path.pop();
            }
        }
        ListType::Map(keys) => {
            let (Ok(ok), Ok(nk)) = (list_keys(keys, o), list_keys(keys, n)) else {
                // Not a valid associative list: compare it as a whole.
                if o != n {
                    c.modified.insert(path);
                }
                return;
            };
            let old: HashMap<&str, &Value> = ok.iter().map(String::as_str).zip(o).collect();
            let new: HashSet<&str> = nk.iter().map(String::as_str).collect();
            let elem = spec.elem_node();
            for (k, nv) in nk.iter().zip(n) {
                path.push(PathElem::Key(k.clone()));
                match old.get(k.as_str()) {
                    Some(ov) => compare_values(ov, nv, elem, path, c),
                    None => added_subtree(nv, elem, path, true, &mut c.added),
                }
                path.pop();
            }
            for k in ok.iter().filter(|k| !new.contains(k.as_str())) {
                path.push(PathElem::Key(k.clone()));
                c.removed.insert(path);
                path.pop();
            }
        }
    }
}

/// Record a value that did not exist before: the value itself and all it
/// contains. A struct that always serialises (outside list items) existed
/// implicitly, so only its contents count as new.
fn added_subtree(
    v: &Value,
    node: Node,
    path: &mut Vec<PathElem>,
    in_item: bool,
    out: &mut FieldSet,
) {
    let implicit =
        matches!(node, Node::Struct(_)) && !in_item && v.as_object().is_some_and(|m| !m.is_empty());
    if !implicit {
        out.insert(path);
    }
    if node == Node::Atomic {
        return;
    }
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                path.push(PathElem::Field(k.clone()));
                added_subtree(c, node.field(k), path, in_item, out);
                path.pop();
            }
        }
        Value::Array(items) => {
            let spec = node.list_spec();
            match spec.list_type() {
                ListType::Atomic => {}
                ListType::Set => {
                    for item in items {
                        path.push(PathElem::Value(item.to_string()));
                        out.insert(path);
                        path.pop();
                    }
                }
                ListType::Map(keys) => {
                    let Ok(ks) = list_keys(keys, items) else {
                        return;
                    };
                    for (k, item) in ks.into_iter().zip(items) {
                        path.push(PathElem::Key(k));
                        added_subtree(item, spec.elem_node(), path, true, out);
                        path.pop();
                    }
                }
            }
        }
        _ => {}
    }
}
