//! Server-side apply: merge an apply configuration into the live object,
//! prune what the applier stopped applying, and settle field ownership.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::diff::{compare, list_keys, to_field_set};
use super::fieldset::{display_path, FieldSet, PathElem};
use super::managed::{decode, owned_through, store, without_managed_fields, Entry, APPLY};
use super::schema::{item_key, ListType, Node};
use super::{check_depth, Conflict, PatchError};

/// Metadata an apply configuration may carry but never sets: the server
/// owns these (a resourceVersion or uid in the configuration is a
/// precondition for the caller to check, not a value to store).
const SERVER_METADATA: &[&str] = &[
    "managedFields",
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Server-side apply of `applied` by `manager`. Returns the merged object
/// with `metadata.managedFields` updated, or the conflicts that stop it
/// (unless `force`, which takes the fields over instead).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    group: &str,
    kind: &str,
    api_version: &str,
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, PatchError> {
    check_depth(applied, "apply configuration")?;
    if let Some(l) = live {
        check_depth(l, "object")?;
    }
    let Value::Object(cfg) = applied else {
        return Err(PatchError::InvalidPatch(
            "an apply configuration must be a JSON object".into(),
        ));
    };
    let node = super::schema::root(group, kind);
    let config = clean_config(cfg);

    let empty = Value::Object(Map::new());
    let live_obj = live.unwrap_or(&empty);
    let mut entries = decode(live_obj).unwrap_or_default();
    let live_clean = without_managed_fields(live_obj);

    let config_set = to_field_set(&config, node)
        .map_err(|e| PatchError::InvalidPatch(format!("apply configuration: {e}")))?;
    let config_set = owned_through(&config_set, "");

    let mut merged = merge(&live_clean, &config, node).map_err(PatchError::InvalidPatch)?;

    let mine = entries.iter().position(|e| e.is(manager, APPLY, ""));
    let last_set = mine.map(|i| entries[i].set.clone()).unwrap_or_default();
    let mut keep = config_set.clone();
    for (i, e) in entries.iter().enumerate() {
        if Some(i) != mine {
            keep.union(&e.set);
        }
    }
    prune(
        &mut merged,
        &last_set.difference(&config_set),
        Some(&keep),
        node,
        &[],
    );

    let cmp = compare(&live_clean, &merged, node);
    let changed = cmp.changed();
    let mut conflicts = Vec::new();
    for (i, e) in entries.iter_mut().enumerate() {
        if Some(i) == mine {
            continue;
        }
        let clash = e.set.intersection(&changed);
        if clash.is_empty() {
            continue;
        }
        if force {
            e.set = e.set.difference(&clash);
            continue;
        }
        for path in clash.members() {
            conflicts.push(Conflict {
                manager: e.manager.clone(),
                field: display_path(&path),
                operation: e.operation.clone(),
                api_version: e.api_version.clone(),
                subresource: e.subresource.clone(),
            });
        }
    }
    if !conflicts.is_empty() {
        conflicts.sort_by(|a, b| (&a.manager, &a.field).cmp(&(&b.manager, &b.field)));
        return Err(PatchError::Conflict(conflicts));
    }

    for e in &mut entries {
        e.set = e.set.recursive_difference(&cmp.removed);
    }
    let object_changed = merged != live_clean;
    match mine {
        Some(i) => {
            let e = &mut entries[i];
            if object_changed || e.set != config_set || e.api_version != api_version {
                e.time = Some(now.to_owned());
            }
            e.set = config_set;
            e.api_version = api_version.to_owned();
        }
        None => entries.push(Entry {
            manager: manager.to_owned(),
            operation: APPLY.to_owned(),
            api_version: api_version.to_owned(),
            time: Some(now.to_owned()),
            subresource: String::new(),
            set: config_set,
        }),
    }
    store(&mut merged, entries);
    Ok(merged)
}

/// The configuration without server-owned metadata and without status,
/// which the main resource's apply never changes.
fn clean_config(cfg: &Map<String, Value>) -> Value {
    let mut c = cfg.clone();
    c.remove("status");
    if let Some(Value::Object(meta)) = c.get_mut("metadata") {
        for f in SERVER_METADATA {
            meta.remove(*f);
        }
    }
    Value::Object(c)
}

/// Merge the configuration into the live object: maps field by field,
/// associative lists item by item, sets by value, everything else replaced.
fn merge(live: &Value, cfg: &Value, node: Node) -> Result<Value, String> {
    if node == Node::Atomic {
        return Ok(cfg.clone());
    }
    match (live, cfg) {
        (Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (k, cv) in c {
                if cv.is_null() {
                    out.remove(k);
                    continue;
                }
                let v = match l.get(k) {
                    Some(lv) => merge(lv, cv, node.field(k))?,
                    None => cv.clone(),
                };
                out.insert(k.clone(), v);
            }
            Ok(Value::Object(out))
        }
        (Value::Array(l), Value::Array(c)) => {
            let spec = node.list_spec();
            match spec.list_type() {
                ListType::Atomic => Ok(cfg.clone()),
                ListType::Set => {
                    let mut out = l.clone();
                    let mut seen: HashSet<String> = l.iter().map(Value::to_string).collect();
                    for v in c {
                        if seen.insert(v.to_string()) {
                            out.push(v.clone());
                        }
                    }
                    Ok(Value::Array(out))
                }
                ListType::Map(keys) => {
                    let ck = list_keys(keys, c)?;
                    // A live list that is not a valid associative list is
                    // taken over by the configuration.
                    let Ok(lk) = list_keys(keys, l) else {
                        return Ok(cfg.clone());
                    };
                    let index: HashMap<&str, usize> = lk
                        .iter()
                        .enumerate()
                        .map(|(i, k)| (k.as_str(), i))
                        .collect();
                    let mut out = l.clone();
                    for (k, item) in ck.iter().zip(c) {
                        match index.get(k.as_str()) {
                            Some(&pos) => out[pos] = merge(&l[pos], item, spec.elem_node())?,
                            None => out.push(item.clone()),
                        }
                    }
                    Ok(Value::Array(out))
                }
            }
        }
        _ => Ok(cfg.clone()),
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// Remove from `v` the members of `remove` that nobody in `keep` owns (at
/// or below them). Containers emptied by pruning go too; key fields of a
/// list item that stays (`protect`) are never removed.
fn prune(v: &mut Value, remove: &FieldSet, keep: Option<&FieldSet>, node: Node, protect: &[&str]) {
    match v {
        Value::Object(obj) => prune_map(obj, remove, keep, node, protect),
        Value::Array(items) => prune_list(items, remove, keep, node),
        _ => {}
    }
}

fn prune_map(
    obj: &mut Map<String, Value>,
    remove: &FieldSet,
    keep: Option<&FieldSet>,
    node: Node,
    protect: &[&str],
) {
    for (pe, rc) in &remove.children {
        let PathElem::Field(name) = pe else { continue };
        if protect.contains(&name.as_str()) {
            continue;
        }
        let kc = keep.and_then(|k| k.children.get(pe));
        let kept = kc.is_some_and(|k| !k.is_empty());
        if rc.member && !kept {
            obj.remove(name);
            continue;
        }
        if let Some(child) = obj.get_mut(name) {
            let was_empty = is_empty_container(child);
            prune(child, rc, kc, node.field(name), &[]);
            if !kept && !was_empty && is_empty_container(child) {
                obj.remove(name);
            }
        }
    }
}

/// Items are matched by their `k:`/`v:` identity through one index per
/// list, so pruning many items stays linear.
fn prune_list(items: &mut Vec<Value>, remove: &FieldSet, keep: Option<&FieldSet>, node: Node) {
    let spec = node.list_spec();
    let keys = match spec.list_type() {
        ListType::Map(keys) => Some(keys),
        _ => None,
    };
    let ids: Vec<Option<PathElem>> = items
        .iter()
        .map(|it| match keys {
            Some(keys) => item_key(keys, it).map(PathElem::Key),
            None => Some(PathElem::Value(it.to_string())),
        })
        .collect();
    let mut drop = vec![false; items.len()];
    for (i, id) in ids.iter().enumerate() {
        let Some(rc) = id.as_ref().and_then(|id| remove.children.get(id)) else {
            continue;
        };
        let kc = keep.and_then(|k| id.as_ref().and_then(|id| k.children.get(id)));
        let kept = kc.is_some_and(|k| !k.is_empty());
        if rc.member && !kept {
            drop[i] = true;
        } else if let Some(keys) = keys {
            prune(&mut items[i], rc, kc, spec.elem_node(), keys);
        }
    }
    let mut flags = drop.into_iter();
    items.retain(|_| !flags.next().unwrap_or(false));
}
