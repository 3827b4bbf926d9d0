use super::fixtures::{crontab_crd, kind, served};
use super::*;
use serde_json::Value;

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("document is JSON")
}

fn schemas(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["components"]["schemas"]
        .as_object()
        .expect("components.schemas")
}

/// Every `$ref` anywhere in the document, schema or not.
fn all_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => all_refs(v, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| all_refs(v, out)),
        _ => {}
    }
}

fn assert_refs_resolve(
    doc: &Value,
    prefix: &str,
    defs: &serde_json::Map<String, Value>,
    what: &str,
) {
    let mut refs = Vec::new();
    all_refs(doc, &mut refs);
    assert!(!refs.is_empty(), "{what}: no refs");
    for r in refs {
        let name = r
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{what}: foreign ref {r}"));
        assert!(defs.contains_key(name), "{what}: dangling ref {r}");
    }
}

/// Follows a property, looking through `allOf` and `$ref`.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let target = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(|a| a.get(0))
            .and_then(|a| a.get("$ref"))
    });
    match target
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix(schema::V3_PREFIX))
    {
        Some(name) => resolve(doc, &schemas(doc)[name]),
        None => schema,
    }
}

fn field<'a>(doc: &'a Value, schema: &'a Value, path: &[&str]) -> &'a Value {
    let mut cur = resolve(doc, schema);
    for p in path {
        let next = &cur["properties"][*p];
        assert!(!next.is_null(), "no property {p}");
        cur = resolve(doc, next);
        if cur.get("type").and_then(Value::as_str) == Some("array") {
            cur = resolve(doc, &cur["items"]);
        }
    }
    cur
}

#[test]
fn index_lists_every_group_version() {
    let kinds = served();
    let api = OpenApi::new(&kinds);
    let index = api.v3_index();
    let paths = index["paths"].as_object().expect("paths");
    for k in &kinds {
        let p = gv_path(&(k.group.clone(), k.version.clone()));
        let url = paths[&p]["serverRelativeURL"].as_str().expect("url");
        let hash = api.v3_hash(&p).expect("hash");
        assert_eq!(url, format!("/openapi/v3/{p}?hash={hash}"));
        assert!(api.v3_document(url).is_some(), "url {url} serves");
    }
    assert_eq!(paths.len(), 14);
    assert!(api.v3_document("apis/nope/v1").is_none());
    assert!(api.v3_document("api").is_none());
    assert!(api.v3_document("apis/apps").is_none());
}

#[test]
fn core_document_describes_pod() {
    let api = OpenApi::new(&served());
    let doc = parse(&api.v3_document("/openapi/v3/api/v1").expect("core"));
    assert_eq!(doc["openapi"], "3.0.0");
    let pod = &schemas(&doc)["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["x-kubernetes-group-version-kind"],
        serde_json::json!([{"group": "", "kind": "Pod", "version": "v1"}])
    );
    assert!(pod["description"]
        .as_str()
        .unwrap_or_default()
        .contains("collection of containers"));
    assert!(pod.get("required").is_none(), "metadata is not required");
    let spec = &pod["properties"]["spec"];
    assert!(spec["description"].as_str().is_some());
    assert_eq!(
        resolve(&doc, spec)["properties"]["containers"]["type"],
        "array"
    );
    let list = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["get"];
    assert_eq!(list["x-kubernetes-action"], "list");
    assert_eq!(
        list["x-kubernetes-group-version-kind"],
        serde_json::json!({"group": "", "kind": "Pod", "version": "v1"})
    );
    let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
    let params = patch["parameters"].as_array().expect("params");
    assert!(params
        .iter()
        .any(|p| p["name"] == "fieldValidation" && p["in"] == "query"));
    let ios = &schemas(&doc)[schema::INT_OR_STRING];
    assert_eq!(ios["format"], "int-or-string");
    let time = &schemas(&doc)["io.k8s.apimachinery.pkg.apis.meta.v1.Time"];
    assert_eq!(
        (time["type"].as_str(), time["format"].as_str()),
        (Some("string"), Some("date-time"))
    );
    let containers = &resolve(&doc, spec)["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    let eviction = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"]["kind"],
        "Eviction"
    );
}

#[test]
fn every_ref_resolves_in_every_document() {
    let api = OpenApi::new(&served());
    api.set_custom(&[crontab_crd()]);
    for (g, v) in api.group_versions() {
        let p = gv_path(&(g, v));
        let doc = parse(&api.v3_document(&p).expect("doc"));
        assert_refs_resolve(&doc, schema::V3_PREFIX, schemas(&doc), &p);
        for (name, def) in schemas(&doc) {
            if def.get("x-kubernetes-group-version-kind").is_some() {
                assert!(
                    def.get("description").is_some() || name.starts_with("com."),
                    "{name} has no description"
                );
            }
        }
    }
    let v2 = parse(&api.v2_document(false));
    let defs = v2["definitions"].as_object().expect("definitions");
    assert_refs_resolve(&v2, schema::V2_PREFIX, defs, "v2");
}

