//! The OCI distribution protocol against one registry endpoint: manifest and blob GETs, the
//! `WWW-Authenticate` dance (Bearer token from the realm, with basic credentials or an
//! identity token; or plain Basic), redirects (credentials never follow to another host), and
//! registry error bodies turned into `CODE: message` text. Blobs stream to a file while being
//! hashed; this module never decides what to store, it only fetches and checks sizes and
//! digests.

use std::path::Path;

use bytes::Bytes;
use http::{Method, StatusCode};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::{parse_challenge, Challenge, RegistryAuth};
use super::error::{ImageError, RegistryError};
use super::http::{HttpClient, Response};
use super::manifest::{MANIFEST_ACCEPT, MAX_MANIFEST_BYTES};
use super::registries::{Endpoint, TlsConfig};

const MAX_REDIRECTS: usize = 5;
const MAX_ERROR_BODY: u64 = 64 << 10;

/// A conversation with one endpoint about one repository; it keeps the token it earned.
#[derive(Clone)]
pub struct Session<'a> {
    http: &'a HttpClient,
    pub endpoint: Endpoint,
    creds: Option<RegistryAuth>,
    tls: Option<TlsConfig>,
    authorization: Option<String>,
}

pub struct Fetched {
    pub bytes: Bytes,
    pub content_type: Option<String>,
}

impl<'a> Session<'a> {
    pub fn new(
        http: &'a HttpClient,
        endpoint: Endpoint,
        creds: Option<RegistryAuth>,
        tls: Option<TlsConfig>,
    ) -> Self {
        Session {
            http,
            endpoint,
            creds,
            tls,
            authorization: None,
        }
    }

    fn url(&self, kind: &str, reference: &str) -> String {
        format!(
            "{}/v2/{}/{}/{}",
            self.endpoint.url(),
            self.endpoint.repository,
            kind,
            reference
        )
    }

    pub async fn manifest(&mut self, reference: &str) -> Result<Fetched, RegistryError> {
        let url = self.url("manifests", reference);
        let resp = self.get(&url, Some(MANIFEST_ACCEPT)).await?;
        let content_type = resp.header("content-type").map(str::to_string);
        let bytes = resp.bytes(MAX_MANIFEST_BYTES).await?;
        Ok(Fetched {
            bytes,
            content_type,
        })
    }

    /// A small blob (the image config) into memory, size-checked.
    pub async fn blob_bytes(&mut self, digest: &str, limit: u64) -> Result<Bytes, RegistryError> {
        let url = self.url("blobs", digest);
        self.get(&url, None).await?.bytes(limit).await
    }

