//! The one error type of the CNI module. Every variant names what it failed on: the plugin and
//! the CNI command, the file, the namespace path or the input that was rejected. It must never
//! carry Kubernetes types: the node agent maps these errors to pod events and conditions.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while wiring or unwiring a pod's network.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("cni plugin {plugin} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },

    #[error("cannot run cni plugin {plugin} ({path}): {source}")]
    Spawn {
        plugin: String,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "cni plugin {plugin} {command} timed out after {after:?}{}",
        stderr_suffix(stderr)
    )]
    Timeout {
        plugin: String,
        command: &'static str,
        after: Duration,
        stderr: String,
    },

    /// The plugin reported a CNI error object (`{"code":..,"msg":..,"details":..}`).
    #[error(
        "cni plugin {plugin} {command} failed: {msg} (code {code}{}){}",
        details_suffix(details),
        stderr_suffix(stderr)
    )]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u32,
        msg: String,
        details: String,
        stderr: String,
    },

    /// The plugin failed without printing a CNI error object.
    #[error(
        "cni plugin {plugin} {command} exited with {status} and no cni error{}",
        stderr_suffix(stderr)
    )]
    Exit {
        plugin: String,
        command: &'static str,
        status: String,
        stderr: String,
    },

    /// The plugin said it succeeded but printed something that is not a valid CNI result.
    #[error(
        "cni plugin {plugin} {command} printed an invalid result: {reason}; output: {output:?}"
    )]
    BadOutput {
        plugin: String,
        command: &'static str,
        reason: String,
        output: String,
    },

    #[error(
        "cni plugin {plugin} does not support cni version {wanted} (it supports {supported:?})"
    )]
    UnsupportedVersion {
        plugin: String,
        wanted: String,
        supported: Vec<String>,
    },

    #[error("cannot {op} network namespace {path}: {source}")]
    Netns {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },

    #[error("cannot {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("corrupt cni cache file {path}: {reason}")]
    CorruptCache { path: PathBuf, reason: String },

    #[error("invalid {what} {value:?}: {reason}")]
    InvalidInput {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("invalid cni network configuration: {0}")]
    InvalidConfig(String),

    #[error("{program} {args} failed: {stderr}")]
    Iptables {
        program: &'static str,
        args: String,
        stderr: String,
    },

    #[error("no free address left in {cidr}")]
    AddressesExhausted { cidr: String },
}

/// Plugins can be chatty; an error message must stay readable in a pod event.
const MAX_STDERR_IN_MESSAGE: usize = 2048;

fn stderr_suffix(stderr: &str) -> String {
    let s = stderr.trim();
    if s.is_empty() {
        return String::new();
    }
    format!("; stderr: {}", truncate(s, MAX_STDERR_IN_MESSAGE))
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(", details: {details}")
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary, marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

impl CniError {
    pub(crate) fn invalid(
        what: &'static str,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        CniError::InvalidInput {
            what,
            value: value.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        CniError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
