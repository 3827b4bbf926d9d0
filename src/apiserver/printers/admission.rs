//! Control-plane configuration groups: admission registration,
//! certificates and API priority and fairness.

use serde_json::{json, Value};

use super::format::{
    age, age_col, arr, col, get, get_i64, get_str, human_nanos, int, len_at, name, name_col,
    selector_string,
};
use super::{CellsFn, Column, ColumnsFn, Printer};

pub(super) fn printer(group: &str, resource: &str) -> Option<Printer> {
    let (columns, cells): (ColumnsFn, CellsFn) = match (group, resource) {
        ("admissionregistration.k8s.io", r) => match r {
            "mutatingwebhookconfigurations" | "validatingwebhookconfigurations" => {
                (webhook_columns, webhook_cells)
            }
            "validatingadmissionpolicies" => (vap_columns, vap_cells),
            "mutatingadmissionpolicies" => (map_columns, map_cells),
            "validatingadmissionpolicybindings" | "mutatingadmissionpolicybindings" => {
                (binding_columns, binding_cells)
            }
            _ => return None,
        },
        ("certificates.k8s.io", "certificatesigningrequests") => (csr_columns, csr_cells),
        ("certificates.k8s.io", "clustertrustbundles") => (ctb_columns, ctb_cells),
        ("flowcontrol.apiserver.k8s.io", "flowschemas") => (fs_columns, fs_cells),
        ("flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations") => (plc_columns, plc_cells),
        _ => return None,
    };
    Some(Printer { columns, cells })
}

// ---- admission registration ----

fn webhook_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Webhooks",
            "integer",
            0,
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        age_col(),
    ]
}

fn webhook_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![name(obj), json!(len_at(obj, &["webhooks"])), age(obj, now)]
}

const PARAM_KIND_DESC: &str =
    "ParamKind specifies the kind of resources used to parameterize this policy";

fn vap_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Validations",
            "integer",
            0,
            "Validations indicates the number of validation rules defined in this configuration",
        ),
        col("ParamKind", "string", 0, PARAM_KIND_DESC),
        age_col(),
    ]
}

fn map_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "Mutations",
            "integer",
            0,
            "Mutation indicates the number of mutations rules defined in this configuration",
        ),
        col("ParamKind", "string", 0, PARAM_KIND_DESC),
        age_col(),
    ]
}

fn param_kind(obj: &Value) -> String {
    match get(obj, &["spec", "paramKind"]) {
        Some(p) if p.is_object() => {
            format!("{}/{}", get_str(p, &["apiVersion"]), get_str(p, &["kind"]))
        }
        _ => "<unset>".to_string(),
    }
}

fn vap_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(len_at(obj, &["spec", "validations"])),
        json!(param_kind(obj)),
        age(obj, now),
    ]
}

fn map_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    vec![
        name(obj),
        json!(len_at(obj, &["spec", "mutations"])),
        json!(param_kind(obj)),
        age(obj, now),
    ]
}

fn binding_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "PolicyName",
            "string",
            0,
            "PolicyName indicates the policy definition which the policy binding binded to",
        ),
        col(
            "ParamRef",
            "string",
            0,
            "ParamRef indicates the param resource which sets the configration param",
        ),
        age_col(),
    ]
}

fn binding_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let param = match get(obj, &["spec", "paramRef"]) {
        Some(p) if p.is_object() => {
            let (n, ns) = (get_str(p, &["name"]), get_str(p, &["namespace"]));
            match get(p, &["selector"]) {
                _ if !n.is_empty() && !ns.is_empty() => format!("{ns}/{n}"),
                _ if !n.is_empty() => format!("*/{n}"),
                Some(sel) if sel.is_object() => {
                    selector_string(Some(sel)).unwrap_or_else(|()| "<error>".to_string())
                }
                _ => "<unset>".to_string(),
            }
        }
        _ => "<unset>".to_string(),
    };
    vec![
        name(obj),
        json!(get_str(obj, &["spec", "policyName"])),
        json!(param),
        age(obj, now),
    ]
}

// ---- certificates ----

fn csr_columns() -> Vec<Column> {
    vec![
        name_col(),
        age_col(),
        col(
            "SignerName",
            "string",
            0,
            "Requested signer for the request.",
        ),
        col(
            "Requestor",
            "string",
            0,
            "Information about the requesting user.",
        ),
        col(
            "RequestedDuration",
            "string",
            0,
            "expirationSeconds is the requested duration of validity of the issued certificate.",
        ),
        col(
            "Condition",
            "string",
            0,
            "Conditions applied to the request.",
        ),
    ]
}

