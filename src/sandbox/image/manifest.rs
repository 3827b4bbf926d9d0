//! The JSON documents of OCI images and Docker v2 schema 2 images (manifests, indexes /
//! manifest lists, image configs), their media types, the node's platform and how an index is
//! resolved to it, and sha256 digests. Parsing only: no I/O, no network.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::ImageError;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// What we send as `Accept` for manifests: every type we can parse.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Manifests and configs are small; a registry sending more is broken or hostile.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlatformSpec {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// Either an image manifest or an index, told apart by media type (or, when a registry or
/// archive omits it, by which fields are present).
#[derive(Debug, Clone)]
pub enum ManifestKind {
    Image(ImageManifest),
    Index(Vec<Descriptor>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
}

/// Parse a manifest or index. `content_type` is the HTTP Content-Type, if any.
pub fn parse_manifest(
    bytes: &[u8],
    content_type: Option<&str>,
    reference: &str,
) -> Result<ManifestKind, ImageError> {
    let bad = |reason: String| ImageError::InvalidManifest {
        what: "manifest",
        reference: reference.to_string(),
        reason,
    };
    let raw: RawManifest =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    if raw.schema_version == Some(1) {
        return Err(ImageError::UnsupportedMediaType {
            what: format!("manifest of {reference}"),
            media_type: "docker schema 1 (deprecated)".into(),
        });
    }
    let media_type = raw
        .media_type
        .clone()
        .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let is_index = match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => true,
        OCI_MANIFEST | DOCKER_MANIFEST => false,
        // Plain JSON content types and missing media types: decide by shape.
        _ if raw.manifests.is_some() => true,
        _ if raw.config.is_some() => false,
        other => {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("manifest of {reference}"),
                media_type: other.to_string(),
            })
        }
    };
    if is_index {
        let manifests = raw
            .manifests
            .ok_or_else(|| bad("index without \"manifests\"".into()))?;
        for m in &manifests {
            super::reference::validate_digest(&m.digest).map_err(bad)?;
        }
        Ok(ManifestKind::Index(manifests))
    } else {
        let config = raw
            .config
            .ok_or_else(|| bad("manifest without \"config\"".into()))?;
        let layers = raw
            .layers
            .ok_or_else(|| bad("manifest without \"layers\"".into()))?;
        super::reference::validate_digest(&config.digest).map_err(bad)?;
        for l in &layers {
            super::reference::validate_digest(&l.digest).map_err(bad)?;
        }
        Ok(ManifestKind::Image(ImageManifest {
            media_type: raw.media_type,
            config,
            layers,
        }))
    }
}

/// The parts of an image config the store needs.
#[derive(Debug, Clone, Deserialize, Default)]
pub struct ConfigFile {
    #[serde(default)]
    pub config: Option<RuntimeConfig>,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct RuntimeConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

pub fn parse_config(bytes: &[u8], reference: &str) -> Result<ConfigFile, ImageError> {
    let bad = |reason: String| ImageError::InvalidManifest {
        what: "image config",
        reference: reference.to_string(),
        reason,
    };
    let cfg: ConfigFile = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
    if cfg.rootfs.kind != "layers" {
        return Err(bad(format!(
            "rootfs type {:?}, expected \"layers\"",
            cfg.rootfs.kind
        )));
    }
    for d in &cfg.rootfs.diff_ids {
        super::reference::validate_digest(d).map_err(bad)?;
    }
    Ok(cfg)
}

/// The platform images are resolved for. `Platform::host()` is this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", None),
            // Rust's `arm` target for Raspberry Pi OS 32-bit is armv7 hard-float in practice.
            "arm" => ("arm", Some("v7")),
            "x86" => ("386", None),
            "powerpc64" => ("ppc64le", None),
            "riscv64" => ("riscv64", None),
            "s390x" => ("s390x", None),
            other => (other, None),
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: variant.map(str::to_string),
        }
    }

    /// How well an index entry fits: `None` if it cannot run here, higher is better.
    fn score(&self, p: &PlatformSpec) -> Option<u32> {
        if p.os != self.os || p.architecture != self.architecture {
            return None;
        }
        let theirs = p.variant.as_deref().filter(|v| !v.is_empty());
        match (self.variant.as_deref(), theirs) {
            (Some(a), Some(b)) if a == b => Some(100),
            (_, None) => Some(50),
            // arm64 images are labelled v8 and run on any arm64 host.
            (None, Some("v8")) if self.architecture == "arm64" => Some(90),
            (None, Some(_)) => None,
            // An armv7 host runs v6 and v5 images too; prefer the newest.
            (Some(a), Some(b)) if self.architecture == "arm" => {
                let n = |v: &str| v.trim_start_matches('v').parse::<u32>().ok();
                match (n(a), n(b)) {
                    (Some(x), Some(y)) if y <= x => Some(y),
                    _ => None,
                }
            }
            (Some(_), Some(_)) => None,
        }
    }

    /// Pick the index entry for this platform.
    pub fn select<'a>(&self, entries: &'a [Descriptor]) -> Option<&'a Descriptor> {
        entries
            .iter()
            .filter_map(|d| {
                d.platform
                    .as_ref()
                    .and_then(|p| self.score(p))
                    .map(|s| (s, d))
            })
            .max_by_key(|(s, _)| *s)
            .map(|(_, d)| d)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

