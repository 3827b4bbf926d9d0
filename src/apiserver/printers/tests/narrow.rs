//! The narrowed rows of a list's Table against the full parse: for each kind with declared
//! reads, a rich object and every variant of it with one field removed, nulled or of
//! another type, stored as the codec stores it, must print the same row bytes both ways.

use serde_json::{json, Value};

use super::super::narrow::{self, Mask};
use super::super::*;
use super::{ago, now};
use crate::registry::codec;
use crate::store::KeyValue;

/// The check every printer test runs through [`cells`]: the same cells from the object
/// narrowed to its printer's reads.
pub(crate) fn assert_narrow_agrees(
    group: &str,
    resource: &str,
    obj: &Value,
    now: jiff::Timestamp,
    full: &[Value],
) {
    let Some(reads) = reads(group, resource) else {
        return;
    };
    let bytes = serde_json::to_vec(obj).expect("a Value serializes");
    let Ok(narrowed) = narrow::read(&bytes, &Mask::new(reads)) else {
        assert!(!obj.is_object(), "an object must read narrowly: {obj}");
        return;
    };
    let got = Builtin::new(group, resource).cells(&narrowed.value, now);
    assert_eq!(
        got, full,
        "{group}/{resource}: narrowed cells differ for {obj}"
    );
}

/// `v` with one change at every place in it: each field removed, and each value replaced by
/// null, a number, a string, an empty array and an empty object.
fn variants(v: &Value) -> Vec<Value> {
    let mut out = vec![v.clone()];
    let mut paths = Vec::new();
    collect_paths(v, &mut Vec::new(), &mut paths);
    let others = [json!(null), json!(7), json!("x"), json!([]), json!({})];
    for path in &paths {
        for other in &others {
            let mut changed = v.clone();
            *pointer_mut(&mut changed, path) = other.clone();
            out.push(changed);
        }
        if let Some((last, parent)) = path.split_last() {
            let mut removed = v.clone();
            match pointer_mut(&mut removed, parent) {
                Value::Object(m) => {
                    m.shift_remove(last.as_str());
                }
                Value::Array(a) => {
                    a.remove(last.parse::<usize>().expect("an index"));
                }
                _ => unreachable!("a parent is a container"),
            }
            out.push(removed);
        }
    }
    out
}

fn collect_paths(v: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    let children: Vec<(String, &Value)> = match v {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (k, child) in children {
        at.push(k);
        out.push(at.clone());
        collect_paths(child, at, out);
        at.pop();
    }
}

fn pointer_mut<'a>(v: &'a mut Value, path: &[String]) -> &'a mut Value {
    path.iter().fold(v, |cur, k| match cur {
        Value::Object(m) => m.get_mut(k.as_str()).expect("a collected key"),
        Value::Array(a) => &mut a[k.parse::<usize>().expect("an index")],
        _ => unreachable!("a collected path"),
    })
}

fn metadata(name: &str) -> Value {
    json!({
        "name": name, "namespace": "default", "uid": "0b9e6f0c-1",
        "creationTimestamp": ago(4000), "generation": 3,
        "labels": {"app": "web", "node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"},
        "annotations": {"note": "quote \" backslash \\ tab \t ünïcødé"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": true}],
        "finalizers": ["example.com/keep"],
        "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                           "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}],
    })
}

