//! Pod, PodSpec and PodTemplateSpec validation, including pod update rules.

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::core_container::{self as ctr, Ctx, Role};
use super::core_volume;
use super::json::{self, child, index, Errs};
use super::meta;
use super::names::{self, NameRule};
use super::render;

pub const RESTART_POLICIES: &[&str] = &["Always", "OnFailure", "Never"];
const DNS_POLICIES: &[&str] = &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"];
const POD_UPDATE_MSG: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

/// Upstream `ValidatePodSpec`.
pub fn validate_pod_spec(spec: &Value, path: &str, errs: &mut Errs) {
    if !spec.is_object() {
        errs.push(json::type_error(path, spec, "must be an object"));
        return;
    }
    let volumes = core_volume::validate_volumes(spec, path, errs);
    let mut ctx = Ctx {
        volumes,
        names: HashSet::new(),
        host_ports: HashSet::new(),
        host_network: json::opt_bool(spec, "hostNetwork", path, errs).unwrap_or(false),
        spec,
    };
    let cp = child(path, "containers");
    let containers = json::obj_items(spec, "containers", path, errs);
    if containers.is_empty() && json::arr(spec, "containers", path, &mut Vec::new()).is_empty() {
        errs.push(json::required(&cp, ""));
    }
    let ip = child(path, "initContainers");
    for (i, c) in json::obj_items(spec, "initContainers", path, errs) {
        ctr::validate_container(c, &index(&ip, i), Role::Init, &mut ctx, errs);
    }
    for (i, c) in containers {
        ctr::validate_container(c, &index(&cp, i), Role::Regular, &mut ctx, errs);
    }
    let _ = ctx.spec;
    ctr::enum_required(spec, "restartPolicy", path, RESTART_POLICIES, errs);
    ctr::enum_required(spec, "dnsPolicy", path, DNS_POLICIES, errs);
    if json::s(spec, "dnsPolicy") == "None" && json::get(spec, "dnsConfig").is_none() {
        errs.push(json::required(
            &child(path, "dnsConfig"),
            "must provide `dnsConfig` when `dnsPolicy` is None",
        ));
    }
    meta::validate_labels(spec, "nodeSelector", path, errs);
    for (f, rule) in [
        ("serviceAccountName", NameRule::Subdomain),
        ("nodeName", NameRule::Subdomain),
        ("schedulerName", NameRule::Subdomain),
        ("priorityClassName", NameRule::Subdomain),
        ("hostname", NameRule::Label),
        ("subdomain", NameRule::Label),
    ] {
        if let Some(v) = json::opt_str(spec, f, path, errs).filter(|v| !v.is_empty()) {
            for m in rule.check(v, false) {
                errs.push(json::invalid_str(&child(path, f), v, &m));
            }
        }
    }
    if let Some(ads) = json::opt_i64(spec, "activeDeadlineSeconds", path, errs) {
        if !(1..=i64::from(u32::MAX)).contains(&ads) {
            errs.push(json::invalid_int(
                &child(path, "activeDeadlineSeconds"),
                ads,
                &names::inclusive_range_error(1, i64::from(u32::MAX)),
            ));
        }
    }
    json::opt_i64(spec, "terminationGracePeriodSeconds", path, errs);
    json::opt_i64(spec, "priority", path, errs);
    json::opt_bool(spec, "enableServiceLinks", path, errs);
    json::opt_bool(spec, "automountServiceAccountToken", path, errs);
    json::opt_obj(spec, "securityContext", path, errs);
    json::opt_obj(spec, "affinity", path, errs);
    json::obj_items(spec, "imagePullSecrets", path, errs);
    validate_tolerations(spec, path, errs);
}

