//! ControllerRevisions, the history DaemonSets and StatefulSets keep of their pod templates
//! (upstream's `pkg/controller/history`). A revision's `data` is the strategic merge patch
//! `{"spec":{"template":{..., "$patch":"replace"}}}` that puts its template back, which is
//! exactly what `kubectl rollout undo` sends. This module claims revisions for an owner,
//! finds or creates the one matching the owner's template (renumbering it when an older
//! template comes back, as a rollback does), and trims history to revisionHistoryLimit.
//! Deployments keep their history on ReplicaSets instead; what both share is the template
//! hash (`rollout::template_hash`) and the "highest revision + 1" numbering. It never touches
//! pods.

use super::common::{self, Claim};
use super::rollout;
use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// The pod label (and DaemonSet revision label) naming the revision a pod was made from.
pub const REVISION_LABEL: &str = "controller-revision-hash";
/// The label upstream's generic history puts on the revisions it names (StatefulSet).
pub const HASH_LABEL: &str = "controller.kubernetes.io/hash";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("controllerrevision {name}: {source}")]
    Api { name: String, source: kube::Error },
    /// Another revision already has the name this template hashes to: the owner's
    /// collisionCount must grow before the next try.
    #[error("controllerrevision {name} exists with another template")]
    Collision { name: String },
}

fn api_err(name: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |source| Error::Api {
        name: name.to_string(),
        source,
    }
}

/// The revision data for `template`: a strategic merge patch replacing spec.template.
pub fn template_patch(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": t}})
}

