//! rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding,
//! ClusterRoleBinding.

use serde_json::{Map, Value};

use super::json::{self, child, index, Errs};
use super::meta;
use super::names::{self, NameRule};
use super::render;

const GROUP: &str = "rbac.authorization.k8s.io";

pub fn validate_rbac(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Errs) -> bool {
    match kind {
        "Role" | "ClusterRole" => {
            meta::validate_meta_for(obj, old, NameRule::PathSegment, errs);
            let namespaced = kind == "Role";
            for (i, r) in json::obj_items(obj, "rules", "", errs) {
                validate_rule(r, &index("rules", i), namespaced, errs);
            }
            if let Some(ar) = json::opt_objv(obj, "aggregationRule", "", errs) {
                if !namespaced {
                    let p = "aggregationRule.clusterRoleSelectors";
                    for (i, s) in
                        json::obj_items(ar, "clusterRoleSelectors", "aggregationRule", errs)
                    {
                        meta::validate_label_selector(s, &index(p, i), errs);
                    }
                }
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            meta::validate_meta_for(obj, old, NameRule::PathSegment, errs);
            validate_binding(obj, kind == "RoleBinding", errs);
            if let Some(o) = old {
                if !json::same(obj, o, "roleRef") {
                    let empty = Value::Object(Map::new());
                    let r = json::get(obj, "roleRef").unwrap_or(&empty);
                    errs.push(json::invalid(
                        "roleRef",
                        format!(
                            "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                            render::go_quote(json::s(r, "apiGroup")),
                            render::go_quote(json::s(r, "kind")),
                            render::go_quote(json::s(r, "name"))
                        ),
                        "cannot change roleRef",
                    ));
                }
            }
        }
        _ => return false,
    }
    true
}

fn validate_rule(r: &Value, path: &str, namespaced: bool, errs: &mut Errs) {
    if json::str_list(r, "verbs", path, errs).is_empty() {
        errs.push(json::required(
            &child(path, "verbs"),
            "verbs must contain at least one value",
        ));
    }
    let urls = json::str_list(r, "nonResourceURLs", path, errs);
    let groups = json::str_list(r, "apiGroups", path, errs);
    let resources = json::str_list(r, "resources", path, errs);
    let rnames = json::str_list(r, "resourceNames", path, errs);
    if !urls.is_empty() {
        let shown = render::value(json::get(r, "nonResourceURLs").unwrap_or(&Value::Null));
        if namespaced {
            errs.push(json::invalid(
                &child(path, "nonResourceURLs"),
                shown.clone(),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !groups.is_empty() || !resources.is_empty() || !rnames.is_empty() {
            errs.push(json::invalid(
                &child(path, "nonResourceURLs"),
                shown,
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if groups.is_empty() {
        errs.push(json::required(
            &child(path, "apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if resources.is_empty() {
        errs.push(json::required(
            &child(path, "resources"),
            "resource rules must supply at least one resource",
        ));
    }
}

fn validate_binding(obj: &Value, namespaced: bool, errs: &mut Errs) {
    let empty = Value::Object(Map::new());
    let r = json::opt_objv(obj, "roleRef", "", errs).unwrap_or(&empty);
    let group = json::str_or(r, "apiGroup", "roleRef", errs);
    if group != GROUP {
        errs.push(json::not_supported("roleRef.apiGroup", group, &[GROUP]));
    }
    let kind = json::str_or(r, "kind", "roleRef", errs);
    if namespaced {
        if kind != "Role" && kind != "ClusterRole" {
            errs.push(json::not_supported(
                "roleRef.kind",
                kind,
                &["Role", "ClusterRole"],
            ));
        }
    } else if kind != "ClusterRole" {
        errs.push(json::not_supported("roleRef.kind", kind, &["ClusterRole"]));
    }
    let name = json::str_or(r, "name", "roleRef", errs);
    if name.is_empty() {
        errs.push(json::required("roleRef.name", ""));
    } else {
        for m in names::is_valid_path_segment_name(name) {
            errs.push(json::invalid_str("roleRef.name", name, &m));
        }
    }
    for (i, s) in json::obj_items(obj, "subjects", "", errs) {
        validate_subject(s, &index("subjects", i), namespaced, errs);
    }
}

fn validate_subject(s: &Value, path: &str, namespaced: bool, errs: &mut Errs) {
    let name = json::str_or(s, "name", path, errs);
    if name.is_empty() {
        errs.push(json::required(&child(path, "name"), ""));
    }
    let group = json::str_or(s, "apiGroup", path, errs);
    match json::str_or(s, "kind", path, errs) {
        "ServiceAccount" => {
            if !name.is_empty() {
                for m in names::is_dns1123_subdomain(name) {
                    errs.push(json::invalid_str(&child(path, "name"), name, &m));
                }
            }
            if !group.is_empty() {
                errs.push(json::not_supported(&child(path, "apiGroup"), group, &[""]));
            }
            if !namespaced && json::str_or(s, "namespace", path, errs).is_empty() {
                errs.push(json::required(&child(path, "namespace"), ""));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errs.push(json::not_supported(
                    &child(path, "apiGroup"),
                    group,
                    &[GROUP],
                ));
            }
        }
        other => errs.push(json::not_supported(
            &child(path, "kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
}
