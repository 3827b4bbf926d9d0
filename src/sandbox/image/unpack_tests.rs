//! Tests of layer unpacking: every entry type and whiteout, and hostile archives (`..`,
//! absolute paths, links out of the layer, symlinked parents, oversized header extensions,
//! malformed PAX, garbage) that must fail with a clear error and write nothing outside.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};
use tar::{EntryType, Header};

use super::unpack::{decompress, unpack_layer};

fn hdr() -> Header {
    let mut h = Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_mode(0o644);
    h
}

/// Append an entry with an arbitrary (unvalidated) name, as a hostile archive would.
fn raw_entry(out: &mut Vec<u8>, name: &[u8], kind: EntryType, data: &[u8], link: Option<&[u8]>) {
    let mut h = hdr();
    {
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            old.linkname[..l.len()].copy_from_slice(l);
        }
    }
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

fn finish(mut v: Vec<u8>) -> Vec<u8> {
    v.extend(std::iter::repeat_n(0u8, 1024));
    v
}

struct Sandbox {
    _tmp: tempfile::TempDir,
    outer: std::path::PathBuf,
    dest: std::path::PathBuf,
}

fn sandbox() -> Sandbox {
    let tmp = tempfile::tempdir().unwrap();
    let outer = tmp.path().join("outer");
    let dest = outer.join("layer");
    fs::create_dir_all(&dest).unwrap();
    Sandbox {
        _tmp: tmp,
        outer,
        dest,
    }
}

/// Everything under `dir` except the layer dir itself.
fn outside_entries(outer: &Path) -> Vec<String> {
    fs::read_dir(outer)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "layer")
        .collect()
}

