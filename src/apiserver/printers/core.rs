//! Core (`""` group) resources other than pods.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, col, format_labels, get, get_i64, get_str, int, join_host_port,
    layout_containers, len_at, name, name_col, opt_str, or, quantity, CONTAINERS_DESC, IMAGES_DESC,
};
use super::narrow::Reads;
use super::{events, CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match resource {
        "services" => (service_columns, service_cells),
        "endpoints" => (endpoints_columns, endpoints_cells),
        "nodes" => (node_columns, node_cells),
        "namespaces" => (namespace_columns, namespace_cells),
        "configmaps" => (configmap_columns, configmap_cells),
        "secrets" => (secret_columns, secret_cells),
        "serviceaccounts" => (serviceaccount_columns, serviceaccount_cells),
        "events" => (events::event_columns, events::event_cells),
        "replicationcontrollers" => (rc_columns, rc_cells),
        "resourcequotas" => (quota_columns, quota_cells),
        "podtemplates" => (podtemplate_columns, podtemplate_cells),
        "componentstatuses" => (componentstatus_columns, componentstatus_cells),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

// ---- services ----

/// What [`service_cells`] reads of a service.
pub(super) const SERVICE_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "spec.type",
    "spec.clusterIP",
    "spec.clusterIPs",
    "spec.externalIPs",
    "spec.externalName",
    "spec.ports.port",
    "spec.ports.protocol",
    "spec.ports.nodePort",
    "spec.selector",
    "status.loadBalancer.ingress.ip",
    "status.loadBalancer.ingress.hostname",
];

fn service_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Type", "string", 0, "type determines how the Service is exposed. Defaults to ClusterIP. Valid options are ExternalName, ClusterIP, NodePort, and LoadBalancer."),
        col("Cluster-IP", "string", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
        col("External-IP", "string", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
        col("Port(s)", "string", 0, "The list of ports that are exposed by this service."),
        age_col(),
        col("Selector", "string", 1, "Route service traffic to pods with label keys and values matching this selector."),
    ]
}

/// `loadBalancerStatusStringer` with `wide` set (the server always is):
/// the sorted, de-duplicated ingress IPs or hostnames.
pub(super) fn lb_ingress(obj: &Value) -> String {
    let set: BTreeSet<&str> = arr(obj, &["status", "loadBalancer", "ingress"])
        .iter()
        .filter_map(|i| {
            let ip = get_str(i, &["ip"]);
            let host = get_str(i, &["hostname"]);
            if !ip.is_empty() {
                Some(ip)
            } else if !host.is_empty() {
                Some(host)
            } else {
                None
            }
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn service_external_ip(obj: &Value) -> String {
    let external: Vec<&str> = arr(obj, &["spec", "externalIPs"])
        .iter()
        .map(|v| v.as_str().unwrap_or_default())
        .collect();
    match get_str(obj, &["spec", "type"]) {
        "ClusterIP" | "NodePort" => or(&external.join(","), "<none>"),
        "LoadBalancer" => {
            let lb = lb_ingress(obj);
            if !external.is_empty() {
                let mut all: Vec<&str> = Vec::new();
                if !lb.is_empty() {
                    all.extend(lb.split(','));
                }
                all.extend(external);
                return all.join(",");
            }
            or(&lb, "<pending>")
        }
        "ExternalName" => get_str(obj, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(obj: &Value) -> String {
    arr(obj, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int(p, &["port"]);
            let proto = get_str(p, &["protocol"]);
            let node_port = int(p, &["nodePort"]);
            if node_port > 0 {
                format!("{port}:{node_port}/{proto}")
            } else {
                format!("{port}/{proto}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn service_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let cluster_ip = arr(obj, &["spec", "clusterIPs"])
        .first()
        .and_then(Value::as_str)
        .or_else(|| opt_str(obj, &["spec", "clusterIP"]).filter(|s| !s.is_empty()))
        .unwrap_or("<none>");
    vec![
        name(obj),
        json!(get_str(obj, &["spec", "type"])),
        json!(cluster_ip),
        json!(service_external_ip(obj)),
        json!(or(&service_ports(obj), "<none>")),
        age(obj, now),
        json!(format_labels(get(obj, &["spec", "selector"]))),
    ]
}

// ---- endpoints ----

fn endpoints_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Endpoints",
            "string",
            0,
            "The set of all endpoints is the union of all subsets.",
        ),
        age_col(),
    ]
}

fn format_endpoints(obj: &Value) -> String {
    let subsets = arr(obj, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count = 0;
    for ss in subsets {
        let addresses = arr(ss, &["addresses"]);
        let ports = arr(ss, &["ports"]);
        if ports.is_empty() {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(get_str(a, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for a in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(get_str(a, &["ip"]), int(port, &["port"])));
            }
        }
    }
    let ret = list.join(",");
    if more {
        format!("{ret} + {} more...", count.saturating_sub(MAX))
    } else {
        ret
    }
}

fn endpoints_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![name(obj), json!(format_endpoints(obj)), age(obj, now)]
}

// ---- nodes ----

/// What [`node_cells`] reads of a node (not its long lists of images and volumes).
pub(super) const NODE_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "metadata.labels",
    "spec.unschedulable",
    "status.conditions.type",
    "status.conditions.status",
    "status.addresses.type",
    "status.addresses.address",
    "status.nodeInfo.kubeletVersion",
    "status.nodeInfo.osImage",
    "status.nodeInfo.kernelVersion",
    "status.nodeInfo.containerRuntimeVersion",
];

fn node_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", 0, "The status of the node"),
        col("Roles", "string", 0, "The roles of the node"),
        age_col(),
        col("Version", "string", 0, "Kubelet Version reported by the node."),
        col("Internal-IP", "string", 1, "List of addresses reachable to the node."),
        col("External-IP", "string", 1, "List of addresses reachable to the node."),
        col("OS-Image", "string", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
        col("Kernel-Version", "string", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
        col("Container-Runtime", "string", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
    ]
}

fn node_roles(obj: &Value) -> String {
    let mut roles = BTreeSet::new();
    if let Some(Value::Object(labels)) = get(obj, &["metadata", "labels"]) {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.insert(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.insert(v.to_string());
                }
            }
        }
    }
    or(&roles.into_iter().collect::<Vec<_>>().join(","), "<none>")
}

fn node_address(obj: &Value, type_: &str) -> String {
    arr(obj, &["status", "addresses"])
        .iter()
        .find(|a| get_str(a, &["type"]) == type_)
        .map(|a| get_str(a, &["address"]).to_string())
        .unwrap_or_else(|| "<none>".to_string())
}

fn node_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    // The last condition of each type wins, like upstream's condition map.
    let ready = arr(obj, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| get_str(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if get_str(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if get(obj, &["spec", "unschedulable"]).and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let info = |k: &str| or(get_str(obj, &["status", "nodeInfo", k]), "<unknown>");
    vec![
        name(obj),
        json!(status.join(",")),
        json!(node_roles(obj)),
        age(obj, now),
        json!(get_str(obj, &["status", "nodeInfo", "kubeletVersion"])),
        json!(node_address(obj, "InternalIP")),
        json!(node_address(obj, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
}

// ---- simple kinds ----

fn namespace_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", 0, "The status of the namespace"),
        age_col(),
    ]
}

fn namespace_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(get_str(obj, &["status", "phase"])),
        age(obj, now),
    ]
}

/// What [`configmap_cells`] reads of a config map.
pub(super) const CONFIGMAP_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "data",
    "binaryData",
];

fn configmap_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Data", "string", 0, "Data contains the configuration data."),
        age_col(),
    ]
}

fn configmap_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let n = len_at(obj, &["data"]) + len_at(obj, &["binaryData"]);
    vec![name(obj), json!(n), age(obj, now)]
}

/// What [`secret_cells`] reads of a secret.
pub(super) const SECRET_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "type",
    "data",
];

fn secret_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Type",
            "string",
            0,
            "Used to facilitate programmatic handling of secret data.",
        ),
        col("Data", "string", 0, "Data contains the secret data."),
        age_col(),
    ]
}

