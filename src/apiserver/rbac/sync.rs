//! Keeps the RBAC snapshot current: kube-runtime watchers over the in-process client on the
//! four RBAC kinds feed tables, and after every batch of changes a new snapshot is built and
//! swapped in (within a moment of the write that caused it). A re-list replaces a kind's
//! table whole. This task is the only writer of the cache; it never serves requests.

use super::rules::Rule;
use super::snapshot::{Binding, Cache, Snapshot, Subject, Tables};
use futures::{stream, Stream, StreamExt};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client, Resource};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

type Key = (String, String);

/// One kind's objects as last listed and watched.
struct Watched<V> {
    live: HashMap<Key, V>,
    /// Objects of a re-list in progress, swapped in at its end.
    pending: Option<HashMap<Key, V>>,
    listed: bool,
}

impl<V> Default for Watched<V> {
    fn default() -> Self {
        Watched {
            live: HashMap::new(),
            pending: None,
            listed: false,
        }
    }
}

impl<V> Watched<V> {
    fn apply<K: Resource>(&mut self, ev: Event<K>, convert: impl Fn(&K) -> V) {
        match ev {
            Event::Init => self.pending = Some(HashMap::new()),
            Event::InitApply(o) => {
                let (k, v) = (key(&o), convert(&o));
                self.pending.get_or_insert_with(HashMap::new).insert(k, v);
            }
            Event::InitDone => {
                self.live = self.pending.take().unwrap_or_default();
                self.listed = true;
            }
            Event::Apply(o) => {
                self.live.insert(key(&o), convert(&o));
            }
            Event::Delete(o) => {
                self.live.remove(&key(&o));
            }
        }
    }
}

fn key<K: Resource>(o: &K) -> Key {
    (
        o.meta().namespace.clone().unwrap_or_default(),
        o.meta().name.clone().unwrap_or_default(),
    )
}

fn rules_of(rules: Option<&Vec<k8s_openapi::api::rbac::v1::PolicyRule>>) -> Arc<[Rule]> {
    rules.into_iter().flatten().map(Rule::from).collect()
}

fn binding(
    role_ref: &k8s_openapi::api::rbac::v1::RoleRef,
    subjects: Option<&Vec<k8s_openapi::api::rbac::v1::Subject>>,
) -> Binding {
    Binding {
        role_kind: role_ref.kind.clone(),
        role_name: role_ref.name.clone(),
        subjects: subjects
            .into_iter()
            .flatten()
            .filter_map(|s| match s.kind.as_str() {
                "User" => Some(Subject::User(s.name.clone())),
                "Group" => Some(Subject::Group(s.name.clone())),
                "ServiceAccount" => Some(Subject::ServiceAccount(
                    s.namespace.clone().unwrap_or_default(),
                    s.name.clone(),
                )),
                _ => None,
            })
            .collect(),
    }
}

enum Change {
    Role(Event<Role>),
    ClusterRole(Event<ClusterRole>),
    RoleBinding(Event<RoleBinding>),
    ClusterRoleBinding(Event<ClusterRoleBinding>),
}

type Changes = Pin<Box<dyn Stream<Item = Change> + Send>>;

fn watch<K>(client: &Client, wrap: fn(Event<K>) -> Change) -> Changes
where
    K: Resource<DynamicType = ()> + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
    K: Send + Sync + 'static,
    K::Scope: Send,
{
    let api: Api<K> = Api::all(client.clone());
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(move |r| async move {
            match r {
                Ok(ev) => Some(wrap(ev)),
                Err(e) => {
                    tracing::debug!(kind = %K::kind(&()), error = %e, "rbac watch");
                    None
                }
            }
        })
        .boxed()
}

#[derive(Default)]
struct State {
    roles: Watched<Arc<[Rule]>>,
    cluster_roles: Watched<Arc<[Rule]>>,
    role_bindings: Watched<Binding>,
    cluster_role_bindings: Watched<Binding>,
}

impl State {
    fn apply(&mut self, c: Change) {
        match c {
            Change::Role(ev) => self.roles.apply(ev, |r: &Role| rules_of(r.rules.as_ref())),
            Change::ClusterRole(ev) => self
                .cluster_roles
                .apply(ev, |r: &ClusterRole| rules_of(r.rules.as_ref())),
            Change::RoleBinding(ev) => self.role_bindings.apply(ev, |b: &RoleBinding| {
                binding(&b.role_ref, b.subjects.as_ref())
            }),
            Change::ClusterRoleBinding(ev) => self
                .cluster_role_bindings
                .apply(ev, |b: &ClusterRoleBinding| {
                    binding(&b.role_ref, b.subjects.as_ref())
                }),
        }
    }

    fn listed(&self) -> bool {
        self.roles.listed
            && self.cluster_roles.listed
            && self.role_bindings.listed
            && self.cluster_role_bindings.listed
    }

    fn tables(&self) -> Tables<'_> {
        Tables {
            roles: &self.roles.live,
            cluster_roles: &self.cluster_roles.live,
            role_bindings: &self.role_bindings.live,
            cluster_role_bindings: &self.cluster_role_bindings.live,
        }
    }
}

/// Watch the RBAC kinds until cancelled, rebuilding the snapshot after each batch of changes.
pub async fn run(client: Client, cache: Arc<Cache>, cancel: CancellationToken) {
    let changes = stream::select_all([
        watch::<Role>(&client, Change::Role),
        watch::<ClusterRole>(&client, Change::ClusterRole),
        watch::<RoleBinding>(&client, Change::RoleBinding),
        watch::<ClusterRoleBinding>(&client, Change::ClusterRoleBinding),
    ]);
    // a batch is whatever arrived together: one rebuild for a re-list or a burst of writes
    let mut batches = changes.ready_chunks(1024);
    let mut state = State::default();
    loop {
        let batch = tokio::select! {
            _ = cancel.cancelled() => return,
            b = batches.next() => match b {
                Some(b) => b,
                None => return,
            },
        };
        for c in batch {
            state.apply(c);
        }
        if state.listed() {
            cache.replace(Snapshot::build(state.tables()));
        }
    }
}