/// The template a revision restores; `None` if its data is not such a patch.
pub fn template_of(cr: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = cr.data.as_ref()?.0.get("spec")?.get("template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

fn data_of(cr: &ControllerRevision) -> Option<&Value> {
    cr.data.as_ref().map(|d| &d.0)
}

/// The name a revision of `owner` with this template gets: `<owner>-<hash>` (the owner part
/// cut to 223 bytes so the whole stays a valid name), with the hash alone.
pub fn revision_name(
    owner: &str,
    template: &PodTemplateSpec,
    collisions: Option<i32>,
) -> (String, String) {
    let hash = rollout::template_hash(template, collisions);
    let mut prefix = owner.to_string();
    if prefix.len() > 223 {
        let mut cut = 223;
        while !prefix.is_char_boundary(cut) {
            cut -= 1;
        }
        prefix.truncate(cut);
    }
    (format!("{prefix}-{hash}"), hash)
}

/// Sort oldest first: by revision, then creation time, then name (upstream's order).
pub fn sort(revs: &mut [ControllerRevision]) {
    revs.sort_by(|a, b| {
        let key = |r: &ControllerRevision| {
            (
                r.revision,
                r.metadata.creation_timestamp.as_ref().map(|t| t.0),
                r.name_any(),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// The revisions `owner` controls, adopting orphans its selector matches and releasing
/// its own that no longer match (upstream's ControllerRevisionControllerRefManager).
pub async fn claim<K>(
    api: &Api<ControllerRevision>,
    cache: &Store<ControllerRevision>,
    owner: &K,
    selector: Option<&LabelSelector>,
) -> Result<Vec<ControllerRevision>, Error>
where
    K: Resource<DynamicType = ()>,
{
    let ns = owner.meta().namespace.clone().unwrap_or_default();
    let uid = owner.meta().uid.clone().unwrap_or_default();
    let deleting = owner.meta().deletion_timestamp.is_some();
    let mut owned = vec![];
    for cr in cache.state() {
        if cr.namespace().as_deref() != Some(ns.as_str()) {
            continue;
        }
        let matches = common::selects(selector, cr.labels());
        match common::claim(&uid, deleting, &cr.metadata, matches) {
            Claim::Keep(true) => owned.push((*cr).clone()),
            Claim::Keep(false) => {}
            Claim::Adopt => {
                let r = common::owner_ref(owner);
                match common::set_controller(api, cr.as_ref(), Some(r), "").await {
                    Ok(c) => owned.push(c),
                    Err(kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => return Err(api_err(&cr.name_any())(e)),
                }
            }
            Claim::Release => match common::set_controller(api, cr.as_ref(), None, &uid).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(api_err(&cr.name_any())(e)),
            },
        }
    }
    sort(&mut owned);
    Ok(owned)
}

/// What the caller wants the current revision to look like.
pub struct Wanted<'a> {
    pub template: &'a PodTemplateSpec,
    pub collision_count: Option<i32>,
    /// Extra label carrying the hash (`controller-revision-hash` for DaemonSets,
    /// `controller.kubernetes.io/hash` for StatefulSets).
    pub hash_label: &'static str,
}

/// Find the revision equal to the owner's template or create it. `revisions` must be
/// sorted (see `sort`) and owned by `owner`. An equal revision that is not the newest is
/// renumbered to the next revision (a rollback); duplicates of it are left to trimming.
/// Returns the current revision and whether anything was written.
pub async fn current<K>(
    api: &Api<ControllerRevision>,
    owner: &K,
    revisions: &[ControllerRevision],
    want: &Wanted<'_>,
) -> Result<(ControllerRevision, bool), Error>
where
    K: Resource<DynamicType = ()>,
{
    let data = template_patch(want.template);
    let next = revisions.last().map(|r| r.revision).unwrap_or(0) + 1;
    let newest_equal = revisions
        .iter()
        .rev()
        .find(|r| data_of(r) == Some(&data))
        .cloned();
    if let Some(eq) = newest_equal {
        let newest = revisions.last().map(|r| r.name_any());
        if newest.as_deref() == Some(eq.name_any().as_str()) {
            return Ok((eq, false));
        }
        let name = eq.name_any();
        let patch =
            json!({"metadata": {"resourceVersion": eq.resource_version()}, "revision": next});
        let updated = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(api_err(&name))?;
        return Ok((updated, true));
    }
    let owner_name = owner.meta().name.clone().unwrap_or_default();
    let (name, hash) = revision_name(&owner_name, want.template, want.collision_count);
    let mut labels: BTreeMap<String, String> = want
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(want.hash_label.into(), hash);
    let cr = ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: owner.meta().namespace.clone(),
            labels: Some(labels),
            annotations: owner.meta().annotations.clone(),
            owner_references: Some(vec![common::owner_ref(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(data.clone())),
        revision: next,
    };
    match api.create(&PostParams::default(), &cr).await {
        Ok(c) => Ok((c, true)),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let existing = api.get(&name).await.map_err(api_err(&name))?;
            let ours = common::controller_of(&existing.metadata).map(|r| r.uid.as_str())
                == owner.meta().uid.as_deref();
            if ours && data_of(&existing) == Some(&data) {
                Ok((existing, false))
            } else {
                Err(Error::Collision { name })
            }
        }
        Err(e) => Err(api_err(&name)(e)),
    }
}

/// Delete the oldest revisions beyond `limit` among those not `live` (upstream keeps the
/// current and update revisions and every revision a pod still runs).
pub async fn truncate(
    api: &Api<ControllerRevision>,
    revisions: &[ControllerRevision],
    limit: i32,
    live: impl Fn(&ControllerRevision) -> bool,
) -> Result<(), Error> {
    let Ok(limit) = usize::try_from(limit) else {
        return Ok(());
    };
    let history: Vec<&ControllerRevision> = revisions.iter().filter(|r| !live(r)).collect();
    if history.len() <= limit {
        return Ok(());
    }
    for r in &history[..history.len() - limit] {
        let name = r.name_any();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(api_err(&name)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodSpec};

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some([("app".to_string(), "x".to_string())].into()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn data_round_trips_the_template() {
        let t = template("busybox:1");
        let data = template_patch(&t);
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        let cr = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(template_of(&cr), Some(t));
        assert_eq!(template_of(&ControllerRevision::default()), None);
    }

    #[test]
    fn names_are_owner_and_hash() {
        let t = template("busybox:1");
        let (name, hash) = revision_name("web", &t, None);
        assert_eq!(name, format!("web-{hash}"));
        assert_ne!(revision_name("web", &t, Some(1)).1, hash);
        assert_ne!(revision_name("web", &template("busybox:2"), None).1, hash);
        let long = "a".repeat(300);
        assert!(revision_name(&long, &t, None).0.len() <= 253);
    }

    #[test]
    fn sorts_by_revision() {
        let r = |name: &str, rev| ControllerRevision {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            revision: rev,
            ..Default::default()
        };
        let mut v = vec![r("c", 3), r("a", 1), r("b", 1)];
        sort(&mut v);
        let names: Vec<_> = v.iter().map(|r| r.name_any()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
