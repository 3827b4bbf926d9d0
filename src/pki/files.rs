//! File-system helpers: private directories, atomic writes with exact
//! modes, and reading PEM files with errors that name the file.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::PkiError;

/// Mode of every key and certificate file this module writes.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of the directory holding them.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;

/// Distinguishes temp files of concurrent writers within one process; the
/// pid distinguishes processes.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Write `contents` to `path` atomically: readers see either the old file or
/// the complete new one, never a torn write. The file gets exactly `mode`
/// (the umask is not applied), and missing parent directories are created.
pub fn write_file_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let write_err = |source| PkiError::Write {
        path: path.to_path_buf(),
        source,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::create_dir_all(parent).map_err(|source| PkiError::CreateDir {
        path: parent.to_path_buf(),
        source,
    })?;
    let file_name = path
        .file_name()
        .ok_or_else(|| write_err(std::io::Error::other("path has no file name")))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = parent.join(tmp_name);

    let result = (|| {
        // Created with the final mode so a secret is never readable by
        // others, not even between create and chmod.
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have removed bits the caller asked for (e.g. 0644
        // for a shared kubeconfig); set the mode explicitly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(write_err(source));
    }
    // Persist the rename itself; failure here only weakens durability on a
    // power cut, the new file is already in place.
    if let Ok(dir) = fs::File::open(parent) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Create `dir` (and parents) and restrict it to the owner.
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    set_mode(dir, PRIVATE_DIR_MODE)
}

/// Set the permission bits of `path` to `mode` unless they already match.
pub(crate) fn set_mode(path: &Path, mode: u32) -> Result<(), PkiError> {
    let perm_err = |source| PkiError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(perm_err)?;
    if meta.permissions().mode() & 0o7777 != mode {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(perm_err)?;
    }
    Ok(())
}

/// Read a UTF-8 (PEM) file, tightening its mode to 0600 on the way: an
/// older or hand-copied file may have been left world-readable.
pub(crate) fn read_private_pem(path: &Path) -> Result<String, PkiError> {
    let bytes = fs::read(path).map_err(|source| PkiError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    set_mode(path, PRIVATE_FILE_MODE)?;
    String::from_utf8(bytes).map_err(|_| PkiError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "file is not utf-8 pem"),
    })
}

/// Write a private PEM file (key or certificate) with mode 0600.
pub(crate) fn write_private_pem(path: &Path, pem: &str) -> Result<(), PkiError> {
    write_file_atomic(path, pem.as_bytes(), PRIVATE_FILE_MODE)
}
