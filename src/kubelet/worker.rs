//! One pod's worker: level-triggered, it compares the pod's spec with what its shim reports
//! and acts: sandbox (netns + CNI), volumes, images, containers in upstream's order (init
//! containers one by one, sidecars, then the rest), restarts with back-off, status, and on
//! deletion the graceful stop and the final removal of the API object. It owns nothing of
//! other pods and keeps no state a restart would miss: everything is read back from the shim.

use super::probes::Prober;
use super::Runtime;
use crate::sandbox::shim::{ContainerState, ShimClient, Status};
use k8s_openapi::api::core::v1::Pod;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mod containers;
mod images;
mod inputs;
mod probing;
mod report;
mod sandbox;
mod stopping;
mod teardown;

use report::time;

/// Longest back-off between restarts of a crashing container, as upstream.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// How often a running pod is looked at when nothing happens (exits are seen this fast).
const RESYNC: Duration = Duration::from_secs(1);

/// Restart back-off: the first restart is immediate, then 10 s, doubling, to 5 minutes.
pub fn backoff(restarts: u32) -> Duration {
    if restarts == 0 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1u64 << (restarts - 1).min(16));
    Duration::from_secs(secs).min(MAX_BACKOFF)
}

/// The container name and restart count a shim container belongs to, read back from its log
/// path (`.../<container>/<restart>.log`), so nothing else needs persisting.
pub(crate) fn identify(s: &ContainerState) -> Option<(String, u32)> {
    let restart = s.log_path.file_stem()?.to_str()?.parse().ok()?;
    let name = s.log_path.parent()?.file_name()?.to_str()?.to_string();
    Some((name, restart))
}

/// What a container needs before it can start, when it cannot.
#[derive(Debug, Clone)]
struct Waiting {
    reason: &'static str,
    message: String,
}

pub struct Worker {
    rt: Arc<Runtime>,
    uid: String,
    shim: Option<ShimClient>,
    pod_ips: Vec<IpAddr>,
    /// Per container: why it waits, and until when an image pull is backed off.
    waiting: HashMap<String, Waiting>,
    /// Per container: pulls fail until this instant, how many failed, and the last error.
    pull_backoff: HashMap<String, (Instant, u32, String)>,
    prober: Prober,
    /// Per container name: whether its probes say it is ready (absent: no verdict yet).
    probe_ready: HashMap<String, bool>,
    /// When the ConfigMap, Secret and downward API volumes were last brought up to date.
    volumes_refreshed: Option<Instant>,
    /// The last sandbox error reported, so each is reported once.
    sandbox_error: Option<String>,
    /// Service-account tokens of the pod's projected volumes.
    tokens: super::tokens::TokenCache,
    /// Containers being stopped (preStop, SIGTERM, SIGKILL), by id, so a stop is not begun
    /// twice.
    stopping: HashSet<String>,
    /// Cancelled once the pod is being deleted: cuts short what could take long before it
    /// (an image pull, a postStart hook) so the deletion goes ahead.
    gone: CancellationToken,
    /// Cancelled once the pod is force-deleted (grace 0, or gone from the API): cuts short
    /// the preStop hooks of a graceful stop under way.
    forced: CancellationToken,
}

impl Worker {
    pub fn new(rt: Arc<Runtime>, uid: String) -> Worker {
        Worker {
            rt,
            uid,
            shim: None,
            pod_ips: Vec::new(),
            waiting: HashMap::new(),
            pull_backoff: HashMap::new(),
            prober: Prober::default(),
            probe_ready: HashMap::new(),
            volumes_refreshed: None,
            sandbox_error: None,
            tokens: Default::default(),
            stopping: HashSet::new(),
            gone: CancellationToken::new(),
            forced: CancellationToken::new(),
        }
    }

    /// The token whose cancellation tells this worker its pod is going away.
    pub fn gone(&self) -> CancellationToken {
        self.gone.clone()
    }

    /// The token whose cancellation tells this worker its pod is going away at once.
    pub fn forced(&self) -> CancellationToken {
        self.forced.clone()
    }

    fn shim_dir(&self) -> PathBuf {
        self.rt.run_dir.join("pods").join(&self.uid)
    }

    fn netns_path(&self) -> PathBuf {
        self.rt.run_dir.join("netns").join(&self.uid)
    }

    fn pod_dir(&self) -> PathBuf {
        self.rt.state_dir.join("pods").join(&self.uid)
    }

