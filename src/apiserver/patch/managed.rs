//! `metadata.managedFields`: reading and writing the entries, and recording
//! ownership for ordinary (non-apply) writes.

use serde_json::{Map, Value};

use super::diff::compare;
use super::fieldset::{set_of, FieldSet};
use super::schema::root;

pub(crate) const APPLY: &str = "Apply";
pub(crate) const UPDATE: &str = "Update";

/// One manager's ownership, decoded.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    pub manager: String,
    pub operation: String,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub set: FieldSet,
}

impl Entry {
    pub(crate) fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// Decode an object's managedFields. `None` when they are absent or not
/// well formed, in which case callers start from no ownership (as upstream
/// does for objects it cannot decode).
pub(crate) fn decode(obj: &Value) -> Option<Vec<Entry>> {
    let list = obj.get("metadata")?.get("managedFields")?.as_array()?;
    let mut out: Vec<Entry> = Vec::with_capacity(list.len());
    for item in list {
        let s = |k: &str| item.get(k).and_then(Value::as_str).map(str::to_owned);
        let mut set = match item.get("fieldsV1") {
            Some(v) => FieldSet::from_fields_v1(v)?,
            None => FieldSet::default(),
        };
        // The root is never a member of its own set.
        set.member = false;
        let e = Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation")?,
            api_version: s("apiVersion").unwrap_or_default(),
            time: s("time"),
            subresource: s("subresource").unwrap_or_default(),
            set,
        };
        // Duplicates of one manager are folded into one entry.
        match out
            .iter_mut()
            .find(|o| o.is(&e.manager, &e.operation, &e.subresource))
        {
            Some(o) => o.set.union(&e.set),
            None => out.push(e),
        }
    }
    Some(out)
}

/// Encode entries in upstream's order (Apply before Update, then by time,
/// manager, API version, subresource), dropping managers that own nothing.
pub(crate) fn encode(mut entries: Vec<Entry>) -> Value {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    Value::Array(
        entries
            .into_iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("manager".into(), Value::String(e.manager));
                m.insert("operation".into(), Value::String(e.operation));
                m.insert("apiVersion".into(), Value::String(e.api_version));
                if let Some(t) = e.time {
                    m.insert("time".into(), Value::String(t));
                }
                m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
                m.insert("fieldsV1".into(), e.set.to_fields_v1());
                if !e.subresource.is_empty() {
                    m.insert("subresource".into(), Value::String(e.subresource));
                }
                Value::Object(m)
            })
            .collect(),
    )
}

/// Store encoded entries in the object's metadata.
pub(crate) fn store(obj: &mut Value, entries: Vec<Entry>) {
    let encoded = encode(entries);
    let Value::Object(o) = obj else {
        return;
    };
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        if encoded.as_array().is_some_and(Vec::is_empty) {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), encoded);
        }
    }
}

/// Metadata the server owns; nobody's field set includes it. Removed as
/// exact members (not subtrees), as upstream does.
fn server_fields() -> FieldSet {
    set_of(&[
        &["apiVersion"],
        &["kind"],
        &["metadata"],
        &["metadata", "name"],
        &["metadata", "namespace"],
        &["metadata", "creationTimestamp"],
        &["metadata", "selfLink"],
        &["metadata", "uid"],
        &["metadata", "clusterName"],
        &["metadata", "generation"],
        &["metadata", "managedFields"],
        &["metadata", "resourceVersion"],
    ])
}

/// Restrict a set to what a write through `subresource` may own: the main
/// resource does not own status, the status subresource owns only status.
pub(crate) fn owned_through(set: &FieldSet, subresource: &str) -> FieldSet {
    let status = set_of(&[&["status"]]);
    let set = set.difference(&server_fields());
    if subresource == "status" {
        let everything_but_status = set.recursive_difference(&status);
        set.recursive_difference(&everything_but_status)
    } else {
        set.recursive_difference(&status)
    }
}

/// The object without its managedFields, for comparisons.
pub(crate) fn without_managed_fields(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(Value::Object(meta)) = o.get_mut("metadata") {
        meta.remove("managedFields");
    }
    o
}

/// Record the ownership a non-apply write (create, update, or a patch of
/// another type) gives `manager`: every field it added or changed is now its
/// own and no longer anyone else's; removed fields are nobody's. On create
/// (`old` is `None`) the manager owns everything it set.
#[allow(clippy::too_many_arguments)]
pub fn track_update(
    group: &str,
    kind: &str,
    api_version: &str,
    old: Option<&Value>,
    new_obj: &mut Value,
    manager: &str,
    subresource: &str,
    now: &str,
) {
    // Clients that send managedFields back (or reset them on purpose) are
    // believed on the main resource; otherwise the stored ones stand.
    let from_new = if subresource.is_empty() {
        decode(new_obj).filter(|e| !e.is_empty())
    } else {
        None
    };
    let mut entries = from_new
        .or_else(|| old.and_then(decode))
        .unwrap_or_default();

    let empty = Value::Object(Map::new());
    let before = without_managed_fields(old.unwrap_or(&empty));
    let after = without_managed_fields(new_obj);
    let cmp = compare(&before, &after, root(group, kind));
    let changed = owned_through(&cmp.changed(), subresource);

    for e in &mut entries {
        e.set = e.set.recursive_difference(&cmp.removed);
    }
    if !changed.is_empty() {
        for e in entries
            .iter_mut()
            .filter(|e| !e.is(manager, UPDATE, subresource))
        {
            e.set = e.set.difference(&changed);
        }
        match entries
            .iter_mut()
            .find(|e| e.is(manager, UPDATE, subresource))
        {
            Some(e) => {
                e.set.union(&changed);
                e.api_version = api_version.to_owned();
                e.time = Some(now.to_owned());
            }
            None => entries.push(Entry {
                manager: manager.to_owned(),
                operation: UPDATE.to_owned(),
                api_version: api_version.to_owned(),
                time: Some(now.to_owned()),
                subresource: subresource.to_owned(),
                set: changed,
            }),
        }
    }
    store(new_obj, entries);
}
