//! A StatefulSet member's identity, as upstream gives it: the name `<set>-<ordinal>`, the
//! `statefulset.kubernetes.io/pod-name` and `apps.kubernetes.io/pod-index` labels, hostname
//! and subdomain, its PersistentVolumeClaims `<template>-<set>-<ordinal>` mounted in place
//! of the template's volumes of the same name, and the owner references those claims carry
//! for persistentVolumeClaimRetentionPolicy. Pure functions; no I/O.

use crate::controllers::common;
use crate::controllers::history::REVISION_LABEL;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    PersistentVolumeClaim, PersistentVolumeClaimVolumeSource, Pod, PodTemplateSpec, Volume,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use std::collections::BTreeMap;

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

/// The parent name and ordinal in a member's name (`(.*)-([0-9]+)$`).
pub fn parent_and_ordinal(name: &str) -> Option<(&str, i32)> {
    let (parent, digits) = name.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((parent, digits.parse().ok()?))
}

/// The ordinal of a member of `set`, if the pod is one by name.
pub fn ordinal_in(set: &StatefulSet, pod: &Pod) -> Option<i32> {
    let name = pod.metadata.name.as_deref()?;
    let (parent, ord) = parent_and_ordinal(name)?;
    (parent == set.name_any()).then_some(ord)
}

pub fn replicas(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
        .max(0)
}

/// `spec.ordinals.start`, 0 by default.
pub fn start(set: &StatefulSet) -> i32 {
    set.spec
        .as_ref()
        .and_then(|s| s.ordinals.as_ref())
        .and_then(|o| o.start)
        .unwrap_or(0)
}

pub fn in_range(set: &StatefulSet, ord: i32) -> bool {
    ord >= start(set) && ord < start(set) + replicas(set)
}

pub fn pod_name(set: &StatefulSet, ord: i32) -> String {
    format!("{}-{ord}", set.name_any())
}

pub fn claim_name(template: &str, set: &StatefulSet, ord: i32) -> String {
    format!("{template}-{}-{ord}", set.name_any())
}

fn templates(set: &StatefulSet) -> &[PersistentVolumeClaim] {
    set.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_deref())
        .unwrap_or(&[])
}

/// The claims member `ord` needs: each template named for the member, labelled with the
/// template's labels and the set's matchLabels.
pub fn claims(set: &StatefulSet, ord: i32) -> Vec<PersistentVolumeClaim> {
    let match_labels = set
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default();
    templates(set)
        .iter()
        .map(|t| {
            let mut labels = t.metadata.labels.clone().unwrap_or_default();
            labels.extend(match_labels.clone());
            PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(claim_name(&t.name_any(), set, ord)),
                    namespace: set.namespace(),
                    labels: Some(labels),
                    annotations: t.metadata.annotations.clone(),
                    ..Default::default()
                },
                spec: t.spec.clone(),
                status: None,
            }
        })
        .collect()
}

