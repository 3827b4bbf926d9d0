//! Fixtures for the shim's integration tests: a busybox rootfs, a pod directory with a shim
//! in it, a network namespace, each undone in `Drop` even when the test fails.

#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use k1s::sandbox::shim::{last_known_state, ContainerState, ShimClient, Status};
use k1s::sandbox::spec::ContainerSpec;

pub const SHIM_EXE: &str = env!("CARGO_BIN_EXE_k1s");
const APPLETS: &[&str] = &[
    "sh", "echo", "sleep", "cat", "ls", "id", "env", "hostname", "wc", "head", "yes", "touch",
    "chown", "grep", "pwd", "true", "false", "seq", "dd", "tr",
];

/// A name unique to this test process and call, usable in cgroup paths and netns names.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}{}x{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A directory with Debian's static busybox and the applets the tests use.
pub struct Rootfs {
    pub dir: tempfile::TempDir,
}

impl Rootfs {
    pub fn new() -> Result<Rootfs> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        for d in [
            "bin", "etc", "proc", "dev", "sys", "tmp", "data", "scratch", "work",
        ] {
            std::fs::create_dir_all(root.join(d))?;
        }
        std::fs::copy("/bin/busybox", root.join("bin/busybox"))
            .context("copy /bin/busybox (apt-get install busybox-static)")?;
        for a in APPLETS {
            symlink("busybox", root.join("bin").join(a))?;
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\n",
        )?;
        std::fs::write(root.join("etc/group"), "root:x:0:\napp:x:1000:\n")?;
        Ok(Rootfs { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A pod directory, its logs directory and cgroup prefix; Drop kills and removes all.
pub struct Pod {
    pub dir: tempfile::TempDir,
    pub logs: tempfile::TempDir,
    /// `/k1s-test-<unique>`: every container's cgroup lives below it.
    pub cgroup_parent: String,
    pub name: String,
    pub shim_pids: Vec<u32>,
}

impl Pod {
    pub fn new(tag: &str) -> Result<Pod> {
        let name = unique(tag);
        Ok(Pod {
            dir: tempfile::tempdir()?,
            logs: tempfile::tempdir()?,
            cgroup_parent: format!("/k1s-test-{name}"),
            name,
            shim_pids: Vec::new(),
        })
    }

    pub async fn spawn(&mut self) -> Result<ShimClient> {
        let c = ShimClient::spawn(Path::new(SHIM_EXE), self.dir.path()).await?;
        self.shim_pids.push(c.pid());
        Ok(c)
    }

    pub fn spec(&self, rootfs: &Rootfs, id: &str, script: &str) -> ContainerSpec {
        let mut s = ContainerSpec::new(
            id,
            rootfs.path(),
            vec!["/bin/sh".into(), "-c".into(), script.into()],
        );
        s.cgroup_path = format!("{}/{id}", self.cgroup_parent);
        s.env = vec!["PATH=/bin".into()];
        s
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.logs.path().join(id).join("0.log")
    }

    pub fn log(&self, id: &str) -> String {
        std::fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub fn cgroup_dir(&self, controller: &str, id: &str) -> PathBuf {
        PathBuf::from(format!(
            "/sys/fs/cgroup/{controller}{}/{id}",
            self.cgroup_parent
        ))
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for pid in &self.shim_pids {
            kill9(*pid as i32);
        }
        if let Ok(cs) = last_known_state(self.dir.path()) {
            for c in cs {
                if let (Some(pid), Status::Created | Status::Running) = (c.pid, c.status) {
                    kill9(pid);
                }
            }
        }
        remove_cgroups(&self.cgroup_parent);
    }
}

fn kill9(pid: i32) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
}

/// Removes `path` and everything below it in every cgroup hierarchy, killing what is left.
pub fn remove_cgroups(path: &str) {
    let rel = path.trim_start_matches('/');
    let deadline = Instant::now() + Duration::from_secs(3);
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    for h in hierarchies.filter_map(|e| e.ok()) {
        let top = h.path().join(rel);
        if !top.is_dir() {
            continue;
        }
        let mut dirs = Vec::new();
        collect_dirs(&top, &mut dirs);
        // Children first.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                for p in procs.lines().filter_map(|l| l.parse().ok()) {
                    kill9(p);
                }
            }
            while std::fs::remove_dir(&d).is_err() && d.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

fn collect_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    out.push(dir.to_path_buf());
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.filter_map(|e| e.ok()) {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
}

/// Polls State until `id` has exited.
pub async fn wait_exit(c: &mut ShimClient, id: &str, within: Duration) -> Result<ContainerState> {
    wait_status(c, id, Status::Exited, within).await
}

pub async fn wait_status(
    c: &mut ShimClient,
    id: &str,
    want: Status,
    within: Duration,
) -> Result<ContainerState> {
    let deadline = Instant::now() + within;
    loop {
        let st = c.state().await?;
        if let Some(s) = st.iter().find(|s| s.id == id) {
            if s.status == want {
                return Ok(s.clone());
            }
        }
        if Instant::now() > deadline {
            bail!("{id} not {want:?} within {within:?}: {st:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `f` holds.
pub async fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

pub fn alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; only count running processes.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

/// `ip netns add`, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Result<Netns> {
        let name = unique("k1st-");
        run("ip", &["netns", "add", &name])?;
        Ok(Netns { name })
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

pub fn run(cmd: &str, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("run {cmd}"))?;
    if !out.status.success() {
        bail!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
