//! Defaults for the core group (`pkg/apis/core/v1/defaults.go` and the
//! generated defaulters), including the PodSpec defaults shared by every
//! workload template.

use serde_json::{json, Map, Value};

use super::defaults_service;
use super::json::{each_obj_mut, existing_obj_mut, obj_mut, s, set_default, set_default_str};

pub fn default_core(_version: &str, kind: &str, obj: &mut Value) {
    match kind {
        "Pod" => default_pod(obj),
        "PodTemplate" => {
            if let Some(t) = existing_obj_mut(obj, "template") {
                default_template(t);
            }
        }
        "ReplicationController" => default_rc(obj),
        "Service" => defaults_service::default_service(obj),
        "Secret" => defaults_service::default_secret(obj),
        "Namespace" => default_namespace(obj),
        "Node" => default_node(obj),
        "PersistentVolume" => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default_str(spec, "persistentVolumeReclaimPolicy", "Retain");
                set_default_str(spec, "volumeMode", "Filesystem");
            }
            if let Some(st) = obj_mut(obj, "status") {
                set_default_str(st, "phase", "Pending");
            }
        }
        "PersistentVolumeClaim" => default_pvc(obj),
        "Endpoints" => each_obj_mut(obj, "subsets", |sub| {
            each_obj_mut(sub, "ports", |p| set_default_str(p, "protocol", "TCP"));
        }),
        "LimitRange" => {
            if let Some(spec) = existing_obj_mut(obj, "spec") {
                each_obj_mut(spec, "limits", default_limit_range_item);
            }
        }
        _ => {}
    }
}

/// PVC defaults, also applied to StatefulSet volume claim templates.
pub fn default_pvc(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        set_default_str(spec, "volumeMode", "Filesystem");
    }
    if let Some(st) = obj_mut(obj, "status") {
        set_default_str(st, "phase", "Pending");
    }
}

fn default_pod(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    default_pod_spec(spec);
    set_default(spec, "enableServiceLinks", Value::Bool(true));
    let host_network = spec.get("hostNetwork").and_then(Value::as_bool) == Some(true);
    for list in ["containers", "initContainers"] {
        each_obj_mut(spec, list, |c| {
            requests_from_limits(c);
            if host_network {
                each_obj_mut(c, "ports", |p| {
                    let hp = p.get("hostPort").and_then(Value::as_i64).unwrap_or(0);
                    if hp == 0 {
                        if let Some(cp) = p.get("containerPort").cloned() {
                            if let Some(m) = p.as_object_mut() {
                                m.insert("hostPort".to_string(), cp);
                            }
                        }
                    }
                });
            }
        });
    }
}

fn requests_from_limits(c: &mut Value) {
    let Some(res) = existing_obj_mut(c, "resources") else {
        return;
    };
    let Some(Value::Object(limits)) = res.get("limits").cloned() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    if let Some(Value::Object(req)) = obj_mut(res, "requests") {
        for (k, v) in limits {
            req.entry(k).or_insert(v);
        }
    }
}

/// `SetDefaults_PodTemplateSpec`: only the nested PodSpec defaults.
pub fn default_template(t: &mut Value) {
    if let Some(spec) = obj_mut(t, "spec") {
        default_pod_spec(spec);
    }
}

/// `SetDefaults_PodSpec` plus every nested defaulter of a PodSpec.
pub fn default_pod_spec(spec: &mut Value) {
    set_default_str(spec, "dnsPolicy", "ClusterFirst");
    set_default_str(spec, "restartPolicy", "Always");
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default_str(spec, "schedulerName", "default-scheduler");
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        each_obj_mut(spec, list, default_container);
    }
    each_obj_mut(spec, "volumes", default_volume);
}

