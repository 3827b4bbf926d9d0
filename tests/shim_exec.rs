//! The shim's exec and attach with real containers, as root: stdio pipes and fds passed
//! over the socket, a pty with its size, exit codes, attach to a container's stdin/stdout.

mod shim_support;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k1s::sandbox::shim::session::{self, Fds};
use k1s::sandbox::shim::{ErrorKind, ExecProcess, ShimClient, Stdio};
use shim_support::*;

const T: Duration = Duration::from_secs(10);

fn take(fds: &mut Fds, name: Stdio) -> File {
    let i = fds.iter().position(|(n, _)| *n == name).unwrap_or_else(|| {
        panic!(
            "no {name:?} in {:?}",
            fds.iter().map(|f| f.0).collect::<Vec<_>>()
        )
    });
    File::from(fds.remove(i).1)
}

fn read_all(mut f: File) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            // A pty master reads EIO once the last slave is closed.
            Err(e) if e.raw_os_error() == Some(libc::EIO) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("read: {e}"),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn process(exec_id: &str, script: &str, tty: bool, stdin: bool) -> ExecProcess {
    ExecProcess {
        exec_id: exec_id.into(),
        args: vec!["/bin/sh".into(), "-c".into(), script.into()],
        tty,
        stdin,
    }
}

async fn running(pod: &mut Pod, rootfs: &Rootfs, stdin: bool, script: &str) -> Result<ShimClient> {
    let mut c = pod.spawn().await?;
    let mut spec = pod.spec(rootfs, "app", script);
    spec.stdin = stdin;
    c.create(&spec, &pod.log_path("app"), None).await?;
    c.start("app").await?;
    Ok(c)
}

