//! Custom resources: columns and cells from a CRD version's
//! `additionalPrinterColumns`, evaluated with the subset of JSONPath that
//! printer columns use.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::format::{col, get_str, human_nanos, name, name_col, parse_time, CREATION_DESC};
use super::jsonpath::{evaluate, parse, Step};
use super::Column;

/// A printer column as declared in the CRD.
struct Declared {
    column: Column,
    path: Option<Vec<Step>>,
}

/// Upstream serves an `Age` column when a version declares none.
fn declared(additional_printer_columns: &Value) -> Vec<Declared> {
    let list = additional_printer_columns
        .as_array()
        .filter(|l| !l.is_empty())
        .cloned()
        .unwrap_or_else(|| {
            vec![json!({
                "name": "Age",
                "type": "date",
                "description": CREATION_DESC,
                "jsonPath": ".metadata.creationTimestamp",
            })]
        });
    list.iter()
        .map(|c| {
            let json_path = get_str(c, &["jsonPath"]);
            let description = match get_str(c, &["description"]) {
                "" => {
                    format!("Custom resource definition column (in JSONPath format): {json_path}")
                }
                d => d.to_string(),
            };
            let priority = c.get("priority").and_then(Value::as_i64).unwrap_or(0);
            let mut column = col(
                get_str(c, &["name"]),
                get_str(c, &["type"]),
                i32::try_from(priority).unwrap_or(0),
                &description,
            );
            column.format = get_str(c, &["format"]).to_string();
            Declared {
                column,
                path: parse(json_path),
            }
        })
        .collect()
}

/// Columns for a custom resource: `Name`, then the declared printer columns
/// (or `Age` when there are none).
pub fn crd_columns(additional_printer_columns: &Value) -> Vec<Column> {
    std::iter::once(name_col())
        .chain(
            declared(additional_printer_columns)
                .into_iter()
                .map(|d| d.column),
        )
        .collect()
}

/// Cells for a custom resource, matching [`crd_columns`].
pub fn crd_cells(
    additional_printer_columns: &Value,
    obj: &Value,
    now: jiff::Timestamp,
) -> Vec<Value> {
    let mut cells = vec![name(obj)];
    for d in declared(additional_printer_columns) {
        let value = d
            .path
            .as_ref()
            .and_then(|steps| evaluate(steps, obj).into_iter().next());
        cells.push(match value {
            None => Value::Null,
            Some(v) => cell_for(&d.column.type_, v, now),
        });
    }
    cells
}

/// `cellForJSONValue`, with `string` columns printed like JSONPath output.
fn cell_for(type_: &str, value: &Value, now: jiff::Timestamp) -> Value {
    if type_ == "string" {
        return Value::String(print_value(value));
    }
    match (type_, value) {
        (_, Value::Null) => Value::Null,
        ("integer", Value::Number(n)) => match n.as_i64() {
            Some(i) => json!(i),
            None => n.as_f64().map(|f| json!(f as i64)).unwrap_or(Value::Null),
        },
        ("number", Value::Number(n)) => match n.as_i64() {
            Some(i) => json!(i),
            None => json!(n.as_f64().unwrap_or(0.0)),
        },
        ("boolean", Value::Bool(b)) => json!(b),
        ("date", Value::String(s)) => {
            if s.is_empty() || s == "null" {
                return json!("<unknown>");
            }
            match s.parse::<jiff::Timestamp>() {
                Err(_) => json!("<invalid>"),
                Ok(_) => match parse_time(s) {
                    Some(t) => json!(human_nanos(now.as_nanosecond() - t.as_nanosecond())),
                    None => json!("<unknown>"),
                },
            }
        }
        _ => Value::Null,
    }
}

/// How JSONPath prints one result: scalars as text, objects and arrays as
/// compact JSON with sorted keys.
fn print_value(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => go_number(n),
        Value::Array(_) | Value::Object(_) => {
            let mut out = String::new();
            go_json(v, &mut out);
            out
        }
    }
}

/// A number as Go's `fmt.Sprint` prints an `int64` or `float64`.
fn go_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    let abs = f.abs();
    if abs != 0.0 && !(1e-4..1e21).contains(&abs) {
        let s = format!("{f:e}");
        return match s.split_once('e') {
            Some((mantissa, exp)) => {
                let (sign, digits) = match exp.strip_prefix('-') {
                    Some(d) => ('-', d),
                    None => ('+', exp),
                };
                format!("{mantissa}e{sign}{digits:0>2}")
            }
            None => s,
        };
    }
    format!("{f}")
}

/// Go's `json.Marshal` of a decoded value: sorted keys, HTML escaping.
fn go_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, &Value> = m.iter().collect();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(k, out);
                out.push(':');
                go_json(v, out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_json(v, out);
            }
            out.push(']');
        }
        Value::String(s) => go_string(s, out),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e21 => {
                out.push_str(&format!("{f:.0}"))
            }
            _ => out.push_str(&n.to_string()),
        },
        other => out.push_str(&other.to_string()),
    }
}

fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
