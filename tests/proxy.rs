//! The service proxy with real nftables, as root, inside private network namespaces (see
//! `proxy_support`): real connections through ClusterIPs, NodePorts, load-balancer and
//! external IPs, rejects, session affinity, traffic policies, endpoint changes, UDP conntrack
//! cleanup and restart resync, all driven by Services and EndpointSlices written to an
//! in-process API. One test uses the recording kernel to check what `proxy::run` writes.

mod proxy_support;

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use k1s::proxy::{self, RecordingKernel};
use proxy_support::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

fn web_svc(name: &str, ip: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut spec =
        json!({"clusterIP": ip, "ports": [{"name": "http", "port": 80, "targetPort": 8080}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn http_ports() -> serde_json::Value {
    json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
}

fn names(results: &[std::io::Result<String>]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in results {
        let line = r.as_ref().expect("connection through the proxy");
        *m.entry(line.clone()).or_insert(0) += 1;
    }
    m
}

/// Starts the proxy; it runs in the namespace of the calling runtime (the node's).
fn start(client: &kube::Client, cfg: proxy::ProxyConfig) -> CancellationToken {
    let cancel = CancellationToken::new();
    tokio::spawn(proxy::run(client.clone(), cfg, cancel.clone()));
    cancel
}

fn wait_table(net: &TestNet, what: &str, f: impl Fn(&str) -> bool) -> String {
    wait_table_within(net, what, 10, f)
}

fn wait_table_within(net: &TestNet, what: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(t) = net.table() {
            if f(&t) {
                return t;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            net.table()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cluster_ip_spreads_over_endpoints_from_client_pod_and_host_with_hairpin() {
    let net = Arc::new(TestNet::new(2));
    let n = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service(&c, web_svc("web", "10.43.0.20", json!({}))).await;
        put_slice(&c, "web", http_ports(), &[ready(0), ready(1)]).await;
        let _stop = start(&c, n.config()).drop_guard();
        wait_table(&n, "web rules", |t| t.contains("numgen random mod 2"));

        let from_client = names(&tcp_from(&n.client, "10.43.0.20:80", 40));
        // Outside the cluster CIDR: masqueraded to the bridge address.
        assert_eq!(from_client.len(), 2, "{from_client:?}");
        assert!(
            from_client.contains_key(&format!("p0 {BRIDGE_IP}")),
            "{from_client:?}"
        );
        assert!(
            from_client.contains_key(&format!("p1 {BRIDGE_IP}")),
            "{from_client:?}"
        );

        let from_pod = names(&tcp_from(&n.pods[0], "10.43.0.20:80", 40));
        // Pod to pod keeps the source; a pod reaching itself is masqueraded (hairpin).
        assert!(
            from_pod.contains_key(&format!("p1 {}", pod_ip(0))),
            "{from_pod:?}"
        );
        assert!(
            from_pod.contains_key(&format!("p0 {BRIDGE_IP}")),
            "{from_pod:?}"
        );

        let from_host = names(&tcp_from(&n.node, "10.43.0.20:80", 20));
        assert!(
            from_host.keys().all(|k| k.starts_with('p')),
            "{from_host:?}"
        );
    });
}

#[test]
fn services_without_endpoints_and_undefined_ports_are_refused_fast() {
    let net = Arc::new(TestNet::new(1));
    let n = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service(
            &c,
            web_svc(
                "empty",
                "10.43.0.21",
                json!({"type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30081}]}),
            ),
        )
        .await;
        create_service(&c, web_svc("web", "10.43.0.22", json!({}))).await;
        put_slice(&c, "web", http_ports(), &[ready(0)]).await;
        let _stop = start(&c, n.config()).drop_guard();
        wait_table(&n, "rules", |t| {
            t.contains("10.43.0.21 . tcp . 80 : goto reject-chain")
        });
        for (ns, addr) in [
            (&n.client, "10.43.0.21:80"),
            (&n.pods[0], "10.43.0.21:80"),
            (&n.node, "10.43.0.21:80"),
            (&n.client, "192.168.77.1:30081"),
            (&n.client, "10.43.0.22:81"),
        ] {
            let (kind, took) = connect_outcome(ns, addr, Duration::from_secs(3));
            assert_eq!(kind, ErrorKind::ConnectionRefused, "{addr} from {ns}");
            assert!(
                took < Duration::from_secs(1),
                "{addr} from {ns} took {took:?}"
            );
        }
        // An address of the service CIDR nobody has is dropped, not refused.
        let (kind, _) = connect_outcome(&n.client, "10.43.0.99:80", Duration::from_millis(300));
        assert_eq!(kind, ErrorKind::TimedOut);
    });
}

#[test]
fn node_ports_load_balancer_and_external_ips() {
    let net = Arc::new(TestNet::new(1));
    let n = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service(
            &c,
            web_svc(
                "np",
                "10.43.0.30",
                json!({"type": "NodePort",
            "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}),
            ),
        )
        .await;
        create_service(
            &c,
            web_svc(
                "lb",
                "10.43.0.31",
                json!({"type": "LoadBalancer",
            "ports": [{"name": "http", "port": 8081, "nodePort": 30082}],
            "externalIPs": ["192.0.2.10"]}),
            ),
        )
        .await;
        set_lb_ingress(&c, "lb", NODE_IP).await;
        put_slice(&c, "np", http_ports(), &[ready(0)]).await;
        put_slice(&c, "lb", http_ports(), &[ready(0)]).await;
        let _stop = start(&c, n.config()).drop_guard();
        wait_table(&n, "lb rules", |t| {
            t.contains("192.168.77.1 . tcp . 8081") && t.contains("tcp . 30080")
        });

        for (ns, addr) in [
            (&n.client, "192.168.77.1:30080"),
            (&n.node, "192.168.77.1:30080"),
            (&n.pods[0], "192.168.77.1:30080"),
            (&n.node, "127.0.0.1:30080"),
            (&n.client, "192.168.77.1:8081"),
            (&n.node, "192.168.77.1:8081"),
            (&n.client, "192.0.2.10:8081"),
            (&n.client, "192.168.77.1:30082"),
        ] {
            let r = tcp_from(ns, addr, 1).remove(0);
            let line = r.unwrap_or_else(|e| panic!("{addr} from {ns}: {e}"));
            assert!(line.starts_with("p0 "), "{addr} from {ns}: {line}");
        }
        // Without endpoints, loopback is refused too.
        put_slice(&c, "np", http_ports(), &[]).await;
        wait_table(&n, "np rejected", |t| {
            t.contains("tcp . 30080 : goto reject-chain")
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (kind, _) = connect_outcome(&n.node, "127.0.0.1:30080", Duration::from_secs(2));
        assert_eq!(kind, ErrorKind::ConnectionRefused);
    });
}

#[test]
fn session_affinity_keeps_a_client_on_one_endpoint() {
    let net = Arc::new(TestNet::new(2));
    let n = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service(
            &c,
            web_svc(
                "sticky",
                "10.43.0.40",
                json!({"sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}}}),
            ),
        )
        .await;
        put_slice(&c, "sticky", http_ports(), &[ready(0), ready(1)]).await;
        let _stop = start(&c, n.config()).drop_guard();
        wait_table(&n, "affinity", |t| t.contains("timeout 5m"));
        let seen = names(&tcp_from(&n.client, "10.43.0.40:80", 30));
        assert_eq!(seen.len(), 1, "{seen:?}");
    });
}

#[test]
fn local_traffic_policies_use_this_nodes_endpoints_and_keep_the_client_address() {
    let net = Arc::new(TestNet::new(2));
    let n = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service(
            &c,
            web_svc(
                "ext",
                "10.43.0.50",
                json!({"type": "NodePort",
            "externalTrafficPolicy": "Local",
            "ports": [{"name": "http", "port": 80, "nodePort": 30090}]}),
            ),
        )
        .await;
        create_service(
            &c,
            web_svc(
                "int",
                "10.43.0.51",
                json!({"internalTrafficPolicy": "Local"}),
            ),
        )
        .await;
        let remote = Ep {
            node: "node-b",
            ..ready(1)
        };
        put_slice(&c, "ext", http_ports(), &[ready(0), remote]).await;
        put_slice(&c, "int", http_ports(), &[ready(0), remote]).await;
        let _stop = start(&c, n.config()).drop_guard();
        wait_table(&n, "local chains", |t| {
            t.contains("local-default/int/tcp/http")
        });

        let seen = names(&tcp_from(&n.client, "192.168.77.1:30090", 20));
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            vec![&format!("p0 {CLIENT_IP}")]
        );
        let seen = names(&tcp_from(&n.pods[1], "10.43.0.51:80", 20));
        assert_eq!(
            seen.keys().collect::<Vec<_>>(),
            vec![&format!("p0 {}", pod_ip(1))]
        );
        // Pods reaching the NodePort are served by any endpoint (short-circuit).
        let seen = names(&tcp_from(&n.pods[1], "192.168.77.1:30090", 30));
        assert_eq!(seen.len(), 2, "{seen:?}");

        // No local endpoint left: external traffic from outside is dropped.
        let remote0 = Ep {
            node: "node-b",
            ..ready(0)
        };
        put_slice(&c, "ext", http_ports(), &[remote0, remote]).await;
        wait_table(&n, "drop", |t| t.contains("tcp . 30090 : drop"));
        let (kind, _) =
            connect_outcome(&n.client, "192.168.77.1:30090", Duration::from_millis(300));
        assert_eq!(kind, ErrorKind::TimedOut);
    });
}

#[test]
fn endpoint_changes_apply_and_a_restart_resyncs_without_duplicates() {
    let net = Arc::new(TestNet::new(2));
    let n = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service(&c, web_svc("web", "10.43.0.60", json!({}))).await;
        put_slice(&c, "web", http_ports(), &[ready(0), ready(1)]).await;
        // Another program's table, which the proxy must leave alone.
        sh(&["ip", "netns", "exec", &n.node, "nft", "add table ip other; add chain ip other c { type nat hook prerouting priority -100; }; add rule ip other c tcp dport 9 accept"]);
        let other = sh(&["ip", "netns", "exec", &n.node, "nft", "list", "table", "ip", "other"]);
        let stop = start(&c, n.config());
        wait_table(&n, "two endpoints", |t| t.contains("numgen random mod 2"));

        // p1 starts terminating: only p0 gets new connections.
        let term = Ep {
            ready: false,
            terminating: true,
            ..ready(1)
        };
        put_slice(&c, "web", http_ports(), &[ready(0), term]).await;
        wait_table(&n, "one endpoint", |t| !t.contains("numgen random mod 2"));
        let seen = names(&tcp_from(&n.client, "10.43.0.60:80", 20));
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(seen.contains_key(&format!("p0 {BRIDGE_IP}")));
        // p0 goes away: the terminating but serving p1 is the fallback.
        put_slice(&c, "web", http_ports(), &[term]).await;
        wait_table(&n, "fallback", |t| {
            t.contains("10.42.0.3:8080") && !t.contains("10.42.0.2:8080")
        });
        let seen = names(&tcp_from(&n.client, "10.43.0.60:80", 5));
        assert!(seen.contains_key(&format!("p1 {BRIDGE_IP}")), "{seen:?}");
        // The removed endpoint's chain is deleted after its grace period.
        let before = wait_table(&n, "stale chain deleted", |t| {
            !t.contains("__10.42.0.2/8080")
        });

        // Restart: the new proxy rebuilds the same table in one transaction.
        stop.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let restarted = start(&c, n.config()).drop_guard();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = wait_table(&n, "resync", |t| t.contains("10.42.0.3:8080"));
        assert_eq!(before, after);
        let chains = after
            .lines()
            .filter(|l| l.trim_start().starts_with("chain "))
            .count();
        let unique: std::collections::BTreeSet<_> = after
            .lines()
            .filter(|l| l.trim_start().starts_with("chain "))
            .collect();
        assert_eq!(chains, unique.len());
        let seen = names(&tcp_from(&n.client, "10.43.0.60:80", 3));
        assert_eq!(seen.len(), 1);
        let still = sh(&["ip", "netns", "exec", &n.node, "nft", "list", "table", "ip", "other"]);
        assert_eq!(other, still);

        // Another program deletes the table, then flushes a chain of it: within the check
        // period it is rebuilt as it was, and traffic flows again.
        sh(&["ip", "netns", "exec", &n.node, "nft", "delete", "table", "ip", "k1s"]);
        assert!(n.table().is_none());
        let repaired = wait_table_within(&n, "the table rebuilt", 15, |t| t.contains("10.42.0.3:8080"));
        assert_eq!(before, repaired);
        sh(&["ip", "netns", "exec", &n.node, "nft", "flush", "chain", "ip", "k1s", "nat-prerouting"]);
        let repaired = wait_table_within(&n, "the chain refilled", 15, |t| t == before);
        assert_eq!(before, repaired);
        let seen = names(&tcp_from(&n.client, "10.43.0.60:80", 3));
        assert_eq!(seen.len(), 1);

        // Uninstall: k1s's table goes, twice is fine, the other stays.
        drop(restarted);
        tokio::time::sleep(Duration::from_millis(100)).await;
        proxy::remove_rules().unwrap();
        proxy::remove_rules().unwrap();
        assert!(n.table().is_none());
        let still = sh(&["ip", "netns", "exec", &n.node, "nft", "list", "table", "ip", "other"]);
        assert_eq!(other, still);
    });
}

#[test]
fn udp_conntrack_entries_of_a_removed_endpoint_are_flushed() {
    let net = Arc::new(TestNet::new(2));
    let n = net.clone();
    net.on_node(move || async move {
        let c = api().await;
        create_service(&c, json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns"},
            "spec": {"clusterIP": "10.43.0.70", "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 8080}]}})).await;
        let ports = json!([{"name": "dns", "port": 8080, "protocol": "UDP"}]);
        put_slice(&c, "dns", ports.clone(), &[ready(0)]).await;
        let _stop = start(&c, n.config()).drop_guard();
        wait_table(&n, "udp rules", |t| t.contains("10.43.0.70 . udp . 53"));
        let first = udp_from(&n.client, 40053, "10.43.0.70:53").expect("udp through the proxy");
        assert!(first.starts_with("p0 "), "{first}");
        put_slice(&c, "dns", ports, &[ready(1)]).await;
        wait_table(&n, "moved", |t| t.contains("10.42.0.3:8080") && !t.contains("10.42.0.2:8080"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The same client flow now reaches the new endpoint, not a stale entry.
        let second = udp_from(&n.client, 40053, "10.43.0.70:53").expect("udp after the move");
        assert!(second.starts_with("p1 "), "{second}");
    });
}

#[test]
fn namespaces_are_removed_even_when_a_test_fails() {
    let names = std::panic::catch_unwind(|| {
        let net = TestNet::new(1);
        let all: Vec<String> = net
            .pods
            .iter()
            .chain([&net.node, &net.client])
            .cloned()
            .collect();
        std::panic::panic_any(all);
    })
    .unwrap_err();
    let names = names.downcast::<Vec<String>>().unwrap();
    let list = sh(&["ip", "netns", "list"]);
    for ns in names.iter() {
        assert!(!list.contains(ns.as_str()), "{ns} left behind");
    }
}

/// `run_with_kernel` against the in-process API with the recording kernel: one full
/// transaction once both lists are in, then small ones touching only the changed Service.
#[tokio::test]
async fn the_proxy_writes_a_full_table_then_only_changes() {
    let c = api().await;
    create_service(&c, web_svc("a", "10.43.1.1", json!({}))).await;
    create_service(&c, web_svc("b", "10.43.1.2", json!({}))).await;
    put_slice(&c, "a", http_ports(), &[ready(0)]).await;
    put_slice(&c, "b", http_ports(), &[ready(1)]).await;
    let kernel = Arc::new(RecordingKernel::default());
    let cancel = CancellationToken::new();
    let cfg = proxy::ProxyConfig::new(
        NODE,
        vec![],
        "10.42.0.0/16".parse().unwrap(),
        "10.43.0.0/16".parse().unwrap(),
    );
    let _guard = cancel.clone().drop_guard();
    tokio::spawn(proxy::run_with_kernel(
        c.clone(),
        cfg,
        kernel.clone(),
        cancel,
    ));
    eventually(10, "full sync", || {
        (!kernel.scripts().is_empty()).then_some(())
    })
    .await;
    let scripts = kernel.scripts();
    assert_eq!(scripts.len(), 1, "{scripts:?}");
    assert!(scripts[0].starts_with("add table ip k1s\ndelete table ip k1s\n"));
    assert!(scripts[0].contains("10.43.1.1 . tcp . 80 : goto service-default/a/tcp/http"));
    assert!(scripts[0].contains("dnat to 10.42.0.3:8080"));

    put_slice(&c, "a", http_ports(), &[ready(0), ready(1)]).await;
    eventually(10, "incremental sync", || {
        (kernel.scripts().len() == 2).then_some(())
    })
    .await;
    let inc = &kernel.scripts()[1];
    assert!(!inc.contains("delete table"), "{inc}");
    assert!(!inc.contains("default/b/"), "{inc}");
    assert!(inc.contains("numgen random mod 2"), "{inc}");

    // A failed transaction is followed by a full rebuild.
    kernel
        .fail_applies
        .store(1, std::sync::atomic::Ordering::SeqCst);
    put_slice(&c, "b", http_ports(), &[]).await;
    eventually(10, "rebuild", || {
        (kernel.scripts().len() >= 4).then_some(())
    })
    .await;
    let rebuild = &kernel.scripts()[3];
    assert!(rebuild.starts_with("add table ip k1s\ndelete table ip k1s\n"));
    assert!(rebuild.contains("10.43.1.2 . tcp . 80 : goto reject-chain"));
}
