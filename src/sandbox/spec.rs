//! A container as the node agent describes it, and its translation to an OCI runtime spec.
//!
//! This module owns the defaults a Kubernetes user expects from containerd (capabilities,
//! standard mounts, masked paths, the RuntimeDefault seccomp profile, rlimits) and writes the
//! bundle's `config.json`. It is pure data in, data out: it never starts a process, never mounts
//! anything and never knows Kubernetes API types (the kubelet translates a PodSpec into
//! [`ContainerSpec`]).

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use caps::{ALL_CAPABILITIES, DEFAULT_CAPABILITIES};

mod caps;
mod seccomp;
#[cfg(test)]
mod tests;

/// One container of a pod, with everything resolved (image config merged, paths on the host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique on the node; libcontainer allows `[A-Za-z0-9_+.-]`.
    pub id: String,
    /// Already mounted by the agent.
    pub rootfs: PathBuf,
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Resolved command and arguments; must not be empty.
    pub args: Vec<String>,
    /// `K=V` entries.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory in the container; "/" when empty.
    #[serde(default)]
    pub cwd: String,
    #[serde(default)]
    pub user: User,
    #[serde(default)]
    pub hostname: String,
    /// A pinned network namespace to join; `None` runs on the host network.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// A pid namespace to join (shareProcessNamespace); `None` gives the container its own.
    #[serde(default)]
    pub pidns: Option<PathBuf>,
    /// The IPC namespace to join, so that a pod's containers share one; `None` creates one.
    #[serde(default)]
    pub ipcns: Option<PathBuf>,
    /// The UTS namespace to join (same reason as `ipcns`); `None` creates one.
    #[serde(default)]
    pub utsns: Option<PathBuf>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
    #[serde(default)]
    pub privileged: bool,
    #[serde(default)]
    pub capabilities: CapabilityChanges,
    #[serde(default)]
    pub no_new_privileges: bool,
    #[serde(default)]
    pub seccomp: Seccomp,
    #[serde(default)]
    pub resources: Resources,
    /// RLIMIT_NOFILE (soft and hard); `None` is containerd's 1048576. The runtime cannot
    /// raise it above its own hard limit without CAP_SYS_RESOURCE.
    #[serde(default)]
    pub nofile_limit: Option<u64>,
    /// Absolute path in every cgroup hierarchy, e.g. `/k1s/pod<uid>/<container-id>`.
    pub cgroup_path: String,
    /// Ignored for privileged containers, which see everything.
    #[serde(default = "default_masked_paths")]
    pub masked_paths: Vec<String>,
    /// Ignored for privileged containers.
    #[serde(default = "default_readonly_paths")]
    pub readonly_paths: Vec<String>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub stdin: bool,
    /// Close the container's stdin after the first attach session ends.
    #[serde(default)]
    pub stdin_once: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    #[serde(default)]
    pub umask: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Host path for a bind mount; ignored for tmpfs.
    #[serde(default)]
    pub source: PathBuf,
    /// Absolute path in the container.
    pub destination: String,
    #[serde(default)]
    pub readonly: bool,
    pub kind: MountKind,
    #[serde(default)]
    pub propagation: Propagation,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    Bind,
    Tmpfs { size: Option<u64> },
}

