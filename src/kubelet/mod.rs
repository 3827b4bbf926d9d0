//! The node agent (kubelet): registers this machine as a Node, renews its Lease, reports its
//! status and, once the node has a pod CIDR, runs the pods bound to it. It reaches the
//! cluster only through `kube::Client` (in-process in the server) and drives the machine only
//! through `sandbox` and `cni`, which know nothing of the API.

pub mod channel;
pub mod container;
pub mod env;
pub mod etc;
pub mod events;
pub mod exec;
pub mod hooks;
pub mod imagegc;
pub mod lease;
pub mod logs;
pub mod node;
pub mod pods;
pub mod portforward;
pub mod probes;
pub mod server;
pub mod spdy;
pub mod spdyexec;
pub mod status;
pub mod subpath;
pub mod tokens;
pub mod volumes;
pub mod worker;

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
    /// `<data-dir>/agent`: images, CNI state, pod directories.
    pub data_dir: PathBuf,
    /// Runtime state that must not survive a reboot: shim sockets, pinned netns.
    pub run_dir: PathBuf,
    /// Container logs, `/var/log/pods`.
    pub log_dir: PathBuf,
    pub cluster_cidr: ipnetwork::IpNetwork,
    pub cluster_dns: std::net::IpAddr,
    pub cluster_domain: String,
    /// The host's resolv.conf (`etc::host_resolv_conf`'s choice).
    pub resolv_conf: PathBuf,
    pub cni_bin_dirs: Vec<PathBuf>,
    /// `registries.yaml` (k3s's format); absent is fine.
    pub registries: PathBuf,
    /// The binary to run as `k1s shim`.
    pub shim_exe: PathBuf,
    /// A registry that makes no progress for this long fails the pull.
    pub image_pull_progress_deadline: Duration,
}

/// The agent's HTTPS server, bound before the node registers so its port is known.
pub struct NodeServer {
    pub listener: tokio::net::TcpListener,
    pub tls: std::sync::Arc<rustls::ServerConfig>,
}

/// The machinery every pod worker shares.
pub struct Runtime {
    pub client: kube::Client,
    pub node_name: String,
    pub node_ip: std::net::IpAddr,
    pub images: crate::sandbox::image::ImageStore,
    pub network: std::sync::Arc<dyn crate::cni::PodNetwork>,
    pub shim_exe: PathBuf,
    pub run_dir: PathBuf,
    pub state_dir: PathBuf,
    pub log_dir: PathBuf,
    pub dns: etc::Dns,
    pub cpus: usize,
    pub memory_bytes: u64,
}

/// Register the node and keep it alive until `cancel`. Returns once registration succeeded
/// so the caller can order its start-up on it; the rest runs in tasks added to `tasks`.
pub async fn start(
    client: kube::Client,
    cfg: AgentConfig,
    machine: Machine,
    server: NodeServer,
    tasks: &mut JoinSet<()>,
    cancel: CancellationToken,
) -> Result<(), kube::Error> {
    tasks.spawn(server::serve(
        server.listener,
        server.tls,
        client.clone(),
        cfg.log_dir.clone(),
        cfg.run_dir.clone(),
        cancel.clone(),
    ));
    let readiness = Readiness::not_ready("waiting for the node's pod CIDR");
    // Other writers (node IPAM, an administrator) may race with registration: retry.
    let mut attempt = 0;
    let node = loop {
        match node::register(&client, &cfg.node, &machine, &readiness).await {
            Ok(n) => break n,
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(e) => return Err(e),
        }
    };
    let (ready_tx, ready_rx) = tokio::sync::watch::channel(readiness.clone());
    tasks.spawn(lease::run(client.clone(), node, cancel.clone()));
    tasks.spawn(report_status(
        client.clone(),
        cfg.clone(),
        machine.clone(),
        readiness,
        ready_rx,
        cancel.clone(),
    ));
    tasks.spawn(run_pods(client, cfg, machine, ready_tx, cancel));
    Ok(())
}

