//! Pure rendering of nftables rules: the fixed skeleton of k1s's table (base chains at the
//! dstnat, srcnat and filter hooks, the dispatch verdict maps, reject and masquerade helpers)
//! and, per Service, its chains, affinity sets and map elements. The layout follows upstream
//! kube-proxy's nftables mode. Nothing here runs a command or knows what the kernel holds;
//! `plan` turns these into transactions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use ipnetwork::IpNetwork;

use super::model::{Endpoint, ServiceInput, ServicePort};

/// The nftables family of k1s's table (IPv4 only for now).
pub const FAMILY: &str = "ip";

/// Dispatch of ClusterIP, externalIP and load-balancer IP traffic.
pub const SERVICE_IPS: &str = "service-ips";
/// Dispatch of NodePort traffic to any local address.
pub const SERVICE_NODEPORTS: &str = "service-nodeports";
/// Reject or drop for service IPs without (usable) endpoints.
pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
/// Every ClusterIP: traffic left addressed to one after DNAT is to an undefined port.
pub const CLUSTER_IPS: &str = "cluster-ips";

const MARK_MASQ: &str = "mark-for-masquerade";
const REJECT_CHAIN: &str = "reject-chain";
/// The packet mark asking for masquerade (bit 14, as kube-proxy).
const MASQ_BIT: &str = "0x00004000";

/// The node facts the rules depend on.
#[derive(Clone, Debug)]
pub struct RenderConfig {
    pub table: String,
    pub cluster_cidr: IpNetwork,
    pub service_cidr: IpNetwork,
}

/// A map or set element: which map, and its key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElementKey {
    pub map: &'static str,
    pub key: String,
}

/// What one Service contributes to the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Chain name to its rules, in order.
    pub chains: BTreeMap<String, Vec<String>>,
    /// Affinity set name to its timeout in seconds.
    pub sets: BTreeMap<String, u32>,
    /// Map elements to their value (empty for plain set elements).
    pub elements: BTreeMap<ElementKey, String>,
}

/// The skeleton of the table, created once per full resync. Contains no service data.
/// Packets to 127.0.0.0/8 from elsewhere that are not replies and were not DNATed.
const LOCALNET_GUARD: &str = "iif != lo ip saddr != 127.0.0.0/8 ip daddr 127.0.0.0/8 ct state != { established, related } ct status & dnat == 0";

/// The chain whose listing tells whether the table is still as k1s wrote it: a flushed ruleset,
/// a deleted table or a flushed chain all lose its jump.
pub const CANARY_CHAIN: &str = "nat-prerouting";

/// Whether `listing` (of `CANARY_CHAIN`, `None` when absent) still has the skeleton's rule.
pub fn canary_intact(listing: Option<&str>) -> bool {
    listing.is_some_and(|l| l.contains("jump services"))
}

