//! Integration tests of the CNI module with Debian's real plugins, real namespaces, links and
//! iptables (as root). Each test has its own bridge `k1st<n>` and pod CIDR 10.250.<n>.0/24 and
//! cleans up in Drop guards (`cni_support::TestNet`).

mod cni_support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cni_support::*;
use k1s::cni::exec::PluginExec;
use k1s::cni::runtime::{Attachment, NetworkConfigList, Runtime};
use k1s::cni::{netns, Cni, CniError, FakeNetwork, PodNet, PodNetwork, PortMapping, Protocol};
use serde_json::json;

#[tokio::test]
async fn fake_network_passes_the_conformance_suite() {
    let cidr = "10.250.200.0/24".parse().unwrap();
    let net = FakeNetwork::new(cidr);
    let a = PodNet::new("a", "/run/k1s/netns/a");
    let b = PodNet::new("b", "/run/k1s/netns/b");
    conformance(&net, &a, &b, cidr).await;
}

#[tokio::test]
async fn cni_passes_the_conformance_suite() {
    let t = TestNet::new(10);
    let cni = Cni::new(t.cfg.clone()).unwrap();
    let net: Arc<dyn PodNetwork> = Arc::new(cni);
    conformance(net.as_ref(), &t.pod(0), &t.pod(1), t.cfg.pod_cidr).await;
    assert!(
        t.leases().is_empty(),
        "all addresses released: {:?}",
        t.leases()
    );
}

#[tokio::test]
async fn two_pods_ping_each_other_and_the_gateway() {
    let t = TestNet::new(1);
    let cni = Cni::new(t.cfg.clone()).unwrap();
    cni.preflight().await.expect("plugins speak 1.0.0");
    let (a, b) = (t.pod(0), t.pod(1));
    let sa = cni.setup(&a).await.unwrap();
    let sb = cni.setup(&b).await.unwrap();
    let gw: IpAddr = "10.250.1.1".parse().unwrap();
    assert_eq!(sa.gateway, Some(gw));
    assert_ne!(sa.ips, sb.ips);
    for s in [&sa, &sb] {
        assert!(t.cfg.pod_cidr.contains(s.ips[0]));
    }

    assert!(ping_from(&a.netns, sb.ips[0]), "a pings b");
    assert!(ping_from(&b.netns, sa.ips[0]), "b pings a");
    assert!(ping_from(&a.netns, gw), "a pings the gateway");
    for p in [&a, &b] {
        let lo = in_ns(&p.netns, &["ip", "-o", "link", "show", "lo"]);
        assert!(lo.contains("<LOOPBACK,UP,LOWER_UP>"), "lo is up: {lo}");
        assert!(ping_from(&p.netns, "127.0.0.1".parse().unwrap()));
        let routes = in_ns(&p.netns, &["ip", "route"]);
        assert!(
            routes.contains("default via 10.250.1.1 dev eth0"),
            "{routes}"
        );
    }
    cni.check(&a).await.expect("CHECK passes on a healthy pod");

    // One masquerade rule for the node, exempting the whole cluster CIDR; no rule per pod.
    let nat = nat_rules();
    let chain = cni.masquerade_chain();
    assert!(nat.contains(&format!("-A POSTROUTING -s 10.250.1.0/24 -m comment --comment \"k1s: masquerade pod traffic leaving the cluster\" -j {chain}")), "{nat}");
    assert!(
        nat.contains(&format!("-A {chain} -d 10.250.0.0/16 -j RETURN")),
        "{nat}"
    );
    assert!(nat.contains(&format!("-A {chain} -j MASQUERADE")), "{nat}");
    assert!(
        !nat.contains(&format!("id: \\\"{}\\\"", a.id)),
        "no per-pod nat rules: {nat}"
    );

    cni.teardown(&a).await.unwrap();
    cni.teardown(&b).await.unwrap();
    cni.remove_host_rules().await.unwrap();
    assert!(!nat_rules().contains(chain), "masquerade chain removed");
}

