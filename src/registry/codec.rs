//! How objects are laid out in the store: JSON, with `apiVersion`, `kind` and `metadata` as
//! the first keys and without `metadata.resourceVersion`, which is the store's revision and is
//! added on the way out. Keeping `metadata` first lets a list splice the resourceVersion into
//! the stored bytes without parsing whole objects.

use super::error::ApiError;
use crate::store::{KeyValue, Revision};
use bytes::Bytes;
use serde_json::{Map, Value};

/// Serialize an object for storage.
pub fn encode(obj: &Value) -> Result<Bytes, ApiError> {
    let Value::Object(m) = obj else {
        return Err(ApiError::internal("object is not a JSON object"));
    };
    let mut out = Map::with_capacity(m.len());
    for k in ["apiVersion", "kind", "metadata"] {
        if let Some(v) = m.get(k) {
            out.insert(k.to_string(), v.clone());
        }
    }
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.remove("resourceVersion");
        meta.remove("selfLink");
    }
    for (k, v) in m {
        if !out.contains_key(k) {
            out.insert(k.clone(), v.clone());
        }
    }
    serde_json::to_vec(&Value::Object(out))
        .map(Bytes::from)
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// Parse a stored object and set its resourceVersion.
pub fn decode(kv: &KeyValue) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
    set_rv(&mut v, kv.mod_revision);
    Ok(v)
}

pub fn set_rv(v: &mut Value, rev: Revision) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
}

pub fn get_rv(v: &Value) -> Option<Revision> {
    v["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
}

/// Append the stored bytes of an object to `out` with its resourceVersion spliced into the
/// top-level metadata. Falls back to a full parse if the layout is not the expected one.
pub fn write_with_rv(out: &mut Vec<u8>, kv: &KeyValue) -> Result<(), ApiError> {
    const META: &[u8] = b"\"metadata\":{";
    let b = &kv.value[..];
    if let Some(i) = find(b, META) {
        let at = i + META.len();
        out.extend_from_slice(&b[..at]);
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(kv.mod_revision.to_string().as_bytes());
        out.push(b'"');
        if b.get(at) != Some(&b'}') {
            out.push(b',');
        }
        out.extend_from_slice(&b[at..]);
        return Ok(());
    }
    let v = decode(kv)?;
    serde_json::to_writer(out, &v).map_err(|e| ApiError::internal(e.to_string()))
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splice_equals_decode() {
        let obj = json!({"kind": "ConfigMap", "data": {"metadata": "x"}, "apiVersion": "v1", "metadata": {"name": "a", "resourceVersion": "9"}});
        let kv = KeyValue {
            key: "k".into(),
            value: encode(&obj).unwrap(),
            create_revision: 3,
            mod_revision: 7,
        };
        let mut out = vec![];
        write_with_rv(&mut out, &kv).unwrap();
        let spliced: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(spliced, decode(&kv).unwrap());
        assert_eq!(spliced["metadata"]["resourceVersion"], "7");
        let empty = json!({"apiVersion": "v1", "kind": "X", "metadata": {}});
        let kv = KeyValue {
            key: "k".into(),
            value: encode(&empty).unwrap(),
            create_revision: 1,
            mod_revision: 1,
        };
        let mut out = vec![];
        write_with_rv(&mut out, &kv).unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&out).unwrap()["metadata"]["resourceVersion"],
            "1"
        );
    }
}
