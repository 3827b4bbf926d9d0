//! Helpers the workload controllers share: label selectors, controller references,
//! adoption and release of dependents, core/v1 Events, and waiting for a reflector cache to
//! catch up with the controller's own writes. Nothing here decides anything on its own.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, MicroTime, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::Duration;

/// Whether `selector` selects `labels`. A missing selector selects nothing (as upstream); an
/// invalid one selects nothing either.
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = selector else { return false };
    if sel.match_labels.as_ref().is_none_or(|m| m.is_empty())
        && sel.match_expressions.as_ref().is_none_or(|m| m.is_empty())
    {
        // An empty selector would select everything; the API rejects it for workloads.
        return false;
    }
    match Selector::try_from(sel.clone()) {
        Ok(s) => s.matches(labels),
        Err(_) => false,
    }
}

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The controller reference a workload puts on what it creates.
pub fn owner_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.meta().name.clone().unwrap_or_default(),
        uid: owner.meta().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller should do with a candidate dependent (upstream's ControllerRefManager).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Owned by us and still selected, or not ours: nothing to do. `true` if ours.
    Keep(bool),
    /// An orphan that matches: take it.
    Adopt,
    /// Ours but no longer selected: let it go.
    Release,
}

/// Decide about one dependent. Dependents being deleted are never adopted; an owner being
/// deleted adopts nothing.
pub fn claim(owner_uid: &str, owner_deleting: bool, meta: &ObjectMeta, matches: bool) -> Claim {
    match controller_of(meta) {
        Some(r) if r.uid == owner_uid => {
            if matches || owner_deleting {
                Claim::Keep(true)
            } else {
                Claim::Release
            }
        }
        Some(_) => Claim::Keep(false),
        None if matches && !owner_deleting && meta.deletion_timestamp.is_none() => Claim::Adopt,
        None => Claim::Keep(false),
    }
}

/// Adopt (`Some(reference)`) or release (`None` with `release_uid`) a dependent with a merge
/// patch that carries its resourceVersion, so a concurrent change makes it fail and retry.
pub async fn set_controller<K>(
    api: &Api<K>,
    dep: &K,
    adopt: Option<OwnerReference>,
    release_uid: &str,
) -> Result<K, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut refs: Vec<OwnerReference> = dep
        .meta()
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != release_uid)
        .collect();
    if let Some(r) = adopt {
        refs.retain(|o| o.uid != r.uid);
        refs.push(r);
    }
    let patch = serde_json::json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": dep.meta().resource_version,
        "uid": dep.meta().uid,
    }});
    api.patch(
        &dep.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
}

/// What the controller expects its cache to show after its own writes.
pub enum Expect {
    /// The object exists (it was created).
    Present(String),
    /// The object is gone or terminating (it was deleted).
    Gone(String),
    /// The object's resourceVersion is no longer `rv` (it was updated).
    Changed(String, String),
}

/// Wait (up to `limit`) until `store` reflects the expected writes, so the next reconcile,
/// which reads the cache, does not act twice on what it already did (upstream keeps
/// "expectations" for the same reason). Returns false on timeout; callers requeue then.
pub async fn wait_for_cache<K>(
    store: &Store<K>,
    ns: &str,
    expect: &[Expect],
    limit: Duration,
) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let done = expect.iter().all(|e| {
            let get = |n: &str| store.get(&ObjectRef::new(n).within(ns));
            match e {
                Expect::Present(n) => get(n).is_some(),
                Expect::Gone(n) => get(n).is_none_or(|o| o.meta().deletion_timestamp.is_some()),
                Expect::Changed(n, rv) => {
                    get(n).is_none_or(|o| o.meta().resource_version.as_ref() != Some(rv))
                }
            }
        });
        if done {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Records core/v1 Events, the ones `kubectl describe` lists. kube-runtime's Recorder writes
/// events.k8s.io/v1 objects, which k1s stores apart from core/v1 ones, so describe would not
/// show them; this writes the core kind directly, as client-go's recorder does.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    component: &'static str,
}

impl Recorder {
    pub fn new(client: Client, component: &'static str) -> Self {
        Self { client, component }
    }

    /// Best effort: an event that cannot be written is logged, never an error.
    pub async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        obj: &K,
        warning: bool,
        reason: &str,
        message: String,
    ) {
        let meta = obj.meta();
        let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
        let now = Timestamp::now();
        let name = meta.name.clone().unwrap_or_default();
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!("{name}.{:x}", now.as_nanosecond())),
                namespace: Some(ns.clone()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some(K::api_version(&()).into_owned()),
                kind: Some(K::kind(&()).into_owned()),
                name: Some(name),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                resource_version: meta.resource_version.clone(),
                field_path: None,
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            event_time: None::<MicroTime>,
            source: Some(EventSource {
                component: Some(self.component.into()),
                host: None,
            }),
            reporting_component: Some(self.component.into()),
            reporting_instance: Some("k1s".into()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!(error = %e, reason, "writing an event");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selectors_match_as_upstream() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "NotIn".into(),
                values: Some(vec!["db".into()]),
            }]),
        };
        assert!(selects(Some(&sel), &labels(&[("app", "web")])));
        assert!(!selects(
            Some(&sel),
            &labels(&[("app", "web"), ("tier", "db")])
        ));
        assert!(!selects(None, &labels(&[("app", "web")])));
        assert!(!selects(Some(&LabelSelector::default()), &labels(&[])));
    }

    #[test]
    fn claims() {
        let mut m = ObjectMeta::default();
        assert_eq!(claim("u1", false, &m, true), Claim::Adopt);
        assert_eq!(claim("u1", true, &m, true), Claim::Keep(false));
        assert_eq!(claim("u1", false, &m, false), Claim::Keep(false));
        m.owner_references = Some(vec![OwnerReference {
            uid: "u1".into(),
            controller: Some(true),
            ..Default::default()
        }]);
        assert_eq!(claim("u1", false, &m, true), Claim::Keep(true));
        assert_eq!(claim("u1", false, &m, false), Claim::Release);
        assert_eq!(claim("u2", false, &m, true), Claim::Keep(false));
    }
}
