//! The catalog of served resources: the built-in kinds and the custom resources of the
//! CustomResourceDefinitions in the store. Discovery, routing, OpenAPI and storage keys all
//! read it; nothing here touches the store.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// Subresources served by the generic handlers: "status", "scale"; others (binding,
    /// eviction, log, exec…) are listed for discovery and handled by name.
    pub subresources: Vec<String>,
    /// For custom resources: the CRD version's schema, printer columns, scale paths.
    pub custom: Option<Arc<CustomInfo>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CustomInfo {
    pub schema: Option<Value>,
    pub printer_columns: Value,
    pub preserve_unknown: bool,
    pub spec_replicas_path: Option<String>,
    pub status_replicas_path: Option<String>,
    pub label_selector_path: Option<String>,
    pub storage_version: String,
    /// The version's CEL validation rules, compiled once.
    pub cel: Arc<super::cel::RuleSet>,
}

impl ResourceInfo {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
    pub fn has_status(&self) -> bool {
        self.subresources.iter().any(|s| s == "status")
    }
    pub fn has_scale(&self) -> bool {
        self.subresources.iter().any(|s| s == "scale")
    }
    /// Storage key prefix: `/registry/<group>/<resource>/` (core group spelled "core").
    pub fn key_prefix(&self) -> String {
        let g = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("/registry/{}/{}/", g, self.plural)
    }
    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("{}{}/{}", self.key_prefix(), ns, name),
            _ => format!("{}{}", self.key_prefix(), name),
        }
    }
    pub fn list_prefix(&self, ns: Option<&str>) -> String {
        match ns {
            Some(ns) if self.namespaced => format!("{}{}/", self.key_prefix(), ns),
            _ => self.key_prefix(),
        }
    }
    pub fn is_custom(&self) -> bool {
        self.custom.is_some()
    }
}

struct Builtin(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static str,
    &'static str,
    &'static str,
);

