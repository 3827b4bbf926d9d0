//! List response bodies written as they are sent: a list of 10k objects is encoded a chunk
//! at a time from the page the registry read, so the whole response never exists in memory
//! at once next to that page, and the first bytes leave before the last object is encoded.
//!
//! Owns the JSON splice of stored objects and the streamed server-side Table. It must never
//! decide which objects a list holds (the registry did) nor block: every chunk is bounded
//! work on objects already in memory.

use super::printers::{self, IncludeObject, Row};
use super::request::Query;
use super::response::{self, Body};
use crate::registry::{codec, ApiError, KeyValue, ListPage, ResourceInfo};
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Frame;
use serde_json::Value;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Bytes encoded per body frame: large enough that framing and TLS records amortize, small
/// enough that a slow client holds little more than the page itself.
const CHUNK: usize = 64 * 1024;

/// Produces a response body in parts.
trait Encoder: Send + Unpin + 'static {
    /// Appends the next part to `out`; false once the last part is written.
    fn next(&mut self, out: &mut Vec<u8>) -> Result<bool, ApiError>;
}

/// A JSON document whose last field is an array of one element per listed object: `head`
/// (up to the array's `[`), the elements comma-separated, then `tail`.
struct Items<F> {
    head: Option<Vec<u8>>,
    items: std::vec::IntoIter<KeyValue>,
    first: bool,
    tail: &'static [u8],
    write: F,
}

impl<F> Items<F>
where
    F: FnMut(&mut Vec<u8>, &KeyValue) -> Result<(), ApiError> + Send + Unpin + 'static,
{
    fn new(head: Vec<u8>, page: ListPage, tail: &'static [u8], write: F) -> Items<F> {
        Items {
            head: Some(head),
            items: page.items.into_iter(),
            first: true,
            tail,
            write,
        }
    }
}

impl<F> Encoder for Items<F>
where
    F: FnMut(&mut Vec<u8>, &KeyValue) -> Result<(), ApiError> + Send + Unpin + 'static,
{
    fn next(&mut self, out: &mut Vec<u8>) -> Result<bool, ApiError> {
        if let Some(head) = self.head.take() {
            out.extend_from_slice(&head);
            return Ok(true);
        }
        let Some(kv) = self.items.next() else {
            out.extend_from_slice(self.tail);
            return Ok(false);
        };
        if !std::mem::take(&mut self.first) {
            out.push(b',');
        }
        (self.write)(out, &kv)?;
        Ok(true)
    }
}

fn internal(e: serde_json::Error) -> ApiError {
    ApiError::internal(e.to_string())
}

/// A list as JSON: the stored bytes of each object with its resourceVersion spliced in.
pub(super) fn json(res: &ResourceInfo, page: ListPage) -> Result<Response<Body>, ApiError> {
    let mut head = format!(
        "{{\"kind\":\"{}\",\"apiVersion\":\"{}\",\"metadata\":",
        res.list_kind,
        res.api_version()
    )
    .into_bytes();
    serde_json::to_writer(&mut head, &page.list_meta()).map_err(internal)?;
    head.extend_from_slice(b",\"items\":[");
    respond(Items::new(head, page, b"]}", codec::write_with_rv))
}

/// A list as a `PartialObjectMetadataList`: each object's metadata only.
pub(super) fn metadata(page: ListPage) -> Result<Response<Body>, ApiError> {
    let mut head =
        br#"{"kind":"PartialObjectMetadataList","apiVersion":"meta.k8s.io/v1","metadata":"#
            .to_vec();
    serde_json::to_writer(&mut head, &page.list_meta()).map_err(internal)?;
    head.extend_from_slice(b",\"items\":[");
    respond(Items::new(head, page, b"]}", |out, kv| {
        let obj = codec::decode(kv)?;
        serde_json::to_writer(out, &response::partial(&obj)).map_err(internal)
    }))
}

/// How one object's row cells are printed.
type CellsFn = Box<dyn Fn(&Value, jiff::Timestamp) -> Vec<Value> + Send>;

