//! The RBAC snapshot: every binding indexed by the subjects it names, each already resolved
//! to the rules of its role, so authorizing a request costs a few hash lookups by the user's
//! name and groups and a scan of the rules they hold, never a walk over every binding.
//!
//! A snapshot is immutable; `sync` builds a new one from its tables after a change and swaps
//! it in. Readers take the current one without waiting on anything but a pointer swap. This
//! file never does I/O.

use super::rules::Rule;
use crate::apiserver::auth::{Attributes, UserInfo};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

/// A subject of a binding, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    User(String),
    Group(String),
    /// (namespace, name); the namespace is empty when the binding left it out
    ServiceAccount(String, String),
}

/// A RoleBinding or ClusterRoleBinding, reduced to what authorization needs.
#[derive(Debug, Clone)]
pub struct Binding {
    /// `Role` or `ClusterRole`
    pub role_kind: String,
    pub role_name: String,
    pub subjects: Vec<Subject>,
}

/// Objects keyed by (namespace, name); the namespace is empty for cluster-scoped ones.
pub type Table<V> = HashMap<(String, String), V>;

/// What the snapshot is built from: the four kinds as last seen.
#[derive(Debug, Clone, Copy)]
pub struct Tables<'a> {
    pub roles: &'a Table<Arc<[Rule]>>,
    pub cluster_roles: &'a Table<Arc<[Rule]>>,
    pub role_bindings: &'a Table<Binding>,
    pub cluster_role_bindings: &'a Table<Binding>,
}

/// One binding's grant to one subject.
#[derive(Debug)]
pub struct Grant {
    /// The binding, for de-duplication when a user matches it more than once.
    id: usize,
    /// Upstream's description: `RoleBinding "view/dev" of ClusterRole "view" to User "jane"`.
    pub source: String,
    /// The role's rules, or why they could not be found.
    pub rules: Result<Arc<[Rule]>, String>,
}

#[derive(Debug, Default)]
struct Index {
    users: HashMap<String, Vec<Arc<Grant>>>,
    groups: HashMap<String, Vec<Arc<Grant>>>,
}

impl Index {
    fn add(&mut self, subject: &Subject, binding_ns: &str, grant: Arc<Grant>) {
        match subject {
            Subject::User(n) => self.users.entry(n.clone()).or_default().push(grant),
            Subject::Group(g) => self.groups.entry(g.clone()).or_default().push(grant),
            Subject::ServiceAccount(ns, name) => {
                // a RoleBinding's subject may leave the namespace out: it is the binding's own
                let ns = if ns.is_empty() { binding_ns } else { ns };
                if !ns.is_empty() {
                    let user = format!("system:serviceaccount:{ns}:{name}");
                    self.users.entry(user).or_default().push(grant);
                }
            }
        }
    }

    /// The grants naming this user or one of its groups (possibly the same binding twice).
    fn grants<'a>(&'a self, user: &'a UserInfo) -> impl Iterator<Item = &'a Arc<Grant>> + 'a {
        let own = self.users.get(&user.name).into_iter().flatten();
        let groups = user
            .groups
            .iter()
            .filter_map(|g| self.groups.get(g))
            .flatten();
        own.chain(groups)
    }
}

/// The authorization state at one moment.
#[derive(Debug, Default)]
pub struct Snapshot {
    cluster: Index,
    namespaced: HashMap<String, Index>,
    roles: HashMap<(String, String), Arc<[Rule]>>,
    cluster_roles: HashMap<String, Arc<[Rule]>>,
}

impl Snapshot {
    pub fn build(t: Tables<'_>) -> Snapshot {
        let cluster_roles: HashMap<String, Arc<[Rule]>> = t
            .cluster_roles
            .iter()
            .map(|((_, n), r)| (n.clone(), r.clone()))
            .collect();
        let mut s = Snapshot {
            roles: t.roles.clone(),
            cluster_roles,
            ..Snapshot::default()
        };
        let mut id = 0;
        for ((_, name), b) in t.cluster_role_bindings {
            id += 1;
            let rules = s.role_ref_rules(&b.role_kind, &b.role_name, None);
            for subject in &b.subjects {
                let source = format!(
                    "ClusterRoleBinding \"{name}\" of {} \"{}\" to {}",
                    b.role_kind,
                    b.role_name,
                    describe(subject, "")
                );
                let grant = Arc::new(Grant {
                    id,
                    source,
                    rules: rules.clone(),
                });
                s.cluster.add(subject, "", grant);
            }
        }
        for ((ns, name), b) in t.role_bindings {
            id += 1;
            let rules = s.role_ref_rules(&b.role_kind, &b.role_name, Some(ns));
            let index = s.namespaced.entry(ns.clone()).or_default();
            for subject in &b.subjects {
                let source = format!(
                    "RoleBinding \"{name}/{ns}\" of {} \"{}\" to {}",
                    b.role_kind,
                    b.role_name,
                    describe(subject, ns)
                );
                let grant = Arc::new(Grant {
                    id,
                    source,
                    rules: rules.clone(),
                });
                index.add(subject, ns, grant);
            }
        }
        s
    }

