//! The Kubernetes API over HTTP: request parsing, authentication and authorization,
//! discovery, OpenAPI, the verbs on every resource, subresources, watch streams and Table
//! output. Handlers parse the request and call the registry; they never touch the store.
//!
//! `ApiServer::handle` is the whole router. The HTTPS listener (`serve`) and the in-process
//! `kube::Client` (`crate::client`) both call it, so both see the same semantics.

pub mod auth;
pub use satoken::TokenIssuer;
pub mod discovery;
mod eviction;
mod handlers;
mod impersonate;
mod listbody;
mod nodeproxy;
pub mod openapi;
pub mod patch;
pub mod printers;
pub mod protobuf;
pub mod rbac;
pub mod request;
pub mod response;
mod reviews;
pub mod satoken;
pub mod serve;
mod streamproxy;
mod subresources;
mod watch;

use crate::registry::{ApiError, Registry};
use auth::{Attributes, Authorizer, UserInfo};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use request::{Query, RequestInfo};
use response::{Body, Format};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Request bodies above this get 413 without being read whole.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The Kubernetes version k1s serves.
pub const KUBE_MINOR: &str = "33";
pub const KUBE_VERSION: &str = "v1.33.0";

pub struct ApiServer {
    registry: Registry,
    openapi: openapi::OpenApi,
    authorizer: Arc<dyn Authorizer>,
    /// host:port clients reach the API on (for /api serverAddressByClientCIDRs)
    server_address: String,
    ready: AtomicBool,
    /// TLS client for node agents (pods/log); set by the server once its PKI is loaded.
    node_client: std::sync::OnceLock<Arc<rustls::ClientConfig>>,
    /// Service-account token issuer; set by the server once its PKI is loaded.
    tokens: std::sync::OnceLock<Arc<TokenIssuer>>,
}

