//! The namespace controller: when a namespace is deleted, delete everything in it, then
//! remove the `kubernetes` finalizer through `namespaces/finalize` so the namespace goes.
//! It discovers what to delete through the API's discovery, as upstream's controller does.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const FINALIZER: &str = "kubernetes";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("namespace {ns}: {source}")]
    Api { ns: String, source: kube::Error },
}

struct Ctx {
    client: Client,
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let api: Api<Namespace> = Api::all(client.clone());
    let ctx = Arc::new(Ctx { client });
    Controller::new(api, watcher::Config::default())
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "namespace reconcile");
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "namespace cleanup failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if ns.metadata.deletion_timestamp.is_none() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let finalizers = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.clone())
        .unwrap_or_default();
    if !finalizers.iter().any(|f| f == FINALIZER) {
        return Ok(Action::await_change());
    }
    let err = |source| Error::Api {
        ns: name.clone(),
        source,
    };
    let discovery = Discovery::new(ctx.client.clone())
        .run()
        .await
        .map_err(err)?;
    let mut remaining = 0usize;
    for group in discovery.groups() {
        for (ar, caps) in group.recommended_resources() {
            if caps.scope != Scope::Namespaced || !caps.supports_operation(verbs::LIST) {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &name, &ar);
            if caps.supports_operation(verbs::DELETE_COLLECTION) {
                match api
                    .delete_collection(&DeleteParams::background(), &ListParams::default())
                    .await
                {
                    Ok(_) => {}
                    Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => {}
                    Err(e) => return Err(err(e)),
                }
            }
            match api.list_metadata(&ListParams::default().limit(1)).await {
                Ok(l) => remaining += l.items.len(),
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 405 => {}
                Err(e) => return Err(err(e)),
            }
        }
    }
    if remaining > 0 {
        // pods finishing their grace period, objects held by finalizers: look again soon
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let mut done = (*ns).clone();
    if let Some(spec) = done.spec.as_mut() {
        spec.finalizers = Some(finalizers.into_iter().filter(|f| f != FINALIZER).collect());
    }
    done.metadata.managed_fields = None;
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    match api
        .replace_subresource("finalize", &name, &PostParams::default(), &done)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
        Err(e) => return Err(err(e)),
    }
    tracing::info!(namespace = %name, "namespace deleted");
    Ok(Action::await_change())
}