/// A list as a `meta.k8s.io/v1` Table with the resource's upstream columns: each object is
/// parsed, printed and dropped in turn. A built-in resource's objects are parsed only as far
/// as its printer reads them, and each row's metadata is copied from the stored bytes.
pub(super) fn table(
    res: &ResourceInfo,
    page: ListPage,
    query: &Query,
) -> Result<Response<Body>, ApiError> {
    let include = include_object(query);
    let now = jiff::Timestamp::now();
    if res.custom.is_none() {
        let printer = printers::Builtin::new(&res.group, &res.plural);
        let mut head = Vec::new();
        printers::write_table_head(&mut head, &printer.columns(), &page.list_meta())
            .map_err(internal)?;
        return respond(Items::new(
            head,
            page,
            printers::TABLE_TAIL,
            move |out, kv| {
                let narrow =
                    printer.write_stored_row(out, &kv.value, kv.mod_revision, include, now);
                if narrow.map_err(internal)? {
                    return Ok(());
                }
                let obj = codec::decode(kv)?;
                let row = Row::new(printer.cells(&obj, now), &obj, include);
                serde_json::to_writer(out, &row).map_err(internal)
            },
        ));
    }
    let (columns, cells) = printer(res);
    let mut head = Vec::new();
    printers::write_table_head(&mut head, &columns, &page.list_meta()).map_err(internal)?;
    respond(Items::new(
        head,
        page,
        printers::TABLE_TAIL,
        move |out, kv| {
            let obj = codec::decode(kv)?;
            let row = Row::new(cells(&obj, now), &obj, include);
            serde_json::to_writer(out, &row).map_err(internal)
        },
    ))
}

/// The columns of `res` and the function that prints one object's cells.
pub(super) fn printer(res: &ResourceInfo) -> (Vec<printers::Column>, CellsFn) {
    match &res.custom {
        Some(c) => {
            let c = c.clone();
            (
                printers::crd_columns(&c.printer_columns),
                Box::new(move |o, now| printers::crd_cells(&c.printer_columns, o, now)),
            )
        }
        None => {
            let (group, plural) = (res.group.clone(), res.plural.clone());
            (
                printers::columns(&group, &plural),
                Box::new(move |o, now| printers::cells(&group, &plural, o, now)),
            )
        }
    }
}

/// `?includeObject=`: what each row carries (metadata unless asked otherwise).
pub(super) fn include_object(query: &Query) -> IncludeObject {
    match query.get("includeObject") {
        Some("None") => IncludeObject::None,
        Some("Object") => IncludeObject::Object,
        _ => IncludeObject::Metadata,
    }
}