fn secret_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(get_str(obj, &["type"])),
        json!(len_at(obj, &["data"])),
        age(obj, now),
    ]
}

fn serviceaccount_columns() -> Vec<Column> {
    vec![name_col(), col("Secrets", "string", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."), age_col()]
}

fn serviceaccount_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![name(obj), json!(len_at(obj, &["secrets"])), age(obj, now)]
}

fn componentstatus_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Status", "string", 0, "Status of the component conditions"),
        col(
            "Message",
            "string",
            0,
            "Message of the component conditions",
        ),
        col("Error", "string", 0, "Error of the component conditions"),
    ]
}

fn componentstatus_cells(obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    let healthy = arr(obj, &["conditions"])
        .iter()
        .find(|c| get_str(c, &["type"]) == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) => (
            if get_str(c, &["status"]) == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            get_str(c, &["message"]),
            get_str(c, &["error"]),
        ),
        None => ("Unknown", "", ""),
    };
    vec![name(obj), json!(status), json!(message), json!(error)]
}

fn podtemplate_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Containers", "string", 0, CONTAINERS_DESC),
        col("Images", "string", 0, IMAGES_DESC),
        col(
            "Pod Labels",
            "string",
            0,
            "The labels for the pod template.",
        ),
    ]
}

fn podtemplate_cells(obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(arr(obj, &["template", "spec", "containers"]));
    let labels = format_labels(get(obj, &["template", "metadata", "labels"]));
    vec![name(obj), names, images, json!(labels)]
}

