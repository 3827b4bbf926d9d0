//! One pod's worker: level-triggered, it compares the pod's spec with what its shim reports
//! and acts: sandbox (netns + CNI), volumes, images, containers in upstream's order (init
//! containers one by one, sidecars, then the rest), restarts with back-off, status, and on
//! deletion the graceful stop and the final removal of the API object. It owns nothing of
//! other pods and keeps no state a restart would miss: everything is read back from the shim.

use super::container::{self, Context};
use super::env::{self, Sources};
use super::events;
use super::probes::Prober;
use super::status::{self, Instance, Observed, PodView};
use super::volumes;
use super::Runtime;
use crate::cni::{netns, PodNet, PortMapping, Protocol};
use crate::sandbox::image::{parse_docker_config_json, Image, PullPolicy, RegistryAuth};
use crate::sandbox::shim::{ContainerState, ShimClient, Status};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

mod stopping;

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

fn time(s: &Option<String>) -> Option<Time> {
    s.as_deref()?.parse::<jiff::Timestamp>().ok().map(Time)
}

fn instance(s: &ContainerState) -> Instance {
    Instance {
        id: s.id.clone(),
        running: s.status != Status::Exited,
        exit_code: s.exit_code,
        started_at: time(&s.started_at).or_else(|| time(&Some(s.created_at.clone()))),
        finished_at: time(&s.finished_at),
        oom_killed: s.oom_killed,
        message: None,
    }
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

    /// Write the pod's status when it differs from what the API has.
    async fn report(&self, pod: &Pod, view: &PodView) -> Result<(), String> {
        let new = status::compute(pod, view);
        let changed = pod
            .status
            .as_ref()
            .is_none_or(|old| !same_ignoring_time(old, &new));
        if changed {
            let api: Api<Pod> = Api::namespaced(
                self.rt.client.clone(),
                pod.metadata.namespace.as_deref().unwrap_or("default"),
            );
            let patch = serde_json::json!({"status": new});
            api.patch_status(
                pod.metadata.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| format!("updating status: {e}"))?;
        }
        Ok(())
    }

    /// The sandbox could not be made: say so once per distinct error (FailedCreatePodSandBox,
    /// as upstream), leave nothing half made, and show the pod as still creating.
    async fn sandbox_failed(&mut self, pod: &Pod, error: &str) {
        if self.sandbox_error.as_deref() != Some(error) {
            self.sandbox_error = Some(error.to_string());
            let node = self.rt.node_name.clone();
            let msg = format!("Failed to create pod sandbox: {error}");
            events::record(
                &self.rt.client,
                &node,
                pod,
                None,
                true,
                "FailedCreatePodSandBox",
                &msg,
            )
            .await;
        }
        let net = PodNet::new(self.uid.clone(), self.netns_path());
        let _ = self.rt.network.teardown(&net).await;
        let p = self.netns_path();
        let _ = tokio::task::spawn_blocking(move || netns::remove(&p)).await;
        self.pod_ips.clear();
        let view = PodView {
            sandbox_ready: false,
            host_ip: Some(self.rt.node_ip),
            ..Default::default()
        };
        let _ = self.report(pod, &view).await;
    }

    fn view(
        &self,
        pod: &Pod,
        states: &[ContainerState],
        terminal: Option<bool>,
        host_network: bool,
    ) -> PodView {
        let spec = pod.spec.clone().unwrap_or_default();
        let mut view = PodView {
            sandbox_ready: true,
            pod_ips: if host_network {
                vec![self.rt.node_ip]
            } else {
                self.pod_ips.clone()
            },
            host_ip: Some(self.rt.node_ip),
            terminal,
            ..Default::default()
        };
        let mut by_name: BTreeMap<String, Vec<(u32, &ContainerState)>> = BTreeMap::new();
        for s in states {
            if let Some((name, r)) = identify(s) {
                by_name.entry(name).or_default().push((r, s));
            }
        }
        let all: Vec<&Container> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .collect();
        for c in all {
            let mut list = by_name.remove(&c.name).unwrap_or_default();
            list.sort_by_key(|(r, _)| *r);
            let latest = list.last();
            let previous = list.len().checked_sub(2).and_then(|i| list.get(i));
            let image_id = c
                .image
                .as_deref()
                .and_then(|i| self.rt.images.lookup(i))
                .map(|i| image_id(&i))
                .unwrap_or_default();
            let waiting = self
                .waiting
                .get(&c.name)
                .map(|w| (w.reason.to_string(), Some(w.message.clone())));
            let running = latest.is_some_and(|(_, s)| s.status != Status::Exited);
            let probed = c.readiness_probe.is_some() || c.startup_probe.is_some();
            let ready =
                running && (!probed || self.probe_ready.get(&c.name).copied().unwrap_or(false));
            let with_message = |s: &ContainerState| {
                let mut i = instance(s);
                if s.status == Status::Exited {
                    i.message = self.termination_message(c, s);
                }
                i
            };
            view.containers.insert(
                c.name.clone(),
                Observed {
                    latest: latest.map(|(_, s)| with_message(s)),
                    previous: previous.map(|(_, s)| with_message(s)),
                    restart_count: latest.map(|(r, _)| *r as i32).unwrap_or(0),
                    waiting: if running { None } else { waiting },
                    image_id,
                    ready,
                },
            );
        }
        view
    }

    /// Restart `c` now if its back-off has passed, else say CrashLoopBackOff and when to look.
    async fn restart_later_or_now(
        &mut self,
        pod: &Pod,
        c: &Container,
        restarts: u32,
        last: &ContainerState,
        next: &mut Duration,
    ) {
        let delay = backoff(restarts);
        let finished = time(&last.finished_at)
            .map(|t| t.0)
            .unwrap_or_else(jiff::Timestamp::now);
        let elapsed = jiff::Timestamp::now().duration_since(finished);
        let elapsed = Duration::try_from(elapsed).unwrap_or_default();
        if elapsed >= delay {
            let host_network = pod.spec.as_ref().and_then(|s| s.host_network) == Some(true);
            self.start(pod, c, restarts + 1, host_network).await;
        } else {
            self.waiting.insert(
                c.name.clone(),
                Waiting {
                    reason: "CrashLoopBackOff",
                    message: format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        delay.as_secs(),
                        c.name,
                        pod.metadata.name.as_deref().unwrap_or(""),
                        pod.metadata.namespace.as_deref().unwrap_or(""),
                        self.uid
                    ),
                },
            );
            *next = (*next).min(delay - elapsed).max(Duration::from_millis(100));
        }
    }

    async fn ensure_network(&mut self, pod: &Pod, host_network: bool) -> Result<(), String> {
        let dir = self.pod_dir();
        if host_network {
            self.write_etc(pod, Some(self.rt.node_ip), true)?;
            return Ok(());
        }
        if !self.pod_ips.is_empty() && netns::exists(&self.netns_path()) {
            return Ok(());
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let began = Instant::now();
        let path = self.netns_path();
        let p = path.clone();
        tokio::task::spawn_blocking(move || netns::create(&p))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("creating the network namespace: {e}"))?;
        let netns_done = Instant::now();
        let net = self.pod_net(pod);
        let status = self
            .rt
            .network
            .setup(&net)
            .await
            .map_err(|e| format!("setting up the pod network: {e}"))?;
        tracing::info!(
            pod = %pod_key(pod),
            netns_ms = (netns_done - began).as_secs_f64() * 1e3,
            cni_ms = netns_done.elapsed().as_secs_f64() * 1e3,
            "pod sandbox ready"
        );
        self.pod_ips = status.ips.clone();
        self.write_etc(pod, status.ips.first().copied(), false)?;
        Ok(())
    }

    fn pod_net(&self, pod: &Pod) -> PodNet {
        let mut net = PodNet::new(self.uid.clone(), self.netns_path());
        for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
            for p in c.ports.iter().flatten() {
                let Some(hp) = p.host_port.filter(|h| *h > 0) else {
                    continue;
                };
                net.port_mappings.push(PortMapping {
                    host_port: hp as u16,
                    container_port: p.container_port as u16,
                    protocol: match p.protocol.as_deref() {
                        Some("UDP") => Protocol::Udp,
                        Some("SCTP") => Protocol::Sctp,
                        _ => Protocol::Tcp,
                    },
                    host_ip: p.host_ip.as_deref().and_then(|h| h.parse().ok()),
                });
            }
        }
        net
    }

    fn write_etc(&self, pod: &Pod, ip: Option<IpAddr>, host_network: bool) -> Result<(), String> {
        let spec = pod.spec.clone().unwrap_or_default();
        let dir = self.pod_dir().join("etc");
        let hostname = self.hostname(pod, host_network);
        let fqdn = spec.subdomain.as_ref().map(|sd| {
            format!(
                "{hostname}.{sd}.{}.svc.{}",
                pod.metadata.namespace.as_deref().unwrap_or("default"),
                self.rt.dns.cluster_domain
            )
        });
        let aliases: Vec<(String, Vec<String>)> = spec
            .host_aliases
            .iter()
            .flatten()
            .map(|a| (a.ip.clone(), a.hostnames.clone().unwrap_or_default()))
            .collect();
        let hosts = if host_network {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            super::etc::hosts(ip, &hostname, fqdn.as_deref(), &aliases)
        };
        let resolv = super::etc::resolv_conf(
            &self.rt.dns,
            spec.dns_policy.as_deref().unwrap_or("ClusterFirst"),
            host_network,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            spec.dns_config.as_ref(),
        );
        let w = |name: &str, content: &str| {
            super::etc::write(&dir, name, content)
                .map_err(|e| format!("writing {}/{name}: {e}", dir.display()))
        };
        w("hosts", &hosts)?;
        w("resolv.conf", &resolv)?;
        w("hostname", &format!("{hostname}\n"))?;
        Ok(())
    }

    fn hostname(&self, pod: &Pod, host_network: bool) -> String {
        if host_network {
            return nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_default();
        }
        let spec = pod.spec.as_ref();
        let h = spec
            .and_then(|s| s.hostname.clone())
            .or_else(|| pod.metadata.name.clone())
            .unwrap_or_default();
        h.chars()
            .take(63)
            .collect::<String>()
            .trim_end_matches(['-', '.'])
            .to_string()
    }

    async fn ensure_shim(&mut self) -> Result<(), String> {
        if let Some(shim) = self.shim.as_mut() {
            if shim.ping().await.is_ok() {
                return Ok(());
            }
            self.shim = None;
        }
        let dir = self.shim_dir();
        let shim = match ShimClient::connect(&dir).await {
            Ok(s) => s,
            Err(_) => ShimClient::spawn(&self.rt.shim_exe, &dir)
                .await
                .map_err(|e| format!("starting the pod's shim: {e}"))?,
        };
        self.shim = Some(shim);
        Ok(())
    }

    async fn shim_state(&mut self) -> Result<Vec<ContainerState>, String> {
        let shim = self.shim.as_mut().ok_or("no shim")?;
        shim.state().await.map_err(|e| e.to_string())
    }

    /// Start container `c` as restart number `restart`; on failure record why it waits.
    async fn start(&mut self, pod: &Pod, c: &Container, restart: u32, host_network: bool) {
        match self.try_start(pod, c, restart, host_network).await {
            Ok(()) => {
                self.waiting.remove(&c.name);
                self.pull_backoff.remove(&c.name);
            }
            Err(w) => {
                tracing::info!(pod = %pod_key(pod), container = %c.name, reason = w.reason, message = %w.message, "container not started");
                self.waiting.insert(c.name.clone(), w);
            }
        }
    }

    async fn try_start(
        &mut self,
        pod: &Pod,
        c: &Container,
        restart: u32,
        host_network: bool,
    ) -> Result<(), Waiting> {
        let began = Instant::now();
        let image = self.pull(pod, c).await?;
        let config_err = |message: String| Waiting {
            reason: "CreateContainerConfigError",
            message,
        };
        let sources = self.sources(pod, c).await.map_err(config_err)?;
        let env = env::build(
            pod,
            c,
            &image.config.env,
            &sources,
            self.rt.cpus,
            self.rt.memory_bytes,
        )
        .map_err(|e| config_err(e.to_string()))?;
        let vols = volumes::prepare(pod, &self.pod_dir(), &sources)
            .map_err(|e| config_err(e.to_string()))?;

        let id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
        let container_dir = self.pod_dir().join("containers").join(&id);
        let create_err = |message: String| Waiting {
            reason: "CreateContainerError",
            message,
        };
        std::fs::create_dir_all(&container_dir)
            .map_err(|e| create_err(format!("{}: {e}", container_dir.display())))?;
        let rootfs = self
            .rt
            .images
            .mount_rootfs(&image, &container_dir)
            .map_err(|e| create_err(e.to_string()))?;
        let etc = self.pod_dir().join("etc");
        let mut etc_files = vec![
            ("/etc/hosts".to_string(), etc.join("hosts")),
            ("/etc/resolv.conf".to_string(), etc.join("resolv.conf")),
            ("/etc/hostname".to_string(), etc.join("hostname")),
        ];
        // The termination message file, read back when the container ends.
        let term = self.termination_file(&id);
        if let Some(dir) = term.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| create_err(format!("{}: {e}", dir.display())))?;
        }
        std::fs::write(&term, b"").map_err(|e| create_err(format!("{}: {e}", term.display())))?;
        std::fs::set_permissions(&term, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .map_err(|e| create_err(format!("{}: {e}", term.display())))?;
        etc_files.push((
            c.termination_message_path
                .clone()
                .unwrap_or_else(|| "/dev/termination-log".into()),
            term,
        ));
        let cx = Context {
            pod,
            id: &id,
            rootfs,
            image: &image.config,
            env,
            volumes: &vols,
            netns: (!host_network).then(|| self.netns_path()),
            etc_files,
            hostname: self.hostname(pod, host_network),
            cgroup_parent: format!("/kubepods/pod{}", self.uid),
            subpaths: self.pod_dir().join(super::subpath::DIR),
        };
        let spec = container::build(c, &cx).map_err(|e| config_err(e.to_string()))?;
        let log_path = self
            .log_dir(pod)
            .join(&c.name)
            .join(format!("{restart}.log"));
        if let Some(parent) = log_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| create_err(format!("{}: {e}", parent.display())))?;
        }
        let shim = self
            .shim
            .as_mut()
            .ok_or_else(|| create_err("no shim".into()))?;
        let created = Instant::now();
        shim.create(&spec, &log_path, None)
            .await
            .map_err(|e| create_err(e.to_string()))?;
        let started = Instant::now();
        shim.start(&id).await.map_err(|e| Waiting {
            reason: "RunContainerError",
            message: e.to_string(),
        })?;
        tracing::info!(
            pod = %pod_key(pod),
            container = %c.name,
            prepare_ms = (created - began).as_secs_f64() * 1e3,
            create_ms = (started - created).as_secs_f64() * 1e3,
            start_ms = started.elapsed().as_secs_f64() * 1e3,
            "container started"
        );
        let node = self.rt.node_name.clone();
        events::record(
            &self.rt.client,
            &node,
            pod,
            Some(&c.name),
            false,
            "Created",
            &format!("Created container {}", c.name),
        )
        .await;
        events::record(
            &self.rt.client,
            &node,
            pod,
            Some(&c.name),
            false,
            "Started",
            &format!("Started container {}", c.name),
        )
        .await;
        self.prune(pod, c, restart).await;
        self.post_start(pod, c, &id).await
    }

    fn termination_file(&self, id: &str) -> PathBuf {
        self.pod_dir().join("termination").join(id)
    }

    /// The message a finished container left: its termination message file, or with
    /// `FallbackToLogsOnError` and a failure, the end of its log (upstream's limits).
    fn termination_message(&self, c: &Container, s: &ContainerState) -> Option<String> {
        let mut msg = std::fs::read(self.termination_file(&s.id)).unwrap_or_default();
        msg.truncate(4096);
        let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        if msg.is_empty() && fallback && s.exit_code.unwrap_or(1) != 0 {
            let text = std::fs::read_to_string(&s.log_path).unwrap_or_default();
            let lines: Vec<String> = text
                .lines()
                .filter_map(|l| super::logs::parse(l).map(|r| r.content.to_string()))
                .collect();
            let tail = lines[lines.len().saturating_sub(80)..].join("\n");
            let start = tail.len().saturating_sub(2048);
            let start = (start..=tail.len())
                .find(|i| tail.is_char_boundary(*i))
                .unwrap_or(0);
            msg = tail.as_bytes()[start..].to_vec();
        }
        (!msg.is_empty()).then(|| String::from_utf8_lossy(&msg).into_owned())
    }

    /// Bring ConfigMap, Secret and downward API volumes up to date every 10 s; the files
    /// change in place, atomically, under the containers' feet as upstream's do.
    async fn refresh_volumes(&mut self, pod: &Pod) {
        if self
            .volumes_refreshed
            .is_some_and(|t| t.elapsed() < Duration::from_secs(10))
        {
            return;
        }
        self.volumes_refreshed = Some(Instant::now());
        if !self.pod_dir().join("volumes").exists() {
            return;
        }
        let none = Container::default();
        match self.sources(pod, &none).await {
            Ok(src) => {
                if let Err(e) = volumes::prepare(pod, &self.pod_dir(), &src) {
                    tracing::debug!(pod = %pod_key(pod), error = %e, "refreshing volumes");
                }
            }
            Err(e) => tracing::debug!(pod = %pod_key(pod), error = %e, "refreshing volumes"),
        }
    }

    /// Run the due probes of running containers; restart those whose liveness or startup
    /// probe failed for good.
    async fn probe(&mut self, pod: &Pod, by_name: &BTreeMap<String, Vec<(u32, ContainerState)>>) {
        let spec = pod.spec.clone().unwrap_or_default();
        let ip = if spec.host_network == Some(true) {
            self.rt.node_ip
        } else {
            match self.pod_ips.first() {
                Some(ip) => *ip,
                None => return,
            }
        };
        let live: Vec<String> = by_name
            .values()
            .filter_map(|v| v.last())
            .filter(|(_, s)| s.status == Status::Running)
            .map(|(_, s)| s.id.clone())
            .collect();
        self.prober.retain(&live);
        self.stopping.retain(|id| live.contains(id));
        let all: Vec<Container> = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .cloned()
            .collect();
        for c in &all {
            let probed = c.liveness_probe.is_some()
                || c.readiness_probe.is_some()
                || c.startup_probe.is_some();
            let Some((_, s)) = by_name.get(&c.name).and_then(|v| v.last()) else {
                continue;
            };
            if !probed || s.status != Status::Running {
                self.probe_ready.remove(&c.name);
                continue;
            }
            let started = time(&s.started_at)
                .map(|t| t.0)
                .unwrap_or_else(jiff::Timestamp::now);
            let age = Duration::try_from(jiff::Timestamp::now().duration_since(started))
                .unwrap_or_default();
            let dir = self.shim_dir();
            let id = s.id.clone();
            let mut exec = move |cmd: Vec<String>,
                                 timeout: Duration|
                  -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<i32, String>> + Send>,
            > {
                let (dir, id) = (dir.clone(), id.clone());
                Box::pin(async move { exec_probe(&dir, &id, cmd, timeout).await })
            };
            let v = self.prober.check(c, &s.id, age, ip, &mut exec).await;
            self.probe_ready.insert(c.name.clone(), v.ready);
            let node = self.rt.node_name.clone();
            for u in &v.unhealthy {
                events::record(
                    &self.rt.client,
                    &node,
                    pod,
                    Some(&c.name),
                    true,
                    "Unhealthy",
                    u,
                )
                .await;
            }
            if let Some(msg) = v.kill {
                events::record(
                    &self.rt.client,
                    &node,
                    pod,
                    Some(&c.name),
                    false,
                    "Killing",
                    &msg,
                )
                .await;
                self.kill_gracefully(pod, c, &s.id).await;
            }
        }
    }

    /// Keep only the current and the previous instance of a container (for `logs --previous`).
    async fn prune(&mut self, pod: &Pod, c: &Container, current: u32) {
        let Ok(states) = self.shim_state().await else {
            return;
        };
        let Some(shim) = self.shim.as_mut() else {
            return;
        };
        for s in states {
            if let Some((name, restart)) = identify(&s) {
                if name == c.name && restart + 1 < current && s.status == Status::Exited {
                    let _ = shim.remove(&s.id).await;
                    let dir = self
                        .rt
                        .state_dir
                        .join("pods")
                        .join(&self.uid)
                        .join("containers")
                        .join(&s.id);
                    let _ = crate::sandbox::image::ImageStore::unmount_rootfs(&dir);
                    let _ = std::fs::remove_dir_all(&dir);
                    let _ = std::fs::remove_file(&s.log_path);
                }
            }
        }
        let _ = pod;
    }

    async fn pull(&mut self, pod: &Pod, c: &Container) -> Result<Image, Waiting> {
        let name = c.image.clone().unwrap_or_default();
        let policy = match c.image_pull_policy.as_deref() {
            Some("Always") => PullPolicy::Always,
            Some("Never") => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        };
        if let Some((until, _, last)) = self.pull_backoff.get(&c.name) {
            if Instant::now() < *until {
                return Err(Waiting {
                    reason: "ImagePullBackOff",
                    message: format!("Back-off pulling image \"{name}\": {last}"),
                });
            }
        }
        let auth = self.pull_secrets(pod).await;
        let node = self.rt.node_name.clone();
        let present = policy != PullPolicy::Always && self.rt.images.lookup(&name).is_some();
        if !present && policy != PullPolicy::Never {
            events::record(
                &self.rt.client,
                &node,
                pod,
                Some(&c.name),
                false,
                "Pulling",
                &format!("Pulling image \"{name}\""),
            )
            .await;
        }
        let began = Instant::now();
        let gone = self.gone.clone();
        let result = tokio::select! {
            r = self.rt.images.ensure(&name, policy, &auth) => r,
            // The pod is being deleted: the pull is dropped (its partial blobs with it) so the
            // deletion does not wait on a slow or hung registry.
            _ = gone.cancelled() => {
                return Err(Waiting {
                    reason: "ErrImagePull",
                    message: format!("pulling image \"{name}\" cancelled: the pod is being deleted"),
                });
            }
        };
        match result {
            Ok(img) => {
                let msg = if present {
                    format!("Container image \"{name}\" already present on machine")
                } else {
                    format!(
                        "Successfully pulled image \"{name}\" in {:?}",
                        began.elapsed()
                    )
                };
                events::record(
                    &self.rt.client,
                    &node,
                    pod,
                    Some(&c.name),
                    false,
                    "Pulled",
                    &msg,
                )
                .await;
                Ok(img)
            }
            // Nothing to back off from: the image can only appear by import.
            Err(e) if policy == PullPolicy::Never => Err(Waiting {
                reason: "ErrImageNeverPull",
                message: e.to_string(),
            }),
            Err(e) => {
                let n = self.pull_backoff.get(&c.name).map(|b| b.1 + 1).unwrap_or(1);
                let message = e.to_string();
                let until = Instant::now() + backoff(n);
                events::record(
                    &self.rt.client,
                    &node,
                    pod,
                    Some(&c.name),
                    true,
                    "Failed",
                    &format!("Failed to pull image \"{name}\": {message}"),
                )
                .await;
                self.pull_backoff
                    .insert(c.name.clone(), (until, n, message.clone()));
                Err(Waiting {
                    reason: "ErrImagePull",
                    message,
                })
            }
        }
    }

    async fn pull_secrets(&self, pod: &Pod) -> Vec<RegistryAuth> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Secret> = Api::namespaced(self.rt.client.clone(), ns);
        let mut out = Vec::new();
        for r in pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
        {
            if let Ok(Some(s)) = api.get_opt(&r.name).await {
                for key in [".dockerconfigjson", ".dockercfg"] {
                    if let Some(b) = s.data.as_ref().and_then(|d| d.get(key)) {
                        out.extend(parse_docker_config_json(&b.0).unwrap_or_default());
                    }
                }
            }
        }
        out
    }

    /// The ConfigMaps and Secrets the pod's volumes and this container's environment name, and
    /// the tokens of its projected volumes.
    async fn sources(&self, pod: &Pod, c: &Container) -> Result<Sources, String> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let (mut cms, mut secrets) = env::referenced(c);
        let (vcms, vsecrets) = volumes::referenced(pod);
        cms.extend(vcms);
        secrets.extend(vsecrets);
        let mut src = Sources::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.rt.client.clone(), ns);
        for n in cms {
            if let Some(cm) = cm_api.get_opt(&n).await.map_err(|e| e.to_string())? {
                src.config_maps.insert(n, cm);
            }
        }
        let s_api: Api<Secret> = Api::namespaced(self.rt.client.clone(), ns);
        for n in secrets {
            if let Some(s) = s_api.get_opt(&n).await.map_err(|e| e.to_string())? {
                src.secrets.insert(n, s);
            }
        }
        src.tokens = self.tokens.for_pod(&self.rt.client, pod).await?;
        src.services = self.services(pod).await.map_err(|e| e.to_string())?;
        src.claims = self.claims(pod).await.map_err(|e| e.to_string())?;
        Ok(src)
    }

    /// The host directories of the pod's bound claims: the PersistentVolume's `hostPath` or
    /// `local` path (what the local-path provisioner and static node-local volumes use).
    /// Claims not bound yet, or bound to a kind of volume this node cannot mount, are left
    /// out, so the pod waits with the reason in its status.
    async fn claims(&self, pod: &Pod) -> Result<BTreeMap<String, PathBuf>, kube::Error> {
        use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(self.rt.client.clone(), ns);
        let pvs: Api<PersistentVolume> = Api::all(self.rt.client.clone());
        let mut out = BTreeMap::new();
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone());
        for name in names {
            let Some(pvc) = pvcs.get_opt(&name).await? else {
                continue;
            };
            let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
            let Some(pv_name) = pvc.spec.and_then(|s| s.volume_name).filter(|_| bound) else {
                continue;
            };
            let Some(pv) = pvs.get_opt(&pv_name).await? else {
                continue;
            };
            let spec = pv.spec.unwrap_or_default();
            let path = spec
                .host_path
                .map(|h| h.path)
                .or(spec.local.map(|l| l.path));
            if let Some(p) = path {
                out.insert(name, PathBuf::from(p));
            }
        }
        Ok(out)
    }

    /// The Services whose variables the pod gets: its namespace's (with service links) and
    /// the API's `kubernetes` Service.
    async fn services(&self, pod: &Pod) -> Result<Vec<Service>, kube::Error> {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let links = pod
            .spec
            .as_ref()
            .and_then(|s| s.enable_service_links)
            .unwrap_or(true);
        let mut out = vec![];
        if links {
            let api: Api<Service> = Api::namespaced(self.rt.client.clone(), ns);
            out = api.list(&Default::default()).await?.items;
        }
        if !(links && ns == "default") {
            let api: Api<Service> = Api::namespaced(self.rt.client.clone(), "default");
            out.extend(api.get_opt("kubernetes").await?);
        }
        Ok(out)
    }

    /// Stop every container (SIGTERM, SIGKILL after `grace`), release the network and the
    /// container filesystems. Idempotent.
    pub async fn stop(&mut self, grace: Duration) {
        let dir = self.shim_dir();
        let shim = match self.shim.take() {
            Some(s) => Some(s),
            None => ShimClient::connect(&dir).await.ok(),
        };
        if let Some(shim) = shim {
            if let Err(e) = shim.shutdown(grace).await {
                tracing::warn!(pod = %self.uid, error = %e, "stopping the pod's shim");
            }
        }
        let containers = self.pod_dir().join("containers");
        if let Ok(entries) = std::fs::read_dir(&containers) {
            for e in entries.flatten() {
                let _ = crate::sandbox::image::ImageStore::unmount_rootfs(&e.path());
            }
        }
        let net = PodNet::new(self.uid.clone(), self.netns_path());
        if let Err(e) = self.rt.network.teardown(&net).await {
            tracing::warn!(pod = %self.uid, error = %e, "tearing down the pod network");
        }
        let p = self.netns_path();
        let _ = tokio::task::spawn_blocking(move || netns::remove(&p)).await;
        self.pod_ips.clear();
        // Last: while the shim directory exists, a restarted agent knows there is something
        // of this pod left to clean up.
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Everything of the pod on this node is gone: remove its directories, and the API object
    /// (grace 0, only this incarnation), which ends a graceful deletion.
    async fn finish_deletion(&mut self, pod: &Pod) {
        self.remove_files();
        let api: Api<Pod> = Api::namespaced(
            self.rt.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or(""), &dp)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => tracing::warn!(pod = %pod_key(pod), error = %e, "removing the deleted pod"),
        }
    }

    /// The pod's API object is gone: stop what is left and forget it.
    pub async fn forget(&mut self) {
        self.stop(Duration::from_secs(2)).await;
        self.remove_files();
    }

    /// The pod's directories and its logs (`/var/log/pods/<ns>_<name>_<uid>`), as upstream
    /// removes them with the pod.
    fn remove_files(&self) {
        let dir = self.pod_dir();
        // Removing recursively through a mount that could not be undone would reach into
        // what it shows (a volume, a host path): such a pod directory stays.
        match volumes::cleanup(&dir) {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(e) => {
                tracing::warn!(pod = %self.uid, error = %e, "pod volumes left in place");
            }
        }
        let suffix = format!("_{}", self.uid);
        if let Ok(entries) = std::fs::read_dir(&self.rt.log_dir) {
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().ends_with(&suffix) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}

fn same_ignoring_time(
    a: &k8s_openapi::api::core::v1::PodStatus,
    b: &k8s_openapi::api::core::v1::PodStatus,
) -> bool {
    status::same(a, b)
}

fn image_id(i: &Image) -> String {
    i.repo_digests
        .first()
        .cloned()
        .unwrap_or_else(|| i.id.clone())
}

fn libc_sigterm() -> i32 {
    nix::sys::signal::Signal::SIGTERM as i32
}

/// Run an exec probe's command in container `id` through the pod's shim; its output is
/// read and dropped, and a command that outlives the timeout is killed and fails the probe.
async fn exec_probe(
    dir: &std::path::Path,
    id: &str,
    cmd: Vec<String>,
    timeout: Duration,
) -> Result<i32, String> {
    use crate::sandbox::shim::protocol::ExecProcess;
    use crate::sandbox::shim::session;
    let process = ExecProcess {
        exec_id: uuid::Uuid::new_v4().simple().to_string(),
        args: cmd,
        tty: false,
        stdin: false,
    };
    let (sess, fds) = session::exec(dir, id, process)
        .await
        .map_err(|e| e.to_string())?;
    for (_, fd) in fds {
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut f = std::fs::File::from(fd);
            let mut buf = [0u8; 4096];
            while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
        });
    }
    let pid = sess.pid;
    match tokio::time::timeout(timeout, sess.wait()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            Err(format!("command timed out after {}s", timeout.as_secs()))
        }
    }
}

pub fn pod_key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}