/// The pull policy upstream derives from an image reference.
pub fn pull_policy_for(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let (domain_end, path) = match name.split_once('/') {
        Some((first, _))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.len(), &name[first.len()..])
        }
        _ => (0, name),
    };
    let _ = domain_end;
    let tag = match path.rfind(':') {
        Some(i) if !path[i..].contains('/') => Some(&path[i + 1..]),
        _ => None,
    };
    let repo = match tag {
        Some(t) => &path[..path.len() - t.len() - 1],
        None => path,
    };
    let parse_ok = !repo.trim_start_matches('/').is_empty() && repo.to_lowercase() == repo;
    if !parse_ok {
        return "IfNotPresent";
    }
    match (tag, digest) {
        (Some("latest"), _) => "Always",
        (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn default_container(c: &mut Value) {
    if s(c, "imagePullPolicy").is_empty() {
        let policy = pull_policy_for(s(c, "image"));
        set_default_str(c, "imagePullPolicy", policy);
    }
    set_default_str(c, "terminationMessagePath", "/dev/termination-log");
    set_default_str(c, "terminationMessagePolicy", "File");
    set_default(c, "resources", json!({}));
    each_obj_mut(c, "ports", |p| set_default_str(p, "protocol", "TCP"));
    each_obj_mut(c, "env", |e| {
        if let Some(vf) = existing_obj_mut(e, "valueFrom") {
            if let Some(fr) = existing_obj_mut(vf, "fieldRef") {
                set_default_str(fr, "apiVersion", "v1");
            }
        }
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = existing_obj_mut(c, probe) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            default_handler(p);
        }
    }
    if let Some(lc) = existing_obj_mut(c, "lifecycle") {
        for h in ["postStart", "preStop"] {
            if let Some(hv) = existing_obj_mut(lc, h) {
                default_handler(hv);
            }
        }
    }
}

fn default_handler(h: &mut Value) {
    if let Some(g) = existing_obj_mut(h, "httpGet") {
        set_default_str(g, "path", "/");
        set_default_str(g, "scheme", "HTTP");
    }
    if let Some(g) = existing_obj_mut(h, "grpc") {
        set_default(g, "service", json!(""));
    }
}

fn default_items_field_refs(v: &mut Value) {
    each_obj_mut(v, "items", |i| {
        if let Some(fr) = existing_obj_mut(i, "fieldRef") {
            set_default_str(fr, "apiVersion", "v1");
        }
    });
}

fn default_volume(v: &mut Value) {
    let has_source = v.as_object().is_some_and(|m| {
        super::core_volume::VOLUME_SOURCES
            .iter()
            .any(|k| m.get(*k).is_some_and(|x| !x.is_null()))
    });
    if !has_source {
        set_default(v, "emptyDir", json!({}));
    }
    for k in ["secret", "configMap"] {
        if let Some(src) = existing_obj_mut(v, k) {
            set_default(src, "defaultMode", json!(420));
        }
    }
    if let Some(src) = existing_obj_mut(v, "downwardAPI") {
        set_default(src, "defaultMode", json!(420));
        default_items_field_refs(src);
    }
    if let Some(src) = existing_obj_mut(v, "projected") {
        set_default(src, "defaultMode", json!(420));
        each_obj_mut(src, "sources", |p| {
            if let Some(t) = existing_obj_mut(p, "serviceAccountToken") {
                set_default(t, "expirationSeconds", json!(3600));
            }
            if let Some(d) = existing_obj_mut(p, "downwardAPI") {
                default_items_field_refs(d);
            }
        });
    }
    if let Some(src) = existing_obj_mut(v, "hostPath") {
        set_default(src, "type", json!(""));
    }
    if let Some(src) = existing_obj_mut(v, "iscsi") {
        set_default_str(src, "iscsiInterface", "default");
    }
    if let Some(src) = existing_obj_mut(v, "rbd") {
        set_default_str(src, "pool", "rbd");
        set_default_str(src, "user", "admin");
        set_default_str(src, "keyring", "/etc/ceph/keyring");
    }
    if let Some(src) = existing_obj_mut(v, "azureDisk") {
        set_default_str(src, "cachingMode", "ReadWrite");
        set_default_str(src, "fsType", "ext4");
        set_default(src, "readOnly", json!(false));
        set_default_str(src, "kind", "Shared");
    }
    if let Some(src) = existing_obj_mut(v, "ephemeral") {
        if let Some(t) = existing_obj_mut(src, "volumeClaimTemplate") {
            if let Some(spec) = existing_obj_mut(t, "spec") {
                set_default_str(spec, "volumeMode", "Filesystem");
            }
        }
    }
}

fn default_rc(obj: &mut Value) {
    let labels = obj
        .get("spec")
        .and_then(|s| s.get("template"))
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|l| l.is_object())
        .cloned();
    if let Some(spec) = obj_mut(obj, "spec") {
        if let Some(l) = &labels {
            let empty_sel = spec
                .get("selector")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if empty_sel {
                if let Some(m) = spec.as_object_mut() {
                    m.insert("selector".to_string(), l.clone());
                }
            }
        }
        set_default(spec, "replicas", json!(1));
        if let Some(t) = existing_obj_mut(spec, "template") {
            default_template(t);
        }
    }
    if let Some(l) = labels {
        if let Some(m) = obj_mut(obj, "metadata") {
            let empty = m
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if empty {
                if let Some(mm) = m.as_object_mut() {
                    mm.insert("labels".to_string(), l);
                }
            }
        }
    }
}

fn default_namespace(obj: &mut Value) {
    let name = obj
        .get("metadata")
        .map(|m| s(m, "name").to_string())
        .unwrap_or_default();
    let is_create = obj
        .get("metadata")
        .is_none_or(|m| s(m, "resourceVersion").is_empty());
    if !name.is_empty() {
        if let Some(m) = obj_mut(obj, "metadata") {
            if let Some(Value::Object(l)) = obj_mut(m, "labels") {
                l.insert(
                    "kubernetes.io/metadata.name".to_string(),
                    Value::String(name),
                );
            }
        }
    }
    if is_create {
        if let Some(spec) = obj_mut(obj, "spec") {
            let fins = spec.get("finalizers").and_then(Value::as_array);
            let has = fins.is_some_and(|f| f.iter().any(|x| x == "kubernetes"));
            if !has {
                if let Some(m) = spec.as_object_mut() {
                    match m.get_mut("finalizers") {
                        Some(Value::Array(a)) => a.push(json!("kubernetes")),
                        _ => {
                            m.insert("finalizers".to_string(), json!(["kubernetes"]));
                        }
                    }
                }
            }
        }
    }
    if let Some(st) = obj_mut(obj, "status") {
        set_default_str(st, "phase", "Active");
    }
}

fn default_node(obj: &mut Value) {
    if let Some(st) = existing_obj_mut(obj, "status") {
        let cap = st.get("capacity").filter(|c| c.is_object()).cloned();
        if let Some(cap) = cap {
            set_default(st, "allocatable", cap);
        }
    }
}

fn default_limit_range_item(item: &mut Value) {
    if s(item, "type") != "Container" {
        return;
    }
    let get = |v: &Value, k: &str| -> Map<String, Value> {
        v.get(k)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let max = get(item, "max");
    let min = get(item, "min");
    let mut def = get(item, "default");
    let mut def_req = get(item, "defaultRequest");
    for (k, v) in max {
        def.entry(k).or_insert(v);
    }
    for (k, v) in &def {
        def_req.entry(k.clone()).or_insert(v.clone());
    }
    for (k, v) in min {
        def_req.entry(k).or_insert(v);
    }
    if let Some(m) = item.as_object_mut() {
        if !def.is_empty() {
            m.insert("default".to_string(), Value::Object(def));
        }
        if !def_req.is_empty() {
            m.insert("defaultRequest".to_string(), Value::Object(def_req));
        }
    }
}
