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
    Server(ServerArgs),
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
    /// Cluster domain
    #[arg(long, env = "K1S_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,
    /// sled page cache size in MiB (small by default for edge devices)
    #[arg(long, env = "K1S_DATASTORE_CACHE_MB", default_value_t = 16)]
    pub datastore_cache_mb: u64,
}

fn parse_mode(s: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .map_err(|_| format!("{s:?} is not an octal file mode such as 0600"))?;
    if m > 0o777 {
        return Err(format!("{s:?} is not a file mode (at most 0777)"));
    }
    Ok(m)
}