fn container_statuses(restartable: bool) -> Value {
    json!([
        {"name": "a", "ready": true, "started": restartable, "restartCount": 2, "image": "a:1", "imageID": "sha256:1",
         "state": {"running": {"startedAt": ago(100)}},
         "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ago(200)}}},
        {"name": "b", "ready": false, "restartCount": 0,
         "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}}},
        {"name": "c", "ready": false, "restartCount": 1,
         "state": {"terminated": {"exitCode": 0, "signal": 9, "reason": "Completed", "finishedAt": ago(50)}}},
    ])
}

/// A rich object of each kind with declared reads.
fn objects() -> Vec<(&'static str, &'static str, Value)> {
    let mut deleting = metadata("gone");
    deleting["deletionTimestamp"] = json!(ago(10));
    let template = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
        {"name": "web", "image": "nginx:1", "ports": [{"containerPort": 80}]},
        {"name": "side", "image": "busybox"}]}});
    let selector = json!({"matchLabels": {"app": "web"}, "matchExpressions": [
        {"key": "tier", "operator": "In", "values": ["b", "a"]}, {"key": "env", "operator": "Exists"}]});
    vec![
        (
            "",
            "pods",
            json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": deleting,
                "spec": {"nodeName": "n1",
                    "initContainers": [{"name": "i", "image": "i", "restartPolicy": "Always"}, {"name": "j", "image": "j"}],
                    "containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b"}, {"name": "c", "image": "c"}],
                    "readinessGates": [{"conditionType": "example.com/gate"}, {"conditionType": "Other"}]},
                "status": {"phase": "Running", "reason": "", "podIP": "10.0.0.9", "podIPs": [{"ip": "10.0.0.9"}, {"ip": "fd00::9"}],
                    "nominatedNodeName": "n2",
                    "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "False"},
                                   {"type": "PodScheduled", "status": "True", "reason": "SchedulingGated"},
                                   {"type": "example.com/gate", "status": "True"}],
                    "initContainerStatuses": container_statuses(true),
                    "containerStatuses": container_statuses(false)},
            }),
        ),
        (
            "",
            "pods",
            json!({
                "apiVersion": "v1", "kind": "Pod", "metadata": metadata("done"),
                "spec": {"containers": [{"name": "a"}]},
                "status": {"phase": "Succeeded", "reason": "NodeLost", "containerStatuses": [
                    {"name": "a", "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]},
            }),
        ),
        (
            "",
            "services",
            json!({
                "apiVersion": "v1", "kind": "Service", "metadata": metadata("svc"),
                "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.5", "clusterIPs": ["10.43.0.5", "fd00::5"],
                    "externalIPs": ["1.2.3.4"], "externalName": "example.com", "selector": {"app": "web", "tier": "a"},
                    "ports": [{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080, "targetPort": 8080},
                              {"port": 53, "protocol": "UDP"}]},
                "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example.com"}]}},
            }),
        ),
        (
            "",
            "nodes",
            json!({
                "apiVersion": "v1", "kind": "Node", "metadata": metadata("n1"),
                "spec": {"unschedulable": true, "podCIDR": "10.42.0.0/24"},
                "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"},
                                          {"type": "Ready", "status": "True"}],
                    "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}, {"type": "Hostname", "address": "n1"},
                                  {"type": "ExternalIP", "address": "1.2.3.4"}],
                    "nodeInfo": {"kubeletVersion": "v1.31.0-k1s", "osImage": "Debian GNU/Linux 12", "kernelVersion": "6.1.0",
                                 "containerRuntimeVersion": "k1s://0.1"},
                    "images": [{"names": ["busybox"], "sizeBytes": 1000}]},
            }),
        ),
        (
            "",
            "configmaps",
            json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata("cm"),
                "data": {"a": "1", "b": "two\nlines"}, "binaryData": {"c": "AAE="},
            }),
        ),
        (
            "",
            "secrets",
            json!({
                "apiVersion": "v1", "kind": "Secret", "metadata": metadata("s"),
                "type": "kubernetes.io/tls", "data": {"tls.crt": "AA==", "tls.key": "AQ=="},
            }),
        ),
        (
            "",
            "events",
            json!({
                "apiVersion": "v1", "kind": "Event", "metadata": metadata("e.1"),
                "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{a}"},
                "reason": "BackOff", "message": "  Back-off restarting  ", "type": "Warning",
                "source": {"component": "kubelet", "host": "n1"}, "reportingController": "k1s", "reportingInstance": "i",
                "firstTimestamp": ago(900), "lastTimestamp": ago(30), "eventTime": ago(950), "count": 4,
                "series": {"count": 9, "lastObservedTime": ago(5)},
            }),
        ),
        (
            "events.k8s.io",
            "events",
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": metadata("e.2"),
                "regarding": {"kind": "Node", "name": "n1", "fieldPath": ""}, "note": "rebooted", "type": "Normal",
                "reason": "Rebooted", "deprecatedSource": {"component": "kubelet", "host": "n1"},
                "deprecatedFirstTimestamp": ago(600), "deprecatedLastTimestamp": ago(60), "deprecatedCount": 2,
                "eventTime": ago(610), "reportingController": "k1s", "reportingInstance": "n1",
            }),
        ),
        (
            "apps",
            "deployments",
            json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata("web"),
                "spec": {"replicas": 3, "selector": selector, "template": template},
                "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 1},
            }),
        ),
        (
            "apps",
            "replicasets",
            json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": metadata("web-1"),
                "spec": {"replicas": 2, "selector": selector, "template": template},
                "status": {"replicas": 2, "readyReplicas": 1, "fullyLabeledReplicas": 2},
            }),
        ),
        (
            "batch",
            "jobs",
            json!({
                "apiVersion": "batch/v1", "kind": "Job", "metadata": metadata("job"),
                "spec": {"completions": 3, "parallelism": 2, "selector": selector, "template": template},
                "status": {"succeeded": 2, "startTime": ago(500), "completionTime": ago(100),
                           "conditions": [{"type": "Suspended", "status": "False"}, {"type": "Complete", "status": "True"}]},
            }),
        ),
        (
            "discovery.k8s.io",
            "endpointslices",
            json!({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": metadata("web-abc"),
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns"}, {}, {"port": 9090}],
                "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"], "conditions": {"ready": true}, "nodeName": "n1"},
                              {"addresses": ["10.0.0.3", "10.0.0.4"]}],
            }),
        ),
        (
            "rbac.authorization.k8s.io",
            "roles",
            json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": metadata("r"),
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}],
            }),
        ),
    ]
}

