//! `install.sh` end to end: it installs the binary, the service unit and its environment file,
//! and the killall and uninstall scripts into directories of the test's own; a node then runs
//! from the installed binary with a real pod (hostPort) behind a Service. `k1s-killall.sh`
//! must stop every k1s process and container and remove the mounts, the pod network, its
//! iptables chains and the proxy's nftables table while leaving others' rules alone;
//! `k1s-uninstall.sh` must then remove the rest. Runs as root, one at a time with the other pod
//! tests (it deletes the host's k1s network setup).

mod common;
mod image_support;
mod node_support;

use node_support::{serial, Node};
use std::path::{Path, PathBuf};
use std::process::Command;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: keeper, labels: {app: keeper}}
spec:
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo up; exec sleep 86399"]
    ports: [{containerPort: 8080, hostPort: 24781}]
---
apiVersion: v1
kind: Service
metadata: {name: keeper}
spec:
  selector: {app: keeper}
  ports: [{port: 80, targetPort: 8080}]
"#;

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn run_script(path: &Path, env: &[(&str, &Path)]) -> String {
    let mut cmd = Command::new(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run script");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed:\n{text}", path.display());
    text
}

/// Processes whose executable is `exe` or whose command line contains `needle`.
fn processes(exe: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        let same_exe = std::fs::read_link(entry.path().join("exe")).is_ok_and(|p| p == exe);
        if same_exe || cmdline.contains(needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| *m == dir || m.starts_with(&format!("{dir}/")))
        .map(str::to_string)
        .collect()
}

/// Another program's iptables chain, which the killall script must leave alone.
struct ForeignChain;

impl ForeignChain {
    fn add() -> ForeignChain {
        let _ = sh("iptables", &["-w", "-N", "INSTALLTEST-KEEP"]);
        assert!(
            sh(
                "iptables",
                &["-w", "-A", "INSTALLTEST-KEEP", "-j", "RETURN"]
            )
            .0
        );
        ForeignChain
    }
}

impl Drop for ForeignChain {
    fn drop(&mut self) {
        let _ = sh("iptables", &["-w", "-F", "INSTALLTEST-KEEP"]);
        let _ = sh("iptables", &["-w", "-X", "INSTALLTEST-KEEP"]);
    }
}

#[test]
fn install_then_killall_and_uninstall_leave_nothing_behind() {
    let _g = serial();
    let root = tempfile::tempdir().unwrap();
    let dir = |name: &str| -> PathBuf { root.path().join(name) };
    let (bin, units, etc) = (dir("bin"), dir("systemd"), dir("etc"));
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));

    // Install, with flags for the service and a K1S_ variable for its environment file.
    let out = Command::new(repo.join("install.sh"))
        .args(["server", "--node-label", "tier=edge lab"])
        .env("INSTALL_K1S_BIN", common::k1s_bin())
        .env("INSTALL_K1S_BIN_DIR", &bin)
        .env("INSTALL_K1S_SYSTEMD_DIR", &units)
        .env("INSTALL_K1S_CONFIG_DIR", &etc)
        .env("INSTALL_K1S_SKIP_DEPS", "true")
        .env("K1S_DATA_DIR", dir("data"))
        .env("K1S_NODE_NAME", "edge-1")
        .output()
        .unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "install.sh failed:\n{log}");
    let installed = bin.join("k1s");
    let (ok, version) = sh(installed.to_str().unwrap(), &["--version"]);
    assert!(ok && version.starts_with("k1s "), "{version}");
    let unit = std::fs::read_to_string(units.join("k1s.service")).unwrap();
    let exec = format!(
        "ExecStart={} \"server\" \"--node-label\" \"tier=edge lab\"",
        installed.display()
    );
    assert!(unit.contains(&exec), "{unit}");
    assert!(unit.contains("KillMode=process"), "{unit}");
    let env_file = units.join("k1s.service.env");
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains("K1S_NODE_NAME=edge-1"), "{env}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&env_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the env file may hold a token");
    for script in ["k1s-killall.sh", "k1s-uninstall.sh"] {
        assert!(sh("sh", &["-n", bin.join(script).to_str().unwrap()]).0);
    }

    // A node from the installed binary, with a pod on a hostPort behind a Service.
    let n = Node::start_bin(&installed, "inst-1", "10.219.0.0/16", &[]);
    let data = n.server.data_dir().join("data");
    n.server.k_in(&["apply", "-f", "-"], POD);
    n.wait_phase("keeper", "Running");
    let cluster_ip = n
        .server
        .k(&["get", "svc", "keeper", "-o", "jsonpath={.spec.clusterIP}"]);
    n.wait("the Service in the proxy's table", 30, |_| {
        sh("nft", &["list", "table", "ip", "k1s"])
            .1
            .contains(&cluster_ip)
    });
    let before = sh("iptables-save", &[]).1;
    assert!(before.contains("K1S-MASQ-k1s0"), "{before}");
    assert!(
        before.contains(r#"name: \"k1s\""#),
        "no hostPort rules:\n{before}"
    );
    assert!(!mounts_under(Path::new("/run/k1s")).is_empty());
    assert!(!mounts_under(&data).is_empty(), "no rootfs mounted");
    assert!(!processes(&installed, "sleep 86399").is_empty());
    let _foreign = ForeignChain::add();

    // killall: nothing of k1s runs or stays mounted or wired; its data stays.
    run_script(&bin.join("k1s-killall.sh"), &[("K1S_DATA_DIR", &data)]);
    let left = processes(&installed, "sleep 86399");
    assert!(left.is_empty(), "still running: {left:?}");
    assert_eq!(mounts_under(Path::new("/run/k1s")), Vec::<String>::new());
    assert_eq!(mounts_under(&data), Vec::<String>::new());
    assert!(!Path::new("/run/k1s").exists());
    assert!(!sh("ip", &["link", "show", "k1s0"]).0, "the bridge is left");
    assert!(
        !sh("nft", &["list", "table", "ip", "k1s"]).0,
        "the table is left"
    );
    let after = sh("iptables-save", &[]).1;
    assert!(!after.contains("K1S-"), "{after}");
    assert!(!after.contains(r#"name: \"k1s\""#), "{after}");
    assert!(
        after.contains("INSTALLTEST-KEEP"),
        "another chain went:\n{after}"
    );
    assert!(data.join("server").exists(), "killall removed the data");

    // uninstall: the rest goes.
    run_script(&bin.join("k1s-uninstall.sh"), &[("K1S_DATA_DIR", &data)]);
    assert!(!data.exists(), "data left");
    assert!(!etc.exists(), "config left");
    assert!(!units.join("k1s.service").exists() && !env_file.exists());
    let left: Vec<_> = std::fs::read_dir(&bin).unwrap().flatten().collect();
    assert!(left.is_empty(), "left in the bin dir: {left:?}");
}