#[tokio::test]
async fn exec_with_pipes_gets_stdin_output_and_exit_code() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("exec")?;
    let mut c = running(&mut pod, &rootfs, false, "exec sleep 1000").await?;
    let dir = pod.dir.path().to_path_buf();

    let script = "read x; echo got=$x; echo err >&2; echo env=$PATH; exit 7";
    let (s, mut fds) = session::exec(&dir, "app", process("e1", script, false, true)).await?;
    assert!(s.pid > 0);
    let mut stdin = take(&mut fds, Stdio::Stdin);
    let stdout = take(&mut fds, Stdio::Stdout);
    let stderr = take(&mut fds, Stdio::Stderr);
    stdin.write_all(b"hi\n")?;
    drop(stdin);
    let (out, err) =
        tokio::task::spawn_blocking(move || (read_all(stdout), read_all(stderr))).await?;
    assert_eq!(out, "got=hi\nenv=/bin\n", "the container's env is the base");
    assert_eq!(err, "err\n");
    assert_eq!(tokio::time::timeout(T, s.wait()).await??, 7);

    // Without stdin the process reads /dev/null; and the shim keeps no copy of the ends.
    let (s, mut fds) =
        session::exec(&dir, "app", process("e2", "cat; echo done", false, false)).await?;
    assert!(fds.iter().all(|(n, _)| *n != Stdio::Stdin));
    let out = take(&mut fds, Stdio::Stdout);
    assert_eq!(
        tokio::task::spawn_blocking(move || read_all(out)).await?,
        "done\n"
    );
    assert_eq!(tokio::time::timeout(T, s.wait()).await??, 0);

    // Killed by a signal: 128+n. The exec's output never reaches the container's log.
    let (s, _fds) = session::exec(&dir, "app", process("e3", "kill -9 $$", false, false)).await?;
    assert_eq!(tokio::time::timeout(T, s.wait()).await??, 137);
    assert!(!pod.log("app").contains("got="), "{}", pod.log("app"));

    // Round trip of a trivial exec, for the report.
    let start = Instant::now();
    let n = 10;
    for i in 0..n {
        let (s, mut fds) = session::exec(
            &dir,
            "app",
            process(&format!("t{i}"), "echo hi", false, false),
        )
        .await?;
        let out = take(&mut fds, Stdio::Stdout);
        assert_eq!(
            tokio::task::spawn_blocking(move || read_all(out)).await?,
            "hi\n"
        );
        s.wait().await?;
    }
    eprintln!(
        "exec round trip (shim level): {:?} per exec",
        start.elapsed() / n
    );

    assert_eq!(c.state().await?.len(), 1, "execs are not containers");
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn exec_with_a_tty_is_a_controlling_terminal_that_resizes() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("tty")?;
    let c = running(&mut pod, &rootfs, false, "exec sleep 1000").await?;
    let dir = pod.dir.path().to_path_buf();
    let script = "read x; echo x=$x; tty; stty size; exit 2";
    let (s, mut fds) = session::exec(&dir, "app", process("t1", script, true, true)).await?;
    assert_eq!(fds.len(), 1);
    let mut pty = take(&mut fds, Stdio::Pty);
    let ws = libc::winsize {
        ws_row: 33,
        ws_col: 101,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer; the fd is ours.
    let rc = unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    assert_eq!(rc, 0);
    pty.write_all(b"go\n")?;
    let out = tokio::task::spawn_blocking(move || read_all(pty)).await?;
    assert!(out.contains("x=go"), "{out:?}");
    assert!(out.contains("/dev/pts/"), "{out:?}");
    assert!(out.contains("33 101"), "{out:?}");
    assert_eq!(tokio::time::timeout(T, s.wait()).await??, 2);
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn exec_errors_name_the_problem_and_the_shim_keeps_serving() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("execerr")?;
    let mut c = running(&mut pod, &rootfs, false, "exit 0").await?;
    wait_exit(&mut c, "app", T).await?;
    let dir = pod.dir.path().to_path_buf();
    let kind = |r: Result<(session::ExecSession, Fds), k1s::sandbox::shim::ShimError>| {
        r.err().and_then(|e| e.kind())
    };
    let r = session::exec(&dir, "app", process("a", "true", false, false)).await;
    assert_eq!(kind(r), Some(ErrorKind::InvalidState));
    let r = session::exec(&dir, "nope", process("b", "true", false, false)).await;
    assert_eq!(kind(r), Some(ErrorKind::NotFound));
    let r = session::exec(&dir, "app", process("../x", "true", false, false)).await;
    assert_eq!(kind(r), Some(ErrorKind::BadRequest));
    let mut p = process("c", "true", false, false);
    p.args.clear();
    assert_eq!(
        kind(session::exec(&dir, "app", p).await),
        Some(ErrorKind::BadRequest)
    );
    let err = session::attach(&dir, "app").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidState), "{err}");
    c.ping().await?;
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn attach_writes_stdin_and_reads_live_output() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("attach")?;
    let script =
        r#"while read l; do [ "$l" = quit ] && exit 0; echo out:$l; echo err:$l >&2; done"#;
    let c = running(&mut pod, &rootfs, true, script).await?;
    let dir = pod.dir.path().to_path_buf();
    let mut fds = session::attach(&dir, "app").await?;
    let mut stdin = take(&mut fds, Stdio::Stdin);
    let stdout = take(&mut fds, Stdio::Stdout);
    let stderr = take(&mut fds, Stdio::Stderr);
    // A second attacher sees the same output.
    let mut fds2 = session::attach(&dir, "app").await?;
    let stdout2 = take(&mut fds2, Stdio::Stdout);
    drop(fds2);

    stdin.write_all(b"one\ntwo\n")?;
    drop(stdin);
    // Not stdinOnce: the shim keeps the container's stdin open for the next attacher.
    let mut fds3 = session::attach(&dir, "app").await?;
    let mut stdin3 = take(&mut fds3, Stdio::Stdin);
    stdin3.write_all(b"three\nquit\n")?;
    drop(stdin3);
    drop(fds3);
    let reads = tokio::task::spawn_blocking(move || {
        (read_all(stdout), read_all(stderr), read_all(stdout2))
    });
    let (out, err, out2) = tokio::time::timeout(T, reads).await??;
    assert_eq!(out, "out:one\nout:two\nout:three\n");
    assert_eq!(err, "err:one\nerr:two\nerr:three\n");
    assert_eq!(out2, out);
    assert!(
        eventually(T, || pod.log("app").contains("out:three")).await,
        "live output also goes to the log: {}",
        pod.log("app")
    );
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn attach_stdin_once_closes_stdin_after_the_first_attacher() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("once")?;
    let mut c = pod.spawn().await?;
    let mut spec = pod.spec(&rootfs, "app", "cat; echo eof");
    spec.stdin = true;
    spec.stdin_once = true;
    c.create(&spec, &pod.log_path("app"), None).await?;
    c.start("app").await?;
    let mut fds = session::attach(pod.dir.path(), "app").await?;
    let mut stdin = take(&mut fds, Stdio::Stdin);
    let stdout = take(&mut fds, Stdio::Stdout);
    stdin.write_all(b"x\n")?;
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || read_all(stdout)).await?;
    assert_eq!(out, "x\neof\n");
    assert_eq!(wait_exit(&mut c, "app", T).await?.exit_code, Some(0));
    c.shutdown(Duration::from_secs(1))
        .await
        .context("shutdown")?;
    Ok(())
}