pub fn skeleton(cfg: &RenderConfig) -> String {
    let t = format!("{FAMILY} {}", cfg.table);
    let mut s = String::new();
    let _ = writeln!(s, "add table {t} {{ comment \"k1s service proxy\"; }}");
    for (map, ty) in [
        (
            SERVICE_IPS,
            "ipv4_addr . inet_proto . inet_service : verdict",
        ),
        (SERVICE_NODEPORTS, "inet_proto . inet_service : verdict"),
        (
            NO_ENDPOINT_SERVICES,
            "ipv4_addr . inet_proto . inet_service : verdict",
        ),
        (NO_ENDPOINT_NODEPORTS, "inet_proto . inet_service : verdict"),
    ] {
        let _ = writeln!(s, "add map {t} {map} {{ type {ty}; }}");
    }
    let _ = writeln!(s, "add set {t} {CLUSTER_IPS} {{ type ipv4_addr; }}");
    // Base chains. Filtering runs where DNAT has already happened (input, forward, and after
    // the output DNAT), so traffic already sent to an endpoint never matches a reject.
    for (name, ty, hook, prio) in [
        ("filter-input", "filter", "input", 0),
        ("filter-forward", "filter", "forward", 0),
        ("filter-output", "filter", "output", -90),
        ("nat-prerouting", "nat", "prerouting", -100),
        ("nat-output", "nat", "output", -100),
        ("nat-postrouting", "nat", "postrouting", 100),
    ] {
        let _ = writeln!(
            s,
            "add chain {t} {name} {{ type {ty} hook {hook} priority {prio}; policy accept; }}"
        );
    }
    for c in [
        "services",
        "endpoints-check",
        "cluster-ips-check",
        "masquerading",
        MARK_MASQ,
        REJECT_CHAIN,
    ] {
        let _ = writeln!(s, "add chain {t} {c}");
    }
    let rules: &[(&str, String)] = &[
        // Where a host sets route_localnet (the portmap plugin does on the pod bridge, for
        // hostPorts on 127.0.0.1), a neighbour could reach services bound to localhost by
        // sending to 127.0.0.0/8 (CVE-2020-8558); kube-proxy drops such packets the same way.
        (
            "filter-input",
            format!("{LOCALNET_GUARD} drop comment \"localhost reached from outside\""),
        ),
        ("filter-input", "ct state new jump endpoints-check".into()),
        ("filter-forward", "ct state new jump endpoints-check".into()),
        ("filter-forward", "ct state new jump cluster-ips-check".into()),
        ("filter-output", "ct state new jump endpoints-check".into()),
        ("filter-output", "ct state new jump cluster-ips-check".into()),
        (CANARY_CHAIN, "jump services".into()),
        ("nat-output", "jump services".into()),
        ("nat-postrouting", "jump masquerading".into()),
        (
            "services",
            format!("ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}"),
        ),
        (
            "services",
            format!(
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"
            ),
        ),
        (
            "endpoints-check",
            format!("ip daddr . meta l4proto . th dport vmap @{NO_ENDPOINT_SERVICES}"),
        ),
        (
            "endpoints-check",
            format!(
                "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @{NO_ENDPOINT_NODEPORTS}"
            ),
        ),
        (
            "cluster-ips-check",
            format!("ip daddr @{CLUSTER_IPS} goto {REJECT_CHAIN} comment \"undefined port of a ClusterIP\""),
        ),
        (
            "cluster-ips-check",
            format!(
                "ip daddr {} drop comment \"unallocated ClusterIP\"",
                cfg.service_cidr
            ),
        ),
        (MARK_MASQ, format!("meta mark set meta mark or {MASQ_BIT}")),
        (
            "masquerading",
            format!("meta mark & {MASQ_BIT} == 0x00000000 return"),
        ),
        (
            "masquerading",
            format!("meta mark set meta mark xor {MASQ_BIT}"),
        ),
        ("masquerading", "masquerade fully-random".into()),
        (REJECT_CHAIN, "meta l4proto tcp reject with tcp reset".into()),
        (REJECT_CHAIN, "reject".into()),
    ];
    for (chain, rule) in rules {
        let _ = writeln!(s, "add rule {t} {chain} {rule}");
    }
    s
}

/// The per-port name part: `<namespace>/<service>/<protocol>/<port name>`. nftables names
/// may hold `/`, Kubernetes names may not, so these never collide with the skeleton's.
fn base(input: &ServiceInput, p: &ServicePort) -> String {
    format!(
        "{}/{}/{}/{}",
        input.key.namespace,
        input.key.name,
        p.protocol.as_str(),
        p.name
    )
}

fn endpoint_suffix(e: &Endpoint) -> String {
    format!("__{}/{}", e.ip, e.port)
}

/// True for chains and sets that belong to a Service (not the skeleton).
pub fn is_service_object(name: &str) -> bool {
    name.contains('/')
}

fn elem(map: &'static str, key: String) -> ElementKey {
    ElementKey { map, key }
}

/// The chains, sets and elements of one Service.
pub fn service(input: &ServiceInput, cfg: &RenderConfig) -> ServiceRules {
    let mut out = ServiceRules::default();
    for p in &input.ports {
        port(input, p, cfg, &mut out);
    }
    out
}