fn validate_tolerations(spec: &Value, base: &str, errs: &mut Errs) {
    let tp = child(base, "tolerations");
    for (i, t) in json::obj_items(spec, "tolerations", base, errs) {
        let ip = index(&tp, i);
        let k = json::str_or(t, "key", &ip, errs);
        let op = json::str_or(t, "operator", &ip, errs);
        let value = json::str_or(t, "value", &ip, errs);
        let effect = json::str_or(t, "effect", &ip, errs);
        if !k.is_empty() {
            for m in names::is_qualified_name(k) {
                errs.push(json::invalid_str(&child(&ip, "key"), k, &m));
            }
        }
        if k.is_empty() && op != "Exists" {
            errs.push(json::invalid_str(
                &child(&ip, "operator"),
                op,
                "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
            ));
        }
        if json::opt_i64(t, "tolerationSeconds", &ip, errs).is_some() && effect != "NoExecute" {
            errs.push(json::invalid_str(
                &child(&ip, "effect"),
                effect,
                "effect must be 'NoExecute' when `tolerationSeconds` is set",
            ));
        }
        match op {
            "Equal" | "" => {
                let msgs = names::is_valid_label_value(value);
                if !msgs.is_empty() {
                    errs.push(json::invalid_str(
                        &child(&ip, "operator"),
                        value,
                        &msgs.join(";"),
                    ));
                }
            }
            "Exists" => {
                if !value.is_empty() {
                    errs.push(json::invalid(
                        &child(&ip, "operator"),
                        render::value(t),
                        "value must be empty when `operator` is 'Exists'",
                    ));
                }
            }
            other => errs.push(json::not_supported(
                &child(&ip, "operator"),
                other,
                &["Equal", "Exists"],
            )),
        }
        if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect)
        {
            errs.push(json::not_supported(
                &child(&ip, "effect"),
                effect,
                &["NoExecute", "NoSchedule", "PreferNoSchedule"],
            ));
        }
    }
}

/// Upstream `ValidatePodTemplateSpec` (template labels are reported at
/// `<path>.labels`, as upstream does).
pub fn validate_pod_template(tmpl: &Value, path: &str, errs: &mut Errs) {
    if !tmpl.is_object() {
        errs.push(json::type_error(path, tmpl, "must be an object"));
        return;
    }
    if let Some(m) = json::opt_objv(tmpl, "metadata", path, errs) {
        meta::validate_labels(m, "labels", path, errs);
        meta::validate_annotations(m, "annotations", path, errs);
    }
    let sp = child(path, "spec");
    match json::get(tmpl, "spec") {
        Some(spec) => {
            validate_pod_spec(spec, &sp, errs);
            if !json::arr(spec, "ephemeralContainers", &sp, &mut Vec::new()).is_empty() {
                errs.push(json::forbidden(
                    &child(&sp, "ephemeralContainers"),
                    "ephemeral containers not allowed in pod template",
                ));
            }
        }
        None => validate_pod_spec(&Value::Object(Map::new()), &sp, errs),
    }
}

/// Template labels, for selector matching.
pub fn template_labels(tmpl: Option<&Value>) -> Vec<(&str, &str)> {
    meta::labels_of(tmpl.and_then(|t| json::get(t, "metadata")))
}

pub fn validate_pod(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let empty = Value::Object(Map::new());
    let spec = json::get(obj, "spec").unwrap_or(&empty);
    validate_pod_spec(spec, "spec", errs);
    if let Some(o) = old {
        validate_pod_update(spec, json::get(o, "spec").unwrap_or(&empty), errs);
    }
}

