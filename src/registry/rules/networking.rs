//! networking.k8s.io (NetworkPolicy, Ingress, IngressClass) and
//! discovery.k8s.io (EndpointSlice).

use ipnetwork::IpNetwork;
use serde_json::{Map, Value};

use super::discovery;
use super::json::{self, child, index, Errs, IntOrStr};
use super::meta;
use super::names::{self, NameRule};
use super::render;

pub fn validate_networking(
    group: &str,
    kind: &str,
    obj: &Value,
    old: Option<&Value>,
    errs: &mut Errs,
) -> bool {
    let empty = Value::Object(Map::new());
    match (group, kind) {
        ("networking.k8s.io", "NetworkPolicy") => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
            validate_network_policy(spec, errs);
        }
        ("networking.k8s.io", "Ingress") => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
            validate_ingress(spec, errs);
        }
        ("networking.k8s.io", "IngressClass") => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            let spec = json::opt_objv(obj, "spec", "", errs).unwrap_or(&empty);
            let c = json::str_or(spec, "controller", "spec", errs);
            if c.is_empty() {
                errs.push(json::required("spec.controller", ""));
            } else if c.len() > 250 {
                errs.push(json::too_long("spec.controller", 250));
            }
            if let Some(o) = old.and_then(|o| json::get(o, "spec")) {
                if json::s(o, "controller") != c {
                    errs.push(json::immutable("spec.controller", render::go_quote(c)));
                }
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            meta::validate_meta_for(obj, old, NameRule::Subdomain, errs);
            discovery::validate_endpoint_slice(obj, old, errs);
        }
        _ => return false,
    }
    true
}

fn validate_network_policy(spec: &Value, errs: &mut Errs) {
    if let Some(s) = json::get(spec, "podSelector") {
        meta::validate_label_selector(s, "spec.podSelector", errs)
    }
    for (dir, peers) in [("ingress", "from"), ("egress", "to")] {
        let dp = child("spec", dir);
        for (i, rule) in json::obj_items(spec, dir, "spec", errs) {
            let rp = index(&dp, i);
            let pp = child(&rp, "ports");
            for (j, port) in json::obj_items(rule, "ports", &rp, errs) {
                validate_np_port(port, &index(&pp, j), errs);
            }
            let fp = child(&rp, peers);
            for (j, peer) in json::obj_items(rule, peers, &rp, errs) {
                validate_peer(peer, &index(&fp, j), errs);
            }
        }
    }
    let types = json::str_list(spec, "policyTypes", "spec", errs);
    if types.len() > 2 {
        errs.push(json::invalid(
            "spec.policyTypes",
            render::value(json::get(spec, "policyTypes").unwrap_or(&Value::Null)),
            "may not specify more than two policyTypes",
        ));
        return;
    }
    for (i, t) in types {
        if t != "Ingress" && t != "Egress" {
            errs.push(json::not_supported(
                &index("spec.policyTypes", i),
                t,
                &["Ingress", "Egress"],
            ));
        }
    }
}

fn validate_np_port(port: &Value, path: &str, errs: &mut Errs) {
    if let Some(p) = json::opt_str(port, "protocol", path, errs) {
        if !["TCP", "UDP", "SCTP"].contains(&p) {
            errs.push(json::not_supported(
                &child(path, "protocol"),
                p,
                &["TCP", "UDP", "SCTP"],
            ));
        }
    }
    let end = json::opt_i64(port, "endPort", path, errs);
    match json::int_or_str(port, "port", path, errs) {
        Some(IntOrStr::Int(n)) => {
            for m in names::is_valid_port_num(n) {
                errs.push(json::invalid_int(&child(path, "port"), n, &m));
            }
            if let Some(e) = end {
                if e < n {
                    errs.push(json::invalid_int(
                        &child(path, "endPort"),
                        n,
                        "must be greater than or equal to `port`",
                    ));
                }
                for m in names::is_valid_port_num(e) {
                    errs.push(json::invalid_int(&child(path, "endPort"), e, &m));
                }
            }
        }
        Some(IntOrStr::Str(s)) => {
            if let Some(e) = end {
                errs.push(json::invalid_int(
                    &child(path, "endPort"),
                    e,
                    "may not be specified when `port` is non-numeric",
                ));
            }
            for m in names::is_valid_port_name(s) {
                errs.push(json::invalid_str(&child(path, "port"), s, &m));
            }
        }
        None => {
            if let Some(e) = end {
                errs.push(json::invalid_int(
                    &child(path, "endPort"),
                    e,
                    "may not be specified when `port` is not specified",
                ));
            }
        }
    }
}

