//! Byte layout of the single ordered keyspace every backend stores.
//!
//! One keyspace (not several trees) so that a write is one atomic batch on every backend:
//!
//! | prefix | key                      | value                                   |
//! |--------|--------------------------|-----------------------------------------|
//! | `c`    | user key                 | `create_rev u64be, mod_rev u64be`       |
//! | `h`    | user key, `0x00`, rev be | `kind u8, create_rev u64be, value bytes` |
//! | `l`    | rev be                   | `kind u8, commit time ms u64be, key`    |
//! | `m`    | meta name                | meta value                              |
//!
//! Values live only in `h`; `c` is a small pointer used for compare-and-swap and counting,
//! `l` is the revision log that watch catch-up and time-based compaction read.

use super::{EventKind, Revision, StoreError};
use bytes::Bytes;

pub(crate) const CURRENT: u8 = b'c';
pub(crate) const HISTORY: u8 = b'h';
pub(crate) const LOG: u8 = b'l';
pub(crate) const META_COMPACTED: &[u8] = b"mcompacted";

const KIND_PUT: u8 = 0;
const KIND_DELETE: u8 = 1;

/// User keys must not contain NUL: it separates the key from the revision in history keys,
/// and allowing it would interleave the history of `a` with that of `a\0…`.
pub(crate) fn check_key(key: &str) -> Result<(), StoreError> {
    if key.as_bytes().contains(&0) {
        return Err(StoreError::Backend(format!(
            "invalid key {key:?}: contains a nul byte"
        )));
    }
    Ok(())
}

pub(crate) fn current_key(key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(CURRENT);
    k.extend_from_slice(key.as_bytes());
    k
}

/// The first history key of `key` (inclusive lower bound of its versions).
pub(crate) fn history_base(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 10);
    k.push(HISTORY);
    k.extend_from_slice(key);
    k.push(0);
    k
}

pub(crate) fn history_key(key: &[u8], rev: Revision) -> Vec<u8> {
    let mut k = history_base(key);
    k.extend_from_slice(&rev.to_be_bytes());
    k
}

/// Splits a history key into user key and revision.
pub(crate) fn parse_history_key(hk: &[u8]) -> Result<(&[u8], Revision), StoreError> {
    if hk.len() < 10 || hk[0] != HISTORY || hk[hk.len() - 9] != 0 {
        return Err(corrupt("history key", hk));
    }
    let rev = u64::from_be_bytes(
        hk[hk.len() - 8..]
            .try_into()
            .map_err(|_| corrupt("history key", hk))?,
    );
    Ok((&hk[1..hk.len() - 9], rev))
}

pub(crate) fn log_key(rev: Revision) -> [u8; 9] {
    let mut k = [LOG; 9];
    k[1..].copy_from_slice(&rev.to_be_bytes());
    k
}

pub(crate) fn parse_log_key(lk: &[u8]) -> Result<Revision, StoreError> {
    if lk.len() != 9 || lk[0] != LOG {
        return Err(corrupt("log key", lk));
    }
    read_u64(&lk[1..], "log key")
}

/// Bounds `[lo, hi)` covering every key of `space` that starts with `prefix`.
pub(crate) fn prefix_range(space: u8, prefix: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut lo = Vec::with_capacity(prefix.len() + 1);
    lo.push(space);
    lo.extend_from_slice(prefix);
    let mut hi = lo.clone();
    // Smallest key greater than every key with this prefix: bump the last byte below 0xff.
    while let Some(last) = hi.pop() {
        if last < 0xff {
            hi.push(last + 1);
            return (lo, hi);
        }
    }
    (lo, vec![space + 1])
}

pub(crate) fn encode_current(create: Revision, modified: Revision) -> Vec<u8> {
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&create.to_be_bytes());
    v.extend_from_slice(&modified.to_be_bytes());
    v
}

pub(crate) fn decode_current(v: &[u8]) -> Result<(Revision, Revision), StoreError> {
    if v.len() != 16 {
        return Err(corrupt("current pointer", v));
    }
    Ok((
        read_u64(&v[..8], "current pointer")?,
        read_u64(&v[8..], "current pointer")?,
    ))
}

pub(crate) fn encode_history(kind: &EventKind, create: Revision, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + value.len());
    v.push(kind_byte(kind));
    v.extend_from_slice(&create.to_be_bytes());
    v.extend_from_slice(value);
    v
}

/// A stored version: kind, create revision and (for puts) the value, sliced without copying.
pub(crate) fn decode_history(v: &Bytes) -> Result<(EventKind, Revision, Bytes), StoreError> {
    if v.len() < 9 {
        return Err(corrupt("history record", v));
    }
    let kind = byte_kind(v[0]).ok_or_else(|| corrupt("history record", v))?;
    Ok((kind, read_u64(&v[1..9], "history record")?, v.slice(9..)))
}

pub(crate) fn encode_log(kind: &EventKind, time_ms: u64, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(9 + key.len());
    v.push(kind_byte(kind));
    v.extend_from_slice(&time_ms.to_be_bytes());
    v.extend_from_slice(key);
    v
}

/// A revision log record: kind, commit time in ms since the epoch, and user key.
pub(crate) fn decode_log(v: &[u8]) -> Result<(EventKind, u64, &[u8]), StoreError> {
    if v.len() < 9 {
        return Err(corrupt("log record", v));
    }
    let kind = byte_kind(v[0]).ok_or_else(|| corrupt("log record", v))?;
    Ok((kind, read_u64(&v[1..9], "log record")?, &v[9..]))
}

pub(crate) fn read_u64(b: &[u8], what: &str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = b.try_into().map_err(|_| corrupt(what, b))?;
    Ok(u64::from_be_bytes(arr))
}

pub(crate) fn key_string(key: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(key.to_vec()).map_err(|_| corrupt("user key", key))
}

fn kind_byte(kind: &EventKind) -> u8 {
    match kind {
        EventKind::Put => KIND_PUT,
        EventKind::Delete => KIND_DELETE,
    }
}

fn byte_kind(b: u8) -> Option<EventKind> {
    match b {
        KIND_PUT => Some(EventKind::Put),
        KIND_DELETE => Some(EventKind::Delete),
        _ => None,
    }
}

fn corrupt(what: &str, bytes: &[u8]) -> StoreError {
    StoreError::Backend(format!("corrupt {what} ({} bytes)", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_key_roundtrip() {
        let hk = history_key(b"/a/b", 42);
        let (k, r) = parse_history_key(&hk).expect("parse");
        assert_eq!((k, r), (&b"/a/b"[..], 42));
    }

    #[test]
    fn prefix_range_bounds() {
        assert_eq!(
            prefix_range(b'h', b"ab"),
            (b"hab".to_vec(), b"hac".to_vec())
        );
        assert_eq!(
            prefix_range(b'h', b"a\xff"),
            (b"ha\xff".to_vec(), b"hb".to_vec())
        );
        assert_eq!(prefix_range(b'h', b""), (b"h".to_vec(), b"i".to_vec()));
    }

    #[test]
    fn history_ordering_groups_by_key() {
        // "a" versions sort before any version of "a/x" and after nothing of "a".
        assert!(history_key(b"a", u64::MAX) < history_key(b"a/x", 0));
        assert!(history_key(b"a", 1) < history_key(b"a", 2));
    }
}
