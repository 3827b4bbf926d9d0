//! One pull: try the reference's endpoints in order (mirrors, then the default endpoint)
//! until one yields a manifest; resolve an index to this node's platform; fetch and verify
//! the config; fetch, verify and unpack missing layers (a few at a time); then record the
//! image. A registry error moves on to the next endpoint; a content error (bad digest, bad
//! manifest) stops the pull, and nothing unverified is ever stored.

use std::sync::Arc;

use futures::future::try_join_all;
use tokio::sync::Semaphore;

use super::auth::RegistryAuth;
use super::client::Session;
use super::error::{EndpointFailure, ImageError, RegistryError};
use super::manifest::{
    describe_platforms, parse_config, parse_manifest, sha256_digest, verify_digest, ConfigFile,
    ImageManifest, ManifestKind, Platform, MAX_CONFIG_BYTES,
};
use super::reference::Reference;
use super::store::{Image, ImageStore, NewImage};

const PARALLEL_LAYERS: usize = 3;

enum Step {
    /// Worth trying the next endpoint.
    Registry(RegistryError),
    /// The content is wrong; another endpoint would not make it right.
    Image(ImageError),
}

impl From<RegistryError> for Step {
    fn from(e: RegistryError) -> Self {
        Step::Registry(e)
    }
}

impl From<ImageError> for Step {
    fn from(e: ImageError) -> Self {
        Step::Image(e)
    }
}

struct Resolved {
    /// Digest of what the reference named (the index, for multi-arch images).
    top_digest: String,
    manifest: ImageManifest,
    config_digest: String,
    config: ConfigFile,
}

pub(super) async fn pull(
    store: &ImageStore,
    reference: &Reference,
    auth: &[RegistryAuth],
) -> Result<Image, ImageError> {
    let inner = &store.inner;
    let mut failures = Vec::new();
    for ep in inner.registries.endpoints(reference) {
        let creds = auth
            .iter()
            .find(|a| a.matches(&ep.host) || (ep.is_default && a.matches(&reference.registry)))
            .or_else(|| inner.registries.auth_for(&ep, &reference.registry))
            .cloned();
        let tls = inner.registries.tls_for(&ep, &reference.registry).cloned();
        let url = ep.url();
        let mut session = Session::new(&inner.http, ep, creds, tls);
        match resolve(&mut session, reference, &inner.platform).await {
            Ok(resolved) => return fetch(store, session, reference, resolved).await,
            Err(Step::Registry(error)) => {
                tracing::debug!(endpoint = %url, %error, "endpoint failed, trying next");
                failures.push(EndpointFailure {
                    endpoint: url,
                    error,
                });
            }
            Err(Step::Image(e)) => return Err(e),
        }
    }
    Err(ImageError::Pull {
        reference: reference.to_string(),
        failures,
    })
}

async fn resolve(
    session: &mut Session<'_>,
    reference: &Reference,
    platform: &Platform,
) -> Result<Resolved, Step> {
    let name = reference.to_string();
    let fetched = session.manifest(reference.manifest_ref()).await?;
    let top_digest = sha256_digest(&fetched.bytes);
    if let Some(d) = &reference.digest {
        verify_digest("manifest", d, &fetched.bytes)?;
    }
    let manifest = match parse_manifest(&fetched.bytes, fetched.content_type.as_deref(), &name)? {
        ManifestKind::Image(m) => m,
        ManifestKind::Index(entries) => {
            let chosen = platform
                .select(&entries)
                .ok_or_else(|| ImageError::NoMatchingPlatform {
                    reference: name.clone(),
                    platform: platform.to_string(),
                    available: describe_platforms(&entries),
                })?
                .clone();
            let inner = session.manifest(&chosen.digest).await?;
            verify_digest("manifest", &chosen.digest, &inner.bytes)?;
            match parse_manifest(&inner.bytes, inner.content_type.as_deref(), &name)? {
                ManifestKind::Image(m) => m,
                ManifestKind::Index(_) => {
                    return Err(Step::Image(ImageError::InvalidManifest {
                        what: "index",
                        reference: name,
                        reason: "platform entry is itself an index".into(),
                    }))
                }
            }
        }
    };
    let config_digest = manifest.config.digest.clone();
    let config_bytes = session.blob_bytes(&config_digest, MAX_CONFIG_BYTES).await?;
    verify_digest("image config", &config_digest, &config_bytes)?;
    let config = parse_config(&config_bytes, &name)?;
    check_layers(&manifest, &config, &name)?;
    Ok(Resolved {
        top_digest,
        manifest,
        config_digest,
        config,
    })
}

/// Layer media types must be tar (plain or gzip) and pair one-to-one with the diff ids.
pub(super) fn check_layers(
    manifest: &ImageManifest,
    config: &ConfigFile,
    name: &str,
) -> Result<(), ImageError> {
    if manifest.layers.len() != config.rootfs.diff_ids.len() {
        return Err(ImageError::InvalidManifest {
            what: "manifest",
            reference: name.to_string(),
            reason: format!(
                "{} layers but the config lists {} diff ids",
                manifest.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    for l in &manifest.layers {
        let mt = l.media_type.as_str();
        let ok = mt.is_empty()
            || mt.ends_with(".tar")
            || mt.ends_with(".tar.gzip")
            || mt.ends_with("tar+gzip")
            || mt == "application/vnd.docker.image.rootfs.diff.tar";
        if !ok {
            return Err(ImageError::UnsupportedMediaType {
                what: format!("layer {} of {name}", l.digest),
                media_type: mt.to_string(),
            });
        }
    }
    Ok(())
}

async fn fetch(
    store: &ImageStore,
    session: Session<'_>,
    reference: &Reference,
    r: Resolved,
) -> Result<Image, ImageError> {
    let layers = store.inner.layers.clone();
    let _pins = layers.pin(&r.config.rootfs.diff_ids);
    let limit = Arc::new(Semaphore::new(PARALLEL_LAYERS));
    let jobs = r
        .manifest
        .layers
        .iter()
        .zip(&r.config.rootfs.diff_ids)
        .map(|(desc, diff_id)| {
            let layers = layers.clone();
            let limit = limit.clone();
            let mut session = session.clone();
            async move {
                let _permit = limit.acquire_owned().await;
                let tmp = layers.temp_path("blob");
                // A pull given up half way (its future dropped) leaves no partial blob behind.
                let _cleanup = RemoveOnDrop(tmp.clone());
                let size = layers
                    .ensure(diff_id, None, || async {
                        session.blob_to_file(&desc.digest, desc.size, &tmp).await?;
                        Ok((tmp.clone(), true))
                    })
                    .await?;
                Ok::<_, ImageError>((diff_id.clone(), size))
            }
        });
    let layers = try_join_all(jobs).await?;
    store.commit(NewImage {
        id: r.config_digest,
        config: r.config,
        layers,
        tags: reference.tagged().into_iter().collect(),
        digests: vec![reference.with_digest(&r.top_digest)],
    })
}

/// Removes a file when dropped, however the code holding it ended.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
