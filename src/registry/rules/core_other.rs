//! Core-group dispatch plus ConfigMap, Secret, Namespace, ServiceAccount,
//! Event, Node, Endpoints, ReplicationController and PodTemplate.

use serde_json::{Map, Value};

use super::core_pod;
use super::core_service;
use super::core_storage;
use super::json::{self, child, index, key, Errs};
use super::meta;
use super::names::{self, NameRule};
use super::render;

pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
const IMMUTABLE_SET: &str = "field is immutable when `immutable` is set";

/// Returns false for kinds this module does not know.
pub fn validate_core(kind: &str, obj: &Value, old: Option<&Value>, errs: &mut Errs) -> bool {
    match kind {
        "Pod" => core_pod::validate_pod(obj, old, errs),
        "Service" => core_service::validate_service(obj, old, errs),
        "ConfigMap" => validate_config_map(obj, old, errs),
        "Secret" => validate_secret(obj, old, errs),
        "Namespace" => validate_namespace(obj, old, errs),
        "ServiceAccount" => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            json::obj_items(obj, "secrets", "", errs);
            json::obj_items(obj, "imagePullSecrets", "", errs);
            json::opt_bool(obj, "automountServiceAccountToken", "", errs);
        }
        "Event" => validate_event(obj, old, errs),
        "Node" => validate_node(obj, old, errs),
        "Endpoints" => validate_endpoints(obj, old, errs),
        "ReplicationController" => validate_rc(obj, old, errs),
        "PodTemplate" => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            match json::get(obj, "template") {
                Some(t) => core_pod::validate_pod_template(t, "template", errs),
                None => errs.push(json::required("template", "")),
            }
        }
        "PersistentVolume" | "PersistentVolumeClaim" | "LimitRange" | "ResourceQuota" => {
            core_storage::validate_storage(kind, obj, old, errs)
        }
        _ => return false,
    }
    true
}

/// Decoded length of a base64 string, or `None` if it is not base64.
pub fn base64_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if !b.len().is_multiple_of(4) {
        return None;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    if pad > 2 {
        return None;
    }
    let body = &b[..b.len() - pad];
    if !body
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
    {
        return None;
    }
    Some(b.len() / 4 * 3 - pad)
}

fn data_map(obj: &Value, k: &str, base64: bool, errs: &mut Errs) -> (Vec<String>, usize) {
    let mut keys = Vec::new();
    let mut total = 0;
    for (name, v) in json::str_map(obj, k, "", errs) {
        for msg in names::is_config_map_key(name) {
            errs.push(json::invalid_str(&key(k, name), name, &msg));
        }
        if base64 {
            match base64_len(v) {
                Some(n) => total += n,
                None => errs.push(json::invalid_str(
                    &key(k, name),
                    "<secret contents redacted>",
                    "must be a base64-encoded string",
                )),
            }
        } else {
            total += v.len();
        }
        keys.push(name.to_string());
    }
    (keys, total)
}

fn check_immutable(obj: &Value, old: &Value, fields: &[&str], errs: &mut Errs) {
    if json::get(old, "immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if json::get(obj, "immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(json::forbidden("immutable", IMMUTABLE_SET));
    }
    for f in fields {
        if !json::same(obj, old, f) {
            errs.push(json::forbidden(f, IMMUTABLE_SET));
        }
    }
}

fn validate_config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    if let Some(o) = old {
        check_immutable(obj, o, &["data", "binaryData"], errs);
    }
    json::opt_bool(obj, "immutable", "", errs);
    let (data_keys, data_size) = data_map(obj, "data", false, errs);
    let (bin_keys, bin_size) = data_map(obj, "binaryData", true, errs);
    for k in &data_keys {
        if bin_keys.contains(k) {
            errs.push(json::invalid_str(
                &key("data", k),
                k,
                "duplicate of key present in binaryData",
            ));
        }
    }
    if data_size + bin_size > MAX_SECRET_SIZE {
        errs.push(json::too_long("", MAX_SECRET_SIZE));
    }
}