    /// The rules of the role a binding in `namespace` (None: a ClusterRoleBinding) refers to,
    /// or upstream's not-found message.
    pub fn role_ref_rules(
        &self,
        kind: &str,
        name: &str,
        namespace: Option<&str>,
    ) -> Result<Arc<[Rule]>, String> {
        let found = match (kind, namespace) {
            ("ClusterRole", _) => self.cluster_roles.get(name),
            ("Role", Some(ns)) => self.roles.get(&(ns.to_string(), name.to_string())),
            ("Role", None) => None,
            (other, _) => return Err(format!("unsupported role reference kind: \"{other}\"")),
        };
        found.cloned().ok_or_else(|| {
            format!(
                "{}.rbac.authorization.k8s.io \"{name}\" not found",
                kind.to_lowercase()
            )
        })
    }

    /// The grants that apply to `user` in `namespace`, cluster-wide first. A binding naming
    /// the user more than once (by name and by group) comes more than once.
    fn grants<'s>(
        &'s self,
        user: &'s UserInfo,
        namespace: Option<&str>,
    ) -> impl Iterator<Item = &'s Arc<Grant>> + 's {
        let local = namespace.and_then(|ns| self.namespaced.get(ns));
        self.cluster
            .grants(user)
            .chain(local.into_iter().flat_map(move |i| i.grants(user)))
    }

    /// Ok with upstream's "allowed by" reason, or Err with the reason for refusal (the
    /// resolution errors met, or empty).
    pub fn authorize(&self, user: &UserInfo, a: &Attributes<'_>) -> Result<String, String> {
        let mut errors: Vec<&str> = vec![];
        for g in self.grants(user, a.namespace) {
            match &g.rules {
                Ok(rules) => {
                    if rules.iter().any(|r| r.allows(a)) {
                        return Ok(format!("RBAC: allowed by {}", g.source));
                    }
                }
                Err(e) => {
                    if !errors.contains(&e.as_str()) {
                        errors.push(e);
                    }
                }
            }
        }
        if errors.is_empty() {
            Err(String::new())
        } else {
            Err(format!("RBAC: {}", aggregate(&errors)))
        }
    }

    /// Every rule `user` holds in `namespace`, each binding counted once, and the errors met.
    pub fn rules_for(&self, user: &UserInfo, namespace: Option<&str>) -> (Vec<Rule>, Vec<String>) {
        let mut rules = vec![];
        let mut errors = vec![];
        let mut seen: HashSet<usize> = HashSet::new();
        for g in self.grants(user, namespace) {
            if !seen.insert(g.id) {
                continue;
            }
            match &g.rules {
                Ok(r) => rules.extend(r.iter().cloned()),
                Err(e) => errors.push(e.clone()),
            }
        }
        (rules, errors)
    }
}

/// Upstream's aggregate of several errors: one as is, more as `[a, b]`.
fn aggregate(errors: &[&str]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!("[{}]", many.join(", ")),
    }
}

fn describe(s: &Subject, binding_ns: &str) -> String {
    match s {
        Subject::User(n) => format!("User \"{n}\""),
        Subject::Group(n) => format!("Group \"{n}\""),
        Subject::ServiceAccount(ns, n) => {
            let ns = if ns.is_empty() { binding_ns } else { ns };
            format!("ServiceAccount \"{n}/{ns}\"")
        }
    }
}

/// The current snapshot, swapped whole on every change, and whether the first full sync has
/// happened.
#[derive(Debug, Default)]
pub struct Cache {
    current: RwLock<Arc<Snapshot>>,
    synced: tokio::sync::watch::Sender<bool>,
}

impl Cache {
    pub fn snapshot(&self) -> Arc<Snapshot> {
        // a poisoned lock only means a writer panicked mid-swap; the Arc inside is whole
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn replace(&self, s: Snapshot) {
        let s = Arc::new(s);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = s;
        self.synced.send_replace(true);
    }

    /// Wait until the first snapshot built from a complete listing is in place.
    pub async fn synced(&self) {
        let mut rx = self.synced.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
