//! Preemption: when no node fits a pod, find a node where deleting lower-priority pods
//! would let it fit, choose the fewest and least important victims (those whose removal
//! is not needed are spared, most important first), and nominate that node. Honors
//! `preemptionPolicy: Never`. It plans on a copy of the cache and must never change the
//! cache or call the API itself; the scheduler loop carries out the plan.

use super::cache::{Cache, NodeInfo, PodInfo};
use super::cycle::{filter_node, Diagnosis};
use super::interpod::InterPod;
use super::volumebinding::VolumeCheck;
use super::Shared;
use k8s_openapi::api::core::v1::Pod;
use std::sync::Arc;

pub fn may_preempt(pod: &PodInfo) -> bool {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.preemption_policy.as_deref())
        != Some("Never")
}

/// The node to nominate and the pods to delete there.
#[derive(Debug, Clone)]
pub struct Plan {
    pub node: String,
    pub victims: Vec<Arc<Pod>>,
}

/// The victims on one node, or `None` if evicting every lower-priority pod would not do.
pub fn victims_on(
    pod: &PodInfo,
    info: &NodeInfo,
    inter: &InterPod,
    volumes: &VolumeCheck,
) -> Option<Vec<Arc<PodInfo>>> {
    let mut lower: Vec<Arc<PodInfo>> = info
        .pods
        .values()
        .filter(|p| p.priority < pod.priority && !p.terminating)
        .cloned()
        .collect();
    if lower.is_empty() {
        return None;
    }
    let mut trial = info.clone();
    for v in &lower {
        trial.remove_pod(&v.key);
    }
    filter_node(pod, &trial, inter, volumes).ok()?;
    // spare the most important first: put each back if the pod still fits
    lower.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.key.cmp(&b.key)));
    let mut victims = Vec::new();
    for v in lower {
        trial.add_pod(v.clone());
        if filter_node(pod, &trial, inter, volumes).is_err() {
            trial.remove_pod(&v.key);
            victims.push(v);
        }
    }
    Some(victims)
}

pub fn plan(pod: &PodInfo, cache: &Cache, diag: &Diagnosis) -> Option<Plan> {
    if !may_preempt(pod) {
        return None;
    }
    let inter = InterPod::prepare(pod, cache);
    let volumes = VolumeCheck::prepare(pod, &cache.volumes);
    let mut best: Option<((i32, usize, i64), Plan)> = None;
    for name in &diag.resolvable_nodes {
        let Some(info) = cache.nodes.get(name) else {
            continue;
        };
        let Some(victims) = victims_on(pod, info, &inter, &volumes) else {
            continue;
        };
        let top = victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN);
        let sum: i64 = victims.iter().map(|v| v.priority as i64).sum();
        let rank = (top, victims.len(), sum);
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((
                rank,
                Plan {
                    node: name.clone(),
                    victims: victims.iter().map(|v| v.pod.clone()).collect(),
                },
            ));
        }
    }
    best.map(|(_, p)| p)
}

/// A pod already nominated to a node where lower-priority pods are still terminating
/// waits for them rather than evicting more.
fn waiting_on_victims(pod: &PodInfo, cache: &Cache) -> Option<String> {
    let nominated = pod.pod.status.as_ref()?.nominated_node_name.as_deref()?;
    let info = cache.nodes.get(nominated)?;
    info.pods
        .values()
        .any(|p| p.terminating && p.priority < pod.priority)
        .then(|| nominated.to_string())
}

/// Plans preemption for a pod no node fits, starting the evictions; returns the
/// nominated node.
pub fn try_preempt(shared: &Arc<Shared>, pod: &PodInfo, diag: &Diagnosis) -> Option<String> {
    let plan = {
        let mut cache = shared.cache();
        if let Some(node) = waiting_on_victims(pod, &cache) {
            return Some(node);
        }
        let plan = plan(pod, &cache, diag)?;
        cache.nominate(Arc::new(pod.clone()), &plan.node);
        plan
    };
    let preemptor = pod.pod.clone();
    let shared = shared.clone();
    let node = plan.node.clone();
    tokio::spawn(async move {
        for v in &plan.victims {
            let uid = preemptor.metadata.uid.as_deref().unwrap_or("");
            let msg = format!("Preempted by pod {uid} on node {}", plan.node);
            if let Err(e) =
                super::binder::event(&shared.client, v, "Normal", "Preempted", &msg).await
            {
                tracing::debug!(error = %e, "scheduler event");
            }
            if let Err(e) = super::binder::evict(&shared.client, v).await {
                tracing::warn!(error = %e, "preemption");
            }
        }
    });
    Some(node)
}