/// A new member from `template` (the revision it is made at), named and labelled for
/// `ord`, with its claims mounted.
pub fn new_pod(set: &StatefulSet, template: &PodTemplateSpec, ord: i32, revision: &str) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let name = pod_name(set, ord);
    let mut labels = tmeta.labels.unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), name.clone());
    labels.insert(POD_INDEX_LABEL.into(), ord.to_string());
    labels.insert(REVISION_LABEL.into(), revision.into());
    let mut spec = template.spec.clone().unwrap_or_default();
    spec.hostname = Some(name.clone());
    let service = set
        .spec
        .as_ref()
        .and_then(|s| s.service_name.clone())
        .unwrap_or_default();
    if !service.is_empty() {
        spec.subdomain = Some(service);
    }
    let mut volumes: Vec<Volume> = templates(set)
        .iter()
        .map(|t| Volume {
            name: t.name_any(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim_name(&t.name_any(), set, ord),
                read_only: None,
            }),
            ..Default::default()
        })
        .collect();
    for v in spec.volumes.take().unwrap_or_default() {
        if !volumes.iter().any(|c| c.name == v.name) {
            volumes.push(v);
        }
    }
    spec.volumes = (!volumes.is_empty()).then_some(volumes);
    Pod {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: set.namespace(),
            labels: Some(labels),
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![common::owner_ref(set)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The identity labels a member must carry; `None` if it has them.
pub fn missing_identity(pod: &Pod, ord: i32) -> Option<BTreeMap<String, String>> {
    let name = pod.name_any();
    let want = [(POD_NAME_LABEL, name), (POD_INDEX_LABEL, ord.to_string())];
    let labels = pod.labels();
    let missing: BTreeMap<String, String> = want
        .into_iter()
        .filter(|(k, v)| labels.get(*k) != Some(v))
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    (!missing.is_empty()).then_some(missing)
}

/// (whenDeleted, whenScaled) are "Delete".
pub fn retention(set: &StatefulSet) -> (bool, bool) {
    let p = set
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_claim_retention_policy.as_ref());
    let delete = |v: Option<&String>| v.map(String::as_str) == Some("Delete");
    (
        delete(p.and_then(|p| p.when_deleted.as_ref())),
        delete(p.and_then(|p| p.when_scaled.as_ref())),
    )
}

/// The owner references a claim of member `pod` should carry under the set's retention
/// policy (upstream's updateClaimOwnerRefForSetAndPod): the set's when whenDeleted is
/// Delete and the member is in range; the pod's when whenScaled is Delete and the member
/// was scaled away. References to anything else are kept. `None` when they are right
/// already, or when another controller owns the claim (left alone, as upstream does).
pub fn claim_refs(
    claim: &PersistentVolumeClaim,
    set: &StatefulSet,
    pod: &Pod,
    ord: i32,
) -> Option<Vec<OwnerReference>> {
    let refs = claim.metadata.owner_references.clone().unwrap_or_default();
    let set_uid = set.uid().unwrap_or_default();
    let pod_uid = pod.uid().unwrap_or_default();
    let ours = |r: &OwnerReference| r.uid == set_uid || (!pod_uid.is_empty() && r.uid == pod_uid);
    if refs.iter().any(|r| r.controller == Some(true) && !ours(r)) {
        return None;
    }
    let (when_deleted, when_scaled) = retention(set);
    let scaled_down = !in_range(set, ord);
    let mut want: Vec<OwnerReference> = refs.iter().filter(|r| !ours(r)).cloned().collect();
    if when_scaled && scaled_down && !pod_uid.is_empty() {
        want.push(common::owner_ref(pod));
    }
    if when_deleted && !(when_scaled && scaled_down) {
        want.push(common::owner_ref(set));
    }
    let key = |v: &[OwnerReference]| {
        let mut k: Vec<(String, Option<bool>)> =
            v.iter().map(|r| (r.uid.clone(), r.controller)).collect();
        k.sort();
        k
    };
    (key(&want) != key(&refs)).then_some(want)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(policy: serde_json::Value) -> StatefulSet {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "set-uid"},
            "spec": {
                "replicas": 2,
                "serviceName": "nginx",
                "ordinals": {"start": 3},
                "selector": {"matchLabels": {"app": "web"}},
                "persistentVolumeClaimRetentionPolicy": policy,
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                    "containers": [{"name": "c", "image": "i"}],
                    "volumes": [{"name": "www", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
                }},
                "volumeClaimTemplates": [{"metadata": {"name": "www", "labels": {"tier": "data"}},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
            }
        }))
        .unwrap()
    }

    #[test]
    fn names_and_ordinals() {
        assert_eq!(parent_and_ordinal("web-12"), Some(("web", 12)));
        assert_eq!(parent_and_ordinal("my-web-0"), Some(("my-web", 0)));
        assert_eq!(parent_and_ordinal("web-x1"), None);
        assert_eq!(parent_and_ordinal("web"), None);
        assert_eq!(parent_and_ordinal("web-"), None);
        let s = set(json!({}));
        assert!(!in_range(&s, 2) && in_range(&s, 3) && in_range(&s, 4) && !in_range(&s, 5));
    }

    #[test]
    fn members_get_identity_and_claims() {
        let s = set(json!({}));
        let t = s.spec.as_ref().unwrap().template.clone();
        let p = new_pod(&s, &t, 3, "web-abc");
        assert_eq!(p.name_any(), "web-3");
        let l = p.labels();
        assert_eq!(l[POD_NAME_LABEL], "web-3");
        assert_eq!(l[POD_INDEX_LABEL], "3");
        assert_eq!(l[REVISION_LABEL], "web-abc");
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("web-3"));
        assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
        let vols = spec.volumes.as_ref().unwrap();
        assert_eq!(vols.len(), 2);
        assert_eq!(
            vols[0].persistent_volume_claim.as_ref().unwrap().claim_name,
            "www-web-3"
        );
        assert_eq!(vols[1].name, "tmp");
        assert_eq!(missing_identity(&p, 3), None);
        let c = &claims(&s, 3)[0];
        assert_eq!(c.name_any(), "www-web-3");
        assert_eq!(c.labels()["tier"], "data");
        assert_eq!(c.labels()["app"], "web");
    }

    #[test]
    fn retention_owner_refs() {
        let mut pod = Pod::default();
        pod.metadata.name = Some("web-4".into());
        pod.metadata.uid = Some("pod-uid".into());
        let claim = PersistentVolumeClaim::default();
        let uids = |r: Option<Vec<OwnerReference>>| {
            r.map(|v| v.into_iter().map(|r| r.uid).collect::<Vec<_>>())
        };
        let retain = set(json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        assert_eq!(uids(claim_refs(&claim, &retain, &pod, 4)), None);
        let del = set(json!({"whenDeleted": "Delete", "whenScaled": "Retain"}));
        assert_eq!(
            uids(claim_refs(&claim, &del, &pod, 4)),
            Some(vec!["set-uid".into()])
        );
        let scaled = set(json!({"whenDeleted": "Retain", "whenScaled": "Delete"}));
        assert_eq!(uids(claim_refs(&claim, &scaled, &pod, 4)), None);
        assert_eq!(
            uids(claim_refs(&claim, &scaled, &pod, 5)),
            Some(vec!["pod-uid".into()])
        );
        let both = set(json!({"whenDeleted": "Delete", "whenScaled": "Delete"}));
        assert_eq!(
            uids(claim_refs(&claim, &both, &pod, 6)),
            Some(vec!["pod-uid".into()])
        );
        // back in range: the pod reference goes again
        let mut owned = claim.clone();
        owned.metadata.owner_references = Some(vec![common::owner_ref(&pod)]);
        assert_eq!(uids(claim_refs(&owned, &scaled, &pod, 4)), Some(vec![]));
        // another controller's claim is left alone
        let mut foreign = claim.clone();
        foreign.metadata.owner_references = Some(vec![OwnerReference {
            uid: "other".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert_eq!(uids(claim_refs(&foreign, &both, &pod, 4)), None);
    }
}
