//! Service-account credentials against a real `k1s server` over HTTPS, with kubectl: tokens
//! from `kubectl create token` (TokenRequest) authenticate as the account and stop working when
//! the account or the object they are bound to goes; legacy token Secrets are filled in; pods
//! get the `kube-api-access-*` volume unless they opt out; every namespace gets the CA.

mod common;

use common::TestServer;
use std::process::Command;
use std::time::{Duration, Instant};

/// GET `path` with only a bearer token: (status, body).
fn with_token(s: &TestServer, token: &str, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "-", "-w", "\n%{http_code}", "--cacert"])
        .arg(s.tls_dir().join("ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(s.url(path))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Authenticated as `user` (the request may still be refused by authorization).
fn authenticates_as(s: &TestServer, token: &str, user: &str) -> bool {
    let (code, body) = with_token(s, token, "/api/v1/namespaces/default/pods");
    match code {
        200 => true,
        403 => body.contains(&format!("User \\\"{user}\\\"")),
        _ => false,
    }
}

#[test]
fn create_token_authenticates_until_the_account_or_pod_goes() {
    let s = TestServer::start();
    s.k(&["create", "serviceaccount", "robot"]);
    let token = s.k(&["create", "token", "robot"]).trim().to_string();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    let user = "system:serviceaccount:default:robot";
    assert!(authenticates_as(&s, &token, user));

    // Tampered, foreign and garbage tokens are 401.
    let mut bad = token.clone();
    bad.pop();
    bad.push(if token.ends_with('A') { 'B' } else { 'A' });
    for t in [bad.as_str(), "abc", "a.b.c", &"x".repeat(4_000)] {
        assert_eq!(with_token(&s, t, "/api").0, 401, "token {t:.20}");
    }

    // Bound to a pod: valid while that pod exists.
    s.k_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  serviceAccountName: robot\n  containers: [{name: c, image: busybox}]\n",
    );
    let bound = s
        .k(&[
            "create",
            "token",
            "robot",
            "--bound-object-kind=Pod",
            "--bound-object-name=p",
            "--duration=20m",
        ])
        .trim()
        .to_string();
    assert!(authenticates_as(&s, &bound, user));
    s.k(&["delete", "pod", "p", "--grace-period=0", "--force"]);
    eventually("the pod-bound token to be refused", || {
        with_token(&s, &bound, "/api").0 == 401
    });

    // A token for a pod of another account is refused at issue.
    s.k_in(
        &["apply", "-f", "-"],
        "apiVersion: v1\nkind: Pod\nmetadata: {name: q}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    );
    let (ok, _, err) = s.kubectl(&[
        "create",
        "token",
        "robot",
        "--bound-object-kind=Pod",
        "--bound-object-name=q",
    ]);
    assert!(!ok && err.contains("different serviceaccount"), "{err}");

    // Too short a lifetime is a 422 naming the field.
    let (ok, _, err) = s.kubectl(&["create", "token", "robot", "--duration=5m"]);
    assert!(!ok && err.contains("spec.expirationSeconds"), "{err}");

    // Deleting the account revokes its tokens, and a new account of the same name does not
    // bring them back.
    s.k(&["delete", "serviceaccount", "robot"]);
    assert_eq!(with_token(&s, &token, "/api").0, 401);
    s.k(&["create", "serviceaccount", "robot"]);
    assert_eq!(with_token(&s, &token, "/api").0, 401);
}

#[test]
fn legacy_token_secrets_are_filled_and_revoked_with_the_secret() {
    let s = TestServer::start();
    s.k(&["create", "serviceaccount", "build"]);
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Secret
metadata:
  name: build-token
  annotations: {kubernetes.io/service-account.name: build}
type: kubernetes.io/service-account-token
"#,
    );
    let mut token = String::new();
    eventually("the token controller to fill the secret", || {
        let (_, out, _) = s.kubectl(&[
            "get",
            "secret",
            "build-token",
            "-o",
            "jsonpath={.data.token}",
        ]);
        token = out.trim().to_string();
        !token.is_empty()
    });
    let token =
        String::from_utf8(base64_decode(&token).expect("base64 token in the secret")).unwrap();
    let ns = s.k(&[
        "get",
        "secret",
        "build-token",
        "-o",
        "jsonpath={.data.namespace}",
    ]);
    assert_eq!(base64_decode(ns.trim()).unwrap(), b"default");
    assert!(authenticates_as(
        &s,
        &token,
        "system:serviceaccount:default:build"
    ));
    s.k(&["delete", "secret", "build-token"]);
    assert_eq!(with_token(&s, &token, "/api").0, 401);
}

#[test]
fn pods_mount_the_api_credentials_and_namespaces_get_the_ca() {
    let s = TestServer::start();
    s.k(&["create", "namespace", "team"]);
    let ca = std::fs::read_to_string(s.tls_dir().join("ca.crt")).unwrap();
    eventually("kube-root-ca.crt in the new namespace", || {
        s.kubectl(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-n",
            "team",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ])
        .1
        .trim()
            == ca.trim()
    });
    // Edited or deleted, it comes back.
    s.k(&["delete", "configmap", "kube-root-ca.crt", "-n", "team"]);
    eventually("kube-root-ca.crt recreated", || {
        s.kubectl(&["get", "configmap", "kube-root-ca.crt", "-n", "team"])
            .0
    });

    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: with, namespace: team}
