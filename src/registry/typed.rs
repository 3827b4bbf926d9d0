//! The built-in kinds' Rust types (k8s-openapi), used to decode request bodies strictly:
//! a body that does not fit the type is a 400, and fields the type does not know are reported
//! (fieldValidation Strict / Warn) and dropped, as kube-apiserver does.

use serde_json::Value;

macro_rules! kinds {
    ($( ($g:literal, $k:literal) => $t:ty ),* $(,)?) => {
        /// Round-trip `obj` through the kind's type. `None` for kinds without a type here.
        fn roundtrip(group: &str, kind: &str, obj: &Value) -> Option<Result<Value, String>> {
            match (group, kind) {
                $( ($g, $k) => Some(
                    serde_json::from_value::<$t>(obj.clone())
                        .map_err(|e| e.to_string())
                        .and_then(|t| serde_json::to_value(&t).map_err(|e| e.to_string())),
                ), )*
                _ => None,
            }
        }
    };
}

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
    coordination::v1 as coordination, core::v1 as core, discovery::v1 as discovery,
    events::v1 as events, networking::v1 as networking, node::v1 as node, policy::v1 as policy,
    rbac::v1 as rbac, scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;

kinds! {
    ("", "Binding") => core::Binding,
    ("", "ConfigMap") => core::ConfigMap,
    ("", "Endpoints") => core::Endpoints,
    ("", "Event") => core::Event,
    ("", "LimitRange") => core::LimitRange,
    ("", "Namespace") => core::Namespace,
    ("", "Node") => core::Node,
    ("", "PersistentVolumeClaim") => core::PersistentVolumeClaim,
    ("", "PersistentVolume") => core::PersistentVolume,
    ("", "Pod") => core::Pod,
    ("", "PodTemplate") => core::PodTemplate,
    ("", "ReplicationController") => core::ReplicationController,
    ("", "ResourceQuota") => core::ResourceQuota,
    ("", "Secret") => core::Secret,
    ("", "ServiceAccount") => core::ServiceAccount,
    ("", "Service") => core::Service,
    ("apps", "ControllerRevision") => apps::ControllerRevision,
    ("apps", "DaemonSet") => apps::DaemonSet,
    ("apps", "Deployment") => apps::Deployment,
    ("apps", "ReplicaSet") => apps::ReplicaSet,
    ("apps", "StatefulSet") => apps::StatefulSet,
    ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::HorizontalPodAutoscaler,
    ("batch", "CronJob") => batch::CronJob,
    ("batch", "Job") => batch::Job,
    ("coordination.k8s.io", "Lease") => coordination::Lease,
    ("discovery.k8s.io", "EndpointSlice") => discovery::EndpointSlice,
    ("events.k8s.io", "Event") => events::Event,
    ("networking.k8s.io", "IngressClass") => networking::IngressClass,
    ("networking.k8s.io", "Ingress") => networking::Ingress,
    ("networking.k8s.io", "NetworkPolicy") => networking::NetworkPolicy,
    ("policy", "PodDisruptionBudget") => policy::PodDisruptionBudget,
    ("policy", "Eviction") => policy::Eviction,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding") => rbac::ClusterRoleBinding,
    ("rbac.authorization.k8s.io", "ClusterRole") => rbac::ClusterRole,
    ("rbac.authorization.k8s.io", "RoleBinding") => rbac::RoleBinding,
    ("rbac.authorization.k8s.io", "Role") => rbac::Role,
    ("storage.k8s.io", "CSIDriver") => storage::CSIDriver,
    ("storage.k8s.io", "CSINode") => storage::CSINode,
    ("storage.k8s.io", "CSIStorageCapacity") => storage::CSIStorageCapacity,
    ("storage.k8s.io", "StorageClass") => storage::StorageClass,
    ("storage.k8s.io", "VolumeAttachment") => storage::VolumeAttachment,
    ("scheduling.k8s.io", "PriorityClass") => scheduling::PriorityClass,
    ("node.k8s.io", "RuntimeClass") => node::RuntimeClass,
    ("apiextensions.k8s.io", "CustomResourceDefinition") => apiextensions::CustomResourceDefinition,
}

/// Decode `obj` as the kind's type. Returns the normalized object and the paths of the
/// fields the type does not have. Err is a decoding error for a 400.
pub fn decode_strict(group: &str, kind: &str, obj: &Value) -> Result<(Value, Vec<String>), String> {
    match roundtrip(group, kind, obj) {
        None => Ok((obj.clone(), vec![])),
        Some(Err(e)) => Err(e),
        Some(Ok(out)) => {
            let mut unknown = vec![];
            dropped(obj, &out, "", &mut unknown);
            Ok((out, unknown))
        }
    }
}

/// Paths present (non-null) in `a` and missing from `b`.
fn dropped(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(am), Value::Object(bm)) => {
            for (k, av) in am {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match bm.get(k) {
                    None if !av.is_null() && !is_empty(av) => out.push(p),
                    Some(bv) => dropped(av, bv, &p, out),
                    None => {}
                }
            }
        }
        (Value::Array(aa), Value::Array(ba)) => {
            for (i, (av, bv)) in aa.iter().zip(ba).enumerate() {
                dropped(av, bv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_are_found() {
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"},
            "spec": {"containers": [{"name": "c", "image": "i", "imagePolicy": "x"}], "bogus": 1}});
        let (out, unknown) = decode_strict("", "Pod", &pod).unwrap();
        assert_eq!(
            unknown,
            vec!["spec.containers[0].imagePolicy", "spec.bogus"]
        );
        assert!(out["spec"].get("bogus").is_none());
        let bad = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"replicas": "3"}});
        assert!(decode_strict("apps", "Deployment", &bad).is_err());
    }
}
