//! storage.k8s.io, scheduling.k8s.io, coordination.k8s.io, autoscaling,
//! policy, events.k8s.io and apiextensions.k8s.io, plus status dispatch.

use serde_json::{Map, Value};

use super::apps;
use super::batch;
use super::core_other;
use super::core_pod;
use super::core_storage::nonneg_fields;
use super::crd;
use super::json::{self, child, index, Errs};
use super::meta;
use super::names::{self, NameRule};
use super::render;

const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;

pub fn validate_misc(
    group: &str,
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
    errs: &mut Errs,
) -> bool {
    match (group, kind) {
        ("storage.k8s.io", "StorageClass") => validate_storage_class(obj, old, errs),
        ("scheduling.k8s.io", "PriorityClass") => validate_priority_class(obj, old, errs),
        ("coordination.k8s.io", "Lease") => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            if let Some(spec) = json::opt_objv(obj, "spec", "", errs) {
                if let Some(d) = json::opt_i64(spec, "leaseDurationSeconds", "spec", errs) {
                    if d <= 0 {
                        errs.push(json::invalid_int(
                            "spec.leaseDurationSeconds",
                            d,
                            "must be greater than 0",
                        ));
                    }
                }
                nonneg_fields(spec, "spec", &["leaseTransitions"], errs);
                json::opt_str(spec, "holderIdentity", "spec", errs);
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => validate_hpa(obj, old, errs),
        ("policy", "PodDisruptionBudget") => validate_pdb(obj, old, errs),
        ("events.k8s.io", "Event") => validate_events_event(obj, old, errs),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd::validate_crd(obj, old, errs),
        _ => return false,
    }
    true
}

fn validate_storage_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let prov = json::str_or(obj, "provisioner", "", errs);
    if prov.is_empty() {
        errs.push(json::required("provisioner", ""));
    } else {
        for m in names::is_qualified_name(&prov.to_lowercase()) {
            errs.push(json::invalid_str("provisioner", prov, &m));
        }
    }
    let params = json::str_map(obj, "parameters", "", errs);
    if params.len() > 512 {
        errs.push(json::too_many("parameters", params.len(), 512));
    }
    let mut total = 0;
    for (k, v) in &params {
        if k.is_empty() {
            errs.push(json::invalid_str(
                "parameters",
                k,
                "field can not be empty.",
            ));
        }
        total += k.len() + v.len();
    }
    if total > 256 * 1024 {
        errs.push(json::too_long("parameters", 256 * 1024));
    }
    match json::opt_str(obj, "reclaimPolicy", "", errs) {
        Some(p) if p != "Delete" && p != "Retain" => errs.push(json::not_supported(
            "reclaimPolicy",
            p,
            &["Delete", "Retain"],
        )),
        _ => {}
    }
    match json::opt_str(obj, "volumeBindingMode", "", errs) {
        None => errs.push(json::required("volumeBindingMode", "")),
        Some(m) if m != "Immediate" && m != "WaitForFirstConsumer" => {
            errs.push(json::not_supported(
                "volumeBindingMode",
                m,
                &["Immediate", "WaitForFirstConsumer"],
            ))
        }
        _ => {}
    }
    json::opt_bool(obj, "allowVolumeExpansion", "", errs);
    if let Some(o) = old {
        if !json::same(obj, o, "parameters") {
            errs.push(json::forbidden(
                "parameters",
                "updates to parameters are forbidden.",
            ));
        }
        if json::s(obj, "provisioner") != json::s(o, "provisioner") {
            errs.push(json::forbidden(
                "provisioner",
                "updates to provisioner are forbidden.",
            ));
        }
        if !json::same(obj, o, "reclaimPolicy") {
            errs.push(json::forbidden(
                "reclaimPolicy",
                "updates to reclaimPolicy are forbidden.",
            ));
        }
        if !json::same(obj, o, "volumeBindingMode") {
            errs.push(json::immutable(
                "volumeBindingMode",
                render::value(json::get(obj, "volumeBindingMode").unwrap_or(&Value::Null)),
            ));
        }
    }
}

