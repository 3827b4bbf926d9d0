//! The default Services: `kubernetes` with its Endpoints and EndpointSlice, `kube-dns` with a
//! slice of one endpoint per node that follows the nodes, both repaired when deleted.

use super::*;
use k1s::controllers::defaultservices::{self, DefaultServices};
use k8s_openapi::api::core::v1::{Endpoints, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::ResourceExt;
use serde_json::{json, Value};

fn cfg() -> DefaultServices {
    DefaultServices {
        api_address: "192.0.2.1".parse().unwrap(),
        api_port: 6443,
        kubernetes_ip: "10.43.0.1".parse().unwrap(),
        dns_ip: "10.43.0.10".parse().unwrap(),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap()
}

async fn node(c: &Cluster, name: &str, ip: &str, ready: bool) {
    let api: Api<Node> = Api::all(c.client.clone());
    let n: Node = serde_json::from_value(json!({
        "metadata": {"name": name},
        "status": {"addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    }))
    .unwrap();
    api.create(&PostParams::default(), &n).await.unwrap();
}

async fn dns_endpoints(c: &Cluster) -> Value {
    let api: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "kube-system");
    match api.get_opt("kube-dns").await.unwrap() {
        Some(s) => to_json(&s.endpoints),
        None => Value::Null,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_services_are_written_kept_and_follow_nodes() {
    let c = cluster().await;
    node(&c, "n1", "192.168.1.10", true).await;
    defaultservices::ensure(&c.client, &cfg()).await.unwrap();
    let svcs: Api<Service> = Api::namespaced(c.client.clone(), "default");
    let k = svcs.get("kubernetes").await.unwrap();
    let sp = to_json(k.spec.as_ref().unwrap());
    assert_eq!(sp["clusterIP"], "10.43.0.1");
    assert_eq!(sp["type"], "ClusterIP");
    assert!(sp.get("selector").is_none());
    assert_eq!(
        sp["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}])
    );
    assert_eq!(k.labels()["component"], "apiserver");
    assert_eq!(k.labels()["provider"], "kubernetes");
    let eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "default");
    let e = eps.get("kubernetes").await.unwrap();
    assert_eq!(
        to_json(&e.subsets),
        json!([{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}])
    );
    let slices: Api<EndpointSlice> = Api::namespaced(c.client.clone(), "default");
    let s = slices.get("kubernetes").await.unwrap();
    assert_eq!(s.labels()["kubernetes.io/service-name"], "kubernetes");
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(
        to_json(&s.endpoints),
        json!([{"addresses": ["192.0.2.1"], "conditions": {"ready": true}}])
    );

    let sys: Api<Service> = Api::namespaced(c.client.clone(), "kube-system");
    let d = sys.get("kube-dns").await.unwrap();
    let sp = to_json(d.spec.as_ref().unwrap());
    assert_eq!(sp["clusterIP"], "10.43.0.10");
    assert_eq!(sp["internalTrafficPolicy"], "Local");
    assert!(sp.get("selector").is_none());
    assert_eq!(
        sp["ports"][0],
        json!({"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53})
    );
    assert_eq!(
        sp["ports"][1],
        json!({"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53})
    );
    for (k, v) in [
        ("k8s-app", "kube-dns"),
        ("kubernetes.io/cluster-service", "true"),
        ("kubernetes.io/name", "CoreDNS"),
    ] {
        assert_eq!(d.labels()[k], v);
    }
    assert_eq!(
        dns_endpoints(&c).await,
        json!([{"addresses": ["192.168.1.10"], "nodeName": "n1",
                "conditions": {"ready": true, "serving": true, "terminating": false}}])
    );

    // A second pass changes nothing.
    let rv = |o: Option<String>| o.unwrap();
    let before = rv(svcs.get("kubernetes").await.unwrap().resource_version());
    defaultservices::ensure(&c.client, &cfg()).await.unwrap();
    assert_eq!(
        rv(svcs.get("kubernetes").await.unwrap().resource_version()),
        before
    );

    // A changed API port (a restart on another port) is followed.
    let moved = DefaultServices {
        api_port: 7443,
        ..cfg()
    };
    defaultservices::ensure(&c.client, &moved).await.unwrap();
    let k = svcs.get("kubernetes").await.unwrap();
    assert_eq!(
        to_json(k.spec.as_ref().unwrap())["ports"][0]["targetPort"],
        7443
    );
    let e = eps.get("kubernetes").await.unwrap();
    assert_eq!(to_json(&e.subsets)[0]["ports"][0]["port"], 7443);
    defaultservices::ensure(&c.client, &cfg()).await.unwrap();

    // From here the loop keeps them.
    tokio::spawn(defaultservices::run(
        k1s::controllers::informers::Informers::new(c.client.clone(), c.cancel.clone()),
        cfg(),
        c.cancel.clone(),
    ));
    node(&c, "n2", "192.168.1.11", false).await;
    eventually(10, "n2 in kube-dns, not ready", || async {
        let e = dns_endpoints(&c).await;
        (e.as_array()?.len() == 2
            && e[1]["nodeName"] == "n2"
            && e[1]["conditions"]["ready"] == false)
            .then_some(())
    })
    .await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let st = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    nodes
        .patch_status("n2", &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
    eventually(10, "n2 ready", || async {
        (dns_endpoints(&c).await[1]["conditions"]["ready"] == true).then_some(())
    })
    .await;
    nodes.delete("n1", &DeleteParams::default()).await.unwrap();
    eventually(10, "n1 gone", || async {
        let e = dns_endpoints(&c).await;
        (e.as_array()?.len() == 1 && e[0]["nodeName"] == "n2").then_some(())
    })
    .await;
    let dns_eps: Api<Endpoints> = Api::namespaced(c.client.clone(), "kube-system");
    eventually(10, "kube-dns endpoints", || async {
        let e = dns_eps.get_opt("kube-dns").await.unwrap()?;
        (to_json(&e.subsets)[0]["addresses"] == json!([{"ip": "192.168.1.11", "nodeName": "n2"}]))
            .then_some(())
    })
    .await;

    // Deleted: written again, at the same address.
    svcs.delete("kubernetes", &DeleteParams::default())
        .await
        .unwrap();
    sys.delete("kube-dns", &DeleteParams::default())
        .await
        .unwrap();
    eventually(15, "repaired", || async {
        let k = svcs.get_opt("kubernetes").await.unwrap()?;
        let d = sys.get_opt("kube-dns").await.unwrap()?;
        (k.spec?.cluster_ip? == "10.43.0.1" && d.spec?.cluster_ip? == "10.43.0.10").then_some(())
    })
    .await;
}
