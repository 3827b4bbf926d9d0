//! Shapes of the generated wire-schema table and lookups into it.

use super::{table, ProtoError};

/// Wire kind of one field as it appears in the protobuf message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Bool,
    I32,
    I64,
    F64,
    Bytes,
    /// Nested message, by index into [`table::MESSAGES`].
    Msg(u16),
    /// `map<string, string>`.
    MapStr,
    /// `map<string, bytes>`; values render as base64.
    MapBytes,
    /// `map<string, Message>`.
    MapMsg(u16),
}

/// The field is `repeated`.
pub const REP: u8 = 1;
/// A zero scalar is still rendered (Go pointer field, or no `omitempty`).
pub const KEEP: u8 = 2;
/// The field's object is merged into its parent (Go embedded struct).
pub const INLINE: u8 = 4;
/// The field has no JSON form (`json:"-"`).
pub const SKIP: u8 = 8;

#[derive(Debug)]
pub struct Field {
    pub tag: u32,
    pub json: &'static str,
    pub kind: Kind,
    pub flags: u8,
}

impl Field {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }
}

/// Message types whose JSON form is not a plain object of their fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    None,
    Quantity,
    IntOrString,
    Time,
    MicroTime,
    Duration,
    RawJson,
    OrArray,
    OrBool,
    OrStringArray,
    StringList,
}

#[derive(Debug)]
pub struct Msg {
    pub name: &'static str,
    pub special: Special,
    pub fields: &'static [Field],
}

impl Msg {
    pub fn field(&self, tag: u32) -> Option<(usize, &'static Field)> {
        self.fields.iter().enumerate().find(|(_, f)| f.tag == tag)
    }
}

pub fn message(index: u16) -> Result<&'static Msg, ProtoError> {
    table::MESSAGES
        .get(usize::from(index))
        .ok_or(ProtoError::Schema(index))
}

const META_V1: &str = "meta.k8s.io/v1";

/// Find the message of a top-level kind. Option and status kinds of
/// `meta.k8s.io/v1` (DeleteOptions, Status, ...) are accepted under any
/// group version, as every group version registers them.
pub fn kind_message(api_version: &str, kind: &str) -> Result<u16, ProtoError> {
    let find = |av: &str| {
        table::KINDS
            .binary_search_by(|(v, k, _)| (*v, *k).cmp(&(av, kind)))
            .ok()
            .and_then(|i| table::KINDS.get(i))
            .map(|(_, _, m)| *m)
    };
    find(api_version)
        .or_else(|| find(META_V1))
        .ok_or_else(|| ProtoError::UnknownKind(format!("{api_version}, Kind={kind}")))
}
