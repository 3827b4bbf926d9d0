//! A real OCI registry for tests: Debian's `docker-registry` (Docker's distribution) on a
//! free loopback port with filesystem storage in a temp dir, optionally behind htpasswd basic
//! auth, stopped on Drop. Test images come from `scripts/test-images.sh` (built once per test
//! process) and are pushed with skopeo.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Registry {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    creds: Option<(String, String)>,
    cert_dir: Option<PathBuf>,
}

/// The OCI layout and tarballs built by `scripts/test-images.sh`.
pub fn images_dir() -> Result<PathBuf> {
    static BUILT: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = built.as_ref() {
        return Ok(p.clone());
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-images");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/test-images.sh");
    let status = Command::new("sh")
        .arg(&script)
        .arg(&out)
        .status()
        .context("running scripts/test-images.sh")?;
    if !status.success() {
        bail!("scripts/test-images.sh failed: {status}");
    }
    *built = Some(out.clone());
    Ok(out)
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A bcrypt htpasswd line, from `htpasswd` (apache2-utils) if present, else python3's crypt.
fn htpasswd_line(user: &str, pass: &str) -> Result<String> {
    if let Ok(out) = Command::new("htpasswd").args(["-nbB", user, pass]).output() {
        if out.status.success() {
            return Ok(String::from_utf8(out.stdout)?.trim().to_string());
        }
    }
    let out = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-c",
            "import crypt,sys; print(crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH)))",
            user,
            pass,
        ])
        .output()
        .context("python3 for bcrypt")?;
    if !out.status.success() {
        bail!(
            "bcrypt via python3 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(format!("{user}:{}", String::from_utf8(out.stdout)?.trim()))
}

impl Registry {
    pub fn start(basic_auth: Option<(&str, &str)>) -> Result<Self> {
        Self::start_with(basic_auth, None)
    }

    /// With `tls`, the registry serves HTTPS and requires a client certificate from its CA.
    pub fn start_with(
        basic_auth: Option<(&str, &str)>,
        tls: Option<&super::tls::TlsFiles>,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let storage = dir.path().join("storage");
        std::fs::create_dir_all(&storage)?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            storage.display()
        );
        if let Some(t) = tls {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n    clientcas:\n      - {}\n",
                t.server_cert.display(),
                t.server_key.display(),
                t.ca.display()
            ));
        }
        if let Some((u, p)) = basic_auth {
            let path = dir.path().join("htpasswd");
            std::fs::write(&path, htpasswd_line(u, p)? + "\n")?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: k1s-test\n    path: {}\n",
                path.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting docker-registry (apt-get install docker-registry)")?;
        let mut reg = Registry {
            child,
            port,
            dir,
            creds: basic_auth.map(|(u, p)| (u.to_string(), p.to_string())),
            cert_dir: tls.map(|t| t.skopeo_dir.clone()),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = reg.child.try_wait()? {
                bail!("docker-registry exited ({status}): {}", reg.log());
            }
            if Instant::now() > deadline {
                bail!("docker-registry did not listen on {port}: {}", reg.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(reg)
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Push `name` from the test OCI layout to `repo_tag` (e.g. `library/busybox:latest`).
    pub fn push(&self, name: &str, repo_tag: &str) -> Result<()> {
        let src = format!("oci:{}:{name}", images_dir()?.join("oci").display());
        let dst = format!("docker://{}/{repo_tag}", self.addr());
        let mut cmd = Command::new("skopeo");
        cmd.args([
            "--insecure-policy",
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
        ]);
        if let Some(d) = &self.cert_dir {
            cmd.arg(format!("--dest-cert-dir={}", d.display()));
        }
        if let Some((u, p)) = &self.creds {
            cmd.arg(format!("--dest-creds={u}:{p}"));
        }
        let out = cmd.arg(&src).arg(&dst).output().context("running skopeo")?;
        if !out.status.success() {
            bail!(
                "skopeo copy {src} {dst}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The stored bytes of a blob, to corrupt it behind the registry's back.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
