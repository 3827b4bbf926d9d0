//! Which nodes a DaemonSet runs on, and the pods it makes for them, as upstream decides:
//! the template's nodeName, nodeSelector and required node affinity must match the node,
//! and its NoSchedule/NoExecute taints must be tolerated (with the tolerations every daemon
//! pod gets). A pod that only lacks a NoSchedule toleration keeps running where it is. Pods
//! are pinned to their node with a required node affinity on `metadata.name`, which the
//! scheduler honours, rather than by setting nodeName. Pure functions; no I/O.

use crate::controllers::history::REVISION_LABEL;
use crate::scheduler::selectors;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodTemplateSpec, Toleration,
};
use std::collections::BTreeMap;

/// Upstream's default DaemonSet tolerations: (key, effect). network-unavailable is added
/// only for hostNetwork pods.
const DEFAULT_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// Add (or replace same-key, same-effect) the default daemon tolerations.
fn add_tolerations(template: &mut PodTemplateSpec) {
    let spec = template.spec.get_or_insert_with(Default::default);
    let host_network = spec.host_network == Some(true);
    let tolerations = spec.tolerations.get_or_insert_with(Vec::new);
    let mut wanted: Vec<(&str, &str)> = DEFAULT_TOLERATIONS.to_vec();
    if host_network {
        wanted.push((NETWORK_UNAVAILABLE, "NoSchedule"));
    }
    for (key, effect) in wanted {
        let t = Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(effect.into()),
            value: None,
            toleration_seconds: None,
        };
        // upstream's AddOrUpdateTolerationInPod: an identical one is left, a toleration
        // with the same key, operator and effect is replaced
        if tolerations.contains(&t) {
            continue;
        }
        tolerations.retain(|o| {
            !(o.key == t.key
                && o.operator.as_deref().unwrap_or("Equal") == "Exists"
                && o.effect == t.effect)
        });
        tolerations.push(t);
    }
}

/// The DaemonSet's template as its pods get it: default tolerations and the
/// `controller-revision-hash` label of the current revision.
pub fn pod_template(ds: &DaemonSet, hash: &str) -> PodTemplateSpec {
    let mut t = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    add_tolerations(&mut t);
    let meta = t.metadata.get_or_insert_with(Default::default);
    let labels = meta.labels.get_or_insert_with(BTreeMap::new);
    if let Some(g) = template_generation(ds) {
        labels.insert(TEMPLATE_GENERATION_LABEL.into(), g.to_string());
    }
    labels.insert(REVISION_LABEL.into(), hash.into());
    t
}

/// The label upstream's controller puts on daemon pods: the template generation they
/// were made from.
pub const TEMPLATE_GENERATION_LABEL: &str = "pod-template-generation";
/// Where the API server keeps a DaemonSet's template generation (it counts template
/// changes only).
const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// The DaemonSet's template generation: its annotation, or for an object written without
/// one, its metadata.generation.
fn template_generation(ds: &DaemonSet) -> Option<i64> {
    ds.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
        .and_then(|g| g.parse().ok())
        .or(ds.metadata.generation)
}

/// Pin a pod to `node`: its required node affinity becomes one term matching the node's
/// name (upstream's ReplaceDaemonSetPodNodeNameNodeAffinity; eligibility was checked
/// against the template's own affinity before).
pub fn pin_to_node(t: &mut PodTemplateSpec, node: &str) {
    let spec = t.spec.get_or_insert_with(Default::default);
    let term = NodeSelectorTerm {
        match_expressions: None,
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.into()]),
        }]),
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let na = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    na.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
}

/// The node a daemon pod is for: its nodeName, or else the `metadata.name` its required
/// node affinity pins it to (upstream's GetTargetNodeName).
pub fn target_node(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(n.to_string());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms.iter().find_map(|t| {
        t.match_fields.iter().flatten().find_map(|f| {
            let values = f.values.as_deref().unwrap_or(&[]);
            (f.key == "metadata.name" && f.operator == "In" && values.len() == 1)
                .then(|| values[0].clone())
        })
    })
}

/// Whether the DaemonSet should run a pod on `node`, and whether a pod already there may
/// keep running (upstream's NodeShouldRunDaemonPod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eligibility {
    pub should_run: bool,
    pub should_continue: bool,
}

