//! Pure pod arithmetic the workload controllers share: which pods count (active, ready,
//! available after minReadySeconds), the order in which surplus pods are deleted, and the
//! slow-start batch sizes for creating many pods. No I/O here.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use std::cmp::Reverse;
use std::collections::HashMap;

/// A pod that counts toward replicas: not being deleted and not finished.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    pod.metadata.deletion_timestamp.is_none() && !matches!(phase, Some("Succeeded" | "Failed"))
}

/// When the pod's Ready condition last became True, if it is True.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    if cond.status != "True" {
        return None;
    }
    Some(
        cond.last_transition_time
            .as_ref()
            .map(|t| t.0)
            .unwrap_or(Timestamp::UNIX_EPOCH),
    )
}

pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` at `now`. `Err(wait)` says how long until it will
/// be, for a ready pod that is not yet available.
pub fn available(
    pod: &Pod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Result<(), Option<SignedDuration>> {
    let since = ready_since(pod).ok_or(None)?;
    if min_ready_seconds <= 0 {
        return Ok(());
    }
    let at = since + SignedDuration::from_secs(i64::from(min_ready_seconds));
    if at <= now {
        Ok(())
    } else {
        Err(Some(at.duration_since(now)))
    }
}

/// Sizes of the create batches for `count` pods: 1, 2, 4, ... (upstream's slowStartBatch), so a
/// template that cannot be created fails once instead of `count` times.
pub fn slow_start_batches(count: usize) -> Vec<usize> {
    let mut out = vec![];
    let mut remaining = count;
    let mut size = 1.min(remaining);
    while size > 0 {
        out.push(size);
        remaining -= size;
        size = (2 * size).min(remaining);
    }
    out
}

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Pending") | None => 0,
        Some("Running") => 2,
        _ => 1,
    }
}

fn restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

fn node(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

/// Order `pods` so the first ones are the best to delete, as upstream ranks them: unscheduled
/// before scheduled; Pending, then Unknown, then Running; not ready before ready; pods sharing
/// a node with more of their siblings first; ready more recently first; more restarts first;
/// created more recently first. (Upstream buckets the two times on a log scale; k1s compares
/// them exactly.)
pub fn rank_for_deletion(pods: &mut [&Pod]) {
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for p in pods.iter() {
        if let Some(n) = node(p) {
            *per_node.entry(n).or_default() += 1;
        }
    }
    let key = |p: &Pod| {
        let siblings = node(p).map(|n| per_node[n]).unwrap_or(0);
        (
            node(p).is_some(),
            phase_rank(p),
            is_ready(p),
            Reverse(siblings),
            Reverse(ready_since(p)),
            Reverse(restarts(p)),
            Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        )
    };
    pods.sort_by_cached_key(|p| key(p));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: Option<&str>, phase: &str, ready: Option<i64>, created: i64) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        p.spec = Some(PodSpec {
            node_name: node.map(String::from),
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: ready.map(|t| {
                vec![PodCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(Time(Timestamp::from_second(t).unwrap())),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        });
        p
    }

    #[test]
    fn slow_start_doubles() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
        assert_eq!(slow_start_batches(100), vec![1, 2, 4, 8, 16, 32, 37]);
        assert_eq!(slow_start_batches(100).iter().sum::<usize>(), 100);
    }

    #[test]
    fn deletion_order_as_upstream() {
        let unscheduled = pod("unscheduled", None, "Pending", None, 1);
        let pending = pod("pending", Some("a"), "Pending", None, 1);
        let not_ready = pod("not-ready", Some("b"), "Running", None, 1);
        let old_ready = pod("old-ready", Some("c"), "Running", Some(10), 1);
        let new_ready = pod("new-ready", Some("d"), "Running", Some(20), 1);
        let doubled = pod("doubled", Some("e"), "Running", Some(10), 1);
        let doubled2 = pod("doubled2", Some("e"), "Running", Some(10), 5);
        let mut v = vec![
            &old_ready,
            &doubled,
            &new_ready,
            &not_ready,
            &doubled2,
            &pending,
            &unscheduled,
        ];
        rank_for_deletion(&mut v);
        let names: Vec<_> = v
            .iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "unscheduled",
                "pending",
                "not-ready",
                "doubled2",
                "doubled",
                "new-ready",
                "old-ready"
            ]
        );
    }

    #[test]
    fn availability_waits_for_min_ready_seconds() {
        let p = pod("p", Some("a"), "Running", Some(100), 1);
        let now = Timestamp::from_second(105).unwrap();
        assert_eq!(available(&p, 0, now), Ok(()));
        assert_eq!(available(&p, 5, now), Ok(()));
        assert_eq!(
            available(&p, 10, now),
            Err(Some(SignedDuration::from_secs(5)))
        );
        let q = pod("q", Some("a"), "Running", None, 1);
        assert_eq!(available(&q, 0, now), Err(None));
        assert!(is_active(&q));
    }
}
