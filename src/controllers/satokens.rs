//! The legacy token controller: a Secret of type `kubernetes.io/service-account-token` that
//! names a ServiceAccount (`kubernetes.io/service-account.name`) is filled with a long-lived
//! token for that account, the cluster CA and the namespace, as upstream's tokens controller
//! does for users who still ask for such Secrets. As upstream, a Secret whose account does
//! not exist, or was replaced (uid changed), is deleted. It touches no other Secret.

use crate::apiserver::satoken::{Ref, TokenIssuer};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME: &str = "kubernetes.io/service-account.name";
const SA_UID: &str = "kubernetes.io/service-account.uid";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("service-account token secret {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
    #[error("signing a token for {ns}/{name}: {message}")]
    Sign {
        ns: String,
        name: String,
        message: String,
    },
}

struct Ctx {
    client: Client,
    issuer: Arc<TokenIssuer>,
    ca_pem: String,
    secrets: Store<Secret>,
}

pub async fn run(
    client: Client,
    issuer: Arc<TokenIssuer>,
    ca_pem: String,
    cancel: CancellationToken,
) {
    let secrets_api = Api::<Secret>::all(client.clone());
    let controller = Controller::new(
        secrets_api,
        watcher::Config::default().fields(&format!("type={TYPE}")),
    );
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        issuer,
        ca_pem,
        secrets: controller.store(),
    });
    let store = ctx.secrets.clone();
    controller
        .watches(
            Api::<ServiceAccount>::all(client),
            watcher::Config::default(),
            move |sa: ServiceAccount| {
                // An account's change (or deletion) concerns the Secrets that name it.
                let ns = sa.namespace().unwrap_or_default();
                let name = sa.name_any();
                store
                    .state()
                    .iter()
                    .filter(|s| {
                        s.namespace().as_deref() == Some(ns.as_str())
                            && s.annotations().get(SA_NAME) == Some(&name)
                    })
                    .map(|s| ObjectRef::from_obj(s.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "token secret reconcile");
            }
        })
        .await;
}

fn error_policy(_s: Arc<Secret>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(secret: Arc<Secret>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if secret.type_.as_deref() != Some(TYPE) || secret.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let api_err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let Some(sa_name) = secret.annotations().get(SA_NAME).cloned() else {
        return Ok(Action::await_change());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let sa = Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&sa_name)
        .await
        .map_err(api_err)?;
    let wanted_uid = secret.annotations().get(SA_UID).cloned();
    let sa = match sa {
        Some(sa) if wanted_uid.is_none() || wanted_uid == sa.uid() => sa,
        _ => {
            let dp = DeleteParams {
                preconditions: Some(kube::api::Preconditions {
                    uid: secret.uid(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match secrets.delete(&name, &dp).await {
                Ok(_) => {
                    tracing::info!(secret = %format!("{ns}/{name}"), "deleted a token secret whose service account is gone")
                }
                Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
                Err(e) => return Err(api_err(e)),
            }
            return Ok(Action::await_change());
        }
    };
    let data = secret.data.clone().unwrap_or_default();
    let filled = ["token", "ca.crt", "namespace"]
        .iter()
        .all(|k| data.get(*k).is_some_and(|v| !v.0.is_empty()));
    if filled && wanted_uid.is_some() {
        return Ok(Action::await_change());
    }
    let token = match data.get("token").filter(|t| !t.0.is_empty()) {
        Some(t) => t.0.clone(),
        None => ctx
            .issuer
            .secret_token(
                &ns,
                Ref {
                    name: sa_name.clone(),
                    uid: sa.uid().unwrap_or_default(),
                },
                Ref {
                    name: name.clone(),
                    uid: secret.uid().unwrap_or_default(),
                },
            )
            .map_err(|e| Error::Sign {
                ns: ns.clone(),
                name: name.clone(),
                message: e.message,
            })?
            .into_bytes(),
    };
    let mut updated = (*secret).clone();
    updated
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(SA_UID.into(), sa.uid().unwrap_or_default());
    let d = updated.data.get_or_insert_with(BTreeMap::new);
    d.insert("token".into(), ByteString(token));
    d.insert("ca.crt".into(), ByteString(ctx.ca_pem.clone().into_bytes()));
    d.insert("namespace".into(), ByteString(ns.clone().into_bytes()));
    match secrets
        .replace(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => {}
        Err(e) => return Err(api_err(e)),
    }
    Ok(Action::await_change())
}
