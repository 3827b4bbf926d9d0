//! Server-side apply and ownership tracking.

use serde_json::{json, Value};

use super::{apply, conflict_message, track_update, PatchError};

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

fn pod_config(image: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "nginx", "image": image}]}})
}

#[test]
fn create_by_apply_records_exact_field_set() {
    let got = ok(apply(
        "",
        "Pod",
        "v1",
        None,
        &pod_config("nginx:1"),
        "kubectl",
        false,
        T0,
    ));
    assert_eq!(
        got["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0,
            "fieldsType": "FieldsV1",
            "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}}}}
        }])
    );
    assert_eq!(got["spec"]["containers"][0]["image"], json!("nginx:1"));
    assert_eq!(got["metadata"]["name"], json!("p"));
}

#[test]
fn reapplying_the_same_configuration_changes_nothing() {
    let first = ok(apply(
        "",
        "Pod",
        "v1",
        None,
        &pod_config("nginx:1"),
        "kubectl",
        false,
        T0,
    ));
    let second = ok(apply(
        "",
        "Pod",
        "v1",
        Some(&first),
        &pod_config("nginx:1"),
        "kubectl",
        false,
        T1,
    ));
    assert_eq!(first, second);
}

#[test]
fn apply_ignores_server_metadata_and_status() {
    let mut cfg = pod_config("nginx:1");
    cfg["metadata"]["resourceVersion"] = json!("5");
    cfg["metadata"]["uid"] = json!("u");
    cfg["metadata"]["managedFields"] = json!([{"manager": "x"}]);
    cfg["status"] = json!({"phase": "Running"});
    let live = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "uid": "real", "resourceVersion": "7", "creationTimestamp": T0},
        "status": {"phase": "Pending"}});
    let got = ok(apply(
        "",
        "Pod",
        "v1",
        Some(&live),
        &cfg,
        "kubectl",
        false,
        T1,
    ));
    assert_eq!(got["metadata"]["uid"], json!("real"));
    assert_eq!(got["metadata"]["resourceVersion"], json!("7"));
    assert_eq!(got["status"], json!({"phase": "Pending"}));
    let fields = entry(&got, "kubectl", "Apply")
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_default();
    assert_eq!(
        fields["f:metadata"],
        json!({"f:labels": {"f:app": {}}}),
        "server metadata is never owned"
    );
    assert_eq!(fields.get("f:status"), None);
    assert_eq!(mf(&got).len(), 1);
}

#[test]
fn applying_without_a_field_removes_it() {
    let mut cfg = pod_config("nginx:1");
    cfg["metadata"]["labels"]["tier"] = json!("front");
    cfg["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}]);
    let first = ok(apply("", "Pod", "v1", None, &cfg, "kubectl", false, T0));
    let second = ok(apply(
        "",
        "Pod",
        "v1",
        Some(&first),
        &pod_config("nginx:1"),
        "kubectl",
        false,
        T1,
    ));
    assert_eq!(second["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(
        second["spec"]["containers"][0],
        json!({"name": "nginx", "image": "nginx:1"})
    );
    assert_eq!(
        entry(&second, "kubectl", "Apply").map(|e| e["time"].clone()),
        Some(json!(T1))
    );

    // Dropping every label removes the now empty map too.
    let mut bare = pod_config("nginx:1");
    bare["metadata"] = json!({"name": "p"});
    let third = ok(apply(
        "",
        "Pod",
        "v1",
        Some(&second),
        &bare,
        "kubectl",
        false,
        T2,
    ));
    assert_eq!(third["metadata"].get("labels"), None);
}

#[test]
fn removed_field_stays_when_another_manager_owns_it() {
    let mut cfg = pod_config("nginx:1");
    cfg["metadata"]["labels"]["shared"] = json!("x");
    let first = ok(apply("", "Pod", "v1", None, &cfg, "a", false, T0));
    let mut other = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"shared": "x"}}});
    let second = ok(apply("", "Pod", "v1", Some(&first), &other, "b", false, T1));
    // Same value: shared ownership, no conflict.
    let text = |o: &Value, m: &str| {
        entry(o, m, "Apply")
            .map(|e| e["fieldsV1"].to_string())
            .unwrap_or_default()
    };
    assert!(text(&second, "a").contains("f:shared"));
    assert!(text(&second, "b").contains("f:shared"));
    let third = ok(apply(
        "",
        "Pod",
        "v1",
        Some(&second),
        &pod_config("nginx:1"),
        "a",
        false,
        T2,
    ));
    assert_eq!(third["metadata"]["labels"]["shared"], json!("x"));
    // And a different value from b now conflicts with nobody: b owns it alone.
    other["metadata"]["labels"]["shared"] = json!("y");
    let fourth = ok(apply("", "Pod", "v1", Some(&third), &other, "b", false, T2));
    assert_eq!(fourth["metadata"]["labels"]["shared"], json!("y"));
}

