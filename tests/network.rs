//! Service networking end to end with real pods, real nftables and kubectl: a Deployment of two
//! web servers behind ClusterIP, NodePort and LoadBalancer Services, reached from a client pod
//! by IP, short name and FQDN, and from the host; readiness and scaling reflected in the rules;
//! cluster DNS answering Service, headless, pod-hostname, SRV and ExternalName names. The tests
//! share the host's pod bridge and the proxy's table, so they run one at a time.

mod common;
mod image_support;
mod node_support;

use node_support::{serial, Node};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: busybox
        command: ["sh", "-c"]
        args:
        - |
          mkdir -p /www && hostname > /www/index.html && touch /tmp/ready
          exec httpd -f -p 8080 -h /www
        ports: [{name: http, containerPort: 8080}]
        readinessProbe:
          exec: {command: ["test", "-f", "/tmp/ready"]}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, nodePort: 31380}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 8088, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web-headless}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: outside}
spec:
  type: ExternalName
  externalName: web.default.svc.cluster.local
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#;

/// A host-side HTTP GET with curl: the body, or curl's exit code on failure.
fn curl(url: &str) -> Result<String, i32> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "3", url])
        .output()
        .expect("curl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(out.status.code().unwrap_or(-1))
    }
}

/// GET from inside the client pod; the body, or the error output. A name is resolved first
/// by the pod's resolver (`nslookup`, with the pod's resolv.conf and its search path) and the
/// request then goes to the address it gave: the test image's static busybox cannot resolve
/// names through libc, but its own resolver and `nc` work.
fn wget(n: &Node, url: &str) -> Result<String, String> {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let script = format!(
        r#"h={host}
case "$h" in
  *[a-z]*) h=$(nslookup "$h" | awk '/^Name:/ {{n=1}} n && /^Address/ {{print $NF; exit}}') ;;
esac
[ -n "$h" ] || {{ echo "cannot resolve {host}"; exit 2; }}
printf 'GET / HTTP/1.0
Host: {host}

' | nc -w 3 "$h" 80"#
    );
    let (ok, out, err) = n
        .server
        .kubectl(&["exec", "client", "--", "sh", "-c", &script]);
    match out.split_once("\r\n\r\n") {
        Some((head, body)) if ok && head.starts_with("HTTP/1.") && head.contains(" 200 ") => {
            Ok(body.trim().to_string())
        }
        _ => Err(format!("{out}{err}")),
    }
}

fn nslookup(n: &Node, args: &[&str]) -> String {
    let mut cmd = vec!["exec", "client", "--", "nslookup"];
    cmd.extend_from_slice(args);
    let (_, out, err) = n.server.kubectl(&cmd);
    format!("{out}{err}")
}

