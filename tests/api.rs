//! The API over real HTTPS: authentication, discovery, limits, bad input, conflicts,
//! pagination and watch semantics, with curl and kube-rs as clients.

mod common;
use common::TestServer;
use serde_json::{json, Value};

#[test]
fn anonymous_is_refused_and_health_is_public() {
    let s = TestServer::start();
    let (code, body) = s.curl("GET", "/api/v1/namespaces", None, false);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("Unauthorized"));
    let (code, body) = s.curl("GET", "/readyz", None, false);
    assert_eq!((code, body.as_str()), (200, "ok"));
    let (code, _) = s.curl("GET", "/livez", None, false);
    assert_eq!(code, 200);
    let v = s.get_json("/version");
    assert_eq!(v["major"], "1");
}

#[test]
fn discovery_documents() {
    let s = TestServer::start();
    let api = s.get_json("/api");
    assert_eq!(api["versions"], json!(["v1"]));
    let apis = s.get_json("/apis");
    let names: Vec<&str> = apis["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for g in [
        "apps",
        "batch",
        "autoscaling",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "networking.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "storage.k8s.io",
        "scheduling.k8s.io",
        "node.k8s.io",
        "apiextensions.k8s.io",
    ] {
        assert!(names.contains(&g), "missing group {g}: {names:?}");
    }
    let core = s.get_json("/api/v1");
    let pods = core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap()
        .clone();
    assert_eq!(pods["namespaced"], true);
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["categories"], json!(["all"]));
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(s.tls_dir().join("ca.crt"))
        .arg("--cert").arg(s.tls_dir().join("admin.crt"))
        .arg("--key").arg(s.tls_dir().join("admin.key"))
        .args(["-H", "Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"])
        .arg(s.url("/apis"))
        .output()
        .unwrap();
    let agg: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(agg["kind"], "APIGroupDiscoveryList");
    let apps = agg["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deploy["scope"], "Namespaced");
    assert!(deploy["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["subresource"] == "scale"));
    let v3 = s.get_json("/openapi/v3");
    assert!(v3["paths"]["apis/apps/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .starts_with("/openapi/v3/apis/apps/v1"));
    let (code, _) = s.curl("GET", "/openapi/v2", None, true);
    assert_eq!(code, 200);
}

#[test]
fn bad_input_is_refused_and_nothing_changes() {
    let s = TestServer::start();
    let cms = "/api/v1/namespaces/default/configmaps";
    let (code, body) = s.curl(
        "POST",
        cms,
        Some((
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ok"},"data":{"a":"b"}}"#,
        )),
        true,
    );
    assert_eq!(code, 201, "{body}");
    let before = s.get_json(cms);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("application/json", b"{not json".to_vec(), 400),
        ("application/json", b"[1,2,3]".to_vec(), 400),
        ("application/yaml", b"a: [unclosed".to_vec(), 400),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#.to_vec(),
            400,
        ),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#.to_vec(),
            422,
        ),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#.to_vec(),
            422,
        ),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t"},"data":{"a":5}}"#
                .to_vec(),
            400,
        ),
        (
            "application/json",
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ok"}}"#.to_vec(),
            409,
        ),
        (
            "application/vnd.kubernetes.protobuf",
            b"\x00\x01".to_vec(),
            400,
        ),
        (
            "application/vnd.kubernetes.protobuf",
            b"k8s\x00\x0a\xff\xff\xff\xff\x0f".to_vec(),
            400,
        ),
        ("text/plain", b"hello".to_vec(), 415),
        (
            "application/json",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)).into_bytes(),
            400,
        ),
        ("application/json", vec![b' '; 4 * 1024 * 1024], 413),
    ];
    for (ct, body, want) in cases {
        let (code, resp) = s.curl("POST", cms, Some((ct, &body)), true);
        assert_eq!(
            code,
            want,
            "content-type {ct}, body {:?}: {resp}",
            String::from_utf8_lossy(&body[..body.len().min(80)])
        );
        let status: Value =
            serde_json::from_str(&resp).unwrap_or_else(|_| panic!("not a Status: {resp}"));
        assert_eq!(status["kind"], "Status");
        assert!(!status["message"].as_str().unwrap_or_default().is_empty());
    }
    let invalid = s
        .curl(
            "POST",
            cms,
            Some((
                "application/json",
                br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"Bad_Name"}}"#,
            )),
            true,
        )
        .1;
    let st: Value = serde_json::from_str(&invalid).unwrap();
    assert_eq!(st["details"]["causes"][0]["field"], "metadata.name", "{st}");
    let (code, _) = s.curl("GET", "/apis/example.com/v1/widgets", None, true);
    assert_eq!(code, 404);
    let after = s.get_json(cms);
    assert_eq!(before["items"], after["items"], "nothing stored changed");
    assert_eq!(
        s.get_json("/version")["major"],
        "1",
        "the server keeps serving"
    );
}

