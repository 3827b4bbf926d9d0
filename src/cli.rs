//! Command-line flags. `k1s server` takes k3s's flag names; every flag can also come from a
//! `K1S_*` environment variable or from the YAML config file (see `config`).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "k1s", version = concat!(env!("CARGO_PKG_VERSION"), " (Kubernetes v1.33.0)"), about = "Kubernetes in one small binary")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing's EnvFilter syntax), e.g. "info" or "k1s=debug"
    #[arg(long, global = true, env = "K1S_LOG", default_value = "info")]
    pub log: String,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a whole cluster in this process
    Server(Box<ServerArgs>),
    /// The per-pod container supervisor the node agent starts (not for direct use)
    #[command(hide = true)]
    Shim(ShimArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ShimArgs {
    /// The pod's shim directory (socket, state, bundles)
    #[arg(long)]
    pub dir: PathBuf,
}

#[derive(Args, Debug, Clone)]
#[command(args_override_self = true)]
pub struct ServerArgs {
    /// YAML file with the same keys as the flags (flags win)
    #[arg(
        long,
        short = 'c',
        env = "K1S_CONFIG_FILE",
        default_value = "/etc/k1s/config.yaml"
    )]
    pub config: PathBuf,
    /// Where k1s keeps its state
    #[arg(
        long,
        short = 'd',
        env = "K1S_DATA_DIR",
        default_value = "/var/lib/k1s"
    )]
    pub data_dir: PathBuf,
    /// HTTPS port of the API
    #[arg(long, env = "K1S_HTTPS_LISTEN_PORT", default_value_t = 6443)]
    pub https_listen_port: u16,
    /// Address the API listens on
    #[arg(long, env = "K1S_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: std::net::IpAddr,
    /// Address the API advertises to the cluster (default: the node's primary address)
    #[arg(long, env = "K1S_ADVERTISE_ADDRESS")]
    pub advertise_address: Option<std::net::IpAddr>,
    /// Extra hostnames or IPs for the serving certificate
    #[arg(long = "tls-san", env = "K1S_TLS_SAN", value_delimiter = ',')]
    pub tls_san: Vec<String>,
    /// Where to write the admin kubeconfig
    #[arg(
        long,
        short = 'o',
        env = "K1S_KUBECONFIG_OUTPUT",
        default_value = "/etc/k1s/k1s.yaml"
    )]
    pub write_kubeconfig: PathBuf,
    /// File mode of the admin kubeconfig, in octal
    #[arg(long, env = "K1S_KUBECONFIG_MODE", default_value = "0600", value_parser = parse_mode)]
    pub write_kubeconfig_mode: u32,
    /// Pod network: a /24 of it per node
    #[arg(long, env = "K1S_CLUSTER_CIDR", default_value = "10.42.0.0/16")]
    pub cluster_cidr: ipnetwork::IpNetwork,
    /// Service ClusterIP range
    #[arg(long, env = "K1S_SERVICE_CIDR", default_value = "10.43.0.0/16")]
    pub service_cidr: ipnetwork::IpNetwork,
    /// Port range reserved for Services of type NodePort and LoadBalancer
    #[arg(long, env = "K1S_SERVICE_NODE_PORT_RANGE", default_value = "30000-32767", value_parser = parse_port_range)]
    pub service_node_port_range: (u16, u16),
    /// Cluster domain
    #[arg(long, env = "K1S_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Cluster DNS address pods resolve with (default: the 10th address of --service-cidr)
    #[arg(long, env = "K1S_CLUSTER_DNS")]
    pub cluster_dns: Option<std::net::IpAddr>,
    /// sled page cache size in MiB (small by default for edge devices)
    #[arg(long, env = "K1S_DATASTORE_CACHE_MB", default_value_t = 16)]
    pub datastore_cache_mb: u64,
    /// Run the control plane only: no node agent in this process
    #[arg(long, env = "K1S_DISABLE_AGENT")]
    pub disable_agent: bool,
    /// Do not deploy a bundled component, and remove it if it was (repeatable, or a comma
    /// list): local-storage, servicelb
    #[arg(long = "disable", env = "K1S_DISABLE", value_delimiter = ',')]
    pub disable: Vec<String>,
    #[command(flatten)]
    pub node: NodeArgs,
}

