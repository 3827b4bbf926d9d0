//! A Bearer-token front for the test registry, as Docker Hub and most cloud registries work:
//! requests without `Authorization: Bearer <token>` get a 401 with a `WWW-Authenticate:
//! Bearer realm=...,service=...,scope=...` challenge; `GET /token` checks basic credentials
//! and returns `{"token": ...}`; authorised requests are forwarded to the real registry.
//! Test-only: plain HTTP/1.1, one request per connection.

use std::sync::{Arc, Mutex};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const TOKEN: &str = "test-token-42";
/// The OAuth2 refresh token (`identitytoken`) the token endpoint accepts on POST.
pub const REFRESH: &str = "refresh-token-7";

pub struct TokenProxy {
    pub addr: String,
    /// Query strings the token endpoint received.
    pub token_requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TokenProxy {
    pub async fn start(upstream: String, user: &str, pass: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?.to_string();
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        );
        let token_requests = Arc::new(Mutex::new(Vec::new()));
        let (log, me) = (token_requests.clone(), addr.clone());
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let (up, want, log, me) = (upstream.clone(), want.clone(), log.clone(), me.clone());
                tokio::spawn(async move {
                    let _ = serve(conn, &up, &want, &log, &me).await;
                });
            }
        });
        Ok(TokenProxy {
            addr,
            token_requests,
            task,
        })
    }
}

async fn serve(
    mut conn: TcpStream,
    upstream: &str,
    want_basic: &str,
    log: &Mutex<Vec<String>>,
    me: &str,
) -> anyhow::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
    let auth = text
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("authorization")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    if text.starts_with("POST /token") {
        let len: usize = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len];
        conn.read_exact(&mut body).await?;
        let form = String::from_utf8_lossy(&body).to_string();
        log.lock().unwrap().push(form.clone());
        let ok = form.contains("grant_type=refresh_token")
            && form.contains(&format!("refresh_token={REFRESH}"));
        let (status, body) = if ok {
            (
                "200 OK",
                format!(r#"{{"access_token":"{TOKEN}","expires_in":300}}"#),
            )
        } else {
            (
                "400 Bad Request",
                r#"{"error":"invalid_grant"}"#.to_string(),
            )
        };
        return respond(&mut conn, status, "", &body).await;
    }
    if let Some(query) = path.strip_prefix("/token?") {
        log.lock().unwrap().push(query.to_string());
        let (status, body) = if auth == want_basic {
            (
                "200 OK",
                format!(r#"{{"token":"{TOKEN}","expires_in":300}}"#),
            )
        } else {
            (
                "401 Unauthorized",
                r#"{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials for token"}]}"#
                    .to_string(),
            )
        };
        return respond(&mut conn, status, "", &body).await;
    }
    if auth != format!("Bearer {TOKEN}") {
        let repo = path
            .strip_prefix("/v2/")
            .and_then(|p| p.split("/manifests/").next())
            .and_then(|p| p.split("/blobs/").next())
            .unwrap_or("");
        let challenge = format!(
            "WWW-Authenticate: Bearer realm=\"http://{me}/token\",service=\"k1s-test\",scope=\"repository:{repo}:pull\"\r\n"
        );
        let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        return respond(&mut conn, "401 Unauthorized", &challenge, body).await;
    }
    // Forward without our Authorization, asking the registry to close when done.
    let mut forwarded = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("authorization:") || lower.starts_with("connection:") {
            continue;
        }
        forwarded.push_str(line);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).await?;
    up.write_all(forwarded.as_bytes()).await?;
    tokio::io::copy(&mut up, &mut conn).await?;
    conn.shutdown().await?;
    Ok(())
}

async fn respond(
    conn: &mut TcpStream,
    status: &str,
    extra: &str,
    body: &str,
) -> anyhow::Result<()> {
    let msg = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(msg.as_bytes()).await?;
    conn.shutdown().await?;
    Ok(())
}
