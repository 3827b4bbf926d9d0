//! Values and types from the structural schema, as the apiserver gives them to rules: `integer`
//! is int, `number` double, `string` string except `format: byte` (bytes), `date`/`date-time`
//! (timestamp) and `duration`; int-or-string and preserve-unknown-fields are dynamic; objects
//! with `properties` and `additionalProperties` maps are maps; arrays are lists. At a resource's
//! root only `apiVersion`, `kind` and `metadata.name`/`metadata.generateName` are visible.

use super::functions::parse_duration;
use super::value::{Key, MapVal, Value};
use crate::registry::schema::{additional, flag, items, node, properties, str_of, Additional};
use serde_json::{Map, Value as Json};
use std::rc::Rc;

/// The CEL value of `v` typed by `schema`; `root` for the node of a whole resource.
pub fn to_value(v: &Json, schema: &Json, root: bool) -> Value {
    let s = node(schema);
    if root {
        if let (Json::Object(m), Some(_)) = (v, s) {
            let mut out = MapVal::new();
            for (k, x) in m {
                let sub = match k.as_str() {
                    "apiVersion" | "kind" => Some(x.as_str().map(Value::str)),
                    "metadata" => Some(Some(meta(x))),
                    _ => None,
                };
                match sub {
                    Some(Some(val)) => {
                        out.insert(Key::Str(Rc::from(k.as_str())), val);
                    }
                    Some(None) => {}
                    None => {
                        let key = Key::Str(Rc::from(k.as_str()));
                        if let Some(p) = s.and_then(properties).and_then(|p| p.get(k)) {
                            out.insert(key, to_value(x, p, false));
                        } else if s.is_some_and(|s| flag(s, "x-kubernetes-preserve-unknown-fields"))
                        {
                            out.insert(key, dynamic(x));
                        }
                    }
                }
            }
            return Value::Map(Rc::new(out));
        }
    }
    let Some(s) = s else {
        return dynamic(v);
    };
    if flag(s, "x-kubernetes-int-or-string") || flag(s, "x-kubernetes-embedded-resource") {
        return dynamic(v);
    }
    match v {
        Json::String(text) => string(text, str_of(s, "format").unwrap_or("")),
        Json::Number(n) => match str_of(s, "type") {
            Some("number") => Value::Double(n.as_f64().unwrap_or(0.0)),
            _ => number(n),
        },
        Json::Array(a) => {
            let item = items(s);
            Value::List(Rc::new(
                a.iter()
                    .map(|x| match item {
                        Some(i) => to_value(x, i, false),
                        None => dynamic(x),
                    })
                    .collect(),
            ))
        }
        Json::Object(m) => {
            let props = properties(s);
            let extra = additional(s);
            let preserve = flag(s, "x-kubernetes-preserve-unknown-fields");
            let mut out = MapVal::new();
            for (k, x) in m {
                let val = match (props.and_then(|p| p.get(k)), extra) {
                    (Some(p), _) => to_value(x, p, false),
                    (None, Additional::Schema(a)) => to_value(x, a, false),
                    _ if preserve || props.is_none() => dynamic(x),
                    _ => continue,
                };
                out.insert(Key::Str(Rc::from(k.as_str())), val);
            }
            Value::Map(Rc::new(out))
        }
        other => dynamic(other),
    }
}

fn meta(v: &Json) -> Value {
    let mut out = MapVal::new();
    if let Json::Object(m) = v {
        for k in ["name", "generateName"] {
            if let Some(s) = m.get(k).and_then(Json::as_str) {
                out.insert(Key::Str(Rc::from(k)), Value::str(s));
            }
        }
    }
    Value::Map(Rc::new(out))
}

fn string(text: &str, format: &str) -> Value {
    match format {
        "byte" => {
            use base64::Engine;
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(b) => Value::Bytes(Rc::from(b.as_slice())),
                Err(_) => Value::str(text),
            }
        }
        "date-time" => match text.parse::<jiff::Timestamp>() {
            Ok(t) => Value::Timestamp(t),
            Err(_) => Value::str(text),
        },
        "date" => match text.parse::<jiff::civil::Date>() {
            Ok(d) => d
                .to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| Value::Timestamp(z.timestamp()))
                .unwrap_or_else(|_| Value::str(text)),
            Err(_) => Value::str(text),
        },
        "duration" => match parse_duration(text) {
            Ok(d) => Value::Duration(d),
            Err(_) => Value::str(text),
        },
        _ => Value::str(text),
    }
}