/// Flags of the node agent, shared by `k1s server` (unless `--disable-agent`) and, later,
/// `k1s agent`.
#[derive(Args, Debug, Clone, Default)]
pub struct NodeArgs {
    /// Name of this node (default: the host name, lowercased)
    #[arg(long, env = "K1S_NODE_NAME")]
    pub node_name: Option<String>,
    /// InternalIP of this node (default: the address of the default route)
    #[arg(long, env = "K1S_NODE_IP")]
    pub node_ip: Option<std::net::IpAddr>,
    /// Label for this node, key=value (repeatable)
    #[arg(long = "node-label", env = "K1S_NODE_LABEL", value_delimiter = ',', value_parser = parse_label)]
    pub node_labels: Vec<(String, String)>,
    /// Taint for this node, key=value:Effect (repeatable)
    #[arg(long = "node-taint", env = "K1S_NODE_TAINT", value_delimiter = ',', value_parser = parse_taint)]
    pub node_taints: Vec<NodeTaint>,
    /// Registry mirrors, rewrites and credentials (k3s's registries.yaml format)
    #[arg(
        long,
        env = "K1S_PRIVATE_REGISTRY",
        default_value = "/etc/k1s/registries.yaml"
    )]
    pub private_registry: PathBuf,
    /// Port of the node agent's HTTPS server (container logs), 0 for any free port
    #[arg(long, env = "K1S_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// resolv.conf for pods with dnsPolicy Default and for cluster DNS's upstreams (default:
    /// /etc/resolv.conf, or systemd-resolved's when that names only a loopback stub)
    #[arg(long, env = "K1S_RESOLV_CONF")]
    pub resolv_conf: Option<PathBuf>,
    /// Where the CNI plugins are (default: /usr/lib/cni, then /opt/cni/bin)
    #[arg(long = "cni-bin-dir", env = "K1S_CNI_BIN_DIR", value_delimiter = ',')]
    pub cni_bin_dirs: Vec<PathBuf>,
    /// An image pull whose registry sends nothing for this long fails (kubelet's flag)
    #[arg(
        long,
        env = "K1S_IMAGE_PULL_PROGRESS_DEADLINE",
        default_value = "1m",
        value_parser = parse_deadline
    )]
    pub image_pull_progress_deadline: std::time::Duration,
}

/// A positive duration as Go writes them (`1m0s`, `30s`, `1500ms`).
fn parse_deadline(s: &str) -> Result<std::time::Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("{s:?} is not a duration like 1m or 30s: {e}"))?;
    std::time::Duration::try_from(d)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?}: the deadline must be positive"))
}

/// A `--node-taint`: `key[=value]:NoSchedule|PreferNoSchedule|NoExecute`.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTaint {
    pub key: String,
    pub value: Option<String>,
    pub effect: String,
}

/// The API's own rules for a label key and value, so a bad flag fails at start, not at
/// registration.
fn check_label(key: &str, value: &str) -> Result<(), String> {
    use crate::registry::rules::names::{is_qualified_name, is_valid_label_value};
    let mut errs = is_qualified_name(key);
    errs.extend(is_valid_label_value(value));
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs.join("; "))
    }
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not a label: expected key=value"))?;
    check_label(k, v).map_err(|e| format!("label {s:?}: {e}"))?;
    Ok((k.to_string(), v.to_string()))
}

fn parse_taint(s: &str) -> Result<NodeTaint, String> {
    let (kv, effect) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not a taint: expected key=value:Effect"))?;
    if !matches!(effect, "NoSchedule" | "PreferNoSchedule" | "NoExecute") {
        return Err(format!(
            "taint {s:?}: effect {effect:?} is not NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    let (key, value) = match kv.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (kv, None),
    };
    check_label(key, value.unwrap_or("")).map_err(|e| format!("taint {s:?}: {e}"))?;
    Ok(NodeTaint {
        key: key.to_string(),
        value: value.map(str::to_string),
        effect: effect.to_string(),
    })
}

/// `first-last`, as k3s's `--service-node-port-range`.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a port range such as 30000-32767");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u16 = a.trim().parse().map_err(|_| bad())?;
    let b: u16 = b.trim().parse().map_err(|_| bad())?;
    if a == 0 || a > b {
        return Err(bad());
    }
    Ok((a, b))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal file mode such as 0600"))?;
    if m > 0o777 {
        return Err(format!("{s:?} is not a file mode (at most 0777)"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::parse_deadline;
    use std::time::Duration;

    #[test]
    fn deadlines_are_go_durations() {
        assert_eq!(parse_deadline("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_deadline("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_deadline("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_deadline("1500ms"), Ok(Duration::from_millis(1500)));
        for bad in ["0s", "-5s", "soon", ""] {
            assert!(parse_deadline(bad).is_err(), "{bad}");
        }
    }
}
