//! Narrow reads of stored objects for the Table of a list.
//!
//! A printer reads a handful of fields, yet parsing a whole stored object into a
//! `serde_json::Value` costs most of the time of printing a long list (a pod's spec,
//! managed fields and statuses are many small allocations). Each converted printer
//! declares the paths it reads ([`Reads`], next to the printer); [`read`] parses a stored
//! object into a `Value` holding only those fields, skipping the rest without allocating,
//! and keeps the stored text of `metadata` so the row's `PartialObjectMetadata` is copied
//! rather than re-encoded. The printer then runs unchanged on the narrowed `Value`, so the
//! cells cannot differ from a full parse as long as the paths cover what the printer reads
//! (the printer tests check every fixture both ways).
//!
//! This module never decides what a cell says (the printers do) and must never change a
//! field it keeps: a kept value is exactly what `Value`'s own parse gives, in stored order.
//! Bytes it cannot read narrowly (not a JSON object, or not valid JSON) are an error, and
//! the caller parses them in full.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Number, Value};

/// The fields a printer reads, as dotted paths from the object's root (`spec.nodeName`).
/// A path's last name keeps that field whole; the names before it keep only what the
/// path names below them. Arrays are transparent: `spec.containers.name` keeps each
/// container with only its name (and so the array's length).
pub(crate) type Reads = &'static [&'static str];

/// A tree of kept fields, built from [`Reads`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Mask {
    /// The whole value.
    All,
    /// Only these fields of an object (of each element, for an array); scalars are kept.
    Fields(Vec<(String, Mask)>),
}

impl Mask {
    /// The mask of `reads`, plus what every row reads besides its cells: `kind` and
    /// `status.phase` (a finished pod's row condition).
    pub(crate) fn new(reads: &[&str]) -> Mask {
        let mut mask = Mask::Fields(Vec::new());
        for path in reads.iter().chain(&["kind", "status.phase"]) {
            mask.add(&path.split('.').collect::<Vec<_>>());
        }
        mask
    }

    fn add(&mut self, path: &[&str]) {
        let Some((name, rest)) = path.split_first() else {
            *self = Mask::All;
            return;
        };
        let Mask::Fields(fields) = self else {
            return; // already whole
        };
        let i = match fields.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                fields.push((name.to_string(), Mask::Fields(Vec::new())));
                fields.len() - 1
            }
        };
        fields[i].1.add(rest);
    }

    fn field(&self, name: &str) -> Option<&Mask> {
        match self {
            Mask::All => Some(&Mask::All),
            Mask::Fields(fields) => fields.iter().find(|(n, _)| n == name).map(|(_, m)| m),
        }
    }
}

/// A stored object read through a [`Mask`].
pub(crate) struct Narrowed<'a> {
    /// The object with only the masked fields, in their stored order.
    pub value: Value,
    /// The stored text of the object's `metadata`, if it has one.
    pub metadata: Option<&'a RawValue>,
}

/// Reads the stored object `bytes` through `mask`. Errors when the bytes are not a JSON
/// object; the caller then parses them in full (which reports a corrupt object as such).
pub(crate) fn read<'a>(bytes: &'a [u8], mask: &Mask) -> serde_json::Result<Narrowed<'a>> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let narrowed = de.deserialize_map(Root(mask))?;
    de.end()?;
    Ok(narrowed)
}

/// The top level: like [`Prune`], but also keeps the text of `metadata`.
struct Root<'m>(&'m Mask);

impl<'de, 'm> Visitor<'de> for Root<'m> {
    type Value = Narrowed<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Narrowed<'de>, A::Error> {
        let mut value = Map::new();
        let mut metadata = None;
        while let Some(Key(key)) = map.next_key()? {
            if key == "metadata" {
                let raw: &'de RawValue = map.next_value()?;
                metadata = Some(raw);
                if let Some(sub) = self.0.field("metadata") {
                    let mut de = serde_json::Deserializer::from_str(raw.get());
                    let meta = Prune(sub)
                        .deserialize(&mut de)
                        .map_err(<A::Error as serde::de::Error>::custom)?;
                    value.insert(key.into_owned(), meta);
                }
            } else if let Some(sub) = self.0.field(&key) {
                let v = map.next_value_seed(Prune(sub))?;
                value.insert(key.into_owned(), v);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Narrowed {
            value: Value::Object(value),
            metadata,
        })
    }
}

/// An object key, borrowed from the input unless it has escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s.to_string())))
            }
            fn visit_string<E>(self, s: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A value with only the fields of its mask, each kept as `Value` would hold it.
struct Prune<'m>(&'m Mask);

impl<'de> DeserializeSeed<'de> for Prune<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        match self.0 {
            Mask::All => Value::deserialize(d),
            Mask::Fields(_) => d.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for Prune<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(Prune(self.0))? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(Key(key)) = map.next_key()? {
            match self.0.field(&key) {
                Some(sub) => {
                    let v = map.next_value_seed(Prune(sub))?;
                    out.insert(key.into_owned(), v);
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Value::Object(out))
    }
}
