//! Per-kind behaviour on create and update that is not plain defaulting or validation: what
//! the server owns (uid, timestamps, generation, status on main-resource writes), initial
//! status, and the admission defaults every pod gets. One function per hook, dispatching on
//! the kind; kinds without special needs take the generic path.

use super::resources::ResourceInfo;
use serde_json::{json, Map, Value};

/// Kinds whose metadata.generation counts spec changes (upstream strategies that set it).
pub fn tracks_generation(res: &ResourceInfo) -> bool {
    if res.is_custom() {
        return true;
    }
    matches!(
        (res.group.as_str(), res.kind.as_str()),
        ("apps", _)
            | ("batch", _)
            | ("", "ReplicationController")
            | ("policy", "PodDisruptionBudget")
            | ("networking.k8s.io", "NetworkPolicy")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("storage.k8s.io", "VolumeAttachment")
    ) && res.kind != "ControllerRevision"
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// Server-owned fields and initial status for a new object.
pub fn prepare_create(res: &ResourceInfo, obj: &mut Value, now: &str) {
    let gen = tracks_generation(res);
    let m = meta(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now));
    for k in [
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "resourceVersion",
        "selfLink",
    ] {
        m.remove(k);
    }
    if gen {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    match (res.group.as_str(), res.kind.as_str()) {
        ("", "Pod") => {
            admit_pod(obj);
            let qos = qos_class(&obj["spec"]);
            obj["status"] = json!({ "phase": "Pending", "qosClass": qos });
        }
        ("", "Namespace") => {
            obj["status"] = json!({ "phase": "Active" });
            if obj["spec"]["finalizers"].is_null() {
                obj["spec"] = json!({ "finalizers": ["kubernetes"] });
            }
        }
        ("", "Service") => obj["status"] = json!({ "loadBalancer": {} }),
        ("", "Node") | ("", "PersistentVolume") | ("", "PersistentVolumeClaim") => {}
        ("batch", "Job") => {
            obj["status"] = json!({});
            super::rules::generate_job_selector(obj);
        }
        ("apps", "DaemonSet") if !res.is_custom() => {
            let given = template_generation(obj).filter(|g| *g >= 1);
            set_template_generation(obj, given.unwrap_or(1));
            obj["status"] = json!({});
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => crd_status(obj, None, now),
        _ if res.is_custom() && res.has_status() => {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        _ if res.is_custom() => {}
        _ if res.has_status() => obj["status"] = json!({}),
        _ => {}
    }
}

/// Keep what a main-resource update may not change, and bump generation on spec changes.
pub fn prepare_update(res: &ResourceInfo, obj: &mut Value, old: &Value, now: &str) {
    keep_server_meta(obj, old);
    if res.has_status() {
        match old.get("status") {
            Some(s) => obj["status"] = s.clone(),
            None => {
                if let Some(o) = obj.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if tracks_generation(res) {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(1);
        let g = if spec_changed(obj, old) { g + 1 } else { g };
        meta(obj).insert("generation".into(), json!(g));
    }
    if res.group == "apiextensions.k8s.io" && res.kind == "CustomResourceDefinition" {
        crd_status(obj, Some(old), now);
    }
    if res.group == "apps" && res.kind == "DaemonSet" && !res.is_custom() {
        let g = template_generation(old).unwrap_or(1);
        let changed = obj["spec"]["template"] != old["spec"]["template"];
        set_template_generation(obj, if changed { g + 1 } else { g });
    }
}

/// A DaemonSet's template generation: counts changes of `spec.template` only (not of the
/// rest of the spec, as metadata.generation does); the controller labels the pods it
/// creates with it. Kept, as in apps/v1 upstream, in an annotation clients cannot change.
pub const DS_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

fn template_generation(obj: &Value) -> Option<i64> {
    obj["metadata"]["annotations"][DS_TEMPLATE_GENERATION]
        .as_str()?
        .parse()
        .ok()
}

fn set_template_generation(obj: &mut Value, g: i64) {
    let m = meta(obj);
    let annotations = m.entry("annotations").or_insert_with(|| json!({}));
    if !annotations.is_object() {
        *annotations = json!({});
    }
    annotations[DS_TEMPLATE_GENERATION] = json!(g.to_string());
}

/// A status-subresource write: everything but status comes from the stored object.
pub fn prepare_status_update(obj: &Value, old: &Value) -> Value {
    let mut out = old.clone();
    match obj.get("status") {
        Some(s) => out["status"] = s.clone(),
        None => {
            if let Some(o) = out.as_object_mut() {
                o.remove("status");
            }
        }
    }
    if let Some(mf) = obj["metadata"].get("managedFields") {
        meta(&mut out).insert("managedFields".into(), mf.clone());
    }
    out
}

/// The generation is the server's: an update takes the stored one before it is validated
/// (as upstream's BeforeUpdate does first), so a client's object without one, such as a
/// hand-written file given to `kubectl replace`, is not a decrement.
pub fn keep_generation(obj: &mut Value, old: &Value) {
    // A malformed object is left for validation to report.
    let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    match old["metadata"].get("generation") {
        Some(g) => m.insert("generation".into(), g.clone()),
        None => m.remove("generation"),
    };
}

fn keep_server_meta(obj: &mut Value, old: &Value) {
    let om = old["metadata"].clone();
    let m = meta(obj);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match om.get(k) {
            Some(v) => m.insert(k.into(), v.clone()),
            None => m.remove(k),
        };
    }
}

fn spec_changed(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| -> Value {
        let mut v = v.clone();
        if let Some(o) = v.as_object_mut() {
            o.remove("metadata");
            o.remove("status");
        }
        v
    };
    strip(a) != strip(b)
}

/// What upstream's admission chain adds to every pod: the default service account, priority,
/// and the not-ready / unreachable tolerations of 300 s.
fn admit_pod(pod: &mut Value) {
    let spec = &mut pod["spec"];
    if !spec.is_object() {
        return;
    }
    if spec["serviceAccountName"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        spec["serviceAccountName"] = json!("default");
    }
    spec["serviceAccount"] = spec["serviceAccountName"].clone();
    if spec["priority"].is_null() {
        spec["priority"] = json!(0);
    }
    if spec["preemptionPolicy"].is_null() {
        spec["preemptionPolicy"] = json!("PreemptLowerPriority");
    }
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    let mut out = tolerations.clone();
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = tolerations.iter().any(|t| {
            let k = t["key"].as_str();
            let eff = t["effect"].as_str().unwrap_or_default();
            (k == Some(key) || (k.is_none() && t["operator"] == "Exists"))
                && (eff.is_empty() || eff == "NoExecute")
        });
        if !covered {
            out.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
    spec["tolerations"] = Value::Array(out);
}

/// Pod QoS class as upstream computes it from requests and limits.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .flat_map(|k| spec[*k].as_array().into_iter().flatten())
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c["resources"]["requests"].as_object();
        let lim = c["resources"]["limits"].as_object();
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(r));
            let q = req.and_then(|q| q.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
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

/// A CRD is accepted and established as soon as it is stored: k1s serves it at once.
fn crd_status(obj: &mut Value, old: Option<&Value>, now: &str) {
    let names = obj["spec"]["names"].clone();
    let mut accepted = names.clone();
    if let Some(kind) = names["kind"].as_str() {
        if accepted["singular"].is_null() {
            accepted["singular"] = json!(kind.to_lowercase());
        }
        if accepted["listKind"].is_null() {
            accepted["listKind"] = json!(format!("{kind}List"));
        }
    }
    let mut stored: Vec<Value> = old
        .and_then(|o| o["status"]["storedVersions"].as_array().cloned())
        .unwrap_or_default();
    for v in obj["spec"]["versions"].as_array().into_iter().flatten() {
        if v["storage"] == json!(true) && !stored.contains(&v["name"]) {
            stored.push(v["name"].clone());
        }
    }
    let since = old
        .and_then(|o| {
            o["status"]["conditions"][0]["lastTransitionTime"]
                .as_str()
                .map(String::from)
        })
        .unwrap_or_else(|| now.to_string());
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": since, "reason": reason, "message": msg});
    obj["status"] = json!({
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "acceptedNames": accepted,
        "storedVersions": stored,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos() {
        assert_eq!(
            qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        let g = json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(qos_class(&g), "Guaranteed");
        let b = json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]});
        assert_eq!(qos_class(&b), "Burstable");
    }

    #[test]
    fn daemonset_template_generation_counts_template_changes_only() {
        let res = super::super::resources::builtins()
            .into_iter()
            .find(|r| r.group == "apps" && r.kind == "DaemonSet")
            .expect("daemonsets are served");
        let mut ds = json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {}}}});
        prepare_create(&res, &mut ds, "now");
        assert_eq!(template_generation(&ds), Some(1));
        // a client cannot set it on update, and other spec changes leave it
        let mut upd = ds.clone();
        upd["metadata"]["annotations"][DS_TEMPLATE_GENERATION] = json!("9");
        upd["spec"]["minReadySeconds"] = json!(5);
        prepare_update(&res, &mut upd, &ds, "now");
        assert_eq!(template_generation(&upd), Some(1));
        assert_eq!(upd["metadata"]["generation"], json!(2));
        let mut tmpl = upd.clone();
        tmpl["spec"]["template"]["metadata"] = json!({"labels": {"v": "2"}});
        prepare_update(&res, &mut tmpl, &upd, "now");
        assert_eq!(template_generation(&tmpl), Some(2));
        assert_eq!(tmpl["metadata"]["generation"], json!(3));
    }

    #[test]
    fn pod_admission_is_idempotent() {
        let mut p = json!({"spec": {"containers": [{"name": "a"}]}});
        admit_pod(&mut p);
        let once = p.clone();
        admit_pod(&mut p);
        assert_eq!(p, once);
        assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
        assert_eq!(p["spec"]["serviceAccountName"], "default");
    }
}