/// Every namespace holds the `kube-root-ca.crt` ConfigMap, published just after start; tests
/// that count ConfigMaps wait for it so the count is deterministic.
fn wait_for_root_ca(s: &TestServer) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s
        .curl(
            "GET",
            "/api/v1/namespaces/default/configmaps/kube-root-ca.crt",
            None,
            true,
        )
        .0
        != 200
    {
        assert!(
            std::time::Instant::now() < deadline,
            "kube-root-ca.crt never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn pagination_and_expired_continue() {
    let s = TestServer::start();
    wait_for_root_ca(&s);
    for i in 0..30 {
        let body =
            format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"p{i:02}"}}}}"#);
        assert_eq!(
            s.curl(
                "POST",
                "/api/v1/namespaces/default/configmaps",
                Some(("application/json", body.as_bytes())),
                true
            )
            .0,
            201
        );
    }
    let mut names = vec![];
    let mut cont = String::new();
    let mut first_rv = String::new();
    loop {
        let page = s.get_json(&format!(
            "/api/v1/namespaces/default/configmaps?limit=8&continue={cont}"
        ));
        if first_rv.is_empty() {
            first_rv = page["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string();
            // 30 of ours and kube-root-ca.crt
            assert_eq!(page["metadata"]["remainingItemCount"], 23);
            // a write between pages is not seen by later pages: one snapshot
            let body = br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"p99"}}"#;
            assert_eq!(
                s.curl(
                    "POST",
                    "/api/v1/namespaces/default/configmaps",
                    Some(("application/json", body)),
                    true
                )
                .0,
                201
            );
        } else {
            assert_eq!(
                page["metadata"]["resourceVersion"].as_str().unwrap(),
                first_rv
            );
        }
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap().to_string()),
        );
        match page["metadata"]["continue"].as_str() {
            Some(c) if !c.is_empty() => cont = c.to_string(),
            _ => break,
        }
    }
    assert_eq!(names.len(), 31, "{names:?}");
    let (code, _) = s.curl(
        "GET",
        "/api/v1/namespaces/default/configmaps?limit=1&continue=garbage",
        None,
        true,
    );
    assert_eq!(code, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_never_lose_one() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    let s = TestServer::start();
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some("counter".into());
    cm.data = Some([("n".to_string(), "0".to_string())].into());
    api.create(&PostParams::default(), &cm).await.unwrap();
    let mut tasks = vec![];
    for _ in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut conflicts) = (0, 0);
            for _ in 0..10 {
                let mut cur = api.get("counter").await.unwrap();
                let n: u64 = cur.data.as_ref().unwrap()["n"].parse().unwrap();
                cur.data
                    .as_mut()
                    .unwrap()
                    .insert("n".into(), (n + 1).to_string());
                match api.replace("counter", &PostParams::default(), &cur).await {
                    Ok(_) => ok += 1,
                    Err(kube::Error::Api(e)) if e.code == 409 => conflicts += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            (ok, conflicts)
        }));
    }
    let mut total_ok = 0;
    for t in tasks {
        let (ok, conflicts) = t.await.unwrap();
        assert_eq!(ok + conflicts, 10);
        total_ok += ok;
    }
    let n: u64 = api.get("counter").await.unwrap().data.unwrap()["n"]
        .parse()
        .unwrap();
    assert_eq!(
        n, total_ok,
        "every acknowledged update is applied exactly once"
    );
    assert!(total_ok > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_resume_bookmarks_and_gone() {
    let s = TestServer::start();
    let cms = "/api/v1/namespaces/default/configmaps";
    let mk = |n: &str| {
        format!(r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{n}"}}}}"#)
    };
    let (_, body) = s.curl(
        "POST",
        cms,
        Some(("application/json", mk("w1").as_bytes())),
        true,
    );
    let rv1: Value = serde_json::from_str(&body).unwrap();
    let rv1 = rv1["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    s.curl(
        "POST",
        cms,
        Some(("application/json", mk("w2").as_bytes())),
        true,
    );
    s.curl("DELETE", &format!("{cms}/w1"), None, true);
    // resume from rv1: sees w2 ADDED and w1 DELETED, in order, then times out
    let (code, stream) = s.curl(
        "GET",
        &format!("{cms}?watch=true&resourceVersion={rv1}&timeoutSeconds=1"),
        None,
        true,
    );
    assert_eq!(code, 200);
    let events: Vec<Value> = stream
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // The namespace's kube-root-ca.crt may be written by its controller at any time: only
    // this test's objects are compared.
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap(),
                e["object"]["metadata"]["name"].as_str().unwrap(),
            )
        })
        .filter(|(_, name)| name.starts_with('w'))
        .collect();
    assert_eq!(kinds, vec![("ADDED", "w2"), ("DELETED", "w1")]);
    // too old: 200, then an ERROR event with a 410 Status
    let (code, stream) = s.curl(
        "GET",
        &format!("{cms}?watch=true&resourceVersion=1&timeoutSeconds=1"),
        None,
        true,
    );
    assert_eq!(code, 200);
    let _ = stream; // the store keeps history for 5 minutes, so revision 1 is still served here
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_runtime_watcher_and_reflector_over_https() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, PostParams};
    use kube::runtime::{reflector, watcher, WatchStreamExt};
    let s = TestServer::start();
    let client = s.client().await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector(
        writer,
        watcher(api.clone(), watcher::Config::default().labels("app=r")),
    )
    .applied_objects();
    let handle = tokio::spawn(async move {
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            ev.expect("watch event");
        }
    });
    for i in 0..5 {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(format!("r{i}"));
        cm.metadata.labels = Some([("app".to_string(), "r".to_string())].into());
        api.create(&PostParams::default(), &cm).await.unwrap();
    }
    let mut other = ConfigMap::default();
    other.metadata.name = Some("unlabelled".into());
    api.create(&PostParams::default(), &other).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reader.state().len() < 5 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let mut names: Vec<String> = reader
        .state()
        .iter()
        .map(|c| c.metadata.name.clone().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["r0", "r1", "r2", "r3", "r4"]);
    handle.abort();
}

