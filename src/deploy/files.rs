//! What is in the manifests directory: which files are manifests (`.yaml`, `.yml`, `.json`,
//! not dotfiles), which are skipped (`NAME.skip` or `NAME.yaml.skip` beside them), what their
//! Addon is called (the file name up to its first dot, as k3s names it), and a cheap
//! fingerprint (mtime and size) to tell a changed file from one already applied. Only the top
//! level of the directory is read. Reading files is all it does: it never writes or deletes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The names that `.skip` files in a directory leave alone (each file name minus `.skip`).
#[derive(Debug, Default, Clone)]
pub struct Skips(BTreeSet<String>);

impl Skips {
    pub fn read(dir: &Path) -> std::io::Result<Skips> {
        let mut set = BTreeSet::new();
        for e in std::fs::read_dir(dir)? {
            let e = e?;
            if let Some(n) = e.file_name().to_str().and_then(|n| n.strip_suffix(".skip")) {
                set.insert(n.to_string());
            }
        }
        Ok(Skips(set))
    }
}

/// Whether `file` (a file name) is left alone: `file.skip` or `<addon name>.skip` exists.
pub fn is_skipped(file: &str, skips: &Skips) -> bool {
    skips.0.contains(file) || skips.0.contains(addon_name(file))
}

/// Whether a file name is a manifest the directory applies.
pub fn is_manifest(file: &str) -> bool {
    if file.starts_with('.') {
        return false;
    }
    let lower = file.to_ascii_lowercase();
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// The Addon a file is recorded in: its name up to the first dot (`x.yaml` → `x`).
pub fn addon_name(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// A manifest file as last seen on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    pub file: String,
    pub stamp: Stamp,
}

/// mtime and size: when both are unchanged the content is taken as unchanged between resyncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub modified: Option<SystemTime>,
    pub len: u64,
}

/// The manifests in `dir`, sorted by name, and the `.skip` set. Skipped files are listed
/// (the caller decides); subdirectories and other files are not.
pub fn list(dir: &Path) -> std::io::Result<(Vec<Entry>, Skips)> {
    let mut out = vec![];
    let mut skips = BTreeSet::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let Some(file) = e.file_name().to_str().map(String::from) else {
            continue;
        };
        if let Some(n) = file.strip_suffix(".skip") {
            skips.insert(n.to_string());
            continue;
        }
        if !is_manifest(&file) {
            continue;
        }
        // follows symlinks: a link to a manifest elsewhere is applied like a file
        let Ok(meta) = std::fs::metadata(e.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        out.push(Entry {
            path: e.path(),
            file,
            stamp: Stamp {
                modified: meta.modified().ok(),
                len: meta.len(),
            },
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok((out, Skips(skips)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_manifest("a.yaml") && is_manifest("b.YML") && is_manifest("c.json"));
        assert!(!is_manifest(".hidden.yaml") && !is_manifest("a.txt") && !is_manifest("a.skip"));
        assert!(!is_manifest(".local-storage.yaml.tmp"));
        assert_eq!(addon_name("local-storage.yaml"), "local-storage");
        assert_eq!(addon_name("a.b.yaml"), "a");
    }

    #[test]
    fn listing_and_skips() {
        let d = tempfile::tempdir().unwrap();
        for f in [
            "b.yaml",
            "a.json",
            "x.yaml",
            "notes.txt",
            "y.yml",
            "y.yml.skip",
            "x.skip",
        ] {
            std::fs::write(d.path().join(f), "{}").unwrap();
        }
        std::fs::create_dir(d.path().join("sub.yaml")).unwrap();
        let (entries, skips) = list(d.path()).unwrap();
        let names: Vec<_> = entries.iter().map(|e| e.file.as_str()).collect();
        assert_eq!(names, ["a.json", "b.yaml", "x.yaml", "y.yml"]);
        assert!(is_skipped("x.yaml", &skips) && is_skipped("y.yml", &skips));
        assert!(!is_skipped("b.yaml", &skips));
        assert_eq!(entries[0].stamp.len, 2);
    }
}
