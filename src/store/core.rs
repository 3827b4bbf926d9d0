//! The shared engine: revision assignment, the write path with group commit, and the flusher
//! that publishes events. Both backends run through this code (reads are in `read`).
//!
//! Write path: a writer takes the apply lock, checks its precondition against the current
//! pointer, writes history + pointer + log entry as one atomic batch, queues its event and
//! releases the lock. It then waits until the flusher thread reports its revision durable.
//! The flusher flushes once for everything applied so far (group commit), then advances the
//! durable revision and only then hands the queued events to watchers, so whatever a watcher
//! hears of is already readable. Reads and watches only ever
//! see durable revisions, so nothing a client observed can vanish in a crash.

use super::backend::{Backend, Op};
use super::keys;
use super::{Event, EventKind, KeyValue, Revision, StoreError};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};

/// Live events buffered per watcher before it must re-read from the revision log.
const WATCH_BUFFER: usize = 1024;

pub(crate) enum Write {
    Create(Bytes),
    Update(Bytes, Revision),
    Delete(Option<Revision>),
}

struct WriteState {
    /// Last revision written to the backend (possibly not yet durable).
    applied: Revision,
    /// Commit time of `applied`; times never go backwards so compaction by age stays ordered.
    last_time_ms: u64,
    /// Events applied but not yet flushed, in revision order.
    pending: Vec<Event>,
    shutdown: bool,
}

#[derive(Clone, Default)]
struct Durable {
    rev: Revision,
    /// Writes up to this revision were part of a failed flush.
    failed_upto: Revision,
    error: String,
}

pub(crate) struct Core {
    pub(crate) backend: Box<dyn Backend>,
    state: Mutex<WriteState>,
    work: Condvar,
    durable: AtomicU64,
    durable_tx: watch::Sender<Durable>,
    /// Held while events are broadcast and while a watcher subscribes, so a new watcher's
    /// catch-up boundary and its first live event line up exactly.
    publish: Mutex<Option<broadcast::Sender<Event>>>,
    pub(crate) compacted: AtomicU64,
    /// Readers hold it shared; compaction batches take it exclusively, because a range scan
    /// is not atomic against a batch and could otherwise see half of a compaction step.
    pub(crate) gate: RwLock<()>,
    pub(crate) compact_lock: tokio::sync::Mutex<()>,
    closed: AtomicBool,
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn poisoned() -> StoreError {
    StoreError::Backend("store lock poisoned".into())
}

impl Core {
    pub(crate) fn new(backend: Box<dyn Backend>) -> Result<Core, StoreError> {
        let compacted = match backend.get(keys::META_COMPACTED)? {
            Some(v) => keys::read_u64(&v, "compacted revision")?,
            None => 0,
        };
        let last_logged = match backend.last(&[keys::LOG], &[keys::LOG + 1])? {
            Some((k, _)) => keys::parse_log_key(&k)?,
            None => 0,
        };
        // Compaction may have removed every log entry; the compacted revision then is the head.
        let head = last_logged.max(compacted);
        let (tx, _) = broadcast::channel(WATCH_BUFFER);
        let (durable_tx, _) = watch::channel(Durable {
            rev: head,
            ..Durable::default()
        });
        Ok(Core {
            backend,
            state: Mutex::new(WriteState {
                applied: head,
                last_time_ms: 0,
                pending: Vec::new(),
                shutdown: false,
            }),
            work: Condvar::new(),
            durable: AtomicU64::new(head),
            durable_tx,
            publish: Mutex::new(Some(tx)),
            compacted: AtomicU64::new(compacted),
            gate: RwLock::new(()),
            compact_lock: tokio::sync::Mutex::new(()),
            closed: AtomicBool::new(false),
        })
    }

    pub(crate) fn durable(&self) -> Revision {
        self.durable.load(Ordering::Acquire)
    }

    pub(crate) fn compacted(&self) -> Revision {
        self.compacted.load(Ordering::Acquire)
    }

    pub(crate) fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        Ok(())
    }

