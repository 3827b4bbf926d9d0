//! Container lifecycle hooks with real pods, driven with kubectl: postStart and preStop exec
//! hooks run in the container around its life (postStart before the next container starts,
//! preStop before SIGTERM), httpGet hooks reach their host (the pod's address by default)
//! with the path and headers given, a liveness restart and a finished pod's sidecar run
//! preStop first, a failing postStart kills and restarts the container, a failing preStop is
//! reported and the deletion goes on, and the grace period bounds a preStop hook that would
//! outlast it. The hooks write what they saw into a hostPath directory the test reads.

mod common;
mod image_support;
mod node_support;

use node_support::{serial, Node};
use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

fn events_of(n: &Node, pod: &str) -> String {
    n.server
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
            "-o",
            "custom-columns=REASON:.reason,MESSAGE:.message",
        ])
        .1
}

fn wait_gone(n: &Node, pod: &str, secs: u64) {
    n.wait(&format!("pod {pod} to be gone"), secs, |s| {
        let (ok, _, err) = s.kubectl(&["get", "pod", pod]);
        !ok && err.contains("NotFound")
    });
}

#[test]
fn hooks_run_around_a_containers_life() {
    let _g = serial();
    let n = Node::start("hooks-1", "10.221.0.0/16");
    let s = &n.server;
    let out = tempfile::tempdir().unwrap();
    let order = out.path().join("order");
    // The httpGet preStop hook's target, on the node's loopback (the hook's host).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: hooked
spec:
  terminationGracePeriodSeconds: 20
  volumes:
  - name: out
    hostPath: {{path: "{dir}", type: Directory}}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo main >> /out/order; trap 'echo term >> /out/order; exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "sleep 2; echo poststart >> /out/order"]}}
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /out/order; sleep 1"]}}
  - name: second
    image: busybox
    command: ["sh", "-c", "echo second >> /out/order; trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        httpGet:
          host: 127.0.0.1
          port: {port}
          path: /stopping
          httpHeaders: [{{name: X-Hook, value: second}}]
"#,
        dir = out.path().display()
    );
    s.k_in(&["apply", "-f", "-"], &manifest);
    n.wait_phase("hooked", "Running");
    n.wait("both containers to start", 30, |_| {
        std::fs::read_to_string(&order)
            .unwrap_or_default()
            .contains("second")
    });
    // The second container started only once the first one's postStart hook returned.
    let text = std::fs::read_to_string(&order).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines, ["main", "poststart", "second"], "{text}");
    let events = events_of(&n, "hooked");
    assert!(!events.contains("Failed"), "{events}");

    let began = Instant::now();
    s.k(&["delete", "pod", "hooked", "--wait=false"]);
    listener.set_nonblocking(false).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                head.push_str(&line);
                line.clear();
            }
            use std::io::Write;
            let _ = conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
            let _ = conn.read(&mut [0u8; 16]);
            let _ = tx.send(head);
        }
    });
    let request = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the httpGet preStop hook reached its host");
    assert!(
        request.starts_with("GET /stopping HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.to_lowercase().contains("x-hook: second"),
        "{request}"
    );
    assert!(request.contains("kube-lifecycle/"), "{request}");
    wait_gone(&n, "hooked", 30);
    let text = std::fs::read_to_string(&order).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // The preStop hook ran, and only then did the container get SIGTERM.
    assert_eq!(
        &lines[3..],
        ["prestop", "term"],
        "{text}\nafter {:?}",
        began.elapsed()
    );
    assert!(
        began.elapsed() >= Duration::from_secs(1),
        "the deletion did not wait for the preStop hook"
    );

    // A container restarted for failing its liveness probe runs its preStop hook first.
    let live = out.path().join("live");
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: unhealthy
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - name: out
    hostPath: {{path: "{dir}", type: Directory}}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'echo term >> /out/live; exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    livenessProbe:
      exec: {{command: ["false"]}}
      initialDelaySeconds: 1
      periodSeconds: 1
      failureThreshold: 1
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /out/live"]}}
"#,
        dir = out.path().display()
    );
    s.k_in(&["apply", "-f", "-"], &manifest);
    n.wait("the unhealthy container to be restarted", 60, |_| {
        n.jsonpath("unhealthy", "{.status.containerStatuses[0].restartCount}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    });
    let text = std::fs::read_to_string(&live).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.get(..2), Some(&["prestop", "term"][..]), "{text}");

    // An httpGet hook without a host goes to the pod's address, with its path and headers:
    // a one-request server in the pod writes down what it got.
    std::fs::write(
        out.path().join("serve.sh"),
        "while IFS= read -r l; do\n  l=$(printf '%s' \"$l\" | tr -d '\\r')\n  [ -z \"$l\" ] && break\n  echo \"$l\" >> /out/req\ndone\nprintf 'HTTP/1.1 200 OK\\r\\nContent-Length: 0\\r\\n\\r\\n'\n",
    )
    .unwrap();
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: webhook
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - name: out
    hostPath: {{path: "{dir}", type: Directory}}
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "nc -l -p 8080 -e sh /out/serve.sh & trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    ports: [{{name: hooks, containerPort: 8080}}]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        httpGet:
          path: /bye
          port: hooks
          httpHeaders: [{{name: X-From, value: kubelet}}]
"#,
        dir = out.path().display()
    );
    s.k_in(&["apply", "-f", "-"], &manifest);
    n.wait_phase("webhook", "Running");
    let ip = n.jsonpath("webhook", "{.status.podIP}");
    s.k(&["delete", "pod", "webhook", "--wait=false"]);
    wait_gone(&n, "webhook", 30);
    let req = std::fs::read_to_string(out.path().join("req")).unwrap_or_default();
    assert!(req.starts_with("GET /bye HTTP/1.1\n"), "{req}");
    let req = req.to_lowercase();
    assert!(req.contains(&format!("host: {ip}:8080")), "{req}");
    assert!(req.contains("x-from: kubelet"), "{req}");

    // A sidecar stops with its preStop hook once the pod's main container is done.
    let side = out.path().join("side");
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: sidecar
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 5
  volumes:
  - name: out
    hostPath: {{path: "{dir}", type: Directory}}
  initContainers:
  - name: helper
    image: busybox
    restartPolicy: Always
    command: ["sh", "-c", "trap 'echo term >> /out/side; exit 0' TERM; while true; do sleep 0.2; done"]
    volumeMounts: [{{name: out, mountPath: /out}}]
    lifecycle:
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /out/side"]}}
  containers:
  - name: main
    image: busybox
    command: ["sleep", "1"]
"#,
        dir = out.path().display()
    );
    s.k_in(&["apply", "-f", "-"], &manifest);
    n.wait_phase("sidecar", "Succeeded");
    n.wait("the sidecar to stop", 30, |_| {
        std::fs::read_to_string(&side)
            .unwrap_or_default()
            .contains("term")
    });
    let text = std::fs::read_to_string(&side).unwrap();
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["prestop", "term"],
        "{text}"
    );
}

