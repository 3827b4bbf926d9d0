//! `registries.yaml` in k3s's format: `mirrors` (endpoints tried in order, then the registry's
//! default endpoint; regex `rewrite`s of the repository for mirror endpoints only; a `"*"`
//! entry for registries without their own) and `configs` (per endpoint host: `auth` and `tls`).
//! It turns a reference into the ordered list of endpoints to try. It never opens connections;
//! it reads only the file it is given (TLS files are read by the HTTP client).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::auth::RegistryAuth;
use super::error::ImageError;
use super::reference::{Reference, DOCKER_HUB};

const DOCKER_HUB_ENDPOINT: &str = "registry-1.docker.io";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    mirrors: Option<BTreeMap<String, MirrorFile>>,
    #[serde(default)]
    configs: Option<BTreeMap<String, ConfigFile>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MirrorFile {
    #[serde(default)]
    endpoint: Vec<String>,
    /// A YAML mapping keeps its order; the first matching rewrite wins.
    #[serde(default)]
    rewrite: Option<serde_yaml::Mapping>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    auth: Option<AuthFile>,
    #[serde(default)]
    tls: Option<TlsConfig>,
}

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    auth: Option<String>,
    #[serde(default, alias = "identity_token")]
    identitytoken: Option<String>,
}

/// TLS settings for one endpoint host.
#[derive(Debug, Deserialize, Default, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone)]
struct Mirror {
    endpoints: Vec<EndpointUrl>,
    rewrites: Vec<(regex::Regex, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct EndpointUrl {
    https: bool,
    host: String,
    prefix: String,
}

/// Parsed `registries.yaml`. `Registries::default()` is "no file": default endpoints only.
#[derive(Debug, Clone)]
pub struct Registries {
    mirrors: BTreeMap<String, Mirror>,
    auths: BTreeMap<String, RegistryAuth>,
    tls: BTreeMap<String, TlsConfig>,
    default_endpoint: bool,
}

impl Default for Registries {
    fn default() -> Self {
        Registries {
            mirrors: BTreeMap::new(),
            auths: BTreeMap::new(),
            tls: BTreeMap::new(),
            default_endpoint: true,
        }
    }
}

/// One place to ask for an image: a base URL and the repository name to use there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub https: bool,
    /// `host[:port]`, the key of `configs`.
    pub host: String,
    /// Path before `/v2`, usually empty.
    pub prefix: String,
    /// The repository at this endpoint (after rewrites).
    pub repository: String,
    pub is_default: bool,
}

impl Endpoint {
    /// `scheme://host`, for messages.
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            if self.https { "https" } else { "http" },
            self.host,
            self.prefix
        )
    }
}

