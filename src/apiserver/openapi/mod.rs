//! The OpenAPI documents of the API server: `/openapi/v2` (swagger 2.0) and
//! `/openapi/v3` (an index plus one OpenAPI 3.0 document per
//! group-version), in the shape the Kubernetes API server publishes them,
//! so that `kubectl explain`, client-side apply and kubectl's validation
//! find what they expect.
//!
//! This module owns generating those documents from the types' schemas
//! (k8s-openapi's schemars implementations for built-in kinds, the
//! `openAPIV3Schema` of CustomResourceDefinitions for custom kinds),
//! reshaping them to upstream's definition names and conventions, and
//! caching the serialized bytes together with their content hash.
//!
//! It must never serve copied or hand-written specs of built-in types, never
//! touch storage or HTTP (callers hand it served kinds and CRD objects, and
//! put the bytes on the wire), and never panic on CRD input. Documents are
//! built lazily, on the first request for each, so server start-up pays
//! nothing.

mod custom;
mod kinds;
mod params;
mod patch_meta;
mod paths;
mod schema;
mod v2;
mod v2proto;
mod v3;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;

use crate::registry::ApiError;
use custom::Custom;
use paths::KindInfo;
use schema::Catalog;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The Kubernetes version the built-in schemas describe.
pub const KUBERNETES_VERSION: &str = "v1.33.0";

/// One served kind: used to build paths and the
/// x-kubernetes-group-version-kind extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedKind {
    /// "" for the core group.
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// "status", "scale", ...
    pub subresources: Vec<String>,
    /// Whether PATCH takes strategic merge patches (built-in kinds do, custom ones do not).
    pub strategic_merge_patch: bool,
}

type GvKey = (String, String);

/// The built-in half: generated once, never changes.
struct Builtin {
    catalog: Catalog,
    gvs: BTreeMap<GvKey, Vec<KindInfo>>,
}

#[derive(Clone)]
struct Cached {
    bytes: Arc<Vec<u8>>,
    hash: String,
}

#[derive(Default)]
struct State {
    generation: u64,
    custom: Arc<Custom>,
    v3: HashMap<GvKey, Cached>,
    /// The swagger document as JSON and as protobuf, each made on first request.
    v2: Option<Arc<Vec<u8>>>,
    v2_protobuf: Option<Arc<Vec<u8>>>,
}

/// The OpenAPI documents; cheap to create, each document is generated on
/// first request and cached until the custom resources change.
pub struct OpenApi {
    kinds: Vec<ServedKind>,
    builtin: OnceLock<Builtin>,
    state: RwLock<State>,
}

impl OpenApi {
    /// `kinds`: all built-in served kinds. Kinds without a schema in the
    /// kind table still list their group-version but get no paths.
    pub fn new(kinds: &[ServedKind]) -> OpenApi {
        OpenApi {
            kinds: kinds.to_vec(),
            builtin: OnceLock::new(),
            state: RwLock::new(State::default()),
        }
    }

    /// Adds/replaces the custom resource kinds from CRD objects (the whole
    /// current set). Documents of group-versions whose input changed are
    /// regenerated on their next request.
    pub fn set_custom(&self, crds: &[Value]) {
        let new = custom::build(crds);
        let mut state = self.write();
        let old = &state.custom.sources;
        let changed: BTreeSet<GvKey> = old
            .keys()
            .chain(new.sources.keys())
            .filter(|k| old.get(*k) != new.sources.get(*k))
            .cloned()
            .collect();
        if changed.is_empty() {
            return;
        }
        for key in &changed {
            state.v3.remove(key);
        }
        state.v2 = None;
        state.v2_protobuf = None;
        state.generation += 1;
        state.custom = Arc::new(new);
    }

    /// GET /openapi/v3: every group-version with its hashed document URL.
    pub fn v3_index(&self) -> Value {
        let mut paths = Map::new();
        for key in self.group_versions() {
            let path = gv_path(&key);
            if let Some(doc) = self.v3_cached(&key) {
                let url = format!("/openapi/v3/{path}?hash={}", doc.hash);
                paths.insert(path, json!({ "serverRelativeURL": url }));
            }
        }
        json!({ "paths": paths })
    }

