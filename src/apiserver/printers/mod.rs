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
//! `serde_json::Value` (for a list, one narrowed to the fields its printer
//! reads: see `narrow`), the current time is passed in, and nothing is read
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
mod narrow;
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

/// The fields the printer of a built-in resource reads, for the kinds listed in bulk
/// (`None`: its printer reads the whole object). Resources without a printer read
/// only what the default columns show.
fn reads(group: &str, resource: &str) -> Option<narrow::Reads> {
    if printer(group, resource).is_none() {
        return Some(format::DEFAULT_READS);
    }
    Some(match (group, resource) {
        ("", "pods") => pod::POD_READS,
        ("", "services") => core::SERVICE_READS,
        ("", "nodes") => core::NODE_READS,
        ("", "configmaps") => core::CONFIGMAP_READS,
        ("", "secrets") => core::SECRET_READS,
        ("", "events") | ("events.k8s.io", "events") => events::EVENT_READS,
        ("apps", "deployments") => apps::DEPLOYMENT_READS,
        ("apps", "replicasets") => apps::REPLICASET_READS,
        ("batch", "jobs") => batch::JOB_READS,
        ("discovery.k8s.io", "endpointslices") => networking::SLICE_READS,
        _ => return None,
    })
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
    let cells = match printer(group, resource) {
        Some(p) => (p.cells)(obj, now),
        None => format::default_cells(obj),
    };
    // Every printer test also prints its object as a list's Table would, from the fields
    // the printer declares it reads: a printer reading more than it declares fails there.
    #[cfg(test)]
    tests::narrow::assert_narrow_agrees(group, resource, obj, now, &cells);
    cells
}

/// The printer of one built-in resource, looked up once for a whole list.
#[derive(Clone)]
pub struct Builtin {
    printer: Option<Printer>,
    mask: Option<narrow::Mask>,
}

impl Builtin {
    /// The printer of `resource` in `group` (the default columns' when it has none).
    pub fn new(group: &str, resource: &str) -> Builtin {
        Builtin {
            printer: printer(group, resource),
            mask: reads(group, resource).map(narrow::Mask::new),
        }
    }

    /// The columns, as [`columns`] gives them.
    pub fn columns(&self) -> Vec<Column> {
        match self.printer {
            Some(p) => (p.columns)(),
            None => format::default_columns(),
        }
    }

    /// One row's cells, as [`cells`] gives them.
    pub fn cells(&self, obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
        match self.printer {
            Some(p) => (p.cells)(obj, now),
            None => format::default_cells(obj),
        }
    }

