//! Running a pod's startup, liveness and readiness probes from its worker: when each is due,
//! exec probes through the shim, and what a verdict changes (readiness, a restart on liveness
//! failure). How an HTTP or TCP probe is made is `probes`'.

use super::{time, Worker};
use crate::kubelet::events;
use crate::sandbox::shim::{ContainerState, Status};
use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::BTreeMap;
use std::time::Duration;

impl Worker {
    /// Run the due probes of running containers; restart those whose liveness or startup
    /// probe failed for good.
    pub(super) async fn probe(
        &mut self,
        pod: &Pod,
        by_name: &BTreeMap<String, Vec<(u32, ContainerState)>>,
    ) {
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
}

/// Run an exec probe's command in container `id` through the pod's shim; its output is
/// read and dropped, and a command that outlives the timeout is killed and fails the probe.
pub(super) async fn exec_probe(
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
