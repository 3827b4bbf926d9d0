//! Compaction: forget history at or below a revision, keeping what the state at that revision
//! needs (the newest version of each live key).
//!
//! The compacted revision is persisted first, then the revision log is consumed from its
//! start in atomic batches: each batch drops superseded versions and tombstones of the keys it
//! names together with those log records. A crash mid-way leaves log records that the next
//! compaction (which always starts at the first log record) finishes.

use super::backend::Op;
use super::core::Core;
use super::keys;
use super::{EventKind, Revision, StoreError};
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// Log records handled per atomic batch: bounds the batch size and the time readers wait.
const BATCH: usize = 512;

impl Core {
    /// Runs a compaction to `target`; blocking, call off the async workers with the compact
    /// lock held.
    pub(crate) fn compact_blocking(&self, target: Revision) -> Result<(), StoreError> {
        let current = self.durable();
        if target > current {
            return Err(StoreError::FutureRevision {
                requested: target,
                current,
            });
        }
        if target > self.compacted() {
            self.backend.apply(vec![Op::Put(
                keys::META_COMPACTED.to_vec(),
                target.to_be_bytes().to_vec(),
            )])?;
            // Published before anything is removed, so readers below it fail instead of
            // reading half-compacted history.
            self.compacted.store(target, Ordering::Release);
        }
        let target = self.compacted();
        let (lo, hi) = (keys::log_key(0), keys::log_key(target.saturating_add(1)));
        let mut removed = 0usize;
        loop {
            let records = self.backend.scan(&lo, &hi, BATCH)?;
            if records.is_empty() {
                break;
            }
            let mut ops = Vec::new();
            let mut seen = HashSet::new();
            for (lk, v) in records {
                let (_, _, key) = keys::decode_log(&v)?;
                if seen.insert(key.to_vec()) {
                    self.drop_old_versions(key, target, &mut ops)?;
                }
                ops.push(Op::Remove(lk));
            }
            removed += ops.len();
            let _exclusive = self
                .gate
                .write()
                .map_err(|_| StoreError::Backend("store lock poisoned".into()))?;
            self.backend.apply(ops)?;
        }
        if removed > 0 {
            // Make the reclaimed space real now rather than at the next write.
            self.backend.flush()?;
            tracing::debug!(revision = target, removed, "store compacted");
        }
        Ok(())
    }

    /// Queues removal of every version of `key` at or below `target` except the newest, and
    /// of that one too if it is a tombstone.
    fn drop_old_versions(
        &self,
        key: &[u8],
        target: Revision,
        ops: &mut Vec<Op>,
    ) -> Result<(), StoreError> {
        let versions = self.backend.scan(
            &keys::history_base(key),
            &keys::history_key(key, target.saturating_add(1)),
            0,
        )?;
        let n = versions.len();
        for (i, (hk, raw)) in versions.into_iter().enumerate() {
            let newest = i + 1 == n;
            if !newest || keys::decode_history(&raw)?.0 == EventKind::Delete {
                ops.push(Op::Remove(hk));
            }
        }
        Ok(())
    }

    /// The newest durable revision committed at or before `cutoff_ms`, if it is above the
    /// compacted one.
    pub(crate) fn revision_before(&self, cutoff_ms: u64) -> Result<Option<Revision>, StoreError> {
        let durable = self.durable();
        let mut found = None;
        let mut lo = keys::log_key(self.compacted().saturating_add(1)).to_vec();
        let hi = keys::log_key(durable.saturating_add(1));
        'scan: loop {
            let records = self.backend.scan(&lo, &hi, BATCH)?;
            let Some((last, _)) = records.last() else {
                break;
            };
            lo = last.clone();
            lo.push(0);
            for (k, v) in &records {
                let (_, time, _) = keys::decode_log(v)?;
                if time > cutoff_ms {
                    break 'scan;
                }
                found = Some(keys::parse_log_key(k)?);
            }
        }
        Ok(found)
    }
}
