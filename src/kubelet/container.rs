//! One container of a PodSpec translated into the sandbox's `ContainerSpec`: the command
//! (image entrypoint/cmd merged with command/args as upstream), user and groups from the
//! security contexts or the image, capabilities, seccomp, resources to cgroup values and the
//! volume mounts. Pure but for subPaths, which `subpath` binds safely first: the caller
//! resolved the image, environment and volumes.

use super::volumes::PodVolumes;
use crate::registry::rules::quantity::Quantity;
use crate::sandbox::image::ImageConfig;
use crate::sandbox::spec::{
    CapabilityChanges, ContainerSpec, Mount, MountKind, Propagation, Resources, Seccomp, User,
};
use k8s_openapi::api::core::v1::{Container, Pod};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a container cannot be configured; shown as `CreateContainerConfigError`.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("no command specified")]
    NoCommand,
    #[error("container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {container})")]
    RunAsRoot { pod: String, container: String },
    #[error("container has runAsNonRoot and image has non-numeric user ({user}), cannot verify user is non-root")]
    NonNumericUser { user: String },
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),
    #[error("volume {0:?} of a volumeMount is not in the pod's volumes")]
    NoVolume(String),
    #[error(
        "failed to prepare subPath for volumeMount {mount:?} of container {container:?}: {source}"
    )]
    SubPath {
        mount: String,
        container: String,
        source: super::subpath::SubPathError,
    },
    #[error("seccomp profile type {0:?} is not supported")]
    Seccomp(String),
}

/// Everything about the pod the container needs beyond its own spec.
pub struct Context<'a> {
    pub pod: &'a Pod,
    pub id: &'a str,
    pub rootfs: PathBuf,
    pub image: &'a ImageConfig,
    pub env: Vec<(String, String)>,
    pub volumes: &'a PodVolumes,
    pub netns: Option<PathBuf>,
    /// Files the agent writes per pod and bind-mounts: /etc/hosts, /etc/resolv.conf, /etc/hostname.
    pub etc_files: Vec<(String, PathBuf)>,
    pub hostname: String,
    pub cgroup_parent: String,
    /// Where this pod's subPaths are bound (`<pod dir>/volume-subpaths`).
    pub subpaths: PathBuf,
}

/// The command a container runs: upstream's rules for command/args over the image's
/// Entrypoint/Cmd.
pub fn command(c: &Container, image: &ImageConfig, env: &BTreeMap<String, String>) -> Vec<String> {
    let expand =
        |v: &Vec<String>| -> Vec<String> { v.iter().map(|s| super::env::expand(s, env)).collect() };
    match (&c.command, &c.args) {
        (Some(cmd), Some(args)) if !cmd.is_empty() => [expand(cmd), expand(args)].concat(),
        (Some(cmd), _) if !cmd.is_empty() => expand(cmd),
        (_, Some(args)) if !args.is_empty() => [image.entrypoint.clone(), expand(args)].concat(),
        _ => [image.entrypoint.clone(), image.cmd.clone()].concat(),
    }
}

fn lookup(file: &Path, name: &str, field: usize) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let parts: Vec<&str> = l.split(':').collect();
        if parts.first() == Some(&name) && parts.len() > field {
            let id = parts[2].parse().ok()?;
            let gid = if field >= 3 {
                parts[3].parse().ok()?
            } else {
                id
            };
            Some((id, gid))
        } else {
            None
        }
    })
}

/// The image's `User` ("uid", "uid:gid", "name", "name:group") resolved in its rootfs.
fn image_user(user: &str, rootfs: &Path) -> Result<(u32, Option<u32>), ConfigError> {
    if user.is_empty() {
        return Ok((0, None));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(uid) => (uid, None),
        Err(_) => {
            let (uid, gid) = lookup(&rootfs.join("etc/passwd"), u, 3)
                .ok_or_else(|| ConfigError::UnknownUser(u.to_string()))?;
            (uid, Some(gid))
        }
    };
    let gid = match g {
        None => primary,
        Some(g) => Some(match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                lookup(&rootfs.join("etc/group"), g, 2)
                    .ok_or_else(|| ConfigError::UnknownGroup(g.to_string()))?
                    .0
            }
        }),
    };
    Ok((uid, gid))
}

fn quantity(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    key: &str,
) -> Option<f64> {
    map?.get(key)
        .and_then(|q| Quantity::parse(&q.0).ok())
        .map(|q| q.to_f64())
}

/// Requests and limits as cgroup values: shares from the cpu request (2 when none), a CFS
/// quota from the cpu limit over a 100 ms period, the memory limit in bytes.
pub fn resources(c: &Container) -> Resources {
    let r = c.resources.as_ref();
    let requests = r.and_then(|r| r.requests.as_ref());
    let limits = r.and_then(|r| r.limits.as_ref());
    let cpu_request = quantity(requests, "cpu").or(quantity(limits, "cpu"));
    let shares = cpu_request
        .map(|cores| ((cores * 1024.0).ceil() as u64).max(2))
        .unwrap_or(2);
    let period = 100_000u64;
    let quota =
        quantity(limits, "cpu").map(|cores| ((cores * period as f64).ceil() as i64).max(1000));
    Resources {
        cpu_shares: Some(shares),
        cpu_quota: quota,
        cpu_period: quota.map(|_| period),
        memory_limit: quantity(limits, "memory").map(|b| b as i64),
        pids_limit: None,
    }
}

