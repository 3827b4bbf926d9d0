//! CEL's runtime values and the value semantics the spec gives them: type names, heterogeneous
//! equality (numbers compare by value across int, uint and double), ordering, map keys, and the
//! evaluation errors (`no such key`, `no such overload`, overflow, the cost limit).
//!
//! Values are built per evaluation (reference-counted, not shared between threads); nothing here
//! evaluates expressions.

use super::quantity::Qty;
use super::url::Url;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Str(Rc<str>),
}

impl Key {
    pub fn from_value(v: &Value) -> Result<Key, EvalError> {
        Ok(match v {
            Value::Bool(b) => Key::Bool(*b),
            Value::Int(i) => Key::Int(*i),
            Value::Uint(u) => Key::Uint(*u),
            Value::String(s) => Key::Str(s.clone()),
            other => {
                return Err(EvalError::overload(&format!(
                    "unsupported key type: {}",
                    other.type_name()
                )))
            }
        })
    }
    pub fn to_value(&self) -> Value {
        match self {
            Key::Bool(b) => Value::Bool(*b),
            Key::Int(i) => Value::Int(*i),
            Key::Uint(u) => Value::Uint(*u),
            Key::Str(s) => Value::String(s.clone()),
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Bool(b) => write!(f, "{b}"),
            Key::Int(i) => write!(f, "{i}"),
            Key::Uint(u) => write!(f, "{u}"),
            Key::Str(s) => write!(f, "{s}"),
        }
    }
}

pub type MapVal = BTreeMap<Key, Value>;

#[derive(Clone, Debug)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Uint(u64),
    Double(f64),
    String(Rc<str>),
    Bytes(Rc<[u8]>),
    List(Rc<Vec<Value>>),
    Map(Rc<MapVal>),
    Timestamp(jiff::Timestamp),
    Duration(jiff::SignedDuration),
    Type(Rc<str>),
    Quantity(Rc<Qty>),
    Url(Rc<Url>),
    Ip(std::net::IpAddr),
    Cidr(std::net::IpAddr, u8),
    /// An `optional` value: only `oldSelf` of an `optionalOldSelf` rule is one.
    Optional(Option<Rc<Value>>),
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::String(Rc::from(s))
    }

    pub fn type_name(&self) -> &str {
        match self {
            Value::Null => "null_type",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Timestamp(_) => "google.protobuf.Timestamp",
            Value::Duration(_) => "google.protobuf.Duration",
            Value::Type(_) => "type",
            Value::Quantity(_) => "kubernetes.Quantity",
            Value::Url(_) => "kubernetes.URL",
            Value::Ip(_) => "net.IP",
            Value::Cidr(..) => "net.CIDR",
            Value::Optional(_) => "optional_type",
        }
    }

    /// The size of a value for `size()` and for cost accounting.
    pub fn size(&self) -> Option<usize> {
        match self {
            Value::String(s) => Some(s.chars().count()),
            Value::Bytes(b) => Some(b.len()),
            Value::List(l) => Some(l.len()),
            Value::Map(m) => Some(m.len()),
            _ => None,
        }
    }

    /// A cheap size estimate used to charge the cost of copying or comparing a value.
    pub fn weight(&self) -> u64 {
        match self {
            Value::String(s) => s.len() as u64 / 8 + 1,
            Value::Bytes(b) => b.len() as u64 / 8 + 1,
            Value::List(l) => l.len() as u64 + 1,
            Value::Map(m) => m.len() as u64 + 1,
            _ => 1,
        }
    }
}

/// Numeric value of an int, uint or double, for cross-type comparison.
enum Num {
    I(i64),
    U(u64),
    D(f64),
}

fn num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::I(*i)),
        Value::Uint(u) => Some(Num::U(*u)),
        Value::Double(d) => Some(Num::D(*d)),
        _ => None,
    }
}

fn cmp_num(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
        (Num::U(x), Num::U(y)) => Some(x.cmp(&y)),
        (Num::D(x), Num::D(y)) => x.partial_cmp(&y),
        (Num::I(x), Num::U(y)) => Some(if x < 0 {
            Ordering::Less
        } else {
            (x as u64).cmp(&y)
        }),
        (Num::U(x), Num::I(y)) => cmp_num(Num::I(y), Num::U(x)).map(Ordering::reverse),
        (Num::I(x), Num::D(y)) => cmp_int_double(x as i128, y),
        (Num::U(x), Num::D(y)) => cmp_int_double(x as i128, y),
        (Num::D(x), Num::I(y)) => cmp_int_double(y as i128, x).map(Ordering::reverse),
        (Num::D(x), Num::U(y)) => cmp_int_double(y as i128, x).map(Ordering::reverse),
    }
}

