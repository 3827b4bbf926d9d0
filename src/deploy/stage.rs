//! Bundled manifests: the files of the repository's `manifests/` directory, compiled into the
//! binary, and staging them into the manifests directory at start with the cluster's values
//! filled in (`%{CLUSTER_DNS}%`-style placeholders, as k3s writes them). A bundled file that is
//! disabled (`--disable NAME`) or skipped (`NAME.skip` or `NAME.yaml.skip` beside it) is not
//! written. Staging never touches a file that is not bundled, and rewrites a bundled one only
//! when its content differs, so an unchanged file keeps its mtime and is not re-applied.

use super::files::{is_skipped, Skips};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The bundled manifests, by file name.
pub const BUNDLED: &[(&str, &str)] = &[(
    "local-storage.yaml",
    include_str!("../../manifests/local-storage.yaml"),
)];

/// The values a bundled manifest may refer to.
#[derive(Debug, Clone, Default)]
pub struct TemplateVars {
    pub cluster_dns: String,
    pub cluster_domain: String,
    pub data_dir: String,
    pub default_local_storage_path: String,
}

impl TemplateVars {
    fn pairs(&self) -> [(&'static str, &str); 4] {
        [
            ("%{CLUSTER_DNS}%", &self.cluster_dns),
            ("%{CLUSTER_DOMAIN}%", &self.cluster_domain),
            ("%{DATA_DIR}%", &self.data_dir),
            (
                "%{DEFAULT_LOCAL_STORAGE_PATH}%",
                &self.default_local_storage_path,
            ),
        ]
    }

    /// `text` with every placeholder replaced by its value.
    pub fn render(&self, text: &str) -> String {
        self.pairs()
            .iter()
            .fold(text.to_string(), |t, (k, v)| t.replace(k, v))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("writing the bundled manifest {path}: {source}")]
pub struct StageError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// The file-name stem k3s matches `--disable` against: `local-storage.yaml` → `local-storage`.
pub fn bundled_name(file: &str) -> &str {
    file.split('.').next().unwrap_or(file)
}

/// The rendered text of bundled manifest `name` (its stem), if there is one.
pub fn bundled(name: &str, vars: &TemplateVars) -> Option<String> {
    BUNDLED
        .iter()
        .find(|(f, _)| bundled_name(f) == name)
        .map(|(_, text)| vars.render(text))
}

/// Write the bundled manifests into `dir` (created if missing), leaving out the disabled and
/// the skipped. Returns the paths of the files staged (written or already current).
pub fn stage(
    dir: &Path,
    vars: &TemplateVars,
    disables: &BTreeSet<String>,
) -> Result<Vec<PathBuf>, StageError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| StageError { path, source }
    };
    std::fs::create_dir_all(dir).map_err(err(dir))?;
    let skips = Skips::read(dir).map_err(err(dir))?;
    let mut staged = vec![];
    for (file, text) in BUNDLED {
        if disables.contains(bundled_name(file)) || is_skipped(file, &skips) {
            continue;
        }
        let path = dir.join(file);
        let content = vars.render(text);
        if std::fs::read(&path).ok().as_deref() != Some(content.as_bytes()) {
            write_file(&path, content.as_bytes()).map_err(err(&path))?;
            tracing::info!(path = %path.display(), "wrote bundled manifest");
        }
        staged.push(path);
    }
    Ok(staged)
}

/// Write through a temporary file and a rename, so the watcher never reads half a file.
fn write_file(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content)?;
    // no fsync: the file is staged again at every start, and the objects are in the store
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> TemplateVars {
        TemplateVars {
            cluster_dns: "10.43.0.10".into(),
            cluster_domain: "cluster.local".into(),
            data_dir: "/var/lib/k1s".into(),
            default_local_storage_path: "/var/lib/k1s/storage".into(),
        }
    }

    #[test]
    fn placeholders_are_filled_in() {
        let t = vars().render("a: %{CLUSTER_DNS}%\nb: %{CLUSTER_DOMAIN}% %{CLUSTER_DOMAIN}%\nc: %{DATA_DIR}%/x\nd: %{UNKNOWN}%");
        assert_eq!(
            t,
            "a: 10.43.0.10\nb: cluster.local cluster.local\nc: /var/lib/k1s/x\nd: %{UNKNOWN}%"
        );
        let ls = bundled("local-storage", &vars()).unwrap();
        assert!(ls.contains("/var/lib/k1s/storage") && !ls.contains("%{"));
        assert!(bundled("nothing", &vars()).is_none());
    }

    #[test]
    fn stage_writes_skips_and_disables() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("manifests");
        let staged = stage(&dir, &vars(), &BTreeSet::new()).unwrap();
        let file = dir.join("local-storage.yaml");
        assert_eq!(staged, vec![file.clone()]);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains("kind: StorageClass") && text.contains("/var/lib/k1s/storage"));
        // unchanged content is not rewritten (its mtime stays)
        let before = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        stage(&dir, &vars(), &BTreeSet::new()).unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            before
        );
        // an edited bundled file is restored, as k3s does
        std::fs::write(&file, "edited").unwrap();
        stage(&dir, &vars(), &BTreeSet::new()).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        // a .skip file stops staging: the user's own version stays
        for skip in ["local-storage.skip", "local-storage.yaml.skip"] {
            std::fs::write(&file, "mine").unwrap();
            std::fs::write(dir.join(skip), "").unwrap();
            assert!(stage(&dir, &vars(), &BTreeSet::new()).unwrap().is_empty());
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "mine");
            std::fs::remove_file(dir.join(skip)).unwrap();
        }
        // disabled: not written
        std::fs::remove_file(&file).unwrap();
        let off = BTreeSet::from(["local-storage".to_string()]);
        assert!(stage(&dir, &vars(), &off).unwrap().is_empty());
        assert!(!file.exists());
    }
}