// group, version, kind, plural, namespaced, short names, categories, subresources
// (comma separated). Verbs are the full set unless listed in `special_verbs`.
#[rustfmt::skip]
const BUILTINS: &[Builtin] = &[
    Builtin("", "v1", "Binding", "bindings", true, "", "", ""),
    Builtin("", "v1", "ConfigMap", "configmaps", true, "cm", "", ""),
    Builtin("", "v1", "Endpoints", "endpoints", true, "ep", "", ""),
    Builtin("", "v1", "Event", "events", true, "ev", "", ""),
    Builtin("", "v1", "LimitRange", "limitranges", true, "limits", "", ""),
    Builtin("", "v1", "Namespace", "namespaces", false, "ns", "", "status,finalize"),
    Builtin("", "v1", "Node", "nodes", false, "no", "", "status"),
    Builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true, "pvc", "", "status"),
    Builtin("", "v1", "PersistentVolume", "persistentvolumes", false, "pv", "", "status"),
    Builtin("", "v1", "Pod", "pods", true, "po", "all", "status,binding,eviction,log,exec,attach,portforward"),
    Builtin("", "v1", "PodTemplate", "podtemplates", true, "", "", ""),
    Builtin("", "v1", "ReplicationController", "replicationcontrollers", true, "rc", "all", "status,scale"),
    Builtin("", "v1", "ResourceQuota", "resourcequotas", true, "quota", "", "status"),
    Builtin("", "v1", "Secret", "secrets", true, "", "", ""),
    Builtin("", "v1", "ServiceAccount", "serviceaccounts", true, "sa", "", "token"),
    Builtin("", "v1", "Service", "services", true, "svc", "all", "status"),
    Builtin("apps", "v1", "ControllerRevision", "controllerrevisions", true, "", "", ""),
    Builtin("apps", "v1", "DaemonSet", "daemonsets", true, "ds", "all", "status"),
    Builtin("apps", "v1", "Deployment", "deployments", true, "deploy", "all", "status,scale"),
    Builtin("apps", "v1", "ReplicaSet", "replicasets", true, "rs", "all", "status,scale"),
    Builtin("apps", "v1", "StatefulSet", "statefulsets", true, "sts", "all", "status,scale"),
    Builtin("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", true, "hpa", "all", "status"),
    Builtin("batch", "v1", "CronJob", "cronjobs", true, "cj", "all", "status"),
    Builtin("batch", "v1", "Job", "jobs", true, "", "all", "status"),
    Builtin("coordination.k8s.io", "v1", "Lease", "leases", true, "", "", ""),
    Builtin("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, "", "", ""),
    Builtin("events.k8s.io", "v1", "Event", "events", true, "ev", "", ""),
    Builtin("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false, "", "", ""),
    Builtin("networking.k8s.io", "v1", "Ingress", "ingresses", true, "ing", "", "status"),
    Builtin("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true, "netpol", "", ""),
    Builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", true, "pdb", "", "status"),
    Builtin("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, "", "", ""),
    Builtin("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, "", "", ""),
    Builtin("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, "", "", ""),
    Builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true, "", "", ""),
    Builtin("storage.k8s.io", "v1", "CSIDriver", "csidrivers", false, "", "", ""),
    Builtin("storage.k8s.io", "v1", "CSINode", "csinodes", false, "", "", ""),
    Builtin("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", true, "", "", ""),
    Builtin("storage.k8s.io", "v1", "StorageClass", "storageclasses", false, "sc", "", ""),
    Builtin("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", false, "", "", "status"),
    Builtin("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", false, "pc", "", ""),
    Builtin("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", false, "", "", ""),
    Builtin("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", false, "crd,crds", "api-extensions", "status"),
    Builtin("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", false, "", "", ""),
    Builtin("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false, "", "", ""),
    Builtin("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", false, "", "", ""),
    Builtin("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", false, "", "", ""),
    Builtin("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", true, "", "", ""),
];

/// Resources that answer a question instead of storing an object (create only).
pub fn is_review(group: &str) -> bool {
    group == "authentication.k8s.io" || group == "authorization.k8s.io"
}

fn split(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

fn builtin_verbs(group: &str, plural: &str) -> Vec<String> {
    let v: &[&str] = match (group, plural) {
        ("", "bindings") => &["create"],
        (g, _) if is_review(g) => &["create"],
        ("", "namespaces") => &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        _ => ALL_VERBS,
    };
    v.iter().map(|s| s.to_string()).collect()
}

pub fn builtins() -> Vec<ResourceInfo> {
    BUILTINS
        .iter()
        .map(|b| ResourceInfo {
            group: b.0.into(),
            version: b.1.into(),
            kind: b.2.into(),
            list_kind: format!("{}List", b.2),
            plural: b.3.into(),
            singular: b.2.to_lowercase(),
            namespaced: b.4,
            short_names: split(b.5),
            categories: split(b.6),
            verbs: builtin_verbs(b.0, b.3),
            subresources: split(b.7),
            custom: None,
        })
        .collect()
}

/// Group preference order for discovery, as upstream lists them.
pub const GROUP_ORDER: &[&str] = &[
    "",
    "apiregistration.k8s.io",
    "apps",
    "events.k8s.io",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "autoscaling",
    "batch",
    "certificates.k8s.io",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "storage.k8s.io",
    "admissionregistration.k8s.io",
    "apiextensions.k8s.io",
    "scheduling.k8s.io",
    "coordination.k8s.io",
    "node.k8s.io",
    "discovery.k8s.io",
];

/// Built-in kinds plus the custom resources of established CRDs. Readers take a snapshot
/// (`Arc<Vec<..>>`) so request handling never holds the lock.
pub struct Catalog {
    inner: RwLock<Arc<CatalogData>>,
}

#[derive(Default)]
pub struct CatalogData {
    pub resources: Vec<Arc<ResourceInfo>>,
    by_path: HashMap<(String, String, String), Arc<ResourceInfo>>,
}

impl CatalogData {
    fn build(resources: Vec<Arc<ResourceInfo>>) -> CatalogData {
        let by_path = resources
            .iter()
            .map(|r| {
                (
                    (r.group.clone(), r.version.clone(), r.plural.clone()),
                    r.clone(),
                )
            })
            .collect();
        CatalogData { resources, by_path }
    }
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.by_path
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceInfo>> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.kind == kind)
            .cloned()
    }
    /// The served group-versions, in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for r in &self.resources {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, vs)) => {
                    if !vs.contains(&r.version) {
                        vs.push(r.version.clone())
                    }
                }
                None => out.push((r.group.clone(), vec![r.version.clone()])),
            }
        }
        out.sort_by_key(|(g, _)| {
            GROUP_ORDER
                .iter()
                .position(|x| x == g)
                .unwrap_or(usize::MAX)
        });
        out
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

impl Catalog {
    pub fn new() -> Catalog {
        let res = builtins().into_iter().map(Arc::new).collect();
        Catalog {
            inner: RwLock::new(Arc::new(CatalogData::build(res))),
        }
    }
    pub fn snapshot(&self) -> Arc<CatalogData> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
    /// Replace the custom resources with those of `crds` (CRD objects as JSON).
    pub fn set_custom(&self, crds: &[Value]) {
        let mut res: Vec<Arc<ResourceInfo>> = builtins().into_iter().map(Arc::new).collect();
        for crd in crds {
            res.extend(custom_resources(crd).into_iter().map(Arc::new));
        }
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(CatalogData::build(res));
    }
}

/// The served versions of one CRD as resources. A CRD is served once it is not being deleted.
pub fn custom_resources(crd: &Value) -> Vec<ResourceInfo> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let (Some(kind), Some(plural)) = (names["kind"].as_str(), names["plural"].as_str()) else {
        return vec![];
    };
    let storage_version = spec["versions"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["storage"].as_bool() == Some(true)))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_string();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = vec![];
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let Some(version) = v["name"].as_str() else {
            continue;
        };
        let mut subresources = vec![];
        if v["subresources"]["status"].is_object() {
            subresources.push("status".to_string());
        }
        let scale = &v["subresources"]["scale"];
        if scale.is_object() {
            subresources.push("scale".to_string());
        }
        let schema = v["schema"]["openAPIV3Schema"].clone();
        out.push(ResourceInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            list_kind: names["listKind"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| format!("{kind}List")),
            plural: plural.into(),
            singular: names["singular"]
                .as_str()
                .map(String::from)
                .unwrap_or_else(|| kind.to_lowercase()),
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: strs(&names["shortNames"]),
            categories: strs(&names["categories"]),
            verbs: ALL_VERBS.iter().map(|s| s.to_string()).collect(),
            subresources,
            custom: Some(Arc::new(CustomInfo {
                cel: Arc::new(super::cel::RuleSet::new(&schema)),
                preserve_unknown: schema["x-kubernetes-preserve-unknown-fields"].as_bool()
                    == Some(true),
                schema: if schema.is_null() { None } else { Some(schema) },
                printer_columns: v["additionalPrinterColumns"].clone(),
                spec_replicas_path: scale["specReplicasPath"].as_str().map(String::from),
                status_replicas_path: scale["statusReplicasPath"].as_str().map(String::from),
                label_selector_path: scale["labelSelectorPath"].as_str().map(String::from),
                storage_version: storage_version.clone(),
            })),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_is_well_formed() {
        let all = builtins();
        for r in &all {
            for w in r
                .short_names
                .iter()
                .chain(&r.categories)
                .chain(&r.subresources)
            {
                assert!(
                    !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                    "{}: {w:?}",
                    r.plural
                );
            }
            let n = all
                .iter()
                .filter(|o| o.group == r.group && o.version == r.version && o.plural == r.plural)
                .count();
            assert_eq!(n, 1, "{} is listed once", r.plural);
        }
        let deploy = all.iter().find(|r| r.plural == "deployments").unwrap();
        assert_eq!(deploy.subresources, ["status", "scale"]);
        assert_eq!(deploy.short_names, ["deploy"]);
    }
}
