//! Definitions: generating them from k8s-openapi's schemars implementations,
//! reshaping them into the form the Kubernetes API server publishes, and the
//! schema-aware walks (reference rewriting, reference closure) the documents
//! are assembled with.
//!
//! Definitions are kept in one canonical form: references read
//! `#/components/schemas/<name>` and may carry siblings (a field's
//! description next to its `$ref`). The v3 and v2 renderers convert from it.

use super::kinds::{self, KINDS};
use super::patch_meta;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashMap, VecDeque};

/// Reference prefix in the canonical form and in OpenAPI v3 documents.
pub(super) const V3_PREFIX: &str = "#/components/schemas/";
/// Reference prefix in the swagger 2.0 document.
pub(super) const V2_PREFIX: &str = "#/definitions/";

pub(super) const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
pub(super) const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";
pub(super) const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
pub(super) const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub(super) const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub(super) const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub(super) const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub(super) const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub(super) const API_RESOURCE_LIST: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList";

pub(super) const GVK_EXT: &str = "x-kubernetes-group-version-kind";

pub(super) const API_VERSION_DESC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
pub(super) const KIND_DESC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
pub(super) const METADATA_DESC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA_DESC: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// All built-in definitions in canonical form, and which definition
/// describes which kind.
pub(super) struct Catalog {
    pub defs: Map<String, Value>,
    kinds: HashMap<(String, String, String), String>,
}

impl Catalog {
    /// Generates every definition of the kind table and the meta types.
    /// `served_gvs` are (group, version) pairs named in the shared meta
    /// types' group-version-kind lists.
    pub fn build(served_gvs: &BTreeSet<(String, String)>) -> Catalog {
        let settings = schemars::generate::SchemaSettings::draft2020_12().with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        });
        let mut generator = settings.into_generator();
        let mut kinds: HashMap<(String, String, String), String> = HashMap::new();
        for entry in KINDS {
            let name = (entry.register)(&mut generator);
            kinds.insert(
                (entry.group.into(), entry.version.into(), entry.kind.into()),
                name,
            );
        }
        for (_, register) in kinds::meta_types() {
            register(&mut generator);
        }
        let mut defs = generator.take_definitions(false);

        defs.insert(INT_OR_STRING.into(), int_or_string_v3(&defs));
        defs.insert(QUANTITY.into(), quantity_v3(&defs));

        for ((group, version, kind), name) in &kinds {
            if let Some(Value::Object(def)) = defs.get_mut(name) {
                def.insert(GVK_EXT.into(), json!([gvk(group, version, kind)]));
            }
            let list = list_definition(name, group, version, kind);
            defs.insert(format!("{name}List"), list);
        }
        let core = (String::new(), "v1".to_string());
        let mut shared: Vec<Value> = vec![gvk("", "v1", "")];
        shared.extend(
            served_gvs
                .iter()
                .filter(|gv| **gv != core)
                .map(|(g, v)| gvk(g, v, "")),
        );
        for (name, kind) in [
            (DELETE_OPTIONS, "DeleteOptions"),
            (WATCH_EVENT, "WatchEvent"),
        ] {
            let list: Vec<Value> = shared
                .iter()
                .map(|v| {
                    let mut v = v.clone();
                    v["kind"] = kind.into();
                    v
                })
                .collect();
            if let Some(Value::Object(def)) = defs.get_mut(name) {
                def.insert(GVK_EXT.into(), Value::Array(list));
            }
        }
        for (name, kind) in [(STATUS, "Status"), (API_RESOURCE_LIST, "APIResourceList")] {
            if let Some(Value::Object(def)) = defs.get_mut(name) {
                def.insert(GVK_EXT.into(), json!([gvk("", "v1", kind)]));
            }
        }
        for (name, def) in defs.iter_mut() {
            // k8s-openapi marks non-optional Rust fields as required;
            // upstream requires `metadata` only of core/v1 Event.
            if name != "io.k8s.api.core.v1.Event" {
                unrequire_metadata(def);
            }
        }
        patch_meta::apply(&mut defs);
        Catalog { defs, kinds }
    }

    /// The definition name describing a kind.
    pub fn kind_def(&self, group: &str, version: &str, kind: &str) -> Option<&str> {
        self.kinds
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .map(String::as_str)
    }
}

fn unrequire_metadata(def: &mut Value) {
    let Some(Value::Array(required)) = def.get_mut("required") else {
        return;
    };
    required.retain(|r| r != "metadata");
    if required.is_empty() {
        if let Value::Object(map) = def {
            map.remove("required");
        }
    }
}

/// `{"group","kind","version"}` as every GVK extension spells it.
pub(super) fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "kind": kind, "version": version})
}

fn description_of(defs: &Map<String, Value>, name: &str) -> Value {
    defs.get(name)
        .and_then(|d| d.get("description"))
        .cloned()
        .unwrap_or_else(|| Value::String(String::new()))
}

fn int_or_string_v3(defs: &Map<String, Value>) -> Value {
    json!({
        "description": description_of(defs, INT_OR_STRING),
        "format": "int-or-string",
        "oneOf": [{"type": "integer"}, {"type": "string"}],
    })
}

fn quantity_v3(defs: &Map<String, Value>) -> Value {
    json!({
        "description": description_of(defs, QUANTITY),
        "oneOf": [{"type": "string"}, {"type": "number"}],
    })
}