    /// Writes the row of the stored object `stored` (at revision `rev`) to `out` from the
    /// fields its printer reads, the same bytes as serializing the [`Row`] of its full
    /// parse. `Ok(false)` (nothing written) when this printer reads whole objects, when
    /// the rows carry whole objects, or when the bytes are not a JSON object: the caller
    /// then parses the object in full.
    pub fn write_stored_row(
        &self,
        out: &mut Vec<u8>,
        stored: &[u8],
        rev: u64,
        include: IncludeObject,
        now: jiff::Timestamp,
    ) -> serde_json::Result<bool> {
        let Some(mask) = &self.mask else {
            return Ok(false);
        };
        if include == IncludeObject::Object {
            return Ok(false);
        }
        let Ok(obj) = narrow::read(stored, mask) else {
            return Ok(false);
        };
        out.extend_from_slice(br#"{"cells":"#);
        serde_json::to_writer(&mut *out, &self.cells(&obj.value, now))?;
        if let Some(conditions) = row_conditions(&obj.value) {
            out.extend_from_slice(br#","conditions":"#);
            serde_json::to_writer(&mut *out, &conditions)?;
        }
        out.extend_from_slice(br#","object":"#);
        if include == IncludeObject::None {
            out.extend_from_slice(b"null");
        } else {
            out.extend_from_slice(
                br#"{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
            );
            write_metadata(out, obj.metadata.map(|m| m.get()), rev);
            out.push(b'}');
        }
        out.push(b'}');
        Ok(true)
    }
}

/// The stored text of an object's metadata as its full parse serializes it: with the
/// `resourceVersion` the parse adds as its last field (the codec stores objects compact,
/// as serde_json writes them, and without a resourceVersion), `{}` when there is none.
fn write_metadata(out: &mut Vec<u8>, stored: Option<&str>, rev: u64) {
    let Some(meta) = stored else {
        out.extend_from_slice(b"{}");
        return;
    };
    let Some(fields) = meta.strip_prefix('{').and_then(|m| m.strip_suffix('}')) else {
        // Not an object: the parse adds no resourceVersion.
        out.extend_from_slice(meta.as_bytes());
        return;
    };
    out.push(b'{');
    out.extend_from_slice(fields.as_bytes());
    if !fields.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(br#""resourceVersion":""#);
    out.extend_from_slice(rev.to_string().as_bytes());
    out.extend_from_slice(br#""}"#);
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
    // Converting to a Value cannot fail: every map key is a string.
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, obj)| {
            serde_json::to_value(Row::new(cells, obj, include)).unwrap_or(Value::Null)
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": Value::Object(table_meta(&list_meta)),
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// Writes a `Table` the way [`table`] builds it, in three parts so a long list can be
/// streamed: `head` up to the opening of `rows`, then each [`Row`] (comma-separated by the
/// caller), then [`TABLE_TAIL`].
pub fn write_table_head(
    out: &mut Vec<u8>,
    columns: &[Column],
    list_meta: &Value,
) -> serde_json::Result<()> {
    out.extend_from_slice(br#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":"#);
    serde_json::to_writer(&mut *out, &table_meta(list_meta))?;
    out.extend_from_slice(br#","columnDefinitions":"#);
    serde_json::to_writer(&mut *out, columns)?;
    out.extend_from_slice(br#","rows":["#);
    Ok(())
}

/// What closes a table written with [`write_table_head`].
pub const TABLE_TAIL: &[u8] = b"]}";

/// The Table's ListMeta: `resourceVersion`, `continue` and `remainingItemCount` of
/// `list_meta`, empty ones omitted as upstream's `omitempty` does.
fn table_meta(list_meta: &Value) -> Map<String, Value> {
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
    meta
}

/// One `TableRow`: its cells, the `Completed` condition of a finished pod, and the object
/// as `includeObject` asks, serialized from a borrow of the object (no copy of it).
#[derive(serde::Serialize)]
pub struct Row<'a> {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    conditions: Option<Value>,
    object: RowObject<'a>,
}

impl<'a> Row<'a> {
    pub fn new(cells: Vec<Value>, obj: &'a Value, include: IncludeObject) -> Row<'a> {
        Row {
            cells,
            conditions: row_conditions(obj),
            object: match include {
                IncludeObject::None => RowObject::None,
                IncludeObject::Object => RowObject::Object(obj),
                IncludeObject::Metadata => RowObject::Metadata(obj.get("metadata")),
            },
        }
    }
}

enum RowObject<'a> {
    None,
    Object(&'a Value),
    /// A `PartialObjectMetadata` of the object's metadata (`{}` when it has none).
    Metadata(Option<&'a Value>),
}

impl serde::Serialize for RowObject<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            RowObject::None => s.serialize_unit(),
            RowObject::Object(obj) => obj.serialize(s),
            RowObject::Metadata(meta) => {
                let mut m = s.serialize_map(Some(3))?;
                m.serialize_entry("kind", "PartialObjectMetadata")?;
                m.serialize_entry("apiVersion", "meta.k8s.io/v1")?;
                match meta {
                    Some(meta) => m.serialize_entry("metadata", meta)?,
                    None => m.serialize_entry("metadata", &Map::new())?,
                }
                m.end()
            }
        }
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
