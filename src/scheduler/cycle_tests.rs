//! Unit tests of one scheduling attempt: placement, tie-breaking, the failure message,
//! and the preemption plan built from its diagnosis.

use super::*;
use crate::scheduler::testutil::{cache, node, sized};
use rand::SeedableRng;
use serde_json::json;

fn rng() -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(7)
}

#[test]
fn picks_the_node_with_room() {
    let c = cache(
        vec![
            node("small", json!({"status": {"allocatable": {"cpu": "1"}}})),
            node("big", json!({})),
        ],
        vec![],
    );
    let p = sized("p", "2", "1Gi", json!({}));
    assert_eq!(schedule(&p, &c, &mut rng()), Decision::Place("big".into()));
}

#[test]
fn large_clusters_are_searched_in_part_from_where_the_last_pod_stopped() {
    assert_eq!(feasible_nodes_to_find(50), 50);
    assert_eq!(feasible_nodes_to_find(100), 100);
    assert_eq!(feasible_nodes_to_find(1_000), 420);
    assert_eq!(feasible_nodes_to_find(5_000), 500);
    assert_eq!(feasible_nodes_to_find(10_000), 500);

    let nodes = (0..1_000)
        .map(|i| node(&format!("n{i:04}"), json!({})))
        .collect();
    let c = cache(nodes, vec![]);
    let p = sized("p", "1", "1Gi", json!({}));
    let mut start = 0;
    let mut r = rng();
    let first = schedule_from(&p, &c, &mut r, &mut start);
    assert_eq!(start, 420, "{first:?}");
    let Decision::Place(second) = schedule_from(&p, &c, &mut r, &mut start) else {
        panic!("no place");
    };
    assert_eq!(start, 840);
    // The second search covered nodes 420..840 only.
    let i: usize = second[1..].parse().unwrap();
    assert!((420..840).contains(&i), "{second}");
    schedule_from(&p, &c, &mut r, &mut start);
    assert_eq!(start, 260, "wraps around");

    // With no feasible node every node is looked at, for the full diagnosis.
    let huge = sized("huge", "1000", "1Gi", json!({}));
    match schedule_from(&huge, &c, &mut r, &mut start) {
        Decision::NoFit(d) => assert_eq!(d.reasons.values().sum::<usize>(), 1_000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ties_are_broken_at_random() {
    let c = cache(vec![node("a", json!({})), node("b", json!({}))], vec![]);
    let p = sized("p", "1", "1Gi", json!({}));
    let mut r = rng();
    let picks: std::collections::HashSet<_> = (0..50)
        .map(|_| match schedule(&p, &c, &mut r) {
            Decision::Place(n) => n,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(picks.len(), 2);
}

#[test]
fn failure_message_in_upstreams_shape() {
    let c = cache(
        vec![
            node(
                "cp",
                json!({"spec": {"taints": [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]}}),
            ),
            node("w1", json!({"status": {"allocatable": {"cpu": "1"}}})),
            node("w2", json!({"status": {"allocatable": {"cpu": "1"}}})),
        ],
        vec![],
    );
    let p = sized("p", "2", "1Gi", json!({}));
    let Decision::NoFit(d) = schedule(&p, &c, &mut rng()) else {
        panic!("should not fit")
    };
    assert_eq!(d.unresolvable, 1);
    assert_eq!(d.resolvable_nodes, ["w1", "w2"]);
    assert_eq!(
        failure_message(&d, Some(&preemption_message(&d, true))),
        "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, \
         2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, \
         2 No preemption victims found for incoming pod."
    );
    let none = Diagnosis::default();
    assert_eq!(failure_message(&none, None), NO_NODES);
}

#[test]
fn a_missing_claim_is_said_once_for_every_node() {
    let c = cache(vec![node("a", json!({})), node("b", json!({}))], vec![]);
    let p = sized(
        "p",
        "1",
        "1Gi",
        json!({"spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "gone"}}]}}),
    );
    let Decision::NoFit(d) = schedule(&p, &c, &mut rng()) else {
        panic!("should not fit")
    };
    assert_eq!(d.unresolvable, 2);
    assert_eq!(
        failure_message(&d, Some(&preemption_message(&d, true))),
        "0/2 nodes are available: persistentvolumeclaim \"gone\" not found. \
         preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling."
    );
}

/// Preemption plans (preempt.rs), from the diagnosis of a failed attempt.
mod preemption {
    use crate::scheduler::cache::{Cache, PodInfo};
    use crate::scheduler::cycle::Diagnosis;
    use crate::scheduler::cycle::{schedule, Decision};
    use crate::scheduler::preempt::{may_preempt, plan};
    use crate::scheduler::testutil::{cache, node, sized};
    use rand::SeedableRng;
    use serde_json::json;

    fn prio(p: i32) -> serde_json::Value {
        json!({"spec": {"priority": p}})
    }

    fn one_cpu(name: &str) -> k8s_openapi::api::core::v1::Node {
        node(name, json!({"status": {"allocatable": {"cpu": "1"}}}))
    }

    fn diag(p: &PodInfo, c: &Cache) -> Diagnosis {
        match schedule(p, c, &mut rand::rngs::StdRng::seed_from_u64(1)) {
            Decision::NoFit(d) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn evicts_the_fewest_least_important_pods() {
        let c = cache(
            vec![one_cpu("a"), one_cpu("b")],
            vec![
                ("a", sized("a-low", "500m", "1Mi", prio(1))),
                ("a", sized("a-mid", "500m", "1Mi", prio(50))),
                ("b", sized("b-mid", "600m", "1Mi", prio(50))),
                ("b", sized("b-low", "300m", "1Mi", prio(1))),
            ],
        );
        let p = sized("p", "500m", "1Mi", prio(100));
        let plan = plan(&p, &c, &diag(&p, &c)).expect("a plan");
        // on a, only a-low must go (a-mid is spared); on b both would have to
        assert_eq!(plan.node, "a");
        let names: Vec<_> = plan
            .victims
            .iter()
            .map(|v| v.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a-low"]);
    }

    #[test]
    fn never_preempts_equal_or_higher_priority_or_with_policy_never() {
        let c = cache(
            vec![one_cpu("a")],
            vec![("a", sized("peer", "800m", "1Mi", prio(100)))],
        );
        let p = sized("p", "500m", "1Mi", prio(100));
        assert!(plan(&p, &c, &diag(&p, &c)).is_none());
        let c = cache(
            vec![one_cpu("a")],
            vec![("a", sized("low", "800m", "1Mi", prio(1)))],
        );
        let polite = sized(
            "p",
            "500m",
            "1Mi",
            json!({"spec": {"priority": 100, "preemptionPolicy": "Never"}}),
        );
        assert!(!may_preempt(&polite));
        assert!(plan(&polite, &c, &diag(&polite, &c)).is_none());
    }

    #[test]
    fn preemption_does_not_help_unresolvable_nodes() {
        let c = cache(
            vec![node(
                "a",
                json!({"spec": {"taints": [{"key": "x", "effect": "NoSchedule"}]},
                "status": {"allocatable": {"cpu": "1"}}}),
            )],
            vec![("a", sized("low", "800m", "1Mi", prio(1)))],
        );
        let p = sized("p", "500m", "1Mi", prio(100));
        assert!(plan(&p, &c, &diag(&p, &c)).is_none());
    }
}
