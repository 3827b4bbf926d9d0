//! Which PersistentVolume may serve which claim, as upstream's binder decides: pure
//! functions over the API types, shared by the binder and the provisioner. Nothing here
//! does I/O.

use crate::scheduler::resources::parse_milli;
use crate::scheduler::selectors::{node_selector_matches, Labels};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::core::{Selector, SelectorExt};
use kube::ResourceExt;
use std::sync::Arc;

/// The volume a claim is bound (or pre-bound) to.
pub fn volume_name(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .spec
        .as_ref()?
        .volume_name
        .as_deref()
        .filter(|v| !v.is_empty())
}

/// The claim's class; "" for none.
pub fn class_of_claim(claim: &PersistentVolumeClaim) -> &str {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .unwrap_or_default()
}

pub fn phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Bytes (rounded up) of a claim's request or a volume's capacity.
fn storage(q: Option<&k8s_openapi::apimachinery::pkg::api::resource::Quantity>) -> i128 {
    q.and_then(|q| parse_milli(&q.0))
        .map(|m| (m + 999) / 1000)
        .unwrap_or(0)
}

fn requested(claim: &PersistentVolumeClaim) -> i128 {
    storage(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage")),
    )
}

fn capacity(pv: &PersistentVolume) -> i128 {
    storage(
        pv.spec
            .as_ref()
            .and_then(|s| s.capacity.as_ref())
            .and_then(|c| c.get("storage")),
    )
}

/// Why `pv` cannot serve `claim`, if it cannot: class, volume mode, access modes, size,
/// selector.
pub fn satisfies(claim: &PersistentVolumeClaim, pv: &PersistentVolume) -> Result<(), String> {
    let cspec = claim.spec.clone().unwrap_or_default();
    let pspec = pv.spec.clone().unwrap_or_default();
    if pspec.storage_class_name.as_deref().unwrap_or_default() != class_of_claim(claim) {
        return Err("storageClassName does not match".into());
    }
    let mode = |m: Option<String>| m.unwrap_or_else(|| "Filesystem".into());
    if mode(cspec.volume_mode) != mode(pspec.volume_mode) {
        return Err("incompatible volumeMode".into());
    }
    let have = pspec.access_modes.unwrap_or_default();
    if !cspec
        .access_modes
        .unwrap_or_default()
        .iter()
        .all(|m| have.contains(m))
    {
        return Err("incompatible accessMode".into());
    }
    if capacity(pv) < requested(claim) {
        return Err("requested PV is too small".into());
    }
    if let Some(sel) = cspec.selector {
        let ok = Selector::try_from(sel).is_ok_and(|s| s.matches(pv.labels()));
        if !ok {
            return Err("the volume's labels do not match the claim's selector".into());
        }
    }
    Ok(())
}

/// Whether the volume's node affinity lets it be used on `node` (name and labels).
pub fn usable_on(pv: &PersistentVolume, node: &(String, Labels)) -> bool {
    let required = pv
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref());
    let mut labels = node.1.clone();
    labels
        .entry("kubernetes.io/hostname".into())
        .or_insert_with(|| node.0.clone());
    required.is_none_or(|r| node_selector_matches(r, &labels, &node.0))
}

fn pre_bound_to(pv: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    pv.spec
        .as_ref()
        .and_then(|s| s.claim_ref.as_ref())
        .is_some_and(|r| {
            r.namespace == claim.namespace()
                && r.name.as_deref() == Some(claim.name_any().as_str())
                && r.uid
                    .as_deref()
                    .is_none_or(|u| u.is_empty() || Some(u) == claim.uid().as_deref())
        })
}

