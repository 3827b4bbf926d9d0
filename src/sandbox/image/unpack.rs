//! Unpacking one image layer (a tar stream, gzip or uncompressed) into an empty directory
//! that becomes an overlayfs lower dir: regular files, dirs, symlinks, hardlinks, devices and
//! fifos with their uid/gid, mode, mtime and xattrs; OCI whiteouts (`.wh.name`) become
//! overlayfs whiteouts (char device 0/0) and `.wh..wh..opq` sets `trusted.overlay.opaque=y`.
//! It computes the diff id (sha256 of the uncompressed stream) as it reads.
//!
//! It must never write outside the destination: entry paths are normalised (a leading `/` is
//! re-rooted, `..` is refused), no path is ever resolved through a symlink, hardlinks must
//! point at something already unpacked in this layer, and tar header extensions (PAX, GNU long
//! names) are parsed here with size limits instead of trusting the archive.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::sys::stat::{mknod, Mode, SFlag};
use nix::sys::time::TimeSpec;
use sha2::{Digest, Sha256};
use tar::EntryType;

use super::error::ImageError;

/// PAX records and GNU long names larger than this are refused (real ones are tiny).
const MAX_HEADER_EXT: u64 = 1 << 20;
const MAX_PATH: usize = 4096;
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

#[derive(Debug)]
pub struct Unpacked {
    /// `sha256:` of the uncompressed tar stream.
    pub diff_id: String,
    /// Bytes of file content written (the layer's disk use, roughly).
    pub size: u64,
}

/// Hashes everything read through it: the diff id is over the whole uncompressed stream,
/// including the padding after the tar end marker.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Wrap a possibly compressed layer stream in the right decoder, by magic bytes (docker
/// archives and some registries label layers wrongly).
pub fn decompress<'a, R: Read + 'a>(
    mut reader: R,
    what: &str,
) -> Result<Box<dyn Read + 'a>, ImageError> {
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        let n = reader
            .read(&mut magic[got..])
            .map_err(|e| layer_err(what, format!("read: {e}")))?;
        if n == 0 {
            break;
        }
        got += n;
    }
    let head = io::Cursor::new(magic[..got].to_vec()).chain(reader);
    match magic[..got] {
        [0x1f, 0x8b, ..] => Ok(Box::new(flate2::read::MultiGzDecoder::new(head))),
        [0x28, 0xb5, 0x2f, 0xfd] => Err(layer_err(
            what,
            "zstd-compressed layers are not supported".into(),
        )),
        _ => Ok(Box::new(head)),
    }
}

fn layer_err(what: &str, reason: String) -> ImageError {
    ImageError::Layer {
        digest: what.to_string(),
        reason,
    }
}

/// Unpack the (already decompressed) tar stream `reader` into the empty directory `dest`.
/// `what` names the layer in errors.
pub fn unpack_layer(reader: impl Read, dest: &Path, what: &str) -> Result<Unpacked, ImageError> {
    let mut hashing = HashingReader {
        inner: reader,
        hasher: Sha256::new(),
    };
    let mut u = Unpacker {
        root: dest.to_path_buf(),
        what: what.to_string(),
        size: 0,
        dirs: Vec::new(),
    };
    {
        let mut archive = tar::Archive::new(&mut hashing);
        u.run(&mut archive)?;
        // Drain the rest (end-of-archive blocks, padding) so the diff id covers everything.
        io::copy(&mut archive.into_inner(), &mut io::sink())
            .map_err(|e| layer_err(what, format!("read: {e}")))?;
    }
    u.finish_dirs()?;
    Ok(Unpacked {
        diff_id: format!("sha256:{:x}", hashing.hasher.finalize()),
        size: u.size,
    })
}

struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: i64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// (major, minor) for device entries.
    dev: (u32, u32),
}

struct Unpacker {
    root: PathBuf,
    what: String,
    size: u64,
    /// Directory metadata is applied last: adding children changes a directory's mtime.
    dirs: Vec<(PathBuf, Meta)>,
}

impl Unpacker {
    fn err(&self, reason: String) -> ImageError {
        layer_err(&self.what, reason)
    }

    fn io_err(&self, op: &str, path: &Path, e: impl std::fmt::Display) -> ImageError {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        self.err(format!("{op} /{}: {e}", rel.display()))
    }

