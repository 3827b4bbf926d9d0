//! Node IPAM: gives every Node a pod CIDR (`spec.podCIDR`, `spec.podCIDRs`) out of the
//! cluster CIDR, a /24 per node for IPv4 and a /64 for IPv6, as upstream's range allocator.
//! A CIDR, once set, is the node's for its life (the API makes it immutable); allocation is
//! serialised so two nodes never get the same one. It never touches anything but podCIDRs.

use super::informers::Informers;
use futures::StreamExt;
use ipnetwork::IpNetwork;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Client, ResourceExt};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("node {node}: {source}")]
    Api { node: String, source: kube::Error },
    #[error("node {node}: no free pod CIDR left in {cluster}")]
    Exhausted { node: String, cluster: IpNetwork },
}

struct Ctx {
    client: Client,
    cluster: IpNetwork,
    /// Held while choosing and writing a CIDR.
    allocating: Mutex<()>,
}

/// The prefix length of one node's range inside `cluster`.
fn node_prefix(cluster: &IpNetwork) -> u8 {
    match cluster {
        IpNetwork::V4(n) => 24.max(n.prefix()),
        IpNetwork::V6(n) => 64.max(n.prefix()),
    }
}

/// The `index`th node range of `cluster`, if there is one.
fn nth_range(cluster: &IpNetwork, index: u128) -> Option<IpNetwork> {
    let prefix = node_prefix(cluster);
    match cluster {
        IpNetwork::V4(n) => {
            let bits = u32::from(prefix - n.prefix());
            if bits < 32 && index >= 1u128 << bits {
                return None;
            }
            let step = 1u64 << (32 - u32::from(prefix));
            let base = u64::from(u32::from(n.network())) + index as u64 * step;
            let ip = std::net::Ipv4Addr::from(u32::try_from(base).ok()?);
            IpNetwork::new(IpAddr::V4(ip), prefix).ok()
        }
        IpNetwork::V6(n) => {
            let bits = u32::from(prefix - n.prefix());
            if bits < 128 && index >= 1u128 << bits {
                return None;
            }
            let step = 1u128.checked_shl(128 - u32::from(prefix))?;
            let base = u128::from(n.network()).checked_add(index.checked_mul(step)?)?;
            IpNetwork::new(IpAddr::V6(std::net::Ipv6Addr::from(base)), prefix).ok()
        }
    }
}

/// The first node range of `cluster` not in `used`.
pub fn first_free(cluster: &IpNetwork, used: &HashSet<IpNetwork>) -> Option<IpNetwork> {
    (0u128..)
        .map_while(|i| nth_range(cluster, i))
        .find(|r| !used.contains(r))
}

pub async fn run(informers: Informers, cluster: IpNetwork, cancel: CancellationToken) {
    let nodes = informers.get::<Node>();
    let ctx = Arc::new(Ctx {
        client: informers.client().clone(),
        cluster,
        allocating: Mutex::new(()),
    });
    Controller::for_shared_stream(nodes.subscribe_applied(), nodes.store())
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "node ipam reconcile");
            }
        })
        .await;
}

fn error_policy(_node: Arc<Node>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "assigning a pod CIDR failed, retrying");
    Action::requeue(Duration::from_secs(5))
}

fn pod_cidr(node: &Node) -> Option<&str> {
    node.spec.as_ref()?.pod_cidr.as_deref()
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pod_cidr(&node).is_some() || node.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = node.name_any();
    let err = |source| Error::Api {
        node: name.clone(),
        source,
    };
    let _held = ctx.allocating.lock().await;
    // Read the nodes fresh under the lock: the watch cache may not have seen the CIDR
    // written a moment ago for another node.
    let api: Api<Node> = Api::all(ctx.client.clone());
    let nodes = api.list(&ListParams::default()).await.map_err(err)?;
    if let Some(current) = nodes.items.iter().find(|n| n.name_any() == name) {
        if pod_cidr(current).is_some() {
            return Ok(Action::await_change());
        }
    }
    let used: HashSet<IpNetwork> = nodes
        .items
        .iter()
        .filter_map(|n| pod_cidr(n)?.parse().ok())
        .collect();
    let cidr = first_free(&ctx.cluster, &used).ok_or_else(|| Error::Exhausted {
        node: name.clone(),
        cluster: ctx.cluster,
    })?;
    let patch =
        serde_json::json!({"spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(err)?;
    tracing::info!(node = %name, %cidr, "assigned pod CIDR");
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_are_handed_out_in_order_and_skip_used_ones() {
        let cluster = net("10.42.0.0/16");
        let mut used = HashSet::new();
        assert_eq!(first_free(&cluster, &used), Some(net("10.42.0.0/24")));
        used.insert(net("10.42.0.0/24"));
        used.insert(net("10.42.2.0/24"));
        assert_eq!(first_free(&cluster, &used), Some(net("10.42.1.0/24")));
        used.insert(net("10.42.1.0/24"));
        assert_eq!(first_free(&cluster, &used), Some(net("10.42.3.0/24")));
    }

    #[test]
    fn a_full_cluster_cidr_is_reported() {
        let cluster = net("10.42.0.0/23");
        let used: HashSet<_> = [net("10.42.0.0/24"), net("10.42.1.0/24")].into();
        assert_eq!(first_free(&cluster, &used), None);
        // A cluster CIDR smaller than a node range is one range.
        let tiny = net("10.9.9.0/26");
        assert_eq!(first_free(&tiny, &HashSet::new()), Some(net("10.9.9.0/26")));
    }

    #[test]
    fn ipv6_nodes_get_a_64() {
        let cluster = net("fd00:42::/56");
        let used: HashSet<_> = [net("fd00:42::/64")].into();
        assert_eq!(first_free(&cluster, &used), Some(net("fd00:42:0:1::/64")));
    }
}