pub fn describe_platforms(entries: &[Descriptor]) -> String {
    let list: Vec<String> = entries
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| match &p.variant {
            Some(v) => format!("{}/{}/{}", p.os, p.architecture, v),
            None => format!("{}/{}", p.os, p.architecture),
        })
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(", ")
    }
}

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Check that `bytes` hash to `digest`.
pub fn verify_digest(what: &str, digest: &str, bytes: &[u8]) -> Result<(), ImageError> {
    let actual = sha256_digest(bytes);
    if actual != digest {
        return Err(ImageError::DigestMismatch {
            what: what.to_string(),
            digest: digest.to_string(),
            actual,
        });
    }
    Ok(())
}

/// The hex part of a validated `sha256:` digest, used as a file name.
pub fn digest_hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(arch: &str, variant: Option<&str>) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", "0".repeat(64)),
            size: 1,
            platform: Some(PlatformSpec {
                architecture: arch.into(),
                os: "linux".into(),
                variant: variant.map(str::to_string),
            }),
            annotations: None,
        }
    }

    #[test]
    fn selects_platform() {
        let entries = vec![
            entry("amd64", None),
            entry("arm64", Some("v8")),
            entry("arm", Some("v6")),
            entry("arm", Some("v7")),
        ];
        let p = |a: &str, v: Option<&str>| Platform {
            os: "linux".into(),
            architecture: a.into(),
            variant: v.map(str::to_string),
        };
        let pick = |pl: Platform| pl.select(&entries).map(|d| d.platform.clone().unwrap());
        assert_eq!(pick(p("amd64", None)).unwrap().architecture, "amd64");
        assert_eq!(pick(p("arm64", None)).unwrap().architecture, "arm64");
        assert_eq!(
            pick(p("arm", Some("v7"))).unwrap().variant.as_deref(),
            Some("v7")
        );
        assert_eq!(
            pick(p("arm", Some("v6"))).unwrap().variant.as_deref(),
            Some("v6")
        );
        assert!(pick(p("riscv64", None)).is_none());
        assert!(Platform::host().select(&entries).is_some());
    }

    #[test]
    fn rejects_bad_manifests() {
        for (body, needle) in [
            (&b"{"[..], "not valid JSON"),
            (br#"{"schemaVersion":1,"fsLayers":[]}"#, "schema 1"),
            (br#"{"schemaVersion":2}"#, "unsupported media type"),
            (
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#,
                "without \"config\"",
            ),
            (
                br#"{"schemaVersion":2,"config":{"digest":"sha256:zz","size":1},"layers":[]}"#,
                "64 lowercase hex",
            ),
        ] {
            let err = parse_manifest(body, None, "x").unwrap_err().to_string();
            assert!(err.contains(needle), "{err}");
        }
        let err = parse_config(br#"{"rootfs":{"type":"x","diff_ids":[]}}"#, "x")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rootfs type"), "{err}");
    }
}
