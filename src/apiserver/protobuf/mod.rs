//! Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`).
//!
//! This module owns the translation between the protobuf wire form that
//! client-go sends for typed objects and the JSON form the rest of the API
//! server stores and serves. The wire schema (field numbers, wire types,
//! JSON names, omitempty/pointer semantics) lives in the generated `table`;
//! the code here only walks it.
//!
//! It must never trust its input: every length is bounds-checked, nesting is
//! capped at [`decode::MAX_DEPTH`], unknown kinds and malformed bytes become a
//! [`ProtoError`], and nothing here panics, allocates from an unchecked length
//! or touches storage, admission or defaulting; those belong to the callers.

mod decode;
mod encode;
#[cfg(test)]
mod hostile_tests;
mod schema;
mod table;
#[cfg(test)]
mod tests;
pub(super) mod wire;

use serde_json::{Map, Value};

use wire::{Reader, LEN};

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: [u8; 4] = *b"k8s\0";

#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("bad magic: body does not start with \"k8s\\0\"")]
    BadMagic,
    #[error("truncated varint at offset {0}")]
    TruncatedVarint(usize),
    #[error("varint overflows 64 bits at offset {0}")]
    VarintOverflow(usize),
    #[error("truncated field at offset {0}")]
    Truncated(usize),
    #[error("invalid field number at offset {0}")]
    BadTag(usize),
    #[error("unsupported wire type {0} at offset {1}")]
    UnsupportedWireType(u8, usize),
    #[error("wrong wire type for field {field} of {message}")]
    WrongWireType { field: u32, message: &'static str },
    #[error("unknown kind \"{0}\"")]
    UnknownKind(String),
    #[error("missing apiVersion or kind")]
    MissingTypeMeta,
    #[error("unsupported content encoding \"{0}\"")]
    UnsupportedEncoding(String),
    #[error("nesting too deep")]
    TooDeep,
    #[error("invalid embedded json: {0}")]
    InvalidJson(String),
    #[error("time out of range: {0} seconds")]
    TimeOutOfRange(i64),
    #[error("invalid value for field {field} of {message}: {reason}")]
    InvalidValue {
        field: String,
        message: &'static str,
        reason: String,
    },
    #[error("schema table has no message {0}")]
    Schema(u16),
}

/// Decode a Kubernetes protobuf body (magic, then a `runtime.Unknown` whose
/// raw bytes are the object message) into the object's JSON form, with
/// `apiVersion` and `kind` set.
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    decode_envelope(body, 0)
}

/// Encode a JSON object (with `apiVersion` and `kind`) as a Kubernetes
/// protobuf body. Fields the schema does not know are dropped.
pub fn encode(obj: &Value) -> Result<Vec<u8>, ProtoError> {
    let text = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let (Some(api_version), Some(kind)) = (text("apiVersion"), text("kind")) else {
        return Err(ProtoError::MissingTypeMeta);
    };
    let index = schema::kind_message(api_version, kind)?;
    let mut raw = Vec::new();
    encode::encode_message(obj, index, 0, &mut raw)?;

    let mut type_meta = Vec::new();
    wire::put_bytes(&mut type_meta, 1, api_version.as_bytes());
    wire::put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut out = MAGIC.to_vec();
    wire::put_bytes(&mut out, 1, &type_meta);
    wire::put_bytes(&mut out, 2, &raw);
    wire::put_bytes(&mut out, 3, b"");
    wire::put_bytes(&mut out, 4, b"");
    Ok(out)
}

fn decode_envelope(body: &[u8], depth: usize) -> Result<Value, ProtoError> {
    if depth > decode::MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    let rest = body.strip_prefix(&MAGIC).ok_or(ProtoError::BadMagic)?;
    let mut r = Reader::new(rest, MAGIC.len());
    let (mut api_version, mut kind, mut encoding) = (String::new(), String::new(), String::new());
    let mut raw: (&[u8], usize) = (&[], 0);
    while let Some((tag, wt)) = r.key()? {
        if wt != LEN {
            if (1..=4).contains(&tag) {
                return Err(ProtoError::WrongWireType {
                    field: tag,
                    message: "io.k8s.apimachinery.pkg.runtime.Unknown",
                });
            }
            r.skip(wt)?;
            continue;
        }
        let (data, at) = r.bytes()?;
        match tag {
            1 => (api_version, kind) = type_meta(data, at)?,
            2 => raw = (data, at),
            3 => encoding = String::from_utf8_lossy(data).into_owned(),
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(ProtoError::UnsupportedEncoding(encoding));
    }
    if kind.is_empty() {
        return Err(ProtoError::MissingTypeMeta);
    }
    let index = schema::kind_message(&api_version, &kind)?;
    let object = decode::decode_message(raw.0, raw.1, index, depth + 1)?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::from(api_version));
    out.insert("kind".into(), Value::from(kind));
    if let Value::Object(fields) = object {
        out.extend(fields);
    }
    Ok(Value::Object(out))
}

/// runtime.TypeMeta: {1: apiVersion, 2: kind}.
fn type_meta(buf: &[u8], base: usize) -> Result<(String, String), ProtoError> {
    let (mut api_version, mut kind) = (String::new(), String::new());
    let mut r = Reader::new(buf, base);
    while let Some((tag, wt)) = r.key()? {
        match (tag, wt) {
            (1 | 2, LEN) => {
                let text = String::from_utf8_lossy(r.bytes()?.0).into_owned();
                if tag == 1 {
                    api_version = text
                } else {
                    kind = text
                }
            }
            (1 | 2, _) => {
                return Err(ProtoError::WrongWireType {
                    field: tag,
                    message: "io.k8s.apimachinery.pkg.runtime.TypeMeta",
                });
            }
            _ => r.skip(wt)?,
        }
    }
    Ok((api_version, kind))
}
