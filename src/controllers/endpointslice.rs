//! The EndpointSlice controller: for every Service with a selector, the EndpointSlices
//! (`discovery.k8s.io/v1`) listing its pods, labelled `kubernetes.io/service-name` and
//! managed by `endpointslice-controller.k8s.io`, owned by the Service (the garbage
//! collector removes them with it). The plan comes from `sliceplan`; this file watches pods,
//! nodes and slices, carries the plan out through the API and waits for its cache to show
//! its own writes so it never acts twice. It never touches slices another manager wrote
//! (the default Services' slices, users' own).

use super::common::{self, Expect};
use super::endpointutil as eu;
use super::informers::Informers;
use super::sliceplan::{self, LABEL_MANAGED_BY, LABEL_SERVICE_NAME, MANAGED_BY};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("endpoint slices of service {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    nodes: Store<Node>,
    slices: Store<EndpointSlice>,
}

fn managed_slice(s: &EndpointSlice) -> Option<&String> {
    let l = s.metadata.labels.as_ref()?;
    (l.get(LABEL_MANAGED_BY).map(String::as_str) == Some(MANAGED_BY))
        .then(|| l.get(LABEL_SERVICE_NAME))
        .flatten()
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let (pod_informer, node_informer) = (informers.get::<Pod>(), informers.get::<Node>());
    let (pods, nodes) = (pod_informer.store(), node_informer.store());
    let (slices, sw) = reflector::store::<EndpointSlice>();
    let slice_events = reflector::reflector(
        sw,
        watcher(
            Api::<EndpointSlice>::all(client.clone()),
            watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")),
        ),
    )
    .default_backoff()
    .touched_objects();
    let svc_informer = informers.get::<Service>();
    // The controller's own kind triggers on Services that exist, as `Controller::new` would.
    let ctrl =
        Controller::for_shared_stream(svc_informer.subscribe_applied(), svc_informer.store());
    let services = ctrl.store();
    let services2 = services.clone();
    let slices2 = slices.clone();
    let ctx = Arc::new(Ctx {
        client,
        pods,
        nodes,
        slices,
    });
    ctrl.watches_shared_stream(pod_informer.subscribe(), move |pod: Arc<Pod>| {
        services_of(&pod, &services, &slices2)
    })
    .watches_stream(slice_events, |s: EndpointSlice| {
        let ns = s.namespace().unwrap_or_default();
        managed_slice(&s).map(|svc| ObjectRef::new(svc).within(&ns))
    })
    .watches_shared_stream(node_informer.subscribe(), move |n: Arc<Node>| {
        zone_users(&n, &services2)
    })
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "endpointslice reconcile");
        }
    })
    .await;
}

/// The Services a pod event concerns: those selecting it now, and those whose slices list
/// it (it may have stopped matching).
fn services_of(
    pod: &Pod,
    services: &Store<Service>,
    slices: &Store<EndpointSlice>,
) -> Vec<ObjectRef<Service>> {
    let ns = pod.namespace();
    let name = pod.name_any();
    let mut out: Vec<ObjectRef<Service>> = services
        .state()
        .iter()
        .filter(|s| s.namespace() == ns)
        .filter(|s| eu::selector(s).is_some_and(|sel| eu::selects(sel, pod)))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect();
    for s in slices.state().iter().filter(|s| s.namespace() == ns) {
        let lists = s.endpoints.iter().any(|e| {
            e.target_ref
                .as_ref()
                .is_some_and(|r| r.name.as_deref() == Some(name.as_str()))
        });
        if let (true, Some(svc)) = (lists, managed_slice(s)) {
            out.push(ObjectRef::new(svc).within(ns.as_deref().unwrap_or_default()));
        }
    }
    out
}

/// A node's zone label feeds its endpoints: on a node change, the Services with pods there.
/// Cheap enough at edge scale: every managed Service.
fn zone_users(_node: &Node, services: &Store<Service>) -> Vec<ObjectRef<Service>> {
    services
        .state()
        .iter()
        .filter(|s| eu::managed(s))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn error_policy(_svc: Arc<Service>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    let Error::Api { source, .. } = e;
    if matches!(source, kube::Error::Api(s) if s.code == 409 || s.code == 404) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "endpointslice sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    let _ = ctx.slices.wait_until_ready().await;
    let _ = ctx.nodes.wait_until_ready().await;
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let existing: Vec<Arc<EndpointSlice>> = ctx
        .slices
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| managed_slice(s) == Some(&name))
        .collect();
    let api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let plan = if svc.metadata.deletion_timestamp.is_some() || !eu::managed(&svc) {
        sliceplan::Plan {
            delete: existing.iter().map(|s| s.as_ref().clone()).collect(),
            ..Default::default()
        }
    } else {
        let nodes: BTreeMap<String, Arc<Node>> = ctx
            .nodes
            .state()
            .into_iter()
            .map(|n| (n.name_any(), n))
            .collect();
        sliceplan::plan(&svc, &ctx.pods.state(), &nodes, &existing)
    };
    if plan.is_empty() {
        return Ok(Action::await_change());
    }
    let mut expect = vec![];
    for s in &plan.delete {
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: s.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&s.name_any(), &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(err(e)),
        }
        expect.push(Expect::Gone(s.name_any()));
    }
    for s in &plan.update {
        let rv = s.resource_version().unwrap_or_default();
        api.replace(&s.name_any(), &PostParams::default(), s)
            .await
            .map_err(err)?;
        expect.push(Expect::Changed(s.name_any(), rv));
    }
    for s in &plan.create {
        let created = api.create(&PostParams::default(), s).await.map_err(err)?;
        expect.push(Expect::Present(created.name_any()));
    }
    let caught_up = common::wait_for_cache(&ctx.slices, &ns, &expect, Duration::from_secs(5)).await;
    Ok(if caught_up {
        Action::await_change()
    } else {
        Action::requeue(Duration::from_secs(1))
    })
}
