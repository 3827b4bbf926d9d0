//! Named API groups other than `apps` and `batch`: autoscaling,
//! coordination, events, policy, rbac, scheduling, node and apiregistration.
//! Networking, storage and admission-related groups live in their own files.

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, col, get, get_i64, get_str, int, int_or_string, name, name_col, quantity,
};
use super::{admission, events, networking, storage, CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match (group, resource) {
        ("autoscaling", "horizontalpodautoscalers") => (hpa_columns, hpa_cells),
        ("coordination.k8s.io", "leases") => (lease_columns, lease_cells),
        ("coordination.k8s.io", "leasecandidates") => (candidate_columns, candidate_cells),
        ("events.k8s.io", "events") => (events::event_columns, events::events_v1_cells),
        ("policy", "poddisruptionbudgets") => (pdb_columns, pdb_cells),
        ("rbac.authorization.k8s.io", "rolebindings") => (binding_columns, binding_cells),
        ("rbac.authorization.k8s.io", "clusterrolebindings") => (binding_columns, binding_cells),
        ("scheduling.k8s.io", "priorityclasses") => (priority_columns, priority_cells),
        ("node.k8s.io", "runtimeclasses") => (runtime_columns, runtime_cells),
        ("apiregistration.k8s.io", "apiservices") => (apiservice_columns, apiservice_cells),
        ("storage.k8s.io", r) => return storage::printer(r),
        ("discovery.k8s.io" | "networking.k8s.io", r) => return networking::printer(group, r),
        (g, r) => return admission::printer(g, r),
    };
    Some(Printer { columns, cells })
}

// ---- autoscaling ----

fn hpa_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Reference", "string", 0, "reference to scaled resource; horizontal pod autoscaler will learn the current resource consumption and will set the desired number of pods by using its Scale subresource."),
        col("Targets", "string", 0, "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
        col("MinPods", "string", 0, "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
        col("MaxPods", "string", 0, "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
        col("Replicas", "string", 0, "currentReplicas is current number of replicas of pods managed by this autoscaler."),
        age_col(),
    ]
}

/// One metric of `formatHPAMetrics`. `status` is the current metric at the
/// same index, if any.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn hpa_metric(spec: &Value, status: Option<&Value>) -> String {
    let unknown = || "<unknown>".to_string();
    let q = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "<nil>".to_string(),
        some => quantity(some),
    };
    let source = |key: &str| {
        (
            get(spec, &[key]).unwrap_or(&Value::Null),
            status.and_then(|s| present(s.get(key))),
        )
    };
    match get_str(spec, &["type"]) {
        t @ ("External" | "Object") => {
            let key = if t == "External" {
                "external"
            } else {
                "object"
            };
            let (s, st) = source(key);
            if let Some(target) = present(get(s, &["target", "averageValue"])) {
                let current = st
                    .and_then(|c| present(get(c, &["current", "averageValue"])))
                    .map(|v| quantity(Some(v)))
                    .unwrap_or_else(unknown);
                format!("{current}/{} (avg)", quantity(Some(target)))
            } else {
                let current = st
                    .map(|c| q(get(c, &["current", "value"])))
                    .unwrap_or_else(unknown);
                format!("{current}/{}", q(get(s, &["target", "value"])))
            }
        }
        "Pods" => {
            let (s, st) = source("pods");
            let current = st
                .map(|c| q(get(c, &["current", "averageValue"])))
                .unwrap_or_else(unknown);
            format!("{current}/{}", q(get(s, &["target", "averageValue"])))
        }
        t @ ("Resource" | "ContainerResource") => {
            let key = if t == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let (s, st) = source(key);
            let res = get_str(s, &["name"]);
            if let Some(target) = present(get(s, &["target", "averageValue"])) {
                let current = st
                    .map(|c| q(get(c, &["current", "averageValue"])))
                    .unwrap_or_else(unknown);
                format!("{res}: {current}/{}", quantity(Some(target)))
            } else {
                let current = st
                    .and_then(|c| get_i64(c, &["current", "averageUtilization"]))
                    .map(|u| format!("{u}%"))
                    .unwrap_or_else(unknown);
                let target = get_i64(s, &["target", "averageUtilization"])
                    .map(|u| format!("{u}%"))
                    .unwrap_or_else(|| "<auto>".to_string());
                format!("{res}: {current}/{target}")
            }
        }
        _ => "<unknown type>".to_string(),
    }
}

fn hpa_targets(obj: &Value) -> String {
    // autoscaling/v1 objects carry a single CPU utilization target.
    if let Some(target) = get_i64(obj, &["spec", "targetCPUUtilizationPercentage"]) {
        let current = get_i64(obj, &["status", "currentCPUUtilizationPercentage"])
            .map(|u| format!("{u}%"))
            .unwrap_or_else(|| "<unknown>".to_string());
        return format!("cpu: {current}/{target}%");
    }
    let specs = arr(obj, &["spec", "metrics"]);
    if specs.is_empty() {
        return "<none>".to_string();
    }
    let statuses = arr(obj, &["status", "currentMetrics"]);
    const MAX: usize = 2;
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| hpa_metric(s, statuses.get(i)))
        .collect();
    let shown = list
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > MAX {
        format!("{shown} + {} more...", list.len() - MAX)
    } else {
        shown
    }
}

