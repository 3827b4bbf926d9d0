//! Cluster DNS against the in-process API: Services, headless Services with hand-written
//! EndpointSlices and ExternalName Services, queried over real UDP and TCP sockets on
//! loopback, with a fake upstream resolver on loopback for everything outside the cluster.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k1s::dns::{handler::query, DnsConfig};
use k1s::server::inprocess::InProcessApi;
use k1s::store::Store;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Client;
use serde_json::json;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

struct Dns {
    client: Client,
    addr: SocketAddr,
    upstream: Arc<Upstream>,
    cancel: CancellationToken,
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A fake upstream resolver: a few names, counting the questions it gets.
struct Upstream {
    addr: SocketAddr,
    asked: AtomicUsize,
}

fn upstream_answer(req: &Message, tcp: bool) -> Message {
    let q = &req.queries[0];
    let mut m = Message::response(req.metadata.id, req.op_code);
    m.queries = req.queries.clone();
    m.metadata.recursion_available = true;
    let name = q.name().to_lowercase().to_ascii();
    let zone = Name::from_ascii("example.com.").unwrap();
    let rec = |rdata| Record::from_rdata(q.name().clone(), 60, rdata);
    match (name.as_str(), q.query_type()) {
        ("example.com." | "www.example.com.", RecordType::A) => {
            m.answers.push(rec(RData::A(A::new(192, 0, 2, 80))));
        }
        ("big.example.com.", RecordType::TXT) => {
            if tcp {
                for i in 0..40 {
                    m.answers.push(rec(RData::TXT(TXT::new(vec![format!(
                        "record {i} padded to make the answer too long for one udp packet"
                    )]))));
                }
            } else {
                m.metadata.truncation = true;
            }
        }
        _ => {
            m.metadata.response_code = ResponseCode::NXDomain;
            let soa = SOA::new(zone.clone(), zone.clone(), 1, 60, 60, 60, 30);
            m.authorities
                .push(Record::from_rdata(zone, 300, RData::SOA(soa)));
        }
    }
    m
}

/// A UDP socket and a TCP listener on one free loopback port. The port the kernel picks for
/// UDP may be taken for TCP by another test meanwhile: then another port is tried.
async fn socket_pair() -> (UdpSocket, TcpListener, SocketAddr) {
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = udp.local_addr().unwrap();
        match TcpListener::bind(addr).await {
            Ok(tcp) => return (udp, tcp, addr),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("binding tcp {addr}: {e}"),
        }
    }
    panic!("no loopback port free for both UDP and TCP");
}

async fn fake_upstream() -> Arc<Upstream> {
    let (udp, tcp, addr) = socket_pair().await;
    let up = Arc::new(Upstream {
        addr,
        asked: AtomicUsize::new(0),
    });
    let u = up.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let (n, peer) = udp.recv_from(&mut buf).await.unwrap();
            u.asked.fetch_add(1, Ordering::SeqCst);
            let req = Message::from_vec(&buf[..n]).unwrap();
            let bytes = upstream_answer(&req, false).to_vec().unwrap();
            udp.send_to(&bytes, peer).await.unwrap();
        }
    });
    let u = up.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = tcp.accept().await.unwrap();
            u.asked.fetch_add(1, Ordering::SeqCst);
            let len = s.read_u16().await.unwrap();
            let mut buf = vec![0u8; usize::from(len)];
            s.read_exact(&mut buf).await.unwrap();
            let req = Message::from_vec(&buf).unwrap();
            let bytes = upstream_answer(&req, true).to_vec().unwrap();
            s.write_all(&(bytes.len() as u16).to_be_bytes())
                .await
                .unwrap();
            s.write_all(&bytes).await.unwrap();
        }
    });
    up
}

async fn start(configure: impl FnOnce(&mut DnsConfig)) -> Dns {
    let client = InProcessApi::builder(Store::memory())
        .namespaces(&["default", "kube-system"])
        .build()
        .await
        .unwrap()
        .client;
    let upstream = fake_upstream().await;
    let (udp, tcp, addr) = socket_pair().await;
    let mut config = DnsConfig::new("cluster.local");
    config.upstreams = vec![upstream.addr];
    config.upstream_timeout = Duration::from_millis(500);
    configure(&mut config);
    let cancel = CancellationToken::new();
    tokio::spawn(k1s::dns::run(
        client.clone(),
        config,
        udp,
        tcp,
        cancel.clone(),
    ));
    let dns = Dns {
        client,
        addr,
        upstream,
        cancel,
    };
    // synced once the zone apex answers
    eventually(
        &dns,
        "the zone to sync",
        |m| m.metadata.response_code == ResponseCode::NoError,
        "cluster.local.",
        RecordType::SOA,
    )
    .await;
    dns
}

