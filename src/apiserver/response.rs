//! Building responses: the body type, content negotiation (JSON, YAML, server-side Table),
//! and the one place an `ApiError` becomes a `Status` response.

use crate::registry::ApiError;
use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full};
use serde_json::Value;

pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What the client accepts, from its Accept header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
    Table,
    /// apidiscovery.k8s.io/v2 aggregated discovery
    Aggregated,
    /// meta.k8s.io/v1 PartialObjectMetadata(List): metadata only
    Metadata,
}

pub fn negotiate(accept: Option<&str>) -> Result<Format, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Format::Json);
    };
    for part in accept.split(',') {
        let mut it = part.split(';').map(str::trim);
        let mt = it.next().unwrap_or_default();
        let params: Vec<(&str, &str)> = it.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(pk, _)| *pk == k).map(|(_, v)| *v);
        match (mt, param("as"), param("g")) {
            ("application/json", Some("Table"), Some("meta.k8s.io"))
                if matches!(param("v"), Some("v1") | Some("v1beta1")) =>
            {
                return Ok(Format::Table)
            }
            (
                "application/json",
                Some("PartialObjectMetadata" | "PartialObjectMetadataList"),
                Some("meta.k8s.io"),
            ) if matches!(param("v"), Some("v1") | Some("v1beta1")) => return Ok(Format::Metadata),
            ("application/json", Some("APIGroupDiscoveryList"), Some("apidiscovery.k8s.io"))
                if param("v") == Some("v2") =>
            {
                return Ok(Format::Aggregated)
            }
            ("application/json", Some(_), _) => continue,
            ("application/json", None, _) | ("*/*", _, _) | ("application/*", _, _) => {
                return Ok(Format::Json)
            }
            ("application/yaml", None, _) => return Ok(Format::Yaml),
            _ => continue,
        }
    }
    Err(ApiError::not_acceptable(
        "only the following media types are accepted: application/json, application/yaml",
    ))
}

/// The metadata-only view of an object.
pub fn partial(obj: &Value) -> Value {
    serde_json::json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]})
}

pub fn json_response(status: StatusCode, v: &Value, fmt: Format) -> Response<Body> {
    let (ct, body) = match fmt {
        Format::Yaml => (
            "application/yaml",
            serde_yaml::to_string(v)
                .map(String::into_bytes)
                .unwrap_or_default(),
        ),
        _ => (
            "application/json",
            serde_json::to_vec(v).unwrap_or_default(),
        ),
    };
    bytes_response(status, ct, body)
}

pub fn bytes_response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &e.to_status(), Format::Json)
}

/// Attach `Warning: 299 - "..."` headers, as upstream reports unknown fields and deprecations.
pub fn with_warnings(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let text = format!("299 - \"{}\"", w.replace('"', "\\\""));
        if let Ok(v) = HeaderValue::from_str(&text) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_kubectl_sends() {
        let t = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(negotiate(Some(t)).unwrap(), Format::Table);
        let d = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(negotiate(Some(d)).unwrap(), Format::Aggregated);
        assert_eq!(
            negotiate(Some("application/json, */*")).unwrap(),
            Format::Json
        );
        assert_eq!(negotiate(Some("application/yaml")).unwrap(), Format::Yaml);
        assert!(negotiate(Some("application/vnd.kubernetes.protobuf")).is_err());
        assert_eq!(negotiate(None).unwrap(), Format::Json);
    }
}
