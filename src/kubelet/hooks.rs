//! Container lifecycle hooks: runs one postStart or preStop handler as upstream's kubelet
//! does (exec in the container through the pod's shim, like `kubectl exec`; httpGet from the
//! node to the pod's address, or the handler's host; sleep; tcpSocket, which the API accepts
//! for backward compatibility, fails at run time) and words its failure in upstream's terms
//! for the `FailedPostStartHook` and `FailedPreStopHook` events. It also stops one container
//! as upstream's killContainer does (preStop within the grace period, which counts the hook's
//! time, then SIGTERM, then SIGKILL). It never decides which container stops or restarts:
//! the worker does.

use crate::sandbox::shim::protocol::ExecProcess;
use crate::sandbox::shim::session;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Upstream's floor on what is left of a grace period after a preStop hook: a container
/// always gets a moment between SIGTERM and SIGKILL.
pub const MIN_GRACE: Duration = Duration::from_secs(2);

/// How much of an exec hook's output a failure message keeps, as upstream's limit.
const MAX_OUTPUT: usize = 10 * 1024;

/// The user agent of httpGet hooks, as upstream's `kube-lifecycle/<version>`.
const USER_AGENT: &str = "kube-lifecycle/1.33";

/// Which hook a handler is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    PostStart,
    PreStop,
}

impl Hook {
    /// The handler of this hook in `c`'s spec, if it has one.
    pub fn of(self, c: &Container) -> Option<&LifecycleHandler> {
        let l = c.lifecycle.as_ref()?;
        match self {
            Hook::PostStart => l.post_start.as_ref(),
            Hook::PreStop => l.pre_stop.as_ref(),
        }
    }

    /// The Warning event's reason when the handler fails.
    pub fn failed_reason(self) -> &'static str {
        match self {
            Hook::PostStart => "FailedPostStartHook",
            Hook::PreStop => "FailedPreStopHook",
        }
    }
}

/// The container a hook runs for: its spec, its instance in the shim, and the pod's address.
#[derive(Debug, Clone)]
pub struct Target {
    /// The pod as upstream names it in messages: `name_namespace(uid)`.
    pub pod: String,
    pub container: Container,
    /// The container's id in the pod's shim.
    pub id: String,
    pub shim_dir: PathBuf,
    /// The pod's address (the node's for host-network pods); None before it has one.
    pub ip: Option<IpAddr>,
}

impl Target {
    pub fn new(pod: &Pod, container: &Container, id: &str, shim_dir: PathBuf) -> Target {
        Target {
            pod: format!(
                "{}_{}({})",
                pod.metadata.name.as_deref().unwrap_or(""),
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.uid.as_deref().unwrap_or("")
            ),
            container: container.clone(),
            id: id.to_string(),
            shim_dir,
            ip: None,
        }
    }
}

/// Run `h` for `t` to its end (the caller bounds the time); Err is the event's message.
pub async fn run(h: &LifecycleHandler, t: &Target) -> Result<(), String> {
    let c = &t.container.name;
    if let Some(e) = &h.exec {
        let cmd = e.command.clone().unwrap_or_default();
        return exec(t, cmd.clone()).await.map_err(|(err, out)| {
            format!(
                "Exec lifecycle hook ([{}]) for Container {c:?} in Pod {:?} failed - error: {err}, message: {out:?}",
                cmd.join(" "),
                t.pod
            )
        });
    }
    if let Some(g) = &h.http_get {
        let path = g.path.clone().unwrap_or_default();
        return http_get(g, t).await.map_err(|err| {
            format!(
                "HTTP lifecycle hook ({path}) for Container {c:?} in Pod {:?} failed - error: {err}",
                t.pod
            )
        });
    }
    if let Some(s) = &h.sleep {
        // Cut short only by the caller's bound, which ends the container anyway.
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        return Ok(());
    }
    let what = if h.tcp_socket.is_some() {
        "tcpSocket is not supported as a lifecycle handler"
    } else {
        "no action given"
    };
    Err(format!("Cannot run handler: invalid handler: {what}"))
}

/// Where hook failures are reported: the pod's events.
#[derive(Clone)]
pub struct Reporter {
    pub client: kube::Client,
    pub node: String,
    pub pod: Pod,
}

impl Reporter {
    pub async fn warn(&self, container: &str, reason: &str, message: &str) {
        super::events::record(
            &self.client,
            &self.node,
            &self.pod,
            Some(container),
            true,
            reason,
            message,
        )
        .await;
    }
}

/// Run `t`'s preStop hook, if it has one, within `grace` (none with no grace, as upstream);
/// a failure is reported and termination goes on. Returns what is left of `grace`.
pub async fn pre_stop(r: &Reporter, t: &Target, grace: Duration) -> Duration {
    let Some(h) = Hook::PreStop.of(&t.container).filter(|_| !grace.is_zero()) else {
        return grace;
    };
    let began = Instant::now();
    match tokio::time::timeout(grace, run(h, t)).await {
        Ok(Ok(())) => {}
        Ok(Err(msg)) => {
            r.warn(&t.container.name, Hook::PreStop.failed_reason(), &msg)
                .await
        }
        Err(_) => tracing::info!(
            pod = %t.pod,
            container = %t.container.name,
            grace_s = grace.as_secs(),
            "preStop hook did not complete within the grace period"
        ),
    }
    grace.saturating_sub(began.elapsed()).max(MIN_GRACE)
}

