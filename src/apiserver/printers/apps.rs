//! `apps` group: deployments, replica sets, stateful sets, daemon sets and
//! controller revisions.

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, col, controller_ref, format_label_selector, format_labels, get, get_i64,
    get_str, int, layout_containers, name, name_col, selector_string, CONTAINERS_DESC, IMAGES_DESC,
};
use super::narrow::Reads;
use super::{CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match resource {
        "deployments" => (deployment_columns, deployment_cells),
        "replicasets" => (replicaset_columns, replicaset_cells),
        "statefulsets" => (statefulset_columns, statefulset_cells),
        "daemonsets" => (daemonset_columns, daemonset_cells),
        "controllerrevisions" => (revision_columns, revision_cells),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

fn template_containers(obj: &Value) -> (Value, Value) {
    layout_containers(arr(obj, &["spec", "template", "spec", "containers"]))
}

/// `spec.replicas`, which API defaulting sets to 1.
fn desired(obj: &Value) -> i64 {
    get_i64(obj, &["spec", "replicas"]).unwrap_or(1)
}

/// What [`deployment_cells`] reads of a deployment.
pub(super) const DEPLOYMENT_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "spec.replicas",
    "spec.selector",
    "spec.template.spec.containers.name",
    "spec.template.spec.containers.image",
    "status.readyReplicas",
    "status.updatedReplicas",
    "status.availableReplicas",
];

fn deployment_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Ready", "string", 0, "Number of the pod with ready state"),
        col("Up-to-date", "string", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
        col("Available", "string", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
        age_col(),
        col("Containers", "string", 1, CONTAINERS_DESC),
        col("Images", "string", 1, IMAGES_DESC),
        col("Selector", "string", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
    ]
}

fn deployment_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    let selector = selector_string(get(obj, &["spec", "selector"]))
        .unwrap_or_else(|()| "<invalid>".to_string());
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            int(obj, &["status", "readyReplicas"]),
            desired(obj)
        )),
        json!(int(obj, &["status", "updatedReplicas"])),
        json!(int(obj, &["status", "availableReplicas"])),
        age(obj, now),
        names,
        images,
        json!(selector),
    ]
}

/// What [`replicaset_cells`] reads of a replica set.
pub(super) const REPLICASET_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "spec.replicas",
    "spec.selector",
    "spec.template.spec.containers.name",
    "spec.template.spec.containers.image",
    "status.replicas",
    "status.readyReplicas",
];

fn replicaset_columns() -> Vec<Column> {
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
            "The number of ready replicas for this replica set.",
        ),
        age_col(),
        col("Containers", "string", 1, CONTAINERS_DESC),
        col("Images", "string", 1, IMAGES_DESC),
        col(
            "Selector",
            "string",
            1,
            "Selector is a label query over pods that should match the replica count.",
        ),
    ]
}

fn replicaset_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    vec![
        name(obj),
        json!(desired(obj)),
        json!(int(obj, &["status", "replicas"])),
        json!(int(obj, &["status", "readyReplicas"])),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

fn statefulset_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Ready", "string", 0, "Number of the pod with ready state"),
        age_col(),
        col("Containers", "string", 1, CONTAINERS_DESC),
        col("Images", "string", 1, IMAGES_DESC),
    ]
}

fn statefulset_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    vec![
        name(obj),
        json!(format!(
            "{}/{}",
            int(obj, &["status", "readyReplicas"]),
            desired(obj)
        )),
        age(obj, now),
        names,
        images,
    ]
}

fn daemonset_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Desired", "integer", 0, "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod)."),
        col("Current", "integer", 0, "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
        col("Ready", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready."),
        col("Up-to-date", "integer", 0, "The total number of nodes that are running updated daemon pod"),
        col("Available", "integer", 0, "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)"),
        col("Node Selector", "string", 0, "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node."),
        age_col(),
        col("Containers", "string", 1, CONTAINERS_DESC),
        col("Images", "string", 1, IMAGES_DESC),
        col("Selector", "string", 1, "A label query over pods that are managed by the daemon set."),
    ]
}

fn daemonset_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let (names, images) = template_containers(obj);
    let status = |k: &str| json!(int(obj, &["status", k]));
    vec![
        name(obj),
        status("desiredNumberScheduled"),
        status("currentNumberScheduled"),
        status("numberReady"),
        status("updatedNumberScheduled"),
        status("numberAvailable"),
        json!(format_labels(get(
            obj,
            &["spec", "template", "spec", "nodeSelector"]
        ))),
        age(obj, now),
        names,
        images,
        json!(format_label_selector(get(obj, &["spec", "selector"]))),
    ]
}

fn revision_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Controller", "string", 0, "Controller of the object"),
        col(
            "Revision",
            "string",
            0,
            "Revision indicates the revision of the state represented by Data.",
        ),
        age_col(),
    ]
}

/// `formatResourceName` for an owner reference: `kind.group/name`,
/// lowercased kind and group.
fn controller_name(r: &Value) -> String {
    let api_version = get_str(r, &["apiVersion"]);
    let group = match api_version.split_once('/') {
        Some((g, _)) => g,
        None => "",
    };
    let kind = get_str(r, &["kind"]);
    let name = get_str(r, &["name"]);
    if kind.is_empty() && group.is_empty() {
        return name.to_string();
    }
    let gk = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    format!("{}/{name}", gk.to_lowercase())
}

fn revision_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let controller = controller_ref(obj)
        .map(controller_name)
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name(obj),
        json!(controller),
        json!(int(obj, &["revision"])),
        age(obj, now),
    ]
}