    pub(crate) fn read_gate(&self) -> Result<RwLockReadGuard<'_, ()>, StoreError> {
        self.gate.read().map_err(|_| poisoned())
    }

    fn lock_state(&self) -> Result<MutexGuard<'_, WriteState>, StoreError> {
        self.state.lock().map_err(|_| poisoned())
    }

    pub(crate) async fn write(&self, key: &str, w: Write) -> Result<KeyValue, StoreError> {
        self.check_open()?;
        keys::check_key(key)?;
        let (kv, rev) = match self.apply(key, w) {
            Ok(done) => done,
            Err(e) => {
                // Reads see durable revisions only. A write refused because of a newer one
                // still being flushed returns once that one is readable, so a caller that
                // re-reads and retries sees what it conflicted with instead of spinning.
                let seen = match &e {
                    StoreError::Conflict { actual, .. } => Some(*actual),
                    StoreError::AlreadyExists { .. } | StoreError::NotFound { .. } => {
                        self.lock_state().ok().map(|st| st.applied)
                    }
                    _ => None,
                };
                if let Some(rev) = seen.filter(|r| *r > self.durable()) {
                    let _ = self.wait_durable(rev).await;
                }
                return Err(e);
            }
        };
        self.wait_durable(rev).await?;
        Ok(kv)
    }

    fn apply(&self, key: &str, w: Write) -> Result<(KeyValue, Revision), StoreError> {
        let kb = key.as_bytes();
        let ck = keys::current_key(key);
        let mut st = self.lock_state()?;
        let current = match self.backend.get(&ck)? {
            Some(v) => Some(keys::decode_current(&v)?),
            None => None,
        };
        let rev = st.applied + 1;
        let time = now_ms().max(st.last_time_ms);
        let not_found = || StoreError::NotFound {
            key: key.to_string(),
        };
        let conflict = |expected, actual| StoreError::Conflict {
            key: key.to_string(),
            expected,
            actual,
        };
        let (event, pointer) = match w {
            Write::Create(value) => {
                if current.is_some() {
                    return Err(StoreError::AlreadyExists {
                        key: key.to_string(),
                    });
                }
                let kv = KeyValue {
                    key: key.to_string(),
                    value,
                    create_revision: rev,
                    mod_revision: rev,
                };
                (
                    Event {
                        kind: EventKind::Put,
                        kv,
                        prev: None,
                    },
                    Some(keys::encode_current(rev, rev)),
                )
            }
            Write::Update(value, expected) => {
                let (create, modified) = current.ok_or_else(not_found)?;
                if modified != expected {
                    return Err(conflict(expected, modified));
                }
                let prev = self.version(key, modified)?;
                let kv = KeyValue {
                    key: key.to_string(),
                    value,
                    create_revision: create,
                    mod_revision: rev,
                };
                (
                    Event {
                        kind: EventKind::Put,
                        kv,
                        prev: Some(prev),
                    },
                    Some(keys::encode_current(create, rev)),
                )
            }
            Write::Delete(expected) => {
                let (_, modified) = current.ok_or_else(not_found)?;
                if let Some(expected) = expected.filter(|e| *e != modified) {
                    return Err(conflict(expected, modified));
                }
                let prev = self.version(key, modified)?;
                let kv = KeyValue {
                    mod_revision: rev,
                    ..prev.clone()
                };
                (
                    Event {
                        kind: EventKind::Delete,
                        kv,
                        prev: Some(prev),
                    },
                    None,
                )
            }
        };
        // A delete's history record is a tombstone: the value stays in the previous version.
        let stored: &[u8] = match event.kind {
            EventKind::Put => &event.kv.value,
            EventKind::Delete => &[],
        };
        let ops = vec![
            Op::Put(
                keys::history_key(kb, rev),
                keys::encode_history(&event.kind, event.kv.create_revision, stored),
            ),
            match pointer {
                Some(p) => Op::Put(ck, p),
                None => Op::Remove(ck),
            },
            Op::Put(
                keys::log_key(rev).to_vec(),
                keys::encode_log(&event.kind, time, kb),
            ),
        ];
        self.backend.apply(ops)?;
        st.applied = rev;
        st.last_time_ms = time;
        let kv = event.kv.clone();
        st.pending.push(event);
        drop(st);
        self.work.notify_one();
        Ok((kv, rev))
    }

    /// The put stored at exactly `rev` (a live version, so never removed by compaction).
    fn version(&self, key: &str, rev: Revision) -> Result<KeyValue, StoreError> {
        let raw = self
            .backend
            .get(&keys::history_key(key.as_bytes(), rev))?
            .ok_or_else(|| {
                StoreError::Backend(format!("history of key {key} missing revision {rev}"))
            })?;
        let (_, create, value) = keys::decode_history(&raw)?;
        Ok(KeyValue {
            key: key.to_string(),
            value,
            create_revision: create,
            mod_revision: rev,
        })
    }

    async fn wait_durable(&self, rev: Revision) -> Result<(), StoreError> {
        let mut rx = self.durable_tx.subscribe();
        let d = rx
            .wait_for(|d| d.rev >= rev || d.failed_upto >= rev)
            .await
            .map_err(|_| StoreError::Closed)?
            .clone();
        if d.rev >= rev {
            Ok(())
        } else {
            Err(StoreError::Backend(format!(
                "flush of revision {rev} failed: {}",
                d.error
            )))
        }
    }

    /// Body of the flusher thread: flush whatever is applied, then publish it; repeat.
    pub(crate) fn run_flusher(&self) {
        loop {
            let (target, events) = {
                let Ok(mut st) = self.state.lock() else {
                    return;
                };
                while st.pending.is_empty() && !st.shutdown {
                    st = match self.work.wait(st) {
                        Ok(st) => st,
                        Err(_) => return,
                    };
                }
                if st.pending.is_empty() {
                    return;
                }
                (st.applied, std::mem::take(&mut st.pending))
            };
            match self.backend.flush() {
                Ok(()) => self.publish(target, events),
                Err(e) => {
                    tracing::error!(revision = target, error = %e, "store flush failed");
                    // Keep the events: a later successful flush makes them durable and visible.
                    if let Ok(mut st) = self.state.lock() {
                        let newer = std::mem::replace(&mut st.pending, events);
                        st.pending.extend(newer);
                    }
                    self.durable_tx.send_modify(|d| {
                        d.failed_upto = target;
                        d.error = e.to_string();
                    });
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    fn publish(&self, target: Revision, events: Vec<Event>) {
        let guard = self.publish.lock();
        // The revision becomes readable before any watcher hears of it: a client that gets an
        // event and at once reads or updates the object must find it. Both happen under the
        // publish lock, so a new subscriber sees either both or neither.
        self.durable.store(target, Ordering::Release);
        self.durable_tx.send_modify(|d| d.rev = target);
        if let Ok(tx) = &guard {
            if let Some(tx) = tx.as_ref() {
                for ev in events {
                    // No receivers is fine: nobody is watching.
                    let _ = tx.send(ev);
                }
            }
        }
        drop(guard);
    }

    /// A receiver for events after the returned revision, which is durable and complete.
    pub(crate) fn subscribe(&self) -> Result<(broadcast::Receiver<Event>, Revision), StoreError> {
        let guard = self.publish.lock().map_err(|_| poisoned())?;
        let tx = guard.as_ref().ok_or(StoreError::Closed)?;
        Ok((tx.subscribe(), self.durable()))
    }

    pub(crate) fn stop_flusher(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.shutdown = true;
        }
        self.work.notify_all();
    }

    pub(crate) async fn close(&self) -> Result<(), StoreError> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let applied = self.lock_state()?.applied;
        self.wait_durable(applied).await?;
        // Compaction may have left unflushed removals behind.
        self.backend.flush()?;
        self.end_watches();
        self.stop_flusher();
        Ok(())
    }

    /// Dropping the broadcast sender ends every live watch stream with `Closed`.
    pub(crate) fn end_watches(&self) {
        if let Ok(mut tx) = self.publish.lock() {
            tx.take();
        }
    }
}