impl Registries {
    /// Read a `registries.yaml`; a missing file is an error (the caller decides whether the
    /// file is optional).
    pub fn load(path: &Path) -> Result<Self, ImageError> {
        let text = std::fs::read_to_string(path).map_err(|e| ImageError::RegistriesConfig {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::parse_named(&text, &path.display().to_string())
    }

    pub fn parse(yaml: &str) -> Result<Self, ImageError> {
        Self::parse_named(yaml, "registries.yaml")
    }

    /// k3s's `--disable-default-registry-endpoint`: pull only through configured mirrors for
    /// registries that have one.
    pub fn with_default_endpoint(mut self, enabled: bool) -> Self {
        self.default_endpoint = enabled;
        self
    }

    fn parse_named(yaml: &str, name: &str) -> Result<Self, ImageError> {
        let bad = |reason: String| ImageError::RegistriesConfig {
            path: name.to_string(),
            reason,
        };
        let file: File = if yaml.trim().is_empty() {
            File::default()
        } else {
            serde_yaml::from_str::<Option<File>>(yaml)
                .map_err(|e| bad(e.to_string()))?
                .unwrap_or_default()
        };
        let mut out = Registries::default();
        for (registry, m) in file.mirrors.unwrap_or_default() {
            let mut endpoints = Vec::new();
            for e in &m.endpoint {
                endpoints.push(
                    parse_endpoint(e)
                        .map_err(|r| bad(format!("mirrors.{registry:?}.endpoint {e:?}: {r}")))?,
                );
            }
            let mut rewrites = Vec::new();
            for (k, v) in m.rewrite.unwrap_or_default() {
                let (Some(pattern), Some(replacement)) = (k.as_str(), v.as_str()) else {
                    return Err(bad(format!(
                        "mirrors.{registry:?}.rewrite: keys and values must be strings"
                    )));
                };
                let re = regex::Regex::new(pattern)
                    .map_err(|e| bad(format!("mirrors.{registry:?}.rewrite {pattern:?}: {e}")))?;
                rewrites.push((re, replacement.to_string()));
            }
            out.mirrors.insert(
                registry,
                Mirror {
                    endpoints,
                    rewrites,
                },
            );
        }
        for (host, c) in file.configs.unwrap_or_default() {
            if let Some(a) = c.auth {
                let auth = auth_from_file(&host, a)
                    .map_err(|r| bad(format!("configs.{host:?}.auth: {r}")))?;
                out.auths.insert(host.clone(), auth);
            }
            if let Some(t) = c.tls {
                if t.cert_file.is_some() != t.key_file.is_some() {
                    return Err(bad(format!(
                        "configs.{host:?}.tls: cert_file and key_file must be given together"
                    )));
                }
                out.tls.insert(host, t);
            }
        }
        Ok(out)
    }

    /// The endpoints to try for `reference`, in order: its mirror's (or the `"*"` mirror's)
    /// endpoints with rewrites applied, then the registry's default endpoint, unrewritten.
    pub fn endpoints(&self, reference: &Reference) -> Vec<Endpoint> {
        let mirror = self
            .mirrors
            .get(&reference.registry)
            .or_else(|| self.mirrors.get("*"));
        let mut out = Vec::new();
        if let Some(m) = mirror {
            let repository = m
                .rewrites
                .iter()
                .find(|(re, _)| re.is_match(&reference.repository))
                .map(|(re, rep)| re.replace(&reference.repository, rep.as_str()).into_owned())
                .unwrap_or_else(|| reference.repository.clone());
            for e in &m.endpoints {
                out.push(Endpoint {
                    https: e.https,
                    host: e.host.clone(),
                    prefix: e.prefix.clone(),
                    repository: repository.clone(),
                    is_default: false,
                });
            }
        }
        let default_host = if reference.registry == DOCKER_HUB {
            DOCKER_HUB_ENDPOINT.to_string()
        } else {
            reference.registry.clone()
        };
        let default_listed = out
            .iter()
            .any(|e| e.host == default_host && e.prefix.is_empty());
        if (self.default_endpoint || mirror.is_none()) && !default_listed {
            out.push(Endpoint {
                https: true,
                host: default_host,
                prefix: String::new(),
                repository: reference.repository.clone(),
                is_default: true,
            });
        }
        out
    }

    /// Credentials from `configs` for an endpoint host (then the image's registry name, for
    /// default endpoints such as docker.io's, then `"*"`).
    pub fn auth_for(&self, endpoint: &Endpoint, registry: &str) -> Option<&RegistryAuth> {
        self.auths
            .get(&endpoint.host)
            .or_else(|| {
                endpoint
                    .is_default
                    .then(|| self.auths.get(registry))
                    .flatten()
            })
            .or_else(|| self.auths.get("*"))
    }

    pub fn tls_for(&self, endpoint: &Endpoint, registry: &str) -> Option<&TlsConfig> {
        self.tls
            .get(&endpoint.host)
            .or_else(|| {
                endpoint
                    .is_default
                    .then(|| self.tls.get(registry))
                    .flatten()
            })
            .or_else(|| self.tls.get("*"))
    }
}

fn parse_endpoint(s: &str) -> Result<EndpointUrl, String> {
    let (https, rest) = if let Some(r) = s.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = s.strip_prefix("http://") {
        (false, r)
    } else if s.contains("://") {
        return Err("scheme must be http or https".into());
    } else {
        (true, s)
    };
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if host.is_empty() || host.contains('@') || host.contains('?') || host.contains('#') {
        return Err("missing or invalid host".into());
    }
    if let Some((_, port)) = host.rsplit_once(':').filter(|(_, p)| !p.contains(']')) {
        if port.parse::<u16>().is_err() {
            return Err(format!("invalid port {port:?}"));
        }
    }
    // containerd accepts endpoints written with or without the trailing `/v2`.
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix("/v2").unwrap_or(path);
    Ok(EndpointUrl {
        https,
        host: host.to_string(),
        prefix: path.to_string(),
    })
}

fn auth_from_file(host: &str, a: AuthFile) -> Result<RegistryAuth, String> {
    let (mut username, mut password) = (
        a.username.unwrap_or_default(),
        a.password.unwrap_or_default(),
    );
    if let Some(encoded) = a.auth.filter(|s| !s.is_empty()) {
        let (u, p) = decode_basic(&encoded)?;
        username = u;
        password = p;
    }
    Ok(RegistryAuth {
        server: host.to_string(),
        username,
        password,
        identity_token: a.identitytoken.filter(|s| !s.is_empty()),
    })
}

/// Decode a base64 `user:password` pair as found in `auth` fields.
pub(crate) fn decode_basic(encoded: &str) -> Result<(String, String), String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| format!("auth is not valid base64: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| "auth is not UTF-8".to_string())?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| "auth must encode \"username:password\"".to_string())?;
    Ok((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> Reference {
        s.parse().unwrap()
    }

    #[test]
    fn mirrors_rewrites_and_defaults() {
        let reg = Registries::parse(
            r#"
mirrors:
  docker.io:
    endpoint: ["http://127.0.0.1:5000", "https://mirror.example.com/v2/"]
    rewrite:
      "^library/(.*)": "mirror/$1"
      "^(.*)": "all/$1"
  "*":
    endpoint: ["https://star.example.com:8443"]
configs:
  "127.0.0.1:5000":
    auth: { username: u, password: p }
  mirror.example.com:
    auth: { auth: "dTI6cDI=" }
    tls: { ca_file: /etc/ca.pem, insecure_skip_verify: true }
"#,
        )
        .unwrap();
        let eps = reg.endpoints(&r("busybox"));
        let urls: Vec<_> = eps
            .iter()
            .map(|e| (e.url(), e.repository.as_str()))
            .collect();
        assert_eq!(
            urls,
            vec![
                ("http://127.0.0.1:5000".to_string(), "mirror/busybox"),
                ("https://mirror.example.com".to_string(), "mirror/busybox"),
                (
                    "https://registry-1.docker.io".to_string(),
                    "library/busybox"
                ),
            ]
        );
        assert_eq!(reg.endpoints(&r("foo/bar"))[0].repository, "all/foo/bar");
        let auth = reg.auth_for(&eps[0], "docker.io").unwrap();
        assert_eq!((auth.username.as_str(), auth.password.as_str()), ("u", "p"));
        let auth = reg.auth_for(&eps[1], "docker.io").unwrap();
        assert_eq!(
            (auth.username.as_str(), auth.password.as_str()),
            ("u2", "p2")
        );
        assert!(
            reg.tls_for(&eps[1], "docker.io")
                .unwrap()
                .insecure_skip_verify
        );
        assert!(reg.auth_for(&eps[2], "docker.io").is_none());

        let other = reg.endpoints(&r("quay.io/x/y"));
        assert_eq!(other[0].url(), "https://star.example.com:8443");
        assert_eq!(other[1].url(), "https://quay.io");
        let off = reg.clone().with_default_endpoint(false);
        assert_eq!(off.endpoints(&r("busybox")).len(), 2);

        let none = Registries::default().endpoints(&r("host:5000/x"));
        assert_eq!(none.len(), 1);
        assert_eq!(none[0].url(), "https://host:5000");
        assert!(Registries::parse("").unwrap().mirrors.is_empty());
        assert!(Registries::parse("# only a comment\n")
            .unwrap()
            .mirrors
            .is_empty());
    }

    #[test]
    fn bad_registries_yaml() {
        for (yaml, needle) in [
            ("mirrors: [", "registries.yaml"),
            ("mirror: {}", "unknown field `mirror`"),
            (
                "mirrors: {docker.io: {endpoints: [x]}}",
                "unknown field `endpoints`",
            ),
            ("configs: {h: {auth: {user: x}}}", "unknown field `user`"),
            ("configs: {h: {tls: {ca: x}}}", "unknown field `ca`"),
            (
                "mirrors: {docker.io: {endpoint: [\"ftp://x\"]}}",
                "scheme must be http or https",
            ),
            (
                "mirrors: {docker.io: {endpoint: [\"http://x:99999\"]}}",
                "invalid port",
            ),
            (
                "mirrors: {docker.io: {rewrite: {\"(\": \"x\"}}}",
                "rewrite \"(\"",
            ),
            ("configs: {h: {auth: {auth: \"!!\"}}}", "not valid base64"),
            (
                "configs: {h: {auth: {auth: \"eHl6\"}}}",
                "username:password",
            ),
            (
                "configs: {h: {tls: {cert_file: /a}}}",
                "cert_file and key_file",
            ),
            ("mirrors: {docker.io: {endpoint: 5}}", "endpoint"),
        ] {
            let err = Registries::parse(yaml).unwrap_err().to_string();
            assert!(err.contains(needle), "{yaml}: {err}");
        }
        let err = Registries::load(Path::new("/nonexistent/registries.yaml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/registries.yaml"));
    }
}