fn port(input: &ServiceInput, p: &ServicePort, cfg: &RenderConfig, out: &mut ServiceRules) {
    let b = base(input, p);
    let proto = p.protocol.as_str();
    let cat = p.categorize();
    let cluster_chain = format!("service-{b}");
    let local_chain = format!("local-{b}");
    let external_chain = format!("external-{b}");
    let ep_chain = |e: &Endpoint| format!("endpoint-{b}{}", endpoint_suffix(e));
    let affinity_set = |e: &Endpoint| format!("affinity-{b}{}", endpoint_suffix(e));

    let uses_cluster_chain = p.uses_cluster_endpoints() && !cat.cluster.is_empty();
    let uses_local_chain = p.uses_local_endpoints() && !cat.local.is_empty();
    let (internal_chain, has_internal) = if p.internal_local {
        (&local_chain, !cat.local.is_empty())
    } else {
        (&cluster_chain, cat.any)
    };
    let (external_policy_chain, has_external) = if p.external_policy_local() {
        (&local_chain, !cat.local.is_empty())
    } else {
        (&cluster_chain, cat.any)
    };
    let uses_external_chain = cat.any && p.externally_accessible();

    // What a service IP without usable endpoints answers: reject when there are none at all,
    // drop when only this node has none (the Local policies).
    let reject = format!("goto {REJECT_CHAIN}");
    let no_internal = if cat.any { "drop" } else { reject.as_str() };
    let no_external = no_internal;

    let ip_key = |ip: Ipv4Addr| format!("{ip} . {proto} . {}", p.port);
    out.elements
        .insert(elem(CLUSTER_IPS, p.cluster_ip.to_string()), String::new());
    if has_internal {
        out.elements.insert(
            elem(SERVICE_IPS, ip_key(p.cluster_ip)),
            format!("goto {internal_chain}"),
        );
    } else {
        out.elements.insert(
            elem(NO_ENDPOINT_SERVICES, ip_key(p.cluster_ip)),
            no_internal.to_string(),
        );
    }
    for ip in p.external_ips.iter().chain(&p.lb_ips) {
        if cat.any {
            out.elements.insert(
                elem(SERVICE_IPS, ip_key(*ip)),
                format!("goto {external_chain}"),
            );
        }
        if !has_external {
            out.elements.insert(
                elem(NO_ENDPOINT_SERVICES, ip_key(*ip)),
                no_external.to_string(),
            );
        }
    }
    if let Some(np) = p.node_port {
        let key = format!("{proto} . {np}");
        if cat.any {
            out.elements.insert(
                elem(SERVICE_NODEPORTS, key.clone()),
                format!("goto {external_chain}"),
            );
        }
        if !has_external {
            out.elements
                .insert(elem(NO_ENDPOINT_NODEPORTS, key), no_external.to_string());
        }
    }

    let mut internal_rules = Vec::new();
    if has_internal {
        // Traffic to the ClusterIP from outside the pod network (the host, other machines
        // routing the service CIDR here) is masqueraded so replies come back through us.
        internal_rules.push(format!(
            "ip daddr {} {proto} dport {} ip saddr != {} jump {MARK_MASQ}",
            p.cluster_ip, p.port, cfg.cluster_cidr
        ));
    }

    if uses_external_chain {
        let mut rules = Vec::new();
        if !p.external_policy_local() {
            // The endpoint may be on another node: masquerade so the reply returns here.
            rules.push(format!("jump {MARK_MASQ}"));
        } else {
            // externalTrafficPolicy Local keeps the client's address, but pods and the host
            // itself reaching an external address are served by any endpoint, as if they had
            // gone out to a load balancer and come back.
            rules.push(format!(
                "ip saddr {} goto {cluster_chain} comment \"short-circuit pod traffic\"",
                cfg.cluster_cidr
            ));
            rules.push(format!(
                "fib saddr type local jump {MARK_MASQ} comment \"masquerade local traffic\""
            ));
            rules.push(format!(
                "fib saddr type local goto {cluster_chain} comment \"short-circuit local traffic\""
            ));
        }
        if has_external {
            rules.push(format!("goto {external_policy_chain}"));
        }
        out.chains.insert(external_chain.clone(), rules);
    }

    if let Some(timeout) = p.affinity {
        for e in &cat.reachable {
            out.sets.insert(affinity_set(e), timeout);
        }
    }
    let dispatch = |eps: &[&Endpoint], mut rules: Vec<String>| {
        if p.affinity.is_some() {
            for e in eps {
                rules.push(format!(
                    "ip saddr @{} goto {}",
                    affinity_set(e),
                    ep_chain(e)
                ));
            }
        }
        if let [only] = eps {
            // One endpoint needs no draw. Each `numgen ... vmap { }` is an anonymous set, and
            // the kernel looks sets up by walking the table's list, so thousands of them make
            // every transaction slower; single-endpoint Services (the common case) add none.
            rules.push(format!("goto {}", ep_chain(only)));
            return rules;
        }
        let arms: Vec<String> = eps
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{i} : goto {}", ep_chain(e)))
            .collect();
        rules.push(format!(
            "numgen random mod {} vmap {{ {} }}",
            eps.len(),
            arms.join(", ")
        ));
        rules
    };
    let mut internal_rules = Some(internal_rules);
    if uses_cluster_chain {
        let pre = if !p.internal_local {
            internal_rules.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        out.chains
            .insert(cluster_chain.clone(), dispatch(&cat.cluster, pre));
    }
    if uses_local_chain {
        let pre = if p.internal_local {
            internal_rules.take().unwrap_or_default()
        } else {
            Vec::new()
        };
        out.chains
            .insert(local_chain.clone(), dispatch(&cat.local, pre));
    }

    for e in &cat.reachable {
        let mut rules = vec![format!("ip saddr {} jump {MARK_MASQ}", e.ip)];
        if p.affinity.is_some() {
            rules.push(format!("update @{} {{ ip saddr }}", affinity_set(e)));
        }
        rules.push(format!("meta l4proto {proto} dnat to {}:{}", e.ip, e.port));
        out.chains.insert(ep_chain(e), rules);
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{Protocol, ServiceKey};
    use super::*;

    fn cfg() -> RenderConfig {
        RenderConfig {
            table: "k1s".into(),
            cluster_cidr: "10.42.0.0/16".parse().unwrap(),
            service_cidr: "10.43.0.0/16".parse().unwrap(),
        }
    }

    fn ep(last: u8, local: bool) -> Endpoint {
        Endpoint {
            ip: Ipv4Addr::new(10, 42, 0, last),
            port: 8080,
            ready: true,
            serving: true,
            terminating: false,
            local,
        }
    }

    fn input(endpoints: Vec<Endpoint>) -> ServiceInput {
        ServiceInput {
            key: ServiceKey::new("default", "web"),
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: Protocol::Tcp,
                port: 80,
                cluster_ip: Ipv4Addr::new(10, 43, 0, 5),
                node_port: None,
                external_ips: vec![],
                lb_ips: vec![],
                affinity: None,
                external_local: false,
                internal_local: false,
                endpoints,
            }],
        }
    }

    const SVC: &str = "service-default/web/tcp/http";

    #[test]
    fn cluster_ip_with_two_endpoints_balances_randomly() {
        let r = service(&input(vec![ep(1, false), ep(2, false)]), &cfg());
        assert_eq!(
            r.elements[&elem(SERVICE_IPS, "10.43.0.5 . tcp . 80".into())],
            format!("goto {SVC}")
        );
        let rules = &r.chains[SVC];
        assert_eq!(
            rules[0],
            "ip daddr 10.43.0.5 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade"
        );
        assert_eq!(
            rules[1],
            "numgen random mod 2 vmap { 0 : goto endpoint-default/web/tcp/http__10.42.0.1/8080, \
             1 : goto endpoint-default/web/tcp/http__10.42.0.2/8080 }"
        );
        let ep1 = &r.chains["endpoint-default/web/tcp/http__10.42.0.1/8080"];
        assert_eq!(
            ep1,
            &vec![
                "ip saddr 10.42.0.1 jump mark-for-masquerade".to_string(),
                "meta l4proto tcp dnat to 10.42.0.1:8080".to_string()
            ]
        );
        assert!(r.sets.is_empty());
        assert!(!r.elements.keys().any(|k| k.map == NO_ENDPOINT_SERVICES));
    }

    #[test]
    fn no_endpoints_rejects_and_creates_no_chains() {
        let mut i = input(vec![]);
        i.ports[0].node_port = Some(30080);
        let r = service(&i, &cfg());
        assert!(r.chains.is_empty());
        assert_eq!(
            r.elements[&elem(NO_ENDPOINT_SERVICES, "10.43.0.5 . tcp . 80".into())],
            "goto reject-chain"
        );
        assert_eq!(
            r.elements[&elem(NO_ENDPOINT_NODEPORTS, "tcp . 30080".into())],
            "goto reject-chain"
        );
        assert!(r
            .elements
            .contains_key(&elem(CLUSTER_IPS, "10.43.0.5".into())));
    }

    #[test]
    fn session_affinity_adds_sets_and_sticky_rules() {
        let mut i = input(vec![ep(1, false)]);
        i.ports[0].affinity = Some(60);
        let r = service(&i, &cfg());
        let set = "affinity-default/web/tcp/http__10.42.0.1/8080";
        assert_eq!(r.sets[set], 60);
        assert!(r.chains[SVC].contains(&format!(
            "ip saddr @{set} goto endpoint-default/web/tcp/http__10.42.0.1/8080"
        )));
        assert!(r.chains["endpoint-default/web/tcp/http__10.42.0.1/8080"]
            .contains(&format!("update @{set} {{ ip saddr }}")));
    }

    #[test]
    fn external_local_keeps_the_source_and_drops_without_local_endpoints() {
        let mut i = input(vec![ep(1, true), ep(2, false)]);
        i.ports[0].node_port = Some(30080);
        i.ports[0].external_local = true;
        i.ports[0].lb_ips = vec![Ipv4Addr::new(192, 168, 1, 10)];
        let r = service(&i, &cfg());
        let ext = &r.chains["external-default/web/tcp/http"];
        assert!(!ext.contains(&"jump mark-for-masquerade".to_string()));
        assert_eq!(ext.last().unwrap(), "goto local-default/web/tcp/http");
        let local = &r.chains["local-default/web/tcp/http"];
        assert_eq!(
            local[0],
            "goto endpoint-default/web/tcp/http__10.42.0.1/8080"
        );
        assert_eq!(
            r.elements[&elem(SERVICE_IPS, "192.168.1.10 . tcp . 80".into())],
            "goto external-default/web/tcp/http"
        );

        i.ports[0].endpoints[0].local = false;
        let r = service(&i, &cfg());
        assert!(!r.chains.contains_key("local-default/web/tcp/http"));
        assert_eq!(
            r.elements[&elem(NO_ENDPOINT_NODEPORTS, "tcp . 30080".into())],
            "drop"
        );
        // Pods and the host still reach it through the short-circuit.
        assert!(r
            .elements
            .contains_key(&elem(SERVICE_NODEPORTS, "tcp . 30080".into())));
    }

    #[test]
    fn external_cluster_masquerades() {
        let mut i = input(vec![ep(1, false)]);
        i.ports[0].external_ips = vec![Ipv4Addr::new(192, 0, 2, 1)];
        let r = service(&i, &cfg());
        assert_eq!(
            r.chains["external-default/web/tcp/http"],
            vec![
                "jump mark-for-masquerade".to_string(),
                format!("goto {SVC}")
            ]
        );
    }

    #[test]
    fn internal_local_uses_only_this_nodes_endpoints() {
        let mut i = input(vec![ep(1, true), ep(2, false)]);
        i.ports[0].internal_local = true;
        let r = service(&i, &cfg());
        assert!(!r.chains.contains_key(SVC));
        assert_eq!(
            r.elements[&elem(SERVICE_IPS, "10.43.0.5 . tcp . 80".into())],
            "goto local-default/web/tcp/http"
        );
        assert!(r
            .chains
            .contains_key("endpoint-default/web/tcp/http__10.42.0.1/8080"));
        assert!(!r
            .chains
            .contains_key("endpoint-default/web/tcp/http__10.42.0.2/8080"));
        i.ports[0].endpoints[0].local = false;
        let r = service(&i, &cfg());
        assert_eq!(
            r.elements[&elem(NO_ENDPOINT_SERVICES, "10.43.0.5 . tcp . 80".into())],
            "drop"
        );
    }

    #[test]
    fn skeleton_names_its_table_and_service_cidr() {
        let s = skeleton(&cfg());
        assert!(s.starts_with("add table ip k1s"));
        assert!(s.contains("ip daddr 10.43.0.0/16 drop"));
        assert!(s.contains(&format!(
            "add rule ip k1s filter-input {LOCALNET_GUARD} drop"
        )));
        assert!(!s
            .lines()
            .any(|l| is_service_object(l.split(' ').nth(4).unwrap_or(""))));
    }
}
