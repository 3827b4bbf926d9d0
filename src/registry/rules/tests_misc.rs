//! Validation for the remaining groups and core storage kinds.

use serde_json::{json, Value};

use super::*;

fn messages(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(FieldError::message).collect()
}

fn assert_has(errs: &[FieldError], want: &str) {
    let m = messages(errs);
    assert!(m.iter().any(|x| x == want), "missing {want:?} in {m:#?}");
}

fn assert_clean(errs: &[FieldError]) {
    assert!(errs.is_empty(), "unexpected errors: {:#?}", messages(errs));
}

fn obj(group: &str, kind: &str, name: &str, body: Value) -> Value {
    let mut o = json!({"metadata": {"name": name}});
    if let (Some(m), Value::Object(b)) = (o.as_object_mut(), body) {
        m.extend(b);
    }
    default_object(group, "v1", kind, &mut o);
    o
}

const RBAC: &str = "rbac.authorization.k8s.io";

#[test]
fn rbac_rules() {
    let role = obj(
        RBAC,
        "Role",
        "r",
        json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}),
    );
    assert_clean(&validate(RBAC, "v1", "Role", &role, None));
    let bad = obj(
        RBAC,
        "Role",
        "r",
        json!({"rules": [{"apiGroups": [""], "resources": ["pods"]}]}),
    );
    assert_has(
        &validate(RBAC, "v1", "Role", &bad, None),
        "rules[0].verbs: Required value: verbs must contain at least one value",
    );
    let cr = obj(
        RBAC,
        "ClusterRole",
        "system:viewer",
        json!({"rules": [{"nonResourceURLs": ["/healthz"], "verbs": ["get"]}]}),
    );
    assert_clean(&validate(RBAC, "v1", "ClusterRole", &cr, None));
    let ns_url = obj(
        RBAC,
        "Role",
        "r",
        json!({"rules": [{"nonResourceURLs": ["/x"], "verbs": ["get"]}]}),
    );
    assert_has(
        &validate(RBAC, "v1", "Role", &ns_url, None),
        "rules[0].nonResourceURLs: Invalid value: [\"/x\"]: namespaced rules cannot apply to non-resource URLs",
    );
    assert_has(
        &validate(
            RBAC,
            "v1",
            "Role",
            &obj(RBAC, "Role", "a/b", json!({})),
            None,
        ),
        "metadata.name: Invalid value: \"a/b\": may not contain '/'",
    );
    let rb = obj(
        RBAC,
        "RoleBinding",
        "rb",
        json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "default"}]}),
    );
    assert_clean(&validate(RBAC, "v1", "RoleBinding", &rb, None));
    let mut moved = rb.clone();
    moved["roleRef"]["name"] = json!("other");
    assert_has(
        &validate(RBAC, "v1", "RoleBinding", &moved, Some(&rb)),
        "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"other\"}: cannot change roleRef",
    );
    let crb = obj(
        RBAC,
        "ClusterRoleBinding",
        "crb",
        json!({"roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "sa"}, {"kind": "Robot", "name": "x"}]}),
    );
    let errs = validate(RBAC, "v1", "ClusterRoleBinding", &crb, None);
    assert_has(
        &errs,
        "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
    );
    assert_has(&errs, "subjects[0].namespace: Required value");
    assert_has(
        &errs,
        "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
    );
}

#[test]
fn storage_and_scheduling_rules() {
    const ST: &str = "storage.k8s.io";
    let sc = obj(
        ST,
        "StorageClass",
        "fast",
        json!({"provisioner": "example.com/disk", "parameters": {"type": "ssd"}}),
    );
    assert_clean(&validate(ST, "v1", "StorageClass", &sc, None));
    assert_has(
        &validate(
            ST,
            "v1",
            "StorageClass",
            &obj(ST, "StorageClass", "x", json!({})),
            None,
        ),
        "provisioner: Required value",
    );
    let mut changed = sc.clone();
    changed["parameters"]["type"] = json!("hdd");
    assert_has(
        &validate(ST, "v1", "StorageClass", &changed, Some(&sc)),
        "parameters: Forbidden: updates to parameters are forbidden.",
    );
    const SCH: &str = "scheduling.k8s.io";
    let pc = obj(SCH, "PriorityClass", "high", json!({"value": 1000}));
    assert_clean(&validate(SCH, "v1", "PriorityClass", &pc, None));
    let mut pc2 = pc.clone();
    pc2["value"] = json!(2000);
    assert_has(
        &validate(SCH, "v1", "PriorityClass", &pc2, Some(&pc)),
        "value: Forbidden: may not be changed in an update.",
    );
    assert_has(
        &validate(
            SCH,
            "v1",
            "PriorityClass",
            &obj(
                SCH,
                "PriorityClass",
                "huge",
                json!({"value": 2_000_000_000}),
            ),
            None,
        ),
        "value: Forbidden: maximum allowed value of a user defined priority is 1000000000",
    );
    assert_clean(&validate(
        SCH,
        "v1",
        "PriorityClass",
        &obj(
            SCH,
            "PriorityClass",
            "system-node-critical",
            json!({"value": 2_000_001_000}),
        ),
        None,
    ));
    let lease = obj(
        "coordination.k8s.io",
        "Lease",
        "l",
        json!({"spec": {"leaseDurationSeconds": 0}}),
    );
    assert_has(
        &validate("coordination.k8s.io", "v1", "Lease", &lease, None),
        "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0",
    );
}

#[test]
fn pv_pvc_limitrange_quota_rules() {
    let pv = obj(
        "",
        "PersistentVolume",
        "pv1",
        json!({"spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}}),
    );
    assert_clean(&validate("", "v1", "PersistentVolume", &pv, None));
    let errs = validate(
        "",
        "v1",
        "PersistentVolume",
        &obj(
            "",
            "PersistentVolume",
            "pv2",
            json!({"spec": {"hostPath": {"path": "/d"}}}),
        ),
        None,
    );
    assert_has(&errs, "spec.accessModes: Required value");
    assert_has(&errs, "spec.capacity: Required value");
    let pvc = obj(
        "",
        "PersistentVolumeClaim",
        "c",
        json!({"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    );
    assert_clean(&validate("", "v1", "PersistentVolumeClaim", &pvc, None));
    assert_has(
        &validate(
            "",
            "v1",
            "PersistentVolumeClaim",
            &obj(
                "",
                "PersistentVolumeClaim",
                "c",
                json!({"spec": {"accessModes": ["Sideways"]}}),
            ),
            None,
        ),
        "spec.accessModes: Unsupported value: \"Sideways\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
    );
    let mut grown = pvc.clone();
    grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
    assert_clean(&validate(
        "",
        "v1",
        "PersistentVolumeClaim",
        &grown,
        Some(&pvc),
    ));
    let mut mode = pvc.clone();
    mode["spec"]["accessModes"] = json!(["ReadWriteMany"]);
    assert_has(
        &validate("", "v1", "PersistentVolumeClaim", &mode, Some(&pvc)),
        "spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
    );
    let lr = obj(
        "",
        "LimitRange",
        "lr",
        json!({"spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}}]}}),
    );
    assert_has(
        &validate("", "v1", "LimitRange", &lr, None),
        "spec.limits[0].min[cpu]: Invalid value: \"2\": min value 2 is greater than max value 1",
    );
    let rq = obj(
        "",
        "ResourceQuota",
        "q",
        json!({"spec": {"hard": {"pods": "-1"}}}),
    );
    assert_has(
        &validate("", "v1", "ResourceQuota", &rq, None),
        "spec.hard[pods]: Invalid value: \"-1\": must be greater than or equal to 0",
    );
    let node = obj(
        "",
        "Node",
        "n1",
        json!({"spec": {"taints": [{"key": "k", "effect": "Sometimes"}]}}),
    );
    assert_has(
        &validate("", "v1", "Node", &node, None),
        "spec.taints[0].effect: Unsupported value: \"Sometimes\": supported values: \"NoSchedule\", \"PreferNoSchedule\", \"NoExecute\"",
    );
    let ev = obj(
        "",
        "Event",
        "e.1",
        json!({"metadata": {"name": "e.1", "namespace": "default"}, "involvedObject": {"kind": "Pod", "namespace": "other"}}),
    );
    assert_has(
        &validate("", "v1", "Event", &ev, None),
        "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace",
    );
}

#[test]
fn networking_rules() {
    const NET: &str = "networking.k8s.io";
    let np = obj(
        NET,
        "NetworkPolicy",
        "np",
        json!({"spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"port": 80}]}]}}),
    );
    assert_clean(&validate(NET, "v1", "NetworkPolicy", &np, None));
    let bad = obj(
        NET,
        "NetworkPolicy",
        "np",
        json!({"spec": {"podSelector": {}, "ingress": [{"from": [{}], "ports": [{"port": "http", "endPort": 90}]}], "policyTypes": ["Sideways"]}}),
    );
    let errs = validate(NET, "v1", "NetworkPolicy", &bad, None);
    assert_has(
        &errs,
        "spec.ingress[0].from[0]: Required value: must specify a peer",
    );
    assert_has(
        &errs,
        "spec.ingress[0].ports[0].endPort: Invalid value: 90: may not be specified when `port` is non-numeric",
    );
    assert_has(
        &errs,
        "spec.policyTypes[0]: Unsupported value: \"Sideways\": supported values: \"Ingress\", \"Egress\"",
    );
    let ing = obj(
        NET,
        "Ingress",
        "i",
        json!({"spec": {"rules": [{"host": "a.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
    );
    assert_clean(&validate(NET, "v1", "Ingress", &ing, None));
    let bad = obj(
        NET,
        "Ingress",
        "i",
        json!({"spec": {"rules": [{"host": "1.2.3.4", "http": {"paths": [{"path": "x", "backend": {"service": {"name": "web", "port": {}}}}, {"path": "x", "pathType": "Exact", "backend": {}}]}}]}}),
    );
    let errs = validate(NET, "v1", "Ingress", &bad, None);
    assert_has(
        &errs,
        "spec.rules[0].host: Invalid value: \"1.2.3.4\": must be a DNS name, not an IP address",
    );
    assert_has(
        &errs,
        "spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
    );
    assert_has(
        &errs,
        "spec.rules[0].http.paths[1].path: Invalid value: \"x\": must be an absolute path",
    );
    assert_has(
        &errs,
        "spec.rules[0].http.paths[1].backend: Invalid value: \"\": resource or service backend is required",
    );
    assert_has(
        &validate(
            NET,
            "v1",
            "Ingress",
            &obj(NET, "Ingress", "i", json!({"spec": {}})),
            None,
        ),
        "spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified",
    );
    const DISC: &str = "discovery.k8s.io";
    let es = obj(
        DISC,
        "EndpointSlice",
        "es",
        json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"port": 80}]}),
    );
    assert_clean(&validate(DISC, "v1", "EndpointSlice", &es, None));
    let mut es2 = es.clone();
    es2["addressType"] = json!("IPv6");
    let errs = validate(DISC, "v1", "EndpointSlice", &es2, Some(&es));
    assert_has(
        &errs,
        "addressType: Invalid value: \"IPv6\": field is immutable",
    );
    assert_has(
        &errs,
        "endpoints[0].addresses[0]: Invalid value: \"10.0.0.1\": must be a valid IPv6 address",
    );
    assert_has(
        &validate(
            DISC,
            "v1",
            "EndpointSlice",
            &obj(DISC, "EndpointSlice", "es", json!({})),
            None,
        ),
        "addressType: Required value",
    );
}

#[test]
fn autoscaling_and_policy_rules() {
    const AS: &str = "autoscaling";
    let hpa = obj(
        AS,
        "HorizontalPodAutoscaler",
        "h",
        json!({"spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 5}}),
    );
    assert_clean(&validate(AS, "v2", "HorizontalPodAutoscaler", &hpa, None));
    let bad = obj(
        AS,
        "HorizontalPodAutoscaler",
        "h",
        json!({"spec": {"scaleTargetRef": {}, "minReplicas": 4, "maxReplicas": 2}}),
    );
    let errs = validate(AS, "v2", "HorizontalPodAutoscaler", &bad, None);
    assert_has(
        &errs,
        "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`",
    );
    assert_has(&errs, "spec.scaleTargetRef.kind: Required value");
    assert_has(&errs, "spec.scaleTargetRef.name: Required value");
    const POL: &str = "policy";
    let pdb = obj(
        POL,
        "PodDisruptionBudget",
        "p",
        json!({"spec": {"minAvailable": "50%", "selector": {"matchLabels": {"a": "b"}}}}),
    );
    assert_clean(&validate(POL, "v1", "PodDisruptionBudget", &pdb, None));
    let both = obj(
        POL,
        "PodDisruptionBudget",
        "p",
        json!({"spec": {"minAvailable": 1, "maxUnavailable": 1}}),
    );
    let errs = validate(POL, "v1", "PodDisruptionBudget", &both, None);
    assert!(
        messages(&errs)
            .iter()
            .any(|m| m.starts_with("spec: Invalid value: ")
                && m.ends_with("minAvailable and maxUnavailable cannot be both set")),
        "{errs:?}"
    );
    let pct = obj(
        POL,
        "PodDisruptionBudget",
        "p",
        json!({"spec": {"maxUnavailable": "abc"}}),
    );
    assert_has(
        &validate(POL, "v1", "PodDisruptionBudget", &pct, None),
        "spec.maxUnavailable: Invalid value: \"abc\": a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
    );
}

#[test]
fn crd_rules() {
    const AX: &str = "apiextensions.k8s.io";
    let spec = |versions: Value| json!({"spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "widgets", "kind": "Widget"}, "versions": versions}});
    let good = obj(
        AX,
        "CustomResourceDefinition",
        "widgets.example.com",
        spec(json!([{"name": "v1", "served": true, "storage": true}])),
    );
    assert_clean(&validate(AX, "v1", "CustomResourceDefinition", &good, None));
    let wrong = obj(
        AX,
        "CustomResourceDefinition",
        "things.example.com",
        spec(json!([{"name": "v1", "served": true, "storage": true}])),
    );
    assert_has(
        &validate(AX, "v1", "CustomResourceDefinition", &wrong, None),
        "metadata.name: Invalid value: \"things.example.com\": must be spec.names.plural+\".\"+spec.group",
    );
    let two = obj(
        AX,
        "CustomResourceDefinition",
        "widgets.example.com",
        spec(
            json!([{"name": "v1", "served": true, "storage": true}, {"name": "v2", "served": true, "storage": true}]),
        ),
    );
    let errs = validate(AX, "v1", "CustomResourceDefinition", &two, None);
    assert!(
        messages(&errs)
            .iter()
            .any(|m| m.ends_with("must have exactly one version marked as storage version")),
        "{errs:?}"
    );
    let none = obj(
        AX,
        "CustomResourceDefinition",
        "widgets.example.com",
        spec(json!([])),
    );
    assert_has(
        &validate(AX, "v1", "CustomResourceDefinition", &none, None),
        "spec.versions: Required value: must have exactly one version marked as storage version",
    );
    let mut scope = good.clone();
    scope["spec"]["scope"] = json!("Global");
    assert_has(
        &validate(AX, "v1", "CustomResourceDefinition", &scope, None),
        "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
    );
    let mut nokind = good.clone();
    nokind["spec"]["names"] = json!({"plural": "widgets"});
    let errs = validate(AX, "v1", "CustomResourceDefinition", &nokind, None);
    assert_has(&errs, "spec.names.kind: Required value");
}
