//! Helpers for the CNI integration tests: a per-test network (unique bridge, /24, state dir)
//! that cleans up everything the plugins and k1s wrote when dropped, even after a failure;
//! fake plugin scripts; and the conformance suite both `PodNetwork`s must pass.
#![allow(dead_code)]

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use k1s::cni::config::CniConfig;
use k1s::cni::masq::Masquerade;
use k1s::cni::{netns, CniError, NetStatus, PodNet, PodNetwork};

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the cni integration tests need root (real namespaces, links and iptables)"
    );
}

/// Runs a command, returning stdout; panics with its stderr on failure.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command, true on success.
pub fn try_sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn ping_from(ns: &Path, ip: IpAddr) -> bool {
    let ns_arg = format!("--net={}", ns.display());
    try_sh(&[
        "nsenter",
        &ns_arg,
        "busybox",
        "ping",
        "-c1",
        "-W1",
        &ip.to_string(),
    ])
}

pub fn in_ns(ns: &Path, args: &[&str]) -> String {
    let ns_arg = format!("--net={}", ns.display());
    let mut full = vec!["nsenter", ns_arg.as_str()];
    full.extend_from_slice(args);
    sh(&full)
}

/// The nat table as `iptables -S` prints it.
pub fn nat_rules() -> String {
    sh(&["iptables", "-w", "-t", "nat", "-S"])
}

/// portmap's shared chains outlive every pod by design; remove them if this test made them.
pub fn remove_portmap_chains() {
    let nat = nat_rules();
    for line in nat
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains("-j CNI-HOSTPORT-"))
    {
        try_sh(&["sh", "-c", &format!("iptables -w -t nat -D {}", &line[3..])]);
    }
    for c in [
        "CNI-HOSTPORT-DNAT",
        "CNI-HOSTPORT-SETMARK",
        "CNI-HOSTPORT-MASQ",
    ] {
        try_sh(&["iptables", "-w", "-t", "nat", "-F", c]);
        try_sh(&["iptables", "-w", "-t", "nat", "-X", c]);
    }
}

/// ip_forward is switched on by the bridge plugin (isGateway); the last live test network puts
/// it back as it found it.
static FORWARD: Mutex<(usize, Option<String>)> = Mutex::new((0, None));

/// One test's network: bridge `k1st<n>`, pod CIDR 10.250.<n>.0/24 in cluster 10.250.0.0/16,
/// its own state dir and namespace dir, and ids prefixed `k1st<n>-`.
pub struct TestNet {
    pub n: u8,
    pub cfg: CniConfig,
    pub tmp: tempfile::TempDir,
    pub ns_dir: PathBuf,
    namespaces: Mutex<Vec<PathBuf>>,
}

impl TestNet {
    pub fn new(n: u8) -> Self {
        require_root();
        {
            let mut f = FORWARD.lock().unwrap_or_else(|p| p.into_inner());
            if f.0 == 0 {
                f.1 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok();
            }
            f.0 += 1;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let ns_dir = tmp.path().join("netns");
        let mut cfg = CniConfig::new(
            tmp.path().join("state"),
            format!("10.250.{n}.0/24").parse().unwrap(),
            "10.250.0.0/16".parse().unwrap(),
        );
        cfg.bridge = format!("k1st{n}");
        let net = TestNet {
            n,
            cfg,
            tmp,
            ns_dir,
            namespaces: Mutex::new(Vec::new()),
        };
        net.sweep();
        net
    }

    pub fn id(&self, i: usize) -> String {
        format!("k1st{}-{i}", self.n)
    }

    /// A pinned namespace for pod `i`, removed when the test network is dropped.
    pub fn netns(&self, i: usize) -> PathBuf {
        let path = self.ns_dir.join(self.id(i));
        netns::create(&path).expect("create netns");
        self.namespaces.lock().unwrap().push(path.clone());
        path
    }

    pub fn pod(&self, i: usize) -> PodNet {
        PodNet::new(self.id(i), self.netns(i))
    }

    /// host-local's lease files of this network.
    pub fn leases(&self) -> Vec<String> {
        let dir = self.cfg.ipam_dir().join("k1s");
        let mut out: Vec<String> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("10."))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Host-side interfaces enslaved to the bridge (the pods' veths).
    pub fn bridge_ports(&self) -> usize {
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.cfg.bridge])
            .output()
            .expect("ip");
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// Removes nat rules and chains the plugins wrote for this test's ids, by their comments.
    fn sweep(&self) {
        let marker = format!("id: \\\"k1st{}-", self.n);
        let rules = nat_rules();
        let mut chains = Vec::new();
        for line in rules
            .lines()
            .filter(|l| l.starts_with("-A ") && l.contains(&marker))
        {
            if let Some(target) = line.split(" -j ").nth(1) {
                let target = target.split_whitespace().next().unwrap_or_default();
                if target.starts_with("CNI-") {
                    chains.push(target.to_string());
                }
            }
            // `-S` output is shell-quoted; let the shell split it.
            let cmd = format!("iptables -w -t nat -D {}", &line[3..]);
            try_sh(&["sh", "-c", &cmd]);
        }
        for c in chains {
            try_sh(&["iptables", "-w", "-t", "nat", "-F", &c]);
            try_sh(&["iptables", "-w", "-t", "nat", "-X", &c]);
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in self
            .namespaces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = netns::remove(&ns);
        }
        let _ = netns::release_dir(&self.ns_dir);
        try_sh(&["ip", "link", "del", &self.cfg.bridge]);
        self.sweep();
        // Masquerade::remove is async; run it on a thread of its own, as Drop may run inside
        // the test's runtime.
        let masq = Masquerade::new(&self.cfg.bridge, self.cfg.pod_cidr, self.cfg.cluster_cidr);
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|rt| rt.block_on(masq.remove()))
        })
        .join();
        let mut f = FORWARD.lock().unwrap_or_else(|p| p.into_inner());
        f.0 -= 1;
        if f.0 == 0 {
            if let Some(v) = f.1.take() {
                let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", v);
            }
        }
    }
}

