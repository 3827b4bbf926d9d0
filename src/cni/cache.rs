//! The on-disk record of each attachment: the configuration list, capability arguments and
//! namespace used at ADD, and the result ADD returned. DEL after an agent restart needs all of
//! them (portmap, for one, removes its rules only if given the same `portMappings`). The record
//! is written before ADD starts and completed after, so a crash mid-ADD still leaves enough for
//! DEL. This module owns the files under `<state_dir>/results`; it must never run plugins.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cni::error::CniError;

const KIND: &str = "k1sCniCacheV1";

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub kind: String,
    pub network: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    #[serde(rename = "ifName")]
    pub ifname: String,
    pub netns: PathBuf,
    /// The namespace's inode at ADD, to tell it from a namespace re-created on the same path.
    #[serde(rename = "netnsInode", default)]
    pub netns_inode: Option<u64>,
    /// The configuration list as run.
    pub config: Value,
    #[serde(rename = "capabilityArgs", default)]
    pub capability_args: Map<String, Value>,
    /// None until ADD has returned.
    #[serde(default)]
    pub result: Option<Value>,
}

impl CacheEntry {
    pub fn new(
        network: &str,
        container_id: &str,
        ifname: &str,
        netns: &Path,
        config: Value,
        capability_args: Map<String, Value>,
    ) -> Self {
        CacheEntry {
            kind: KIND.into(),
            network: network.into(),
            container_id: container_id.into(),
            ifname: ifname.into(),
            netns: netns.to_path_buf(),
            netns_inode: crate::cni::netns::inode(netns),
            config,
            capability_args,
            result: None,
        }
    }
}

/// The directory of cache files.
#[derive(Debug, Clone)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    pub fn new(dir: PathBuf) -> Self {
        ResultCache { dir }
    }

    /// `<dir>/<network>-<container id>-<ifname>.json`, the same key libcni uses. The parts are
    /// validated by the caller to contain no '/'.
    pub fn path(&self, network: &str, container_id: &str, ifname: &str) -> PathBuf {
        self.dir
            .join(format!("{network}-{container_id}-{ifname}.json"))
    }

    pub async fn load(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Option<CacheEntry>, CniError> {
        let path = self.path(network, container_id, ifname);
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(CniError::io("read cni cache", path, e)),
        };
        let corrupt = |reason: String| CniError::CorruptCache {
            path: path.clone(),
            reason,
        };
        let entry: CacheEntry =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        if entry.kind != KIND {
            return Err(corrupt(format!("unknown kind {:?}", entry.kind)));
        }
        if entry.network != network || entry.container_id != container_id || entry.ifname != ifname
        {
            return Err(corrupt("names a different attachment".into()));
        }
        Ok(Some(entry))
    }

    /// Writes atomically and durably: a crash leaves the old record or the new one, never half.
    pub async fn store(&self, entry: &CacheEntry) -> Result<(), CniError> {
        let path = self.path(&entry.network, &entry.container_id, &entry.ifname);
        let bytes = serde_json::to_vec_pretty(entry)
            .map_err(|e| CniError::io("encode cni cache", &path, std::io::Error::other(e)))?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || write_atomic(&dir, &path, &bytes))
            .await
            .map_err(|e| CniError::io("write cni cache in", &self.dir, std::io::Error::other(e)))?
    }

    pub async fn remove(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<(), CniError> {
        let path = self.path(network, container_id, ifname);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CniError::io("remove cni cache", path, e)),
        }
    }
}

fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), CniError> {
    std::fs::create_dir_all(dir).map_err(|e| CniError::io("create directory", dir, e))?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| CniError::io("create", &tmp, e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| CniError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| CniError::io("rename into place", path, e))?;
    // The rename is durable only once the directory is synced.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CniError::io("sync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn round_trips_and_rejects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::new(dir.path().join("results"));
        assert!(cache.load("k1s", "pod1", "eth0").await.unwrap().is_none());

        let mut e = CacheEntry::new(
            "k1s",
            "pod1",
            "eth0",
            Path::new("/run/k1s/netns/pod1"),
            json!({"a": 1}),
            Map::new(),
        );
        cache.store(&e).await.unwrap();
        e.result = Some(json!({"cniVersion": "1.0.0"}));
        cache.store(&e).await.unwrap();
        assert_eq!(cache.load("k1s", "pod1", "eth0").await.unwrap(), Some(e));

        let path = cache.path("k1s", "pod1", "eth0");
        std::fs::write(&path, b"{\"kind\":").unwrap();
        let msg = cache
            .load("k1s", "pod1", "eth0")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("corrupt cni cache file") && msg.contains("pod1-eth0.json"),
            "{msg}"
        );

        std::fs::write(&path, br#"{"kind":"other","network":"k1s","containerId":"pod1","ifName":"eth0","netns":"/x","config":{}}"#).unwrap();
        assert!(cache
            .load("k1s", "pod1", "eth0")
            .await
            .unwrap_err()
            .to_string()
            .contains("unknown kind"));

        cache.remove("k1s", "pod1", "eth0").await.unwrap();
        cache.remove("k1s", "pod1", "eth0").await.unwrap();
        assert!(cache.load("k1s", "pod1", "eth0").await.unwrap().is_none());
    }
}
