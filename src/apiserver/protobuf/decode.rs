//! Protobuf message -> JSON value, driven by the generated schema table.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::schema::{message, Field, Kind, Msg, Special, INLINE, KEEP, REP, SKIP};
use super::wire::{Reader, FIXED64, LEN, VARINT};
use super::ProtoError;

/// Deepest message nesting accepted; deeper input is rejected, not recursed.
pub const MAX_DEPTH: usize = 100;

/// Decode the message `buf` (found at `base` in the body) of type `index`.
pub fn decode_message(
    buf: &[u8],
    base: usize,
    index: u16,
    depth: usize,
) -> Result<Value, ProtoError> {
    if depth > MAX_DEPTH {
        return Err(ProtoError::TooDeep);
    }
    let msg = message(index)?;
    match msg.special {
        Special::RawJson => return raw_json(buf, base, depth),
        Special::Time | Special::MicroTime if buf.is_empty() => return Ok(Value::Null),
        _ => {}
    }
    let slots = read_slots(buf, base, msg, depth)?;
    let by_tag = |tag: u32| {
        msg.fields
            .iter()
            .zip(&slots)
            .find(|(f, _)| f.tag == tag)
            .and_then(|(_, v)| v.as_ref())
    };
    let int = |tag: u32| by_tag(tag).and_then(Value::as_i64).unwrap_or(0);
    let non_empty = |tag: u32| by_tag(tag).filter(|v| v.as_array().is_some_and(|a| !a.is_empty()));
    Ok(match msg.special {
        Special::None => object(msg, slots),
        Special::Quantity => by_tag(1).cloned().unwrap_or_else(|| Value::from("0")),
        Special::IntOrString if int(1) == 1 => {
            by_tag(3).cloned().unwrap_or_else(|| Value::from(""))
        }
        Special::IntOrString => Value::from(int(2)),
        Special::Time => Value::from(format_time(int(1), int(2), false)?),
        Special::MicroTime => Value::from(format_time(int(1), int(2), true)?),
        Special::Duration => Value::from(go_duration(int(1))),
        Special::OrArray => non_empty(2)
            .or_else(|| by_tag(1))
            .cloned()
            .unwrap_or(Value::Null),
        Special::OrBool => match by_tag(2) {
            Some(schema) => schema.clone(),
            None => Value::Bool(by_tag(1).and_then(Value::as_bool).unwrap_or(false)),
        },
        Special::OrStringArray => non_empty(2)
            .or_else(|| by_tag(1))
            .cloned()
            .unwrap_or(Value::Null),
        Special::StringList => by_tag(1)
            .cloned()
            .unwrap_or_else(|| Value::Array(Vec::new())),
        Special::RawJson => Value::Null,
    })
}

/// Render the present fields in declaration order, as the Go JSON encoder would.
fn object(msg: &Msg, slots: Vec<Option<Value>>) -> Value {
    let mut out = Map::new();
    for (field, slot) in msg.fields.iter().zip(slots) {
        let Some(value) = slot else { continue };
        if field.has(SKIP) {
            continue;
        }
        if field.has(INLINE) {
            if let Value::Object(inner) = value {
                out.extend(inner);
            }
            continue;
        }
        if !field.has(REP) && !field.has(KEEP) && is_zero_scalar(field.kind, &value) {
            continue;
        }
        out.insert(field.json.to_string(), value);
    }
    Value::Object(out)
}

fn is_zero_scalar(kind: Kind, v: &Value) -> bool {
    match kind {
        Kind::Str | Kind::Bytes => v.as_str() == Some(""),
        Kind::Bool => v.as_bool() == Some(false),
        Kind::I32 | Kind::I64 => v.as_i64() == Some(0),
        Kind::F64 => v.as_f64() == Some(0.0),
        _ => false,
    }
}

fn read_slots(
    buf: &[u8],
    base: usize,
    msg: &Msg,
    depth: usize,
) -> Result<Vec<Option<Value>>, ProtoError> {
    let mut slots: Vec<Option<Value>> = msg.fields.iter().map(|_| None).collect();
    let mut r = Reader::new(buf, base);
    while let Some((tag, wt)) = r.key()? {
        let Some((i, field)) = msg.field(tag) else {
            r.skip(wt)?;
            continue;
        };
        let wrong = || ProtoError::WrongWireType {
            field: tag,
            message: msg.name,
        };
        let slot = slots.get_mut(i).ok_or_else(wrong)?;
        match field.kind {
            Kind::MapStr | Kind::MapBytes | Kind::MapMsg(_) => {
                if wt != LEN {
                    return Err(wrong());
                }
                let (entry, at) = r.bytes()?;
                let (k, v) = map_entry(entry, at, field, msg, depth)?;
                if let Value::Object(m) = slot.get_or_insert_with(|| Value::Object(Map::new())) {
                    m.insert(k, v);
                }
            }
            _ if field.has(REP) => {
                let list = slot.get_or_insert_with(|| Value::Array(Vec::new()));
                let Value::Array(items) = list else { continue };
                let packed = wt == LEN
                    && matches!(field.kind, Kind::Bool | Kind::I32 | Kind::I64 | Kind::F64);
                if packed {
                    let (data, at) = r.bytes()?;
                    let mut inner = Reader::new(data, at);
                    while !inner.at_end() {
                        items.push(scalar(
                            &mut inner,
                            field,
                            scalar_wire(field.kind),
                            msg,
                            depth,
                        )?);
                    }
                } else {
                    items.push(scalar(&mut r, field, wt, msg, depth)?);
                }
            }
            _ => *slot = Some(scalar(&mut r, field, wt, msg, depth)?),
        }
    }
    Ok(slots)
}

