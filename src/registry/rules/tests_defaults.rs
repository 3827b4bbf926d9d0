//! Defaulting: expected results and idempotency.

use serde_json::{json, Value};

use super::*;

fn defaulted(group: &str, version: &str, kind: &str, mut obj: Value) -> Value {
    default_object(group, version, kind, &mut obj);
    let mut again = obj.clone();
    default_object(group, version, kind, &mut again);
    assert_eq!(obj, again, "defaulting {kind} twice differs from once");
    obj
}

#[test]
fn pod_defaults() {
    let p = defaulted(
        "",
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "c", "image": "nginx", "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "1"}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "livenessProbe": {"httpGet": {"port": 80}}}],
            "initContainers": [{"name": "i", "image": "busybox:1.36"}],
            "volumes": [{"name": "a"}, {"name": "b", "configMap": {"name": "cm"}},
                {"name": "c", "secret": {"secretName": "s"}}, {"name": "d", "hostPath": {"path": "/x"}},
                {"name": "e", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]}}),
    );
    let spec = &p["spec"];
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(spec["dnsPolicy"], "ClusterFirst");
    assert_eq!(spec["schedulerName"], "default-scheduler");
    assert_eq!(spec["terminationGracePeriodSeconds"], 30);
    assert_eq!(spec["securityContext"], json!({}));
    assert_eq!(spec["enableServiceLinks"], true);
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
    assert_eq!(c["resources"]["requests"]["cpu"], "1");
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    let probe = &c["livenessProbe"];
    assert_eq!(probe["timeoutSeconds"], 1);
    assert_eq!(probe["periodSeconds"], 10);
    assert_eq!(probe["successThreshold"], 1);
    assert_eq!(probe["failureThreshold"], 3);
    assert_eq!(probe["httpGet"]["scheme"], "HTTP");
    assert_eq!(probe["httpGet"]["path"], "/");
    assert_eq!(spec["initContainers"][0]["imagePullPolicy"], "IfNotPresent");
    assert_eq!(spec["initContainers"][0]["resources"], json!({}));
    let v = &spec["volumes"];
    assert_eq!(v[0]["emptyDir"], json!({}));
    assert_eq!(v[1]["configMap"]["defaultMode"], 420);
    assert_eq!(v[2]["secret"]["defaultMode"], 420);
    assert_eq!(v[3]["hostPath"]["type"], "");
    assert_eq!(v[4]["projected"]["defaultMode"], 420);
    assert_eq!(
        v[4]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );
}

#[test]
fn image_pull_policy_from_reference() {
    use super::defaults_core::pull_policy_for;
    for (image, want) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.25", "IfNotPresent"),
        ("localhost:5000/app", "Always"),
        ("localhost:5000/app:v1", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
        ("nginx:latest@sha256:abcd", "Always"),
        ("registry.example.com/team/app:2", "IfNotPresent"),
        ("Bad/Image", "IfNotPresent"),
    ] {
        assert_eq!(pull_policy_for(image), want, "{image}");
    }
}

#[test]
fn deployment_defaults() {
    let d = defaulted(
        "apps",
        "v1",
        "Deployment",
        json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}}}),
    );
    let s = &d["spec"];
    assert_eq!(s["replicas"], 1);
    assert_eq!(s["revisionHistoryLimit"], 10);
    assert_eq!(s["progressDeadlineSeconds"], 600);
    assert_eq!(
        s["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
    );
    assert_eq!(s["template"]["spec"]["restartPolicy"], "Always");
    assert!(s["template"]["spec"].get("enableServiceLinks").is_none());
    let r = defaulted(
        "apps",
        "v1",
        "Deployment",
        json!({"spec": {"strategy": {"type": "Recreate"}}}),
    );
    assert!(r["spec"]["strategy"].get("rollingUpdate").is_none());
}

