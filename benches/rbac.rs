//! The price of RBAC per request: authorization decisions against a snapshot with 10, 1,000
//! and 10,000 RoleBindings (plus the default policy's ClusterRoleBindings), and the time to
//! rebuild the snapshot after a change. Prints a table.
//!
//! `cargo bench --bench rbac`

use k1s::apiserver::auth::{Attributes, UserInfo};
use k1s::apiserver::rbac::policy;
use k1s::apiserver::rbac::rules::Rule;
use k1s::apiserver::rbac::snapshot::{Binding, Cache, Snapshot, Subject, Table, Tables};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Owned {
    roles: Table<Arc<[Rule]>>,
    cluster_roles: Table<Arc<[Rule]>>,
    role_bindings: Table<Binding>,
    cluster_role_bindings: Table<Binding>,
}

impl Owned {
    fn tables(&self) -> Tables<'_> {
        Tables {
            roles: &self.roles,
            cluster_roles: &self.cluster_roles,
            role_bindings: &self.role_bindings,
            cluster_role_bindings: &self.cluster_role_bindings,
        }
    }
}

const NAMESPACES: usize = 100;

/// `bindings` RoleBindings over 100 namespaces, each binding its own user to `view` (the
/// aggregated rules of the default policy); every default ClusterRole and ClusterRoleBinding.
fn cluster(bindings: usize) -> Owned {
    let key = |ns: &str, n: &str| (ns.to_string(), n.to_string());
    let mut o = Owned {
        roles: Table::new(),
        cluster_roles: Table::new(),
        role_bindings: Table::new(),
        cluster_role_bindings: Table::new(),
    };
    let defaults = policy::cluster_roles();
    let rules_of = |name: &str| -> Vec<Rule> {
        defaults
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.rules.clone())
            .unwrap_or_default()
    };
    for d in &defaults {
        o.cluster_roles
            .insert(key("", d.name), d.rules.clone().into());
    }
    // what the aggregation controller gives view
    o.cluster_roles
        .insert(key("", "view"), rules_of("system:aggregate-to-view").into());
    for b in policy::cluster_role_bindings() {
        let subjects = b
            .subjects
            .iter()
            .map(|w| match w {
                policy::Who::User(n) => Subject::User(n.to_string()),
                policy::Who::Group(n) => Subject::Group(n.to_string()),
                policy::Who::ServiceAccount(ns, n) => {
                    Subject::ServiceAccount(ns.to_string(), n.to_string())
                }
            })
            .collect();
        o.cluster_role_bindings.insert(
            key("", b.role),
            Binding {
                role_kind: "ClusterRole".into(),
                role_name: b.role.into(),
                subjects,
            },
        );
    }
    for i in 0..bindings {
        let ns = format!("ns-{}", i % NAMESPACES);
        o.role_bindings.insert(
            key(&ns, &format!("view-{i}")),
            Binding {
                role_kind: "ClusterRole".into(),
                role_name: "view".into(),
                subjects: vec![Subject::User(format!("user-{i}"))],
            },
        );
    }
    o
}

fn user(name: &str) -> UserInfo {
    UserInfo {
        name: name.into(),
        groups: vec!["developers".into(), "system:authenticated".into()],
    }
}

fn attrs<'a>(verb: &'a str, group: &'a str, resource: &'a str, ns: &'a str) -> Attributes<'a> {
    Attributes {
        verb,
        group,
        resource,
        subresource: None,
        namespace: Some(ns),
        name: None,
        path: "",
    }
}

/// Mean time of one decision, taking the snapshot from the cache each time as the server does.
fn per_call(cache: &Cache, u: &UserInfo, a: &Attributes<'_>, expect: bool) -> Duration {
    assert_eq!(cache.snapshot().authorize(u, a).is_ok(), expect, "{a:?}");
    let n = 200_000u32;
    let start = Instant::now();
    for _ in 0..n {
        black_box(
            cache
                .snapshot()
                .authorize(black_box(u), black_box(a))
                .is_ok(),
        );
    }
    start.elapsed() / n
}

fn main() {
    println!("RBAC authorization, per request (mean of 200,000), and snapshot rebuild");
    println!(
        "{:>9} | {:>13} | {:>13} | {:>13} | {:>13} | {:>13} | {:>10}",
        "bindings",
        "allow (first)",
        "allow (late)",
        "deny (scan)",
        "no bindings",
        "discovery",
        "rebuild"
    );
    for n in [10usize, 1_000, 10_000] {
        let o = cluster(n);
        let start = Instant::now();
        let snap = Snapshot::build(o.tables());
        let rebuild = start.elapsed();
        let cache = Cache::default();
        cache.replace(snap);
        let u = user("user-7");
        let ns = "ns-7";
        let first = per_call(&cache, &u, &attrs("get", "", "pods", ns), true);
        let late = per_call(
            &cache,
            &u,
            &attrs("list", "networking.k8s.io", "ingresses", ns),
            true,
        );
        let deny = per_call(&cache, &u, &attrs("get", "", "secrets", ns), false);
        let stranger = per_call(
            &cache,
            &user("nobody"),
            &attrs("get", "", "pods", ns),
            false,
        );
        let mut disc = attrs("get", "", "", ns);
        disc.namespace = None;
        disc.path = "/apis/apps/v1";
        let discovery = per_call(&cache, &u, &disc, true);
        println!(
            "{:>9} | {:>13?} | {:>13?} | {:>13?} | {:>13?} | {:>13?} | {:>10?}",
            n, first, late, deny, stranger, discovery, rebuild
        );
    }
}
