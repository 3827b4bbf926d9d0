//! The `Addon` custom resource (`addons.k1s.io`, in `kube-system`, one per manifest file,
//! named after it, as k3s's `addons.k3s.cattle.io`): its CustomResourceDefinition, created
//! by the server at start; reading and writing an Addon (spec: the file and its sha256;
//! status: the objects applied and the last error); and Events about it. Through the API only;
//! it never applies the file's objects itself.

use super::apply::{ObjectRef, MANAGER};
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};

pub const NAMESPACE: &str = "kube-system";
pub const CRD_NAME: &str = "addons.k1s.io";
/// The component named in Events.
const COMPONENT: &str = "k1s-deploy";

/// What an Addon records.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Addon {
    pub name: String,
    pub uid: Option<String>,
    pub source: String,
    pub checksum: String,
    pub objects: Vec<ObjectRef>,
    pub error: String,
}

impl Addon {
    fn from_dynamic(o: &DynamicObject) -> Addon {
        let d = &o.data;
        let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Addon {
            name: o.metadata.name.clone().unwrap_or_default(),
            uid: o.metadata.uid.clone(),
            source: s(&d["spec"]["source"]),
            checksum: s(&d["spec"]["checksum"]),
            objects: serde_json::from_value(d["status"]["objects"].clone()).unwrap_or_default(),
            error: s(&d["status"]["error"]),
        }
    }
}

/// The CustomResourceDefinition of Addons.
pub fn crd() -> Value {
    let string = json!({"type": "string"});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": CRD_NAME},
        "spec": {
            "group": "k1s.io",
            "scope": "Namespaced",
            "names": {"plural": "addons", "singular": "addon", "kind": "Addon", "listKind": "AddonList"},
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [
                    {"name": "Source", "type": "string", "jsonPath": ".spec.source",
                     "description": "The manifest file"},
                    {"name": "Checksum", "type": "string", "jsonPath": ".spec.checksum", "priority": 1,
                     "description": "sha256 of the file as last applied"},
                    {"name": "Error", "type": "string", "jsonPath": ".status.error", "priority": 1,
                     "description": "Why the last apply failed; empty when it succeeded"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "description": "A file of the manifests directory and what applying it did.",
                    "properties": {
                        "apiVersion": string, "kind": string, "metadata": {"type": "object"},
                        "spec": {"type": "object", "properties": {
                            "source": {"type": "string", "description": "Path of the manifest file"},
                            "checksum": {"type": "string", "description": "sha256 of the file as last applied"},
                        }},
                        "status": {"type": "object", "properties": {
                            "objects": {"type": "array", "description": "The objects the file applied",
                                "items": {"type": "object", "properties": {
                                    "apiVersion": string, "kind": string, "namespace": string, "name": string,
                                }}},
                            "error": {"type": "string", "description": "The last error; empty when fine"},
                        }},
                    },
                }},
            }],
        },
    })
}

fn resource() -> ApiResource {
    ApiResource {
        group: "k1s.io".into(),
        version: "v1".into(),
        api_version: "k1s.io/v1".into(),
        kind: "Addon".into(),
        plural: "addons".into(),
    }
}

/// Addons in `kube-system`, and the Events about them.
#[derive(Clone)]
pub struct Addons {
    client: Client,
    api: Api<DynamicObject>,
}

impl Addons {
    pub fn new(client: Client) -> Addons {
        let api = Api::namespaced_with(client.clone(), NAMESPACE, &resource());
        Addons { client, api }
    }

    /// Create or update the Addon CRD. The registry serves it as soon as it is written.
    pub async fn ensure_crd(&self) -> Result<(), kube::Error> {
        let ar = ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &ar);
        api.patch(
            CRD_NAME,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(crd()),
        )
        .await
        .map(|_| ())
    }

    pub async fn get(&self, name: &str) -> Result<Option<Addon>, kube::Error> {
        Ok(self
            .api
            .get_opt(name)
            .await?
            .map(|o| Addon::from_dynamic(&o)))
    }

    pub async fn list(&self) -> Result<Vec<Addon>, kube::Error> {
        let l = self.api.list(&Default::default()).await?;
        Ok(l.items.iter().map(Addon::from_dynamic).collect())
    }

    /// The Addon of `name` as it is, or created with `source` and `checksum` when missing.
    pub async fn get_or_create(
        &self,
        name: &str,
        source: &str,
        checksum: &str,
    ) -> Result<Addon, kube::Error> {
        if let Some(a) = self.get(name).await? {
            return Ok(a);
        }
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "k1s.io/v1",
            "kind": "Addon",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"source": source, "checksum": checksum},
        }))
        .expect("an addon is well formed");
        match self.api.create(&PostParams::default(), &obj).await {
            Ok(o) => Ok(Addon::from_dynamic(&o)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(self
                .get(name)
                .await?
                .unwrap_or_else(|| Addon::from_dynamic(&obj))),
            Err(e) => Err(e),
        }
    }

    pub async fn set_spec(
        &self,
        name: &str,
        source: &str,
        checksum: &str,
    ) -> Result<(), kube::Error> {
        let patch = json!({"spec": {"source": source, "checksum": checksum}});
        self.api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
    }

    pub async fn set_status(
        &self,
        name: &str,
        objects: &[ObjectRef],
        error: &str,
    ) -> Result<(), kube::Error> {
        let patch = json!({"status": {"objects": objects, "error": error}});
        self.api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .map(|_| ())
    }

    pub async fn delete(&self, name: &str) -> Result<(), kube::Error> {
        match self.api.delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Best effort: an Event that cannot be written is logged at debug, never an error.
    pub async fn event(&self, addon: &Addon, warning: bool, reason: &str, message: String) {
        let now = k8s_openapi::jiff::Timestamp::now();
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{:x}", addon.name, now.as_nanosecond())),
                namespace: Some(NAMESPACE.into()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("k1s.io/v1".into()),
                kind: Some("Addon".into()),
                name: Some(addon.name.clone()),
                namespace: Some(NAMESPACE.into()),
                uid: addon.uid.clone(),
                ..Default::default()
            },
            reason: Some(reason.into()),
            message: Some(message),
            type_: Some(if warning { "Warning" } else { "Normal" }.into()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            source: Some(EventSource {
                component: Some(COMPONENT.into()),
                host: None,
            }),
            reporting_component: Some(COMPONENT.into()),
            reporting_instance: Some("k1s".into()),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), NAMESPACE);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!(error = %e, reason, "writing an event");
        }
    }
}
