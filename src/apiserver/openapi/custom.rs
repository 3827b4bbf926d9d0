//! Custom resources: turning CustomResourceDefinition objects into served
//! kinds and canonical definitions, as the Kubernetes API server publishes
//! them (definition `<reversed group>.<version>.<Kind>`, `metadata` pointing
//! at ObjectMeta, a synthesized `<Kind>List`).

use super::paths::KindInfo;
use super::schema::{
    self, API_VERSION_DESC, GVK_EXT, KIND_DESC, METADATA_DESC, OBJECT_META, V3_PREFIX,
};
use super::ServedKind;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// The custom group-versions and their definitions.
#[derive(Default)]
pub(super) struct Custom {
    pub gvs: BTreeMap<(String, String), Vec<KindInfo>>,
    pub defs: Map<String, Value>,
    /// Per group-version, a fingerprint of the inputs (for cache keys).
    pub sources: BTreeMap<(String, String), String>,
}

/// `stable.example.com` → `com.example.stable`.
fn reversed(group: &str) -> String {
    group.split('.').rev().collect::<Vec<_>>().join(".")
}

fn text<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Builds the custom state from CRD objects; malformed CRDs and versions
/// that are not served are skipped.
pub(super) fn build(crds: &[Value]) -> Custom {
    let mut custom = Custom::default();
    for crd in crds {
        let Some(spec) = crd.get("spec") else {
            continue;
        };
        let (Some(group), Some(kind), Some(plural)) = (
            text(spec, &["group"]),
            text(spec, &["names", "kind"]),
            text(spec, &["names", "plural"]),
        ) else {
            continue;
        };
        let list_kind = text(spec, &["names", "listKind"])
            .map(str::to_string)
            .unwrap_or_else(|| format!("{kind}List"));
        let namespaced = text(spec, &["scope"]) != Some("Cluster");
        let Some(versions) = spec.get("versions").and_then(Value::as_array) else {
            continue;
        };
        for v in versions {
            let Some(version) = text(v, &["name"]) else {
                continue;
            };
            if v.get("served").and_then(Value::as_bool) == Some(false) {
                continue;
            }
            let mut subresources = Vec::new();
            for sub in ["status", "scale"] {
                if v.get("subresources").and_then(|s| s.get(sub)).is_some() {
                    subresources.push(sub.to_string());
                }
            }
            let def = format!("{}.{version}.{kind}", reversed(group));
            let list = format!("{}.{version}.{list_kind}", reversed(group));
            let raw = v.get("schema").and_then(|s| s.get("openAPIV3Schema"));
            custom
                .defs
                .insert(def.clone(), kind_schema(raw, group, version, kind));
            let mut list_schema = schema::list_definition(&def, group, version, kind);
            list_schema[GVK_EXT] = json!([schema::gvk(group, version, &list_kind)]);
            custom.defs.insert(list.clone(), list_schema);
            let key = (group.to_string(), version.to_string());
            let served = ServedKind {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                plural: plural.into(),
                namespaced,
                verbs: crate::registry::resources::ALL_VERBS
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                subresources,
                strategic_merge_patch: false,
            };
            let fingerprint = custom.sources.entry(key.clone()).or_default();
            fingerprint.push_str(&format!("{plural}|{namespaced}|{:?}|", served.subresources));
            fingerprint.push_str(&raw.map(Value::to_string).unwrap_or_default());
            let kinds = custom.gvs.entry(key).or_default();
            kinds.retain(|k| k.served.kind != kind);
            kinds.push(KindInfo { served, def, list });
        }
    }
    custom
}

/// The canonical definition of one custom kind version.
fn kind_schema(raw: Option<&Value>, group: &str, version: &str, kind: &str) -> Value {
    let mut s = match raw {
        Some(Value::Object(m)) => m.clone(),
        _ => {
            let mut m = Map::new();
            m.insert("x-kubernetes-preserve-unknown-fields".into(), true.into());
            m
        }
    };
    let mut sanitized = Value::Object(std::mem::take(&mut s));
    // References are not allowed in CRD schemas; never let one dangle.
    schema::walk_mut(&mut sanitized, &mut |m| {
        m.remove("$ref");
    });
    if let Value::Object(m) = sanitized {
        s = m;
    }
    s.entry("type").or_insert_with(|| "object".into());
    let props = s.entry("properties").or_insert_with(|| json!({}));
    if let Value::Object(props) = props {
        props.insert(
            "apiVersion".into(),
            json!({"description": API_VERSION_DESC, "type": "string"}),
        );
        props.insert(
            "kind".into(),
            json!({"description": KIND_DESC, "type": "string"}),
        );
        props.insert(
            "metadata".into(),
            json!({"$ref": format!("{V3_PREFIX}{OBJECT_META}"), "description": METADATA_DESC}),
        );
    }
    s.insert(GVK_EXT.into(), json!([schema::gvk(group, version, kind)]));
    Value::Object(s)
}
