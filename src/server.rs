//! `k1s server`: the composition root of the control plane. Builds the store, registry, PKI
//! and API server, starts them in order on readiness (never on sleeps), writes the admin
//! kubeconfig once the API answers, and stops everything in reverse on shutdown.

use crate::apiserver::{rbac::Rbac, serve, ApiServer, TokenIssuer};
use crate::cli::ServerArgs;
use crate::pki::{Pki, PkiConfig};
use crate::store::Store;
use anyhow::Context;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub mod inprocess;

/// Namespaces every cluster has.
const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

/// A started server; `shutdown` stops it.
pub struct Running {
    pub api: Arc<ApiServer>,
    pub addr: SocketAddr,
    pub client: kube::Client,
    cancel: CancellationToken,
    tasks: JoinSet<()>,
    store: Store,
}

impl Running {
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stop accepting, stop background tasks, flush the store.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(10), drain)
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not stop within 10s");
            self.tasks.abort_all();
        }
        self.store.close().await.context("flushing the store")?;
        Ok(())
    }
}

/// The node's primary address: the source address of the default route, found without
/// sending anything.
pub fn primary_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("10.255.255.255:1").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified()).then_some(ip)
}

/// Start the control plane. `listener` is bound by the caller when given (tests use port 0).
pub async fn start(args: &ServerArgs, listener: Option<TcpListener>) -> anyhow::Result<Running> {
    let started = std::time::Instant::now();
    let server_dir = args.data_dir.join("server");
    std::fs::create_dir_all(&server_dir)
        .with_context(|| format!("creating {}", server_dir.display()))?;

    let store = Store::open_sled(
        &server_dir.join("db"),
        args.datastore_cache_mb * 1024 * 1024,
    )
    .with_context(|| format!("opening the store in {}", server_dir.join("db").display()))?;
    let services = crate::registry::ServiceConfig {
        cidr: args.service_cidr,
        node_ports: args.service_node_port_range,
    };
    let registry = inprocess::open_registry(store.clone(), services).await?;

    let node_ip = args.advertise_address.or_else(primary_ip);
    let mut sans: Vec<String> = args.tls_san.clone();
    if let Some(ip) = node_ip {
        sans.push(ip.to_string());
    }
    if let Ok(h) = nix::unistd::gethostname() {
        sans.push(h.to_string_lossy().into_owned());
    }
    let service_ip = first_ip(&args.service_cidr);
    let pki = Pki::load_or_create(&PkiConfig {
        dir: server_dir.join("tls"),
        sans,
        service_ip,
        cluster_domain: args.cluster_domain.clone(),
    })
    .context("setting up certificates")?;
    let tls = pki
        .server_config()
        .context("building the TLS configuration")?;

    let listener = match listener {
        Some(l) => l,
        None => {
            let addr = SocketAddr::new(args.bind_address, args.https_listen_port);
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?
        }
    };
    let addr = listener.local_addr()?;
    let advertise = format!(
        "{}:{}",
        node_ip
            .map(|i| i.to_string())
            .unwrap_or_else(|| "127.0.0.1".into()),
        addr.port()
    );
    let rbac = Rbac::new();
    let api = ApiServer::new(registry, rbac.clone(), advertise);
    let sa_key = crate::pki::ServiceAccountKey::load_or_create(&server_dir.join("tls"))
        .context("setting up the service-account signing key")?;
    let issuer = Arc::new(TokenIssuer::new(sa_key, &args.cluster_domain));
    api.set_token_issuer(issuer.clone());

    let cancel = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(serve::serve(listener, tls, api.clone(), cancel.clone()));
    let compactor = store.spawn_compactor(
        Duration::from_secs(60),
        Duration::from_secs(300),
        cancel.clone(),
    );
    tasks.spawn(async move {
        let _ = compactor.await;
    });

    let client = crate::client::in_process(api.clone(), crate::client::server_identity());
    inprocess::ensure_namespaces(&client, DEFAULT_NAMESPACES).await?;
    rbac.start(&client, &mut tasks, &cancel).await?;
    // Before the controllers start, so their first lists do not compete with it, and before
    // readiness, so the bundled manifests' objects (the default StorageClass) are there.
    crate::deploy::start(
        client.clone(),
        deploy_config(args, &server_dir),
        &mut tasks,
        cancel.clone(),
    )
    .await
    .context("starting the manifests directory")?;
    // One watch and one cache per kind, shared by the controllers.
    let informers = crate::controllers::informers::Informers::new(client.clone(), cancel.clone());
    tasks.spawn(crate::controllers::clusterroleaggregation::run(
        client.clone(),
        cancel.clone(),
    ));
    let defaults = crate::controllers::defaultservices::DefaultServices {
        api_address: node_ip.unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        api_port: addr.port(),
        kubernetes_ip: service_ip,
        dns_ip: args
            .cluster_dns
            .unwrap_or_else(|| nth_ip(&args.service_cidr, 10)),
    };
    crate::controllers::defaultservices::ensure(&client, &defaults)
        .await
        .context("writing the default services")?;
    tasks.spawn(crate::controllers::defaultservices::run(
        informers.clone(),
        defaults,
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::endpointslice::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::endpoints::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::endpointslicemirroring::run(
        client.clone(),
        cancel.clone(),
    ));
    let disabled = |name: &str| args.disable.iter().any(|d| d == name);
    if !disabled("servicelb") {
        tasks.spawn(crate::controllers::servicelb::run(
            informers.clone(),
            cancel.clone(),
        ));
    }
    tasks.spawn(crate::controllers::namespace::run(
        client.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::serviceaccount::run(
        client.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::garbagecollector::run(
        client.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::deployment::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::replicationcontroller::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::replicaset::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::job::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::cronjob::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::ttlafterfinished::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::daemonset::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::statefulset::run(
        informers.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::nodeipam::run(
        informers.clone(),
        args.cluster_cidr,
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::rootca::run(
        client.clone(),
        pki.ca_cert_pem.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::satokens::run(
        client.clone(),
        issuer,
        pki.ca_cert_pem.clone(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::nodelifecycle::run(
        informers.clone(),
        Default::default(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::podgc::run(
        informers.clone(),
        Default::default(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::disruption::run(
        informers.clone(),
        Default::default(),
        cancel.clone(),
    ));
    tasks.spawn(crate::controllers::pvbinder::run(
        client.clone(),
        cancel.clone(),
    ));
    if !disabled("local-storage") {
        let storage = crate::controllers::localpath::Config {
            storage_dir: args.data_dir.join("storage"),
            node_name: (!args.disable_agent).then(|| {
                let machine = crate::kubelet::node::Machine::probe(&args.data_dir);
                (args.node.node_name.clone())
                    .unwrap_or_else(|| crate::kubelet::node::default_node_name(&machine))
            }),
        };
        tasks.spawn(crate::controllers::localpath::run(
            client.clone(),
            storage,
            cancel.clone(),
        ));
    }
    tasks.spawn(crate::scheduler::run(informers.clone(), cancel.clone()));
    api.set_ready();
    let (cert, key) = pki
        .issue_client_cert("kube-apiserver-kubelet-client", &["system:masters"], 365)
        .context("issuing the node client certificate")?;
    api.set_node_client(
        pki.client_config(&cert, &key)
            .context("node client tls configuration")?,
    );
    if !args.disable_agent {
        // The node agent writes as upstream's does (managedFields name `kubelet`).
        let service =
            crate::client::in_process_service(api.clone(), crate::client::server_identity());
        let node_client = kube::Client::new(service.with_agent("kubelet"), "default");
        start_agent(args, &pki, &node_client, &mut tasks, &cancel).await?;
    }

    let kubeconfig = pki.admin_kubeconfig(&format!("https://127.0.0.1:{}", addr.port()));
    if let Some(dir) = args.write_kubeconfig.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::pki::write_file_atomic(
        &args.write_kubeconfig,
        kubeconfig.as_bytes(),
        args.write_kubeconfig_mode,
    )
    .with_context(|| format!("writing the kubeconfig {}", args.write_kubeconfig.display()))?;
    tracing::info!(%addr, kubeconfig = %args.write_kubeconfig.display(), elapsed = ?started.elapsed(), "k1s server is ready");
    Ok(Running {
        api,
        addr,
        client,
        cancel,
        tasks,
        store,
    })
}

/// The manifests directory and the values its bundled manifests are rendered with.
fn deploy_config(args: &ServerArgs, server_dir: &std::path::Path) -> crate::deploy::Config {
    let dns = args
        .cluster_dns
        .unwrap_or_else(|| nth_ip(&args.service_cidr, 10));
    crate::deploy::Config {
        dir: server_dir.join("manifests"),
        vars: crate::deploy::TemplateVars {
            cluster_dns: dns.to_string(),
            cluster_domain: args.cluster_domain.clone(),
            data_dir: args.data_dir.display().to_string(),
            default_local_storage_path: args.data_dir.join("storage").display().to_string(),
        },
        disables: args.disable.iter().cloned().collect(),
        resync: crate::deploy::RESYNC,
    }
}

/// The node agent of this server: a node labelled as the control plane.
async fn start_agent(
    args: &ServerArgs,
    pki: &Pki,
    client: &kube::Client,
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
) -> anyhow::Result<()> {
    use crate::kubelet::node::{default_node_name, Machine, NodeConfig};
    let machine = Machine::probe(&args.data_dir);
    let mut node = NodeConfig {
        name: args
            .node
            .node_name
            .clone()
            .unwrap_or_else(|| default_node_name(&machine)),
        ip: args
            .node
            .node_ip
            .or(args.advertise_address)
            .or_else(primary_ip)
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        labels: args.node.node_labels.clone(),
        taints: args.node.node_taints.clone(),
        control_plane: true,
        kubelet_port: 0,
    };
    // On every address, as upstream's kubelet: the API server reaches it on the node's IP.
    let any: IpAddr = if node.ip.is_ipv6() {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    };
    let listener = TcpListener::bind((any, args.node.kubelet_port))
        .await
        .with_context(|| format!("binding the node agent's port {}", args.node.kubelet_port))?;
    node.kubelet_port = listener.local_addr()?.port();
    let mut names = vec![
        node.name.clone(),
        machine.hostname.clone(),
        node.ip.to_string(),
        "localhost".to_string(),
        "127.0.0.1".to_string(),
    ];
    names.dedup();
    let (cert, key) = pki
        .issue_serving_cert(&node.name, &names, 365)
        .context("issuing the node agent's serving certificate")?;
    let server = crate::kubelet::NodeServer {
        listener,
        tls: pki
            .node_server_config(&cert, &key)
            .context("node agent tls configuration")?,
    };
    let candidates = crate::kubelet::etc::RESOLV_CONF_CANDIDATES.map(std::path::Path::new);
    let resolv_conf =
        crate::kubelet::etc::host_resolv_conf(args.node.resolv_conf.as_deref(), &candidates);
    start_dns(args, client, node.ip, &resolv_conf, tasks, cancel).await;
    let cfg = crate::kubelet::AgentConfig {
        resolv_conf,
        node,
        data_dir: args.data_dir.join("agent"),
        run_dir: "/run/k1s".into(),
        log_dir: "/var/log/pods".into(),
        cluster_cidr: args.cluster_cidr,
        cluster_dns: args
            .cluster_dns
            .unwrap_or_else(|| nth_ip(&args.service_cidr, 10)),
        cluster_domain: args.cluster_domain.clone(),
        cni_bin_dirs: args.node.cni_bin_dirs.clone(),
        registries: args.node.private_registry.clone(),
        shim_exe: std::env::current_exe().context("finding the k1s binary for the shim")?,
        image_pull_progress_deadline: args.node.image_pull_progress_deadline,
    };
    let name = cfg.node.name.clone();
    // The service proxy of this node (nftables rules and the loopback NodePort relay).
    tasks.spawn(crate::proxy::run(
        client.clone(),
        crate::proxy::ProxyConfig::new(
            &name,
            vec![cfg.node.ip],
            args.cluster_cidr,
            args.service_cidr,
        ),
        cancel.clone(),
    ));
    crate::kubelet::start(client.clone(), cfg, machine, server, tasks, cancel.clone())
        .await
        .with_context(|| format!("registering node {name}"))
}

/// Cluster DNS on the node's address, port 53. A node that cannot bind it runs without DNS
/// rather than not at all.
async fn start_dns(
    args: &ServerArgs,
    client: &kube::Client,
    ip: IpAddr,
    resolv_conf: &std::path::Path,
    tasks: &mut JoinSet<()>,
    cancel: &CancellationToken,
) {
    let addr = SocketAddr::new(ip, 53);
    let (udp, tcp) = match crate::dns::bind(addr).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%addr, error = %e, "cluster dns not started: cannot bind its port");
            return;
        }
    };
    let mut config = crate::dns::DnsConfig::new(&args.cluster_domain);
    config.resolv_conf = resolv_conf.to_path_buf();
    let service_ip = args
        .cluster_dns
        .unwrap_or_else(|| nth_ip(&args.service_cidr, 10));
    config.own_addresses.push(SocketAddr::new(service_ip, 53));
    let (client, cancel) = (client.clone(), cancel.clone());
    tasks.spawn(async move {
        if let Err(e) = crate::dns::run(client, config, udp, tcp, cancel).await {
            tracing::warn!(error = %e, "cluster dns stopped");
        }
    });
}

fn first_ip(net: &ipnetwork::IpNetwork) -> IpAddr {
    nth_ip(net, 1)
}

/// The `n`th address of a network (k3s puts cluster DNS at the 10th of the service CIDR).
fn nth_ip(net: &ipnetwork::IpNetwork, n: u32) -> IpAddr {
    match net {
        ipnetwork::IpNetwork::V4(v) => IpAddr::V4(std::net::Ipv4Addr::from(
            u32::from(v.network()).wrapping_add(n),
        )),
        ipnetwork::IpNetwork::V6(v) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v.network()).wrapping_add(u128::from(n)),
        )),
    }
}

/// Run until SIGINT or SIGTERM.
pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    let running = start(&args, None).await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let cancel = running.cancel_token();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupted, shutting down"),
        _ = term.recv() => tracing::info!("terminated, shutting down"),
        _ = cancel.cancelled() => tracing::warn!("a critical task asked for shutdown"),
    }
    running.shutdown().await
}
