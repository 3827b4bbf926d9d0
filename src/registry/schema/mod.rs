//! Structural-schema processing for custom resources: pruning, defaulting and validation of
//! custom resource objects (`serde_json::Value`) against a CRD version's `openAPIV3Schema`, and
//! the structural checks a CRD schema must pass before it can be served.
//!
//! This module owns the semantics upstream's apiextensions-apiserver gives to the schema keywords
//! (`type`, `format`, `enum`, bounds, `pattern`, `properties`, `additionalProperties`, `items`,
//! the junctors `allOf`/`anyOf`/`oneOf`/`not`, and the `x-kubernetes-*` extensions) and the exact
//! wording of the field errors they produce, because clients match on those messages.
//!
//! It must never do I/O, never panic on input (objects and schemas are both user-supplied; a
//! malformed schema node is treated as absent), and never recurse without bound: object nesting
//! beyond [`MAX_DEPTH`] is reported by [`validate`] and left untouched by [`prune`] and
//! [`apply_defaults`].
//!
//! Not evaluated here: CEL rules (`x-kubernetes-validations`, compiled and run by
//! `registry::cel` after these checks) and ObjectMeta validation (names, labels), which belong
//! to other layers. `pattern` is matched by a small linear-time regex engine
//! (see `pattern.rs`); patterns using syntax it does not understand are not enforced.

mod defaults;
mod extensions;
mod formats;
mod nfa;
mod pattern;
mod prune;
mod structural;
mod validate;

#[cfg(test)]
mod tests;

pub use defaults::apply_defaults;
pub use prune::prune;
pub use structural::check_structural;
pub use validate::validate;

use serde_json::{Map, Value};

/// How deep objects (and schemas) are followed. Deeper object nesting is a validation error.
pub const MAX_DEPTH: usize = 128;

/// A problem found in an object, with upstream's field path conventions
/// ("spec.replicas", "spec.items[2].name").
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaError {
    pub field: String,
    /// Upstream's cause reason: "FieldValueRequired", "FieldValueInvalid", "FieldValueTypeInvalid",
    /// "FieldValueNotSupported", "FieldValueTooLong", "FieldValueTooMany", "FieldValueDuplicate",
    /// "FieldValueForbidden".
    pub reason: &'static str,
    /// The full message, `field: Invalid value: ...: detail`.
    pub message: String,
}

impl SchemaError {
    fn build(field: &str, reason: &'static str, body: String) -> Self {
        SchemaError {
            field: field.to_string(),
            reason,
            message: format!("{field}: {body}"),
        }
    }

    /// `field: Invalid value: <shown>: detail`; `shown` is already rendered (see [`show`]).
    pub(crate) fn invalid(field: &str, shown: &str, detail: &str) -> Self {
        Self::build(
            field,
            "FieldValueInvalid",
            format!("Invalid value: {shown}: {detail}"),
        )
    }

    pub(crate) fn type_invalid(field: &str, shown: &str, detail: &str) -> Self {
        Self::build(
            field,
            "FieldValueTypeInvalid",
            format!("Invalid value: {shown}: {detail}"),
        )
    }

    pub(crate) fn required(field: &str, detail: &str) -> Self {
        let body = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        Self::build(field, "FieldValueRequired", body)
    }

    pub(crate) fn not_supported(field: &str, shown: &str, supported: &[String]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        Self::build(
            field,
            "FieldValueNotSupported",
            format!(
                "Unsupported value: {shown}: supported values: {}",
                list.join(", ")
            ),
        )
    }

    pub(crate) fn too_long(field: &str, max: u64) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        Self::build(
            field,
            "FieldValueTooLong",
            format!("Too long: may not be more than {max} {unit}"),
        )
    }

    pub(crate) fn too_many(field: &str, actual: usize, max: u64) -> Self {
        let unit = if max == 1 { "item" } else { "items" };
        Self::build(
            field,
            "FieldValueTooMany",
            format!("Too many: {actual}: must have at most {max} {unit}"),
        )
    }

    pub(crate) fn duplicate(field: &str, shown: &str) -> Self {
        Self::build(
            field,
            "FieldValueDuplicate",
            format!("Duplicate value: {shown}"),
        )
    }

    pub(crate) fn forbidden(field: &str, detail: &str) -> Self {
        Self::build(field, "FieldValueForbidden", format!("Forbidden: {detail}"))
    }
}

/// `parent.key`, or `key` at the root.
pub(crate) fn child(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// `parent[i]`.
pub(crate) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// The schema node as an object; anything else (a malformed node) reads as "no schema".
pub(crate) fn node(s: &Value) -> Option<&Map<String, Value>> {
    s.as_object()
}

pub(crate) fn flag(s: &Map<String, Value>, key: &str) -> bool {
    matches!(s.get(key), Some(Value::Bool(true)))
}

pub(crate) fn str_of<'a>(s: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    s.get(key).and_then(Value::as_str)
}

