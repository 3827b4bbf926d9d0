//! One StatefulSet pass over its members, as upstream's `updateStatefulSet`: create missing
//! members (with their claims) at the right revision, replace failed ones, scale down from
//! the highest ordinal, then roll pods whose revision is not the update revision from the
//! highest ordinal down to the partition, at most maxUnavailable at a time. OrderedReady
//! does one step at a time and waits for each member to be Running and Ready (and available
//! after minReadySeconds); Parallel does every step at once. OnDelete only replaces
//! members the user deleted.

use super::identity::{self, in_range};
use super::{Ctx, Error};
use crate::controllers::common::Expect;
use crate::controllers::{podutil, rollout};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::ObjectRef;
use kube::ResourceExt;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// A revision as the pass uses it: its name (the pods' label) and template.
pub(super) struct Rev {
    pub name: String,
    pub template: PodTemplateSpec,
}

pub(super) struct Pass<'a> {
    pub ctx: &'a Ctx,
    pub set: &'a StatefulSet,
    pub ns: String,
    pub pods: Api<Pod>,
    pub claims: Api<PersistentVolumeClaim>,
    pub expect: Vec<Expect>,
    /// Wake up again after this long (minReadySeconds still running).
    pub recheck: Option<Duration>,
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub(super) fn running_ready(pod: &Pod) -> bool {
    phase(pod) == "Running" && podutil::is_ready(pod)
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

pub(super) fn revision(pod: &Pod) -> &str {
    pod.labels()
        .get(crate::controllers::history::REVISION_LABEL)
        .map(String::as_str)
        .unwrap_or("")
}

impl Pass<'_> {
    fn err(&self, source: kube::Error) -> Error {
        Error::Api {
            ns: self.ns.clone(),
            name: self.set.name_any(),
            source,
        }
    }

    /// Running, ready and available; otherwise note when to look again.
    fn available(&mut self, pod: &Pod, min_ready: i32) -> bool {
        if !running_ready(pod) {
            return false;
        }
        match podutil::available(pod, min_ready, Timestamp::now()) {
            Ok(()) => true,
            Err(wait) => {
                if let Some(w) = wait.and_then(|w| Duration::try_from(w).ok()) {
                    let w = w + Duration::from_millis(50);
                    self.recheck = Some(self.recheck.map_or(w, |r| r.min(w)));
                }
                false
            }
        }
    }

    async fn event(&self, warning: bool, reason: &str, message: String) {
        self.ctx
            .recorder
            .publish(self.set, warning, reason, message)
            .await
    }

    async fn delete_pod(&mut self, pod: &Pod) -> Result<(), Error> {
        let name = pod.name_any();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let set = self.set.name_any();
        match self.pods.delete(&name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => {
                let msg = format!(
                    "delete Pod {name} in StatefulSet {set} failed error: {}",
                    message(&e)
                );
                self.event(true, "FailedDelete", msg).await;
                return Err(self.err(e));
            }
        }
        let msg = format!("delete Pod {name} in StatefulSet {set} successful");
        self.event(false, "SuccessfulDelete", msg).await;
        self.expect.push(Expect::Gone(name));
        Ok(())
    }

    /// A claim whose scaled-down member is gone but which the garbage collector has not yet
    /// removed must not be reused (upstream's PodClaimIsStale).
    fn claim_is_stale(&self, ord: i32) -> bool {
        identity::claims(self.set, ord).iter().any(|c| {
            self.ctx
                .claims
                .get(&ObjectRef::new(&c.name_any()).within(&self.ns))
                .is_some_and(|existing| {
                    existing.metadata.deletion_timestamp.is_some()
                        || existing
                            .metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|r| r.kind == "Pod" && r.controller == Some(true))
                })
        })
    }

    /// Create the member's claims that do not exist yet.
    async fn create_claims(&mut self, pod: &Pod, ord: i32) -> Result<(), Error> {
        let set = self.set.name_any();
        for mut claim in identity::claims(self.set, ord) {
            let name = claim.name_any();
            if self
                .ctx
                .claims
                .get(&ObjectRef::new(&name).within(&self.ns))
                .is_some()
            {
                continue;
            }
            if let Some(refs) = identity::claim_refs(&claim, self.set, pod, ord) {
                claim.metadata.owner_references = Some(refs);
            }
            let pod_name = pod.name_any();
            match self.claims.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    let msg =
                        format!("create Claim {name} Pod {pod_name} in StatefulSet {set} success");
                    self.event(false, "SuccessfulCreate", msg).await;
                }
                Err(kube::Error::Api(e)) if e.code == 409 => {}
                Err(e) => {
                    let msg = format!(
                        "create Claim {name} for Pod {pod_name} in StatefulSet {set} failed error: {}",
                        message(&e)
                    );
                    self.event(true, "FailedCreate", msg).await;
                    return Err(self.err(e));
                }
            }
        }
        Ok(())
    }

    /// Bring the member's claims' owner references in line with the retention policy.
    async fn fix_claims(&mut self, pod: &Pod, ord: i32) -> Result<(), Error> {
        for c in identity::claims(self.set, ord) {
            let Some(existing) = self
                .ctx
                .claims
                .get(&ObjectRef::new(&c.name_any()).within(&self.ns))
            else {
                continue;
            };
            let Some(refs) = identity::claim_refs(&existing, self.set, pod, ord) else {
                continue;
            };
            let patch = json!({"metadata": {
                "ownerReferences": refs,
                "resourceVersion": existing.resource_version(),
            }});
            match self
                .claims
                .patch(
                    &c.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(())
    }

    async fn create_pod(
        &mut self,
        template: &PodTemplateSpec,
        ord: i32,
        rev: &str,
    ) -> Result<(), Error> {
        let pod = identity::new_pod(self.set, template, ord, rev);
        self.create_claims(&pod, ord).await?;
        let (name, set) = (pod.name_any(), self.set.name_any());
        match self.pods.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                let msg = format!("create Pod {name} in StatefulSet {set} successful");
                self.event(false, "SuccessfulCreate", msg).await;
                self.expect.push(Expect::Present(name));
                Ok(())
            }
            // created by an earlier pass the cache has not shown yet
            Err(kube::Error::Api(e)) if e.code == 409 => {
                self.expect.push(Expect::Present(name));
                Ok(())
            }
            Err(e) => {
                let msg = format!(
                    "create Pod {name} in StatefulSet {set} failed error: {}",
                    message(&e)
                );
                self.event(true, "FailedCreate", msg).await;
                Err(self.err(e))
            }
        }
    }

    /// Upstream's processReplica: `true` means an OrderedReady pass stops here.
    async fn replica(
        &mut self,
        slot: Option<&Pod>,
        ord: i32,
        revs: (&Rev, &Rev),
        monotonic: bool,
    ) -> Result<bool, Error> {
        let min_ready = self
            .set
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let Some(pod) = slot else {
            if self.claim_is_stale(ord) {
                return Ok(true);
            }
            let (rev, template) = self.revision_for(ord, revs);
            self.create_pod(&template, ord, &rev).await?;
            return Ok(monotonic);
        };
        if matches!(phase(pod), "Failed" | "Succeeded") {
            if !terminating(pod) {
                self.delete_pod(pod).await?;
            }
            return Ok(true);
        }
        if phase(pod) == "Pending" {
            self.create_claims(pod, ord).await?;
        }
        if monotonic && (terminating(pod) || !self.available(pod, min_ready)) {
            return Ok(true);
        }
        if let Some(labels) = identity::missing_identity(pod, ord) {
            let patch = json!({"metadata": {"labels": labels}});
            match self
                .pods
                .patch(
                    &pod.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        self.fix_claims(pod, ord).await?;
        Ok(false)
    }

    /// The revision a new member at `ord` is made at: the current one below the partition
    /// of a RollingUpdate set, else the update revision.
    fn revision_for(&self, ord: i32, (current, update): (&Rev, &Rev)) -> (String, PodTemplateSpec) {
        let spec = self.set.spec.clone().unwrap_or_default();
        let strategy = spec.update_strategy.unwrap_or_default();
        let start = identity::start(self.set);
        let below = match (&strategy.type_, &strategy.rolling_update) {
            (t, Some(ru)) if t.as_deref() != Some("OnDelete") => {
                ord < start + ru.partition.unwrap_or(0)
            }
            (t, None) if t.as_deref() != Some("OnDelete") => {
                let current_replicas = self
                    .set
                    .status
                    .as_ref()
                    .and_then(|s| s.current_replicas)
                    .unwrap_or(0);
                ord < start + current_replicas
            }
            _ => false,
        };
        let r = if below { current } else { update };
        (r.name.clone(), r.template.clone())
    }
}

fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Upstream's updateStatefulSet over the set's members (`pods`: the ones it controls).
pub(super) async fn sync(
    pass: &mut Pass<'_>,
    pods: &[Arc<Pod>],
    current: &Rev,
    update: &Rev,
) -> Result<(), Error> {
    let set = pass.set;
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = identity::replicas(set);
    let start = identity::start(set);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut slots: Vec<Option<&Pod>> = vec![None; usize::try_from(replicas).unwrap_or(0)];
    let mut condemned: Vec<(i32, &Pod)> = vec![];
    for p in pods {
        let Some(ord) = identity::ordinal_in(set, p) else {
            continue;
        };
        if in_range(set, ord) {
            slots[(ord - start) as usize] = Some(p.as_ref());
        } else {
            condemned.push((ord, p.as_ref()));
        }
    }
    condemned.sort_by_key(|(o, _)| std::cmp::Reverse(*o));
    // The first member (lowest ordinal) that is not available; condemned ones after.
    let mut first_unhealthy: Option<i32> = None;
    for (i, s) in slots.iter().enumerate() {
        if s.is_none_or(|p| !pass.available(p, min_ready)) {
            first_unhealthy = Some(start + i as i32);
            break;
        }
    }
    if first_unhealthy.is_none() {
        first_unhealthy = condemned
            .iter()
            .rev()
            .find(|(_, p)| {
                !running_ready(p) || podutil::available(p, min_ready, Timestamp::now()).is_err()
            })
            .map(|(o, _)| *o);
    }
    if set.metadata.deletion_timestamp.is_some() {
        return Ok(());
    }
    let monotonic = spec.pod_management_policy.as_deref() != Some("Parallel");
    for (i, slot) in slots.iter().enumerate() {
        if pass
            .replica(*slot, start + i as i32, (current, update), monotonic)
            .await?
            && monotonic
        {
            return Ok(());
        }
    }
    for (ord, p) in &condemned {
        pass.fix_claims(p, *ord).await?;
    }
    for (ord, p) in &condemned {
        if terminating(p) {
            if monotonic {
                return Ok(());
            }
            continue;
        }
        let unhealthy =
            !running_ready(p) || podutil::available(p, min_ready, Timestamp::now()).is_err();
        if monotonic && unhealthy && first_unhealthy != Some(*ord) {
            return Ok(());
        }
        pass.delete_pod(p).await?;
        if monotonic {
            return Ok(());
        }
    }
    let strategy = spec.update_strategy.unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return Ok(());
    }
    // Rolling update: from the highest ordinal down to the partition, within maxUnavailable.
    let ru = strategy.rolling_update.unwrap_or_default();
    let partition = ru.partition.unwrap_or(0).max(0);
    let max_unavailable = rollout::scaled(
        ru.max_unavailable.as_ref().unwrap_or(&IntOrString::Int(1)),
        replicas,
        false,
    )
    .map_err(|message| Error::Invalid {
        ns: pass.ns.clone(),
        name: set.name_any(),
        message,
    })?
    .max(1);
    let mut unavailable = 0;
    for s in &slots {
        if s.is_none_or(|p| !pass.available(p, min_ready)) {
            unavailable += 1;
        }
    }
    let mut budget = max_unavailable - unavailable;
    for target in (partition..replicas).rev() {
        if budget <= 0 {
            break;
        }
        let Some(p) = slots[target as usize] else {
            continue;
        };
        if revision(p) != update.name && !terminating(p) {
            pass.delete_pod(p).await?;
            budget -= 1;
        }
    }
    Ok(())
}
