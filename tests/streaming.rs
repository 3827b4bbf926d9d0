//! kubectl exec, attach and port-forward end to end: the real kubectl (WebSocket v5 channel
//! protocol, and SPDY-over-WebSocket for port-forward) through the API server's proxy to the
//! node agent, the shim and real containers. One at a time (shared pod bridge); every test
//! cleans up its pods and network through `Node`'s drop, even when it fails.

mod common;
mod image_support;
mod node_support;

use node_support::{serial, Node};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// kubectl with its exit code: (code, stdout, stderr).
fn kubectl(n: &Node, args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    kubectl_env(n, &[], args, stdin)
}

fn kubectl_env(
    n: &Node,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> (i32, String, String) {
    let mut child = Command::new("kubectl")
        .args(args)
        .envs(env.iter().copied())
        .env("KUBECONFIG", &n.server.kubeconfig)
        .env("HOME", n.server.data_dir())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(input) = stdin {
        let mut w = child.stdin.take().expect("stdin");
        w.write_all(input.as_bytes()).expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn apply(n: &Node, yaml: &str) {
    n.server.k_in(&["apply", "-f", "-"], yaml);
}

/// A pod that runs until deleted, stopping at once on SIGTERM.
fn sleeper(name: &str, node: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
    env: [{{name: GREETING, value: hello}}]
"#
    )
}

#[test]
fn exec_gives_output_exit_codes_stdin_and_a_tty() {
    let _g = serial();
    let n = Node::start("stream-1", "10.211.0.0/16");
    apply(&n, &sleeper("sh", "stream-1"));
    n.wait_phase("sh", "Running");

    let (code, out, err) = kubectl(&n, &["exec", "sh", "--", "echo", "hi"], None);
    assert_eq!(
        (code, out.as_str()),
        (0, "hi\n"),
        "stderr: {err}\n{}",
        n.server.log()
    );

    let (code, out, _) = kubectl(
        &n,
        &[
            "exec",
            "sh",
            "--",
            "sh",
            "-c",
            "echo $GREETING; echo oops >&2; exit 3",
        ],
        None,
    );
    assert_eq!(code, 3, "kubectl exits with the command's code");
    assert_eq!(out, "hello\n", "the container's env is the exec's");

    let (_, _, err) = kubectl(&n, &["exec", "sh", "--", "sh", "-c", "echo oops >&2"], None);
    assert_eq!(err, "oops\n");

    let input = "line one\nline two\n";
    let (code, out, err) = kubectl(&n, &["exec", "-i", "sh", "--", "cat"], Some(input));
    assert_eq!(
        (code, out.as_str()),
        (0, input),
        "stdin reaches the process and its EOF too: {err}"
    );

    // Volume both ways: 1 MiB in, a few MiB out, nothing lost or reordered.
    let big: String = (0..1024).map(|i| format!("{i:01023}\n")).collect();
    let (code, out, err) = kubectl(
        &n,
        &["exec", "-i", "sh", "--", "sh", "-c", "wc -c"],
        Some(&big),
    );
    assert_eq!((code, out.trim()), (0, "1048576"), "{err}");
    let (code, out, _) = kubectl(&n, &["exec", "sh", "--", "sh", "-c", "seq 1 400000"], None);
    assert_eq!(code, 0);
    let expected: String = (1..=400000).map(|i| format!("{i}\n")).collect();
    assert!(
        out == expected,
        "seq output differs ({} vs {} bytes)",
        out.len(),
        expected.len()
    );

    // A tty: kubectl under script(1) has a terminal, sends its size and raw input. The size
    // follows the start (libcontainer cannot set a console size up front), hence the sleep.
    let cmd = format!(
        "export KUBECONFIG={} HOME={}; stty cols 91 rows 27; kubectl exec -it sh -- sh -c 'sleep 1; tty; stty size; exit 4'",
        n.server.kubeconfig.display(),
        n.server.data_dir().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(
        text.contains("27 91"),
        "the terminal's size reaches the pty: {text}"
    );
    assert_eq!(out.status.code(), Some(4), "{text}");

    // What a user waits for, kubectl's own start-up included.
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        let (code, _, _) = kubectl(&n, &["exec", "sh", "--", "true"], None);
        assert_eq!(code, 0);
    }
    let exec = start.elapsed() / runs;
    let start = Instant::now();
    for _ in 0..runs {
        n.server.k(&["get", "pod", "sh", "-o", "name"]);
    }
    let get = start.elapsed() / runs;
    eprintln!("kubectl exec round trip: {exec:?} (kubectl get pod, for scale: {get:?})");
}

#[test]
fn exec_refusals_use_upstreams_messages() {
    let _g = serial();
    let n = Node::start("stream-2", "10.212.0.0/16");
    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  nodeName: stream-2
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
  - name: done
    image: busybox
    command: ["true"]
---
apiVersion: v1
kind: Pod
metadata: {name: finished}
spec:
  nodeName: stream-2
  restartPolicy: Never
  containers:
  - name: main
    image: busybox
    command: ["true"]
"#,
    );
    n.wait_phase("finished", "Succeeded");
    n.wait("container done of pod two to exit", 60, |_| {
        n.jsonpath(
            "two",
            "{.status.containerStatuses[?(@.name==\"done\")].state.terminated.exitCode}",
        ) == "0"
    });

    let (code, _, err) = kubectl(&n, &["exec", "two", "-c", "nope", "--", "true"], None);
    assert_ne!(code, 0);
    assert!(
        err.contains("container nope is not valid for pod two"),
        "{err}"
    );

    let (code, _, err) = kubectl(&n, &["exec", "two", "-c", "done", "--", "true"], None);
    assert_ne!(code, 0);
    assert!(
        err.contains("unable to upgrade connection: container not found (\"done\")"),
        "{err}"
    );

    let (code, _, err) = kubectl(&n, &["exec", "finished", "--", "true"], None);
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot exec into a container in a completed pod; current phase is Succeeded"),
        "{err}"
    );

    // A command that does not exist: an error, and the pod is unharmed.
    let (code, _, err) = kubectl(
        &n,
        &["exec", "two", "-c", "main", "--", "/no/such/binary"],
        None,
    );
    assert_ne!(code, 0, "{err}");
    let (code, out, _) = kubectl(
        &n,
        &["exec", "two", "-c", "main", "--", "echo", "still"],
        None,
    );
    assert_eq!((code, out.as_str()), (0, "still\n"));

    // The API server's own checks, without kubectl's.
    let (status, body) = n.server.curl(
        "GET",
        "/api/v1/namespaces/default/pods/missing/exec?command=true&stdout=true",
        None,
        true,
    );
    assert_eq!(status, 404, "{body}");
    // No upgrade: the node agent says what it needs, through the API server, which keeps
    // serving.
    let (status, body) = n.server.curl(
        "POST",
        "/api/v1/namespaces/default/pods/two/exec?container=main&command=true&stdout=true",
        None,
        true,
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Upgrade request required"), "{body}");
    let (status, body) = n.server.curl(
        "GET",
        "/api/v1/namespaces/default/pods/two/portforward?ports=80",
        None,
        true,
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = n.server.curl(
        "DELETE",
        "/api/v1/namespaces/default/pods/two/exec?command=true",
        None,
        true,
    );
    assert_eq!(status, 405);
    n.server.k(&["get", "pod", "two"]);
}

#[test]
fn attach_reaches_a_stdin_container_and_its_live_output() {
    let _g = serial();
    let n = Node::start("stream-3", "10.213.0.0/16");
    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  nodeName: stream-3
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    stdin: true
    command: ["sh", "-c", "echo started; while read l; do [ \"$l\" = quit ] && exit 0; echo got:$l; done"]
"#,
    );
    n.wait_phase("reader", "Running");
    let (code, out, err) = kubectl(&n, &["attach", "-i", "reader"], Some("one\ntwo\nquit\n"));
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}\n{}", n.server.log());
    assert!(out.contains("got:one\ngot:two\n"), "{out}");
    assert!(
        !out.contains("started"),
        "attach shows output from now on: {out}"
    );
    n.wait_phase("reader", "Succeeded");
    let logs = n.server.k(&["logs", "reader"]);
    assert_eq!(
        logs, "started\ngot:one\ngot:two\n",
        "attached output still goes to the log"
    );
}