impl ApiServer {
    pub fn new(
        registry: Registry,
        authorizer: Arc<dyn Authorizer>,
        server_address: String,
    ) -> Arc<ApiServer> {
        let kinds: Vec<openapi::ServedKind> = registry
            .catalog()
            .snapshot()
            .resources
            .iter()
            .map(|r| openapi::ServedKind {
                group: r.group.clone(),
                version: r.version.clone(),
                kind: r.kind.clone(),
                plural: r.plural.clone(),
                namespaced: r.namespaced,
                verbs: r.verbs.clone(),
                subresources: r.subresources.clone(),
                strategic_merge_patch: true,
            })
            .collect();
        Arc::new(ApiServer {
            registry,
            openapi: openapi::OpenApi::new(&kinds),
            authorizer,
            server_address,
            ready: AtomicBool::new(false),
            node_client: std::sync::OnceLock::new(),
            tokens: std::sync::OnceLock::new(),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `/readyz` answers ok from now on.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::SeqCst);
    }

    /// The TLS client configuration for calls to node agents (`pods/log`).
    pub fn set_node_client(&self, tls: Arc<rustls::ClientConfig>) {
        let _ = self.node_client.set(tls);
    }

    /// Issue and accept service-account tokens signed with this issuer's key.
    pub fn set_token_issuer(&self, issuer: Arc<TokenIssuer>) {
        let _ = self.tokens.set(issuer);
    }

    /// Serve one request. `user` is None for an unauthenticated client.
    pub async fn handle<B>(
        self: &Arc<Self>,
        req: Request<B>,
        user: Option<UserInfo>,
    ) -> Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let started = std::time::Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let resp = match self.route(req, user.as_ref()).await {
            Ok(r) => r,
            Err(e) => response::error_response(&e),
        };
        tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed = ?started.elapsed(), "request");
        resp
    }

    async fn route<B>(
        self: &Arc<Self>,
        req: Request<B>,
        user: Option<&UserInfo>,
    ) -> Result<Response<Body>, ApiError>
    where
        B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let path = req.uri().path().to_string();
        let query = Query::parse(req.uri().query());
        let info = request::parse(req.method(), &path, &query);
        let public = matches!(
            path.as_str(),
            "/healthz" | "/livez" | "/readyz" | "/version" | "/version/"
        ) || path.starts_with("/healthz/")
            || path.starts_with("/livez/")
            || path.starts_with("/readyz/");
        let bearer = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let authenticated = match (user, bearer) {
            (Some(u), _) => Some(u.clone()),
            (None, Some(token)) => Some(
                satoken::authenticate(self, &token)
                    .await
                    .ok_or_else(ApiError::unauthorized)?,
            ),
            (None, None) => None,
        };
        let user = match authenticated {
            Some(mut u) => {
                // every authenticated user is in system:authenticated, as upstream adds it
                if !u.groups.iter().any(|g| g == "system:authenticated") {
                    u.groups.push("system:authenticated".into());
                }
                impersonate::resolve(self.authorizer.as_ref(), req.headers(), u)?
            }
            None if public => UserInfo {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
            },
            None => return Err(ApiError::unauthorized()),
        };
        if !public {
            let method = req.method().as_str().to_lowercase();
            // a namespace object is in its own namespace, so a RoleBinding there covers it
            let namespace = match (info.resource.as_str(), &info.name) {
                ("namespaces", Some(n)) => Some(n.as_str()),
                _ => info.namespace.as_deref(),
            };
            // a list or watch of one object by name (`kubectl get pod x -w`) names it, as
            // upstream, so rules with resourceNames apply
            let name = info.name.as_deref().or_else(|| {
                matches!(info.verb.as_str(), "list" | "watch")
                    .then(|| query.get("fieldSelector")?.strip_prefix("metadata.name="))
                    .flatten()
                    .map(|n| n.strip_prefix('=').unwrap_or(n))
                    .filter(|n| !n.contains(','))
            });
            let attrs = Attributes {
                verb: if info.is_resource_request {
                    &info.verb
                } else {
                    &method
                },
                group: &info.group,
                resource: &info.resource,
                subresource: info.subresource.as_deref(),
                namespace,
                name,
                path: &path,
            };
            if let Err(reason) = self.authorizer.authorize(&user, &attrs) {
                return Err(ApiError::forbidden(auth::forbidden_message(
                    &user, &attrs, &reason,
                )));
            }
        }
        let accept = req
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        if streamproxy::is_streaming(&info) {
            return streamproxy::proxy(self, req, &info, &query).await;
        }
        if info.is_resource_request {
            let fmt = response::negotiate(accept.as_deref())?;
            return handlers::resource(self, req, info, query, fmt, &user).await;
        }
        self.non_resource(&path, req.method(), &query, accept.as_deref(), &info)
    }

    fn non_resource(
        &self,
        path: &str,
        method: &Method,
        query: &Query,
        accept: Option<&str>,
        _info: &RequestInfo,
    ) -> Result<Response<Body>, ApiError> {
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            )));
        }
        let cat = self.registry.catalog().snapshot();
        let ok = |v: Value| Ok(response::json_response(StatusCode::OK, &v, Format::Json));
        let trimmed = path.trim_end_matches('/');
        match trimmed {
            "/healthz" | "/livez" => return Ok(health(query, true)),
            "/readyz" => return Ok(health(query, self.ready.load(Ordering::SeqCst))),
            "/version" => return ok(version()),
            "/.well-known/openid-configuration" => {
                if let Some(t) = self.tokens.get() {
                    return ok(json!({
                        "issuer": t.issuer(),
                        "jwks_uri": format!("https://{}/openid/v1/jwks", self.server_address),
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["ES256"],
                    }));
                }
            }
            "/openid/v1/jwks" => {
                if let Some(t) = self.tokens.get() {
                    return ok(t.jwks());
                }
            }
            "/openapi/v2" => {
                self.openapi.set_custom(&self.custom_crds());
                let content_type = openapi::v2_content_type(accept)?;
                let protobuf = content_type != "application/json";
                return Ok(response::bytes_response(
                    StatusCode::OK,
                    content_type,
                    self.openapi.v2_document(protobuf).as_ref().clone(),
                ));
            }
            "/openapi/v3" => {
                self.openapi.set_custom(&self.custom_crds());
                return ok(self.openapi.v3_index());
            }
            _ => {}
        }
        if let Some(rest) = trimmed.strip_prefix("/openapi/v3/") {
            self.openapi.set_custom(&self.custom_crds());
            return match self.openapi.v3_document(rest) {
                Some(doc) => Ok(response::bytes_response(
                    StatusCode::OK,
                    "application/json",
                    doc.as_ref().clone(),
                )),
                None => Err(ApiError::not_found_path()),
            };
        }
        let fmt = response::negotiate(accept)?;
        let parts: Vec<&str> = trimmed.trim_start_matches('/').split('/').collect();
        match parts.as_slice() {
            ["api"] if fmt == Format::Aggregated => {
                Ok(aggregated(discovery::aggregated(&cat, true)))
            }
            ["api"] => ok(discovery::api_versions(&self.server_address)),
            ["apis"] if fmt == Format::Aggregated => {
                Ok(aggregated(discovery::aggregated(&cat, false)))
            }
            ["apis"] => ok(discovery::group_list(&cat)),
            ["api", v] => discovery::resource_list(&cat, "", v)
                .map_or_else(|| Err(ApiError::not_found_path()), ok),
            ["apis", g] => {
                discovery::group(&cat, g).map_or_else(|| Err(ApiError::not_found_path()), ok)
            }
            ["apis", g, v] => discovery::resource_list(&cat, g, v)
                .map_or_else(|| Err(ApiError::not_found_path()), ok),
            [""] => ok(
                json!({"paths": ["/api", "/api/v1", "/apis", "/healthz", "/livez", "/openapi/v2", "/openapi/v3", "/readyz", "/version"]}),
            ),
            _ => Err(ApiError::not_found_path()),
        }
    }

    /// The CRDs the catalog serves, for the OpenAPI documents.
    fn custom_crds(&self) -> Vec<Value> {
        // the catalog keeps the schemas; rebuild CRD-shaped values from it
        let cat = self.registry.catalog().snapshot();
        let mut out: Vec<Value> = vec![];
        for r in cat.resources.iter().filter(|r| r.is_custom()) {
            let c = r.custom.as_ref().expect("custom");
            out.push(json!({
                "spec": {
                    "group": r.group,
                    "names": {"kind": r.kind, "plural": r.plural, "singular": r.singular, "listKind": r.list_kind},
                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                    "versions": [{"name": r.version, "served": true, "storage": c.storage_version == r.version,
                                  "schema": {"openAPIV3Schema": c.schema.clone().unwrap_or(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}))}}],
                }
            }));
        }
        out
    }
}