/// Stop one container: its preStop hook, SIGTERM, and SIGKILL once `grace` (counted from
/// now, hook included) has passed and it still runs.
pub async fn stop_container(r: &Reporter, t: &Target, grace: Duration) {
    use crate::sandbox::shim::{ShimClient, Status};
    use nix::sys::signal::Signal;
    let left = pre_stop(r, t, grace).await;
    let Ok(mut shim) = ShimClient::connect(&t.shim_dir).await else {
        return;
    };
    let _ = shim.kill(&t.id, Signal::SIGTERM as i32).await;
    let deadline = Instant::now() + left;
    loop {
        let running = match shim.state().await {
            Ok(states) => states
                .iter()
                .any(|s| s.id == t.id && s.status == Status::Running),
            Err(_) => return,
        };
        if !running {
            return;
        }
        if Instant::now() >= deadline {
            let _ = shim.kill(&t.id, Signal::SIGKILL as i32).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The command in the container; Err(error, output) when it cannot run or exits non-zero.
async fn exec(t: &Target, cmd: Vec<String>) -> Result<(), (String, String)> {
    let process = ExecProcess {
        exec_id: uuid::Uuid::new_v4().simple().to_string(),
        args: cmd.clone(),
        tty: false,
        stdin: false,
    };
    let (sess, fds) = session::exec(&t.shim_dir, &t.id, process)
        .await
        .map_err(|e| (e.to_string(), String::new()))?;
    // Killed if the caller gives up on the hook (its grace period ran out).
    let guard = KillOnDrop(sess.pid);
    let readers: Vec<_> = fds
        .into_iter()
        .map(|(_, fd)| {
            tokio::task::spawn_blocking(move || {
                use std::io::Read;
                let mut out = Vec::new();
                let mut f = std::fs::File::from(fd);
                let mut buf = [0u8; 4096];
                while let Ok(n) = f.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if out.len() < MAX_OUTPUT {
                        out.extend_from_slice(&buf[..n.min(MAX_OUTPUT - out.len())]);
                    }
                }
                out
            })
        })
        .collect();
    let code = sess.wait().await;
    std::mem::forget(guard);
    let mut output = Vec::new();
    for r in readers {
        output.extend(r.await.unwrap_or_default());
    }
    let output = String::from_utf8_lossy(&output).into_owned();
    match code {
        Ok(0) => Ok(()),
        Ok(code) => Err((
            format!(
                "command '{}' exited with {code}: {}",
                cmd.join(" "),
                output.trim_end()
            ),
            output,
        )),
        Err(e) => Err((e.to_string(), output)),
    }
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// Upstream checks only that the request went through: the status code does not matter.
async fn http_get(g: &k8s_openapi::api::core::v1::HTTPGetAction, t: &Target) -> Result<(), String> {
    let host = match g.host.as_deref().filter(|h| !h.is_empty()) {
        Some(h) => h
            .parse::<IpAddr>()
            .map_err(|_| format!("host {h:?} is not an IP address"))?,
        None => t
            .ip
            .ok_or_else(|| "failed to find networking container: the pod has no IP".to_string())?,
    };
    let port = super::probes::port_of(&g.port, &t.container)?;
    let mut path = g.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let https = g.scheme.as_deref() == Some("HTTPS");
    let headers: Vec<(String, String)> = g
        .http_headers
        .iter()
        .flatten()
        .map(|h| (h.name.clone(), h.value.clone()))
        .collect();
    let addr = SocketAddr::new(host, port);
    super::probes::get(addr, &path, https, &headers, USER_AGENT)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Lifecycle, SleepAction, TCPSocketAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

    fn target() -> Target {
        let c = Container {
            name: "app".into(),
            ..Default::default()
        };
        let mut pod = Pod::default();
        pod.metadata.name = Some("web".into());
        pod.metadata.namespace = Some("default".into());
        pod.metadata.uid = Some("u1".into());
        let mut t = Target::new(&pod, &c, "id", PathBuf::from("/nonexistent"));
        t.ip = Some(IpAddr::from([127, 0, 0, 1]));
        t
    }

    #[test]
    fn hooks_are_found_by_kind() {
        let c = Container {
            lifecycle: Some(Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction { seconds: 1 }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(Hook::PreStop.of(&c).is_some());
        assert!(Hook::PostStart.of(&c).is_none());
        assert_eq!(Hook::PostStart.failed_reason(), "FailedPostStartHook");
    }

    #[tokio::test]
    async fn tcp_socket_handlers_fail_as_upstream() {
        let h = LifecycleHandler {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(80),
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = run(&h, &target()).await.unwrap_err();
        assert!(
            err.starts_with("Cannot run handler: invalid handler"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn http_hooks_pass_on_any_status_and_fail_on_transport_errors() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap();
            s.write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let h = |port: i32| LifecycleHandler {
            http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
                path: Some("hook".into()),
                port: IntOrString::Int(port),
                http_headers: Some(vec![k8s_openapi::api::core::v1::HTTPHeader {
                    name: "X-Hook".into(),
                    value: "stop".into(),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        run(&h(port as i32), &target()).await.unwrap();
        let req = server.await.unwrap();
        assert!(req.starts_with("GET /hook HTTP/1.1"), "{req}");
        assert!(req.to_lowercase().contains("x-hook: stop"), "{req}");
        assert!(req.contains(USER_AGENT), "{req}");

        // Nothing listens there any more.
        let err = run(&h(port as i32), &target()).await.unwrap_err();
        assert!(
            err.starts_with("HTTP lifecycle hook (hook) for Container \"app\" in Pod \"web_default(u1)\" failed - error: Get \"http://127.0.0.1:"),
            "{err}"
        );
    }
}
