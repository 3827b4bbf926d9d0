//! `ImageStore`: the node's images. It owns the store root (`images/<id>.json` metadata,
//! `layers/`, `tmp/`), the in-memory index of images by id, tag and digest, and the pull
//! policy. Image records are written durably and only after all their layers are in place,
//! so a restarted agent (or one that crashed mid-pull) sees only complete images. It never
//! talks to the Kubernetes API and never removes an image the caller says is in use.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::auth::RegistryAuth;
use super::error::ImageError;
use super::http::HttpClient;
use super::layers::{write_durable, KeyedLocks, LayerStore};
use super::manifest::{digest_hex, ConfigFile, Platform};
use super::reference::{validate_digest, Reference};
use super::registries::Registries;

/// An image in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// The config digest, `sha256:...`.
    pub id: String,
    /// Normalised `registry/repository:tag` names.
    pub repo_tags: Vec<String>,
    /// `registry/repository@sha256:...` of the manifest (or index) pulled.
    pub repo_digests: Vec<String>,
    pub config: ImageConfig,
    /// Layer diff ids, bottom layer first.
    pub layers: Vec<String>,
    /// Unpacked bytes of all layers.
    pub size: u64,
}

/// What a container inherits from its image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub env: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub working_dir: String,
    pub user: String,
}

