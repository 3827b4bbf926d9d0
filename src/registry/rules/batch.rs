//! batch/v1: Job and CronJob.

use serde_json::{Map, Value};

use super::core_pod;
use super::core_storage::nonneg_fields;
use super::json::{self, child, Errs};
use super::meta;
use super::names::NameRule;
use super::render;
use crate::cron::Schedule;

pub fn validate_batch(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Errs) -> bool {
    let empty = Value::Object(Map::new());
    match kind {
        "Job" => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
            validate_job_spec(spec, "spec", errs);
            if let Some(o) = old {
                let os = json::get(o, "spec").unwrap_or(&empty);
                let started = json::get(o, "status")
                    .and_then(|s| json::get(s, "startTime"))
                    .is_some();
                validate_job_update(spec, os, started, errs);
            }
        }
        "CronJob" => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            let name = meta::name(obj);
            if old.is_none() && name.len() > 52 {
                errs.push(json::invalid_str(
                    "metadata.name",
                    name,
                    "must be no more than 52 characters",
                ));
            }
            let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
            let old_spec = old.and_then(|o| json::get(o, "spec"));
            validate_cronjob_spec(spec, old_spec, errs);
        }
        _ => return false,
    }
    true
}

fn validate_job_spec(spec: &Value, path: &str, errs: &mut Errs) {
    nonneg_fields(
        spec,
        path,
        &[
            "parallelism",
            "completions",
            "activeDeadlineSeconds",
            "backoffLimit",
            "ttlSecondsAfterFinished",
            "backoffLimitPerIndex",
            "maxFailedIndexes",
        ],
        errs,
    );
    json::opt_bool(spec, "suspend", path, errs);
    let manual = json::opt_bool(spec, "manualSelector", path, errs) == Some(true);
    if let Some(mode) = json::opt_str(spec, "completionMode", path, errs) {
        match mode {
            "NonIndexed" => {}
            "Indexed" => {
                if json::get(spec, "completions").is_none() {
                    errs.push(json::required(
                        &child(path, "completions"),
                        "when completion mode is Indexed",
                    ));
                }
            }
            other => errs.push(json::not_supported(
                &child(path, "completionMode"),
                other,
                &["NonIndexed", "Indexed"],
            )),
        }
    }
    if let Some(p) = json::opt_str(spec, "podReplacementPolicy", path, errs) {
        if !["TerminatingOrFailed", "Failed"].contains(&p) {
            errs.push(json::not_supported(
                &child(path, "podReplacementPolicy"),
                p,
                &["TerminatingOrFailed", "Failed"],
            ));
        }
    }
    let tmpl = json::opt_objv(spec, "template", path, errs);
    let sel = json::get(spec, "selector");
    match sel {
        Some(s) => {
            let before = errs.len();
            meta::validate_label_selector(s, &child(path, "selector"), errs);
            let labels = core_pod::template_labels(tmpl);
            if errs.len() == before && !meta::selector_matches(s, &labels) {
                errs.push(json::invalid(
                    &child(path, "template.metadata.labels"),
                    render::go_string_map(
                        tmpl.and_then(|t| json::get(t, "metadata"))
                            .and_then(|m| json::get(m, "labels")),
                    ),
                    "`selector` does not match template `labels`",
                ));
            }
        }
        None if manual => errs.push(json::required(&child(path, "selector"), "")),
        None => {}
    }
    let tp = child(path, "template");
    let empty = Value::Object(Map::new());
    let tmpl = tmpl.unwrap_or(&empty);
    core_pod::validate_pod_template(tmpl, &tp, errs);
    let rp = json::get(tmpl, "spec")
        .map(|s| json::s(s, "restartPolicy"))
        .unwrap_or("");
    if rp != "OnFailure" && rp != "Never" {
        errs.push(json::not_supported(
            &child(&tp, "spec.restartPolicy"),
            rp,
            &["OnFailure", "Never"],
        ));
    }
}

fn validate_job_update(spec: &Value, old: &Value, started: bool, errs: &mut Errs) {
    for f in [
        "completions",
        "selector",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
    ] {
        if !json::same(spec, old, f) {
            let v = json::get(spec, f);
            let shown = if f == "selector" {
                render::go_label_selector(v)
            } else {
                render::value(v.unwrap_or(&Value::Null))
            };
            errs.push(json::immutable(&child("spec", f), shown));
        }
    }
    let empty = Value::Object(Map::new());
    let mut new_t = json::get(spec, "template")
        .cloned()
        .unwrap_or(empty.clone());
    let mut old_t = json::get(old, "template").cloned().unwrap_or(empty);
    let suspended = json::get(old, "suspend").and_then(Value::as_bool) == Some(true);
    if suspended && !started {
        // Scheduling directives of a suspended, never-started job may change.
        for t in [&mut new_t, &mut old_t] {
            if let Some(m) = json::existing_obj_mut(t, "metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
            if let Some(m) = json::existing_obj_mut(t, "spec").and_then(Value::as_object_mut) {
                for f in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                    m.remove(f);
                }
            }
        }
    }
    if new_t != old_t {
        errs.push(json::immutable(
            "spec.template",
            render::value(json::get(spec, "template").unwrap_or(&Value::Null)),
        ));
    }
}

