use super::*;
use serde_json::json;

fn job(extra: serde_json::Value) -> Job {
    let mut spec = json!({"template": {"spec": {"containers": [], "restartPolicy": "Never"}}});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        s.extend(e.clone());
    }
    serde_json::from_value(json!({"metadata": {"name": "j"}, "spec": spec})).unwrap()
}

fn failed_pod(name: &str, code: i32, finished: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "status": {
            "phase": "Failed",
            "containerStatuses": [{
                "name": "main", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": code, "finishedAt": finished}}
            }]
        }
    }))
    .unwrap()
}

fn succeeded_pod(finished: &str) -> Pod {
    let mut p = failed_pod("ok", 0, finished);
    p.status.as_mut().unwrap().phase = Some("Succeeded".into());
    p
}

#[test]
fn failure_policy_rules_in_order() {
    let j = job(json!({"podFailurePolicy": {"rules": [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}},
        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}},
        {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [1]}}
    ]}}));
    let p = failed_pod("p", 42, "2026-01-01T00:01:00Z");
    assert_eq!(
        verdict(&j, &p),
        Verdict::FailJob(
            "Container main for pod ns/p failed with exit code 42 matching FailJob rule at index 1"
                .into()
        )
    );
    assert_eq!(
        verdict(&j, &failed_pod("p", 7, "2026-01-01T00:01:00Z")),
        Verdict::Count
    );
    assert_eq!(
        verdict(&j, &failed_pod("p", 1, "2026-01-01T00:01:00Z")),
        Verdict::FailIndex
    );
    let mut disrupted = failed_pod("p", 42, "2026-01-01T00:01:00Z");
    disrupted.status.as_mut().unwrap().conditions = Some(vec![serde_json::from_value(
        json!({"type": "DisruptionTarget", "status": "True"}),
    )
    .unwrap()]);
    assert_eq!(verdict(&j, &disrupted), Verdict::Ignore);
    // exit code 0 never matches, and pods that did not fail are not judged
    assert_eq!(
        verdict(&j, &failed_pod("p", 0, "2026-01-01T00:01:00Z")),
        Verdict::Count
    );
    assert_eq!(
        verdict(&j, &succeeded_pod("2026-01-01T00:01:00Z")),
        Verdict::Count
    );
}

#[test]
fn deleted_pods_count_as_failed_unless_only_failed_are_replaced() {
    let mut p = succeeded_pod("2026-01-01T00:01:00Z");
    p.status.as_mut().unwrap().phase = Some("Running".into());
    p.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-01-01T00:02:00Z".parse().unwrap(),
    ));
    assert!(is_failed(&p, &job(json!({}))));
    assert!(!is_failed(
        &p,
        &job(json!({"podReplacementPolicy": "Failed"}))
    ));
}

#[test]
fn backoff_doubles_and_resets_after_success() {
    let j = job(json!({}));
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    let f1 = failed_pod("a", 1, "2026-01-01T00:00:00Z");
    let f2 = failed_pod("b", 1, "2026-01-01T00:00:30Z");
    let f3 = failed_pod("c", 1, "2026-01-01T00:01:00Z");
    let now = t("2026-01-01T00:01:05Z");
    assert_eq!(
        backoff_remaining(&j, [&f1].into_iter(), t("2026-01-01T00:00:04Z")),
        Some(Duration::from_secs(6))
    );
    // three failures: 40 s after the last one
    assert_eq!(
        backoff_remaining(&j, [&f1, &f2, &f3].into_iter(), now),
        Some(Duration::from_secs(35))
    );
    // a success in between: only the last failure counts
    let ok = succeeded_pod("2026-01-01T00:00:45Z");
    assert_eq!(
        backoff_remaining(&j, [&f1, &f2, &ok, &f3].into_iter(), now),
        Some(Duration::from_secs(5))
    );
    assert_eq!(backoff_remaining(&j, [&f1].into_iter(), now), None);
    // capped at six minutes
    let many: Vec<Pod> = (0..12)
        .map(|i| failed_pod(&format!("p{i}"), 1, "2026-01-01T00:01:00Z"))
        .collect();
    assert_eq!(
        backoff_remaining(&j, many.iter(), t("2026-01-01T00:01:00Z")),
        Some(Duration::from_secs(360))
    );
}