fn seccomp_of(t: &str) -> Result<Seccomp, ConfigError> {
    match t {
        "RuntimeDefault" => Ok(Seccomp::RuntimeDefault),
        "Unconfined" => Ok(Seccomp::Unconfined),
        other => Err(ConfigError::Seccomp(other.to_string())),
    }
}

/// The container's spec for the sandbox.
pub fn build(c: &Container, cx: &Context<'_>) -> Result<ContainerSpec, ConfigError> {
    let pod_spec = cx.pod.spec.clone().unwrap_or_default();
    let psc = pod_spec.security_context.clone().unwrap_or_default();
    let csc = c.security_context.clone().unwrap_or_default();
    let env_map: BTreeMap<String, String> = cx.env.iter().cloned().collect();
    let args = command(c, cx.image, &env_map);
    if args.is_empty() {
        return Err(ConfigError::NoCommand);
    }

    let (img_uid, img_gid) = image_user(&cx.image.user, &cx.rootfs)?;
    let uid = csc.run_as_user.or(psc.run_as_user).map(|u| u as u32);
    let run_as_non_root = csc.run_as_non_root.or(psc.run_as_non_root) == Some(true);
    if run_as_non_root && uid.unwrap_or(img_uid) == 0 {
        if uid.is_none()
            && !cx.image.user.is_empty()
            && cx
                .image
                .user
                .split(':')
                .next()
                .is_some_and(|u| u.parse::<u32>().is_err())
        {
            return Err(ConfigError::NonNumericUser {
                user: cx.image.user.clone(),
            });
        }
        return Err(ConfigError::RunAsRoot {
            pod: cx.pod.metadata.name.clone().unwrap_or_default(),
            container: c.name.clone(),
        });
    }
    let uid = uid.unwrap_or(img_uid);
    let gid = csc
        .run_as_group
        .or(psc.run_as_group)
        .map(|g| g as u32)
        .or(img_gid)
        .unwrap_or(0);
    let mut additional: Vec<u32> = psc
        .supplemental_groups
        .iter()
        .flatten()
        .map(|g| *g as u32)
        .collect();
    if let Some(fs) = psc.fs_group {
        additional.push(fs as u32);
    }

    let privileged = csc.privileged == Some(true);
    let caps = csc.capabilities.clone().unwrap_or_default();
    let seccomp = match csc
        .seccomp_profile
        .as_ref()
        .or(psc.seccomp_profile.as_ref())
        .map(|p| p.type_.as_str())
    {
        Some(t) => seccomp_of(t)?,
        None if privileged => Seccomp::Unconfined,
        None => Seccomp::RuntimeDefault,
    };

    let mut mounts = Vec::new();
    for (dest, path) in &cx.etc_files {
        if c.volume_mounts
            .iter()
            .flatten()
            .any(|m| &m.mount_path == dest)
        {
            continue;
        }
        mounts.push(Mount {
            source: path.clone(),
            destination: dest.clone(),
            readonly: false,
            kind: MountKind::Bind,
            propagation: Propagation::Private,
        });
    }
    for (index, vm) in c.volume_mounts.iter().flatten().enumerate() {
        let vol = cx
            .volumes
            .get(&vm.name)
            .ok_or_else(|| ConfigError::NoVolume(vm.name.clone()))?;
        let mut source = vol.path.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            let sub = super::env::expand(sub, &env_map);
            let target = cx
                .subpaths
                .join(&vm.name)
                .join(&c.name)
                .join(index.to_string());
            source = super::subpath::bind(&source, &sub, &target).map_err(|source| {
                ConfigError::SubPath {
                    mount: vm.name.clone(),
                    container: c.name.clone(),
                    source,
                }
            })?;
        }
        mounts.push(Mount {
            source,
            destination: vm.mount_path.clone(),
            readonly: vm.read_only == Some(true) || vol.readonly,
            kind: MountKind::Bind,
            propagation: match vm.mount_propagation.as_deref() {
                Some("HostToContainer") => Propagation::RSlave,
                Some("Bidirectional") => Propagation::RShared,
                _ => Propagation::Private,
            },
        });
    }

    let mut spec = ContainerSpec {
        id: cx.id.to_string(),
        rootfs: cx.rootfs.clone(),
        readonly_rootfs: csc.read_only_root_filesystem == Some(true),
        args,
        env: cx.env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        cwd: c
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| cx.image.working_dir.clone()),
        user: User {
            uid,
            gid,
            additional_gids: additional,
            umask: None,
        },
        hostname: cx.hostname.clone(),
        netns: cx.netns.clone(),
        pidns: None,
        ipcns: None,
        utsns: None,
        mounts,
        privileged,
        capabilities: CapabilityChanges {
            add: caps.add.unwrap_or_default(),
            drop: caps.drop.unwrap_or_default(),
        },
        no_new_privileges: csc.allow_privilege_escalation == Some(false),
        seccomp,
        resources: resources(c),
        nofile_limit: None,
        cgroup_path: format!("{}/{}", cx.cgroup_parent, cx.id),
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        tty: c.tty == Some(true),
        stdin: c.stdin == Some(true),
        stdin_once: c.stdin_once == Some(true),
    };
    let defaults: ContainerSpec = serde_json::from_value(serde_json::json!({
        "id": "x", "rootfs": "/", "args": ["x"], "cgroup_path": "/x"
    }))
    .expect("defaults of ContainerSpec");
    spec.masked_paths = defaults.masked_paths;
    spec.readonly_paths = defaults.readonly_paths;
    if spec.cwd.is_empty() {
        spec.cwd = "/".into();
    }
    Ok(spec)
}
