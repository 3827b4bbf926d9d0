//! Unit tests of the scheduling queue: order, back-off, unschedulable pods and moves.
//! They wait on the real clock (a few seconds in all).

use super::*;
use crate::scheduler::testutil::pod_obj;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn p(name: &str, priority: i32, created: &str) -> Arc<Pod> {
    Arc::new(pod_obj(
        name,
        json!({"metadata": {"creationTimestamp": created}, "spec": {"priority": priority}}),
    ))
}

async fn pop_key(q: &Queue) -> String {
    let c = CancellationToken::new();
    tokio::time::timeout(Duration::from_secs(15), q.pop(&c))
        .await
        .expect("a pod")
        .expect("not cancelled")
        .key
}

#[tokio::test]
async fn priority_then_age() {
    let q = Queue::default();
    q.add_or_update("default/young", p("young", 5, "2024-01-02T00:00:00Z"));
    q.add_or_update("default/old", p("old", 5, "2024-01-01T00:00:00Z"));
    q.add_or_update("default/vip", p("vip", 100, "2024-01-03T00:00:00Z"));
    assert_eq!(pop_key(&q).await, "default/vip");
    assert_eq!(pop_key(&q).await, "default/old");
    assert_eq!(pop_key(&q).await, "default/young");
}

#[test]
fn backoff_doubles_to_ten_seconds() {
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(2), Duration::from_secs(2));
    assert_eq!(backoff(4), Duration::from_secs(8));
    assert_eq!(backoff(5), Duration::from_secs(10));
    assert_eq!(backoff(50), Duration::from_secs(10));
}

#[tokio::test]
async fn unschedulable_waits_for_a_cluster_change_and_its_backoff() {
    let q = Queue::default();
    q.add_or_update("default/a", p("a", 0, "2024-01-01T00:00:00Z"));
    let c = CancellationToken::new();
    let popped = q.pop(&c).await.unwrap();
    q.failed(popped.moves, &popped.key, true);
    // nothing changed: it stays out of the active queue, even past its back-off
    let waited = tokio::time::timeout(Duration::from_millis(1500), q.pop(&c)).await;
    assert!(waited.is_err());
    let start = Instant::now();
    q.move_all();
    assert_eq!(pop_key(&q).await, "default/a");
    assert!(
        start.elapsed() < Duration::from_millis(100),
        "its back-off is over"
    );
}

#[tokio::test]
async fn change_during_attempt_goes_to_backoff() {
    let q = Queue::default();
    q.add_or_update("default/a", p("a", 0, "2024-01-01T00:00:00Z"));
    let c = CancellationToken::new();
    let popped = q.pop(&c).await.unwrap();
    q.move_all(); // a node appeared while the pod was being judged
    q.failed(popped.moves, &popped.key, true);
    let start = Instant::now();
    assert_eq!(pop_key(&q).await, "default/a");
    assert!(start.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn binding_errors_retry_after_backoff() {
    let q = Queue::default();
    q.add_or_update("default/a", p("a", 0, "2024-01-01T00:00:00Z"));
    let c = CancellationToken::new();
    let mut popped = q.pop(&c).await.unwrap();
    for expected in [1.0, 2.0] {
        q.failed(popped.moves, &popped.key, false);
        let start = Instant::now();
        popped = tokio::time::timeout(Duration::from_secs(15), q.pop(&c))
            .await
            .expect("a pod")
            .expect("not cancelled");
        let waited = start.elapsed().as_secs_f64();
        assert!(
            waited >= expected - 0.05 && waited < expected + 1.0,
            "{waited} vs {expected}"
        );
    }
}

#[tokio::test]
async fn deleted_pods_leave_the_queue() {
    let q = Queue::default();
    q.add_or_update("default/a", p("a", 0, "2024-01-01T00:00:00Z"));
    q.add_or_update("default/b", p("b", 0, "2024-01-02T00:00:00Z"));
    q.delete("default/a");
    assert_eq!(pop_key(&q).await, "default/b");
    assert!(q.keys().is_empty() || q.keys() == ["default/b"]);
}
