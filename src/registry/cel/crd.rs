//! The checks a CRD's `x-kubernetes-validations` must pass before the CRD is stored, with
//! upstream's paths (`...openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule`) and
//! wording: required and well-formed `rule`, `message`, `messageExpression`, `reason` and
//! `fieldPath`; rules and message expressions that compile against the schema; `oldSelf` only
//! where old values correlate; `optionalOldSelf` only with `oldSelf`.

use super::compile::{compile, valid_field_path, CompileFail};
use crate::registry::schema::{flag, go_quote, items, node, properties, str_of, SchemaError};
use serde_json::Value as Json;

const REASONS: [&str; 4] = [
    "FieldValueDuplicate",
    "FieldValueForbidden",
    "FieldValueInvalid",
    "FieldValueRequired",
];

/// Checks every rule of `schema`, found at `path` ("spec.versions[0].schema.openAPIV3Schema").
pub fn check_crd_rules(schema: &Json, path: &str) -> Vec<SchemaError> {
    let mut errs = vec![];
    walk(schema, path, true, None, 0, &mut errs);
    errs
}

fn walk(
    schema: &Json,
    path: &str,
    root: bool,
    uncorrelatable: Option<&str>,
    depth: usize,
    errs: &mut Vec<SchemaError>,
) {
    let Some(s) = node(schema) else { return };
    if depth > crate::registry::schema::MAX_DEPTH {
        return;
    }
    let root = root || flag(s, "x-kubernetes-embedded-resource");
    for (i, r) in s
        .get("x-kubernetes-validations")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{path}.x-kubernetes-validations[{i}]");
        rule(schema, r, &at, root, uncorrelatable, errs);
    }
    // Values below a list that is not a map list, or a map of another map-type, do not
    // correlate with old values.
    let list_uncorrelatable =
        str_of(s, "type") == Some("array") && str_of(s, "x-kubernetes-list-type") != Some("map");
    let map_uncorrelatable = !matches!(
        str_of(s, "x-kubernetes-map-type"),
        None | Some("granular") | Some("atomic")
    );
    for (k, p) in properties(s).into_iter().flatten() {
        let below = uncorrelatable
            .map(String::from)
            .or_else(|| map_uncorrelatable.then(|| path.to_string()));
        walk(
            p,
            &format!("{path}.properties[{k}]"),
            false,
            below.as_deref(),
            depth + 1,
            errs,
        );
    }
    if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
        let below = uncorrelatable
            .map(String::from)
            .or_else(|| map_uncorrelatable.then(|| path.to_string()));
        walk(
            a,
            &format!("{path}.additionalProperties"),
            false,
            below.as_deref(),
            depth + 1,
            errs,
        );
    }
    if let Some(it) = items(s) {
        let at = format!("{path}.items");
        let below = uncorrelatable
            .map(String::from)
            .or_else(|| list_uncorrelatable.then(|| at.clone()));
        walk(it, &at, false, below.as_deref(), depth + 1, errs);
    }
}

/// Go's `%#v` of the rule, as upstream shows it in compile errors.
fn shown(r: &Json) -> String {
    let s = |k: &str| go_quote(r.get(k).and_then(Json::as_str).unwrap_or(""));
    let reason = match r.get("reason").and_then(Json::as_str) {
        Some(v) => format!("(*apiextensions.FieldValueErrorReason)({})", go_quote(v)),
        None => "(*apiextensions.FieldValueErrorReason)(nil)".into(),
    };
    let optional = match r.get("optionalOldSelf").and_then(Json::as_bool) {
        Some(b) => format!("(*bool)({b})"),
        None => "(*bool)(nil)".into(),
    };
    format!(
        "apiextensions.ValidationRule{{Rule:{}, Message:{}, MessageExpression:{}, Reason:{reason}, FieldPath:{}, OptionalOldSelf:{optional}}}",
        s("rule"),
        s("message"),
        s("messageExpression"),
        s("fieldPath")
    )
}