/// The volume to bind `claim` to: one pre-bound to it, else the smallest Available one that
/// satisfies it (and can be used on the selected `node`, if one is given).
pub fn find_volume(
    claim: &PersistentVolumeClaim,
    volumes: &[Arc<PersistentVolume>],
    node: Option<&(String, Labels)>,
) -> Option<PersistentVolume> {
    let fits = |pv: &PersistentVolume| {
        pv.metadata.deletion_timestamp.is_none()
            && satisfies(claim, pv).is_ok()
            && node.is_none_or(|n| usable_on(pv, n))
    };
    if let Some(pv) = volumes.iter().find(|v| pre_bound_to(v, claim) && fits(v)) {
        return Some((**pv).clone());
    }
    volumes
        .iter()
        .filter(|v| v.spec.as_ref().and_then(|s| s.claim_ref.as_ref()).is_none())
        .filter(|v| matches!(phase(v), "Available" | "Pending"))
        .filter(|v| fits(v))
        .min_by_key(|v| (capacity(v), v.name_any()))
        .map(|v| (**v).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(
        name: &str,
        size: &str,
        modes: &[&str],
        class: &str,
        labels: serde_json::Value,
    ) -> Arc<PersistentVolume> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"capacity": {"storage": size}, "accessModes": modes,
                    "storageClassName": class, "hostPath": {"path": "/x"}},
                "status": {"phase": "Available"},
            }))
            .unwrap(),
        )
    }

    fn claim(
        size: &str,
        modes: &[&str],
        class: &str,
        selector: serde_json::Value,
    ) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": "c", "namespace": "d", "uid": "u1"},
            "spec": {"resources": {"requests": {"storage": size}}, "accessModes": modes,
                "storageClassName": class, "selector": selector},
        }))
        .unwrap()
    }

    #[test]
    fn smallest_fitting_volume_wins() {
        let vols = vec![
            pv("big", "10Gi", &["ReadWriteOnce"], "", json!({})),
            pv("small", "1Gi", &["ReadWriteOnce"], "", json!({})),
            pv("tiny", "100Mi", &["ReadWriteOnce"], "", json!({})),
            pv("rox", "2Gi", &["ReadOnlyMany"], "", json!({})),
            pv("other-class", "1Gi", &["ReadWriteOnce"], "fast", json!({})),
        ];
        let c = claim("500Mi", &["ReadWriteOnce"], "", json!(null));
        assert_eq!(find_volume(&c, &vols, None).unwrap().name_any(), "small");
        let c = claim("500Mi", &["ReadOnlyMany"], "", json!(null));
        assert_eq!(find_volume(&c, &vols, None).unwrap().name_any(), "rox");
        let c = claim("500Mi", &["ReadWriteOnce"], "fast", json!(null));
        assert_eq!(
            find_volume(&c, &vols, None).unwrap().name_any(),
            "other-class"
        );
        let c = claim("20Gi", &["ReadWriteOnce"], "", json!(null));
        assert!(find_volume(&c, &vols, None).is_none());
    }

    #[test]
    fn selector_and_pre_binding() {
        let mut pre: PersistentVolume =
            (*pv("pre", "5Gi", &["ReadWriteOnce"], "", json!({}))).clone();
        pre.spec.as_mut().unwrap().claim_ref = Some(k8s_openapi::api::core::v1::ObjectReference {
            namespace: Some("d".into()),
            name: Some("c".into()),
            ..Default::default()
        });
        let vols = vec![
            pv("a", "1Gi", &["ReadWriteOnce"], "", json!({"tier": "gold"})),
            Arc::new(pre),
        ];
        let c = claim("1Gi", &["ReadWriteOnce"], "", json!(null));
        assert_eq!(find_volume(&c, &vols, None).unwrap().name_any(), "pre");
        let c = claim(
            "1Gi",
            &["ReadWriteOnce"],
            "",
            json!({"matchLabels": {"tier": "gold"}}),
        );
        let mut other = c.clone();
        other.metadata.name = Some("other".into());
        assert_eq!(find_volume(&other, &vols, None).unwrap().name_any(), "a");
        let mut silver = other.clone();
        silver.spec.as_mut().unwrap().selector =
            serde_json::from_value(json!({"matchLabels": {"tier": "silver"}})).unwrap();
        assert!(find_volume(&silver, &vols, None).is_none());
    }
}