fn csr_status(obj: &Value) -> String {
    let has = |t: &str| {
        arr(obj, &["status", "conditions"])
            .iter()
            .any(|c| get_str(c, &["type"]) == t)
    };
    let mut status = if has("Denied") {
        "Denied".to_string()
    } else if has("Approved") {
        "Approved".to_string()
    } else {
        "Pending".to_string()
    };
    if has("Failed") {
        status.push_str(",Failed");
    }
    if !get_str(obj, &["status", "certificate"]).is_empty() {
        status.push_str(",Issued");
    }
    status
}

fn csr_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let signer = get_str(obj, &["spec", "signerName"]);
    let duration = get_i64(obj, &["spec", "expirationSeconds"])
        .map(|s| human_nanos(i128::from(s) * 1_000_000_000))
        .unwrap_or_else(|| "<none>".to_string());
    vec![
        name(obj),
        age(obj, now),
        json!(if signer.is_empty() { "<none>" } else { signer }),
        json!(get_str(obj, &["spec", "username"])),
        json!(duration),
        json!(csr_status(obj)),
    ]
}

fn ctb_columns() -> Vec<Column> {
    vec![
        name_col(),
        col(
            "SignerName",
            "string",
            0,
            "signerName indicates the associated signer, if any.",
        ),
    ]
}

fn ctb_cells(obj: &Value, _now: jiff::Timestamp) -> Vec<Value> {
    let signer = get_str(obj, &["spec", "signerName"]);
    vec![
        name(obj),
        json!(if signer.is_empty() { "<none>" } else { signer }),
    ]
}

// ---- flow control ----

fn fs_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("PriorityLevel", "string", 0, "`name` is the name of the priority level configuration being referenced Required."),
        col("MatchingPrecedence", "string", 0, "`matchingPrecedence` is used to choose among the FlowSchemas that match a given request."),
        col("DistinguisherMethod", "string", 0, "`distinguisherMethod` defines how to compute the flow distinguisher for requests that match this schema."),
        age_col(),
        col("MissingPL", "string", 0, "references a broken or non-existent PriorityLevelConfiguration"),
    ]
}

fn fs_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let method = match get(obj, &["spec", "distinguisherMethod"]) {
        Some(m) if m.is_object() => get_str(m, &["type"]).to_string(),
        _ => "<none>".to_string(),
    };
    let missing = arr(obj, &["status", "conditions"])
        .iter()
        .find(|c| get_str(c, &["type"]) == "Dangling")
        .map(|c| get_str(c, &["status"]).to_string())
        .unwrap_or_else(|| "?".to_string());
    vec![
        name(obj),
        json!(get_str(
            obj,
            &["spec", "priorityLevelConfiguration", "name"]
        )),
        json!(int(obj, &["spec", "matchingPrecedence"])),
        json!(method),
        age(obj, now),
        json!(missing),
    ]
}

fn plc_columns() -> Vec<Column> {
    vec![
        name_col(),
        col("Type", "string", 0, "`type` indicates whether this priority level is subject to limitation on request execution."),
        col("NominalConcurrencyShares", "string", 0, "`nominalConcurrencyShares` (NCS) contributes to the computation of the NominalConcurrencyLimit (NominalCL) of this level."),
        col("Queues", "string", 0, "`queues` is the number of queues for this priority level."),
        col("HandSize", "string", 0, "`handSize` is a small positive number that configures the shuffle sharding of requests into queues."),
        col("QueueLengthLimit", "string", 0, "`queueLengthLimit` is the maximum number of requests allowed to be waiting in a given queue of this priority level at a time."),
        age_col(),
    ]
}

fn plc_cells(obj: &Value, now: jiff::Timestamp) -> Vec<Value> {
    let none = || json!("<none>");
    let (mut ncs, mut queues, mut hand, mut limit) = (none(), none(), none(), none());
    if let Some(limited) = get(obj, &["spec", "limited"]).filter(|l| l.is_object()) {
        ncs = json!(int(limited, &["nominalConcurrencyShares"]));
        if let Some(q) = get(limited, &["limitResponse", "queuing"]).filter(|q| q.is_object()) {
            queues = json!(int(q, &["queues"]));
            hand = json!(int(q, &["handSize"]));
            limit = json!(int(q, &["queueLengthLimit"]));
        }
    }
    vec![
        name(obj),
        json!(get_str(obj, &["spec", "type"])),
        ncs,
        queues,
        hand,
        limit,
        age(obj, now),
    ]
}
