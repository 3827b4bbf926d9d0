//! The Services every cluster has, kept by the server: `kubernetes` in `default` (the API at
//! the first service IP, with the Endpoints and EndpointSlice upstream's endpoint
//! reconciler writes for the advertise address) and `kube-dns` in `kube-system` at the
//! cluster DNS address. The DNS server runs in every node agent on the node's InternalIP,
//! so kube-dns has no selector and its EndpointSlice (and Endpoints) list one endpoint per
//! Node, ready when the Node is. Objects are created when missing (also after a user
//! deletes them) and corrected when they drift; nothing else is touched.

use super::informers::Informers;
use super::servicelb::is_ready;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort as CorePort, EndpointSubset, Endpoints, Node, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::json;
use std::fmt::Debug;
use std::net::IpAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Who writes the default Services' slices (not the EndpointSlice controller).
pub const MANAGED_BY: &str = "k1s";

#[derive(Clone, Debug)]
pub struct DefaultServices {
    /// Where clients reach the API server (the advertise address) and its port.
    pub api_address: IpAddr,
    pub api_port: u16,
    /// The `kubernetes` Service's ClusterIP: the first of the service CIDR.
    pub kubernetes_ip: IpAddr,
    /// The `kube-dns` Service's ClusterIP (`--cluster-dns`).
    pub dns_ip: IpAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {ns}/{name}: {source}")]
    Api {
        what: &'static str,
        ns: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("building {0}: {1}")]
    Build(&'static str, serde_json::Error),
}

fn family(ip: &IpAddr) -> &'static str {
    if ip.is_ipv6() {
        "IPv6"
    } else {
        "IPv4"
    }
}

/// Create `want` if missing; if present and `drifted(current)` holds, replace it with `want`
/// (keeping its resourceVersion). Returns nothing; conflicts are errors the loop retries.
async fn converge<K>(
    api: &Api<K>,
    what: &'static str,
    want: K,
    drifted: impl Fn(&K) -> bool,
) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    let name = want.name_any();
    let ns = want.namespace().unwrap_or_default();
    let err = |source| Error::Api {
        what,
        ns: ns.clone(),
        name: name.clone(),
        source: Box::new(source),
    };
    match api.get_opt(&name).await.map_err(err)? {
        None => match api.create(&PostParams::default(), &want).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
            Err(e) => Err(err(e)),
        },
        Some(cur) if drifted(&cur) => {
            let mut want = want;
            want.meta_mut().resource_version = cur.resource_version();
            want.meta_mut().uid = cur.uid();
            api.replace(&name, &PostParams::default(), &want)
                .await
                .map(|_| ())
                .map_err(err)
        }
        Some(_) => Ok(()),
    }
}

/// A default Service whose ClusterIP is not the configured one (the service CIDR or
/// `--cluster-dns` changed between runs) cannot be updated in place: delete it, so it is
/// created again at the right address.
async fn recreate_if_moved(api: &Api<Service>, want: &Service) -> Result<(), Error> {
    let name = want.name_any();
    let err = |source| Error::Api {
        what: "service",
        ns: want.namespace().unwrap_or_default(),
        name: name.clone(),
        source: Box::new(source),
    };
    let Some(cur) = api.get_opt(&name).await.map_err(err)? else {
        return Ok(());
    };
    let ip = |s: &Service| s.spec.as_ref().and_then(|s| s.cluster_ip.clone());
    if ip(&cur) == ip(want) {
        return Ok(());
    }
    tracing::info!(service = %name, from = ?ip(&cur), to = ?ip(want), "moving a default service");
    let dp = kube::api::DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            uid: cur.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&name, &dp).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(err(e)),
    }
}

fn build<K: DeserializeOwned>(what: &'static str, v: serde_json::Value) -> Result<K, Error> {
    serde_json::from_value(v).map_err(|e| Error::Build(what, e))
}

