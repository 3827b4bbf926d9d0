//! Round trips through prost-encoded upstream types, plus hostile input.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_pb::apimachinery::pkg::api::resource::Quantity;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::{TypeMeta, Unknown};
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{json, Value};

use super::{decode, encode, table};

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let unknown = Unknown {
        type_meta: Some(TypeMeta {
            api_version: s(api_version),
            kind: s(kind),
        }),
        raw: Some(raw),
        content_encoding: s(""),
        content_type: s(""),
    };
    let mut out = b"k8s\0".to_vec();
    out.extend(unknown.encode_to_vec());
    out
}

fn roundtrip<M: Message>(api_version: &str, kind: &str, m: &M) -> Value {
    let value = decode(&envelope(api_version, kind, m.encode_to_vec())).expect("decode");
    let again = decode(&encode(&value).expect("encode")).expect("decode of encode");
    assert_eq!(value, again, "encode is not the inverse of decode");
    value
}

/// Metadata as client-go sends it: every non-pointer string present.
fn meta(name: &str, namespace: &str) -> Option<meta::ObjectMeta> {
    Some(meta::ObjectMeta {
        name: s(name),
        generate_name: s(""),
        namespace: s(namespace),
        self_link: s(""),
        uid: s(""),
        resource_version: s(""),
        generation: Some(0),
        creation_timestamp: Some(meta::Time::default()),
        labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
        ..Default::default()
    })
}

fn quantity(v: &str) -> Quantity {
    Quantity { string: s(v) }
}

#[test]
fn configmap_and_secret() {
    let cm = core::ConfigMap {
        metadata: meta("x", ""),
        data: BTreeMap::from([("a".to_string(), "b".to_string())]),
        binary_data: BTreeMap::from([("bin".to_string(), vec![0, 1, 2])]),
        immutable: Some(false),
    };
    assert_eq!(
        roundtrip("v1", "ConfigMap", &cm),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "creationTimestamp": null, "labels": {"app": "web"}},
            "immutable": false, "data": {"a": "b"}, "binaryData": {"bin": "AAEC"}})
    );
    let secret = core::Secret {
        metadata: meta("s", "ns"),
        data: BTreeMap::from([("password".to_string(), b"hunter2".to_vec())]),
        string_data: BTreeMap::new(),
        r#type: s("Opaque"),
        immutable: None,
    };
    let v = roundtrip("v1", "Secret", &secret);
    assert_eq!(v["data"], json!({"password": "aHVudGVyMg=="}));
    assert_eq!(v["type"], "Opaque");
    assert_eq!(v["metadata"]["namespace"], "ns");
}