/// The response for `enc`: one plain body when it fits in a chunk (most lists, and any error
/// found there is still a proper error response), else a streamed one.
fn respond<E: Encoder>(mut enc: E) -> Result<Response<Body>, ApiError> {
    let mut first = Vec::with_capacity(CHUNK + CHUNK / 4);
    let more = fill(&mut enc, &mut first)?;
    if !more {
        return Ok(response::bytes_response(
            StatusCode::OK,
            "application/json",
            first,
        ));
    }
    let body = Chunked {
        first: Some(Bytes::from(first)),
        enc: Some(enc),
    };
    let mut r = Response::new(body.boxed_unsync());
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

/// Encodes into `out` until it holds a chunk; false once the encoder is done.
fn fill<E: Encoder>(enc: &mut E, out: &mut Vec<u8>) -> Result<bool, ApiError> {
    while out.len() < CHUNK {
        if !enc.next(out)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The streamed body: the chunk `respond` encoded, then one chunk per poll. An error part
/// way (a corrupt stored object) ends the body with an error, which aborts the response as
/// upstream does once it has started writing a list.
struct Chunked<E> {
    first: Option<Bytes>,
    enc: Option<E>,
}

impl<E: Encoder> hyper::body::Body for Chunked<E> {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let Some(enc) = this.enc.as_mut() else {
            return Poll::Ready(None);
        };
        let mut out = Vec::with_capacity(CHUNK + CHUNK / 4);
        match fill(enc, &mut out) {
            Ok(more) => {
                if !more {
                    this.enc = None;
                }
                Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))))
            }
            Err(e) => {
                this.enc = None;
                Poll::Ready(Some(Err(std::io::Error::other(e.to_string()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.enc.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Catalog;
    use serde_json::json;
    use std::sync::Arc;

    /// `n` stored pods, every fifth one finished, each about 300 bytes.
    fn page(n: usize) -> ListPage {
        let items = (0..n)
            .map(|i| {
                let phase = if i % 5 == 0 { "Succeeded" } else { "Running" };
                let pod = json!({
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": format!("p-{i:05}"), "namespace": "default", "uid": format!("u-{i}"),
                                 "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "x"}},
                    "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
                    "status": {"phase": phase, "podIP": "10.42.0.9",
                               "containerStatuses": [{"name": "c", "ready": true, "restartCount": i % 3}]},
                });
                KeyValue {
                    key: format!("/registry/pods/default/p-{i:05}"),
                    value: codec::encode(&pod).unwrap(),
                    create_revision: 2 + i as u64,
                    mod_revision: 2 + i as u64,
                }
            })
            .collect();
        ListPage {
            items,
            revision: n as u64 + 2,
            continue_token: Some("tok".into()),
            remaining: Some(7),
        }
    }

    fn pods() -> Arc<ResourceInfo> {
        Catalog::new().snapshot().lookup("", "v1", "pods").unwrap()
    }

    /// The whole body, and how many frames it came in.
    async fn body(r: Response<Body>) -> (Value, usize) {
        let (bytes, frames) = body_bytes(r).await;
        (serde_json::from_slice(&bytes).unwrap(), frames)
    }

    async fn body_bytes(r: Response<Body>) -> (Vec<u8>, usize) {
        let mut body = r.into_body();
        let (mut bytes, mut frames) = (Vec::new(), 0);
        while let Some(f) = body.frame().await {
            let f = f.unwrap();
            if let Some(d) = f.data_ref() {
                bytes.extend_from_slice(d);
                frames += 1;
            }
        }
        (bytes, frames)
    }

    #[tokio::test]
    async fn streamed_json_list_is_the_decoded_list() {
        for (n, streamed) in [(0, false), (3, false), (2_000, true)] {
            let p = page(n);
            let want: Vec<Value> = p
                .items
                .iter()
                .map(|kv| codec::decode(kv).unwrap())
                .collect();
            let meta = p.list_meta();
            let (got, frames) = body(json(&pods(), p).unwrap()).await;
            assert_eq!(frames > 1, streamed, "{n} pods in {frames} frames");
            assert_eq!(got["kind"], "PodList");
            assert_eq!(got["apiVersion"], "v1");
            assert_eq!(got["metadata"], meta);
            assert_eq!(got["items"], Value::Array(want));
        }
    }

    #[tokio::test]
    async fn streamed_table_is_the_table_of_the_objects() {
        let res = pods();
        for q in ["", "includeObject=None", "includeObject=Object"] {
            let query = Query::parse(Some(q));
            let p = page(1_500);
            let objs: Vec<Value> = p
                .items
                .iter()
                .map(|kv| codec::decode(kv).unwrap())
                .collect();
            let meta = p.list_meta();
            let (bytes, frames) = body_bytes(table(&res, p, &query).unwrap()).await;
            assert!(frames > 1, "{frames} frames");
            let got: Value = serde_json::from_slice(&bytes).unwrap();
            let (columns, cells) = printer(&res);
            // Ages are printed from the time of the request; these pods are far older than
            // any test run, so both renderings agree.
            let now = jiff::Timestamp::now();
            let rows = objs.iter().map(|o| (cells(o, now), o)).collect();
            let want = printers::table(&columns, rows, include_object(&query), meta);
            assert_eq!(got, want, "query {q:?}");
            // byte for byte: rows printed from narrowed objects are the generic path's
            assert!(
                bytes == serde_json::to_vec(&want).unwrap(),
                "query {q:?}: the bytes differ"
            );
            assert_eq!(got["rows"].as_array().unwrap().len(), 1_500);
            assert_eq!(got["rows"][0]["conditions"][0]["type"], "Completed");
            assert!(got["rows"][1].get("conditions").is_none());
        }
    }

    #[tokio::test]
    async fn streamed_metadata_list_holds_only_metadata() {
        let p = page(1_000);
        let (got, _) = body(metadata(p).unwrap()).await;
        assert_eq!(got["kind"], "PartialObjectMetadataList");
        let items = got["items"].as_array().unwrap();
        assert_eq!(items.len(), 1_000);
        assert_eq!(items[7]["kind"], "PartialObjectMetadata");
        assert_eq!(items[7]["metadata"]["name"], "p-00007");
        assert_eq!(items[7]["metadata"]["resourceVersion"], "9");
        assert!(items[7].get("spec").is_none());
    }

    #[tokio::test]
    async fn a_corrupt_object_part_way_ends_the_stream_with_an_error() {
        let mut p = page(1_000);
        p.items[900].value = Bytes::from_static(b"{not json");
        let r = metadata(p).unwrap();
        let mut body = r.into_body();
        let mut failed = false;
        while let Some(f) = body.frame().await {
            if f.is_err() {
                failed = true;
                break;
            }
        }
        assert!(
            failed,
            "the body must end in an error, not a truncated document"
        );
        // Found in the first chunk, it is a plain error response instead.
        let mut p = page(10);
        p.items[3].value = Bytes::from_static(b"{not json");
        assert!(metadata(p).is_err());
        // a Table reads objects narrowly, yet a corrupt one is still an error, not a row
        let mut p = page(10);
        p.items[3].value = Bytes::from_static(b"{\"metadata\":{\"name\":\"p\"},");
        assert!(table(&pods(), p, &Query::parse(None)).is_err());
    }
}