spec:
  initContainers: [{name: i, image: busybox}]
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: without, namespace: team}
spec:
  automountServiceAccountToken: false
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: quiet, namespace: team}
automountServiceAccountToken: false
---
apiVersion: v1
kind: Pod
metadata: {name: quiet, namespace: team}
spec:
  serviceAccountName: quiet
  containers: [{name: c, image: busybox}]
"#,
    );
    let vol = s.k(&[
        "get",
        "pod",
        "with",
        "-n",
        "team",
        "-o",
        "jsonpath={.spec.volumes[0].name} {.spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds} {.spec.volumes[0].projected.sources[1].configMap.name}",
    ]);
    let parts: Vec<&str> = vol.split_whitespace().collect();
    assert!(parts[0].starts_with("kube-api-access-"), "{vol}");
    assert_eq!(parts[1..], ["3607", "kube-root-ca.crt"]);
    for c in ["initContainers", "containers"] {
        let m = s.k(&[
            "get",
            "pod",
            "with",
            "-n",
            "team",
            "-o",
            &format!("jsonpath={{.spec.{c}[0].volumeMounts[0].mountPath}} {{.spec.{c}[0].volumeMounts[0].readOnly}}"),
        ]);
        assert_eq!(
            m, "/var/run/secrets/kubernetes.io/serviceaccount true",
            "{c}"
        );
    }
    for p in ["without", "quiet"] {
        let v = s.k(&[
            "get",
            "pod",
            p,
            "-n",
            "team",
            "-o",
            "jsonpath={.spec.volumes}",
        ]);
        assert!(v.is_empty(), "pod {p} got volumes {v}");
    }
    // `kubectl apply` of the same pod again sees no spurious change.
    let (ok, out, err) = s.kubectl_stdin(
        &["diff", "-f", "-"],
        Some("apiVersion: v1\nkind: Pod\nmetadata: {name: with, namespace: team}\nspec:\n  initContainers: [{name: i, image: busybox}]\n  containers: [{name: c, image: busybox}]\n"),
    );
    assert!(ok, "kubectl diff shows changes:\n{out}{err}");
}

#[test]
fn the_issuer_publishes_its_discovery_documents() {
    let s = TestServer::start();
    let d = s.get_json("/.well-known/openid-configuration");
    assert_eq!(d["issuer"], "https://kubernetes.default.svc.cluster.local");
    let jwks = s.get_json("/openid/v1/jwks");
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    let token = s.k(&["create", "token", "default"]);
    let header = token.split('.').next().unwrap();
    let header = String::from_utf8(base64_url_decode(header)).unwrap();
    assert!(
        header.contains(key["kid"].as_str().unwrap()),
        "{header} vs {key}"
    );
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap()
}
