//! The shim with real containers (libcontainer, cgroups, namespaces, seccomp), as root.

mod shim_support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use k1s::sandbox::shim::{last_known_state, ErrorKind, LogLimits, ShimClient, ShimError, Status};
use k1s::sandbox::spec::{Mount, MountKind, Propagation, User};
use shim_support::*;

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn echo_exits_zero_and_logs_cri_lines() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("echo")?;
    let mut c = pod.spawn().await?;
    let spec = pod.spec(&rootfs, "app", "echo hello; echo err >&2");
    c.create(&spec, &pod.log_path("app"), None).await?;
    assert_eq!(c.state().await?[0].status, Status::Created);
    c.start("app").await?;
    let st = wait_exit(&mut c, "app", T).await?;
    assert_eq!(st.exit_code, Some(0));
    assert!(st.started_at.is_some() && st.finished_at.is_some());
    st.finished_at
        .as_deref()
        .unwrap()
        .parse::<jiff::Timestamp>()?;

    // Output may trail the exit by a loop turn.
    assert!(
        eventually(T, || pod.log("app").lines().count() == 2).await,
        "{}",
        pod.log("app")
    );
    let log = pod.log("app");
    let lines: Vec<Vec<&str>> = log.lines().map(|l| l.splitn(4, ' ').collect()).collect();
    let mut seen: Vec<(&str, &str, &str)> = lines.iter().map(|p| (p[1], p[2], p[3])).collect();
    seen.sort();
    assert_eq!(seen, [("stderr", "F", "err"), ("stdout", "F", "hello")]);
    for p in &lines {
        assert!(p[0].ends_with('Z') && p[0].len() == 30, "{}", p[0]);
        p[0].parse::<jiff::Timestamp>()?;
    }

    // Remove cleans libcontainer's state and the cgroup.
    c.remove("app").await?;
    assert!(c.state().await?.is_empty());
    assert!(!pod.dir.path().join("state/app").exists());
    assert!(!pod.cgroup_dir("memory", "app").exists());
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

