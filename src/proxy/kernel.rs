//! The proxy's only contact with the kernel: applying an nftables transaction (`nft -f -`)
//! and deleting conntrack entries (`conntrack -D`), behind the narrow `Kernel` trait, with the
//! real implementation over the command-line tools and a recording fake for unit tests. It
//! never decides what to write; callers hand it finished text and filters.

use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::conntrack::ConntrackFilter;

const TIMEOUT: Duration = Duration::from_secs(60);
/// How much of a failing tool's stderr an error keeps.
const STDERR_MAX: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("starting {program}: {source}")]
    Spawn {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: &'static str,
        status: String,
        stderr: String,
    },
    #[error("{program} did not finish within {}s", TIMEOUT.as_secs())]
    Timeout { program: &'static str },
}

/// Applies nftables transactions and deletes conntrack entries.
pub trait Kernel: Send + Sync + 'static {
    /// Runs `script` as one nftables transaction: all of it or nothing.
    fn apply<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<(), KernelError>>;
    /// Deletes the conntrack entries `filter` matches; none matching is not an error.
    fn flush_conntrack<'a>(
        &'a self,
        filter: &'a ConntrackFilter,
    ) -> BoxFuture<'a, Result<(), KernelError>>;
    /// The listing of one chain (`nft list chain <family> <table> <chain>`), or `None` when
    /// the table or chain does not exist.
    fn list_chain<'a>(
        &'a self,
        table: &'a str,
        chain: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, KernelError>>;
}

/// The real kernel, through the `nft` and `conntrack` tools of the current network namespace.
#[derive(Debug, Default, Clone)]
pub struct NftCli;

async fn run(
    program: &'static str,
    args: &[String],
    stdin: Option<&str>,
) -> Result<std::process::Output, KernelError> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|source| KernelError::Spawn { program, source })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|source| KernelError::Spawn { program, source })?;
        drop(pipe);
    }
    tokio::time::timeout(TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| KernelError::Timeout { program })?
        .map_err(|source| KernelError::Spawn { program, source })
}

fn failed(program: &'static str, out: &std::process::Output) -> KernelError {
    let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if stderr.len() > STDERR_MAX {
        let mut cut = STDERR_MAX;
        while !stderr.is_char_boundary(cut) {
            cut -= 1;
        }
        stderr.truncate(cut);
        stderr.push_str("...");
    }
    KernelError::Failed {
        program,
        status: out.status.to_string(),
        stderr,
    }
}

impl Kernel for NftCli {
    fn apply<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<(), KernelError>> {
        Box::pin(async move {
            let out = run("nft", &["-f".into(), "-".into()], Some(script)).await?;
            if out.status.success() {
                Ok(())
            } else {
                Err(failed("nft", &out))
            }
        })
    }

    fn flush_conntrack<'a>(
        &'a self,
        filter: &'a ConntrackFilter,
    ) -> BoxFuture<'a, Result<(), KernelError>> {
        Box::pin(async move {
            let out = run("conntrack", &filter.args(), None).await?;
            // conntrack exits 1 when no entry matched ("0 flow entries have been deleted").
            let stderr = String::from_utf8_lossy(&out.stderr);
            if out.status.success() || stderr.contains("0 flow entries") {
                Ok(())
            } else {
                Err(failed("conntrack", &out))
            }
        })
    }

    fn list_chain<'a>(
        &'a self,
        table: &'a str,
        chain: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, KernelError>> {
        Box::pin(async move {
            let args = ["list", "chain", super::render::FAMILY, table, chain].map(String::from);
            let out = run("nft", &args, None).await?;
            if out.status.success() {
                Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
            } else if String::from_utf8_lossy(&out.stderr).contains("No such file or directory") {
                Ok(None)
            } else {
                Err(failed("nft", &out))
            }
        })
    }
}

/// A fake kernel that records what it is asked and can be told to fail.
#[derive(Debug, Default)]
pub struct RecordingKernel {
    pub scripts: Mutex<Vec<String>>,
    pub flushed: Mutex<Vec<ConntrackFilter>>,
    /// The next this many `apply` calls fail.
    pub fail_applies: AtomicUsize,
    /// Chains listed by `list_chain`, as `(table, chain)` → listing; what is not here is absent.
    pub chains: Mutex<std::collections::HashMap<(String, String), String>>,
}

impl RecordingKernel {
    pub fn scripts(&self) -> Vec<String> {
        self.scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn flushed(&self) -> Vec<ConntrackFilter> {
        self.flushed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Kernel for RecordingKernel {
    fn apply<'a>(&'a self, script: &'a str) -> BoxFuture<'a, Result<(), KernelError>> {
        Box::pin(async move {
            self.scripts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(script.to_string());
            let fail = self
                .fail_applies
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if fail {
                Err(KernelError::Failed {
                    program: "nft",
                    status: "exit status: 1".into(),
                    stderr: "injected failure".into(),
                })
            } else {
                Ok(())
            }
        })
    }

    fn flush_conntrack<'a>(
        &'a self,
        filter: &'a ConntrackFilter,
    ) -> BoxFuture<'a, Result<(), KernelError>> {
        Box::pin(async move {
            self.flushed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(filter.clone());
            Ok(())
        })
    }

    fn list_chain<'a>(
        &'a self,
        table: &'a str,
        chain: &'a str,
    ) -> BoxFuture<'a, Result<Option<String>, KernelError>> {
        Box::pin(async move {
            let chains = self.chains.lock().unwrap_or_else(|e| e.into_inner());
            Ok(chains.get(&(table.into(), chain.into())).cloned())
        })
    }
}
