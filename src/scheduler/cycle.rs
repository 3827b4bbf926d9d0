//! One scheduling attempt for one pod, over a consistent view of the cache: run the filters
//! on the nodes until enough feasible ones are found (upstream's adaptive
//! percentageOfNodesToScore, each attempt starting where the last stopped), score those,
//! pick the best (ties at random), or explain why no node fits in upstream's words. It must
//! never call the API or change the cache.

use super::cache::{Cache, NodeInfo, PodInfo};
use super::filters::{self, Reject};
use super::interpod::InterPod;
use super::scores;
use super::volumebinding::VolumeCheck;
use k8s_openapi::api::core::v1::Node;
use rand::Rng;
use std::collections::BTreeMap;

/// Why no node fits: how many nodes gave each reason, and which nodes evicting pods
/// could help on (they failed only for resolvable reasons).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub total: usize,
    /// Why the pod fits no node whatever the node (upstream's PreFilter rejections, such
    /// as a missing claim): said once, not counted per node.
    pub pre_filter: Option<String>,
    pub reasons: BTreeMap<String, usize>,
    pub unresolvable: usize,
    pub resolvable_nodes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Place(String),
    NoFit(Diagnosis),
}

pub const NO_NODES: &str = "no nodes available to schedule pods";

/// Runs every filter on one node: the node-local ones, the volumes', then the
/// cluster-wide ones.
pub fn filter_node(
    pod: &PodInfo,
    info: &NodeInfo,
    inter: &InterPod,
    volumes: &VolumeCheck,
) -> Result<(), Reject> {
    filters::run_all(pod, info)?;
    if let Some(node) = info.node.as_deref() {
        volumes.filter(node)?;
    }
    inter.filter(pod, info)
}

/// Below this many nodes every node is filtered and scored.
const MIN_FEASIBLE_NODES: usize = 100;
/// The least share of a large cluster's nodes looked at.
const MIN_FEASIBLE_PERCENT: usize = 5;

/// How many feasible nodes are enough to stop filtering: all of a small cluster, else a share
/// falling from 50% by one point per 125 nodes, at least 5% and at least 100 nodes (upstream's
/// default, percentageOfNodesToScore unset).
pub fn feasible_nodes_to_find(total: usize) -> usize {
    if total < MIN_FEASIBLE_NODES {
        return total;
    }
    let percent = 50usize
        .saturating_sub(total / 125)
        .max(MIN_FEASIBLE_PERCENT);
    (total * percent / 100).max(MIN_FEASIBLE_NODES)
}

#[cfg(test)]
pub fn schedule(pod: &PodInfo, cache: &Cache, rng: &mut impl Rng) -> Decision {
    schedule_from(pod, cache, rng, &mut 0)
}

/// `schedule`, filtering from node `*next_start` (in the cache's order, wrapping) and leaving
/// it where this attempt stopped, so successive pods spread the search over the cluster.
pub fn schedule_from(
    pod: &PodInfo,
    cache: &Cache,
    rng: &mut impl Rng,
    next_start: &mut usize,
) -> Decision {
    let inter = InterPod::prepare(pod, cache);
    let volumes = VolumeCheck::prepare(pod, &cache.volumes);
    let nodes: Vec<&NodeInfo> = cache.nodes.values().filter(|n| n.node.is_some()).collect();
    let mut diag = Diagnosis {
        total: nodes.len(),
        ..Default::default()
    };
    if let Some(r) = volumes.pre_filter() {
        diag.pre_filter = Some(r.reasons.join(", "));
        diag.unresolvable = nodes.len();
        return Decision::NoFit(diag);
    }
    let enough = feasible_nodes_to_find(nodes.len());
    let start = if nodes.is_empty() {
        0
    } else {
        *next_start % nodes.len()
    };
    let mut feasible = Vec::new();
    let mut processed = 0;
    for info in nodes.iter().cycle().skip(start).take(nodes.len()) {
        if feasible.len() >= enough {
            break;
        }
        processed += 1;
        let view = cache.with_nominated(pod, info);
        match filter_node(pod, &view, &inter, &volumes) {
            Ok(()) => feasible.push(*info),
            Err(r) => {
                for reason in r.reasons {
                    *diag.reasons.entry(reason).or_insert(0) += 1;
                }
                if r.unresolvable {
                    diag.unresolvable += 1;
                } else {
                    diag.resolvable_nodes.push(info.name.clone());
                }
            }
        }
    }
    if !nodes.is_empty() {
        *next_start = (start + processed) % nodes.len();
    }
    if feasible.is_empty() {
        return Decision::NoFit(diag);
    }
    if feasible.len() == 1 {
        return Decision::Place(feasible[0].name.clone());
    }
    let all: Vec<&Node> = nodes.iter().filter_map(|n| n.node.as_deref()).collect();
    let totals = scores::score(pod, &feasible, &inter, &all);
    // reservoir sampling over the best: ties broken uniformly at random
    let mut best = i64::MIN;
    let mut seen = 0u32;
    let mut pick = 0;
    for (i, s) in totals.iter().enumerate() {
        if *s > best {
            best = *s;
            seen = 1;
            pick = i;
        } else if *s == best {
            seen += 1;
            if rng.gen_range(0..seen) == 0 {
                pick = i;
            }
        }
    }
    Decision::Place(feasible[pick].name.clone())
}

fn histogram(counts: &BTreeMap<String, usize>) -> String {
    // upstream sorts the "<count> <reason>" strings as text, count included
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    parts.join(", ")
}

/// What preemption could do, in upstream's words: `None` when the pod may not preempt.
pub fn preemption_message(d: &Diagnosis, may_preempt: bool) -> String {
    if !may_preempt {
        return "preemption: not eligible due to preemptionPolicy=Never.".into();
    }
    let mut counts = BTreeMap::new();
    if d.unresolvable > 0 {
        counts.insert(
            "Preemption is not helpful for scheduling".to_string(),
            d.unresolvable,
        );
    }
    let rest = d.total - d.unresolvable;
    if rest > 0 {
        counts.insert(
            "No preemption victims found for incoming pod".to_string(),
            rest,
        );
    }
    format!(
        "preemption: 0/{} nodes are available: {}.",
        d.total,
        histogram(&counts)
    )
}

/// The FailedScheduling message: `0/3 nodes are available: 1 Insufficient cpu, 2 node(s)
/// had untolerated taint {..}. preemption: ...`.
pub fn failure_message(d: &Diagnosis, preemption: Option<&str>) -> String {
    if d.total == 0 {
        return NO_NODES.into();
    }
    let mut msg = format!("0/{} nodes are available:", d.total);
    if let Some(p) = &d.pre_filter {
        msg.push_str(&format!(" {p}."));
    }
    if !d.reasons.is_empty() {
        msg.push_str(&format!(" {}.", histogram(&d.reasons)));
    }
    if let Some(p) = preemption {
        msg.push(' ');
        msg.push_str(p);
    }
    msg
}

#[cfg(test)]
#[path = "cycle_tests.rs"]
mod tests;