fn cmp_int_double(i: i128, d: f64) -> Option<Ordering> {
    if d.is_nan() {
        return None;
    }
    if d >= 1.8446744073709552e19 {
        return Some(Ordering::Less);
    }
    if d < -9.223_372_036_854_776e18 {
        return Some(Ordering::Greater);
    }
    let t = d.trunc();
    match i.cmp(&(t as i128)) {
        Ordering::Equal if d > t => Some(Ordering::Less),
        Ordering::Equal if d < t => Some(Ordering::Greater),
        o => Some(o),
    }
}

/// CEL equality: heterogeneous, never an error; values of different kinds are unequal.
pub fn equals(a: &Value, b: &Value) -> bool {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return cmp_num(x, y) == Some(Ordering::Equal);
    }
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| equals(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| lookup(y, &k.to_value()).is_some_and(|w| equals(v, w)))
        }
        (Value::Timestamp(x), Value::Timestamp(y)) => x == y,
        (Value::Duration(x), Value::Duration(y)) => x == y,
        (Value::Type(x), Value::Type(y)) => x == y,
        (Value::Quantity(x), Value::Quantity(y)) => x.cmp(y) == Ordering::Equal,
        (Value::Url(x), Value::Url(y)) => x == y,
        (Value::Ip(x), Value::Ip(y)) => x == y,
        (Value::Cidr(x, a), Value::Cidr(y, b)) => x == y && a == b,
        (Value::Optional(x), Value::Optional(y)) => match (x, y) {
            (None, None) => true,
            (Some(p), Some(q)) => equals(p, q),
            _ => false,
        },
        _ => false,
    }
}

/// Ordering for `<`, `<=`, `>`, `>=`: `Ok(None)` when a NaN is involved (every comparison is
/// then false), an error when CEL has no such overload.
pub fn compare(a: &Value, b: &Value) -> Result<Option<Ordering>, EvalError> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return Ok(cmp_num(x, y));
    }
    Ok(Some(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bytes(x), Value::Bytes(y)) => x.cmp(y),
        (Value::Timestamp(x), Value::Timestamp(y)) => x.cmp(y),
        (Value::Duration(x), Value::Duration(y)) => x.cmp(y),
        _ => return Err(EvalError::no_overload()),
    }))
}

/// A map lookup with CEL's numeric key equivalence (`m[1]`, `m[1u]` and `m[1.0]` agree).
pub fn lookup<'a>(m: &'a MapVal, k: &Value) -> Option<&'a Value> {
    match k {
        Value::String(s) => m.get(&Key::Str(s.clone())),
        Value::Bool(b) => m.get(&Key::Bool(*b)),
        Value::Int(i) => m
            .get(&Key::Int(*i))
            .or_else(|| u64::try_from(*i).ok().and_then(|u| m.get(&Key::Uint(u)))),
        Value::Uint(u) => m
            .get(&Key::Uint(*u))
            .or_else(|| i64::try_from(*u).ok().and_then(|i| m.get(&Key::Int(i)))),
        Value::Double(d) if d.fract() == 0.0 && d.abs() < 9.2e18 => {
            lookup(m, &Value::Int(*d as i64)).or_else(|| {
                if *d >= 0.0 {
                    lookup(m, &Value::Uint(*d as u64))
                } else {
                    None
                }
            })
        }
        _ => None,
    }
}

/// What an evaluation can fail with; the message is cel-go's.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalError {
    pub message: String,
    pub kind: ErrKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrKind {
    /// A value error: no such key, overflow, division by zero, a bad conversion...
    Value,
    /// No overload of a function or operator for the arguments' runtime types.
    Overload,
    /// The cost limit of one expression was exceeded.
    Cost,
}

impl EvalError {
    pub fn new(message: impl Into<String>) -> EvalError {
        EvalError {
            message: message.into(),
            kind: ErrKind::Value,
        }
    }
    pub fn no_overload() -> EvalError {
        EvalError {
            message: "no such overload".into(),
            kind: ErrKind::Overload,
        }
    }
    pub fn overload(detail: &str) -> EvalError {
        EvalError {
            message: format!("no such overload: {detail}"),
            kind: ErrKind::Overload,
        }
    }
    pub fn no_such_key(k: &impl fmt::Display) -> EvalError {
        EvalError::new(format!("no such key: {k}"))
    }
    pub fn cost() -> EvalError {
        EvalError {
            message: "operation cancelled: actual cost limit exceeded".into(),
            kind: ErrKind::Cost,
        }
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}
