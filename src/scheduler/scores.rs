//! Scores for the nodes that passed the filters, each 0-100, combined with upstream's
//! default weights: taint toleration 3, node affinity 2, inter-pod affinity 2, least
//! allocated 1, balanced allocation 1, image locality 1. Raw per-node values are normalised
//! across the candidates where upstream does so. Pure functions; this module must never
//! call the API or reject a node.

use super::cache::{NodeInfo, PodInfo};
use super::filters::usage_fractions;
use super::interpod::InterPod;
use super::selectors;
use k8s_openapi::api::core::v1::Node;

pub const MAX: i64 = 100;
const WEIGHT_TAINT: i64 = 3;
const WEIGHT_NODE_AFFINITY: i64 = 2;
const WEIGHT_INTERPOD: i64 = 2;
const WEIGHT_LEAST: i64 = 1;
const WEIGHT_BALANCED: i64 = 1;
const WEIGHT_IMAGE: i64 = 1;
const MB: i64 = 1024 * 1024;
/// Image locality ignores images smaller than this and saturates at the upper bound
/// per container, as upstream does, so tiny images do not dominate.
const IMAGE_MIN: i64 = 23 * MB;
const IMAGE_MAX_PER_CONTAINER: i64 = 1000 * MB;

/// Free share of cpu and memory after placing the pod, averaged.
pub fn least_allocated(pod: &PodInfo, info: &NodeInfo) -> i64 {
    let parts = usage_fractions(pod, info).map(|(used, alloc)| {
        if alloc <= 0 || used > alloc {
            0
        } else {
            (alloc - used) * MAX / alloc
        }
    });
    parts.iter().sum::<i64>() / parts.len() as i64
}

/// How evenly cpu and memory would be used: 100 when the fractions are equal.
pub fn balanced_allocation(pod: &PodInfo, info: &NodeInfo) -> i64 {
    let f = usage_fractions(pod, info).map(|(used, alloc)| {
        if alloc <= 0 {
            1.0
        } else {
            (used as f64 / alloc as f64).min(1.0)
        }
    });
    let std = (f[0] - f[1]).abs() / 2.0;
    ((1.0 - std) * MAX as f64) as i64
}

/// Sum of the weights of the pod's preferred node affinity terms this node matches.
pub fn node_affinity_raw(pod: &PodInfo, node: &Node) -> i64 {
    let empty = Default::default();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let name = node.metadata.name.as_deref().unwrap_or("");
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|t| selectors::term_matches(&t.preference, labels, name))
        .map(|t| t.weight as i64)
        .sum()
}

/// How many PreferNoSchedule taints the pod does not tolerate.
pub fn taint_raw(pod: &PodInfo, node: &Node) -> i64 {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    if taints.is_none_or(|t| t.is_empty()) {
        return 0;
    }
    let tolerations: Vec<_> = selectors::pod_tolerations(&pod.pod)
        .iter()
        .filter(|t| {
            t.effect
                .as_deref()
                .is_none_or(|e| e.is_empty() || e == "PreferNoSchedule")
        })
        .cloned()
        .collect();
    taints
        .unwrap_or(&[])
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !selectors::tolerated(&tolerations, t))
        .count() as i64
}

/// `nginx` and `docker.io/library/nginx:latest` name the same image.
pub fn normalize_image(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    let mut full = if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    };
    let first = full.split('/').next().unwrap_or("");
    let has_registry =
        full.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    if !has_registry {
        full = if full.contains('/') {
            format!("docker.io/{full}")
        } else {
            format!("docker.io/library/{full}")
        };
    }
    full
}

