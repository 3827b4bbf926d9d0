use serde_json::{json, Value};

use super::super::*;
use super::{ago, meta, names, now, pod, strs, two_containers};

#[test]
fn pod_states() {
    let running = json!({"running": {"startedAt": ago(200)}});
    let cases: Vec<(&str, Value, Value, [&str; 3])> = vec![
        (
            "pending",
            json!({"phase": "Pending"}),
            json!({"containers": [{"name": "a"}]}),
            ["0/1", "Pending", "0"],
        ),
        (
            "creating",
            json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            json!({"containers": [{"name": "a"}]}),
            ["0/1", "ContainerCreating", "0"],
        ),
        (
            "half ready",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": running},
                {"name": "b", "ready": false, "restartCount": 0, "state": running}]}),
            two_containers(),
            ["1/2", "Running", "0"],
        ),
        (
            "crashloop",
            json!({"phase": "Running", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 5,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}}]}),
            json!({"containers": [{"name": "a"}]}),
            ["0/1", "CrashLoopBackOff", "5 (5m ago)"],
        ),
        (
            "image pull",
            json!({"phase": "Pending", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}),
            json!({"containers": [{"name": "a"}]}),
            ["0/1", "ImagePullBackOff", "0"],
        ),
        (
            "completed",
            json!({"phase": "Succeeded", "containerStatuses": [
                {"name": "a", "ready": false, "restartCount": 0,
                 "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
            json!({"containers": [{"name": "a"}]}),
            ["0/1", "Completed", "0"],
        ),
        (
            "exit code without reason",
            json!({"phase": "Failed", "containerStatuses": [
                {"name": "a", "state": {"terminated": {"exitCode": 2}}}]}),
            json!({"containers": [{"name": "a"}]}),
            ["0/1", "ExitCode:2", "0"],
        ),
        (
            "init waiting",
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
                {"name": "i2", "state": {"running": {}}}]}),
            json!({"initContainers": [{"name": "i1"}, {"name": "i2"}], "containers": [{"name": "a"}]}),
            ["0/1", "Init:1/2", "0"],
        ),
        (
            "init crashloop",
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
            json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]}),
            ["0/1", "Init:CrashLoopBackOff", "3"],
        ),
        (
            "init failed",
            json!({"phase": "Pending", "initContainerStatuses": [
                {"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}),
            json!({"initContainers": [{"name": "i1"}], "containers": [{"name": "a"}]}),
            ["0/1", "Init:Error", "0"],
        ),
        (
            "sidecar started",
            json!({"phase": "Running", "conditions": [{"type": "Initialized", "status": "True"}],
                "initContainerStatuses": [{"name": "side", "started": true, "ready": true, "restartCount": 1, "state": running}],
                "containerStatuses": [{"name": "a", "ready": true, "restartCount": 0, "state": running}]}),
            json!({"initContainers": [{"name": "side", "restartPolicy": "Always"}], "containers": [{"name": "a"}]}),
            ["2/2", "Running", "1"],
        ),
        (
            "scheduling gated",
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}),
            json!({"containers": [{"name": "a"}]}),
            ["0/1", "SchedulingGated", "0"],
        ),
    ];
    for (label, status, spec, want) in cases {
        let cells = strs(&cells("", "pods", &pod(status, spec), now()));
        assert_eq!(cells.len(), columns("", "pods").len(), "{label}");
        assert_eq!(&cells[1..4], &want[..], "{label}");
        assert_eq!(cells[4], "5m", "{label}");
    }
}

#[test]
fn pod_terminating_node_lost_and_wide() {
    let mut p = pod(
        json!({"phase": "Running", "podIPs": [{"ip": "10.0.0.5"}], "conditions": [{"type": "gate", "status": "True"}]}),
        json!({"containers": [{"name": "a"}], "nodeName": "n1", "readinessGates": [{"conditionType": "gate"}, {"conditionType": "other"}]}),
    );
    p["metadata"]["deletionTimestamp"] = json!(ago(1));
    let c = strs(&cells("", "pods", &p, now()));
    assert_eq!(c[2], "Terminating");
    assert_eq!(&c[5..], &["10.0.0.5", "n1", "<none>", "1/2"]);
    p["status"]["reason"] = json!("NodeLost");
    assert_eq!(strs(&cells("", "pods", &p, now()))[2], "Unknown");
    let empty = strs(&cells("", "pods", &json!({}), now()));
    assert_eq!(
        empty,
        [
            "",
            "0/0",
            "",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "<none>",
            "<none>"
        ]
    );
}