/// Kubernetes' mountPropagation: None, HostToContainer, Bidirectional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Propagation {
    #[default]
    Private,
    RSlave,
    RShared,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapabilityChanges {
    #[serde(default)]
    pub add: Vec<String>,
    #[serde(default)]
    pub drop: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    #[default]
    RuntimeDefault,
    Unconfined,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub memory_limit: Option<i64>,
    pub pids_limit: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("container {id}: {problem}")]
    Invalid { id: String, problem: String },
    #[error("container {id}: unknown capability {name:?}")]
    UnknownCapability { id: String, name: String },
    #[error("container {id}: generated spec is not a valid oci spec: {source}")]
    Oci {
        id: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("write bundle {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// containerd's masked paths for non-privileged containers.
pub fn default_masked_paths() -> Vec<String> {
    [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ]
    .map(String::from)
    .to_vec()
}

/// containerd's read-only paths for non-privileged containers.
pub fn default_readonly_paths() -> Vec<String> {
    [
        "/proc/bus",
        "/proc/fs",
        "/proc/irq",
        "/proc/sys",
        "/proc/sysrq-trigger",
    ]
    .map(String::from)
    .to_vec()
}

const DEV_SHM_BYTES: u64 = 64 * 1024 * 1024;
pub const NOFILE_LIMIT: u64 = 1_048_576;

impl ContainerSpec {
    /// A container with containerd's defaults: root user, own namespaces, host network.
    pub fn new(id: impl Into<String>, rootfs: impl Into<PathBuf>, args: Vec<String>) -> Self {
        let id = id.into();
        ContainerSpec {
            cgroup_path: format!("/k1s/{id}"),
            id,
            rootfs: rootfs.into(),
            readonly_rootfs: false,
            args,
            env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
            cwd: "/".into(),
            user: User::default(),
            hostname: String::new(),
            netns: None,
            pidns: None,
            ipcns: None,
            utsns: None,
            mounts: Vec::new(),
            privileged: false,
            capabilities: CapabilityChanges::default(),
            no_new_privileges: false,
            seccomp: Seccomp::RuntimeDefault,
            resources: Resources::default(),
            nofile_limit: None,
            masked_paths: default_masked_paths(),
            readonly_paths: default_readonly_paths(),
            tty: false,
            stdin: false,
            stdin_once: false,
        }
    }

    fn invalid(&self, problem: impl Into<String>) -> SpecError {
        SpecError::Invalid {
            id: self.id.clone(),
            problem: problem.into(),
        }
    }

    /// Checks what the OCI schema cannot: the things that would otherwise fail deep inside
    /// the container's init process with an unhelpful message.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.id.is_empty() || self.id == "." || self.id == ".." {
            return Err(self.invalid("id must be a non-empty name"));
        }
        if let Some(c) = self
            .id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "_+-.".contains(*c)))
        {
            return Err(self.invalid(format!("id contains {c:?}; allowed: [A-Za-z0-9_+.-]")));
        }
        if self.args.is_empty() || self.args[0].is_empty() {
            return Err(self.invalid("args must name a command"));
        }
        if !self.rootfs.is_absolute() {
            return Err(self.invalid(format!("rootfs {} must be absolute", self.rootfs.display())));
        }
        if !self.cwd.is_empty() && !self.cwd.starts_with('/') {
            return Err(self.invalid(format!("cwd {:?} must be absolute", self.cwd)));
        }
        if !self.cgroup_path.starts_with('/') || self.cgroup_path.split('/').any(|p| p == "..") {
            return Err(self.invalid(format!(
                "cgroup path {:?} must be absolute without '..'",
                self.cgroup_path
            )));
        }
        if let Some(e) = self
            .env
            .iter()
            .find(|e| !e.contains('=') || e.starts_with('='))
        {
            return Err(self.invalid(format!("env entry {e:?} is not K=V")));
        }
        for m in &self.mounts {
            if !m.destination.starts_with('/') || m.destination.split('/').any(|p| p == "..") {
                return Err(self.invalid(format!(
                    "mount destination {:?} must be absolute without '..'",
                    m.destination
                )));
            }
            if m.kind == MountKind::Bind && !m.source.is_absolute() {
                return Err(self.invalid(format!(
                    "bind mount source {} must be absolute",
                    m.source.display()
                )));
            }
        }
        Ok(())
    }

    /// The capability set after privileged / add / drop, as OCI names.
    pub fn effective_capabilities(&self) -> Result<Vec<String>, SpecError> {
        caps::effective(self)
    }
}

