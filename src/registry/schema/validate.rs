//! Validation of an object against a structural schema, keyword by keyword as upstream's
//! OpenAPI validator does, followed (as upstream orders them) by the embedded-resource checks and
//! the `x-kubernetes-list-type` set/map uniqueness checks.

use super::pattern::Regex;
use super::{
    additional, canonical, child, count_of, exceeds_depth, flag, go_float, go_quote, index, items,
    json_eq, node, properties, show, show_number, str_of, Additional, SchemaError, MAX_DEPTH,
};
use super::{extensions, formats};
use serde_json::{Map, Value};
use std::collections::HashSet;

#[derive(Default)]
struct Ctx {
    errs: Vec<SchemaError>,
    embedded: Vec<SchemaError>,
    lists: Vec<SchemaError>,
    too_deep: bool,
}

impl Ctx {
    fn all(self) -> Vec<SchemaError> {
        let mut out = self.errs;
        out.extend(self.embedded);
        out.extend(self.lists);
        out
    }
}

/// Validates `obj` against `schema`; see the module documentation for what is covered.
pub fn validate(schema: &Value, obj: &Value) -> Vec<SchemaError> {
    if let Some(path) = exceeds_depth(obj, MAX_DEPTH) {
        return vec![depth_error(&path)];
    }
    let mut cx = Ctx::default();
    value(&mut cx, schema, obj, "", 0);
    cx.all()
}

fn depth_error(path: &str) -> SchemaError {
    SchemaError::invalid(
        path,
        "\"\"",
        &format!("{path} in body exceeds the maximum nesting depth of {MAX_DEPTH}"),
    )
}

/// The JSON type name upstream reports for a value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// An integral float within the range JSON integers are exact in.
fn is_float_int(v: &Value) -> bool {
    v.as_f64()
        .is_some_and(|f| f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_992.0)
}

fn declared_types(s: &Map<String, Value>) -> Vec<&str> {
    if flag(s, "x-kubernetes-int-or-string") {
        vec!["integer", "string"]
    } else {
        str_of(s, "type").map(|t| vec![t]).unwrap_or_default()
    }
}

fn value(cx: &mut Ctx, schema: &Value, v: &Value, path: &str, depth: usize) {
    if depth > MAX_DEPTH {
        if !cx.too_deep {
            cx.too_deep = true;
            cx.errs.push(depth_error(path));
        }
        return;
    }
    let Some(s) = node(schema) else {
        return;
    };
    let types = declared_types(s);
    let nullable = flag(s, "nullable");
    if v.is_null() {
        if !types.is_empty() && !nullable {
            let t = types.join(",");
            let detail = format!("{path} in body must be of type {t}: \"null\"");
            cx.errs
                .push(SchemaError::type_invalid(path, "\"null\"", &detail));
        }
        if !nullable {
            check_enum(cx, s, v, path);
        }
        return;
    }
    check_type(cx, s, &types, v, path);
    junctors(cx, s, v, path, depth);
    match v {
        Value::String(text) => string(cx, s, text, path),
        Value::Number(_) => number(cx, s, v, path),
        Value::Array(a) => array(cx, s, a, path, depth),
        _ => {}
    }
    check_enum(cx, s, v, path);
    if let Value::Object(m) = v {
        object(cx, s, m, path, depth);
        if flag(s, "x-kubernetes-embedded-resource") {
            extensions::embedded(&mut cx.embedded, m, path);
        }
    }
}

fn check_type(cx: &mut Ctx, s: &Map<String, Value>, types: &[&str], v: &Value, path: &str) {
    let actual = type_name(v);
    let has = |t: &str| types.contains(&t);
    let ok = has(actual)
        || (actual == "number" && is_float_int(v) && has("integer"))
        || (actual == "integer" && has("number"));
    let format = str_of(s, "format").and_then(formats::supported);
    let textual = v.is_string() || v.is_array();
    if let Some(format) = format {
        if !textual && !ok {
            // Upstream reports the format, and the data's own format, in this case.
            let data_format = match actual {
                "integer" => "int64",
                "number" => "float64",
                _ => "",
            };
            let detail = format!(
                "{path} in body must be of type {format}: {}",
                go_quote(data_format)
            );
            cx.errs.push(SchemaError::type_invalid(
                path,
                &go_quote(data_format),
                &detail,
            ));
            return;
        }
        if textual && !has("number") && !has("integer") {
            return;
        }
    }
    if !types.is_empty() && !ok {
        let detail = format!(
            "{path} in body must be of type {}: {}",
            types.join(","),
            go_quote(actual)
        );
        cx.errs
            .push(SchemaError::type_invalid(path, &go_quote(actual), &detail));
    }
}

