//! The EndpointSlice mirroring controller: users of a Service without a selector write its
//! `Endpoints` themselves; consumers of EndpointSlices (the service proxy, DNS) see them
//! through slices this controller mirrors from those Endpoints, as upstream's does. Mirrored
//! slices are labelled `endpointslice.kubernetes.io/managed-by:
//! endpointslicemirroring-controller.k8s.io`, owned by the Endpoints (the garbage collector
//! removes them with it), one per subset and address family, at most 100 endpoints each.
//! Endpoints labelled `endpointslice.kubernetes.io/skip-mirror: "true"`, those the
//! Endpoints controller writes and those of Services with a selector are not mirrored.

use super::sliceplan::{LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MAX_ENDPOINTS};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const MANAGED_BY: &str = "endpointslicemirroring-controller.k8s.io";
pub const SKIP_MIRROR: &str = "endpointslice.kubernetes.io/skip-mirror";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mirroring endpoints {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let ctx = Arc::new(Ctx {
        client: client.clone(),
    });
    Controller::new(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        |s: Service| Some(ObjectRef::new(&s.name_any()).within(&s.namespace()?)),
    )
    .owns(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")),
    )
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "endpointslice mirroring reconcile");
        }
    })
    .await;
}

fn error_policy(_ep: Arc<Endpoints>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    let Error::Api { source, .. } = e;
    if matches!(source, kube::Error::Api(s) if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "endpointslice mirroring failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Whether these Endpoints are the user's, for a Service that has no selector.
fn mirrored(ep: &Endpoints, svc: Option<&Service>) -> bool {
    let labels = ep.labels();
    let skip = labels.get(SKIP_MIRROR).map(String::as_str) == Some("true");
    let ours = labels
        .get(super::endpoints::LABEL_MANAGED_BY)
        .map(String::as_str)
        == Some(super::endpoints::MANAGED_BY);
    let selectorless = svc.is_some_and(|s| super::endpointutil::selector(s).is_none());
    !skip && !ours && selectorless && ep.metadata.deletion_timestamp.is_none()
}

/// The slices the Endpoints mirror to, in a stable order.
pub fn desired(ep: &Endpoints) -> Vec<EndpointSlice> {
    let name = ep.name_any();
    let mut labels = ep.labels().clone();
    labels.insert(LABEL_SERVICE_NAME.into(), name.clone());
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let owner = super::common::owner_ref(ep);
    let mut out = vec![];
    for subset in ep.subsets.iter().flatten() {
        let ports: Vec<EndpointPort> = subset
            .ports
            .iter()
            .flatten()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: p.app_protocol.clone(),
            })
            .collect();
        let to_ep = |a: &EndpointAddress, ready: bool| Endpoint {
            addresses: vec![a.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                ..Default::default()
            }),
            hostname: a.hostname.clone(),
            node_name: a.node_name.clone(),
            target_ref: a.target_ref.clone(),
            ..Default::default()
        };
        let all: Vec<Endpoint> = subset
            .addresses
            .iter()
            .flatten()
            .map(|a| to_ep(a, true))
            .chain(
                subset
                    .not_ready_addresses
                    .iter()
                    .flatten()
                    .map(|a| to_ep(a, false)),
            )
            .collect();
        for (family, v6) in [("IPv4", false), ("IPv6", true)] {
            let of_family: Vec<Endpoint> = all
                .iter()
                .filter(|e| {
                    e.addresses[0]
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_ipv6() == v6)
                })
                .cloned()
                .collect();
            for chunk in of_family.chunks(MAX_ENDPOINTS) {
                out.push(EndpointSlice {
                    metadata: ObjectMeta {
                        generate_name: Some(format!("{name}-")),
                        namespace: ep.namespace(),
                        labels: Some(labels.clone()),
                        owner_references: Some(vec![owner.clone()]),
                        ..Default::default()
                    },
                    address_type: family.into(),
                    endpoints: chunk.to_vec(),
                    ports: Some(ports.clone()),
                });
            }
        }
    }
    out
}

fn same(a: &EndpointSlice, b: &EndpointSlice) -> bool {
    a.endpoints == b.endpoints
        && a.ports == b.ports
        && a.address_type == b.address_type
        && a.metadata.labels == b.metadata.labels
        && a.metadata.owner_references == b.metadata.owner_references
}

async fn reconcile(ep: Arc<Endpoints>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let ns = ep.namespace().unwrap_or_default();
    let name = ep.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let svc = Api::<Service>::namespaced(ctx.client.clone(), &ns)
        .get_opt(&name)
        .await
        .map_err(err)?;
    let want = if mirrored(&ep, svc.as_ref()) {
        desired(&ep)
    } else {
        vec![]
    };
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let lp = ListParams::default().labels(&format!(
        "{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_SERVICE_NAME}={name}"
    ));
    let mut have = api.list(&lp).await.map_err(err)?.items;
    have.sort_by_key(|s| s.name_any());
    // Pair existing slices with wanted ones in order: equal pairs stay, others are
    // rewritten; extra wanted ones are created, extra existing ones deleted.
    let mut have = have.into_iter();
    for w in want {
        match have.next() {
            Some(h) if same(&h, &w) => {}
            Some(h) => {
                let mut n = w;
                n.metadata.name = h.metadata.name.clone();
                n.metadata.generate_name = None;
                n.metadata.resource_version = h.resource_version();
                n.metadata.annotations = h.metadata.annotations.clone();
                api.replace(&h.name_any(), &PostParams::default(), &n)
                    .await
                    .map_err(err)?;
            }
            None => {
                api.create(&PostParams::default(), &w).await.map_err(err)?;
            }
        }
    }
    for h in have {
        match api.delete(&h.name_any(), &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Action::await_change())
}
