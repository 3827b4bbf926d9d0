//! Typed, non-panicking access to JSON objects plus the `field.Error`
//! constructors. Every getter reports a wrong JSON type as an `Invalid`
//! error at the offending path and then behaves as if the field were unset.

use serde_json::{Map, Value};

use super::render;
use super::{ErrorType, FieldError};

pub type Errs = Vec<FieldError>;

pub fn child(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_string()
    } else {
        format!("{base}.{name}")
    }
}

pub fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

pub fn key(base: &str, k: &str) -> String {
    format!("{base}[{k}]")
}

fn mk(kind: ErrorType, field: &str, value: Option<String>, detail: &str) -> FieldError {
    FieldError {
        kind,
        field: field.to_string(),
        value,
        detail: detail.to_string(),
    }
}

pub fn required(field: &str, detail: &str) -> FieldError {
    mk(ErrorType::Required, field, None, detail)
}

pub fn invalid(field: &str, value: String, detail: &str) -> FieldError {
    mk(ErrorType::Invalid, field, Some(value), detail)
}

pub fn invalid_str(field: &str, value: &str, detail: &str) -> FieldError {
    invalid(field, render::go_quote(value), detail)
}

pub fn invalid_int(field: &str, value: i64, detail: &str) -> FieldError {
    invalid(field, value.to_string(), detail)
}

pub fn not_supported(field: &str, value: &str, valid: &[&str]) -> FieldError {
    let detail = if valid.is_empty() {
        String::new()
    } else {
        let q: Vec<String> = valid.iter().map(|v| render::go_quote(v)).collect();
        format!("supported values: {}", q.join(", "))
    };
    mk(
        ErrorType::NotSupported,
        field,
        Some(render::go_quote(value)),
        &detail,
    )
}

pub fn duplicate(field: &str, value: String) -> FieldError {
    mk(ErrorType::Duplicate, field, Some(value), "")
}

pub fn duplicate_str(field: &str, value: &str) -> FieldError {
    duplicate(field, render::go_quote(value))
}

pub fn forbidden(field: &str, detail: &str) -> FieldError {
    mk(ErrorType::Forbidden, field, None, detail)
}

pub fn too_long(field: &str, max: usize) -> FieldError {
    let unit = if max == 1 { "byte" } else { "bytes" };
    mk(
        ErrorType::TooLong,
        field,
        None,
        &format!("may not be more than {max} {unit}"),
    )
}

pub fn too_many(field: &str, actual: usize, max: usize) -> FieldError {
    let unit = if max == 1 { "item" } else { "items" };
    mk(
        ErrorType::TooMany,
        field,
        Some(actual.to_string()),
        &format!("must have at most {max} {unit}"),
    )
}

pub fn not_found_str(field: &str, value: &str) -> FieldError {
    mk(
        ErrorType::NotFound,
        field,
        Some(render::go_quote(value)),
        "",
    )
}

pub fn immutable(field: &str, value: String) -> FieldError {
    invalid(field, value, "field is immutable")
}

pub fn type_error(field: &str, v: &Value, detail: &str) -> FieldError {
    invalid(field, render::value(v), detail)
}

pub const NONNEG: &str = "must be greater than or equal to 0";

/// A present, non-null member of an object.
pub fn get<'a>(v: &'a Value, k: &str) -> Option<&'a Value> {
    v.as_object()?.get(k).filter(|x| !x.is_null())
}

pub fn opt_str<'a>(v: &'a Value, k: &str, base: &str, errs: &mut Errs) -> Option<&'a str> {
    match get(v, k)? {
        Value::String(s) => Some(s),
        other => {
            errs.push(type_error(&child(base, k), other, "must be a string"));
            None
        }
    }
}

pub fn str_or<'a>(v: &'a Value, k: &str, base: &str, errs: &mut Errs) -> &'a str {
    opt_str(v, k, base, errs).unwrap_or("")
}

pub fn opt_i64(v: &Value, k: &str, base: &str, errs: &mut Errs) -> Option<i64> {
    let x = get(v, k)?;
    match x.as_i64() {
        Some(n) => Some(n),
        None => {
            errs.push(type_error(&child(base, k), x, "must be an integer"));
            None
        }
    }
}

pub fn opt_bool(v: &Value, k: &str, base: &str, errs: &mut Errs) -> Option<bool> {
    let x = get(v, k)?;
    match x.as_bool() {
        Some(b) => Some(b),
        None => {
            errs.push(type_error(&child(base, k), x, "must be a boolean"));
            None
        }
    }
}

pub fn opt_obj<'a>(
    v: &'a Value,
    k: &str,
    base: &str,
    errs: &mut Errs,
) -> Option<&'a Map<String, Value>> {
    let x = get(v, k)?;
    match x.as_object() {
        Some(m) => Some(m),
        None => {
            errs.push(type_error(&child(base, k), x, "must be an object"));
            None
        }
    }
}

