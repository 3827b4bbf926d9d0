//! apps/v1: Deployment, ReplicaSet, StatefulSet, DaemonSet,
//! ControllerRevision.

use serde_json::{Map, Value};

use super::core_pod;
use super::core_storage::nonneg_fields;
use super::json::{self, child, Errs, IntOrStr};
use super::meta;
use super::names::{self, NameRule};
use super::render;

pub fn validate_apps(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Errs) -> bool {
    let rule = match kind {
        "Deployment" | "ReplicaSet" | "DaemonSet" | "ControllerRevision" => NameRule::Subdomain,
        "StatefulSet" => NameRule::Label,
        _ => return false,
    };
    meta::validate_meta_for(obj, old, rule, errs);
    if kind == "ControllerRevision" {
        if let Some(r) = json::opt_i64(obj, "revision", "", errs) {
            if r < 0 {
                errs.push(json::invalid_int("revision", r, json::NONNEG));
            }
        }
        if let Some(o) = old {
            if !json::same(obj, o, "data") {
                errs.push(json::immutable(
                    "data",
                    "runtime.RawExtension{}".to_string(),
                ));
            }
        }
        return true;
    }
    let empty = Value::Object(Map::new());
    let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
    let old_spec = old.map(|o| json::get(o, "spec").unwrap_or(&empty));
    let kind_lc = kind.to_lowercase();
    validate_selector_and_template(spec, &kind_lc, errs);
    nonneg_fields(
        spec,
        "spec",
        &["replicas", "minReadySeconds", "revisionHistoryLimit"],
        errs,
    );
    match kind {
        "Deployment" => validate_deployment(spec, errs),
        "StatefulSet" => validate_statefulset(spec, old_spec, errs),
        "DaemonSet" => validate_daemonset_strategy(spec, errs),
        _ => {}
    }
    if let Some(o) = old_spec.filter(|_| kind != "StatefulSet") {
        if !json::same(spec, o, "selector") {
            errs.push(json::immutable(
                "spec.selector",
                render::go_label_selector(json::get(spec, "selector")),
            ));
        }
    }
    true
}

/// Selector presence and syntax, template match, template validity and the
/// `restartPolicy: Always` / no `activeDeadlineSeconds` rules.
fn validate_selector_and_template(spec: &Value, kind_lc: &str, errs: &mut Errs) {
    let sel = json::get(spec, "selector");
    let selector_ok = match sel {
        None => {
            errs.push(json::required("spec.selector", ""));
            false
        }
        Some(s) => {
            let before = errs.len();
            meta::validate_label_selector(s, "spec.selector", errs);
            let ok = errs.len() == before;
            if s.is_object() && meta::selector_is_empty(s) {
                let what = if kind_lc == "replicaset" {
                    "deployment"
                } else {
                    kind_lc
                };
                errs.push(json::invalid(
                    "spec.selector",
                    render::go_label_selector(Some(s)),
                    &format!("empty selector is invalid for {what}"),
                ));
            }
            ok
        }
    };
    let tmpl = json::opt_objv(spec, "template", "spec", errs);
    let labels = core_pod::template_labels(tmpl);
    let matches = match sel {
        None => false,
        Some(s) => meta::selector_is_empty(s) || meta::selector_matches(s, &labels),
    };
    if (selector_ok || sel.is_none()) && !matches {
        errs.push(json::invalid(
            "spec.template.metadata.labels",
            render::go_string_map(
                tmpl.and_then(|t| json::get(t, "metadata"))
                    .and_then(|m| json::get(m, "labels")),
            ),
            "`selector` does not match template `labels`",
        ));
    }
    let empty = Value::Object(Map::new());
    let tmpl = tmpl.unwrap_or(&empty);
    if kind_lc == "statefulset" {
        core_pod::validate_pod_template(&with_claim_volumes(tmpl, spec), "spec.template", errs);
    } else {
        core_pod::validate_pod_template(tmpl, "spec.template", errs);
    }
    let tspec = json::get(tmpl, "spec").unwrap_or(&empty);
    let rp = json::s(tspec, "restartPolicy");
    if rp != "Always" {
        errs.push(json::not_supported(
            "spec.template.spec.restartPolicy",
            rp,
            &["Always"],
        ));
    }
    if let Some(ads) = json::get(tspec, "activeDeadlineSeconds") {
        let p = "spec.template.spec.activeDeadlineSeconds";
        match kind_lc {
            "statefulset" => errs.push(json::forbidden(
                p,
                "activeDeadlineSeconds in StatefulSet is not Supported",
            )),
            "daemonset" => errs.push(json::invalid(
                p,
                render::value(ads),
                "activeDeadlineSeconds in DaemonSet is not Supported",
            )),
            _ => errs.push(json::invalid(
                p,
                render::value(ads),
                "activeDeadlineSeconds in ReplicaSet is not Supported",
            )),
        }
    }
}

