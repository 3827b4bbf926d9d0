//! Defaults for the remaining API groups, and create-time strategy changes.

use serde_json::{json, Value};

use super::json::{each_obj_mut, existing_obj_mut, obj_mut, s, set_default, set_default_str};
use super::quantity::Quantity;

pub fn default_misc(group: &str, version: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("networking.k8s.io", "NetworkPolicy") => default_network_policy(obj),
        ("networking.k8s.io", "IngressClass") => {
            if let Some(p) = obj
                .pointer_mut("/spec/parameters")
                .filter(|p| p.is_object())
            {
                set_default_str(p, "scope", "Cluster");
            }
        }
        ("discovery.k8s.io", "EndpointSlice") => each_obj_mut(obj, "ports", |p| {
            set_default(p, "name", json!(""));
            set_default(p, "protocol", json!("TCP"));
        }),
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            if let Some(r) = obj_mut(obj, "roleRef") {
                set_default_str(r, "apiGroup", "rbac.authorization.k8s.io");
            }
            each_obj_mut(obj, "subjects", |sub| {
                if matches!(s(sub, "kind"), "User" | "Group") {
                    set_default_str(sub, "apiGroup", "rbac.authorization.k8s.io");
                }
            });
        }
        ("storage.k8s.io", "StorageClass") => {
            set_default_str(obj, "reclaimPolicy", "Delete");
            set_default_str(obj, "volumeBindingMode", "Immediate");
        }
        ("storage.k8s.io", "CSIDriver") => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "attachRequired", json!(true));
                set_default(spec, "podInfoOnMount", json!(false));
                set_default(spec, "storageCapacity", json!(false));
                set_default(spec, "fsGroupPolicy", json!("ReadWriteOnceWithFSType"));
                set_default(spec, "requiresRepublish", json!(false));
                set_default(spec, "seLinuxMount", json!(false));
                set_default(spec, "volumeLifecycleModes", json!(["Persistent"]));
            }
        }
        ("scheduling.k8s.io", "PriorityClass") => {
            set_default(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
        }
        ("autoscaling", "HorizontalPodAutoscaler") => default_hpa(version, obj),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => default_crd(obj),
        (
            "admissionregistration.k8s.io",
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration",
        ) => {
            let mutating = kind.starts_with("Mutating");
            each_obj_mut(obj, "webhooks", |w| default_webhook(w, mutating));
        }
        _ => {}
    }
}

fn default_network_policy(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    for dir in ["ingress", "egress"] {
        each_obj_mut(spec, dir, |rule| {
            each_obj_mut(rule, "ports", |p| set_default(p, "protocol", json!("TCP")));
        });
    }
    let empty_types = spec
        .get("policyTypes")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty_types {
        let has_egress = spec
            .get("egress")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let types = if has_egress {
            json!(["Ingress", "Egress"])
        } else {
            json!(["Ingress"])
        };
        if let Some(m) = spec.as_object_mut() {
            m.insert("policyTypes".to_string(), types);
        }
    }
}

fn default_hpa(version: &str, obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if version == "v1" {
        return;
    }
    let empty_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if empty_metrics {
        if let Some(m) = spec.as_object_mut() {
            m.insert(
                "metrics".to_string(),
                json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
            );
        }
    }
    if let Some(b) = existing_obj_mut(spec, "behavior") {
        let up_defaults = json!({
            "stabilizationWindowSeconds": 0,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 4, "periodSeconds": 15},
                {"type": "Percent", "value": 100, "periodSeconds": 15}
            ]
        });
        let down_defaults = json!({
            "selectPolicy": "Max",
            "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]
        });
        for (k, d) in [("scaleUp", up_defaults), ("scaleDown", down_defaults)] {
            if let Some(rules) = obj_mut(b, k) {
                if let Value::Object(dm) = d {
                    for (dk, dv) in dm {
                        set_default(rules, &dk, dv);
                    }
                }
            }
        }
    }
}