#[test]
fn unpacks_every_entry_type() {
    let mut b = tar::Builder::new(Vec::new());
    let mut dir = hdr();
    dir.set_entry_type(EntryType::Directory);
    dir.set_mode(0o750);
    dir.set_uid(1000);
    dir.set_gid(1001);
    dir.set_mtime(1_500_000_000);
    dir.set_size(0);
    b.append_data(&mut dir, "etc/", &[][..]).unwrap();
    let mut file = hdr();
    file.set_mode(0o4755);
    file.set_uid(7);
    file.set_gid(8);
    file.set_mtime(1_400_000_000);
    file.set_size(5);
    b.append_data(&mut file, "etc/hello", &b"hello"[..])
        .unwrap();
    let long = format!("deep/{}/file", "x".repeat(150));
    let mut lf = hdr();
    lf.set_mode(0o644);
    lf.set_size(2);
    b.append_data(&mut lf, &long, &b"hi"[..]).unwrap();
    let mut sl = hdr();
    sl.set_entry_type(EntryType::Symlink);
    sl.set_size(0);
    b.append_link(&mut sl, "etc/abs-link", "/etc/passwd")
        .unwrap();
    let mut hl = hdr();
    hl.set_entry_type(EntryType::Link);
    hl.set_size(0);
    b.append_link(&mut hl, "etc/hard", "etc/hello").unwrap();
    let mut fifo = hdr();
    fifo.set_entry_type(EntryType::Fifo);
    fifo.set_mode(0o600);
    fifo.set_size(0);
    b.append_data(&mut fifo, "run/fifo", &[][..]).unwrap();
    let mut wh = hdr();
    wh.set_size(0);
    wh.set_mode(0o600);
    b.append_data(&mut wh, "etc/.wh.gone", &[][..]).unwrap();
    b.append_data(&mut wh.clone(), "opq/.wh..wh..opq", &[][..])
        .unwrap();
    let tar = b.into_inner().unwrap();

    let s = sandbox();
    let out = unpack_layer(&tar[..], &s.dest, "test").unwrap();
    assert_eq!(out.diff_id, format!("sha256:{:x}", Sha256::digest(&tar)));
    assert_eq!(out.size, 7);
    let d = &s.dest;
    let etc = fs::metadata(d.join("etc")).unwrap();
    assert_eq!(
        (etc.mode() & 0o7777, etc.uid(), etc.gid()),
        (0o750, 1000, 1001)
    );
    assert_eq!(etc.mtime(), 1_500_000_000);
    let hello = fs::metadata(d.join("etc/hello")).unwrap();
    assert_eq!(
        (hello.mode() & 0o7777, hello.uid(), hello.gid()),
        (0o4755, 7, 8)
    );
    assert_eq!(hello.mtime(), 1_400_000_000);
    assert_eq!(hello.nlink(), 2);
    assert_eq!(fs::metadata(d.join("etc/hard")).unwrap().ino(), hello.ino());
    assert_eq!(fs::read(d.join(&long)).unwrap(), b"hi");
    assert_eq!(
        fs::read_link(d.join("etc/abs-link")).unwrap(),
        Path::new("/etc/passwd")
    );
    assert!(fs::symlink_metadata(d.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let gone = fs::symlink_metadata(d.join("etc/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    let mut buf = [0u8; 8];
    let n = xattr_get(&d.join("opq"), "trusted.overlay.opaque", &mut buf);
    assert_eq!(&buf[..n], b"y");
}

fn xattr_get(p: &Path, name: &str, buf: &mut [u8]) -> usize {
    let cp = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    let cn = std::ffi::CString::new(name).unwrap();
    // SAFETY: valid C strings and a buffer of buf.len() bytes.
    let n =
        unsafe { libc::lgetxattr(cp.as_ptr(), cn.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "getxattr {name} on {}", p.display());
    n as usize
}

#[test]
fn refuses_dotdot_paths() {
    let s = sandbox();
    let mut t = Vec::new();
    raw_entry(&mut t, b"../evil", EntryType::Regular, b"x", None);
    let err = unpack_layer(&finish(t)[..], &s.dest, "L")
        .unwrap_err()
        .to_string();
    assert!(err.contains("escapes the layer"), "{err}");
    assert!(err.contains("layer L"), "{err}");
    assert!(outside_entries(&s.outer).is_empty());

    let mut t = Vec::new();
    raw_entry(&mut t, b"a/../../evil2", EntryType::Regular, b"x", None);
    assert!(unpack_layer(&finish(t)[..], &s.dest, "L").is_err());
    assert!(outside_entries(&s.outer).is_empty());
}

#[test]
fn reroots_absolute_paths() {
    let s = sandbox();
    let mut t = Vec::new();
    let name = format!("{}/abs/file", s.outer.display());
    raw_entry(&mut t, name.as_bytes(), EntryType::Regular, b"x", None);
    unpack_layer(&finish(t)[..], &s.dest, "L").unwrap();
    assert!(s.dest.join(name.trim_start_matches('/')).is_file());
    assert!(!s.outer.join("abs").exists());
}

#[test]
fn refuses_writing_through_symlinks() {
    let s = sandbox();
    let outside = s.outer.to_str().unwrap().as_bytes().to_vec();
    let mut t = Vec::new();
    raw_entry(&mut t, b"escape", EntryType::Symlink, b"", Some(&outside));
    raw_entry(&mut t, b"escape/pwned", EntryType::Regular, b"x", None);
    let err = unpack_layer(&finish(t)[..], &s.dest, "L")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a directory"), "{err}");
    assert!(outside_entries(&s.outer).is_empty());

    let mut t = Vec::new();
    raw_entry(&mut t, b"rel", EntryType::Symlink, b"", Some(b"../.."));
    raw_entry(&mut t, b"rel/x/pwned", EntryType::Directory, b"", None);
    assert!(unpack_layer(&finish(t)[..], &s.dest, "L").is_err());
    assert!(outside_entries(&s.outer).is_empty());
}

#[test]
fn refuses_hardlinks_out_of_the_layer() {
    let s = sandbox();
    fs::write(s.outer.join("secret"), "s").unwrap();
    for target in [&b"../secret"[..], b"/etc/passwd", b"missing"] {
        let mut t = Vec::new();
        raw_entry(&mut t, b"link", EntryType::Link, b"", Some(target));
        let err = unpack_layer(&finish(t)[..], &s.dest, "L")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hardlink"), "{err}");
    }
    // A hardlink through a symlinked parent is refused as well.
    let mut t = Vec::new();
    let outside = s.outer.to_str().unwrap().as_bytes().to_vec();
    raw_entry(&mut t, b"sym", EntryType::Symlink, b"", Some(&outside));
    raw_entry(&mut t, b"link", EntryType::Link, b"", Some(b"sym/secret"));
    let err = unpack_layer(&finish(t)[..], &s.dest, "L")
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a directory in this layer"), "{err}");
    assert_eq!(fs::metadata(s.outer.join("secret")).unwrap().nlink(), 1);
}

#[test]
fn refuses_oversized_header_extensions() {
    let s = sandbox();
    for kind in [EntryType::GNULongName, EntryType::XHeader] {
        let mut h = hdr();
        h.set_entry_type(kind);
        h.set_size(1 << 40);
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.extend(std::iter::repeat_n(0u8, 4096));
        let err = unpack_layer(&t[..], &s.dest, "L").unwrap_err().to_string();
        assert!(err.contains("exceeds"), "{err}");
    }
    let mut t = Vec::new();
    raw_entry(&mut t, b"pax", EntryType::XHeader, b"99999 path=x\n", None);
    raw_entry(&mut t, b"f", EntryType::Regular, b"", None);
    let err = unpack_layer(&finish(t)[..], &s.dest, "L")
        .unwrap_err()
        .to_string();
    assert!(err.contains("malformed PAX"), "{err}");
}

#[test]
fn pax_paths_and_bad_archives() {
    let s = sandbox();
    let mut t = Vec::new();
    let body = "22 path=pax/long/name\n";
    assert_eq!(body.len(), 22);
    raw_entry(
        &mut t,
        b"ignored",
        EntryType::XHeader,
        body.as_bytes(),
        None,
    );
    raw_entry(&mut t, b"short", EntryType::Regular, b"data", None);
    unpack_layer(&finish(t)[..], &s.dest, "L").unwrap();
    assert_eq!(fs::read(s.dest.join("pax/long/name")).unwrap(), b"data");

    let err = unpack_layer(&vec![7u8; 2048][..], &s.dest, "L")
        .unwrap_err()
        .to_string();
    assert!(err.contains("corrupt tar"), "{err}");

    let err = match decompress(&[0x28u8, 0xb5, 0x2f, 0xfd, 0][..], "L") {
        Err(e) => e.to_string(),
        Ok(_) => panic!("zstd accepted"),
    };
    assert!(err.contains("zstd"), "{err}");
}

#[test]
fn gzip_layers_hash_the_uncompressed_stream() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = hdr();
    h.set_size(3);
    h.set_mode(0o644);
    b.append_data(&mut h, "a", &b"abc"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let s = sandbox();
    let out = unpack_layer(decompress(&gz[..], "L").unwrap(), &s.dest, "L").unwrap();
    assert_eq!(out.diff_id, format!("sha256:{:x}", Sha256::digest(&tar)));
    assert_eq!(
        fs::metadata(s.dest.join("a")).unwrap().permissions().mode() & 0o777,
        0o644
    );
}
