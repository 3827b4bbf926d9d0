//! CEL's standard functions: `size`, the string predicates, `matches`, the type conversions
//! (`int`, `uint`, `double`, `string`, `bool`, `bytes`, `duration`, `timestamp`, `type`, `dyn`)
//! and the timestamp and duration accessors. Calls this file does not own are passed on to the
//! Kubernetes libraries (`library.rs`).
//!
//! Functions never panic on any input; a call with argument types no overload accepts is
//! cel-go's "no such overload".

use super::eval::Eval;
use super::library;
use super::ops::{dur, ts};
use super::value::{EvalError, Value};
use crate::registry::schema::go_float;
use std::rc::Rc;

/// Every global function name the checker accepts.
pub const GLOBALS: &[&str] = &[
    "size",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "duration",
    "timestamp",
    "type",
    "dyn",
    "url",
    "isURL",
    "quantity",
    "isQuantity",
    "ip",
    "isIP",
    "ip.isCanonical",
    "cidr",
    "isCIDR",
];

/// Every member function name the checker accepts.
pub const MEMBERS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "matches",
    "getFullYear",
    "getMonth",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getDayOfYear",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "isSorted",
    "sum",
    "min",
    "max",
    "find",
    "findAll",
    "getScheme",
    "getHost",
    "getHostname",
    "getPort",
    "getEscapedPath",
    "getQuery",
    "sign",
    "isGreaterThan",
    "isLessThan",
    "compareTo",
    "add",
    "sub",
    "asInteger",
    "isInteger",
    "asApproximateFloat",
    "hasValue",
    "value",
    "orValue",
    "family",
    "isUnspecified",
    "isLoopback",
    "isLinkLocalMulticast",
    "isLinkLocalUnicast",
    "isGlobalUnicast",
    "containsIP",
    "containsCIDR",
    "ip",
    "masked",
    "prefixLength",
];

pub fn call(
    ev: &mut Eval<'_>,
    target: Option<Value>,
    name: &str,
    args: Vec<Value>,
) -> Result<Value, EvalError> {
    use Value::*;
    match (target.as_ref(), name, args.as_slice()) {
        (None, "size", [x]) | (Some(x), "size", []) => x
            .size()
            .map(|n| Int(n as i64))
            .ok_or_else(EvalError::no_overload),
        (Some(String(s)), "contains", [String(t)]) => {
            ev.charge(s.len() as u64 / 8 + 1)?;
            Ok(Bool(s.contains(&**t)))
        }
        (Some(String(s)), "startsWith", [String(t)]) => Ok(Bool(s.starts_with(&**t))),
        (Some(String(s)), "endsWith", [String(t)]) => Ok(Bool(s.ends_with(&**t))),
        (Some(String(s)), "matches", [String(re)]) | (None, "matches", [String(s), String(re)]) => {
            ev.charge(s.len() as u64 / 8 + 1)?;
            Ok(Bool(ev.regex(re)?.is_match(s)))
        }
        (None, "dyn", [x]) => Ok(x.clone()),
        (None, "type", [x]) => Ok(Type(Rc::from(x.type_name()))),
        (None, "int", [x]) => to_int(x),
        (None, "uint", [x]) => to_uint(x),
        (None, "double", [x]) => to_double(x),
        (None, "string", [x]) => to_string(x),
        (None, "bool", [x]) => to_bool(x),
        (None, "bytes", [String(s)]) => Ok(Bytes(Rc::from(s.as_bytes()))),
        (None, "bytes", [b @ Bytes(_)]) => Ok(b.clone()),
        (None, "duration", [String(s)]) => parse_duration(s).and_then(dur),
        (None, "duration", [d @ Duration(_)]) => Ok(d.clone()),
        (None, "timestamp", [String(s)]) => parse_timestamp(s),
        (None, "timestamp", [t @ Timestamp(_)]) => Ok(t.clone()),
        (None, "timestamp", [Int(i)]) => jiff::Timestamp::from_second(*i)
            .map_err(|_| EvalError::new("timestamp overflow"))
            .and_then(ts),
        (Some(Optional(o)), "hasValue", []) => Ok(Bool(o.is_some())),
        (Some(Optional(o)), "value", []) => o
            .as_deref()
            .cloned()
            .ok_or_else(|| EvalError::new("optional.none() dereference")),
        (Some(Optional(o)), "orValue", [x]) => {
            Ok(o.as_deref().cloned().unwrap_or_else(|| x.clone()))
        }
        (Some(Timestamp(t)), acc, []) => timestamp_part(t, acc, None),
        (Some(Timestamp(t)), acc, [String(tz)]) => timestamp_part(t, acc, Some(tz)),
        (Some(Duration(d)), acc, []) => duration_part(d, acc),
        _ => library::call(ev, target.clone(), name, args.clone()),
    }
}

/// cel-go's error for a string that does not convert.
fn conversion(to: &str) -> EvalError {
    EvalError::new(format!("type conversion error from 'string' to '{to}'"))
}

fn to_int(x: &Value) -> Result<Value, EvalError> {
    let range = || EvalError::new("integer overflow");
    Ok(Value::Int(match x {
        Value::Int(i) => *i,
        Value::Uint(u) => i64::try_from(*u).map_err(|_| range())?,
        Value::Double(d) => {
            if d.is_nan() || *d <= -9.223_372_036_854_776e18 || *d >= 9.223_372_036_854_776e18 {
                return Err(range());
            }
            d.trunc() as i64
        }
        Value::String(s) => s.parse().map_err(|_| conversion("int"))?,
        Value::Timestamp(t) => t.as_second(),
        _ => return Err(EvalError::no_overload()),
    }))
}

