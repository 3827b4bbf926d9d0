//! What one DaemonSet pass should do, decided from the nodes and the daemon pods on them:
//! the manage step (a pod on every node that should run one, none on nodes that should not,
//! failed and surplus pods removed) and the rolling update step (old pods replaced within
//! maxUnavailable, or surged onto within maxSurge), as upstream's `manage` and
//! `rollingUpdate` decide them, and the status counts. Pure functions; the controller
//! performs the writes.

use super::nodes::Eligibility;
use crate::controllers::history::REVISION_LABEL;
use crate::controllers::podutil;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::ResourceExt;

/// A node, whether the DaemonSet belongs there, and the daemon pods meant for it.
pub struct NodeState<'a> {
    pub name: String,
    /// `None` for a node that no longer exists but still has pods aimed at it.
    pub elig: Option<Eligibility>,
    pub pods: Vec<&'a Pod>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes to create a pod on.
    pub create: Vec<String>,
    /// Pods to delete (name).
    pub delete: Vec<String>,
    /// Failed pods to delete (name, node), subject to the caller's back-off.
    pub failed: Vec<(String, String)>,
}

pub fn is_updated(pod: &Pod, hash: &str) -> bool {
    pod.labels().get(REVISION_LABEL).map(String::as_str) == Some(hash)
}

fn failed(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
}

fn by_age(pods: &mut [&Pod]) {
    pods.sort_by_key(|p| {
        (
            p.metadata.creation_timestamp.as_ref().map(|t| t.0),
            p.name_any(),
        )
    });
}

fn is_available(pod: &Pod, min_ready: i32, now: Timestamp) -> bool {
    podutil::available(pod, min_ready, now).is_ok()
}

/// Upstream's podsShouldBeOnNode over every node, plus unscheduled pods aimed at nodes
/// that are gone.
pub fn manage(
    nodes: &[NodeState],
    hash: &str,
    surging: bool,
    min_ready: i32,
    now: Timestamp,
) -> Plan {
    let mut plan = Plan::default();
    for n in nodes {
        let Some(elig) = n.elig else {
            // the node is gone: pods never bound to it would wait forever
            for p in &n.pods {
                let unbound = p
                    .spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_none_or(str::is_empty);
                if unbound && p.metadata.deletion_timestamp.is_none() {
                    plan.delete.push(p.name_any());
                }
            }
            continue;
        };
        if elig.should_run && n.pods.is_empty() {
            plan.create.push(n.name.clone());
        } else if elig.should_continue {
            let mut running: Vec<&Pod> = vec![];
            for p in n
                .pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
            {
                if failed(p) {
                    plan.failed.push((p.name_any(), n.name.clone()));
                } else {
                    running.push(p);
                }
            }
            by_age(&mut running);
            if !surging {
                plan.delete
                    .extend(running.iter().skip(1).map(|p| p.name_any()));
                continue;
            }
            // Surging: keep the oldest new and the oldest old pod, and the old one only
            // while it is ready and the new one is not yet available.
            let (mut new, mut old): (Option<&Pod>, Option<&Pod>) = (None, None);
            for p in running {
                let slot = if is_updated(p, hash) {
                    &mut new
                } else {
                    &mut old
                };
                if slot.is_none() {
                    *slot = Some(p);
                } else {
                    plan.delete.push(p.name_any());
                }
            }
            if let (Some(new), Some(old)) = (new, old) {
                if !podutil::is_ready(old) || is_available(new, min_ready, now) {
                    plan.delete.push(old.name_any());
                }
            }
        } else {
            plan.delete.extend(
                n.pods
                    .iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .map(|p| p.name_any()),
            );
        }
    }
    plan
}

/// At most one new and one old live pod on a node; `None` when there are more, which the
/// manage step cleans up first.
fn new_and_old<'a>(pods: &[&'a Pod], hash: &str) -> Option<(Option<&'a Pod>, Option<&'a Pod>)> {
    let (mut new, mut old) = (None, None);
    for p in pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
    {
        let slot = if is_updated(p, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.replace(*p).is_some() {
            return None;
        }
    }
    Some((new, old))
}

/// The limits of a rolling update.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_surge: usize,
    pub max_unavailable: usize,
    pub desired: usize,
    pub min_ready: i32,
}

