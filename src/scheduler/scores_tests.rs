//! Unit tests of each score and of their weighted sum.

use super::*;
use crate::scheduler::testutil::{info, node, pod, sized};
use serde_json::json;
use std::sync::Arc;

#[test]
fn least_allocated_prefers_emptier_nodes() {
    let empty = info(node("a", json!({})));
    let mut busy = info(node("b", json!({})));
    busy.add_pod(Arc::new(sized("x", "3", "6Gi", json!({}))));
    let p = sized("p", "1", "2Gi", json!({}));
    // 4 cpu, 8Gi: (3/4 + 6/8)/2 free = 75
    assert_eq!(least_allocated(&p, &empty), 75);
    assert_eq!(least_allocated(&p, &busy), 0);
}

#[test]
fn balanced_allocation_prefers_even_use() {
    let n = info(node("a", json!({})));
    let even = sized("p", "2", "4Gi", json!({}));
    let skewed = sized("q", "4", "100Mi", json!({}));
    assert_eq!(balanced_allocation(&even, &n), 100);
    assert!(balanced_allocation(&skewed, &n) < 60);
}

#[test]
fn preferred_node_affinity_and_taints() {
    let n = node(
        "a",
        json!({"metadata": {"labels": {"disk": "ssd"}},
            "spec": {"taints": [{"key": "meh", "effect": "PreferNoSchedule"}, {"key": "x", "effect": "NoSchedule"}]}}),
    );
    let p = pod(
        "p",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 30, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}},
            {"weight": 5, "preference": {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["hdd"]}]}}
        ]}}}}),
    );
    assert_eq!(node_affinity_raw(&p, &n), 30);
    assert_eq!(taint_raw(&p, &n), 1, "only PreferNoSchedule counts");
    let tolerant = pod(
        "p",
        json!({"spec": {"tolerations": [{"key": "meh", "operator": "Exists"}]}}),
    );
    assert_eq!(taint_raw(&tolerant, &n), 0);
}

#[test]
fn image_locality_scores_present_images() {
    assert_eq!(normalize_image("nginx"), "docker.io/library/nginx:latest");
    assert_eq!(normalize_image("me/app:1"), "docker.io/me/app:1");
    assert_eq!(
        normalize_image("registry.local:5000/app:2"),
        "registry.local:5000/app:2"
    );
    let with = node(
        "a",
        json!({"status": {"images": [{"names": ["docker.io/library/big:1"], "sizeBytes": 500u64 << 20}]}}),
    );
    let without = node("b", json!({}));
    let p = pod(
        "p",
        json!({"spec": {"containers": [{"name": "c", "image": "big:1"}]}}),
    );
    let everywhere = |_: &str| 1.0;
    let s = image_locality(&p, &with, &everywhere);
    assert!(s > 40 && s < 60, "{s}");
    assert_eq!(image_locality(&p, &without, &everywhere), 0);
    let half = |_: &str| 0.5;
    assert!(image_locality(&p, &with, &half) < s);
}

#[test]
fn weighted_sum_prefers_untainted_empty_nodes() {
    let tainted = info(node(
        "a",
        json!({"spec": {"taints": [{"key": "meh", "effect": "PreferNoSchedule"}]}}),
    ));
    let clean = info(node("b", json!({})));
    let p = sized("p", "100m", "100Mi", json!({}));
    let all: Vec<&k8s_openapi::api::core::v1::Node> = vec![
        tainted.node.as_deref().unwrap(),
        clean.node.as_deref().unwrap(),
    ];
    let s = score(&p, &[&tainted, &clean], &InterPod::default(), &all);
    assert_eq!(s[1] - s[0], 300, "taint toleration weighs 3 x 100");
}

#[test]
fn preferred_inter_pod_affinity_is_normalised_across_nodes() {
    use crate::scheduler::testutil::cache;
    let zone = |n: &str, z: &str| node(n, json!({"metadata": {"labels": {"zone": z}}}));
    let db = pod(
        "db",
        json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
        {"name": "c", "image": "x", "resources": {"requests": {"cpu": "0", "memory": "0"}}}]}}),
    );
    let c = cache(vec![zone("a", "a"), zone("b", "b")], vec![("a", db)]);
    let p = pod(
        "web",
        json!({"spec": {"affinity": {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 5, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "zone"}}
        ]}}}}),
    );
    let inter = InterPod::prepare(&p, &c);
    let (a, b) = (&c.nodes["a"], &c.nodes["b"]);
    let all = vec![a.node.as_deref().unwrap(), b.node.as_deref().unwrap()];
    let s = score(&p, &[a, b], &inter, &all);
    // inter-pod affinity: 100 on a, 0 on b, weight 2; the db pod's default requests
    // (100m, 200Mi) cost a at most a point of least-allocated and balance
    assert!((s[0] - s[1] - 200).abs() <= 3, "{s:?}");
}