#[tokio::test]
async fn teardown_frees_the_address_and_works_after_a_restart() {
    let mut t = TestNet::new(2);
    // host-local hands out addresses round-robin; in a /30 there is one pod address (.2), so
    // getting it back proves it was released.
    t.cfg.pod_cidr = "10.250.2.0/30".parse().unwrap();
    let cni = Cni::new(t.cfg.clone()).unwrap();
    let a = t.pod(0);
    let first = cni.setup(&a).await.unwrap();
    assert_eq!(t.bridge_ports(), 1);
    assert_eq!(t.leases(), vec![first.ips[0].to_string()]);

    cni.teardown(&a).await.unwrap();
    assert_eq!(t.bridge_ports(), 0, "veth removed");
    assert!(t.leases().is_empty(), "address released");
    let eth0 = std::process::Command::new("nsenter")
        .args([
            &format!("--net={}", a.netns.display()),
            "ip",
            "link",
            "show",
            "eth0",
        ])
        .output()
        .unwrap();
    assert!(!eth0.status.success(), "eth0 gone from the pod");
    cni.teardown(&a).await.expect("teardown twice is fine");

    let again = cni.setup(&a).await.unwrap();
    assert_eq!(again.ips, first.ips, "the freed address comes back");

    // "Restart": a new instance knows the pod only from the cache.
    drop(cni);
    let restarted = Cni::new(t.cfg.clone()).unwrap();
    assert_eq!(restarted.status(&a).await.unwrap(), Some(again.clone()));
    restarted.teardown(&a).await.unwrap();
    assert_eq!(t.bridge_ports(), 0);
    assert!(t.leases().is_empty());
    assert_eq!(restarted.status(&a).await.unwrap(), None);

    // A namespace re-created on the same path (a reboot empties /run) is attached afresh, not
    // mistaken for the cached one.
    let s1 = restarted.setup(&a).await.unwrap();
    netns::remove(&a.netns).unwrap();
    netns::create(&a.netns).unwrap();
    let s2 = restarted.setup(&a).await.unwrap();
    assert_eq!(s1.ips, s2.ips);
    in_ns(&a.netns, &["ip", "link", "show", "eth0"]);
    assert!(ping_from(&a.netns, "10.250.2.1".parse().unwrap()));
    restarted.teardown(&a).await.unwrap();

    // A namespace already gone at teardown: the address is still released.
    restarted.setup(&a).await.unwrap();
    netns::remove(&a.netns).unwrap();
    restarted.teardown(&a).await.unwrap();
    assert!(t.leases().is_empty());
    // The kernel tears a namespace down (and its veth with it) after the last reference
    // goes, from a work queue: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while t.bridge_ports() != 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(t.bridge_ports(), 0, "the veth died with the namespace");

    // A corrupt cache neither blocks teardown nor is trusted by status.
    let b = t.pod(1);
    restarted.setup(&b).await.unwrap();
    let cache = t.cfg.results_dir().join(format!("k1s-{}-eth0.json", b.id));
    std::fs::write(&cache, b"{ not json").unwrap();
    let msg = restarted.status(&b).await.unwrap_err().to_string();
    assert!(
        msg.contains("corrupt cni cache file") && msg.contains(&b.id),
        "{msg}"
    );
    restarted.teardown(&b).await.unwrap();
    assert!(t.leases().is_empty());
    assert!(!cache.exists());
}

#[tokio::test]
async fn setup_needs_a_pinned_namespace() {
    let t = TestNet::new(4);
    let cni = Cni::new(t.cfg.clone()).unwrap();
    let pod = PodNet::new(t.id(0), t.ns_dir.join("never-created"));
    let msg = cni.setup(&pod).await.unwrap_err().to_string();
    assert!(msg.contains("is not a pinned network namespace"), "{msg}");
}

/// Serves one greeting per connection from inside `ns` on port 8080, until stopped.
fn serve_in_netns(ns: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    let f = std::fs::File::open(ns).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = TcpListener::bind("0.0.0.0:8080").expect("bind in pod");
        l.set_nonblocking(true).unwrap();
        let mut served = 0;
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let _ = c.write_all(b"hello from the pod\n");
                    served += 1;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        served
    })
}

fn fetch(addr: SocketAddr) -> Result<String, std::io::Error> {
    let mut c = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    c.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    Ok(s)
}

