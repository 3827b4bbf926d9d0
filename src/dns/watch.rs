//! Keeps the snapshot current: kube-runtime reflectors over Namespaces, Services and
//! EndpointSlices, and one task that rebuilds the snapshot from their caches after changes
//! (changes arriving during a rebuild are folded into the next) and swaps it in. It only
//! reads the API, and queries never wait on it.

use super::snapshot::{self, Snapshot};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::{watcher, WatchStreamExt};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Drive one reflector, waking the builder after each change and marking the kind synced
/// once its first list is in.
async fn drive<K>(api: Api<K>, writer: Writer<K>, synced: Arc<AtomicBool>, changed: Arc<Notify>)
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::InitDone) => {
                synced.store(true, Ordering::Release);
                changed.notify_one();
            }
            Ok(watcher::Event::Init) | Ok(watcher::Event::InitApply(_)) => {}
            Ok(_) => changed.notify_one(),
            Err(e) => tracing::debug!(error = %e, "dns watch"),
        }
    }
}

/// Watch the cluster and publish snapshots on `tx` until cancelled.
pub async fn run(
    client: kube::Client,
    tx: watch::Sender<Arc<Snapshot>>,
    cancel: CancellationToken,
) {
    let changed = Arc::new(Notify::new());
    let flags: [Arc<AtomicBool>; 3] = Default::default();
    let (namespaces, ns_writer) = reflector::store::<Namespace>();
    let (services, svc_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let drivers = futures::future::join3(
        drive(
            Api::<Namespace>::all(client.clone()),
            ns_writer,
            flags[0].clone(),
            changed.clone(),
        ),
        drive(
            Api::<Service>::all(client.clone()),
            svc_writer,
            flags[1].clone(),
            changed.clone(),
        ),
        drive(
            Api::<EndpointSlice>::all(client),
            slice_writer,
            flags[2].clone(),
            changed.clone(),
        ),
    );
    let build = async {
        loop {
            changed.notified().await;
            let synced = flags.iter().all(|f| f.load(Ordering::Acquire));
            if !synced {
                continue;
            }
            let snap = build_from(&namespaces, &services, &slices);
            tx.send_replace(Arc::new(snap));
        }
    };
    tokio::select! {
        _ = cancel.cancelled() => {}
        _ = drivers => {}
        _ = build => {}
    }
}

fn build_from(
    namespaces: &Store<Namespace>,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
) -> Snapshot {
    snapshot::build(
        &namespaces.state(),
        &services.state(),
        &slices.state(),
        true,
    )
}