    /// GET /openapi/v3/<api/v1 | apis/<group>/<version>>: the serialized
    /// OpenAPI 3.0 document; None for unknown paths. A leading "/",
    /// "/openapi/v3/" and a query string are tolerated.
    pub fn v3_document(&self, path: &str) -> Option<Arc<Vec<u8>>> {
        let key = parse_path(path)?;
        self.v3_cached(&key).map(|c| c.bytes)
    }

    /// The content hash of a v3 document (the `hash` of its URL).
    pub fn v3_hash(&self, path: &str) -> Option<String> {
        let key = parse_path(path)?;
        self.v3_cached(&key).map(|c| c.hash)
    }

    /// GET /openapi/v2: the serialized swagger 2.0 document, as JSON or, for `protobuf`,
    /// as gnostic's `openapi.v2.Document`.
    pub fn v2_document(&self, protobuf: bool) -> Arc<Vec<u8>> {
        let cached = {
            let state = self.read();
            if protobuf {
                state.v2_protobuf.clone()
            } else {
                state.v2.clone()
            }
        };
        if let Some(doc) = cached {
            return doc;
        }
        let (custom, generation) = self.snapshot();
        let builtin = self.builtin();
        let gvs = merged_gvs(builtin, &custom);
        let views: Vec<v2::Gv> = gvs
            .iter()
            .map(|((g, v), kinds)| v2::Gv {
                group: g,
                version: v,
                kinds,
            })
            .collect();
        let resolve =
            |g: &str, v: &str, k: &str| builtin.catalog.kind_def(g, v, k).map(str::to_string);
        let lookup = |n: &str| custom.defs.get(n).or_else(|| builtin.catalog.defs.get(n));
        let doc = v2::document(&views, &resolve, &lookup, KUBERNETES_VERSION);
        let bytes = Arc::new(if protobuf {
            v2proto::encode(&doc)
        } else {
            serde_json::to_vec(&doc).unwrap_or_default()
        });
        let mut state = self.write();
        if state.generation == generation {
            let slot = if protobuf {
                &mut state.v2_protobuf
            } else {
                &mut state.v2
            };
            *slot = Some(bytes.clone());
        }
        bytes
    }

    /// Every group-version served, built-in and custom, sorted.
    pub fn group_versions(&self) -> Vec<(String, String)> {
        let custom = self.read().custom.clone();
        let mut all: BTreeSet<GvKey> = self.builtin_gv_keys();
        all.extend(custom.gvs.keys().cloned());
        all.into_iter().collect()
    }

    fn builtin_gv_keys(&self) -> BTreeSet<GvKey> {
        self.kinds
            .iter()
            .map(|k| (k.group.clone(), k.version.clone()))
            .collect()
    }

    fn builtin(&self) -> &Builtin {
        self.builtin.get_or_init(|| {
            let served = self.builtin_gv_keys();
            let catalog = Catalog::build(&served);
            let mut gvs: BTreeMap<GvKey, Vec<KindInfo>> =
                served.into_iter().map(|k| (k, Vec::new())).collect();
            for k in &self.kinds {
                let Some(def) = catalog.kind_def(&k.group, &k.version, &k.kind) else {
                    continue;
                };
                let info = KindInfo {
                    served: k.clone(),
                    def: def.to_string(),
                    list: format!("{def}List"),
                };
                gvs.entry((k.group.clone(), k.version.clone()))
                    .or_default()
                    .push(info);
            }
            Builtin { catalog, gvs }
        })
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot(&self) -> (Arc<Custom>, u64) {
        let state = self.read();
        (state.custom.clone(), state.generation)
    }

    fn v3_cached(&self, key: &GvKey) -> Option<Cached> {
        if let Some(c) = self.read().v3.get(key) {
            return Some(c.clone());
        }
        let (custom, generation) = self.snapshot();
        let builtin = self.builtin();
        let builtin_kinds = builtin.gvs.get(key);
        let custom_kinds = custom.gvs.get(key);
        if builtin_kinds.is_none() && custom_kinds.is_none() {
            return None;
        }
        let kinds = merge_kinds(builtin_kinds, custom_kinds);
        let resolve =
            |g: &str, v: &str, k: &str| builtin.catalog.kind_def(g, v, k).map(str::to_string);
        let lookup = |n: &str| custom.defs.get(n).or_else(|| builtin.catalog.defs.get(n));
        let doc = v3::document(&key.0, &key.1, &kinds, &resolve, &lookup);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let cached = Cached {
            hash: content_hash(&bytes),
            bytes: Arc::new(bytes),
        };
        let mut state = self.write();
        if state.generation == generation {
            state.v3.insert(key.clone(), cached.clone());
        }
        Some(cached)
    }
}

/// Built-in kinds of a group-version followed by the custom ones; a custom
/// kind replaces a built-in kind of the same name.
fn merge_kinds(builtin: Option<&Vec<KindInfo>>, custom: Option<&Vec<KindInfo>>) -> Vec<KindInfo> {
    let custom = custom.map(Vec::as_slice).unwrap_or_default();
    let mut out: Vec<KindInfo> = builtin
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|b| !custom.iter().any(|c| c.served.kind == b.served.kind))
        .map(clone_kind)
        .collect();
    out.extend(custom.iter().map(clone_kind));
    out
}