fn host_ip() -> IpAddr {
    let out = sh(&["ip", "-o", "-4", "addr", "show", "scope", "global"]);
    let addr = out
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .expect("the host has a global IPv4 address");
    addr.split('/').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn host_port_reaches_the_pod() {
    let t = TestNet::new(3);
    let had_hostport_chains = nat_rules().contains("-N CNI-HOSTPORT-DNAT");
    let cni = Cni::new(t.cfg.clone()).unwrap();
    let host_port = TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut pod = t.pod(0);
    pod.port_mappings = vec![PortMapping {
        host_port,
        container_port: 8080,
        protocol: Protocol::Tcp,
        host_ip: None,
    }];
    let stop = Arc::new(AtomicBool::new(false));
    let server = serve_in_netns(&pod.netns, stop.clone());
    cni.setup(&pod).await.unwrap();

    let via_host_ip = fetch(SocketAddr::new(host_ip(), host_port));
    let via_localhost = fetch(SocketAddr::new("127.0.0.1".parse().unwrap(), host_port));
    let localnet = std::fs::read_to_string(format!(
        "/proc/sys/net/ipv4/conf/{}/route_localnet",
        t.cfg.bridge
    ))
    .unwrap_or_default();
    eprintln!(
        "hostPort {host_port}: via {}: {via_host_ip:?}; via 127.0.0.1: {via_localhost:?}; route_localnet on {} = {}",
        host_ip(),
        t.cfg.bridge,
        localnet.trim()
    );
    assert_eq!(
        via_host_ip.expect("reach the pod via the host's address"),
        "hello from the pod\n"
    );

    // The restarted agent removes portmap's rules from the cached portMappings, even when the
    // caller no longer passes them.
    drop(cni);
    let restarted = Cni::new(t.cfg.clone()).unwrap();
    let forgetful = PodNet {
        port_mappings: vec![],
        ..pod.clone()
    };
    restarted.teardown(&forgetful).await.unwrap();
    let nat = nat_rules();
    assert!(
        !nat.contains(&format!("id: \\\"{}\\\"", pod.id)),
        "portmap rules removed: {nat}"
    );
    assert!(
        fetch(SocketAddr::new(host_ip(), host_port)).is_err(),
        "hostPort closed after teardown"
    );
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();

    if !had_hostport_chains {
        remove_portmap_chains();
    }
}

#[test]
fn netns_create_exists_remove_are_idempotent() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("netns").join("pod");
    let own_before = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();

    assert!(!netns::exists(&path));
    netns::create(&path).unwrap();
    assert!(netns::exists(&path));
    let ino = netns::inode(&path).unwrap();
    assert_ne!(ino, own_before, "a new namespace");
    netns::create(&path).unwrap();
    assert_eq!(
        netns::inode(&path),
        Some(ino),
        "create again keeps the same namespace"
    );
    let own_after = std::fs::metadata("/proc/thread-self/ns/net")
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap();
    assert_eq!(
        own_before, own_after,
        "the calling thread's namespace is untouched"
    );
    let links = in_ns(&path, &["ip", "-o", "link"]);
    assert_eq!(
        links.lines().count(),
        1,
        "only lo in a new namespace: {links}"
    );

    netns::remove(&path).unwrap();
    assert!(!netns::exists(&path));
    assert!(!path.exists());
    netns::remove(&path).unwrap();

    // A stale plain file on the path (crash between create and mount) is reused.
    std::fs::write(&path, b"").unwrap();
    assert!(!netns::exists(&path));
    netns::create(&path).unwrap();
    assert!(netns::exists(&path));
    netns::remove(&path).unwrap();
    netns::release_dir(&dir.path().join("netns")).unwrap();
}

// ---- bad plugins, through the runtime with fake plugin scripts ----

fn runtime(bin: &FakeBin, timeout: Duration) -> Runtime {
    Runtime::new(PluginExec::new(vec![bin.path()], timeout))
}

fn list_of(types: &[&str]) -> NetworkConfigList {
    let plugins: Vec<_> = types.iter().map(|t| json!({"type": t})).collect();
    NetworkConfigList::from_value(
        json!({"cniVersion": "1.0.0", "name": "fake", "plugins": plugins}),
    )
    .unwrap()
}

