//! The default RBAC policy every cluster starts with, as upstream's bootstrap policy defines
//! it: the user-facing roles (`cluster-admin`, `admin`, `edit`, `view`, the last three
//! aggregated from the `aggregate-to-*` roles), the discovery and self-review roles bound to
//! every user, and the roles of the control-plane components. Data only; `bootstrap` writes
//! it.

use super::rules::Rule;

pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
pub const BOOTSTRAPPING: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
pub const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
pub const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
pub const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// A default ClusterRole.
pub struct DefaultRole {
    pub name: &'static str,
    /// Labels beyond `kubernetes.io/bootstrapping` (the aggregation labels).
    pub labels: &'static [&'static str],
    pub rules: Vec<Rule>,
    /// `matchLabels` selectors (label = "true") of an aggregated role; its rules are filled
    /// in by the aggregation controller.
    pub aggregate_from: &'static [&'static str],
}

/// Who a default ClusterRoleBinding binds.
pub enum Who {
    User(&'static str),
    Group(&'static str),
    ServiceAccount(&'static str, &'static str),
}

/// A default ClusterRoleBinding, named after its ClusterRole.
pub struct DefaultBinding {
    pub role: &'static str,
    pub subjects: Vec<Who>,
}

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const EVENTS: &[&str] = &["create", "patch", "update"];

fn r(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Rule {
    Rule::resource(groups, resources, verbs)
}

fn role(name: &'static str, rules: Vec<Rule>) -> DefaultRole {
    DefaultRole {
        name,
        labels: &[],
        rules,
        aggregate_from: &[],
    }
}

fn aggregated(
    name: &'static str,
    labels: &'static [&'static str],
    from: &'static [&'static str],
) -> DefaultRole {
    DefaultRole {
        name,
        labels,
        rules: vec![],
        aggregate_from: from,
    }
}

fn labelled(name: &'static str, label: &'static [&'static str], rules: Vec<Rule>) -> DefaultRole {
    DefaultRole {
        name,
        labels: label,
        rules,
        aggregate_from: &[],
    }
}

/// What `view` (and so `edit` and `admin`) may read: everything in a namespace but secrets
/// and the RBAC objects.
fn view_rules() -> Vec<Rule> {
    vec![
        r(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
            READ,
        ),
        r(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
            READ,
        ),
        r(&[""], &["namespaces"], READ),
        r(&["discovery.k8s.io"], &["endpointslices"], READ),
        r(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
            READ,
        ),
        r(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        r(
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            READ,
        ),
        r(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        r(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
    ]
}

/// What `edit` adds: writing workloads, and reading secrets and the pods' streams.
fn edit_rules() -> Vec<Rule> {
    vec![
        r(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
            READ,
        ),
        r(&[""], &["serviceaccounts"], &["impersonate"]),
        r(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
            WRITE,
        ),
        r(&[""], &["pods/eviction"], &["create"]),
        r(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
            WRITE,
        ),
        r(&[""], &["serviceaccounts/token"], &["create"]),
        r(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
            WRITE,
        ),
        r(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        r(&["batch"], &["cronjobs", "jobs"], WRITE),
        r(&["policy"], &["poddisruptionbudgets"], WRITE),
        r(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            WRITE,
        ),
        r(&["coordination.k8s.io"], &["leases"], RW),
    ]
}

/// What `admin` adds: roles and bindings in the namespace, and access reviews there.
fn admin_rules() -> Vec<Rule> {
    vec![
        r(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews"],
            &["create"],
        ),
        r(
            &["rbac.authorization.k8s.io"],
            &["rolebindings", "roles"],
            RW,
        ),
    ]
}

fn scheduler_rules() -> Vec<Rule> {
    vec![
        r(&["", "events.k8s.io"], &["events"], EVENTS),
        r(&["coordination.k8s.io"], &["leases"], &["create"]),
        r(&["coordination.k8s.io"], &["leases"], &["get", "update"]).names(&["kube-scheduler"]),
        r(&[""], &["nodes"], READ),
        r(&[""], &["pods"], &["delete", "get", "list", "watch"]),
        r(&[""], &["bindings", "pods/binding"], &["create"]),
        r(&[""], &["pods/status"], &["patch", "update"]),
        r(&[""], &["replicationcontrollers", "services"], READ),
        r(&["apps", "extensions"], &["replicasets"], READ),
        r(&["apps"], &["statefulsets"], READ),
        r(&["policy"], &["poddisruptionbudgets"], READ),
        r(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            READ,
        ),
        r(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        r(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
        r(
            &["storage.k8s.io"],
            &["csinodes", "csidrivers", "csistoragecapacities"],
            READ,
        ),
        r(&[""], &["namespaces"], READ),
    ]
}

fn controller_manager_rules() -> Vec<Rule> {
    vec![
        r(&["", "events.k8s.io"], &["events"], EVENTS),
        r(&["coordination.k8s.io"], &["leases"], &["create"]),
        r(&["coordination.k8s.io"], &["leases"], &["get", "update"])
            .names(&["kube-controller-manager"]),
        r(&[""], &["secrets", "serviceaccounts"], &["create"]),
        r(&[""], &["secrets"], &["delete"]),
        r(
            &[""],
            &["configmaps", "namespaces", "secrets", "serviceaccounts"],
            &["get"],
        ),
        r(&[""], &["secrets", "serviceaccounts"], &["update"]),
        r(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        r(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
        r(&["*"], &["*"], &["list", "watch"]),
        r(&[""], &["serviceaccounts/token"], &["create"]),
    ]
}

fn node_rules() -> Vec<Rule> {
    vec![
        r(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        r(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews", "subjectaccessreviews"],
            &["create"],
        ),
        r(&[""], &["services"], READ),
        r(&[""], &["nodes"], &["create", "get", "list", "watch"]),
        r(&[""], &["nodes/status"], &["patch", "update"]),
        r(&[""], &["nodes"], &["patch", "update"]),
        r(&[""], &["events"], EVENTS),
        r(&[""], &["pods"], READ),
        r(&[""], &["pods"], &["create", "delete"]),
        r(&[""], &["pods/status"], &["patch", "update"]),
        r(&[""], &["pods/eviction"], &["create"]),
        r(&[""], &["configmaps", "secrets"], READ),
        r(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            &["get"],
        ),
        r(&[""], &["endpoints"], &["get"]),
        r(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        ),
        r(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "delete", "get", "patch", "update"],
        ),
        r(&["storage.k8s.io"], &["volumeattachments"], &["get"]),
        r(&[""], &["serviceaccounts/token"], &["create"]),
        r(
            &[""],
            &["persistentvolumeclaims/status"],
            &["get", "patch", "update"],
        ),
        r(&["storage.k8s.io"], &["csidrivers"], READ),
        r(
            &["storage.k8s.io"],
            &["csinodes"],
            &["create", "delete", "get", "patch", "update"],
        ),
        r(&["node.k8s.io"], &["runtimeclasses"], READ),
    ]
}

pub fn cluster_roles() -> Vec<DefaultRole> {
    let get = &["get"];
    vec![
        role(
            "cluster-admin",
            vec![r(&["*"], &["*"], &["*"]), Rule::urls(&["*"], &["*"])],
        ),
        aggregated("admin", &[], &[TO_ADMIN]),
        aggregated("edit", &[TO_ADMIN], &[TO_EDIT]),
        aggregated("view", &[TO_EDIT], &[TO_VIEW]),
        labelled("system:aggregate-to-admin", &[TO_ADMIN], admin_rules()),
        labelled("system:aggregate-to-edit", &[TO_EDIT], edit_rules()),
        labelled("system:aggregate-to-view", &[TO_VIEW], view_rules()),
        role(
            "system:discovery",
            vec![Rule::urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                get,
            )],
        ),
        role(
            "system:basic-user",
            vec![
                r(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                r(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        role(
            "system:public-info-viewer",
            vec![Rule::urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                get,
            )],
        ),
        role(
            "system:monitoring",
            vec![Rule::urls(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
                get,
            )],
        ),
        role(
            "system:auth-delegator",
            vec![
                r(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                r(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
            ],
        ),
        role("system:node", node_rules()),
        role(
            "system:node-proxier",
            vec![
                r(&[""], &["endpoints", "services"], &["list", "watch"]),
                r(&[""], &["nodes"], READ),
                r(&["", "events.k8s.io"], &["events"], EVENTS),
                r(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["list", "watch"],
                ),
            ],
        ),
        role(
            "system:kube-dns",
            vec![r(&[""], &["endpoints", "services"], &["list", "watch"])],
        ),
        role("system:kube-scheduler", scheduler_rules()),
        role("system:kube-controller-manager", controller_manager_rules()),
        role(
            "system:service-account-issuer-discovery",
            vec![Rule::urls(
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
                get,
            )],
        ),
    ]
}

pub fn cluster_role_bindings() -> Vec<DefaultBinding> {
    use Who::*;
    let b = |role, subjects| DefaultBinding { role, subjects };
    vec![
        b("cluster-admin", vec![Group("system:masters")]),
        b("system:discovery", vec![Group("system:authenticated")]),
        b("system:basic-user", vec![Group("system:authenticated")]),
        b(
            "system:public-info-viewer",
            vec![
                Group("system:authenticated"),
                Group("system:unauthenticated"),
            ],
        ),
        b("system:monitoring", vec![Group("system:monitoring")]),
        // Upstream leaves this binding empty and lets its Node authorizer admit each kubelet
        // to its own objects; k1s has no Node authorizer yet, so nodes hold the role.
        b("system:node", vec![Group("system:nodes")]),
        b("system:node-proxier", vec![User("system:kube-proxy")]),
        b(
            "system:kube-dns",
            vec![ServiceAccount("kube-system", "kube-dns")],
        ),
        b("system:kube-scheduler", vec![User("system:kube-scheduler")]),
        b(
            "system:kube-controller-manager",
            vec![User("system:kube-controller-manager")],
        ),
        b(
            "system:service-account-issuer-discovery",
            vec![Group("system:serviceaccounts")],
        ),
    ]
}