/// Upstream's rollingUpdate: without surge, delete old pods (unavailable ones at once,
/// available ones while fewer than maxUnavailable nodes are unavailable) and let manage
/// recreate them; with surge, start new pods beside old ones (at once where the old one is
/// unavailable, else up to maxSurge) and delete an old pod once its replacement is
/// available.
pub fn rolling(nodes: &[NodeState], hash: &str, l: Limits, now: Timestamp) -> Plan {
    let mut plan = Plan::default();
    let avail = |p: &Pod| is_available(p, l.min_ready, now);
    let relevant = nodes
        .iter()
        .filter(|n| n.elig.is_some_and(|e| e.should_run) || !n.pods.is_empty());
    if l.max_surge == 0 {
        let mut unavailable = 0usize;
        let mut replace_now = vec![];
        let mut candidates = vec![];
        for n in relevant {
            let Some((new, old)) = new_and_old(&n.pods, hash) else {
                unavailable += 1;
                continue;
            };
            match (new, old) {
                (None, None) | (Some(_), Some(_)) => unavailable += 1,
                (Some(new), None) => {
                    if !avail(new) {
                        unavailable += 1;
                    }
                }
                (None, Some(old)) => {
                    if !avail(old) {
                        replace_now.push(old.name_any());
                        unavailable += 1;
                    } else if unavailable < l.max_unavailable {
                        candidates.push(old.name_any());
                    }
                }
            }
        }
        let room = l
            .max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        plan.delete = replace_now;
        plan.delete.extend(candidates.into_iter().take(room));
        return plan;
    }
    let mut surge = 0usize;
    let mut available = 0usize;
    let mut allowed_new = vec![];
    let mut candidate_new = vec![];
    let mut misplaced = vec![];
    for n in relevant {
        let Some((new, old)) = new_and_old(&n.pods, hash) else {
            surge += 1;
            continue;
        };
        if let Some(p) = old.or(new) {
            if avail(p) {
                available += 1;
            }
        }
        let should_run = n.elig.is_some_and(|e| e.should_run);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !avail(old) {
                    if should_run {
                        allowed_new.push(n.name.clone());
                    } else {
                        plan.delete.push(old.name_any());
                    }
                } else if !should_run {
                    misplaced.push(old.name_any());
                } else if surge < l.max_surge {
                    candidate_new.push(n.name.clone());
                }
            }
            (Some(new), Some(old)) => {
                if avail(new) {
                    plan.delete.push(old.name_any());
                } else {
                    surge += 1;
                }
            }
        }
    }
    // Pods on nodes the set no longer fits go only while enough others are available.
    let deletable = available.saturating_sub(l.desired).min(misplaced.len());
    plan.delete.extend(misplaced.into_iter().take(deletable));
    let room = l.max_surge.saturating_sub(surge).min(candidate_new.len());
    plan.create = allowed_new;
    plan.create.extend(candidate_new.into_iter().take(room));
    plan
}

/// DaemonSet status counts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub desired: i32,
    pub current: i32,
    pub misscheduled: i32,
    pub ready: i32,
    pub available: i32,
    pub updated: i32,
    /// When the next ready pod becomes available (minReadySeconds).
    pub recheck: Option<SignedDuration>,
}