fn att() -> Attachment {
    Attachment {
        container_id: "c1".into(),
        netns: "/run/k1s/netns/c1".into(),
        ifname: "eth0".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn missing_plugin_is_named() {
    let bin = FakeBin::new();
    let err = runtime(&bin, Duration::from_secs(5))
        .add(&list_of(&["nosuchplugin"]), &att())
        .await
        .unwrap_err();
    assert!(matches!(err, CniError::PluginNotFound { .. }));
    assert!(
        err.to_string()
            .contains("cni plugin nosuchplugin not found in"),
        "{err}"
    );

    // Cni::new checks all four plugins up front.
    for p in ["bridge", "host-local", "loopback"] {
        bin.add(p, "exit 0");
    }
    let mut cfg = k1s::cni::CniConfig::new(
        bin.path(),
        "10.250.201.0/24".parse().unwrap(),
        "10.250.0.0/16".parse().unwrap(),
    );
    cfg.bin_dirs = vec![bin.path()];
    let msg = Cni::new(cfg).unwrap_err().to_string();
    assert!(msg.contains("cni plugin portmap not found"), "{msg}");
}

#[tokio::test]
async fn garbage_output_is_named() {
    let bin = FakeBin::new();
    bin.add("garbler", "cat >/dev/null; echo 'this is not json'");
    let err = runtime(&bin, Duration::from_secs(5))
        .add(&list_of(&["garbler"]), &att())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, CniError::BadOutput { .. }), "{msg}");
    assert!(
        msg.contains("cni plugin garbler ADD printed an invalid result")
            && msg.contains("this is not json"),
        "{msg}"
    );

    bin.add(
        "flood",
        "cat >/dev/null; head -c 3000000 /dev/zero | tr '\\0' x",
    );
    let msg = runtime(&bin, Duration::from_secs(5))
        .add(&list_of(&["flood"]), &att())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("flood") && msg.contains("more than 1048576 bytes"),
        "{msg}"
    );
}

#[tokio::test]
async fn cni_error_json_is_named_with_msg_and_stderr() {
    let bin = FakeBin::new();
    bin.add(
        "refuser",
        r#"cat >/dev/null; echo 'lock held by pid 42' >&2
echo '{"cniVersion":"1.0.0","code":11,"msg":"try again later","details":"ipam busy"}'; exit 1"#,
    );
    let err = runtime(&bin, Duration::from_secs(5))
        .add(&list_of(&["refuser"]), &att())
        .await
        .unwrap_err();
    match &err {
        CniError::Plugin {
            plugin,
            code,
            msg,
            details,
            stderr,
            ..
        } => {
            assert_eq!(
                (plugin.as_str(), *code, msg.as_str(), details.as_str()),
                ("refuser", 11, "try again later", "ipam busy")
            );
            assert!(stderr.contains("lock held"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "cni plugin refuser ADD failed: try again later (code 11, details: ipam busy); stderr: lock held by pid 42"
    );

    bin.add("crasher", "echo 'panic: nil map' >&2; exit 2");
    let msg = runtime(&bin, Duration::from_secs(5))
        .add(&list_of(&["crasher"]), &att())
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("cni plugin crasher ADD exited with exit status: 2 and no cni error; stderr: panic: nil map"), "{msg}");
}

#[tokio::test]
async fn hanging_plugin_times_out_and_is_killed() {
    let bin = FakeBin::new();
    let pidfile = bin.path().join("sleeper.pid");
    bin.add(
        "hanger",
        &format!(
            "sleep 30 & echo $! > {}; echo waiting >&2; wait",
            pidfile.display()
        ),
    );
    let started = Instant::now();
    let err = runtime(&bin, Duration::from_millis(500))
        .add(&list_of(&["hanger"]), &att())
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let msg = err.to_string();
    assert!(matches!(err, CniError::Timeout { .. }), "{msg}");
    assert!(
        msg.contains("cni plugin hanger ADD timed out after 500ms"),
        "{msg}"
    );
    // The plugin's own children die with it.
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let status = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains(") Z "),
        "sleep child still alive: {status}"
    );
}

#[tokio::test]
async fn runtime_follows_the_spec_for_lists() {
    let bin = FakeBin::new();
    let log = bin.path().join("log");
    // Each plugin logs its command, env and stdin, then prints a result naming itself.
    for name in ["first", "second"] {
        bin.add(
            name,
            &format!(
                r#"in=$(cat); echo "{name} $CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME $CNI_PATH $in" >> {log}
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"{name}"}}]}}'
exit 0"#,
                log = log.display()
            ),
        );
    }
    let rt = runtime(&bin, Duration::from_secs(5));
    let list = NetworkConfigList::from_value(json!({
        "cniVersion": "1.0.0", "name": "fake",
        "plugins": [{"type": "first"}, {"type": "second", "capabilities": {"portMappings": true}}]
    }))
    .unwrap();
    let mut a = att();
    a.capability_args.insert(
        "portMappings".into(),
        json!([{"hostPort": 1, "containerPort": 2, "protocol": "tcp"}]),
    );
    let (raw, typed) = rt.add(&list, &a).await.unwrap();
    assert_eq!(typed.interfaces[0].name, "second");
    rt.del(&list, &a, Some(&raw)).await.unwrap();

    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let head: Vec<String> = lines
        .iter()
        .map(|l| l.splitn(7, ' ').take(6).collect::<Vec<_>>().join(" "))
        .collect();
    let path = bin.path().display().to_string();
    assert_eq!(
        head,
        vec![
            format!("first ADD c1 /run/k1s/netns/c1 eth0 {path}"),
            format!("second ADD c1 /run/k1s/netns/c1 eth0 {path}"),
            format!("second DEL c1 /run/k1s/netns/c1 eth0 {path}"),
            format!("first DEL c1 /run/k1s/netns/c1 eth0 {path}"),
        ]
    );
    let stdin_of = |i: usize| -> serde_json::Value {
        serde_json::from_str(lines[i].splitn(7, ' ').nth(6).unwrap()).unwrap()
    };
    assert!(stdin_of(0).get("prevResult").is_none());
    assert!(
        stdin_of(0).get("runtimeConfig").is_none(),
        "first did not ask for portMappings"
    );
    assert_eq!(stdin_of(1)["prevResult"]["interfaces"][0]["name"], "first");
    assert_eq!(
        stdin_of(1)["runtimeConfig"]["portMappings"][0]["hostPort"],
        1
    );
    assert_eq!(stdin_of(1)["name"], "fake");
    assert_eq!(
        stdin_of(2)["prevResult"]["interfaces"][0]["name"],
        "second",
        "DEL gets the ADD result"
    );

    // ADD with an empty result is a bad result, naming the plugin.
    bin.add("silent", "cat >/dev/null; exit 0");
    let msg = rt
        .add(&list_of(&["silent"]), &a)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("cni plugin silent ADD printed an invalid result"),
        "{msg}"
    );
}

