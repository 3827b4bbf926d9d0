//! The volume filter (upstream's VolumeBinding Filter for claims that exist): every
//! PersistentVolumeClaim a pod mounts must exist and not be terminating, and a claim already
//! bound restricts the pod to the nodes its PersistentVolume's `spec.nodeAffinity` admits (a
//! local volume lives on one node). Unbound claims pass: delayed binding chooses their node
//! (`volumes.rs`). It judges from `Volumes`, the claims and volumes the scheduler's watches
//! keep, and must never call the API.

use super::cache::PodInfo;
use super::filters::{Reject, Verdict};
use super::selectors;
use k8s_openapi::api::core::v1::{Node, NodeSelector, PersistentVolume, PersistentVolumeClaim};
use std::collections::{HashMap, HashSet};

pub const CONFLICT: &str = "node(s) had volume node affinity conflict";

/// What the filter reads of one claim.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    volume: Option<String>,
    deleting: bool,
}

/// The claims (by `namespace/name`) and volumes (by name, with their required node
/// affinity) the watches have seen.
#[derive(Debug, Default)]
pub struct Volumes {
    claims: HashMap<String, Claim>,
    volumes: HashMap<String, Option<NodeSelector>>,
}

fn claim_key(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
}

impl Volumes {
    /// Records a claim; returns whether anything the filter reads changed.
    pub fn set_claim(&mut self, pvc: &PersistentVolumeClaim) -> bool {
        let key = claim_key(
            pvc.metadata.namespace.as_deref().unwrap_or(""),
            pvc.metadata.name.as_deref().unwrap_or(""),
        );
        let claim = Claim {
            volume: pvc
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.clone())
                .filter(|v| !v.is_empty()),
            deleting: pvc.metadata.deletion_timestamp.is_some(),
        };
        self.claims.insert(key, claim.clone()) != Some(claim)
    }

    /// Forgets a claim by `namespace/name`.
    pub fn remove_claim(&mut self, key: &str) {
        self.claims.remove(key);
    }

    /// Records a volume; returns whether its node affinity is new or changed.
    pub fn set_volume(&mut self, pv: &PersistentVolume) -> bool {
        let affinity = pv
            .spec
            .as_ref()
            .and_then(|s| s.node_affinity.as_ref())
            .and_then(|a| a.required.clone());
        let name = pv.metadata.name.clone().unwrap_or_default();
        self.volumes.insert(name, affinity.clone()) != Some(affinity)
    }

    pub fn remove_volume(&mut self, name: &str) {
        self.volumes.remove(name);
    }

    /// Drops the claims a fresh list no longer has (keys `namespace/name`).
    pub fn retain_claims(&mut self, listed: &HashSet<String>) {
        self.claims.retain(|k, _| listed.contains(k));
    }

    /// Drops the volumes a fresh list no longer has.
    pub fn retain_volumes(&mut self, listed: &HashSet<String>) {
        self.volumes.retain(|k, _| listed.contains(k));
    }
}

/// One pod's volume constraints, worked out once per attempt: the node affinities of the
/// volumes its bound claims hold, or why no node can take it.
#[derive(Debug)]
pub struct VolumeCheck(Result<Vec<NodeSelector>, Reject>);

