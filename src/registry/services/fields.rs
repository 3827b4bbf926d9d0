//! What a Service's spec asks of the allocators, as upstream's service REST storage reads
//! it: which types need a ClusterIP, node ports or a health check node port, the IP family
//! fields, the fields a type change leaves behind, and the allocated values a client may
//! omit on update. Everything here works on the JSON spec; taking and releasing values is
//! `Ops`'s job, and this file never touches the store.

use super::range::RangeError;
use super::Ops;
use crate::registry::rules::{json as j, render, FieldError};
use serde_json::{json, Map, Value};
use std::net::IpAddr;

/// Why allocation refused a Service.
#[derive(Debug)]
pub enum AllocError {
    /// 422 with these causes.
    Invalid(Vec<FieldError>),
    /// 500, as upstream answers when a range is exhausted.
    Internal(String),
}

pub fn ty(spec: &Value) -> &str {
    j::s(spec, "type")
}

fn needs_cluster_ip(spec: &Value) -> bool {
    ty(spec) != "ExternalName"
}

fn needs_node_ports(spec: &Value) -> bool {
    matches!(ty(spec), "NodePort" | "LoadBalancer")
}

fn allocates_node_ports(spec: &Value) -> bool {
    ty(spec) == "NodePort"
        || (ty(spec) == "LoadBalancer" && spec["allocateLoadBalancerNodePorts"] != json!(false))
}

fn needs_hc_port(spec: &Value) -> bool {
    ty(spec) == "LoadBalancer" && j::s(spec, "externalTrafficPolicy") == "Local"
}

pub fn cluster_ips(spec: &Value) -> Vec<String> {
    let list: Vec<String> = spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    if list.is_empty() && !j::s(spec, "clusterIP").is_empty() {
        return vec![j::s(spec, "clusterIP").to_string()];
    }
    list
}

fn node_port(p: &Value) -> i64 {
    p["nodePort"].as_i64().unwrap_or(0)
}

fn ports(spec: &Value) -> Vec<Value> {
    spec["ports"].as_array().cloned().unwrap_or_default()
}

fn node_ports(spec: &Value) -> Vec<i64> {
    ports(spec)
        .iter()
        .map(node_port)
        .filter(|n| *n != 0)
        .collect()
}

fn hc_port(spec: &Value) -> i64 {
    spec["healthCheckNodePort"].as_i64().unwrap_or(0)
}

fn remove(spec: &mut Value, keys: &[&str]) {
    if let Some(m) = spec.as_object_mut() {
        for k in keys {
            m.remove(*k);
        }
    }
}

/// The IPs and ports a stored Service holds.
pub fn held(spec: &Value) -> (Vec<IpAddr>, Vec<i64>) {
    let ips = cluster_ips(spec)
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let mut ports = node_ports(spec);
    if hc_port(spec) != 0 {
        ports.push(hc_port(spec));
    }
    (ips, ports)
}