/// A resolver on `addr`, port 53 (an upstream of the node's cluster DNS, named in the
/// resolv.conf given with `--resolv-conf`): answers A queries for `name` with `ip`, and
/// NXDOMAIN for anything else, until dropped.
struct Upstream {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start(addr: &str, name: &'static str, ip: std::net::Ipv4Addr) -> Upstream {
        use hickory_proto::op::{Message, ResponseCode};
        use hickory_proto::rr::{rdata::A, RData, Record, RecordType};
        let sock = std::net::UdpSocket::bind((addr, 53)).expect("bind the fake upstream");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((len, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(req) = Message::from_vec(&buf[..len]) else {
                    continue;
                };
                let Some(q) = req.queries.first() else {
                    continue;
                };
                let mut m = Message::response(req.metadata.id, req.op_code);
                m.queries = req.queries.clone();
                m.metadata.recursion_available = true;
                if q.name().to_lowercase().to_ascii() != name {
                    m.metadata.response_code = ResponseCode::NXDomain;
                } else if q.query_type() == RecordType::A {
                    let a = RData::A(A(ip));
                    m.answers.push(Record::from_rdata(q.name().clone(), 30, a));
                }
                let _ = sock.send_to(&m.to_vec().unwrap(), peer);
            }
        });
        Upstream {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ready_endpoints(n: &Node, svc: &str) -> usize {
    n.server
        .kubectl(&[
            "get",
            "endpointslices",
            "-l",
            &format!("kubernetes.io/service-name={svc}"),
            "-o",
            "jsonpath={range .items[*].endpoints[?(@.conditions.ready==true)]}{.addresses[0]} {end}",
        ])
        .1
        .split_whitespace()
        .count()
}

fn web_pods(n: &Node) -> Vec<String> {
    n.server
        .k(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn services_reach_ready_pods_by_ip_name_node_port_and_load_balancer() {
    let _g = serial();
    let n = Node::start("net-1", "10.202.0.0/16");
    let s = &n.server;
    s.k_in(&["apply", "-f", "-"], WEB);
    n.wait_phase("client", "Running");
    n.wait("both web pods in the endpoints", 90, |_| {
        ready_endpoints(&n, "web") == 2
    });
    let pods: BTreeSet<String> = web_pods(&n).into_iter().collect();
    let ip = s.k(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    assert!(ip.starts_with("10.43."), "ClusterIP {ip}");

    // From a pod: by ClusterIP, short name and FQDN; random balancing reaches both pods.
    let mut seen = BTreeSet::new();
    for url in [
        format!("http://{ip}"),
        "http://web".into(),
        "http://web.default.svc.cluster.local".into(),
    ] {
        let body = wget(&n, &url).unwrap_or_else(|e| panic!("{url}: {e}\n{}", s.log()));
        assert!(
            pods.contains(&body),
            "{url} answered {body:?}, pods {pods:?}"
        );
        seen.insert(body);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && Instant::now() < deadline {
        seen.insert(wget(&n, &format!("http://{ip}")).unwrap());
    }
    assert_eq!(seen, pods, "load balancing never reached both pods");

    // From the host: ClusterIP, NodePort on loopback and on the node's address, LoadBalancer.
    let node_ip = s.k(&[
        "get",
        "node",
        "net-1",
        "-o",
        "jsonpath={.status.addresses[?(@.type==\"InternalIP\")].address}",
    ]);
    for url in [
        format!("http://{ip}/"),
        "http://127.0.0.1:31380/".into(),
        format!("http://{node_ip}:31380/"),
    ] {
        let body = curl(&url).unwrap_or_else(|e| panic!("{url}: curl exit {e}"));
        assert!(pods.contains(&body), "{url} answered {body:?}");
    }
    n.wait("the LoadBalancer's address", 30, |s| {
        !s.kubectl(&[
            "get",
            "svc",
            "web-lb",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ])
        .1
        .is_empty()
    });
    let lb = s.k(&[
        "get",
        "svc",
        "web-lb",
        "-o",
        "jsonpath={.status.loadBalancer.ingress[0].ip}",
    ]);
    let body = curl(&format!("http://{lb}:8088/")).expect("LoadBalancer address");
    assert!(pods.contains(&body));

    // In-cluster credentials: the service variables and a mounted token that the API,
    // reached through the `kubernetes` Service's ClusterIP, accepts.
    let env = s.k(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT",
    ]);
    assert_eq!(env.trim(), "10.43.0.1:443");
    let token = s.k(&[
        "exec",
        "client",
        "--",
        "cat",
        "/var/run/secrets/kubernetes.io/serviceaccount/token",
    ]);
    let out = Command::new("curl")
        .args(["-s", "--max-time", "3", "--cacert"])
        .arg(s.tls_dir().join("ca.crt"))
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .arg("https://10.43.0.1/api/v1/namespaces/default/pods")
        .output()
        .expect("curl");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains("system:serviceaccount:default:default"),
        "the API through its ClusterIP with the pod's token: {body}"
    );

    // A pod failing readiness leaves the endpoints; all traffic goes to the other.
    let first = pods.iter().next().unwrap().clone();
    s.k(&["exec", &first, "--", "rm", "/tmp/ready"]);
    n.wait("the unready pod out of the endpoints", 30, |_| {
        ready_endpoints(&n, "web") == 1
    });
    for _ in 0..10 {
        let body = wget(&n, "http://web").unwrap();
        assert_ne!(body, first, "traffic reached a pod failing readiness");
    }

    // Scaled to zero: connections are refused at once, not left to time out.
    s.k(&["scale", "deployment", "web", "--replicas=0"]);
    // Terminating pods still serve (the proxy's fallback) until they are gone.
    n.wait("no endpoints, not even terminating ones", 60, |s| {
        s.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].addresses[0]}",
        ])
        .1
        .trim()
        .is_empty()
    });
    let start = Instant::now();
    let refused = curl(&format!("http://{ip}/"));
    assert_eq!(refused, Err(7), "expected connection refused");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "refusal took {:?}",
        start.elapsed()
    );
    s.k(&["scale", "deployment", "web", "--replicas=1"]);
    n.wait("an endpoint back", 90, |_| ready_endpoints(&n, "web") == 1);
    assert!(wget(&n, "http://web").is_ok());
}

