//! The stopping side of a pod's worker: lifecycle hooks as the worker drives them. A
//! postStart hook holds the worker (the next container waits for it) and a failure kills the
//! container; a container stopped on its own (liveness failure, a finished pod's sidecars)
//! runs its preStop hook, then SIGTERM, then SIGKILL after the grace period, in the
//! background; on deletion every running container's preStop hook runs within the grace
//! period before the shim stops them all. What a hook does is `hooks`'; this file only
//! decides when they run and what follows.

use super::{identify, libc_sigterm, Waiting, Worker};
use crate::kubelet::events;
use crate::kubelet::hooks::{self, Hook};
use crate::sandbox::shim::{ContainerState, ShimClient, Status};
use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

impl Worker {
    /// The address hooks and probes reach the pod at.
    pub(super) fn pod_ip(&self, pod: &Pod) -> Option<IpAddr> {
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            Some(self.rt.node_ip)
        } else {
            self.pod_ips.first().copied()
        }
    }

    pub(super) fn reporter(&self, pod: &Pod) -> hooks::Reporter {
        hooks::Reporter {
            client: self.rt.client.clone(),
            node: self.rt.node_name.clone(),
            pod: pod.clone(),
        }
    }

    pub(super) fn hook_target(&self, pod: &Pod, c: &Container, id: &str) -> hooks::Target {
        let mut t = hooks::Target::new(pod, c, id, self.shim_dir());
        t.ip = self.pod_ip(pod);
        t
    }

    /// Before the pod's containers stop on deletion: each running container with a preStop
    /// hook runs it while those without get SIGTERM at once; returns what is left of `grace`
    /// for the stop that follows.
    pub(super) async fn pre_stop_all(&mut self, pod: &Pod, grace: Duration) -> Duration {
        let spec = pod.spec.clone().unwrap_or_default();
        let any = spec
            .init_containers
            .iter()
            .flatten()
            .chain(spec.containers.iter())
            .any(|c| Hook::PreStop.of(c).is_some());
        if self.forced.is_cancelled() {
            return Duration::ZERO;
        }
        if !any || grace.is_zero() {
            return grace;
        }
        let dir = self.shim_dir();
        let states = match self.shim.as_mut() {
            Some(shim) => shim.state().await,
            None => match ShimClient::connect(&dir).await {
                Ok(mut shim) => shim.state().await,
                Err(e) => Err(e),
            },
        };
        let Ok(states) = states else {
            return grace;
        };
        let began = Instant::now();
        let reporter = self.reporter(pod);
        let mut stops = Vec::new();
        for s in states.iter().filter(|s| s.status == Status::Running) {
            let Some((name, _)) = identify(s) else {
                continue;
            };
            let Some(c) = spec
                .init_containers
                .iter()
                .flatten()
                .chain(spec.containers.iter())
                .find(|c| c.name == name)
            else {
                continue;
            };
            let t = self.hook_target(pod, c, &s.id);
            let r = reporter.clone();
            // One already being stopped has had its hook.
            let hook = !self.stopping.contains(&s.id);
            stops.push(async move {
                if hook && Hook::PreStop.of(&t.container).is_some() {
                    hooks::pre_stop(&r, &t, grace).await;
                }
                if let Ok(mut shim) = ShimClient::connect(&t.shim_dir).await {
                    let _ = shim.kill(&t.id, libc_sigterm()).await;
                }
            });
        }
        let forced = self.forced.clone();
        tokio::select! {
            _ = futures::future::join_all(stops) => {}
            // A force deletion during the hooks: the containers go now.
            _ = forced.cancelled() => return Duration::ZERO,
        }
        grace.saturating_sub(began.elapsed()).max(hooks::MIN_GRACE)
    }

    /// Whether a container this worker began to stop gracefully still runs.
    pub(super) async fn still_stopping(&mut self) -> bool {
        if self.stopping.is_empty() {
            return false;
        }
        if self.shim.is_none() {
            self.shim = ShimClient::connect(&self.shim_dir()).await.ok();
        }
        let Ok(states) = self.shim_state().await else {
            return false;
        };
        states
            .iter()
            .any(|s| s.status == Status::Running && self.stopping.contains(&s.id))
    }

    /// Run `c`'s postStart hook (the worker waits for it, so the next container does not
    /// start before it returns). A failure is reported and the container killed, to be
    /// restarted per the pod's restartPolicy, as upstream.
    pub(super) async fn post_start(
        &mut self,
        pod: &Pod,
        c: &Container,
        id: &str,
    ) -> Result<(), Waiting> {
        let Some(h) = Hook::PostStart.of(c) else {
            return Ok(());
        };
        let t = self.hook_target(pod, c, id);
        let gone = self.gone.clone();
        let result = tokio::select! {
            r = hooks::run(h, &t) => r,
            _ = gone.cancelled() => return Ok(()),
        };
        let Err(msg) = result else {
            return Ok(());
        };
        let reporter = self.reporter(pod);
        reporter
            .warn(&c.name, Hook::PostStart.failed_reason(), &msg)
            .await;
        events::record(
            &self.rt.client,
            &self.rt.node_name,
            pod,
            Some(&c.name),
            false,
            "Killing",
            "FailedPostStartHook",
        )
        .await;
        self.kill_gracefully(pod, c, id).await;
        Err(Waiting {
            reason: "PostStartHookError",
            message: msg,
        })
    }

    /// Stop the running ones of `which` (sidecars once the pod is done), each with its
    /// preStop hook and the pod's grace period, as upstream.
    pub(super) async fn kill_running(
        &mut self,
        pod: &Pod,
        by_name: &BTreeMap<String, Vec<(u32, ContainerState)>>,
        which: &[Container],
    ) {
        for c in which {
            if let Some((_, s)) = by_name.get(&c.name).and_then(|v| v.last()) {
                if s.status == Status::Running {
                    self.kill_gracefully(pod, c, &s.id).await;
                }
            }
        }
    }

    /// Stop container instance `id` of `c` in the background as upstream's killContainer:
    /// its preStop hook, SIGTERM, SIGKILL once the pod's grace period (hook included) ends.
    pub(super) async fn kill_gracefully(&mut self, pod: &Pod, c: &Container, id: &str) {
        if !self.stopping.insert(id.to_string()) {
            return;
        }
        let grace = pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        let t = self.hook_target(pod, c, id);
        let r = self.reporter(pod);
        tokio::spawn(async move {
            hooks::stop_container(&r, &t, Duration::from_secs(grace)).await;
        });
    }
}
