//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount,
//! created when the namespace appears and again whenever it is deleted. It watches only the
//! `default` accounts (a field selector) and never touches any other.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DEFAULT: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the default service account in namespace {ns}: {source}")]
    Api { ns: String, source: kube::Error },
}

struct Ctx {
    client: Client,
    accounts: Store<ServiceAccount>,
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let (accounts, writer) = reflector::store::<ServiceAccount>();
    let config = watcher::Config::default().fields(&format!("metadata.name={DEFAULT}"));
    let events = reflector::reflector(
        writer,
        watcher(Api::<ServiceAccount>::all(client.clone()), config),
    )
    .default_backoff()
    .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        accounts,
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .watches_stream(events, |sa: ServiceAccount| {
            sa.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "service account reconcile");
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.accounts.wait_until_ready().await;
    let name = ns.name_any();
    let active = ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating");
    let present = ctx
        .accounts
        .get(&ObjectRef::new(DEFAULT).within(&name))
        .is_some_and(|sa| sa.metadata.deletion_timestamp.is_none());
    if !active || present {
        return Ok(Action::await_change());
    }
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(DEFAULT.into()),
            namespace: Some(name.clone()),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &name);
    match api.create(&PostParams::default(), &sa).await {
        Ok(_) => tracing::debug!(namespace = %name, "created the default service account"),
        // exists already (the cache lags), or the namespace is terminating
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 || e.code == 404 => {}
        Err(source) => return Err(Error::Api { ns: name, source }),
    }
    Ok(Action::await_change())
}
