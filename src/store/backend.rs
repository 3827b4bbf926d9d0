//! The storage seam: an ordered byte keyspace with atomic batches and an explicit flush.
//!
//! Backends know nothing of revisions or events; everything above raw bytes (revision
//! assignment, history, watch, compaction) lives in the shared core so both backends behave
//! the same. Calls are synchronous: they are short in-memory operations except `flush`,
//! which the core only calls from its dedicated flusher thread or a blocking task.

use super::StoreError;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

/// One mutation inside an atomic batch.
pub(crate) enum Op {
    Put(Vec<u8>, Vec<u8>),
    Remove(Vec<u8>),
}

pub(crate) type Entry = (Vec<u8>, Bytes);

/// A forward iterator over `[lo, hi)`, for reads that walk many entries (a list's history
/// scan): one seek, then steps, instead of one seek per entry.
pub(crate) type Range<'a> = Box<dyn Iterator<Item = Result<Entry, StoreError>> + Send + 'a>;

pub(crate) trait Backend: Send + Sync + 'static {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError>;
    /// The largest entry in `[lo, hi)`.
    fn last(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Entry>, StoreError>;
    /// Up to `limit` entries of `[lo, hi)` in key order.
    fn scan(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError>;
    /// Every entry of `[lo, hi)` in key order, read lazily. Entries are immutable history in
    /// practice (the core never rewrites a history key), so an iterator that is not one
    /// atomic snapshot is still consistent for keys at or below the durable revision.
    fn range<'a>(&'a self, lo: &[u8], hi: &[u8]) -> Range<'a>;
    /// Number of keys in `[lo, hi)`.
    fn count(&self, lo: &[u8], hi: &[u8]) -> Result<u64, StoreError>;
    /// Applies every op or none, also across a crash.
    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError>;
    /// Returns once everything applied before the call is durable.
    fn flush(&self) -> Result<(), StoreError>;
    /// Bytes used: on disk for persistent backends, an estimate of the data for memory.
    fn size(&self) -> u64;
}

/// Volatile backend: a sorted map behind a lock. Values are `Bytes`, so reads never copy.
#[derive(Default)]
pub(crate) struct MemoryBackend {
    map: RwLock<BTreeMap<Vec<u8>, Bytes>>,
    bytes: AtomicU64,
}

impl MemoryBackend {
    fn read(&self) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Bytes>>, StoreError> {
        self.map
            .read()
            .map_err(|_| StoreError::Backend("memory backend lock poisoned".into()))
    }
}

/// `[lo, hi)` in the form `BTreeMap::range` accepts for unsized `[u8]` bounds.
fn span<'a>(lo: &'a [u8], hi: &'a [u8]) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (Bound::Included(lo), Bound::Excluded(hi))
}

impl Backend for MemoryBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.read()?.get(key).cloned())
    }

    fn last(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Entry>, StoreError> {
        if lo >= hi {
            return Ok(None);
        }
        Ok(self
            .read()?
            .range::<[u8], _>(span(lo, hi))
            .next_back()
            .map(|(k, v)| (k.clone(), v.clone())))
    }

    fn scan(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let map = self.read()?;
        let it = map
            .range::<[u8], _>(span(lo, hi))
            .map(|(k, v)| (k.clone(), v.clone()));
        Ok(if limit == 0 {
            it.collect()
        } else {
            it.take(limit).collect()
        })
    }

    fn range<'a>(&'a self, lo: &[u8], hi: &[u8]) -> Range<'a> {
        Box::new(MemoryRange {
            backend: self,
            next: lo.to_vec(),
            inclusive: true,
            hi: hi.to_vec(),
            buf: std::collections::VecDeque::new(),
            done: lo >= hi,
        })
    }

    fn count(&self, lo: &[u8], hi: &[u8]) -> Result<u64, StoreError> {
        if lo >= hi {
            return Ok(0);
        }
        Ok(self.read()?.range::<[u8], _>(span(lo, hi)).count() as u64)
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        // One write lock for the whole batch makes it atomic to readers.
        let mut map = self
            .map
            .write()
            .map_err(|_| StoreError::Backend("memory backend lock poisoned".into()))?;
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let added = (k.len() + v.len()) as u64;
                    if let Some(old) = map.insert(k.clone(), Bytes::from(v)) {
                        self.bytes
                            .fetch_sub((k.len() + old.len()) as u64, Ordering::Relaxed);
                    }
                    self.bytes.fetch_add(added, Ordering::Relaxed);
                }
                Op::Remove(k) => {
                    if let Some(old) = map.remove(&k) {
                        self.bytes
                            .fetch_sub((k.len() + old.len()) as u64, Ordering::Relaxed);
                    }
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

/// Entries read from the memory backend per lock acquisition: writers wait at most one batch.
const MEMORY_RANGE_BATCH: usize = 256;

/// The memory backend's range: batches copied out under the read lock (values are `Bytes`,
/// so a copy is a reference count), the lock released between batches.
struct MemoryRange<'a> {
    backend: &'a MemoryBackend,
    /// Where the next batch starts; `inclusive` is false once it is a key already returned.
    next: Vec<u8>,
    inclusive: bool,
    hi: Vec<u8>,
    buf: std::collections::VecDeque<Entry>,
    done: bool,
}

impl MemoryRange<'_> {
    fn fill(&mut self) -> Result<(), StoreError> {
        let map = self.backend.read()?;
        let lo = if self.inclusive {
            Bound::Included(&self.next[..])
        } else {
            Bound::Excluded(&self.next[..])
        };
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = (lo, Bound::Excluded(&self.hi[..]));
        self.buf.extend(
            map.range::<[u8], _>(bounds)
                .take(MEMORY_RANGE_BATCH)
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        match self.buf.back() {
            Some((k, _)) if self.buf.len() == MEMORY_RANGE_BATCH => {
                self.next = k.clone();
                self.inclusive = false;
            }
            _ => self.done = true,
        }
        Ok(())
    }
}

impl Iterator for MemoryRange<'_> {
    type Item = Result<Entry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buf.is_empty() && !self.done {
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.buf.pop_front().map(Ok)
    }
}