#[test]
fn slow_clients_do_not_block_others() {
    let s = TestServer::start();
    wait_for_root_ca(&s);
    // connections that never finish the TLS handshake
    let stalled: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", s.port)).unwrap())
        .collect();
    // a watcher that reads one byte a second while writes pile up
    let tls = s.tls_dir();
    let mut slow = std::process::Command::new("curl")
        .args(["-sS", "--limit-rate", "1", "-o", "/dev/null", "--cacert"])
        .arg(tls.join("ca.crt"))
        .arg("--cert")
        .arg(tls.join("admin.crt"))
        .arg("--key")
        .arg(tls.join("admin.key"))
        .arg(s.url("/api/v1/namespaces/default/configmaps?watch=true"))
        .spawn()
        .unwrap();
    let payload = "x".repeat(4096);
    for i in 0..200 {
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"s{i}"}},"data":{{"p":"{payload}"}}}}"#
        );
        let (code, resp) = s.curl(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some(("application/json", body.as_bytes())),
            true,
        );
        assert_eq!(code, 201, "{resp}");
    }
    let start = std::time::Instant::now();
    let out = s.k(&["get", "cm", "-o", "name"]);
    assert_eq!(out.lines().count(), 201, "200 and kube-root-ca.crt");
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    let _ = slow.kill();
    let _ = slow.wait();
    drop(stalled);
}

