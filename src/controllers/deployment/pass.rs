//! One pass of the Deployment controller over one Deployment: the writes it makes to
//! ReplicaSets (scale, create the new set, carry its revision) and what it expects its cache
//! to show afterwards.

use super::super::common::{self, Expect};
use super::super::rollout::REVISION_HISTORY;
use super::super::rollout::{self, Rs, DESIRED_REPLICAS, HASH_LABEL, MAX_REPLICAS, REVISION};
use super::{Ctx, Error};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use std::collections::BTreeMap;

/// One pass over a Deployment: the writes it made and what it learnt.
pub(super) struct Pass<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) d: &'a Deployment,
    pub(super) spec: DeploymentSpec,
    pub(super) api: Api<ReplicaSet>,
    pub(super) ns: String,
    pub(super) expect: Vec<Expect>,
    pub(super) max_surge: i32,
    pub(super) created: Option<String>,
}

pub(super) fn rs_view(rs: &ReplicaSet) -> Rs {
    let spec = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let available = rs
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    // A set just scaled down still reports the pods it is deleting as available until its
    // controller catches up; counting them would let the next step take too many away.
    Rs {
        spec,
        available: available.min(spec),
    }
}

/// Templates equal but for the hash label (upstream's EqualIgnoreHash).
pub(super) fn same_template(a: Option<&PodTemplateSpec>, b: &PodTemplateSpec) -> bool {
    let norm = |t: &PodTemplateSpec| {
        let mut t = t.clone();
        let m = t.metadata.get_or_insert_with(Default::default);
        if let Some(l) = m.labels.as_mut() {
            l.remove(HASH_LABEL);
        }
        if m.labels.as_ref().is_some_and(|l| l.is_empty()) {
            m.labels = None;
        }
        serde_json::to_value(t).unwrap_or_default()
    };
    a.is_some_and(|a| norm(a) == norm(b))
}

impl Pass<'_> {
    pub(super) fn err(&self, source: kube::Error) -> Error {
        Error::Api {
            ns: self.ns.clone(),
            name: self.d.name_any(),
            source,
        }
    }

    /// Scale `rs` to `replicas`, refreshing its desired/max annotations. Returns whether it
    /// wrote anything.
    pub(super) async fn scale(&mut self, rs: &ReplicaSet, replicas: i32) -> Result<bool, Error> {
        let desired = self.spec.replicas.unwrap_or(1);
        let ann = rs.annotations();
        let current = rs_view(rs).spec;
        let fresh_ann = ann.get(DESIRED_REPLICAS) == Some(&desired.to_string())
            && ann.get(MAX_REPLICAS) == Some(&(desired + self.max_surge).to_string());
        if current == replicas && fresh_ann {
            return Ok(false);
        }
        let patch = json!({
            "metadata": {
                "resourceVersion": rs.resource_version(),
                "annotations": {
                    DESIRED_REPLICAS: desired.to_string(),
                    MAX_REPLICAS: (desired + self.max_surge).to_string(),
                },
            },
            "spec": {"replicas": replicas},
        });
        self.api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| self.err(e))?;
        self.expect.push(Expect::Changed(
            rs.name_any(),
            rs.resource_version().unwrap_or_default(),
        ));
        if current != replicas {
            let dir = if replicas > current { "up" } else { "down" };
            let msg = format!(
                "Scaled {dir} replica set {} from {current} to {replicas}",
                rs.name_any()
            );
            self.ctx
                .recorder
                .publish(self.d, false, "ScalingReplicaSet", msg)
                .await;
        }
        Ok(true)
    }

    /// Create the new ReplicaSet for the current template, or find the one a lagging cache
    /// did not show yet. A namesake with another template is a hash collision: bump
    /// status.collisionCount so the next pass hashes differently.
    pub(super) async fn create_new(
        &mut self,
        replicas: i32,
        revision: i64,
    ) -> Result<ReplicaSet, Error> {
        let d = self.d;
        let collisions = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = rollout::template_hash(&self.spec.template, collisions);
        let mut template = self.spec.template.clone();
        let tmeta = template.metadata.get_or_insert_with(Default::default);
        tmeta
            .labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut selector = self.spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(HASH_LABEL.into(), hash.clone());
        let mut annotations: BTreeMap<String, String> = d
            .annotations()
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("deployment.kubernetes.io/")
                    && k.as_str() != "kubectl.kubernetes.io/last-applied-configuration"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let desired = self.spec.replicas.unwrap_or(1);
        annotations.insert(REVISION.into(), revision.to_string());
        annotations.insert(DESIRED_REPLICAS.into(), desired.to_string());
        annotations.insert(MAX_REPLICAS.into(), (desired + self.max_surge).to_string());
        let name = format!("{}-{hash}", d.name_any());
        let rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(self.ns.clone()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                annotations: Some(annotations),
                owner_references: Some(vec![common::owner_ref(d)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: self.spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        match self.api.create(&PostParams::default(), &rs).await {
            Ok(rs) => {
                self.expect.push(Expect::Present(name.clone()));
                self.created = Some(name.clone());
                let msg = format!("Scaled up replica set {name} from 0 to {replicas}");
                self.ctx
                    .recorder
                    .publish(d, false, "ScalingReplicaSet", msg)
                    .await;
                Ok(rs)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {
                let existing = self.api.get(&name).await.map_err(|e| self.err(e))?;
                let ours = common::controller_of(&existing.metadata).map(|r| r.uid.as_str())
                    == d.metadata.uid.as_deref();
                let template = existing.spec.as_ref().and_then(|s| s.template.as_ref());
                if ours && same_template(template, &self.spec.template) {
                    return Ok(existing);
                }
                let count = collisions.unwrap_or(0) + 1;
                let api: Api<Deployment> = Api::namespaced(self.ctx.client.clone(), &self.ns);
                let patch = json!({"status": {"collisionCount": count}});
                api.patch_status(
                    &d.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
                .map_err(|e| self.err(e))?;
                Err(Error::Invalid {
                    ns: self.ns.clone(),
                    name: d.name_any(),
                    message: format!("hash collision with replica set {name}, retrying"),
                })
            }
            Err(e) => Err(self.err(e)),
        }
    }

    /// Give the new set the next revision when an older template comes back (rollback),
    /// remembering its former revisions as upstream does.
    pub(super) async fn sync_revision(
        &mut self,
        rs: &ReplicaSet,
        revision: i64,
    ) -> Result<(), Error> {
        let current = rollout::revision_of(rs.metadata.annotations.as_ref());
        if current >= revision {
            return Ok(());
        }
        let mut history: Vec<String> = rs
            .annotations()
            .get(REVISION_HISTORY)
            .map(|h| h.split(',').map(String::from).collect())
            .unwrap_or_default();
        if current > 0 {
            history.push(current.to_string());
        }
        let mut ann = json!({ REVISION: revision.to_string() });
        if !history.is_empty() {
            ann[REVISION_HISTORY] = json!(history.join(","));
        }
        let patch =
            json!({"metadata": {"annotations": ann, "resourceVersion": rs.resource_version()}});
        self.api
            .patch(
                &rs.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| self.err(e))?;
        self.expect.push(Expect::Changed(
            rs.name_any(),
            rs.resource_version().unwrap_or_default(),
        ));
        Ok(())
    }
}
