//! Strategic merge patch behaviour, table-driven where possible.

use serde_json::{json, Value};

use super::{strategic_merge_patch, PatchError};

fn smp(group: &str, kind: &str, doc: Value, patch: Value) -> Value {
    match strategic_merge_patch(group, kind, &doc, &patch) {
        Ok(v) => v,
        Err(e) => panic!("patch failed: {e}"),
    }
}

fn pod(spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
}

#[test]
fn table_of_pod_cases() {
    let cases: Vec<(&str, Value, Value, Value)> = vec![
        (
            "containers merge by name",
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}),
            json!({"containers": [{"name": "b", "image": "z"}]}),
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "z"}]}),
        ),
        (
            "new container appended",
            json!({"containers": [{"name": "a", "image": "x"}]}),
            json!({"containers": [{"name": "c", "image": "w"}]}),
            json!({"containers": [{"name": "a", "image": "x"}, {"name": "c", "image": "w"}]}),
        ),
        (
            "delete container by key",
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"containers": [{"name": "a", "$patch": "delete"}]}),
            json!({"containers": [{"name": "b"}]}),
        ),
        (
            "replace whole list",
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"containers": [{"name": "c"}, {"$patch": "replace"}]}),
            json!({"containers": [{"name": "c"}]}),
        ),
        (
            "env merges by name and null deletes a field",
            json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}]}),
            json!({"containers": [{"name": "a", "env": [{"name": "Y", "value": null, "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]}),
            json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]}]}),
        ),
        (
            "ports merge by containerPort",
            json!({"containers": [{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 443}]}]}),
            json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}]}]}),
            json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}]}),
        ),
        (
            "volumeMounts merge by mountPath",
            json!({"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/a", "name": "v"}]}]}),
            json!({"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/a", "readOnly": true}, {"mountPath": "/b", "name": "w"}]}]}),
            json!({"containers": [{"name": "a", "volumeMounts": [{"mountPath": "/a", "name": "v", "readOnly": true}, {"mountPath": "/b", "name": "w"}]}]}),
        ),
        (
            "volumeDevices merge by devicePath",
            json!({"containers": [{"name": "a", "volumeDevices": [{"devicePath": "/dev/a", "name": "v"}]}]}),
            json!({"containers": [{"name": "a", "volumeDevices": [{"devicePath": "/dev/b", "name": "w"}]}]}),
            json!({"containers": [{"name": "a", "volumeDevices": [{"devicePath": "/dev/a", "name": "v"}, {"devicePath": "/dev/b", "name": "w"}]}]}),
        ),
        (
            "initContainers and ephemeralContainers merge by name",
            json!({"initContainers": [{"name": "i", "image": "1"}], "ephemeralContainers": [{"name": "e", "image": "1"}]}),
            json!({"initContainers": [{"name": "i", "image": "2"}], "ephemeralContainers": [{"name": "e", "image": "2"}]}),
            json!({"initContainers": [{"name": "i", "image": "2"}], "ephemeralContainers": [{"name": "e", "image": "2"}]}),
        ),
        (
            "volumes merge by name",
            json!({"volumes": [{"name": "a", "emptyDir": {}}]}),
            json!({"volumes": [{"name": "b", "emptyDir": {}}]}),
            json!({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "b", "emptyDir": {}}]}),
        ),
        (
            "volume retainKeys drops the old source",
            json!({"volumes": [{"name": "a", "emptyDir": {}}]}),
            json!({"volumes": [{"name": "a", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}),
            json!({"volumes": [{"name": "a", "configMap": {"name": "cm"}}]}),
        ),
        (
            "imagePullSecrets merge by name",
            json!({"imagePullSecrets": [{"name": "a"}]}),
            json!({"imagePullSecrets": [{"name": "b"}]}),
            json!({"imagePullSecrets": [{"name": "a"}, {"name": "b"}]}),
        ),
        (
            "hostAliases merge by ip",
            json!({"hostAliases": [{"ip": "1.1.1.1", "hostnames": ["a"]}]}),
            json!({"hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}]}),
            json!({"hostAliases": [{"ip": "1.1.1.1", "hostnames": ["b"]}]}),
        ),
        (
            "tolerations replace",
            json!({"tolerations": [{"key": "a", "operator": "Exists"}]}),
            json!({"tolerations": [{"key": "b", "operator": "Exists"}]}),
            json!({"tolerations": [{"key": "b", "operator": "Exists"}]}),
        ),
        (
            "topologySpreadConstraints merge by topologyKey",
            json!({"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 1}]}),
            json!({"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}, {"topologyKey": "host", "maxSkew": 1}]}),
            json!({"topologySpreadConstraints": [{"topologyKey": "zone", "maxSkew": 2}, {"topologyKey": "host", "maxSkew": 1}]}),
        ),
        (
            "unknown list replaces (container args)",
            json!({"containers": [{"name": "a", "args": ["x", "y"]}]}),
            json!({"containers": [{"name": "a", "args": ["z"]}]}),
            json!({"containers": [{"name": "a", "args": ["z"]}]}),
        ),
        (
            "map replace directive",
            json!({"nodeSelector": {"a": "1", "b": "2"}}),
            json!({"nodeSelector": {"c": "3", "$patch": "replace"}}),
            json!({"nodeSelector": {"c": "3"}}),
        ),
        (
            "map delete directive",
            json!({"nodeSelector": {"a": "1"}, "hostname": "h"}),
            json!({"nodeSelector": {"$patch": "delete"}}),
            json!({"hostname": "h"}),
        ),
        (
            "setElementOrder reorders containers",
            json!({"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"$setElementOrder/containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}),
            json!({"containers": [{"name": "c"}, {"name": "b"}, {"name": "a"}]}),
        ),
        (
            "setElementOrder places a new item",
            json!({"containers": [{"name": "a"}, {"name": "b"}]}),
            json!({"$setElementOrder/containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}], "containers": [{"name": "new"}]}),
            json!({"containers": [{"name": "a"}, {"name": "new"}, {"name": "b"}]}),
        ),
        (
            "null for a missing field is ignored",
            json!({"hostname": "h"}),
            json!({"subdomain": null}),
            json!({"hostname": "h"}),
        ),
    ];
    for (name, spec, patch, want) in cases {
        let got = smp("", "Pod", pod(spec), json!({"spec": patch}));
        assert_eq!(got, pod(want), "case: {name}");
    }
}

#[test]
fn finalizers_merge_as_set_and_delete_from_primitive_list() {
    let doc = json!({"metadata": {"name": "x", "finalizers": ["a", "b"]}});
    let got = smp(
        "",
        "ConfigMap",
        doc.clone(),
        json!({"metadata": {"finalizers": ["b", "c"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["a", "b", "c"]));

    let got = smp(
        "",
        "ConfigMap",
        doc.clone(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["b"]));

    let got = smp(
        "",
        "ConfigMap",
        doc,
        json!({"metadata": {"$setElementOrder/finalizers": ["c", "b", "a"], "finalizers": ["c"]}}),
    );
    assert_eq!(got["metadata"]["finalizers"], json!(["c", "b", "a"]));
}

#[test]
fn owner_references_merge_by_uid() {
    let doc = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]}});
    let got = smp(
        "apps",
        "ReplicaSet",
        doc,
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]}}),
    );
    assert_eq!(
        got["metadata"]["ownerReferences"],
        json!([{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}])
    );
}

#[test]
fn null_deletes_and_labels_merge() {
    let doc = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}});
    let got = smp(
        "",
        "ConfigMap",
        doc,
        json!({"metadata": {"labels": {"a": null, "c": "3"}}, "data": null}),
    );
    assert_eq!(got, json!({"metadata": {"labels": {"b": "2", "c": "3"}}}));
}

