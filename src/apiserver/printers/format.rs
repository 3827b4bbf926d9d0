//! Shared formatting helpers: field access on untyped objects, durations,
//! label and selector rendering, and column constructors.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::Column;

pub(super) const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub(super) const CREATION_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
pub(super) const CONTAINERS_DESC: &str = "Names of each container in the template.";
pub(super) const IMAGES_DESC: &str = "Images referenced by each container in the template.";

// ---- columns ----

/// A column with the given name, type, priority and description.
pub(super) fn col(name: &str, type_: &str, priority: i32, description: &str) -> Column {
    Column {
        name: name.to_string(),
        type_: type_.to_string(),
        format: String::new(),
        description: description.to_string(),
        priority,
    }
}

/// The leading `Name` column (`format: name`).
pub(super) fn name_col() -> Column {
    Column {
        format: "name".to_string(),
        ..col("Name", "string", 0, NAME_DESC)
    }
}

/// The `Age` column.
pub(super) fn age_col() -> Column {
    col("Age", "string", 0, CREATION_DESC)
}

/// What [`default_cells`] reads of an object.
pub(super) const DEFAULT_READS: super::narrow::Reads =
    &["metadata.name", "metadata.creationTimestamp"];

/// Upstream's default table convertor columns.
pub(super) fn default_columns() -> Vec<Column> {
    vec![name_col(), col("Created At", "date", 0, CREATION_DESC)]
}

/// Upstream's default table convertor cells: name and the creation time in
/// RFC 3339 (UTC), the zero time when missing.
pub(super) fn default_cells(obj: &Value) -> Vec<Value> {
    let created = parse_time(get_str(obj, &["metadata", "creationTimestamp"]))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string());
    vec![name(obj), Value::String(created)]
}

// ---- field access ----

/// The value at `path` (object keys), if present.
pub(super) fn get<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(*key))
}

/// The string at `path`, or `""`.
pub(super) fn get_str<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    get(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The string at `path` if present and a string.
pub(super) fn opt_str<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    get(v, path).and_then(Value::as_str)
}

/// The integer at `path`, if present.
pub(super) fn get_i64(v: &Value, path: &[&str]) -> Option<i64> {
    get(v, path).and_then(as_int)
}

/// The integer at `path`, or 0.
pub(super) fn int(v: &Value, path: &[&str]) -> i64 {
    get_i64(v, path).unwrap_or(0)
}

fn as_int(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
}

/// The bool at `path`, if present.
pub(super) fn get_bool(v: &Value, path: &[&str]) -> Option<bool> {
    get(v, path).and_then(Value::as_bool)
}

/// The array at `path`, or an empty slice.
pub(super) fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    get(v, path)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// The number of entries of the map (or array) at `path`.
pub(super) fn len_at(v: &Value, path: &[&str]) -> i64 {
    match get(v, path) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

/// The object's name as a cell.
pub(super) fn name(obj: &Value) -> Value {
    Value::String(get_str(obj, &["metadata", "name"]).to_string())
}

/// Whether `metadata.deletionTimestamp` is set.
pub(super) fn deleting(obj: &Value) -> bool {
    !matches!(
        get(obj, &["metadata", "deletionTimestamp"]),
        None | Some(Value::Null)
    )
}

/// A string that is `placeholder` when empty.
pub(super) fn or(s: &str, placeholder: &str) -> String {
    if s.is_empty() {
        placeholder.to_string()
    } else {
        s.to_string()
    }
}

/// Renders an int-or-string value like `IntOrString.String()`.
pub(super) fn int_or_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => as_int(other).unwrap_or(0).to_string(),
    }
}

/// A Kubernetes quantity as stored; a missing quantity is zero.
pub(super) fn quantity(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".to_string(),
    }
}

// ---- time ----

/// Parses an RFC 3339 timestamp; `None` for missing, invalid or zero times.
pub(super) fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    let t: jiff::Timestamp = s.parse().ok()?;
    // The Go zero time (0001-01-01T00:00:00Z) means "unset".
    if t.as_second() == -62_135_596_800 && t.subsec_nanosecond() == 0 {
        return None;
    }
    Some(t)
}

/// `translateTimestampSince`: the human duration since the timestamp at
/// `path`, or `<unknown>` when unset.
pub(super) fn since_at(obj: &Value, path: &[&str], now: jiff::Timestamp) -> String {
    since(get_str(obj, path), now)
}

