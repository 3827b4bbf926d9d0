//! Hand-written merge semantics for the built-in types.
//!
//! Kubernetes keeps the strategic-merge-patch strategies (`patchStrategy`,
//! `patchMergeKey`) and the server-side-apply list types
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`) in its Go struct
//! tags and OpenAPI extensions. Neither is available at run time here, so the
//! table below restates the ones that matter. Types are named, and a named type
//! (such as `PodSpec`) is reused wherever it appears, so the pod template inside
//! a Deployment, a Job or a CronJob gets the same treatment as a bare Pod.

use serde_json::{Map, Value};

/// How a strategic merge patch combines a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Strategy {
    /// The patch's list replaces the original one.
    Replace,
    /// A list of primitives merged as a set (e.g. `metadata.finalizers`).
    MergeSet,
    /// A list of objects merged item by item on the named key.
    MergeKey(&'static str),
}

/// How server-side apply treats a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListType {
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ListSpec {
    /// Named type of the items, `None` for items without a table.
    pub elem: Option<&'static str>,
    pub strategy: Strategy,
    /// Apply's list-map keys; empty means the list is a set or atomic.
    pub keys: &'static [&'static str],
}

impl ListSpec {
    pub(crate) fn list_type(&self) -> ListType {
        if !self.keys.is_empty() {
            ListType::Map(self.keys)
        } else if self.strategy == Strategy::MergeSet {
            ListType::Set
        } else {
            ListType::Atomic
        }
    }

    pub(crate) fn elem_node(&self) -> Node {
        match self.elem {
            Some(t) => Node::Struct(t),
            None => Node::Open,
        }
    }
}

/// What is known about the value found at one place in an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// A struct whose fields are in the table and which always serialises
    /// (a non-pointer Go struct): creating it does not own the struct itself.
    Struct(&'static str),
    /// A struct of a built-in type without a table entry: maps merge field
    /// by field, lists are atomic.
    Open,
    /// A string-keyed map (labels, annotations, data): every key is a field
    /// of its own.
    Map,
    /// Owned and replaced as a whole by apply (e.g. a label selector).
    Atomic,
    /// A list with known semantics.
    List(ListSpec),
}

impl Node {
    /// Schema of the value stored under `name` inside a value of this node.
    pub(crate) fn field(self, name: &str) -> Node {
        match self {
            Node::Struct(ty) => struct_field(ty, name),
            Node::Open => Node::Open,
            Node::Map => Node::Map,
            Node::Atomic => Node::Atomic,
            Node::List(spec) => spec.elem_node(),
        }
    }

    /// Whether the keys of this map are struct fields (as opposed to the
    /// keys of a map type); apply owns every map key but only the leaves of
    /// a struct.
    pub(crate) fn is_struct(self) -> bool {
        matches!(self, Node::Struct(_) | Node::Open)
    }

    /// The list semantics for a list stored at this node.
    pub(crate) fn list_spec(self) -> ListSpec {
        match self {
            Node::List(spec) => spec,
            _ => ListSpec {
                elem: None,
                strategy: Strategy::Replace,
                keys: &[],
            },
        }
    }
}

const fn keyed(
    merge_key: &'static str,
    keys: &'static [&'static str],
    elem: Option<&'static str>,
) -> Node {
    Node::List(ListSpec {
        elem,
        strategy: Strategy::MergeKey(merge_key),
        keys,
    })
}

const SET: Node = Node::List(ListSpec {
    elem: None,
    strategy: Strategy::MergeSet,
    keys: &[],
});

const CONDITIONS: Node = keyed("type", &["type"], None);

fn struct_field(ty: &str, name: &str) -> Node {
    // Fields every top-level object and every embedded template shares.
    if name == "metadata" && (ty.starts_with("Root") || ty.ends_with("TemplateSpec")) {
        return Node::Struct("ObjectMeta");
    }
    match (ty, name) {
        ("RootCustom", _) => Node::Open,
        ("RootPod", "spec") => Node::Struct("PodSpec"),
        ("RootPod", "status") => Node::Struct("PodStatus"),
        ("RootWorkload", "spec") => Node::Struct("WorkloadSpec"),
        ("RootController", "spec") => Node::Struct("ControllerSpec"),
        ("RootJob", "spec") => Node::Struct("JobSpec"),
        ("RootCronJob", "spec") => Node::Struct("CronJobSpec"),
        ("RootPodTemplate", "template") => Node::Struct("PodTemplateSpec"),
        ("RootService", "spec") => Node::Struct("ServiceSpec"),
        ("RootNode", "spec") => Node::Struct("NodeSpec"),
        ("RootNode", "status") => Node::Struct("NodeStatus"),
        ("RootServiceAccount", "secrets") => keyed("name", &["name"], None),
        ("RootWebhooks", "webhooks") => keyed("name", &["name"], None),
        ("RootData", "data" | "binaryData" | "stringData") => Node::Map,
        (t, "status") if t.starts_with("Root") => Node::Struct("Status"),

        ("ObjectMeta", "finalizers") => SET,
        ("ObjectMeta", "ownerReferences") => keyed("uid", &["uid"], None),
        ("ObjectMeta", "labels" | "annotations") => Node::Map,

        ("PodTemplateSpec", "spec") => Node::Struct("PodSpec"),
        ("JobTemplateSpec", "spec") => Node::Struct("JobSpec"),
        ("WorkloadSpec" | "ControllerSpec" | "JobSpec", "template") => {
            Node::Struct("PodTemplateSpec")
        }
        ("WorkloadSpec" | "JobSpec", "selector") => Node::Atomic,
        ("WorkloadSpec", "strategy" | "updateStrategy") => Node::Struct("Plain"),
        ("ControllerSpec", "selector") => Node::Map,
        ("CronJobSpec", "jobTemplate") => Node::Struct("JobTemplateSpec"),

        ("PodSpec", "containers" | "initContainers" | "ephemeralContainers") => {
            keyed("name", &["name"], Some("Container"))
        }
        ("PodSpec", "volumes") => keyed("name", &["name"], None),
        ("PodSpec", "imagePullSecrets" | "resourceClaims" | "schedulingGates") => {
            keyed("name", &["name"], None)
        }
        ("PodSpec", "hostAliases") => keyed("ip", &["ip"], None),
        ("PodSpec", "topologySpreadConstraints") => {
            keyed("topologyKey", &["topologyKey", "whenUnsatisfiable"], None)
        }
        ("PodSpec", "nodeSelector") => Node::Map,

        ("Container", "env") => keyed("name", &["name"], None),
        ("Container", "ports") => keyed("containerPort", &["containerPort", "protocol"], None),
        ("Container", "volumeMounts") => keyed("mountPath", &["mountPath"], None),
        ("Container", "volumeDevices") => keyed("devicePath", &["devicePath"], None),
        ("Container", "resources") => Node::Struct("Resources"),
        ("Resources", "claims") => keyed("name", &["name"], None),
        ("Resources", "limits" | "requests") => Node::Map,

        ("ServiceSpec", "ports") => keyed("port", &["port", "protocol"], None),
        ("ServiceSpec", "selector") => Node::Map,

        ("NodeSpec", "podCIDRs") => SET,
        ("NodeStatus", "addresses") => keyed("type", &["type"], None),
        ("NodeStatus", "conditions") => CONDITIONS,
        ("NodeStatus", "capacity" | "allocatable") => Node::Map,

        ("Status", "conditions") => CONDITIONS,
        ("PodStatus", "conditions") => CONDITIONS,
        ("PodStatus", "podIPs" | "hostIPs") => keyed("ip", &["ip"], None),
        ("PodStatus", "resourceClaimStatuses") => keyed("name", &["name"], None),

        _ => Node::Open,
    }
}

/// Schema root for an object of the given group and kind, or `None` when
/// the kind is not built in (a custom resource).
pub(crate) fn builtin_root(group: &str, kind: &str) -> Option<Node> {
    let name = match (group, kind) {
        ("", "Pod") => "RootPod",
        ("", "ReplicationController") => "RootController",
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => "RootWorkload",
        ("batch", "Job") => "RootJob",
        ("batch", "CronJob") => "RootCronJob",
        ("", "PodTemplate") => "RootPodTemplate",
        ("", "Service") => "RootService",
        ("", "Node") => "RootNode",
        ("", "ServiceAccount") => "RootServiceAccount",
        ("", "ConfigMap" | "Secret") => "RootData",
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => "RootWebhooks",
        (
            "",
            "Namespace"
            | "PersistentVolumeClaim"
            | "PersistentVolume"
            | "Endpoints"
            | "Event"
            | "LimitRange"
            | "ResourceQuota"
            | "ComponentStatus"
            | "Binding",
        )
        | ("apps", "ControllerRevision")
        | (
            "rbac.authorization.k8s.io",
            "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding",
        )
        | (
            "networking.k8s.io",
            "Ingress" | "IngressClass" | "NetworkPolicy" | "IPAddress" | "ServiceCIDR",
        )
        | ("policy", "PodDisruptionBudget")
        | ("autoscaling", "HorizontalPodAutoscaler")
        | ("coordination.k8s.io", "Lease")
        | ("discovery.k8s.io", "EndpointSlice")
        | (
            "storage.k8s.io",
            "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment" | "CSIStorageCapacity",
        )
        | ("scheduling.k8s.io", "PriorityClass")
        | ("node.k8s.io", "RuntimeClass")
        | (
            "admissionregistration.k8s.io",
            "ValidatingAdmissionPolicy" | "ValidatingAdmissionPolicyBinding",
        )
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("apiregistration.k8s.io", "APIService")
        | ("certificates.k8s.io", "CertificateSigningRequest")
        | ("events.k8s.io", "Event")
        | ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration") => {
            "RootGeneric"
        }
        _ => return None,
    };
    Some(Node::Struct(name))
}

/// Schema root for apply and ownership tracking. Custom resources get a
/// typed `metadata` and open structs elsewhere: objects merge field by
/// field and lists are atomic, as for a structural schema without list
/// annotations.
pub(crate) fn root(group: &str, kind: &str) -> Node {
    builtin_root(group, kind).unwrap_or(Node::Struct("RootCustom"))
}

/// Value a list-map key takes when the item omits it (the API server
/// defaults port protocols to TCP before keys are computed).
fn key_default(key: &str) -> Option<Value> {
    (key == "protocol").then(|| Value::String("TCP".to_owned()))
}

/// The identity of an item of an associative list: its key fields sorted by
/// name, as compact JSON (the `k:` form of FieldsV1). `None` when the item
/// is not an object or lacks a key without a default.
pub(crate) fn item_key(keys: &[&str], item: &Value) -> Option<String> {
    let obj = item.as_object()?;
    let mut names: Vec<&str> = keys.to_vec();
    names.sort_unstable();
    let mut out = Map::new();
    for k in names {
        let v = match obj.get(k) {
            Some(v) if !v.is_null() => v.clone(),
            _ => key_default(k)?,
        };
        out.insert(k.to_owned(), v);
    }
    Some(Value::Object(out).to_string())
}
