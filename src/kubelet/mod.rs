//! The node agent (kubelet): registers this machine as a Node, renews its Lease, reports its
//! status and, once the node has a pod CIDR, runs the pods bound to it. It reaches the
//! cluster only through `kube::Client` (in-process in the server) and drives the machine only
//! through `sandbox` and `cni`, which know nothing of the API.

// pub mod container;
pub mod env;
pub mod etc;
pub mod lease;
pub mod node;
pub mod status;
pub mod volumes;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use node::{Machine, NodeConfig, Readiness};
use std::path::PathBuf;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often the agent re-reports its status when nothing changed (upstream's
/// nodeStatusReportFrequency is 5 minutes; the Lease is the heartbeat).
const STATUS_REPORT_EVERY: Duration = Duration::from_secs(60);

/// What the agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub node: NodeConfig,
    pub data_dir: PathBuf,
}

/// Register the node and keep it alive until `cancel`. Returns once registration succeeded
/// so the caller can order its start-up on it; the rest runs in tasks added to `tasks`.
pub async fn start(
    client: kube::Client,
    cfg: AgentConfig,
    machine: Machine,
    tasks: &mut JoinSet<()>,
    cancel: CancellationToken,
) -> Result<(), kube::Error> {
    let readiness = Readiness::not_ready("waiting for the node's pod CIDR");
    let node = node::register(&client, &cfg.node, &machine, &readiness).await?;
    tasks.spawn(lease::run(client.clone(), node, cancel.clone()));
    tasks.spawn(report_status(client, cfg, machine, readiness, cancel));
    Ok(())
}

/// Why the node is not ready yet, or that it is.
fn readiness_of(node: &Node) -> Readiness {
    match node.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()) {
        None => Readiness::not_ready("waiting for the node's pod CIDR"),
        Some(_) => Readiness::ready(),
    }
}

/// Re-register when the node's readiness changes (watched), and at least every minute.
async fn report_status(
    client: kube::Client,
    cfg: AgentConfig,
    machine: Machine,
    mut reported: Readiness,
    cancel: CancellationToken,
) {
    let api: Api<Node> = Api::all(client.clone());
    let selector = format!("metadata.name={}", cfg.node.name);
    let changes = watcher(api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(changes);
    let mut tick = tokio::time::interval(STATUS_REPORT_EVERY);
    tick.tick().await;
    let mut readiness = reported.clone();
    loop {
        let force = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => true,
            ev = changes.next() => match ev {
                Some(Ok(node)) => {
                    readiness = readiness_of(&node);
                    false
                }
                Some(Err(e)) => {
                    tracing::debug!(node = %cfg.node.name, error = %e, "watching own node");
                    false
                }
                None => return,
            },
        };
        if readiness == reported && !force {
            continue;
        }
        match node::register(&client, &cfg.node, &machine, &readiness).await {
            Ok(_) => {
                if readiness != reported {
                    tracing::info!(node = %cfg.node.name, ready = readiness.ready, "node status changed");
                }
                reported = readiness.clone();
            }
            Err(e) => tracing::warn!(node = %cfg.node.name, error = %e, "reporting node status"),
        }
    }
}