fn int_or_percent_value(v: IntOrStr) -> Option<i64> {
    match v {
        IntOrStr::Int(n) => Some(n),
        IntOrStr::Str(s) => s.strip_suffix('%').and_then(|d| d.parse().ok()),
    }
}

/// Upstream `ValidatePositiveIntOrPercent` + `IsNotMoreThan100Percent`.
pub fn validate_int_or_percent(
    v: &Value,
    k: &str,
    base: &str,
    max100: bool,
    errs: &mut Errs,
) -> Option<i64> {
    let p = child(base, k);
    let x = json::int_or_str(v, k, base, errs)?;
    let shown = render::value(json::get(v, k).unwrap_or(&Value::Null));
    match x {
        IntOrStr::Str(s) => {
            for m in names::is_valid_percent(s) {
                errs.push(json::invalid(&p, shown.clone(), &m));
            }
            if max100 && int_or_percent_value(x).is_some_and(|n| n > 100) {
                errs.push(json::invalid(&p, shown, "must not be greater than 100%"));
            }
        }
        IntOrStr::Int(n) => {
            if n < 0 {
                errs.push(json::invalid_int(&p, n, json::NONNEG));
            }
        }
    }
    int_or_percent_value(x)
}

fn validate_deployment(spec: &Value, errs: &mut Errs) {
    let sp = "spec.strategy";
    let empty = Value::Object(Map::new());
    let strategy = json::opt_objv(spec, "strategy", "spec", errs).unwrap_or(&empty);
    let ru = json::opt_objv(strategy, "rollingUpdate", sp, errs);
    match json::str_or(strategy, "type", sp, errs) {
        "Recreate" => {
            if ru.is_some() {
                errs.push(json::forbidden(
                    "spec.strategy.rollingUpdate",
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match ru {
            None => errs.push(json::required(
                "spec.strategy.rollingUpdate",
                "this should be defaulted and never be nil",
            )),
            Some(r) => {
                let rp = "spec.strategy.rollingUpdate";
                let mu = validate_int_or_percent(r, "maxUnavailable", rp, true, errs);
                let ms = validate_int_or_percent(r, "maxSurge", rp, false, errs);
                if mu == Some(0) && ms == Some(0) {
                    errs.push(json::invalid(
                        "spec.strategy.rollingUpdate.maxUnavailable",
                        render::value(json::get(r, "maxUnavailable").unwrap_or(&Value::Null)),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
        },
        other => errs.push(json::not_supported(
            sp,
            other,
            &["Recreate", "RollingUpdate"],
        )),
    }
    if let Some(pd) = json::opt_i64(spec, "progressDeadlineSeconds", "spec", errs) {
        if pd < 0 {
            errs.push(json::invalid_int(
                "spec.progressDeadlineSeconds",
                pd,
                json::NONNEG,
            ));
        }
        let mrs = json::get(spec, "minReadySeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if pd <= mrs {
            errs.push(json::invalid_int(
                "spec.progressDeadlineSeconds",
                pd,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

/// A StatefulSet's template as its pods will have it: each volumeClaimTemplate is a volume
/// the containers may mount (the controller adds it to every pod), unless the template
/// already has a volume of that name.
fn with_claim_volumes(tmpl: &Value, spec: &Value) -> Value {
    let mut t = tmpl.clone();
    let names: Vec<&str> = spec["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["metadata"]["name"].as_str())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() || !t["spec"].is_object() {
        return t;
    }
    let volumes = &mut t["spec"]["volumes"];
    if volumes.is_null() {
        *volumes = Value::Array(vec![]);
    }
    let Some(list) = volumes.as_array_mut() else {
        return t;
    };
    for name in names {
        if !list.iter().any(|v| v["name"].as_str() == Some(name)) {
            list.push(
                serde_json::json!({"name": name, "persistentVolumeClaim": {"claimName": name}}),
            );
        }
    }
    t
}

fn validate_statefulset(spec: &Value, old: Option<&Value>, errs: &mut Errs) {
    match json::str_or(spec, "podManagementPolicy", "spec", errs) {
        "" => errs.push(json::required("spec.podManagementPolicy", "")),
        "OrderedReady" | "Parallel" => {}
        other => errs.push(json::invalid_str(
            "spec.podManagementPolicy",
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let empty = Value::Object(Map::new());
    let us = json::opt_objv(spec, "updateStrategy", "spec", errs).unwrap_or(&empty);
    let up = "spec.updateStrategy";
    let ru = json::opt_objv(us, "rollingUpdate", up, errs);
    match json::str_or(us, "type", up, errs) {
        "" => errs.push(json::required(up, "")),
        "OnDelete" => {
            if let Some(r) = ru {
                errs.push(json::invalid(
                    "spec.updateStrategy.rollingUpdate",
                    render::value(r),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "RollingUpdate" => {
            if let Some(r) = ru {
                nonneg_fields(r, "spec.updateStrategy.rollingUpdate", &["partition"], errs);
                if json::get(r, "maxUnavailable").is_some() {
                    let v = validate_int_or_percent(
                        r,
                        "maxUnavailable",
                        "spec.updateStrategy.rollingUpdate",
                        true,
                        errs,
                    );
                    if v == Some(0) {
                        errs.push(json::invalid(
                            "spec.updateStrategy.rollingUpdate.maxUnavailable",
                            render::value(json::get(r, "maxUnavailable").unwrap_or(&Value::Null)),
                            "must be greater than 0",
                        ));
                    }
                }
            }
        }
        _ => errs.push(json::invalid(
            up,
            render::value(us),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
    if let Some(pol) = json::opt_objv(spec, "persistentVolumeClaimRetentionPolicy", "spec", errs) {
        let pp = "spec.persistentVolumeClaimRetentionPolicy";
        for f in ["whenDeleted", "whenScaled"] {
            let v = json::str_or(pol, f, pp, errs);
            if !["Retain", "Delete"].contains(&v) {
                errs.push(json::not_supported(&child(pp, f), v, &["Retain", "Delete"]));
            }
        }
    }
    if let Some(o) = old {
        let mut a = spec.clone();
        let mut b = o.clone();
        for v in [&mut a, &mut b] {
            if let Some(m) = v.as_object_mut() {
                for f in [
                    "replicas",
                    "ordinals",
                    "template",
                    "updateStrategy",
                    "revisionHistoryLimit",
                    "persistentVolumeClaimRetentionPolicy",
                    "minReadySeconds",
                ] {
                    m.remove(f);
                }
            }
        }
        if a != b {
            errs.push(json::forbidden(
                "spec",
                "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            ));
        }
    }
}

fn validate_daemonset_strategy(spec: &Value, errs: &mut Errs) {
    let up = "spec.updateStrategy";
    let empty = Value::Object(Map::new());
    let us = json::opt_objv(spec, "updateStrategy", "spec", errs).unwrap_or(&empty);
    match json::str_or(us, "type", up, errs) {
        "OnDelete" => {}
        "RollingUpdate" => match json::opt_objv(us, "rollingUpdate", up, errs) {
            None => errs.push(json::required(&child(up, "rollingUpdate"), "")),
            Some(r) => {
                let rp = "spec.updateStrategy.rollingUpdate";
                let mu = validate_int_or_percent(r, "maxUnavailable", rp, true, errs);
                let ms = validate_int_or_percent(r, "maxSurge", rp, true, errs);
                if mu.unwrap_or(0) == 0 && ms.unwrap_or(0) == 0 {
                    errs.push(json::invalid(
                        "spec.updateStrategy.rollingUpdate.maxUnavailable",
                        render::value(json::get(r, "maxUnavailable").unwrap_or(&Value::Null)),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
            }
        },
        other => errs.push(json::not_supported(
            &child(up, "type"),
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

/// Status-subresource rules for the apps kinds.
pub fn validate_apps_status(kind: &str, obj: &Value, errs: &mut Errs) {
    let Some(st) = json::opt_objv(obj, "status", "", errs) else {
        return;
    };
    let counters: &[&str] = match kind {
        "DaemonSet" => &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
            "observedGeneration",
            "updatedNumberScheduled",
            "numberAvailable",
            "numberUnavailable",
        ],
        _ => &[
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
            "unavailableReplicas",
            "fullyLabeledReplicas",
            "currentReplicas",
            "observedGeneration",
        ],
    };
    nonneg_fields(st, "status", counters, errs);
    if kind == "DaemonSet" {
        return;
    }
    let g = |k: &str| json::get(st, k).and_then(Value::as_i64).unwrap_or(0);
    let (msg_r, msg_a) = if kind == "ReplicaSet" {
        (
            "cannot be greater than the number of replicas",
            "cannot be greater than readyReplicas",
        )
    } else {
        (
            "cannot be greater than status.replicas",
            "cannot be greater than readyReplicas",
        )
    };
    if g("readyReplicas") > g("replicas") {
        errs.push(json::invalid_int(
            "status.readyReplicas",
            g("readyReplicas"),
            msg_r,
        ));
    }
    if g("availableReplicas") > g("replicas") {
        errs.push(json::invalid_int(
            "status.availableReplicas",
            g("availableReplicas"),
            msg_r,
        ));
    }
    if g("availableReplicas") > g("readyReplicas") {
        errs.push(json::invalid_int(
            "status.availableReplicas",
            g("availableReplicas"),
            msg_a,
        ));
    }
}
