//! The EndpointSlice, Endpoints and ServiceLB controllers over pods and nodes the tests
//! create, with pod IPs and readiness set through pods/status as a kubelet would.

use super::*;
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

fn start(c: &Cluster) {
    let (cl, t) = (c.client.clone(), c.cancel.clone());
    let informers = k1s::controllers::informers::Informers::new(cl.clone(), t.clone());
    tokio::spawn(k1s::controllers::endpointslice::run(
        informers.clone(),
        t.clone(),
    ));
    tokio::spawn(k1s::controllers::endpoints::run(
        informers.clone(),
        t.clone(),
    ));
    tokio::spawn(k1s::controllers::endpointslicemirroring::run(
        cl.clone(),
        t.clone(),
    ));
    tokio::spawn(k1s::controllers::garbagecollector::run(
        cl.clone(),
        t.clone(),
    ));
    tokio::spawn(k1s::controllers::servicelb::run(informers, t));
}

async fn service(c: &Cluster, name: &str, spec: Value) -> Service {
    let api: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let s: Service =
        serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
    api.create(&PostParams::default(), &s).await.unwrap()
}

/// A pod with `labels`, container ports `ports`, bound to `node` if given.
async fn pod(c: &Cluster, name: &str, labels: Value, ports: Value, extra: Value) -> Pod {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox", "ports": ports}]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        spec[k] = v.clone();
    }
    let p: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels}, "spec": spec
    }))
    .unwrap();
    api.create(&PostParams::default(), &p).await.unwrap()
}