impl ImageConfig {
    pub(crate) fn from_file(c: &ConfigFile) -> Self {
        let rc = c.config.clone().unwrap_or_default();
        ImageConfig {
            env: rc.env.unwrap_or_default(),
            entrypoint: rc.entrypoint.unwrap_or_default(),
            cmd: rc.cmd.unwrap_or_default(),
            working_dir: rc.working_dir.unwrap_or_default(),
            user: rc.user.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Record {
    #[serde(flatten)]
    pub image: Image,
    pub layer_sizes: Vec<u64>,
    /// Unix milliseconds of the last pull, ensure or mount; GC removes the oldest first.
    pub last_used: u64,
}

/// A complete image about to be recorded (layers already present).
pub(crate) struct NewImage {
    pub id: String,
    pub config: ConfigFile,
    pub layers: Vec<(String, u64)>,
    pub tags: Vec<String>,
    pub digests: Vec<String>,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub registries: Registries,
    pub platform: Platform,
    pub http: HttpClient,
    pub layers: Arc<LayerStore>,
    pub images: RwLock<BTreeMap<String, Record>>,
    pub pulls: KeyedLocks,
}

/// The node's image store. Cheap to clone; all clones share one store.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl ImageStore {
    /// Open (or create) the store at `root`, loading the images recorded there.
    pub fn open(
        root: &Path,
        registries: Registries,
        platform: Platform,
    ) -> Result<Self, ImageError> {
        Self::open_with(root, registries, platform, super::http::PROGRESS_DEADLINE)
    }

    /// [`ImageStore::open`] with a progress deadline for registries: a pull whose registry
    /// sends nothing (no response headers, no blob data) for that long fails.
    pub fn open_with(
        root: &Path,
        registries: Registries,
        platform: Platform,
        progress_deadline: std::time::Duration,
    ) -> Result<Self, ImageError> {
        let images_dir = root.join("images");
        let tmp = root.join("tmp");
        for d in [root, &images_dir] {
            fs::create_dir_all(d).map_err(|e| ImageError::io("create", d, e))?;
        }
        // Whatever is in tmp/ is from an interrupted pull or delete.
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| ImageError::io("clean", &tmp, e))?;
        }
        fs::create_dir_all(&tmp).map_err(|e| ImageError::io("create", &tmp, e))?;
        let layers = Arc::new(LayerStore::open(root.join("layers/sha256"), tmp)?);
        let mut images = BTreeMap::new();
        let rd = fs::read_dir(&images_dir).map_err(|e| ImageError::io("read", &images_dir, e))?;
        for entry in rd.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let record = fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Record>(&b).map_err(|e| e.to_string()));
            match record {
                Ok(r) if r.image.layers.iter().all(|l| layers.size(l).is_some()) => {
                    images.insert(r.image.id.clone(), r);
                }
                Ok(r) => tracing::warn!(image = %r.image.id, "image has missing layers; dropped"),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "unreadable image record skipped")
                }
            }
        }
        Ok(ImageStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                registries,
                platform,
                http: HttpClient::with_progress_deadline(progress_deadline),
                layers,
                images: RwLock::new(images),
                pulls: KeyedLocks::default(),
            }),
        })
    }

    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Apply the pull policy: `Never` and `IfNotPresent` use a local image if there is one;
    /// `Never` without one is an error saying so; otherwise pull.
    pub async fn ensure(
        &self,
        image: &str,
        policy: PullPolicy,
        auth: &[RegistryAuth],
    ) -> Result<Image, ImageError> {
        let reference: Reference = image.parse()?;
        if policy != PullPolicy::Always {
            if let Some(found) = self.lookup(image) {
                self.touch(&found.id);
                return Ok(found);
            }
            if policy == PullPolicy::Never {
                return Err(ImageError::NeverPull {
                    reference: reference.to_string(),
                });
            }
        }
        self.pull(image, auth).await
    }

    /// Pull `image` from its registry (through mirrors), whatever is present locally.
    pub async fn pull(&self, image: &str, auth: &[RegistryAuth]) -> Result<Image, ImageError> {
        let reference: Reference = image.parse()?;
        let _guard = self.inner.pulls.lock(&reference.to_string()).await;
        super::pull::pull(self, &reference, auth).await
    }

    /// A local image by id (`sha256:...`), tag or digest reference.
    pub fn lookup(&self, image: &str) -> Option<Image> {
        let images = self.inner.images.read().unwrap_or_else(|p| p.into_inner());
        if validate_digest(image).is_ok() {
            return images.get(image).map(|r| r.image.clone());
        }
        let reference: Reference = image.parse().ok()?;
        let wanted = match &reference.digest {
            Some(d) => reference.with_digest(d),
            None => reference.tagged()?,
        };
        images
            .values()
            .find(|r| r.image.repo_tags.contains(&wanted) || r.image.repo_digests.contains(&wanted))
            .map(|r| r.image.clone())
    }

    pub fn list(&self) -> Vec<Image> {
        let images = self.inner.images.read().unwrap_or_else(|p| p.into_inner());
        images.values().map(|r| r.image.clone()).collect()
    }

    /// Import a `docker save` archive or an OCI layout tarball.
    pub async fn import(&self, tarball: &Path) -> Result<Vec<Image>, ImageError> {
        super::import::import(self, tarball).await
    }

    pub fn mount_rootfs(&self, image: &Image, container_dir: &Path) -> Result<PathBuf, ImageError> {
        let lowers: Vec<PathBuf> = image
            .layers
            .iter()
            .map(|l| self.inner.layers.path(l))
            .collect();
        if let Some(missing) = image
            .layers
            .iter()
            .find(|l| self.inner.layers.size(l).is_none())
        {
            return Err(ImageError::NotFound(format!(
                "layer {missing} of image {}",
                image.id
            )));
        }
        let target = super::mount::mount_overlay(&lowers, container_dir)?;
        self.touch(&image.id);
        Ok(target)
    }

    pub fn unmount_rootfs(container_dir: &Path) -> Result<(), ImageError> {
        super::mount::unmount_overlay(container_dir)
    }

    /// Remove images not in `in_use` (ids or references), least recently used first, while
    /// disk use is above `high_bytes`, until it is at most `low_bytes`; then every layer no
    /// image refers to. Returns the removed image ids.
    pub fn gc(
        &self,
        in_use: &HashSet<String>,
        high_bytes: u64,
        low_bytes: u64,
    ) -> Result<Vec<String>, ImageError> {
        super::gc::gc(self, in_use, high_bytes, low_bytes)
    }

    /// Disk bytes used by unpacked layers.
    pub fn disk_usage(&self) -> u64 {
        self.inner
            .layers
            .list()
            .iter()
            .filter_map(|l| self.inner.layers.size(l))
            .sum()
    }

    fn touch(&self, id: &str) {
        let mut images = self.inner.images.write().unwrap_or_else(|p| p.into_inner());
        if let Some(r) = images.get_mut(id) {
            r.last_used = now();
        }
    }

    /// Record a complete image: merge with an existing record of the same id, move its tags
    /// away from other images, persist every record that changed.
    pub(crate) fn commit(&self, new: NewImage) -> Result<Image, ImageError> {
        let mut images = self.inner.images.write().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        for (id, r) in images.iter_mut() {
            if *id == new.id {
                continue;
            }
            let before = r.image.repo_tags.len();
            r.image.repo_tags.retain(|t| !new.tags.contains(t));
            if r.image.repo_tags.len() != before {
                changed.push(id.clone());
            }
        }
        let (diff_ids, sizes): (Vec<String>, Vec<u64>) = new.layers.into_iter().unzip();
        let record = images.entry(new.id.clone()).or_insert_with(|| Record {
            image: Image {
                id: new.id.clone(),
                repo_tags: Vec::new(),
                repo_digests: Vec::new(),
                config: ImageConfig::from_file(&new.config),
                layers: diff_ids.clone(),
                size: sizes.iter().sum(),
            },
            layer_sizes: sizes.clone(),
            last_used: 0,
        });
        for t in new.tags {
            if !record.image.repo_tags.contains(&t) {
                record.image.repo_tags.push(t);
            }
        }
        for d in new.digests {
            if !record.image.repo_digests.contains(&d) {
                record.image.repo_digests.push(d);
            }
        }
        record.last_used = now();
        let image = record.image.clone();
        changed.push(new.id);
        for id in changed {
            if let Some(r) = images.get(&id) {
                self.persist(r)?;
            }
        }
        Ok(image)
    }

    pub(crate) fn record_path(&self, id: &str) -> PathBuf {
        self.inner
            .root
            .join("images")
            .join(format!("{}.json", digest_hex(id)))
    }

    fn persist(&self, r: &Record) -> Result<(), ImageError> {
        let path = self.record_path(&r.image.id);
        let bytes = serde_json::to_vec_pretty(r).map_err(|e| ImageError::Metadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_durable(&path, &bytes)
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