fn validate_priority_class(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let name = meta::name(obj);
    let value = json::opt_i64(obj, "value", "", errs).unwrap_or(0);
    json::opt_bool(obj, "globalDefault", "", errs);
    if old.is_none() {
        if let Some(rest) = name.strip_prefix("system-") {
            let known = match rest {
                "node-critical" => Some(2_000_001_000),
                "cluster-critical" => Some(2_000_000_000),
                _ => None,
            };
            match known {
                Some(v) if v == value => {}
                Some(v) => errs.push(json::forbidden(
                    "metadata.name",
                    &format!("priority class names with 'system-' prefix are reserved for system use only. error: value of {name} PriorityClass must be {v}"),
                )),
                None => errs.push(json::forbidden(
                    "metadata.name",
                    &format!("priority class names with 'system-' prefix are reserved for system use only. error: {name} is not a known system priority class"),
                )),
            }
        } else if value > HIGHEST_USER_PRIORITY {
            errs.push(json::forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"
                ),
            ));
        }
    }
    if let Some(p) = json::opt_str(obj, "preemptionPolicy", "", errs) {
        if p != "Never" && p != "PreemptLowerPriority" {
            errs.push(json::not_supported(
                "preemptionPolicy",
                p,
                &["Never", "PreemptLowerPriority"],
            ));
        }
    }
    if let Some(o) = old {
        if json::get(o, "value").and_then(Value::as_i64).unwrap_or(0) != value {
            errs.push(json::forbidden("value", "may not be changed in an update."));
        }
        if !json::same(obj, o, "preemptionPolicy") {
            errs.push(json::immutable(
                "preemptionPolicy",
                render::value(json::get(obj, "preemptionPolicy").unwrap_or(&Value::Null)),
            ));
        }
    }
}