impl VolumeCheck {
    pub fn prepare(pod: &PodInfo, vols: &Volumes) -> VolumeCheck {
        let mut affinities = Vec::new();
        let names = pod
            .pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.as_str());
        for name in names {
            let Some(claim) = vols.claims.get(&claim_key(&pod.namespace, name)) else {
                let why = format!("persistentvolumeclaim \"{name}\" not found");
                return VolumeCheck(Err(Reject::hard(why)));
            };
            if claim.deleting {
                let why = format!("persistentvolumeclaim \"{name}\" is being deleted");
                return VolumeCheck(Err(Reject::hard(why)));
            }
            let Some(volume) = &claim.volume else {
                continue;
            };
            // A claim bound to a volume the watch has not brought yet: wait for it
            // rather than risk a node the volume cannot reach.
            match vols.volumes.get(volume) {
                None => {
                    let why = format!("persistentvolume \"{volume}\" not found");
                    return VolumeCheck(Err(Reject::hard(why)));
                }
                Some(Some(required)) => affinities.push(required.clone()),
                Some(None) => {}
            }
        }
        VolumeCheck(Ok(affinities))
    }

    /// Why no node at all can take the pod (a claim missing or terminating, a bound
    /// volume not seen yet), if so.
    pub fn pre_filter(&self) -> Option<&Reject> {
        self.0.as_ref().err()
    }

    pub fn filter(&self, node: &Node) -> Verdict {
        let affinities = self.0.as_ref().map_err(Clone::clone)?;
        let empty = Default::default();
        let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
        let name = node.metadata.name.as_deref().unwrap_or("");
        if affinities
            .iter()
            .all(|a| selectors::node_selector_matches(a, labels, name))
        {
            Ok(())
        } else {
            Err(Reject::hard(CONFLICT))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::testutil::{node, pod};
    use serde_json::json;

    fn claim(name: &str, volume: Option<&str>) -> PersistentVolumeClaim {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"volumeName": volume},
        }))
        .unwrap()
    }

    fn local_pv(name: &str, host: &str) -> PersistentVolume {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [host]}]}]}}},
        }))
        .unwrap()
    }

    fn user(claims: &[&str]) -> PodInfo {
        let volumes: Vec<_> = claims
            .iter()
            .map(|c| json!({"name": c, "persistentVolumeClaim": {"claimName": c}}))
            .collect();
        pod("p", json!({"spec": {"volumes": volumes}}))
    }

    #[test]
    fn a_bound_local_volume_admits_only_its_node() {
        let mut v = Volumes::default();
        assert!(v.set_claim(&claim("data", Some("pv-a"))));
        assert!(!v.set_claim(&claim("data", Some("pv-a"))), "no change");
        v.set_claim(&claim("free", None));
        v.set_volume(&local_pv("pv-a", "a"));
        let check = VolumeCheck::prepare(&user(&["data", "free"]), &v);
        assert_eq!(check.filter(&node("a", json!({}))), Ok(()));
        assert_eq!(
            check.filter(&node("b", json!({}))),
            Err(Reject::hard(CONFLICT))
        );
        // unbound claims and volumes without affinity constrain nothing
        let check = VolumeCheck::prepare(&user(&["free"]), &v);
        assert_eq!(check.filter(&node("b", json!({}))), Ok(()));
        let open: PersistentVolume =
            serde_json::from_value(json!({"metadata": {"name": "pv-a"}, "spec": {}})).unwrap();
        assert!(v.set_volume(&open));
        let check = VolumeCheck::prepare(&user(&["data"]), &v);
        assert_eq!(check.filter(&node("b", json!({}))), Ok(()));
    }

    #[test]
    fn missing_or_terminating_claims_and_unseen_volumes_wait() {
        let mut v = Volumes::default();
        let check = VolumeCheck::prepare(&user(&["nope"]), &v);
        assert_eq!(
            check.filter(&node("a", json!({}))),
            Err(Reject::hard("persistentvolumeclaim \"nope\" not found"))
        );
        v.set_claim(&claim("data", Some("pv-x")));
        let check = VolumeCheck::prepare(&user(&["data"]), &v);
        assert_eq!(
            check.filter(&node("a", json!({}))),
            Err(Reject::hard("persistentvolume \"pv-x\" not found"))
        );
        let mut going = claim("data", Some("pv-x"));
        going.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert!(v.set_claim(&going));
        let check = VolumeCheck::prepare(&user(&["data"]), &v);
        assert_eq!(
            check.filter(&node("a", json!({}))),
            Err(Reject::hard(
                "persistentvolumeclaim \"data\" is being deleted"
            ))
        );
        v.retain_claims(&HashSet::new());
        assert!(VolumeCheck::prepare(&user(&[]), &v)
            .filter(&node("a", json!({})))
            .is_ok());
    }
}