#[test]
fn statefulset_and_daemonset_defaults() {
    let s = defaulted(
        "apps",
        "v1",
        "StatefulSet",
        json!({"spec": {"volumeClaimTemplates": [{"metadata": {"name": "d"}, "spec": {}}]}}),
    );
    let sp = &s["spec"];
    assert_eq!(sp["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        sp["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        sp["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(sp["replicas"], 1);
    assert_eq!(sp["revisionHistoryLimit"], 10);
    assert_eq!(
        sp["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(sp["volumeClaimTemplates"][0]["status"]["phase"], "Pending");
    let d = defaulted("apps", "v1", "DaemonSet", json!({"spec": {}}));
    assert_eq!(
        d["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    let rs = defaulted("apps", "v1", "ReplicaSet", json!({"spec": {}}));
    assert_eq!(rs["spec"]["replicas"], 1);
}

#[test]
fn job_and_cronjob_defaults() {
    let j = defaulted(
        "batch",
        "v1",
        "Job",
        json!({"metadata": {}, "spec": {"template": {"metadata": {"labels": {"x": "y"}}, "spec": {"restartPolicy": "Never", "containers": []}}}}),
    );
    let s = &j["spec"];
    assert_eq!(s["completions"], 1);
    assert_eq!(s["parallelism"], 1);
    assert_eq!(s["backoffLimit"], 6);
    assert_eq!(s["completionMode"], "NonIndexed");
    assert_eq!(s["suspend"], false);
    assert_eq!(s["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(s["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(j["metadata"]["labels"], json!({"x": "y"}));
    let j2 = defaulted("batch", "v1", "Job", json!({"spec": {"parallelism": 3}}));
    assert!(j2["spec"].get("completions").is_none());
    let c = defaulted(
        "batch",
        "v1",
        "CronJob",
        json!({"spec": {"schedule": "* * * * *"}}),
    );
    assert_eq!(c["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(c["spec"]["suspend"], false);
    assert_eq!(c["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(c["spec"]["failedJobsHistoryLimit"], 1);
}

#[test]
fn service_defaults() {
    let s = defaulted(
        "",
        "v1",
        "Service",
        json!({"spec": {"ports": [{"port": 80}], "selector": {"a": "b"}}}),
    );
    let sp = &s["spec"];
    assert_eq!(sp["type"], "ClusterIP");
    assert_eq!(sp["sessionAffinity"], "None");
    assert_eq!(
        sp["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );
    assert_eq!(sp["internalTrafficPolicy"], "Cluster");
    assert_eq!(sp["ipFamilyPolicy"], "SingleStack");
    // the family of an IP the allocator picks is the cluster's, set on allocation
    assert!(sp.get("ipFamilies").is_none());
    assert!(sp.get("externalTrafficPolicy").is_none());
    let np = defaulted(
        "",
        "v1",
        "Service",
        json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": "http"}]}}),
    );
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(np["spec"]["allocateLoadBalancerNodePorts"], true);
    assert_eq!(np["spec"]["ports"][0]["targetPort"], "http");
    let en = defaulted(
        "",
        "v1",
        "Service",
        json!({"spec": {"type": "ExternalName", "externalName": "a.b"}}),
    );
    assert!(en["spec"].get("ipFamilies").is_none());
    assert!(en["spec"].get("internalTrafficPolicy").is_none());
    let hl = defaulted("", "v1", "Service", json!({"spec": {"clusterIP": "None"}}));
    assert_eq!(hl["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(hl["spec"]["clusterIPs"], json!(["None"]));
    let ca = defaulted(
        "",
        "v1",
        "Service",
        json!({"spec": {"sessionAffinity": "ClientIP"}}),
    );
    assert_eq!(
        ca["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );
}

#[test]
fn secret_namespace_and_storage_defaults() {
    let s = defaulted(
        "",
        "v1",
        "Secret",
        json!({"stringData": {"a": "hello"}, "data": {"b": "eA=="}}),
    );
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"b": "eA==", "a": "aGVsbG8="}));
    assert!(s.get("stringData").is_none());
    let n = defaulted("", "v1", "Namespace", json!({"metadata": {"name": "team"}}));
    assert_eq!(
        n["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );
    assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(n["status"]["phase"], "Active");
    // A finalize call on a stored namespace must be able to drop the finalizer.
    let f = defaulted(
        "",
        "v1",
        "Namespace",
        json!({"metadata": {"name": "t", "resourceVersion": "5"}, "spec": {"finalizers": []}}),
    );
    assert_eq!(f["spec"]["finalizers"], json!([]));
    let pv = defaulted("", "v1", "PersistentVolume", json!({"spec": {}}));
    assert_eq!(pv["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    assert_eq!(pv["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pv["status"]["phase"], "Pending");
    let pvc = defaulted("", "v1", "PersistentVolumeClaim", json!({"spec": {}}));
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
    assert_eq!(pvc["status"]["phase"], "Pending");
    let sc = defaulted(
        "storage.k8s.io",
        "v1",
        "StorageClass",
        json!({"provisioner": "x"}),
    );
    assert_eq!(sc["reclaimPolicy"], "Delete");
    assert_eq!(sc["volumeBindingMode"], "Immediate");
    let node = defaulted(
        "",
        "v1",
        "Node",
        json!({"status": {"capacity": {"cpu": "4"}}}),
    );
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "4"}));
    let lr = defaulted(
        "",
        "v1",
        "LimitRange",
        json!({"spec": {"limits": [{"type": "Container", "max": {"cpu": "2"}, "min": {"memory": "1Mi"}}]}}),
    );
    assert_eq!(lr["spec"]["limits"][0]["default"], json!({"cpu": "2"}));
    assert_eq!(
        lr["spec"]["limits"][0]["defaultRequest"],
        json!({"cpu": "2", "memory": "1Mi"})
    );
}

#[test]
fn rc_defaults() {
    let rc = defaulted(
        "",
        "v1",
        "ReplicationController",
        json!({"metadata": {"name": "r"}, "spec": {"template": {"metadata": {"labels": {"app": "x"}}, "spec": {}}}}),
    );
    assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
    assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
    assert_eq!(rc["spec"]["replicas"], 1);
}

#[test]
fn other_group_defaults() {
    let np = defaulted(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        json!({"spec": {"egress": [{"ports": [{"port": 53}]}]}}),
    );
    assert_eq!(np["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
    assert_eq!(np["spec"]["egress"][0]["ports"][0]["protocol"], "TCP");
    let np2 = defaulted(
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        json!({"spec": {}}),
    );
    assert_eq!(np2["spec"]["policyTypes"], json!(["Ingress"]));
    let rb = defaulted(
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        json!({"roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]}),
    );
    assert_eq!(rb["roleRef"]["apiGroup"], "rbac.authorization.k8s.io");
    assert_eq!(rb["subjects"][0]["apiGroup"], "rbac.authorization.k8s.io");
    assert!(rb["subjects"][1].get("apiGroup").is_none());
    let pc = defaulted(
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        json!({"value": 5}),
    );
    assert_eq!(pc["preemptionPolicy"], "PreemptLowerPriority");
    let hpa = defaulted(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        json!({"spec": {"maxReplicas": 3, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}),
    );
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["value"],
        4
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"],
        60
    );
    assert_eq!(hpa["spec"]["behavior"]["scaleDown"]["selectPolicy"], "Max");
    let es = defaulted(
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        json!({"ports": [{"port": 80}]}),
    );
    assert_eq!(
        es["ports"][0],
        json!({"port": 80, "name": "", "protocol": "TCP"})
    );
    let crd = defaulted(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        json!({"spec": {"names": {"kind": "Widget", "plural": "widgets"}}}),
    );
    assert_eq!(crd["spec"]["names"]["singular"], "widget");
    assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
    assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
}

#[test]
fn hostile_input_does_not_panic_defaulting() {
    let hostile = [
        json!(null),
        json!("x"),
        json!([1, 2]),
        json!({"spec": "nope"}),
        json!({"spec": {"containers": "x", "volumes": 3, "template": []}}),
        json!({"spec": {"containers": [1, "a", null, {"ports": "x", "resources": {"limits": 5}}]}}),
        json!({"metadata": [], "spec": {"ports": [{"targetPort": {}}], "strategy": 7, "updateStrategy": []}}),
        json!({"stringData": {"a": 1}, "status": "x"}),
    ];
    let kinds = [
        ("", "Pod"),
        ("", "Service"),
        ("", "Secret"),
        ("", "Namespace"),
        ("", "Node"),
        ("", "ReplicationController"),
        ("", "PersistentVolume"),
        ("", "PersistentVolumeClaim"),
        ("", "LimitRange"),
        ("", "Endpoints"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("networking.k8s.io", "NetworkPolicy"),
        ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
        ("autoscaling", "HorizontalPodAutoscaler"),
        ("apiextensions.k8s.io", "CustomResourceDefinition"),
        ("discovery.k8s.io", "EndpointSlice"),
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration",
        ),
    ];
    for (g, k) in kinds {
        for h in &hostile {
            let mut v = h.clone();
            default_object(g, "v1", k, &mut v);
            let mut again = v.clone();
            default_object(g, "v1", k, &mut again);
            assert_eq!(v, again, "{g}/{k} on {h}");
            let _ = validate(g, "v1", k, &v, None);
            let _ = validate(g, "v1", k, &v, Some(h));
            let _ = validate_status(g, "v1", k, &v, h);
        }
    }
}

#[test]
fn prepare_for_create_sets_strategy_fields() {
    let mut p = json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
    default_object("", "v1", "Pod", &mut p);
    prepare_for_create("", "v1", "Pod", &mut p);
    assert_eq!(
        p["status"],
        json!({"phase": "Pending", "qosClass": "Guaranteed"})
    );
    let mut b = json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "1"}}}]}});
    prepare_for_create("", "v1", "Pod", &mut b);
    assert_eq!(b["status"]["qosClass"], "Burstable");
    let mut e = json!({"spec": {"containers": [{"name": "c", "image": "x"}]}});
    prepare_for_create("", "v1", "Pod", &mut e);
    assert_eq!(e["status"]["qosClass"], "BestEffort");
    let mut d = json!({"metadata": {"name": "d"}, "status": {"replicas": 3}});
    prepare_for_create("apps", "v1", "Deployment", &mut d);
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["status"], json!({}));
}
