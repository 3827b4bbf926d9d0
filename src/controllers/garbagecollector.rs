//! The garbage collector: deletes objects whose owners (by uid) are all gone (background
//! cascading), and finishes the two deletions the registry hands over with a finalizer:
//! `foregroundDeletion` (delete the dependents, wait for those with blockOwnerDeletion, then
//! drop the finalizer) and `orphan` (strip the owner's reference from its dependents, then
//! drop the finalizer). It finds the resources through API discovery (again every 30 s, for
//! new CRDs), watches only their metadata (kube-runtime's `metadata_watcher`: small caches for
//! edge devices), runs one kube-runtime controller per resource, and writes only through the
//! API. Events are not watched, as upstream ignores them. Finding dependents scans the
//! metadata caches, which is linear in the number of objects: fine at edge scale.

use futures::channel::mpsc;
use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, PartialObjectMeta, Patch, PatchParams,
    Preconditions, PropagationPolicy,
};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ORPHAN: &str = "orphan";
const FOREGROUND: &str = "foregroundDeletion";

type Meta = PartialObjectMeta<DynamicObject>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("garbage collecting {kind} {name}: {source}")]
    Api {
        kind: String,
        name: String,
        source: kube::Error,
    },
}

/// One watched resource: its metadata cache and a way to wake its controller.
struct Watched {
    ar: ApiResource,
    namespaced: bool,
    store: Store<Meta>,
    wake: mpsc::UnboundedSender<ObjectRef<Meta>>,
}

struct Gc {
    client: Client,
    /// By (group, kind), as owner references name them.
    resources: RwLock<HashMap<(String, String), Arc<Watched>>>,
}

struct Ctx {
    gc: Arc<Gc>,
    me: Arc<Watched>,
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

impl Gc {
    fn lookup(&self, api_version: &str, kind: &str) -> Option<Arc<Watched>> {
        let key = (group_of(api_version).to_string(), kind.to_string());
        self.resources.read().ok()?.get(&key).cloned()
    }

    fn all(&self) -> Vec<Arc<Watched>> {
        self.resources
            .read()
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Everything whose ownerReferences name `uid`.
    fn dependents(&self, uid: &str) -> Vec<(Arc<Watched>, Arc<Meta>)> {
        let mut out = vec![];
        for w in self.all() {
            for o in w.store.state() {
                if o.owner_references().iter().any(|r| r.uid == uid) {
                    out.push((w.clone(), o));
                }
            }
        }
        out
    }

    /// A deleted object wakes its dependents (their owner may be gone) and its owners (one
    /// may be waiting for its dependents to go).
    fn deleted(&self, obj: &Meta) {
        if let Some(uid) = obj.uid() {
            for (w, d) in self.dependents(&uid) {
                w.wake_up(&d);
            }
        }
        let ns = obj.namespace();
        for r in obj.owner_references() {
            if let Some(w) = self.lookup(&r.api_version, &r.kind) {
                let mut o = ObjectRef::new_with(&r.name, w.ar.clone());
                if w.namespaced {
                    o = o.within(ns.as_deref().unwrap_or_default());
                }
                let _ = w.wake.unbounded_send(o);
            }
        }
    }
}

impl Watched {
    fn wake_up(&self, obj: &Meta) {
        let _ = self
            .wake
            .unbounded_send(ObjectRef::from_obj_with(obj, self.ar.clone()));
    }