#[test]
fn exec_and_attach_over_spdy_as_older_clients_speak_it() {
    let _g = serial();
    let n = Node::start("stream-5", "10.215.0.0/16");
    apply(&n, &sleeper("sh", "stream-5"));
    n.wait_phase("sh", "Running");
    let spdy = [("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")];
    let (code, out, err) = kubectl_env(&n, &spdy, &["exec", "sh", "--", "echo", "hi"], None);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "{err}");
    let (code, out, _) = kubectl_env(
        &n,
        &spdy,
        &[
            "exec",
            "sh",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 5",
        ],
        None,
    );
    assert_eq!((code, out.as_str()), (5, "out\n"));
    let (code, out, err) = kubectl_env(
        &n,
        &spdy,
        &["exec", "-i", "sh", "--", "cat"],
        Some("a\nb\n"),
    );
    assert_eq!((code, out.as_str()), (0, "a\nb\n"), "{err}");
    let cmd = format!(
        "export KUBECONFIG={} HOME={} KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false; stty cols 77 rows 22; kubectl exec -it sh -- sh -c 'sleep 1; stty size'",
        n.server.kubeconfig.display(),
        n.server.data_dir().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("22 77"), "{text}");

    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: reader}
spec:
  nodeName: stream-5
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    stdin: true
    command: ["sh", "-c", "while read l; do [ \"$l\" = quit ] && exit 0; echo got:$l; done"]
