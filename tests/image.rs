//! Integration tests of the image store against a real registry (Debian's docker-registry on
//! loopback), real overlayfs mounts and real tarballs. Needs root, docker-registry, skopeo
//! and busybox-static (scripts/test-images.sh installs what is missing).

mod image_support;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use image_support::registry::{images_dir, Registry};
use image_support::{count_entries, mirror_yaml, MountGuard};
use k1s::sandbox::image::{
    parse_docker_config_json, Image, ImageError, ImageStore, Platform, PullPolicy, Registries,
};

fn store(root: &Path, yaml: &str) -> ImageStore {
    let regs = Registries::parse(yaml).unwrap();
    ImageStore::open(root, regs, Platform::host()).unwrap()
}

/// Like `store`, but never falls back to the (unreachable) default endpoint.
fn offline_store(root: &Path, yaml: &str) -> ImageStore {
    let regs = Registries::parse(yaml)
        .unwrap()
        .with_default_endpoint(false);
    ImageStore::open(root, regs, Platform::host()).unwrap()
}

fn env_of(img: &Image, key: &str) -> Option<String> {
    img.config
        .env
        .iter()
        .find_map(|e| e.strip_prefix(&format!("{key}=")).map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_through_docker_io_mirror_by_tag_and_digest_then_restart() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("images");
    let yaml = mirror_yaml("docker.io", &reg.addr());

    let s = store(&root, &yaml);
    let t = Instant::now();
    let img = s.pull("busybox", &[]).await?;
    let cold = t.elapsed();
    assert_eq!(img.repo_tags, vec!["docker.io/library/busybox:latest"]);
    assert_eq!(img.repo_digests.len(), 1);
    assert!(img.repo_digests[0].starts_with("docker.io/library/busybox@sha256:"));
    assert_eq!(env_of(&img, "K1S_TEST").as_deref(), Some("busybox"));
    assert_eq!(img.config.cmd, vec!["sh"]);
    assert_eq!(img.config.user, "0:0");
    assert_eq!(img.layers.len(), 1);
    assert!(img.size > 500_000, "size {}", img.size);
    let layer = root
        .join("layers/sha256")
        .join(img.layers[0].trim_start_matches("sha256:"));
    assert!(layer.join("bin/busybox").is_file());
    assert_eq!(
        std::fs::read_link(layer.join("bin/sh"))?,
        Path::new("busybox")
    );

    let t = Instant::now();
    let again = s.pull("docker.io/library/busybox:latest", &[]).await?;
    let warm_pull = t.elapsed();
    assert_eq!(again, img);
    let t = Instant::now();
    let ensured = s.ensure("busybox", PullPolicy::IfNotPresent, &[]).await?;
    let warm_ensure = t.elapsed();
    assert_eq!(ensured.id, img.id);
    eprintln!(
        "MEASURE busybox pull cold={cold:?} warm_pull(manifest check)={warm_pull:?} warm_ensure(IfNotPresent)={warm_ensure:?}"
    );

    // By digest, through the same mirror.
    let digest = img.repo_digests[0].split('@').nth(1).unwrap().to_string();
    let by_digest = s.pull(&format!("busybox@{digest}"), &[]).await?;
    assert_eq!(by_digest.id, img.id);
    assert_eq!(s.lookup(&format!("busybox@{digest}")).unwrap().id, img.id);
    assert_eq!(s.lookup(&img.id).unwrap().id, img.id);
    assert!(s.lookup("busybox:other").is_none());
    assert_eq!(count_entries(&root.join("tmp")), 0);

    // A restarted agent knows its images without the network.
    drop(s);
    drop(reg);
    let s = store(&root, &yaml);
    assert_eq!(s.list(), vec![img.clone()]);
    let found = s.ensure("busybox", PullPolicy::Never, &[]).await?;
    assert_eq!(found.id, img.id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pulls_do_the_work_once() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("layered", "library/layered:latest")?;
    reg.push("busybox", "library/busybox:latest")?;
    let tmp = tempfile::tempdir()?;
    let s = offline_store(tmp.path(), &mirror_yaml("docker.io", &reg.addr()));
    let (a, b, c) = tokio::join!(
        s.pull("layered", &[]),
        s.pull("layered", &[]),
        s.pull("busybox", &[])
    );
    let (a, b, c) = (a?, b?, c?);
    assert_eq!(a.id, b.id);
    // The base layer is shared: busybox's only layer is layered's first.
    assert_eq!(c.layers[0], a.layers[0]);
    assert_eq!(count_entries(&tmp.path().join("layers/sha256")), 4); // 2 dirs + 2 .json
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_rule_maps_the_repository() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "mirror/busybox:latest")?;
    let tmp = tempfile::tempdir()?;
    let yaml = format!(
        "{}    rewrite:\n      \"^library/(.*)\": \"mirror/$1\"\n",
        mirror_yaml("docker.io", &reg.addr())
    );
    let s = offline_store(tmp.path(), &yaml);
    let img = s.pull("busybox:latest", &[]).await?;
    // Stored under the name the user asked for, as k3s/containerd do.
    assert_eq!(img.repo_tags, vec!["docker.io/library/busybox:latest"]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_from_registries_yaml_and_pull_secrets() -> Result<()> {
    let reg = Registry::start(Some(("k1s", "s3cret")))?;
    reg.push("busybox", "private/busybox:1")?;
    let addr = reg.addr();
    let tmp = tempfile::tempdir()?;
    let image = format!("{addr}/private/busybox:1");

    // No credentials: the registry's own UNAUTHORIZED text comes back.
    let s = offline_store(&tmp.path().join("a"), &mirror_yaml(&addr, &addr));
    let err = s.pull(&image, &[]).await.unwrap_err().to_string();
    assert!(err.contains("401") && err.contains("UNAUTHORIZED"), "{err}");

    // Credentials in registries.yaml `configs`.
    let yaml = format!(
        "{}configs:\n  \"{addr}\":\n    auth:\n      username: k1s\n      password: s3cret\n",
        mirror_yaml(&addr, &addr)
    );
    let s = offline_store(&tmp.path().join("b"), &yaml);
    assert_eq!(s.pull(&image, &[]).await?.repo_tags, vec![image.clone()]);

    // Credentials from an imagePullSecret (.dockerconfigjson), and a wrong password.
    let secret = format!(r#"{{"auths":{{"{addr}":{{"auth":"azFzOnMzY3JldA=="}}}}}}"#);
    let auths = parse_docker_config_json(secret.as_bytes())?;
    let s = offline_store(&tmp.path().join("c"), &mirror_yaml(&addr, &addr));
    assert_eq!(s.pull(&image, &auths).await?.repo_tags, vec![image.clone()]);
    let mut wrong = auths.clone();
    wrong[0].password = "nope".into();
    let s = offline_store(&tmp.path().join("d"), &mirror_yaml(&addr, &addr));
    let err = s.pull(&image, &wrong).await.unwrap_err().to_string();
    assert!(err.contains("UNAUTHORIZED"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_index_resolves_to_the_platform() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("multi", "library/multi:latest")?;
    let tmp = tempfile::tempdir()?;
    let yaml = mirror_yaml("docker.io", &reg.addr());
    let open = |dir: &str, arch: &str, variant: Option<&str>| {
        let regs = Registries::parse(&yaml)
            .unwrap()
            .with_default_endpoint(false);
        let p = Platform {
            os: "linux".into(),
            architecture: arch.into(),
            variant: variant.map(str::to_string),
        };
        ImageStore::open(&tmp.path().join(dir), regs, p).unwrap()
    };
    let amd = open("amd", "amd64", None).pull("multi", &[]).await?;
    assert_eq!(env_of(&amd, "K1S_TEST").as_deref(), Some("multi-amd64"));
    let arm = open("arm", "arm64", None).pull("multi", &[]).await?;
    assert_eq!(env_of(&arm, "K1S_TEST").as_deref(), Some("multi-arm64"));
    assert_ne!(amd.id, arm.id);
    // The repo digest is the index's, the same on every platform.
    assert_eq!(amd.repo_digests, arm.repo_digests);
    let host = Platform::host();
    if host.architecture == "amd64" || host.architecture == "arm64" {
        let mine = offline_store(&tmp.path().join("host"), &yaml)
            .pull("multi", &[])
            .await?;
        let want = format!("multi-{}", host.architecture);
        assert_eq!(env_of(&mine, "K1S_TEST"), Some(want));
    }
    let err = open("rv", "riscv64", None)
        .pull("multi", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(err, ImageError::NoMatchingPlatform { .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("linux/riscv64") && msg.contains("linux/arm64/v8"),
        "{msg}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_mismatch_is_refused_and_nothing_is_stored() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/tamper:latest")?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("images");
    let s = offline_store(&root, &mirror_yaml("docker.io", &reg.addr()));
    // Find the layer blob through a clean pull in another store, then corrupt it.
    let clean = offline_store(
        &tmp.path().join("clean"),
        &mirror_yaml("docker.io", &reg.addr()),
    );
    clean.pull("tamper", &[]).await?;
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(images_dir()?.join("oci/index.json"))?)?;
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.blob_path(&manifest_digest))?)?;
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    let blob = reg.blob_path(layer_digest);
    let mut bytes = std::fs::read(&blob)?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&blob, &bytes)?;

    let err = s.pull("tamper", &[]).await.unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(layer_digest), "{err}");
    assert!(s.list().is_empty());
    assert_eq!(count_entries(&root.join("layers/sha256")), 0);
    assert_eq!(count_entries(&root.join("tmp")), 0);
    assert_eq!(count_entries(&root.join("images")), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_images_carry_the_registry_error_and_policies_apply() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    let tmp = tempfile::tempdir()?;
    let s = offline_store(tmp.path(), &mirror_yaml("docker.io", &reg.addr()));
    let err = s.pull("busybox:nope", &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("MANIFEST_UNKNOWN") && err.contains("404"),
        "{err}"
    );
    assert!(err.contains(&format!("http://{}", reg.addr())), "{err}");
    // distribution 2.8 answers MANIFEST_UNKNOWN for unknown repositories too.
    let err = s.pull("nosuchimage", &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("nosuchimage") && err.contains("404: "),
        "{err}"
    );
    let err = s.pull("Bad/Name", &[]).await.unwrap_err().to_string();
    assert!(err.contains("invalid image reference"), "{err}");

    let err = s
        .ensure("busybox", PullPolicy::Never, &[])
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::NeverPull { .. }));
    assert!(err.to_string().contains("pull policy of Never"), "{err}");
    let img = s.ensure("busybox", PullPolicy::IfNotPresent, &[]).await?;
    assert_eq!(
        s.ensure("busybox", PullPolicy::Never, &[]).await?.id,
        img.id
    );
    assert_eq!(
        s.ensure("busybox", PullPolicy::Always, &[]).await?.id,
        img.id
    );
    // Always goes to the registry even with the image present: with it gone, it fails.
    drop(reg);
    let err = s
        .ensure("busybox", PullPolicy::Always, &[])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    assert_eq!(
        s.ensure("busybox", PullPolicy::IfNotPresent, &[]).await?.id,
        img.id
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_rootfs_merges_layers_with_whiteouts_opaque_dirs_and_hardlinks() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("layered", "library/layered:latest")?;
    let tmp = tempfile::tempdir()?;
    let s = offline_store(
        &tmp.path().join("images"),
        &mirror_yaml("docker.io", &reg.addr()),
    );
    let img = s.pull("layered", &[]).await?;
    assert_eq!(img.layers.len(), 2);
    let cdir = tmp.path().join("containers/c1");
    let _guard = MountGuard(cdir.clone());
    let t = Instant::now();
    let rootfs = s.mount_rootfs(&img, &cdir)?;
    eprintln!("MEASURE mount_rootfs (2 layers) = {:?}", t.elapsed());
    assert_eq!(rootfs, cdir.join("rootfs"));
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(!rootfs.join("etc/gone.txt").exists(), "whiteout");
    assert!(rootfs.join("etc/passwd").is_file());
    assert!(!rootfs.join("data/old.txt").exists(), "opaque dir");
    assert_eq!(
        std::fs::read_to_string(rootfs.join("data/new.txt"))?,
        "new\n"
    );
    let (a, b) = (
        rootfs.join("hl/a").metadata()?,
        rootfs.join("hl/b").metadata()?,
    );
    assert_eq!(a.ino(), b.ino(), "hardlink");
    assert_eq!(a.nlink(), 2);
    // Writes land in the container's upper dir, never in the shared layers.
    std::fs::write(rootfs.join("tmp/written"), "x")?;
    assert!(cdir.join("upper/tmp/written").is_file());
    // Mounting again (an agent restart re-attaching) is a no-op.
    assert_eq!(s.mount_rootfs(&img, &cdir)?, rootfs);
    ImageStore::unmount_rootfs(&cdir)?;
    assert!(!rootfs.join("bin").exists());
    ImageStore::unmount_rootfs(&cdir)?; // idempotent
    Ok(())
}

#[test]
fn long_lowerdir_lists_mount() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp
        .path()
        .join("images-with-a-long-root-path-to-overflow-the-page-limit");
    let s = ImageStore::open(&root, Registries::default(), Platform::host())?;
    let mut layers = Vec::new();
    for i in 0..200u32 {
        let hex = format!("{i:064x}");
        let dir = root.join("layers/sha256").join(&hex);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("f{i}")), i.to_string())?;
        std::fs::write(dir.join("shadowed"), i.to_string())?;
        std::fs::write(
            root.join(format!("layers/sha256/{hex}.json")),
            r#"{"size":1}"#,
        )?;
        layers.push(format!("sha256:{hex}"));
    }
    let img = Image {
        id: format!("sha256:{}", "f".repeat(64)),
        repo_tags: vec![],
        repo_digests: vec![],
        config: Default::default(),
        layers,
        size: 200,
    };
    let cdir = tmp.path().join("c");
    let _guard = MountGuard(cdir.clone());
    let t = Instant::now();
    let rootfs = s.mount_rootfs(&img, &cdir)?;
    eprintln!("MEASURE mount_rootfs (200 layers) = {:?}", t.elapsed());
    assert_eq!(std::fs::read_to_string(rootfs.join("f0"))?, "0");
    assert_eq!(std::fs::read_to_string(rootfs.join("f199"))?, "199");
    // The last layer in the list is the top one.
    assert_eq!(std::fs::read_to_string(rootfs.join("shadowed"))?, "199");
    ImageStore::unmount_rootfs(&cdir)?;

    let err = s
        .mount_rootfs(&img, &tmp.path().join("a,b"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("','"), "{err}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_docker_archive_and_oci_tarball() -> Result<()> {
    let dir = images_dir()?;
    let tmp = tempfile::tempdir()?;
    let s = store(tmp.path(), "");
    let docker = s.import(&dir.join("busybox-docker.tar")).await?;
    assert_eq!(docker.len(), 1);
    assert_eq!(docker[0].repo_tags, vec!["example.com/imported/busybox:v1"]);
    assert_eq!(env_of(&docker[0], "K1S_TEST").as_deref(), Some("busybox"));
    let oci = s.import(&dir.join("layered-oci.tar")).await?;
    assert_eq!(oci[0].repo_tags, vec!["example.com/imported/layered:v2"]);
    assert_eq!(oci[0].layers.len(), 2);
    assert_eq!(oci[0].layers[0], docker[0].layers[0], "base layer shared");
    assert!(s.lookup("example.com/imported/busybox:v1").is_some());
    assert_eq!(
        s.ensure("example.com/imported/layered:v2", PullPolicy::Never, &[])
            .await?
            .id,
        oci[0].id
    );
    // Re-importing is harmless.
    assert_eq!(
        s.import(&dir.join("layered-oci.tar")).await?[0].id,
        oci[0].id
    );
    assert_eq!(count_entries(&tmp.path().join("tmp")), 0);

    // Garbage and hostile tarballs.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, vec![0x42u8; 4096])?;
    let err = s.import(&junk).await.unwrap_err().to_string();
    assert!(err.contains("junk.tar"), "{err}");
    let empty = tmp.path().join("empty.tar");
    tar::Builder::new(std::fs::File::create(&empty)?).finish()?;
    let err = s.import(&empty).await.unwrap_err().to_string();
    assert!(err.contains("neither a docker archive"), "{err}");
    let evil = tmp.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&evil)?);
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Symlink);
        b.append_link(&mut h, "manifest.json", "/etc/hostname")?;
        b.finish()?;
    }
    let err = s.import(&evil).await.unwrap_err().to_string();
    assert!(err.contains("outside the archive"), "{err}");
    assert_eq!(count_entries(&tmp.path().join("tmp")), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_unused_images_oldest_first_and_orphan_layers() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    reg.push("layered", "library/layered:latest")?;
    reg.push("multi", "library/multi:latest")?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    let s = offline_store(root, &mirror_yaml("docker.io", &reg.addr()));
    let busybox = s.pull("busybox", &[]).await?;
    let multi = s.pull("multi", &[]).await?;
    let layered = s.pull("layered", &[]).await?;
    let usage = s.disk_usage();
    assert!(usage > 0);

    // Below the high threshold: nothing happens.
    assert!(s.gc(&HashSet::new(), usage, 0)?.is_empty());
    assert_eq!(s.list().len(), 3);

    // Above it: the oldest unused image goes first, until below the low threshold. Removing
    // busybox frees nothing (its layer is shared), so multi goes too; layered is in use.
    let in_use: HashSet<String> = ["docker.io/library/layered:latest".to_string()].into();
    let removed = s.gc(&in_use, 0, usage - 1)?;
    assert_eq!(removed, vec![busybox.id.clone(), multi.id.clone()]);
    assert_eq!(s.list(), vec![layered.clone()]);
    assert_eq!(count_entries(&root.join("layers/sha256")), 4);
    let cdir = root.join("c");
    let _guard = MountGuard(cdir.clone());
    s.mount_rootfs(&layered, &cdir)?;
    ImageStore::unmount_rootfs(&cdir)?;

    // Nothing in use: everything goes, layers included, and stays gone after a restart.
    let removed = s.gc(&HashSet::new(), 0, 0)?;
    assert_eq!(removed, vec![layered.id.clone()]);
    assert_eq!(count_entries(&root.join("layers/sha256")), 0);
    assert_eq!(s.disk_usage(), 0);
    drop(s);
    let s = offline_store(root, "");
    assert!(s.list().is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_dance() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    let proxy = image_support::token_proxy::TokenProxy::start(reg.addr(), "tok", "pw").await?;
    let tmp = tempfile::tempdir()?;

    let yaml = format!(
        "{}configs:\n  \"{}\":\n    auth: {{username: tok, password: pw}}\n",
        mirror_yaml("docker.io", &proxy.addr),
        proxy.addr
    );
    let s = offline_store(&tmp.path().join("a"), &yaml);
    let img = s.pull("busybox", &[]).await?;
    assert_eq!(img.repo_tags, vec!["docker.io/library/busybox:latest"]);
    let asked = proxy.token_requests.lock().unwrap().clone();
    assert!(
        asked[0].contains("service=k1s-test")
            && asked[0].contains("scope=repository%3Alibrary%2Fbusybox%3Apull"),
        "{asked:?}"
    );

    // Bad credentials: the token endpoint's refusal, with its text, is the error.
    let yaml = format!(
        "{}configs:\n  \"{}\":\n    auth: {{username: tok, password: wrong}}\n",
        mirror_yaml("docker.io", &proxy.addr),
        proxy.addr
    );
    let s = offline_store(&tmp.path().join("b"), &yaml);
    let err = s.pull("busybox", &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("token endpoint") && err.contains("bad credentials"),
        "{err}"
    );
    // An identity token (OAuth2 refresh token) is exchanged with a POST to the realm.
    let refresh = image_support::token_proxy::REFRESH;
    let yaml = format!(
        "{}configs:\n  \"{}\":\n    auth: {{identitytoken: {refresh}}}\n",
        mirror_yaml("docker.io", &proxy.addr),
        proxy.addr
    );
    let s = offline_store(&tmp.path().join("c"), &yaml);
    assert_eq!(s.pull("busybox", &[]).await?.id, img.id);
    let asked = proxy.token_requests.lock().unwrap().clone();
    assert!(
        asked.iter().any(|f| f.contains("grant_type=refresh_token")),
        "{asked:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_registry_with_ca_file_and_client_certificate() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let pki = image_support::tls::generate(&tmp.path().join("pki"))?;
    let reg = Registry::start_with(None, Some(&pki))?;
    reg.push("busybox", "library/busybox:latest")?;
    let addr = reg.addr();
    let image = format!("{addr}/library/busybox:latest");

    // No mirror: the default endpoint, https://127.0.0.1:PORT, with registries.yaml TLS.
    let yaml = format!(
        "configs:\n  \"{addr}\":\n    tls:\n      ca_file: {}\n      cert_file: {}\n      key_file: {}\n",
        pki.ca.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let img = store(&tmp.path().join("a"), &yaml)
        .pull(&image, &[])
        .await?;
    assert_eq!(img.repo_tags, vec![image.clone()]);

    // Unknown CA: refused, and the error says it is about the certificate.
    let err = store(&tmp.path().join("b"), "")
        .pull(&image, &[])
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("tls") && msg.contains("certificate"), "{msg}");

    // Trusted CA but no client certificate: the registry refuses the handshake.
    let yaml_no_client = format!(
        "configs:\n  \"{addr}\":\n    tls: {{ca_file: {}}}\n",
        pki.ca.display()
    );
    let no_client = store(&tmp.path().join("c"), &yaml_no_client)
        .pull(&image, &[])
        .await;
    assert!(no_client.is_err());

    // insecure_skip_verify skips the server check (the client certificate is still sent).
    let yaml_skip = format!(
        "configs:\n  \"{addr}\":\n    tls: {{insecure_skip_verify: true, cert_file: {}, key_file: {}}}\n",
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let skipped = store(&tmp.path().join("d"), &yaml_skip)
        .pull(&image, &[])
        .await?;
    assert_eq!(skipped.id, img.id);

    // A ca_file that is not PEM is a clear error naming the file.
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate")?;
    let yaml_junk = format!(
        "configs:\n  \"{addr}\":\n    tls: {{ca_file: {}}}\n",
        junk.display()
    );
    let junk_err = store(&tmp.path().join("e"), &yaml_junk)
        .pull(&image, &[])
        .await;
    let msg = junk_err.unwrap_err().to_string();
    assert!(msg.contains("junk.pem"), "{msg}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_tried_in_order() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let tmp = tempfile::tempdir()?;
    let yaml = format!(
        "mirrors:\n  docker.io:\n    endpoint: [\"http://127.0.0.1:{dead}\", \"http://{}\"]\n",
        reg.addr()
    );
    let s = offline_store(tmp.path(), &yaml);
    assert!(s.pull("busybox", &[]).await.is_ok());
    // When all fail, every endpoint's error is reported, first one first.
    let err = s
        .pull("busybox:missing", &[])
        .await
        .unwrap_err()
        .to_string();
    let first = err.find(&format!("127.0.0.1:{dead}")).unwrap();
    let second = err.find("MANIFEST_UNKNOWN").unwrap();
    assert!(first < second && err.contains("also tried"), "{err}");
    Ok(())
}

#[test]
fn crash_leftovers_are_cleaned_on_open() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    drop(ImageStore::open(
        root,
        Registries::default(),
        Platform::host(),
    )?);
    // What a kill -9 mid-pull can leave: a half-unpacked layer and a blob in tmp/, a size
    // file whose layer was never renamed into place, and (from older or foreign writers) an
    // image record whose layer is missing and a record that is not JSON.
    std::fs::create_dir_all(root.join("tmp/layer-1-0/bin"))?;
    std::fs::write(root.join("tmp/blob-1-1"), "partial")?;
    let hex = "a".repeat(64);
    std::fs::write(
        root.join(format!("layers/sha256/{hex}.json")),
        r#"{"size":1}"#,
    )?;
    let record = serde_json::json!({
        "id": format!("sha256:{}", "b".repeat(64)), "repo_tags": ["docker.io/library/x:latest"],
        "repo_digests": [], "config": {"env": [], "entrypoint": [], "cmd": [],
        "working_dir": "", "user": ""}, "layers": [format!("sha256:{hex}")], "size": 1,
        "layer_sizes": [1], "last_used": 0
    });
    std::fs::write(
        root.join(format!("images/{}.json", "b".repeat(64))),
        record.to_string(),
    )?;
    std::fs::write(
        root.join(format!("images/{}.json", "c".repeat(64))),
        "{not json",
    )?;

    let s = ImageStore::open(root, Registries::default(), Platform::host())?;
    assert!(s.list().is_empty());
    assert!(s.lookup("x").is_none());
    assert_eq!(count_entries(&root.join("tmp")), 0);
    assert_eq!(count_entries(&root.join("layers/sha256")), 0);
    Ok(())
}

/// Runs in a child process of `kill_9_mid_pull_leaves_no_partial_state` (a no-op otherwise).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of kill_9_mid_pull_leaves_no_partial_state"]
async fn crash_helper_pull() {
    let (Ok(root), Ok(mirror)) = (
        std::env::var("K1S_CRASH_ROOT"),
        std::env::var("K1S_CRASH_MIRROR"),
    ) else {
        return;
    };
    let s = offline_store(Path::new(&root), &mirror_yaml("docker.io", &mirror));
    let _ = s.pull("busybox", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_pull_leaves_no_partial_state() -> Result<()> {
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    let slow = image_support::slow_proxy::SlowProxy::start(reg.addr()).await?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("images");
    let child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--ignored",
            "--exact",
            "crash_helper_pull",
            "--test-threads=1",
        ])
        .env("K1S_CRASH_ROOT", &root)
        .env("K1S_CRASH_MIRROR", &slow.addr)
        .stdout(std::process::Stdio::null())
        .spawn()?;
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    // Wait until the layer download is under way, then SIGKILL.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let partial = std::fs::read_dir(root.join("tmp"))
            .map(|d| {
                d.flatten()
                    .any(|e| e.metadata().map(|m| m.len() > 64 << 10).unwrap_or(false))
            })
            .unwrap_or(false);
        if partial {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "download never started");
        anyhow::ensure!(
            child.0.try_wait()?.is_none(),
            "helper finished before the kill"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    child.0.kill()?; // SIGKILL
    child.0.wait()?;

    let s = offline_store(&root, &mirror_yaml("docker.io", &reg.addr()));
    assert!(s.list().is_empty());
    assert_eq!(count_entries(&root.join("tmp")), 0);
    assert_eq!(count_entries(&root.join("layers/sha256")), 0);
    let img = s.pull("busybox", &[]).await?;
    let cdir = tmp.path().join("c");
    let _guard = MountGuard(cdir.clone());
    assert!(s.mount_rootfs(&img, &cdir)?.join("bin/busybox").is_file());
    Ok(())
}

fn deadline_store(root: &Path, mirror: &str, deadline: std::time::Duration) -> ImageStore {
    let regs = Registries::parse(&mirror_yaml("docker.io", mirror))
        .unwrap()
        .with_default_endpoint(false);
    ImageStore::open_with(root, regs, Platform::host(), deadline).unwrap()
}

/// Files left in the store's temp dir and layers (a failed pull must leave neither).
fn leftovers(root: &Path) -> usize {
    count_entries(&root.join("tmp")) + count_entries(&root.join("layers/sha256"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_registry_fails_the_pull_on_the_progress_deadline() -> Result<()> {
    use image_support::hang::{Hang, Mode};
    use std::time::Duration;
    let reg = Registry::start(None)?;
    reg.push("busybox", "library/busybox:latest")?;
    let tmp = tempfile::tempdir()?;
    let deadline = Duration::from_secs(1);

    // Accepts, never answers: no response headers within the deadline.
    let silent = Hang::start(reg.addr(), Mode::Silent)?;
    let root = tmp.path().join("silent");
    let s = deadline_store(&root, &silent.addr, deadline);
    let t = Instant::now();
    let err = s.pull("busybox", &[]).await.unwrap_err().to_string();
    assert!(
        err.contains(
            "no response headers from the registry within 1s (image pull progress deadline)"
        ) && err.contains(&silent.addr),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(s.list().is_empty());
    assert_eq!(leftovers(&root), 0);

    // Manifest and config come, the layer's headers and first 4 KiB, then nothing.
    let stall = Hang::start(reg.addr(), Mode::StallBlobs)?;
    let root = tmp.path().join("stall");
    let s = deadline_store(&root, &stall.addr, deadline);
    let err = s.pull("busybox", &[]).await.unwrap_err().to_string();
    assert!(
        err.contains("no data from the registry for 1s (image pull progress deadline)")
            && err.contains("layer"),
        "{err}"
    );
    assert!(s.list().is_empty());
    assert_eq!(leftovers(&root), 0);

    // A pull given up by its caller mid-blob (a pod deleted) leaves no partial blob.
    let trickle = Hang::start(reg.addr(), Mode::TrickleBlobs)?;
    let root = tmp.path().join("trickle");
    let s = deadline_store(&root, &trickle.addr, deadline);
    let pull = tokio::spawn({
        let s = s.clone();
        async move { s.pull("busybox", &[]).await }
    });
    let until = Instant::now() + Duration::from_secs(20);
    while count_entries(&root.join("tmp")) == 0 {
        anyhow::ensure!(Instant::now() < until, "the blob download never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Slow but moving: the deadline is on progress, not on the whole pull.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!pull.is_finished(), "a trickling registry was cut off");
    pull.abort();
    let _ = pull.await;
    assert!(s.list().is_empty());
    assert_eq!(leftovers(&root), 0);

    // The same store pulls from a registry that answers.
    let root = tmp.path().join("good");
    let s = deadline_store(&root, &reg.addr(), deadline);
    assert!(s.pull("busybox", &[]).await.is_ok());
    Ok(())
}
