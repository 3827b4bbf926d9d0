use super::*;
use oci_spec::runtime::{Capability, LinuxNamespaceType, LinuxSeccompAction};

fn base() -> ContainerSpec {
    ContainerSpec::new("pod1-app", "/tmp/rootfs", vec!["/bin/sh".into()])
}

fn caps_of(spec: &Spec) -> Vec<Capability> {
    let mut v: Vec<Capability> = spec
        .process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().clone())
        .map(|s| s.into_iter().collect())
        .unwrap_or_default();
    v.sort_by_key(|c| c.to_string());
    v
}

#[test]
fn defaults_match_containerd() {
    let oci = to_oci(&base()).unwrap();
    let caps = caps_of(&oci);
    assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len());
    assert!(caps.contains(&Capability::NetBindService));
    assert!(!caps.contains(&Capability::SysAdmin));

    let process = oci.process().as_ref().unwrap();
    assert_eq!(process.cwd(), &PathBuf::from("/"));
    let rl = &process.rlimits().as_ref().unwrap()[0];
    assert_eq!((rl.soft(), rl.hard()), (1_048_576, 1_048_576));

    let linux = oci.linux().as_ref().unwrap();
    let ns: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    assert!(ns.contains(&LinuxNamespaceType::Pid));
    assert!(ns.contains(&LinuxNamespaceType::Ipc));
    assert!(ns.contains(&LinuxNamespaceType::Uts));
    assert!(ns.contains(&LinuxNamespaceType::Mount));
    assert!(
        !ns.contains(&LinuxNamespaceType::Network),
        "no netns means host network"
    );
    assert!(!ns.contains(&LinuxNamespaceType::User));
    assert_eq!(
        linux.cgroups_path().as_deref(),
        Some(Path::new("/k1s/pod1-app"))
    );
    assert!(linux
        .masked_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/kcore".to_string()));
    assert!(linux
        .readonly_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/sys".to_string()));

    let dests: Vec<_> = oci
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().to_string_lossy().into_owned())
        .collect();
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        assert!(dests.contains(&d.to_string()), "missing {d}");
    }
    let shm = oci
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == Path::new("/dev/shm"));
    assert!(shm
        .unwrap()
        .options()
        .as_ref()
        .unwrap()
        .contains(&"size=67108864".to_string()));
}

#[test]
fn add_and_drop_capabilities() {
    let mut s = base();
    s.capabilities.add = vec!["NET_ADMIN".into(), "cap_sys_time".into()];
    s.capabilities.drop = vec!["CAP_CHOWN".into(), "kill".into()];
    let caps = caps_of(&to_oci(&s).unwrap());
    assert!(caps.contains(&Capability::NetAdmin));
    assert!(caps.contains(&Capability::SysTime));
    assert!(!caps.contains(&Capability::Chown));
    assert!(!caps.contains(&Capability::Kill));

    s.capabilities.drop = vec!["ALL".into()];
    s.capabilities.add = vec!["NET_BIND_SERVICE".into()];
    assert_eq!(
        caps_of(&to_oci(&s).unwrap()),
        vec![Capability::NetBindService]
    );

    s.capabilities.drop.clear();
    s.capabilities.add = vec!["all".into()];
    assert_eq!(caps_of(&to_oci(&s).unwrap()).len(), ALL_CAPABILITIES.len());
}

#[test]
fn unknown_capability_is_named() {
    let mut s = base();
    s.capabilities.add = vec!["SUPERPOWER".into()];
    let err = to_oci(&s).unwrap_err().to_string();
    assert!(err.contains("SUPERPOWER"), "{err}");
}

#[test]
fn privileged_gets_everything_and_no_seccomp() {
    let mut s = base();
    s.privileged = true;
    s.capabilities.drop = vec!["ALL".into()];
    let oci = to_oci(&s).unwrap();
    assert_eq!(caps_of(&oci).len(), ALL_CAPABILITIES.len());
    let linux = oci.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().is_none());
    assert!(linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap()[0]
        .allow());
}

#[test]
fn runtime_default_seccomp_denies_dangerous_syscalls() {
    let oci = to_oci(&base()).unwrap();
    let sc = oci.linux().as_ref().unwrap().seccomp().as_ref().unwrap();
    assert_eq!(sc.default_action(), LinuxSeccompAction::ScmpActAllow);
    let rule = &sc.syscalls().as_ref().unwrap()[0];
    assert_eq!(rule.action(), LinuxSeccompAction::ScmpActErrno);
    assert_eq!(rule.errno_ret(), Some(1));
    for name in [
        "kexec_load",
        "init_module",
        "reboot",
        "swapon",
        "mount",
        "keyctl",
        "bpf",
        "unshare",
    ] {
        assert!(
            rule.names().contains(&name.to_string()),
            "{name} not denied"
        );
    }
    for name in ["read", "write", "execve", "clone", "ptrace", "chown"] {
        assert!(!rule.names().contains(&name.to_string()), "{name} denied");
    }

    let mut s = base();
    s.capabilities.add = vec!["SYS_ADMIN".into()];
    let names = spec_seccomp_names(&to_oci(&s).unwrap());
    assert!(
        !names.contains(&"mount".to_string()),
        "CAP_SYS_ADMIN lifts mount"
    );
    assert!(
        !names.contains(&"bpf".to_string()),
        "CAP_SYS_ADMIN lifts bpf"
    );
    assert!(names.contains(&"kexec_load".to_string()));

    s.seccomp = Seccomp::Unconfined;
    assert!(to_oci(&s)
        .unwrap()
        .linux()
        .as_ref()
        .unwrap()
        .seccomp()
        .is_none());
}

