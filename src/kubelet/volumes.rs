//! A pod's volumes made real on the node, under `<pod dir>/volumes/<name>`: emptyDir (a
//! directory, or tmpfs for `medium: Memory`), hostPath with its type checks, and the files of
//! configMap, secret, downwardAPI and projected volumes (service-account tokens included).
//! Secrets, ConfigMaps and tokens are fetched by the caller; this file only touches the
//! filesystem.

use super::env::{field_value, Sources};
use k8s_openapi::api::core::v1::{KeyToPath, Pod, Volume};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A volume as containers see it: a host path to bind-mount.
#[derive(Debug, Clone, PartialEq)]
pub struct HostVolume {
    pub path: PathBuf,
    pub readonly: bool,
}

pub type PodVolumes = BTreeMap<String, HostVolume>;

#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("volume {volume:?}: {path}: {source}")]
    Io {
        volume: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("volume {volume:?}: hostPath type check failed: {path} is not a {kind}")]
    HostPathType {
        volume: String,
        path: String,
        kind: String,
    },
    #[error("configmap \"{0}\" not found")]
    ConfigMapMissing(String),
    #[error("secret \"{0}\" not found")]
    SecretMissing(String),
    #[error("persistentvolumeclaim \"{0}\" is not bound to a volume on this node yet")]
    ClaimNotReady(String),
    #[error("volume {volume:?}: key {key:?} not found in {source_name}")]
    KeyMissing {
        volume: String,
        key: String,
        source_name: String,
    },
    #[error("volume {volume:?}: {what} volumes are not supported yet")]
    Unsupported { volume: String, what: String },
    #[error("volume {volume:?}: item path {path:?} must be relative without '..'")]
    BadItemPath { volume: String, path: String },
    #[error("volume {volume:?}: {message}")]
    Other { volume: String, message: String },
}

/// ConfigMap and Secret names the pod's volumes refer to.
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut cms = Vec::new();
    let mut secrets = Vec::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        if let Some(c) = &v.config_map {
            cms.push(c.name.clone());
        }
        if let Some(s) = &v.secret {
            secrets.extend(s.secret_name.clone());
        }
        for src in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(c) = &src.config_map {
                cms.push(c.name.clone());
            }
            if let Some(s) = &src.secret {
                secrets.push(s.name.clone());
            }
        }
    }
    (cms, secrets)
}

fn io(volume: &str, path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError {
    let volume = volume.to_string();
    let path = path.to_path_buf();
    move |source| VolumeError::Io {
        volume,
        path,
        source,
    }
}

/// Files of one volume: relative path → (content, mode).
type Files = BTreeMap<String, (Vec<u8>, u32)>;

fn add_items(
    files: &mut Files,
    volume: &str,
    source_name: &str,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&Vec<KeyToPath>>,
    mode: u32,
    optional: bool,
) -> Result<(), VolumeError> {
    match items {
        None => {
            for (k, v) in data {
                files.insert(k.clone(), (v.clone(), mode));
            }
        }
        Some(items) => {
            for it in items {
                match data.get(&it.key) {
                    Some(v) => {
                        let m = it.mode.map(|m| m as u32).unwrap_or(mode);
                        files.insert(it.path.clone(), (v.clone(), m));
                    }
                    None if optional => {}
                    None => {
                        return Err(VolumeError::KeyMissing {
                            volume: volume.into(),
                            key: it.key.clone(),
                            source_name: source_name.into(),
                        })
                    }
                }
            }
        }
    }
    Ok(())
}

fn cm_bytes(src: &Sources, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let cm = src.config_maps.get(name)?;
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    Some(out)
}

fn secret_bytes(src: &Sources, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
    let s = src.secrets.get(name)?;
    Some(
        s.data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect(),
    )
}

/// What the volume shows now, read through `..data`: every file with its content and mode.
fn current(dir: &Path) -> Files {
    fn walk(base: &Path, rel: &str, out: &mut Files) {
        let Ok(entries) = std::fs::read_dir(base.join(rel)) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let r = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            match e.file_type() {
                Ok(t) if t.is_dir() => walk(base, &r, out),
                Ok(_) => {
                    let p = base.join(&r);
                    if let (Ok(c), Ok(m)) = (std::fs::read(&p), std::fs::metadata(&p)) {
                        out.insert(r, (c, m.permissions().mode() & 0o777));
                    }
                }
                Err(_) => {}
            }
        }
    }
    let mut out = Files::new();
    walk(&dir.join("..data"), "", &mut out);
    out
}