fn number(n: &serde_json::Number) -> Value {
    match n.as_i64() {
        Some(i) => Value::Int(i),
        None => Value::Double(n.as_f64().unwrap_or(0.0)),
    }
}

/// A schema-less JSON value: integral numbers are ints, others doubles.
pub fn dynamic(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => number(n),
        Json::String(s) => Value::str(s),
        Json::Array(a) => Value::List(Rc::new(a.iter().map(dynamic).collect())),
        Json::Object(m) => Value::Map(Rc::new(
            m.iter()
                .map(|(k, x)| (Key::Str(Rc::from(k.as_str())), dynamic(x)))
                .collect(),
        )),
    }
}

/// The static type of an expression, as far as the checker follows it.
#[derive(Clone, Debug)]
pub enum Ty<'s> {
    Dyn,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Null,
    Timestamp,
    Duration,
    Type,
    Quantity,
    Url,
    List(Box<Ty<'s>>),
    Map(Box<Ty<'s>>),
    /// An object with declared properties (undeclared ones are an error to select).
    Object(&'s Map<String, Json>, bool),
    /// The visible part of a resource's metadata.
    Meta,
}

impl<'s> Ty<'s> {
    pub fn of_schema(schema: &'s Json, root: bool) -> Ty<'s> {
        let Some(s) = node(schema) else {
            return Ty::Dyn;
        };
        if flag(s, "x-kubernetes-int-or-string")
            || flag(s, "x-kubernetes-embedded-resource")
            || (flag(s, "x-kubernetes-preserve-unknown-fields") && properties(s).is_none())
        {
            return Ty::Dyn;
        }
        match str_of(s, "type") {
            Some("integer") => Ty::Int,
            Some("number") => Ty::Double,
            Some("boolean") => Ty::Bool,
            Some("string") => match str_of(s, "format") {
                Some("byte") => Ty::Bytes,
                Some("date-time" | "date") => Ty::Timestamp,
                Some("duration") => Ty::Duration,
                _ => Ty::String,
            },
            Some("array") => Ty::List(Box::new(
                items(s).map(|i| Ty::of_schema(i, false)).unwrap_or(Ty::Dyn),
            )),
            Some("object") => match (properties(s), additional(s)) {
                (Some(_), _) => Ty::Object(s, root),
                (None, Additional::Schema(a)) => Ty::Map(Box::new(Ty::of_schema(a, false))),
                _ if root => Ty::Object(s, root),
                _ => Ty::Map(Box::new(Ty::Dyn)),
            },
            _ => Ty::Dyn,
        }
    }

    /// The type of field `f`, or `None` when the schema does not declare it.
    pub fn field(&self, f: &str) -> Option<Ty<'s>> {
        match self {
            Ty::Object(s, root) => {
                if *root {
                    match f {
                        "apiVersion" | "kind" => return Some(Ty::String),
                        "metadata" => return Some(Ty::Meta),
                        _ => {}
                    }
                }
                if flag(s, "x-kubernetes-preserve-unknown-fields") {
                    return Some(
                        properties(s)
                            .and_then(|p| p.get(f))
                            .map(|p| Ty::of_schema(p, false))
                            .unwrap_or(Ty::Dyn),
                    );
                }
                properties(s)
                    .and_then(|p| p.get(f))
                    .map(|p| Ty::of_schema(p, false))
            }
            Ty::Meta => matches!(f, "name" | "generateName").then_some(Ty::String),
            Ty::Map(v) => Some((**v).clone()),
            _ => Some(Ty::Dyn),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Ty::Dyn => "dyn",
            Ty::Bool => "bool",
            Ty::Int => "int",
            Ty::Uint => "uint",
            Ty::Double => "double",
            Ty::String => "string",
            Ty::Bytes => "bytes",
            Ty::Null => "null_type",
            Ty::Timestamp => "google.protobuf.Timestamp",
            Ty::Duration => "google.protobuf.Duration",
            Ty::Type => "type",
            Ty::Quantity => "kubernetes.Quantity",
            Ty::Url => "kubernetes.URL",
            Ty::List(_) => "list",
            Ty::Map(_) | Ty::Object(..) | Ty::Meta => "map",
        }
    }
}
