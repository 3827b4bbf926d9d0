//! discovery.k8s.io/v1 EndpointSlice validation.

use serde_json::Value;

use super::core_container::PROTOCOLS;
use super::json::{self, child, index, Errs};
use super::names;
use super::render;

pub fn validate_endpoint_slice(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let at = json::str_or(obj, "addressType", "", errs);
    let ok = ["FQDN", "IPv4", "IPv6"];
    if at.is_empty() {
        errs.push(json::required("addressType", ""));
    } else if !ok.contains(&at) {
        errs.push(json::not_supported("addressType", at, &ok));
    }
    if let Some(o) = old {
        if json::s(o, "addressType") != at {
            errs.push(json::immutable("addressType", render::go_quote(at)));
        }
    }
    let eps = json::obj_items(obj, "endpoints", "", errs);
    if eps.len() > 1000 {
        errs.push(json::too_many("endpoints", eps.len(), 1000));
    }
    for (i, ep) in eps {
        let epp = index("endpoints", i);
        let addrs = json::str_list(ep, "addresses", &epp, errs);
        let ap = child(&epp, "addresses");
        if addrs.is_empty() {
            errs.push(json::required(&ap, "must contain at least 1 address"));
        } else if addrs.len() > 100 {
            errs.push(json::too_many(&ap, addrs.len(), 100));
        }
        for (j, a) in addrs {
            let bad = match at {
                "IPv4" => a.parse::<std::net::Ipv4Addr>().is_err(),
                "IPv6" => a.parse::<std::net::Ipv6Addr>().is_err(),
                "FQDN" => !names::is_dns1123_subdomain(a).is_empty(),
                _ => false,
            };
            if bad {
                let msg = match at {
                    "IPv4" => "must be a valid IPv4 address",
                    "IPv6" => "must be a valid IPv6 address",
                    _ => "must be a valid DNS subdomain",
                };
                errs.push(json::invalid_str(&index(&ap, j), a, msg));
            }
        }
        if let Some(h) = json::opt_str(ep, "hostname", &epp, errs) {
            for m in names::is_dns1123_label(h) {
                errs.push(json::invalid_str(&child(&epp, "hostname"), h, &m));
            }
        }
    }
    let ports = json::obj_items(obj, "ports", "", errs);
    if ports.len() > 20000 {
        errs.push(json::too_many("ports", ports.len(), 20000));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, p) in ports {
        let pp = index("ports", i);
        let n = json::str_or(p, "name", &pp, errs);
        if !n.is_empty() {
            for m in names::is_dns1123_label(n) {
                errs.push(json::invalid_str(&child(&pp, "name"), n, &m));
            }
        }
        if !seen.insert(n.to_string()) {
            errs.push(json::duplicate_str(&child(&pp, "name"), n));
        }
        if let Some(proto) = json::opt_str(p, "protocol", &pp, errs) {
            if !PROTOCOLS.contains(&proto) {
                errs.push(json::not_supported(
                    &child(&pp, "protocol"),
                    proto,
                    PROTOCOLS,
                ));
            }
        }
        if let Some(port) = json::opt_i64(p, "port", &pp, errs) {
            if port != 0 {
                for m in names::is_valid_port_num(port) {
                    errs.push(json::invalid_int(&child(&pp, "port"), port, &m));
                }
            }
        }
    }
}