#[test]
fn failing_hooks_are_reported_and_the_grace_period_bounds_them() {
    let _g = serial();
    let n = Node::start("hooks-2", "10.222.0.0/16");
    let s = &n.server;
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: badstart
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: ["sleep", "1000"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo no-good; exit 3"]}
---
apiVersion: v1
kind: Pod
metadata:
  name: badstop
spec:
  terminationGracePeriodSeconds: 10
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop:
        exec: {command: ["sh", "-c", "echo cannot-stop-nicely; exit 4"]}
---
apiVersion: v1
kind: Pod
metadata:
  name: slowstop
spec:
  terminationGracePeriodSeconds: 3
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop:
        sleep: {seconds: 600}
---
apiVersion: v1
kind: Pod
metadata:
  name: forced
spec:
  terminationGracePeriodSeconds: 120
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      preStop:
        sleep: {seconds: 600}
"#,
    );
    // A failing postStart hook: reported, the container killed and started again.
    n.wait("the FailedPostStartHook event", 60, |_| {
        events_of(&n, "badstart").contains("FailedPostStartHook")
    });
    let events = events_of(&n, "badstart");
    assert!(
        events.contains(
            "Exec lifecycle hook ([sh -c echo no-good; exit 3]) for Container \"main\" in Pod \"badstart_default("
        ) && events.contains("no-good"),
        "{events}"
    );
    n.wait("the container to be restarted", 60, |_| {
        n.jsonpath("badstart", "{.status.containerStatuses[0].restartCount}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    });
    assert_eq!(n.jsonpath("badstart", "{.status.phase}"), "Running");

    n.wait_phase("badstop", "Running");
    n.wait_phase("slowstop", "Running");
    // A failing preStop hook is reported and the deletion goes on.
    s.k(&["delete", "pod", "badstop", "--wait=false"]);
    // A preStop hook longer than the grace period is cut short by it.
    let began = Instant::now();
    s.k(&["delete", "pod", "slowstop", "--wait=false"]);
    wait_gone(&n, "slowstop", 60);
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(20),
        "a 3 s grace period with a 600 s preStop sleep took {took:?}"
    );
    wait_gone(&n, "badstop", 30);

    // A force deletion during a long preStop hook stops the containers at once.
    n.wait_phase("forced", "Running");
    let uid = n.jsonpath("forced", "{.metadata.uid}");
    s.k(&["delete", "pod", "forced", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(2));
    let began = Instant::now();
    s.k(&["delete", "pod", "forced", "--grace-period=0", "--force"]);
    let shim = std::path::PathBuf::from("/run/k1s/pods").join(&uid);
    n.wait("the forced pod's containers to stop", 20, |_| {
        !shim.exists()
    });
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "a forced deletion waited {:?} for a preStop hook",
        began.elapsed()
    );
    let events = events_of(&n, "badstop");
    assert!(
        events.contains("FailedPreStopHook")
            && events.contains("Exec lifecycle hook ([sh -c echo cannot-stop-nicely; exit 4])")
            && events.contains("cannot-stop-nicely"),
        "{events}"
    );
}
