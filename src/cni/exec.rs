//! Running one CNI plugin binary: finding it in the bin dirs, passing the CNI_* environment and
//! the configuration on stdin, bounding its time and output, and turning its exit into a result
//! or an error that names the plugin. It must never interpret a result beyond "is this a CNI
//! error object": configuration lists and caching live in `runtime`.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::cni::error::CniError;
use crate::cni::result::PluginError;

/// A plugin printing more than this is broken or hostile; results are a few KiB.
const MAX_STDOUT: usize = 1 << 20;
const MAX_STDERR: usize = 64 << 10;

/// The CNI commands k1s issues (spec 1.0.0; GC and STATUS are 1.1.0, which v1.1.1 plugins lack).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CniCommand {
    Add,
    Del,
    Check,
    Version,
}

impl CniCommand {
    pub fn as_str(self) -> &'static str {
        match self {
            CniCommand::Add => "ADD",
            CniCommand::Del => "DEL",
            CniCommand::Check => "CHECK",
            CniCommand::Version => "VERSION",
        }
    }
}

/// The per-call part of the CNI environment.
#[derive(Debug, Clone, Default)]
pub struct PluginArgs {
    pub container_id: String,
    /// Empty when the namespace is already gone (DEL only).
    pub netns: String,
    pub ifname: String,
    /// CNI_ARGS, `K=V;K=V`.
    pub args: String,
}

/// Finds and runs plugin binaries.
#[derive(Debug, Clone)]
pub struct PluginExec {
    bin_dirs: Vec<PathBuf>,
    timeout: Duration,
    cni_path: String,
}

impl PluginExec {
    pub fn new(bin_dirs: Vec<PathBuf>, timeout: Duration) -> Self {
        let cni_path = bin_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        PluginExec {
            bin_dirs,
            timeout,
            cni_path,
        }
    }

    /// The first executable file named `plugin` in the bin dirs, in order.
    pub fn find(&self, plugin: &str) -> Result<PathBuf, CniError> {
        check_plugin_name(plugin)?;
        for dir in &self.bin_dirs {
            let candidate = dir.join(plugin);
            if let Ok(meta) = std::fs::metadata(&candidate) {
                if meta.is_file() && meta.permissions().mode() & 0o111 != 0 {
                    return Ok(candidate);
                }
            }
        }
        Err(CniError::PluginNotFound {
            plugin: plugin.to_string(),
            dirs: if self.cni_path.is_empty() {
                "(no bin dirs configured)".to_string()
            } else {
                self.cni_path.clone()
            },
        })
    }

    /// Runs `plugin` once and returns its stdout on success.
    pub async fn run(
        &self,
        plugin: &str,
        command: CniCommand,
        args: &PluginArgs,
        stdin: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        let path = self.find(plugin)?;
        let cmd_name = command.as_str();
        let mut cmd = Command::new(&path);
        cmd.env("CNI_COMMAND", cmd_name)
            .env("CNI_CONTAINERID", &args.container_id)
            .env("CNI_NETNS", &args.netns)
            .env("CNI_IFNAME", &args.ifname)
            .env("CNI_ARGS", &args.args)
            .env("CNI_PATH", &self.cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills what it started too (iptables, a shell's
            // children), not just the plugin.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|source| CniError::Spawn {
            plugin: plugin.to_string(),
            path: path.clone(),
            source,
        })?;
        let pgid = child.id().map(|id| Pid::from_raw(id as i32));
        let (Some(mut child_in), Some(child_out), Some(child_err)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(CniError::Spawn {
                plugin: plugin.to_string(),
                path,
                source: std::io::Error::other("plugin stdio was not piped"),
            });
        };

        let mut stderr_buf = Vec::new();
        let work = async {
            let feed = async {
                // A plugin may exit without reading its config (VERSION, a crash); that is not
                // our error to report, its exit status is.
                let _ = child_in.write_all(stdin).await;
                drop(child_in);
            };
            let (_, out, err) = tokio::join!(
                feed,
                read_limited(child_out, MAX_STDOUT),
                read_limited(child_err, MAX_STDERR)
            );
            stderr_buf = err.0;
            let status = child.wait().await;
            (out, status)
        };
        let outcome = tokio::time::timeout(self.timeout, work).await;
        let stderr = String::from_utf8_lossy(&stderr_buf).into_owned();
        let ((stdout, overflow), status) = match outcome {
            Ok(done) => done,
            Err(_) => {
                kill_group(pgid);
                let _ = child.wait().await;
                return Err(CniError::Timeout {
                    plugin: plugin.to_string(),
                    command: cmd_name,
                    after: self.timeout,
                    stderr,
                });
            }
        };
        let status = status.map_err(|source| CniError::Spawn {
            plugin: plugin.to_string(),
            path: path.clone(),
            source,
        })?;
        if overflow {
            return Err(CniError::BadOutput {
                plugin: plugin.to_string(),
                command: cmd_name,
                reason: format!("more than {MAX_STDOUT} bytes on stdout"),
                output: crate::cni::error::truncate(&String::from_utf8_lossy(&stdout), 256),
            });
        }
        if status.success() {
            return Ok(stdout);
        }
        if let Some(e) = PluginError::parse(&stdout) {
            return Err(CniError::Plugin {
                plugin: plugin.to_string(),
                command: cmd_name,
                code: e.code,
                msg: e.msg,
                details: e.details,
                stderr,
            });
        }
        let mut shown = stderr;
        let out = String::from_utf8_lossy(&stdout);
        if !out.trim().is_empty() {
            shown = format!("{} (stdout: {})", shown.trim(), out.trim());
        }
        Err(CniError::Exit {
            plugin: plugin.to_string(),
            command: cmd_name,
            status: status.to_string(),
            stderr: shown,
        })
    }
}

/// Reads at most `max` bytes, then keeps draining (so the writer never blocks on a full pipe)
/// without storing. Returns the bytes and whether there was more.
async fn read_limited(mut r: impl AsyncRead + Unpin, max: usize) -> (Vec<u8>, bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut overflow = false;
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(buf.len());
                if n > room {
                    overflow = true;
                }
                buf.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    (buf, overflow)
}

fn kill_group(pgid: Option<Pid>) {
    if let Some(pgid) = pgid {
        // ESRCH (already gone) is the only expected error, and nothing is left to do about it.
        let _ = killpg(pgid, Signal::SIGKILL);
    }
}

/// A plugin `type` comes from configuration; it must name a file in a bin dir, not a path.
pub fn check_plugin_name(plugin: &str) -> Result<(), CniError> {
    let ok = !plugin.is_empty()
        && plugin.len() <= 255
        && plugin != "."
        && plugin != ".."
        && !plugin.contains('/')
        && !plugin.contains('\0');
    if ok {
        Ok(())
    } else {
        Err(CniError::invalid(
            "plugin type",
            plugin,
            "must be a file name in a cni bin dir",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_file_names() {
        assert!(check_plugin_name("bridge").is_ok());
        for bad in ["", ".", "..", "../bin/sh", "/bin/sh", "a/b"] {
            assert!(check_plugin_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn missing_plugin_names_plugin_and_dirs() {
        let exec = PluginExec::new(
            vec!["/nonexistent/a".into(), "/nonexistent/b".into()],
            Duration::from_secs(1),
        );
        let msg = exec.find("bridge").unwrap_err().to_string();
        assert_eq!(
            msg,
            "cni plugin bridge not found in /nonexistent/a:/nonexistent/b"
        );
    }
}
