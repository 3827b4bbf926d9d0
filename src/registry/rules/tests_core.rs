//! Core-group validation: Pod, Service, ConfigMap, Secret, Namespace and
//! metadata rules.

use serde_json::{json, Value};

use super::*;

fn prepared(group: &str, kind: &str, mut obj: Value) -> Value {
    default_object(group, "v1", kind, &mut obj);
    obj
}

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

fn pod(spec: Value) -> Value {
    prepared(
        "",
        "Pod",
        json!({"metadata": {"name": "p", "namespace": "default"}, "spec": spec}),
    )
}

fn good_pod() -> Value {
    pod(
        json!({"containers": [{"name": "web", "image": "nginx:1.25", "ports": [{"containerPort": 80, "name": "http"}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "128Mi"}},
        "readinessProbe": {"httpGet": {"port": "http"}}}],
        "volumes": [{"name": "data"}]}),
    )
}

#[test]
fn metadata_rules() {
    let v = |m: Value| validate("", "v1", "ConfigMap", &json!({"metadata": m}), None);
    assert_clean(&v(
        json!({"name": "ok", "labels": {"app": "x"}, "annotations": {"Example.com/Key": "v"}}),
    ));
    assert_has(
        &v(json!({})),
        "metadata.name: Required value: name or generateName is required",
    );
    assert_has(
        &v(json!({"name": "Foo_"})),
        "metadata.name: Invalid value: \"Foo_\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
    assert_has(
        &v(json!({"name": "a", "labels": {"k": "bad value"}})),
        "metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
    );
    let errs = v(json!({"name": "a", "labels": {"-k": "v"}}));
    assert_eq!(errs[0].field, "metadata.labels");
    assert_eq!(errs[0].value.as_deref(), Some("\"-k\""));
    let big = "x".repeat(300 * 1024);
    assert_has(
        &v(json!({"name": "a", "annotations": {"a": big}})),
        "metadata.annotations: Too long: may not be more than 262144 bytes",
    );
    assert_has(
        &v(json!({"name": "a", "finalizers": ["bad/fin/x"]})),
        "metadata.finalizers: Invalid value: \"bad/fin/x\": a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    );
    assert_clean(&v(json!({"generateName": "web-", "name": "web-abcde"})));
    assert_has(
        &v(
            json!({"name": "a", "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": "x"}]}),
        ),
        "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
    );
    // Unknown kinds get metadata validation only.
    assert_has(
        &validate(
            "example.com",
            "v1",
            "Widget",
            &json!({"metadata": {"name": "A"}}),
            None,
        ),
        "metadata.name: Invalid value: \"A\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
    );
}

#[test]
fn metadata_update_rules() {
    let old =
        json!({"metadata": {"name": "a", "uid": "1", "resourceVersion": "3", "generation": 2}});
    let errs = validate(
        "",
        "v1",
        "ConfigMap",
        &json!({"metadata": {"name": "b", "uid": "1", "generation": 2}}),
        Some(&old),
    );
    assert_has(
        &errs,
        "metadata.name: Invalid value: \"b\": field is immutable",
    );
    let errs = validate(
        "",
        "v1",
        "ConfigMap",
        &json!({"metadata": {"name": "a", "generation": 1}}),
        Some(&old),
    );
    assert_has(
        &errs,
        "metadata.generation: Invalid value: 1: must not be decremented",
    );
    let deleting = json!({"metadata": {"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x"]}});
    let errs = validate(
        "",
        "v1",
        "ConfigMap",
        &json!({"metadata": {"name": "a", "deletionTimestamp": "2024-01-01T00:00:00Z", "finalizers": ["a.io/x", "b.io/y"]}}),
        Some(&deleting),
    );
    assert_has(
        &errs,
        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{\"b.io/y\"}",
    );
}

#[test]
fn pod_valid() {
    assert_clean(&validate("", "v1", "Pod", &good_pod(), None));
}