/// One pass: make every default object what it should be.
pub async fn ensure(client: &Client, cfg: &DefaultServices) -> Result<(), Error> {
    ensure_kubernetes(client, cfg).await?;
    ensure_kube_dns(client, cfg).await
}

async fn ensure_kubernetes(client: &Client, cfg: &DefaultServices) -> Result<(), Error> {
    let svc: Service = build(
        "service",
        json!({
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": cfg.kubernetes_ip.to_string(),
                     "sessionAffinity": "None",
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": cfg.api_port}]}
        }),
    )?;
    let want_ports = svc.spec.as_ref().and_then(|s| s.ports.clone());
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    recreate_if_moved(&api, &svc).await?;
    converge(&api, "service", svc.clone(), |cur| {
        cur.spec.as_ref().and_then(|s| s.ports.clone()) != want_ports
    })
    .await?;
    let port = CorePort {
        name: Some("https".into()),
        port: i32::from(cfg.api_port),
        protocol: Some("TCP".into()),
        app_protocol: None,
    };
    let subsets = vec![EndpointSubset {
        addresses: Some(vec![EndpointAddress {
            ip: cfg.api_address.to_string(),
            ..Default::default()
        }]),
        ports: Some(vec![port]),
        not_ready_addresses: None,
    }];
    let ep: Endpoints = build(
        "endpoints",
        json!({
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": subsets,
        }),
    )?;
    let eapi: Api<Endpoints> = Api::namespaced(client.clone(), "default");
    converge(&eapi, "endpoints", ep.clone(), |cur| {
        cur.subsets != ep.subsets || cur.metadata.labels != ep.metadata.labels
    })
    .await?;
    let slice: EndpointSlice = build(
        "endpointslice",
        json!({
            "metadata": {"name": "kubernetes", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": family(&cfg.api_address),
            "endpoints": [{"addresses": [cfg.api_address.to_string()], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": cfg.api_port, "protocol": "TCP"}],
        }),
    )?;
    let sapi: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    converge(&sapi, "endpointslice", slice.clone(), |cur| {
        same_slice(cur, &slice)
    })
    .await
}

fn same_slice(cur: &EndpointSlice, want: &EndpointSlice) -> bool {
    cur.endpoints != want.endpoints
        || cur.ports != want.ports
        || cur.address_type != want.address_type
        || cur.metadata.labels != want.metadata.labels
}

/// The kube-dns endpoints: one per Node with an InternalIP of the DNS address's family.
pub fn dns_endpoints(nodes: &[Node], v6: bool) -> Vec<Endpoint> {
    let mut out: Vec<Endpoint> = nodes
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .filter_map(|n| {
            let ip = n
                .status
                .as_ref()?
                .addresses
                .as_ref()?
                .iter()
                .filter(|a| a.type_ == "InternalIP")
                .find(|a| {
                    a.address
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_ipv6() == v6)
                })?
                .address
                .clone();
            let ready = is_ready(n);
            Some(Endpoint {
                addresses: vec![ip],
                conditions: Some(EndpointConditions {
                    ready: Some(ready),
                    serving: Some(ready),
                    terminating: Some(false),
                }),
                node_name: Some(n.name_any()),
                ..Default::default()
            })
        })
        .collect();
    out.sort_by(|a, b| a.node_name.cmp(&b.node_name));
    out
}

async fn ensure_kube_dns(client: &Client, cfg: &DefaultServices) -> Result<(), Error> {
    let svc: Service = build(
        "service",
        json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS"}},
            "spec": {"type": "ClusterIP", "clusterIP": cfg.dns_ip.to_string(),
                     "internalTrafficPolicy": "Local",
                     "ports": [
                        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53}]}
        }),
    )?;
    let api: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    recreate_if_moved(&api, &svc).await?;
    converge(&api, "service", svc, |_| false).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    let nodes = nodes
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::Api {
            what: "nodes",
            ns: String::new(),
            name: String::new(),
            source: Box::new(source),
        })?;
    let eps = dns_endpoints(&nodes.items, cfg.dns_ip.is_ipv6());
    let ports = vec![
        EndpointPort {
            name: Some("dns".into()),
            port: Some(53),
            protocol: Some("UDP".into()),
            app_protocol: None,
        },
        EndpointPort {
            name: Some("dns-tcp".into()),
            port: Some(53),
            protocol: Some("TCP".into()),
            app_protocol: None,
        },
    ];
    let mut slice: EndpointSlice = build(
        "endpointslice",
        json!({
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {
                "kubernetes.io/service-name": "kube-dns",
                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS"}},
            "addressType": family(&cfg.dns_ip),
            "endpoints": [],
        }),
    )?;
    slice.endpoints = eps.clone();
    slice.ports = Some(ports.clone());
    let sapi: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    converge(&sapi, "endpointslice", slice.clone(), |cur| {
        same_slice(cur, &slice)
    })
    .await?;
    // The legacy Endpoints, for tools that still read them.
    let core_ports: Vec<CorePort> = ports
        .iter()
        .map(|p| CorePort {
            name: p.name.clone(),
            port: 53,
            protocol: p.protocol.clone(),
            app_protocol: None,
        })
        .collect();
    let addr = |e: &Endpoint| EndpointAddress {
        ip: e.addresses[0].clone(),
        node_name: e.node_name.clone(),
        ..Default::default()
    };
    let ready = |e: &&Endpoint| e.conditions.as_ref().and_then(|c| c.ready) == Some(true);
    let r: Vec<EndpointAddress> = eps.iter().filter(ready).map(addr).collect();
    let nr: Vec<EndpointAddress> = eps.iter().filter(|e| !ready(e)).map(addr).collect();
    let subsets = (!eps.is_empty()).then(|| {
        vec![EndpointSubset {
            addresses: (!r.is_empty()).then_some(r),
            not_ready_addresses: (!nr.is_empty()).then_some(nr),
            ports: Some(core_ports),
        }]
    });
    let mut ep: Endpoints = build(
        "endpoints",
        json!({
            // Its slice is written above: the mirroring controller must not make another.
            "metadata": {"name": "kube-dns", "namespace": "kube-system", "labels": {
                "endpointslice.kubernetes.io/skip-mirror": "true",
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS"}},
        }),
    )?;
    ep.subsets = subsets;
    let eapi: Api<Endpoints> = Api::namespaced(client.clone(), "kube-system");
    converge(&eapi, "endpoints", ep.clone(), |cur| {
        cur.subsets.clone().filter(|s| !s.is_empty()) != ep.subsets
            || cur.metadata.labels != ep.metadata.labels
    })
    .await
}

/// Keep the default objects right: once now, then whenever a Node or one of them changes,
/// and every 10 s (as upstream's endpoint reconciler) to repair what a missed event hid.
pub async fn run(informers: Informers, cfg: DefaultServices, cancel: CancellationToken) {
    let client = informers.client().clone();
    let names = |o: &str| o == "kubernetes" || o == "kube-dns";
    let nodes = informers.get::<Node>().subscribe().map(|_| ()).boxed();
    let svcs = informers
        .get::<Service>()
        .subscribe()
        .filter(move |s| std::future::ready(names(&s.name_any())))
        .map(|_| ())
        .boxed();
    let eps = watcher(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .filter(move |o| std::future::ready(o.as_ref().is_ok_and(|s| names(&s.name_any()))))
    .map(|_| ())
    .boxed();
    let slices = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects()
    .filter(move |o| std::future::ready(o.as_ref().is_ok_and(|s| names(&s.name_any()))))
    .map(|_| ())
    .boxed();
    let mut events = futures::stream::select_all([nodes, svcs, eps, slices]);
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
            e = events.next() => if e.is_none() { return },
        }
        // Coalesce a burst of events into one pass.
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(20), events.next()).await
        {
        }
        if let Err(e) = ensure(&client, &cfg).await {
            tracing::warn!(error = %e, "keeping the default services");
        }
    }
}
