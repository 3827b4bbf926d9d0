//! The root CA publisher: every active namespace has a `kube-root-ca.crt` ConfigMap holding
//! the cluster CA, which the `kube-api-access-*` volumes of pods mount so in-cluster clients
//! can verify the API server. Recreated when deleted, repaired when edited. It watches only
//! ConfigMaps of that name and never touches any other.

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const NAME: &str = "kube-root-ca.crt";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("publishing {NAME} in namespace {ns}: {source}")]
    Api { ns: String, source: kube::Error },
}

struct Ctx {
    client: Client,
    maps: Store<ConfigMap>,
    ca_pem: String,
}

pub async fn run(client: Client, ca_pem: String, cancel: CancellationToken) {
    let (maps, writer) = reflector::store::<ConfigMap>();
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let events = reflector::reflector(
        writer,
        watcher(Api::<ConfigMap>::all(client.clone()), config),
    )
    .default_backoff()
    .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        maps,
        ca_pem,
    });
    Controller::new(Api::<Namespace>::all(client), watcher::Config::default())
        .watches_stream(events, |cm: ConfigMap| {
            cm.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "root ca reconcile");
            }
        })
        .await;
}

fn error_policy(_ns: Arc<Namespace>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.maps.wait_until_ready().await;
    let name = ns.name_any();
    let active = ns.metadata.deletion_timestamp.is_none()
        && ns.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Terminating");
    if !active {
        return Ok(Action::await_change());
    }
    let data = BTreeMap::from([("ca.crt".to_string(), ctx.ca_pem.clone())]);
    let existing = ctx.maps.get(&ObjectRef::new(NAME).within(&name));
    if existing
        .as_ref()
        .is_some_and(|cm| cm.data.as_ref() == Some(&data))
    {
        return Ok(Action::await_change());
    }
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let mut cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(name.clone()),
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/description".to_string(),
                DESCRIPTION.to_string(),
            )])),
            ..Default::default()
        },
        data: Some(data),
        ..Default::default()
    };
    let result = match existing {
        None => api.create(&PostParams::default(), &cm).await.map(|_| ()),
        Some(old) => {
            // Keep the user's labels; only the data and our annotation are ours.
            cm.metadata.resource_version = old.resource_version();
            cm.metadata.labels = old.metadata.labels.clone();
            api.replace(NAME, &PostParams::default(), &cm)
                .await
                .map(|_| ())
        }
    };
    match result {
        Ok(()) => tracing::debug!(namespace = %name, "published the cluster ca"),
        // The cache lags (409), or the namespace is going away (403, 404).
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 403 || e.code == 404 => {}
        Err(source) => return Err(Error::Api { ns: name, source }),
    }
    Ok(Action::await_change())
}
