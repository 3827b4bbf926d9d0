//! The pure arithmetic of Deployment rollouts, kept apart from the controller so it can be
//! tested exhaustively: maxSurge/maxUnavailable resolution (percentages rounded up for surge,
//! down for unavailable, as upstream), how far the new ReplicaSet may grow and the old ones
//! shrink in one rolling step, proportional scaling, the pod-template hash, revisions.

use k8s_openapi::api::apps::v1::DeploymentSpec;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const HASH_LABEL: &str = "pod-template-hash";
pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";

/// An int-or-percent of `total`; percentages round up or down as asked.
pub fn scaled(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let p: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: {s:?}"))?;
            let x = p * i64::from(total);
            let v = if round_up {
                (x + 99).div_euclid(100)
            } else {
                x.div_euclid(100)
            };
            i32::try_from(v).map_err(|_| format!("{s} of {total} is out of range"))
        }
    }
}

/// (maxSurge, maxUnavailable) of a RollingUpdate deployment, defaults 25%/25%. Both zero
/// would deadlock, so unavailable becomes 1 then (upstream's ResolveFenceposts).
pub fn fenceposts(spec: &DeploymentSpec) -> Result<(i32, i32), String> {
    let desired = spec.replicas.unwrap_or(1);
    let ru = spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.clone())
        .unwrap_or_default();
    let quarter = IntOrString::String("25%".into());
    let surge = scaled(ru.max_surge.as_ref().unwrap_or(&quarter), desired, true)?;
    let unavailable = scaled(
        ru.max_unavailable.as_ref().unwrap_or(&quarter),
        desired,
        false,
    )?;
    if surge == 0 && unavailable == 0 {
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

pub fn is_recreate(spec: &DeploymentSpec) -> bool {
    spec.strategy.as_ref().and_then(|s| s.type_.as_deref()) == Some("Recreate")
}

/// A ReplicaSet as the rollout math sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rs {
    /// spec.replicas
    pub spec: i32,
    /// status.availableReplicas
    pub available: i32,
}

/// The new ReplicaSet's replicas for this step: grow toward `desired` without the total of
/// all sets' spec.replicas passing `desired + max_surge`.
pub fn new_replicas(desired: i32, max_surge: i32, new: Rs, old: &[Rs]) -> i32 {
    if new.spec >= desired {
        return desired;
    }
    let current: i32 = new.spec + old.iter().map(|r| r.spec).sum::<i32>();
    let max_total = desired + max_surge;
    if current >= max_total {
        return new.spec;
    }
    new.spec + (max_total - current).min(desired - new.spec)
}

/// The old sets' replicas after this step (same order as `old`, which is oldest first): first
/// drop their unavailable pods, then available ones while at least `desired -
/// max_unavailable` stay available (upstream's cleanupUnhealthyReplicas and
/// scaleDownOldReplicaSetsForRollingUpdate).
pub fn scale_down_old(desired: i32, max_unavailable: i32, new: Rs, old: &[Rs]) -> Vec<i32> {
    let mut target: Vec<i32> = old.iter().map(|r| r.spec).collect();
    let old_total: i32 = target.iter().sum();
    if old_total == 0 {
        return target;
    }
    let min_available = desired - max_unavailable;
    let new_unavailable = (new.spec - new.available).max(0);
    let mut budget = old_total + new.spec - min_available - new_unavailable;
    if budget <= 0 {
        return target;
    }
    for (t, r) in target.iter_mut().zip(old) {
        let unhealthy = (*t - r.available).max(0);
        let down = unhealthy.min(budget);
        *t -= down;
        budget -= down;
        if budget == 0 {
            break;
        }
    }
    let available: i32 = new.available + old.iter().map(|r| r.available).sum::<i32>();
    let mut extra = available - min_available;
    for t in target.iter_mut() {
        if extra <= 0 {
            break;
        }
        let down = (*t).min(extra);
        *t -= down;
        extra -= down;
    }
    target
}

/// Spread a scaling of the deployment over its active sets in proportion to their size
/// (upstream's proportional scaling, simplified: shares are rounded down and the rest goes to
/// the first set, which the caller orders newest first). `sets` are spec.replicas.
pub fn proportional(sets: &[i32], allowed_total: i32) -> Vec<i32> {
    let current: i32 = sets.iter().sum();
    let delta = allowed_total - current;
    if delta == 0 || current == 0 {
        let mut out = sets.to_vec();
        if let Some(first) = out.first_mut() {
            *first += delta.max(0);
        }
        return out;
    }
    let mut out: Vec<i32> = sets
        .iter()
        .map(|&s| {
            let share = i64::from(s) * i64::from(delta) / i64::from(current);
            s + i32::try_from(share).unwrap_or(0)
        })
        .collect();
    let mut rest = allowed_total - out.iter().sum::<i32>();
    for o in out.iter_mut() {
        if rest == 0 {
            break;
        }
        let step = if rest > 0 { rest } else { rest.max(-*o) };
        *o += step;
        rest -= step;
    }
    out
}

