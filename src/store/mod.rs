//! Temporary in-memory store with the final API; replaced by the real store module.
use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub type Revision = u64;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
}
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventKind,
    pub kv: KeyValue,
    pub prev: Option<KeyValue>,
}
pub struct ListResult {
    pub kvs: Vec<KeyValue>,
    pub revision: Revision,
    pub more: bool,
    pub remaining: u64,
}
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("key {key} already exists")]
    AlreadyExists { key: String },
    #[error("key {key} not found")]
    NotFound { key: String },
    #[error("conflict on {key}: expected {expected}, actual {actual}")]
    Conflict { key: String, expected: Revision, actual: Revision },
    #[error("revision {requested} compacted (compacted at {compacted})")]
    Compacted { requested: Revision, compacted: Revision },
    #[error("revision {requested} is in the future (current {current})")]
    FutureRevision { requested: Revision, current: Revision },
    #[error("backend: {0}")]
    Backend(String),
    #[error("store closed")]
    Closed,
}
pub type WatchStream = futures::stream::BoxStream<'static, Result<Event, StoreError>>;

#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    tx: tokio::sync::broadcast::Sender<Event>,
}
struct Inner {
    rev: Revision,
    data: BTreeMap<String, KeyValue>,
}
impl Store {
    pub fn memory() -> Store {
        let (tx, _) = tokio::sync::broadcast::channel(4096);
        Store { inner: Arc::new(Mutex::new(Inner { rev: 0, data: BTreeMap::new() })), tx }
    }
    pub fn open_sled(_p: &std::path::Path, _c: u64) -> Result<Store, StoreError> {
        Ok(Self::memory())
    }
    pub async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue, StoreError> {
        let mut g = self.inner.lock().unwrap();
        if g.data.contains_key(key) {
            return Err(StoreError::AlreadyExists { key: key.into() });
        }
        g.rev += 1;
        let kv = KeyValue { key: key.into(), value, create_revision: g.rev, mod_revision: g.rev };
        g.data.insert(key.into(), kv.clone());
        let _ = self.tx.send(Event { kind: EventKind::Put, kv: kv.clone(), prev: None });
        Ok(kv)
    }
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, StoreError> {
        Ok(self.inner.lock().unwrap().data.get(key).cloned())
    }
    pub async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize, _revision: Option<Revision>) -> Result<ListResult, StoreError> {
        let g = self.inner.lock().unwrap();
        let mut kvs = vec![];
        let mut more = false;
        let mut remaining = 0;
        for (k, v) in g.data.range(prefix.to_string()..) {
            if !k.starts_with(prefix) {
                break;
            }
            if let Some(s) = start_after {
                if k.as_str() <= s {
                    continue;
                }
            }
            if limit > 0 && kvs.len() >= limit {
                more = true;
                remaining += 1;
                continue;
            }
            kvs.push(v.clone());
        }
        Ok(ListResult { kvs, revision: g.rev, more, remaining })
    }
    pub async fn count(&self, prefix: &str) -> Result<u64, StoreError> {
        Ok(self.list(prefix, None, 0, None).await?.kvs.len() as u64)
    }
    pub async fn update(&self, key: &str, value: Bytes, expected: Revision) -> Result<KeyValue, StoreError> {
        let mut g = self.inner.lock().unwrap();
        let prev = g.data.get(key).cloned().ok_or(StoreError::NotFound { key: key.into() })?;
        if prev.mod_revision != expected {
            return Err(StoreError::Conflict { key: key.into(), expected, actual: prev.mod_revision });
        }
        g.rev += 1;
        let kv = KeyValue { key: key.into(), value, create_revision: prev.create_revision, mod_revision: g.rev };
        g.data.insert(key.into(), kv.clone());
        let _ = self.tx.send(Event { kind: EventKind::Put, kv: kv.clone(), prev: Some(prev) });
        Ok(kv)
    }
    pub async fn delete(&self, key: &str, expected: Option<Revision>) -> Result<KeyValue, StoreError> {
        let mut g = self.inner.lock().unwrap();
        let prev = g.data.get(key).cloned().ok_or(StoreError::NotFound { key: key.into() })?;
        if let Some(e) = expected {
            if prev.mod_revision != e {
                return Err(StoreError::Conflict { key: key.into(), expected: e, actual: prev.mod_revision });
            }
        }
        g.rev += 1;
        g.data.remove(key);
        let mut kv = prev.clone();
        kv.mod_revision = g.rev;
        let _ = self.tx.send(Event { kind: EventKind::Delete, kv: kv.clone(), prev: Some(prev) });
        Ok(kv)
    }
    pub fn watch(&self, prefix: &str, _from: Revision) -> Result<WatchStream, StoreError> {
        use futures::StreamExt;
        let rx = self.tx.subscribe();
        let prefix = prefix.to_string();
        let s = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(e) => Some((Ok(e), rx)),
                Err(_) => None,
            }
        })
        .filter(move |e| {
            let ok = match e {
                Ok(e) => e.kv.key.starts_with(&prefix),
                Err(_) => true,
            };
            async move { ok }
        });
        Ok(s.boxed())
    }
    pub fn current_revision(&self) -> Revision {
        self.inner.lock().unwrap().rev
    }
    pub fn compacted_revision(&self) -> Revision {
        0
    }
    pub async fn compact(&self, _r: Revision) -> Result<(), StoreError> {
        Ok(())
    }
    pub fn spawn_compactor(&self, _i: std::time::Duration, _r: std::time::Duration, _c: tokio_util::sync::CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async {})
    }
    pub async fn size_on_disk(&self) -> u64 {
        0
    }
    pub async fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
