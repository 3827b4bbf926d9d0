//! Watches: the store's event stream for a resource, filtered by selectors, with the initial
//! state as ADDED events when asked, bookmarks, and an ERROR event (410) when the requested
//! revision is gone, as kube-apiserver does.

use super::codec;
use super::error::{ApiError, ApiResult};
use super::list::ListOptions;
use super::resources::ResourceInfo;
use super::Registry;
use crate::store::{Event, EventKind, StoreError};
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub kind: &'static str,
    pub object: Value,
}

#[derive(Clone, Debug)]
pub struct WatchOptions {
    pub list: ListOptions,
    pub allow_bookmarks: bool,
    pub send_initial_events: bool,
    pub bookmark_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            list: ListOptions::default(),
            allow_bookmarks: false,
            send_initial_events: false,
            bookmark_interval: Duration::from_secs(30),
        }
    }
}

fn error_event(e: &ApiError) -> WatchEvent {
    WatchEvent {
        kind: "ERROR",
        object: e.to_status(),
    }
}

impl Registry {
    /// Start a watch. Events arrive on the returned channel until the client goes away, the
    /// watcher falls too far behind, or the store closes.
    pub async fn watch(
        &self,
        res: Arc<ResourceInfo>,
        ns: Option<String>,
        opts: WatchOptions,
    ) -> ApiResult<mpsc::Receiver<WatchEvent>> {
        let (tx, rx) = mpsc::channel(256);
        let rv = opts.list.resource_version.clone().unwrap_or_default();
        let initial = opts.send_initial_events || rv.is_empty() || rv == "0";
        let mut pending = Vec::new();
        let from = if initial {
            let mut lo = opts.list.clone();
            lo.limit = 0;
            lo.continue_token = None;
            lo.resource_version = None;
            let page = self.list(&res, ns.as_deref(), &lo).await?;
            for kv in &page.items {
                pending.push(WatchEvent {
                    kind: "ADDED",
                    object: codec::decode(kv)?,
                });
            }
            if opts.send_initial_events && opts.allow_bookmarks {
                let mut b = bookmark(&res, page.revision);
                b.object["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                pending.push(b);
            }
            page.revision
        } else {
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))?
        };
        let stream = match self.store.watch(&res.list_prefix(ns.as_deref()), from) {
            Ok(s) => Some(s),
            Err(StoreError::Compacted {
                requested,
                compacted,
            }) => {
                pending.push(error_event(&ApiError::gone(format!(
                    "too old resource version: {requested} ({compacted})"
                ))));
                None
            }
            Err(e) => return Err(ApiError::internal(e.to_string())),
        };
        let this = self.clone();
        tokio::spawn(async move {
            for ev in pending {
                if tx.send(ev).await.is_err() {
                    return;
                }
            }
            let Some(mut stream) = stream else { return };
            let mut last = from;
            let mut tick = tokio::time::interval(opts.bookmark_interval);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = tick.tick(), if opts.allow_bookmarks => {
                        if tx.send(bookmark(&res, last)).await.is_err() { return; }
                    }
                    item = stream.next() => {
                        let ev = match item {
                            Some(Ok(ev)) => ev,
                            Some(Err(StoreError::Compacted { requested, compacted })) => {
                                let e = ApiError::gone(format!("too old resource version: {requested} ({compacted})"));
                                let _ = tx.send(error_event(&e)).await;
                                return;
                            }
                            _ => return,
                        };
                        last = ev.kv.mod_revision;
                        match this.translate(&res, &opts.list, ev) {
                            Ok(Some(we)) => if tx.send(we).await.is_err() { return },
                            Ok(None) => {}
                            Err(e) => { let _ = tx.send(error_event(&e)).await; return; }
                        }
                    }
                }
            }
        });
        Ok(rx)
    }

    /// A store event as the watcher sees it: an object entering the selection is ADDED,
    /// leaving it is DELETED.
    fn translate(
        &self,
        res: &ResourceInfo,
        lo: &ListOptions,
        ev: Event,
    ) -> ApiResult<Option<WatchEvent>> {
        let filtering = !lo.label_selector.is_empty() || !lo.field_selector.is_empty();
        let now = filtering
            .then(|| self.matches(res, &ev.kv, lo))
            .transpose()?
            .unwrap_or(true);
        let before = match &ev.prev {
            Some(p) if filtering => self.matches(res, p, lo)?,
            Some(_) => true,
            None => false,
        };
        let kind = match ev.kind {
            EventKind::Delete if before => "DELETED",
            EventKind::Delete => return Ok(None),
            EventKind::Put => match (before, now) {
                (true, true) => "MODIFIED",
                (false, true) => "ADDED",
                (true, false) => "DELETED",
                (false, false) => return Ok(None),
            },
        };
        Ok(Some(WatchEvent {
            kind,
            object: codec::decode(&ev.kv)?,
        }))
    }
}

fn bookmark(res: &ResourceInfo, rev: u64) -> WatchEvent {
    WatchEvent {
        kind: "BOOKMARK",
        object: json!({"kind": res.kind, "apiVersion": res.api_version(), "metadata": {"resourceVersion": rev.to_string()}}),
    }
}
