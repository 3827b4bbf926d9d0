//! PersistentVolume, PersistentVolumeClaim, LimitRange and ResourceQuota.

use serde_json::{Map, Value};

use super::core_container::enum_optional;
use super::core_resources::resource_list;
use super::json::{self, child, index, key, Errs};
use super::meta;
use super::names::NameRule;
use super::render;

const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const PV_SOURCES: &[&str] = &[
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "hostPath",
    "glusterfs",
    "nfs",
    "rbd",
    "iscsi",
    "cinder",
    "cephfs",
    "fc",
    "flocker",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

pub fn validate_storage(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let empty = Value::Object(Map::new());
    let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
    let old_spec = old.map(|o| json::get(o, "spec").unwrap_or(&empty));
    match kind {
        "PersistentVolume" => validate_pv(spec, old_spec, errs),
        "PersistentVolumeClaim" => validate_pvc(spec, old_spec, errs),
        "LimitRange" => validate_limit_range(spec, errs),
        _ => validate_quota(spec, errs),
    }
}

fn access_modes(spec: &Value, errs: &mut Errs) {
    let modes = json::str_list(spec, "accessModes", "spec", errs);
    if modes.is_empty() {
        errs.push(json::required("spec.accessModes", ""));
    }
    for (_, m) in modes {
        if !ACCESS_MODES.contains(&m) {
            errs.push(json::not_supported("spec.accessModes", m, ACCESS_MODES));
        }
    }
}

fn validate_pv(spec: &Value, old: Option<&Value>, errs: &mut Errs) {
    access_modes(spec, errs);
    let cap = resource_list(spec, "capacity", "spec", false, errs);
    if cap.is_empty() {
        errs.push(json::required("spec.capacity", ""));
    }
    if !cap.contains_key("storage") || cap.len() > 1 {
        errs.push(json::not_supported(
            "spec.capacity",
            &render::value(json::get(spec, "capacity").unwrap_or(&Value::Null)),
            &["storage"],
        ));
    }
    for (name, (q, text)) in &cap {
        if q.is_zero() {
            errs.push(json::invalid_str(
                &key("spec.capacity", name),
                text,
                "must be greater than zero",
            ));
        }
    }
    let n = PV_SOURCES
        .iter()
        .filter(|s| json::get(spec, s).is_some())
        .count();
    if n == 0 {
        errs.push(json::invalid(
            "spec",
            "{}".to_string(),
            "must specify a volume type",
        ));
    } else if n > 1 {
        errs.push(json::forbidden(
            "spec",
            "may not specify more than 1 volume type",
        ));
    }
    enum_optional(
        spec,
        "persistentVolumeReclaimPolicy",
        "spec",
        &["Delete", "Recycle", "Retain"],
        errs,
    );
    enum_optional(spec, "volumeMode", "spec", &["Block", "Filesystem"], errs);
    if let Some(o) = old {
        for f in PV_SOURCES {
            if !json::same(spec, o, f) && json::get(o, f).is_some() {
                errs.push(json::forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                ));
                break;
            }
        }
        if !json::same(spec, o, "volumeMode") {
            errs.push(json::immutable(
                "spec.volumeMode",
                render::value(json::get(spec, "volumeMode").unwrap_or(&Value::Null)),
            ));
        }
    }
}

fn validate_pvc(spec: &Value, old: Option<&Value>, errs: &mut Errs) {
    access_modes(spec, errs);
    let empty = Value::Object(Map::new());
    let res = json::opt_objv(spec, "resources", "spec", errs).unwrap_or(&empty);
    let req = resource_list(res, "requests", "spec.resources", false, errs);
    match req.get("storage") {
        None => errs.push(json::required("spec.resources[storage]", "")),
        Some((q, text)) if q.is_zero() => errs.push(json::invalid_str(
            "spec.resources.requests[storage]",
            text,
            "must be greater than zero",
        )),
        _ => {}
    }
    resource_list(res, "limits", "spec.resources", false, errs);
    enum_optional(spec, "volumeMode", "spec", &["Block", "Filesystem"], errs);
    if let Some(sel) = json::get(spec, "selector") {
        meta::validate_label_selector(sel, "spec.selector", errs);
    }
    if let Some(o) = old {
        let mut a = spec.clone();
        let mut b = o.clone();
        for v in [&mut a, &mut b] {
            if let Some(m) = v.as_object_mut() {
                m.remove("resources");
                m.remove("volumeAttributesClassName");
            }
        }
        // Binding fills volumeName once.
        if json::s(o, "volumeName").is_empty() {
            if let (Some(am), Some(bm)) = (a.as_object_mut(), b.as_object_mut()) {
                am.remove("volumeName");
                bm.remove("volumeName");
            }
        }
        if a != b {
            errs.push(json::forbidden(
                "spec",
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
            ));
        }
    }
}

