//! RBAC end to end: the real kubectl against a real `k1s server` over HTTPS, acting as other
//! users by impersonation (`--as`, authorized by the admin's `impersonate` permission) and by
//! a client certificate issued from the cluster CA with openssl.

mod common;
use common::TestServer;
use std::process::Command;
use std::time::{Duration, Instant};

/// kubectl as `user` (in `groups`); returns (success, stdout, stderr).
fn as_user(s: &TestServer, user: &str, groups: &[&str], args: &[&str]) -> (bool, String, String) {
    let mut all: Vec<String> = vec![format!("--as={user}")];
    all.extend(groups.iter().map(|g| format!("--as-group={g}")));
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    s.kubectl(&refs)
}

fn allowed(s: &TestServer, user: &str, args: &[&str]) -> String {
    let (ok, out, err) = as_user(s, user, &[], args);
    assert!(ok, "{user}: kubectl {args:?} refused:\n{out}{err}");
    out
}

/// The command is refused; returns kubectl's error text.
fn refused(s: &TestServer, user: &str, args: &[&str]) -> String {
    let (ok, out, err) = as_user(s, user, &[], args);
    assert!(!ok, "{user}: kubectl {args:?} allowed:\n{out}");
    err
}

fn can_i(s: &TestServer, user: &str, args: &[&str]) -> bool {
    let mut all = vec!["auth", "can-i"];
    all.extend_from_slice(args);
    let (ok, out, err) = as_user(s, user, &[], &all);
    match out.trim() {
        "yes" => assert!(ok, "{err}"),
        "no" => assert!(!ok, "{err}"),
        other => panic!("can-i {args:?}: {other:?} {err}"),
    }
    ok
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn users_without_bindings_are_refused_with_upstreams_message() {
    let s = TestServer::start();
    let err = refused(&s, "jane", &["get", "pods"]);
    assert!(
        err.contains(
            "Error from server (Forbidden): pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{err}"
    );
    let err = refused(
        &s,
        "jane",
        &["get", "deployments", "-n", "kube-system", "web"],
    );
    assert!(
        err.contains("deployments.apps \"web\" is forbidden: User \"jane\" cannot get resource \"deployments\" in API group \"apps\" in the namespace \"kube-system\""),
        "{err}"
    );
    let err = refused(&s, "jane", &["get", "nodes"]);
    assert!(err.contains("at the cluster scope"), "{err}");
    // discovery and self-reviews are every authenticated user's
    allowed(&s, "jane", &["api-resources"]);
    let who = allowed(&s, "jane", &["auth", "whoami"]);
    assert!(
        who.contains("jane") && who.contains("system:authenticated"),
        "{who}"
    );
    // the admin (system:masters) needs no binding; the bootstrap one exists anyway
    let crb = s.k(&["get", "clusterrolebinding", "cluster-admin", "-o", "yaml"]);
    assert!(crb.contains("system:masters"), "{crb}");
}

#[test]
fn view_edit_and_admin_in_a_namespace() {
    let s = TestServer::start();
    s.k(&["create", "namespace", "dev"]);
    s.k(&[
        "create",
        "configmap",
        "cfg",
        "-n",
        "dev",
        "--from-literal=a=b",
    ]);
    s.k(&[
        "create",
        "secret",
        "generic",
        "tok",
        "-n",
        "dev",
        "--from-literal=a=b",
    ]);
    s.k(&[
        "create",
        "rolebinding",
        "jane-view",
        "--clusterrole=view",
        "--user=jane",
        "-n",
        "dev",
    ]);
    // view's rules come from the aggregation controller
    eventually("view to be aggregated", || {
        can_i(&s, "jane", &["list", "pods", "-n", "dev"])
    });
    allowed(&s, "jane", &["get", "pods", "-n", "dev"]);
    allowed(&s, "jane", &["get", "configmap", "cfg", "-n", "dev"]);
    allowed(&s, "jane", &["get", "deployments", "-n", "dev"]);
    allowed(&s, "jane", &["get", "namespace", "dev"]);
    let err = refused(&s, "jane", &["get", "secrets", "-n", "dev"]);
    assert!(err.contains("secrets is forbidden"), "{err}");
    refused(&s, "jane", &["get", "pods", "-n", "default"]);
    refused(&s, "jane", &["get", "pods", "-A"]);
    refused(&s, "jane", &["create", "configmap", "x", "-n", "dev"]);
    assert!(!can_i(&s, "jane", &["get", "secrets", "-n", "dev"]));
    assert!(!can_i(&s, "jane", &["list", "pods", "-n", "default"]));

    s.k(&[
        "create",
        "rolebinding",
        "bob-edit",
        "--clusterrole=edit",
        "--user=bob",
        "-n",
        "dev",
    ]);
    eventually("edit to be aggregated", || {
        can_i(&s, "bob", &["create", "deployments.apps", "-n", "dev"])
    });
    allowed(
        &s,
        "bob",
        &[
            "create",
            "deployment",
            "web",
            "--image=registry.local/web:1",
            "-n",
            "dev",
        ],
    );
    allowed(&s, "bob", &["get", "secret", "tok", "-n", "dev"]);
    refused(
        &s,
        "bob",
        &[
            "create",
            "role",
            "r",
            "--verb=get",
            "--resource=pods",
            "-n",
            "dev",
        ],
    );

    s.k(&[
        "create",
        "rolebinding",
        "ann-admin",
        "--clusterrole=admin",
        "--user=ann",
        "-n",
        "dev",
    ]);
    eventually("admin to be aggregated", || {
        can_i(&s, "ann", &["create", "roles", "-n", "dev"])
    });
    allowed(
        &s,
        "ann",
        &[
            "create",
            "role",
            "pod-reader",
            "--verb=get,list",
            "--resource=pods",
            "-n",
            "dev",
        ],
    );
    allowed(
        &s,
        "ann",
        &[
            "create",
            "rolebinding",
            "carl-reads",
            "--role=pod-reader",
            "--user=carl",
            "-n",
            "dev",
        ],
    );
    allowed(&s, "carl", &["get", "pods", "-n", "dev", "-o", "name"]);
    refused(&s, "carl", &["get", "configmaps", "-n", "dev"]);

    // can-i --list answers from the same rules
    let list = allowed(&s, "jane", &["auth", "can-i", "--list", "-n", "dev"]);
    assert!(list.contains("deployments.apps"), "{list}");
    assert!(
        list.contains("selfsubjectaccessreviews.authorization.k8s.io"),
        "{list}"
    );
    assert!(!list.contains("secrets"), "{list}");

    // a deleted binding takes effect at once
    s.k(&["delete", "rolebinding", "jane-view", "-n", "dev"]);
    refused(&s, "jane", &["get", "pods", "-n", "dev"]);
}

#[test]
fn resource_names_non_resource_urls_and_groups() {
    let s = TestServer::start();
    s.k(&["create", "configmap", "cfg", "--from-literal=a=b"]);
    s.k(&["create", "configmap", "other", "--from-literal=a=b"]);
    s.k(&[
        "create",
        "clusterrole",
        "cfg-reader",
        "--verb=get,list,watch",
        "--resource=configmaps",
        "--resource-name=cfg",
    ]);
    s.k(&[
        "create",
        "clusterrolebinding",
        "cfg-readers",
        "--clusterrole=cfg-reader",
        "--group=readers",
    ]);
    let g = &["readers"][..];
    eventually("the binding to apply", || {
        as_user(&s, "dana", g, &["get", "configmap", "cfg"]).0
    });
    assert!(!as_user(&s, "dana", g, &["get", "configmap", "other"]).0);
    assert!(!as_user(&s, "dana", g, &["get", "configmaps"]).0);
    // a list by name is a request for that object
    let (ok, out, err) = as_user(
        &s,
        "dana",
        g,
        &[
            "get",
            "configmaps",
            "--field-selector=metadata.name=cfg",
            "-o",
            "name",
        ],
    );
    assert!(ok && out.contains("configmap/cfg"), "{out}{err}");
    // without the group, nothing
    assert!(!as_user(&s, "dana", &[], &["get", "configmap", "cfg"]).0);

    let err = refused(&s, "dana", &["get", "--raw", "/logs/kube.log"]);
    assert!(
        err.contains("forbidden: User \\\"dana\\\" cannot get path \\\"/logs/kube.log\\\"")
            || err.contains("forbidden: User \"dana\" cannot get path \"/logs/kube.log\""),
        "{err}"
    );
    s.k(&[
        "create",
        "clusterrole",
        "logs",
        "--verb=get",
        "--non-resource-url=/logs/*",
    ]);
    s.k(&[
        "create",
        "clusterrolebinding",
        "dana-logs",
        "--clusterrole=logs",
        "--user=dana",
    ]);
    // allowed now: the path is not served, so 404 instead of 403
    eventually("the path to be allowed", || {
        let (_, _, err) = as_user(&s, "dana", &[], &["get", "--raw", "/logs/kube.log"]);
        err.contains("NotFound") || err.contains("could not find")
    });
    refused(&s, "dana", &["get", "--raw", "/metrics"]);
}

#[test]
fn aggregation_rule() {
    let s = TestServer::start();
    s.k(&[
        "create",
        "clusterrole",
        "monitoring",
        "--aggregation-rule=team=mon",
    ]);
    s.k(&[
        "create",
        "clusterrole",
        "mon-pods",
        "--verb=get,list",
        "--resource=pods",
    ]);
    s.k(&[
        "create",
        "clusterrole",
        "mon-nodes",
        "--verb=get,list",
        "--resource=nodes",
    ]);
    s.k(&["label", "clusterrole", "mon-pods", "team=mon"]);
    s.k(&["label", "clusterrole", "mon-nodes", "team=mon"]);
    eventually("both roles to be aggregated", || {
        let y = s.k(&["get", "clusterrole", "monitoring", "-o", "json"]);
        y.contains("\"pods\"") && y.contains("\"nodes\"")
    });
    s.k(&[
        "create",
        "clusterrolebinding",
        "mon",
        "--clusterrole=monitoring",
        "--user=mo",
    ]);
    eventually("the aggregated role to apply", || {
        can_i(&s, "mo", &["list", "pods", "-A"])
    });
    allowed(&s, "mo", &["get", "nodes"]);
    // unlabelled, its rules leave the aggregate
    s.k(&["label", "clusterrole", "mon-nodes", "team-"]);
    eventually("nodes to leave the aggregate", || {
        !can_i(&s, "mo", &["get", "nodes"])
    });
    // the default roles aggregate too: a role labelled for view extends view
    s.k(&[
        "create",
        "clusterrole",
        "svc-proxy",
        "--verb=proxy",
        "--resource=services",
    ]);
    s.k(&[
        "label",
        "clusterrole",
        "svc-proxy",
        "rbac.authorization.k8s.io/aggregate-to-view=true",
    ]);
    // (view, edit and admin hold no other `proxy` verb)
    eventually("view, edit and admin to include the proxy rule", || {
        ["view", "edit", "admin"].iter().all(|r| {
            s.k(&["get", "clusterrole", r, "-o", "json"])
                .contains("\"proxy\"")
        })
    });
}

#[test]
fn escalation_is_refused_until_allowed() {
    let s = TestServer::start();
    s.k(&["create", "namespace", "esc"]);
    s.k(&[
        "create",
        "role",
        "role-writer",
        "--verb=create,get,update,patch",
        "--resource=roles,rolebindings",
        "-n",
        "esc",
    ]);
    s.k(&[
        "create",
        "role",
        "pods",
        "--verb=get,list",
        "--resource=pods",
        "-n",
        "esc",
    ]);
    s.k(&[
        "create",
        "rolebinding",
        "erin",
        "--role=role-writer",
        "--user=erin",
        "-n",
        "esc",
    ]);
    s.k(&[
        "create",
        "rolebinding",
        "erin-pods",
        "--role=pods",
        "--user=erin",
        "-n",
        "esc",
    ]);
    // (bindings are seen in the order they were written: the last one implies the others)
    eventually("erin's bindings", || {
        can_i(&s, "erin", &["list", "pods", "-n", "esc"])
    });
    // rules she holds: fine
    allowed(
        &s,
        "erin",
        &[
            "create",
            "role",
            "mine",
            "--verb=get",
            "--resource=pods",
            "-n",
            "esc",
        ],
    );
    let err = refused(
        &s,
        "erin",
        &[
            "create",
            "role",
            "more",
            "--verb=get,delete",
            "--resource=pods,secrets",
            "-n",
            "esc",
        ],
    );
    assert!(
        err.contains("roles.rbac.authorization.k8s.io \"more\" is forbidden: user \"erin\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:"),
        "{err}"
    );
    assert!(
        err.contains("{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"),
        "{err}"
    );
    assert!(
        err.contains("{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\" \"delete\"]}"),
        "{err}"
    );
    // binding a role she does not hold is refused too
    let err = refused(
        &s,
        "erin",
        &[
            "create",
            "rolebinding",
            "x",
            "--clusterrole=cluster-admin",
            "--user=erin",
            "-n",
            "esc",
        ],
    );
    assert!(
        err.contains("rolebindings.rbac.authorization.k8s.io \"x\" is forbidden"),
        "{err}"
    );
    // ... unless she holds its rules
    allowed(
        &s,
        "erin",
        &[
            "create",
            "rolebinding",
            "frank-pods",
            "--role=pods",
            "--user=frank",
            "-n",
            "esc",
        ],
    );

    // with `escalate`, any rules; with `bind` on a role, binding it
    s.k(&[
        "create",
        "role",
        "escalator",
        "--verb=escalate,bind",
        "--resource=roles",
        "-n",
        "esc",
    ]);
    s.k(&[
        "create",
        "rolebinding",
        "erin-esc",
        "--role=escalator",
        "--user=erin",
        "-n",
        "esc",
    ]);
    eventually("escalate to apply", || {
        can_i(&s, "erin", &["escalate", "roles", "-n", "esc"])
    });
    allowed(
        &s,
        "erin",
        &[
            "create",
            "role",
            "more",
            "--verb=get,delete",
            "--resource=pods,secrets",
            "-n",
            "esc",
        ],
    );
    allowed(
        &s,
        "erin",
        &[
            "create",
            "rolebinding",
            "frank-more",
            "--role=more",
            "--user=frank",
            "-n",
            "esc",
        ],
    );
    assert!(can_i(&s, "frank", &["delete", "secrets", "-n", "esc"]));

    // an aggregationRule needs cluster-admin
    s.k(&[
        "create",
        "clusterrole",
        "cr-writer",
        "--verb=create",
        "--resource=clusterroles",
    ]);
    s.k(&[
        "create",
        "clusterrolebinding",
        "gus",
        "--clusterrole=cr-writer",
        "--user=gus",
    ]);
    eventually("gus's binding", || {
        can_i(&s, "gus", &["create", "clusterroles"])
    });
    let err = refused(
        &s,
        "gus",
        &["create", "clusterrole", "agg", "--aggregation-rule=a=b"],
    );
    assert!(
        err.contains("must have cluster-admin privileges to use the aggregationRule"),
        "{err}"
    );
}

#[test]
fn client_certificate_user_and_group() {
    let s = TestServer::start();
    let tls = s.tls_dir();
    let dir = s.data_dir();
    let key = dir.join("mallory.key");
    let crt = dir.join("mallory.crt");
    let csr = dir.join("mallory.csr");
    let ext = dir.join("ext.cnf");
    std::fs::write(&ext, "extendedKeyUsage=clientAuth\n").expect("ext");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let p = |p: &std::path::Path| p.display().to_string();
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        &p(&key),
    ]);
    run(&[
        "req",
        "-new",
        "-key",
        &p(&key),
        "-subj",
        "/O=auditors/CN=mallory",
        "-out",
        &p(&csr),
    ]);
    run(&[
        "x509",
        "-req",
        "-in",
        &p(&csr),
        "-CA",
        &p(&tls.join("ca.crt")),
        "-CAkey",
        &p(&tls.join("ca.key")),
        "-CAcreateserial",
        "-CAserial",
        &p(&dir.join("ca.srl")),
        "-days",
        "1",
        "-extfile",
        &p(&ext),
        "-out",
        &p(&crt),
    ]);
    s.k(&[
        "config",
        "set-credentials",
        "mallory",
        "--client-certificate",
        &p(&crt),
        "--client-key",
        &p(&key),
    ]);
    let (ok, _, err) = s.kubectl(&["--user=mallory", "get", "pods"]);
    assert!(!ok);
    assert!(
        err.contains("pods is forbidden: User \"mallory\" cannot list resource \"pods\""),
        "{err}"
    );
    s.k(&[
        "create",
        "rolebinding",
        "auditors",
        "--clusterrole=view",
        "--group=auditors",
    ]);
    eventually("the group binding", || {
        s.kubectl(&["--user=mallory", "get", "pods"]).0
    });
    let me = s.k(&[
        "--user=mallory",
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.groups}",
    ]);
    assert!(me.contains("auditors"), "{me}");
    // mallory may not impersonate
    let (ok, _, err) = s.kubectl(&["--user=mallory", "--as=admin", "get", "pods"]);
    assert!(!ok && err.contains("impersonate"), "{err}");
}