/// A directory of fake plugin scripts.
pub struct FakeBin {
    pub dir: tempfile::TempDir,
}

impl FakeBin {
    pub fn new() -> Self {
        FakeBin {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn add(&self, name: &str, script: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// The contract every `PodNetwork` keeps. `pods` are two distinct pods whose namespaces exist;
/// `cidr` is the pod CIDR.
pub async fn conformance(net: &dyn PodNetwork, a: &PodNet, b: &PodNet, cidr: ipnetwork::IpNetwork) {
    assert_eq!(
        net.status(a).await.unwrap(),
        None,
        "unknown pod has no status"
    );
    net.teardown(a)
        .await
        .expect("teardown of a pod never set up is fine");

    let sa = net.setup(a).await.expect("setup a");
    let sb = net.setup(b).await.expect("setup b");
    for s in [&sa, &sb] {
        assert_eq!(s.interface, a.ifname);
        assert_eq!(s.ips.len(), 1);
        assert!(cidr.contains(s.ips[0]), "{} in {cidr}", s.ips[0]);
        assert_eq!(s.gateway, Some(cidr.nth_addr(1)));
        assert_ne!(s.ips[0], cidr.nth_addr(1), "the gateway is not handed out");
    }
    assert_ne!(sa.ips, sb.ips, "distinct addresses");

    assert_eq!(net.setup(a).await.unwrap(), sa, "setup is idempotent");
    assert_eq!(net.status(a).await.unwrap(), Some(sa.clone()));

    net.teardown(a).await.expect("teardown");
    assert_eq!(net.status(a).await.unwrap(), None);
    net.teardown(a).await.expect("second teardown");
    assert_eq!(net.status(b).await.unwrap(), Some(sb), "b untouched");
    net.teardown(b).await.expect("teardown b");

    let bad = PodNet {
        id: "../../etc/passwd".into(),
        ..a.clone()
    };
    for r in [
        net.setup(&bad).await.map(|_| ()),
        net.teardown(&bad).await,
        net.status(&bad).await.map(|_| ()),
    ] {
        assert!(matches!(r, Err(CniError::InvalidInput { .. })), "{r:?}");
    }
}

pub trait NthAddr {
    fn nth_addr(&self, i: u32) -> IpAddr;
}

impl NthAddr for ipnetwork::IpNetwork {
    fn nth_addr(&self, i: u32) -> IpAddr {
        match self {
            ipnetwork::IpNetwork::V4(n) => IpAddr::V4(n.nth(i).unwrap()),
            ipnetwork::IpNetwork::V6(n) => {
                IpAddr::V6((u128::from(n.network()) + u128::from(i)).into())
            }
        }
    }
}

pub fn status_ip(s: &NetStatus) -> IpAddr {
    s.ips[0]
}