/// Runs a sub-schema on the same value, collecting its errors separately.
fn sub(schema: &Value, v: &Value, path: &str, depth: usize) -> Vec<SchemaError> {
    let mut cx = Ctx::default();
    value(&mut cx, schema, v, path, depth + 1);
    cx.all()
}

fn composite(path: &str, what: &str) -> SchemaError {
    SchemaError::invalid(path, "\"\"", &format!("{path} {what}"))
}

fn junctors(cx: &mut Ctx, s: &Map<String, Value>, v: &Value, path: &str, depth: usize) {
    if let Some(any) = s
        .get("anyOf")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        let mut best: Option<Vec<SchemaError>> = None;
        let mut passed = false;
        for alt in any {
            let errs = sub(alt, v, path, depth);
            if errs.is_empty() {
                passed = true;
                break;
            }
            if best.as_ref().is_none_or(|b| errs.len() < b.len()) {
                best = Some(errs);
            }
        }
        if !passed {
            cx.errs
                .push(composite(path, "must validate at least one schema (anyOf)"));
            cx.errs.extend(best.unwrap_or_default());
        }
    }
    if let Some(one) = s
        .get("oneOf")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
    {
        let mut best: Option<Vec<SchemaError>> = None;
        let mut valid = 0;
        for alt in one {
            let errs = sub(alt, v, path, depth);
            if errs.is_empty() {
                valid += 1;
            } else if best.as_ref().is_none_or(|b| errs.len() < b.len()) {
                best = Some(errs);
            }
        }
        if valid != 1 {
            let found = if valid == 0 {
                "Found none valid".to_string()
            } else {
                format!("Found {valid} valid alternatives")
            };
            cx.errs.push(composite(
                path,
                &format!("must validate one and only one schema (oneOf). {found}"),
            ));
            if valid == 0 {
                cx.errs.extend(best.unwrap_or_default());
            }
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        let mut valid = 0;
        for alt in all {
            let errs = sub(alt, v, path, depth);
            if errs.is_empty() {
                valid += 1;
            }
            cx.errs.extend(errs);
        }
        if valid != all.len() {
            let none = if valid == 0 { ". None validated" } else { "" };
            cx.errs.push(composite(
                path,
                &format!("must validate all the schemas (allOf){none}"),
            ));
        }
    }
    let not = s.get("not").filter(|n| n.is_object());
    if not.is_some_and(|not| sub(not, v, path, depth).is_empty()) {
        cx.errs
            .push(composite(path, "must not validate the schema (not)"));
    }
}

fn string(cx: &mut Ctx, s: &Map<String, Value>, text: &str, path: &str) {
    let len = text.chars().count() as u64;
    if let Some(max) = count_of(s, "maxLength").filter(|m| len > *m) {
        cx.errs.push(SchemaError::too_long(path, max));
    }
    if let Some(min) = count_of(s, "minLength").filter(|m| len < *m) {
        let detail = format!("{path} in body should be at least {min} chars long");
        cx.errs
            .push(SchemaError::invalid(path, &go_quote(text), &detail));
    }
    let pattern = str_of(s, "pattern");
    if let Some(p) = pattern.filter(|p| Regex::new(p).is_some_and(|r| !r.is_match(text))) {
        let detail = format!("{path} in body should match '{p}'");
        cx.errs
            .push(SchemaError::invalid(path, &go_quote(text), &detail));
    }
    let format = str_of(s, "format").and_then(formats::supported);
    if let Some(f) = format.filter(|f| !formats::check(f, text)) {
        let detail = format!("{path} in body must be of type {f}: {}", go_quote(text));
        cx.errs
            .push(SchemaError::type_invalid(path, &go_quote(text), &detail));
    }
}

