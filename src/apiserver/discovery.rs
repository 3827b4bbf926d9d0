//! Discovery documents, built from the catalog on each request: the legacy forms
//! (`/api`, `/apis`, group and group-version documents) and aggregated discovery
//! (apidiscovery.k8s.io/v2) that kubectl asks for first.

use crate::registry::resources::{CatalogData, ResourceInfo};
use serde_json::{json, Value};

/// What a subresource answers to: (kind group, kind version, kind, verbs).
fn subresource_kind(r: &ResourceInfo, sub: &str) -> (String, String, String, Vec<&'static str>) {
    let same =
        |verbs: Vec<&'static str>| (r.group.clone(), r.version.clone(), r.kind.clone(), verbs);
    match sub {
        "status" => same(vec!["get", "patch", "update"]),
        "scale" => (
            "autoscaling".into(),
            "v1".into(),
            "Scale".into(),
            vec!["get", "patch", "update"],
        ),
        "binding" => (String::new(), "v1".into(), "Binding".into(), vec!["create"]),
        "log" => (String::new(), "v1".into(), "Pod".into(), vec!["get"]),
        "exec" => (
            String::new(),
            "v1".into(),
            "PodExecOptions".into(),
            vec!["create", "get"],
        ),
        "attach" => (
            String::new(),
            "v1".into(),
            "PodAttachOptions".into(),
            vec!["create", "get"],
        ),
        "portforward" => (
            String::new(),
            "v1".into(),
            "PodPortForwardOptions".into(),
            vec!["create", "get"],
        ),
        "eviction" => (
            "policy".into(),
            "v1".into(),
            "Eviction".into(),
            vec!["create"],
        ),
        "token" => (
            "authentication.k8s.io".into(),
            "v1".into(),
            "TokenRequest".into(),
            vec!["create"],
        ),
        "finalize" => same(vec!["update"]),
        _ => same(vec!["get"]),
    }
}

fn resource_entry(r: &ResourceInfo) -> Value {
    let mut v = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    v
}

/// `/api/v1`, `/apis/<g>/<v>`: APIResourceList.
pub fn resource_list(cat: &CatalogData, group: &str, version: &str) -> Option<Value> {
    let rs: Vec<&std::sync::Arc<ResourceInfo>> = cat
        .resources
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .collect();
    if rs.is_empty() {
        return None;
    }
    let mut entries = vec![];
    for r in rs {
        entries.push(resource_entry(r));
        for sub in &r.subresources {
            let (g, v, k, verbs) = subresource_kind(r, sub);
            let mut e = json!({"name": format!("{}/{}", r.plural, sub), "singularName": "", "namespaced": r.namespaced, "kind": k, "verbs": verbs});
            if g != r.group || v != r.version {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            entries.push(e);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": entries}),
    )
}

pub fn api_versions(server_address: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]})
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs[0]})
}

pub fn group_list(cat: &CatalogData) -> Value {
    let groups: Vec<Value> = cat
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, vs)| group_entry(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn group(cat: &CatalogData, name: &str) -> Option<Value> {
    let groups = cat.groups();
    let (g, vs) = groups.iter().find(|(g, _)| g == name && !g.is_empty())?;
    let mut e = group_entry(g, vs);
    e["kind"] = json!("APIGroup");
    e["apiVersion"] = json!("v1");
    Some(e)
}

/// apidiscovery.k8s.io/v2 APIGroupDiscoveryList for `/api` (legacy = true) or `/apis`.
pub fn aggregated(cat: &CatalogData, legacy: bool) -> Value {
    let mut items = vec![];
    for (g, vs) in cat.groups() {
        if legacy != g.is_empty() {
            continue;
        }
        let versions: Vec<Value> = vs
            .iter()
            .map(|v| {
                let resources: Vec<Value> = cat
                    .resources
                    .iter()
                    .filter(|r| r.group == g && &r.version == v)
                    .map(|r| aggregated_resource(r))
                    .collect();
                json!({"version": v, "resources": resources, "freshness": "Current"})
            })
            .collect();
        items.push(
            json!({"metadata": {"name": g, "creationTimestamp": null}, "versions": versions}),
        );
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut v = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs,
    });
    if !r.short_names.is_empty() {
        v["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        v["categories"] = json!(r.categories);
    }
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|s| {
            let (g, ver, k, verbs) = subresource_kind(r, s);
            json!({"subresource": s, "responseKind": {"group": g, "version": ver, "kind": k}, "verbs": verbs})
        })
        .collect();
    if !subs.is_empty() {
        v["subresources"] = json!(subs);
    }
    v
}