fn rule(
    schema: &Json,
    r: &Json,
    at: &str,
    root: bool,
    uncorrelatable: Option<&str>,
    errs: &mut Vec<SchemaError>,
) {
    let f = |k: &str| format!("{at}.{k}");
    let text = r.get("rule").and_then(Json::as_str).unwrap_or("");
    let message = r.get("message").and_then(Json::as_str);
    if text.trim().is_empty() {
        errs.push(SchemaError::required(&f("rule"), "rule is not specified"));
    }
    if let Some(m) = message {
        if m.trim().is_empty() {
            errs.push(SchemaError::invalid(
                &f("message"),
                &go_quote(m),
                "message must be non-empty if specified",
            ));
        } else if m.contains('\n') {
            errs.push(SchemaError::invalid(
                &f("message"),
                &go_quote(m),
                "message must not contain line breaks",
            ));
        }
    }
    if text.contains('\n') && message.is_none_or(str::is_empty) {
        errs.push(SchemaError::required(
            &f("message"),
            "message must be specified if rule contains line breaks",
        ));
    }
    let msg_expr = r.get("messageExpression").and_then(Json::as_str);
    if msg_expr.is_some_and(|m| m.trim().is_empty()) {
        errs.push(SchemaError::required(
            &f("messageExpression"),
            "messageExpression must be non-empty if specified",
        ));
    }
    if let Some(reason) = r.get("reason").and_then(Json::as_str) {
        if !REASONS.contains(&reason) {
            let list: Vec<String> = REASONS.iter().map(|s| s.to_string()).collect();
            errs.push(SchemaError::not_supported(
                &f("reason"),
                &go_quote(reason),
                &list,
            ));
        }
    }
    if let Some(fp) = r.get("fieldPath").and_then(Json::as_str) {
        let detail = if fp.is_empty() {
            Some("fieldPath must be non-empty if specified")
        } else if fp.contains('\n') {
            Some("fieldPath must not contain line breaks")
        } else if valid_field_path(fp, schema).is_err() {
            Some("fieldPath must be a valid path")
        } else {
            None
        };
        if let Some(d) = detail {
            errs.push(SchemaError::invalid(&f("fieldPath"), &go_quote(fp), d));
        }
    }
    if text.trim().is_empty() {
        return;
    }
    let uses_old = match compile(schema, text, root, true, "bool") {
        Ok(p) => p.uses_old_self,
        Err(CompileFail::Issues(i)) => {
            errs.push(SchemaError::invalid(
                &f("rule"),
                &shown(r),
                &format!("compilation failed: {i}"),
            ));
            return;
        }
        Err(CompileFail::WrongType) => {
            errs.push(SchemaError::invalid(
                &f("rule"),
                &shown(r),
                "cel expression must evaluate to a bool",
            ));
            return;
        }
    };
    if let Some(m) = msg_expr.filter(|m| !m.trim().is_empty()) {
        match compile(schema, m, root, true, "string") {
            Ok(_) => {}
            Err(CompileFail::Issues(i)) => errs.push(SchemaError::invalid(
                &f("messageExpression"),
                &shown(r),
                &format!("messageExpression compilation failed: {i}"),
            )),
            Err(CompileFail::WrongType) => errs.push(SchemaError::invalid(
                &f("messageExpression"),
                &shown(r),
                "messageExpression must evaluate to a string",
            )),
        }
    }
    if uses_old {
        if let Some(u) = uncorrelatable {
            errs.push(SchemaError::invalid(
                &f("rule"),
                &go_quote(text),
                &format!(
                    "oldSelf cannot be used on the uncorrelatable portion of the schema within {u}"
                ),
            ));
        }
    } else if let Some(b) = r.get("optionalOldSelf").and_then(Json::as_bool) {
        errs.push(SchemaError::invalid(
            &f("optionalOldSelf"),
            &b.to_string(),
            "may not be set if oldSelf is not used in rule",
        ));
    }
}
