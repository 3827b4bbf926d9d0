//! Tests for creating, reloading and renewing the PKI on disk.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;

use super::*;

const FILES: [&str; 6] = [
    "ca.crt",
    "ca.key",
    "serving.crt",
    "serving.key",
    "admin.crt",
    "admin.key",
];

pub(crate) fn config(dir: &Path, sans: &[&str]) -> PkiConfig {
    PkiConfig {
        dir: dir.join("server").join("tls"),
        sans: sans.iter().map(|s| s.to_string()).collect(),
        service_ip: "10.43.0.1".parse().expect("ip"),
        cluster_domain: "cluster.local".into(),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o7777
}

fn cert_facts(pem: &str) -> inspect::CertFacts {
    let der = inspect::parse_cert_pem(pem, Path::new("test")).expect("pem");
    inspect::facts(&der).expect("facts")
}

fn der_of(pem: &str) -> Vec<u8> {
    inspect::parse_cert_pem(pem, Path::new("test"))
        .expect("pem")
        .to_vec()
}

#[test]
fn first_start_creates_private_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &[]);
    let pki = Pki::load_or_create(&cfg).expect("create");

    assert_eq!(mode(&cfg.dir), 0o700);
    for name in FILES {
        assert_eq!(mode(&cfg.dir.join(name)), 0o600, "{name}");
    }
    let ca_on_disk = fs::read_to_string(cfg.dir.join("ca.crt")).expect("read");
    assert_eq!(ca_on_disk, pki.ca_cert_pem);
    // No temp files are left behind by the atomic writes.
    assert_eq!(fs::read_dir(&cfg.dir).expect("ls").count(), FILES.len());

    let ca = cert_facts(&pki.ca_cert_pem);
    assert!(ca.is_ca);
    let ca_der = der_of(&pki.ca_cert_pem);
    let (_, parsed) = x509_parser::parse_x509_certificate(&ca_der).expect("parse");
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .expect("cn");
    assert!(cn.starts_with("k1s-server-ca@"), "{cn}");
    let validity = parsed.validity();
    let years = (validity.not_after.timestamp() - validity.not_before.timestamp()) / 86_400 / 365;
    assert_eq!(years, 10);
}

#[test]
fn serving_cert_has_default_and_requested_names() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &["node1", "192.168.1.10", "[fd00::10]"]);
    let pki = Pki::load_or_create(&cfg).expect("create");
    let facts = cert_facts(&pki.serving_cert_pem);
    for dns in [
        "localhost",
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        "kubernetes.default.svc.cluster.local",
        "node1",
    ] {
        assert!(facts.dns_names.iter().any(|n| n == dns), "missing {dns}");
    }
    for ip in ["127.0.0.1", "::1", "10.43.0.1", "192.168.1.10", "fd00::10"] {
        let ip: IpAddr = ip.parse().expect("ip");
        assert!(facts.ip_addresses.contains(&ip), "missing {ip}");
    }
    assert_eq!(facts.issuer_der, cert_facts(&pki.ca_cert_pem).subject_der);
}

#[test]
fn reload_reuses_everything() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &["node1"]);
    let first = Pki::load_or_create(&cfg).expect("create");
    let second = Pki::load_or_create(&cfg).expect("reload");
    assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
    assert_eq!(first.serving_cert_pem, second.serving_cert_pem);
    assert_eq!(first.admin_cert_pem, second.admin_cert_pem);
    assert_eq!(
        first.admin_kubeconfig("https://x"),
        second.admin_kubeconfig("https://x")
    );
}

#[test]
fn loose_file_modes_are_tightened_on_load() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &[]);
    Pki::load_or_create(&cfg).expect("create");
    let ca = cfg.dir.join("ca.crt");
    fs::set_permissions(&ca, fs::Permissions::from_mode(0o644)).expect("chmod");
    fs::set_permissions(&cfg.dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    Pki::load_or_create(&cfg).expect("reload");
    assert_eq!(mode(&ca), 0o600);
    assert_eq!(mode(&cfg.dir), 0o700);
}