fn hpa_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let reference = format!(
        "{}/{}",
        get_str(obj, &["spec", "scaleTargetRef", "kind"]),
        get_str(obj, &["spec", "scaleTargetRef", "name"])
    );
    let min = get_i64(obj, &["spec", "minReplicas"])
        .map(|m| m.to_string())
        .unwrap_or_else(|| "<unset>".to_string());
    vec![
        name(obj),
        json!(reference),
        json!(hpa_targets(obj)),
        json!(min),
        json!(int(obj, &["spec", "maxReplicas"])),
        json!(int(obj, &["status", "currentReplicas"])),
        age(obj, now),
    ]
}

// ---- coordination ----

fn lease_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Holder",
            "string",
            0,
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        age_col(),
    ]
}

fn lease_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(get_str(obj, &["spec", "holderIdentity"])),
        age(obj, now),
    ]
}

fn candidate_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "LeaseName",
            "string",
            0,
            "LeaseName is the name of the lease for which this candidate is contending.",
        ),
        col(
            "BinaryVersion",
            "string",
            0,
            "BinaryVersion is the binary version.",
        ),
        col(
            "EmulationVersion",
            "string",
            0,
            "EmulationVersion is the emulation version.",
        ),
        age_col(),
    ]
}

fn candidate_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec = |k: &str| json!(get_str(obj, &["spec", k]));
    vec![
        name(obj),
        spec("leaseName"),
        spec("binaryVersion"),
        spec("emulationVersion"),
        age(obj, now),
    ]
}

// ---- policy ----

fn pdb_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Min Available",
            "string",
            0,
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            0,
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            0,
            "Calculated number of pods that may be disrupted at this time.",
        ),
        age_col(),
    ]
}

fn pdb_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let field = |k: &str| match get(obj, &["spec", k]) {
        None | Some(Value::Null) => "N/A".to_string(),
        Some(v) => int_or_string(v),
    };
    vec![
        name(obj),
        json!(field("minAvailable")),
        json!(field("maxUnavailable")),
        json!(int(obj, &["status", "disruptionsAllowed"])),
        age(obj, now),
    ]
}

// ---- rbac ----

fn binding_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Role", "string", 0, "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
        age_col(),
        col("Users", "string", 1, "Users in the roleBinding"),
        col("Groups", "string", 1, "Groups in the roleBinding"),
        col("ServiceAccounts", "string", 1, "ServiceAccounts in the roleBinding"),
    ]
}

fn binding_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let role = format!(
        "{}/{}",
        get_str(obj, &["roleRef", "kind"]),
        get_str(obj, &["roleRef", "name"])
    );
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in arr(obj, &["subjects"]) {
        let n = get_str(s, &["name"]).to_string();
        match get_str(s, &["kind"]) {
            "ServiceAccount" => sas.push(format!("{}/{n}", get_str(s, &["namespace"]))),
            "User" => users.push(n),
            "Group" => groups.push(n),
            _ => {}
        }
    }
    vec![
        name(obj),
        json!(role),
        age(obj, now),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
}

// ---- scheduling, node, apiregistration ----

fn priority_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Value", "integer", 0, "value represents the integer value of this priority class."),
        col("Global-Default", "boolean", 0, "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class."),
        age_col(),
        col("PreemptionPolicy", "string", 0, "preemptionPolicy is the Policy for preempting pods with lower priority."),
    ]
}

fn priority_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(int(obj, &["value"])),
        json!(get(obj, &["globalDefault"])
            .and_then(Value::as_bool)
            .unwrap_or(false)),
        age(obj, now),
        json!(get_str(obj, &["preemptionPolicy"])),
    ]
}

fn runtime_columns() -> Vec<Column> {
    vec![name_col(), col("Handler", "string", 0, "handler specifies the underlying runtime and configuration that the CRI implementation will use to handle pods of this class."), age_col()]
}

fn runtime_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![name(obj), json!(get_str(obj, &["handler"])), age(obj, now)]
}

fn apiservice_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Service",
            "string",
            0,
            "The reference to the service that hosts this API endpoint.",
        ),
        col(
            "Available",
            "string",
            0,
            "Whether this service is available.",
        ),
        age_col(),
    ]
}

fn apiservice_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let service = match get(obj, &["spec", "service"]) {
        Some(s) if s.is_object() => {
            format!("{}/{}", get_str(s, &["namespace"]), get_str(s, &["name"]))
        }
        _ => "Local".to_string(),
    };
    let available = arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| get_str(c, &["type"]) == "Available")
        .map(|c| {
            let (status, reason) = (get_str(c, &["status"]), get_str(c, &["reason"]));
            if status == "True" || reason.is_empty() {
                status.to_string()
            } else {
                format!("{status} ({reason})")
            }
        })
        .unwrap_or_else(|| "Unknown".to_string());
    vec![name(obj), json!(service), json!(available), age(obj, now)]
}
