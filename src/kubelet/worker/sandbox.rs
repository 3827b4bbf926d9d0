//! A pod's sandbox as its worker makes it: the pinned network namespace wired by CNI (or the
//! host's network), the pod's /etc files, and the connection to its shim, with the
//! FailedCreatePodSandBox event when that fails. It never starts containers.

use super::{pod_key, Worker};
use crate::cni::{netns, PodNet, PortMapping, Protocol};
use crate::kubelet::events;
use crate::kubelet::status::PodView;
use crate::sandbox::shim::{ContainerState, ShimClient};
use k8s_openapi::api::core::v1::Pod;
use std::net::IpAddr;
use std::time::Instant;

impl Worker {
    /// The sandbox could not be made: say so once per distinct error (FailedCreatePodSandBox,
    /// as upstream), leave nothing half made, and show the pod as still creating.
    pub(super) async fn sandbox_failed(&mut self, pod: &Pod, error: &str) {
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

    pub(super) async fn ensure_network(
        &mut self,
        pod: &Pod,
        host_network: bool,
    ) -> Result<(), String> {
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

    pub(super) fn pod_net(&self, pod: &Pod) -> PodNet {
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

    pub(super) fn write_etc(
        &self,
        pod: &Pod,
        ip: Option<IpAddr>,
        host_network: bool,
    ) -> Result<(), String> {
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
            crate::kubelet::etc::hosts(ip, &hostname, fqdn.as_deref(), &aliases)
        };
        let resolv = crate::kubelet::etc::resolv_conf(
            &self.rt.dns,
            spec.dns_policy.as_deref().unwrap_or("ClusterFirst"),
            host_network,
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            spec.dns_config.as_ref(),
        );
        let w = |name: &str, content: &str| {
            crate::kubelet::etc::write(&dir, name, content)
                .map_err(|e| format!("writing {}/{name}: {e}", dir.display()))
        };
        w("hosts", &hosts)?;
        w("resolv.conf", &resolv)?;
        w("hostname", &format!("{hostname}\n"))?;
        Ok(())
    }

    pub(super) fn hostname(&self, pod: &Pod, host_network: bool) -> String {
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

    pub(super) async fn ensure_shim(&mut self) -> Result<(), String> {
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

    pub(super) async fn shim_state(&mut self) -> Result<Vec<ContainerState>, String> {
        let shim = self.shim.as_mut().ok_or("no shim")?;
        shim.state().await.map_err(|e| e.to_string())
    }
}
