//! Reads at a revision: point gets, snapshot lists and event reconstruction for watch
//! catch-up. All of them read history at a durable revision with the read gate held, so they
//! are consistent snapshots even while writes and compaction run.

use super::core::Core;
use super::keys::{self, HISTORY};
use super::{Event, EventKind, KeyValue, ListResult, Revision, StoreError};
use bytes::Bytes;

/// Versions of one key a list steps over before it seeks past them instead.
const STEP_VERSIONS: usize = 8;

/// The versions of one key seen so far in a list's walk.
struct Versions {
    key: Vec<u8>,
    /// The newest version at or below the list's revision.
    at: Option<(Revision, Bytes)>,
    seen: usize,
}

impl Versions {
    /// The object the key holds at the list's revision, unless it did not exist or was deleted.
    fn into_kv(self) -> Result<Option<KeyValue>, StoreError> {
        let Some((mod_revision, raw)) = self.at else {
            return Ok(None);
        };
        let (kind, create_revision, value) = keys::decode_history(&raw)?;
        if kind == EventKind::Delete {
            return Ok(None);
        }
        Ok(Some(KeyValue {
            key: keys::key_string(&self.key)?,
            value,
            create_revision,
            mod_revision,
        }))
    }
}

/// A list's page as it fills: `push` says false, and marks `more`, once the page is full and
/// another object exists.
struct Collected {
    kvs: Vec<KeyValue>,
    limit: usize,
    more: bool,
}

impl Collected {
    fn push(&mut self, kv: KeyValue) -> bool {
        if self.limit > 0 && self.kvs.len() == self.limit {
            self.more = true;
            return false;
        }
        self.kvs.push(kv);
        true
    }
}

impl Core {
    /// Resolves a requested list revision against the compacted and current ones.
    /// Call with the read gate held so compaction cannot overtake the check.
    pub(crate) fn read_revision(&self, revision: Option<Revision>) -> Result<Revision, StoreError> {
        let current = self.durable();
        match revision {
            None | Some(0) => Ok(current),
            Some(r) if r > current => Err(StoreError::FutureRevision {
                requested: r,
                current,
            }),
            Some(r) if r < self.compacted() => Err(StoreError::Compacted {
                requested: r,
                compacted: self.compacted(),
            }),
            Some(r) => Ok(r),
        }
    }

    /// The value of `key` as of `rev`, from history: the newest version at or below `rev`.
    pub(crate) fn get_at(&self, key: &[u8], rev: Revision) -> Result<Option<KeyValue>, StoreError> {
        let lo = keys::history_base(key);
        let hi = keys::history_key(key, rev.saturating_add(1));
        let Some((hk, raw)) = self.backend.last(&lo, &hi)? else {
            return Ok(None);
        };
        let (_, mod_revision) = keys::parse_history_key(&hk)?;
        let (kind, create_revision, value) = keys::decode_history(&raw)?;
        if kind == EventKind::Delete {
            return Ok(None);
        }
        Ok(Some(KeyValue {
            key: keys::key_string(key)?,
            value,
            create_revision,
            mod_revision,
        }))
    }