pub fn counts(nodes: &[NodeState], hash: &str, min_ready: i32, now: Timestamp) -> Counts {
    let mut c = Counts::default();
    for n in nodes {
        let Some(elig) = n.elig else { continue };
        let mut pods: Vec<&Pod> = n.pods.clone();
        if pods.iter().any(|p| p.metadata.deletion_timestamp.is_none()) {
            pods.retain(|p| p.metadata.deletion_timestamp.is_none());
        }
        by_age(&mut pods);
        let Some(pod) = pods.first() else { continue };
        if !elig.should_run {
            c.misscheduled += 1;
            continue;
        }
        c.current += 1;
        if podutil::is_ready(pod) {
            c.ready += 1;
            match podutil::available(pod, min_ready, now) {
                Ok(()) => c.available += 1,
                Err(wait) => {
                    if let Some(w) = wait {
                        c.recheck = Some(c.recheck.map_or(w, |r| r.min(w)));
                    }
                }
            }
        }
        if is_updated(pod, hash) {
            c.updated += 1;
        }
    }
    c.desired = nodes
        .iter()
        .filter(|n| n.elig.is_some_and(|e| e.should_run))
        .count() as i32;
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use serde_json::json;

    fn pod(name: &str, hash: &str, ready: bool, age: i64) -> Pod {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {REVISION_LABEL: hash}},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" },
                 "lastTransitionTime": "2020-01-01T00:00:00Z"}
            ]}
        }))
        .unwrap();
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(age).unwrap()));
        p
    }

    const RUN: Option<Eligibility> = Some(Eligibility {
        should_run: true,
        should_continue: true,
    });

    fn node<'a>(name: &str, pods: Vec<&'a Pod>) -> NodeState<'a> {
        NodeState {
            name: name.into(),
            elig: RUN,
            pods,
        }
    }

    fn now() -> Timestamp {
        Timestamp::from_second(2_000_000_000).unwrap()
    }

    #[test]
    fn manage_creates_and_prunes() {
        let a1 = pod("a1", "h", true, 1);
        let a2 = pod("a2", "h", true, 2);
        let mut f = pod("f", "h", false, 1);
        f.status.as_mut().unwrap().phase = Some("Failed".into());
        let c = pod("c", "h", true, 1);
        let nodes = vec![
            node("a", vec![&a2, &a1]),
            node("b", vec![]),
            node("f", vec![&f]),
            NodeState {
                name: "c".into(),
                elig: Some(Eligibility {
                    should_run: false,
                    should_continue: false,
                }),
                pods: vec![&c],
            },
        ];
        let plan = manage(&nodes, "h", false, 0, now());
        assert_eq!(plan.create, ["b"]);
        assert_eq!(plan.delete, ["a2", "c"]);
        assert_eq!(plan.failed, [("f".to_string(), "f".to_string())]);
    }

    #[test]
    fn rolling_without_surge_respects_max_unavailable() {
        let old: Vec<Pod> = (0..4)
            .map(|i| pod(&format!("o{i}"), "old", true, i))
            .collect();
        let nodes: Vec<NodeState> = old
            .iter()
            .enumerate()
            .map(|(i, p)| node(&format!("n{i}"), vec![p]))
            .collect();
        let l = Limits {
            max_surge: 0,
            max_unavailable: 2,
            desired: 4,
            min_ready: 0,
        };
        assert_eq!(rolling(&nodes, "new", l, now()).delete, ["o0", "o1"]);
        // one node already has an unready new pod: only one more may go
        let fresh = pod("n0", "new", false, 9);
        let mut nodes2: Vec<NodeState> = vec![node("n0", vec![&fresh])];
        nodes2.extend(
            old[1..]
                .iter()
                .enumerate()
                .map(|(i, p)| node(&format!("n{}", i + 1), vec![p])),
        );
        assert_eq!(rolling(&nodes2, "new", l, now()).delete, ["o1"]);
        // an unready old pod is replaced at once, beyond the budget
        let sick = pod("sick", "old", false, 1);
        let mut nodes3: Vec<NodeState> = vec![node("n0", vec![&fresh]), node("s", vec![&sick])];
        nodes3.extend(
            old[1..]
                .iter()
                .enumerate()
                .map(|(i, p)| node(&format!("n{}", i + 1), vec![p])),
        );
        let l1 = Limits {
            max_unavailable: 1,
            ..l
        };
        assert_eq!(rolling(&nodes3, "new", l1, now()).delete, ["sick"]);
    }

    #[test]
    fn rolling_with_surge_starts_new_pods_first() {
        let o: Vec<Pod> = (0..3)
            .map(|i| pod(&format!("o{i}"), "old", true, i))
            .collect();
        let nodes: Vec<NodeState> = o
            .iter()
            .enumerate()
            .map(|(i, p)| node(&format!("n{i}"), vec![p]))
            .collect();
        let l = Limits {
            max_surge: 1,
            max_unavailable: 0,
            desired: 3,
            min_ready: 0,
        };
        let plan = rolling(&nodes, "new", l, now());
        assert_eq!(plan.create, ["n0"]);
        assert!(plan.delete.is_empty());
        // the new pod is not ready yet: nothing more
        let n0 = pod("x0", "new", false, 5);
        let nodes: Vec<NodeState> = vec![
            node("n0", vec![&o[0], &n0]),
            node("n1", vec![&o[1]]),
            node("n2", vec![&o[2]]),
        ];
        let plan = rolling(&nodes, "new", l, now());
        assert!(plan.create.is_empty() && plan.delete.is_empty(), "{plan:?}");
        // ready: the old one goes, the next node surges
        let n0 = pod("x0", "new", true, 5);
        let nodes: Vec<NodeState> = vec![
            node("n0", vec![&o[0], &n0]),
            node("n1", vec![&o[1]]),
            node("n2", vec![&o[2]]),
        ];
        let plan = rolling(&nodes, "new", l, now());
        assert_eq!(plan.delete, ["o0"]);
        assert_eq!(plan.create, ["n1"]);
        // manage keeps both while the new one is not available
        let unready = pod("x0", "new", false, 5);
        let nodes: Vec<NodeState> = vec![node("n0", vec![&o[0], &unready])];
        assert!(manage(&nodes, "new", true, 0, now()).delete.is_empty());
    }

    #[test]
    fn status_counts() {
        let a = pod("a", "h", true, 1);
        let b = pod("b", "old", false, 1);
        let c = pod("c", "h", true, 1);
        let nodes = vec![
            node("a", vec![&a]),
            node("b", vec![&b]),
            node("e", vec![]),
            NodeState {
                name: "c".into(),
                elig: Some(Eligibility {
                    should_run: false,
                    should_continue: true,
                }),
                pods: vec![&c],
            },
        ];
        let c = counts(&nodes, "h", 0, now());
        assert_eq!(
            (
                c.desired,
                c.current,
                c.misscheduled,
                c.ready,
                c.available,
                c.updated
            ),
            (3, 2, 1, 1, 1, 1)
        );
    }
}
