//! Pull, unpack and mount timings of the busybox test image from a loopback docker-registry,
//! side by side with a peer doing the same work (skopeo copy + umoci unpack). Prints a table.
//! Run: `cargo bench --bench image_pull` (as root; needs docker-registry, skopeo, umoci).

#[allow(dead_code)]
#[path = "../tests/image_support/registry.rs"]
mod registry;
#[allow(dead_code)]
#[path = "../tests/image_support/tls.rs"]
mod tls;

use std::process::Command;
use std::time::{Duration, Instant};

use k1s::sandbox::image::{ImageStore, Platform, PullPolicy, Registries};

const ROUNDS: usize = 5;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let reg = registry::Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://{}\"]\n",
        reg.addr()
    );
    let tmp = tempfile::tempdir()?;
    let open = |name: &str| {
        let regs = Registries::parse(&yaml).unwrap();
        ImageStore::open(&tmp.path().join(name), regs, Platform::host()).unwrap()
    };

    let mut cold = Vec::new();
    for i in 0..ROUNDS {
        let s = open(&format!("cold{i}"));
        let t = Instant::now();
        rt.block_on(s.pull("busybox", &[]))?;
        cold.push(t.elapsed());
    }
    let s = open("warm");
    rt.block_on(s.pull("busybox", &[]))?;
    let (mut warm_pull, mut warm_ensure) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        rt.block_on(s.pull("busybox", &[]))?;
        warm_pull.push(t.elapsed());
        let t = Instant::now();
        let img = rt.block_on(s.ensure("busybox", PullPolicy::IfNotPresent, &[]))?;
        warm_ensure.push(t.elapsed());
        assert!(!img.layers.is_empty());
    }
    let img = s.lookup("busybox").expect("pulled");
    let (mut mount, mut unmount) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let cdir = tmp.path().join(format!("c{i}"));
        let t = Instant::now();
        s.mount_rootfs(&img, &cdir)?;
        mount.push(t.elapsed());
        let t = Instant::now();
        ImageStore::unmount_rootfs(&cdir)?;
        unmount.push(t.elapsed());
    }

    let mut peer = Vec::new();
    for i in 0..ROUNDS {
        let layout = tmp.path().join(format!("peer{i}"));
        let bundle = tmp.path().join(format!("bundle{i}"));
        let t = Instant::now();
        let ok = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "-q", "--src-tls-verify=false"])
            .arg(format!("docker://{}/library/busybox:latest", reg.addr()))
            .arg(format!("oci:{}:busybox", layout.display()))
            .status()?
            .success()
            && Command::new("umoci")
                .args(["unpack", "--image"])
                .arg(format!("{}:busybox", layout.display()))
                .arg(&bundle)
                .stdout(std::process::Stdio::null())
                .status()?
                .success();
        anyhow::ensure!(ok, "peer pull failed");
        peer.push(t.elapsed());
    }

    let (c, p) = (median(cold), median(peer));
    println!("| what (busybox, loopback registry, median of {ROUNDS}) | time |");
    println!("| --- | --- |");
    println!("| k1s cold pull + unpack | {c:.2?} |");
    println!("| peer: skopeo copy + umoci unpack | {p:.2?} |");
    println!(
        "| ratio k1s / peer | {:.2} |",
        c.as_secs_f64() / p.as_secs_f64()
    );
    println!(
        "| k1s warm pull (manifest re-check) | {:.2?} |",
        median(warm_pull)
    );
    println!(
        "| k1s warm ensure IfNotPresent | {:.2?} |",
        median(warm_ensure)
    );
    println!(
        "| k1s mount_rootfs (median of 20) | {:.2?} |",
        median(mount)
    );
    println!(
        "| k1s unmount_rootfs (median of 20) | {:.2?} |",
        median(unmount)
    );
    Ok(())
}
