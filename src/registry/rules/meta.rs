//! ObjectMeta validation (create and update), labels, annotations,
//! finalizers, owner references and label selectors.

use serde_json::Value;

use super::json::{self, child, index, Errs};
use super::names::{self, NameRule};
use super::render;

pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

/// `metadata`, if it is an object; a non-object is reported.
pub fn metadata<'a>(obj: &'a Value, errs: &mut Errs) -> Option<&'a Value> {
    json::opt_objv(obj, "metadata", "", errs)
}

pub fn name(obj: &Value) -> &str {
    json::get(obj, "metadata")
        .map(|m| json::s(m, "name"))
        .unwrap_or("")
}

pub fn namespace(obj: &Value) -> &str {
    json::get(obj, "metadata")
        .map(|m| json::s(m, "namespace"))
        .unwrap_or("")
}

/// `metadata.labels` as pairs, without error reporting.
pub fn labels_of(m: Option<&Value>) -> Vec<(&str, &str)> {
    let mut sink = Vec::new();
    m.map(|m| json::str_map(m, "labels", "", &mut sink))
        .unwrap_or_default()
}

/// Create or update, depending on `old`.
pub fn validate_meta_for(obj: &Value, old: Option<&Value>, rule: NameRule, errs: &mut Errs) {
    match old {
        None => validate_meta(obj, rule, errs),
        Some(o) => validate_meta_update(obj, o, errs),
    }
}

/// Upstream `ValidateObjectMeta` (namespace presence is checked elsewhere).
pub fn validate_meta(obj: &Value, rule: NameRule, errs: &mut Errs) {
    let p = "metadata";
    let Some(m) = metadata(obj, errs) else {
        if json::get(obj, "metadata").is_none() {
            errs.push(json::required(
                "metadata.name",
                "name or generateName is required",
            ));
        }
        return;
    };
    if let Some(g) = json::opt_str(m, "generateName", p, errs).filter(|g| !g.is_empty()) {
        for msg in rule.check(g, true) {
            errs.push(json::invalid_str("metadata.generateName", g, &msg));
        }
    }
    match json::opt_str(m, "name", p, errs).filter(|n| !n.is_empty()) {
        None => errs.push(json::required(
            "metadata.name",
            "name or generateName is required",
        )),
        Some(n) => {
            for msg in rule.check(n, false) {
                errs.push(json::invalid_str("metadata.name", n, &msg));
            }
        }
    }
    if let Some(ns) = json::opt_str(m, "namespace", p, errs).filter(|n| !n.is_empty()) {
        for msg in names::is_dns1123_label(ns) {
            errs.push(json::invalid_str("metadata.namespace", ns, &msg));
        }
    }
    if let Some(g) = json::opt_i64(m, "generation", p, errs) {
        if g < 0 {
            errs.push(json::invalid_int("metadata.generation", g, json::NONNEG));
        }
    }
    validate_common(m, errs);
}

fn validate_common(m: &Value, errs: &mut Errs) {
    let p = "metadata";
    validate_labels(m, "labels", p, errs);
    validate_annotations(m, "annotations", p, errs);
    validate_owner_references(m, errs);
    validate_finalizers(m, errs);
    json::arr(m, "managedFields", p, errs);
    json::opt_str(m, "resourceVersion", p, errs);
    json::opt_str(m, "uid", p, errs);
}

/// Upstream `ValidateLabels`: errors are reported at the map's path.
pub fn validate_labels(v: &Value, k: &str, base: &str, errs: &mut Errs) {
    let path = child(base, k);
    for (key, val) in json::str_map(v, k, base, errs) {
        for msg in names::is_qualified_name(key) {
            errs.push(json::invalid_str(&path, key, &msg));
        }
        for msg in names::is_valid_label_value(val) {
            errs.push(json::invalid_str(&path, val, &msg));
        }
    }
}