#[tokio::test]
async fn concurrent_setups_get_distinct_addresses_and_the_mtu() {
    let mut t = TestNet::new(5);
    t.cfg.mtu = Some(1400);
    let cni = Arc::new(Cni::new(t.cfg.clone()).unwrap());
    let pods: Vec<PodNet> = (0..8).map(|i| t.pod(i)).collect();
    let mut set = tokio::task::JoinSet::new();
    for p in pods.clone() {
        let cni = cni.clone();
        set.spawn(async move { cni.setup(&p).await });
    }
    let mut ips = std::collections::BTreeSet::new();
    while let Some(r) = set.join_next().await {
        ips.insert(r.unwrap().expect("concurrent setup").ips[0]);
    }
    assert_eq!(ips.len(), 8, "distinct addresses: {ips:?}");
    let link = in_ns(&pods[0].netns, &["ip", "-o", "link", "show", "eth0"]);
    assert!(link.contains("mtu 1400"), "{link}");
    let mut set = tokio::task::JoinSet::new();
    for p in pods.clone() {
        let cni = cni.clone();
        set.spawn(async move { cni.teardown(&p).await });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap().expect("concurrent teardown");
    }
    assert!(t.leases().is_empty());
    assert_eq!(t.bridge_ports(), 0);
}

#[tokio::test]
async fn a_failing_plugin_mid_list_leaves_nothing_behind() {
    let mut t = TestNet::new(6);
    let bin = FakeBin::new();
    for p in ["bridge", "host-local", "loopback"] {
        std::os::unix::fs::symlink(Path::new("/usr/lib/cni").join(p), bin.path().join(p)).unwrap();
    }
    bin.add(
        "portmap",
        r#"cat >/dev/null
if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion":"1.0.0","code":100,"msg":"iptables is broken"}'; exit 1; fi
exit 0"#,
    );
    t.cfg.bin_dirs = vec![bin.path()];
    let cni = Cni::new(t.cfg.clone()).unwrap();
    let pod = t.pod(0);
    let msg = cni.setup(&pod).await.unwrap_err().to_string();
    assert_eq!(
        msg,
        "cni plugin portmap ADD failed: iptables is broken (code 100)"
    );
    assert!(
        t.leases().is_empty(),
        "bridge's address released: {:?}",
        t.leases()
    );
    assert_eq!(t.bridge_ports(), 0, "bridge's veth removed");
    assert_eq!(cni.status(&pod).await.unwrap(), None);
}

