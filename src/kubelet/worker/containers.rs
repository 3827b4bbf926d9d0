//! Starting a pod's containers: the OCI spec from the container, its image, env and volumes,
//! handed to the shim; restarts after the back-off; termination messages; pruning the
//! instances of a container no longer needed. Which container starts when is `run`'s choice.

use super::{backoff, identify, pod_key, time, Waiting, Worker};
use crate::kubelet::container::Context;
use crate::kubelet::{container, env, events, volumes};
use crate::sandbox::shim::{ContainerState, Status};
use k8s_openapi::api::core::v1::{Container, Pod};
use std::path::PathBuf;
use std::time::{Duration, Instant};

impl Worker {
    /// Restart `c` now if its back-off has passed, else say CrashLoopBackOff and when to look.
    pub(super) async fn restart_later_or_now(
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

    /// Start container `c` as restart number `restart`; on failure record why it waits.
    pub(super) async fn start(
        &mut self,
        pod: &Pod,
        c: &Container,
        restart: u32,
        host_network: bool,
    ) {
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

    pub(super) async fn try_start(
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
            subpaths: self.pod_dir().join(crate::kubelet::subpath::DIR),
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

    pub(super) fn termination_file(&self, id: &str) -> PathBuf {
        self.pod_dir().join("termination").join(id)
    }

    /// The message a finished container left: its termination message file, or with
    /// `FallbackToLogsOnError` and a failure, the end of its log (upstream's limits).
    pub(super) fn termination_message(&self, c: &Container, s: &ContainerState) -> Option<String> {
        let mut msg = std::fs::read(self.termination_file(&s.id)).unwrap_or_default();
        msg.truncate(4096);
        let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
        if msg.is_empty() && fallback && s.exit_code.unwrap_or(1) != 0 {
            let text = std::fs::read_to_string(&s.log_path).unwrap_or_default();
            let lines: Vec<String> = text
                .lines()
                .filter_map(|l| crate::kubelet::logs::parse(l).map(|r| r.content.to_string()))
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

    /// Keep only the current and the previous instance of a container (for `logs --previous`).
    pub(super) async fn prune(&mut self, pod: &Pod, c: &Container, current: u32) {
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
}