/// Write the volume's files the way upstream's atomic writer does, so that a running
/// container, which has the directory bind-mounted, sees a whole new set at once: the files
/// live in a timestamped directory, `..data` points at it, and each top-level name is a link
/// through `..data`. An update writes a new directory and swaps `..data` with one rename.
fn write_files(volume: &str, dir: &Path, files: &Files) -> Result<(), VolumeError> {
    for rel in files.keys() {
        if rel.starts_with('/')
            || rel
                .split('/')
                .any(|p| p == ".." || p == "." || p.is_empty())
            || rel.starts_with("..")
        {
            return Err(VolumeError::BadItemPath {
                volume: volume.into(),
                path: rel.clone(),
            });
        }
    }
    std::fs::create_dir_all(dir).map_err(io(volume, dir))?;
    if dir.join("..data").exists() && current(dir) == *files {
        return Ok(());
    }
    let stamp = format!("..{}", jiff::Timestamp::now().as_nanosecond());
    let data = dir.join(&stamp);
    std::fs::create_dir_all(&data).map_err(io(volume, &data))?;
    for (rel, (content, mode)) in files {
        let path = data.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(volume, parent))?;
        }
        std::fs::write(&path, content).map_err(io(volume, &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode))
            .map_err(io(volume, &path))?;
    }
    let old = std::fs::read_link(dir.join("..data")).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(&stamp, &tmp_link).map_err(io(volume, &tmp_link))?;
    std::fs::rename(&tmp_link, dir.join("..data")).map_err(io(volume, dir))?;
    // Top-level names: links through ..data; names no longer present go.
    let top: std::collections::BTreeSet<String> = files
        .keys()
        .map(|k| k.split('/').next().unwrap_or(k).to_string())
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(name), &link)
                .map_err(io(volume, &link))?;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("..") && !top.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn host_path(volume: &str, path: &str, kind: &str) -> Result<(), VolumeError> {
    let p = Path::new(path);
    let meta = std::fs::metadata(p);
    let bad = |k: &str| VolumeError::HostPathType {
        volume: volume.into(),
        path: path.into(),
        kind: k.into(),
    };
    use std::os::unix::fs::FileTypeExt;
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(p).map_err(io(volume, p))?;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                    .map_err(io(volume, p))?;
            }
            Ok(())
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(io(volume, parent))?;
                }
                std::fs::File::create(p).map_err(io(volume, p))?;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644))
                    .map_err(io(volume, p))?;
            }
            Ok(())
        }
        "Directory" => meta
            .ok()
            .filter(|m| m.is_dir())
            .map(|_| ())
            .ok_or_else(|| bad("directory")),
        "File" => meta
            .ok()
            .filter(|m| m.is_file())
            .map(|_| ())
            .ok_or_else(|| bad("file")),
        "Socket" => meta
            .ok()
            .filter(|m| m.file_type().is_socket())
            .map(|_| ())
            .ok_or_else(|| bad("socket")),
        "CharDevice" => meta
            .ok()
            .filter(|m| m.file_type().is_char_device())
            .map(|_| ())
            .ok_or_else(|| bad("character device")),
        "BlockDevice" => meta
            .ok()
            .filter(|m| m.file_type().is_block_device())
            .map(|_| ())
            .ok_or_else(|| bad("block device")),
        other => Err(bad(other)),
    }
}

/// Make every volume of the pod, under `pod_dir/volumes`.
pub fn prepare(pod: &Pod, pod_dir: &Path, src: &Sources) -> Result<PodVolumes, VolumeError> {
    let mut out = PodVolumes::new();
    let base = pod_dir.join("volumes");
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let hv = prepare_one(pod, v, &base, src)?;
        out.insert(v.name.clone(), hv);
    }
    Ok(out)
}