/// Wait for the node's pod CIDR, set up the pod network and image store, then run the pods
/// bound to this node. Readiness says what it waits for.
async fn run_pods(
    client: kube::Client,
    cfg: AgentConfig,
    machine: Machine,
    ready: tokio::sync::watch::Sender<Readiness>,
    cancel: CancellationToken,
) {
    let api: Api<Node> = Api::all(client.clone());
    let selector = format!("metadata.name={}", cfg.node.name);
    let nodes = watcher(api, watcher::Config::default().fields(&selector))
        .default_backoff()
        .applied_objects();
    futures::pin_mut!(nodes);
    let pod_cidr = loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            n = nodes.next() => match n {
                Some(Ok(n)) => {
                    if let Some(c) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()).and_then(|c| c.parse::<ipnetwork::IpNetwork>().ok()) {
                        break c;
                    }
                }
                Some(Err(_)) => {}
                None => return,
            }
        }
    };
    let runtime = loop {
        match build_runtime(&client, &cfg, &machine, pod_cidr).await {
            Ok(rt) => break rt,
            Err(e) => {
                tracing::error!(error = %e, "the node cannot run pods");
                let _ = ready.send(Readiness::not_ready(e.clone()));
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(10)) => {}
                }
            }
        }
    };
    let _ = ready.send(Readiness::ready());
    tracing::info!(node = %cfg.node.name, %pod_cidr, "running pods");
    let runtime = std::sync::Arc::new(runtime);
    tokio::join!(
        imagegc::run(runtime.clone(), cancel.clone()),
        pods::run(runtime, cancel),
    );
}

async fn build_runtime(
    client: &kube::Client,
    cfg: &AgentConfig,
    machine: &Machine,
    pod_cidr: ipnetwork::IpNetwork,
) -> Result<Runtime, String> {
    use crate::cni::{Cni, CniConfig};
    use crate::sandbox::image::{ImageStore, Platform, Registries};
    let mut net = CniConfig::new(cfg.data_dir.join("cni"), pod_cidr, cfg.cluster_cidr);
    if !cfg.cni_bin_dirs.is_empty() {
        net.bin_dirs = cfg.cni_bin_dirs.clone();
    }
    let cni = Cni::new(net).map_err(|e| format!("container network not ready: {e}"))?;
    cni.preflight()
        .await
        .map_err(|e| format!("container network not ready: {e}"))?;
    let registries = if cfg.registries.exists() {
        Registries::load(&cfg.registries).map_err(|e| e.to_string())?
    } else {
        Registries::default()
    };
    let images = ImageStore::open_with(
        &cfg.data_dir.join("images-store"),
        registries,
        Platform::host(),
        cfg.image_pull_progress_deadline,
    )
    .map_err(|e| format!("opening the image store: {e}"))?;
    import_tarballs(&images, &cfg.data_dir.join("images"));
    Ok(Runtime {
        client: client.clone(),
        node_name: cfg.node.name.clone(),
        node_ip: cfg.node.ip,
        images,
        network: std::sync::Arc::new(cni),
        shim_exe: cfg.shim_exe.clone(),
        run_dir: cfg.run_dir.clone(),
        state_dir: cfg.data_dir.clone(),
        log_dir: cfg.log_dir.clone(),
        dns: etc::Dns {
            cluster_dns: cfg.cluster_dns,
            cluster_domain: cfg.cluster_domain.clone(),
            host_resolv_conf: cfg.resolv_conf.clone(),
        },
        cpus: machine.cpus,
        memory_bytes: machine.memory_bytes,
    })
}

/// Import the image tarballs of `<data-dir>/agent/images` in the background, so an
/// air-gapped node has its images without delaying readiness.
fn import_tarballs(images: &crate::sandbox::image::ImageStore, dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    let images = images.clone();
    tokio::spawn(async move {
        for f in files {
            match images.import(&f).await {
                Ok(list) => {
                    tracing::info!(file = %f.display(), images = list.len(), "imported images")
                }
                Err(e) => tracing::warn!(file = %f.display(), error = %e, "importing images"),
            }
        }
    });
}

/// Report the node's status when its readiness changes, and at least every minute (this
/// also re-creates a Node an administrator deleted).
async fn report_status(
    client: kube::Client,
    cfg: AgentConfig,
    machine: Machine,
    mut reported: Readiness,
    mut ready: tokio::sync::watch::Receiver<Readiness>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(STATUS_REPORT_EVERY);
    tick.tick().await;
    loop {
        let force = tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => true,
            r = ready.changed() => {
                if r.is_err() {
                    return;
                }
                false
            }
        };
        let readiness = ready.borrow_and_update().clone();
        if readiness == reported && !force {
            continue;
        }
        match node::register(&client, &cfg.node, &machine, &readiness).await {
            Ok(_) => {
                if readiness != reported {
                    tracing::info!(node = %cfg.node.name, ready = readiness.ready, "node status changed");
                }
                reported = readiness;
            }
            Err(e) => tracing::warn!(node = %cfg.node.name, error = %e, "reporting node status"),
        }
    }
}
