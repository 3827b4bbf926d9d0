//! pods/eviction: a delete that honours PodDisruptionBudgets, as upstream's eviction REST.
//! A pod that is finished, pending or already terminating is deleted at once; otherwise the
//! one budget selecting it must allow a disruption: the budget's status is decremented and
//! the pod recorded in `disruptedPods` (compare-and-swap on the budget's resourceVersion,
//! retried on conflict), then the pod is deleted. No budget allows it; two or more are an
//! error, as upstream. `unhealthyPodEvictionPolicy` and dry run are honoured. This file
//! only reads and writes through the registry; the disruption controller owns the rest of
//! the budget's status.

use super::ApiServer;
use crate::registry::{ApiError, DeleteOptions, ListOptions, WriteOptions};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Upstream's limit on unconfirmed evictions recorded in one budget.
const MAX_DISRUPTED_PODS: usize = 2000;
/// Tries on budget write conflicts before giving up (upstream retries as often).
const RETRIES: usize = 20;

pub const VIOLATION: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

fn too_many_requests(message: &str, cause: String) -> ApiError {
    ApiError {
        code: 429,
        reason: "TooManyRequests",
        message: message.into(),
        details: Some(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})),
    }
}

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A budget's selector picks the pod; an empty selector picks every pod, a missing one none.
fn selects(pdb: &Value, labels: &BTreeMap<String, String>) -> bool {
    let sel = &pdb["spec"]["selector"];
    if sel.is_null() {
        return false;
    }
    serde_json::from_value::<LabelSelector>(sel.clone())
        .ok()
        .and_then(|s| Selector::try_from(s).ok())
        .is_some_and(|s| s.matches(labels))
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Evict pod `ns/name` with the delete options the Eviction carried.
pub(super) async fn evict(
    srv: &Arc<ApiServer>,
    ns: &str,
    name: &str,
    opts: DeleteOptions,
) -> Result<(), ApiError> {
    let data = srv.registry.catalog().snapshot();
    let pods = data
        .by_kind("", "Pod")
        .ok_or_else(|| ApiError::internal("pods are not served"))?;
    let budgets = data
        .by_kind("policy", "PodDisruptionBudget")
        .ok_or_else(|| ApiError::internal("poddisruptionbudgets are not served"))?;
    for _ in 0..RETRIES {
        let pod = srv.registry.get(&pods, Some(ns), name).await?;
        // Deleting without using up the budget is a decision about this version of the
        // pod (not ready, or finished): the delete is made conditional on it.
        let mut guarded = false;
        let phase = pod["status"]["phase"].as_str().unwrap_or_default();
        let ignore_budgets = matches!(phase, "Succeeded" | "Failed" | "Pending")
            || !pod["metadata"]["deletionTimestamp"].is_null();
        if ignore_budgets {
            guarded = true;
        } else {
            let labels = labels_of(&pod);
            let page = srv
                .registry
                .list(&budgets, Some(ns), &ListOptions::default())
                .await?;
            let mut matching = vec![];
            for kv in &page.items {
                let b = crate::registry::codec::decode(kv)?;
                if selects(&b, &labels) {
                    matching.push(b);
                }
            }
            if matching.len() > 1 {
                return Err(ApiError::internal(
                    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                ));
            }
            if let Some(pdb) = matching.pop() {
                match allowed_without_budget(&pdb, &pod) {
                    true => guarded = true,
                    false => match decrement(srv, &budgets, ns, name, pdb, opts.dry_run).await {
                        Ok(()) => {}
                        Err(e) if e.code == 409 => continue,
                        Err(e) => return Err(e),
                    },
                }
            }
        }
        let mut delete = opts.clone();
        let decide_again = guarded && delete.precondition_rv.is_none();
        if decide_again {
            delete.precondition_rv = pod["metadata"]["resourceVersion"]
                .as_str()
                .map(String::from);
        }
        if !delete.dry_run {
            match mark_disruption_target(srv, &pods, ns, pod, delete.precondition_rv.clone()).await
            {
                Ok(rv) if delete.precondition_rv.is_some() => delete.precondition_rv = rv,
                Ok(_) => {}
                Err(e) if e.code == 409 && decide_again => continue,
                Err(e) => return Err(e),
            }
        }
        return match srv.registry.delete(&pods, Some(ns), name, &delete).await {
            Ok(_) => Ok(()),
            // the pod changed between the decision and the delete: decide again
            Err(e) if e.code == 409 && decide_again => continue,
            Err(e) => Err(e),
        };
    }
    Err(too_many_requests(
        "too many conflicts while evicting the pod, try again",
        format!("eviction of pod {name} kept conflicting with budget updates"),
    ))
}

/// Record on the pod why it is going (the DisruptionTarget condition, as upstream), with
/// the delete's resourceVersion precondition if it has one; returns the new
/// resourceVersion, which the delete then expects.
async fn mark_disruption_target(
    srv: &Arc<ApiServer>,
    pods: &crate::registry::ResourceInfo,
    ns: &str,
    mut pod: Value,
    precondition: Option<String>,
) -> Result<Option<String>, ApiError> {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let now = crate::registry::strategy::now_rfc3339();
    let cond = json!({"type": "DisruptionTarget", "status": "True",
        "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting",
        "lastTransitionTime": now, "lastProbeTime": null});
    let mut conds: Vec<Value> = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|c| c["type"] != "DisruptionTarget")
        .collect();
    conds.push(cond);
    pod["status"]["conditions"] = Value::Array(conds);
    match precondition {
        Some(rv) => pod["metadata"]["resourceVersion"] = json!(rv),
        None => {
            if let Some(m) = pod["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
        }
    }
    let opts = WriteOptions {
        field_manager: "k1s-eviction".into(),
        ..Default::default()
    };
    let written = srv
        .registry
        .update(pods, Some(ns), &name, pod, Some("status"), &opts)
        .await?;
    Ok(written.obj["metadata"]["resourceVersion"]
        .as_str()
        .map(String::from))
}

/// An unready pod may go without using up the budget, as `unhealthyPodEvictionPolicy` says:
/// always (AlwaysAllow), or while the budget is met (IfHealthyBudget, the default).
fn allowed_without_budget(pdb: &Value, pod: &Value) -> bool {
    if is_ready(pod) {
        return false;
    }
    let st = &pdb["status"];
    match pdb["spec"]["unhealthyPodEvictionPolicy"].as_str() {
        Some("AlwaysAllow") => true,
        _ => {
            let desired = st["desiredHealthy"].as_i64().unwrap_or(0);
            desired > 0 && st["currentHealthy"].as_i64().unwrap_or(0) >= desired
        }
    }
}

/// Take one disruption from the budget and record the pod, unless it has none to give.
async fn decrement(
    srv: &Arc<ApiServer>,
    budgets: &crate::registry::ResourceInfo,
    ns: &str,
    pod: &str,
    mut pdb: Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    let pdb_name = pdb["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let st = &pdb["status"];
    let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(0);
    if st["observedGeneration"].as_i64().unwrap_or(0) < generation {
        return Err(too_many_requests(
            VIOLATION,
            format!("The disruption budget {pdb_name} is still being processed by the server."),
        ));
    }
    let allowed = st["disruptionsAllowed"].as_i64().unwrap_or(0);
    if allowed < 0 {
        return Err(ApiError::forbidden("pdb disruptions allowed is negative"));
    }
    if st["disruptedPods"]
        .as_object()
        .is_some_and(|m| m.len() > MAX_DISRUPTED_PODS)
    {
        return Err(ApiError::forbidden(
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(too_many_requests(
            VIOLATION,
            format!(
                "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                st["desiredHealthy"].as_i64().unwrap_or(0),
                st["currentHealthy"].as_i64().unwrap_or(0)
            ),
        ));
    }
    if dry_run {
        return Ok(());
    }
    let now = crate::registry::strategy::now_rfc3339();
    let status = &mut pdb["status"];
    status["disruptionsAllowed"] = json!(allowed - 1);
    if !status["disruptedPods"].is_object() {
        status["disruptedPods"] = json!({});
    }
    status["disruptedPods"][pod] = json!(now);
    if allowed == 1 {
        for c in status["conditions"].as_array_mut().into_iter().flatten() {
            if c["type"] == "DisruptionAllowed" && c["status"] != "False" {
                *c = json!({"type": "DisruptionAllowed", "status": "False",
                    "reason": "InsufficientPods", "message": "", "lastTransitionTime": now,
                    "observedGeneration": generation});
            }
        }
    }
    let opts = WriteOptions {
        field_manager: "k1s-eviction".into(),
        ..Default::default()
    };
    srv.registry
        .update(budgets, Some(ns), &pdb_name, pdb, Some("status"), &opts)
        .await?;
    Ok(())
}
