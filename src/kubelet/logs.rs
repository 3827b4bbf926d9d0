//! Reading a container's CRI log file (`<timestamp> <stream> <F|P> <content>` lines, as the
//! shim writes them) back as the plain text `kubectl logs` shows: tailLines, sinceTime,
//! timestamps, limitBytes, and follow (including across the shim's rotation of the file).
//! It reads files only; whether the container still runs is asked of the caller.

use bytes::Bytes;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

/// What `kubectl logs` asked for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub tail_lines: Option<usize>,
    pub timestamps: bool,
    pub since: Option<jiff::Timestamp>,
    pub limit_bytes: Option<u64>,
}

/// One parsed CRI log record.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    pub time: &'a str,
    pub stream: &'a str,
    pub partial: bool,
    pub content: &'a str,
}

pub fn parse(line: &str) -> Option<Record<'_>> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?;
    let stream = it.next()?;
    let tag = it.next()?;
    let content = it.next().unwrap_or("");
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    Some(Record {
        time,
        stream,
        partial: tag == "P",
        content,
    })
}

/// The container's log files under `dir` (`<restart>.log`), newest restart last.
pub fn files(dir: &Path) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            let n = p
                .file_name()?
                .to_str()?
                .strip_suffix(".log")?
                .parse()
                .ok()?;
            Some((n, p))
        })
        .collect();
    out.sort();
    out
}

/// Render records as `kubectl logs` prints them: partial records joined, a newline after
/// each full one, the timestamp in front when asked.
fn render(lines: &[&str], opts: &LogOptions, out: &mut Vec<u8>) {
    let mut line_start = true;
    for l in lines {
        let Some(r) = parse(l) else { continue };
        if let Some(since) = opts.since {
            if r.time.parse::<jiff::Timestamp>().is_ok_and(|t| t < since) {
                continue;
            }
        }
        if opts.timestamps && line_start {
            out.extend_from_slice(r.time.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(r.content.as_bytes());
        if !r.partial {
            out.push(b'\n');
        }
        line_start = !r.partial;
    }
}

/// The last `n` full log lines (partial records count with the line they end in).
fn tail(lines: Vec<&str>, n: usize) -> Vec<&str> {
    let mut full = 0;
    let mut start = lines.len();
    for (i, l) in lines.iter().enumerate().rev() {
        let partial = parse(l).is_some_and(|r| r.partial);
        if !partial {
            if full == n {
                break;
            }
            full += 1;
        }
        start = i;
    }
    lines[start..].to_vec()
}

/// Send the log at `path` to `tx` per `opts`. With `follow`, keep sending what is appended
/// until `running` says the container has stopped and everything is sent.
pub async fn stream<F, Fut>(path: PathBuf, opts: LogOptions, tx: mpsc::Sender<Bytes>, running: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut sent: u64 = 0;
    let limit = opts.limit_bytes.unwrap_or(u64::MAX);
    let send = |sent: &mut u64, mut chunk: Vec<u8>| {
        let room = limit.saturating_sub(*sent) as usize;
        chunk.truncate(room);
        *sent += chunk.len() as u64;
        chunk
    };
    let Ok(mut file) = std::fs::File::open(&path) else {
        return;
    };
    let mut text = String::new();
    if file.read_to_string(&mut text).is_err() {
        return;
    }
    // Only whole lines are rendered; a line being written is picked up on the next read.
    let complete = text.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let mut offset = complete as u64;
    let mut inode = file.metadata().map(|m| m.ino()).unwrap_or(0);
    let lines: Vec<&str> = text[..complete].lines().collect();
    let lines = match opts.tail_lines {
        Some(n) => tail(lines, n),
        None => lines,
    };
    let mut out = Vec::new();
    render(&lines, &opts, &mut out);
    let out = send(&mut sent, out);
    if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
        return;
    }
    if !opts.follow {
        return;
    }
    let mut idle_checks = 0u32;
    loop {
        if sent >= limit {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Rotation: the shim renamed the file and started a new one at the same path.
        if let Ok(meta) = std::fs::metadata(&path) {
            if meta.ino() != inode {
                if let Ok(f) = std::fs::File::open(&path) {
                    inode = meta.ino();
                    file = f;
                    offset = 0;
                }
            }
        }
        let mut buf = String::new();
        if file.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = file.read_to_string(&mut buf);
        }
        let complete = buf.rfind('\n').map(|i| i + 1).unwrap_or(0);
        if complete > 0 {
            offset += complete as u64;
            let lines: Vec<&str> = buf[..complete].lines().collect();
            let mut out = Vec::new();
            render(&lines, &opts, &mut out);
            let out = send(&mut sent, out);
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
            idle_checks = 0;
        } else {
            if tx.is_closed() {
                return;
            }
            idle_checks += 1;
            // Ask about the container only now and then; the log goes quiet first.
            if idle_checks.is_multiple_of(10) && !running().await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "2026-01-01T00:00:01.000000000Z stdout F one\n2026-01-01T00:00:02.000000000Z stderr P tw\n2026-01-01T00:00:02.100000000Z stderr F o\n2026-01-01T00:00:03.000000000Z stdout F three\n";

    async fn read(opts: LogOptions) -> String {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, LOG).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        stream(p, opts, tx, || async { false }).await;
        let mut out = Vec::new();
        while let Some(b) = rx.recv().await {
            out.extend_from_slice(&b);
        }
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn renders_tails_filters_and_limits() {
        assert_eq!(read(LogOptions::default()).await, "one\ntwo\nthree\n");
        let tail2 = LogOptions {
            tail_lines: Some(2),
            ..Default::default()
        };
        assert_eq!(read(tail2).await, "two\nthree\n");
        let ts = LogOptions {
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        assert_eq!(read(ts).await, "2026-01-01T00:00:03.000000000Z three\n");
        let since = LogOptions {
            since: Some("2026-01-01T00:00:02.5Z".parse().unwrap()),
            ..Default::default()
        };
        assert_eq!(read(since).await, "three\n");
        let limit = LogOptions {
            limit_bytes: Some(5),
            ..Default::default()
        };
        assert_eq!(read(limit).await, "one\nt");
        let none = LogOptions {
            tail_lines: Some(0),
            ..Default::default()
        };
        assert_eq!(read(none).await, "");
    }

    #[tokio::test]
    async fn follow_sees_appends_and_rotation_then_ends() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        std::fs::write(&p, "2026-01-01T00:00:01Z stdout F a\n").unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let running = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r = running.clone();
        let task = tokio::spawn(stream(
            p.clone(),
            LogOptions {
                follow: true,
                ..Default::default()
            },
            tx,
            move || {
                let r = r.clone();
                async move { r.load(std::sync::atomic::Ordering::SeqCst) }
            },
        ));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from("a\n"));
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(b"2026-01-01T00:00:02Z stdout F b\n").unwrap();
        assert_eq!(rx.recv().await.unwrap(), Bytes::from("b\n"));
        std::fs::rename(&p, dir.path().join("0.log.1")).unwrap();
        std::fs::write(&p, "2026-01-01T00:00:03Z stdout F c\n").unwrap();
        assert_eq!(rx.recv().await.unwrap(), Bytes::from("c\n"));
        running.store(false, std::sync::atomic::Ordering::SeqCst);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(rx.recv().await.is_none());
    }

    #[test]
    fn hostile_lines_are_skipped() {
        assert!(parse("garbage").is_none());
        assert!(parse("t stdin F x").is_none());
        assert_eq!(parse("t stdout F").unwrap().content, "");
    }
}
