//! JSON value -> protobuf message, the reverse walk over the schema table.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::Value;

use super::decode::MAX_DEPTH;
use super::schema::{message, Field, Kind, Msg, Special, INLINE, KEEP, REP, SKIP};
use super::wire::{put_bytes, put_key, put_varint, FIXED64, VARINT};
use super::ProtoError;

/// Append the message of type `index` for JSON value `v` to `out`.
pub fn encode_message(
    v: &Value,
    index: u16,
    depth: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    let msg = message(index)?;
    let field = |tag: u32| msg.field(tag).map(|(_, f)| f);
    let invalid = |reason: &str| ProtoError::InvalidValue {
        field: String::new(),
        message: msg.name,
        reason: reason.to_string(),
    };
    match (msg.special, v) {
        (Special::None, Value::Object(obj)) => {
            for f in msg.fields.iter().filter(|f| !f.has(SKIP)) {
                if f.has(INLINE) {
                    put_field(out, f, v, msg, depth)?;
                } else if let Some(value) = obj.get(f.json) {
                    if !value.is_null() {
                        put_field(out, f, value, msg, depth)?;
                    } else if is_zero_time(f)? {
                        // A non-pointer Go Time is always on the wire; zero is empty.
                        put_bytes(out, f.tag, b"");
                    }
                }
            }
        }
        (Special::None, _) => return Err(invalid("expected an object")),
        (Special::Quantity, Value::String(s)) => put_bytes(out, 1, s.as_bytes()),
        (Special::Quantity, Value::Number(n)) => put_bytes(out, 1, n.to_string().as_bytes()),
        (Special::IntOrString, Value::Number(n)) => {
            let n = n.as_i64().ok_or_else(|| invalid("expected an integer"))?;
            put_int(out, 1, 0);
            put_int(out, 2, n);
            put_bytes(out, 3, b"");
        }
        (Special::IntOrString, Value::String(s)) => {
            put_int(out, 1, 1);
            put_int(out, 2, 0);
            put_bytes(out, 3, s.as_bytes());
        }
        (Special::Time | Special::MicroTime, Value::String(s)) => {
            let ts: jiff::Timestamp = s
                .parse()
                .map_err(|_| invalid("expected an RFC 3339 time"))?;
            put_int(out, 1, ts.as_second());
            put_int(out, 2, i64::from(ts.subsec_nanosecond()));
        }
        (Special::Duration, Value::String(s)) => {
            put_int(
                out,
                1,
                crate::goduration::parse(s).ok_or_else(|| invalid("expected a duration"))?,
            );
        }
        (Special::RawJson, value) => {
            let raw =
                serde_json::to_vec(value).map_err(|e| ProtoError::InvalidJson(e.to_string()))?;
            put_bytes(out, 1, &raw);
        }
        (Special::OrArray | Special::OrStringArray, Value::Array(items)) => {
            let f = field(2).ok_or_else(|| invalid("schema"))?;
            for item in items {
                put_one(out, f, item, msg, depth)?;
            }
        }
        (Special::OrArray | Special::OrStringArray, Value::Object(_)) => {
            put_one(
                out,
                field(1).ok_or_else(|| invalid("schema"))?,
                v,
                msg,
                depth,
            )?;
        }
        (Special::OrBool, Value::Bool(b)) => put_int(out, 1, i64::from(*b)),
        (Special::OrBool, Value::Object(_)) => {
            put_int(out, 1, 1);
            put_one(
                out,
                field(2).ok_or_else(|| invalid("schema"))?,
                v,
                msg,
                depth,
            )?;
        }
        (Special::StringList, Value::Array(_)) => {
            put_field(
                out,
                field(1).ok_or_else(|| invalid("schema"))?,
                v,
                msg,
                depth,
            )?;
        }
        _ => return Err(invalid("unexpected json type")),
    }
    Ok(())
}

fn is_zero_time(f: &Field) -> Result<bool, ProtoError> {
    let Kind::Msg(index) = f.kind else {
        return Ok(false);
    };
    let timed = matches!(message(index)?.special, Special::Time | Special::MicroTime);
    Ok(timed && !f.has(REP) && !f.has(KEEP))
}

fn put_int(out: &mut Vec<u8>, tag: u32, n: i64) {
    put_key(out, tag, VARINT);
    put_varint(out, n as u64);
}

/// Write field `f` (repeated, map or single) for JSON value `v`.
fn put_field(
    out: &mut Vec<u8>,
    f: &Field,
    v: &Value,
    msg: &Msg,
    depth: usize,
) -> Result<(), ProtoError> {
    let invalid = |reason: &str| ProtoError::InvalidValue {
        field: f.json.to_string(),
        message: msg.name,
        reason: reason.to_string(),
    };
    match f.kind {
        Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
            let obj = v.as_object().ok_or_else(|| invalid("expected an object"))?;
            let value_kind = match f.kind {
                Kind::MapStr => Kind::Str,
                Kind::MapBytes => Kind::Bytes,
                other => other,
            };
            let value_field = Field {
                tag: 2,
                json: f.json,
                kind: value_kind,
                flags: 0,
            };
            let mut keys: Vec<&String> = obj.keys().collect();
            keys.sort();
            for key in keys {
                let mut entry = Vec::new();
                put_bytes(&mut entry, 1, key.as_bytes());
                if let Some(value) = obj.get(key).filter(|x| !x.is_null()) {
                    put_one(&mut entry, &value_field, value, msg, depth)?;
                }
                put_bytes(out, f.tag, &entry);
            }
            Ok(())
        }
        _ if f.has(REP) => {
            let items = v.as_array().ok_or_else(|| invalid("expected an array"))?;
            items
                .iter()
                .try_for_each(|item| put_one(out, f, item, msg, depth))
        }
        _ => put_one(out, f, v, msg, depth),
    }
}

/// Write one value of field `f`.
fn put_one(
    out: &mut Vec<u8>,
    f: &Field,
    v: &Value,
    msg: &Msg,
    depth: usize,
) -> Result<(), ProtoError> {
    let invalid = |reason: &str| ProtoError::InvalidValue {
        field: f.json.to_string(),
        message: msg.name,
        reason: reason.to_string(),
    };
    match f.kind {
        Kind::Str => put_bytes(
            out,
            f.tag,
            v.as_str()
                .ok_or_else(|| invalid("expected a string"))?
                .as_bytes(),
        ),
        Kind::Bool => put_int(
            out,
            f.tag,
            i64::from(v.as_bool().ok_or_else(|| invalid("expected a boolean"))?),
        ),
        Kind::I32 | Kind::I64 => put_int(
            out,
            f.tag,
            v.as_i64().ok_or_else(|| invalid("expected an integer"))?,
        ),
        Kind::F64 => {
            put_key(out, f.tag, FIXED64);
            let x = v.as_f64().ok_or_else(|| invalid("expected a number"))?;
            out.extend_from_slice(&x.to_bits().to_le_bytes());
        }
        Kind::Bytes => {
            let text = v
                .as_str()
                .ok_or_else(|| invalid("expected a base64 string"))?;
            let data = BASE64
                .decode(text)
                .map_err(|_| invalid("expected a base64 string"))?;
            put_bytes(out, f.tag, &data);
        }
        Kind::Msg(index) | Kind::MapMsg(index) => {
            let mut sub = Vec::new();
            encode_message(v, index, depth + 1, &mut sub)?;
            put_bytes(out, f.tag, &sub);
        }
        Kind::MapStr | Kind::MapBytes => return Err(invalid("unexpected map")),
    }
    Ok(())
}