pub fn eligibility(ds: &DaemonSet, node: &Node) -> Eligibility {
    const NO: Eligibility = Eligibility {
        should_run: false,
        should_continue: false,
    };
    let mut template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    add_tolerations(&mut template);
    let node_name = node.metadata.name.as_deref().unwrap_or("");
    let spec = template.spec.clone().unwrap_or_default();
    if spec
        .node_name
        .as_deref()
        .is_some_and(|n| !n.is_empty() && n != node_name)
    {
        return NO;
    }
    let pod = Pod {
        metadata: Default::default(),
        spec: Some(spec),
        status: None,
    };
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    if !selectors::pod_matches_node(&pod, labels, node_name) {
        return NO;
    }
    let tolerations = selectors::pod_tolerations(&pod);
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[]);
    let untolerated = |effect: &str| {
        taints
            .iter()
            .any(|t| t.effect == effect && !selectors::tolerated(tolerations, t))
    };
    let no_execute = untolerated("NoExecute");
    Eligibility {
        should_run: !no_execute && !untolerated("NoSchedule"),
        should_continue: !no_execute,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Taint;
    use serde_json::json;

    fn ds(spec: serde_json::Value) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"app": "d"}},
                "template": {"metadata": {"labels": {"app": "d"}}, "spec": spec},
            }
        }))
        .unwrap()
    }

    fn node(name: &str, labels: &[(&str, &str)], taints: &[(&str, &str)]) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n.metadata.labels = Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        n.spec = Some(Default::default());
        n.spec.as_mut().unwrap().taints = Some(
            taints
                .iter()
                .map(|(k, e)| Taint {
                    key: k.to_string(),
                    effect: e.to_string(),
                    ..Default::default()
                })
                .collect(),
        );
        n
    }

    fn yes(run: bool, cont: bool) -> Eligibility {
        Eligibility {
            should_run: run,
            should_continue: cont,
        }
    }

    #[test]
    fn selectors_affinity_and_taints() {
        let plain = ds(json!({"containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(eligibility(&plain, &node("a", &[], &[])), yes(true, true));
        // the default tolerations cover cordoned and not-ready nodes
        let cordoned = node(
            "a",
            &[],
            &[("node.kubernetes.io/unschedulable", "NoSchedule")],
        );
        assert_eq!(eligibility(&plain, &cordoned), yes(true, true));
        let not_ready = node("a", &[], &[("node.kubernetes.io/not-ready", "NoExecute")]);
        assert_eq!(eligibility(&plain, &not_ready), yes(true, true));
        // a NoSchedule taint stops new pods, a NoExecute one evicts
        let dedicated = node("a", &[], &[("dedicated", "NoSchedule")]);
        assert_eq!(eligibility(&plain, &dedicated), yes(false, true));
        let evict = node("a", &[], &[("dedicated", "NoExecute")]);
        assert_eq!(eligibility(&plain, &evict), yes(false, false));
        // network-unavailable only for hostNetwork
        let net = node("a", &[], &[(NETWORK_UNAVAILABLE, "NoSchedule")]);
        assert_eq!(eligibility(&plain, &net), yes(false, true));
        let host = ds(json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(eligibility(&host, &net), yes(true, true));

        let selective = ds(json!({
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["z1"]}
                ]}]
            }}},
            "tolerations": [{"key": "dedicated", "operator": "Exists"}],
            "containers": [{"name": "c", "image": "i"}]
        }));
        let fits = node(
            "a",
            &[("disk", "ssd"), ("zone", "z1")],
            &[("dedicated", "NoExecute")],
        );
        assert_eq!(eligibility(&selective, &fits), yes(true, true));
        let wrong_zone = node("a", &[("disk", "ssd"), ("zone", "z2")], &[]);
        assert_eq!(eligibility(&selective, &wrong_zone), yes(false, false));
        let no_disk = node("a", &[("zone", "z1")], &[]);
        assert_eq!(eligibility(&selective, &no_disk), yes(false, false));
        let named = ds(json!({"nodeName": "b", "containers": [{"name": "c", "image": "i"}]}));
        assert_eq!(eligibility(&named, &node("a", &[], &[])), yes(false, false));
    }

    #[test]
    fn pods_are_pinned_and_tolerant() {
        let host = ds(
            json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i"}],
            "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}),
        );
        let mut t = pod_template(&host, "abc");
        pin_to_node(&mut t, "node-1");
        let labels = t.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(labels[REVISION_LABEL], "abc");
        // written without the annotation: metadata.generation stands in
        assert!(!labels.contains_key(TEMPLATE_GENERATION_LABEL));
        let mut gen = host.clone();
        gen.metadata.generation = Some(4);
        let t = pod_template(&gen, "abc");
        let labels = t.metadata.as_ref().unwrap().labels.as_ref().unwrap();
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "4");
        gen.metadata.annotations = Some(BTreeMap::from([(
            TEMPLATE_GENERATION_ANNOTATION.to_string(),
            "2".to_string(),
        )]));
        let labels = pod_template(&gen, "abc").metadata.unwrap().labels.unwrap();
        assert_eq!(labels[TEMPLATE_GENERATION_LABEL], "2");
        let mut t = pod_template(&host, "abc");
        pin_to_node(&mut t, "node-1");
        let tol = t.spec.as_ref().unwrap().tolerations.as_ref().unwrap();
        assert_eq!(tol.len(), 7, "{tol:?}");
        let pod = Pod {
            spec: t.spec.clone(),
            ..Default::default()
        };
        assert_eq!(target_node(&pod).as_deref(), Some("node-1"));
        let mut bound = pod.clone();
        bound.spec.as_mut().unwrap().node_name = Some("node-2".into());
        assert_eq!(target_node(&bound).as_deref(), Some("node-2"));
        assert_eq!(target_node(&Pod::default()), None);
    }
}
