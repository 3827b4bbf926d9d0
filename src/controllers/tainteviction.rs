//! Taint-based eviction (upstream's taint eviction controller), as the node lifecycle
//! controller runs it for each node: a pod on a node with NoExecute taints it does not
//! tolerate is deleted at once; one that tolerates them all for a while
//! (`tolerationSeconds`) is deleted when the shortest of those runs out, counted from when
//! the taints were added; one that tolerates them for ever stays. Deciding is pure; the
//! deletion (with the DisruptionTarget condition and an event first) goes through the API.
//! It never deletes a pod already terminating or finished.

use super::common::Recorder;
use crate::scheduler::selectors::tolerates;
use k8s_openapi::api::core::v1::{Pod, Taint, Toleration};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// What to do with one pod on a node with these taints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No NoExecute taint, or all tolerated for ever.
    Stay,
    /// Delete now.
    Evict,
    /// Delete at this time unless the taints go first.
    EvictAt(Timestamp),
}

/// Decide for `pod` on a node whose taints are `taints`. `first_seen` stands in for a
/// taint's `timeAdded` when it has none.
pub fn verdict(pod: &Pod, taints: &[Taint], first_seen: Timestamp) -> Verdict {
    let no_execute: Vec<&Taint> = taints.iter().filter(|t| t.effect == "NoExecute").collect();
    if no_execute.is_empty() {
        return Verdict::Stay;
    }
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut min_seconds: Option<i64> = None;
    for taint in &no_execute {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Verdict::Evict;
        }
        for t in matching {
            if let Some(s) = t.toleration_seconds {
                min_seconds = Some(min_seconds.map_or(s, |m| m.min(s)));
            }
        }
    }
    let Some(seconds) = min_seconds else {
        return Verdict::Stay;
    };
    if seconds <= 0 {
        return Verdict::Evict;
    }
    // The set of taints last changed when the newest of them was added.
    let since = no_execute
        .iter()
        .filter_map(|t| t.time_added.as_ref().map(|x| x.0))
        .max()
        .unwrap_or(first_seen);
    Verdict::EvictAt(since + SignedDuration::from_secs(seconds))
}

/// Whether the taint eviction controller may act on `pod` at all.
pub fn evictable(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// Mark the pod as disrupted by the taint manager, then delete it (with its own grace
/// period, as upstream). A pod already gone is no error.
pub async fn evict(client: &Client, recorder: &Recorder, pod: &Pod) -> Result<(), kube::Error> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    recorder
        .publish(
            pod,
            false,
            "TaintManagerEviction",
            format!("Marking for deletion Pod {ns}/{name}"),
        )
        .await;
    let now = Timestamp::now().to_string();
    let cond = json!({"status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint", "lastTransitionTime": now,
    }]}});
    let gone = |e: &kube::Error| matches!(e, kube::Error::Api(s) if s.code == 404);
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Strategic(cond))
        .await
    {
        Err(e) if gone(&e) => return Ok(()),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Err(e) if gone(&e) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn taint(key: &str, effect: &str, added: Option<i64>) -> Taint {
        Taint {
            key: key.into(),
            effect: effect.into(),
            value: None,
            time_added: added.map(|s| Time(Timestamp::from_second(s).unwrap())),
        }
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"},
            "spec": {"containers": [], "tolerations": tolerations}}))
        .unwrap()
    }

    #[test]
    fn untolerated_no_execute_evicts_at_once() {
        let p = pod(json!([]));
        let t0 = Timestamp::from_second(1000).unwrap();
        assert_eq!(
            verdict(&p, &[taint("a", "NoSchedule", None)], t0),
            Verdict::Stay
        );
        assert_eq!(
            verdict(&p, &[taint("a", "NoExecute", None)], t0),
            Verdict::Evict
        );
    }

    #[test]
    fn toleration_seconds_count_from_the_newest_taint() {
        let p = pod(json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "x", "operator": "Equal", "value": "1", "effect": "NoExecute", "tolerationSeconds": 30}
        ]));
        let t0 = Timestamp::from_second(1000).unwrap();
        let unreachable = taint("node.kubernetes.io/unreachable", "NoExecute", Some(500));
        assert_eq!(
            verdict(&p, std::slice::from_ref(&unreachable), t0),
            Verdict::EvictAt(Timestamp::from_second(800).unwrap())
        );
        let mut x = taint("x", "NoExecute", Some(600));
        x.value = Some("1".into());
        assert_eq!(
            verdict(&p, &[unreachable.clone(), x.clone()], t0),
            Verdict::EvictAt(Timestamp::from_second(630).unwrap())
        );
        x.value = Some("2".into());
        assert_eq!(verdict(&p, &[unreachable, x], t0), Verdict::Evict);
    }

    #[test]
    fn tolerating_for_ever_stays() {
        let p = pod(json!([{"operator": "Exists"}]));
        let t0 = Timestamp::from_second(1000).unwrap();
        assert_eq!(
            verdict(&p, &[taint("any", "NoExecute", None)], t0),
            Verdict::Stay
        );
    }
}
