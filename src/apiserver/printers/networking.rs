//! `discovery.k8s.io` and `networking.k8s.io`: endpoint slices, ingresses,
//! ingress classes, network policies, service CIDRs and IP addresses.

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, col, format_label_selector, get, get_i64, get_str, list_with_more, name,
    name_col, opt_str,
};
use super::narrow::Reads;
use super::{core, CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match (group, resource) {
        ("discovery.k8s.io", "endpointslices") => (slice_columns, slice_cells),
        ("networking.k8s.io", "ingresses") => (ingress_columns, ingress_cells),
        ("networking.k8s.io", "ingressclasses") => (ingressclass_columns, ingressclass_cells),
        ("networking.k8s.io", "networkpolicies") => (netpol_columns, netpol_cells),
        ("networking.k8s.io", "servicecidrs") => (cidr_columns, cidr_cells),
        ("networking.k8s.io", "ipaddresses") => (ipaddress_columns, ipaddress_cells),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

// ---- discovery ----

/// What [`slice_cells`] reads of an endpoint slice.
pub(super) const SLICE_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "addressType",
    "ports.port",
    "ports.name",
    "endpoints.addresses",
];

fn slice_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "AddressType",
            "string",
            0,
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        col(
            "Ports",
            "string",
            0,
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        col(
            "Endpoints",
            "string",
            0,
            "endpoints is a list of unique endpoints in this slice.",
        ),
        age_col(),
    ]
}

fn slice_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let ports: Vec<String> = arr(obj, &["ports"])
        .iter()
        .map(|p| match (get_i64(p, &["port"]), opt_str(p, &["name"])) {
            (Some(n), _) => n.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "*".to_string(),
        })
        .collect();
    let addresses: Vec<String> = arr(obj, &["endpoints"])
        .iter()
        .flat_map(|e| arr(e, &["addresses"]).iter())
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect();
    vec![
        name(obj),
        json!(get_str(obj, &["addressType"])),
        json!(list_with_more(&ports, ports.len(), 3)),
        json!(list_with_more(&addresses, addresses.len(), 3)),
        age(obj, now),
    ]
}

// ---- networking ----

fn ingress_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Class", "string", 0, "The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", "string", 0, "Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", 0, "Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", 0, "Ports of TLS configurations that open"),
        age_col(),
    ]
}

fn ingress_hosts(obj: &Value) -> String {
    const MAX: usize = 3;
    let rules = arr(obj, &["spec", "rules"]);
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = get_str(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", rules.len() - MAX)
    } else {
        ret
    }
}

fn ingress_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let ports = if arr(obj, &["spec", "tls"]).is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        name(obj),
        json!(opt_str(obj, &["spec", "ingressClassName"]).unwrap_or("<none>")),
        json!(ingress_hosts(obj)),
        json!(core::lb_ingress(obj)),
        json!(ports),
        age(obj, now),
    ]
}

fn ingressclass_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Controller",
            "string",
            0,
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            0,
            "A reference to a resource with additional parameters",
        ),
        age_col(),
    ]
}

fn ingressclass_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let parameters = match get(obj, &["spec", "parameters"]) {
        Some(p) if p.is_object() => {
            let mut s = get_str(p, &["kind"]).to_string();
            if let Some(g) = opt_str(p, &["apiGroup"]) {
                s = format!("{s}.{g}");
            }
            format!("{s}/{}", get_str(p, &["name"]))
        }
        _ => "<none>".to_string(),
    };
    vec![
        name(obj),
        json!(get_str(obj, &["spec", "controller"])),
        json!(parameters),
        age(obj, now),
    ]
}

fn netpol_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Pod-Selector",
            "string",
            0,
            "Selects the pods to which this NetworkPolicy object applies.",
        ),
        age_col(),
    ]
}

fn netpol_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    // The pod selector is a value, never nil: a missing one selects everything.
    let empty = json!({});
    let selector = match get(obj, &["spec", "podSelector"]) {
        Some(s) if s.is_object() => s,
        _ => &empty,
    };
    vec![
        name(obj),
        json!(format_label_selector(Some(selector))),
        age(obj, now),
    ]
}

fn cidr_columns() -> Vec<Column> {
    vec![name_col(), col("CIDRs", "string", 0, "CIDRs defines the IP blocks in CIDR notation from which to assign service cluster IPs."), age_col()]
}

fn cidr_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let cidrs: Vec<&str> = arr(obj, &["spec", "cidrs"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    vec![name(obj), json!(cidrs.join(",")), age(obj, now)]
}

fn ipaddress_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "ParentRef",
            "string",
            0,
            "ParentRef references the resource that an IPAddress is attached to.",
        ),
    ]
}

fn ipaddress_cells(obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    let parent = match get(obj, &["spec", "parentRef"]) {
        Some(p) if p.is_object() => {
            let (g, r) = (get_str(p, &["group"]), get_str(p, &["resource"]));
            let mut s = if g.is_empty() {
                r.to_string()
            } else {
                format!("{r}.{g}")
            }
            .to_lowercase();
            let ns = get_str(p, &["namespace"]);
            if !ns.is_empty() {
                s = format!("{s}/{ns}");
            }
            format!("{s}/{}", get_str(p, &["name"]))
        }
        _ => "<none>".to_string(),
    };
    vec![name(obj), json!(parent)]
}