/// Translates to an OCI runtime spec.
///
/// Built as the spec's JSON document and then parsed by `oci-spec`: the JSON schema is the
/// contract runtimes share, it reads like the runc/containerd specs it mirrors, and parsing
/// checks every field name and enum value against oci-spec's types.
pub fn to_oci(spec: &ContainerSpec) -> Result<Spec, SpecError> {
    spec.validate()?;
    let caps = spec.effective_capabilities()?;
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    let nofile = spec.nofile_limit.unwrap_or(NOFILE_LIMIT);

    let mut user = json!({
        "uid": spec.user.uid,
        "gid": spec.user.gid,
    });
    if !spec.user.additional_gids.is_empty() {
        user["additionalGids"] = json!(spec.user.additional_gids);
    }
    if let Some(umask) = spec.user.umask {
        user["umask"] = json!(umask);
    }

    let mut process = json!({
        "terminal": spec.tty,
        "user": user,
        "args": spec.args,
        "env": spec.env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": nofile, "soft": nofile}],
    });
    // Only written when true: libcontainer 0.7 treats any present value, even false, as
    // "load seccomp after dropping capabilities", which then fails with EACCES.
    if spec.no_new_privileges {
        process["noNewPrivileges"] = json!(true);
    }
    // Ambient capabilities only matter for a non-root user, as containerd does it.
    if spec.user.uid != 0 {
        process["capabilities"]["ambient"] = json!([]);
        process["capabilities"]["inheritable"] = json!([]);
    }

    let mut namespaces = vec![
        namespace("pid", spec.pidns.as_deref()),
        namespace("ipc", spec.ipcns.as_deref()),
        namespace("uts", spec.utsns.as_deref()),
        namespace("mount", None),
    ];
    if let Some(netns) = &spec.netns {
        namespaces.push(namespace("network", Some(netns)));
    }

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": spec.cgroup_path,
        "resources": resources(spec),
    });
    if !spec.privileged {
        linux["maskedPaths"] = json!(spec.masked_paths);
        linux["readonlyPaths"] = json!(spec.readonly_paths);
        if spec.seccomp == Seccomp::RuntimeDefault {
            linux["seccomp"] = seccomp::runtime_default(&caps);
        }
    }

    let mut doc = json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "mounts": mounts(spec),
        "linux": linux,
    });
    if !spec.hostname.is_empty() {
        doc["hostname"] = json!(spec.hostname);
    }
    serde_json::from_value(doc).map_err(|source| SpecError::Oci {
        id: spec.id.clone(),
        source,
    })
}

/// Writes `<bundle_dir>/config.json` atomically (temp file + rename).
pub fn write_bundle(spec: &ContainerSpec, bundle_dir: &Path) -> Result<(), SpecError> {
    let oci = to_oci(spec)?;
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SpecError::Write { path, source }
    };
    std::fs::create_dir_all(bundle_dir).map_err(write_err(bundle_dir))?;
    let bytes = serde_json::to_vec_pretty(&oci).map_err(|source| SpecError::Oci {
        id: spec.id.clone(),
        source,
    })?;
    let tmp = bundle_dir.join("config.json.tmp");
    let path = bundle_dir.join("config.json");
    std::fs::write(&tmp, bytes).map_err(write_err(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(write_err(&path))?;
    Ok(())
}

fn namespace(kind: &str, path: Option<&Path>) -> Value {
    match path {
        Some(p) => json!({"type": kind, "path": p}),
        None => json!({"type": kind}),
    }
}

fn resources(spec: &ContainerSpec) -> Value {
    let r = &spec.resources;
    let devices = if spec.privileged {
        json!([{"allow": true, "access": "rwm"}])
    } else {
        // Deny all; libcontainer then allows its default device list (null, zero, tty, ...).
        json!([{"allow": false, "access": "rwm"}])
    };
    let mut out = json!({ "devices": devices });
    let mut cpu = serde_json::Map::new();
    if let Some(v) = r.cpu_shares {
        cpu.insert("shares".into(), json!(v));
    }
    if let Some(v) = r.cpu_quota {
        cpu.insert("quota".into(), json!(v));
    }
    if let Some(v) = r.cpu_period {
        cpu.insert("period".into(), json!(v));
    }
    if !cpu.is_empty() {
        out["cpu"] = Value::Object(cpu);
    }
    if let Some(v) = r.memory_limit {
        out["memory"] = json!({"limit": v});
    }
    if let Some(v) = r.pids_limit {
        out["pids"] = json!({"limit": v});
    }
    out
}

fn mounts(spec: &ContainerSpec) -> Vec<Value> {
    let sys_opts = if spec.privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut out = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={DEV_SHM_BYTES}")]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
               "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    for m in &spec.mounts {
        let propagation = match m.propagation {
            Propagation::Private => "rprivate",
            Propagation::RSlave => "rslave",
            Propagation::RShared => "rshared",
        };
        let rw = if m.readonly { "ro" } else { "rw" };
        out.push(match &m.kind {
            MountKind::Bind => json!({
                "destination": m.destination, "type": "bind", "source": m.source,
                "options": ["rbind", propagation, rw],
            }),
            MountKind::Tmpfs { size } => {
                let mut options = vec![
                    "nosuid".to_string(),
                    "nodev".into(),
                    "mode=1777".into(),
                    rw.into(),
                ];
                if let Some(size) = size {
                    options.push(format!("size={size}"));
                }
                json!({"destination": m.destination, "type": "tmpfs", "source": "tmpfs",
                       "options": options})
            }
        });
    }
    out
}