fn to_uint(x: &Value) -> Result<Value, EvalError> {
    let range = || EvalError::new("unsigned integer overflow");
    Ok(Value::Uint(match x {
        Value::Uint(u) => *u,
        Value::Int(i) => u64::try_from(*i).map_err(|_| range())?,
        Value::Double(d) => {
            if d.is_nan() || *d < 0.0 || *d >= 1.8446744073709552e19 {
                return Err(range());
            }
            d.trunc() as u64
        }
        Value::String(s) => s.parse().map_err(|_| conversion("uint"))?,
        _ => return Err(EvalError::no_overload()),
    }))
}

fn to_double(x: &Value) -> Result<Value, EvalError> {
    Ok(Value::Double(match x {
        Value::Double(d) => *d,
        Value::Int(i) => *i as f64,
        Value::Uint(u) => *u as f64,
        Value::String(s) => s.parse().map_err(|_| conversion("double"))?,
        _ => return Err(EvalError::no_overload()),
    }))
}

fn to_string(x: &Value) -> Result<Value, EvalError> {
    let s = match x {
        Value::String(_) => return Ok(x.clone()),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Double(d) => go_float(*d),
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => std::str::from_utf8(b)
            .map_err(|_| EvalError::new("invalid UTF-8 in bytes, cannot convert to string"))?
            .to_string(),
        Value::Timestamp(t) => format_timestamp(t),
        Value::Duration(d) => format_duration(d),
        Value::Quantity(q) => q.text.clone(),
        Value::Type(t) => t.to_string(),
        Value::Ip(ip) => ip.to_string(),
        Value::Cidr(ip, len) => format!("{ip}/{len}"),
        _ => return Err(EvalError::no_overload()),
    };
    Ok(Value::str(&s))
}

fn to_bool(x: &Value) -> Result<Value, EvalError> {
    match x {
        Value::Bool(_) => Ok(x.clone()),
        Value::String(s) => match &**s {
            "1" | "t" | "true" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "false" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(conversion("bool")),
        },
        _ => Err(EvalError::no_overload()),
    }
}

/// RFC 3339 as cel-go prints timestamps: UTC, fractional seconds only when present.
pub fn format_timestamp(t: &jiff::Timestamp) -> String {
    t.to_string()
}

/// Go's `time.Duration` form as cel-go prints durations: seconds with a fraction, `"1.5s"`.
pub fn format_duration(d: &jiff::SignedDuration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return format!("{secs}s");
    }
    let frac = format!("{:09}", nanos.abs());
    let sign = if secs == 0 && nanos < 0 { "-" } else { "" };
    format!("{sign}{secs}.{}s", frac.trim_end_matches('0'))
}

fn parse_timestamp(s: &str) -> Result<Value, EvalError> {
    let t: jiff::Timestamp = s
        .parse()
        .map_err(|_| conversion("google.protobuf.Timestamp"))?;
    ts(t)
}

/// Go's `time.ParseDuration` syntax: a sequence of decimal numbers with units (h, m, s, ms,
/// us, µs, ns), optionally signed.
pub fn parse_duration(s: &str) -> Result<jiff::SignedDuration, EvalError> {
    crate::goduration::parse(s)
        .map(jiff::SignedDuration::from_nanos)
        .ok_or_else(|| conversion("google.protobuf.Duration"))
}

fn timestamp_part(t: &jiff::Timestamp, acc: &str, tz: Option<&str>) -> Result<Value, EvalError> {
    let zone = match tz {
        None => jiff::tz::TimeZone::UTC,
        Some(name) => zone_of(name)?,
    };
    let z = t.to_zoned(zone);
    let v = match acc {
        "getFullYear" => i64::from(z.year()),
        "getMonth" => i64::from(z.month()) - 1,
        "getDayOfMonth" => i64::from(z.day()) - 1,
        "getDate" => i64::from(z.day()),
        "getDayOfWeek" => i64::from(z.weekday().to_sunday_zero_offset()),
        "getDayOfYear" => i64::from(z.day_of_year()) - 1,
        "getHours" => i64::from(z.hour()),
        "getMinutes" => i64::from(z.minute()),
        "getSeconds" => i64::from(z.second()),
        "getMilliseconds" => i64::from(z.millisecond()),
        _ => return Err(EvalError::no_overload()),
    };
    Ok(Value::Int(v))
}

/// An IANA zone name or a fixed `[+-]HH:MM` offset.
fn zone_of(name: &str) -> Result<jiff::tz::TimeZone, EvalError> {
    let bad = || EvalError::new(format!("unknown time zone {name}"));
    if let Some((sign, rest)) = name
        .strip_prefix('+')
        .map(|r| (1, r))
        .or_else(|| name.strip_prefix('-').map(|r| (-1, r)))
    {
        let (h, m) = rest.split_once(':').ok_or_else(bad)?;
        let h: i32 = h.parse().map_err(|_| bad())?;
        let m: i32 = m.parse().map_err(|_| bad())?;
        let off = jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).map_err(|_| bad())?;
        return Ok(jiff::tz::TimeZone::fixed(off));
    }
    jiff::tz::TimeZone::get(name).map_err(|_| bad())
}

fn duration_part(d: &jiff::SignedDuration, acc: &str) -> Result<Value, EvalError> {
    let v = match acc {
        "getHours" => d.as_secs() / 3600,
        "getMinutes" => d.as_secs() / 60,
        "getSeconds" => d.as_secs(),
        "getMilliseconds" => d.as_millis() as i64,
        _ => return Err(EvalError::no_overload()),
    };
    Ok(Value::Int(v))
}
