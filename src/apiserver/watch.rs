//! Watch responses: a chunked stream of `{"type":..,"object":..}` lines, as Tables for
//! `kubectl get -w`, ended by the client, by `timeoutSeconds`, or by the server.

use super::handlers::{list_options, table};
use super::request::Query;
use super::response::{Body, Format};
use super::ApiServer;
use crate::registry::{ApiError, ResourceInfo, WatchEvent, WatchOptions};
use bytes::Bytes;
use futures::StreamExt;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn handle(
    srv: &Arc<ApiServer>,
    res: Arc<ResourceInfo>,
    ns: Option<String>,
    query: &Query,
    fmt: Format,
) -> Result<Response<Body>, ApiError> {
    let opts = WatchOptions {
        list: list_options(&res, query)?,
        allow_bookmarks: query.flag("allowWatchBookmarks"),
        send_initial_events: query.flag("sendInitialEvents")
            && query.get("sendInitialEvents") != Some("false"),
        ..WatchOptions::default()
    };
    let timeout = match query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
    {
        Some(t) if t > 0 => Duration::from_secs(t),
        // upstream's default: a random 30 to 60 minutes, so clients re-watch spread out
        _ => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };
    let rx = srv.registry.watch(res.clone(), ns, opts).await?;
    let deadline = tokio::time::Instant::now() + timeout;
    let query = query.clone();
    let first = std::sync::atomic::AtomicBool::new(true);
    let events = tokio_stream_from(rx, deadline).map(move |ev| {
        let object = if fmt == Format::Table && matches!(ev.kind, "ADDED" | "MODIFIED" | "DELETED")
        {
            let mut t = table(
                &res,
                std::slice::from_ref(&ev.object),
                &query,
                json!({"resourceVersion": ev.object["metadata"]["resourceVersion"]}),
            );
            // column definitions go with the first event only, as upstream sends them
            if !first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                if let Some(o) = t.as_object_mut() {
                    o.insert("columnDefinitions".into(), json!([]));
                }
            }
            t
        } else if fmt == Format::Metadata && matches!(ev.kind, "ADDED" | "MODIFIED" | "DELETED") {
            super::response::partial(&ev.object)
        } else {
            ev.object
        };
        let mut line =
            serde_json::to_vec(&json!({"type": ev.kind, "object": object})).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::io::Error>(Frame::data(Bytes::from(line)))
    });
    let mut r = Response::new(StreamBody::new(events).boxed_unsync());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

/// The registry's event channel as a stream that ends at `deadline`.
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<WatchEvent>,
    deadline: tokio::time::Instant,
) -> impl futures::Stream<Item = WatchEvent> + Send + 'static {
    futures::stream::unfold(rx, move |mut rx| async move {
        tokio::select! {
            ev = rx.recv() => ev.map(|e| (e, rx)),
            _ = tokio::time::sleep_until(deadline) => None,
        }
    })
}