pub(super) fn deployment(replicas: i64, image: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image,
                    "ports": [{"containerPort": 80}]}]}}}})
}

#[test]
fn deployment_field_set_uses_list_keys_and_atomic_selector() {
    let got = ok(apply(
        "apps",
        "Deployment",
        "apps/v1",
        None,
        &deployment(2, "n:1"),
        "m",
        false,
        T0,
    ));
    let fields = entry(&got, "m", "Apply")
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or_default();
    assert_eq!(
        fields,
        json!({"f:spec": {"f:replicas": {}, "f:selector": {},
            "f:template": {"f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {},
                    "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}}}}}})
    );
}

#[test]
fn conflict_with_an_update_manager() {
    let applied = ok(apply(
        "apps",
        "Deployment",
        "apps/v1",
        None,
        &deployment(2, "n:1"),
        "kubectl",
        false,
        T0,
    ));
    // Someone scales through an ordinary update.
    let mut scaled = applied.clone();
    scaled["spec"]["replicas"] = json!(5);
    track_update(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&applied),
        &mut scaled,
        "kubectl-scale",
        "",
        T1,
    );
    let scale = entry(&scaled, "kubectl-scale", "Update")
        .cloned()
        .unwrap_or_default();
    assert_eq!(scale["fieldsV1"], json!({"f:spec": {"f:replicas": {}}}));
    let own = entry(&scaled, "kubectl", "Apply")
        .map(|e| e["fieldsV1"].to_string())
        .unwrap_or_default();
    assert!(!own.contains("f:replicas"), "{own}");

    // Re-applying a different replica count conflicts.
    let err = apply(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&scaled),
        &deployment(3, "n:1"),
        "kubectl",
        false,
        T2,
    );
    match err {
        Err(PatchError::Conflict(c)) => {
            assert_eq!(c.len(), 1);
            assert_eq!(c[0].manager, "kubectl-scale");
            assert_eq!(c[0].field, ".spec.replicas");
            assert_eq!(
                conflict_message(&c),
                "Apply failed with 1 conflict: conflict with \"kubectl-scale\" using apps/v1: .spec.replicas"
            );
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Applying the same value shares the field; a changed image is fine.
    let shared = ok(apply(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&scaled),
        &deployment(5, "n:2"),
        "kubectl",
        false,
        T2,
    ));
    assert_eq!(
        shared["spec"]["template"]["spec"]["containers"][0]["image"],
        json!("n:2")
    );
    assert!(entry(&shared, "kubectl-scale", "Update").is_some());

    // Force takes the field over.
    let forced = ok(apply(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&scaled),
        &deployment(3, "n:1"),
        "kubectl",
        true,
        T2,
    ));
    assert_eq!(forced["spec"]["replicas"], json!(3));
    assert!(
        entry(&forced, "kubectl-scale", "Update").is_none(),
        "empty manager dropped"
    );
}

#[test]
fn conflict_with_another_applier_and_message_for_many() {
    let a = ok(apply(
        "apps",
        "Deployment",
        "apps/v1",
        None,
        &deployment(2, "n:1"),
        "alpha",
        false,
        T0,
    ));
    let err = apply(
        "apps",
        "Deployment",
        "apps/v1",
        Some(&a),
        &deployment(4, "n:9"),
        "beta",
        false,
        T1,
    );
    let Err(e @ PatchError::Conflict(_)) = err else {
        panic!("expected conflicts");
    };
    let PatchError::Conflict(c) = &e else {
        unreachable!()
    };
    let fields: Vec<&str> = c.iter().map(|c| c.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            ".spec.replicas",
            ".spec.template.spec.containers[name=\"nginx\"].image"
        ]
    );
    assert_eq!(
        e.to_string(),
        "Apply failed with 2 conflicts: conflicts with \"alpha\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
    );
}

#[test]
fn custom_resources_treat_lists_atomically_and_maps_granularly() {
    let cr = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
        "spec": {"size": 1, "items": [{"name": "a"}], "nested": {"x": 1}}});
    let got = ok(apply(
        "example.com",
        "Widget",
        "example.com/v1",
        None,
        &cr,
        "m",
        false,
        T0,
    ));
    assert_eq!(
        entry(&got, "m", "Apply").map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:spec": {"f:items": {}, "f:nested": {"f:x": {}}, "f:size": {}}}))
    );
    let mut updated = got.clone();
    updated["spec"]["items"] = json!([{"name": "b"}]);
    track_update(
        "example.com",
        "Widget",
        "example.com/v1",
        Some(&got),
        &mut updated,
        "ctl",
        "",
        T1,
    );
    assert_eq!(
        entry(&updated, "ctl", "Update").map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:spec": {"f:items": {}}}))
    );
    let mut cfg = cr.clone();
    cfg["spec"]["items"] = json!([{"name": "c"}]);
    let err = apply(
        "example.com",
        "Widget",
        "example.com/v1",
        Some(&updated),
        &cfg,
        "m",
        false,
        T2,
    );
    assert!(matches!(err, Err(PatchError::Conflict(_))));
    let forced = ok(apply(
        "example.com",
        "Widget",
        "example.com/v1",
        Some(&updated),
        &cfg,
        "m",
        true,
        T2,
    ));
    assert_eq!(forced["spec"]["items"], json!([{"name": "c"}]));
}

