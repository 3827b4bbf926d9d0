//! CRI-format container log files, written by the shim from the containers' stdout/stderr
//! pipes, and rotated the way kubelet does it.
//!
//! Line format (what kubelet's `kubectl logs` reader parses):
//! `2026-01-02T03:04:05.123456789Z stdout F hello`. `F` closes a line; `P` is a fragment of a
//! longer one (over 16 KiB, or cut by EOF). Rotation renames `0.log` to
//! `0.log.<YYYYMMDD-hhmmss>` and keeps `max_files` files including the current one.
//! This module never reads pipes or decides when to: the shim's loop hands it chunks.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::protocol::LogLimits;

/// Longest line kept whole; longer ones are split into `P` records, as containerd does.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("container log {path}: {source}")]
pub struct LogError {
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// One container's log file and the unfinished line of each stream.
#[derive(Debug)]
pub struct ContainerLog {
    path: PathBuf,
    file: File,
    size: u64,
    limits: LogLimits,
    pending: [Vec<u8>; 2],
}

impl ContainerLog {
    /// Opens (appends to) `path`, creating its directory.
    pub fn open(path: &Path, limits: LogLimits) -> Result<Self, LogError> {
        let err = |source| LogError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let file = open_append(path).map_err(err)?;
        let size = file.metadata().map_err(err)?.len();
        Ok(ContainerLog {
            path: path.to_path_buf(),
            file,
            size,
            limits,
            pending: [Vec::new(), Vec::new()],
        })
    }

    /// Appends one chunk read from a stream, timestamped `now`.
    pub fn write_chunk(&mut self, stream: Stream, chunk: &[u8], now: &str) -> Result<(), LogError> {
        let mut out = Vec::with_capacity(chunk.len() + 64);
        let pending = &mut self.pending[stream as usize];
        let mut rest = chunk;
        while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
            pending.extend_from_slice(&rest[..nl]);
            emit(&mut out, now, stream, pending, true);
            rest = &rest[nl + 1..];
        }
        pending.extend_from_slice(rest);
        self.write_records(out)
    }

    /// The stream ended: what is left of its line is written as a fragment.
    pub fn finish(&mut self, stream: Stream, now: &str) -> Result<(), LogError> {
        let mut out = Vec::new();
        let pending = &mut self.pending[stream as usize];
        if !pending.is_empty() {
            emit(&mut out, now, stream, pending, false);
        }
        self.write_records(out)
    }