/// The human duration since an RFC 3339 timestamp, `<unknown>` when unset.
pub(super) fn since(ts: &str, now: jiff::Timestamp) -> String {
    match parse_time(ts) {
        Some(t) => human_nanos(now.as_nanosecond() - t.as_nanosecond()),
        None => "<unknown>".to_string(),
    }
}

/// The object's age as a cell.
pub(super) fn age(obj: &Value, now: jiff::Timestamp) -> Value {
    Value::String(since_at(obj, &["metadata", "creationTimestamp"], now))
}

/// kubectl's human duration, exactly like apimachinery's
/// `duration.HumanDuration`.
pub fn human_duration(d: std::time::Duration) -> String {
    human_nanos(i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
}

/// [`human_duration`] for a signed nanosecond count: up to a second in the
/// future is `0s`, further is `<invalid>`.
pub(super) fn human_nanos(nanos: i128) -> String {
    const SEC: i128 = 1_000_000_000;
    let seconds = nanos / SEC;
    if seconds < -1 {
        return "<invalid>".to_string();
    } else if seconds < 0 {
        return "0s".to_string();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

// ---- labels and selectors ----

/// `labels.Set(m).String()`: sorted `k=v` pairs joined by commas.
pub(super) fn labels_string(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else {
        return String::new();
    };
    let sorted: BTreeMap<&str, String> = m
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// `labels.FormatLabels`: like [`labels_string`], `<none>` when empty.
pub(super) fn format_labels(map: Option<&Value>) -> String {
    or(&labels_string(map), "<none>")
}

/// `metav1.LabelSelectorAsSelector(sel).String()`; `Err` for selectors
/// upstream rejects. A missing selector selects nothing and an empty one
/// everything; both render as `""`.
pub(super) fn selector_string(sel: Option<&Value>) -> Result<String, ()> {
    let sel = match sel {
        None | Some(Value::Null) => return Ok(String::new()),
        Some(s) => s,
    };
    // (key, rendered) pairs, sorted by key (stable, like sort.Sort(ByKey)
    // for distinct keys).
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(m)) = sel.get("matchLabels") {
        for (k, v) in m {
            let v = v.as_str().unwrap_or_default();
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    for expr in arr(sel, &["matchExpressions"]) {
        let key = get_str(expr, &["key"]);
        if key.is_empty() {
            return Err(());
        }
        let mut values: Vec<&str> = arr(expr, &["values"])
            .iter()
            .map(|v| v.as_str().unwrap_or_default())
            .collect();
        values.sort_unstable();
        let rendered = match get_str(expr, &["operator"]) {
            "In" | "NotIn" if values.is_empty() => return Err(()),
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" | "DoesNotExist" if !values.is_empty() => return Err(()),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key.to_string(), rendered));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(","))
}

/// `metav1.FormatLabelSelector`: `<error>` when invalid, `<none>` when empty.
pub(super) fn format_label_selector(sel: Option<&Value>) -> String {
    match selector_string(sel) {
        Ok(s) => or(&s, "<none>"),
        Err(()) => "<error>".to_string(),
    }
}

// ---- containers and lists ----

/// `layoutContainerCells`: container names and images, comma separated.
pub(super) fn layout_containers(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| get_str(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| get_str(c, &["image"])).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// `listWithMoreString`: the first `max` items, `+ N more...` for the rest,
/// `<unset>` when empty.
pub(super) fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let shown: Vec<&str> = list.iter().take(max).map(String::as_str).collect();
    let ret = shown.join(",");
    if count > max {
        return format!("{ret} + {} more...", count - max);
    }
    or(&ret, "<unset>")
}

/// `net.JoinHostPort`.
pub(super) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Go's `%s` of a `*bool` through `printBoolPtr`.
pub(super) fn bool_ptr(v: Option<bool>) -> String {
    match v {
        Some(true) => "True".to_string(),
        Some(false) => "False".to_string(),
        None => "<unset>".to_string(),
    }
}

/// The controller owner reference, if any.
pub(super) fn controller_ref(obj: &Value) -> Option<&Value> {
    arr(obj, &["metadata", "ownerReferences"])
        .iter()
        .find(|r| get_bool(r, &["controller"]) == Some(true))
}