fn validate_secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    if let Some(o) = old {
        if !json::same(obj, o, "type") {
            errs.push(json::immutable(
                "type",
                render::value(json::get(obj, "type").unwrap_or(&Value::Null)),
            ));
        }
        check_immutable(obj, o, &["data"], errs);
    }
    json::opt_bool(obj, "immutable", "", errs);
    let (keys, size) = data_map(obj, "data", true, errs);
    if size > MAX_SECRET_SIZE {
        errs.push(json::too_long("data", MAX_SECRET_SIZE));
    }
    let has = |k: &str| keys.iter().any(|x| x == k);
    match json::str_or(obj, "type", "", errs) {
        "kubernetes.io/service-account-token" => {
            let name = json::get(obj, "metadata")
                .and_then(|m| json::get(m, "annotations"))
                .map(|a| json::s(a, "kubernetes.io/service-account.name"))
                .unwrap_or("");
            if name.is_empty() {
                errs.push(json::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "kubernetes.io/dockercfg" if !has(".dockercfg") => {
            errs.push(json::required("data[.dockercfg]", ""));
        }
        "kubernetes.io/dockerconfigjson" if !has(".dockerconfigjson") => {
            errs.push(json::required("data[.dockerconfigjson]", ""));
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(json::required("data[username]", ""));
            errs.push(json::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if !has("ssh-privatekey") => {
            errs.push(json::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                errs.push(json::required("data[tls.crt]", ""));
            }
            if !has("tls.key") {
                errs.push(json::required("data[tls.key]", ""));
            }
        }
        _ => {}
    }
}

fn validate_namespace(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Label, errs);
    if let Some(spec) = json::opt_objv(obj, "spec", "", errs) {
        for (i, f) in json::str_list(spec, "finalizers", "spec", errs) {
            let fp = index("spec.finalizers", i);
            let _ = &fp;
            for m in names::is_qualified_name(f) {
                errs.push(json::invalid_str("spec.finalizers", f, &m));
            }
            if !f.contains('/') && f != "kubernetes" {
                errs.push(json::invalid_str(
                    "spec.finalizers",
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
    }
}

/// Namespace status: phase must agree with deletion state.
pub fn validate_namespace_status(obj: &Value, errs: &mut Errs) {
    let deleting = json::get(obj, "metadata")
        .and_then(|m| json::get(m, "deletionTimestamp"))
        .is_some();
    let phase = json::get(obj, "status")
        .map(|s| json::s(s, "phase"))
        .unwrap_or("");
    if !deleting && phase != "Active" {
        errs.push(json::invalid_str(
            "status.Phase",
            phase,
            "may only be 'Active' if `deletionTimestamp` is empty",
        ));
    } else if deleting && phase != "Terminating" {
        errs.push(json::invalid_str(
            "status.Phase",
            phase,
            "may only be 'Terminating' if `deletionTimestamp` is not empty",
        ));
    }
}

fn validate_event(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let ns = meta::namespace(obj);
    let empty = Value::Object(Map::new());
    let io = json::opt_objv(obj, "involvedObject", "", errs).unwrap_or(&empty);
    let io_ns = json::str_or(io, "namespace", "involvedObject", errs);
    let event_time = json::get(obj, "eventTime").is_some();
    if !event_time {
        let ok = if io_ns.is_empty() {
            ns.is_empty() || ns == "default"
        } else {
            ns == io_ns
        };
        if !ok {
            errs.push(json::invalid_str(
                "involvedObject.namespace",
                io_ns,
                "does not match event.namespace",
            ));
        }
    } else {
        if io_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(json::invalid_str(
                "involvedObject.namespace",
                io_ns,
                "does not match event.namespace",
            ));
        }
        let rc = json::str_or(obj, "reportingComponent", "", errs);
        if rc.is_empty() {
            errs.push(json::required("reportingController", ""));
        } else {
            for m in names::is_qualified_name(rc) {
                errs.push(json::invalid_str("reportingController", rc, &m));
            }
        }
        for (f, max) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let v = json::str_or(obj, f, "", errs);
            if v.is_empty() {
                errs.push(json::required(f, ""));
            } else if v.len() > max {
                errs.push(json::invalid_str(
                    f,
                    "",
                    &format!("can have at most {max} characters"),
                ));
            }
        }
    }
    if let Some(t) = json::opt_str(obj, "type", "", errs) {
        if event_time && !["Normal", "Warning"].contains(&t) {
            errs.push(json::not_supported("type", t, &["Normal", "Warning"]));
        }
    }
    json::opt_i64(obj, "count", "", errs);
    if !ns.is_empty() {
        for m in names::is_dns1123_subdomain(ns) {
            errs.push(json::invalid_str("namespace", ns, &m));
        }
    }
}

fn validate_node(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let Some(spec) = json::opt_objv(obj, "spec", "", errs) else {
        return;
    };
    let tp = "spec.taints";
    let mut seen = std::collections::HashSet::new();
    for (i, t) in json::obj_items(spec, "taints", "spec", errs) {
        let ip = index(tp, i);
        let k = json::str_or(t, "key", &ip, errs);
        for m in names::is_qualified_name(k) {
            errs.push(json::invalid_str(&child(&ip, "key"), k, &m));
        }
        let v = json::str_or(t, "value", &ip, errs);
        for m in names::is_valid_label_value(v) {
            errs.push(json::invalid_str(&child(&ip, "value"), v, &m));
        }
        let e = json::str_or(t, "effect", &ip, errs);
        let ok = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
        if e.is_empty() {
            errs.push(json::required(&child(&ip, "effect"), ""));
        } else if !ok.contains(&e) {
            errs.push(json::not_supported(&child(&ip, "effect"), e, &ok));
        }
        if !seen.insert((k.to_string(), e.to_string())) {
            errs.push(json::duplicate(&ip, render::value(t).to_string()));
        }
    }
    let cidr = json::str_or(spec, "podCIDR", "spec", errs);
    if !cidr.is_empty() && cidr.parse::<ipnetwork::IpNetwork>().is_err() {
        errs.push(json::invalid_str(
            "spec.podCIDR",
            cidr,
            "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
        ));
    }
    for (i, c) in json::str_list(spec, "podCIDRs", "spec", errs) {
        if c.parse::<ipnetwork::IpNetwork>().is_err() {
            errs.push(json::invalid_str(
                &index("spec.podCIDRs", i),
                c,
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    json::opt_bool(spec, "unschedulable", "spec", errs);
    if let Some(o) = old.and_then(|o| json::get(o, "spec")) {
        let old_cidr = json::s(o, "podCIDR");
        if !old_cidr.is_empty() && old_cidr != cidr {
            errs.push(json::forbidden(
                "spec.podCIDRs",
                "node updates may not change podCIDR except from \"\" to valid",
            ));
        }
        let old_pid = json::s(o, "providerID");
        if !old_pid.is_empty() && old_pid != json::s(spec, "providerID") {
            errs.push(json::forbidden(
                "spec.providerID",
                "node updates may not change providerID except from \"\" to valid",
            ));
        }
    }
}

fn validate_endpoints(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    for (i, s) in json::obj_items(obj, "subsets", "", errs) {
        let sp = index("subsets", i);
        for list in ["addresses", "notReadyAddresses"] {
            let lp = child(&sp, list);
            for (j, a) in json::obj_items(s, list, &sp, errs) {
                let ap = index(&lp, j);
                let ip = json::str_or(a, "ip", &ap, errs);
                if ip.parse::<std::net::IpAddr>().is_err() {
                    errs.push(json::invalid_str(
                        &child(&ap, "ip"),
                        ip,
                        "must be a valid IP address",
                    ));
                }
            }
        }
        let pp = child(&sp, "ports");
        let ports = json::obj_items(s, "ports", &sp, errs);
        for (j, p) in &ports {
            let ip = index(&pp, *j);
            let n = json::str_or(p, "name", &ip, errs);
            if ports.len() > 1 && n.is_empty() {
                errs.push(json::required(&child(&ip, "name"), ""));
            }
            let port = json::opt_i64(p, "port", &ip, errs).unwrap_or(0);
            for m in names::is_valid_port_num(port) {
                errs.push(json::invalid_int(&child(&ip, "port"), port, &m));
            }
            super::core_container::enum_required(
                p,
                "protocol",
                &ip,
                super::core_container::PROTOCOLS,
                errs,
            );
        }
    }
}

fn validate_rc(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
    let Some(spec) = json::opt_objv(obj, "spec", "", errs) else {
        errs.push(json::required("spec.selector", ""));
        return;
    };
    if let Some(r) = json::opt_i64(spec, "replicas", "spec", errs) {
        if r < 0 {
            errs.push(json::invalid_int("spec.replicas", r, json::NONNEG));
        }
    }
    if let Some(r) = json::opt_i64(spec, "minReadySeconds", "spec", errs) {
        if r < 0 {
            errs.push(json::invalid_int("spec.minReadySeconds", r, json::NONNEG));
        }
    }
    let selector = json::str_map(spec, "selector", "spec", errs);
    meta::validate_labels(spec, "selector", "spec", errs);
    if selector.is_empty() {
        errs.push(json::required("spec.selector", ""));
    }
    match json::opt_objv(spec, "template", "spec", errs) {
        None => errs.push(json::required("spec.template", "")),
        Some(t) => {
            let labels = core_pod::template_labels(Some(t));
            if !selector.is_empty()
                && !selector
                    .iter()
                    .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            {
                errs.push(json::invalid(
                    "spec.template.metadata.labels",
                    render::go_string_map(
                        json::get(t, "metadata").and_then(|m| json::get(m, "labels")),
                    ),
                    "`selector` does not match template `labels`",
                ));
            }
            core_pod::validate_pod_template(t, "spec.template", errs);
            let rp = json::get(t, "spec")
                .map(|s| json::s(s, "restartPolicy"))
                .unwrap_or("");
            if rp != "Always" {
                errs.push(json::not_supported(
                    "spec.template.spec.restartPolicy",
                    rp,
                    &["Always"],
                ));
            }
        }
    }
}
