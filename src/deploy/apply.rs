//! Applying decoded objects through the API: each kind resolved to its resource by discovery
//! (one group-version at a time, cached, asked again when a kind is not known so a CRD applied
//! a moment ago is found), then server-side apply under the field manager `k1s-deploy` with
//! force, as k3s's deploy controller owns what its files say. Deleting an object that a file
//! no longer declares is here too. It never reads files and never decides what to delete.

use super::decode::{Gvk, Object};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::discovery::{ApiResource, Scope};
use kube::Client;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;

/// The field manager of everything the manifests directory applies.
pub const MANAGER: &str = "k1s-deploy";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("no kind {} in {}: the server does not serve it (yet)", .0.kind, .0.api_version())]
    UnknownKind(Gvk),
    #[error("discovery of {gv}: {source}")]
    Discovery { gv: String, source: kube::Error },
    #[error("{verb} {kind} {target}: {}", api_message(source))]
    Api {
        verb: &'static str,
        kind: String,
        target: String,
        source: kube::Error,
    },
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// An object a file applied, as recorded in its Addon's status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectRef {
    pub fn gvk(&self) -> Gvk {
        Gvk::from_api_version(&self.api_version, &self.kind)
    }

    /// The identity that survives a change of version: group, kind, namespace and name.
    pub fn identity(&self) -> (String, String, Option<String>, String) {
        let g = self.gvk();
        (g.group, g.kind, self.namespace.clone(), self.name.clone())
    }

    pub fn target(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.target())
    }
}

#[derive(Clone)]
struct Resolved {
    resource: ApiResource,
    namespaced: bool,
}

/// Applies objects; owns the discovery cache.
pub struct Applier {
    client: Client,
    kinds: Mutex<HashMap<Gvk, Resolved>>,
}

impl Applier {
    pub fn new(client: Client) -> Applier {
        Applier {
            client,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, gvk: &Gvk) -> Option<Resolved> {
        self.kinds.lock().expect("kinds lock").get(gvk).cloned()
    }

    /// The resource serving `gvk`; a miss asks the server for the whole group-version.
    async fn resolve(&self, gvk: &Gvk) -> Result<Resolved, ApplyError> {
        if let Some(r) = self.cached(gvk) {
            return Ok(r);
        }
        let gv = kube::core::GroupVersion::gv(&gvk.group, &gvk.version);
        let group = match kube::discovery::pinned_group(&self.client, &gv).await {
            Ok(g) => g,
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(ApplyError::UnknownKind(gvk.clone()))
            }
            Err(source) => {
                return Err(ApplyError::Discovery {
                    gv: gvk.api_version(),
                    source,
                })
            }
        };
        let mut kinds = self.kinds.lock().expect("kinds lock");
        for (resource, caps) in group.versioned_resources(&gvk.version) {
            let key = Gvk::from_api_version(&resource.api_version, &resource.kind);
            let namespaced = matches!(caps.scope, Scope::Namespaced);
            kinds.insert(
                key,
                Resolved {
                    resource,
                    namespaced,
                },
            );
        }
        kinds
            .get(gvk)
            .cloned()
            .ok_or_else(|| ApplyError::UnknownKind(gvk.clone()))
    }

    fn api(&self, r: &Resolved, ns: Option<&str>) -> Api<DynamicObject> {
        match ns {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &r.resource),
            None => Api::all_with(self.client.clone(), &r.resource),
        }
    }

    /// Where `obj` goes: its namespace (`default` when it names none) for a namespaced kind,
    /// none for a cluster-scoped one (a namespace written there is ignored, as kubectl does).
    pub async fn locate(&self, obj: &Object) -> Result<ObjectRef, ApplyError> {
        let r = self.resolve(&obj.gvk).await?;
        Ok(ObjectRef {
            api_version: obj.gvk.api_version(),
            kind: obj.gvk.kind.clone(),
            namespace: r
                .namespaced
                .then(|| obj.namespace.clone().unwrap_or_else(|| "default".into())),
            name: obj.name.clone(),
        })
    }

    /// Server-side apply of `obj`, taking over fields other managers hold.
    pub async fn apply(&self, obj: &Object) -> Result<ObjectRef, ApplyError> {
        let r = self.resolve(&obj.gvk).await?;
        let at = self.locate(obj).await?;
        let mut body = obj.body.clone();
        match &at.namespace {
            Some(ns) => body["metadata"]["namespace"] = ns.clone().into(),
            None => {
                if let Some(m) = body["metadata"].as_object_mut() {
                    m.remove("namespace");
                }
            }
        }
        let params = PatchParams::apply(MANAGER).force();
        self.api(&r, at.namespace.as_deref())
            .patch(&obj.name, &params, &Patch::Apply(&body))
            .await
            .map_err(|source| ApplyError::Api {
                verb: "applying",
                kind: obj.gvk.kind.clone(),
                target: at.target(),
                source,
            })?;
        Ok(at)
    }

    /// Delete an object a file applied before. Gone already, or of a kind the server no
    /// longer serves: nothing to do.
    pub async fn delete(&self, at: &ObjectRef) -> Result<(), ApplyError> {
        let r = match self.resolve(&at.gvk()).await {
            Ok(r) => r,
            Err(ApplyError::UnknownKind(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        match self
            .api(&r, at.namespace.as_deref())
            .delete(&at.name, &DeleteParams::background())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(source) => Err(ApplyError::Api {
                verb: "deleting",
                kind: at.kind.clone(),
                target: at.target(),
                source,
            }),
        }
    }
}

/// Apply order within a file: Namespaces and CustomResourceDefinitions first (what the
/// rest may live in or be), otherwise as written.
pub fn apply_order(objs: &mut [Object]) {
    objs.sort_by_key(|o| match (o.gvk.group.as_str(), o.gvk.kind.as_str()) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        _ => 2,
    });
}
