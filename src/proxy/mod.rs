//! The service proxy: every node's agent programs Service traffic itself with nftables, as
//! upstream kube-proxy's nftables mode does, in one table of its own (`table ip k1s`). It
//! watches Services and EndpointSlices through the API (reflectors), renders per-Service
//! chains and verdict-map elements (`render`), works out the smallest transaction that brings
//! the kernel there (`plan`), applies it atomically with `nft -f -` (`kernel`), deletes stale
//! UDP conntrack entries (`conntrack`) and serves NodePorts on 127.0.0.1 in userspace
//! (`relay`). It never touches a table it did not create, never reads cluster state except
//! through `kube::Client`, and never removes its rules on shutdown: Service traffic keeps
//! flowing while k1s restarts, and the restart resyncs the table in one transaction.

pub mod conntrack;
pub mod kernel;
pub mod model;
pub mod plan;
pub mod relay;
pub mod render;
mod sync;

use std::net::IpAddr;
use std::ops::RangeInclusive;

use ipnetwork::IpNetwork;

pub use kernel::{Kernel, KernelError, NftCli, RecordingKernel};
pub use sync::run_with_kernel;

/// The name of k1s's nftables table.
pub const TABLE: &str = "k1s";

/// What the proxy needs to know about its node and cluster.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    pub node_name: String,
    pub node_ips: Vec<IpAddr>,
    /// The pod network of the whole cluster (10.42.0.0/16): traffic from elsewhere to a
    /// ClusterIP is masqueraded.
    pub cluster_cidr: IpNetwork,
    /// Addresses in it that are no ClusterIP are dropped.
    pub service_cidr: IpNetwork,
    /// NodePorts outside it are not relayed on loopback.
    pub node_port_range: RangeInclusive<u16>,
    /// The nftables table (`k1s`).
    pub table: String,
}

impl ProxyConfig {
    pub fn new(
        node_name: &str,
        node_ips: Vec<IpAddr>,
        cluster_cidr: IpNetwork,
        service_cidr: IpNetwork,
    ) -> Self {
        ProxyConfig {
            node_name: node_name.to_string(),
            node_ips,
            cluster_cidr,
            service_cidr,
            node_port_range: 30000..=32767,
            table: TABLE.to_string(),
        }
    }

    fn render(&self) -> render::RenderConfig {
        render::RenderConfig {
            table: self.table.clone(),
            cluster_cidr: self.cluster_cidr,
            service_cidr: self.service_cidr,
        }
    }
}

/// Programs this node's Service rules until `cancel`, through the real kernel.
pub async fn run(
    client: kube::Client,
    config: ProxyConfig,
    cancel: tokio_util::sync::CancellationToken,
) {
    run_with_kernel(client, config, std::sync::Arc::new(NftCli), cancel).await
}

/// Deletes k1s's nftables table from the current network namespace (absent is fine). For
/// uninstalling (the uninstall script and a future `k1s agent --cleanup` call it); never on
/// an ordinary stop, so Services keep working across restarts.
pub fn remove_rules() -> Result<(), KernelError> {
    use std::io::Write;
    let program = "nft";
    let mut child = std::process::Command::new(program)
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|source| KernelError::Spawn { program, source })?;
    if let Some(mut stdin) = child.stdin.take() {
        // Adding first makes the delete succeed whether or not the table exists.
        let script = format!(
            "add table {f} {TABLE}\ndelete table {f} {TABLE}\n",
            f = render::FAMILY
        );
        stdin
            .write_all(script.as_bytes())
            .map_err(|source| KernelError::Spawn { program, source })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| KernelError::Spawn { program, source })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(KernelError::Failed {
            program,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