#[test]
fn cluster_dns_answers_services_pods_srv_and_external_names() {
    let _g = serial();
    // The host's resolvers, as `--resolv-conf` names them.
    let files = tempfile::tempdir().unwrap();
    let resolv = files.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.2\n").unwrap();
    let _first = Upstream::start("127.0.0.2", "outside.example.", [192, 0, 2, 77].into());
    let _second = Upstream::start("127.0.0.3", "moved.example.", [192, 0, 2, 78].into());
    let n = Node::start_with(
        "net-2",
        "10.203.0.0/16",
        &["--resolv-conf", resolv.to_str().unwrap()],
    );
    let s = &n.server;
    s.k_in(&["apply", "-f", "-"], WEB);
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Service
metadata: {name: db}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432}]
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, labels: {app: db}}
spec:
  hostname: db-0
  subdomain: db
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#,
    );
    n.wait_phase("client", "Running");
    n.wait_phase("db-0", "Running");
    n.wait("both web pods in the endpoints", 90, |_| {
        ready_endpoints(&n, "web-headless") == 2
    });
    n.wait("db-0 in the endpoints", 60, |_| {
        ready_endpoints(&n, "db") == 1
    });

    let out = nslookup(&n, &["kubernetes.default"]);
    assert!(out.contains("10.43.0.1"), "kubernetes.default:\n{out}");

    let web_ip = s.k(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    let out = nslookup(&n, &["web.default.svc.cluster.local"]);
    assert!(out.contains(&web_ip), "web:\n{out}");

    // Headless: the ready pods' own addresses.
    let pod_ips = s.k(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].status.podIP}",
    ]);
    let out = nslookup(&n, &["web-headless"]);
    for ip in pod_ips.split_whitespace() {
        assert!(out.contains(ip), "web-headless lacks {ip}:\n{out}");
    }

    // A pod with hostname and subdomain, as StatefulSet pods have.
    let db_ip = n.jsonpath("db-0", "{.status.podIP}");
    let out = nslookup(&n, &["db-0.db.default.svc.cluster.local"]);
    assert!(out.contains(&db_ip), "db-0.db:\n{out}");

    // SRV for a named port.
    let out = nslookup(&n, &["-type=SRV", "_pg._tcp.db.default.svc.cluster.local"]);
    assert!(
        out.contains("5432") && out.contains("db-0.db.default.svc.cluster.local"),
        "SRV:\n{out}"
    );

    // ExternalName is a CNAME.
    let out = nslookup(&n, &["-type=CNAME", "outside.default.svc.cluster.local"]);
    assert!(
        out.contains("web.default.svc.cluster.local"),
        "CNAME:\n{out}"
    );

    // Names that do not exist are NXDOMAIN, fast.
    let start = Instant::now();
    let out = nslookup(&n, &["nothing-here.default.svc.cluster.local"]);
    assert!(out.contains("NXDOMAIN"), "missing name:\n{out}");
    assert!(start.elapsed() < Duration::from_secs(3));

    // Names outside the cluster go to the host's resolver; a changed resolv.conf is
    // followed without a restart.
    let out = nslookup(&n, &["outside.example."]);
    assert!(out.contains("192.0.2.77"), "forwarded:\n{out}");
    std::fs::write(&resolv, "nameserver 127.0.0.3\n").unwrap();
    n.wait("the new upstream in use", 15, |_| {
        nslookup(&n, &["moved.example."]).contains("192.0.2.78")
    });

    // A pod with dnsPolicy Default gets the host's resolv.conf, as it is now.
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: hostdns}
spec:
  dnsPolicy: Default
  restartPolicy: Never
  containers:
  - name: c
    image: busybox
    command: ["cat", "/etc/resolv.conf"]
"#,
    );
    n.wait_phase("hostdns", "Succeeded");
    let conf = s.k(&["logs", "hostdns"]);
    assert!(conf.contains("nameserver 127.0.0.3"), "{conf}");
}
