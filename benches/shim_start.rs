//! Container start latency through the shim versus `runc run` of the same bundle, and the
//! shim's idle RSS. Run as root: `cargo bench --bench shim_start`.
//!
//! Latency is from sending Create, through Start and seeing the container's `echo` exit (State
//! polled every millisecond), to the answer of Remove: p50 and p90 over 20 runs. runc's is the
//! wall time of `runc run` (create, start, wait, delete) on the bundle the shim wrote, so both
//! sides include the delete. The shim's figure also includes writing the bundle, which runc's
//! does not. Both keep their state on /run (tmpfs) as in production; container logs go to a
//! disk directory, as /var/log/pods is.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k1s::sandbox::shim::{ShimClient, Status};
use k1s::sandbox::spec::{write_bundle, ContainerSpec};

const RUNS: usize = 20;

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(bench())
}

fn rootfs(dir: &Path) -> anyhow::Result<()> {
    for d in ["bin", "etc", "proc", "dev", "sys", "tmp"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))?;
    for a in ["sh", "echo", "sleep"] {
        symlink("busybox", dir.join("bin").join(a))?;
    }
    Ok(())
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn bench() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    rootfs(root.path())?;
    // Where each side keeps its state in production: the shim's pod directory (state.json,
    // libcontainer's state, bundles) under /run/k1s/pods, runc's root /run/runc; both tmpfs.
    let pod = run_tempdir()?;
    let logs = tempfile::tempdir()?;
    let cg = format!("/k1s-bench-{}", std::process::id());
    let spec = |id: &str, args: &[&str]| {
        let mut s = ContainerSpec::new(
            id,
            root.path(),
            args.iter().map(|a| a.to_string()).collect(),
        );
        s.cgroup_path = format!("{cg}/{id}");
        s.env = vec!["PATH=/bin".into()];
        // runc, like the shim, cannot raise the hard limit without CAP_SYS_RESOURCE.
        s.nofile_limit = nix_hard_nofile();
        s
    };

    let mut c = ShimClient::spawn(Path::new(env!("CARGO_BIN_EXE_k1s")), pod.path()).await?;
    let mut shim = Vec::new();
    let (mut creates, mut starts, mut removes) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..RUNS {
        let id = format!("e{i}");
        let s = spec(&id, &["/bin/echo", "hello"]);
        let t = Instant::now();
        c.create(&s, &logs.path().join(&id).join("0.log"), None)
            .await?;
        creates.push(t.elapsed());
        let t1 = Instant::now();
        c.start(&id).await?;
        starts.push(t1.elapsed());
        loop {
            if c.state()
                .await?
                .iter()
                .any(|s| s.id == id && s.status == Status::Exited)
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let t2 = Instant::now();
        c.remove(&id).await?;
        removes.push(t2.elapsed());
        shim.push(t.elapsed());
    }

    let mut runc = Vec::new();
    let runc_ok = Command::new("runc").arg("--version").output().is_ok();
    if runc_ok {
        let state = run_tempdir()?;
        for i in 0..RUNS {
            let id = format!("k1s-bench-runc-{}-{i}", std::process::id());
            let bundle = run_tempdir()?;
            write_bundle(
                &spec(&format!("r{i}"), &["/bin/echo", "hello"]),
                bundle.path(),
            )?;
            let t = Instant::now();
            let st = Command::new("runc")
                .arg("--root")
                .arg(state.path())
                .args(["run", "--bundle"])
                .arg(bundle.path())
                .arg(&id)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()?;
            runc.push(t.elapsed());
            anyhow::ensure!(st.success(), "runc run failed: {st}");
        }
    }

    c.create(
        &spec("idle", &["/bin/sleep", "1000"]),
        &logs.path().join("idle/0.log"),
        None,
    )
    .await?;
    c.start("idle").await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let field = |file: &str, name: &str| -> anyhow::Result<String> {
        let text = std::fs::read_to_string(format!("/proc/{}/{file}", c.pid()))?;
        Ok(text
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| "?".into()))
    };
    let (rss, pss, anon) = (
        field("status", "VmRSS:")?,
        field("smaps_rollup", "Pss:")?,
        field("smaps_rollup", "Pss_Anon:")?,
    );
    c.shutdown(Duration::from_secs(1)).await?;
    for h in std::fs::read_dir("/sys/fs/cgroup")?.flatten() {
        let top = h.path().join(cg.trim_start_matches('/'));
        if let Ok(children) = std::fs::read_dir(&top) {
            for ch in children.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(ch.path());
            }
        }
        let _ = std::fs::remove_dir(&top);
    }

    println!("| what ({RUNS} runs, echo in busybox) | p50 | p90 |");
    println!("| --- | --- | --- |");
    let (s50, s90) = (pct(&mut shim, 0.5), pct(&mut shim, 0.9));
    println!("| k1s shim: Create, Start, exit, Remove | {s50:.1?} | {s90:.1?} |");
    println!(
        "| - of which Create request | {:.1?} | {:.1?} |",
        pct(&mut creates, 0.5),
        pct(&mut creates, 0.9)
    );
    println!(
        "| - of which Start request | {:.1?} | {:.1?} |",
        pct(&mut starts, 0.5),
        pct(&mut starts, 0.9)
    );
    println!(
        "| - of which Remove request | {:.1?} | {:.1?} |",
        pct(&mut removes, 0.5),
        pct(&mut removes, 0.9)
    );
    if runc_ok {
        let (r50, r90) = (pct(&mut runc, 0.5), pct(&mut runc, 0.9));
        println!("| runc run (same bundle) | {r50:.1?} | {r90:.1?} |");
        println!(
            "ratio shim/runc p50: {:.2}",
            s50.as_secs_f64() / r50.as_secs_f64()
        );
    } else {
        println!("runc not installed: no comparison");
    }
    // The binary's pages are shared with the agent and every other shim; the anonymous part
    // is what each further pod costs.
    println!(
        "shim idle with one running container: RSS {rss}, PSS {pss}, of which anonymous {anon}"
    );
    Ok(())
}

fn run_tempdir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("k1s-bench-")
        .tempdir_in("/run")
}

fn nix_hard_nofile() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(_, hard)| hard.min(1_048_576))
}
