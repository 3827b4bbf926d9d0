//! The node's heartbeat: a `Lease` in `kube-node-lease` named after the node, renewed every
//! 10 s, owned by the Node so it goes with it. The node lifecycle controller reads it; this
//! file never changes the Node itself.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::Resource;
use kube::api::{Api, PostParams};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const NAMESPACE: &str = "kube-node-lease";
/// How long a lease is good for; the lifecycle controller's grace period matches it.
pub const DURATION_SECONDS: i32 = 40;
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

fn fresh(node: &Node, name: &str) -> Lease {
    let owner = node.metadata.uid.clone().map(|uid| OwnerReference {
        api_version: Node::API_VERSION.into(),
        kind: Node::KIND.into(),
        name: name.into(),
        uid,
        ..Default::default()
    });
    Lease {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NAMESPACE.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        spec: None,
    }
}

/// Create or renew the lease once.
pub async fn renew(client: &kube::Client, node: &Node, name: &str) -> Result<(), kube::Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), NAMESPACE);
    let mut lease = match api.get_opt(name).await? {
        Some(l) => l,
        None => fresh(node, name),
    };
    let creating = lease.metadata.resource_version.is_none();
    lease.spec = Some(LeaseSpec {
        holder_identity: Some(name.into()),
        lease_duration_seconds: Some(DURATION_SECONDS),
        renew_time: Some(MicroTime(jiff::Timestamp::now())),
        ..lease.spec.unwrap_or_default()
    });
    if creating {
        api.create(&PostParams::default(), &lease).await?;
    } else {
        api.replace(name, &PostParams::default(), &lease).await?;
    }
    Ok(())
}

/// Renew every 10 s until cancelled; a failed renewal is retried sooner.
pub async fn run(client: kube::Client, node: Node, cancel: CancellationToken) {
    let name = node.metadata.name.clone().unwrap_or_default();
    loop {
        let wait = match renew(&client, &node, &name).await {
            Ok(()) => RENEW_EVERY,
            Err(e) => {
                tracing::warn!(node = %name, error = %e, "renewing the node lease");
                Duration::from_secs(2)
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
