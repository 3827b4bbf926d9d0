//! Container validation: names, images, ports, env, resources, probes.

use std::collections::HashSet;

use serde_json::Value;

use super::core_resources::validate_resources;
use super::json::{self, child, index, Errs, IntOrStr};
use super::names;

/// Which list a container belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Regular,
    Init,
}

/// Shared state across all containers of one pod spec.
pub struct Ctx<'a> {
    pub volumes: HashSet<String>,
    pub names: HashSet<String>,
    pub host_ports: HashSet<String>,
    pub host_network: bool,
    pub spec: &'a Value,
}

pub fn validate_container(c: &Value, path: &str, role: Role, ctx: &mut Ctx, errs: &mut Errs) {
    let np = child(path, "name");
    match json::opt_str(c, "name", path, errs).filter(|n| !n.is_empty()) {
        None => errs.push(json::required(&np, "")),
        Some(n) => {
            for msg in names::is_dns1123_label(n) {
                errs.push(json::invalid_str(&np, n, &msg));
            }
            if !ctx.names.insert(n.to_string()) {
                errs.push(json::duplicate_str(&np, n));
            }
        }
    }
    let image = json::str_or(c, "image", path, errs);
    if image.is_empty() {
        errs.push(json::required(&child(path, "image"), ""));
    } else if image.trim() != image {
        errs.push(json::invalid_str(
            &child(path, "image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    json::str_list(c, "command", path, errs);
    json::str_list(c, "args", path, errs);
    json::opt_str(c, "workingDir", path, errs);
    json::opt_bool(c, "stdin", path, errs);
    json::opt_bool(c, "tty", path, errs);
    enum_required(
        c,
        "imagePullPolicy",
        path,
        &["Always", "IfNotPresent", "Never"],
        errs,
    );
    enum_required(
        c,
        "terminationMessagePolicy",
        path,
        &["File", "FallbackToLogsOnError"],
        errs,
    );
    let restart = json::opt_str(c, "restartPolicy", path, errs);
    let sidecar = restart == Some("Always");
    match (role, restart) {
        (_, None) => {}
        (Role::Init, Some("Always")) => {}
        (Role::Init, Some(r)) => errs.push(json::not_supported(
            &child(path, "restartPolicy"),
            r,
            &["Always"],
        )),
        (Role::Regular, Some(_)) => errs.push(json::forbidden(
            &child(path, "restartPolicy"),
            "may not be set for non-init containers",
        )),
    }
    validate_ports(c, path, ctx, errs);
    validate_env(c, path, errs);
    validate_mounts(c, path, ctx, errs);
    validate_resources(c, path, errs);
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(p) = json::opt_objv(c, probe, path, errs) else {
            continue;
        };
        let pp = child(path, probe);
        if role == Role::Init && !sidecar {
            errs.push(json::forbidden(
                &pp,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(p, &pp, errs);
        if probe != "readinessProbe" {
            if let Some(st) = json::get(p, "successThreshold").and_then(Value::as_i64) {
                if st != 1 {
                    errs.push(json::invalid_int(
                        &child(&pp, "successThreshold"),
                        st,
                        "must be 1",
                    ));
                }
            }
        }
    }
    if let Some(lc) = json::opt_objv(c, "lifecycle", path, errs) {
        let lp = child(path, "lifecycle");
        for h in ["postStart", "preStop"] {
            if let Some(hv) = json::opt_objv(lc, h, &lp, errs) {
                validate_handler(hv, &child(&lp, h), true, errs);
            }
        }
    }
    json::opt_obj(c, "securityContext", path, errs);
}

pub fn enum_required(v: &Value, k: &str, base: &str, valid: &[&str], errs: &mut Errs) {
    let p = child(base, k);
    match json::opt_str(v, k, base, errs) {
        None | Some("") => errs.push(json::required(&p, "")),
        Some(x) if !valid.contains(&x) => errs.push(json::not_supported(&p, x, valid)),
        _ => {}
    }
}

pub fn enum_optional(v: &Value, k: &str, base: &str, valid: &[&str], errs: &mut Errs) {
    if let Some(x) = json::opt_str(v, k, base, errs) {
        if !valid.contains(&x) {
            errs.push(json::not_supported(&child(base, k), x, valid));
        }
    }
}

pub const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];

fn validate_ports(c: &Value, path: &str, ctx: &mut Ctx, errs: &mut Errs) {
    let pp = child(path, "ports");
    let mut seen = HashSet::new();
    for (i, p) in json::obj_items(c, "ports", path, errs) {
        let ip = index(&pp, i);
        if let Some(n) = json::opt_str(p, "name", &ip, errs).filter(|n| !n.is_empty()) {
            let msgs = names::is_valid_port_name(n);
            if !msgs.is_empty() {
                for m in msgs {
                    errs.push(json::invalid_str(&child(&ip, "name"), n, &m));
                }
            } else if !seen.insert(n.to_string()) {
                errs.push(json::duplicate_str(&child(&ip, "name"), n));
            }
        }
        let cp = json::opt_i64(p, "containerPort", &ip, errs).unwrap_or(0);
        if cp == 0 {
            errs.push(json::required(&child(&ip, "containerPort"), ""));
        } else {
            for m in names::is_valid_port_num(cp) {
                errs.push(json::invalid_int(&child(&ip, "containerPort"), cp, &m));
            }
        }
        let hp = json::opt_i64(p, "hostPort", &ip, errs).unwrap_or(0);
        if hp != 0 {
            for m in names::is_valid_port_num(hp) {
                errs.push(json::invalid_int(&child(&ip, "hostPort"), hp, &m));
            }
        }
        if ctx.host_network && hp != 0 && hp != cp {
            errs.push(json::invalid_int(
                &child(&ip, "containerPort"),
                cp,
                "must match `hostPort` when `hostNetwork` is true",
            ));
        }
        let proto = json::str_or(p, "protocol", &ip, errs);
        if proto.is_empty() {
            errs.push(json::required(&child(&ip, "protocol"), ""));
        } else if !PROTOCOLS.contains(&proto) {
            errs.push(json::not_supported(
                &child(&ip, "protocol"),
                proto,
                PROTOCOLS,
            ));
        }
        if hp != 0 {
            let host_ip = json::str_or(p, "hostIP", &ip, errs);
            let k = format!("{host_ip}/{proto}/{hp}");
            if !ctx.host_ports.insert(k.clone()) {
                errs.push(json::duplicate_str(&child(&ip, "hostPort"), &k));
            }
        }
    }
}

fn validate_env(c: &Value, path: &str, errs: &mut Errs) {
    let ep = child(path, "env");
    for (i, e) in json::obj_items(c, "env", path, errs) {
        let ip = index(&ep, i);
        let n = json::str_or(e, "name", &ip, errs);
        if n.is_empty() {
            errs.push(json::required(&child(&ip, "name"), ""));
        } else {
            for m in names::is_env_var_name(n) {
                errs.push(json::invalid_str(&child(&ip, "name"), n, &m));
            }
        }
        let value = json::str_or(e, "value", &ip, errs);
        if let Some(vf) = json::opt_objv(e, "valueFrom", &ip, errs) {
            let vp = child(&ip, "valueFrom");
            let sources = [
                "fieldRef",
                "resourceFieldRef",
                "configMapKeyRef",
                "secretKeyRef",
            ];
            let present: Vec<&str> = sources
                .iter()
                .copied()
                .filter(|s| json::get(vf, s).is_some())
                .collect();
            if present.is_empty() {
                errs.push(json::invalid_str(
                    &vp,
                    "",
                    "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
                ));
            } else if present.len() > 1 {
                errs.push(json::invalid_str(
                    &vp,
                    "",
                    "may not have more than one field specified at a time",
                ));
            }
            if !value.is_empty() {
                errs.push(json::invalid_str(
                    &vp,
                    "",
                    "may not be specified when `value` is not empty",
                ));
            }
            if let Some(fr) = json::opt_objv(vf, "fieldRef", &vp, errs) {
                let fp = child(&vp, "fieldRef");
                if json::str_or(fr, "fieldPath", &fp, errs).is_empty() {
                    errs.push(json::required(&child(&fp, "fieldPath"), ""));
                }
            }
            for kref in ["configMapKeyRef", "secretKeyRef"] {
                if let Some(r) = json::opt_objv(vf, kref, &vp, errs) {
                    let rp = child(&vp, kref);
                    let k = json::str_or(r, "key", &rp, errs);
                    if k.is_empty() {
                        errs.push(json::required(&child(&rp, "key"), ""));
                    } else {
                        for m in names::is_config_map_key(k) {
                            errs.push(json::invalid_str(&child(&rp, "key"), k, &m));
                        }
                    }
                }
            }
        }
    }
    json::obj_items(c, "envFrom", path, errs);
}

fn validate_mounts(c: &Value, path: &str, ctx: &Ctx, errs: &mut Errs) {
    let mp = child(path, "volumeMounts");
    let mut points = HashSet::new();
    for (i, m) in json::obj_items(c, "volumeMounts", path, errs) {
        let ip = index(&mp, i);
        let n = json::str_or(m, "name", &ip, errs);
        if n.is_empty() {
            errs.push(json::required(&child(&ip, "name"), ""));
        }
        if !ctx.volumes.contains(n) {
            errs.push(json::not_found_str(&child(&ip, "name"), n));
        }
        let mount = json::str_or(m, "mountPath", &ip, errs);
        if mount.is_empty() {
            errs.push(json::required(&child(&ip, "mountPath"), ""));
        }
        if !points.insert(mount.to_string()) {
            errs.push(json::invalid_str(
                &child(&ip, "mountPath"),
                mount,
                "must be unique",
            ));
        }
        if let Some(sp) = json::opt_str(m, "subPath", &ip, errs).filter(|s| !s.is_empty()) {
            validate_local_descending_path(sp, &child(&ip, "subPath"), errs);
        }
        json::opt_bool(m, "readOnly", &ip, errs);
    }
}

/// Upstream `validateLocalDescendingPath`.
pub fn validate_local_descending_path(p: &str, path: &str, errs: &mut Errs) {
    if p.starts_with('/') {
        errs.push(json::invalid_str(path, p, "must be a relative path"));
    }
    if p.split(['/', '\\']).any(|seg| seg == "..") {
        errs.push(json::invalid_str(path, p, "must not contain '..'"));
    }
}

pub fn validate_probe(p: &Value, path: &str, errs: &mut Errs) {
    validate_handler(p, path, false, errs);
    for f in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(n) = json::opt_i64(p, f, path, errs) {
            if n < 0 {
                errs.push(json::invalid_int(&child(path, f), n, json::NONNEG));
            }
        }
    }
}

/// Probe and lifecycle handlers: exactly one action.
pub fn validate_handler(h: &Value, path: &str, lifecycle: bool, errs: &mut Errs) {
    let kinds: &[&str] = if lifecycle {
        &["exec", "httpGet", "tcpSocket", "sleep"]
    } else {
        &["exec", "httpGet", "tcpSocket", "grpc"]
    };
    let mut count = 0;
    for k in kinds {
        let Some(a) = json::opt_objv(h, k, path, errs) else {
            continue;
        };
        count += 1;
        let ap = child(path, k);
        if count > 1 {
            errs.push(json::forbidden(
                &ap,
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        match *k {
            "exec" => {
                if json::str_list(a, "command", &ap, errs).is_empty() {
                    errs.push(json::required(&child(&ap, "command"), ""));
                }
            }
            "httpGet" => {
                if json::str_or(a, "path", &ap, errs).is_empty() {
                    errs.push(json::required(&child(&ap, "path"), ""));
                }
                validate_port_num_or_name(a, "port", &ap, errs);
                enum_required(a, "scheme", &ap, &["HTTP", "HTTPS"], errs);
            }
            "tcpSocket" => validate_port_num_or_name(a, "port", &ap, errs),
            "grpc" => {
                let port = json::opt_i64(a, "port", &ap, errs).unwrap_or(0);
                for m in names::is_valid_port_num(port) {
                    errs.push(json::invalid_int(&child(&ap, "port"), port, &m));
                }
            }
            _ => {
                let secs = json::opt_i64(a, "seconds", &ap, errs).unwrap_or(0);
                if secs < 0 {
                    errs.push(json::invalid_int(
                        &child(&ap, "seconds"),
                        secs,
                        json::NONNEG,
                    ));
                }
            }
        }
    }
    if count == 0 {
        errs.push(json::required(path, "must specify a handler type"));
    }
}

/// Upstream `ValidatePortNumOrName`.
pub fn validate_port_num_or_name(v: &Value, k: &str, base: &str, errs: &mut Errs) {
    let p = child(base, k);
    match json::int_or_str(v, k, base, errs) {
        Some(IntOrStr::Int(n)) => {
            for m in names::is_valid_port_num(n) {
                errs.push(json::invalid_int(&p, n, &m));
            }
        }
        Some(IntOrStr::Str(s)) => {
            for m in names::is_valid_port_name(s) {
                errs.push(json::invalid_str(&p, s, &m));
            }
        }
        None => {
            for m in names::is_valid_port_num(0) {
                errs.push(json::invalid_int(&p, 0, &m));
            }
        }
    }
}