/// FNV-1a, 32 bits, as upstream hashes templates.
fn fnv1a32(data: &[u8]) -> u32 {
    data.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The `pod-template-hash`: FNV-1a (32 bit) over the template's JSON encoding (k8s-openapi's
/// field order, so stable across restarts) and the collision count, then each decimal digit
/// mapped onto upstream's safe alphabet (no vowels, no look-alikes). Upstream hashes Go's
/// spew dump of the struct instead, so the values differ from upstream's but are as stable.
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut data = serde_json::to_vec(template).unwrap_or_default();
    if let Some(c) = collision_count {
        data.extend_from_slice(&(c as u32).to_le_bytes());
    }
    const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    fnv1a32(&data)
        .to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// A revision annotation's value; missing or malformed counts as 0.
pub fn revision_of(annotations: Option<&std::collections::BTreeMap<String, String>>) -> i64 {
    annotations
        .and_then(|a| a.get(REVISION))
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};

    fn spec(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> DeploymentSpec {
        DeploymentSpec {
            replicas: Some(replicas),
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            ..Default::default()
        }
    }
    fn pct(s: &str) -> IntOrString {
        IntOrString::String(s.into())
    }

    #[test]
    fn percentages_round_as_upstream() {
        assert_eq!(fenceposts(&spec(10, pct("25%"), pct("25%"))), Ok((3, 2)));
        assert_eq!(fenceposts(&spec(1, pct("25%"), pct("25%"))), Ok((1, 0)));
        assert_eq!(fenceposts(&spec(4, pct("50%"), pct("50%"))), Ok((2, 2)));
        assert_eq!(
            fenceposts(&spec(3, IntOrString::Int(0), pct("10%"))),
            Ok((0, 1))
        );
        assert_eq!(fenceposts(&DeploymentSpec::default()), Ok((1, 0)));
        assert!(fenceposts(&spec(3, pct("x%"), pct("1%"))).is_err());
    }

    #[test]
    fn new_set_grows_within_surge() {
        let rs = |spec, available| Rs { spec, available };
        // 10 replicas, surge 3: the new set may start with 3.
        assert_eq!(new_replicas(10, 3, rs(0, 0), &[rs(10, 10)]), 3);
        // Total already at 13: no growth.
        assert_eq!(new_replicas(10, 3, rs(3, 0), &[rs(10, 10)]), 3);
        // Old shrank to 8: grow to 5.
        assert_eq!(new_replicas(10, 3, rs(3, 3), &[rs(8, 8)]), 5);
        // Never past desired; scale down when over.
        assert_eq!(new_replicas(10, 3, rs(9, 9), &[]), 10);
        assert_eq!(new_replicas(10, 3, rs(12, 12), &[]), 10);
    }

    #[test]
    fn old_sets_shrink_within_unavailable() {
        let rs = |spec, available| Rs { spec, available };
        // 10 desired, unavailable 2, new set of 3 not yet available: old may lose 2.
        assert_eq!(scale_down_old(10, 2, rs(3, 0), &[rs(10, 10)]), vec![8]);
        // New set available: old down to 5 keeps 8 available.
        assert_eq!(scale_down_old(10, 2, rs(3, 3), &[rs(8, 8)]), vec![5]);
        // Unhealthy old pods go first, from the oldest set, within the budget.
        assert_eq!(
            scale_down_old(4, 0, rs(1, 0), &[rs(2, 0), rs(3, 3)]),
            vec![1, 3]
        );
        assert_eq!(
            scale_down_old(4, 0, rs(1, 1), &[rs(2, 0), rs(3, 3)]),
            vec![0, 3]
        );
        // Nothing to give: a bad new template leaves the old pods serving.
        assert_eq!(scale_down_old(3, 0, rs(1, 0), &[rs(3, 3)]), vec![3]);
        assert_eq!(scale_down_old(3, 1, rs(1, 0), &[rs(2, 2)]), vec![2]);
    }

    #[test]
    fn proportional_scaling_keeps_totals() {
        assert_eq!(proportional(&[5, 5], 20), vec![10, 10]);
        assert_eq!(proportional(&[3, 7], 13), vec![4, 9]);
        assert_eq!(proportional(&[6, 4], 5), vec![3, 2]);
        let out = proportional(&[1, 1, 1], 2);
        assert_eq!(out.iter().sum::<i32>(), 2);
        assert_eq!(proportional(&[0], 3), vec![3]);
    }

    #[test]
    fn template_hash_is_stable_and_safe() {
        let mut t = PodTemplateSpec::default();
        let a = template_hash(&t, None);
        assert_eq!(a, template_hash(&t, None));
        assert!(a.len() <= 10 && !a.is_empty());
        assert!(a
            .bytes()
            .all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)));
        assert_ne!(a, template_hash(&t, Some(1)));
        t.metadata = Some(Default::default());
        t.metadata.as_mut().unwrap().labels = Some([("app".into(), "x".into())].into());
        assert_ne!(a, template_hash(&t, None));
        assert_eq!(fnv1a32(b"hello"), 0x4f9f_2cab);
    }
}
