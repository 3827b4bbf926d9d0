//! k1s's RuntimeDefault seccomp profile: allow by default, deny with EPERM the syscalls that
//! Docker's default profile keeps from containers.
//!
//! Docker's profile is an allow-list of ~350 syscalls; a deny-list of the ones it leaves out
//! gives the same protection for what matters (kernel modules, kexec, the keyring, mounts,
//! namespaces, clocks, raw I/O) while staying short enough to review, and it cannot break a new
//! harmless syscall that an allow-list would not know yet. As in Docker, a syscall is allowed
//! again when the container holds the capability that guards it. This module never decides
//! whether seccomp applies (privileged and Unconfined are the spec's business).

use serde_json::{json, Value};

/// (syscalls, capability that lifts the denial or `None` when nothing does).
const DENIED: &[(&[&str], Option<&str>)] = &[
    // Replacing or extending the running kernel.
    (
        &[
            "kexec_load",
            "kexec_file_load",
            "create_module",
            "get_kernel_syms",
            "query_module",
            "nfsservctl",
            "uselib",
            "ustat",
            "sysfs",
            "_sysctl",
            "vm86",
            "vm86old",
            "swapon",
            "swapoff",
            // The kernel keyring is not namespaced.
            "keyctl",
            "add_key",
            "request_key",
            // Used in kernel exploits; unprivileged userfaultfd is off upstream too.
            "userfaultfd",
        ],
        None,
    ),
    (
        &["init_module", "finit_module", "delete_module"],
        Some("CAP_SYS_MODULE"),
    ),
    (&["reboot"], Some("CAP_SYS_BOOT")),
    (&["acct"], Some("CAP_SYS_PACCT")),
    (&["iopl", "ioperm"], Some("CAP_SYS_RAWIO")),
    (
        &["settimeofday", "stime", "clock_settime", "clock_adjtime"],
        Some("CAP_SYS_TIME"),
    ),
    (&["syslog"], Some("CAP_SYSLOG")),
    (&["open_by_handle_at"], Some("CAP_DAC_READ_SEARCH")),
    (
        &["kcmp", "process_vm_readv", "process_vm_writev"],
        Some("CAP_SYS_PTRACE"),
    ),
    (
        &["get_mempolicy", "set_mempolicy", "mbind", "move_pages"],
        Some("CAP_SYS_NICE"),
    ),
    (&["bpf"], Some("CAP_BPF")),
    (&["perf_event_open"], Some("CAP_PERFMON")),
    (
        &[
            "mount",
            "umount",
            "umount2",
            "pivot_root",
            "setns",
            "unshare",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
            "quotactl",
            "quotactl_fd",
            "lookup_dcookie",
            "fanotify_init",
            "name_to_handle_at",
        ],
        Some("CAP_SYS_ADMIN"),
    ),
];

/// EPERM, so that programs probing a syscall see "not permitted" rather than a crash.
const EPERM: u32 = 1;

/// The denied syscalls for a container holding `caps` (OCI names such as `CAP_SYS_ADMIN`).
pub fn denied_syscalls(caps: &[String]) -> Vec<&'static str> {
    let holds = |cap: &str| caps.iter().any(|c| c == cap);
    DENIED
        .iter()
        .filter(|(_, lifted_by)| match lifted_by {
            None => true,
            // Kernels before 5.8 guard these with CAP_SYS_ADMIN, and newer ones still accept it.
            Some(cap @ ("CAP_BPF" | "CAP_PERFMON")) => !holds(cap) && !holds("CAP_SYS_ADMIN"),
            Some(cap) => !holds(cap),
        })
        .flat_map(|(names, _)| names.iter().copied())
        .collect()
}

/// The `linux.seccomp` object of the OCI spec.
pub fn runtime_default(caps: &[String]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": architectures(),
        "syscalls": [{
            "names": denied_syscalls(caps),
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
        }],
    })
}

/// The native ABI and the compat ones a process could switch to to dodge the filter.
fn architectures() -> Vec<&'static str> {
    if cfg!(target_arch = "x86_64") {
        vec!["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    } else if cfg!(target_arch = "aarch64") {
        vec!["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    } else if cfg!(target_arch = "arm") {
        vec!["SCMP_ARCH_ARM"]
    } else {
        Vec::new()
    }
}