/// The `<Kind>List` definition for a kind whose item definition is `item`.
pub(super) fn list_definition(item: &str, group: &str, version: &str, kind: &str) -> Value {
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "properties": {
            "apiVersion": {"description": API_VERSION_DESC, "type": "string"},
            "items": {
                "description": format!("List of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{V3_PREFIX}{item}")},
            },
            "kind": {"description": KIND_DESC, "type": "string"},
            "metadata": {"$ref": format!("{V3_PREFIX}{LIST_META}"), "description": LIST_METADATA_DESC},
        },
        "required": ["items"],
        GVK_EXT: [gvk(group, version, &format!("{kind}List"))],
    })
}

/// Keywords whose value is a schema.
const SCHEMA_KEYS: [&str; 4] = ["items", "additionalProperties", "not", "additionalItems"];
/// Keywords whose value is a map of schemas.
const SCHEMA_MAP_KEYS: [&str; 3] = ["properties", "patternProperties", "definitions"];
/// Keywords whose value is a list of schemas.
const SCHEMA_LIST_KEYS: [&str; 4] = ["allOf", "anyOf", "oneOf", "items"];

/// Calls `f` on `schema` and then on every subschema below it, top down.
pub(super) fn walk_mut(schema: &mut Value, f: &mut dyn FnMut(&mut Map<String, Value>)) {
    let Value::Object(map) = schema else { return };
    f(map);
    for key in SCHEMA_KEYS {
        if let Some(v @ Value::Object(_)) = map.get_mut(key) {
            walk_mut(v, f);
        }
    }
    for key in SCHEMA_MAP_KEYS {
        if let Some(Value::Object(children)) = map.get_mut(key) {
            for child in children.values_mut() {
                walk_mut(child, f);
            }
        }
    }
    for key in SCHEMA_LIST_KEYS {
        if let Some(Value::Array(children)) = map.get_mut(key) {
            for child in children {
                walk_mut(child, f);
            }
        }
    }
}

/// Calls `f` on every `$ref` below `schema`.
pub(super) fn refs(schema: &Value, f: &mut dyn FnMut(&str)) {
    let Value::Object(map) = schema else { return };
    if let Some(Value::String(r)) = map.get("$ref") {
        f(r);
    }
    for key in SCHEMA_KEYS {
        if let Some(v @ Value::Object(_)) = map.get(key) {
            refs(v, f);
        }
    }
    for key in SCHEMA_MAP_KEYS {
        if let Some(Value::Object(children)) = map.get(key) {
            children.values().for_each(|c| refs(c, f));
        }
    }
    for key in SCHEMA_LIST_KEYS {
        if let Some(Value::Array(children)) = map.get(key) {
            children.iter().for_each(|c| refs(c, f));
        }
    }
}

/// Every definition name reachable from `roots`, in a stable (sorted) order.
/// `lookup` resolves a name to its canonical definition.
pub(super) fn closure<'a>(
    roots: impl IntoIterator<Item = String>,
    lookup: &dyn Fn(&str) -> Option<&'a Value>,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<String> = roots.into_iter().collect();
    while let Some(name) = queue.pop_front() {
        if seen.contains(&name) {
            continue;
        }
        let Some(def) = lookup(&name) else { continue };
        seen.insert(name);
        refs(def, &mut |r| {
            if let Some(target) = r.strip_prefix(V3_PREFIX) {
                if !seen.contains(target) {
                    queue.push_back(target.to_string());
                }
            }
        });
    }
    seen
}

/// Canonical → OpenAPI v3: a `$ref` with siblings becomes
/// `allOf: [{$ref}]` next to those siblings, as upstream publishes it.
pub(super) fn to_v3(mut schema: Value) -> Value {
    walk_mut(&mut schema, &mut |map| {
        if map.len() > 1 {
            if let Some(r) = map.remove("$ref") {
                map.insert("allOf".into(), json!([{ "$ref": r }]));
            }
        }
    });
    schema
}

/// Canonical → swagger 2.0: references point at `#/definitions/`, the
/// v3-only keywords are dropped, and the int-or-string and quantity types
/// take their v2 spelling.
pub(super) fn to_v2(name: &str, mut schema: Value) -> Value {
    if name == INT_OR_STRING || name == QUANTITY {
        let description = schema.get("description").cloned().unwrap_or_default();
        let mut v2 = json!({"description": description, "type": "string"});
        if name == INT_OR_STRING {
            v2["format"] = "int-or-string".into();
        }
        return v2;
    }
    walk_mut(&mut schema, &mut |map| {
        for key in ["oneOf", "anyOf", "not", "nullable"] {
            map.remove(key);
        }
        if map.get("allOf").is_some() && !map.contains_key("$ref") {
            // Only the single-reference form survives in v2.
            if let Some(Value::Array(all)) = map.remove("allOf") {
                if let [Value::Object(only)] = all.as_slice() {
                    if let Some(r) = only.get("$ref") {
                        map.insert("$ref".into(), r.clone());
                    }
                }
            }
        }
        if let Some(Value::String(r)) = map.get_mut("$ref") {
            if let Some(target) = r.strip_prefix(V3_PREFIX) {
                *r = format!("{V2_PREFIX}{target}");
            }
        }
    });
    schema
}