fn validate_limit_range(spec: &Value, errs: &mut Errs) {
    let lp = "spec.limits";
    for (i, item) in json::obj_items(spec, "limits", "spec", errs) {
        let ip = index(lp, i);
        let t = json::str_or(item, "type", &ip, errs);
        let ok = ["Container", "Pod", "PersistentVolumeClaim"];
        if t.is_empty() {
            errs.push(json::required(&child(&ip, "type"), ""));
        } else if !ok.contains(&t) && !t.contains('/') {
            errs.push(json::not_supported(&child(&ip, "type"), t, &ok));
        }
        let max = resource_list(item, "max", &ip, false, errs);
        let min = resource_list(item, "min", &ip, false, errs);
        let def = resource_list(item, "default", &ip, false, errs);
        let def_req = resource_list(item, "defaultRequest", &ip, false, errs);
        resource_list(item, "maxLimitRequestRatio", &ip, false, errs);
        if t == "Pod" && (!def.is_empty() || !def_req.is_empty()) {
            let f = if !def.is_empty() {
                "default"
            } else {
                "defaultRequest"
            };
            errs.push(json::forbidden(
                &child(&ip, f),
                "may not be specified when `type` is 'Pod'",
            ));
        }
        for (k, (mn, mn_text)) in &min {
            if let Some((mx, mx_text)) = max.get(k) {
                if mn > mx {
                    errs.push(json::invalid_str(
                        &key(&child(&ip, "min"), k),
                        mn_text,
                        &format!("min value {mn_text} is greater than max value {mx_text}"),
                    ));
                }
            }
        }
        for (k, (d, d_text)) in &def_req {
            if let Some((mx, mx_text)) = max.get(k) {
                if d > mx {
                    errs.push(json::invalid_str(
                        &key(&child(&ip, "defaultRequest"), k),
                        d_text,
                        &format!(
                            "default request value {d_text} is greater than max value {mx_text}"
                        ),
                    ));
                }
            }
            if let Some((df, df_text)) = def.get(k) {
                if d > df {
                    errs.push(json::invalid_str(
                        &key(&child(&ip, "defaultRequest"), k),
                        d_text,
                        &format!("default request value {d_text} is greater than default limit value {df_text}"),
                    ));
                }
            }
        }
        for (k, (d, d_text)) in &def {
            if let Some((mx, mx_text)) = max.get(k) {
                if d > mx {
                    errs.push(json::invalid_str(
                        &key(&child(&ip, "default"), k),
                        d_text,
                        &format!("default value {d_text} is greater than max value {mx_text}"),
                    ));
                }
            }
        }
    }
}

fn validate_quota(spec: &Value, errs: &mut Errs) {
    resource_list(spec, "hard", "spec", false, errs);
    let ok = [
        "BestEffort",
        "CrossNamespacePodAffinity",
        "NotBestEffort",
        "NotTerminating",
        "PriorityClass",
        "Terminating",
        "VolumeAttributesClass",
    ];
    for (i, s) in json::str_list(spec, "scopes", "spec", errs) {
        if !ok.contains(&s) {
            errs.push(json::not_supported(&index("spec.scopes", i), s, &ok));
        }
    }
    json::opt_obj(spec, "scopeSelector", "spec", errs);
}

/// Non-negative counters in a status object.
pub fn nonneg_fields(obj: &Value, base: &str, fields: &[&str], errs: &mut Errs) {
    for f in fields {
        if let Some(n) = json::opt_i64(obj, f, base, errs) {
            if n < 0 {
                errs.push(json::invalid_int(&child(base, f), n, json::NONNEG));
            }
        }
    }
}