#[test]
fn pod_columns_match_upstream() {
    let cols = columns("", "pods");
    assert_eq!(
        names(&cols),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let prio: Vec<i32> = cols.iter().map(|c| c.priority).collect();
    assert_eq!(prio, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(cols[0].format, "name");
    assert_eq!(cols[3].type_, "string");
}

#[test]
fn services_of_every_type() {
    let svc = |spec: Value, status: Value| json!({"metadata": meta("s", 60), "spec": spec, "status": status});
    let cases = vec![
        (
            svc(
                json!({"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                "ports": [{"port": 80, "protocol": "TCP"}], "selector": {"app": "web", "tier": "a"}}),
                json!({}),
            ),
            [
                "ClusterIP",
                "10.96.0.1",
                "<none>",
                "80/TCP",
                "60s",
                "app=web,tier=a",
            ],
        ),
        (
            svc(
                json!({"type": "ClusterIP", "clusterIP": "None", "clusterIPs": ["None"]}),
                json!({}),
            ),
            ["ClusterIP", "None", "<none>", "<none>", "60s", "<none>"],
        ),
        (
            svc(
                json!({"type": "NodePort", "clusterIPs": ["10.96.0.2"], "externalIPs": ["1.2.3.4"],
                "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
                json!({}),
            ),
            [
                "NodePort",
                "10.96.0.2",
                "1.2.3.4",
                "80:30080/TCP,53/UDP",
                "60s",
                "<none>",
            ],
        ),
        (
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"], "ports": [{"port": 443, "nodePort": 31443, "protocol": "TCP"}]}),
                json!({"loadBalancer": {}}),
            ),
            [
                "LoadBalancer",
                "10.96.0.3",
                "<pending>",
                "443:31443/TCP",
                "60s",
                "<none>",
            ],
        ),
        (
            svc(
                json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.3"], "externalIPs": ["9.9.9.9"]}),
                json!({"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}, {"ip": "5.6.7.8"}]}}),
            ),
            [
                "LoadBalancer",
                "10.96.0.3",
                "5.6.7.8,lb.example.com,9.9.9.9",
                "<none>",
                "60s",
                "<none>",
            ],
        ),
        (
            svc(
                json!({"type": "ExternalName", "externalName": "db.example.com"}),
                json!({}),
            ),
            [
                "ExternalName",
                "<none>",
                "db.example.com",
                "<none>",
                "60s",
                "<none>",
            ],
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(&strs(&cells("", "services", &obj, now()))[1..], &want[..]);
    }
    assert_eq!(
        names(&columns("", "services")),
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
}

#[test]
fn nodes_with_roles_and_unschedulable() {
    let n = json!({"metadata": {"name": "cp", "creationTimestamp": ago(3 * 86400),
        "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/master": "", "kubernetes.io/role": "infra"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}],
            "nodeInfo": {"kubeletVersion": "v1.33.0", "osImage": "Debian", "kernelVersion": "6.1", "containerRuntimeVersion": "containerd://2.0"}}});
    assert_eq!(
        strs(&cells("", "nodes", &n, now())),
        [
            "cp",
            "Ready,SchedulingDisabled",
            "control-plane,infra,master",
            "3d",
            "v1.33.0",
            "192.168.1.2",
            "<none>",
            "Debian",
            "6.1",
            "containerd://2.0"
        ]
    );
    let bare = json!({"metadata": {"name": "w"}, "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}});
    assert_eq!(
        strs(&cells("", "nodes", &bare, now())),
        [
            "w",
            "NotReady",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ]
    );
    assert_eq!(strs(&cells("", "nodes", &json!({}), now()))[1], "Unknown");
}

#[test]
fn events_core_and_events_v1() {
    let e = json!({"metadata": meta("p.17a", 600), "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"},
        "message": " Back-off restarting \n", "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": ago(600), "lastTimestamp": ago(30), "count": 7});
    assert_eq!(
        cells("", "events", &e, now()),
        vec![
            json!("30s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/p"),
            json!("spec.containers{a}"),
            json!("kubelet, n1"),
            json!("Back-off restarting"),
            json!("10m"),
            json!(7),
            json!("p.17a")
        ]
    );
    let v1 = json!({"metadata": meta("e2", 60), "type": "Normal", "reason": "Scheduled",
        "regarding": {"kind": "Pod", "name": "q"}, "note": "ok", "eventTime": "2024-06-01T11:59:00.000000Z",
        "reportingController": "default-scheduler", "series": {"count": 3, "lastObservedTime": ago(5)}});
    assert_eq!(
        strs(&cells("events.k8s.io", "events", &v1, now())),
        [
            "5s",
            "Normal",
            "Scheduled",
            "pod/q",
            "",
            "default-scheduler",
            "ok",
            "60s",
            "3",
            "e2"
        ]
    );
    let cols = columns("", "events");
    assert_eq!(
        names(&cols),
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    assert_eq!(
        cols.iter().map(|c| c.priority).collect::<Vec<_>>(),
        [0, 0, 0, 0, 1, 1, 0, 1, 1, 1]
    );
}

#[test]
fn simple_core_kinds_and_defaults() {
    let cm =
        json!({"metadata": meta("cm", 5), "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
    assert_eq!(
        cells("", "configmaps", &cm, now()),
        vec![json!("cm"), json!(3), json!("5s")]
    );
    let s = json!({"metadata": meta("s", 5), "type": "Opaque", "data": {"a": ""}});
    assert_eq!(
        cells("", "secrets", &s, now()),
        vec![json!("s"), json!("Opaque"), json!(1), json!("5s")]
    );
    let ns = json!({"metadata": meta("kube-system", 5), "status": {"phase": "Active"}});
    assert_eq!(
        strs(&cells("", "namespaces", &ns, now())),
        ["kube-system", "Active", "5s"]
    );
    let ep = json!({"metadata": meta("e", 5), "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
        "ports": [{"port": 80}, {"port": 443}]}]});
    assert_eq!(
        strs(&cells("", "endpoints", &ep, now()))[1],
        "10.0.0.1:80,[fd00::1]:80,10.0.0.1:443 + 1 more..."
    );
    let pvc = json!({"metadata": meta("data", 5), "spec": {"volumeName": "pv1", "storageClassName": "local"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}});
    assert_eq!(
        strs(&cells("", "persistentvolumeclaims", &pvc, now())),
        ["data", "Bound", "pv1", "1Gi", "RWO,RWX", "local", "<unset>", "5s", "<unset>"]
    );
    let rq = json!({"metadata": meta("q", 5), "status": {"hard": {"pods": "10", "limits.cpu": "2", "requests.cpu": "1"},
        "used": {"pods": "3"}}});
    assert_eq!(
        strs(&cells("", "resourcequotas", &rq, now()))[1..3],
        ["pods: 3/10, requests.cpu: 0/1", "limits.cpu: 0/2"]
    );
    // Kinds without a printer use the default convertor.
    for (g, r) in [
        ("rbac.authorization.k8s.io", "roles"),
        ("", "limitranges"),
        ("apiextensions.k8s.io", "customresourcedefinitions"),
    ] {
        assert_eq!(names(&columns(g, r)), ["Name", "Created At"]);
        assert_eq!(columns(g, r)[1].type_, "date");
    }
    assert_eq!(
        cells(
            "",
            "limitranges",
            &json!({"metadata": {"name": "l", "creationTimestamp": "2024-01-02T03:04:05Z"}}),
            now()
        ),
        vec![json!("l"), json!("2024-01-02T03:04:05Z")]
    );
}
