//! Events, in both `v1` and `events.k8s.io/v1` form (one printer, as
//! upstream converts both to the same internal type).

use serde_json::{json, Value};

use super::format::{col, get, get_str, int, name, parse_time, since_at, NAME_DESC};
use super::narrow::Reads;
use super::Column;

pub(super) fn event_columns() -> Vec<Column> {
    vec![
        col("Last Seen", "string", 0, "The time at which the most recent occurrence of this event was recorded."),
        col("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
        col("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
        col("Object", "string", 0, "The object that this event is about."),
        col("Subobject", "string", 1, "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
        col("Source", "string", 1, "The component reporting this event. Should be a short machine understandable string."),
        col("Message", "string", 0, "A human-readable description of the status of this operation."),
        col("First Seen", "string", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
        col("Count", "string", 1, "The number of times this event has occurred."),
        Column {
            format: "name".to_string(),
            ..col("Name", "string", 1, NAME_DESC)
        },
    ]
}

/// What the event printer reads of an event in either API version (the fields of
/// [`CORE_EVENT`] and [`EVENTS_V1_EVENT`]).
pub(super) const EVENT_READS: Reads = &[
    "metadata.name",
    "type",
    "reason",
    "eventTime",
    "series",
    "reportingController",
    "reportingInstance",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.fieldPath",
    "message",
    "firstTimestamp",
    "lastTimestamp",
    "count",
    "source.component",
    "source.host",
    "regarding.kind",
    "regarding.name",
    "regarding.fieldPath",
    "note",
    "deprecatedFirstTimestamp",
    "deprecatedLastTimestamp",
    "deprecatedCount",
    "deprecatedSource.component",
    "deprecatedSource.host",
];

/// Field names of an event in either API version.
struct EventFields {
    involved: &'static str,
    message: &'static str,
    first: &'static str,
    last: &'static str,
    count: &'static str,
    source: &'static str,
}

const CORE_EVENT: EventFields = EventFields {
    involved: "involvedObject",
    message: "message",
    first: "firstTimestamp",
    last: "lastTimestamp",
    count: "count",
    source: "source",
};

const EVENTS_V1_EVENT: EventFields = EventFields {
    involved: "regarding",
    message: "note",
    first: "deprecatedFirstTimestamp",
    last: "deprecatedLastTimestamp",
    count: "deprecatedCount",
    source: "deprecatedSource",
};

pub(super) fn event_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    event_cells_with(obj, now, &CORE_EVENT)
}

/// Cells for an `events.k8s.io/v1` event.
pub(super) fn events_v1_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    event_cells_with(obj, now, &EVENTS_V1_EVENT)
}

fn event_cells_with(obj: &Value, now: jiff::Timestamp, f: &EventFields) -> Vec<Value> {
    let set = |k: &str| parse_time(get_str(obj, &[k])).is_some();
    let first = if set(f.first) {
        since_at(obj, &[f.first], now)
    } else {
        since_at(obj, &["eventTime"], now)
    };
    let mut last = if set(f.last) {
        since_at(obj, &[f.last], now)
    } else {
        first.clone()
    };
    let mut count = int(obj, &[f.count]);
    match get(obj, &["series"]) {
        Some(series) if series.is_object() => {
            last = since_at(series, &["lastObservedTime"], now);
            count = int(series, &["count"]);
        }
        _ if count == 0 => count = 1,
        _ => {}
    }
    let kind = get_str(obj, &[f.involved, "kind"]).to_lowercase();
    let involved_name = get_str(obj, &[f.involved, "name"]);
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };
    let component = first_non_empty(
        get_str(obj, &[f.source, "component"]),
        get_str(obj, &["reportingController"]),
    );
    let host = first_non_empty(
        get_str(obj, &[f.source, "host"]),
        get_str(obj, &["reportingInstance"]),
    );
    let source = if host.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {host}")
    };
    vec![
        json!(last),
        json!(get_str(obj, &["type"])),
        json!(get_str(obj, &["reason"])),
        json!(target),
        json!(get_str(obj, &[f.involved, "fieldPath"])),
        json!(source),
        json!(get_str(obj, &[f.message]).trim()),
        json!(first),
        json!(count),
        name(obj),
    ]
}

fn first_non_empty<'a>(a: &'a str, b: &'a str) -> &'a str {
    if a.is_empty() {
        b
    } else {
        a
    }
}