/// Running with `ip`, Ready or not, as a kubelet reports it.
async fn running(c: &Cluster, name: &str, ip: &str, ready: bool) {
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let st = json!({"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                        "lastTransitionTime": now}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

async fn slices(c: &Cluster, svc: &str) -> Vec<EndpointSlice> {
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={svc}"));
    let mut items = api.list(&lp).await.unwrap().items;
    items.sort_by_key(|s| s.name_any());
    items
}

/// Every endpoint of the Service's slices as JSON, by address.
async fn endpoints_by_ip(c: &Cluster, svc: &str) -> BTreeMap<String, (Value, Value)> {
    let mut out = BTreeMap::new();
    for s in slices(c, svc).await {
        let ports = serde_json::to_value(&s.ports).unwrap();
        for e in &s.endpoints {
            out.insert(
                e.addresses[0].clone(),
                (serde_json::to_value(e).unwrap(), ports.clone()),
            );
        }
    }
    out
}

async fn endpoints(c: &Cluster, name: &str) -> Option<Endpoints> {
    let api: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    api.get_opt(name).await.unwrap()
}

use std::collections::BTreeMap;

async fn node(c: &Cluster, name: &str, labels: Value, addresses: Value, ready: bool) {
    let api: Api<Node> = Api::all(c.client.clone());
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "status": {"addresses": addresses,
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &n).await.unwrap();
}

async fn set_node_ready(c: &Cluster, name: &str, ready: bool) {
    let api: Api<Node> = Api::all(c.client.clone());
    let st = json!({"status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

fn addresses(ep: &Endpoints, field: &str) -> Vec<String> {
    let v = serde_json::to_value(ep).unwrap();
    let mut out: Vec<String> = v["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s[field].as_array().cloned().unwrap_or_default())
        .map(|a| a["ip"].as_str().unwrap().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_and_endpoints_follow_pods() {
    let c = cluster().await;
    start(&c);
    node(
        &c,
        "n1",
        json!({"topology.kubernetes.io/zone": "z1"}),
        json!([{"type": "InternalIP", "address": "192.168.1.10"}]),
        true,
    )
    .await;
    let svc = service(
        &c,
        "web",
        json!({"selector": {"app": "web"}, "ports": [
        {"name": "http", "port": 80, "targetPort": "http"},
        {"name": "metrics", "port": 9100, "targetPort": 9100}]}),
    )
    .await;
    let http = |p: i64| json!([{"name": "http", "containerPort": p}]);
    let on_n1 = json!({"nodeName": "n1"});
    pod(&c, "p1", json!({"app": "web"}), http(8080), on_n1.clone()).await;
    pod(&c, "p2", json!({"app": "web"}), http(8081), json!({})).await;
    pod(&c, "p3", json!({"app": "web"}), http(8080), json!({})).await; // no IP: skipped
    pod(&c, "p4", json!({"app": "web"}), http(8080), json!({})).await;
    pod(&c, "other", json!({"app": "other"}), http(8080), json!({})).await;
    running(&c, "p1", "10.42.0.11", true).await;
    running(&c, "p2", "10.42.0.12", true).await;
    running(&c, "p4", "10.42.0.14", false).await;
    running(&c, "other", "10.42.0.99", true).await;

    let eps = eventually(10, "three endpoints", || async {
        let e = endpoints_by_ip(&c, "web").await;
        (e.len() == 3 && e.contains_key("10.42.0.14")).then_some(e)
    })
    .await;
    let (p1, p1_ports) = &eps["10.42.0.11"];
    assert_eq!(
        p1["conditions"],
        json!({"ready": true, "serving": true, "terminating": false})
    );
    assert_eq!(p1["nodeName"], "n1");
    assert_eq!(p1["zone"], "z1");
    assert_eq!(p1["targetRef"]["kind"], "Pod");
    assert_eq!(p1["targetRef"]["name"], "p1");
    assert_eq!(
        p1_ports[0],
        json!({"name": "http", "port": 8080, "protocol": "TCP"})
    );
    assert_eq!(
        p1_ports[1],
        json!({"name": "metrics", "port": 9100, "protocol": "TCP"})
    );
    // The named port resolves per pod: p2 is in a slice of its own port set.
    assert_eq!(eps["10.42.0.12"].1[0]["port"], 8081);
    assert_eq!(
        eps["10.42.0.14"].0["conditions"],
        json!({"ready": false, "serving": false, "terminating": false})
    );
    let all = slices(&c, "web").await;
    assert_eq!(all.len(), 2);
    for s in &all {
        let l = s.labels();
        assert_eq!(
            l["endpointslice.kubernetes.io/managed-by"],
            "endpointslice-controller.k8s.io"
        );
        assert_eq!(s.address_type, "IPv4");
        let owner = &s.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str()),
            ("Service", svc.uid().unwrap().as_str())
        );
        assert_eq!(owner.controller, Some(true));
        assert!(s
            .annotations()
            .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
    }
    let ep = eventually(10, "endpoints", || async {
        let e = endpoints(&c, "web").await?;
        (addresses(&e, "addresses").len() == 2 && addresses(&e, "notReadyAddresses").len() == 1)
            .then_some(e)
    })
    .await;
    assert_eq!(addresses(&ep, "addresses"), ["10.42.0.11", "10.42.0.12"]);
    assert_eq!(addresses(&ep, "notReadyAddresses"), ["10.42.0.14"]);
    assert_eq!(
        ep.labels()["endpoints.kubernetes.io/managed-by"],
        "endpoint-controller"
    );
    let v = serde_json::to_value(&ep).unwrap();
    assert_eq!(v["subsets"].as_array().unwrap().len(), 2, "{v}");

    // Nothing changed: nothing is rewritten, even when a selected pod is touched.
    let rvs = |s: Vec<EndpointSlice>| s.iter().map(|s| s.resource_version()).collect::<Vec<_>>();
    let before = rvs(slices(&c, "web").await);
    let ep_rv = endpoints(&c, "web").await.unwrap().resource_version();
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let patch = json!({"metadata": {"annotations": {"touched": "yes"}}});
    pods.patch("p2", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(rvs(slices(&c, "web").await), before);
    assert_eq!(
        endpoints(&c, "web").await.unwrap().resource_version(),
        ep_rv
    );

    // A terminating pod: not ready, still serving; out of Endpoints.
    pods.delete("p1", &DeleteParams::default()).await.unwrap();
    eventually(10, "p1 terminating", || async {
        let e = endpoints_by_ip(&c, "web").await;
        let p1 = &e.get("10.42.0.11")?.0;
        (p1["conditions"] == json!({"ready": false, "serving": true, "terminating": true}))
            .then_some(())
    })
    .await;
    eventually(10, "p1 out of endpoints", || async {
        let e = endpoints(&c, "web").await?;
        (addresses(&e, "addresses") == ["10.42.0.12"]).then_some(())
    })
    .await;

    // publishNotReadyAddresses: everything is ready, terminating pods included.
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let patch = json!({"spec": {"publishNotReadyAddresses": true}});
    svcs.patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(10, "published not-ready", || async {
        let e = endpoints_by_ip(&c, "web").await;
        (e.get("10.42.0.14")?.0["conditions"]["ready"] == true
            && e.get("10.42.0.11")?.0["conditions"]["ready"] == true)
            .then_some(())
    })
    .await;
    eventually(10, "endpoints with not-ready", || async {
        let e = endpoints(&c, "web").await?;
        (addresses(&e, "addresses") == ["10.42.0.11", "10.42.0.12", "10.42.0.14"]).then_some(())
    })
    .await;

    // StatefulSet-style hostname: only with the Service as subdomain.
    pod(
        &c,
        "web-0",
        json!({"app": "web"}),
        http(8080),
        json!({"hostname": "web-0", "subdomain": "web"}),
    )
    .await;
    pod(
        &c,
        "x-0",
        json!({"app": "web"}),
        http(8080),
        json!({"hostname": "x-0", "subdomain": "elsewhere"}),
    )
    .await;
    running(&c, "web-0", "10.42.0.20", true).await;
    running(&c, "x-0", "10.42.0.21", true).await;
    let e = eventually(10, "hostnames", || async {
        let e = endpoints_by_ip(&c, "web").await;
        (e.contains_key("10.42.0.20") && e.contains_key("10.42.0.21")).then_some(e)
    })
    .await;
    assert_eq!(e["10.42.0.20"].0["hostname"], "web-0");
    assert!(e["10.42.0.21"].0.get("hostname").is_none());
    eventually(10, "endpoints hostname", || async {
        let v = serde_json::to_value(endpoints(&c, "web").await?).unwrap();
        let found = v["subsets"].as_array()?.iter().any(|s| {
            s["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["hostname"] == "web-0")
        });
        found.then_some(())
    })
    .await;

    // A pod that stops matching leaves.
    let patch = json!({"metadata": {"labels": {"app": "moved"}}});
    pods.patch("p2", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(10, "p2 gone", || async {
        (!endpoints_by_ip(&c, "web").await.contains_key("10.42.0.12")).then_some(())
    })
    .await;

    // The Service goes: so do its slices and Endpoints.
    svcs.delete("web", &DeleteParams::default()).await.unwrap();
    eventually(15, "slices and endpoints removed", || async {
        (slices(&c, "web").await.is_empty() && endpoints(&c, "web").await.is_none()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_split_into_slices_and_scale_to_zero() {
    let c = cluster().await;
    start(&c);
    service(
        &c,
        "big",
        json!({"selector": {"app": "big"}, "ports": [{"port": 80}]}),
    )
    .await;
    let placeholder = eventually(10, "placeholder", || async {
        let s = slices(&c, "big").await;
        (s.len() == 1 && s[0].endpoints.is_empty()).then(|| s[0].name_any())
    })
    .await;
    for i in 0..150 {
        pod(
            &c,
            &format!("b{i}"),
            json!({"app": "big"}),
            json!([]),
            json!({}),
        )
        .await;
        running(&c, &format!("b{i}"), &format!("10.42.1.{}", i + 1), true).await;
    }
    let all = eventually(20, "150 endpoints", || async {
        let s = slices(&c, "big").await;
        let n: usize = s.iter().map(|s| s.endpoints.len()).sum();
        (n == 150).then_some(s)
    })
    .await;
    let mut sizes: Vec<usize> = all.iter().map(|s| s.endpoints.len()).collect();
    sizes.sort();
    assert_eq!(sizes, [50, 100]);
    // The placeholder was reused, not left behind.
    assert!(all.iter().any(|s| s.name_any() == placeholder));
    let ep = eventually(10, "endpoints of 150", || async {
        let e = endpoints(&c, "big").await?;
        (addresses(&e, "addresses").len() == 150).then_some(e)
    })
    .await;
    assert_eq!(ep.subsets.as_ref().unwrap().len(), 1);

    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("app=big"),
    )
    .await
    .unwrap();
    let s = eventually(20, "one empty slice", || async {
        let s = slices(&c, "big").await;
        (s.len() == 1 && s[0].endpoints.is_empty()).then_some(s)
    })
    .await;
    assert!(s[0].ports.as_ref().is_none_or(|p| p.is_empty()));
    eventually(10, "empty endpoints", || async {
        let e = endpoints(&c, "big").await?;
        e.subsets
            .as_ref()
            .is_none_or(|s| s.is_empty())
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_endpoints_of_selectorless_services_are_mirrored_never_rewritten() {
    let c = cluster().await;
    start(&c);
    service(
        &c,
        "manual",
        json!({"ports": [{"name": "pg", "port": 5432}]}),
    )
    .await;
    let mine: Endpoints = serde_json::from_value(json!({
        "metadata": {"name": "manual"},
        "subsets": [{"addresses": [{"ip": "192.0.2.7"}], "notReadyAddresses": [{"ip": "192.0.2.8"}],
                     "ports": [{"name": "pg", "port": 5432}]}]
    }))
    .unwrap();
    let api: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let made = api.create(&PostParams::default(), &mine).await.unwrap();
    let s = eventually(10, "a mirrored slice", || async {
        let s = slices(&c, "manual").await;
        (s.len() == 1).then(|| s[0].clone())
    })
    .await;
    assert_eq!(
        s.labels()["endpointslice.kubernetes.io/managed-by"],
        "endpointslicemirroring-controller.k8s.io"
    );
    assert_eq!(
        serde_json::to_value(&s.endpoints).unwrap(),
        json!([{"addresses": ["192.0.2.7"], "conditions": {"ready": true}},
               {"addresses": ["192.0.2.8"], "conditions": {"ready": false}}])
    );
    assert_eq!(
        serde_json::to_value(&s.ports).unwrap(),
        json!([{"name": "pg", "port": 5432, "protocol": "TCP"}])
    );
    assert_eq!(
        s.metadata.owner_references.as_ref().unwrap()[0].kind,
        "Endpoints"
    );
    // The Endpoints controller leaves the user's object alone.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        endpoints(&c, "manual").await.unwrap().resource_version(),
        made.resource_version()
    );
    // A change is mirrored in place.
    let patch = json!({"subsets": [{"addresses": [{"ip": "192.0.2.9"}], "ports": [{"name": "pg", "port": 5432}]}]});
    api.patch("manual", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let name = s.name_any();
    eventually(10, "mirrored change", || async {
        let s = slices(&c, "manual").await;
        (s.len() == 1 && s[0].name_any() == name && s[0].endpoints[0].addresses == ["192.0.2.9"])
            .then_some(())
    })
    .await;
    // skip-mirror: the slice goes.
    let patch =
        json!({"metadata": {"labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}});
    api.patch("manual", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(10, "mirror removed", || async {
        slices(&c, "manual").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servicelb_status_follows_ready_nodes() {
    let c = cluster().await;
    start(&c);
    node(
        &c,
        "n1",
        json!({}),
        json!([{"type": "InternalIP", "address": "192.168.1.10"}]),
        true,
    )
    .await;
    node(
        &c,
        "n2",
        json!({}),
        json!([{"type": "InternalIP", "address": "192.168.1.11"},
                                     {"type": "ExternalIP", "address": "203.0.113.5"}]),
        true,
    )
    .await;
    node(
        &c,
        "n3",
        json!({}),
        json!([{"type": "InternalIP", "address": "192.168.1.12"}]),
        false,
    )
    .await;
    service(
        &c,
        "lb",
        json!({"type": "LoadBalancer", "ports": [{"port": 80}]}),
    )
    .await;
    service(
        &c,
        "other",
        json!({"type": "LoadBalancer", "loadBalancerClass": "example.com/lb",
        "ports": [{"port": 80}]}),
    )
    .await;
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let ingress = |name: &'static str| {
        let svcs = svcs.clone();
        async move {
            let s = svcs.get(name).await.unwrap();
            serde_json::to_value(s.status.unwrap_or_default()).unwrap()["loadBalancer"]["ingress"]
                .clone()
        }
    };
    eventually(10, "ingress of two nodes", || async {
        (ingress("lb").await
            == json!([{"ip": "192.168.1.10", "ipMode": "VIP"}, {"ip": "203.0.113.5", "ipMode": "VIP"}]))
        .then_some(())
    })
    .await;
    set_node_ready(&c, "n3", true).await;
    eventually(10, "third node", || async {
        (ingress("lb").await.as_array()?.len() == 3).then_some(())
    })
    .await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    set_node_ready(&c, "n2", false).await;
    eventually(10, "one node left", || async {
        (ingress("lb").await == json!([{"ip": "192.168.1.12", "ipMode": "VIP"}])).then_some(())
    })
    .await;
    // Another load balancer's Service is not ours.
    assert!(ingress("other").await.is_null());
    let patch = json!({"spec": {"type": "ClusterIP"}});
    svcs.patch("lb", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    eventually(10, "cleared", || async {
        ingress("lb").await.is_null().then_some(())
    })
    .await;
}
