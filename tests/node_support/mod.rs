//! A k1s server with its node agent and a registry on loopback holding `busybox`, for the
//! end-to-end tests with real pods, cleaned up on drop: pods force-deleted so the agent frees
//! their network, the server stopped, the bridge, masquerade rules and service proxy table
//! removed. Tests that use
//! it take `serial()` first: they share the host's pod bridge, across test binaries too.
#![allow(dead_code)]

use super::common::TestServer;
use super::image_support::registry::Registry;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

static SERIAL: Mutex<()> = Mutex::new(());

/// A k1s server with its node agent, a registry holding `busybox`, and cleanup on drop.
pub struct Node {
    pub server: TestServer,
    _registry: Registry,
    _files: tempfile::TempDir,
    cidr: String,
}

impl Node {
    pub fn start(name: &str, cidr: &str) -> Node {
        Self::start_with(name, cidr, &[])
    }

    pub fn start_with(name: &str, cidr: &str, extra: &[&str]) -> Node {
        Self::start_with_mirrors(name, cidr, &[], extra)
    }

    /// A node run from another copy of the binary (an installed one).
    pub fn start_bin(bin: &std::path::Path, name: &str, cidr: &str, extra: &[&str]) -> Node {
        Self::start_full(bin, name, cidr, &[], extra)
    }

    /// With more plain-HTTP mirrors in registries.yaml: (registry, `host:port`) pairs.
    pub fn start_with_mirrors(
        name: &str,
        cidr: &str,
        mirrors: &[(&str, &str)],
        extra: &[&str],
    ) -> Node {
        let bin = std::path::Path::new(super::common::k1s_bin());
        Self::start_full(bin, name, cidr, mirrors, extra)
    }

    fn start_full(
        bin: &std::path::Path,
        name: &str,
        cidr: &str,
        mirrors: &[(&str, &str)],
        extra: &[&str],
    ) -> Node {
        let registry = Registry::start(None).expect("registry");
        registry
            .push("busybox", "library/busybox:latest")
            .expect("push busybox");
        let files = tempfile::tempdir().unwrap();
        let regfile = files.path().join("registries.yaml");
        let mut yaml = super::image_support::mirror_yaml("docker.io", &registry.addr());
        for (reg, addr) in mirrors {
            yaml.push_str(&format!(
                "  \"{reg}\":\n    endpoint:\n      - \"http://{addr}\"\n"
            ));
        }
        std::fs::write(&regfile, yaml).unwrap();
        let mut args = vec![
            "--node-name",
            name,
            "--cluster-cidr",
            cidr,
            "--private-registry",
            regfile.to_str().unwrap(),
            "--kubelet-port",
            "0",
            "--bind-address",
            "0.0.0.0",
        ];
        args.extend_from_slice(extra);
        let server = TestServer::start_bin(bin, &args);
        let node = Node {
            server,
            _registry: registry,
            _files: files,
            cidr: cidr.to_string(),
        };
        node.wait("the node to be Ready", 30, |s| {
            s.kubectl(&[
                "get",
                "node",
                name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .1 == "True"
        });
        node
    }

    pub fn wait(&self, what: &str, secs: u64, mut f: impl FnMut(&TestServer) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f(&self.server) {
            if Instant::now() > deadline {
                let pods = self.server.kubectl(&["get", "pods", "-A", "-o", "yaml"]).1;
                panic!(
                    "timed out waiting for {what}\npods:\n{pods}\nserver log:\n{}",
                    self.server.log()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn jsonpath(&self, pod: &str, path: &str) -> String {
        self.server
            .kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={path}")])
            .1
    }

    pub fn wait_phase(&self, pod: &str, phase: &str) {
        self.wait(&format!("pod {pod} to be {phase}"), 60, |_| {
            self.jsonpath(pod, "{.status.phase}") == phase
        });
    }

    pub fn log_file(&self, pod: &str, container: &str, restart: u32) -> PathBuf {
        let uid = self.jsonpath(pod, "{.metadata.uid}");
        PathBuf::from(format!(
            "/var/log/pods/default_{pod}_{uid}/{container}/{restart}.log"
        ))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Controllers that would replace the pods go first (their pods orphaned, so this
        // returns at once), then every pod is force-deleted so the agent stops its
        // containers and frees the network; the shims must be gone before the server stops.
        let _ = self.server.kubectl(&[
            "delete",
            "cronjobs,jobs,deployments,replicasets,statefulsets,daemonsets,replicationcontrollers",
            "--all",
            "-A",
            "--cascade=orphan",
            "--timeout=10s",
        ]);
        let uids = self
            .server
            .kubectl(&[
                "get",
                "pods",
                "-A",
                "-o",
                "jsonpath={.items[*].metadata.uid}",
            ])
            .1;
        let _ = self.server.kubectl(&[
            "delete",
            "pods",
            "--all",
            "-A",
            "--grace-period=0",
            "--force",
            "--wait=false",
        ]);
        let deadline = Instant::now() + Duration::from_secs(20);
        for uid in uids.split_whitespace() {
            let dir = PathBuf::from("/run/k1s/pods").join(uid);
            let netns = PathBuf::from("/run/k1s/netns").join(uid);
            while (dir.exists() || netns.exists()) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        self.server.stop();
        // The pod network's host side: the bridge and the masquerade rules.
        let _ = std::process::Command::new("ip")
            .args(["link", "del", "k1s0"])
            .status();
        let pod_cidr = self.cidr.replace(".0.0/16", ".0.0/24");
        let ipt = |args: &[&str]| {
            let _ = std::process::Command::new("iptables")
                .args(["-w", "-t", "nat"])
                .args(args)
                .stderr(std::process::Stdio::null())
                .status();
        };
        ipt(&["-D", "POSTROUTING", "-s", &pod_cidr, "-j", "K1S-MASQ-k1s0"]);
        ipt(&["-F", "K1S-MASQ-k1s0"]);
        ipt(&["-X", "K1S-MASQ-k1s0"]);
        // The service proxy's table outlives a stop on purpose (Services keep working while
        // k1s restarts); a test leaves nothing behind.
        let _ = k1s::proxy::remove_rules();
    }
}

/// Held while a test uses the host's pod network: the threads of one test binary take the
/// mutex, and test binaries run at the same time (from several checkouts) take an exclusive
/// lock on a file in `/run`, released when the guard drops.
pub struct Serial {
    _file: nix::fcntl::Flock<std::fs::File>,
    _threads: std::sync::MutexGuard<'static, ()>,
}

pub fn serial() -> Serial {
    let threads = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/run/k1s-node-tests.lock")
        .expect("open the node test lock");
    let file = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| e)
        .expect("lock the node test lock");
    Serial {
        _file: file,
        _threads: threads,
    }
}