#[test]
fn new_san_reissues_serving_cert_with_same_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = Pki::load_or_create(&config(tmp.path(), &["node1"])).expect("create");
    let second = Pki::load_or_create(&config(
        tmp.path(),
        &["node1", "api.example.com", "203.0.113.7"],
    ))
    .expect("reload");
    assert_eq!(first.ca_cert_pem, second.ca_cert_pem);
    assert_eq!(first.admin_cert_pem, second.admin_cert_pem);
    assert_ne!(first.serving_cert_pem, second.serving_cert_pem);
    let facts = cert_facts(&second.serving_cert_pem);
    assert!(facts.dns_names.iter().any(|n| n == "api.example.com"));
    assert!(facts
        .ip_addresses
        .contains(&"203.0.113.7".parse().expect("ip")));
    // Same names again (different case): nothing to do.
    let third = Pki::load_or_create(&config(
        tmp.path(),
        &["NODE1", "api.example.com", "203.0.113.7"],
    ))
    .expect("reload");
    assert_eq!(second.serving_cert_pem, third.serving_cert_pem);
}

#[test]
fn serving_cert_expiring_soon_is_reissued() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &[]);
    let pki = Pki::load_or_create(&cfg).expect("create");
    let sans = required_sans(&cfg).expect("sans");
    let short = issue::issue_leaf(
        &pki.ca,
        &LeafSpec {
            common_name: SERVING_CN,
            organizations: &[],
            usage: Usage::Server(&sans),
            validity: Duration::from_secs(30 * 86_400),
        },
        now_unix(),
    )
    .expect("issue");
    files::write_private_pem(&cfg.dir.join("serving.key"), &short.key_pem).expect("write");
    files::write_private_pem(&cfg.dir.join("serving.crt"), &short.cert_pem).expect("write");

    let reloaded = Pki::load_or_create(&cfg).expect("reload");
    assert_ne!(reloaded.serving_cert_pem, short.cert_pem);
    let not_after = cert_facts(&reloaded.serving_cert_pem).not_after_unix;
    assert!(not_after > (now_unix() + 300 * 86_400) as i64);
}

#[test]
fn leaves_from_another_ca_or_mismatched_keys_are_reissued() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &[]);
    let other_cfg = config(&tmp.path().join("other"), &[]);
    let pki = Pki::load_or_create(&cfg).expect("create");
    let other = Pki::load_or_create(&other_cfg).expect("create other");
    for name in ["serving.crt", "serving.key"] {
        fs::copy(other_cfg.dir.join(name), cfg.dir.join(name)).expect("copy");
    }
    // admin.key from the other PKI no longer matches admin.crt.
    fs::copy(other_cfg.dir.join("admin.key"), cfg.dir.join("admin.key")).expect("copy");

    let reloaded = Pki::load_or_create(&cfg).expect("reload");
    assert_eq!(reloaded.ca_cert_pem, pki.ca_cert_pem);
    assert_ne!(reloaded.serving_cert_pem, other.serving_cert_pem);
    assert_ne!(reloaded.admin_cert_pem, pki.admin_cert_pem);
    let ca_subject = cert_facts(&pki.ca_cert_pem).subject_der;
    assert_eq!(
        cert_facts(&reloaded.serving_cert_pem).issuer_der,
        ca_subject
    );
}

#[test]
fn corrupt_files_are_named_in_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &[]);
    Pki::load_or_create(&cfg).expect("create");

    let ca_crt = cfg.dir.join("ca.crt");
    let good = fs::read(&ca_crt).expect("read");
    fs::write(&ca_crt, b"not a certificate").expect("write");
    let err = Pki::load_or_create(&cfg).expect_err("corrupt ca.crt");
    assert!(
        matches!(err, PkiError::InvalidCertificate { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&ca_crt.display().to_string()),
        "{err}"
    );
    fs::write(&ca_crt, good).expect("restore");

    let serving_key = cfg.dir.join("serving.key");
    fs::write(
        &serving_key,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let err = Pki::load_or_create(&cfg).expect_err("corrupt serving.key");
    assert!(err.to_string().contains("serving.key"), "{err}");
}

#[test]
fn lone_ca_key_is_an_error_not_a_new_ca() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), &[]);
    Pki::load_or_create(&cfg).expect("create");
    fs::remove_file(cfg.dir.join("ca.crt")).expect("rm");
    let err = Pki::load_or_create(&cfg).expect_err("incomplete ca");
    assert!(matches!(err, PkiError::IncompleteCa { .. }), "{err:?}");
    assert!(err.to_string().contains("ca.crt"), "{err}");
    assert!(cfg.dir.join("ca.key").exists());
}

