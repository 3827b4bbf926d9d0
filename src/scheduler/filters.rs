//! Node-local filters: whether one pod may go on one node, judged from that node's Node
//! object and its aggregates alone (unschedulable, node name, taints, readiness, node
//! selector and affinity, host ports, resources). Reasons are upstream's wording, since
//! users grep for them. Plain functions; this module must never call the API or look at
//! other nodes (cluster-wide rules live in `interpod`).

use super::cache::{NodeInfo, PodInfo};
use super::resources::{self, CPU, EPHEMERAL, MEMORY, PODS};
use super::selectors;
use k8s_openapi::api::core::v1::{Node, Taint};

/// Why a node was rejected. `unresolvable` means evicting pods there would not help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub reasons: Vec<String>,
    pub unresolvable: bool,
}

impl Reject {
    pub fn hard(reason: impl Into<String>) -> Reject {
        Reject {
            reasons: vec![reason.into()],
            unresolvable: true,
        }
    }

    pub fn soft(reason: impl Into<String>) -> Reject {
        Reject {
            reasons: vec![reason.into()],
            unresolvable: false,
        }
    }
}

pub type Verdict = Result<(), Reject>;

pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

fn taint(key: &str, effect: &str) -> Taint {
    Taint {
        key: key.into(),
        effect: effect.into(),
        value: None,
        time_added: None,
    }
}

/// Every node-local filter, in upstream's order; the first rejection wins.
pub fn run_all(pod: &PodInfo, info: &NodeInfo) -> Verdict {
    let Some(node) = info.node.as_deref() else {
        return Err(Reject::hard("node(s) not found"));
    };
    // the node's facts say which filters could reject at all; the others are skipped
    let facts = &info.facts;
    if facts.cordoned {
        node_unschedulable(pod, node)?;
    }
    node_name(pod, node)?;
    if facts.hard_taints {
        taints(pod, node)?;
    }
    if !facts.ready {
        ready(pod, node)?;
    }
    if pod.node_constrained {
        node_affinity(pod, node)?;
    }
    host_ports(pod, info)?;
    fits(pod, info)
}

fn name(node: &Node) -> &str {
    node.metadata.name.as_deref().unwrap_or("")
}

pub fn node_unschedulable(pod: &PodInfo, node: &Node) -> Verdict {
    let cordoned = node
        .spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false);
    let tolerations = selectors::pod_tolerations(&pod.pod);
    if cordoned && !selectors::tolerated(tolerations, &taint(UNSCHEDULABLE_TAINT, "NoSchedule")) {
        return Err(Reject::hard("node(s) were unschedulable"));
    }
    Ok(())
}

pub fn node_name(pod: &PodInfo, node: &Node) -> Verdict {
    match pod.pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) {
        Some(n) if !n.is_empty() && n != name(node) => {
            Err(Reject::hard("node(s) didn't match the requested node name"))
        }
        _ => Ok(()),
    }
}

fn untolerated(key: &str, value: &str) -> Reject {
    Reject::hard(format!("node(s) had untolerated taint {{{key}: {value}}}"))
}

/// NoSchedule and NoExecute taints must be tolerated; PreferNoSchedule only scores.
pub fn taints(pod: &PodInfo, node: &Node) -> Verdict {
    let tolerations = selectors::pod_tolerations(&pod.pod);
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    for t in taints.unwrap_or(&[]) {
        let hard = t.effect == "NoSchedule" || t.effect == "NoExecute";
        if hard && !selectors::tolerated(tolerations, t) {
            return Err(untolerated(&t.key, t.value.as_deref().unwrap_or("")));
        }
    }
    Ok(())
}

/// A node whose Ready condition is not True gets no new pods unless they tolerate the
/// taint the node lifecycle controller would put there (not-ready when False,
/// unreachable when Unknown), so the message is the one users know from upstream.
pub fn ready(pod: &PodInfo, node: &Node) -> Verdict {
    let status = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.as_str());
    let key = match status {
        Some("True") => return Ok(()),
        Some("Unknown") => UNREACHABLE_TAINT,
        _ => NOT_READY_TAINT,
    };
    if selectors::tolerated(
        selectors::pod_tolerations(&pod.pod),
        &taint(key, "NoSchedule"),
    ) {
        Ok(())
    } else {
        Err(untolerated(key, ""))
    }
}

pub fn node_affinity(pod: &PodInfo, node: &Node) -> Verdict {
    let empty = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if selectors::pod_matches_node(&pod.pod, labels, name(node)) {
        Ok(())
    } else {
        Err(Reject::hard(
            "node(s) didn't match Pod's node affinity/selector",
        ))
    }
}

fn ip_overlaps(a: &str, b: &str) -> bool {
    let any = |ip: &str| ip.is_empty() || ip == "0.0.0.0" || ip == "::";
    any(a) || any(b) || a == b
}

pub fn host_ports(pod: &PodInfo, info: &NodeInfo) -> Verdict {
    let conflict = pod.ports.iter().any(|(proto, ip, port)| {
        info.ports
            .keys()
            .any(|(p, i, n)| p == proto && n == port && ip_overlaps(ip, i))
    });
    if conflict {
        Err(Reject::soft(
            "node(s) didn't have free ports for the requested pod ports",
        ))
    } else {
        Ok(())
    }
}

/// Requests of the pods already there plus this pod's must fit `status.allocatable`.
pub fn fits(pod: &PodInfo, info: &NodeInfo) -> Verdict {
    if pod.only_core {
        // the same test as below, on integers
        let (f, (used_cpu, used_mem)) = (&info.facts, info.requested_core);
        let short = |want: i64, used: i64, have: i64| want > 0 && used.saturating_add(want) > have;
        if (info.pods.len() as i64) < f.pods
            && !short(pod.core.0, used_cpu, f.cpu)
            && !short(pod.core.1, used_mem, f.memory)
        {
            return Ok(());
        }
    }
    let allocatable = info.allocatable();
    let too_many = info.pods.len() as i64 + 1 > allocatable.get(PODS).copied().unwrap_or(0);
    let short = |name: &str, want: i64| {
        let used = info.requested.get(name).copied().unwrap_or(0);
        let have = allocatable.get(name).copied().unwrap_or(0);
        name != PODS && want > 0 && used.saturating_add(want) > have
    };
    // the common case, a fit, allocates nothing
    if !too_many && !pod.requests.iter().any(|(n, w)| short(n, *w)) {
        return Ok(());
    }
    let mut reasons = Vec::new();
    if too_many {
        reasons.push("Too many pods".to_string());
    }
    let mut names: Vec<&String> = pod.requests.keys().collect();
    // upstream's order: cpu, memory, ephemeral-storage, then the rest by name
    let rank = |n: &str| match n {
        CPU => 0,
        MEMORY => 1,
        EPHEMERAL => 2,
        _ => 3,
    };
    names.sort_by_key(|n| (rank(n), n.as_str()));
    for name in names {
        if short(name, pod.requests[name]) {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    Err(Reject {
        reasons,
        unresolvable: false,
    })
}

/// Share of allocatable cpu and memory in use with this pod added, for the scores.
pub fn usage_fractions(pod: &PodInfo, info: &NodeInfo) -> [(i64, i64); 2] {
    let (pc, pm) = resources::non_zero(&pod.requests);
    [
        (info.non_zero.0 + pc, info.facts.cpu),
        (info.non_zero.1 + pm, info.facts.memory),
    ]
}

#[cfg(test)]
#[path = "filters_tests.rs"]
mod tests;
