//! Defaults for apps/v1 and batch/v1 workloads (and their pod templates).

use serde_json::{json, Map, Value};

use super::defaults_core::{default_pvc, default_template};
use super::json::{each_obj_mut, existing_obj_mut, obj_mut, s, set_default, set_default_str};

pub fn default_workload(group: &str, _version: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("apps", "Deployment") => default_deployment(obj),
        ("apps", "ReplicaSet") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                template(spec);
            }
        }
        ("apps", "StatefulSet") => default_statefulset(obj),
        ("apps", "DaemonSet") => default_daemonset(obj),
        ("batch", "Job") => default_job(obj),
        ("batch", "CronJob") => default_cronjob(obj),
        _ => {}
    }
}

fn template(spec: &mut Value) {
    if let Some(t) = existing_obj_mut(spec, "template") {
        default_template(t);
    }
}

fn default_deployment(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(st) = obj_mut(spec, "strategy") {
        set_default_str(st, "type", "RollingUpdate");
        if s(st, "type") == "RollingUpdate" {
            if let Some(ru) = obj_mut(st, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    template(spec);
}

fn default_statefulset(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(us) = obj_mut(spec, "updateStrategy") {
        if s(us, "type").is_empty() {
            set_default_str(us, "type", "RollingUpdate");
            set_default(us, "rollingUpdate", json!({}));
        }
        if s(us, "type") == "RollingUpdate" {
            if let Some(ru) = existing_obj_mut(us, "rollingUpdate") {
                set_default(ru, "partition", json!(0));
            }
        }
    }
    if let Some(p) = obj_mut(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default_str(p, "whenDeleted", "Retain");
        set_default_str(p, "whenScaled", "Retain");
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
    each_obj_mut(spec, "volumeClaimTemplates", default_pvc);
}

fn default_daemonset(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    if let Some(us) = obj_mut(spec, "updateStrategy") {
        set_default_str(us, "type", "RollingUpdate");
        if s(us, "type") == "RollingUpdate" {
            if let Some(ru) = obj_mut(us, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
}

fn default_job_spec(spec: &mut Value) {
    let has = |v: &Value, k: &str| v.get(k).is_some_and(|x| !x.is_null());
    if !has(spec, "completions") && !has(spec, "parallelism") {
        set_default(spec, "completions", json!(1));
        set_default(spec, "parallelism", json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    if has(spec, "backoffLimitPerIndex") {
        set_default(spec, "backoffLimit", json!(i32::MAX));
    } else {
        set_default(spec, "backoffLimit", json!(6));
    }
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let has_pfp = has(spec, "podFailurePolicy");
    if let Some(pfp) = existing_obj_mut(spec, "podFailurePolicy") {
        each_obj_mut(pfp, "rules", |r| {
            each_obj_mut(r, "onPodConditions", |c| {
                set_default_str(c, "status", "True")
            });
        });
    }
    let policy = if has_pfp {
        "Failed"
    } else {
        "TerminatingOrFailed"
    };
    set_default(spec, "podReplacementPolicy", json!(policy));
}

fn default_job(obj: &mut Value) {
    let mut tmpl_labels: Option<Value> = None;
    if let Some(spec) = obj_mut(obj, "spec") {
        default_job_spec(spec);
        template(spec);
        tmpl_labels = spec
            .pointer("/template/metadata/labels")
            .filter(|l| l.is_object())
            .cloned();
    }
    if let Some(l) = tmpl_labels {
        if let Some(m) = obj_mut(obj, "metadata") {
            let empty = m
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if empty {
                if let Some(mm) = m.as_object_mut() {
                    mm.insert("labels".to_string(), l);
                }
            }
        }
    }
}

fn default_cronjob(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default_str(spec, "concurrencyPolicy", "Allow");
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(jt) = existing_obj_mut(spec, "jobTemplate") {
        if let Some(js) = existing_obj_mut(jt, "spec") {
            template(js);
        }
    }
}