fn default_crd(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    if let Some(names) = obj_mut(spec, "names") {
        let kind = s(names, "kind").to_string();
        set_default_str(names, "singular", &kind.to_lowercase());
        if !kind.is_empty() {
            set_default_str(names, "listKind", &format!("{kind}List"));
        }
    }
    set_default(spec, "conversion", json!({"strategy": "None"}));
    if let Some(svc) = spec.pointer_mut("/conversion/webhook/clientConfig/service") {
        set_default(svc, "port", json!(443));
    }
}

fn default_webhook(w: &mut Value, mutating: bool) {
    set_default(w, "failurePolicy", json!("Fail"));
    set_default(w, "matchPolicy", json!("Equivalent"));
    set_default(w, "namespaceSelector", json!({}));
    set_default(w, "objectSelector", json!({}));
    set_default(w, "timeoutSeconds", json!(10));
    if mutating {
        set_default(w, "reinvocationPolicy", json!("Never"));
    }
    each_obj_mut(w, "rules", |r| set_default(r, "scope", json!("*")));
    if let Some(svc) = w.pointer_mut("/clientConfig/service") {
        set_default(svc, "port", json!(443));
    }
}

/// Create-only strategy changes (`PrepareForCreate`).
pub fn prepare_for_create(group: &str, kind: &str, obj: &mut Value) {
    match (group, kind) {
        ("", "Pod") => {
            let qos = obj.get("spec").map(pod_qos).unwrap_or("BestEffort");
            if let Some(m) = obj.as_object_mut() {
                m.insert(
                    "status".to_string(),
                    json!({"phase": "Pending", "qosClass": qos}),
                );
            }
        }
        ("", "Namespace") => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".to_string(), json!({"phase": "Active"}));
            }
            if let Some(spec) = obj_mut(obj, "spec") {
                if let Some(m) = spec.as_object_mut() {
                    match m.get_mut("finalizers") {
                        Some(Value::Array(a)) => {
                            if !a.iter().any(|f| f == "kubernetes") {
                                a.push(json!("kubernetes"));
                            }
                        }
                        _ => {
                            m.insert("finalizers".to_string(), json!(["kubernetes"]));
                        }
                    }
                }
            }
        }
        ("", "Service") => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".to_string(), json!({"loadBalancer": {}}));
            }
        }
        ("", "ReplicationController")
        | ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet")
        | ("batch", "Job" | "CronJob")
        | ("policy", "PodDisruptionBudget")
        | ("networking.k8s.io", "Ingress")
        | ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".to_string(), json!({}));
            }
            if group != "autoscaling" {
                set_generation(obj);
            }
        }
        ("networking.k8s.io", "NetworkPolicy")
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("admissionregistration.k8s.io", _) => set_generation(obj),
        _ => {}
    }
}

fn set_generation(obj: &mut Value) {
    if let Some(Value::Object(m)) = obj_mut(obj, "metadata") {
        m.insert("generation".to_string(), json!(1));
    }
}

/// Upstream `GetPodQOS` over containers and init containers.
pub fn pod_qos(spec: &Value) -> &'static str {
    let mut any = false;
    let mut guaranteed = true;
    for list in ["initContainers", "containers"] {
        let Some(Value::Array(cs)) = spec.get(list) else {
            continue;
        };
        for c in cs {
            let res = c.get("resources");
            let get = |k: &str, r: &str| -> Option<Quantity> {
                res.and_then(|x| x.get(k))
                    .and_then(|m| m.get(r))
                    .and_then(|q| match q {
                        Value::String(s) => Quantity::parse(s).ok(),
                        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
                        _ => None,
                    })
                    .filter(|q| !q.is_zero())
            };
            for r in ["cpu", "memory"] {
                let req = get("requests", r);
                let lim = get("limits", r);
                if req.is_some() || lim.is_some() {
                    any = true;
                }
                match (req, lim) {
                    (_, None) => guaranteed = false,
                    (Some(a), Some(b)) if a != b => guaranteed = false,
                    _ => {}
                }
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
