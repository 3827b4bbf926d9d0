//! Service validation (create and update).

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{Map, Value};

use super::core_container::{validate_port_num_or_name, PROTOCOLS};
use super::json::{self, child, index, Errs};
use super::meta;
use super::names::{self, NameRule};
use super::render;

const TYPES: &[&str] = &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

fn cluster_ips(spec: &Value) -> Vec<String> {
    let list: Vec<String> = match json::get(spec, "clusterIPs") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    };
    if list.is_empty() {
        let ip = json::s(spec, "clusterIP");
        if !ip.is_empty() {
            return vec![ip.to_string()];
        }
    }
    list
}

fn is_headless(spec: &Value) -> bool {
    cluster_ips(spec).first().is_some_and(|ip| ip == "None")
}

fn externally_accessible(spec: &Value) -> bool {
    let t = json::s(spec, "type");
    t == "LoadBalancer"
        || t == "NodePort"
        || (t == "ClusterIP" && !json::arr(spec, "externalIPs", "", &mut Vec::new()).is_empty())
}

pub fn validate_service(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    meta::validate_meta_for(obj, old, NameRule::Dns1035, errs);
    let empty = Value::Object(Map::new());
    let Some(spec) = json::opt_objv(obj, "spec", "", errs) else {
        errs.push(json::required("spec.ports", ""));
        return;
    };
    if let Some(o) = old {
        validate_cluster_ip_update(json::get(o, "spec").unwrap_or(&empty), spec, errs);
    }
    let sp = "spec";
    let ty = json::str_or(spec, "type", sp, errs);
    let ports = json::obj_items(spec, "ports", sp, errs);
    let headless = is_headless(spec);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(json::required("spec.ports", ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" => {
            for (i, p) in &ports {
                if ty == "LoadBalancer"
                    && json::get(p, "port").and_then(Value::as_i64) == Some(10250)
                {
                    errs.push(json::invalid_int(
                        &index("spec.ports", *i),
                        10250,
                        "may not expose port 10250 externally since it is used by kubelet",
                    ));
                }
            }
            if headless {
                errs.push(json::invalid_str(
                    "spec.clusterIP",
                    "None",
                    &format!("may not be set to 'None' for {ty} services"),
                ));
            }
        }
        "ExternalName" => {
            if !json::arr(spec, "clusterIPs", sp, &mut Vec::new()).is_empty() {
                errs.push(json::forbidden(
                    "spec.clusterIPs",
                    "may not be set for ExternalName services",
                ));
            }
            if !json::arr(spec, "ipFamilies", sp, &mut Vec::new()).is_empty() {
                errs.push(json::forbidden(
                    "spec.ipFamilies",
                    "may not be set for ExternalName services",
                ));
            }
            if json::get(spec, "ipFamilyPolicy").is_some() {
                errs.push(json::forbidden(
                    "spec.ipFamilyPolicy",
                    "may not be set for ExternalName services",
                ));
            }
            let cname = json::str_or(spec, "externalName", sp, errs);
            let cname = cname.strip_suffix('.').unwrap_or(cname);
            if cname.is_empty() {
                errs.push(json::required("spec.externalName", ""));
            } else {
                for m in names::is_dns1123_subdomain(cname) {
                    errs.push(json::invalid_str("spec.externalName", cname, &m));
                }
            }
        }
        _ => {}
    }
    let mut port_names = HashSet::new();
    let mut seen_ports: HashSet<(String, i64)> = HashSet::new();
    let mut seen_node_ports: HashSet<(String, i64)> = HashSet::new();
    let multi = ports.len() > 1;
    for (i, p) in &ports {
        let pp = index("spec.ports", *i);
        let n = json::str_or(p, "name", &pp, errs);
        if multi && n.is_empty() {
            errs.push(json::required(&child(&pp, "name"), ""));
        } else if !n.is_empty() {
            for m in names::is_dns1123_label(n) {
                errs.push(json::invalid_str(&child(&pp, "name"), n, &m));
            }
            if !port_names.insert(n.to_string()) {
                errs.push(json::duplicate_str(&child(&pp, "name"), n));
            }
        }
        let port = json::opt_i64(p, "port", &pp, errs).unwrap_or(0);
        for m in names::is_valid_port_num(port) {
            errs.push(json::invalid_int(&child(&pp, "port"), port, &m));
        }
        let proto = json::str_or(p, "protocol", &pp, errs);
        if proto.is_empty() {
            errs.push(json::required(&child(&pp, "protocol"), ""));
        } else if !PROTOCOLS.contains(&proto) {
            errs.push(json::not_supported(
                &child(&pp, "protocol"),
                proto,
                PROTOCOLS,
            ));
        }
        if json::get(p, "targetPort").is_some() {
            validate_port_num_or_name(p, "targetPort", &pp, errs);
        }
        if let Some(ap) = json::opt_str(p, "appProtocol", &pp, errs) {
            for m in names::is_qualified_name(ap) {
                errs.push(json::invalid_str(&child(&pp, "appProtocol"), ap, &m));
            }
        }
        let node_port = json::opt_i64(p, "nodePort", &pp, errs).unwrap_or(0);
        if node_port != 0 {
            for m in names::is_valid_port_num(node_port) {
                errs.push(json::invalid_int(&child(&pp, "nodePort"), node_port, &m));
            }
            if ty == "ClusterIP" {
                errs.push(json::forbidden(
                    &child(&pp, "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
            if !seen_node_ports.insert((proto.to_string(), node_port)) {
                errs.push(json::duplicate(
                    &child(&pp, "nodePort"),
                    node_port.to_string(),
                ));
            }
        }
        if !seen_ports.insert((proto.to_string(), port)) {
            errs.push(json::duplicate(
                &pp,
                format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{port}, TargetPort:{}, NodePort:0}}",
                    render::go_quote(proto),
                    render::go_int_or_string(None)
                ),
            ));
        }
    }
    meta::validate_labels(spec, "selector", sp, errs);
    let affinity = json::str_or(spec, "sessionAffinity", sp, errs);
    match affinity {
        "" => errs.push(json::required("spec.sessionAffinity", "")),
        "ClientIP" => {
            let t = json::get(spec, "sessionAffinityConfig")
                .and_then(|c| json::get(c, "clientIP"))
                .and_then(|c| json::get(c, "timeoutSeconds"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            if !(1..=86400).contains(&t) {
                errs.push(json::invalid_int(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
        "None" => {
            if json::get(spec, "sessionAffinityConfig").is_some() {
                errs.push(json::forbidden(
                    "spec.sessionAffinityConfig",
                    "must not be set when session affinity is None",
                ));
            }
        }
        other => errs.push(json::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    validate_ip_fields(spec, ty, errs);
    if ty.is_empty() {
        errs.push(json::required("spec.type", ""));
    } else if !TYPES.contains(&ty) {
        errs.push(json::not_supported("spec.type", ty, TYPES));
    }
    let etp = json::str_or(spec, "externalTrafficPolicy", sp, errs);
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(json::invalid_str(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(json::required("spec.externalTrafficPolicy", ""));
    } else if !["Cluster", "Local"].contains(&etp) {
        errs.push(json::not_supported(
            "spec.externalTrafficPolicy",
            etp,
            &["Cluster", "Local"],
        ));
    }
    match json::opt_str(spec, "internalTrafficPolicy", sp, errs) {
        None if ["ClusterIP", "NodePort", "LoadBalancer"].contains(&ty) => {
            errs.push(json::required(
                "spec.internalTrafficPolicy",
                "must be specified when `type` is 'ClusterIP', 'NodePort', or 'LoadBalancer'",
            ))
        }
        Some(p) if !["Cluster", "Local"].contains(&p) => errs.push(json::not_supported(
            "spec.internalTrafficPolicy",
            p,
            &["Cluster", "Local"],
        )),
        _ => {}
    }
}

fn validate_ip_fields(spec: &Value, ty: &str, errs: &mut Errs) {
    let sp = "spec";
    let ip = json::str_or(spec, "clusterIP", sp, errs);
    if !ip.is_empty() && ip != "None" && ip.parse::<IpAddr>().is_err() {
        errs.push(json::invalid_str(
            "spec.clusterIP",
            ip,
            "must be empty, 'None', or a valid IP address",
        ));
    }
    let ips = json::str_list(spec, "clusterIPs", sp, errs);
    if let Some((_, first)) = ips.first() {
        if !ip.is_empty() && *first != ip {
            errs.push(json::invalid(
                "spec.clusterIPs",
                render::value(json::get(spec, "clusterIPs").unwrap_or(&Value::Null)),
                "first value must match `clusterIP`",
            ));
        }
    }
    for (i, v) in &ips {
        if *v != "None" && v.parse::<IpAddr>().is_err() {
            errs.push(json::invalid_str(
                &index("spec.clusterIPs", *i),
                v,
                "must be a valid IP address",
            ));
        }
    }
    if ips.len() > 2 {
        errs.push(json::invalid(
            "spec.clusterIPs",
            render::value(json::get(spec, "clusterIPs").unwrap_or(&Value::Null)),
            "may only hold up to 2 values",
        ));
    }
    if ty != "ExternalName" {
        if let Some(p) = json::opt_str(spec, "ipFamilyPolicy", sp, errs) {
            let ok = ["PreferDualStack", "RequireDualStack", "SingleStack"];
            if !ok.contains(&p) {
                errs.push(json::not_supported("spec.ipFamilyPolicy", p, &ok));
            }
        }
        let fams = json::str_list(spec, "ipFamilies", sp, errs);
        let mut seen = HashSet::new();
        for (i, f) in &fams {
            let fp = index("spec.ipFamilies", *i);
            if !["IPv4", "IPv6"].contains(f) {
                errs.push(json::not_supported(&fp, f, &["IPv4", "IPv6"]));
            } else if !seen.insert(*f) {
                errs.push(json::duplicate_str(&fp, f));
            }
        }
        if fams.len() > 2 {
            errs.push(json::invalid(
                "spec.ipFamilies",
                render::value(json::get(spec, "ipFamilies").unwrap_or(&Value::Null)),
                "may only hold up to 2 values",
            ));
        }
    }
    for (i, e) in json::str_list(spec, "externalIPs", sp, errs) {
        if e.parse::<IpAddr>().is_err() {
            errs.push(json::invalid_str(
                &index("spec.externalIPs", i),
                e,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
}

fn validate_cluster_ip_update(old: &Value, new: &Value, errs: &mut Errs) {
    if json::s(new, "type") == "ExternalName" || json::s(old, "type") == "ExternalName" {
        return;
    }
    if is_headless(old) && is_headless(new) {
        return;
    }
    let o = cluster_ips(old);
    let n = cluster_ips(new);
    if n.is_empty() {
        // Allocated values are carried over from storage by the caller.
        return;
    }
    let shown = render::value(&Value::Array(
        n.iter().cloned().map(Value::String).collect(),
    ));
    if o.len() == n.len() {
        for (i, ip) in o.iter().enumerate() {
            if n.get(i) != Some(ip) {
                errs.push(json::invalid(
                    &index("spec.clusterIPs", i),
                    shown.clone(),
                    "may not change once set",
                ));
            }
        }
    } else if !o.is_empty() && n.first() != o.first() {
        errs.push(json::invalid(
            &index("spec.clusterIPs", 0),
            shown.clone(),
            "may not change once set",
        ));
    }
    if o.len() > n.len() && n.len() == 1 && json::s(new, "ipFamilyPolicy") != "SingleStack" {
        errs.push(json::invalid(
            &index("spec.clusterIPs", 0),
            shown,
            "`ipFamilyPolicy` must be set to 'SingleStack' when releasing the secondary clusterIP",
        ));
    }
}
