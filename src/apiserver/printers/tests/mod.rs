//! Table-driven tests for the printers.

mod core;
mod crd;
mod groups;
pub(super) mod narrow;

use std::time::Duration;

use serde_json::{json, Value};

use super::*;

const NOW: &str = "2024-06-01T12:00:00Z";

pub(super) fn now() -> jiff::Timestamp {
    NOW.parse().expect("valid test time")
}

/// A timestamp `secs` seconds before [`NOW`].
pub(super) fn ago(secs: i64) -> String {
    let t = now() - jiff::SignedDuration::from_secs(secs);
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub(super) fn names(cols: &[Column]) -> Vec<String> {
    cols.iter().map(|c| c.name.clone()).collect()
}

pub(super) fn strs(cells: &[Value]) -> Vec<String> {
    cells
        .iter()
        .map(|c| match c {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}

pub(super) fn meta(name: &str, age_secs: i64) -> Value {
    json!({"name": name, "namespace": "default", "creationTimestamp": ago(age_secs)})
}

#[test]
fn human_duration_boundaries() {
    let cases: &[(u64, &str)] = &[
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (150, "2m30s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 15 * 60, "3h15m"),
        (8 * 3600 - 1, "7h59m"),
        (8 * 3600, "8h"),
        (48 * 3600 - 1, "47h"),
        (48 * 3600, "2d"),
        (49 * 3600, "2d1h"),
        (8 * 86400 - 1, "7d23h"),
        (8 * 86400, "8d"),
        (730 * 86400 - 1, "729d"),
        (730 * 86400, "2y"),
        (775 * 86400, "2y45d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ];
    for (secs, want) in cases {
        assert_eq!(human_duration(Duration::from_secs(*secs)), *want, "{secs}s");
    }
    assert_eq!(format::human_nanos(-1_500_000_000), "0s");
    assert_eq!(format::human_nanos(-2_000_000_000), "<invalid>");
}

#[test]
fn table_document() {
    let cols = columns("", "pods");
    let p = pod(
        json!({"phase": "Succeeded"}),
        json!({"containers": [{"name": "a"}]}),
    );
    let row = cells("", "pods", &p, now());
    let t = table(
        &cols,
        vec![(row.clone(), &p)],
        IncludeObject::Metadata,
        json!({"resourceVersion": "42", "continue": "", "remainingItemCount": 3}),
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "42", "remainingItemCount": 3})
    );
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name",
        "description": format::NAME_DESC, "priority": 0})
    );
    assert_eq!(t["rows"][0]["cells"], Value::Array(row.clone()));
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": p["metadata"]})
    );
    assert_eq!(t["rows"][0]["conditions"][0]["reason"], "Succeeded");
    let t = table(
        &cols,
        vec![(row.clone(), &p)],
        IncludeObject::None,
        json!({}),
    );
    assert_eq!(t["rows"][0]["object"], Value::Null);
    assert_eq!(t["metadata"], json!({}));
    let t = table(&cols, vec![(row, &p)], IncludeObject::Object, json!(null));
    assert_eq!(t["rows"][0]["object"], p);
    assert_eq!(
        table(&cols, vec![], IncludeObject::Metadata, json!({}))["rows"],
        json!([])
    );
    assert_eq!(
        IncludeObject::from_query(None),
        Some(IncludeObject::Metadata)
    );
    assert_eq!(
        IncludeObject::from_query(Some("Object")),
        Some(IncludeObject::Object)
    );
    assert_eq!(IncludeObject::from_query(Some("bogus")), None);
}

pub(super) fn pod(status: Value, spec: Value) -> Value {
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": meta("p", 300), "spec": spec, "status": status})
}

pub(super) fn two_containers() -> Value {
    json!({"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}], "nodeName": "n1"})
}