fn spec_seccomp_names(oci: &Spec) -> Vec<String> {
    oci.linux()
        .as_ref()
        .unwrap()
        .seccomp()
        .as_ref()
        .unwrap()
        .syscalls()
        .as_ref()
        .unwrap()[0]
        .names()
        .clone()
}

#[test]
fn namespaces_join_paths() {
    let mut s = base();
    s.netns = Some("/run/netns/k1s-abc".into());
    s.pidns = Some("/proc/42/ns/pid".into());
    s.ipcns = Some("/proc/42/ns/ipc".into());
    let oci = to_oci(&s).unwrap();
    let ns = oci.linux().as_ref().unwrap().namespaces().clone().unwrap();
    let path = |t| {
        ns.iter()
            .find(|n| n.typ() == t)
            .and_then(|n| n.path().clone())
    };
    assert_eq!(
        path(LinuxNamespaceType::Network),
        Some("/run/netns/k1s-abc".into())
    );
    assert_eq!(
        path(LinuxNamespaceType::Pid),
        Some("/proc/42/ns/pid".into())
    );
    assert_eq!(
        path(LinuxNamespaceType::Ipc),
        Some("/proc/42/ns/ipc".into())
    );
    assert_eq!(path(LinuxNamespaceType::Uts), None);
}

#[test]
fn resources_user_mounts_and_hostname() {
    let mut s = base();
    s.resources = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        memory_limit: Some(64 << 20),
        pids_limit: Some(100),
    };
    s.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![5],
        umask: Some(0o22),
    };
    s.hostname = "web-0".into();
    s.readonly_rootfs = true;
    s.mounts = vec![
        Mount {
            source: "/var/lib/k1s/vol".into(),
            destination: "/data".into(),
            readonly: true,
            kind: MountKind::Bind,
            propagation: Propagation::RSlave,
        },
        Mount {
            source: PathBuf::new(),
            destination: "/scratch".into(),
            readonly: false,
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
            },
            propagation: Propagation::Private,
        },
    ];
    let oci = to_oci(&s).unwrap();
    let res = oci.linux().as_ref().unwrap().resources().clone().unwrap();
    let cpu = res.cpu().clone().unwrap();
    assert_eq!(
        (cpu.shares(), cpu.quota(), cpu.period()),
        (Some(512), Some(50_000), Some(100_000))
    );
    assert_eq!(res.memory().as_ref().unwrap().limit(), Some(64 << 20));
    assert_eq!(res.pids().as_ref().unwrap().limit(), 100);
    let user = oci.process().as_ref().unwrap().user();
    assert_eq!(
        (user.uid(), user.gid(), user.umask()),
        (1000, 1000, Some(0o22))
    );
    assert_eq!(user.additional_gids().as_deref(), Some(&[5u32][..]));
    assert_eq!(oci.hostname().as_deref(), Some("web-0"));
    assert_eq!(oci.root().as_ref().unwrap().readonly(), Some(true));
    let mounts = oci.mounts().as_ref().unwrap();
    let data = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/data"))
        .unwrap();
    assert_eq!(data.typ().as_deref(), Some("bind"));
    let opts = data.options().clone().unwrap();
    assert!(
        opts.contains(&"ro".into())
            && opts.contains(&"rslave".into())
            && opts.contains(&"rbind".into())
    );
    let scratch = mounts
        .iter()
        .find(|m| m.destination() == Path::new("/scratch"))
        .unwrap();
    assert!(scratch
        .options()
        .clone()
        .unwrap()
        .contains(&"size=1048576".into()));
}

#[test]
fn bad_input_is_rejected_with_a_reason() {
    type Case = (fn(&mut ContainerSpec), &'static str);
    let cases: Vec<Case> = vec![
        (|s| s.args.clear(), "args"),
        (|s| s.id = "a/b".into(), "id"),
        (|s| s.id = String::new(), "id"),
        (|s| s.rootfs = "relative".into(), "rootfs"),
        (|s| s.cwd = "tmp".into(), "cwd"),
        (|s| s.cgroup_path = "/k1s/../x".into(), "cgroup"),
        (|s| s.env = vec!["NOEQUALS".into()], "env"),
        (
            |s| {
                s.mounts.push(Mount {
                    source: "/x".into(),
                    destination: "relative".into(),
                    readonly: false,
                    kind: MountKind::Bind,
                    propagation: Propagation::Private,
                })
            },
            "mount destination",
        ),
    ];
    for (mutate, want) in cases {
        let mut s = base();
        mutate(&mut s);
        let err = to_oci(&s).unwrap_err().to_string();
        assert!(err.contains(want), "{err:?} should mention {want:?}");
    }
}

#[test]
fn a_terminal_is_asked_of_the_runtime() {
    let mut s = base();
    s.tty = true;
    let oci = serde_json::to_value(to_oci(&s).unwrap()).unwrap();
    assert_eq!(oci["process"]["terminal"], true);
}

#[test]
fn write_bundle_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    write_bundle(&base(), dir.path()).unwrap();
    let loaded = Spec::load(dir.path().join("config.json")).unwrap();
    assert_eq!(loaded, to_oci(&base()).unwrap());
    assert!(!dir.path().join("config.json.tmp").exists());
}

#[test]
fn container_spec_json_defaults() {
    let s: ContainerSpec = serde_json::from_value(serde_json::json!({
        "id": "x", "rootfs": "/r", "args": ["/bin/true"], "cgroup_path": "/k1s/x"
    }))
    .unwrap();
    assert_eq!(s.seccomp, Seccomp::RuntimeDefault);
    assert_eq!(s.masked_paths, default_masked_paths());
    to_oci(&s).unwrap();
}