#[test]
fn finalizers_are_a_set_in_apply() {
    let live = json!({"metadata": {"name": "c", "finalizers": ["other"]}});
    let cfg = json!({"metadata": {"name": "c", "finalizers": ["mine"]}});
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
    assert_eq!(got["metadata"]["finalizers"], json!(["other", "mine"]));
    assert_eq!(
        entry(&got, "m", "Apply").map(|e| e["fieldsV1"].clone()),
        Some(json!({"f:metadata": {"f:finalizers": {"v:\"mine\"": {}}}}))
    );
}

#[test]
fn apply_merges_list_items_and_keeps_others() {
    let live = ok(apply(
        "",
        "Pod",
        "v1",
        None,
        &pod_config("n:1"),
        "a",
        false,
        T0,
    ));
    let sidecar = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "side", "image": "s"}]}});
    let got = ok(apply(
        "",
        "Pod",
        "v1",
        Some(&live),
        &sidecar,
        "b",
        false,
        T1,
    ));
    let names: Vec<&Value> = got["spec"]["containers"]
        .as_array()
        .map(|a| a.iter().map(|c| &c["name"]).collect())
        .unwrap_or_default();
    assert_eq!(names, vec![&json!("nginx"), &json!("side")]);
    // b stops applying its container: it goes, nginx stays.
    let bare = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let got = ok(apply("", "Pod", "v1", Some(&got), &bare, "b", false, T2));
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "nginx", "image": "n:1"}])
    );
    assert!(entry(&got, "b", "Apply").is_none());
}

#[test]
fn invalid_apply_input() {
    assert!(matches!(
        apply("", "Pod", "v1", None, &json!([1]), "m", false, T0),
        Err(PatchError::InvalidPatch(_))
    ));
    let dup = json!({"spec": {"containers": [{"name": "a"}, {"name": "a"}]}});
    assert!(apply("", "Pod", "v1", None, &dup, "m", false, T0).is_err());
    let keyless = json!({"spec": {"containers": [{"image": "a"}]}});
    assert!(apply("", "Pod", "v1", None, &keyless, "m", false, T0).is_err());
    let mut deep = json!(1);
    for _ in 0..1000 {
        deep = json!({"a": deep});
    }
    assert!(matches!(
        apply(
            "example.com",
            "W",
            "example.com/v1",
            None,
            &json!({"spec": deep}),
            "m",
            false,
            T0
        ),
        Err(PatchError::TooDeep { .. })
    ));
}

/// `kubectl create` then client-side `kubectl apply` of a changed
/// Deployment: the patch is strategic, the ownership an Update.
#[test]
fn large_keyed_lists_apply_quickly() {
    let env: Vec<Value> = (0..5_000)
        .map(|i| json!({"name": format!("E{i}"), "value": "v"}))
        .collect();
    let mut cfg = pod_config("n:1");
    cfg["spec"]["containers"][0]["env"] = Value::Array(env);
    let first = ok(apply("", "Pod", "v1", None, &cfg, "m", false, T0));
    let second = ok(apply(
        "",
        "Pod",
        "v1",
        Some(&first),
        &pod_config("n:1"),
        "m",
        false,
        T1,
    ));
    assert_eq!(second["spec"]["containers"][0].get("env"), None);
}
