//! apiextensions.k8s.io/v1 CustomResourceDefinition validation.

use serde_json::{Map, Value};

use super::json::{self, child, index, Errs};
use super::meta;
use super::names::{self, NameRule};
use super::render;

pub fn validate_crd(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
    let names_v = json::opt_objv(spec, "names", "spec", errs).unwrap_or(&empty);
    let np = "spec.names";
    let plural = json::str_or(names_v, "plural", np, errs);
    let group = json::str_or(spec, "group", "spec", errs);
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let name = meta::name(obj);
    if old.is_none() && !name.is_empty() && name != format!("{plural}.{group}") {
        errs.push(json::invalid_str(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if group.is_empty() {
        errs.push(json::required("spec.group", ""));
    } else {
        let msgs = names::is_dns1123_subdomain(group);
        if !msgs.is_empty() {
            errs.push(json::invalid_str("spec.group", group, &msgs.join(",")));
        } else if !group.contains('.') {
            errs.push(json::invalid_str(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    let scope = json::str_or(spec, "scope", "spec", errs);
    if scope.is_empty() {
        errs.push(json::required("spec.scope", ""));
    } else if scope != "Cluster" && scope != "Namespaced" {
        errs.push(json::not_supported(
            "spec.scope",
            scope,
            &["Cluster", "Namespaced"],
        ));
    }
    for (f, lower) in [
        ("plural", false),
        ("singular", false),
        ("kind", true),
        ("listKind", true),
    ] {
        let v = json::str_or(names_v, f, np, errs);
        let fp = child(np, f);
        if v.is_empty() {
            errs.push(json::required(&fp, ""));
            continue;
        }
        let check = if lower {
            v.to_lowercase()
        } else {
            v.to_string()
        };
        let msgs = names::is_dns1035_label(&check);
        if !msgs.is_empty() {
            let detail = if lower {
                format!(
                    "may have mixed case, but should otherwise match: {}",
                    msgs.join(",")
                )
            } else {
                msgs.join(",")
            };
            errs.push(json::invalid_str(&fp, v, &detail));
        }
    }
    let kind = json::s(names_v, "kind");
    if !kind.is_empty() && kind == json::s(names_v, "listKind") {
        errs.push(json::invalid_str(
            "spec.names.listKind",
            kind,
            "kind and listKind may not be the same",
        ));
    }
    for (i, s) in json::str_list(names_v, "shortNames", np, errs) {
        let msgs = names::is_dns1035_label(s);
        if !msgs.is_empty() {
            errs.push(json::invalid_str(
                &index("spec.names.shortNames", i),
                s,
                &msgs.join(","),
            ));
        }
    }
    let versions = json::obj_items(spec, "versions", "spec", errs);
    let shown = render::value(json::get(spec, "versions").unwrap_or(&Value::Null));
    if versions.is_empty() {
        errs.push(json::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut unique = true;
    let mut storage = 0;
    for (i, v) in &versions {
        let vp = index("spec.versions", *i);
        let n = json::str_or(v, "name", &vp, errs);
        if !seen.insert(n.to_string()) {
            unique = false;
        }
        let msgs = names::is_dns1035_label(n);
        if !msgs.is_empty() {
            errs.push(json::invalid_str(&child(&vp, "name"), n, &msgs.join(",")));
        }
        json::opt_bool(v, "served", &vp, errs);
        if json::opt_bool(v, "storage", &vp, errs) == Some(true) {
            storage += 1;
        }
    }
    if !unique {
        errs.push(json::invalid(
            "spec.versions",
            shown.clone(),
            "must contain unique version names",
        ));
    }
    if !versions.is_empty() && storage != 1 {
        errs.push(json::invalid(
            "spec.versions",
            shown,
            "must have exactly one version marked as storage version",
        ));
    }
    if let Some(o) = old.and_then(|o| json::get(o, "spec")) {
        if json::s(o, "group") != group {
            errs.push(json::immutable("spec.group", render::go_quote(group)));
        }
        if json::s(o, "scope") != scope {
            errs.push(json::immutable("spec.scope", render::go_quote(scope)));
        }
    }
}