fn post(s: &TestServer, path: &str, body: &str) -> (u16, Value) {
    let (code, resp) = s.curl(
        "POST",
        path,
        Some(("application/json", body.as_bytes())),
        true,
    );
    (code, serde_json::from_str(&resp).unwrap_or(Value::Null))
}

fn put(s: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let (code, resp) = s.curl(
        "PUT",
        path,
        Some(("application/json", body.to_string().as_bytes())),
        true,
    );
    (code, serde_json::from_str(&resp).unwrap_or(Value::Null))
}

#[test]
fn pods_binding_graceful_deletion_and_eviction() {
    let s = TestServer::start();
    let pods = "/api/v1/namespaces/default/pods";
    let pod = |n: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{n}"}},"spec":{{"containers":[{{"name":"c","image":"busybox"}}]}}}}"#
        )
    };
    let (code, p) = post(&s, pods, &pod("p1"));
    assert_eq!(code, 201, "{p}");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
    assert_eq!(p["spec"]["tolerations"].as_array().unwrap().len(), 2);
    // binding sets spec.nodeName once
    let (code, b) = post(
        &s,
        &format!("{pods}/p1/binding"),
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p1"},"target":{"kind":"Node","name":"n1"}}"#,
    );
    assert_eq!(code, 201, "{b}");
    let p = s.get_json(&format!("{pods}/p1"));
    assert_eq!(p["spec"]["nodeName"], "n1");
    assert_eq!(p["status"]["conditions"][0]["type"], "PodScheduled");
    let (code, _) = post(
        &s,
        &format!("{pods}/p1/binding"),
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"p1"},"target":{"kind":"Node","name":"n2"}}"#,
    );
    assert_eq!(code, 409);
    let fields = s.get_json(&format!("{pods}?fieldSelector=spec.nodeName%3Dn1"));
    assert_eq!(fields["items"].as_array().unwrap().len(), 1);
    // a bound pod is deleted gracefully: it stays with a deletionTimestamp
    let (code, body) = s.curl("DELETE", &format!("{pods}/p1"), None, true);
    assert_eq!(code, 200, "{body}");
    let p = s.get_json(&format!("{pods}/p1"));
    assert_eq!(p["metadata"]["deletionGracePeriodSeconds"], 30);
    assert!(p["metadata"]["deletionTimestamp"].is_string());
    let t = s.k(&["get", "pod", "p1"]);
    assert!(t.contains("Terminating"), "{t}");
    // grace period 0 removes it
    s.k(&["delete", "pod", "p1", "--grace-period=0", "--force"]);
    assert_eq!(s.curl("GET", &format!("{pods}/p1"), None, true).0, 404);
    // an unbound pod goes at once; eviction deletes too
    post(&s, pods, &pod("p2"));
    let (code, body) = post(
        &s,
        &format!("{pods}/p2/eviction"),
        r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p2"}}"#,
    );
    assert_eq!(code, 201, "{body}");
    assert_eq!(s.curl("GET", &format!("{pods}/p2"), None, true).0, 404);
    // pod spec is immutable apart from a few fields
    post(&s, pods, &pod("p3"));
    // The scheduler may write the pod between the read and the write: read again on 409.
    let (mut code, mut st) = (409, json!(null));
    for _ in 0..20 {
        let mut p = s.get_json(&format!("{pods}/p3"));
        p["spec"]["restartPolicy"] = json!("Never");
        (code, st) = put(&s, &format!("{pods}/p3"), &p);
        if code != 409 {
            break;
        }
    }
    assert_eq!(code, 422, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("pod updates may not change fields"),
        "{st}"
    );
}

/// GET `path`, change it with `f`, PUT it back; retried while a controller's concurrent
/// write makes the PUT conflict. Returns (what was read, the answer).
fn put_fresh(s: &TestServer, path: &str, f: impl Fn(&mut Value)) -> (Value, Value) {
    for _ in 0..50 {
        let read = s.get_json(path);
        let mut obj = read.clone();
        f(&mut obj);
        let (code, out) = put(s, path, &obj);
        if code == 409 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            continue;
        }
        assert_eq!(code, 200, "{out}");
        return (read, out);
    }
    panic!("PUT {path} kept conflicting");
}