    pub(crate) fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<Revision>,
    ) -> Result<ListResult, StoreError> {
        self.check_open()?;
        let _gate = self.read_gate()?;
        let rev = self.read_revision(revision)?;
        let (lo, hi) = keys::prefix_range(HISTORY, prefix.as_bytes());
        let mut cursor = lo;
        if let Some(after) = start_after {
            let mut c = vec![HISTORY];
            c.extend_from_slice(after.as_bytes());
            // Skip every version of `after` itself: its history keys continue with 0x00.
            c.push(1);
            cursor = cursor.max(c);
        }
        let mut out = Collected {
            kvs: Vec::new(),
            limit,
            more: false,
        };
        // One forward walk over the history range: each key's versions are adjacent and in
        // revision order, so the last one at or below `rev` is its value at `rev`. A key with
        // many retained versions is skipped with two seeks instead (its version at `rev`, then
        // the next key), so the cost follows the number of keys, not of retained versions.
        'walk: loop {
            let mut it = self.backend.range(&cursor, &hi);
            let mut cur: Option<Versions> = None;
            loop {
                let next = it.next().transpose()?;
                if let (Some((hk, raw)), Some(v)) = (&next, cur.as_mut()) {
                    let (key, r) = keys::parse_history_key(hk)?;
                    if key == v.key {
                        v.seen += 1;
                        if r <= rev {
                            v.at = Some((r, raw.clone()));
                        }
                        if v.seen > STEP_VERSIONS {
                            drop(it);
                            if let Some(kv) = self.get_at(&v.key, rev)? {
                                if !out.push(kv) {
                                    break 'walk;
                                }
                            }
                            cursor.clear();
                            cursor.push(HISTORY);
                            cursor.extend_from_slice(&v.key);
                            cursor.push(1);
                            continue 'walk;
                        }
                        continue;
                    }
                }
                // A new key or the end: the key walked so far is complete.
                if let Some(kv) = cur.take().map(Versions::into_kv).transpose()?.flatten() {
                    if !out.push(kv) {
                        break 'walk;
                    }
                }
                let Some((hk, raw)) = next else {
                    break 'walk;
                };
                let (key, r) = keys::parse_history_key(&hk)?;
                cur = Some(Versions {
                    key: key.to_vec(),
                    at: (r <= rev).then_some((r, raw)),
                    seen: 1,
                });
            }
        }
        let Collected { kvs, more, .. } = out;
        let remaining = match (more, kvs.last()) {
            (true, Some(last)) => {
                // Counted on the current pointers: exact unless keys changed after `rev`.
                let (_, chi) = keys::prefix_range(keys::CURRENT, prefix.as_bytes());
                let mut clo = keys::current_key(&last.key);
                clo.push(0);
                self.backend.count(&clo, &chi)?.max(1)
            }
            _ => 0,
        };
        Ok(ListResult {
            kvs,
            revision: rev,
            more,
            remaining,
        })
    }

    pub(crate) fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        self.check_open()?;
        let (lo, hi) = keys::prefix_range(keys::CURRENT, prefix.as_bytes());
        self.backend.count(&lo, &hi)
    }

    /// Rebuilds the event committed at `rev` from the log record and history.
    pub(crate) fn event_at(
        &self,
        key: &[u8],
        rev: Revision,
        kind: EventKind,
    ) -> Result<Event, StoreError> {
        let prev = self.get_at(key, rev - 1)?;
        let missing = || {
            StoreError::Backend(format!(
                "history of key {} missing revision {rev}",
                String::from_utf8_lossy(key)
            ))
        };
        match kind {
            EventKind::Put => {
                let kv = self
                    .get_at(key, rev)?
                    .filter(|kv| kv.mod_revision == rev)
                    .ok_or_else(missing)?;
                Ok(Event { kind, kv, prev })
            }
            EventKind::Delete => {
                let last = prev.clone().ok_or_else(missing)?;
                Ok(Event {
                    kind,
                    kv: KeyValue {
                        mod_revision: rev,
                        ..last
                    },
                    prev,
                })
            }
        }
    }

    /// Events in `(after, until]` whose key starts with `prefix`, at most `max` log records
    /// read; returns them and the revision read up to.
    pub(crate) fn read_events(
        &self,
        prefix: &[u8],
        after: Revision,
        until: Revision,
        max: usize,
    ) -> Result<(Vec<Event>, Revision), StoreError> {
        let _gate = self.read_gate()?;
        let compacted = self.compacted();
        if after < compacted {
            return Err(StoreError::Compacted {
                requested: after,
                compacted,
            });
        }
        let records = self.backend.scan(
            &keys::log_key(after + 1),
            &keys::log_key(until.saturating_add(1)),
            max,
        )?;
        let reached = match records.last() {
            Some((k, _)) if records.len() == max => keys::parse_log_key(k)?,
            _ => until,
        };
        let mut events = Vec::new();
        for (k, v) in &records {
            let rev = keys::parse_log_key(k)?;
            let (kind, _, key) = keys::decode_log(v)?;
            if key.starts_with(prefix) {
                events.push(self.event_at(key, rev, kind)?);
            }
        }
        Ok((events, reached))
    }
}