#[tokio::test]
async fn preflight_rejects_plugins_without_1_0_0() {
    let bin = FakeBin::new();
    for p in ["bridge", "host-local", "portmap", "loopback"] {
        let versions = if p == "portmap" {
            r#"["0.3.1","0.4.0"]"#
        } else {
            r#"["0.4.0","1.0.0"]"#
        };
        bin.add(
            p,
            &format!(
                r#"cat >/dev/null; echo '{{"cniVersion":"1.0.0","supportedVersions":{versions}}}'"#
            ),
        );
    }
    let mut cfg = k1s::cni::CniConfig::new(
        bin.path(),
        "10.250.202.0/24".parse().unwrap(),
        "10.250.0.0/16".parse().unwrap(),
    );
    cfg.bin_dirs = vec![bin.path()];
    let msg = Cni::new(cfg)
        .unwrap()
        .preflight()
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        r#"cni plugin portmap does not support cni version 1.0.0 (it supports ["0.3.1", "0.4.0"])"#
    );
}

/// Deletes a host link when dropped (its veth peer goes with it).
struct LinkGuard(String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        try_sh(&["ip", "link", "del", &self.0]);
    }
}

/// Accepts connections inside `ns` on `port` and answers each with the peer's address.
fn echo_peer_in_netns(ns: &Path, port: u16, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let f = std::fs::File::open(ns).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = TcpListener::bind(("0.0.0.0", port)).expect("bind");
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, peer)) => {
                    let _ = c.write_all(peer.ip().to_string().as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    rx.recv().unwrap();
    h
}

/// Connects from inside `ns` and returns what the server answered.
fn fetch_from_netns(ns: &Path, addr: SocketAddr) -> String {
    let f = std::fs::File::open(ns).unwrap();
    std::thread::spawn(move || {
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        fetch(addr).expect("connect from the pod")
    })
    .join()
    .unwrap()
}

/// The node masquerades pod traffic to the outside world but not to pods on other nodes. A
/// namespace "outside" stands for both a host on the LAN (172.31.7.2) and another node whose
/// pods (10.250.107.0/24) are routed to it, as flannel's host-gw would.
#[tokio::test]
async fn masquerades_only_traffic_leaving_the_cluster() {
    let t = TestNet::new(7);
    let cni = Cni::new(t.cfg.clone()).unwrap();
    let pod = t.pod(0);
    let ip = cni.setup(&pod).await.unwrap().ips[0];

    let outside = t.netns(99);
    sh(&[
        "ip", "link", "add", "k1so7", "type", "veth", "peer", "name", "k1sp7",
    ]);
    let _link = LinkGuard("k1so7".into());
    sh(&[
        "ip",
        "link",
        "set",
        "k1sp7",
        "netns",
        &outside.display().to_string(),
    ]);
    sh(&["ip", "addr", "add", "172.31.7.1/30", "dev", "k1so7"]);
    sh(&["ip", "link", "set", "k1so7", "up"]);
    sh(&["ip", "route", "add", "10.250.107.0/24", "via", "172.31.7.2"]);
    in_ns(
        &outside,
        &["ip", "addr", "add", "172.31.7.2/30", "dev", "k1sp7"],
    );
    in_ns(
        &outside,
        &["ip", "addr", "add", "10.250.107.5/32", "dev", "lo"],
    );
    in_ns(&outside, &["ip", "link", "set", "lo", "up"]);
    in_ns(&outside, &["ip", "link", "set", "k1sp7", "up"]);
    in_ns(
        &outside,
        &["ip", "route", "add", "10.250.0.0/16", "via", "172.31.7.1"],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let server = echo_peer_in_netns(&outside, 9000, stop.clone());
    let seen_outside = fetch_from_netns(&pod.netns, "172.31.7.2:9000".parse().unwrap());
    let seen_node = fetch_from_netns(&pod.netns, "10.250.107.5:9000".parse().unwrap());
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap();

    assert_eq!(
        seen_outside, "172.31.7.1",
        "leaving the cluster: masqueraded to the node"
    );
    assert_eq!(
        seen_node,
        ip.to_string(),
        "to another node's pod: the pod's own address"
    );
    cni.teardown(&pod).await.unwrap();
}
