//! ServiceLB, as k3s's: every Service of type LoadBalancer without a `loadBalancerClass` is
//! served on the nodes themselves, so its `status.loadBalancer.ingress` lists the Ready
//! nodes' addresses (ExternalIP, else InternalIP) with `ipMode: VIP`, kept current as nodes
//! come, go and change readiness, and cleared when the Service stops being a
//! LoadBalancer. Services with a class belong to another load balancer: never touched. The
//! proxy serves the ports on those addresses; this controller only writes status.

use super::informers::Informers;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Service};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("load balancer status of service {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

struct Ctx {
    client: Client,
    nodes: Store<Node>,
}

pub async fn run(informers: Informers, cancel: CancellationToken) {
    let client = informers.client().clone();
    let node_informer = informers.get::<Node>();
    let nodes = node_informer.store();
    let node_changes = node_informer.subscribe().map(|_| ());
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        nodes,
    });
    let services = informers.get::<Service>();
    Controller::for_shared_stream(services.subscribe_applied(), services.store())
        .reconcile_all_on(node_changes)
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "servicelb reconcile");
            }
        })
        .await;
}

fn error_policy(_svc: Arc<Service>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "servicelb sync failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

pub fn is_ready(n: &Node) -> bool {
    n.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True")
}

/// The address a node serves load-balanced ports on: its ExternalIP, else its InternalIP.
pub fn node_address(n: &Node) -> Option<String> {
    let addrs = n.status.as_ref()?.addresses.as_ref()?;
    let of = |t: &str| {
        addrs
            .iter()
            .find(|a| a.type_ == t)
            .map(|a| a.address.clone())
    };
    of("ExternalIP").or_else(|| of("InternalIP"))
}

/// The ingress list for the given nodes: Ready ones, sorted, without duplicates.
pub fn ingress(nodes: &[Arc<Node>]) -> Vec<Value> {
    let mut ips: Vec<String> = nodes
        .iter()
        .filter(|n| is_ready(n) && n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| node_address(n))
        .collect();
    ips.sort_by_key(|ip| ip.parse::<std::net::IpAddr>().ok());
    ips.dedup();
    ips.into_iter()
        .map(|ip| json!({"ip": ip, "ipMode": "VIP"}))
        .collect()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let _ = ctx.nodes.wait_until_ready().await;
    let spec = svc.spec.clone().unwrap_or_default();
    let current: Vec<Value> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|x| serde_json::to_value(x).ok())
                .collect()
        })
        .unwrap_or_default();
    let ours = spec.type_.as_deref() == Some("LoadBalancer") && spec.load_balancer_class.is_none();
    let want = if ours {
        ingress(&ctx.nodes.state())
    } else if spec.type_.as_deref() != Some("LoadBalancer") {
        vec![]
    } else {
        // Another load balancer's Service: its status is not ours to write.
        return Ok(Action::await_change());
    };
    if current == want {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    // A merge patch replaces the list as a whole; null removes it.
    let ingress = if want.is_empty() {
        Value::Null
    } else {
        Value::Array(want)
    };
    let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(Action::await_change()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(Action::await_change()),
        Err(source) => Err(Error::Api { ns, name, source }),
    }
}
