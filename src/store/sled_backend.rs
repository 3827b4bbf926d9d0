//! Persistent backend on one sled tree.
//!
//! sled's own periodic flush is turned off: the core flushes explicitly after each group of
//! writes, so a write is acknowledged only once it is on disk and idle periods write nothing.

use super::backend::{Backend, Entry, Op, Range};
use super::StoreError;
use bytes::Bytes;
use std::path::{Path, PathBuf};

/// sled segments are reclaimed whole; small segments let compaction give space back sooner.
const SEGMENT_SIZE: usize = 256 * 1024;

pub(crate) struct SledBackend {
    db: sled::Db,
    path: PathBuf,
}

impl SledBackend {
    pub(crate) fn open(path: &Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
        std::fs::create_dir_all(path).map_err(|e| {
            StoreError::Backend(format!("create store dir {}: {e}", path.display()))
        })?;
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::LowSpace)
            .segment_size(SEGMENT_SIZE)
            .flush_every_ms(None)
            .open()
            .map_err(|e| StoreError::Backend(format!("open sled db at {}: {e}", path.display())))?;
        Ok(SledBackend {
            db,
            path: path.to_path_buf(),
        })
    }
}

fn err(what: &str, e: sled::Error) -> StoreError {
    StoreError::Backend(format!("sled {what}: {e}"))
}

/// sled hands out values as reference-counted `IVec`s; wrapping one shares it instead of
/// copying the value (a list of 10k objects would otherwise copy every one).
fn shared(v: sled::IVec) -> Bytes {
    Bytes::from_owner(v)
}

fn entry(r: sled::Result<(sled::IVec, sled::IVec)>) -> Result<Entry, StoreError> {
    let (k, v) = r.map_err(|e| err("range", e))?;
    Ok((k.to_vec(), shared(v)))
}

impl Backend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.db.get(key).map_err(|e| err("get", e))?.map(shared))
    }

    fn last(&self, lo: &[u8], hi: &[u8]) -> Result<Option<Entry>, StoreError> {
        if lo >= hi {
            return Ok(None);
        }
        self.db.range(lo..hi).next_back().map(entry).transpose()
    }

    fn scan(&self, lo: &[u8], hi: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        if lo >= hi {
            return Ok(Vec::new());
        }
        let limit = if limit == 0 { usize::MAX } else { limit };
        self.db.range(lo..hi).take(limit).map(entry).collect()
    }

    fn range<'a>(&'a self, lo: &[u8], hi: &[u8]) -> Range<'a> {
        if lo >= hi {
            return Box::new(std::iter::empty());
        }
        Box::new(self.db.range(lo..hi).map(entry))
    }

    fn count(&self, lo: &[u8], hi: &[u8]) -> Result<u64, StoreError> {
        if lo >= hi {
            return Ok(0);
        }
        let mut n = 0;
        for r in self.db.range(lo..hi).keys() {
            r.map_err(|e| err("count", e))?;
            n += 1;
        }
        Ok(n)
    }

    fn apply(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(k, v),
                Op::Remove(k) => batch.remove(k),
            }
        }
        self.db
            .apply_batch(batch)
            .map_err(|e| err("apply batch", e))
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush().map(|_| ()).map_err(|e| err("flush", e))
    }

    fn size(&self) -> u64 {
        dir_size(&self.path)
    }
}

/// Bytes of every file under `dir`; unreadable entries count as zero (this is a metric).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