#[test]
fn deployment_template_containers_merge_by_name() {
    let doc = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "app", "image": "a:1"}, {"name": "side", "image": "s:1"}]}}}});
    let got = smp(
        "apps",
        "Deployment",
        doc,
        json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "a:2"}]}}}}),
    );
    assert_eq!(
        got["spec"]["template"]["spec"]["containers"],
        json!([{"name": "app", "image": "a:2"}, {"name": "side", "image": "s:1"}])
    );
}

#[test]
fn cronjob_nested_pod_template_merges() {
    let doc = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}]}]}}}}}});
    let got = smp(
        "batch",
        "CronJob",
        doc,
        json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [
            {"name": "c", "env": [{"name": "B", "value": "2"}]}]}}}}}}),
    );
    assert_eq!(
        got["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"],
        json!([{"name": "c", "image": "x", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}])
    );
}

#[test]
fn other_workload_templates_merge() {
    for (group, kind) in [
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("", "ReplicationController"),
        ("batch", "Job"),
    ] {
        let doc =
            json!({"spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}}});
        let got = smp(
            group,
            kind,
            doc,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "i"}]}}}}),
        );
        assert_eq!(
            got["spec"]["template"]["spec"]["containers"],
            json!([{"name": "a"}, {"name": "b", "image": "i"}]),
            "{kind}"
        );
    }
    let doc = json!({"template": {"spec": {"containers": [{"name": "a"}]}}});
    let got = smp(
        "",
        "PodTemplate",
        doc,
        json!({"template": {"spec": {"containers": [{"name": "b"}]}}}),
    );
    assert_eq!(
        got["template"]["spec"]["containers"],
        json!([{"name": "a"}, {"name": "b"}])
    );
}