    fn run<R: Read>(&mut self, archive: &mut tar::Archive<R>) -> Result<(), ImageError> {
        let entries = archive
            .entries()
            .map_err(|e| self.err(format!("not a tar archive: {e}")))?
            .raw(true);
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut pax: Option<HashMap<String, Vec<u8>>> = None;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.err(format!("corrupt tar: {e}")))?;
            let kind = entry.header().entry_type();
            let ext_size = entry.header().entry_size().unwrap_or(u64::MAX);
            match kind {
                EntryType::GNULongName | EntryType::GNULongLink | EntryType::XHeader => {
                    if ext_size > MAX_HEADER_EXT {
                        return Err(self.err(format!(
                            "tar header extension of {ext_size} bytes exceeds the {MAX_HEADER_EXT} byte limit"
                        )));
                    }
                    let mut buf = Vec::new();
                    entry
                        .read_to_end(&mut buf)
                        .map_err(|e| self.err(format!("corrupt tar: {e}")))?;
                    match kind {
                        EntryType::GNULongName => long_name = Some(trim_nul(buf)),
                        EntryType::GNULongLink => long_link = Some(trim_nul(buf)),
                        _ => pax = Some(parse_pax(&buf).map_err(|r| self.err(r))?),
                    }
                    continue;
                }
                // Global PAX headers carry nothing we use (comments, charset).
                EntryType::XGlobalHeader => continue,
                _ => {}
            }
            let pax_map = pax.take().unwrap_or_default();
            let path = pax_map
                .get("path")
                .cloned()
                .or(long_name.take())
                .unwrap_or_else(|| entry.header().path_bytes().into_owned());
            let link = pax_map
                .get("linkpath")
                .cloned()
                .or(long_link.take())
                .or_else(|| entry.header().link_name_bytes().map(|c| c.into_owned()));
            if let Some(size) = pax_map.get("size") {
                let header_size = entry.header().entry_size().unwrap_or(0).to_string();
                if size.as_slice() != header_size.as_bytes() {
                    return Err(self.err("PAX size override is not supported".into()));
                }
            }
            let meta = self.meta(entry.header(), &pax_map)?;
            self.entry(&mut entry, kind, &path, link.as_deref(), meta)?;
        }
        Ok(())
    }

    fn meta(&self, h: &tar::Header, pax: &HashMap<String, Vec<u8>>) -> Result<Meta, ImageError> {
        let num = |key: &str, fallback: io::Result<u64>| -> Result<u64, ImageError> {
            match pax.get(key) {
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.split('.').next())
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| self.err(format!("bad PAX {key} value"))),
                None => fallback.map_err(|e| self.err(format!("bad tar header {key}: {e}"))),
            }
        };
        let xattrs = pax
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix("SCHILY.xattr.")
                    .map(|n| (n.as_bytes().to_vec(), v.clone()))
            })
            .collect();
        Ok(Meta {
            mode: h
                .mode()
                .map_err(|e| self.err(format!("bad tar header mode: {e}")))?
                & 0o7777,
            uid: num("uid", h.uid())?,
            gid: num("gid", h.gid())?,
            mtime: num("mtime", h.mtime())? as i64,
            xattrs,
            dev: (
                h.device_major().ok().flatten().unwrap_or(0),
                h.device_minor().ok().flatten().unwrap_or(0),
            ),
        })
    }

    fn entry<R: Read>(
        &mut self,
        data: &mut R,
        kind: EntryType,
        raw_path: &[u8],
        link: Option<&[u8]>,
        meta: Meta,
    ) -> Result<(), ImageError> {
        let comps = normalize(raw_path).map_err(|r| {
            self.err(format!(
                "entry {:?}: {r}",
                String::from_utf8_lossy(raw_path)
            ))
        })?;
        let Some((name, parents)) = comps.split_last() else {
            // `./` itself: the layer root's own mode and owner.
            if kind == EntryType::Directory {
                self.dirs.push((self.root.clone(), meta));
            }
            return Ok(());
        };
        let parent = self.make_parents(parents)?;
        let name_str = name.to_string_lossy();
        if name_str == OPAQUE {
            return self.set_xattr(&parent, b"trusted.overlay.opaque", b"y");
        }
        if let Some(hidden) = name_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." {
                return Err(self.err(format!("invalid whiteout {name_str:?}")));
            }
            let target = parent.join(hidden);
            self.remove_existing(&target)?;
            return mknod(&target, SFlag::S_IFCHR, Mode::empty(), 0)
                .map_err(|e| self.io_err("whiteout", &target, e));
        }
        let path = parent.join(name);
        match kind {
            EntryType::Directory => {
                match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        self.remove_existing(&path)?;
                        self.mkdir(&path)?;
                    }
                    Err(_) => self.mkdir(&path)?,
                }
                self.dirs.push((path, meta));
                return Ok(());
            }
            EntryType::Regular | EntryType::Continuous => {
                self.remove_existing(&path)?;
                let mut f = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| self.io_err("create", &path, e))?;
                let n = io::copy(data, &mut f).map_err(|e| self.io_err("write", &path, e))?;
                self.size += n;
            }
            EntryType::Symlink => {
                let target = link.ok_or_else(|| self.err("symlink without target".into()))?;
                self.remove_existing(&path)?;
                // Any target is fine: it is only ever resolved inside the container's root.
                std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
                    .map_err(|e| self.io_err("symlink", &path, e))?;
            }
            EntryType::Link => {
                let target = link.ok_or_else(|| self.err("hardlink without target".into()))?;
                let tcomps = normalize(target).map_err(|r| {
                    self.err(format!(
                        "hardlink {:?} -> {:?}: {r}",
                        String::from_utf8_lossy(raw_path),
                        String::from_utf8_lossy(target)
                    ))
                })?;
                let source = self.existing(&tcomps).map_err(|r| {
                    self.err(format!(
                        "hardlink {:?} -> {:?}: {r}",
                        String::from_utf8_lossy(raw_path),
                        String::from_utf8_lossy(target)
                    ))
                })?;
                if source == path {
                    return Ok(());
                }
                self.remove_existing(&path)?;
                fs::hard_link(&source, &path).map_err(|e| self.io_err("hardlink", &path, e))?;
                // A hardlink shares the inode; its header metadata must not override it.
                return Ok(());
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                self.remove_existing(&path)?;
                let flag = match kind {
                    EntryType::Fifo => SFlag::S_IFIFO,
                    EntryType::Char => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                let dev = nix::sys::stat::makedev(meta.dev.0.into(), meta.dev.1.into());
                mknod(&path, flag, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| self.io_err("mknod", &path, e))?;
            }
            EntryType::GNUSparse => {
                return Err(self.err(format!(
                    "entry {:?}: GNU sparse files are not supported",
                    String::from_utf8_lossy(raw_path)
                )))
            }
            // Unknown vendor types carry no file; skipping matches Docker.
            _ => return Ok(()),
        }
        self.apply_meta(&path, &meta, kind == EntryType::Symlink)
    }

    /// Create missing parent directories under the root, refusing to pass through anything
    /// that is not a real directory (a symlink there could point outside).
    fn make_parents(&self, parents: &[&OsStr]) -> Result<PathBuf, ImageError> {
        let mut p = self.root.clone();
        for c in parents {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(self.err(format!(
                        "parent /{} of an entry is not a directory (symlink or file); refusing to write through it",
                        p.strip_prefix(&self.root).unwrap_or(&p).display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => self.mkdir(&p)?,
                Err(e) => return Err(self.io_err("stat", &p, e)),
            }
        }
        Ok(p)
    }

    /// The path of something already unpacked, reached only through real directories.
    fn existing(&self, comps: &[&OsStr]) -> Result<PathBuf, String> {
        let Some((last, parents)) = comps.split_last() else {
            return Err("target is the layer root".into());
        };
        let mut p = self.root.clone();
        for c in parents {
            p.push(c);
            match fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {}
                _ => return Err("target's parent is not a directory in this layer".into()),
            }
        }
        p.push(last);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => Err("target is a directory".into()),
            Ok(_) => Ok(p),
            Err(_) => Err("target does not exist in this layer".into()),
        }
    }

    fn mkdir(&self, p: &Path) -> Result<(), ImageError> {
        fs::create_dir(p).map_err(|e| self.io_err("mkdir", p, e))?;
        fs::set_permissions(p, fs::Permissions::from_mode(0o755))
            .map_err(|e| self.io_err("chmod", p, e))
    }

    /// A later entry replaces an earlier one with the same name, as Docker does.
    fn remove_existing(&self, p: &Path) -> Result<(), ImageError> {
        match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(p).map_err(|e| self.io_err("remove", p, e)),
            Ok(_) => fs::remove_file(p).map_err(|e| self.io_err("remove", p, e)),
            Err(_) => Ok(()),
        }
    }

    fn apply_meta(&self, p: &Path, m: &Meta, is_symlink: bool) -> Result<(), ImageError> {
        let uid = u32::try_from(m.uid).map_err(|_| self.err(format!("uid {} too large", m.uid)))?;
        let gid = u32::try_from(m.gid).map_err(|_| self.err(format!("gid {} too large", m.gid)))?;
        std::os::unix::fs::lchown(p, Some(uid), Some(gid))
            .map_err(|e| self.io_err("chown", p, e))?;
        for (k, v) in &m.xattrs {
            // trusted.overlay.* would let a layer forge whiteouts or redirects for overlayfs.
            if k.starts_with(b"trusted.") {
                continue;
            }
            match self.set_xattr(p, k, v) {
                Ok(()) => {}
                Err(_) if is_symlink => {}
                Err(e) => return Err(e),
            }
        }
        if !is_symlink {
            // After chown, which clears setuid/setgid bits.
            fs::set_permissions(p, fs::Permissions::from_mode(m.mode))
                .map_err(|e| self.io_err("chmod", p, e))?;
        }
        let t = TimeSpec::new(m.mtime, 0);
        nix::sys::stat::utimensat(
            None,
            p,
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .map_err(|e| self.io_err("set mtime", p, e))
    }

    fn set_xattr(&self, p: &Path, name: &[u8], value: &[u8]) -> Result<(), ImageError> {
        let cpath = CString::new(p.as_os_str().as_bytes())
            .map_err(|_| self.err(format!("path {} contains NUL", p.display())))?;
        let cname =
            CString::new(name).map_err(|_| self.err("xattr name contains NUL".to_string()))?;
        // SAFETY: both strings are NUL-terminated CStrings that outlive the call; value is a
        // valid slice of value.len() bytes.
        let rc = unsafe {
            libc::lsetxattr(
                cpath.as_ptr(),
                cname.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOTSUP) && !name.starts_with(b"trusted.") {
                return Ok(());
            }
            return Err(self.io_err(
                &format!("set xattr {}", String::from_utf8_lossy(name)),
                p,
                e,
            ));
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<(), ImageError> {
        let dirs = std::mem::take(&mut self.dirs);
        for (p, m) in dirs.iter().rev() {
            self.apply_meta(p, m, false)?;
        }
        Ok(())
    }
}

/// Split an entry path into safe components: `.` and empty parts dropped, a leading `/`
/// re-rooted (as Docker does), `..` refused.
pub(super) fn normalize(raw: &[u8]) -> Result<Vec<&OsStr>, String> {
    if raw.len() > MAX_PATH {
        return Err(format!("path longer than {MAX_PATH} bytes"));
    }
    if raw.contains(&0) {
        return Err("path contains NUL".into());
    }
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path escapes the layer (\"..\")".into()),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    while v.last() == Some(&0) {
        v.pop();
    }
    v
}

/// PAX records: `<len> <key>=<value>\n`, where len counts the whole record.
fn parse_pax(buf: &[u8]) -> Result<HashMap<String, Vec<u8>>, String> {
    let mut out = HashMap::new();
    let mut rest = buf;
    while !rest.is_empty() {
        if rest.iter().all(|b| *b == 0) {
            break;
        }
        let sp = rest
            .iter()
            .position(|b| *b == b' ')
            .ok_or("malformed PAX record (no length)")?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or("malformed PAX record length")?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return Err("malformed PAX record".into());
        }
        let record = &rest[sp + 1..len - 1];
        let eq = record
            .iter()
            .position(|b| *b == b'=')
            .ok_or("malformed PAX record (no '=')")?;
        let key = String::from_utf8_lossy(&record[..eq]).into_owned();
        out.insert(key, record[eq + 1..].to_vec());
        rest = &rest[len..];
    }
    Ok(out)
}
