//! Server-side table output (`meta.k8s.io/v1` `Table`) for the API server.
//!
//! This module owns the column definitions and row cells that kube-apiserver
//! produces for every built-in resource when a client asks for
//! `application/json;as=Table;v=v1;g=meta.k8s.io`, the columns and cells of
//! custom resources derived from a CRD version's `additionalPrinterColumns`,
//! kubectl's human duration format, and the assembly of the final `Table`
//! document (including the `includeObject` handling of each row's object).
//!
//! Everything here is a pure function of its inputs: objects arrive as
//! `serde_json::Value`, the current time is passed in, and nothing is read
//! from or written to storage, the network, the clock or the filesystem.
//! The module must never mutate the objects it prints, never fail or panic on
//! malformed or partial objects (any field may be missing or of the wrong
//! type; such fields print like their zero values do upstream), and never
//! decide which objects belong in a table: filtering, ordering and
//! pagination stay with the caller.
//!
//! Like kube-apiserver, cells are always generated for every column,
//! including the `priority: 1` ones that kubectl only shows with `-o wide`.

mod admission;
mod apps;
mod batch;
mod core;
mod crd;
mod events;
mod format;
mod jsonpath;
mod networking;
mod other;
mod pod;
mod storage;
mod volumes;

#[cfg(test)]
mod tests;

use serde_json::{json, Map, Value};

pub use crd::{crd_cells, crd_columns};
pub use format::human_duration;

/// One column of a table (`meta.k8s.io/v1` `TableColumnDefinition`).
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub format: String,
    pub description: String,
    pub priority: i32,
}

/// What each row carries in its `object` field (`?includeObject=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// `"object": null`.
    None,
    /// A `PartialObjectMetadata` holding the object's metadata (the default).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter; an absent or empty value
    /// is the default (`Metadata`). Unknown values yield `None` (the caller
    /// should reject the request, as upstream does).
    pub fn from_query(value: Option<&str>) -> Option<IncludeObject> {
        match value {
            None | Some("") | Some("Metadata") => Some(IncludeObject::Metadata),
            Some("None") => Some(IncludeObject::None),
            Some("Object") => Some(IncludeObject::Object),
            Some(_) => None,
        }
    }
}

/// Produces a resource's column definitions.
pub(crate) type ColumnsFn = fn() -> Vec<Column>;
/// Produces one object's row cells.
pub(crate) type CellsFn = fn(&Value, jiff::Timestamp) -> Vec<Value>;

/// A printer for one resource: its columns and a row generator.
#[derive(Clone, Copy)]
pub(crate) struct Printer {
    pub columns: ColumnsFn,
    pub cells: CellsFn,
}

fn printer(group: &str, resource: &str) -> Option<Printer> {
    match group {
        "" => core::printer(resource)
            .or_else(|| pod::printer(resource))
            .or_else(|| volumes::printer(resource)),
        "apps" => apps::printer(resource),
        "batch" => batch::printer(resource),
        _ => other::printer(group, resource),
    }
}

/// Whether a built-in resource has its own printer (as opposed to the
/// default `Name`/`Created At` table).
pub fn has_printer(group: &str, resource: &str) -> bool {
    printer(group, resource).is_some()
}

/// Columns for a built-in resource. `group` is `""` for the core group;
/// `resource` is the plural (`pods`, `deployments`). Resources without a
/// dedicated printer get upstream's default table convertor columns
/// (`Name`, `Created At`).
pub fn columns(group: &str, resource: &str) -> Vec<Column> {
    match printer(group, resource) {
        Some(p) => (p.columns)(),
        None => format::default_columns(),
    }
}

/// One row's cells for `obj`, matching [`columns`] for the same resource.
pub fn cells(group: &str, resource: &str, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    match printer(group, resource) {
        Some(p) => (p.cells)(obj, now),
        None => format::default_cells(obj),
    }
}

/// Builds a whole `meta.k8s.io/v1` `Table`.
///
/// `list_meta` supplies `resourceVersion`, `continue` and
/// `remainingItemCount`; empty or missing values are omitted like upstream's
/// `omitempty` fields.
pub fn table(
    columns: &[Column],
    rows: Vec<(Vec<Value>, &Value)>,
    include: IncludeObject,
    list_meta: Value,
) -> Value {
    let mut meta = Map::new();
    for key in ["selfLink", "resourceVersion", "continue"] {
        match list_meta.get(key).and_then(Value::as_str) {
            Some(s) if !s.is_empty() => {
                meta.insert(key.to_string(), Value::String(s.to_string()));
            }
            _ => {}
        }
    }
    if let Some(n) = list_meta.get("remainingItemCount").and_then(Value::as_i64) {
        meta.insert("remainingItemCount".to_string(), json!(n));
    }
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, obj)| {
            let mut row = Map::new();
            row.insert("cells".to_string(), Value::Array(cells));
            if let Some(conditions) = row_conditions(obj) {
                row.insert("conditions".to_string(), conditions);
            }
            row.insert("object".to_string(), row_object(obj, include));
            Value::Object(row)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": Value::Object(meta),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

fn row_object(obj: &Value, include: IncludeObject) -> Value {
    match include {
        IncludeObject::None => Value::Null,
        IncludeObject::Object => obj.clone(),
        IncludeObject::Metadata => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
        }),
    }
}

/// Upstream marks finished pods with a `Completed` row condition.
fn row_conditions(obj: &Value) -> Option<Value> {
    if obj.get("kind").and_then(Value::as_str) != Some("Pod") {
        return None;
    }
    let phase = obj.pointer("/status/phase").and_then(Value::as_str)?;
    let message = match phase {
        "Succeeded" => "The pod has completed successfully.",
        "Failed" => "The pod failed.",
        _ => return None,
    };
    Some(json!([{
        "type": "Completed",
        "status": "True",
        "reason": phase,
        "message": message,
    }]))
}
