//! Persistent volumes and claims.

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, col, deleting, get, get_str, name, name_col, opt_str, quantity,
};
use super::{CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match resource {
        "persistentvolumes" => (pv_columns, pv_cells),
        "persistentvolumeclaims" => (pvc_columns, pvc_cells),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

/// `GetAccessModesAsString`.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, s)| *s)
    .collect::<Vec<_>>()
    .join(",")
}

fn storage_class(obj: &Value) -> String {
    let beta = &[
        "metadata",
        "annotations",
        "volume.beta.kubernetes.io/storage-class",
    ];
    match opt_str(obj, beta) {
        Some(c) => c.to_string(),
        None => get_str(obj, &["spec", "storageClassName"]).to_string(),
    }
}

fn pv_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Capacity", "string", 0, "capacity is the description of the persistent volume's resources and capacity."),
        col("Access Modes", "string", 0, "accessModes contains all ways the volume can be mounted."),
        col("Reclaim Policy", "string", 0, "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim."),
        col("Status", "string", 0, "phase indicates if a volume is available, bound to a claim, or released by a claim."),
        col("Claim", "string", 0, "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim."),
        col("StorageClass", "string", 0, "StorageClass of the pv"),
        col("VolumeAttributesClass", "string", 0, "VolumeAttributesClass of the pv"),
        col("Reason", "string", 0, "reason is a brief CamelCase string that describes any failure and is meant for machine parsing and tidy display in the CLI."),
        age_col(),
        col("VolumeMode", "string", 1, "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state."),
    ]
}

fn pv_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let claim = match get(obj, &["spec", "claimRef"]) {
        Some(r) if r.is_object() => {
            format!("{}/{}", get_str(r, &["namespace"]), get_str(r, &["name"]))
        }
        _ => String::new(),
    };
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        get_str(obj, &["status", "phase"])
    };
    vec![
        name(obj),
        json!(quantity(get(obj, &["spec", "capacity", "storage"]))),
        json!(access_modes(arr(obj, &["spec", "accessModes"]))),
        json!(get_str(obj, &["spec", "persistentVolumeReclaimPolicy"])),
        json!(phase),
        json!(claim),
        json!(storage_class(obj)),
        json!(opt_str(obj, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        json!(get_str(obj, &["status", "reason"])),
        age(obj, now),
        json!(opt_str(obj, &["spec", "volumeMode"]).unwrap_or("<unset>")),
    ]
}

fn pvc_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Status",
            "string",
            0,
            "phase represents the current phase of PersistentVolumeClaim.",
        ),
        col(
            "Volume",
            "string",
            0,
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        col(
            "Capacity",
            "string",
            0,
            "capacity represents the actual resources of the underlying volume.",
        ),
        col(
            "Access Modes",
            "string",
            0,
            "accessModes contains the actual access modes the volume backing the PVC has.",
        ),
        col("StorageClass", "string", 0, "StorageClass of the pvc"),
        col(
            "VolumeAttributesClass",
            "string",
            0,
            "VolumeAttributesClass of the pvc",
        ),
        age_col(),
        col(
            "VolumeMode",
            "string",
            1,
            "volumeMode defines what type of volume is required by the claim.",
        ),
    ]
}

fn pvc_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let phase = if deleting(obj) {
        "Terminating"
    } else {
        get_str(obj, &["status", "phase"])
    };
    let volume = get_str(obj, &["spec", "volumeName"]);
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(get(obj, &["status", "capacity", "storage"])),
            access_modes(arr(obj, &["status", "accessModes"])),
        )
    };
    vec![
        name(obj),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class(obj)),
        json!(opt_str(obj, &["spec", "volumeAttributesClassName"]).unwrap_or("<unset>")),
        age(obj, now),
        json!(opt_str(obj, &["spec", "volumeMode"]).unwrap_or("<unset>")),
    ]
}