fn container() -> core::Container {
    core::Container {
        name: s("app"),
        image: s("nginx:1.27"),
        image_pull_policy: s(""),
        ports: vec![core::ContainerPort {
            container_port: Some(80),
            protocol: s("TCP"),
            host_port: Some(0),
            ..Default::default()
        }],
        resources: Some(core::ResourceRequirements {
            limits: BTreeMap::from([("memory".to_string(), quantity("128Mi"))]),
            requests: BTreeMap::from([("cpu".to_string(), quantity("250m"))]),
            ..Default::default()
        }),
        env: vec![core::EnvVar {
            name: s("A"),
            value: s(""),
            value_from: None,
        }],
        security_context: Some(core::SecurityContext {
            run_as_user: Some(0),
            privileged: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[test]
fn deployment_with_int_or_string_and_quantities() {
    let dep = apps::Deployment {
        metadata: meta("web", "default"),
        spec: Some(apps::DeploymentSpec {
            replicas: Some(0),
            selector: Some(meta::LabelSelector {
                match_labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
                match_expressions: vec![],
            }),
            strategy: Some(apps::DeploymentStrategy {
                r#type: s("RollingUpdate"),
                rolling_update: Some(apps::RollingUpdateDeployment {
                    max_surge: Some(IntOrString {
                        r#type: Some(1),
                        int_val: Some(0),
                        str_val: s("25%"),
                    }),
                    max_unavailable: Some(IntOrString {
                        r#type: Some(0),
                        int_val: Some(1),
                        str_val: s(""),
                    }),
                }),
            }),
            template: Some(core::PodTemplateSpec {
                metadata: meta("", ""),
                spec: Some(core::PodSpec {
                    containers: vec![container()],
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: Some(apps::DeploymentStatus::default()),
    };
    let v = roundtrip("apps/v1", "Deployment", &dep);
    let spec = &v["spec"];
    assert_eq!(spec["replicas"], 0);
    assert_eq!(
        spec["strategy"]["rollingUpdate"],
        json!({"maxUnavailable": 1, "maxSurge": "25%"})
    );
    let c = &spec["template"]["spec"]["containers"][0];
    assert_eq!(
        c,
        &json!({"name": "app", "image": "nginx:1.27",
            "ports": [{"containerPort": 80, "protocol": "TCP"}],
            "env": [{"name": "A"}],
            "resources": {"limits": {"memory": "128Mi"}, "requests": {"cpu": "250m"}},
            "securityContext": {"privileged": false, "runAsUser": 0}})
    );
    assert_eq!(v["status"], json!({}));
    assert_eq!(
        spec["template"]["metadata"],
        json!({"creationTimestamp": null, "labels": {"app": "web"}})
    );
}

#[test]
fn pod_volumes_are_inlined_and_times_formatted() {
    let pod = core::Pod {
        metadata: Some(meta::ObjectMeta {
            name: s("p"),
            creation_timestamp: Some(meta::Time {
                seconds: Some(1_700_000_000),
                nanos: Some(5),
            }),
            ..Default::default()
        }),
        spec: Some(core::PodSpec {
            volumes: vec![core::Volume {
                name: s("cfg"),
                volume_source: Some(core::VolumeSource {
                    config_map: Some(core::ConfigMapVolumeSource {
                        local_object_reference: Some(core::LocalObjectReference { name: s("x") }),
                        default_mode: Some(0o644),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
            }],
            containers: vec![container()],
            ..Default::default()
        }),
        status: None,
    };
    let v = roundtrip("v1", "Pod", &pod);
    assert_eq!(v["metadata"]["creationTimestamp"], "2023-11-14T22:13:20Z");
    assert_eq!(
        v["spec"]["volumes"],
        json!([{"name": "cfg", "configMap": {"name": "x", "defaultMode": 420}}])
    );
}

#[test]
fn event_micro_time() {
    let ev = core::Event {
        metadata: meta("e", "default"),
        involved_object: Some(core::ObjectReference {
            kind: s("Pod"),
            name: s("p"),
            ..Default::default()
        }),
        event_time: Some(meta::MicroTime {
            seconds: Some(1_700_000_000),
            nanos: Some(123_456_789),
        }),
        count: Some(3),
        ..Default::default()
    };
    let v = roundtrip("v1", "Event", &ev);
    assert_eq!(v["eventTime"], "2023-11-14T22:13:20.123456Z");
    assert_eq!(v["count"], 3);
    assert_eq!(v["involvedObject"], json!({"kind": "Pod", "name": "p"}));
}

#[test]
fn crd_schema_json_fields() {
    let string_prop = apiext::JsonSchemaProps {
        r#type: s("string"),
        ..Default::default()
    };
    let schema = apiext::JsonSchemaProps {
        r#type: s("object"),
        properties: BTreeMap::from([(
            "spec".to_string(),
            apiext::JsonSchemaProps {
                r#type: s("array"),
                items: Some(Box::new(apiext::JsonSchemaPropsOrArray {
                    schema: Some(Box::new(string_prop.clone())),
                    j_son_schemas: vec![],
                })),
                default: Some(apiext::Json {
                    raw: Some(br#"["a",1]"#.to_vec()),
                }),
                ..Default::default()
            },
        )]),
        additional_properties: Some(Box::new(apiext::JsonSchemaPropsOrBool {
            allows: Some(false),
            schema: None,
        })),
        x_kubernetes_preserve_unknown_fields: Some(true),
        ..Default::default()
    };
    let crd = apiext::CustomResourceDefinition {
        metadata: meta("foos.example.com", ""),
        spec: Some(apiext::CustomResourceDefinitionSpec {
            group: s("example.com"),
            names: Some(apiext::CustomResourceDefinitionNames {
                plural: s("foos"),
                kind: s("Foo"),
                ..Default::default()
            }),
            scope: s("Namespaced"),
            versions: vec![apiext::CustomResourceDefinitionVersion {
                name: s("v1"),
                served: Some(true),
                storage: Some(true),
                schema: Some(apiext::CustomResourceValidation {
                    open_apiv3_schema: Some(schema),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        status: None,
    };
    let v = roundtrip("apiextensions.k8s.io/v1", "CustomResourceDefinition", &crd);
    let schema = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert_eq!(
        schema,
        &json!({"type": "object",
            "properties": {"spec": {"type": "array", "default": ["a", 1], "items": {"type": "string"}}},
            "additionalProperties": false, "x-kubernetes-preserve-unknown-fields": true})
    );
}

#[test]
fn every_listed_kind_is_known() {
    let kinds = [
        (
            "v1",
            &[
                "Binding",
                "ConfigMap",
                "Endpoints",
                "Event",
                "LimitRange",
                "Namespace",
                "Node",
                "PersistentVolume",
                "PersistentVolumeClaim",
                "Pod",
                "PodTemplate",
                "ReplicationController",
                "ResourceQuota",
                "Secret",
                "ServiceAccount",
                "Service",
            ][..],
        ),
        (
            "apps/v1",
            &[
                "ControllerRevision",
                "DaemonSet",
                "Deployment",
                "ReplicaSet",
                "StatefulSet",
            ],
        ),
        ("autoscaling/v1", &["Scale", "HorizontalPodAutoscaler"]),
        ("autoscaling/v2", &["HorizontalPodAutoscaler"]),
        ("batch/v1", &["Job", "CronJob"]),
        ("coordination.k8s.io/v1", &["Lease"]),
        ("discovery.k8s.io/v1", &["EndpointSlice"]),
        ("events.k8s.io/v1", &["Event"]),
        (
            "networking.k8s.io/v1",
            &["Ingress", "IngressClass", "NetworkPolicy"],
        ),
        ("policy/v1", &["PodDisruptionBudget", "Eviction"]),
        (
            "rbac.authorization.k8s.io/v1",
            &["Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"],
        ),
        (
            "storage.k8s.io/v1",
            &[
                "StorageClass",
                "CSIDriver",
                "CSINode",
                "CSIStorageCapacity",
                "VolumeAttachment",
            ],
        ),
        ("scheduling.k8s.io/v1", &["PriorityClass"]),
        ("node.k8s.io/v1", &["RuntimeClass"]),
        ("apiextensions.k8s.io/v1", &["CustomResourceDefinition"]),
        ("meta.k8s.io/v1", &["DeleteOptions"]),
        ("v1", &["DeleteOptions"]),
    ];
    for (api_version, names) in kinds {
        for kind in names {
            let v = decode(&envelope(api_version, kind, Vec::new()))
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(v["kind"], *kind);
            assert!(encode(&v).is_ok(), "{api_version} {kind}");
        }
    }
    // The table is sorted for binary search.
    assert!(table::KINDS
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
}

#[test]
fn typed_objects_of_other_groups() {
    use k8s_pb::api::{batch::v1 as batch, policy::v1 as policy, rbac::v1 as rbac};
    let role = rbac::Role {
        metadata: meta("r", "ns"),
        rules: vec![rbac::PolicyRule {
            verbs: vec!["get".into()],
            api_groups: vec!["".into()],
            resources: vec!["pods".into()],
            ..Default::default()
        }],
    };
    let v = roundtrip("rbac.authorization.k8s.io/v1", "Role", &role);
    assert_eq!(
        v["rules"],
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    );
    let cj = batch::CronJob {
        metadata: meta("c", "ns"),
        spec: Some(batch::CronJobSpec {
            schedule: s("*/5 * * * *"),
            suspend: Some(false),
            job_template: Some(batch::JobTemplateSpec {
                metadata: meta("c", "ns"),
                spec: Some(batch::JobSpec {
                    backoff_limit: Some(0),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        }),
        status: None,
    };
    let v = roundtrip("batch/v1", "CronJob", &cj);
    assert_eq!(v["spec"]["suspend"], false);
    assert_eq!(v["spec"]["jobTemplate"]["spec"]["backoffLimit"], 0);
    let pdb = policy::PodDisruptionBudget {
        metadata: meta("p", "ns"),
        spec: Some(policy::PodDisruptionBudgetSpec {
            min_available: Some(IntOrString {
                r#type: Some(0),
                int_val: Some(2),
                str_val: s(""),
            }),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        roundtrip("policy/v1", "PodDisruptionBudget", &pdb)["spec"],
        json!({"minAvailable": 2})
    );
    let del = meta::DeleteOptions {
        grace_period_seconds: Some(0),
        propagation_policy: s("Foreground"),
        ..Default::default()
    };
    assert_eq!(
        roundtrip("meta.k8s.io/v1", "DeleteOptions", &del),
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0, "propagationPolicy": "Foreground"})
    );
}