fn validate_cronjob_spec(spec: &Value, old: Option<&Value>, errs: &mut Errs) {
    let p = "spec";
    let schedule = json::str_or(spec, "schedule", p, errs);
    let tz = json::opt_str(spec, "timeZone", p, errs);
    if schedule.is_empty() {
        errs.push(json::required("spec.schedule", ""));
    } else {
        if let Err(e) = Schedule::parse(schedule) {
            errs.push(json::invalid_str("spec.schedule", schedule, &e.to_string()));
        }
        let allow_tz = old.is_some_and(|o| json::s(o, "schedule").contains("TZ"));
        if allow_tz && schedule.contains("TZ") && tz.is_some() {
            errs.push(json::invalid_str(
                "spec.schedule",
                schedule,
                "cannot use both timeZone field and TZ or CRON_TZ in schedule",
            ));
        } else if !allow_tz && schedule.contains("TZ") {
            errs.push(json::invalid_str(
                "spec.schedule",
                schedule,
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    if let Some(tz) = tz {
        let changed = old.is_none_or(|o| json::s(o, "timeZone") != tz);
        if changed {
            if tz.is_empty() {
                errs.push(json::invalid_str(
                    "spec.timeZone",
                    tz,
                    "timeZone must be nil or non-empty string",
                ));
            } else if tz.contains(' ')
                || tz.starts_with('/')
                || tz.contains("..")
                || tz == "Local"
                || jiff::tz::TimeZone::get(tz).is_err()
            {
                errs.push(json::invalid_str(
                    "spec.timeZone",
                    tz,
                    &format!("unknown time zone {tz}"),
                ));
            }
        }
    }
    nonneg_fields(
        spec,
        p,
        &[
            "startingDeadlineSeconds",
            "successfulJobsHistoryLimit",
            "failedJobsHistoryLimit",
        ],
        errs,
    );
    json::opt_bool(spec, "suspend", p, errs);
    match json::str_or(spec, "concurrencyPolicy", p, errs) {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(json::required("spec.concurrencyPolicy", "")),
        other => errs.push(json::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let jp = "spec.jobTemplate";
    let empty = Value::Object(Map::new());
    let jt = json::opt_objv(spec, "jobTemplate", p, errs).unwrap_or(&empty);
    if let Some(m) = json::opt_objv(jt, "metadata", jp, errs) {
        meta::validate_labels(m, "labels", &child(jp, "metadata"), errs);
        meta::validate_annotations(m, "annotations", &child(jp, "metadata"), errs);
    }
    let js = json::opt_objv(jt, "spec", jp, errs).unwrap_or(&empty);
    let jsp = "spec.jobTemplate.spec";
    if let Some(sel) = json::get(js, "selector") {
        errs.push(json::invalid(
            &child(jsp, "selector"),
            render::go_label_selector(Some(sel)),
            "`selector` will be auto-generated",
        ));
    }
    if json::get(js, "manualSelector").and_then(Value::as_bool) == Some(true) {
        errs.push(json::not_supported(
            &child(jsp, "manualSelector"),
            "true",
            &["nil", "false"],
        ));
    }
    let mut js_no_sel = js.clone();
    if let Some(m) = js_no_sel.as_object_mut() {
        m.remove("selector");
        m.remove("manualSelector");
    }
    validate_job_spec(&js_no_sel, jsp, errs);
}

/// Upstream's job strategy on create (`generateSelector`), run once the uid is known: unless
/// `spec.manualSelector` is true, the pod template gets the job-name and controller-uid labels
/// (current and legacy keys) and the selector matches the controller-uid, so the Job's pods
/// are only ever its own. A Job without labels takes its template's.
pub fn generate_job_selector(obj: &mut Value) {
    let name = meta::name(obj).to_string();
    let uid = json::get(obj, "metadata")
        .map(|m| json::s(m, "uid").to_string())
        .unwrap_or_default();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let tmpl = spec
        .entry("template")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(labels) = ensure_obj(tmpl, "metadata").and_then(|m| ensure_obj(m, "labels")) else {
        return;
    };
    let labels = labels.as_object_mut().expect("ensured an object");
    for (k, v) in [
        ("job-name", &name),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("batch.kubernetes.io/controller-uid", &uid),
    ] {
        // A label the user set stays; validation already saw it and a wrong one fails there.
        labels.entry(k).or_insert_with(|| Value::String(v.clone()));
    }
    let tmpl_labels = Value::Object(labels.clone());
    let sel = spec
        .entry("selector")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(ml) = ensure_obj(sel, "matchLabels").and_then(Value::as_object_mut) {
        ml.entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| Value::String(uid.clone()));
    }
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let empty = m
            .get("labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if empty {
            m.insert("labels".into(), tmpl_labels);
        }
    }
}

fn ensure_obj<'a>(v: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    let o = v.as_object_mut()?;
    let e = o.entry(key).or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    Some(e)
}

/// Status-subresource rules for batch kinds.
pub fn validate_batch_status(kind: &str, obj: &Value, errs: &mut Errs) {
    if kind != "Job" {
        return;
    }
    if let Some(st) = json::opt_objv(obj, "status", "", errs) {
        nonneg_fields(
            st,
            "status",
            &["active", "succeeded", "failed", "ready", "terminating"],
            errs,
        );
    }
}