async fn eventually(
    dns: &Dns,
    what: &str,
    ok: impl Fn(&Message) -> bool,
    name: &str,
    qtype: RecordType,
) -> Message {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = udp(dns.addr, name, qtype).await;
        if ok(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {m}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn exchange_udp(addr: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    exchange_udp_within(addr, bytes, Duration::from_secs(3)).await
}

async fn exchange_udp_within(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    sock.send_to(bytes, addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

async fn udp_with(addr: SocketAddr, name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let q = query(4242, &Name::from_ascii(name).unwrap(), qtype, edns);
    let bytes = exchange_udp(addr, &q.to_vec().unwrap())
        .await
        .unwrap_or_else(|| panic!("no answer for {name} {qtype}"));
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.id, 4242);
    m
}

async fn udp(addr: SocketAddr, name: &str, qtype: RecordType) -> Message {
    udp_with(addr, name, qtype, Some(1232)).await
}

async fn tcp_exchange(stream: &mut TcpStream, bytes: &[u8]) -> Message {
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(bytes).await.unwrap();
    let len = stream.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn tcp_query(name: &str, qtype: RecordType) -> Vec<u8> {
    query(7, &Name::from_ascii(name).unwrap(), qtype, None)
        .to_vec()
        .unwrap()
}

fn ips(m: &Message) -> Vec<String> {
    addresses(&m.answers)
}

fn addresses(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            RData::AAAA(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    v.sort();
    v
}

fn rdata_strings(records: &[Record]) -> Vec<String> {
    let mut v: Vec<String> = records.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

fn assert_nxdomain(m: &Message) {
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m}");
    assert!(m.answers.is_empty(), "{m}");
    assert!(m.metadata.authoritative);
    assert!(matches!(m.authorities[0].data, RData::SOA(_)), "{m}");
}

fn assert_nodata(m: &Message) {
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m}");
    assert!(m.answers.is_empty(), "{m}");
    let soa = &m.authorities[0];
    match &soa.data {
        RData::SOA(s) => assert_eq!((soa.ttl, s.minimum), (5, 5)),
        other => panic!("not a SOA: {other:?}"),
    }
}

async fn create<K>(client: &Client, ns: &str, obj: serde_json::Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let obj: K = serde_json::from_value(obj).unwrap();
    api.create(&PostParams::default(), &obj).await.unwrap();
}

/// The services of most tests: a ClusterIP service, headless ones, ExternalNames.
async fn populate(c: &Client) {
    create::<Service>(
        c,
        "default",
        json!({
            "metadata": {"name": "web"},
            "spec": {"clusterIP": "10.43.5.5", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP"},
                {"name": "dns", "port": 53, "protocol": "UDP"}
            ]}
        }),
    )
    .await;
    create::<Service>(c, "kube-system", json!({
        "metadata": {"name": "kube-dns"},
        "spec": {"clusterIP": "10.43.0.10", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}
    }))
    .await;
    create::<Service>(
        c,
        "default",
        json!({
            "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}
        }),
    )
    .await;
    create::<EndpointSlice>(
        c,
        "default",
        json!({
            "metadata": {"name": "db-abc", "labels": {"kubernetes.io/service-name": "db"}},
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": ["10.42.0.10"], "hostname": "db-0", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.11"], "hostname": "db-1", "conditions": {"ready": true}},
                {"addresses": ["10.42.0.12"], "hostname": "db-2", "conditions": {"ready": false}},
                {"addresses": ["10.42.0.13"], "conditions": {}}
            ]
        }),
    )
    .await;
    create::<Service>(
        c,
        "default",
        json!({
            "metadata": {"name": "empty"},
            "spec": {"clusterIP": "None", "ports": [{"name": "x", "port": 1}]}
        }),
    )
    .await;
    create::<Service>(
        c,
        "default",
        json!({
            "metadata": {"name": "early"},
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": true, "ports": [{"port": 9}]}
        }),
    )
    .await;
    create::<EndpointSlice>(
        c,
        "default",
        json!({
            "metadata": {"name": "early-1", "labels": {"kubernetes.io/service-name": "early"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.42.1.7"], "conditions": {"ready": false}}]
        }),
    )
    .await;
    create::<Service>(
        c,
        "default",
        json!({
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "www.example.com"}
        }),
    )
    .await;
    create::<Service>(
        c,
        "default",
        json!({
            "metadata": {"name": "alias"},
            "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}
        }),
    )
    .await;
}

async fn populated() -> Dns {
    let dns = start(|_| {}).await;
    populate(&dns.client).await;
    eventually(
        &dns,
        "services",
        |m| !m.answers.is_empty(),
        "alias.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    eventually(
        &dns,
        "slices",
        |m| m.answers.len() == 1,
        "early.default.svc.cluster.local.",
        RecordType::A,
    )
    .await;
    dns
}

const Z: &str = "default.svc.cluster.local.";

#[tokio::test]
async fn services_answer_as_the_dns_specification_says() {
    let dns = populated().await;
    let a = dns.addr;
    let m = udp(a, &format!("web.{Z}"), RecordType::A).await;
    assert_eq!(ips(&m), ["10.43.5.5"]);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, 5);
    assert_nodata(&udp(a, &format!("web.{Z}"), RecordType::AAAA).await);
    assert_nodata(&udp(a, &format!("web.{Z}"), RecordType::MX).await);

    // the case of the question is kept (resolvers may randomize it)
    let m = udp(a, "WeB.DeFault.svc.Cluster.Local.", RecordType::A).await;
    assert_eq!(
        m.answers[0].name.to_ascii(),
        "WeB.DeFault.svc.Cluster.Local."
    );

    let m = udp(a, &format!("_http._tcp.web.{Z}"), RecordType::SRV).await;
    assert_eq!(rdata_strings(&m.answers), [format!("0 100 80 web.{Z}")]);
    assert_eq!(addresses(&m.additionals), ["10.43.5.5"]);
    let m = udp(a, &format!("_dns._udp.web.{Z}"), RecordType::SRV).await;
    assert_eq!(rdata_strings(&m.answers), [format!("0 100 53 web.{Z}")]);
    assert_nxdomain(&udp(a, &format!("_http._udp.web.{Z}"), RecordType::SRV).await);
    assert_nxdomain(&udp(a, &format!("_nope._tcp.web.{Z}"), RecordType::SRV).await);

    // headless: the ready endpoints only
    let m = udp(a, &format!("db.{Z}"), RecordType::A).await;
    assert_eq!(ips(&m), ["10.42.0.10", "10.42.0.11", "10.42.0.13"]);
    assert_eq!(
        ips(&udp(a, &format!("db-0.db.{Z}"), RecordType::A).await),
        ["10.42.0.10"]
    );
    assert_eq!(
        ips(&udp(a, &format!("10-42-0-13.db.{Z}"), RecordType::A).await),
        ["10.42.0.13"]
    );
    assert_nxdomain(&udp(a, &format!("db-2.db.{Z}"), RecordType::A).await);
    assert_nxdomain(&udp(a, &format!("db-9.db.{Z}"), RecordType::A).await);
    let m = udp(a, &format!("_pg._tcp.db.{Z}"), RecordType::SRV).await;
    assert_eq!(
        rdata_strings(&m.answers),
        [
            format!("0 33 5432 10-42-0-13.db.{Z}"),
            format!("0 33 5432 db-0.db.{Z}"),
            format!("0 33 5432 db-1.db.{Z}"),
        ]
    );
    assert_eq!(m.additionals.len(), 3);
    let glue = m
        .additionals
        .iter()
        .find(|r| r.name.to_ascii() == format!("db-1.db.{Z}"))
        .unwrap();
    assert_eq!(glue.data.to_string(), "10.42.0.11");
    // a headless service without ready endpoints does not exist (the specification)
    assert_nxdomain(&udp(a, &format!("empty.{Z}"), RecordType::A).await);
    // publishNotReadyAddresses
    assert_eq!(
        ips(&udp(a, &format!("early.{Z}"), RecordType::A).await),
        ["10.42.1.7"]
    );

    // ExternalName inside the zone is followed here, outside it upstream
    let m = udp(a, &format!("alias.{Z}"), RecordType::A).await;
    assert_eq!(m.answers[0].data.to_string(), format!("web.{Z}"));
    assert_eq!(ips(&m), ["10.43.5.5"]);
    let m = udp(a, &format!("ext.{Z}"), RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers[0].data.to_string(), "www.example.com.");
    assert_eq!(ips(&m), ["192.0.2.80"]);
    let m = udp(a, &format!("ext.{Z}"), RecordType::CNAME).await;
    assert_eq!(m.answers.len(), 1);
    assert_nxdomain(&udp(a, &format!("x.ext.{Z}"), RecordType::A).await);

    // PTR for ClusterIPs and endpoints
    let m = udp(a, "5.5.43.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata_strings(&m.answers), [format!("web.{Z}")]);
    let m = udp(a, "10.0.42.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata_strings(&m.answers), [format!("db-0.db.{Z}")]);
    let m = udp(a, "13.0.42.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata_strings(&m.answers), [format!("10-42-0-13.db.{Z}")]);

    // pods insecure
    let m = udp(a, "10-42-3-4.default.pod.cluster.local.", RecordType::A).await;
    assert_eq!(ips(&m), ["10.42.3.4"]);
    let m = udp(a, "fd00--5.default.pod.cluster.local.", RecordType::AAAA).await;
    assert_eq!(ips(&m), ["fd00::5"]);
    assert_nxdomain(&udp(a, "10-42-3-4.nope.pod.cluster.local.", RecordType::A).await);
    assert_nxdomain(&udp(a, "not-an-ip.default.pod.cluster.local.", RecordType::A).await);

    // the apex
    let m = udp(a, "cluster.local.", RecordType::SOA).await;
    assert!(matches!(m.answers[0].data, RData::SOA(_)));
    let m = udp(a, "cluster.local.", RecordType::NS).await;
    assert_eq!(m.answers[0].data.to_string(), "ns.dns.cluster.local.");
    assert_eq!(m.additionals[0].data.to_string(), "10.43.0.10");
    let m = udp(a, "dns-version.cluster.local.", RecordType::TXT).await;
    match &m.answers[0].data {
        RData::TXT(t) => assert_eq!(&*t.txt_data[0], b"1.1.0"),
        other => panic!("not a TXT: {other:?}"),
    }
    assert_nodata(&udp(a, "cluster.local.", RecordType::A).await);

    // over TCP, several queries on one connection
    let mut s = TcpStream::connect(a).await.unwrap();
    let m = tcp_exchange(&mut s, &tcp_query(&format!("web.{Z}"), RecordType::A)).await;
    assert_eq!(ips(&m), ["10.43.5.5"]);
    let m = tcp_exchange(&mut s, &tcp_query(&format!("db.{Z}"), RecordType::A)).await;
    assert_eq!(ips(&m).len(), 3);
    let m = tcp_exchange(&mut s, &tcp_query("example.com.", RecordType::A)).await;
    assert_eq!(ips(&m), ["192.0.2.80"]);
}

#[tokio::test]
async fn search_path_names_are_nxdomain_and_existing_names_nodata() {
    let dns = populated().await;
    let a = dns.addr;
    // what a pod in `default` with ndots:5 tries for `web.default` and for `example.com`
    for name in [
        "web.default.default.svc.cluster.local.",
        "example.com.default.svc.cluster.local.",
        "example.com.svc.cluster.local.",
        "example.com.cluster.local.",
        "web.nope.svc.cluster.local.",
        "a.b.c.d.web.default.svc.cluster.local.",
        "x.cluster.local.",
    ] {
        assert_nxdomain(&udp(a, name, RecordType::A).await);
        assert_nxdomain(&udp(a, name, RecordType::AAAA).await);
    }
    // names that exist without records of the type
    for name in [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "pod.cluster.local.",
        "default.pod.cluster.local.",
    ] {
        assert_nodata(&udp(a, name, RecordType::A).await);
    }
    assert_nxdomain(&udp(a, "nope.svc.cluster.local.", RecordType::A).await);
}

#[tokio::test]
async fn changes_are_visible_without_restart() {
    let dns = populated().await;
    let name = format!("late.{Z}");
    assert_nxdomain(&udp(dns.addr, &name, RecordType::A).await);
    create::<Service>(
        &dns.client,
        "default",
        json!({
            "metadata": {"name": "late"},
            "spec": {"clusterIP": "10.43.9.9", "ports": [{"port": 80}]}
        }),
    )
    .await;
    let m = eventually(
        &dns,
        "a new service",
        |m| !m.answers.is_empty(),
        &name,
        RecordType::A,
    )
    .await;
    assert_eq!(ips(&m), ["10.43.9.9"]);

    // an endpoint added to a slice
    let slices: Api<EndpointSlice> = Api::namespaced(dns.client.clone(), "default");
    let mut s = slices.get("db-abc").await.unwrap();
    s.endpoints.push(
        serde_json::from_value(json!({"addresses": ["10.42.0.20"], "hostname": "db-3"})).unwrap(),
    );
    slices
        .replace("db-abc", &PostParams::default(), &s)
        .await
        .unwrap();
    eventually(
        &dns,
        "a new endpoint",
        |m| !m.answers.is_empty(),
        &format!("db-3.db.{Z}"),
        RecordType::A,
    )
    .await;

    let services: Api<Service> = Api::namespaced(dns.client.clone(), "default");
    services
        .delete("late", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        &dns,
        "the service gone",
        |m| m.metadata.response_code == ResponseCode::NXDomain,
        &name,
        RecordType::A,
    )
    .await;
    eventually(
        &dns,
        "its PTR gone",
        |m| m.answers.is_empty(),
        "9.9.43.10.in-addr.arpa.",
        RecordType::PTR,
    )
    .await;
}

#[tokio::test]
async fn forwards_outside_names_and_caches_the_answers() {
    let dns = start(|_| {}).await;
    let a = dns.addr;
    let asked = || dns.upstream.asked.load(Ordering::SeqCst);
    let m = udp(a, "example.com.", RecordType::A).await;
    assert_eq!(ips(&m), ["192.0.2.80"]);
    assert!(!m.metadata.authoritative);
    assert!(m.metadata.recursion_available);
    assert_eq!(asked(), 1);
    let m = udp(a, "EXAMPLE.com.", RecordType::A).await;
    assert_eq!(ips(&m), ["192.0.2.80"]);
    assert!(m.answers[0].ttl <= 30, "capped at 30 s");
    assert_eq!(asked(), 1, "the second query is served from the cache");

    // negative answers are cached per the SOA minimum
    let m = udp(a, "missing.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let m = udp(a, "missing.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.authorities[0].ttl <= 30);
    assert_eq!(asked(), 2);

    // an upstream answer truncated over UDP is fetched again over TCP; the client gets
    // TC over plain UDP and the whole answer over TCP
    let m = udp_with(a, "big.example.com.", RecordType::TXT, None).await;
    assert!(m.metadata.truncation, "{m}");
    assert_eq!(asked(), 4, "once over UDP, once over TCP");
    let mut s = TcpStream::connect(a).await.unwrap();
    let m = tcp_exchange(&mut s, &tcp_query("big.example.com.", RecordType::TXT)).await;
    assert_eq!(m.answers.len(), 40);
    assert!(!m.metadata.truncation);
    let m = udp_with(a, "big.example.com.", RecordType::TXT, Some(4096)).await;
    assert_eq!(m.answers.len(), 40);
    assert_eq!(asked(), 4);
}

#[tokio::test]
async fn upstream_down_is_servfail() {
    // a port nobody answers on
    let dead = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    let dns = start(move |c| {
        c.upstreams = vec![dead_addr];
        c.upstream_timeout = Duration::from_millis(200);
    })
    .await;
    let started = Instant::now();
    let m = udp(dns.addr, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_secs(2));
    // cluster names do not depend on upstreams
    assert_nodata(&udp(dns.addr, "cluster.local.", RecordType::A).await);
    drop(dead);
}

#[tokio::test]
async fn large_answers_are_truncated_over_udp() {
    let dns = start(|_| {}).await;
    create::<Service>(
        &dns.client,
        "default",
        json!({
            "metadata": {"name": "many"},
            "spec": {"clusterIP": "None", "ports": [{"name": "p", "port": 1}]}
        }),
    )
    .await;
    let endpoints: Vec<_> = (0..60)
        .map(|i| json!({"addresses": [format!("10.42.{}.{}", i / 200, i % 200 + 1)]}))
        .collect();
    create::<EndpointSlice>(
        &dns.client,
        "default",
        json!({
            "metadata": {"name": "many-1", "labels": {"kubernetes.io/service-name": "many"}},
            "addressType": "IPv4",
            "ports": [{"name": "p", "port": 1}],
            "endpoints": endpoints
        }),
    )
    .await;
    let name = format!("many.{Z}");
    let m = eventually(
        &dns,
        "60 endpoints",
        |m| m.answers.len() == 60,
        &name,
        RecordType::A,
    )
    .await;
    assert!(!m.metadata.truncation);
    let q = query(1, &Name::from_ascii(&name).unwrap(), RecordType::A, None);
    let bytes = exchange_udp(dns.addr, &q.to_vec().unwrap()).await.unwrap();
    assert!(bytes.len() <= 512, "{} bytes", bytes.len());
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert!(!m.answers.is_empty() && m.answers.len() < 60);
    let mut s = TcpStream::connect(dns.addr).await.unwrap();
    let m = tcp_exchange(&mut s, &tcp_query(&name, RecordType::A)).await;
    assert_eq!(m.answers.len(), 60);
    let m = tcp_exchange(
        &mut s,
        &tcp_query(&format!("_p._tcp.{name}"), RecordType::SRV),
    )
    .await;
    assert_eq!(m.answers.len(), 60);
    assert_eq!(m.additionals.len(), 60);
}

fn header(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        v.extend_from_slice(&c.to_be_bytes());
    }
    v
}

fn question(name: &[&str], qtype: u16, class: u16) -> Vec<u8> {
    let mut v = Vec::new();
    for l in name {
        v.push(l.len() as u8);
        v.extend_from_slice(l.as_bytes());
    }
    v.push(0);
    v.extend_from_slice(&qtype.to_be_bytes());
    v.extend_from_slice(&class.to_be_bytes());
    v
}

fn rcode(bytes: &[u8]) -> u8 {
    bytes[3] & 0x0f
}

#[tokio::test]
async fn hostile_input_gets_errors_and_the_server_keeps_serving() {
    let dns = populated().await;
    let a = dns.addr;
    let web = ["web", "default", "svc", "cluster", "local"];
    // too short to carry an ID, and responses: no answer
    let quiet = Duration::from_millis(500);
    assert!(exchange_udp_within(a, &[1, 2, 3], quiet).await.is_none());
    let mut resp = header(1, 0x8000, [1, 0, 0, 0]);
    resp.extend(question(&web, 1, 1));
    assert!(exchange_udp_within(a, &resp, quiet).await.is_none());

    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("no question", header(2, 0x0100, [0, 0, 0, 0]), 1),
        (
            "two questions",
            {
                let mut p = header(3, 0x0100, [2, 0, 0, 0]);
                p.extend(question(&web, 1, 1));
                p.extend(question(&web, 28, 1));
                p
            },
            1,
        ),
        (
            "counts beyond the packet",
            {
                let mut p = header(4, 0x0100, [1, 5, 0, 0]);
                p.extend(question(&web, 1, 1));
                p
            },
            1,
        ),
        (
            "a compression loop",
            {
                let mut p = header(5, 0x0100, [1, 0, 0, 0]);
                p.extend([0xc0, 12, 0, 1, 0, 1]);
                p
            },
            1,
        ),
        (
            "a label longer than 63",
            {
                let mut p = header(6, 0x0100, [1, 0, 0, 0]);
                let long = "a".repeat(64);
                p.extend(question(&[long.as_str(), "local"], 1, 1));
                p
            },
            1,
        ),
        (
            "a name longer than 255",
            {
                let mut p = header(7, 0x0100, [1, 0, 0, 0]);
                let label = "b".repeat(63);
                p.extend(question(&[label.as_str(); 5], 1, 1));
                p
            },
            1,
        ),
        (
            "a status opcode",
            {
                let mut p = header(8, 0x1000, [1, 0, 0, 0]);
                p.extend(question(&web, 1, 1));
                p
            },
            4,
        ),
        (
            "a notify",
            {
                let mut p = header(9, 0x2000, [1, 0, 0, 0]);
                p.extend(question(&web, 6, 1));
                p
            },
            4,
        ),
        (
            "a zone transfer",
            {
                let mut p = header(10, 0x0000, [1, 0, 0, 0]);
                p.extend(question(&["cluster", "local"], 252, 1));
                p
            },
            5,
        ),
        (
            "the chaos class",
            {
                let mut p = header(11, 0x0100, [1, 0, 0, 0]);
                p.extend(question(&["version", "bind"], 16, 3));
                p
            },
            5,
        ),
    ];
    for (what, packet, want) in &cases {
        let got = exchange_udp(a, packet)
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(&got[..2], &packet[..2], "{what}: the ID");
        assert!(got[2] & 0x80 != 0, "{what}: not a response");
        assert_eq!(rcode(&got), *want, "{what}");
    }
    // EDNS version 1: BADVERS (16), whose upper bits live in the OPT record
    let mut q = query(
        12,
        &Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
        RecordType::A,
        Some(1232),
    );
    q.edns.as_mut().unwrap().set_version(1);
    let got = Message::from_vec(&exchange_udp(a, &q.to_vec().unwrap()).await.unwrap()).unwrap();
    // 16 is both BADVERS and BADSIG; only the former exists outside TSIG
    assert_eq!(u16::from(got.metadata.response_code), 16);
    assert!(got.edns.is_some());

    // random garbage
    let mut seed = 0x2545F4914F6CDD1Du64;
    for _ in 0..300 {
        let len = (seed % 300) as usize + 12;
        let mut p = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            p.push(seed as u8);
        }
        p[2] &= 0x7f;
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        sock.send_to(&p, a).await.unwrap();
    }

    // TCP: a length with too little behind it, then a close; and one query too long for
    // any name, and a connection past the idle timeout
    let mut s = TcpStream::connect(a).await.unwrap();
    s.write_all(&[0x01, 0x00, 1, 2, 3]).await.unwrap();
    drop(s);
    let mut s = TcpStream::connect(a).await.unwrap();
    let mut p = header(13, 0x0100, [1, 0, 0, 0]);
    p.extend(vec![63u8; 600]);
    s.write_all(&(p.len() as u16).to_be_bytes()).await.unwrap();
    s.write_all(&p).await.unwrap();
    let len = s.read_u16().await.unwrap();
    let mut buf = vec![0u8; usize::from(len)];
    s.read_exact(&mut buf).await.unwrap();
    assert_eq!(rcode(&buf), 1);

    // still serving, over both transports
    assert_eq!(
        ips(&udp(a, &format!("web.{Z}"), RecordType::A).await),
        ["10.43.5.5"]
    );
    let m = tcp_exchange(&mut s, &tcp_query(&format!("web.{Z}"), RecordType::A)).await;
    assert_eq!(ips(&m), ["10.43.5.5"]);
}

#[tokio::test]
async fn tcp_connections_are_bounded_and_idle_ones_closed() {
    let dns = start(|c| {
        c.max_tcp_connections = 2;
        c.tcp_idle_timeout = Duration::from_millis(300);
    })
    .await;
    let a = dns.addr;
    let mut first = TcpStream::connect(a).await.unwrap();
    let mut second = TcpStream::connect(a).await.unwrap();
    tcp_exchange(&mut first, &tcp_query("cluster.local.", RecordType::SOA)).await;
    tcp_exchange(&mut second, &tcp_query("cluster.local.", RecordType::SOA)).await;
    // a third is closed at once while two are open
    let mut third = TcpStream::connect(a).await.unwrap();
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(2), third.read(&mut buf))
        .await
        .expect("the third connection is closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    // idle connections are closed, which frees their slots
    let n = tokio::time::timeout(Duration::from_secs(2), first.read(&mut buf))
        .await
        .expect("idle connections are closed")
        .unwrap_or(0);
    assert_eq!(n, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut fourth = TcpStream::connect(a).await.unwrap();
    let m = tcp_exchange(&mut fourth, &tcp_query("cluster.local.", RecordType::SOA)).await;
    assert_eq!(m.answers.len(), 1);
}