fn validate_peer(peer: &Value, path: &str, errs: &mut Errs) {
    let mut n = 0;
    for k in ["podSelector", "namespaceSelector"] {
        if let Some(s) = json::get(peer, k) {
            n += 1;
            meta::validate_label_selector(s, &child(path, k), errs);
        }
    }
    let ip_block = json::opt_objv(peer, "ipBlock", path, errs);
    if let Some(b) = ip_block {
        n += 1;
        let bp = child(path, "ipBlock");
        let cidr = json::str_or(b, "cidr", &bp, errs);
        if cidr.is_empty() {
            errs.push(json::required(&child(&bp, "cidr"), ""));
        } else {
            match cidr.parse::<IpNetwork>() {
                Err(_) => errs.push(json::invalid_str(
                    &child(&bp, "cidr"),
                    cidr,
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                )),
                Ok(net) => {
                    for (i, e) in json::str_list(b, "except", &bp, errs) {
                        let ep = index(&child(&bp, "except"), i);
                        match e.parse::<IpNetwork>() {
                            Err(_) => errs.push(json::invalid_str(
                                &ep,
                                e,
                                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                            )),
                            Ok(ex) => {
                                let subset =
                                    ex.prefix() > net.prefix() && net.contains(ex.network());
                                if !subset {
                                    errs.push(json::invalid_str(
                                        &ep,
                                        e,
                                        "must be a strict subset of `cidr`",
                                    ));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    if n == 0 {
        errs.push(json::required(path, "must specify a peer"));
    } else if n > 1 && ip_block.is_some() {
        errs.push(json::forbidden(
            path,
            "may not specify both ipBlock and another peer",
        ));
    }
}

fn validate_ingress(spec: &Value, errs: &mut Errs) {
    let rules = json::obj_items(spec, "rules", "spec", errs);
    let default_backend = json::opt_objv(spec, "defaultBackend", "spec", errs);
    if rules.is_empty() && default_backend.is_none() {
        errs.push(json::invalid(
            "spec",
            "[]networking.IngressRule(nil)".to_string(),
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = default_backend {
        validate_backend(b, "spec.defaultBackend", errs);
    }
    for (i, r) in rules {
        let rp = index("spec.rules", i);
        let host = json::str_or(r, "host", &rp, errs);
        if !host.is_empty() {
            let hp = child(&rp, "host");
            if host.parse::<std::net::IpAddr>().is_ok() {
                errs.push(json::invalid_str(
                    &hp,
                    host,
                    "must be a DNS name, not an IP address",
                ));
            }
            let msgs = if host.contains('*') {
                names::is_wildcard_dns1123_subdomain(host)
            } else {
                names::is_dns1123_subdomain(host)
            };
            for m in msgs {
                errs.push(json::invalid_str(&hp, host, &m));
            }
        }
        let Some(http) = json::opt_objv(r, "http", &rp, errs) else {
            continue;
        };
        let hp = child(&rp, "http");
        let paths = json::obj_items(http, "paths", &hp, errs);
        if paths.is_empty() {
            errs.push(json::required(&child(&hp, "paths"), ""));
        }
        for (j, p) in paths {
            validate_http_path(p, &index(&child(&hp, "paths"), j), errs);
        }
    }
    for (i, t) in json::obj_items(spec, "tls", "spec", errs) {
        let tp = index("spec.tls", i);
        for (j, h) in json::str_list(t, "hosts", &tp, errs) {
            let msgs = if h.contains('*') {
                names::is_wildcard_dns1123_subdomain(h)
            } else {
                names::is_dns1123_subdomain(h)
            };
            for m in msgs {
                errs.push(json::invalid_str(&index(&child(&tp, "hosts"), j), h, &m));
            }
        }
    }
    if let Some(c) = json::opt_str(spec, "ingressClassName", "spec", errs) {
        for m in names::is_dns1123_subdomain(c) {
            errs.push(json::invalid_str("spec.ingressClassName", c, &m));
        }
    }
}

fn validate_http_path(p: &Value, path: &str, errs: &mut Errs) {
    let pathv = json::str_or(p, "path", path, errs);
    let pp = child(path, "path");
    match json::opt_str(p, "pathType", path, errs) {
        None => {
            errs.push(json::required(
                &child(path, "pathType"),
                "pathType must be specified",
            ));
            return;
        }
        Some("Exact" | "Prefix") => {
            if !pathv.starts_with('/') {
                errs.push(json::invalid_str(&pp, pathv, "must be an absolute path"));
            }
            for seq in ["//", "/./", "/../", "%2f", "%2F"] {
                if pathv.contains(seq) {
                    errs.push(json::invalid_str(
                        &pp,
                        pathv,
                        &format!("must not contain '{seq}'"),
                    ));
                }
            }
            for suf in ["/..", "/."] {
                if pathv.ends_with(suf) {
                    errs.push(json::invalid_str(
                        &pp,
                        pathv,
                        &format!("cannot end with '{suf}'"),
                    ));
                }
            }
        }
        Some("ImplementationSpecific") => {
            if !pathv.is_empty() && !pathv.starts_with('/') {
                errs.push(json::invalid_str(&pp, pathv, "must be an absolute path"));
            }
        }
        Some(other) => errs.push(json::not_supported(
            &child(path, "pathType"),
            other,
            &["Exact", "ImplementationSpecific", "Prefix"],
        )),
    }
    let empty = Value::Object(Map::new());
    let b = json::opt_objv(p, "backend", path, errs).unwrap_or(&empty);
    validate_backend(b, &child(path, "backend"), errs);
}

fn validate_backend(b: &Value, path: &str, errs: &mut Errs) {
    let res = json::opt_objv(b, "resource", path, errs);
    let svc = json::opt_objv(b, "service", path, errs);
    match (res, svc) {
        (Some(_), Some(_)) => errs.push(json::invalid_str(
            path,
            "",
            "cannot set both resource and service backends",
        )),
        (Some(r), None) => {
            let rp = child(path, "resource");
            for f in ["kind", "name"] {
                if json::str_or(r, f, &rp, errs).is_empty() {
                    errs.push(json::required(&child(&rp, f), ""));
                }
            }
        }
        (None, Some(s)) => {
            let sp = child(path, "service");
            let name = json::str_or(s, "name", &sp, errs);
            if name.is_empty() {
                errs.push(json::required(&child(&sp, "name"), ""));
            } else {
                for m in names::is_dns1035_label(name) {
                    errs.push(json::invalid_str(&child(&sp, "name"), name, &m));
                }
            }
            let empty = Value::Object(Map::new());
            let port = json::opt_objv(s, "port", &sp, errs).unwrap_or(&empty);
            let pp = child(&sp, "port");
            let pname = json::str_or(port, "name", &pp, errs);
            let pnum = json::opt_i64(port, "number", &pp, errs).unwrap_or(0);
            if !pname.is_empty() && pnum != 0 {
                errs.push(json::invalid_str(
                    path,
                    "",
                    "cannot set both port name & port number",
                ));
            } else if !pname.is_empty() {
                for m in names::is_valid_port_name(pname) {
                    errs.push(json::invalid_str(&child(&pp, "name"), pname, &m));
                }
            } else if pnum != 0 {
                for m in names::is_valid_port_num(pnum) {
                    errs.push(json::invalid_int(&child(&pp, "number"), pnum, &m));
                }
            } else {
                errs.push(json::required(path, "port name or number is required"));
            }
        }
        (None, None) => errs.push(json::invalid_str(
            path,
            "",
            "resource or service backend is required",
        )),
    }
}