fn clone_kind(k: &KindInfo) -> KindInfo {
    KindInfo {
        served: k.served.clone(),
        def: k.def.clone(),
        list: k.list.clone(),
    }
}

fn merged_gvs(builtin: &Builtin, custom: &Custom) -> BTreeMap<GvKey, Vec<KindInfo>> {
    let mut keys: BTreeSet<&GvKey> = builtin.gvs.keys().collect();
    keys.extend(custom.gvs.keys());
    keys.into_iter()
        .map(|k| {
            (
                k.clone(),
                merge_kinds(builtin.gvs.get(k), custom.gvs.get(k)),
            )
        })
        .collect()
}

/// ("", "v1") → "api/v1"; ("apps", "v1") → "apis/apps/v1".
fn gv_path((group, version): &GvKey) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The inverse of [`gv_path`], tolerant of a leading "/", the
/// "/openapi/v3/" prefix and a query string.
fn parse_path(path: &str) -> Option<GvKey> {
    let path = path.split('?').next().unwrap_or_default();
    let path = path.trim_start_matches('/');
    let path = path.strip_prefix("openapi/v3/").unwrap_or(path);
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match parts.as_slice() {
        ["api", version] if !version.is_empty() => Some((String::new(), version.to_string())),
        ["apis", group, version] if !group.is_empty() && !version.is_empty() => {
            Some((group.to_string(), version.to_string()))
        }
        _ => None,
    }
}

/// A 128-bit content hash (two FNV-1a 64 lanes), upper-case hex.
fn content_hash(bytes: &[u8]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in bytes {
        a = (a ^ u64::from(byte)).wrapping_mul(PRIME);
        b = (b ^ u64::from(byte.rotate_left(3)))
            .wrapping_mul(PRIME)
            .rotate_left(7);
    }
    b ^= bytes.len() as u64;
    format!("{a:016X}{b:016X}")
}

/// The protobuf media types of the swagger document: client-go asks for the first, whose `@`
/// Go's MIME parser refuses in a Content-Type, so the answer always names the second.
const V2_PROTOBUF: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
];

/// The media type `/openapi/v2` answers an `Accept` header with: the first of its entries
/// that is JSON, a wildcard or one of the protobuf types; 406 when none is.
pub fn v2_content_type(accept: Option<&str>) -> Result<&'static str, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok("application/json");
    };
    for part in accept.split(',') {
        let mt = part.split(';').next().unwrap_or_default().trim();
        if V2_PROTOBUF.iter().any(|t| t.eq_ignore_ascii_case(mt)) {
            return Ok(V2_PROTOBUF[1]);
        }
        if matches!(mt, "application/json" | "application/*" | "*/*") {
            return Ok("application/json");
        }
    }
    Err(ApiError::not_acceptable(format!(
        "only the following media types are accepted: application/json, {}",
        V2_PROTOBUF.join(", ")
    )))
}