fn prepare_one(
    pod: &Pod,
    v: &Volume,
    base: &Path,
    src: &Sources,
) -> Result<HostVolume, VolumeError> {
    let name = v.name.as_str();
    let dir = base.join(name);
    if let Some(ed) = &v.empty_dir {
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(io(name, &dir))?;
            // World-writable as upstream, so non-root containers can use it.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(io(name, &dir))?;
            if ed.medium.as_deref() == Some("Memory") {
                mount_tmpfs(name, &dir, ed.size_limit.as_ref().map(|q| q.0.as_str()))?;
            }
        }
        return Ok(HostVolume {
            path: dir,
            readonly: false,
        });
    }
    if let Some(c) = &v.persistent_volume_claim {
        let path = src
            .claims
            .get(&c.claim_name)
            .ok_or_else(|| VolumeError::ClaimNotReady(c.claim_name.clone()))?;
        host_path(name, &path.to_string_lossy(), "Directory")?;
        return Ok(HostVolume {
            path: path.clone(),
            readonly: c.read_only == Some(true),
        });
    }
    if let Some(hp) = &v.host_path {
        host_path(name, &hp.path, hp.type_.as_deref().unwrap_or(""))?;
        return Ok(HostVolume {
            path: PathBuf::from(&hp.path),
            readonly: false,
        });
    }
    let mut files = Files::new();
    if let Some(c) = &v.config_map {
        let optional = c.optional == Some(true);
        match cm_bytes(src, &c.name) {
            Some(data) => add_items(
                &mut files,
                name,
                &c.name,
                &data,
                c.items.as_ref(),
                mode(c.default_mode, 0o644),
                optional,
            )?,
            None if optional => {}
            None => return Err(VolumeError::ConfigMapMissing(c.name.clone())),
        }
    } else if let Some(s) = &v.secret {
        let sname = s.secret_name.clone().unwrap_or_default();
        let optional = s.optional == Some(true);
        match secret_bytes(src, &sname) {
            Some(data) => add_items(
                &mut files,
                name,
                &sname,
                &data,
                s.items.as_ref(),
                mode(s.default_mode, 0o644),
                optional,
            )?,
            None if optional => {}
            None => return Err(VolumeError::SecretMissing(sname)),
        }
    } else if let Some(d) = &v.downward_api {
        for it in d.items.iter().flatten() {
            let value = downward(
                pod,
                name,
                it.field_ref.as_ref().map(|f| f.field_path.as_str()),
            )?;
            files.insert(
                it.path.clone(),
                (value.into_bytes(), mode(it.mode.or(d.default_mode), 0o644)),
            );
        }
    } else if let Some(p) = &v.projected {
        let m = mode(p.default_mode, 0o644);
        for s in p.sources.iter().flatten() {
            if let Some(c) = &s.config_map {
                let optional = c.optional == Some(true);
                match cm_bytes(src, &c.name) {
                    Some(data) => add_items(
                        &mut files,
                        name,
                        &c.name,
                        &data,
                        c.items.as_ref(),
                        m,
                        optional,
                    )?,
                    None if optional => {}
                    None => return Err(VolumeError::ConfigMapMissing(c.name.clone())),
                }
            } else if let Some(sec) = &s.secret {
                let optional = sec.optional == Some(true);
                match secret_bytes(src, &sec.name) {
                    Some(data) => add_items(
                        &mut files,
                        name,
                        &sec.name,
                        &data,
                        sec.items.as_ref(),
                        m,
                        optional,
                    )?,
                    None if optional => {}
                    None => return Err(VolumeError::SecretMissing(sec.name.clone())),
                }
            } else if let Some(d) = &s.downward_api {
                for it in d.items.iter().flatten() {
                    let value = downward(
                        pod,
                        name,
                        it.field_ref.as_ref().map(|f| f.field_path.as_str()),
                    )?;
                    files.insert(
                        it.path.clone(),
                        (value.into_bytes(), it.mode.map(|x| x as u32).unwrap_or(m)),
                    );
                }
            } else if let Some(t) = &s.service_account_token {
                let key = (
                    t.audience.clone().unwrap_or_default(),
                    t.expiration_seconds.unwrap_or(3600),
                );
                let token = src.tokens.get(&key).ok_or_else(|| VolumeError::Other {
                    volume: name.into(),
                    message: "no service-account token yet".into(),
                })?;
                files.insert(t.path.clone(), (token.clone().into_bytes(), m));
            }
        }
    } else {
        let what = serde_json::to_value(v)
            .ok()
            .and_then(|j| {
                j.as_object()
                    .and_then(|o| o.keys().find(|k| *k != "name").cloned())
            })
            .unwrap_or_else(|| "this".into());
        return Err(VolumeError::Unsupported {
            volume: name.into(),
            what,
        });
    }
    write_files(name, &dir, &files)?;
    Ok(HostVolume {
        path: dir,
        readonly: true,
    })
}

fn mode(m: Option<i32>, default: u32) -> u32 {
    m.map(|m| m as u32 & 0o777).unwrap_or(default)
}

fn downward(pod: &Pod, volume: &str, field: Option<&str>) -> Result<String, VolumeError> {
    let field = field.ok_or_else(|| VolumeError::Other {
        volume: volume.into(),
        message: "only fieldRef items are supported in downwardAPI volumes".into(),
    })?;
    field_value(pod, field).map_err(|e| VolumeError::Other {
        volume: volume.into(),
        message: e.to_string(),
    })
}

fn mount_tmpfs(volume: &str, dir: &Path, size: Option<&str>) -> Result<(), VolumeError> {
    use nix::mount::{mount, MsFlags};
    let bytes = size
        .and_then(|s| crate::registry::rules::quantity::Quantity::parse(s).ok())
        .map(|q| q.to_f64() as u64);
    let opts = match bytes {
        Some(b) => format!("mode=0777,size={b}"),
        None => "mode=0777".to_string(),
    };
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(opts.as_str()),
    )
    .map_err(|e| io(volume, dir)(std::io::Error::from(e)))
}