/// Upstream's `dropTypeDependentFields`: on a type change, clear what the old type had
/// (possibly allocated) and the user did not touch, so validation of the new type passes.
/// Runs before validation.
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let (Some(n), Some(o)) = (new.get_mut("spec"), old.get("spec")) else {
        return;
    };
    let same = |n: &Value, k: &str| n.get(k) == o.get(k);
    if needs_cluster_ip(o) && !needs_cluster_ip(n) {
        if cluster_ips(n) == cluster_ips(o) {
            remove(n, &["clusterIP", "clusterIPs"]);
        }
        if same(n, "ipFamilies") {
            remove(n, &["ipFamilies"]);
        }
        if same(n, "ipFamilyPolicy") {
            remove(n, &["ipFamilyPolicy"]);
        }
    }
    if needs_node_ports(o) && !needs_node_ports(n) && node_ports(n) == node_ports(o) {
        if let Some(ps) = n["ports"].as_array_mut() {
            for p in ps.iter_mut().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    if needs_hc_port(o) && !needs_hc_port(n) && hc_port(n) == hc_port(o) {
        remove(n, &["healthCheckNodePort"]);
    }
    if ty(o) == "LoadBalancer" && ty(n) != "LoadBalancer" {
        if same(n, "allocateLoadBalancerNodePorts") {
            remove(n, &["allocateLoadBalancerNodePorts"]);
        }
        if same(n, "loadBalancerClass") {
            remove(n, &["loadBalancerClass"]);
        }
    }
    let external = |s: &Value| {
        matches!(ty(s), "NodePort" | "LoadBalancer")
            || (ty(s) == "ClusterIP" && s["externalIPs"].as_array().is_some_and(|a| !a.is_empty()))
    };
    if external(o) && !external(n) && same(n, "externalTrafficPolicy") {
        remove(n, &["externalTrafficPolicy"]);
    }
}

/// Upstream's `patchAllocatedValues`: values the client left out of an update but the
/// stored object has (ClusterIPs, node ports by port name, the health check port).
fn patch_allocated_values(n: &mut Value, o: &Value) {
    if needs_cluster_ip(o) && needs_cluster_ip(n) {
        if j::s(n, "clusterIP").is_empty() && !j::s(o, "clusterIP").is_empty() {
            n["clusterIP"] = o["clusterIP"].clone();
        }
        if cluster_ips(n).is_empty() || n["clusterIPs"].as_array().is_none_or(Vec::is_empty) {
            if let Some(ips) = o.get("clusterIPs") {
                n["clusterIPs"] = ips.clone();
            }
        }
        if n["ipFamilies"].as_array().is_none_or(Vec::is_empty) && cluster_ips(n) == cluster_ips(o)
        {
            if let Some(f) = o.get("ipFamilies") {
                n["ipFamilies"] = f.clone();
            }
        }
    }
    if needs_node_ports(o) && needs_node_ports(n) {
        let used: Vec<i64> = node_ports(n);
        let by_name: Vec<(String, i64)> = ports(o)
            .iter()
            .map(|p| (j::s(p, "name").to_string(), node_port(p)))
            .collect();
        if let Some(ps) = n["ports"].as_array_mut() {
            for p in ps.iter_mut() {
                if node_port(p) != 0 {
                    continue;
                }
                let name = j::s(p, "name").to_string();
                if let Some((_, np)) = by_name.iter().find(|(n, _)| *n == name) {
                    if *np != 0 && !used.contains(np) {
                        p["nodePort"] = json!(np);
                    }
                }
            }
        }
    }
    if needs_hc_port(o) && needs_hc_port(n) && hc_port(n) == 0 && hc_port(o) != 0 {
        n["healthCheckNodePort"] = json!(hc_port(o));
    }
}

fn family_of(ip: &str) -> Option<&'static str> {
    match ip.parse::<IpAddr>().ok()? {
        IpAddr::V4(_) => Some("IPv4"),
        IpAddr::V6(_) => Some("IPv6"),
    }
}