/// Remove of a container that never started: its init (waiting for Start) is killed and its
/// cgroup goes from every hierarchy, with the state and bundle directories.
#[tokio::test]
async fn removing_a_created_container_kills_its_init_and_frees_its_cgroup() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("rmcreated")?;
    let mut c = pod.spawn().await?;
    let spec = pod.spec(&rootfs, "idle", "sleep 1000");
    c.create(&spec, &pod.log_path("idle"), None).await?;
    let pid = c.state().await?[0].pid.unwrap();
    assert!(alive(pid));
    // v1 hierarchies, and the unified root on a v2 host.
    let controllers = ["memory", "pids", "cpu", "devices", "freezer"];
    let made: Vec<_> = controllers
        .iter()
        .map(|ctl| pod.cgroup_dir(ctl, "idle"))
        .chain([Path::new("/sys/fs/cgroup")
            .join(pod.cgroup_parent.trim_start_matches('/'))
            .join("idle")])
        .filter(|d| d.exists())
        .collect();
    assert!(!made.is_empty(), "no cgroup made for the container");

    c.remove("idle").await?;
    assert!(c.state().await?.is_empty());
    assert!(eventually(T, || !alive(pid)).await, "init {pid} survived");
    for d in &made {
        assert!(!d.exists(), "{} left behind", d.display());
    }
    assert!(!pod.dir.path().join("state/idle").exists());
    assert!(!pod.dir.path().join("bundles/idle").exists());
    // The id is free again.
    c.create(&spec, &pod.log_path("idle"), None).await?;
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn kill_gives_128_plus_signal_and_others_keep_running() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("kill")?;
    let mut c = pod.spawn().await?;
    c.create(
        &pod.spec(&rootfs, "init", "exec sleep 1000"),
        &pod.log_path("init"),
        None,
    )
    .await?;
    c.start("init").await?;
    let init_pid = c.state().await?[0].pid.unwrap();

    // `sleep` as PID 1 of its namespace would ignore SIGTERM (the kernel protects a pid-ns
    // init without a handler), as under Docker; a second container in the same pid
    // namespace is an ordinary process and dies of it.
    let mut worker = pod.spec(&rootfs, "worker", "exec sleep 1000");
    worker.pidns = Some(format!("/proc/{init_pid}/ns/pid").into());
    c.create(&worker, &pod.log_path("worker"), None).await?;
    c.start("worker").await?;
    c.create(
        &pod.spec(&rootfs, "quick", "exit 3"),
        &pod.log_path("quick"),
        None,
    )
    .await?;
    c.start("quick").await?;
    assert_eq!(wait_exit(&mut c, "quick", T).await?.exit_code, Some(3));

    c.kill("worker", libc::SIGTERM).await?;
    assert_eq!(wait_exit(&mut c, "worker", T).await?.exit_code, Some(143));
    let init = c
        .state()
        .await?
        .into_iter()
        .find(|s| s.id == "init")
        .unwrap();
    assert_eq!(
        init.status,
        Status::Running,
        "one container exiting leaves the others"
    );

    c.kill("init", libc::SIGKILL).await?;
    assert_eq!(wait_exit(&mut c, "init", T).await?.exit_code, Some(137));

    let err = c.kill("init", libc::SIGKILL).await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidState), "{err}");
    let err = c.start("init").await.unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::InvalidState), "{err}");
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn spec_is_applied_inside_the_container() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("spec")?;
    let vol = tempfile::tempdir()?;
    std::fs::write(vol.path().join("file"), "from-host")?;
    let mut c = pod.spawn().await?;

    let script = r#"
        echo "env=$FOO"; echo "cwd=$(pwd)"; echo "host=$(hostname)"
        echo "vol=$(cat /data/file)"
        (echo x > /data/x) 2>/dev/null && echo bind=rw || echo bind=ro
        echo t > /scratch/t && echo tmpfs=ok
        (touch /newfile) 2>/dev/null && echo rootfs=rw || echo rootfs=ro
        chown 1000 /scratch/t 2>/dev/null && echo chown=ok || echo chown=denied
        grep -E '^(Seccomp|SigBlk|SigIgn):' /proc/self/status | tr -d '\t'
        echo ready
        exec sleep 1000
    "#;
    let mut spec = pod.spec(&rootfs, "probe", script);
    spec.env.push("FOO=bar".into());
    spec.cwd = "/work".into();
    spec.hostname = "probe-host".into();
    spec.readonly_rootfs = true;
    spec.capabilities.drop = vec!["CHOWN".into()];
    spec.resources.memory_limit = Some(64 << 20);
    spec.resources.pids_limit = Some(50);
    spec.resources.cpu_shares = Some(256);
    spec.mounts = vec![
        Mount {
            source: vol.path().into(),
            destination: "/data".into(),
            readonly: true,
            kind: MountKind::Bind,
            propagation: Propagation::Private,
        },
        Mount {
            source: Default::default(),
            destination: "/scratch".into(),
            readonly: false,
            kind: MountKind::Tmpfs {
                size: Some(1 << 20),
            },
            propagation: Propagation::Private,
        },
    ];
    c.create(&spec, &pod.log_path("probe"), None).await?;
    c.start("probe").await?;
    assert!(
        eventually(T, || pod.log("probe").contains("ready")).await,
        "{}",
        pod.log("probe")
    );
    let log = pod.log("probe");
    for want in [
        "env=bar",
        "cwd=/work",
        "host=probe-host",
        "vol=from-host",
        "bind=ro",
        "tmpfs=ok",
        "rootfs=ro",
        "chown=denied",
        "Seccomp:2",
        // The shim's blocked SIGCHLD/SIGTERM and ignored SIGPIPE must not leak in.
        "SigBlk:0000000000000000",
        "SigIgn:0000000000000000",
    ] {
        assert!(
            log.contains(&format!("stdout F {want}\n")),
            "missing {want} in:\n{log}"
        );
    }
    let read = |ctl: &str, file: &str| {
        std::fs::read_to_string(pod.cgroup_dir(ctl, "probe").join(file)).unwrap_or_default()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes").trim(),
        (64u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max").trim(), "50");
    assert_eq!(read("cpu", "cpu.shares").trim(), "256");
    assert!(!vol.path().join("x").exists());

    let mut user = pod.spec(&rootfs, "user", "id -u; id -g; id -G");
    user.user = User {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![5],
        umask: None,
    };
    c.create(&user, &pod.log_path("user"), None).await?;
    c.start("user").await?;
    assert_eq!(wait_exit(&mut c, "user", T).await?.exit_code, Some(0));
    assert!(eventually(T, || pod.log("user").lines().count() >= 3).await);
    let out: Vec<String> = pod
        .log("user")
        .lines()
        .map(|l| l.splitn(4, ' ').nth(3).unwrap_or("").to_string())
        .collect();
    assert_eq!(out[..2], ["1000", "1000"]);
    assert!(out[2].split(' ').any(|g| g == "5"), "{out:?}");
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn joins_the_given_network_namespace() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let netns = Netns::new()?;
    run(
        "ip",
        &[
            "-n",
            &netns.name,
            "link",
            "add",
            "k1sv0",
            "type",
            "veth",
            "peer",
            "name",
            "k1sv1",
        ],
    )?;
    let mut pod = Pod::new("netns")?;
    let mut c = pod.spawn().await?;
    let mut spec = pod.spec(&rootfs, "net", "cat /proc/net/dev");
    spec.netns = Some(netns.path());
    c.create(&spec, &pod.log_path("net"), None).await?;
    c.start("net").await?;
    assert_eq!(wait_exit(&mut c, "net", T).await?.exit_code, Some(0));
    assert!(
        eventually(T, || pod.log("net").contains("k1sv1")).await,
        "{}",
        pod.log("net")
    );
    let devices: Vec<String> = pod
        .log("net")
        .lines()
        .filter_map(|l| {
            l.splitn(4, ' ')
                .nth(3)?
                .split_once(':')
                .map(|(d, _)| d.trim().to_string())
        })
        .filter(|d| !d.contains('|'))
        .collect();
    let mut devices = devices;
    devices.sort();
    assert_eq!(devices, ["k1sv0", "k1sv1", "lo"]);
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn shim_outlives_its_launcher_and_a_new_shim_adopts_its_containers() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("survive")?;
    // The "agent": a shell that starts the shim and then is killed with its whole group.
    let mut agent = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{SHIM_EXE} shim --dir {} && sleep 1000",
            pod.dir.path().display()
        ))
        .process_group(0)
        .spawn()?;
    let sock = pod.dir.path().join("shim.sock");
    assert!(eventually(T, || UnixStream::connect(&sock).is_ok()).await);
    let mut c = ShimClient::connect(pod.dir.path()).await?;
    pod.shim_pids.push(c.pid());
    c.create(
        &pod.spec(&rootfs, "app", "exec sleep 1000"),
        &pod.log_path("app"),
        None,
    )
    .await?;
    c.start("app").await?;
    let app_pid = c.state().await?[0].pid.unwrap();
    drop(c);

    nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(agent.id() as i32),
        nix::sys::signal::SIGKILL,
    )?;
    agent.wait()?;
    let mut c = ShimClient::connect(pod.dir.path()).await?;
    assert_eq!(c.state().await?[0].status, Status::Running);
    assert!(alive(app_pid));

    // The shim itself dies (kill -9): connect says so, the state file still knows the pod,
    // and the container keeps running.
    let old_shim = c.pid();
    drop(c);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_shim as i32),
        nix::sys::signal::SIGKILL,
    )?;
    assert!(eventually(T, || !alive(old_shim as i32)).await);
    match ShimClient::connect(pod.dir.path()).await {
        Err(ShimError::Gone { .. }) => {}
        other => panic!("expected Gone, got {:?}", other.map(|c| c.pid())),
    }
    let last = last_known_state(pod.dir.path())?;
    assert_eq!(
        (last[0].id.as_str(), last[0].status),
        ("app", Status::Running)
    );
    assert!(alive(app_pid));

    // A new shim adopts it: it can signal it and sees it exit, without an exit code since
    // it is not its parent.
    let mut c = pod.spawn().await?;
    assert_eq!(c.state().await?[0].status, Status::Running);
    c.kill("app", libc::SIGKILL).await?;
    let st = wait_exit(&mut c, "app", T).await?;
    assert_eq!(st.exit_code, None);
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn logs_rotate_and_keep_max_files() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("rotate")?;
    let mut c = pod.spawn().await?;
    let limits = LogLimits {
        max_size_bytes: 16 * 1024,
        max_files: 3,
    };
    c.create(
        &pod.spec(&rootfs, "chatty", "seq 1 20000"),
        &pod.log_path("chatty"),
        Some(limits),
    )
    .await?;
    c.start("chatty").await?;
    assert_eq!(wait_exit(&mut c, "chatty", T).await?.exit_code, Some(0));
    let dir = pod.log_path("chatty").parent().unwrap().to_path_buf();
    let files = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&dir)
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    };
    // The last line may sit in the newest rotated file if it triggered the rotation.
    let all = || {
        files()
            .iter()
            .map(|n| std::fs::read_to_string(dir.join(n)).unwrap_or_default())
            .collect::<String>()
    };
    assert!(
        eventually(T, || all().contains(" stdout F 20000\n")).await,
        "{:?}",
        files()
    );
    let names = files();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"0.log".to_string()));
    assert!(
        names.iter().filter(|n| n.starts_with("0.log.")).count() == 2,
        "{names:?}"
    );
    for n in &names {
        let size = std::fs::metadata(dir.join(n))?.len();
        assert!(size <= 16 * 1024 + 64, "{n} is {size} bytes");
    }
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_errors_and_the_shim_keeps_serving() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("bad")?;
    let mut c = pod.spawn().await?;
    let sock = pod.dir.path().join("shim.sock");
    let raw = UnixStream::connect(&sock)?;
    raw.set_read_timeout(Some(T))?;
    let mut w = raw.try_clone()?;
    let mut r = BufReader::new(raw);
    let mut ask = |line: &str| -> Result<serde_json::Value> {
        w.write_all(line.as_bytes())?;
        w.write_all(b"\n")?;
        let mut answer = String::new();
        r.read_line(&mut answer)?;
        Ok(serde_json::from_str(&answer)?)
    };
    let garbage = ask("\u{1}\u{2}not json at all")?;
    assert_eq!(garbage["kind"], "bad_request");
    assert!(garbage["message"]
        .as_str()
        .unwrap()
        .contains("malformed request"));
    let unknown = ask(r#"{"op":"teleport"}"#)?;
    assert!(
        unknown["message"].as_str().unwrap().contains("teleport"),
        "{unknown}"
    );
    let bad_spec = ask(
        r#"{"op":"create","spec":{"id":"x","rootfs":"/","args":[],"cgroup_path":"/x"},"log_path":"/tmp/x.log"}"#,
    )?;
    assert_eq!(bad_spec["kind"], "bad_request");
    assert!(
        bad_spec["message"].as_str().unwrap().contains("args"),
        "{bad_spec}"
    );
    let not_found = ask(r#"{"op":"start","id":"ghost"}"#)?;
    assert_eq!(not_found["kind"], "not_found");
    assert_eq!(ask(r#"{"op":"ping"}"#)?["result"], "pong");

    // Hostile: one line far over the limit closes that connection only.
    let mut big = UnixStream::connect(&sock)?;
    big.set_read_timeout(Some(T))?;
    let _ = big.write_all(&vec![b'x'; 2 << 20]);
    let mut answer = String::new();
    let _ = BufReader::new(&big).read_line(&mut answer);
    assert!(answer.contains("longer than"), "{answer}");

    let mut spec = pod.spec(&rootfs, "norootfs", "true");
    spec.rootfs = "/nonexistent/k1s/rootfs".into();
    let err = c
        .create(&spec, &pod.log_path("norootfs"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::BadRequest));
    assert!(
        err.to_string()
            .contains("rootfs /nonexistent/k1s/rootfs does not exist"),
        "{err}"
    );

    let spec = pod.spec(&rootfs, "ok", "true");
    c.create(&spec, &pod.log_path("ok"), None).await?;
    let err = c
        .create(&spec, &pod.log_path("ok"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::AlreadyExists), "{err}");
    let mut bad_cmd = pod.spec(&rootfs, "nocmd", "");
    bad_cmd.args = vec!["/bin/does-not-exist".into()];
    let err = c
        .create(&bad_cmd, &pod.log_path("nocmd"), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), Some(ErrorKind::Failed), "{err}");
    c.start("ok").await?;
    assert_eq!(wait_exit(&mut c, "ok", T).await?.exit_code, Some(0));
    c.shutdown(Duration::from_secs(1)).await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_stops_everything_and_cleans_up() -> Result<()> {
    let rootfs = Rootfs::new()?;
    let mut pod = Pod::new("down")?;
    let mut c = pod.spawn().await?;
    let shim_pid = c.pid() as i32;
    let mut pids = Vec::new();
    for (id, script) in [
        ("stubborn", "exec sleep 1000"),
        (
            "polite",
            "trap 'echo bye; exit 0' TERM; while true; do sleep 0.1; done",
        ),
    ] {
        let mut spec = pod.spec(&rootfs, id, script);
        spec.cgroup_path = format!("{}/pod/{id}", pod.cgroup_parent);
        c.create(&spec, &pod.log_path(id), None).await?;
        c.start(id).await?;
    }
    c.create(
        &pod.spec(&rootfs, "never-started", "true"),
        &pod.log_path("never-started"),
        None,
    )
    .await?;
    for s in c.state().await? {
        pids.push(s.pid.unwrap());
    }
    let pod_cgroup = format!("/sys/fs/cgroup/memory{}/pod", pod.cgroup_parent);
    assert!(Path::new(&pod_cgroup).exists());

    c.shutdown(Duration::from_secs(1)).await?;
    assert!(
        eventually(T, || !alive(shim_pid)).await,
        "shim still running"
    );
    for pid in pids {
        assert!(!alive(pid), "container process {pid} survived");
    }
    assert!(
        pod.log("polite").contains("stdout F bye"),
        "{}",
        pod.log("polite")
    );
    assert!(!Path::new(&pod_cgroup).exists(), "pod cgroup left behind");
    assert!(!pod.dir.path().join("state").exists());
    assert!(!pod.dir.path().join("state.json").exists());
    assert!(!pod.dir.path().join("shim.sock").exists());
    assert!(matches!(
        ShimClient::connect(pod.dir.path()).await,
        Err(ShimError::Gone { .. })
    ));
    Ok(())
}