    fn api(&self, client: &Client, ns: Option<&str>) -> Api<DynamicObject> {
        match ns.filter(|_| self.namespaced) {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &self.ar),
            None => Api::all_with(client.clone(), &self.ar),
        }
    }
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let gc = Arc::new(Gc {
        client,
        resources: RwLock::new(HashMap::new()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        match Discovery::new(gc.client.clone()).run().await {
            Ok(discovery) => {
                for group in discovery.groups() {
                    for (ar, caps) in group.recommended_resources() {
                        let watchable = caps.supports_operation(verbs::LIST)
                            && caps.supports_operation(verbs::WATCH);
                        if !watchable || ar.plural == "events" {
                            continue;
                        }
                        let key = (ar.group.clone(), ar.kind.clone());
                        if gc.resources.read().is_ok_and(|r| r.contains_key(&key)) {
                            continue;
                        }
                        let namespaced = caps.scope == Scope::Namespaced;
                        tasks.spawn(watch(gc.clone(), key, ar, namespaced, cancel.clone()));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(30)) => {}
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn watch(
    gc: Arc<Gc>,
    key: (String, String),
    ar: ApiResource,
    namespaced: bool,
    cancel: CancellationToken,
) {
    let writer = reflector::store::Writer::<Meta>::new(ar.clone());
    let (wake, woken) = mpsc::unbounded();
    let me = Arc::new(Watched {
        ar: ar.clone(),
        namespaced,
        store: writer.as_reader(),
        wake,
    });
    if let Ok(mut r) = gc.resources.write() {
        r.insert(key, me.clone());
    }
    // Api<PartialObjectMeta<_>> asks for metadata only: the cache holds no specs.
    let api: Api<Meta> = Api::all_with(gc.client.clone(), &ar);
    let on_delete = gc.clone();
    let events = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            // The collector reads owners, finalizers, uids and deletion state only: labels
            // and annotations (kubectl's last-applied copy among them) stay out of the cache.
            .modify(|o: &mut Meta| {
                o.metadata.managed_fields = None;
                o.metadata.labels = None;
                o.metadata.annotations = None;
            })
            .default_backoff(),
    )
    .map_ok(move |ev| {
        if let watcher::Event::Delete(obj) = &ev {
            on_delete.deleted(obj);
        }
        ev
    })
    .touched_objects();
    let ctx = Arc::new(Ctx { gc, me: me.clone() });
    Controller::for_stream_with(events, me.store.clone(), ar)
        .reconcile_on(woken)
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "garbage collector reconcile");
            }
        })
        .await;
}

fn error_policy(_obj: Arc<Meta>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %e, "garbage collection failed, retrying");
    Action::requeue(Duration::from_secs(2))
}

/// What an owner reference points at.
enum Owner {
    /// Exists, not being deleted in the foreground.
    Solid,
    /// Exists, deleting its dependents first.
    Waiting,
    /// Gone, or replaced by a namesake with another uid.
    Absent,
}

async fn reconcile(obj: Arc<Meta>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let me = &ctx.me;
    let client = &ctx.gc.client;
    let ns = obj.namespace();
    let err = |source| Error::Api {
        kind: me.ar.kind.clone(),
        name: obj.name_any(),
        source,
    };
    let api = me.api(client, ns.as_deref());
    if obj.metadata.deletion_timestamp.is_some() {
        let fins = obj.finalizers();
        if fins.iter().any(|f| f == ORPHAN) {
            orphan_dependents(&ctx, &obj).await?;
            drop_finalizer(&api, &obj, ORPHAN).await.map_err(err)?;
        } else if fins.iter().any(|f| f == FOREGROUND) {
            if delete_dependents(&ctx, &obj).await? {
                drop_finalizer(&api, &obj, FOREGROUND).await.map_err(err)?;
            } else {
                return Ok(Action::requeue(Duration::from_secs(5)));
            }
        }
        return Ok(Action::await_change());
    }
    let refs = obj.owner_references();
    if refs.is_empty() {
        return Ok(Action::await_change());
    }
    let (mut solid, mut dangling, mut waiting) = (0, vec![], vec![]);
    for r in refs {
        match owner_state(&ctx, ns.as_deref(), r).await.map_err(err)? {
            Owner::Solid => solid += 1,
            Owner::Waiting => waiting.push(r.uid.clone()),
            Owner::Absent => dangling.push(r.uid.clone()),
        }
    }
    if solid > 0 {
        // Still owned: forget only the owners that are gone or going.
        let gone: Vec<String> = dangling.into_iter().chain(waiting).collect();
        if !gone.is_empty() {
            strip_owners(&api, &obj, &gone).await.map_err(err)?;
        }
    } else {
        // Every owner is gone or going: the object goes too; its own dependents in the
        // foreground when an owner waits on them, else as its finalizers ask.
        let fins = obj.finalizers();
        let has_dependents = || obj.uid().is_some_and(|u| !ctx.gc.dependents(&u).is_empty());
        let policy = if fins.iter().any(|f| f == ORPHAN) {
            PropagationPolicy::Orphan
        } else if fins.iter().any(|f| f == FOREGROUND) || (!waiting.is_empty() && has_dependents())
        {
            PropagationPolicy::Foreground
        } else {
            PropagationPolicy::Background
        };
        delete(&api, &obj, policy).await.map_err(err)?;
        tracing::debug!(kind = %me.ar.kind, name = %obj.name_any(), "garbage collected");
    }
    // Level-triggered: look again now and then, in case a deletion went unseen.
    Ok(Action::requeue(Duration::from_secs(300)))
}

async fn owner_state(
    ctx: &Ctx,
    ns: Option<&str>,
    r: &k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference,
) -> Result<Owner, kube::Error> {
    let Some(w) = ctx.gc.lookup(&r.api_version, &r.kind) else {
        // An owner of a kind the API does not serve (yet): never collect on a guess.
        return Ok(Owner::Solid);
    };
    if w.namespaced && ns.is_none() {
        // A cluster-scoped object cannot be owned by a namespaced one.
        return Ok(Owner::Absent);
    }
    let state = |m: &kube::api::ObjectMeta| {
        if m.uid.as_deref() != Some(r.uid.as_str()) {
            Owner::Absent
        } else if m.deletion_timestamp.is_some()
            && m.finalizers.iter().flatten().any(|f| f == FOREGROUND)
        {
            Owner::Waiting
        } else {
            Owner::Solid
        }
    };
    let mut oref = ObjectRef::new_with(&r.name, w.ar.clone());
    if w.namespaced {
        oref = oref.within(ns.unwrap_or_default());
    }
    if let Some(o) = w.store.get(&oref) {
        if o.uid().as_deref() == Some(r.uid.as_str()) {
            return Ok(state(&o.metadata));
        }
    }
    // Not (yet) in the cache: ask the API before deleting anything.
    match w.api(&ctx.gc.client, ns).get_metadata_opt(&r.name).await? {
        Some(o) => Ok(state(&o.metadata)),
        None => Ok(Owner::Absent),
    }
}

/// Delete the dependents of a foreground-deleted owner. True once none that blocks it is
/// left.
async fn delete_dependents(ctx: &Ctx, owner: &Meta) -> Result<bool, Error> {
    let uid = owner.uid().unwrap_or_default();
    let mut blocking = 0;
    for (w, dep) in ctx.gc.dependents(&uid) {
        let r = dep.owner_references().iter().find(|r| r.uid == uid);
        if r.is_some_and(|r| r.block_owner_deletion == Some(true)) {
            blocking += 1;
        }
        if dep.metadata.deletion_timestamp.is_none() {
            // Its own reconcile decides: solid other owners keep it, else it goes.
            w.wake_up(&dep);
        }
    }
    Ok(blocking == 0)
}

/// Remove an orphaning owner's reference from each of its dependents.
async fn orphan_dependents(ctx: &Ctx, owner: &Meta) -> Result<(), Error> {
    let uid = owner.uid().unwrap_or_default();
    for (w, dep) in ctx.gc.dependents(&uid) {
        let api = w.api(&ctx.gc.client, dep.namespace().as_deref());
        strip_owners(&api, &dep, std::slice::from_ref(&uid))
            .await
            .map_err(|source| Error::Api {
                kind: w.ar.kind.clone(),
                name: dep.name_any(),
                source,
            })?;
    }
    Ok(())
}

fn ignore_gone(r: Result<(), kube::Error>) -> Result<(), kube::Error> {
    match r {
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        other => other,
    }
}

async fn strip_owners(
    api: &Api<DynamicObject>,
    obj: &Meta,
    uids: &[String],
) -> Result<(), kube::Error> {
    let keep: Vec<_> = obj
        .owner_references()
        .iter()
        .filter(|r| !uids.contains(&r.uid))
        .collect();
    let refs = if keep.is_empty() {
        json!(null)
    } else {
        json!(keep)
    };
    let patch = json!({"metadata": {
        "ownerReferences": refs,
        "resourceVersion": obj.resource_version(),
    }});
    let r = api
        .patch_metadata(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    ignore_gone(r.map(|_| ()))
}

async fn drop_finalizer(
    api: &Api<DynamicObject>,
    obj: &Meta,
    which: &str,
) -> Result<(), kube::Error> {
    let keep: Vec<&String> = obj.finalizers().iter().filter(|f| *f != which).collect();
    let fins = if keep.is_empty() {
        json!(null)
    } else {
        json!(keep)
    };
    let patch = json!({"metadata": {
        "finalizers": fins,
        "resourceVersion": obj.resource_version(),
    }});
    let r = api
        .patch_metadata(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await;
    ignore_gone(r.map(|_| ()))
}

async fn delete(
    api: &Api<DynamicObject>,
    obj: &Meta,
    policy: PropagationPolicy,
) -> Result<(), kube::Error> {
    let dp = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: obj.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&obj.name_any(), &dp).await {
        Ok(_) => Ok(()),
        // gone already, or a namesake (uid precondition)
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}