#[test]
fn deployment_reaches_container() {
    let api = OpenApi::new(&served());
    let doc = parse(&api.v3_document("apis/apps/v1").expect("apps"));
    let deployment = &schemas(&doc)["io.k8s.api.apps.v1.Deployment"];
    let container = field(
        &doc,
        deployment,
        &["spec", "template", "spec", "containers"],
    );
    assert_eq!(container, &schemas(&doc)["io.k8s.api.core.v1.Container"]);
    assert!(container["properties"]["image"]["description"]
        .as_str()
        .is_some());
    let scale =
        &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["get"];
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        serde_json::json!({"group": "autoscaling", "kind": "Scale", "version": "v1"})
    );
    assert!(schemas(&doc).contains_key("io.k8s.api.autoscaling.v1.Scale"));
    assert!(schemas(&doc).contains_key("io.k8s.api.apps.v1.DeploymentList"));
    assert!(
        !schemas(&doc).contains_key("io.k8s.api.core.v1.Pod"),
        "only reachable definitions"
    );
}

#[test]
fn custom_resources_appear_and_change() {
    let api = OpenApi::new(&served());
    assert!(api.v3_document("apis/stable.example.com/v1").is_none());
    let before = api.v3_index();
    api.set_custom(&[
        crontab_crd(),
        serde_json::json!({"spec": 3}),
        serde_json::json!(null),
    ]);
    let after = api.v3_index();
    assert_eq!(
        before["paths"]["api/v1"], after["paths"]["api/v1"],
        "unrelated hash stable"
    );
    assert!(after["paths"]["apis/stable.example.com/v1"].is_object());
    assert!(
        after["paths"].get("apis/stable.example.com/v0").is_none(),
        "unserved version"
    );
    let doc = parse(
        &api.v3_document("apis/stable.example.com/v1")
            .expect("custom doc"),
    );
    let crontab = &schemas(&doc)["com.example.stable.v1.CronTab"];
    assert_eq!(
        crontab["x-kubernetes-group-version-kind"][0]["kind"],
        "CronTab"
    );
    assert_eq!(
        field(&doc, crontab, &["metadata"]),
        &schemas(&doc)[schema::OBJECT_META]
    );
    assert_eq!(
        field(&doc, crontab, &["spec", "cronSpec"])["type"],
        "string"
    );
    assert!(doc["paths"]
        ["/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}/status"]["get"]
        .is_object());
    assert!(schemas(&doc).contains_key("com.example.stable.v1.CronTabList"));
    let hash = api.v3_hash("apis/stable.example.com/v1").expect("hash");

    let mut changed = crontab_crd();
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "changed".into();
    api.set_custom(&[changed]);
    assert_ne!(api.v3_hash("apis/stable.example.com/v1"), Some(hash));
    let v2 = parse(&api.v2_document(false));
    assert_eq!(
        v2["definitions"]["com.example.stable.v1.CronTab"]["description"],
        "changed"
    );

    api.set_custom(&[]);
    assert!(api.v3_document("apis/stable.example.com/v1").is_none());
}

#[test]
fn v2_document_shape() {
    let api = OpenApi::new(&served());
    let v2 = parse(&api.v2_document(false));
    assert_eq!(v2["swagger"], "2.0");
    let defs = v2["definitions"].as_object().expect("definitions");
    let pod = &defs["io.k8s.api.core.v1.Pod"];
    assert_eq!(
        pod["properties"]["spec"]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
    assert_eq!(defs[schema::INT_OR_STRING]["type"], "string");
    assert_eq!(defs[schema::INT_OR_STRING]["format"], "int-or-string");
    assert_eq!(defs[schema::QUANTITY]["type"], "string");
    let get = &v2["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["get"];
    assert_eq!(get["x-kubernetes-group-version-kind"]["kind"], "Deployment");
    assert_eq!(
        get["responses"]["200"]["schema"]["$ref"],
        "#/definitions/io.k8s.api.apps.v1.Deployment"
    );
}

#[test]
fn every_table_kind_and_patch_entry_exists() {
    let all: Vec<ServedKind> = kinds::KINDS
        .iter()
        .map(|e| kind(e.group, e.version, e.kind, "things", true, &[]))
        .collect();
    let api = OpenApi::new(&all);
    let builtin = api.builtin();
    for e in kinds::KINDS {
        let def = builtin
            .catalog
            .kind_def(e.group, e.version, e.kind)
            .expect("kind def");
        assert!(builtin.catalog.defs.contains_key(def), "{def}");
    }
    for (def, prop) in patch_meta::entries() {
        let d = &builtin.catalog.defs[def];
        assert!(
            d["properties"][prop]["x-kubernetes-patch-strategy"].is_string(),
            "{def}.{prop}"
        );
    }
}

#[test]
fn paths_parse() {
    assert_eq!(parse_path("api/v1"), Some((String::new(), "v1".into())));
    assert_eq!(
        parse_path("/openapi/v3/apis/apps/v1?hash=AB"),
        Some(("apps".into(), "v1".into()))
    );
    assert_eq!(parse_path("apis/apps/v1/extra"), None);
    assert_ne!(content_hash(b"a"), content_hash(b"b"));
    assert_eq!(content_hash(b"abc").len(), 32);
}