#[test]
fn deployment_strategy_retain_keys() {
    let doc =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let got = smp(
        "apps",
        "Deployment",
        doc,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    );
    assert_eq!(got["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn status_conditions_merge_by_type() {
    for (group, kind) in [
        ("", "Pod"),
        ("", "Node"),
        ("apps", "Deployment"),
        ("apps", "ReplicaSet"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("batch", "Job"),
        ("", "PersistentVolumeClaim"),
        ("", "Namespace"),
    ] {
        let doc = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False"}, {"type": "Other", "status": "True"}]}});
        let got = smp(
            group,
            kind,
            doc,
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        );
        assert_eq!(
            got["status"]["conditions"],
            json!([{"type": "Ready", "status": "True"}, {"type": "Other", "status": "True"}]),
            "{kind}"
        );
    }
}

#[test]
fn node_addresses_merge_taints_replace() {
    let doc = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
    let got = smp(
        "",
        "Node",
        doc,
        json!({"spec": {"taints": [{"key": "b", "effect": "NoSchedule"}]},
            "status": {"addresses": [{"type": "Hostname", "address": "n"}]}}),
    );
    assert_eq!(
        got["spec"]["taints"],
        json!([{"key": "b", "effect": "NoSchedule"}])
    );
    assert_eq!(
        got["status"]["addresses"],
        json!([{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n"}])
    );
}

#[test]
fn service_ports_merge_by_port() {
    let doc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let got = smp(
        "",
        "Service",
        doc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
    );
    assert_eq!(
        got["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
}

#[test]
fn rbac_subjects_and_endpoint_subsets_replace() {
    let doc = json!({"subjects": [{"kind": "User", "name": "a"}]});
    let got = smp(
        "rbac.authorization.k8s.io",
        "RoleBinding",
        doc,
        json!({"subjects": [{"kind": "User", "name": "b"}]}),
    );
    assert_eq!(got["subjects"], json!([{"kind": "User", "name": "b"}]));
    let doc = json!({"subsets": [{"addresses": [{"ip": "1.1.1.1"}]}]});
    let got = smp(
        "",
        "Endpoints",
        doc,
        json!({"subsets": [{"addresses": [{"ip": "2.2.2.2"}]}]}),
    );
    assert_eq!(got["subsets"], json!([{"addresses": [{"ip": "2.2.2.2"}]}]));
}

/// What `kubectl apply` (client side) sends when a Deployment changes its
/// image, an env var and the replica count, and drops a container port.
#[test]
fn kubectl_client_side_apply_of_a_changed_deployment() {
    let live = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{
                "name": "nginx", "image": "nginx:1.25",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "1"}],
                "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 8080, "protocol": "TCP"}],
                "resources": {}, "terminationMessagePath": "/dev/termination-log"}],
                "restartPolicy": "Always"}}}
    });
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"}},
        "spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                "$setElementOrder/ports": [{"containerPort": 8080}],
                "env": [{"name": "B", "value": "2"}],
                "image": "nginx:1.26",
                "name": "nginx",
                "ports": [{"$patch": "delete", "containerPort": 80}]
            }]}}}
    });
    let got = smp("apps", "Deployment", live, patch);
    assert_eq!(got["spec"]["replicas"], json!(3));
    let c = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], json!("nginx:1.26"));
    assert_eq!(
        c["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
    );
    assert_eq!(
        c["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(c["terminationMessagePath"], json!("/dev/termination-log"));
    assert_eq!(
        got["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"],
        json!("{\"new\":true}\n")
    );
    assert!(!got.to_string().contains('$'), "directives leaked: {got}");
}

#[test]
fn directives_never_leak_into_new_fields() {
    let got = smp(
        "",
        "Pod",
        pod(json!({})),
        json!({"spec": {"$setElementOrder/containers": [{"name": "a"}],
            "containers": [{"name": "a", "env": [{"name": "X", "$patch": "delete"}], "ports": [{"containerPort": 1, "x": null}]}]}}),
    );
    assert_eq!(
        got["spec"],
        json!({"containers": [{"name": "a", "env": [], "ports": [{"containerPort": 1}]}]})
    );
}

#[test]
fn errors() {
    let doc = pod(json!({"containers": [{"name": "a"}]}));
    let bad: Vec<(&str, Value)> = vec![
        ("not an object", json!([1, 2])),
        ("bad map directive", json!({"spec": {"$patch": "explode"}})),
        (
            "missing merge key",
            json!({"spec": {"containers": [{"image": "x"}]}}),
        ),
        (
            "delete without key",
            json!({"spec": {"containers": [{"$patch": "delete"}]}}),
        ),
        (
            "primitive in keyed list",
            json!({"spec": {"containers": ["a"]}}),
        ),
        (
            "retainKeys not a list",
            json!({"spec": {"$retainKeys": "a"}}),
        ),
        (
            "key outside retainKeys",
            json!({"spec": {"$retainKeys": ["a"], "b": 1}}),
        ),
        (
            "deleteFromPrimitiveList not a list",
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}}),
        ),
        (
            "setElementOrder not a list",
            json!({"spec": {"$setElementOrder/containers": 1}}),
        ),
    ];
    for (name, patch) in bad {
        assert!(
            strategic_merge_patch("", "Pod", &doc, &patch).is_err(),
            "case {name} should fail"
        );
    }
    let err = strategic_merge_patch("example.com", "Widget", &json!({}), &json!({}));
    assert!(matches!(err, Err(PatchError::UnsupportedKind { .. })));
    let msg = strategic_merge_patch(
        "",
        "Pod",
        &doc,
        &json!({"spec": {"containers": [{"image": "x"}]}}),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(msg.contains(".spec.containers"), "{msg}");
}

