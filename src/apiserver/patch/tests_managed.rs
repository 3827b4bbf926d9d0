//! Ownership recorded by ordinary writes, and how it meets apply.

use serde_json::{json, Value};

use super::tests_apply::deployment;
use super::{apply, track_update, PatchError};

const T0: &str = "2024-01-01T00:00:00Z";
const T1: &str = "2024-01-01T00:01:00Z";
const T2: &str = "2024-01-01T00:02:00Z";

fn ok(r: Result<Value, PatchError>) -> Value {
    r.unwrap_or_else(|e| panic!("apply failed: {e}"))
}

fn mf(obj: &Value) -> &Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap_or_else(|| panic!("no managedFields in {obj}"))
}

fn entry<'a>(obj: &'a Value, manager: &str, op: &str) -> Option<&'a Value> {
    mf(obj)
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == op)
}

#[test]
fn track_update_on_create_owns_everything_it_set() {
    let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "d", "uid": "u", "labels": {"a": "1"}, "finalizers": ["f"]},
        "data": {"k": "v"}});
    track_update(
        "",
        "ConfigMap",
        "v1",
        None,
        &mut obj,
        "kubectl-create",
        "",
        T0,
    );
    assert_eq!(
        obj["metadata"]["managedFields"],
        json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:k": {}},
                "f:metadata": {"f:finalizers": {".": {}, "v:\"f\"": {}}, "f:labels": {".": {}, "f:a": {}}}}}])
    );
}

#[test]
fn track_update_merges_same_manager_and_handles_status_subresource() {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "i"}]}});
    track_update("", "Pod", "v1", None, &mut pod, "creator", "", T0);
    let before = pod.clone();
    pod["status"] =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    track_update(
        "",
        "Pod",
        "v1",
        Some(&before),
        &mut pod,
        "kubelet",
        "status",
        T1,
    );
    let kubelet = entry(&pod, "kubelet", "Update")
        .cloned()
        .unwrap_or_default();
    assert_eq!(kubelet["subresource"], json!("status"));
    assert_eq!(
        kubelet["fieldsV1"],
        json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:phase": {}}})
    );
    // A second update by the creator folds into its entry.
    let before = pod.clone();
    pod["metadata"]["labels"] = json!({"x": "y"});
    track_update("", "Pod", "v1", Some(&before), &mut pod, "creator", "", T2);
    let creators: Vec<&Value> = mf(&pod)
        .iter()
        .filter(|e| e["manager"] == "creator")
        .collect();
    assert_eq!(creators.len(), 1);
    assert_eq!(creators[0]["time"], json!(T2));
    let text = creators[0]["fieldsV1"].to_string();
    assert!(
        text.contains("f:labels") && text.contains("f:containers"),
        "{text}"
    );
    // Apply entries sort before Update entries, Updates by time.
    let order: Vec<&str> = mf(&pod)
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert_eq!(order, vec!["kubelet", "creator"]);
}

#[test]
fn update_removing_a_field_drops_ownership() {
    let mut cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    track_update("", "ConfigMap", "v1", None, &mut cm, "one", "", T0);
    let before = cm.clone();
    cm["data"] = json!({"a": "1"});
    track_update("", "ConfigMap", "v1", Some(&before), &mut cm, "two", "", T1);
    assert_eq!(
        entry(&cm, "one", "Update").map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:data": {".": {}, "f:a": {}}}))
    );
    assert!(
        entry(&cm, "two", "Update").is_none(),
        "a pure removal owns nothing"
    );
}

#[test]
fn kubectl_client_side_apply_flow_tracks_ownership() {
    let mut live = deployment(1, "nginx:1.25");
    live["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080, "protocol": "TCP"}]);
    track_update(
        "apps",
        "Deployment",
        "apps/v1",
        None,
        &mut live,
        "kubectl-client-side-apply",
        "",
        T0,
    );
    // The controller scales it and records its own status elsewhere.
    let before = live.clone();
    live["spec"]["replicas"] = json!(2);
    track_update(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&before),
        &mut live,
        "kube-controller-manager",
        "",
        T1,
    );

    let patch = json!({"spec": {"replicas": 3, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "nginx"}],
        "containers": [{"$setElementOrder/ports": [{"containerPort": 8080}],
            "image": "nginx:1.26", "name": "nginx",
            "ports": [{"$patch": "delete", "containerPort": 80}]}]}}}});
    let mut patched = match super::strategic_merge_patch("apps", "Deployment", &live, &patch) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    track_update(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&live),
        &mut patched,
        "kubectl-client-side-apply",
        "",
        T2,
    );
    let c = &patched["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], json!("nginx:1.26"));
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(patched["spec"]["replicas"], json!(3));
    let csa = entry(&patched, "kubectl-client-side-apply", "Update")
        .map(|e| e["fieldsV1"].to_string())
        .unwrap_or_default();
    assert!(csa.contains("f:replicas"), "{csa}");
    assert!(!csa.contains(r#"containerPort\":80,"#), "{csa}");
    // The controller lost replicas and so owns nothing any more.
    assert!(entry(&patched, "kube-controller-manager", "Update").is_none());
    // A later server-side apply of replicas conflicts with the client-side applier.
    let err = apply(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&patched),
        &deployment(4, "nginx:1.26"),
        "kubectl",
        false,
        T2,
    );
    match err {
        Err(e @ PatchError::Conflict(_)) => {
            assert!(e.to_string().starts_with("Apply failed with"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_managed_fields_are_tolerated() {
    let live = json!({"metadata": {"name": "c", "managedFields": "junk"}, "data": {"a": "1"}});
    let cfg = json!({"metadata": {"name": "c"}, "data": {"a": "2"}});
    let got = ok(apply(
        "",
        "ConfigMap",
        "v1",
        Some(&live),
        &cfg,
        "m",
        false,
        T0,
    ));
    assert_eq!(got["data"]["a"], json!("2"));
    assert_eq!(mf(&got).len(), 1);
    let mut obj = json!({"metadata": {"name": "c", "managedFields": [{"fieldsV1": {"bad key": {}}}]}, "data": {"a": "1"}});
    track_update("", "ConfigMap", "v1", None, &mut obj, "m", "", T0);
    assert_eq!(mf(&obj).len(), 1);
}