fn validate_pod_update(new: &Value, old: &Value, errs: &mut Errs) {
    for list in ["containers", "initContainers"] {
        let n = json::arr(new, list, "spec", &mut Vec::new());
        let o = json::arr(old, list, "spec", &mut Vec::new());
        if n.len() != o.len() {
            errs.push(json::forbidden(
                &child("spec", list),
                "pod updates may not add or remove containers",
            ));
            return;
        }
    }
    let ads_path = "spec.activeDeadlineSeconds";
    match (
        json::get(new, "activeDeadlineSeconds").and_then(Value::as_i64),
        json::get(old, "activeDeadlineSeconds").and_then(Value::as_i64),
    ) {
        (Some(n), _) if !(0..=i64::from(i32::MAX)).contains(&n) => {
            errs.push(json::invalid_int(
                ads_path,
                n,
                &names::inclusive_range_error(0, i64::from(i32::MAX)),
            ));
            return;
        }
        (Some(n), Some(o)) if o < n => {
            errs.push(json::invalid_int(
                ads_path,
                n,
                "must be less than or equal to previous value",
            ));
            return;
        }
        (None, Some(_)) => errs.push(json::invalid(
            ads_path,
            "null".to_string(),
            "must not update from a positive integer to nil value",
        )),
        _ => {}
    }
    let old_tol = json::arr(old, "tolerations", "spec", &mut Vec::new());
    let new_tol = json::arr(new, "tolerations", "spec", &mut Vec::new());
    for t in old_tol {
        if !new_tol.contains(t) {
            errs.push(json::forbidden(
                "spec.tolerations",
                &format!(
                    "existing toleration can not be modified except its tolerationSeconds: {}",
                    render::value(t)
                ),
            ));
        }
    }

    // Munge the updatable fields and compare what remains.
    let mut munged = new.clone();
    if let Some(m) = munged.as_object_mut() {
        for list in ["containers", "initContainers"] {
            if let (Some(Value::Array(nc)), Some(Value::Array(oc))) =
                (m.get_mut(list), json::get(old, list))
            {
                for (n, o) in nc.iter_mut().zip(oc) {
                    if let (Some(nm), Some(img)) = (n.as_object_mut(), json::get(o, "image")) {
                        nm.insert("image".to_string(), img.clone());
                    }
                }
            }
        }
        for k in ["activeDeadlineSeconds", "tolerations", "schedulingGates"] {
            match json::get(old, k) {
                Some(v) => {
                    m.insert(k.to_string(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
        let old_grace = json::get(old, "terminationGracePeriodSeconds").and_then(Value::as_i64);
        let new_grace = m
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64);
        if old_grace.is_some_and(|g| g < 0) && new_grace == Some(1) {
            if let Some(g) = json::get(old, "terminationGracePeriodSeconds") {
                m.insert("terminationGracePeriodSeconds".to_string(), g.clone());
            }
        }
    }
    if strip_nulls(&munged) != strip_nulls(old) {
        errs.push(json::forbidden(
            "spec",
            &format!("{POD_UPDATE_MSG}\n{}", spec_diff(old, &munged)),
        ));
    }
}

fn strip_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), strip_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// A compact, cmp.Diff-like rendering of the top-level differences.
fn spec_diff(old: &Value, new: &Value) -> String {
    let empty = Map::new();
    let o = old.as_object().unwrap_or(&empty);
    let n = new.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = String::from("  core.PodSpec{\n");
    for k in keys {
        let (a, b) = (o.get(k), n.get(k));
        if a.map(strip_nulls) == b.map(strip_nulls) {
            continue;
        }
        let field = upper_first(k);
        if let Some(a) = a {
            out.push_str(&format!("- \t{field}: {},\n", render::value(a)));
        }
        if let Some(b) = b {
            out.push_str(&format!("+ \t{field}: {},\n", render::value(b)));
        }
    }
    out.push_str("  }\n");
    out
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Upstream `ValidatePodStatusUpdate` (the parts that concern clients).
pub fn validate_pod_status(obj: &Value, errs: &mut Errs) {
    let Some(st) = json::opt_objv(obj, "status", "", errs) else {
        return;
    };
    if let Some(n) =
        json::opt_str(st, "nominatedNodeName", "status", errs).filter(|n| !n.is_empty())
    {
        for m in names::is_dns1123_subdomain(n) {
            errs.push(json::invalid_str("status.nominatedNodeName", n, &m));
        }
    }
    let pp = "status.podIPs";
    let ips = json::obj_items(st, "podIPs", "status", errs);
    if ips.len() > 2 {
        errs.push(json::too_many(pp, ips.len(), 2));
    }
    for (i, ip) in ips {
        let ipp = index(pp, i);
        let v = json::str_or(ip, "ip", &ipp, errs);
        if v.parse::<std::net::IpAddr>().is_err() {
            errs.push(json::invalid_str(
                &child(&ipp, "ip"),
                v,
                "must be a valid IP address",
            ));
        }
    }
    for list in [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ] {
        json::obj_items(st, list, "status", errs);
    }
    json::arr(st, "conditions", "status", errs);
}