"#,
    );
    n.wait_phase("reader", "Running");
    let (code, out, err) = kubectl_env(&n, &spdy, &["attach", "-i", "reader"], Some("x\nquit\n"));
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("got:x\n"), "{out}");
}

/// `kubectl port-forward` in the background; killed on drop.
struct PortForward {
    child: std::process::Child,
    port: u16,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl PortForward {
    /// `websocket: false` makes kubectl use plain SPDY, its fallback (and older kubectls' way).
    fn start(n: &Node, target: &str, remote: u16, websocket: bool) -> PortForward {
        use std::io::{BufRead, BufReader, Read};
        let mut child = Command::new("kubectl")
            .args(["port-forward", target, &format!(":{remote}")])
            .env("KUBECTL_PORT_FORWARD_WEBSOCKETS", websocket.to_string())
            .env("KUBECONFIG", &n.server.kubeconfig)
            .env("HOME", n.server.data_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl port-forward");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(k) = err_pipe.read(&mut buf) {
                if k == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..k]));
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        // "Forwarding from 127.0.0.1:43127 -> 8080"
        let read = out.read_line(&mut line).unwrap_or(0);
        let port = line
            .split("127.0.0.1:")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|p| p.parse().ok());
        let Some(port) = port.filter(|_| read > 0) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kubectl port-forward did not start: {line:?}\n{}\n{}",
                stderr.lock().unwrap(),
                n.server.log()
            );
        };
        std::thread::spawn(move || {
            let mut sink = String::new();
            let _ = out.read_to_string(&mut sink);
        });
        PortForward {
            child,
            port,
            stderr,
        }
    }

    fn curl(&self) -> (bool, String) {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{}/", self.port))
            .output()
            .expect("curl");
        let text = if out.status.success() {
            String::from_utf8_lossy(&out.stdout).into_owned()
        } else {
            String::from_utf8_lossy(&out.stderr).into_owned()
        };
        (out.status.success(), text)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn port_forward_reaches_a_port_on_the_pods_loopback() {
    let _g = serial();
    let n = Node::start("stream-4", "10.214.0.0/16");
    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: stream-4
  terminationGracePeriodSeconds: 1
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www; echo hello-from-the-pod > /www/index.html; exec httpd -f -p 127.0.0.1:8080 -h /www"]
"#,
    );
    n.wait_phase("web", "Running");
    let pf = PortForward::start(&n, "pod/web", 8080, true);
    // Several connections, one after another and at once, over the one session.
    for _ in 0..3 {
        let (ok, body) = pf.curl();
        assert!(ok, "{body}\n{}", pf.stderr.lock().unwrap());
        assert_eq!(body, "hello-from-the-pod\n");
    }
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let port = pf.port;
            std::thread::spawn(move || {
                Command::new("curl")
                    .args(["-sS", "--max-time", "10"])
                    .arg(format!("http://127.0.0.1:{port}/"))
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), "hello-from-the-pod\n");
    }
    let start = Instant::now();
    for _ in 0..10 {
        assert!(pf.curl().0);
    }
    eprintln!("port-forward HTTP round trip: {:?}", start.elapsed() / 10);
    drop(pf);

    // Plain SPDY, kubectl's fallback when a WebSocket upgrade is refused.
    let pf = PortForward::start(&n, "pod/web", 8080, false);
    let (ok, body) = pf.curl();
    assert!(ok, "{body}\n{}", pf.stderr.lock().unwrap());
    assert_eq!(body, "hello-from-the-pod\n");
    drop(pf);

    // Nothing listens there: the connection fails and kubectl says why.
    let pf = PortForward::start(&n, "pod/web", 9999, true);
    let (ok, _) = pf.curl();
    assert!(!ok);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pf
        .stderr
        .lock()
        .unwrap()
        .contains("error forwarding port 9999 to pod web")
    {
        assert!(Instant::now() < deadline, "{}", pf.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// kubectl on a terminal of its own (util-linux `script` gives it a pty of `cols`x`rows`),
/// fed `input`: (exit code, everything the terminal showed).
fn kubectl_on_a_tty(n: &Node, args: &[&str], input: &str) -> (i32, String) {
    let cmd = format!(
        "stty cols 123 rows 45; exec kubectl {}",
        args.iter()
            .map(|a| format!("'{a}'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("KUBECONFIG", &n.server.kubeconfig)
        .env("HOME", n.server.data_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut w = child.stdin.take().expect("stdin");
    // Typed once the session is up, line by line as a user would.
    std::thread::sleep(Duration::from_secs(2));
    for line in input.split_inclusive('\n') {
        w.write_all(line.as_bytes()).expect("write stdin");
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = child.wait_with_output().expect("script");
    drop(w);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn attach_to_a_tty_container_and_run_it_interactively() {
    let _g = serial();
    let n = Node::start("stream-6", "10.225.0.0/16");
    apply(
        &n,
        r#"
apiVersion: v1
kind: Pod
metadata: {name: term}
spec:
  nodeName: stream-6
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: busybox
    stdin: true
    tty: true
    command: ["sh"]
"#,
    );
    n.wait_phase("term", "Running");
    let (code, out) = kubectl_on_a_tty(
        &n,
        &["attach", "-it", "term"],
        "test -t 0 && echo tty-$((40+2))\nstty size\nexit\n",
    );
    assert_eq!(code, 0, "{out}\n{}", n.server.log());
    // The shell's stdin is a terminal, sized as kubectl's own.
    assert!(out.contains("tty-42"), "{out}");
    assert!(
        out.contains("45 123"),
        "the resize did not reach the pty: {out}"
    );
    n.wait_phase("term", "Succeeded");
    let logs = n.server.k(&["logs", "term"]);
    assert!(
        logs.contains("tty-42"),
        "a terminal's output goes to the log: {logs}"
    );

    // kubectl run -it --rm: the pod is made with a terminal, attached to, and removed.
    let (code, out) = kubectl_on_a_tty(
        &n,
        &[
            "run",
            "scratch",
            "-it",
            "--rm",
            "--restart=Never",
            "--image=busybox",
            "--",
            "sh",
        ],
        "echo $((6*7))-answer\nexit\n",
    );
    assert_eq!(code, 0, "{out}\n{}", n.server.log());
    assert!(out.contains("42-answer"), "{out}");
    assert!(out.contains("pod \"scratch\" deleted"), "{out}");
    n.wait("the scratch pod to be gone", 30, |s| {
        !s.kubectl(&["get", "pod", "scratch"]).0
    });
}