fn rc_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Desired",
            "integer",
            0,
            "Replicas is the number of desired replicas.",
        ),
        col(
            "Current",
            "integer",
            0,
            "Replicas is the most recently observed number of replicas.",
        ),
        col(
            "Ready",
            "integer",
            0,
            "The number of ready replicas for this replication controller.",
        ),
        age_col(),
        col("Containers", "string", 1, CONTAINERS_DESC),
        col("Images", "string", 1, IMAGES_DESC),
        col(
            "Selector",
            "string",
            1,
            "Selector is a label query over pods that should match the Replicas count.",
        ),
    ]
}

fn rc_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = layout_containers(arr(obj, &["spec", "template", "spec", "containers"]));
    vec![
        name(obj),
        json!(get_i64(obj, &["spec", "replicas"]).unwrap_or(1)),
        json!(int(obj, &["status", "replicas"])),
        json!(int(obj, &["status", "readyReplicas"])),
        age(obj, now),
        names,
        images,
        json!(format_labels(get(obj, &["spec", "selector"]))),
    ]
}

fn quota_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Request", "string", 0, "Request represents a minimum amount of cpu/memory that a container may consume."),
        col("Limit", "string", 0, "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
        age_col(),
    ]
}

fn quota_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let mut requests = Vec::new();
    let mut limits = Vec::new();
    if let Some(Value::Object(hard)) = get(obj, &["status", "hard"]) {
        let sorted: BTreeMap<&String, &Value> = hard.iter().collect();
        for (resource, hard_q) in sorted {
            let used = quantity(get(obj, &["status", "used", resource.as_str()]));
            let entry = format!("{resource}: {used}/{}", quantity(Some(hard_q)));
            let mut pieces = resource.split('.');
            if pieces.next() == Some("limits") && pieces.next().is_some() {
                limits.push(entry);
            } else {
                requests.push(entry);
            }
        }
    }
    vec![
        name(obj),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
        age(obj, now),
    ]
}