/// The row's bytes as the generic path writes them: the full parse, printed and
/// serialized.
fn full_row(b: &Builtin, kv: &KeyValue, include: IncludeObject) -> Vec<u8> {
    let obj = codec::decode(kv).expect("decodes");
    let row = Row::new(b.cells(&obj, now()), &obj, include);
    serde_json::to_vec(&row).expect("serializes")
}

#[test]
fn narrowed_rows_are_the_rows_of_the_full_parse() {
    let mut checked = 0;
    for (group, resource, base) in objects() {
        let b = Builtin::new(group, resource);
        assert!(b.mask.is_some(), "{group}/{resource} reads narrowly");
        for obj in variants(&base) {
            let Ok(value) = codec::encode(&obj) else {
                continue; // not an object: never stored
            };
            let kv = KeyValue {
                key: format!("/registry/{resource}/x"),
                value,
                create_revision: 5,
                mod_revision: 17,
            };
            // the printer tests' check, on every variant
            let full = cells(group, resource, &codec::decode(&kv).unwrap(), now());
            assert_eq!(full, b.cells(&codec::decode(&kv).unwrap(), now()));
            for include in [IncludeObject::Metadata, IncludeObject::None] {
                let mut got = Vec::new();
                let wrote = b
                    .write_stored_row(&mut got, &kv.value, 17, include, now())
                    .unwrap();
                assert!(wrote, "{group}/{resource} row written narrowly");
                let want = full_row(&b, &kv, include);
                assert_eq!(
                    String::from_utf8_lossy(&got),
                    String::from_utf8_lossy(&want),
                    "{group}/{resource} {include:?} for {obj}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 2_000, "only {checked} rows compared");
}

#[test]
fn whole_objects_and_unreadable_bytes_are_left_to_the_full_parse() {
    let b = Builtin::new("", "pods");
    let mut out = Vec::new();
    let pod = br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"}}"#;
    assert!(!b
        .write_stored_row(&mut out, pod, 3, IncludeObject::Object, now())
        .unwrap());
    for bad in [
        &b"[1,2]"[..],
        b"{not json",
        b"{\"a\":1} trailing",
        b"\"metadata\"",
    ] {
        assert!(!b
            .write_stored_row(&mut out, bad, 3, IncludeObject::Metadata, now())
            .unwrap());
    }
    assert!(
        out.is_empty(),
        "nothing written for objects left to the full parse"
    );
    // a printer that reads whole objects is never narrowed
    let hpa = Builtin::new("autoscaling", "horizontalpodautoscalers");
    assert!(!hpa
        .write_stored_row(&mut out, pod, 3, IncludeObject::Metadata, now())
        .unwrap());
}

#[test]
fn masks_keep_what_their_paths_name() {
    let m = Mask::new(&["spec.containers.name", "spec", "metadata.name"]);
    let bytes = br#"{"kind":"Pod","metadata":{"name":"p","uid":"u"},"spec":{"containers":[{"name":"a","image":"i"}],"x":1},"status":{"phase":"Running","podIP":"1"}}"#;
    let n = narrow::read(bytes, &m).unwrap();
    assert_eq!(
        n.value,
        json!({"kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "a", "image": "i"}], "x": 1},
               "status": {"phase": "Running"}})
    );
    assert_eq!(n.metadata.unwrap().get(), r#"{"name":"p","uid":"u"}"#);
    let m = Mask::new(&["spec.containers.name"]);
    let n = narrow::read(bytes, &m).unwrap();
    assert_eq!(n.value["spec"], json!({"containers": [{"name": "a"}]}));
    assert!(n.value.get("metadata").is_none());
}
