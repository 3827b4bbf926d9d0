use serde_json::{json, Value};

use super::super::*;
use super::{ago, meta, names, now, strs};

#[test]
fn deployments_and_apps() {
    let d = json!({"metadata": meta("web", 7200), "spec": {"replicas": 3,
        "selector": {"matchLabels": {"app": "web"}, "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]}]},
        "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}, {"name": "side", "image": "busybox"}]}}},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    assert_eq!(
        cells("apps", "deployments", &d, now()),
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("120m"),
            json!("nginx,side"),
            json!("nginx:1.25,busybox"),
            json!("app=web,env in (dev,prod)")
        ]
    );
    assert_eq!(
        names(&columns("apps", "deployments")),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let bad =
        json!({"spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}});
    assert_eq!(
        cells("apps", "deployments", &bad, now())[7],
        json!("<invalid>")
    );
    assert_eq!(
        cells("apps", "replicasets", &bad, now())[7],
        json!("<error>")
    );
    let ds = json!({"metadata": meta("ds", 10), "spec": {"selector": {}}, "status": {"desiredNumberScheduled": 2}});
    let c = strs(&cells("apps", "daemonsets", &ds, now()));
    assert_eq!(
        c,
        ["ds", "2", "0", "0", "0", "0", "<none>", "10s", "", "", "<none>"]
    );
    let cr = json!({"metadata": {"name": "ds-1", "ownerReferences": [
        {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "ds", "controller": true}]}, "revision": 4});
    assert_eq!(
        cells("apps", "controllerrevisions", &cr, now()),
        vec![
            json!("ds-1"),
            json!("daemonset.apps/ds"),
            json!(4),
            json!("<unknown>")
        ]
    );
}

#[test]
fn jobs_and_cronjobs() {
    let job = |status: Value, spec: Value| json!({"metadata": meta("j", 600), "spec": spec, "status": status});
    let cases = vec![
        (
            job(
                json!({"succeeded": 1, "startTime": ago(600), "completionTime": ago(570),
            "conditions": [{"type": "Complete", "status": "True"}]}),
                json!({"completions": 1}),
            ),
            ["Complete", "1/1", "30s"],
        ),
        (
            job(
                json!({"startTime": ago(125)}),
                json!({"completions": 3, "parallelism": 2}),
            ),
            ["Running", "0/3", "2m5s"],
        ),
        (
            job(json!({}), json!({"parallelism": 4})),
            ["Running", "0/1 of 4", ""],
        ),
        (
            job(
                json!({"conditions": [{"type": "Failed", "status": "True"}]}),
                json!({}),
            ),
            ["Failed", "0/1", ""],
        ),
        (
            job(
                json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
                json!({}),
            ),
            ["Suspended", "0/1", ""],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(&strs(&cells("batch", "jobs", &obj, now()))[1..4], &want[..]);
    }
    assert_eq!(
        names(&columns("batch", "jobs")),
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    let cj = json!({"metadata": meta("cj", 86400), "spec": {"schedule": "*/5 * * * *", "suspend": false,
        "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "x"}], "lastScheduleTime": ago(90)}});
    assert_eq!(
        cells("batch", "cronjobs", &cj, now()),
        vec![
            json!("cj"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("90s"),
            json!("24h"),
            json!("c"),
            json!("busybox"),
            json!("<none>")
        ]
    );
}

#[test]
fn every_printer_row_matches_its_columns() {
    let resources = [
        ("", "pods"),
        ("", "services"),
        ("", "endpoints"),
        ("", "nodes"),
        ("", "namespaces"),
        ("", "configmaps"),
        ("", "secrets"),
        ("", "serviceaccounts"),
        ("", "events"),
        ("", "persistentvolumes"),
        ("", "persistentvolumeclaims"),
        ("", "replicationcontrollers"),
        ("", "limitranges"),
        ("", "resourcequotas"),
        ("", "podtemplates"),
        ("", "componentstatuses"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "controllerrevisions"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
        ("autoscaling", "horizontalpodautoscalers"),
        ("coordination.k8s.io", "leases"),
        ("discovery.k8s.io", "endpointslices"),
        ("events.k8s.io", "events"),
        ("networking.k8s.io", "ingresses"),
        ("networking.k8s.io", "ingressclasses"),
        ("networking.k8s.io", "networkpolicies"),
        ("networking.k8s.io", "ipaddresses"),
        ("networking.k8s.io", "servicecidrs"),
        ("policy", "poddisruptionbudgets"),
        ("rbac.authorization.k8s.io", "roles"),
        ("rbac.authorization.k8s.io", "rolebindings"),
        ("rbac.authorization.k8s.io", "clusterroles"),
        ("rbac.authorization.k8s.io", "clusterrolebindings"),
        ("storage.k8s.io", "storageclasses"),
        ("storage.k8s.io", "csidrivers"),
        ("storage.k8s.io", "csinodes"),
        ("storage.k8s.io", "volumeattachments"),
        ("storage.k8s.io", "csistoragecapacities"),
        ("scheduling.k8s.io", "priorityclasses"),
        ("node.k8s.io", "runtimeclasses"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
        (
            "admissionregistration.k8s.io",
            "validatingwebhookconfigurations",
        ),
        (
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
        ),
        ("certificates.k8s.io", "certificatesigningrequests"),
        (
            "flowcontrol.apiserver.k8s.io",
            "prioritylevelconfigurations",
        ),
        ("apiregistration.k8s.io", "apiservices"),
        ("example.com", "widgets"),
    ];
    let junk = [
        json!({}),
        json!(null),
        json!({"metadata": 5, "spec": "x", "status": []}),
    ];
    for (g, r) in resources {
        let n = columns(g, r).len();
        for obj in &junk {
            assert_eq!(cells(g, r, obj, now()).len(), n, "{g}/{r}");
        }
    }
}

#[test]
fn other_groups() {
    let hpa = json!({"metadata": meta("h", 5), "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "minReplicas": 1, "maxReplicas": 5, "metrics": [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "x"}, "target": {"averageValue": "1"}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 12}}}]}});
    assert_eq!(
        cells("autoscaling", "horizontalpodautoscalers", &hpa, now()),
        vec![
            json!("h"),
            json!("Deployment/web"),
            json!("cpu: 12%/80%, memory: <unknown>/100Mi + 1 more..."),
            json!("1"),
            json!(5),
            json!(2),
            json!("5s")
        ]
    );
    let ing = json!({"metadata": meta("i", 5), "spec": {"ingressClassName": "nginx", "tls": [{}],
        "rules": [{"host": "a.com"}, {"host": "b.com"}]}, "status": {"loadBalancer": {"ingress": [{"ip": "1.1.1.1"}]}}});
    assert_eq!(
        strs(&cells("networking.k8s.io", "ingresses", &ing, now())),
        ["i", "nginx", "a.com,b.com", "1.1.1.1", "80, 443", "5s"]
    );
    let pdb = json!({"metadata": meta("p", 5), "spec": {"minAvailable": "50%"}, "status": {"disruptionsAllowed": 1}});
    assert_eq!(
        cells("policy", "poddisruptionbudgets", &pdb, now()),
        vec![
            json!("p"),
            json!("50%"),
            json!("N/A"),
            json!(1),
            json!("5s")
        ]
    );
    let rb = json!({"metadata": meta("rb", 5), "roleRef": {"kind": "ClusterRole", "name": "view"}, "subjects": [
        {"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"}, {"kind": "ServiceAccount", "namespace": "ns", "name": "sa"},
        {"kind": "User", "name": "bob"}]});
    assert_eq!(
        strs(&cells(
            "rbac.authorization.k8s.io",
            "rolebindings",
            &rb,
            now()
        )),
        [
            "rb",
            "ClusterRole/view",
            "5s",
            "alice, bob",
            "devs",
            "ns/sa"
        ]
    );
    let sc = json!({"metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
    assert_eq!(
        cells("storage.k8s.io", "storageclasses", &sc, now()),
        vec![
            json!("local (default)"),
            json!("rancher.io/local-path"),
            json!("Delete"),
            json!("WaitForFirstConsumer"),
            json!(false),
            json!("<unknown>")
        ]
    );
    let slice = json!({"metadata": meta("s", 5), "addressType": "IPv4", "ports": [{"port": 80}, {"name": "dns"}, {}],
        "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2", "10.0.0.3", "10.0.0.4"]}]});
    assert_eq!(
        strs(&cells("discovery.k8s.io", "endpointslices", &slice, now()))[1..4],
        ["IPv4", "80,dns,*", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."]
    );
    let np = json!({"metadata": meta("np", 5), "spec": {}});
    assert_eq!(
        strs(&cells("networking.k8s.io", "networkpolicies", &np, now()))[1],
        "<none>"
    );
    let pc = json!({"metadata": meta("high", 5), "value": 1000, "globalDefault": true, "preemptionPolicy": "Never"});
    assert_eq!(
        cells("scheduling.k8s.io", "priorityclasses", &pc, now()),
        vec![
            json!("high"),
            json!(1000),
            json!(true),
            json!("5s"),
            json!("Never")
        ]
    );
    let lease = json!({"metadata": meta("l", 5), "spec": {"holderIdentity": "node-1"}});
    assert_eq!(
        strs(&cells("coordination.k8s.io", "leases", &lease, now())),
        ["l", "node-1", "5s"]
    );
}
