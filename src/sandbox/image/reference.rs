//! Image references, normalised the way Docker and containerd do it: `busybox` is
//! `docker.io/library/busybox:latest`, `foo/bar:1` is `docker.io/foo/bar:1`, a first component
//! with a `.` or `:` (or `localhost`) is a registry host. Parsing is strict (lowercase
//! repository components, tag and digest grammar) so a bad reference fails here with a reason,
//! not later as a confusing registry 404. This module does no I/O.

use std::fmt;
use std::str::FromStr;

use super::error::ImageError;

pub const DOCKER_HUB: &str = "docker.io";
const MAX_NAME_LEN: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host with optional port, e.g. `docker.io`, `127.0.0.1:5000`.
    pub registry: String,
    /// Repository path, e.g. `library/busybox`.
    pub repository: String,
    /// Tag; `latest` when neither tag nor digest was given.
    pub tag: Option<String>,
    /// `sha256:<hex>` when pinned by digest.
    pub digest: Option<String>,
}

impl Reference {
    /// `registry/repository`, the name repo tags and repo digests are built from.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `name:tag`, if the reference has a tag.
    pub fn tagged(&self) -> Option<String> {
        self.tag.as_ref().map(|t| format!("{}:{}", self.name(), t))
    }

    /// `name@digest` for the given manifest digest.
    pub fn with_digest(&self, digest: &str) -> String {
        format!("{}@{}", self.name(), digest)
    }

    /// What to ask the registry's manifest endpoint for: the digest if pinned, else the tag.
    pub fn manifest_ref(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d,
            (None, Some(t)) => t,
            (None, None) => "latest",
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ImageError;

    fn from_str(s: &str) -> Result<Self, ImageError> {
        let bad = |reason: &str| ImageError::InvalidReference {
            reference: s.to_string(),
            reason: reason.to_string(),
        };
        if s.is_empty() {
            return Err(bad("empty reference"));
        }
        if s.trim() != s || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains whitespace or control characters"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => {
                validate_digest(d).map_err(|r| bad(&r))?;
                (r, Some(d.to_string()))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].find(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            validate_tag(t).map_err(|r| bad(&r))?;
        }
        if name.is_empty() {
            return Err(bad("missing repository name"));
        }
        let (registry, repository) = split_registry(name);
        validate_registry(&registry).map_err(|r| bad(&r))?;
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_string()
        };
        validate_repository(&repository).map_err(|r| bad(&r))?;
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(bad("repository name longer than 255 characters"));
        }
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

/// Docker's rule: the first component is a host if it has a `.` or `:`, is `localhost`, or has
/// an uppercase letter (which no repository may have).
fn split_registry(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            let host = match first {
                "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
                h => h,
            };
            (host.to_string(), rest)
        }
        _ => (DOCKER_HUB.to_string(), name),
    }
}

fn validate_registry(host: &str) -> Result<(), String> {
    let (h, port) = match host.rsplit_once(':') {
        // An IPv6 literal is bracketed; its colons are not a port separator.
        Some((h, p)) if !p.contains(']') => (h, Some(p)),
        _ => (host, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.parse::<u16>().is_err() {
            return Err(format!("invalid port {p:?} in registry host {host:?}"));
        }
    }
    let ok = !h.is_empty()
        && (h.starts_with('[') && h.ends_with(']')
            || h.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid registry host {host:?}"))
    }
}

fn validate_repository(repo: &str) -> Result<(), String> {
    for component in repo.split('/') {
        if component.is_empty() {
            return Err("empty path component in repository name".into());
        }
        if component.chars().any(|c| c.is_ascii_uppercase()) {
            return Err("repository name must be lowercase".into());
        }
        if !component_ok(component) {
            return Err(format!(
                "invalid repository path component {component:?} (allowed: a-z, 0-9 and single \
                 separators '.', '_', '__', '-')"
            ));
        }
    }
    Ok(())
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && tag
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid tag {tag:?} (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
        ))
    }
}

/// Digests we can verify: `sha256:` plus 64 lowercase hex digits.
pub fn validate_digest(d: &str) -> Result<(), String> {
    let Some((alg, hex)) = d.split_once(':') else {
        return Err(format!("invalid digest {d:?}: missing algorithm"));
    };
    if alg != "sha256" {
        return Err(format!(
            "unsupported digest algorithm {alg:?} (only sha256)"
        ));
    }
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(format!(
            "invalid digest {d:?}: sha256 needs 64 lowercase hex digits"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        s.parse::<Reference>().unwrap().to_string()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(norm("foo/bar:1"), "docker.io/foo/bar:1");
        assert_eq!(
            norm("docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(
            norm("index.docker.io/library/x"),
            "docker.io/library/x:latest"
        );
        assert_eq!(norm("host:5000/x"), "host:5000/x:latest");
        assert_eq!(norm("localhost/x/y:t"), "localhost/x/y:t");
        assert_eq!(norm("ghcr.io/a/b/c:v1.2-rc_3"), "ghcr.io/a/b/c:v1.2-rc_3");
        assert_eq!(
            norm("127.0.0.1:5000/a__b.c-d"),
            "127.0.0.1:5000/a__b.c-d:latest"
        );
        assert_eq!(
            norm(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            norm(&format!("host:5000/x:1@{D}")),
            format!("host:5000/x:1@{D}")
        );
        let r: Reference = format!("busybox@{D}").parse().unwrap();
        assert_eq!(r.manifest_ref(), D);
        assert_eq!(r.tag, None);
        assert_eq!(r.name(), "docker.io/library/busybox");
    }

    #[test]
    fn rejects_bad_references() {
        for (input, needle) in [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("foo/Bar", "lowercase"),
            ("busybox:", "invalid tag"),
            ("busybox:-x", "invalid tag"),
            ("busybox@sha256:abc", "64 lowercase hex"),
            ("busybox@md5:abc", "unsupported digest algorithm"),
            ("host:port/x", "invalid port"),
            ("a//b", "empty path component"),
            ("a/b-", "invalid repository path component"),
            ("a b", "whitespace"),
            ("host:5000/", "empty path component"),
            (":tag", "missing repository"),
        ] {
            let err = input.parse::<Reference>().unwrap_err().to_string();
            assert!(err.contains(needle), "{input:?}: {err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(long
            .parse::<Reference>()
            .unwrap_err()
            .to_string()
            .contains("255"));
    }
}