#[test]
fn invalid_san_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let err = Pki::load_or_create(&config(tmp.path(), &["bad name"])).expect_err("bad san");
    assert!(err.to_string().contains("bad name"), "{err}");
}

#[test]
fn admin_and_issued_client_identities() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    let admin = user_from_cert(&der_of(&pki.admin_cert_pem)).expect("admin user");
    assert_eq!(
        admin,
        UserInfo {
            name: "system:admin".into(),
            groups: vec!["system:masters".into()],
        }
    );

    let (cert, key) = pki
        .issue_client_cert("alice", &["devs", "system:authenticated", "ops"], 7)
        .expect("issue");
    assert!(key.contains("PRIVATE KEY"));
    let user = user_from_cert(&der_of(&cert)).expect("user");
    assert_eq!(user.name, "alice");
    assert_eq!(user.groups, ["devs", "system:authenticated", "ops"]);
    let facts = cert_facts(&cert);
    let days = (facts.not_after_unix - now_unix() as i64) / 86_400;
    assert!((6..=7).contains(&days), "{days}");

    let node = pki
        .issue_client_cert("system:node:edge-1", &["system:nodes"], 365)
        .expect("issue");
    assert_eq!(
        user_from_cert(&der_of(&node.0)).map(|u| u.name),
        Some("system:node:edge-1".into())
    );
    assert!(pki.issue_client_cert("", &[], 1).is_err());
    assert_eq!(user_from_cert(b"garbage"), None);
}

#[test]
fn kubeconfig_has_k3s_layout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    let yaml = pki.admin_kubeconfig("https://127.0.0.1:6443");
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("yaml");
    let b64 = |v: &serde_yaml::Value| {
        let text = v.as_str().expect("string");
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .expect("base64"),
        )
        .expect("utf8")
    };

    assert_eq!(doc["apiVersion"], "v1");
    assert_eq!(doc["kind"], "Config");
    assert_eq!(doc["current-context"], "default");
    let cluster = &doc["clusters"][0];
    assert_eq!(cluster["name"], "default");
    assert_eq!(cluster["cluster"]["server"], "https://127.0.0.1:6443");
    assert_eq!(
        b64(&cluster["cluster"]["certificate-authority-data"]),
        pki.ca_cert_pem
    );
    let context = &doc["contexts"][0];
    assert_eq!(context["name"], "default");
    assert_eq!(context["context"]["cluster"], "default");
    assert_eq!(context["context"]["user"], "default");
    let user = &doc["users"][0];
    assert_eq!(user["name"], "default");
    assert_eq!(
        b64(&user["user"]["client-certificate-data"]),
        pki.admin_cert_pem
    );
    assert_eq!(b64(&user["user"]["client-key-data"]), pki.admin_key_pem);

    // Odd characters in the URL survive quoting.
    let odd = "https://h:1/p?q=\"x\"\\y #z";
    let doc: serde_yaml::Value = serde_yaml::from_str(&pki.admin_kubeconfig(odd)).expect("yaml");
    assert_eq!(doc["clusters"][0]["cluster"]["server"], odd);
}

#[test]
fn write_file_atomic_sets_exact_mode_and_replaces() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("etc").join("k1s.yaml");
    write_file_atomic(&path, b"one", 0o644).expect("write");
    assert_eq!(fs::read(&path).expect("read"), b"one");
    assert_eq!(mode(&path), 0o644);
    write_file_atomic(&path, b"two", 0o600).expect("rewrite");
    assert_eq!(fs::read(&path).expect("read"), b"two");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        fs::read_dir(path.parent().expect("parent"))
            .expect("ls")
            .count(),
        1
    );
}

#[test]
fn san_parsing() {
    assert_eq!(
        SanEntry::parse("[::1]").expect("v6"),
        SanEntry::Ip("::1".parse().expect("ip"))
    );
    assert_eq!(
        SanEntry::parse(" Example.COM ").expect("dns"),
        SanEntry::Dns("example.com".into())
    );
    assert!(SanEntry::parse("*.apps.example.com").is_ok());
    for bad in ["", "a..b", "host name", "ünï.example"] {
        assert!(SanEntry::parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn debug_does_not_print_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pki = Pki::load_or_create(&config(tmp.path(), &[])).expect("create");
    assert!(!format!("{pki:?}").contains("PRIVATE"));
}