    fn write_records(&mut self, mut out: Vec<u8>) -> Result<(), LogError> {
        // Lines that outgrew the limit without a newline go out as fragments now, so memory
        // stays bounded whatever the container writes.
        for (i, stream) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            while self.pending[i].len() >= MAX_LINE_BYTES {
                let head: Vec<u8> = self.pending[i].drain(..MAX_LINE_BYTES).collect();
                let now = timestamp();
                record(&mut out, &now, stream, "P", &head);
            }
        }
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LogError { path, source }
        };
        // One pipe read can expand into many records (a timestamp per short line), so the
        // size limit is checked between records, not per chunk.
        let mut rest = &out[..];
        while !rest.is_empty() {
            let room = self.limits.max_size_bytes.saturating_sub(self.size) as usize;
            let mut cut = 0;
            while cut < rest.len() {
                let end = rest[cut..]
                    .iter()
                    .position(|b| *b == b'\n')
                    .map_or(rest.len(), |p| cut + p + 1);
                if cut > 0 && end > room {
                    break;
                }
                cut = end;
                if cut >= room {
                    break;
                }
            }
            self.file
                .write_all(&rest[..cut])
                .map_err(io_err(&self.path))?;
            self.size += cut as u64;
            rest = &rest[cut..];
            if self.size >= self.limits.max_size_bytes {
                self.rotate().map_err(io_err(&self.path))?;
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let stamp = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S").to_string();
        let mut rotated = suffixed(&self.path, &stamp);
        // Several rotations in one second (a tiny limit, a chatty container) must not
        // overwrite each other.
        if rotated.exists() {
            let fine = jiff::Timestamp::now()
                .strftime("%Y%m%d-%H%M%S.%6f")
                .to_string();
            rotated = suffixed(&self.path, &fine);
        }
        std::fs::rename(&self.path, &rotated)?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.prune()
    }

    /// Deletes the oldest rotated files beyond `max_files - 1`.
    fn prune(&self) -> io::Result<()> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(());
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path())
            .collect();
        // The stamp sorts by time, oldest first.
        rotated.sort();
        let keep = self.limits.max_files.saturating_sub(1);
        let excess = rotated.len().saturating_sub(keep);
        for old in &rotated[..excess] {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn emit(out: &mut Vec<u8>, now: &str, stream: Stream, pending: &mut Vec<u8>, full: bool) {
    let mut line: &[u8] = pending;
    while line.len() > MAX_LINE_BYTES {
        record(out, now, stream, "P", &line[..MAX_LINE_BYTES]);
        line = &line[MAX_LINE_BYTES..];
    }
    record(out, now, stream, if full { "F" } else { "P" }, line);
    pending.clear();
}

fn record(out: &mut Vec<u8>, now: &str, stream: Stream, tag: &str, content: &[u8]) {
    out.extend_from_slice(now.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.push(b' ');
    out.extend_from_slice(tag.as_bytes());
    out.push(b' ');
    out.extend_from_slice(content);
    out.push(b'\n');
}

/// RFC 3339 in UTC with nanoseconds, the CRI log timestamp.
pub fn timestamp() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-02T03:04:05.123456789Z";

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn timestamp_is_rfc3339_nanos() {
        let ts = timestamp();
        assert_eq!(ts.len(), NOW.len(), "{ts}");
        assert!(ts.ends_with('Z'));
        ts.parse::<jiff::Timestamp>().unwrap();
    }

    #[test]
    fn lines_are_split_and_tagged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c/0.log");
        let mut log = ContainerLog::open(&path, LogLimits::default()).unwrap();
        log.write_chunk(Stream::Stdout, b"hello\nwor", NOW).unwrap();
        log.write_chunk(Stream::Stderr, b"oops\n", NOW).unwrap();
        log.write_chunk(Stream::Stdout, b"ld\n\ntail", NOW).unwrap();
        log.finish(Stream::Stdout, NOW).unwrap();
        assert_eq!(
            read(&path),
            format!(
                "{NOW} stdout F hello\n{NOW} stderr F oops\n{NOW} stdout F world\n\
                 {NOW} stdout F \n{NOW} stdout P tail\n"
            )
        );
    }

    #[test]
    fn long_lines_become_partials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let mut log = ContainerLog::open(&path, LogLimits::default()).unwrap();
        let mut big = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        big.push(b'\n');
        log.write_chunk(Stream::Stdout, &big, NOW).unwrap();
        // A line with no newline at all is flushed once it reaches the limit.
        log.write_chunk(Stream::Stderr, &vec![b'y'; MAX_LINE_BYTES + 1], NOW)
            .unwrap();
        let text = read(&path);
        let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["P", "P", "F", "P"]);
        assert!(text
            .lines()
            .all(|l| l.len() <= NOW.len() + 10 + MAX_LINE_BYTES));
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.log");
        let limits = LogLimits {
            max_size_bytes: 200,
            max_files: 3,
        };
        let mut log = ContainerLog::open(&path, limits).unwrap();
        for i in 0..50 {
            log.write_chunk(Stream::Stdout, format!("line {i}\n").as_bytes(), NOW)
                .unwrap();
        }
        log.write_chunk(Stream::Stdout, b"last\n", NOW).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.contains(&"0.log".to_string()));
        assert!(read(&path).ends_with("stdout F last\n"));
        // A single chunk of many short lines still rotates at the limit.
        let many: String = (0..1000).map(|i| format!("{i}\n")).collect();
        log.write_chunk(Stream::Stdout, many.as_bytes(), NOW)
            .unwrap();
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let len = e.unwrap().metadata().unwrap().len();
            assert!(len < 200 + 64, "{len}");
        }
        assert!(names.iter().all(|n| n.starts_with("0.log")));
    }
}
