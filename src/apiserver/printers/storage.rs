//! `storage.k8s.io`: storage classes, CSI drivers and nodes, volume
//! attachments, storage capacities and volume attributes classes.

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, col, get, get_bool, get_str, name, name_col, opt_str, quantity,
};
use super::{CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match resource {
        "storageclasses" => (class_columns, class_cells),
        "csidrivers" => (driver_columns, driver_cells),
        "csinodes" => (csinode_columns, csinode_cells),
        "volumeattachments" => (attachment_columns, attachment_cells),
        "csistoragecapacities" => (capacity_columns, capacity_cells),
        "volumeattributesclasses" => (vac_columns, vac_cells),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

fn annotation_true(obj: &Value, key: &str) -> bool {
    opt_str(obj, &["metadata", "annotations", key]) == Some("true")
}

fn class_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Provisioner", "string", 0, "provisioner indicates the type of the provisioner."),
        col("ReclaimPolicy", "string", 0, "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes of this storage class. Defaults to Delete."),
        col("VolumeBindingMode", "string", 0, "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound.  When unset, VolumeBindingImmediate is used. This field is only honored by servers that enable the VolumeScheduling feature."),
        col("AllowVolumeExpansion", "string", 0, "allowVolumeExpansion shows whether the storage class allow volume expand."),
        age_col(),
    ]
}

fn class_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let mut n = get_str(obj, &["metadata", "name"]).to_string();
    if annotation_true(obj, "storageclass.kubernetes.io/is-default-class")
        || annotation_true(obj, "storageclass.beta.kubernetes.io/is-default-class")
    {
        n.push_str(" (default)");
    }
    vec![
        json!(n),
        json!(get_str(obj, &["provisioner"])),
        json!(opt_str(obj, &["reclaimPolicy"]).unwrap_or("Delete")),
        json!(opt_str(obj, &["volumeBindingMode"]).unwrap_or("Immediate")),
        json!(get_bool(obj, &["allowVolumeExpansion"]).unwrap_or(false)),
        age(obj, now),
    ]
}

fn driver_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("AttachRequired", "boolean", 0, "attachRequired indicates this CSI volume driver requires an attach operation (because it implements the CSI ControllerPublishVolume() method), and that the Kubernetes attach detach controller should call the attach volume interface which checks the volumeattachment status and waits until the volume is attached before proceeding to mounting."),
        col("PodInfoOnMount", "boolean", 0, "podInfoOnMount indicates this CSI volume driver requires additional pod information (like podName, podUID, etc.) during mount operations, if set to true."),
        col("StorageCapacity", "boolean", 0, "storageCapacity indicates that the CSI volume driver wants pod scheduling to consider the storage capacity that the driver deployment will report by creating CSIStorageCapacity objects with capacity information, if set to true."),
        col("TokenRequests", "string", 0, "tokenRequests indicates the CSI driver needs pods' service account tokens it is mounting volume for to do necessary authentication."),
        col("RequiresRepublish", "boolean", 0, "requiresRepublish indicates the CSI driver wants `NodePublishVolume` being periodically called to reflect any possible change in the mounted volume."),
        col("Modes", "string", 0, "volumeLifecycleModes defines what kind of volumes this CSI volume driver supports."),
        age_col(),
    ]
}

fn driver_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec_bool = |k: &str, default: bool| json!(get_bool(obj, &["spec", k]).unwrap_or(default));
    let modes: Vec<&str> = arr(obj, &["spec", "volumeLifecycleModes"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let tokens = match get(obj, &["spec", "tokenRequests"]) {
        Some(Value::Array(t)) => t
            .iter()
            .map(|t| get_str(t, &["audience"]))
            .collect::<Vec<_>>()
            .join(","),
        _ => "<unset>".to_string(),
    };
    let modes = if modes.is_empty() {
        "<none>".to_string()
    } else {
        modes.join(",")
    };
    vec![
        name(obj),
        spec_bool("attachRequired", true),
        spec_bool("podInfoOnMount", false),
        spec_bool("storageCapacity", false),
        json!(tokens),
        spec_bool("requiresRepublish", false),
        json!(modes),
        age(obj, now),
    ]
}

fn csinode_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Drivers",
            "integer",
            0,
            "Drivers indicates the number of CSI drivers registered on the node",
        ),
        age_col(),
    ]
}

fn csinode_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(arr(obj, &["spec", "drivers"]).len()),
        age(obj, now),
    ]
}

fn attachment_columns() -> Vec<Column> {
    vec![
        name_col(),
        Column {
            format: "name".to_string(),
            ..col("Attacher", "string", 0, "attacher indicates the name of the volume driver that MUST handle this request. This is the name returned by GetPluginName().")
        },
        col("PV", "string", 0, "persistentVolumeName represents the name of the persistent volume to attach."),
        col("Node", "string", 0, "nodeName represents the node that the volume should be attached to."),
        col("Attached", "boolean", 0, "attached indicates the volume is successfully attached. This field must only be set by the entity completing the attach operation, i.e. the external-attacher."),
        age_col(),
    ]
}

fn attachment_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(get_str(obj, &["spec", "attacher"])),
        json!(get_str(obj, &["spec", "source", "persistentVolumeName"])),
        json!(get_str(obj, &["spec", "nodeName"])),
        json!(get_bool(obj, &["status", "attached"]).unwrap_or(false)),
        age(obj, now),
    ]
}

fn capacity_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("StorageClassName", "string", 0, "storageClassName represents the name of the StorageClass that the reported capacity applies to."),
        col("Capacity", "string", 0, "capacity is the value reported by the CSI driver in its GetCapacityResponse for a GetCapacityRequest with topology and parameters that match the previous fields."),
    ]
}

fn capacity_cells(obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    let capacity = match get(obj, &["capacity"]) {
        None | Some(Value::Null) => "<unset>".to_string(),
        some => quantity(some),
    };
    vec![
        name(obj),
        json!(get_str(obj, &["storageClassName"])),
        json!(capacity),
    ]
}

fn vac_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "DriverName",
            "string",
            0,
            "Name of the CSI driver This field is immutable.",
        ),
        age_col(),
    ]
}

fn vac_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let mut n = get_str(obj, &["metadata", "name"]).to_string();
    if annotation_true(
        obj,
        "volumeattributesclass.alpha.kubernetes.io/is-default-class",
    ) {
        n.push_str(" (default)");
    }
    vec![
        json!(n),
        json!(get_str(obj, &["driverName"])),
        age(obj, now),
    ]
}