/// Upstream `ValidateAnnotations`: keys are qualified names (case folded),
/// total size at most 256 KiB.
pub fn validate_annotations(v: &Value, k: &str, base: &str, errs: &mut Errs) {
    let path = child(base, k);
    let mut total = 0usize;
    for (key, val) in json::str_map(v, k, base, errs) {
        for msg in names::is_qualified_name(&key.to_lowercase()) {
            errs.push(json::invalid_str(&path, key, &msg));
        }
        total += key.len() + val.len();
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errs.push(json::too_long(&path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
}

fn validate_owner_references(m: &Value, errs: &mut Errs) {
    let path = "metadata.ownerReferences";
    let mut controller: Option<String> = None;
    for (i, r) in json::obj_items(m, "ownerReferences", "metadata", errs) {
        let ip = index(path, i);
        let api_version = json::str_or(r, "apiVersion", &ip, errs);
        let kind = json::str_or(r, "kind", &ip, errs);
        let name = json::str_or(r, "name", &ip, errs);
        let uid = json::str_or(r, "uid", &ip, errs);
        let version_ok = match api_version.split('/').collect::<Vec<_>>().as_slice() {
            [v] => !v.is_empty(),
            [_, v] => !v.is_empty(),
            _ => false,
        };
        if !version_ok {
            errs.push(json::invalid_str(
                &child(path, "apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        if kind.is_empty() {
            errs.push(json::invalid_str(
                &child(path, "kind"),
                kind,
                "must not be empty",
            ));
        }
        if name.is_empty() {
            errs.push(json::invalid_str(
                &child(path, "name"),
                name,
                "must not be empty",
            ));
        }
        if uid.is_empty() {
            errs.push(json::invalid_str(
                &child(path, "uid"),
                uid,
                "must not be empty",
            ));
        }
        if json::opt_bool(r, "controller", &ip, errs) == Some(true) {
            match &controller {
                Some(c) => errs.push(json::invalid(
                    path,
                    render::value(json::get(m, "ownerReferences").unwrap_or(&Value::Null)),
                    &format!("Only one reference can have Controller set to true. Found \"true\" in references for {c} and {name}"),
                )),
                None => controller = Some(name.to_string()),
            }
        }
    }
}

fn validate_finalizers(m: &Value, errs: &mut Errs) {
    let path = "metadata.finalizers";
    let list = json::str_list(m, "finalizers", "metadata", errs);
    for (_, f) in &list {
        for msg in names::is_qualified_name(f) {
            errs.push(json::invalid_str(path, f, &msg));
        }
    }
    let has = |n: &str| list.iter().any(|(_, f)| *f == n);
    if has("orphan") && has("foregroundDeletion") {
        errs.push(json::invalid(
            path,
            render::value(json::get(m, "finalizers").unwrap_or(&Value::Null)),
            "finalizer orphan and foregroundDeletion cannot be both set",
        ));
    }
}

/// Upstream `ValidateObjectMetaUpdate`. The caller supplies the stored
/// `resourceVersion` for unconditional updates, so it is not required here.
pub fn validate_meta_update(obj: &Value, old: &Value, errs: &mut Errs) {
    let Some(m) = metadata(obj, errs) else {
        return;
    };
    let empty = Value::Object(Default::default());
    let o = json::get(old, "metadata").unwrap_or(&empty);
    let p = "metadata";
    if json::get(o, "deletionTimestamp").is_some() {
        let old_f: Vec<String> = json::str_list(o, "finalizers", p, &mut Vec::new())
            .into_iter()
            .map(|(_, f)| f.to_string())
            .collect();
        let new_f = json::str_list(m, "finalizers", p, &mut Vec::new());
        let extra: Vec<&str> = new_f
            .iter()
            .map(|(_, f)| *f)
            .filter(|f| !old_f.iter().any(|x| x == f))
            .collect();
        if !extra.is_empty() {
            errs.push(json::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    extra.iter().map(|f| render::go_quote(f)).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let new_gen = json::opt_i64(m, "generation", p, errs).unwrap_or(0);
    let old_gen = json::get(o, "generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if new_gen < old_gen {
        errs.push(json::invalid_int(
            "metadata.generation",
            new_gen,
            "must not be decremented",
        ));
    }
    for f in ["name", "namespace", "uid", "creationTimestamp"] {
        let nv = json::s(m, f);
        let ov = json::s(o, f);
        // Fields the caller fills from storage may be omitted by clients.
        if nv != ov && !(nv.is_empty() && f != "name") {
            errs.push(json::immutable(&child(p, f), render::go_quote(nv)));
        }
    }
    for f in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
        if let Some(nv) = json::get(m, f) {
            if json::get(o, f) != Some(nv) {
                errs.push(json::immutable(&child(p, f), render::value(nv)));
            }
        }
    }
    validate_common(m, errs);
}

/// Upstream `ValidateLabelSelector` (strict label values).
pub fn validate_label_selector(sel: &Value, path: &str, errs: &mut Errs) {
    if !sel.is_object() {
        errs.push(json::type_error(path, sel, "must be an object"));
        return;
    }
    validate_labels(sel, "matchLabels", path, errs);
    let ep = child(path, "matchExpressions");
    for (i, e) in json::obj_items(sel, "matchExpressions", path, errs) {
        let ip = index(&ep, i);
        let op = json::str_or(e, "operator", &ip, errs);
        let values = json::str_list(e, "values", &ip, errs);
        match op {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(json::required(
                        &child(&ip, "values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(json::forbidden(
                        &child(&ip, "values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(json::invalid_str(
                &child(&ip, "operator"),
                op,
                "not a valid selector operator",
            )),
        }
        let k = json::str_or(e, "key", &ip, errs);
        for msg in names::is_qualified_name(k) {
            errs.push(json::invalid_str(&child(&ip, "key"), k, &msg));
        }
        for (vi, v) in values {
            for msg in names::is_valid_label_value(v) {
                errs.push(json::invalid_str(
                    &index(&child(&ip, "values"), vi),
                    v,
                    &msg,
                ));
            }
        }
    }
}

/// True when the selector has neither matchLabels nor matchExpressions.
pub fn selector_is_empty(sel: &Value) -> bool {
    let n = |k: &str| match json::get(sel, k) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    };
    n("matchLabels") + n("matchExpressions") == 0
}

/// Whether `labels` satisfy a label selector.
pub fn selector_matches(sel: &Value, labels: &[(&str, &str)]) -> bool {
    let get = |k: &str| labels.iter().find(|(lk, _)| *lk == k).map(|(_, v)| *v);
    if let Some(Value::Object(ml)) = json::get(sel, "matchLabels") {
        for (k, v) in ml {
            if get(k) != v.as_str() {
                return false;
            }
        }
    }
    if let Some(Value::Array(exprs)) = json::get(sel, "matchExpressions") {
        for e in exprs {
            let k = json::s(e, "key");
            let vals: Vec<&str> = match json::get(e, "values") {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            let ok = match json::s(e, "operator") {
                "In" => get(k).is_some_and(|v| vals.contains(&v)),
                "NotIn" => get(k).is_none_or(|v| !vals.contains(&v)),
                "Exists" => get(k).is_some(),
                "DoesNotExist" => get(k).is_none(),
                _ => false,
            };
            if !ok {
                return false;
            }
        }
    }
    true
}