/// Sizes of the pod's images present on the node, each scaled by the share of nodes that
/// have it (an image everywhere says little), clamped and mapped to 0-100.
pub fn image_locality(pod: &PodInfo, node: &Node, spread: &dyn Fn(&str) -> f64) -> i64 {
    let Some(spec) = pod.pod.spec.as_ref() else {
        return 0;
    };
    let images = node
        .status
        .as_ref()
        .and_then(|s| s.images.as_deref())
        .unwrap_or(&[]);
    if images.is_empty() {
        return 0;
    }
    let mut sum = 0i64;
    for c in &spec.containers {
        let Some(want) = c.image.as_deref().map(normalize_image) else {
            continue;
        };
        let found = images
            .iter()
            .find(|i| i.names.iter().flatten().any(|n| normalize_image(n) == want));
        if let Some(img) = found {
            sum += (img.size_bytes.unwrap_or(0) as f64 * spread(&want)) as i64;
        }
    }
    let max = IMAGE_MAX_PER_CONTAINER * spec.containers.len().max(1) as i64;
    let sum = sum.clamp(IMAGE_MIN, max);
    (sum - IMAGE_MIN) * MAX / (max - IMAGE_MIN)
}

/// Weighted totals for `nodes` (all passed the filters), in the same order.
pub fn score(
    pod: &PodInfo,
    nodes: &[&NodeInfo],
    inter: &InterPod,
    all_nodes: &[&Node],
) -> Vec<i64> {
    fn node_of(i: &NodeInfo) -> &Node {
        i.node.as_deref().expect("filtered nodes have a Node")
    }
    // what the pod does not ask for, and what a node's facts rule out, is not computed
    let preferred_affinity = pod
        .affinity()
        .and_then(|a| a.node_affinity.as_ref())
        .is_some_and(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
                .is_some_and(|p| !p.is_empty())
        });
    let affinity: Vec<i64> = nodes
        .iter()
        .map(|i| {
            if preferred_affinity {
                node_affinity_raw(pod, node_of(i))
            } else {
                0
            }
        })
        .collect();
    let taints: Vec<i64> = nodes
        .iter()
        .map(|i| {
            if i.facts.soft_taints {
                taint_raw(pod, node_of(i))
            } else {
                0
            }
        })
        .collect();
    let interpod: Vec<i64> = if inter.has_preferred() {
        nodes.iter().map(|i| inter.preferred_score(i)).collect()
    } else {
        vec![0; nodes.len()]
    };
    let total = all_nodes.len().max(1) as f64;
    let spread = |image: &str| {
        let have = all_nodes
            .iter()
            .filter(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.images.as_ref())
                    .is_some_and(|imgs| {
                        imgs.iter().any(|i| {
                            i.names
                                .iter()
                                .flatten()
                                .any(|x| normalize_image(x) == image)
                        })
                    })
            })
            .count();
        have as f64 / total
    };
    let max_aff = affinity.iter().copied().max().unwrap_or(0);
    let max_taint = taints.iter().copied().max().unwrap_or(0);
    let (min_ip, max_ip) = (
        interpod.iter().copied().min().unwrap_or(0),
        interpod.iter().copied().max().unwrap_or(0),
    );
    nodes
        .iter()
        .enumerate()
        .map(|(k, info)| {
            let aff = if max_aff > 0 {
                affinity[k] * MAX / max_aff
            } else {
                0
            };
            let taint = if max_taint > 0 {
                MAX - taints[k] * MAX / max_taint
            } else {
                MAX
            };
            let ip = if max_ip > min_ip {
                (interpod[k] - min_ip) * MAX / (max_ip - min_ip)
            } else {
                0
            };
            WEIGHT_TAINT * taint
                + WEIGHT_NODE_AFFINITY * aff
                + WEIGHT_INTERPOD * ip
                + WEIGHT_LEAST * least_allocated(pod, info)
                + WEIGHT_BALANCED * balanced_allocation(pod, info)
                + if info.facts.has_images {
                    WEIGHT_IMAGE * image_locality(pod, node_of(info), &spread)
                } else {
                    0
                }
        })
        .collect()
}

#[cfg(test)]
#[path = "scores_tests.rs"]
mod tests;
