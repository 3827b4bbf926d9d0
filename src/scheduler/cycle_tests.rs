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