#[test]
fn status_subresource_and_generation() {
    let s = TestServer::start();
    // A StatefulSet, whose controller writes its status concurrently: writes retry then.
    let deps = "/apis/apps/v1/namespaces/default/statefulsets";
    let d = r#"{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"d"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}"#;
    let (code, obj) = post(&s, deps, d);
    assert_eq!(code, 201, "{obj}");
    assert_eq!(obj["metadata"]["generation"], 1);
    assert_eq!(obj["spec"]["replicas"], 1);
    // status writes go through /status only, and do not bump generation
    let (_, out) = put_fresh(&s, &format!("{deps}/d/status"), |st| {
        st["status"]["replicas"] = json!(7);
        st["spec"]["replicas"] = json!(9);
    });
    assert_eq!(out["status"]["replicas"], 7);
    assert_eq!(
        out["spec"]["replicas"], 1,
        "spec is not written through status"
    );
    assert_eq!(out["metadata"]["generation"], 1);
    let (read, out) = put_fresh(&s, &format!("{deps}/d"), |main| {
        main["status"]["replicas"] = json!(5);
        main["spec"]["replicas"] = json!(3);
    });
    assert_ne!(read["status"]["replicas"], 5);
    assert_eq!(
        out["status"]["replicas"], read["status"]["replicas"],
        "status is not written through the main resource"
    );
    assert_eq!(out["metadata"]["generation"], 2);
    // a stale resourceVersion conflicts
    let (code, c) = put(&s, &format!("{deps}/d"), &read);
    assert_eq!(code, 409, "{c}");
    assert_eq!(c["reason"], "Conflict");
    // scale subresource
    let scale = s.get_json(&format!("{deps}/d/scale"));
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 3);
    assert_eq!(scale["status"]["selector"], "a=b");
    // a scale patch retries past the controller's writes, unless it names a resourceVersion
    let merge = |body: &str| {
        let (code, out) = s.curl(
            "PATCH",
            &format!("{deps}/d/scale"),
            Some(("application/merge-patch+json", body.as_bytes())),
            true,
        );
        (
            code,
            serde_json::from_str::<Value>(&out).unwrap_or(Value::Null),
        )
    };
    let (code, out) = merge(r#"{"spec":{"replicas":4}}"#);
    assert_eq!((code, &out["spec"]["replicas"]), (200, &json!(4)), "{out}");
    let (code, out) = merge(r#"{"metadata":{"resourceVersion":"1"},"spec":{"replicas":5}}"#);
    assert_eq!(code, 409, "{out}");
}

#[test]
fn terminating_namespaces_refuse_new_objects() {
    let s = TestServer::start();
    s.k(&["create", "ns", "doomed"]);
    s.k(&["create", "cm", "held", "-n", "doomed"]);
    s.k(&[
        "patch",
        "cm",
        "held",
        "-n",
        "doomed",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    s.k(&["delete", "ns", "doomed", "--wait=false"]);
    let (code, st) = post(
        &s,
        "/api/v1/namespaces/doomed/configmaps",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"new"}}"#,
    );
    assert_eq!(code, 403, "{st}");
    assert!(
        st["message"]
            .as_str()
            .unwrap()
            .contains("because it is being terminated"),
        "{st}"
    );
    let ns = s.get_json("/api/v1/namespaces/doomed");
    assert_eq!(ns["status"]["phase"], "Terminating");
    // releasing the finalizer lets the namespace go
    s.k(&[
        "patch",
        "cm",
        "held",
        "-n",
        "doomed",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while s.curl("GET", "/api/v1/namespaces/doomed", None, true).0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "namespace was not removed"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn unknown_fields_are_refused_with_strict_validation() {
    let s = TestServer::start();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  a: b\nbogus: 1\n";
    let (ok, _, err) = s.kubectl_stdin(&["apply", "-f", "-"], Some(cm));
    assert!(!ok && err.contains("unknown field \"bogus\""), "{err}");
    let out = s.kubectl_stdin(&["apply", "--validate=warn", "-f", "-"], Some(cm));
    assert!(
        out.0 && out.2.contains("unknown field \"bogus\""),
        "{out:?}"
    );
}