fn aggregated(v: Value) -> Response<Body> {
    response::bytes_response(
        StatusCode::OK,
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        serde_json::to_vec(&v).unwrap_or_default(),
    )
}

fn health(query: &Query, ok: bool) -> Response<Body> {
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = if query.get("verbose").is_some() {
        let mark = if ok { "[+]" } else { "[-]" };
        format!(
            "[+]ping ok\n[+]etcd ok\n{mark}informer-sync ok\n{}\n",
            if ok { "check passed" } else { "check failed" }
        )
    } else if ok {
        "ok".to_string()
    } else {
        "not ready".to_string()
    };
    response::bytes_response(status, "text/plain; charset=utf-8", body)
}

pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "emulationMajor": "1",
        "emulationMinor": KUBE_MINOR,
        "gitVersion": format!("{}+k1s-{}", KUBE_VERSION, env!("CARGO_PKG_VERSION")),
        "gitCommit": option_env!("K1S_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": "clean",
        "buildDate": option_env!("K1S_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "rustc",
        "compiler": "rustc",
        "platform": format!("linux/{}", crate::arch()),
    })
}

/// Read a request body up to `MAX_BODY`, answering 413 beyond it without buffering the rest.
/// The rest is read and thrown away in the background (up to a bound), so HTTP/2 clients get
/// the 413 instead of a reset stream.
pub async fn read_body<B>(headers: &http::HeaderMap, body: B) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let mut body = body;
    if declared.is_some_and(|n| n > MAX_BODY) {
        drain(body);
        return Err(ApiError::too_large());
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::bad_request(format!("reading the request body: {}", e.into()))
        })?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > MAX_BODY {
                drain(body);
                return Err(ApiError::too_large());
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

/// Discard up to 64 MiB more of a refused body, then drop it.
fn drain<B>(mut body: B)
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    tokio::spawn(async move {
        let mut left: usize = 64 << 20;
        while let Some(Ok(frame)) = body.frame().await {
            match frame.into_data() {
                Ok(d) if d.len() < left => left -= d.len(),
                Ok(_) => return,
                Err(_) => {}
            }
        }
    });
}
