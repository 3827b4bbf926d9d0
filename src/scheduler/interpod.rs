//! Cluster-wide rules: required inter-pod affinity and anti-affinity (the incoming pod's
//! terms and the existing pods' anti-affinity terms), topology spread constraints with
//! DoNotSchedule, and the counts behind preferred inter-pod affinity scoring. `prepare`
//! reads the cache once per scheduling cycle, and only the parts the pod asks for, so a
//! pod without such rules costs nothing; `filter` and `preferred_score` then judge one
//! node from those counts. It must never call the API.

use super::cache::{Cache, NodeInfo, PodInfo};
use super::filters::{Reject, Verdict};
use super::selectors::{self, label_selector_matches};
use k8s_openapi::api::core::v1::{PodAffinityTerm, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use std::collections::{HashMap, HashSet};

/// A term's topology key and the domains (values of that key) holding matching pods,
/// with how many.
#[derive(Debug, Default)]
struct Domains {
    key: String,
    counts: HashMap<String, i64>,
}

#[derive(Debug)]
struct Spread {
    key: String,
    max_skew: i64,
    min: i64,
    self_match: i64,
    counts: HashMap<String, i64>,
}

/// Per-cycle state for one pod.
#[derive(Debug, Default)]
pub struct InterPod {
    affinity: Vec<Domains>,
    /// No pod anywhere matches the required affinity, but the pod matches its own terms:
    /// the first pod of a group may go anywhere (upstream does the same).
    affinity_self_satisfied: bool,
    anti_affinity: Vec<Domains>,
    existing_anti: HashSet<(String, String)>,
    spread: Vec<Spread>,
    preferred: Vec<(i64, Domains)>,
}

/// Namespaces a term applies to; `None` means all. A non-empty namespaceSelector would need
/// namespace labels, which the scheduler does not watch yet: such terms fall back to the
/// listed namespaces (or the pod's own).
fn term_namespaces(term: &PodAffinityTerm, own: &str) -> Option<HashSet<String>> {
    if term
        .namespace_selector
        .as_ref()
        .is_some_and(|s| s.match_labels.is_none() && s.match_expressions.is_none())
    {
        return None;
    }
    let listed: HashSet<String> = term.namespaces.iter().flatten().cloned().collect();
    Some(if listed.is_empty() {
        [own.to_string()].into()
    } else {
        listed
    })
}

fn term_matches(term: &PodAffinityTerm, owner_ns: &str, target: &PodInfo) -> bool {
    term_namespaces(term, owner_ns).is_none_or(|ns| ns.contains(&target.namespace))
        && label_selector_matches(term.label_selector.as_ref(), &target.labels)
}

fn count_domains(cache: &Cache, pod: &PodInfo, term: &PodAffinityTerm) -> Domains {
    let mut d = Domains {
        key: term.topology_key.clone(),
        counts: HashMap::new(),
    };
    for info in cache.nodes.values() {
        let Some(value) = info.label(&term.topology_key) else {
            continue;
        };
        let n = info
            .pods
            .values()
            .filter(|p| p.key != pod.key && term_matches(term, &pod.namespace, p))
            .count() as i64;
        if n > 0 {
            *d.counts.entry(value.to_string()).or_insert(0) += n;
        }
    }
    d
}

/// The selector of a spread constraint with `matchLabelKeys` folded in.
fn spread_selector(c: &TopologySpreadConstraint, pod: &PodInfo) -> Option<LabelSelector> {
    let mut s = c.label_selector.clone()?;
    for k in c.match_label_keys.iter().flatten() {
        if let Some(v) = pod.labels.get(k) {
            s.match_expressions
                .get_or_insert_with(Vec::new)
                .push(LabelSelectorRequirement {
                    key: k.clone(),
                    operator: "In".into(),
                    values: Some(vec![v.clone()]),
                });
        }
    }
    Some(s)
}

impl InterPod {
    pub fn prepare(pod: &PodInfo, cache: &Cache) -> InterPod {
        let mut out = InterPod::default();
        let affinity = pod.affinity();
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        let required = pa
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_deref()
            })
            .unwrap_or(&[]);
        for t in required {
            out.affinity.push(count_domains(cache, pod, t));
        }
        out.affinity_self_satisfied = out.affinity.iter().all(|d| d.counts.is_empty())
            && required
                .iter()
                .all(|t| term_matches(t, &pod.namespace, pod));
        for t in pod.required_anti_affinity() {
            out.anti_affinity.push(count_domains(cache, pod, t));
        }
        for existing in cache.with_anti_affinity.values() {
            let Some(node) = cache
                .node_of(&existing.key)
                .and_then(|n| cache.nodes.get(n))
            else {
                continue;
            };
            for t in existing.required_anti_affinity() {
                if existing.key != pod.key && term_matches(t, &existing.namespace, pod) {
                    if let Some(v) = node.label(&t.topology_key) {
                        out.existing_anti
                            .insert((t.topology_key.clone(), v.to_string()));
                    }
                }
            }
        }
        let weighted = |w: Option<&Vec<_>>, sign: i64| {
            w.into_iter()
                .flatten()
                .map(|t: &k8s_openapi::api::core::v1::WeightedPodAffinityTerm| {
                    (
                        sign * t.weight as i64,
                        count_domains(cache, pod, &t.pod_affinity_term),
                    )
                })
                .collect::<Vec<_>>()
        };
        out.preferred = weighted(
            pa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            1,
        );
        out.preferred.extend(weighted(
            paa.and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            -1,
        ));
        out.spread = prepare_spread(pod, cache);
        out
    }

    pub fn filter(&self, pod: &PodInfo, info: &NodeInfo) -> Verdict {
        for d in &self.affinity {
            let ok = match info.label(&d.key) {
                Some(v) => self.affinity_self_satisfied || d.counts.contains_key(v),
                None => false,
            };
            if !ok {
                return Err(Reject::hard("node(s) didn't match pod affinity rules"));
            }
        }
        for d in &self.anti_affinity {
            if info.label(&d.key).is_some_and(|v| d.counts.contains_key(v)) {
                return Err(Reject::soft("node(s) didn't match pod anti-affinity rules"));
            }
        }
        if !self.existing_anti.is_empty() {
            let forbidden = info
                .labels()
                .into_iter()
                .flatten()
                .any(|(k, v)| self.existing_anti.contains(&(k.clone(), v.clone())));
            if forbidden {
                return Err(Reject::soft(
                    "node(s) didn't satisfy existing pods anti-affinity rules",
                ));
            }
        }
        let _ = pod;
        for s in &self.spread {
            let Some(v) = info.label(&s.key) else {
                return Err(Reject::hard(
                    "node(s) didn't match pod topology spread constraints (missing required label)",
                ));
            };
            let here = s.counts.get(v).copied().unwrap_or(0);
            if here + s.self_match - s.min > s.max_skew {
                return Err(Reject::soft(
                    "node(s) didn't match pod topology spread constraints",
                ));
            }
        }
        Ok(())
    }

    /// Sum of weights of the preferred terms satisfied on this node's domains (anti-affinity
    /// terms count negative); normalised across nodes by the scorer.
    pub fn preferred_score(&self, info: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .map(|(w, d)| {
                let n = info
                    .label(&d.key)
                    .and_then(|v| d.counts.get(v))
                    .copied()
                    .unwrap_or(0);
                w * n
            })
            .sum()
    }

    pub fn has_preferred(&self) -> bool {
        !self.preferred.is_empty()
    }
}

