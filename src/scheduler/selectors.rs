//! Matching rules shared by filters and scores: node selector terms (labels and
//! `metadata.name` fields), label selectors, and taints against tolerations. Pure functions
//! over API types; this module must never hold state or call the API.

use k8s_openapi::api::core::v1::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use std::collections::BTreeMap;

pub type Labels = BTreeMap<String, String>;

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    let int = |s: &str| s.parse::<i64>().ok();
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), [bound]) = (value.and_then(int), values) else {
                return false;
            };
            let Some(b) = int(bound) else { return false };
            if r.operator == "Gt" {
                v > b
            } else {
                v < b
            }
        }
        _ => false,
    }
}

/// One term: all its expressions and fields hold. A term with neither matches nothing.
pub fn term_matches(t: &NodeSelectorTerm, labels: &Labels, node_name: &str) -> bool {
    let exprs = t.match_expressions.as_deref().unwrap_or(&[]);
    let fields = t.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            let v = (r.key == "metadata.name").then_some(node_name);
            r.key == "metadata.name" && matches!(r.operator.as_str(), "In" | "NotIn") && {
                requirement_matches(r, v)
            }
        })
}

/// Terms are ORed.
pub fn node_selector_matches(s: &NodeSelector, labels: &Labels, node_name: &str) -> bool {
    s.node_selector_terms
        .iter()
        .any(|t| term_matches(t, labels, node_name))
}

/// The pod's `nodeSelector` and required node affinity, both of which must hold.
pub fn pod_matches_node(pod: &Pod, labels: &Labels, node_name: &str) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    let selector_ok = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector_ok && required.is_none_or(|r| node_selector_matches(r, labels, node_name))
}

/// A label selector: `None` matches nothing, `{}` matches everything.
pub fn label_selector_matches(s: Option<&LabelSelector>, labels: &Labels) -> bool {
    let Some(s) = s else { return false };
    let simple = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    simple
        && s.match_expressions.iter().flatten().all(|r| {
            let v = labels.get(&r.key);
            let values = r.values.as_deref().unwrap_or(&[]);
            match r.operator.as_str() {
                "In" => v.is_some_and(|v| values.contains(v)),
                "NotIn" => v.is_none_or(|v| !values.contains(v)),
                "Exists" => v.is_some(),
                "DoesNotExist" => v.is_none(),
                _ => false,
            }
        })
}

pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect_ok = t
        .effect
        .as_deref()
        .is_none_or(|e| e.is_empty() || e == taint.effect);
    let key = t.key.as_deref().unwrap_or("");
    let exists = t.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        // an empty key tolerates every taint, but only with operator Exists
        return exists && effect_ok;
    }
    if key != taint.key || !effect_ok {
        return false;
    }
    exists || t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

pub fn pod_tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn node_selector_operators() {
        let l = labels(&[("zone", "a"), ("cores", "8")]);
        let term = |r: Vec<NodeSelectorRequirement>| NodeSelectorTerm {
            match_expressions: Some(r),
            match_fields: None,
        };
        assert!(term_matches(
            &term(vec![req("zone", "In", &["a", "b"])]),
            &l,
            "n"
        ));
        assert!(!term_matches(
            &term(vec![req("zone", "NotIn", &["a"])]),
            &l,
            "n"
        ));
        assert!(term_matches(
            &term(vec![req("gpu", "NotIn", &["x"])]),
            &l,
            "n"
        ));
        assert!(term_matches(
            &term(vec![req("zone", "Exists", &[])]),
            &l,
            "n"
        ));
        assert!(term_matches(
            &term(vec![req("gpu", "DoesNotExist", &[])]),
            &l,
            "n"
        ));
        assert!(term_matches(
            &term(vec![req("cores", "Gt", &["4"])]),
            &l,
            "n"
        ));
        assert!(!term_matches(
            &term(vec![req("cores", "Lt", &["4"])]),
            &l,
            "n"
        ));
        assert!(!term_matches(
            &term(vec![req("zone", "Gt", &["4"])]),
            &l,
            "n"
        ));
        assert!(!term_matches(&term(vec![]), &l, "n"));
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "In", &["n1"])]),
        };
        assert!(term_matches(&by_name, &l, "n1"));
        assert!(!term_matches(&by_name, &l, "n2"));
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "web")]);
        assert!(!label_selector_matches(None, &l));
        assert!(label_selector_matches(Some(&LabelSelector::default()), &l));
        let s = LabelSelector {
            match_labels: Some([("app".to_string(), "web".to_string())].into()),
            match_expressions: None,
        };
        assert!(label_selector_matches(Some(&s), &l));
        assert!(!label_selector_matches(Some(&s), &labels(&[("app", "db")])));
    }

    #[test]
    fn tolerations() {
        let taint = Taint {
            key: "dedicated".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let t = |key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>| {
            Toleration {
                key: key.map(String::from),
                operator: op.map(String::from),
                value: value.map(String::from),
                effect: effect.map(String::from),
                toleration_seconds: None,
            }
        };
        assert!(tolerates(
            &t(Some("dedicated"), None, Some("gpu"), None),
            &taint
        ));
        assert!(!tolerates(
            &t(Some("dedicated"), None, Some("cpu"), None),
            &taint
        ));
        assert!(tolerates(
            &t(Some("dedicated"), Some("Exists"), None, None),
            &taint
        ));
        assert!(!tolerates(
            &t(Some("dedicated"), Some("Exists"), None, Some("NoExecute")),
            &taint
        ));
        assert!(tolerates(&t(None, Some("Exists"), None, None), &taint));
        assert!(!tolerates(&t(None, None, None, None), &taint));
    }
}