pub(crate) fn properties(s: &Map<String, Value>) -> Option<&Map<String, Value>> {
    s.get("properties").and_then(Value::as_object)
}

/// The `items` schema, when it is a single schema object.
pub(crate) fn items(s: &Map<String, Value>) -> Option<&Value> {
    s.get("items").filter(|v| v.is_object())
}

/// What `additionalProperties` says.
#[derive(Clone, Copy)]
pub(crate) enum Additional<'a> {
    Absent,
    Allowed(bool),
    Schema(&'a Value),
}

pub(crate) fn additional(s: &Map<String, Value>) -> Additional<'_> {
    match s.get("additionalProperties") {
        Some(Value::Bool(b)) => Additional::Allowed(*b),
        Some(v @ Value::Object(_)) => Additional::Schema(v),
        _ => Additional::Absent,
    }
}

/// A non-negative integer keyword (`maxLength`, `minItems`, ...), if well-formed.
pub(crate) fn count_of(s: &Map<String, Value>, key: &str) -> Option<u64> {
    let v = s.get(key)?;
    v.as_u64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8e19)
            .map(|f| f as u64)
    })
}

/// A value rendered as upstream's field errors render it: strings quoted Go-style, numbers
/// plain (floats like Go's `%v`), null as `"null"`, objects and arrays as JSON.
pub(crate) fn show(v: &Value) -> String {
    match v {
        Value::Null => go_quote("null"),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => show_number(n),
        Value::String(s) => go_quote(s),
        Value::Array(_) | Value::Object(_) => {
            if exceeds_depth(v, 32).is_some() {
                "<deeply nested value>".to_string()
            } else {
                serde_json::to_string(v).unwrap_or_default()
            }
        }
    }
}

pub(crate) fn show_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        go_float(n.as_f64().unwrap_or(0.0))
    }
}

/// Go's `%q` for a string, close enough for messages.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `%v` for a float64: shortest representation, exponent form outside [1e-4, 1e6).
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return if f.is_finite() {
            "0".into()
        } else {
            f.to_string()
        };
    }
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if f < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let body = if point <= 0 {
        format!("0.{}{}", "0".repeat((-point) as usize), digits)
    } else if (point as usize) >= digits.len() {
        format!("{digits}{}", "0".repeat(point as usize - digits.len()))
    } else {
        let (a, b) = digits.split_at(point as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{body}")
}

/// Where (as a field path) the value nests containers deeper than `max` levels, if anywhere.
/// Iterative, so hostile nesting cannot exhaust the stack.
pub(crate) fn exceeds_depth(v: &Value, max: usize) -> Option<String> {
    enum Seg<'a> {
        Root,
        Key(&'a str),
        Index(usize),
    }
    // Arena of visited containers: (parent, segment).
    let mut arena: Vec<(usize, Seg<'_>)> = vec![(0, Seg::Root)];
    let mut stack: Vec<(usize, &Value, usize)> = vec![(0, v, 0)];
    while let Some((id, val, depth)) = stack.pop() {
        if depth > max {
            let mut segs = Vec::new();
            let mut cur = id;
            while cur != 0 {
                let (parent, seg) = &arena[cur];
                segs.push(seg);
                cur = *parent;
            }
            let mut path = String::new();
            for seg in segs.iter().rev() {
                match seg {
                    Seg::Root => {}
                    Seg::Key(k) => path = child(&path, k),
                    Seg::Index(i) => path = index(&path, *i),
                }
            }
            return Some(path);
        }
        match val {
            Value::Object(m) => {
                for (k, c) in m {
                    if c.is_object() || c.is_array() {
                        arena.push((id, Seg::Key(k)));
                        stack.push((arena.len() - 1, c, depth + 1));
                    }
                }
            }
            Value::Array(a) => {
                for (i, c) in a.iter().enumerate() {
                    if c.is_object() || c.is_array() {
                        arena.push((id, Seg::Index(i)));
                        stack.push((arena.len() - 1, c, depth + 1));
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// Drops a value without recursing, so that discarding hostile nesting cannot exhaust the stack.
pub(crate) fn drop_deep(v: Value) {
    let mut stack = vec![v];
    while let Some(mut v) = stack.pop() {
        match &mut v {
            Value::Object(m) => {
                let taken = std::mem::take(m);
                stack.extend(taken.into_iter().map(|(_, x)| x));
            }
            Value::Array(a) => stack.append(a),
            _ => {}
        }
    }
}

/// JSON equality as upstream compares decoded values: numbers by numeric value.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, p)| y.get(k).is_some_and(|q| json_eq(p, q)))
        }
        _ => a == b,
    }
}

/// A canonical text for a value (object keys sorted, numbers normalised), for hashing.
pub(crate) fn canonical(v: &Value, out: &mut String) {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => out.push_str(&i.to_string()),
            None => out.push_str(&go_float(n.as_f64().unwrap_or(0.0))),
        },
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&go_quote(k));
                out.push(':');
                if let Some(x) = m.get(k) {
                    canonical(x, out);
                }
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}