/// Upstream's `initIPFamilyFields` for a single-stack cluster of family `fam`.
fn init_ip_families(spec: &mut Value, fam: &'static str) -> Result<(), AllocError> {
    if !needs_cluster_ip(spec) {
        remove(
            spec,
            &["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"],
        );
        return Ok(());
    }
    let ips = cluster_ips(spec);
    let headless = ips.first().is_some_and(|i| i == "None");
    let selectorless = spec["selector"].as_object().is_none_or(Map::is_empty);
    let mut fams: Vec<String> = spec["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let mut errs = vec![];
    for (i, ip) in ips.iter().enumerate().filter(|(_, ip)| *ip != "None") {
        let Some(f) = family_of(ip) else { continue };
        match fams.get(i) {
            Some(want) if want != f => errs.push(j::invalid(
                &j::index("spec.clusterIPs", i),
                go_strings(&ips),
                &format!("expected an {want} value as indicated by `ipFamilies[{i}]`"),
            )),
            Some(_) => {}
            None => fams.push(f.to_string()),
        }
    }
    if spec["ipFamilyPolicy"].is_null() {
        let p = if headless && selectorless {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        spec["ipFamilyPolicy"] = json!(p);
    }
    let policy = j::s(spec, "ipFamilyPolicy").to_string();
    if headless && selectorless {
        // Headless Services without a selector may carry families the cluster lacks.
        if fams.is_empty() {
            fams.push(fam.to_string());
        }
        if fams.len() < 2 && policy != "SingleStack" {
            fams.push(if fams[0] == "IPv4" { "IPv6" } else { "IPv4" }.to_string());
        }
    } else {
        if policy == "RequireDualStack" {
            errs.push(j::invalid(
                "spec.ipFamilyPolicy",
                render::go_quote(&policy),
                "this cluster is not configured for dual-stack services",
            ));
        }
        for (i, f) in fams.iter().enumerate() {
            if f != fam {
                errs.push(j::invalid(
                    &j::index("spec.ipFamilies", i),
                    render::go_quote(f),
                    "not configured on this cluster",
                ));
            }
        }
        if fams.is_empty() {
            fams.push(fam.to_string());
        }
    }
    if !errs.is_empty() {
        return Err(AllocError::Invalid(errs));
    }
    spec["ipFamilies"] = json!(fams);
    Ok(())
}

/// Go's `%#v` of a `[]string`.
pub fn go_strings(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| render::go_quote(s)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

fn alloc_cluster_ips(spec: &mut Value, ops: &mut Ops) -> Result<(), AllocError> {
    let ips = cluster_ips(spec);
    if ips.first().is_some_and(|i| i == "None") {
        spec["clusterIP"] = json!("None");
        spec["clusterIPs"] = json!(["None"]);
        return Ok(());
    }
    let ip = match ips.first() {
        Some(want) => {
            let addr: IpAddr = want.parse().map_err(|_| {
                AllocError::Invalid(vec![j::invalid(
                    "spec.clusterIPs",
                    go_strings(&ips),
                    "must be a valid IP address",
                )])
            })?;
            ops.take_ip(addr).map_err(|why| {
                AllocError::Invalid(vec![j::invalid(
                    "spec.clusterIPs",
                    go_strings(&ips),
                    &format!("failed to allocate IP {want}: {why}"),
                )])
            })?;
            addr
        }
        None => ops
            .take_next_ip()
            .map_err(|e| AllocError::Internal(format!("failed to allocate a serviceIP: {e}")))?,
    };
    spec["clusterIP"] = json!(ip.to_string());
    spec["clusterIPs"] = json!([ip.to_string()]);
    Ok(())
}

fn port_error(i: usize, np: i64, why: String) -> AllocError {
    AllocError::Invalid(vec![j::invalid_int(
        &j::child(&j::index("spec.ports", i), "nodePort"),
        np,
        &why,
    )])
}

fn next_port(ops: &mut Ops, what: &str) -> Result<i64, AllocError> {
    ops.take_next_port()
        .map_err(|e: RangeError| AllocError::Internal(format!("failed to allocate {what}: {e}")))
}

/// Node ports of a new Service (upstream's `initNodePorts`): ports with the same port
/// number share one node port; explicit ones are honoured.
fn init_node_ports(spec: &mut Value, ops: &mut Ops) -> Result<(), AllocError> {
    let allocate = allocates_node_ports(spec);
    let mut ps = ports(spec);
    let mut by_port: Vec<(i64, i64)> = vec![];
    for i in 0..ps.len() {
        let np = node_port(&ps[i]);
        if np == 0 && !allocate {
            continue;
        }
        let port = ps[i]["port"].as_i64().unwrap_or(0);
        match by_port.iter().find(|(p, _)| *p == port).map(|(_, n)| *n) {
            None => {
                let requested = ps[i..]
                    .iter()
                    .find(|p| p["port"].as_i64() == Some(port) && node_port(p) != 0)
                    .map(node_port);
                let np = match requested {
                    Some(np) => {
                        ops.take_port(np).map_err(|why| port_error(i, np, why))?;
                        np
                    }
                    None => next_port(ops, "a nodePort")?,
                };
                ps[i]["nodePort"] = json!(np);
                by_port.push((port, np));
            }
            Some(shared) if np == 0 => ps[i]["nodePort"] = json!(shared),
            Some(shared) if np != shared => {
                ops.take_port(np).map_err(|why| port_error(i, np, why))?;
            }
            Some(_) => {}
        }
    }
    if !ps.is_empty() {
        spec["ports"] = Value::Array(ps);
    }
    Ok(())
}

/// Node ports on update (upstream's `updateNodePorts`): new explicit values are taken,
/// values the old object held are kept, missing ones allocated, dropped ones released.
fn update_node_ports(spec: &mut Value, old: &Value, ops: &mut Ops) -> Result<(), AllocError> {
    let old_ports = node_ports(old);
    let allocate = allocates_node_ports(spec);
    let mut ps = ports(spec);
    let mut taken_now: Vec<i64> = vec![];
    for (i, p) in ps.iter_mut().enumerate() {
        let np = node_port(p);
        if np == 0 && !allocate {
            continue;
        }
        if np != 0 {
            if !old_ports.contains(&np) && !taken_now.contains(&np) {
                ops.take_port(np).map_err(|why| port_error(i, np, why))?;
                taken_now.push(np);
            }
        } else {
            let np = next_port(ops, "a nodePort")?;
            p["nodePort"] = json!(np);
        }
    }
    if !ps.is_empty() {
        spec["ports"] = Value::Array(ps);
    }
    let new_ports = node_ports(spec);
    for np in old_ports.into_iter().filter(|n| !new_ports.contains(n)) {
        ops.release_port_later(np);
    }
    Ok(())
}

fn alloc_hc_port(spec: &mut Value, ops: &mut Ops) -> Result<(), AllocError> {
    let hc = hc_port(spec);
    if hc != 0 {
        ops.take_port(hc).map_err(|why| {
            AllocError::Internal(format!(
                "failed to allocate requested HealthCheck NodePort {hc}: {why}"
            ))
        })?;
    } else {
        let np = next_port(ops, "a HealthCheck NodePort")?;
        spec["healthCheckNodePort"] = json!(np);
    }
    Ok(())
}

/// Everything a new Service gets: families, ClusterIPs, node ports, health check port.
pub fn allocate_create(spec: &mut Value, ops: &mut Ops) -> Result<(), AllocError> {
    init_ip_families(spec, ops.family())?;
    if needs_cluster_ip(spec) {
        alloc_cluster_ips(spec, ops)?;
    }
    if needs_node_ports(spec) {
        init_node_ports(spec, ops)?;
    }
    if needs_hc_port(spec) {
        alloc_hc_port(spec, ops)?;
    }
    Ok(())
}

/// An update: keep what stays, allocate what a type change adds, release what it drops
/// (after the write succeeds).
pub fn allocate_update(spec: &mut Value, old: &Value, ops: &mut Ops) -> Result<(), AllocError> {
    patch_allocated_values(spec, old);
    init_ip_families(spec, ops.family())?;
    let old_ips = cluster_ips(old);
    match (needs_cluster_ip(old), needs_cluster_ip(spec)) {
        (false, true) => alloc_cluster_ips(spec, ops)?,
        (true, false) => {
            for ip in old_ips.iter().filter_map(|i| i.parse::<IpAddr>().ok()) {
                ops.release_ip_later(ip);
            }
        }
        _ => {}
    }
    if needs_node_ports(old) && !needs_node_ports(spec) {
        for np in node_ports(old) {
            ops.release_port_later(np);
        }
    }
    if needs_node_ports(spec) {
        update_node_ports(spec, old, ops)?;
    }
    match (needs_hc_port(old), needs_hc_port(spec)) {
        (false, true) => alloc_hc_port(spec, ops)?,
        (true, false) => ops.release_port_later(hc_port(old)),
        (true, true) if hc_port(spec) != hc_port(old) => {
            let hc = hc_port(spec);
            ops.take_port(hc).map_err(|why| {
                AllocError::Internal(format!(
                    "failed to allocate requested HealthCheck NodePort {hc}: {why}"
                ))
            })?;
            ops.release_port_later(hc_port(old));
        }
        _ => {}
    }
    Ok(())
}
