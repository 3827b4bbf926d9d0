//! Test harness: a real `k1s server` process in its own temp data dir on its own port, with
//! helpers to drive it with the real kubectl and curl. Everything it starts is stopped and
//! removed on drop, even when the test fails. `inprocess` is the cluster without a process,
//! for controller tests; `eventually` polls either.
#![allow(dead_code)]

pub mod inprocess;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub port: u16,
    pub kubeconfig: PathBuf,
    extra: Vec<String>,
    bin: PathBuf,
}

/// The resident set size of process `pid` in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub fn k1s_bin() -> &'static str {
    env!("CARGO_BIN_EXE_k1s")
}

impl TestServer {
    /// A control plane only (`--disable-agent`): the API tests need no node.
    pub fn start() -> TestServer {
        Self::start_with(&["--disable-agent"])
    }

    pub fn start_with(extra: &[&str]) -> TestServer {
        Self::start_bin(Path::new(k1s_bin()), extra)
    }

    /// A server run from another copy of the binary (an installed one).
    pub fn start_bin(bin: &Path, extra: &[&str]) -> TestServer {
        let dir = tempfile::Builder::new()
            .prefix("k1s-test-")
            .tempdir()
            .expect("tempdir");
        let kubeconfig = dir.path().join("kubeconfig.yaml");
        let mut s = TestServer {
            dir,
            child: None,
            port: 0,
            kubeconfig,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            bin: bin.to_path_buf(),
        };
        s.spawn();
        s
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Start (or restart) the process and wait for the kubeconfig it writes when ready.
    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.kubeconfig);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log file");
        let port = if self.port == 0 {
            "0".to_string()
        } else {
            self.port.to_string()
        };
        let child = Command::new(&self.bin)
            .args(["server", "--data-dir"])
            .arg(self.dir.path().join("data"))
            // Loopback unless the test asks otherwise (pods reach the API on the node's
            // address through the `kubernetes` Service).
            .args(if self.extra.iter().any(|a| a == "--bind-address") {
                &[][..]
            } else {
                &["--bind-address", "127.0.0.1"][..]
            })
            .args(["--https-listen-port", &port, "--write-kubeconfig"])
            .arg(&self.kubeconfig)
            .args(["--config", "/dev/null"])
            .args(&self.extra)
            .env("K1S_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting k1s");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.kubeconfig.exists() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "k1s server exited with {status} before it was ready; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "k1s server not ready within 30s; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let server = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("server line");
        self.port = server
            .trim_matches('"')
            .rsplit(':')
            .next()
            .and_then(|p| p.trim().parse().ok())
            .expect("port");
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if c.try_wait().ok().flatten().is_some() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{}", self.port, path)
    }

    pub fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("data/server/tls")
    }

    /// kubectl against this server. Returns (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str]) -> (bool, String, String) {
        self.kubectl_stdin(args, None)
    }

    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        Kubectl {
            kubeconfig: self.kubeconfig.clone(),
            home: self.dir.path().to_path_buf(),
        }
        .run(args, stdin)
    }

    /// kubectl for a background thread (a stand-in kubelet): owned, with its own HOME so its
    /// discovery cache is not the test's.
    pub fn kubectl_for_thread(&self) -> Kubectl {
        Kubectl {
            kubeconfig: self.kubeconfig.clone(),
            home: self.data_dir().to_path_buf(),
        }
    }

    /// kubectl that must succeed; returns stdout.
    pub fn k(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }

    pub fn k_in(&self, args: &[&str], stdin: &str) -> String {
        let (ok, out, err) = self.kubectl_stdin(args, Some(stdin));
        assert!(ok, "kubectl {args:?} failed:\nstdout: {out}\nstderr: {err}");
        out
    }

    /// curl with the admin certificate (or none). Returns (status, body).
    pub fn curl(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, &[u8])>,
        authenticated: bool,
    ) -> (u16, String) {
        let tls = self.tls_dir();
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sS",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "-X",
            method,
            "--cacert",
        ])
        .arg(tls.join("ca.crt"));
        if authenticated {
            cmd.arg("--cert")
                .arg(tls.join("admin.crt"))
                .arg("--key")
                .arg(tls.join("admin.key"));
        }
        let body_file = self.dir.path().join(format!("body-{}", rand_suffix()));
        if let Some((ct, b)) = body {
            std::fs::write(&body_file, b).expect("body file");
            cmd.args(["-H", &format!("Content-Type: {ct}"), "--data-binary"])
                .arg(format!("@{}", body_file.display()));
        }
        cmd.arg(self.url(path));
        let out = cmd.output().expect("curl");
        let _ = std::fs::remove_file(&body_file);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.curl("GET", path, None, true);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// A kube::Client over HTTPS from the written kubeconfig.
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(cfg).expect("client")
    }
}

/// kubectl with a kubeconfig and HOME of its own.
#[derive(Clone)]
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    pub home: PathBuf,
}

impl Kubectl {
    /// Run kubectl with `stdin` as its input. Returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new("kubectl");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env("KUBECTL_EXTERNAL_DIFF", "diff -u -N")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(input.as_bytes())
                .expect("write stdin");
        }
        let out: Output = child.wait_with_output().expect("kubectl output");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// stdout of kubectl, whether or not it succeeded (a stand-in kubelet retries anyway).
    pub fn out(&self, args: &[&str], stdin: Option<&str>) -> String {
        self.run(args, stdin).1
    }
}

/// A step run on its own thread every `period` until dropped (a stand-in kubelet).
pub struct Background {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Background {
    pub fn every(period: Duration, mut step: impl FnMut() + Send + 'static) -> Background {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                step();
                std::thread::sleep(period);
            }
        });
        Background {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Poll `f` every `every` until it holds, or panic after `secs`.
pub fn wait_for_every(what: &str, secs: u64, every: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(every);
    }
}

/// Poll `f` every 100 ms until it holds, or panic after `secs`.
pub fn wait_for(what: &str, secs: u64, f: impl FnMut() -> bool) {
    wait_for_every(what, secs, Duration::from_millis(100), f)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed) ^ (std::process::id() as u64) << 32
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!("--- k1s server log ---\n{}", self.log());
        }
    }
}

/// Poll `f` every 20 ms until it returns Some, or panic after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