#[test]
fn pod_container_rules() {
    let v = |spec: Value| validate("", "v1", "Pod", &pod(spec), None);
    assert_has(&v(json!({})), "spec.containers: Required value");
    assert_has(
        &v(json!({"containers": [{"name": "c"}]})),
        "spec.containers[0].image: Required value",
    );
    assert_has(
        &v(json!({"containers": [{"image": "x"}]})),
        "spec.containers[0].name: Required value",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x"}], "initContainers": [{"name": "c", "image": "y"}]}),
        ),
        "spec.containers[0].name: Duplicate value: \"c\"",
    );
    assert_has(
        &v(json!({"containers": [{"name": "C_1", "image": "x"}]})),
        "spec.containers[0].name: Invalid value: \"C_1\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    );
    assert_has(
        &v(json!({"containers": [{"name": "c", "image": " x"}]})),
        "spec.containers[0].image: Invalid value: \" x\": must not have leading or trailing whitespace",
    );
    assert_has(
        &v(json!({"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "x"}]})),
        "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", \"Never\"",
    );
    assert_has(
        &v(json!({"dnsPolicy": "Bogus", "containers": [{"name": "c", "image": "x"}]})),
        "spec.dnsPolicy: Unsupported value: \"Bogus\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
    );
    assert_has(
        &v(json!({"containers": [{"name": "c", "image": "x", "imagePullPolicy": "Sometimes"}]})),
        "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"IfNotPresent\", \"Never\"",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]}),
        ),
        "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "name": "p"}, {"containerPort": 81, "name": "p"}]}]}),
        ),
        "spec.containers[0].ports[1].name: Duplicate value: \"p\"",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 80, "protocol": "HTTP"}]}]}),
        ),
        "spec.containers[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}]}),
        ),
        "spec.containers[0].volumeMounts[0].name: Not found: \"nope\"",
    );
    assert_has(
        &v(
            json!({"volumes": [{"name": "a"}, {"name": "a"}], "containers": [{"name": "c", "image": "x"}]}),
        ),
        "spec.volumes[1].name: Duplicate value: \"a\"",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]}),
        ),
        "spec.containers[0].resources.requests: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x", "resources": {"requests": {"memory": "lots"}}}]}),
        ),
        "spec.containers[0].resources.requests[memory]: Invalid value: \"lots\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
    );
    assert_has(
        &v(
            json!({"containers": [{"name": "c", "image": "x", "livenessProbe": {"tcpSocket": {"port": 80}, "successThreshold": 2}}]}),
        ),
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
    );
    assert_has(
        &v(json!({"containers": [{"name": "c", "image": "x", "readinessProbe": {}}]})),
        "spec.containers[0].readinessProbe: Required value: must specify a handler type",
    );
    assert_has(
        &v(json!({"containers": [{"name": "c", "image": "x", "env": [{"name": "A=B"}]}]})),
        "spec.containers[0].env[0].name: Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='",
    );
    assert_has(
        &v(
            json!({"tolerations": [{"operator": "Equal", "value": "x"}], "containers": [{"name": "c", "image": "x"}]}),
        ),
        "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
    );
    assert_has(
        &v(json!({"activeDeadlineSeconds": 0, "containers": [{"name": "c", "image": "x"}]})),
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 4294967295, inclusive",
    );
}

