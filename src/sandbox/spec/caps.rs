//! Capabilities: containerd's default set, Kubernetes' add/drop semantics ("ALL", names with
//! or without the `CAP_` prefix, any case), everything for privileged containers.
//!
//! Pure computation on names; unknown names are errors, never silently dropped.

use std::collections::BTreeSet;

use super::{ContainerSpec, SpecError};

/// The set containerd and Docker give a non-privileged container.
pub const DEFAULT_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Every capability up to CAP_CHECKPOINT_RESTORE (Linux 5.9), in kernel order.
pub const ALL_CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The capability set after privileged / add / drop, as OCI names.
pub fn effective(spec: &ContainerSpec) -> Result<Vec<String>, SpecError> {
    if spec.privileged {
        return Ok(ALL_CAPABILITIES.iter().map(|c| c.to_string()).collect());
    }
    let add = normalize(spec, &spec.capabilities.add)?;
    let drop = normalize(spec, &spec.capabilities.drop)?;
    let mut caps: BTreeSet<&str> = DEFAULT_CAPABILITIES.iter().copied().collect();
    // Kubernetes semantics: "drop ALL" then "add X" leaves exactly X.
    if drop.contains("ALL") {
        caps.clear();
    } else {
        caps.retain(|c| !drop.contains(*c));
    }
    if add.contains("ALL") {
        caps.extend(ALL_CAPABILITIES.iter().copied());
    } else {
        caps.extend(add.iter().map(|s| s.as_str()));
    }
    // Keep kernel order so the spec is stable and readable.
    Ok(ALL_CAPABILITIES
        .iter()
        .filter(|c| caps.contains(**c))
        .map(|c| c.to_string())
        .collect())
}

fn normalize(spec: &ContainerSpec, names: &[String]) -> Result<BTreeSet<String>, SpecError> {
    let mut out = BTreeSet::new();
    for name in names {
        let upper = name.trim().to_ascii_uppercase();
        if upper == "ALL" {
            out.insert(upper);
            continue;
        }
        let full = if upper.starts_with("CAP_") {
            upper
        } else {
            format!("CAP_{upper}")
        };
        match ALL_CAPABILITIES.iter().find(|c| **c == full) {
            Some(c) => out.insert(c.to_string()),
            None => {
                return Err(SpecError::UnknownCapability {
                    id: spec.id.clone(),
                    name: name.clone(),
                })
            }
        };
    }
    Ok(out)
}
