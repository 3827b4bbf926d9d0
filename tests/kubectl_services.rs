//! End-to-end: Services with the real kubectl against a real `k1s server` (control plane
//! only): ClusterIP and NodePort allocation as kubectl shows it, the 422 of a taken node
//! port, EndpointSlices and Endpoints from a pod, and the default Services.

mod common;
use common::TestServer;
use serde_json::Value;
use std::time::{Duration, Instant};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// Run `f` until it returns Some, or panic after 15 s.
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn services_with_kubectl() {
    let s = TestServer::start();
    s.k(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip = s.k(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43."), "{ip}");
    let table = s.k(&["get", "svc"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("web "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("ClusterIP") && row.contains(&ip) && row.contains("80/TCP"),
        "{row}"
    );
    assert!(
        table.contains("kubernetes") && table.contains("10.43.0.1"),
        "{table}"
    );

    // The default Services.
    let k = s.k(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].port}",
    ]);
    assert_eq!(k, "10.43.0.1 443");
    let d = s.k(&[
        "-n",
        "kube-system",
        "get",
        "svc",
        "kube-dns",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(d, "10.43.0.10");
    let ep = s.k(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].ports[0].port}",
    ]);
    assert_eq!(ep, s.port.to_string());

    // A pod the Service selects, Running and Ready as a kubelet would report it.
    s.k(&[
        "run",
        "web-1",
        "--image=busybox",
        "--labels=app=web",
        "--port=8080",
    ]);
    let status = r#"{"status":{"phase":"Running","podIP":"10.42.0.7","podIPs":[{"ip":"10.42.0.7"}],
        "conditions":[{"type":"Ready","status":"True"}]}}"#;
    s.k(&[
        "patch",
        "pod",
        "web-1",
        "--subresource=status",
        "--type=merge",
        "-p",
        status,
    ]);
    let slice = eventually("the pod in an EndpointSlice", || {
        let out = s.k(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "json",
        ]);
        let v = json(&out);
        let items = v["items"].as_array()?.clone();
        (items.len() == 1 && items[0]["endpoints"][0]["addresses"][0] == "10.42.0.7")
            .then(|| items[0].clone())
    });
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
    let table = s.k(&["get", "endpointslices"]);
    assert!(
        table.contains("10.42.0.7") && table.contains("IPv4"),
        "{table}"
    );
    let eps = eventually("the pod in Endpoints", || {
        let out = s.k(&["get", "endpoints", "web"]);
        out.contains("10.42.0.7:8080").then_some(out)
    });
    assert!(eps.starts_with("NAME"), "{eps}");

    // Node ports: a chosen one, then the same again.
    s.k(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    let np = s.k(&[
        "get",
        "svc",
        "np",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    assert_eq!(np, "30080");
    let (ok, _, err) = s.kubectl(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80:8080",
        "--node-port=30080",
    ]);
    assert!(!ok);
    assert!(
        err.contains("Service \"np2\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"),
        "{err}"
    );
    let (ok, _, err) = s.kubectl(&[
        "create",
        "service",
        "clusterip",
        "dup",
        "--tcp=80",
        "--clusterip=10.43.0.1",
    ]);
    assert!(!ok);
    assert!(
        err.contains("failed to allocate IP 10.43.0.1: provided IP is already allocated"),
        "{err}"
    );
    let table = s.k(&["get", "svc", "np"]);
    assert!(table.contains("80:30080/TCP"), "{table}");

    // Deleted, then written again by the server.
    s.k(&["delete", "svc", "kubernetes"]);
    eventually("kubernetes repaired", || {
        let (ok, out, _) = s.kubectl(&[
            "get",
            "svc",
            "kubernetes",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ]);
        (ok && out == "10.43.0.1").then_some(())
    });
}

#[test]
fn node_port_range_flag() {
    let s = TestServer::start_with(&[
        "--disable-agent",
        "--service-node-port-range",
        "31000-31010",
    ]);
    let (ok, _, err) = s.kubectl(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80",
        "--node-port=30080",
    ]);
    assert!(!ok);
    assert!(
        err.contains(
            "provided port is not in the valid range. The range of valid ports is 31000-31010"
        ),
        "{err}"
    );
    s.k(&["create", "service", "nodeport", "np", "--tcp=80"]);
    let np: u16 = s
        .k(&[
            "get",
            "svc",
            "np",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .unwrap();
    assert!((31000..=31010).contains(&np), "{np}");
}
