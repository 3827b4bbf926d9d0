//! Registry credentials: the `RegistryAuth` the agent hands in per pull (decoded from
//! Kubernetes imagePullSecrets in `.dockerconfigjson` or legacy `.dockercfg` form), matching
//! a credential to a registry host, and parsing `WWW-Authenticate` challenges. No network, no
//! files: the token exchange itself lives in the client.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::ImageError;
use super::registries::decode_basic;

/// Credentials for one registry server.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    /// Host (and port) the credential is for, as written in the secret or config: a bare host,
    /// `host:port`, or a URL such as `https://index.docker.io/v1/`.
    pub server: String,
    pub username: String,
    pub password: String,
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the token endpoint.
    pub identity_token: Option<String>,
}

// Never print secrets, even in debug logs.
impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    /// The host part of `server`, with Docker Hub's aliases folded to `docker.io`.
    pub fn host(&self) -> String {
        normalize_server(&self.server)
    }

    pub fn matches(&self, host: &str) -> bool {
        let host = normalize_server(host);
        self.host() == host
    }
}

pub fn normalize_server(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_ascii_lowercase(),
    }
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// Parse the `.dockerconfigjson` format (`{"auths": {server: {auth | username/password}}}`)
/// or the legacy `.dockercfg` format (`{server: {auth, email}}`).
pub fn parse_docker_config_json(bytes: &[u8]) -> Result<Vec<RegistryAuth>, ImageError> {
    let bad = |r: String| ImageError::DockerConfig(r);
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad("top level must be a JSON object".into()))?;
    let entries = match obj.get("auths") {
        Some(auths) => auths.clone(),
        None => value.clone(),
    };
    let entries: BTreeMap<String, Entry> = serde_json::from_value(entries)
        .map_err(|e| bad(format!("entries must map server names to credentials: {e}")))?;
    let mut out = Vec::new();
    for (server, e) in entries {
        if normalize_server(&server).is_empty() {
            return Err(bad(format!("entry {server:?} has no server name")));
        }
        let (username, password) = match e.auth.as_deref().filter(|a| !a.is_empty()) {
            Some(a) => decode_basic(a).map_err(|r| bad(format!("entry {server:?}: {r}")))?,
            None => (
                e.username.unwrap_or_default(),
                e.password.unwrap_or_default(),
            ),
        };
        out.push(RegistryAuth {
            server,
            username,
            password,
            identity_token: e.identitytoken.filter(|s| !s.is_empty()),
        });
    }
    Ok(out)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parse `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Some(Challenge::Basic);
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_params(rest);
    let realm = params.get("realm")?.clone();
    Some(Challenge::Bearer {
        realm,
        service: params.get("service").cloned(),
        scope: params.get("scope").cloned(),
    })
}

/// `key="value", key=value` with quoted values that may contain commas (scopes do).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_json_both_formats() {
        let new = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpwOnE="},
            "127.0.0.1:5000":{"username":"a","password":"b"}}}"#;
        let auths = parse_docker_config_json(new).unwrap();
        assert_eq!(auths.len(), 2);
        let hub = auths.iter().find(|a| a.matches("docker.io")).unwrap();
        assert_eq!((hub.username.as_str(), hub.password.as_str()), ("u", "p:q"));
        let local = auths.iter().find(|a| a.matches("127.0.0.1:5000")).unwrap();
        assert_eq!(local.password, "b");

        let legacy = br#"{"quay.io":{"auth":"eDp5","email":"x@y"}}"#;
        let auths = parse_docker_config_json(legacy).unwrap();
        assert_eq!(auths[0].host(), "quay.io");
        assert_eq!(auths[0].username, "x");
        assert!(!format!("{:?}", auths[0]).contains("password"));

        for (bad, needle) in [
            (&b"nope"[..], "not valid JSON"),
            (b"[]", "JSON object"),
            (br#"{"auths":{"h":{"auth":"***"}}}"#, "base64"),
            (br#"{"auths":{"h":{"auth":"eHl6"}}}"#, "username:password"),
            (br#"{"auths":{"h":5}}"#, "entries must map"),
            (br#"{"auths":{"":{}}}"#, "no server name"),
        ] {
            let err = parse_docker_config_json(bad).unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
    }

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="x""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("Negotiate"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }
}
