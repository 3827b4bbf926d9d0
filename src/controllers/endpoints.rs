//! The Endpoints controller: the legacy `Endpoints` object named after every Service with a
//! selector, its subsets packed as upstream's `RepackSubsets` does (addresses grouped by the
//! ports they serve, ready ones in `addresses`, the rest in `notReadyAddresses`), labelled
//! `endpoints.kubernetes.io/managed-by: endpoint-controller`. A Service's Endpoints go when
//! it goes. Services without a selector are left alone: their users write their own
//! Endpoints, which this controller never touches.

use super::endpointutil as eu;
use super::informers::Informers;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const LABEL_MANAGED_BY: &str = "endpoints.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "endpoint-controller";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("endpoints of service {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let (pod_informer, svc_informer) = (informers.get::<Pod>(), informers.get::<Service>());
    let pods = pod_informer.store();
    // Deleted Services must reach the controller too (their Endpoints go), so the trigger
    // is every touched Service, not only applied ones.
    let services = svc_informer.store();
    let ep_events = watcher(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY}")),
    )
    .default_backoff()
    .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pods,
    });
    let svc_store = services.clone();
    Controller::for_shared_stream(svc_informer.subscribe(), services)
        .watches_shared_stream(pod_informer.subscribe(), move |pod: Arc<Pod>| {
            // Every Service of the namespace: a pod that stopped matching must leave too.
            let ns = pod.namespace();
            svc_store
                .state()
                .iter()
                .filter(|s| s.namespace() == ns && eu::managed(s))
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        })
        .watches_stream(ep_events, |ep: Endpoints| {
            Some(ObjectRef::new(&ep.name_any()).within(&ep.namespace().unwrap_or_default()))
        })
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| {
            let client = client.clone();
            async move {
                match r {
                    Err(controller::Error::ObjectNotFound(oref)) => {
                        let ns = oref.namespace.clone().unwrap_or_default();
                        remove_orphan(&client, &ns, &oref.name).await;
                    }
                    Err(e) => tracing::debug!(error = %e, "endpoints reconcile"),
                    Ok(_) => {}
                }
            }
        })
        .await;
}

/// The Service is gone: delete the Endpoints this controller wrote for it.
async fn remove_orphan(client: &Client, ns: &str, name: &str) {
    let api: Api<Endpoints> = Api::namespaced(client.clone(), ns);
    let Ok(Some(ep)) = api.get_opt(name).await else {
        return;
    };
    if ep.labels().get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return;
    }
    let dp = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: ep.uid(),
            resource_version: ep.resource_version(),
        }),
        ..Default::default()
    };
    if let Err(e) = api.delete(name, &dp).await {
        tracing::debug!(error = %e, ns, name, "deleting the endpoints of a deleted service");
    }
}

fn error_policy(_svc: Arc<Service>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    let Error::Api { source, .. } = e;
    if matches!(source, kube::Error::Api(s) if s.code == 409) {
        return Action::requeue(Duration::from_millis(200));
    }
    tracing::warn!(error = %e, "endpoints sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

/// The subsets of a Service's Endpoints from its selected pods.
pub fn subsets(svc: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let publish = eu::publish_not_ready(svc);
    let v6 = svc
        .spec
        .as_ref()
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .is_some_and(|f| f == "IPv6");
    let sports = eu::service_ports(svc);
    // address (by IP) -> (address, ready, ports)
    let mut by_addr: BTreeMap<String, (EndpointAddress, bool, Vec<EndpointPort>)> = BTreeMap::new();
    for pod in eu::selected_pods(svc, pods) {
        if !eu::should_be_in_endpoints(&pod, publish) {
            continue;
        }
        let Some(ip) = eu::pod_ip_of_family(&pod, v6) else {
            continue;
        };
        let addr = EndpointAddress {
            ip: ip.clone(),
            hostname: eu::hostname(&pod, svc),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..Default::default()
            }),
        };
        let ready = publish || crate::controllers::podutil::is_ready(&pod);
        let ports: Vec<EndpointPort> = sports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: sp.name.clone().filter(|n| !n.is_empty()),
                    port: eu::target_port(&pod, sp)?,
                    protocol: Some(sp.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: sp.app_protocol.clone(),
                })
            })
            .collect();
        if ports.is_empty() && !(sports.is_empty() && eu::is_headless(svc)) {
            continue;
        }
        by_addr.insert(ip, (addr, ready, ports));
    }
    // Group addresses by the exact port set they serve.
    let mut groups: BTreeMap<String, EndpointSubset> = BTreeMap::new();
    for (_, (addr, ready, mut ports)) in by_addr {
        ports.sort_by(|a, b| (&a.name, a.port, &a.protocol).cmp(&(&b.name, b.port, &b.protocol)));
        let key = serde_json::to_string(&ports).unwrap_or_default();
        let subset = groups.entry(key).or_insert_with(|| EndpointSubset {
            ports: (!ports.is_empty()).then_some(ports),
            ..Default::default()
        });
        let list = if ready {
            subset.addresses.get_or_insert_with(Vec::new)
        } else {
            subset.not_ready_addresses.get_or_insert_with(Vec::new)
        };
        list.push(addr);
    }
    groups.into_values().collect()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.pods.wait_until_ready().await;
    if !eu::managed(&svc) || svc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let err = |source| Error::Api {
        ns: ns.clone(),
        name: name.clone(),
        source,
    };
    let pods = ctx.pods.state();
    let subsets = subsets(&svc, &pods);
    let mut labels = eu::copied_labels(&svc);
    labels.insert(LABEL_MANAGED_BY.into(), MANAGED_BY.into());
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let current = api.get_opt(&name).await.map_err(err)?;
    let want_subsets = (!subsets.is_empty()).then_some(subsets);
    if let Some(cur) = &current {
        let cur_subsets = cur.subsets.clone().filter(|s| !s.is_empty());
        if cur_subsets == want_subsets && cur.metadata.labels.as_ref() == Some(&labels) {
            return Ok(Action::await_change());
        }
    }
    let mut annotations = current
        .as_ref()
        .and_then(|c| c.metadata.annotations.clone())
        .unwrap_or_default();
    if let Some(t) = eu::last_change(&svc, &eu::selected_pods(&svc, &pods)) {
        annotations.insert(eu::TRIGGER_TIME.into(), t);
    }
    let ep = Endpoints {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            namespace: Some(ns.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            resource_version: current.as_ref().and_then(|c| c.resource_version()),
            ..Default::default()
        },
        subsets: want_subsets,
    };
    match current {
        Some(_) => api.replace(&name, &PostParams::default(), &ep).await,
        None => api.create(&PostParams::default(), &ep).await,
    }
    .map_err(err)?;
    Ok(Action::await_change())
}
