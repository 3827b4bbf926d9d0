//! Unit tests of inter-pod affinity, anti-affinity and topology spread over small caches.

use super::*;
use crate::scheduler::testutil::{cache, node, pod};
use serde_json::{json, Value};

fn zone(name: &str, z: &str) -> k8s_openapi::api::core::v1::Node {
    node(name, json!({"metadata": {"labels": {"zone": z}}}))
}

fn labelled(name: &str, app: &str, extra: Value) -> PodInfo {
    let mut v = json!({"metadata": {"labels": {"app": app}}});
    crate::scheduler::testutil::merge(&mut v, extra);
    pod(name, v)
}

fn term(kind: &str, app: &str, key: &str) -> Value {
    json!({"spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}}})
}

fn verdict(p: &PodInfo, c: &Cache, node: &str) -> Verdict {
    InterPod::prepare(p, c).filter(p, &c.nodes[node])
}

#[test]
fn required_affinity_follows_matching_pods_by_topology() {
    let c = cache(
        vec![zone("a1", "a"), zone("a2", "a"), zone("b1", "b")],
        vec![("a1", labelled("db", "db", json!({})))],
    );
    let p = pod("web", term("podAffinity", "db", "zone"));
    assert!(verdict(&p, &c, "a1").is_ok());
    assert!(verdict(&p, &c, "a2").is_ok(), "same zone as the db pod");
    assert_eq!(
        verdict(&p, &c, "b1"),
        Err(Reject::hard("node(s) didn't match pod affinity rules"))
    );
    // other namespaces do not count unless the term lists them
    let mut other = labelled("db", "db", json!({}));
    other.namespace = "prod".into();
    other.key = "prod/db".into();
    let c2 = cache(vec![zone("a1", "a")], vec![("a1", other)]);
    assert!(verdict(&p, &c2, "a1").is_err());
}

#[test]
fn first_pod_of_a_self_affine_group_goes_anywhere() {
    let c = cache(vec![zone("a1", "a")], vec![]);
    let p = labelled("web", "web", term("podAffinity", "web", "zone"));
    assert!(verdict(&p, &c, "a1").is_ok());
    let stranger = pod("x", term("podAffinity", "web", "zone"));
    assert!(verdict(&stranger, &c, "a1").is_err());
}

#[test]
fn anti_affinity_both_ways() {
    let existing = labelled(
        "db0",
        "db",
        term("podAntiAffinity", "db", "kubernetes.io/hostname"),
    );
    let c = cache(
        vec![node("n1", json!({})), node("n2", json!({}))],
        vec![("n1", existing)],
    );
    // the newcomer's own anti-affinity
    let p = pod("x", term("podAntiAffinity", "db", "kubernetes.io/hostname"));
    assert_eq!(
        verdict(&p, &c, "n1"),
        Err(Reject::soft("node(s) didn't match pod anti-affinity rules"))
    );
    assert!(verdict(&p, &c, "n2").is_ok());
    // the existing pod's anti-affinity repels a db newcomer without rules of its own
    let q = labelled("db1", "db", json!({}));
    assert_eq!(
        verdict(&q, &c, "n1"),
        Err(Reject::soft(
            "node(s) didn't satisfy existing pods anti-affinity rules"
        ))
    );
    assert!(verdict(&labelled("web", "web", json!({})), &c, "n1").is_ok());
}

fn spread(max_skew: i32, extra: Value) -> Value {
    let mut c = json!({"maxSkew": max_skew, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule",
        "labelSelector": {"matchLabels": {"app": "web"}}});
    crate::scheduler::testutil::merge(&mut c, extra);
    json!({"spec": {"topologySpreadConstraints": [c]}})
}

#[test]
fn topology_spread_skew() {
    let c = cache(
        vec![zone("a1", "a"), zone("b1", "b"), node("nolabel", json!({}))],
        vec![
            ("a1", labelled("w0", "web", json!({}))),
            ("a1", labelled("w1", "web", json!({}))),
            ("b1", labelled("w2", "web", json!({}))),
        ],
    );
    let p = labelled("w3", "web", spread(1, json!({})));
    // a: 2+1-1 = 2 > 1; b: 1+1-1 = 1
    assert_eq!(
        verdict(&p, &c, "a1"),
        Err(Reject::soft(
            "node(s) didn't match pod topology spread constraints"
        ))
    );
    assert!(verdict(&p, &c, "b1").is_ok());
    assert!(verdict(&p, &c, "nolabel").unwrap_err().unresolvable);
    // a wider skew allows it
    assert!(verdict(&labelled("w3", "web", spread(2, json!({}))), &c, "a1").is_ok());
    // ScheduleAnyway constraints never filter
    let soft = labelled(
        "w3",
        "web",
        spread(1, json!({"whenUnsatisfiable": "ScheduleAnyway"})),
    );
    assert!(verdict(&soft, &c, "a1").is_ok());
    // minDomains above the domains there are: the global minimum counts as 0
    let min = labelled("w3", "web", spread(2, json!({"minDomains": 3})));
    assert!(verdict(&min, &c, "a1").is_err());
}

#[test]
fn preferred_affinity_counts_weights() {
    let c = cache(
        vec![zone("a1", "a"), zone("b1", "b")],
        vec![("a1", labelled("db", "db", json!({})))],
    );
    let p = pod(
        "web",
        json!({"spec": {"affinity": {
            "podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 10,
                "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]},
            "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 3,
                "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}]}
        }}}),
    );
    let s = InterPod::prepare(&p, &c);
    assert!(s.has_preferred());
    assert_eq!(s.preferred_score(&c.nodes["a1"]), 7);
    assert_eq!(s.preferred_score(&c.nodes["b1"]), 0);
}