fn number(cx: &mut Ctx, s: &Map<String, Value>, v: &Value, path: &str) {
    let (Value::Number(n), Some(x)) = (v, v.as_f64()) else {
        return;
    };
    let shown = show_number(n);
    if let Some(f) = s
        .get("multipleOf")
        .and_then(Value::as_f64)
        .filter(|f| *f > 0.0)
    {
        let q = x / f;
        if (q - q.round()).abs() > 1e-9 {
            let detail = format!("{path} in body should be a multiple of {}", go_float(f));
            cx.errs.push(SchemaError::invalid(path, &shown, &detail));
        }
    }
    if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMaximum");
        if x > max || (exclusive && x == max) {
            let op = if exclusive {
                "less than"
            } else {
                "less than or equal to"
            };
            let detail = format!("{path} in body should be {op} {}", go_float(max));
            cx.errs.push(SchemaError::invalid(path, &shown, &detail));
        }
    }
    if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
        let exclusive = flag(s, "exclusiveMinimum");
        if x < min || (exclusive && x == min) {
            let op = if exclusive {
                "greater than"
            } else {
                "greater than or equal to"
            };
            let detail = format!("{path} in body should be {op} {}", go_float(min));
            cx.errs.push(SchemaError::invalid(path, &shown, &detail));
        }
    }
}

pub(super) fn key_of(v: &Value) -> String {
    let mut k = String::new();
    canonical(v, &mut k);
    k
}

fn array(cx: &mut Ctx, s: &Map<String, Value>, a: &[Value], path: &str, depth: usize) {
    if let Some(it) = items(s) {
        for (i, x) in a.iter().enumerate() {
            value(cx, it, x, &index(path, i), depth + 1);
        }
    }
    let n = a.len();
    if let Some(min) = count_of(s, "minItems").filter(|m| (n as u64) < *m) {
        let detail = format!("{path} in body should have at least {min} items");
        cx.errs
            .push(SchemaError::invalid(path, &n.to_string(), &detail));
    }
    if let Some(max) = count_of(s, "maxItems").filter(|m| (n as u64) > *m) {
        cx.errs.push(SchemaError::too_many(path, n, max));
    }
    if flag(s, "uniqueItems") {
        let mut seen = HashSet::new();
        if !a.iter().all(|x| seen.insert(key_of(x))) {
            let detail = format!("{path} in body shouldn't contain duplicates");
            cx.errs.push(SchemaError::invalid(path, "\"\"", &detail));
        }
    }
    match str_of(s, "x-kubernetes-list-type") {
        Some("set") => extensions::list_set(&mut cx.lists, a, path),
        Some("map") => extensions::list_map(&mut cx.lists, s, a, path),
        _ => {}
    }
}

fn object(cx: &mut Ctx, s: &Map<String, Value>, m: &Map<String, Value>, path: &str, depth: usize) {
    let n = m.len();
    if let Some(min) = count_of(s, "minProperties").filter(|p| (n as u64) < *p) {
        let detail = format!("{path} in body should have at least {min} properties");
        cx.errs
            .push(SchemaError::invalid(path, &n.to_string(), &detail));
        return;
    }
    if let Some(max) = count_of(s, "maxProperties").filter(|p| (n as u64) > *p) {
        cx.errs.push(SchemaError::too_many(path, n, max));
        return;
    }
    let props = properties(s);
    let known = |k: &str| props.is_some_and(|p| p.contains_key(k));
    match additional(s) {
        Additional::Allowed(false) => {
            for k in m.keys().filter(|k| !known(k)) {
                let detail = format!("{} in body is a forbidden property", child(path, k));
                cx.errs.push(SchemaError::invalid(path, "\"\"", &detail));
            }
        }
        Additional::Schema(a) => {
            for (k, v) in m.iter().filter(|(k, _)| !known(k)) {
                value(cx, a, v, &child(path, k), depth + 1);
            }
        }
        _ => {}
    }
    if let Some(props) = props {
        for (k, ps) in props {
            if let Some(v) = m.get(k) {
                value(cx, ps, v, &child(path, k), depth + 1);
            }
        }
    }
    if let Some(Value::Array(req)) = s.get("required") {
        for k in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(k) {
                cx.errs.push(SchemaError::required(&child(path, k), ""));
            }
        }
    }
}

fn check_enum(cx: &mut Ctx, s: &Map<String, Value>, v: &Value, path: &str) {
    let Some(Value::Array(allowed)) = s.get("enum") else {
        return;
    };
    if allowed.is_empty() || allowed.iter().any(|e| json_eq(e, v)) {
        return;
    }
    let supported: Vec<String> = allowed
        .iter()
        .map(|e| match e {
            Value::String(s) => s.clone(),
            other => show_json(other),
        })
        .collect();
    cx.errs
        .push(SchemaError::not_supported(path, &show(v), &supported));
}

fn show_json(v: &Value) -> String {
    let mut out = String::new();
    canonical(v, &mut out);
    out
}