/// Undo what `prepare` mounted (tmpfs emptyDirs), then remove the pod's volume directories.
/// hostPath volumes are never touched.
pub fn cleanup(pod_dir: &Path) -> std::io::Result<()> {
    super::subpath::cleanup(pod_dir)?;
    let base = pod_dir.join("volumes");
    let Ok(entries) = std::fs::read_dir(&base) else {
        return Ok(());
    };
    for e in entries.flatten() {
        // Not a mount point unless it was tmpfs; EINVAL otherwise is expected.
        let _ = nix::mount::umount2(&e.path(), nix::mount::MntFlags::MNT_DETACH);
    }
    std::fs::remove_dir_all(&base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_secret_and_downward_files() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {"containers": [], "volumes": [
                {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "k", "path": "sub/file", "mode": 0o600}]}},
                {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}},
                {"name": "scratch", "emptyDir": {}}
            ]}
        }))
        .unwrap();
        let mut src = Sources::default();
        let cm = k8s_openapi::api::core::v1::ConfigMap {
            data: Some(BTreeMap::from([("k".into(), "v".into())])),
            ..Default::default()
        };
        src.config_maps.insert("c".into(), cm);
        let s = k8s_openapi::api::core::v1::Secret {
            data: Some(BTreeMap::from([(
                "pw".into(),
                k8s_openapi::ByteString(b"x".to_vec()),
            )])),
            ..Default::default()
        };
        src.secrets.insert("s".into(), s);
        let dir = tempfile::tempdir().unwrap();
        let vols = prepare(&pod, dir.path(), &src).unwrap();
        let f = vols["cfg"].path.join("sub/file");
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "v");
        assert_eq!(
            std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let pw = vols["sec"].path.join("pw");
        assert_eq!(
            std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
            0o400
        );
        assert_eq!(
            std::fs::read_to_string(vols["info"].path.join("labels")).unwrap(),
            "a=\"b\""
        );
        assert!(vols["scratch"].path.is_dir() && !vols["scratch"].readonly);
        assert!(vols["cfg"].readonly);
        cleanup(dir.path()).unwrap();
        assert!(!dir.path().join("volumes").exists());
    }

    #[test]
    fn updates_swap_in_place_under_a_stable_directory() {
        use std::os::unix::fs::MetadataExt;
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "volumes": [{"name": "cfg", "configMap": {"name": "c"}}]}
        }))
        .unwrap();
        let with = |pairs: &[(&str, &str)]| {
            let mut src = Sources::default();
            let cm = k8s_openapi::api::core::v1::ConfigMap {
                data: Some(
                    pairs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            };
            src.config_maps.insert("c".into(), cm);
            src
        };
        let dir = tempfile::tempdir().unwrap();
        let v1 = prepare(&pod, dir.path(), &with(&[("a", "1"), ("b", "2")])).unwrap();
        let path = v1["cfg"].path.clone();
        let ino = std::fs::metadata(&path).unwrap().ino();
        let data1 = std::fs::read_link(path.join("..data")).unwrap();
        // Unchanged content: nothing is rewritten.
        prepare(&pod, dir.path(), &with(&[("a", "1"), ("b", "2")])).unwrap();
        assert_eq!(std::fs::read_link(path.join("..data")).unwrap(), data1);
        prepare(&pod, dir.path(), &with(&[("a", "10")])).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            ino,
            "the mounted directory changed"
        );
        assert_eq!(std::fs::read_to_string(path.join("a")).unwrap(), "10");
        assert!(!path.join("b").exists(), "a removed key is still visible");
        assert!(
            !path.join(&data1).exists(),
            "the old data directory is left behind"
        );
    }

    #[test]
    fn hostile_and_missing_inputs_are_errors() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "volumes": [
                {"name": "cfg", "configMap": {"name": "c", "items": [{"key": "k", "path": "../escape"}]}}
            ]}
        }))
        .unwrap();
        let mut src = Sources::default();
        let cm = k8s_openapi::api::core::v1::ConfigMap {
            data: Some(BTreeMap::from([("k".into(), "v".into())])),
            ..Default::default()
        };
        src.config_maps.insert("c".into(), cm);
        let dir = tempfile::tempdir().unwrap();
        let err = prepare(&pod, dir.path(), &src).unwrap_err();
        assert!(err.to_string().contains("must be relative"), "{err}");
        assert!(!dir.path().join("escape").exists());
        let err = prepare(&pod, dir.path(), &Sources::default()).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"c\" not found");

        let hp: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [], "volumes": [
                {"name": "h", "hostPath": {"path": "/nonexistent/k1s", "type": "Directory"}}
            ]}
        }))
        .unwrap();
        let err = prepare(&hp, dir.path(), &src).unwrap_err();
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }
}
