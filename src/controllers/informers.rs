//! Shared informers: one watch and one reflector cache per kind for every controller of a
//! server, as client-go's SharedInformerFactory gives kube-controller-manager. Holding each
//! Pod once instead of once per controller is most of the control plane's memory on a
//! busy node. An `Informers` is made by the composition root for one server (never a
//! process-global: tests run several servers in one process) and handed to the
//! controllers; each kind's watch starts on first use and ends with the server's
//! cancellation token. Subscribers get every applied and every deleted object, and every
//! object again after a re-list. This module only watches and fans out: it never writes to
//! the API and never decides anything about the objects.

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{store::Writer, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio_util::sync::CancellationToken;

/// What a kind needs to be shared: a typed, cluster-listable Kubernetes object.
pub trait Kind:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Kind for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// The informers of one server: at most one watch per kind, started on first use.
#[derive(Clone)]
pub struct Informers {
    client: Client,
    cancel: CancellationToken,
    kinds: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl Informers {
    /// Informers over `client`, whose watches stop when `cancel` fires.
    pub fn new(client: Client, cancel: CancellationToken) -> Self {
        Self {
            client,
            cancel,
            kinds: Default::default(),
        }
    }

    /// The client the watches use, for the controllers' own reads and writes.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The shared informer of `K`, its watch started if this is the first ask. Must be
    /// called within the tokio runtime.
    pub fn get<K: Kind>(&self) -> Informer<K> {
        let mut kinds = lock(&self.kinds);
        if let Some(found) = kinds
            .get(&TypeId::of::<K>())
            .and_then(|b| b.downcast_ref::<Informer<K>>())
        {
            return found.clone();
        }
        let writer = Writer::<K>::default();
        let informer = Informer {
            shared: Arc::new(Shared {
                store: writer.as_reader(),
                fanout: Mutex::new(Fanout {
                    subscribers: Vec::new(),
                    synced: false,
                }),
            }),
        };
        tokio::spawn(watch(
            self.client.clone(),
            informer.shared.clone(),
            writer,
            self.cancel.clone(),
        ));
        kinds.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }
}

/// One kind's shared cache and its fan-out.
pub struct Informer<K: Kind> {
    shared: Arc<Shared<K>>,
}

impl<K: Kind> Clone for Informer<K> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

/// A change a subscriber is told of. Applied objects are the cache's own copies.
#[derive(Debug, Clone)]
pub enum Change<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
    /// Everything a (re-)list found has been told before this: a subscriber that must know
    /// the whole picture before acting (the scheduler) waits for the first one.
    Synced,
}

impl<K> Change<K> {
    pub fn object(&self) -> Option<&Arc<K>> {
        match self {
            Change::Applied(o) | Change::Deleted(o) => Some(o),
            Change::Synced => None,
        }
    }

    fn into_object(self) -> Option<Arc<K>> {
        match self {
            Change::Applied(o) | Change::Deleted(o) => Some(o),
            Change::Synced => None,
        }
    }
}

impl<K: Kind> Informer<K> {
    /// The cache (every object, managedFields left out). It fills once the first list is
    /// done; `wait_until_ready` waits for that.
    pub fn store(&self) -> Store<K> {
        self.shared.store.clone()
    }

    /// Every change from now on, after every object the cache already holds. The stream
    /// ends when the watch does (cancellation). Unbounded: a subscriber that stops polling
    /// holds references to objects, never copies of them.
    pub fn changes(&self) -> impl Stream<Item = Change<K>> + Send + 'static {
        let (tx, rx) = mpsc::unbounded();
        let mut fanout = lock(&self.shared.fanout);
        // Under the lock, so that no change slips between the snapshot and the subscription.
        for obj in self.shared.store.state() {
            let _ = tx.unbounded_send(Change::Applied(obj));
        }
        if fanout.synced {
            let _ = tx.unbounded_send(Change::Synced);
        }
        fanout.subscribers.push(tx);
        rx
    }

    /// Every applied and every deleted object, for `Controller::watches_shared_stream`.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.changes()
            .filter_map(|c| futures::future::ready(c.into_object()))
    }

    /// Only applied objects, for `Controller::for_shared_stream`: a controller's own kind
    /// triggers on what exists, as `Controller::new` does.
    pub fn subscribe_applied(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.changes().filter_map(|c| async move {
            match c {
                Change::Applied(o) => Some(o),
                Change::Deleted(_) | Change::Synced => None,
            }
        })
    }
}

struct Shared<K: Kind> {
    store: Store<K>,
    fanout: Mutex<Fanout<K>>,
}

/// The subscribers, and whether the first list has been told to them.
struct Fanout<K> {
    subscribers: Vec<mpsc::UnboundedSender<Change<K>>>,
    synced: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<K: Kind> Shared<K> {
    /// Applies one watch event to the cache and tells the subscribers, under the
    /// subscribers' lock so that a new subscriber sees each change exactly once.
    fn apply(&self, writer: &mut Writer<K>, event: watcher::Event<K>) {
        let mut fanout = lock(&self.fanout);
        let before = matches!(event, watcher::Event::InitDone).then(|| self.store.state());
        writer.apply_watcher_event(&event);
        let changes = match event {
            watcher::Event::Apply(obj) => {
                let cached = self.store.get(&ObjectRef::from_obj(&obj));
                vec![Change::Applied(cached.unwrap_or_else(|| Arc::new(obj)))]
            }
            watcher::Event::Delete(obj) => vec![Change::Deleted(Arc::new(obj))],
            watcher::Event::Init | watcher::Event::InitApply(_) => vec![],
            watcher::Event::InitDone => {
                // A re-list: what vanished meanwhile was deleted; everything else is told
                // again, as each controller's own re-list used to.
                let after = self.store.state();
                let kept: HashSet<ObjectRef<K>> = after
                    .iter()
                    .map(|o| ObjectRef::from_obj(o.as_ref()))
                    .collect();
                before
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|o| !kept.contains(&ObjectRef::from_obj(o.as_ref())))
                    .map(Change::Deleted)
                    .chain(after.into_iter().map(Change::Applied))
                    .chain([Change::Synced])
                    .collect()
            }
        };
        if matches!(changes.last(), Some(Change::Synced)) {
            fanout.synced = true;
        }
        for change in changes {
            fanout
                .subscribers
                .retain(|tx| tx.unbounded_send(change.clone()).is_ok());
        }
    }
}

/// The kind's one watch, until cancellation; then the subscribers' streams end.
async fn watch<K: Kind>(
    client: Client,
    shared: Arc<Shared<K>>,
    mut writer: Writer<K>,
    cancel: CancellationToken,
) {
    let events = watcher(Api::<K>::all(client), watcher::Config::default())
        .modify(|o: &mut K| o.meta_mut().managed_fields = None)
        .default_backoff();
    futures::pin_mut!(events);
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = events.next() => e,
        };
        match event {
            Some(Ok(ev)) => shared.apply(&mut writer, ev),
            Some(Err(e)) => tracing::debug!(error = %e, kind = %K::kind(&()), "shared watch"),
            None => break,
        }
    }
    lock(&shared.fanout).subscribers.clear();
}

#[cfg(test)]
#[path = "informers_tests.rs"]
mod tests;