fn nested(depth: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

#[test]
fn deep_nesting_is_rejected() {
    let patch = nested(1000);
    let err = strategic_merge_patch("", "ConfigMap", &json!({}), &patch);
    assert!(matches!(err, Err(PatchError::TooDeep { .. })));
    let err = strategic_merge_patch("", "ConfigMap", &nested(1000), &json!({}));
    assert!(matches!(err, Err(PatchError::TooDeep { .. })));
    // Moderate depth works.
    assert!(strategic_merge_patch("", "ConfigMap", &json!({}), &nested(50)).is_ok());
}

#[test]
fn huge_arrays_are_fine() {
    let many: Vec<Value> = (0..20_000).map(|i| json!(format!("f{i}"))).collect();
    let got = smp(
        "",
        "ConfigMap",
        json!({"metadata": {"finalizers": ["x"]}}),
        json!({"metadata": {"finalizers": many}}),
    );
    assert_eq!(
        got["metadata"]["finalizers"].as_array().map(Vec::len),
        Some(20_001)
    );
}

#[test]
fn large_keyed_lists_merge() {
    let items: Vec<Value> = (0..20_000)
        .map(|i| json!({"name": format!("E{i}"), "value": "a"}))
        .collect();
    let patch_items: Vec<Value> = (0..20_000)
        .map(|i| json!({"name": format!("E{i}"), "value": "b"}))
        .collect();
    let got = smp(
        "",
        "Pod",
        pod(json!({"containers": [{"name": "c", "env": items}]})),
        json!({"spec": {"containers": [{"name": "c", "env": patch_items}]}}),
    );
    let env = got["spec"]["containers"][0]["env"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(env.len(), 20_000);
    assert!(env.iter().all(|e| e["value"] == "b"));
}

#[test]
fn set_element_order_keeps_server_only_items_before_later_items() {
    let got = smp(
        "",
        "Pod",
        pod(json!({"containers": [{"name": "a"}, {"name": "injected"}, {"name": "b"}]})),
        json!({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "a"}]}}),
    );
    assert_eq!(
        got["spec"]["containers"],
        json!([{"name": "injected"}, {"name": "b"}, {"name": "a"}])
    );
}

#[test]
fn merge_directive_is_accepted_as_default() {
    let got = smp(
        "",
        "Pod",
        pod(json!({"nodeSelector": {"a": "1"}})),
        json!({"spec": {"nodeSelector": {"$patch": "merge", "b": "2"}}}),
    );
    assert_eq!(got["spec"]["nodeSelector"], json!({"a": "1", "b": "2"}));
}
