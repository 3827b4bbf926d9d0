//! The table from (group, version, kind) to the k8s-openapi type whose
//! schemars implementation describes it.
//!
//! Every built-in kind the server may serve is listed here; kinds that are
//! only reachable as subresources (Scale, Eviction, Binding, TokenRequest)
//! are listed too so their paths can reference them.

use k8s_openapi::api::{
    admissionregistration::v1 as admissionregistration_v1, apps::v1 as apps_v1,
    authentication::v1 as authentication_v1, authorization::v1 as authorization_v1,
    autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2, batch::v1 as batch_v1,
    certificates::v1 as certificates_v1, coordination::v1 as coordination_v1, core::v1 as core_v1,
    discovery::v1 as discovery_v1, events::v1 as events_v1, flowcontrol::v1 as flowcontrol_v1,
    networking::v1 as networking_v1, node::v1 as node_v1, policy::v1 as policy_v1,
    rbac::v1 as rbac_v1, scheduling::v1 as scheduling_v1, storage::v1 as storage_v1,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions_v1;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta_v1;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apiregistration_v1;
use k8s_openapi::Resource;
use schemars::{JsonSchema, SchemaGenerator};

/// Registers a type's schema (and everything it references) with the
/// generator and returns its definition name.
pub(super) type Register = fn(&mut SchemaGenerator) -> String;

/// One row of the table.
pub(super) struct Entry {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub register: Register,
}

fn register<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

macro_rules! table {
    ($($ty:ty),* $(,)?) => {
        &[$(Entry {
            group: <$ty as Resource>::GROUP,
            version: <$ty as Resource>::VERSION,
            kind: <$ty as Resource>::KIND,
            register: register::<$ty>,
        }),*]
    };
}

/// Every built-in kind with a schema.
pub(super) static KINDS: &[Entry] = table![
    // core/v1
    core_v1::Binding,
    core_v1::ComponentStatus,
    core_v1::ConfigMap,
    core_v1::Endpoints,
    core_v1::Event,
    core_v1::LimitRange,
    core_v1::Namespace,
    core_v1::Node,
    core_v1::PersistentVolume,
    core_v1::PersistentVolumeClaim,
    core_v1::Pod,
    core_v1::PodTemplate,
    core_v1::ReplicationController,
    core_v1::ResourceQuota,
    core_v1::Secret,
    core_v1::Service,
    core_v1::ServiceAccount,
    // apps/v1
    apps_v1::ControllerRevision,
    apps_v1::DaemonSet,
    apps_v1::Deployment,
    apps_v1::ReplicaSet,
    apps_v1::StatefulSet,
    // batch/v1
    batch_v1::CronJob,
    batch_v1::Job,
    // autoscaling
    autoscaling_v1::HorizontalPodAutoscaler,
    autoscaling_v1::Scale,
    autoscaling_v2::HorizontalPodAutoscaler,
    // coordination.k8s.io/v1
    coordination_v1::Lease,
    // discovery.k8s.io/v1
    discovery_v1::EndpointSlice,
    // events.k8s.io/v1
    events_v1::Event,
    // networking.k8s.io/v1
    networking_v1::IPAddress,
    networking_v1::Ingress,
    networking_v1::IngressClass,
    networking_v1::NetworkPolicy,
    networking_v1::ServiceCIDR,
    // policy/v1
    policy_v1::Eviction,
    policy_v1::PodDisruptionBudget,
    // rbac.authorization.k8s.io/v1
    rbac_v1::ClusterRole,
    rbac_v1::ClusterRoleBinding,
    rbac_v1::Role,
    rbac_v1::RoleBinding,
    // storage.k8s.io/v1
    storage_v1::CSIDriver,
    storage_v1::CSINode,
    storage_v1::CSIStorageCapacity,
    storage_v1::StorageClass,
    storage_v1::VolumeAttachment,
    // scheduling.k8s.io/v1
    scheduling_v1::PriorityClass,
    // node.k8s.io/v1
    node_v1::RuntimeClass,
    // apiextensions.k8s.io/v1
    apiextensions_v1::CustomResourceDefinition,
    // other GA groups a server may choose to serve
    admissionregistration_v1::MutatingWebhookConfiguration,
    admissionregistration_v1::ValidatingAdmissionPolicy,
    admissionregistration_v1::ValidatingAdmissionPolicyBinding,
    admissionregistration_v1::ValidatingWebhookConfiguration,
    apiregistration_v1::APIService,
    authentication_v1::SelfSubjectReview,
    authentication_v1::TokenRequest,
    authentication_v1::TokenReview,
    authorization_v1::LocalSubjectAccessReview,
    authorization_v1::SelfSubjectAccessReview,
    authorization_v1::SelfSubjectRulesReview,
    authorization_v1::SubjectAccessReview,
    certificates_v1::CertificateSigningRequest,
    flowcontrol_v1::FlowSchema,
    flowcontrol_v1::PriorityLevelConfiguration,
];

/// Meta types every document carries (request and response bodies of the
/// generic operations), as (name, register).
pub(super) fn meta_types() -> [(&'static str, Register); 8] {
    [
        ("Status", register::<meta_v1::Status>),
        ("DeleteOptions", register::<meta_v1::DeleteOptions>),
        ("APIResourceList", register::<meta_v1::APIResourceList>),
        ("APIGroup", register::<meta_v1::APIGroup>),
        ("APIGroupList", register::<meta_v1::APIGroupList>),
        ("APIVersions", register::<meta_v1::APIVersions>),
        (
            "WatchEvent",
            register::<meta_v1::WatchEvent<meta_v1::Status>>,
        ),
        ("Patch", register::<meta_v1::Patch>),
    ]
}

/// The kind a subresource reads and writes, when it is not the parent kind:
/// (group, version, kind).
pub(super) fn subresource_kind(
    parent_group: &str,
    parent_kind: &str,
    subresource: &str,
) -> Option<(&'static str, &'static str, &'static str)> {
    match (parent_group, parent_kind, subresource) {
        (_, _, "scale") => Some(("autoscaling", "v1", "Scale")),
        ("", "Pod", "eviction") => Some(("policy", "v1", "Eviction")),
        ("", "Pod", "binding") => Some(("", "v1", "Binding")),
        ("", "ServiceAccount", "token") => Some(("authentication.k8s.io", "v1", "TokenRequest")),
        _ => None,
    }
}
