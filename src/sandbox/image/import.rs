//! Importing image tarballs for air-gapped nodes: `docker save` archives (`manifest.json`
//! with `Config`, `RepoTags`, `Layers`) and OCI layout tarballs (`oci-layout`, `index.json`,
//! `blobs/`), plain or gzipped. The tarball is extracted into the store's temp dir (regular
//! files, dirs and symlinks only, never outside it), every blob is checked against its digest
//! and every layer against its diff id, and the images are recorded with their tags. It never
//! reads a file outside the extracted tree, even through a symlink in the archive.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::error::ImageError;
use super::manifest::{
    parse_config, parse_manifest, sha256_digest, verify_digest, ConfigFile, Descriptor,
    ManifestKind,
};
use super::reference::{validate_digest, Reference};
use super::store::{Image, ImageStore, NewImage};
use super::unpack::{decompress, normalize};

const MAX_JSON: u64 = 16 << 20;

pub(super) async fn import(store: &ImageStore, tarball: &Path) -> Result<Vec<Image>, ImageError> {
    let dir = store.inner.layers.temp_path("import");
    let _cleanup = RemoveOnDrop(dir.clone());
    fs::create_dir_all(&dir).map_err(|e| ImageError::io("create", &dir, e))?;
    let (src, dst) = (tarball.to_path_buf(), dir.clone());
    tokio::task::spawn_blocking(move || extract(&src, &dst))
        .await
        .map_err(|e| archive_err(tarball, format!("extract task failed: {e}")))??;
    if dir.join("manifest.json").is_file() {
        docker_archive(store, tarball, &dir).await
    } else if dir.join("index.json").is_file() {
        oci_layout(store, tarball, &dir).await
    } else {
        Err(archive_err(
            tarball,
            "neither a docker archive (manifest.json) nor an OCI layout (index.json)".into(),
        ))
    }
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn archive_err(path: &Path, reason: String) -> ImageError {
    ImageError::Archive {
        path: path.to_path_buf(),
        reason,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

async fn docker_archive(
    store: &ImageStore,
    tarball: &Path,
    dir: &Path,
) -> Result<Vec<Image>, ImageError> {
    let bytes = read_inside(dir, "manifest.json", MAX_JSON).map_err(|r| archive_err(tarball, r))?;
    let entries: Vec<DockerEntry> = serde_json::from_slice(&bytes)
        .map_err(|e| archive_err(tarball, format!("manifest.json: {e}")))?;
    let mut out = Vec::new();
    for e in entries {
        let config_bytes =
            read_inside(dir, &e.config, MAX_JSON).map_err(|r| archive_err(tarball, r))?;
        let id = sha256_digest(&config_bytes);
        let config = parse_config(&config_bytes, &e.config)?;
        if config.rootfs.diff_ids.len() != e.layers.len() {
            return Err(archive_err(
                tarball,
                format!(
                    "{}: {} layers but the config lists {} diff ids",
                    e.config,
                    e.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        let mut files = Vec::new();
        for l in &e.layers {
            files.push((
                resolve_inside(dir, l).map_err(|r| archive_err(tarball, r))?,
                None,
            ));
        }
        let tags = names(e.repo_tags.unwrap_or_default(), tarball)?;
        out.push(install(store, id, config, files, tags, Vec::new()).await?);
    }
    Ok(out)
}

async fn oci_layout(
    store: &ImageStore,
    tarball: &Path,
    dir: &Path,
) -> Result<Vec<Image>, ImageError> {
    let layout = read_inside(dir, "oci-layout", 4096).map_err(|r| archive_err(tarball, r))?;
    if !String::from_utf8_lossy(&layout).contains("imageLayoutVersion") {
        return Err(archive_err(
            tarball,
            "oci-layout lacks imageLayoutVersion".into(),
        ));
    }
    let index = read_inside(dir, "index.json", MAX_JSON).map_err(|r| archive_err(tarball, r))?;
    let ManifestKind::Index(entries) = parse_manifest(&index, None, "index.json")? else {
        return Err(archive_err(tarball, "index.json is not an index".into()));
    };
    let platform = store.inner.platform.clone();
    let mut out = Vec::new();
    for top in entries {
        let name = top.annotations.as_ref().and_then(|a| {
            a.get("io.containerd.image.name")
                .or_else(|| a.get("org.opencontainers.image.ref.name"))
                .cloned()
        });
        // A bare tag ("latest") names nothing we could pull by; the image stays untagged.
        let reference = match name.filter(|n| n.contains(':') || n.contains('/')) {
            Some(n) => Some(n.parse::<Reference>()?),
            None => None,
        };
        let bytes = read_blob(dir, &top, tarball)?;
        let manifest = match parse_manifest(&bytes, Some(&top.media_type), &top.digest)? {
            ManifestKind::Image(m) => m,
            ManifestKind::Index(children) => {
                let chosen =
                    platform
                        .select(&children)
                        .ok_or_else(|| ImageError::NoMatchingPlatform {
                            reference: top.digest.clone(),
                            platform: platform.to_string(),
                            available: super::manifest::describe_platforms(&children),
                        })?;
                let bytes = read_blob(dir, chosen, tarball)?;
                match parse_manifest(&bytes, Some(&chosen.media_type), &chosen.digest)? {
                    ManifestKind::Image(m) => m,
                    ManifestKind::Index(_) => {
                        return Err(archive_err(tarball, "nested index".into()))
                    }
                }
            }
        };
        let config_bytes = read_blob(dir, &manifest.config, tarball)?;
        let config = parse_config(&config_bytes, &top.digest)?;
        super::pull::check_layers(&manifest, &config, &top.digest)?;
        let mut files = Vec::new();
        for l in &manifest.layers {
            files.push((blob_path(dir, &l.digest, tarball)?, Some(l.digest.clone())));
        }
        let (tags, digests) = match &reference {
            Some(r) => (
                r.tagged().into_iter().collect(),
                vec![r.with_digest(&top.digest)],
            ),
            None => (Vec::new(), Vec::new()),
        };
        let id = manifest.config.digest.clone();
        out.push(install(store, id, config, files, tags, digests).await?);
    }
    Ok(out)
}

async fn install(
    store: &ImageStore,
    id: String,
    config: ConfigFile,
    files: Vec<(PathBuf, Option<String>)>,
    tags: Vec<String>,
    digests: Vec<String>,
) -> Result<Image, ImageError> {
    let layers = store.inner.layers.clone();
    let _pins = layers.pin(&config.rootfs.diff_ids);
    let mut done = Vec::new();
    for ((file, blob_digest), diff_id) in files.into_iter().zip(&config.rootfs.diff_ids) {
        let size = layers
            .ensure(diff_id, blob_digest, || async move { Ok((file, false)) })
            .await?;
        done.push((diff_id.clone(), size));
    }
    store.commit(NewImage {
        id,
        config,
        layers: done,
        tags,
        digests,
    })
}

fn names(tags: Vec<String>, tarball: &Path) -> Result<Vec<String>, ImageError> {
    let mut out = Vec::new();
    for t in tags {
        let r: Reference = t
            .parse()
            .map_err(|e| archive_err(tarball, format!("RepoTags: {e}")))?;
        out.extend(r.tagged());
    }
    Ok(out)
}

fn blob_path(dir: &Path, digest: &str, tarball: &Path) -> Result<PathBuf, ImageError> {
    validate_digest(digest).map_err(|r| archive_err(tarball, r))?;
    let rel = format!("blobs/sha256/{}", super::manifest::digest_hex(digest));
    resolve_inside(dir, &rel).map_err(|r| archive_err(tarball, r))
}

fn read_blob(dir: &Path, d: &Descriptor, tarball: &Path) -> Result<Vec<u8>, ImageError> {
    let path = blob_path(dir, &d.digest, tarball)?;
    let bytes = read_limited(&path, MAX_JSON).map_err(|r| archive_err(tarball, r))?;
    verify_digest("blob", &d.digest, &bytes)?;
    Ok(bytes)
}

/// Resolve `rel` inside `dir`, following symlinks only while they stay inside.
fn resolve_inside(dir: &Path, rel: &str) -> Result<PathBuf, String> {
    let comps = normalize(rel.as_bytes()).map_err(|r| format!("{rel:?}: {r}"))?;
    let mut p = dir.to_path_buf();
    for c in comps {
        p.push(c);
    }
    let root = dir
        .canonicalize()
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let real = p
        .canonicalize()
        .map_err(|e| format!("{rel:?} is missing from the archive: {e}"))?;
    if !real.starts_with(&root) {
        return Err(format!("{rel:?} points outside the archive"));
    }
    if !real.is_file() {
        return Err(format!("{rel:?} is not a regular file"));
    }
    Ok(real)
}

fn read_inside(dir: &Path, rel: &str, limit: u64) -> Result<Vec<u8>, String> {
    read_limited(&resolve_inside(dir, rel)?, limit)
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = Vec::new();
    f.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if buf.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes", path.display()));
    }
    Ok(buf)
}

/// Extract regular files, directories and symlinks of `tarball` under `dest` (blocking).
fn extract(tarball: &Path, dest: &Path) -> Result<(), ImageError> {
    let bad = |r: String| archive_err(tarball, r);
    let file = fs::File::open(tarball).map_err(|e| ImageError::io("open", tarball, e))?;
    let reader = decompress(
        std::io::BufReader::new(file),
        &tarball.display().to_string(),
    )?;
    let mut archive = tar::Archive::new(reader);
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("not a tar archive: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("corrupt tar: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let comps = normalize(&raw)
            .map_err(|r| bad(format!("entry {:?}: {r}", String::from_utf8_lossy(&raw))))?;
        let Some((name, parents)) = comps.split_last() else {
            continue;
        };
        let mut p = dest.to_path_buf();
        for c in parents {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(bad(format!(
                        "entry {:?} passes through a non-directory",
                        String::from_utf8_lossy(&raw)
                    )))
                }
                Err(_) => fs::create_dir(&p).map_err(|e| ImageError::io("create", &p, e))?,
            }
        }
        p.push(name);
        if fs::symlink_metadata(&p).is_ok() {
            return Err(bad(format!(
                "duplicate entry {:?}",
                String::from_utf8_lossy(&raw)
            )));
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir(&p).map_err(|e| ImageError::io("create", &p, e))?
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut f =
                    fs::File::create_new(&p).map_err(|e| ImageError::io("create", &p, e))?;
                std::io::copy(&mut entry, &mut f).map_err(|e| ImageError::io("write", &p, e))?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink without target".into()))?
                    .into_owned();
                std::os::unix::fs::symlink(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target),
                    &p,
                )
                .map_err(|e| ImageError::io("symlink", &p, e))?;
            }
            _ => {}
        }
    }
    Ok(())
}
