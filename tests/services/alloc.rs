//! ClusterIP and node port allocation in the registry: explicit and dynamic values,
//! conflicts and ranges with upstream's 422 texts, type changes, concurrency, a reopened
//! sled store, dry run.

use super::*;
use k1s::registry::{ListOptions, ServiceConfig, WriteOptions};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::collections::HashSet;
use std::net::Ipv4Addr;

fn svc(name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
}

fn http() -> Value {
    json!([{"name": "http", "port": 80, "targetPort": 8080}])
}

async fn create(api: &Api<Service>, name: &str, spec: Value) -> Result<Service, kube::Error> {
    api.create(&PostParams::default(), &svc(name, spec)).await
}

fn api_error(r: Result<Service, kube::Error>) -> (u16, String) {
    match r {
        Err(kube::Error::Api(e)) => (e.code, e.message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn spec(s: &Service) -> Value {
    serde_json::to_value(s.spec.as_ref().unwrap()).unwrap()
}

#[tokio::test]
async fn cluster_ips_are_allocated_explicit_ones_honoured_conflicts_refused() {
    let c = cluster().await;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let a = create(
        &api,
        "a",
        json!({"ports": http(), "selector": {"app": "a"}}),
    )
    .await
    .unwrap();
    let sp = spec(&a);
    let ip: Ipv4Addr = sp["clusterIP"].as_str().unwrap().parse().unwrap();
    assert_eq!(sp["clusterIPs"], json!([ip.to_string()]));
    assert_eq!(sp["ipFamilies"], json!(["IPv4"]));
    assert_eq!(sp["ipFamilyPolicy"], "SingleStack");
    let o = ip.octets();
    assert_eq!((o[0], o[1]), (10, 43), "{ip}");
    // Dynamic allocation leaves the first 256 addresses for explicit choices.
    assert!(
        u32::from(ip) > u32::from(Ipv4Addr::new(10, 43, 1, 0)),
        "{ip}"
    );

    let b = create(
        &api,
        "b",
        json!({"ports": http(), "clusterIP": "10.43.0.5"}),
    )
    .await
    .unwrap();
    assert_eq!(spec(&b)["clusterIPs"], json!(["10.43.0.5"]));
    let (code, msg) = api_error(
        create(
            &api,
            "b2",
            json!({"ports": http(), "clusterIP": "10.43.0.5"}),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "Service \"b2\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.43.0.5\"}: failed to allocate IP 10.43.0.5: provided IP is already allocated"
    );
    let (code, msg) = api_error(
        create(
            &api,
            "b3",
            json!({"ports": http(), "clusterIPs": ["10.44.0.5"]}),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "Service \"b3\" is invalid: spec.clusterIPs: Invalid value: []string{\"10.44.0.5\"}: failed to allocate IP 10.44.0.5: the provided IP (10.44.0.5) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
    );
    // The broadcast address is outside the range too.
    let (code, _) = api_error(
        create(
            &api,
            "b4",
            json!({"ports": http(), "clusterIP": "10.43.255.255"}),
        )
        .await,
    );
    assert_eq!(code, 422);
    // A second family on a single-stack cluster.
    let (code, msg) = api_error(
        create(
            &api,
            "b5",
            json!({"ports": http(), "ipFamilyPolicy": "RequireDualStack"}),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert!(msg.contains("spec.ipFamilyPolicy: Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services"), "{msg}");
    let (_, msg) =
        api_error(create(&api, "b6", json!({"ports": http(), "ipFamilies": ["IPv6"]})).await);
    assert!(
        msg.contains("spec.ipFamilies[0]: Invalid value: \"IPv6\": not configured on this cluster"),
        "{msg}"
    );

    // The field path is in the Status causes as upstream puts it.
    let reg = &c.registry;
    let res = reg.catalog().snapshot().by_kind("", "Service").unwrap();
    let e = reg
        .create(
            &res,
            Some("default"),
            json!({"metadata": {"name": "b7"}, "spec": {"ports": http(), "clusterIP": "10.43.0.5"}}),
            &WriteOptions::default(),
        )
        .await
        .unwrap_err();
    let causes = &e.details.unwrap()["causes"];
    assert_eq!(causes[0]["field"], "spec.clusterIPs");
    assert_eq!(causes[0]["reason"], "FieldValueInvalid");

    // Deleting gives the address back.
    api.delete("b", &DeleteParams::default()).await.unwrap();
    create(
        &api,
        "b8",
        json!({"ports": http(), "clusterIP": "10.43.0.5"}),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn headless_external_name_and_type_changes() {
    let c = cluster().await;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let h = create(
        &api,
        "h",
        json!({"clusterIP": "None", "selector": {"app": "h"}, "ports": http()}),
    )
    .await
    .unwrap();
    let sp = spec(&h);
    assert_eq!(sp["clusterIP"], "None");
    assert_eq!(sp["clusterIPs"], json!(["None"]));
    assert_eq!(sp["ipFamilyPolicy"], "SingleStack");
    assert_eq!(sp["ipFamilies"], json!(["IPv4"]));
    let e = create(
        &api,
        "e",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    )
    .await
    .unwrap();
    let sp = spec(&e);
    assert!(
        sp.get("clusterIP").is_none() && sp.get("clusterIPs").is_none(),
        "{sp}"
    );
    assert!(sp.get("ipFamilies").is_none(), "{sp}");
    let before = c.registry.service_allocations().await.unwrap();

    // ExternalName -> ClusterIP allocates.
    let patch = json!({"spec": {"type": "ClusterIP", "externalName": null, "ports": http()}});
    let e = api
        .patch("e", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let ip = spec(&e)["clusterIP"].as_str().unwrap().to_string();
    assert!(ip.starts_with("10.43."), "{ip}");
    assert_eq!(spec(&e)["ipFamilies"], json!(["IPv4"]));
    assert_eq!(
        c.registry.service_allocations().await.unwrap().0,
        before.0 + 1
    );

    // An update that leaves clusterIP out keeps it.
    let mut same = api.get("e").await.unwrap();
    same.spec.as_mut().unwrap().cluster_ip = None;
    same.spec.as_mut().unwrap().cluster_ips = None;
    let kept = api
        .replace("e", &PostParams::default(), &same)
        .await
        .unwrap();
    assert_eq!(spec(&kept)["clusterIP"], ip.as_str());

    // ClusterIP -> ExternalName releases, without the client clearing clusterIP itself.
    let patch = json!({"spec": {"type": "ExternalName", "externalName": "example.org"}});
    let e = api
        .patch("e", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let sp = spec(&e);
    assert!(sp.get("clusterIP").is_none(), "{sp}");
    assert!(sp.get("ipFamilyPolicy").is_none(), "{sp}");
    assert_eq!(c.registry.service_allocations().await.unwrap().0, before.0);
    create(&api, "reuse", json!({"ports": http(), "clusterIP": ip}))
        .await
        .unwrap();
    // A changed ClusterIP is refused.
    let patch = json!({"spec": {"clusterIP": "10.43.0.77", "clusterIPs": ["10.43.0.77"]}});
    let (code, msg) = api_error(
        api.patch("reuse", &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    assert_eq!(code, 422, "{msg}");
    assert!(msg.contains("may not change once set"), "{msg}");
}

#[tokio::test]
async fn node_ports_are_allocated_kept_and_released() {
    let c = cluster().await;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let np = create(
        &api,
        "np",
        json!({"type": "NodePort", "ports": [
        {"name": "http", "port": 80}, {"name": "dns", "port": 53, "protocol": "UDP"},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}),
    )
    .await
    .unwrap();
    let sp = spec(&np);
    let ports: Vec<i64> = (0..3)
        .map(|i| sp["ports"][i]["nodePort"].as_i64().unwrap())
        .collect();
    for p in &ports {
        assert!((30000..=32767).contains(p), "{p}");
    }
    assert_ne!(ports[0], ports[1]);
    // The same port number for two protocols shares one node port, as upstream.
    assert_eq!(ports[1], ports[2]);

    create(
        &api,
        "fixed",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    )
    .await
    .unwrap();
    let (code, msg) = api_error(
        create(
            &api,
            "fixed2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "Service \"fixed2\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    let (code, msg) = api_error(
        create(
            &api,
            "far",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 40000}]}),
        )
        .await,
    );
    assert_eq!(code, 422);
    assert_eq!(
        msg,
        "Service \"far\" is invalid: spec.ports[0].nodePort: Invalid value: 40000: provided port is not in the valid range. The range of valid ports is 30000-32767"
    );
    // The failed creates took nothing: the cluster IP count is that of the two Services.
    assert_eq!(c.registry.service_allocations().await.unwrap(), (2, 3));

    // A PUT without node ports keeps them, port by port name.
    let mut cur = api.get("np").await.unwrap();
    for p in cur.spec.as_mut().unwrap().ports.as_mut().unwrap() {
        p.node_port = None;
    }
    let kept = api
        .replace("np", &PostParams::default(), &cur)
        .await
        .unwrap();
    let sp = spec(&kept);
    let again: Vec<i64> = (0..3)
        .map(|i| sp["ports"][i]["nodePort"].as_i64().unwrap())
        .collect();
    assert_eq!(again, ports);

    // NodePort -> ClusterIP gives the port back.
    let patch = json!({"spec": {"type": "ClusterIP"}});
    let f = api
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(spec(&f)["ports"][0].get("nodePort").is_none());
    assert!(spec(&f).get("externalTrafficPolicy").is_none());
    create(
        &api,
        "fixed3",
        json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}),
    )
    .await
    .unwrap();
    // ClusterIP -> NodePort allocates.
    let patch = json!({"spec": {"type": "NodePort"}});
    let f = api
        .patch("fixed", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(spec(&f)["ports"][0]["nodePort"].as_i64().is_some());

    // LoadBalancer: node ports unless turned off, a health check port with Local.
    let lb = create(
        &api,
        "lb",
        json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
        "ports": [{"port": 443}]}),
    )
    .await
    .unwrap();
    let sp = spec(&lb);
    assert!(sp["ports"][0]["nodePort"].as_i64().is_some(), "{sp}");
    let hc = sp["healthCheckNodePort"].as_i64().unwrap();
    assert!((30000..=32767).contains(&hc));
    let bare = create(
        &api,
        "lb2",
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
        "ports": [{"port": 443}]}),
    )
    .await
    .unwrap();
    assert!(spec(&bare)["ports"][0].get("nodePort").is_none());
    let (_, ports_before) = c.registry.service_allocations().await.unwrap();
    let patch = json!({"spec": {"externalTrafficPolicy": "Cluster"}});
    let lb = api
        .patch("lb", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(spec(&lb).get("healthCheckNodePort").is_none());
    assert_eq!(
        c.registry.service_allocations().await.unwrap().1,
        ports_before - 1
    );
    api.delete("lb", &DeleteParams::default()).await.unwrap();
    assert_eq!(
        c.registry.service_allocations().await.unwrap().1,
        ports_before - 2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_share_an_ip() {
    // A /24 leaves 254 addresses: 200 Services crowd it.
    let c = cluster_with(ServiceConfig {
        cidr: "10.96.7.0/24".parse().unwrap(),
        ..Default::default()
    })
    .await;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let creates = (0..200).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            create(&api, &format!("s{i}"), json!({"ports": http()}))
                .await
                .unwrap()
        })
    });
    let all = futures::future::join_all(creates).await;
    let ips: HashSet<String> = all
        .into_iter()
        .map(|r| spec(&r.unwrap())["clusterIP"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ips.len(), 200);
    assert!(ips.iter().all(|ip| ip.starts_with("10.96.7.")));
    // Past the end of the range: upstream's internal error.
    for i in 200..254 {
        create(&api, &format!("s{i}"), json!({"ports": http()}))
            .await
            .unwrap();
    }
    let (code, msg) = api_error(create(&api, "full", json!({"ports": http()})).await);
    assert_eq!(code, 500);
    assert!(
        msg.contains("failed to allocate a serviceIP: range is full"),
        "{msg}"
    );
}

#[tokio::test]
async fn allocations_survive_a_reopened_store_and_dry_run_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (ip, port) = {
        let c = cluster_on(sled(dir.path()).await, ServiceConfig::default()).await;
        let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
        let s = create(&api, "keep", json!({"type": "NodePort", "ports": http()}))
            .await
            .unwrap();
        let sp = spec(&s);
        // Dry run: the answer has values, the allocators are untouched.
        let before = c.registry.service_allocations().await.unwrap();
        let pp = PostParams {
            dry_run: true,
            ..Default::default()
        };
        let dry = api
            .create(
                &pp,
                &svc(
                    "dry",
                    json!({"type": "NodePort", "ports": http(), "clusterIP": "10.43.0.9"}),
                ),
            )
            .await
            .unwrap();
        assert_eq!(spec(&dry)["clusterIP"], "10.43.0.9");
        assert!(spec(&dry)["ports"][0]["nodePort"].as_i64().is_some());
        assert_eq!(c.registry.service_allocations().await.unwrap(), before);
        assert!(api.get_opt("dry").await.unwrap().is_none());
        c.store.close().await.unwrap();
        drop(c);
        (
            sp["clusterIP"].as_str().unwrap().to_string(),
            sp["ports"][0]["nodePort"].as_i64().unwrap(),
        )
    };
    let c = cluster_on(sled(dir.path()).await, ServiceConfig::default()).await;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let (code, msg) =
        api_error(create(&api, "again", json!({"ports": http(), "clusterIP": ip})).await);
    assert_eq!(code, 422, "{msg}");
    assert!(msg.contains("provided IP is already allocated"), "{msg}");
    let (code, msg) = api_error(
        create(
            &api,
            "again2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": port}]}),
        )
        .await,
    );
    assert_eq!(code, 422, "{msg}");
    assert_eq!(c.registry.service_allocations().await.unwrap(), (1, 1));
    // The dry-run address was never taken.
    create(
        &api,
        "nine",
        json!({"ports": http(), "clusterIP": "10.43.0.9"}),
    )
    .await
    .unwrap();
    let res = c
        .registry
        .catalog()
        .snapshot()
        .by_kind("", "Service")
        .unwrap();
    let listed = c
        .registry
        .list(&res, None, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    c.store.close().await.unwrap();
}

#[tokio::test]
async fn an_ipv6_service_cidr_gives_ipv6_services() {
    let c = cluster_with(ServiceConfig {
        cidr: "fd00:43::/112".parse().unwrap(),
        ..Default::default()
    })
    .await;
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let s = create(&api, "v6", json!({"ports": http()})).await.unwrap();
    let sp = spec(&s);
    let ip: std::net::Ipv6Addr = sp["clusterIP"].as_str().unwrap().parse().unwrap();
    assert_eq!(ip.segments()[..7], [0xfd00, 0x43, 0, 0, 0, 0, 0], "{ip}");
    assert_eq!(sp["ipFamilies"], json!(["IPv6"]));
    let (_, msg) = api_error(
        create(
            &api,
            "v4",
            json!({"ports": http(), "clusterIP": "10.43.0.5"}),
        )
        .await,
    );
    assert!(
        msg.contains("spec.ipFamilies[0]: Invalid value: \"IPv4\": not configured on this cluster"),
        "{msg}"
    );
    create(
        &api,
        "fixed",
        json!({"ports": http(), "clusterIP": "fd00:43::a"}),
    )
    .await
    .unwrap();
}