fn prepare_spread(pod: &PodInfo, cache: &Cache) -> Vec<Spread> {
    let constraints = pod
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or(&[]);
    let hard: Vec<&TopologySpreadConstraint> = constraints
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
        .collect();
    if hard.is_empty() {
        return Vec::new();
    }
    let tolerations = selectors::pod_tolerations(&pod.pod);
    let mut out = Vec::new();
    for c in hard.iter().copied() {
        let selector = spread_selector(c, pod);
        let honor_affinity = c.node_affinity_policy.as_deref() != Some("Ignore");
        let honor_taints = c.node_taints_policy.as_deref() == Some("Honor");
        let mut counts: HashMap<String, i64> = HashMap::new();
        for info in cache.nodes.values() {
            let Some(node) = info.node.as_deref() else {
                continue;
            };
            // a node counts only if it carries every constraint's key
            if hard.iter().any(|c| info.label(&c.topology_key).is_none()) {
                continue;
            }
            let empty = Default::default();
            let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
            if honor_affinity && !selectors::pod_matches_node(&pod.pod, labels, &info.name) {
                continue;
            }
            let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
            if honor_taints
                && taints.unwrap_or(&[]).iter().any(|t| {
                    (t.effect == "NoSchedule" || t.effect == "NoExecute")
                        && !selectors::tolerated(tolerations, t)
                })
            {
                continue;
            }
            let n = info
                .pods
                .values()
                .filter(|p| {
                    !p.terminating
                        && p.key != pod.key
                        && p.namespace == pod.namespace
                        && label_selector_matches(selector.as_ref(), &p.labels)
                })
                .count() as i64;
            let v = info.label(&c.topology_key).unwrap_or_default();
            *counts.entry(v.to_string()).or_insert(0) += n;
        }
        let min_domains = c.min_domains.unwrap_or(1).max(1) as usize;
        let min = if counts.len() < min_domains {
            0
        } else {
            counts.values().copied().min().unwrap_or(0)
        };
        out.push(Spread {
            key: c.topology_key.clone(),
            max_skew: c.max_skew as i64,
            min,
            self_match: label_selector_matches(selector.as_ref(), &pod.labels) as i64,
            counts,
        });
    }
    out
}

#[cfg(test)]
#[path = "interpod_tests.rs"]
mod tests;
