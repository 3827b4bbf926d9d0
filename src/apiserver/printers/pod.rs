//! Pods: the READY/STATUS/RESTARTS logic of upstream's `printPod`.

use serde_json::{json, Value};

use super::format::{age, arr, col, get, get_bool, get_str, int, name, name_col, parse_time};
use super::format::{age_col, deleting, human_nanos, or};
use super::narrow::Reads;
use super::{Column, Printer};

pub(super) fn printer(resource: &str) -> Option<Printer> {
    match resource {
        "pods" => Some(Printer {
            columns: pod_columns,
            cells: pod_cells,
        }),
        _ => None,
    }
}

/// What [`pod_cells`] reads of a pod (a list's Table parses only these).
pub(super) const POD_READS: Reads = &[
    "metadata.name",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec.containers.name",
    "spec.initContainers.name",
    "spec.initContainers.restartPolicy",
    "spec.nodeName",
    "spec.readinessGates.conditionType",
    "status.phase",
    "status.reason",
    "status.conditions.type",
    "status.conditions.status",
    "status.conditions.reason",
    "status.initContainerStatuses.name",
    "status.initContainerStatuses.restartCount",
    "status.initContainerStatuses.lastState.terminated.finishedAt",
    "status.initContainerStatuses.state.terminated.exitCode",
    "status.initContainerStatuses.state.terminated.reason",
    "status.initContainerStatuses.state.terminated.signal",
    "status.initContainerStatuses.state.waiting.reason",
    "status.initContainerStatuses.started",
    "status.initContainerStatuses.ready",
    "status.containerStatuses.restartCount",
    "status.containerStatuses.lastState.terminated.finishedAt",
    "status.containerStatuses.state.terminated.exitCode",
    "status.containerStatuses.state.terminated.reason",
    "status.containerStatuses.state.terminated.signal",
    "status.containerStatuses.state.waiting.reason",
    "status.containerStatuses.state.running",
    "status.containerStatuses.ready",
    "status.podIPs.ip",
    "status.podIP",
    "status.nominatedNodeName",
];

fn pod_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Ready", "string", 0, "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", 0, "The aggregate status of the containers in this pod."),
        col("Restarts", "string", 0, "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        age_col(),
        col("IP", "string", 1, "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        col("Node", "string", 1, "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName. Once this field is set, the kubelet for this node becomes responsible for the lifecycle of this pod. This field should not be used to express a desire for the pod to be scheduled on a specific node. https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/#nodename"),
        col("Nominated Node", "string", 1, "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods. This field does not guarantee that the pod will be scheduled on this node. Scheduler may decide to place the pod elsewhere if other nodes become available sooner. Scheduler may also decide to give the resources on this node to a higher priority pod that is created after preemption. As a result, this field may be different than PodSpec.nodeName when the pod is scheduled."),
        col("Readiness Gates", "string", 1, "If specified, all readiness gates will be evaluated for pod readiness. A pod is ready when all its containers are ready AND all conditions specified in the readiness gates have status equal to \"True\" More info: https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates"),
    ]
}

/// Nanoseconds since the Unix epoch of `lastState.terminated.finishedAt`.
fn last_terminated_at(status: &Value) -> Option<i128> {
    let finished = get(status, &["lastState", "terminated"])?;
    if finished.is_null() {
        return None;
    }
    parse_time(get_str(finished, &["finishedAt"])).map(|t| t.as_nanosecond())
}

fn is_restartable_init(spec: &Value, container_name: &str) -> bool {
    arr(spec, &["initContainers"]).iter().any(|c| {
        get_str(c, &["name"]) == container_name && get_str(c, &["restartPolicy"]) == "Always"
    })
}

fn condition_true(obj: &Value, type_: &str) -> bool {
    arr(obj, &["status", "conditions"])
        .iter()
        .any(|c| get_str(c, &["type"]) == type_ && get_str(c, &["status"]) == "True")
}

/// `isPodInitializedConditionTrue`: the first `Initialized` condition decides.
fn initialized(obj: &Value) -> bool {
    arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| get_str(c, &["type"]) == "Initialized")
        .is_some_and(|c| get_str(c, &["status"]) == "True")
}

fn present(v: &Value, path: &[&str]) -> Option<Value> {
    match get(v, path) {
        None | Some(Value::Null) => None,
        Some(x) => Some(x.clone()),
    }
}

fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = get_str(t, &["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    let signal = int(t, &["signal"]);
    if signal != 0 {
        format!("{prefix}Signal:{signal}")
    } else {
        format!("{prefix}ExitCode:{}", int(t, &["exitCode"]))
    }
}

fn pod_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let spec = get(obj, &["spec"]).unwrap_or(&Value::Null);
    let status = get(obj, &["status"]).unwrap_or(&Value::Null);
    let init_specs = arr(spec, &["initContainers"]);

    let mut restarts: i64 = 0;
    let mut restartable_init_restarts: i64 = 0;
    let total = arr(spec, &["containers"]).len()
        + init_specs
            .iter()
            .filter(|c| get_str(c, &["restartPolicy"]) == "Always")
            .count();
    let mut ready: usize = 0;
    let mut last_restart: Option<i128> = None;
    let mut last_restartable_init_restart: Option<i128> = None;

    let phase = get_str(status, &["phase"]);
    let mut reason = phase.to_string();
    let status_reason = get_str(status, &["reason"]);
    if !status_reason.is_empty() {
        reason = status_reason.to_string();
    }
    for c in arr(status, &["conditions"]) {
        if get_str(c, &["type"]) == "PodScheduled" && get_str(c, &["reason"]) == "SchedulingGated" {
            reason = "SchedulingGated".to_string();
        }
    }

    let mut initializing = false;
    for (i, cs) in arr(status, &["initContainerStatuses"]).iter().enumerate() {
        let cname = get_str(cs, &["name"]);
        let restartable = is_restartable_init(spec, cname);
        restarts += int(cs, &["restartCount"]);
        if let Some(t) = last_terminated_at(cs) {
            last_restart = last_restart.max(Some(t));
        }
        if restartable {
            restartable_init_restarts += int(cs, &["restartCount"]);
            if let Some(t) = last_terminated_at(cs) {
                last_restartable_init_restart = last_restartable_init_restart.max(Some(t));
            }
        }
        let terminated = present(cs, &["state", "terminated"]);
        let waiting_reason =
            present(cs, &["state", "waiting"]).map(|w| get_str(&w, &["reason"]).to_string());
        if terminated
            .as_ref()
            .is_some_and(|t| int(t, &["exitCode"]) == 0)
        {
            continue;
        }
        if restartable && get_bool(cs, &["started"]) == Some(true) {
            if get_bool(cs, &["ready"]) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = &terminated {
            reason = terminated_reason(t, "Init:");
        } else if let Some(w) = waiting_reason.filter(|w| !w.is_empty() && w != "PodInitializing") {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{}/{}", i, init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || initialized(obj) {
        restarts = restartable_init_restarts;
        last_restart = last_restartable_init_restart;
        let mut has_running = false;
        for cs in arr(status, &["containerStatuses"]).iter().rev() {
            restarts += int(cs, &["restartCount"]);
            if let Some(t) = last_terminated_at(cs) {
                last_restart = last_restart.max(Some(t));
            }
            let waiting = present(cs, &["state", "waiting"]);
            let terminated = present(cs, &["state", "terminated"]);
            let waiting_reason = waiting
                .as_ref()
                .map(|w| get_str(w, &["reason"]))
                .unwrap_or("");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = &terminated {
                reason = terminated_reason(t, "");
            } else if get_bool(cs, &["ready"]) == Some(true)
                && present(cs, &["state", "running"]).is_some()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(obj, "Ready") {
                "Running".to_string()
            } else {
                "NotReady".to_string()
            };
        }
    }

    if deleting(obj) && status_reason == "NodeLost" {
        reason = "Unknown".to_string();
    } else if deleting(obj) && phase != "Failed" && phase != "Succeeded" {
        reason = "Terminating".to_string();
    }

    let restarts_str = match last_restart {
        Some(t) if restarts != 0 => {
            format!("{restarts} ({} ago)", human_nanos(now.as_nanosecond() - t))
        }
        _ => restarts.to_string(),
    };

    let mut pod_ip = arr(status, &["podIPs"])
        .first()
        .map(|p| get_str(p, &["ip"]))
        .unwrap_or("");
    if pod_ip.is_empty() {
        pod_ip = get_str(status, &["podIP"]);
    }
    let gates = arr(spec, &["readinessGates"]);
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let conditions = arr(status, &["conditions"]);
        let true_count = gates
            .iter()
            .filter(|g| {
                let t = get_str(g, &["conditionType"]);
                conditions
                    .iter()
                    .find(|c| get_str(c, &["type"]) == t)
                    .is_some_and(|c| get_str(c, &["status"]) == "True")
            })
            .count();
        format!("{true_count}/{}", gates.len())
    };

    vec![
        name(obj),
        json!(format!("{ready}/{total}")),
        json!(reason),
        json!(restarts_str),
        age(obj, now),
        json!(or(pod_ip, "<none>")),
        json!(or(get_str(spec, &["nodeName"]), "<none>")),
        json!(or(get_str(status, &["nominatedNodeName"]), "<none>")),
        json!(readiness_gates),
    ]
}