    fn log_dir(&self, pod: &Pod) -> PathBuf {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or("");
        self.rt.log_dir.join(format!("{ns}_{name}_{}", self.uid))
    }

    /// Bring the node in line with `pod`; returns when to look again (None: the worker is done).
    pub async fn sync(&mut self, pod: &Pod) -> Option<Duration> {
        if pod.metadata.deletion_timestamp.is_some() {
            let grace = pod
                .metadata
                .deletion_grace_period_seconds
                .unwrap_or(30)
                .max(0) as u64;
            let grace = self.pre_stop_all(pod, Duration::from_secs(grace)).await;
            self.stop(grace).await;
            self.finish_deletion(pod).await;
            return Some(Duration::from_secs(5));
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            // Done for good: nothing runs, the network is released, logs stay. Sidecars
            // being stopped (preStop, SIGTERM, SIGKILL after the grace period) finish first.
            if self.shim.is_some() || self.shim_dir().exists() {
                if self.still_stopping().await {
                    return Some(Duration::from_millis(500));
                }
                self.stop(Duration::from_secs(0)).await;
            }
            return Some(Duration::from_secs(3600));
        }
        match self.run(pod).await {
            Ok(next) => Some(next),
            Err(e) => {
                tracing::warn!(pod = %pod_key(pod), error = %e, "pod sync failed");
                Some(Duration::from_secs(2))
            }
        }
    }

    async fn run(&mut self, pod: &Pod) -> Result<Duration, String> {
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network == Some(true);
        if let Err(e) = self.ensure_network(pod, host_network).await {
            self.sandbox_failed(pod, &e).await;
            return Err(e);
        }
        self.ensure_shim().await?;
        let states = self.shim_state().await?;

        // Group what the shim has by container, latest restart last.
        let mut by_name: BTreeMap<String, Vec<(u32, ContainerState)>> = BTreeMap::new();
        for s in states {
            if let Some((name, restart)) = identify(&s) {
                by_name.entry(name).or_default().push((restart, s));
            }
        }
        for v in by_name.values_mut() {
            v.sort_by_key(|(r, _)| *r);
        }
        self.refresh_volumes(pod).await;
        self.probe(pod, &by_name).await;

        let restart_policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let mut next = RESYNC;
        let mut terminal: Option<bool> = None;
        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            let sidecar = c.restart_policy.as_deref() == Some("Always");
            let latest = by_name.get(&c.name).and_then(|v| v.last());
            match latest.map(|(_, s)| s) {
                Some(s) if s.status != Status::Exited => {
                    if !sidecar {
                        initialized = false;
                        break;
                    }
                }
                Some(s) if !sidecar && s.exit_code == Some(0) => {}
                Some(s) => {
                    if !sidecar && restart_policy == "Never" {
                        terminal = Some(true);
                        initialized = false;
                        break;
                    }
                    let restarts = latest.map(|(r, _)| *r).unwrap_or(0);
                    self.restart_later_or_now(pod, c, restarts, s, &mut next)
                        .await;
                    initialized = false;
                    if !sidecar {
                        break;
                    }
                }
                None => {
                    self.start(pod, c, 0, host_network).await;
                    initialized = false;
                    break;
                }
            }
        }
        if initialized && terminal.is_none() {
            let mut all_done = true;
            for c in &spec.containers {
                let latest = by_name.get(&c.name).and_then(|v| v.last());
                match latest {
                    None => {
                        all_done = false;
                        self.start(pod, c, 0, host_network).await;
                    }
                    Some((_, s)) if s.status != Status::Exited => all_done = false,
                    Some((restarts, s)) => {
                        let code = s.exit_code.unwrap_or(137);
                        let again = match restart_policy.as_str() {
                            "Never" => false,
                            "OnFailure" => code != 0,
                            _ => true,
                        };
                        if again {
                            all_done = false;
                            let (restarts, s) = (*restarts, s.clone());
                            self.restart_later_or_now(pod, c, restarts, &s, &mut next)
                                .await;
                        }
                    }
                }
            }
            if all_done && !spec.containers.is_empty() {
                terminal = Some(true);
            }
        }
        if terminal == Some(true) {
            // Sidecars end with the pod.
            self.kill_running(
                pod,
                &by_name,
                &spec.init_containers.clone().unwrap_or_default(),
            )
            .await;
        }

        // Observe again after acting, so the status shows what was just started.
        let states = self.shim_state().await?;
        let view = self.view(pod, &states, terminal, host_network);
        self.report(pod, &view).await?;
        Ok(next)
    }
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}