/// Like [`opt_obj`] but returns the value itself (known to be an object).
pub fn opt_objv<'a>(v: &'a Value, k: &str, base: &str, errs: &mut Errs) -> Option<&'a Value> {
    opt_obj(v, k, base, errs)?;
    get(v, k)
}

pub fn arr<'a>(v: &'a Value, k: &str, base: &str, errs: &mut Errs) -> &'a [Value] {
    match get(v, k) {
        None => &[],
        Some(Value::Array(a)) => a,
        Some(other) => {
            errs.push(type_error(&child(base, k), other, "must be an array"));
            &[]
        }
    }
}

/// Elements of an array that must be objects; the others are reported.
pub fn obj_items<'a>(
    v: &'a Value,
    k: &str,
    base: &str,
    errs: &mut Errs,
) -> Vec<(usize, &'a Value)> {
    let p = child(base, k);
    let mut out = Vec::new();
    for (i, item) in arr(v, k, base, errs).iter().enumerate() {
        if item.is_object() {
            out.push((i, item));
        } else {
            errs.push(type_error(&index(&p, i), item, "must be an object"));
        }
    }
    out
}

/// A `map[string]string`; entries with non-string values are reported.
pub fn str_map<'a>(v: &'a Value, k: &str, base: &str, errs: &mut Errs) -> Vec<(&'a str, &'a str)> {
    let p = child(base, k);
    let mut out = Vec::new();
    if let Some(m) = opt_obj(v, k, base, errs) {
        for (key_, val) in m {
            match val {
                Value::String(s) => out.push((key_.as_str(), s.as_str())),
                Value::Null => out.push((key_.as_str(), "")),
                other => errs.push(type_error(&key(&p, key_), other, "must be a string")),
            }
        }
    }
    out
}

/// A `[]string`; non-string items are reported.
pub fn str_list<'a>(v: &'a Value, k: &str, base: &str, errs: &mut Errs) -> Vec<(usize, &'a str)> {
    let p = child(base, k);
    let mut out = Vec::new();
    for (i, item) in arr(v, k, base, errs).iter().enumerate() {
        match item {
            Value::String(s) => out.push((i, s.as_str())),
            other => errs.push(type_error(&index(&p, i), other, "must be a string")),
        }
    }
    out
}

/// An `intstr.IntOrString` value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum IntOrStr<'a> {
    Int(i64),
    Str(&'a str),
}

pub fn int_or_str<'a>(v: &'a Value, k: &str, base: &str, errs: &mut Errs) -> Option<IntOrStr<'a>> {
    let x = get(v, k)?;
    match x {
        Value::String(s) => Some(IntOrStr::Str(s)),
        Value::Number(n) if n.as_i64().is_some() => Some(IntOrStr::Int(n.as_i64().unwrap_or(0))),
        other => {
            errs.push(type_error(
                &child(base, k),
                other,
                "must be an integer or a string",
            ));
            None
        }
    }
}

/// Equality of two optional members, treating absent and null alike.
pub fn same(a: &Value, b: &Value, k: &str) -> bool {
    get(a, k) == get(b, k)
}

/// Mutable access to an object member, creating an empty object if missing
/// or of the wrong type is left alone (returns `None`).
pub fn obj_mut<'a>(v: &'a mut Value, k: &str) -> Option<&'a mut Value> {
    let m = v.as_object_mut()?;
    if m.get(k).is_none_or(Value::is_null) {
        m.insert(k.to_string(), Value::Object(Map::new()));
    }
    m.get_mut(k).filter(|x| x.is_object())
}

/// Mutable access to an existing object member (no creation).
pub fn existing_obj_mut<'a>(v: &'a mut Value, k: &str) -> Option<&'a mut Value> {
    v.as_object_mut()?.get_mut(k).filter(|x| x.is_object())
}

/// Set `k` to `val` when it is absent or null.
pub fn set_default(v: &mut Value, k: &str, val: Value) {
    if let Some(m) = v.as_object_mut() {
        if m.get(k).is_none_or(Value::is_null) {
            m.insert(k.to_string(), val);
        }
    }
}

/// Set `k` to `val` when it is absent, null or an empty string.
pub fn set_default_str(v: &mut Value, k: &str, val: &str) {
    if let Some(m) = v.as_object_mut() {
        let empty = match m.get(k) {
            None | Some(Value::Null) => true,
            Some(Value::String(s)) => s.is_empty(),
            _ => false,
        };
        if empty {
            m.insert(k.to_string(), Value::String(val.to_string()));
        }
    }
}

/// Mutable iteration over an array member's object items.
pub fn each_obj_mut(v: &mut Value, k: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(Value::Array(a)) = v.as_object_mut().and_then(|m| m.get_mut(k)) {
        for item in a.iter_mut().filter(|x| x.is_object()) {
            f(item);
        }
    }
}

/// Plain string read without error reporting (for defaulting decisions).
pub fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    get(v, k).and_then(Value::as_str).unwrap_or("")
}