fn scalar_wire(kind: Kind) -> u8 {
    match kind {
        Kind::F64 => FIXED64,
        Kind::Bool | Kind::I32 | Kind::I64 => VARINT,
        _ => LEN,
    }
}

/// Read one non-map value of `field` with wire type `wt`.
fn scalar(
    r: &mut Reader,
    field: &Field,
    wt: u8,
    msg: &Msg,
    depth: usize,
) -> Result<Value, ProtoError> {
    if wt != scalar_wire(field.kind) {
        return Err(ProtoError::WrongWireType {
            field: field.tag,
            message: msg.name,
        });
    }
    Ok(match field.kind {
        Kind::Bool => Value::Bool(r.varint()? != 0),
        Kind::I32 => Value::from(i64::from(r.varint()? as i64 as i32)),
        Kind::I64 => Value::from(r.varint()? as i64),
        Kind::F64 => {
            Number::from_f64(f64::from_bits(r.fixed64()?)).map_or(Value::Null, Value::Number)
        }
        Kind::Str => Value::from(String::from_utf8_lossy(r.bytes()?.0).into_owned()),
        Kind::Bytes => Value::from(BASE64.encode(r.bytes()?.0)),
        Kind::Msg(index) | Kind::MapMsg(index) => {
            let (data, at) = r.bytes()?;
            decode_message(data, at, index, depth + 1)?
        }
        Kind::MapStr | Kind::MapBytes => {
            return Err(ProtoError::WrongWireType {
                field: field.tag,
                message: msg.name,
            });
        }
    })
}

/// A map entry is a message {1: key, 2: value}; absent parts take zero values.
fn map_entry(
    buf: &[u8],
    base: usize,
    field: &Field,
    msg: &Msg,
    depth: usize,
) -> Result<(String, Value), ProtoError> {
    let value_field = Field {
        tag: field.tag,
        json: field.json,
        kind: match field.kind {
            Kind::MapStr => Kind::Str,
            Kind::MapBytes => Kind::Bytes,
            other => other,
        },
        flags: 0,
    };
    let mut key = String::new();
    let mut value = None;
    let mut r = Reader::new(buf, base);
    while let Some((tag, wt)) = r.key()? {
        match tag {
            1 if wt == LEN => key = String::from_utf8_lossy(r.bytes()?.0).into_owned(),
            2 => value = Some(scalar(&mut r, &value_field, wt, msg, depth)?),
            1 => {
                return Err(ProtoError::WrongWireType {
                    field: field.tag,
                    message: msg.name,
                });
            }
            _ => r.skip(wt)?,
        }
    }
    let value = match (value, value_field.kind) {
        (Some(v), _) => v,
        (None, Kind::MapMsg(index)) => decode_message(&[], base, index, depth + 1)?,
        (None, _) => Value::from(""),
    };
    Ok((key, value))
}

/// RawExtension, FieldsV1 and apiextensions JSON: {1: raw bytes} holding
/// JSON, or a nested protobuf envelope.
fn raw_json(buf: &[u8], base: usize, depth: usize) -> Result<Value, ProtoError> {
    let mut raw: Option<&[u8]> = None;
    let mut r = Reader::new(buf, base);
    while let Some((tag, wt)) = r.key()? {
        if tag == 1 && wt == LEN {
            raw = Some(r.bytes()?.0);
        } else {
            r.skip(wt)?;
        }
    }
    match raw {
        None | Some([]) => Ok(Value::Null),
        Some(data) if data.starts_with(&super::MAGIC) => super::decode_envelope(data, depth + 1),
        Some(data) => {
            serde_json::from_slice(data).map_err(|e| ProtoError::InvalidJson(e.to_string()))
        }
    }
}

/// RFC 3339 in UTC: whole seconds for Time, microseconds for MicroTime.
fn format_time(seconds: i64, nanos: i64, micro: bool) -> Result<String, ProtoError> {
    let ts =
        jiff::Timestamp::from_second(seconds).map_err(|_| ProtoError::TimeOutOfRange(seconds))?;
    let base = ts.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    if micro {
        let micros = nanos.clamp(0, 999_999_999) / 1000;
        Ok(format!("{base}.{micros:06}Z"))
    } else {
        Ok(format!("{base}Z"))
    }
}

/// Go's `time.Duration.String()`, e.g. "1h0m0s", "1.5s", "300ms".
pub fn go_duration(nanos: i64) -> String {
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u == 0 {
        return "0s".to_string();
    }
    if u < 1_000_000_000 {
        let (unit, div, width) = match u {
            0..1_000 => ("ns", 1, 0),
            1_000..1_000_000 => ("µs", 1_000, 3),
            _ => ("ms", 1_000_000, 6),
        };
        return format!("{sign}{}{unit}", fraction(u / div, u % div, width));
    }
    let secs = u / 1_000_000_000;
    let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
    let mut out = sign.to_string();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    out.push_str(&fraction(s, u % 1_000_000_000, 9));
    out.push('s');
    out
}

fn fraction(whole: u64, rem: u64, width: usize) -> String {
    if rem == 0 || width == 0 {
        return whole.to_string();
    }
    let digits = format!("{rem:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}
