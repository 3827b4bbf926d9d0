//! The binary's command line: version, bad flags and config files, file modes of what the
//! server writes, and reuse of its certificates across restarts.

mod common;
use common::{k1s_bin, TestServer};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(k1s_bin()).args(args).output().expect("k1s");
    (
        o.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn version_and_bad_flags() {
    let (code, out) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("k1s ") && out.contains("v1.33"), "{out}");
    let (code, out) = run(&["server", "--no-such-flag"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("--no-such-flag"), "{out}");
    let (code, out) = run(&["server", "--https-listen-port", "99999"]);
    assert_eq!(code, 2);
    assert!(out.contains("--https-listen-port"), "{out}");
    let (code, out) = run(&["server", "--write-kubeconfig-mode", "999"]);
    assert_eq!(code, 2);
    assert!(out.contains("octal"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "cluster-cidr: [not, a, cidr]\n").unwrap();
    let (code, out) = run(&["server", "--config", cfg.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(out.contains("cluster-cidr"), "{out}");
    std::fs::write(&cfg, "bogus-key: 1\n").unwrap();
    let (code, out) = run(&["server", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        out.contains("bogus-key") && out.contains("config.yaml"),
        "{out}"
    );
}

#[test]
fn config_file_and_environment_apply() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(
        &cfg,
        "tls-san: [k1s.example.test]\nwrite-kubeconfig-mode: \"0640\"\n",
    )
    .unwrap();
    let s = TestServer::start_with(&["--config", cfg.to_str().unwrap(), "--disable-agent"]);
    let mode = std::fs::metadata(&s.kubeconfig)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(s.tls_dir().join("serving.crt"))
        .output();
    if let Ok(o) = out {
        let text = String::from_utf8_lossy(&o.stdout);
        if o.status.success() {
            assert!(
                text.contains("k1s.example.test")
                    && text.contains("kubernetes.default.svc.cluster.local"),
                "{text}"
            );
        }
    }
}

#[test]
fn files_are_private_and_reused_on_restart() {
    let mut s = TestServer::start();
    let mode = std::fs::metadata(&s.kubeconfig)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    for f in [
        "ca.crt",
        "ca.key",
        "serving.crt",
        "serving.key",
        "admin.crt",
        "admin.key",
    ] {
        let m = std::fs::metadata(s.tls_dir().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(m, 0o600, "{f}");
    }
    let ca = std::fs::read(s.tls_dir().join("ca.crt")).unwrap();
    s.k(&["get", "ns", "default"]);
    s.stop();
    s.spawn();
    assert_eq!(
        std::fs::read(s.tls_dir().join("ca.crt")).unwrap(),
        ca,
        "the CA is reused"
    );
    let out = s.k(&["get", "ns"]);
    assert_eq!(
        out.lines().filter(|l| l.contains("Active")).count(),
        4,
        "{out}"
    );
}