    /// Stream a blob into `dest`, checking its size and sha256 against the descriptor. On a
    /// mismatch the file is removed and nothing is kept.
    pub async fn blob_to_file(
        &mut self,
        digest: &str,
        size: u64,
        dest: &Path,
    ) -> Result<(), ImageError> {
        let endpoint = self.endpoint.url();
        let fail = |e: RegistryError| ImageError::Layer {
            digest: digest.to_string(),
            reason: format!("download from {endpoint}: {e}"),
        };
        let url = self.url("blobs", digest);
        let mut resp = self.get(&url, None).await.map_err(fail)?;
        let result = async {
            let mut file = tokio::fs::File::create(dest)
                .await
                .map_err(|e| ImageError::io("create", dest, e))?;
            let mut hasher = Sha256::new();
            let mut written = 0u64;
            while let Some(chunk) = resp.next_chunk().await.map_err(fail)? {
                written += chunk.len() as u64;
                if written > size {
                    return Err(ImageError::Layer {
                        digest: digest.to_string(),
                        reason: format!("registry sent more than the {size} bytes in the manifest"),
                    });
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(|e| ImageError::io("write", dest, e))?;
            }
            file.flush()
                .await
                .map_err(|e| ImageError::io("write", dest, e))?;
            if written != size {
                return Err(ImageError::Layer {
                    digest: digest.to_string(),
                    reason: format!("got {written} bytes, manifest says {size}"),
                });
            }
            let actual = format!("sha256:{:x}", hasher.finalize());
            if actual != digest {
                return Err(ImageError::DigestMismatch {
                    what: "blob".into(),
                    digest: digest.to_string(),
                    actual,
                });
            }
            Ok(())
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    /// GET with authentication and redirects; a non-2xx answer becomes `RegistryError::Status`
    /// carrying the registry's error text.
    async fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response, RegistryError> {
        let mut url = url.to_string();
        let mut retried_auth = false;
        let mut same_host = true;
        for _ in 0..=MAX_REDIRECTS {
            let mut headers = Vec::new();
            if let Some(a) = accept {
                headers.push(("accept", a.to_string()));
            }
            if same_host {
                if let Some(auth) = &self.authorization {
                    headers.push(("authorization", auth.clone()));
                }
            }
            let tls = same_host.then_some(self.tls.as_ref()).flatten();
            let resp = self
                .http
                .send(Method::GET, &url, &headers, None, tls)
                .await?;
            match resp.status {
                s if s.is_success() => return Ok(resp),
                StatusCode::UNAUTHORIZED if same_host && !retried_auth => {
                    retried_auth = true;
                    let challenge = resp
                        .header("www-authenticate")
                        .and_then(parse_challenge)
                        .ok_or_else(|| {
                            RegistryError::Auth(
                                "401 without a usable WWW-Authenticate challenge".into(),
                            )
                        });
                    let challenge = match challenge {
                        Ok(c) => c,
                        Err(e) => return Err(status_error(resp).await.unwrap_or(e)),
                    };
                    match self.authorize(&challenge).await? {
                        Some(header) => self.authorization = Some(header),
                        None => return Err(status_error(resp).await.unwrap_or_else(|e| e)),
                    }
                }
                s if s.is_redirection() => {
                    let location = resp
                        .header("location")
                        .ok_or_else(|| RegistryError::Protocol(format!("{s} without Location")))?;
                    let next = resolve_location(&url, location);
                    if host_of(&next) != host_of(&url) {
                        same_host = false;
                    }
                    url = next;
                }
                _ => return Err(status_error(resp).await.unwrap_or_else(|e| e)),
            }
        }
        Err(RegistryError::Protocol(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }

    /// The Authorization header value answering `challenge`, or `None` if we have nothing to
    /// offer (Basic without credentials).
    async fn authorize(&self, challenge: &Challenge) -> Result<Option<String>, RegistryError> {
        use base64::Engine;
        let basic = self
            .creds
            .as_ref()
            .filter(|c| !c.username.is_empty())
            .map(|c| {
                let raw = format!("{}:{}", c.username, c.password);
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            });
        let (realm, service, scope) = match challenge {
            Challenge::Basic => return Ok(basic),
            Challenge::Bearer {
                realm,
                service,
                scope,
            } => (realm, service, scope),
        };
        let scope = scope
            .clone()
            .unwrap_or_else(|| format!("repository:{}:pull", self.endpoint.repository));
        let mut query = Vec::new();
        if let Some(s) = service {
            query.push(("service", s.clone()));
        }
        query.push(("scope", scope));
        let resp = if let Some(token) = self.creds.as_ref().and_then(|c| c.identity_token.clone()) {
            let mut form = query.clone();
            form.push(("grant_type", "refresh_token".into()));
            form.push(("refresh_token", token));
            form.push(("client_id", "k1s".into()));
            let body = encode_query(&form);
            let headers = [(
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            )];
            self.http
                .send(
                    Method::POST,
                    realm,
                    &headers,
                    Some(body.into()),
                    self.tls.as_ref(),
                )
                .await?
        } else {
            let sep = if realm.contains('?') { '&' } else { '?' };
            let url = format!("{realm}{sep}{}", encode_query(&query));
            let headers: Vec<(&str, String)> =
                basic.iter().map(|b| ("authorization", b.clone())).collect();
            self.http
                .send(Method::GET, &url, &headers, None, self.tls.as_ref())
                .await?
        };
        if !resp.status.is_success() {
            let err = status_error(resp).await.unwrap_or_else(|e| e);
            return Err(RegistryError::Auth(format!(
                "token endpoint {realm}: {err}"
            )));
        }
        #[derive(Deserialize)]
        struct Token {
            #[serde(default)]
            token: Option<String>,
            #[serde(default)]
            access_token: Option<String>,
        }
        let body = resp.bytes(MAX_ERROR_BODY).await?;
        let t: Token = serde_json::from_slice(&body)
            .map_err(|e| RegistryError::Auth(format!("token endpoint {realm}: bad JSON: {e}")))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| RegistryError::Auth(format!("token endpoint {realm}: no token")))?;
        Ok(Some(format!("Bearer {token}")))
    }
}

/// Turn an error response into `Status { status, message }` with the registry's own text.
async fn status_error(resp: Response) -> Result<RegistryError, RegistryError> {
    let status = resp.status.as_u16();
    let body = resp.bytes(MAX_ERROR_BODY).await.unwrap_or_default();
    Ok(RegistryError::Status {
        status,
        message: error_text(status, &body),
    })
}

/// `CODE: message (detail)` for each entry of the distribution error envelope, else the body.
pub fn error_text(status: u16, body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
        #[serde(default)]
        detail: Option<serde_json::Value>,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        if !env.errors.is_empty() {
            return env
                .errors
                .iter()
                .map(|e| {
                    let mut s = format!("{}: {}", e.code, e.message);
                    if let Some(d) = e.detail.as_ref().filter(|d| !d.is_null()) {
                        s.push_str(&format!(" ({d})"));
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("error")
            .to_string()
    } else {
        text.chars().take(512).collect()
    }
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct(k), pct(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split('/').next().unwrap_or("")
}

fn resolve_location(base: &str, location: &str) -> String {
    if location.contains("://") {
        location.to_string()
    } else if location.starts_with('/') {
        let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
        format!("{}{}", &base[..scheme_end], host_of(base)) + location
    } else {
        match base.rfind('/') {
            Some(i) => format!("{}/{}", &base[..i], location),
            None => location.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_keep_registry_text() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        assert_eq!(
            error_text(404, body),
            r#"MANIFEST_UNKNOWN: manifest unknown ({"Tag":"nope"})"#
        );
        assert_eq!(error_text(500, b""), "Internal Server Error");
        assert_eq!(error_text(503, b"  down  "), "down");
    }

    #[test]
    fn locations() {
        assert_eq!(
            resolve_location("http://a:1/v2/x/blobs/y", "/z?q=1"),
            "http://a:1/z?q=1"
        );
        assert_eq!(
            resolve_location("http://a/v2/x", "https://b/c"),
            "https://b/c"
        );
        assert_eq!(pct("repository:a/b:pull"), "repository%3Aa%2Fb%3Apull");
    }
}