fn validate_hpa(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let empty = Value::Object(Map::new());
    let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
    let min = json::opt_i64(spec, "minReplicas", "spec", errs);
    let max = json::opt_i64(spec, "maxReplicas", "spec", errs).unwrap_or(0);
    if let Some(m) = min {
        if m < 1 {
            errs.push(json::invalid_int(
                "spec.minReplicas",
                m,
                "must be greater than or equal to 1",
            ));
        }
    }
    if max < 1 {
        errs.push(json::invalid_int(
            "spec.maxReplicas",
            max,
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(json::invalid_int(
            "spec.maxReplicas",
            max,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let rp = "spec.scaleTargetRef";
    let r = json::opt_objv(spec, "scaleTargetRef", "spec", errs).unwrap_or(&empty);
    for f in ["kind", "name"] {
        let v = json::str_or(r, f, rp, errs);
        if v.is_empty() {
            errs.push(json::required(&child(rp, f), ""));
        } else {
            for m in names::is_valid_path_segment_name(v) {
                errs.push(json::invalid_str(&child(rp, f), v, &m));
            }
        }
    }
    if let Some(t) = json::opt_i64(spec, "targetCPUUtilizationPercentage", "spec", errs) {
        if t < 1 {
            errs.push(json::invalid_int(
                "spec.targetCPUUtilizationPercentage",
                t,
                "must be greater than 0",
            ));
        }
    }
    let types = [
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    for (i, m) in json::obj_items(spec, "metrics", "spec", errs) {
        let mp = index("spec.metrics", i);
        let t = json::str_or(m, "type", &mp, errs);
        if t.is_empty() {
            errs.push(json::required(
                &child(&mp, "type"),
                "must specify a metric source type",
            ));
            continue;
        }
        if !types.contains(&t) {
            errs.push(json::not_supported(&child(&mp, "type"), t, &types));
            continue;
        }
        let field = match t {
            "ContainerResource" => "containerResource",
            "External" => "external",
            "Object" => "object",
            "Pods" => "pods",
            _ => "resource",
        };
        if json::opt_objv(m, field, &mp, errs).is_none() {
            errs.push(json::required(
                &child(&mp, field),
                &format!("must populate information for the given metric source (type {t})"),
            ));
        }
    }
    if let Some(b) = json::opt_objv(spec, "behavior", "spec", errs) {
        for dir in ["scaleUp", "scaleDown"] {
            let Some(rules) = json::opt_objv(b, dir, "spec.behavior", errs) else {
                continue;
            };
            let dp = child("spec.behavior", dir);
            if let Some(w) = json::opt_i64(rules, "stabilizationWindowSeconds", &dp, errs) {
                if !(0..=3600).contains(&w) {
                    errs.push(json::invalid_int(
                        &child(&dp, "stabilizationWindowSeconds"),
                        w,
                        "must be less than or equal to 3600",
                    ));
                }
            }
            for (i, p) in json::obj_items(rules, "policies", &dp, errs) {
                let pp = index(&child(&dp, "policies"), i);
                let t = json::str_or(p, "type", &pp, errs);
                if t != "Pods" && t != "Percent" {
                    errs.push(json::not_supported(
                        &child(&pp, "type"),
                        t,
                        &["Percent", "Pods"],
                    ));
                }
                if json::opt_i64(p, "value", &pp, errs).unwrap_or(0) <= 0 {
                    errs.push(json::invalid_int(
                        &child(&pp, "value"),
                        0,
                        "must be greater than zero",
                    ));
                }
                let ps = json::opt_i64(p, "periodSeconds", &pp, errs).unwrap_or(0);
                if ps <= 0 || ps > 1800 {
                    errs.push(json::invalid_int(
                        &child(&pp, "periodSeconds"),
                        ps,
                        "must be greater than zero and less than or equal to 1800",
                    ));
                }
            }
        }
    }
}

fn validate_pdb(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let empty = Value::Object(Map::new());
    let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
    if json::get(spec, "minAvailable").is_some() && json::get(spec, "maxUnavailable").is_some() {
        errs.push(json::invalid(
            "spec",
            render::value(spec),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for f in ["minAvailable", "maxUnavailable"] {
        if json::get(spec, f).is_some() {
            apps::validate_int_or_percent(spec, f, "spec", true, errs);
        }
    }
    if let Some(s) = json::get(spec, "selector") {
        meta::validate_label_selector(s, "spec.selector", errs);
    }
    if let Some(p) = json::opt_str(spec, "unhealthyPodEvictionPolicy", "spec", errs) {
        if p != "AlwaysAllow" && p != "IfHealthyBudget" {
            errs.push(json::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
}

fn validate_events_event(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let rc = json::str_or(obj, "reportingController", "", errs);
    if rc.is_empty() {
        errs.push(json::required("reportingController", ""));
    } else {
        for m in names::is_qualified_name(rc) {
            errs.push(json::invalid_str("reportingController", rc, &m));
        }
    }
    for f in ["reportingInstance", "action", "reason"] {
        let v = json::str_or(obj, f, "", errs);
        if v.is_empty() {
            errs.push(json::required(f, ""));
        } else if v.len() > 128 {
            errs.push(json::invalid_str(f, "", "can have at most 128 characters"));
        }
    }
    if json::get(obj, "eventTime").is_none() {
        errs.push(json::required("eventTime", ""));
    }
    match json::opt_str(obj, "type", "", errs) {
        Some("Normal" | "Warning") => {}
        Some(t) => errs.push(json::not_supported("type", t, &["Normal", "Warning"])),
        None => errs.push(json::required("type", "")),
    }
    let note = json::str_or(obj, "note", "", errs);
    if note.len() > 1024 {
        errs.push(json::invalid_str(
            "note",
            "",
            "can have at most 1024 characters",
        ));
    }
}

/// Status-subresource rules per kind (metadata rules run separately).
pub fn validate_status_rules(group: &str, kind: &str, obj: &Value, _old: &Value, errs: &mut Errs) {
    match (group, kind) {
        ("", "Pod") => core_pod::validate_pod_status(obj, errs),
        ("", "Namespace") => core_other::validate_namespace_status(obj, errs),
        ("", "ReplicationController") => apps::validate_apps_status("ReplicaSet", obj, errs),
        ("apps", k) => apps::validate_apps_status(k, obj, errs),
        ("batch", k) => batch::validate_batch_status(k, obj, errs),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(st) = json::opt_objv(obj, "status", "", errs) {
                nonneg_fields(st, "status", &["currentReplicas", "desiredReplicas"], errs);
            }
        }
        ("policy", "PodDisruptionBudget") => {
            if let Some(st) = json::opt_objv(obj, "status", "", errs) {
                nonneg_fields(
                    st,
                    "status",
                    &[
                        "disruptionsAllowed",
                        "currentHealthy",
                        "desiredHealthy",
                        "expectedPods",
                    ],
                    errs,
                );
            }
        }
        _ => {
            json::opt_obj(obj, "status", "", errs);
        }
    }
}