#[test]
fn pod_update_rules() {
    let old = good_pod();
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("nginx:1.26");
    new["spec"]["activeDeadlineSeconds"] = json!(100);
    new["spec"]["tolerations"] = json!([{"key": "k", "operator": "Exists"}]);
    assert_clean(&validate("", "v1", "Pod", &new, Some(&old)));
    let mut bad = old.clone();
    bad["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(81);
    let errs = validate("", "v1", "Pod", &bad, Some(&old));
    assert_eq!(errs.len(), 1, "{:#?}", messages(&errs));
    assert_eq!(errs[0].kind, ErrorType::Forbidden);
    assert_eq!(errs[0].field, "spec");
    assert!(errs[0].detail.starts_with("pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)\n"));
    let mut more = old.clone();
    more["spec"]["containers"].as_array_mut().unwrap().push(json!({"name": "b", "image": "x", "imagePullPolicy": "Always", "terminationMessagePolicy": "File"}));
    assert_has(
        &validate("", "v1", "Pod", &more, Some(&old)),
        "spec.containers: Forbidden: pod updates may not add or remove containers",
    );
    let mut ads_old = old.clone();
    ads_old["spec"]["activeDeadlineSeconds"] = json!(10);
    let mut ads_new = ads_old.clone();
    ads_new["spec"]["activeDeadlineSeconds"] = json!(20);
    assert_has(
        &validate("", "v1", "Pod", &ads_new, Some(&ads_old)),
        "spec.activeDeadlineSeconds: Invalid value: 20: must be less than or equal to previous value",
    );
}

#[test]
fn service_rules() {
    let svc = |spec: Value| {
        prepared(
            "",
            "Service",
            json!({"metadata": {"name": "web"}, "spec": spec}),
        )
    };
    let v = |spec: Value| validate("", "v1", "Service", &svc(spec), None);
    assert_clean(&v(
        json!({"ports": [{"port": 80}], "selector": {"app": "web"}}),
    ));
    assert_has(
        &validate(
            "",
            "v1",
            "Service",
            &prepared(
                "",
                "Service",
                json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}),
            ),
            None,
        ),
        "metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    );
    assert_has(&v(json!({})), "spec.ports: Required value");
    assert_clean(&v(json!({"clusterIP": "None"})));
    assert_has(
        &v(json!({"ports": [{"port": 0}]})),
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
    );
    assert_has(
        &v(json!({"ports": [{"port": 80, "name": "a"}, {"port": 81}]})),
        "spec.ports[1].name: Required value",
    );
    assert_has(
        &v(json!({"ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]})),
        "spec.ports[1].name: Duplicate value: \"a\"",
    );
    assert_has(
        &v(json!({"type": "Magic", "ports": [{"port": 80}]})),
        "spec.type: Unsupported value: \"Magic\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"",
    );
    assert_has(
        &v(json!({"type": "ExternalName"})),
        "spec.externalName: Required value",
    );
    assert_clean(&v(
        json!({"type": "ExternalName", "externalName": "db.example.com."}),
    ));
    assert_has(
        &v(json!({"ports": [{"port": 80, "nodePort": 30080}]})),
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
    );
    assert_clean(&v(
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    ));
    let errs = v(json!({"ports": [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}]}));
    assert!(
        messages(&errs)
            .iter()
            .any(|m| m.starts_with("spec.ports[1]: Duplicate value: core.ServicePort{")),
        "{errs:?}"
    );
    // clusterIP immutability
    let old = svc(json!({"clusterIP": "10.0.0.5", "ports": [{"port": 80}]}));
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.0.0.6");
    new["spec"]["clusterIPs"] = json!(["10.0.0.6"]);
    assert_has(
        &validate("", "v1", "Service", &new, Some(&old)),
        "spec.clusterIPs[0]: Invalid value: [\"10.0.0.6\"]: may not change once set",
    );
    let ext = svc(json!({"type": "ExternalName", "externalName": "a.b"}));
    let mut to_ip = svc(json!({"clusterIP": "10.0.0.9", "ports": [{"port": 80}]}));
    to_ip["metadata"] = ext["metadata"].clone();
    assert_clean(&validate("", "v1", "Service", &to_ip, Some(&ext)));
}

#[test]
fn configmap_and_secret_rules() {
    let cm = |body: Value| {
        let mut o = json!({"metadata": {"name": "c"}});
        if let (Some(m), Value::Object(b)) = (o.as_object_mut(), body) {
            m.extend(b);
        }
        o
    };
    assert_clean(&validate(
        "",
        "v1",
        "ConfigMap",
        &cm(json!({"data": {"a.b-c_D": "x"}, "binaryData": {"bin": "AAE="}})),
        None,
    ));
    assert_has(
        &validate(
            "",
            "v1",
            "ConfigMap",
            &cm(json!({"data": {"a b": "x"}})),
            None,
        ),
        "data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
    );
    assert_has(
        &validate(
            "",
            "v1",
            "ConfigMap",
            &cm(json!({"data": {"..x": "x"}})),
            None,
        ),
        "data[..x]: Invalid value: \"..x\": must not start with '..'",
    );
    let big = "x".repeat(1024 * 1024 + 1);
    assert_has(
        &validate(
            "",
            "v1",
            "ConfigMap",
            &cm(json!({"data": {"a": big}})),
            None,
        ),
        ": Too long: may not be more than 1048576 bytes",
    );
    let old = cm(json!({"immutable": true, "data": {"a": "1"}}));
    let new = cm(json!({"immutable": true, "data": {"a": "2"}}));
    assert_has(
        &validate("", "v1", "ConfigMap", &new, Some(&old)),
        "data: Forbidden: field is immutable when `immutable` is set",
    );
    let unset = cm(json!({"data": {"a": "1"}}));
    assert_has(
        &validate("", "v1", "ConfigMap", &unset, Some(&old)),
        "immutable: Forbidden: field is immutable when `immutable` is set",
    );

    let sec = |body: Value| {
        prepared("", "Secret", {
            let mut o = json!({"metadata": {"name": "s"}});
            if let (Some(m), Value::Object(b)) = (o.as_object_mut(), body) {
                m.extend(b);
            }
            o
        })
    };
    assert_clean(&validate(
        "",
        "v1",
        "Secret",
        &sec(json!({"data": {"k": "dmFsdWU="}})),
        None,
    ));
    assert_has(
        &validate(
            "",
            "v1",
            "Secret",
            &sec(json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}})),
            None,
        ),
        "data[tls.key]: Required value",
    );
    let old = sec(json!({"data": {"k": "eA=="}}));
    let new =
        sec(json!({"type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}));
    assert_has(
        &validate("", "v1", "Secret", &new, Some(&old)),
        "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
    );
    let old = sec(json!({"immutable": true, "data": {"k": "eA=="}}));
    let new = sec(json!({"immutable": true, "data": {"k": "eQ=="}}));
    assert_has(
        &validate("", "v1", "Secret", &new, Some(&old)),
        "data: Forbidden: field is immutable when `immutable` is set",
    );
}

#[test]
fn namespace_rules() {
    let ns = |name: &str| prepared("", "Namespace", json!({"metadata": {"name": name}}));
    assert_clean(&validate("", "v1", "Namespace", &ns("team-a"), None));
    assert_has(
        &validate("", "v1", "Namespace", &ns("team.a"), None),
        "metadata.name: Invalid value: \"team.a\": must not contain dots",
    );
    let mut bad = ns("x");
    bad["spec"]["finalizers"] = json!(["foo"]);
    assert_has(
        &validate("", "v1", "Namespace", &bad, None),
        "spec.finalizers: Invalid value: \"foo\": name is neither a standard finalizer name nor is it fully qualified",
    );
    let old = ns("x");
    let mut st = old.clone();
    st["status"]["phase"] = json!("Terminating");
    assert_has(
        &validate_status("", "v1", "Namespace", &st, &old),
        "status.Phase: Invalid value: \"Terminating\": may only be 'Active' if `deletionTimestamp` is empty",
    );
}

#[test]
fn hostile_types_give_field_errors() {
    let errs = validate(
        "",
        "v1",
        "Pod",
        &json!({"metadata": ["x"], "spec": {"containers": "nginx"}}),
        None,
    );
    assert_has(&errs, "metadata: Invalid value: [\"x\"]: must be an object");
    assert_has(
        &errs,
        "spec.containers: Invalid value: \"nginx\": must be an array",
    );
    let errs = validate(
        "apps",
        "v1",
        "Deployment",
        &json!({"metadata": {"name": "d"}, "spec": {"replicas": "3"}}),
        None,
    );
    assert_has(
        &errs,
        "spec.replicas: Invalid value: \"3\": must be an integer",
    );
    let errs = validate(
        "",
        "v1",
        "Pod",
        &json!({"metadata": {"name": 5, "labels": {"a": 1}}, "spec": {"containers": [7, {"name": "c", "image": ["x"]}]}}),
        None,
    );
    assert_has(&errs, "metadata.name: Invalid value: 5: must be a string");
    assert_has(
        &errs,
        "metadata.labels[a]: Invalid value: 1: must be a string",
    );
    assert_has(
        &errs,
        "spec.containers[0]: Invalid value: 7: must be an object",
    );
    assert_has(
        &errs,
        "spec.containers[1].image: Invalid value: [\"x\"]: must be a string",
    );
    assert_has(
        &validate("", "v1", "Pod", &json!("x"), None),
        ": Invalid value: \"x\": must be an object",
    );
    let errs = validate(
        "",
        "v1",
        "Service",
        &json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": "80"}], "type": 3}}),
        None,
    );
    assert_has(
        &errs,
        "spec.ports[0].port: Invalid value: \"80\": must be an integer",
    );
    assert_has(&errs, "spec.type: Invalid value: 3: must be a string");
}
