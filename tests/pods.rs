//! Real pods end to end, driven with kubectl: images pulled from a real registry on loopback
//! through a `registries.yaml` mirror (as a user's would be), containers started by the shim
//! through libcontainer, wired by the CNI plugins, logs in /var/log/pods, restarts, deletion,
//! and containers that outlive a kill -9 of k1s. The tests share the host's pod bridge, so
//! they run one at a time; each cleans up its pods, namespaces and rules even when it fails.

mod common;
mod image_support;
mod node_support;

use node_support::{serial, Node};
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[test]
fn a_pod_runs_with_its_config_logs_and_network_then_is_deleted() {
    let _g = serial();
    let n = Node::start("pods-1", "10.201.0.0/16");
    let s = &n.server;
    s.k(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=mode=fast",
        "--from-literal=file.txt=from-a-volume",
    ]);
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  terminationGracePeriodSeconds: 5
  volumes:
  - name: cfg
    configMap: {name: settings}
  - name: scratch
    emptyDir: {}
  initContainers:
  - name: prepare
    image: busybox
    command: ["sh", "-c", "echo prepared > /work/ready; echo init-done"]
    volumeMounts: [{name: scratch, mountPath: /work}]
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c"]
    args:
    - |
      echo "hello from $(hostname) mode=$MODE pod=$POD_NAME ip=$POD_IP"
      cat /cfg/file.txt; echo
      cat /work/ready
      id -u
      trap 'echo bye; exit 0' TERM
      while true; do sleep 1; done
    env:
    - name: MODE
      valueFrom: {configMapKeyRef: {name: settings, key: mode}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    securityContext: {runAsUser: 1000}
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: scratch, mountPath: /work}
"#,
    );
    n.wait_phase("web", "Running");
    let ip = n.jsonpath("web", "{.status.podIP}");
    assert!(
        ip.starts_with("10.201.0."),
        "pod IP {ip} is not in the node's pod CIDR"
    );
    assert_eq!(
        n.jsonpath("web", "{.status.containerStatuses[0].ready}"),
        "true"
    );
    assert_eq!(
        n.jsonpath(
            "web",
            "{.status.initContainerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );
    assert!(n
        .jsonpath("web", "{.status.containerStatuses[0].imageID}")
        .contains("busybox@sha256:"));
    let wide = s.k(&["get", "pod", "web", "-o", "wide"]);
    assert!(
        wide.contains("Running") && wide.contains(&ip) && wide.contains("pods-1"),
        "{wide}"
    );

    let log = n.log_file("web", "main", 0);
    n.wait("the container's output", 30, |_| {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("1000")
    });
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(" stdout F hello from web mode=fast pod=web ip="),
        "{text}"
    );
    assert!(text.contains(" stdout F from-a-volume"), "{text}");
    assert!(text.contains(" stdout F prepared"), "{text}");
    assert!(text.contains(" stdout F 1000"), "{text}");

    // kubectl logs goes through the API server to the node agent.
    let logs = s.k(&["logs", "web"]);
    assert!(logs.contains("hello from web mode=fast"), "{logs}");
    let tail = s.k(&["logs", "web", "--tail=1"]);
    assert_eq!(tail.trim(), "1000");
    let init = s.k(&["logs", "web", "-c", "prepare"]);
    assert_eq!(init.trim(), "init-done");
    let ts = s.k(&["logs", "web", "--timestamps", "--tail=1"]);
    assert!(
        ts.starts_with("20") && ts.trim_end().ends_with(" 1000"),
        "{ts}"
    );
    let (ok, _, err) = s.kubectl(&["logs", "web", "-c", "nope"]);
    assert!(
        !ok && err.contains("container nope is not valid for pod web"),
        "{err}"
    );
    // -f streams until the container ends: run it with a short timeout.
    let follow = std::process::Command::new("timeout")
        .args(["3", "kubectl", "logs", "-f", "web"])
        .env("KUBECONFIG", &s.kubeconfig)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&follow.stdout).contains("hello from web"));

    // The pod is reachable from the host over the pod network.
    let out = std::process::Command::new("busybox")
        .args(["ping", "-c", "1", "-W", "2", &ip])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ping {ip}: {}",
        String::from_utf8_lossy(&out.stdout)
    );

    let uid = n.jsonpath("web", "{.metadata.uid}");
    let started = Instant::now();
    s.k(&["delete", "pod", "web"]);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "deletion took {:?}",
        started.elapsed()
    );
    assert!(
        !PathBuf::from("/run/k1s/netns").join(&uid).exists(),
        "netns left behind"
    );
    assert!(
        !PathBuf::from("/run/k1s/pods").join(&uid).exists(),
        "shim dir left behind"
    );
    assert!(!log.exists(), "logs left behind");
}

#[test]
fn restart_policies_back_off_and_terminal_phases() {
    let _g = serial();
    let n = Node::start("pods-2", "10.202.0.0/16");
    let s = &n.server;
    let pod = |name: &str, policy: &str, script: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: {policy}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    command: [\"sh\", \"-c\", \"{script}\"]\n"
        )
    };
    s.k_in(
        &["apply", "-f", "-"],
        &pod("crasher", "Always", "echo try; exit 3"),
    );
    s.k_in(&["apply", "-f", "-"], &pod("done", "Never", "echo ok"));
    s.k_in(&["apply", "-f", "-"], &pod("fails", "Never", "exit 7"));
    s.k_in(&["apply", "-f", "-"], &pod("retry", "OnFailure", "exit 1"));

    n.wait_phase("done", "Succeeded");
    assert_eq!(
        n.jsonpath(
            "done",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "0"
    );
    assert_eq!(
        n.jsonpath("done", "{.status.conditions[?(@.type==\"Ready\")].reason}"),
        "PodCompleted"
    );
    n.wait_phase("fails", "Failed");
    assert_eq!(
        n.jsonpath(
            "fails",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "7"
    );
    assert_eq!(
        n.jsonpath(
            "fails",
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Error"
    );

    // The first restart is immediate, the next after a 10 s back-off.
    n.wait("crasher to crash-loop", 60, |_| {
        n.jsonpath(
            "crasher",
            "{.status.containerStatuses[0].state.waiting.reason}",
        ) == "CrashLoopBackOff"
    });
    assert!(
        n.jsonpath("crasher", "{.status.containerStatuses[0].restartCount}")
            .parse::<u32>()
            .unwrap()
            >= 1
    );
    assert_eq!(
        n.jsonpath(
            "crasher",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "3"
    );
    assert_eq!(n.jsonpath("crasher", "{.status.phase}"), "Running");
    let table = s.k(&["get", "pod", "crasher"]);
    assert!(table.contains("CrashLoopBackOff"), "{table}");
    n.wait("retry to restart", 60, |_| {
        n.jsonpath("retry", "{.status.containerStatuses[0].restartCount}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    });
}

#[test]
fn image_errors_are_reported_and_backed_off() {
    let _g = serial();
    let n = Node::start("pods-3", "10.203.0.0/16");
    let s = &n.server;
    s.k(&[
        "run",
        "missing",
        "--image=nosuch/image:1",
        "--restart=Never",
    ]);
    n.wait("ErrImagePull or ImagePullBackOff", 60, |_| {
        let r = n.jsonpath(
            "missing",
            "{.status.containerStatuses[0].state.waiting.reason}",
        );
        r == "ErrImagePull" || r == "ImagePullBackOff"
    });
    let msg = n.jsonpath(
        "missing",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(
        msg.contains("MANIFEST_UNKNOWN") || msg.contains("NAME_UNKNOWN") || msg.contains("404"),
        "{msg}"
    );
    n.wait("ImagePullBackOff", 60, |_| {
        n.jsonpath(
            "missing",
            "{.status.containerStatuses[0].state.waiting.reason}",
        ) == "ImagePullBackOff"
    });
    assert_eq!(n.jsonpath("missing", "{.status.phase}"), "Pending");

    s.k(&[
        "run",
        "never",
        "--image=busybox:absent",
        "--image-pull-policy=Never",
        "--restart=Never",
    ]);
    n.wait("ErrImageNeverPull", 60, |_| {
        n.jsonpath(
            "never",
            "{.status.containerStatuses[0].state.waiting.reason}",
        ) == "ErrImageNeverPull"
    });
}

#[test]
fn containers_outlive_a_kill_9_of_k1s_and_host_ports_work() {
    let _g = serial();
    let mut n = Node::start("pods-4", "10.204.0.0/16");
    n.server.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: server}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: httpd
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo served-by-pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080, hostPort: 18080}]
"#,
    );
    n.wait_phase("server", "Running");
    let id = n.jsonpath("server", "{.status.containerStatuses[0].containerID}");
    let node_ip = n
        .server
        .kubectl(&[
            "get",
            "node",
            "pods-4",
            "-o",
            "jsonpath={.status.addresses[0].address}",
        ])
        .1;
    let fetch = |addr: &str| {
        std::process::Command::new("curl")
            .args(["-s", "--max-time", "3", &format!("http://{addr}/")])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let pod_ip = n.jsonpath("server", "{.status.podIP}");
    n.wait("the pod to serve on its IP", 30, |_| {
        fetch(&format!("{pod_ip}:8080")).contains("served-by-pod")
    });
    n.wait("the hostPort to serve", 30, |_| {
        fetch(&format!("{node_ip}:18080")).contains("served-by-pod")
    });

    n.server.kill9();
    assert!(
        fetch(&format!("{pod_ip}:8080")).contains("served-by-pod"),
        "the container died with k1s"
    );
    n.server.spawn();
    n.wait_phase("server", "Running");
    assert_eq!(
        n.jsonpath("server", "{.status.containerStatuses[0].containerID}"),
        id
    );
    assert_eq!(
        n.jsonpath("server", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    assert!(fetch(&format!("{pod_ip}:8080")).contains("served-by-pod"));
    n.server.k(&["delete", "pod", "server"]);
    assert!(
        !fetch(&format!("{node_ip}:18080")).contains("served-by-pod"),
        "hostPort still open"
    );
}

#[test]
fn probes_termination_messages_and_live_config_updates() {
    let _g = serial();
    let n = Node::start("pods-5", "10.205.0.0/16");
    let s = &n.server;
    s.k(&["create", "configmap", "live", "--from-literal=value=one"]);
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: live, configMap: {name: live}}]
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www; (sleep 3; echo ok > /www/ready.html) & exec httpd -f -p 8080 -h /www"]
    readinessProbe: {httpGet: {path: /ready.html, port: 8080}, periodSeconds: 1}
  - name: dead
    image: busybox
    command: ["sh", "-c", "while true; do cat /live/value; echo; sleep 1; done"]
    volumeMounts: [{name: live, mountPath: /live}]
    livenessProbe: {tcpSocket: {port: 9999}, periodSeconds: 1, failureThreshold: 2}
  - name: execd
    image: busybox
    command: ["sh", "-c", "sleep 2; touch /tmp/ok; exec sleep 3600"]
    readinessProbe: {exec: {command: ["cat", "/tmp/ok"]}, periodSeconds: 1}
---
apiVersion: v1
kind: Pod
metadata: {name: farewell}
spec:
  restartPolicy: Never
  containers:
  - name: a
    image: busybox
    command: ["sh", "-c", "echo bye > /dev/termination-log; exit 2"]
  - name: b
    image: busybox
    command: ["sh", "-c", "echo last words; exit 1"]
    terminationMessagePolicy: FallbackToLogsOnError
"#,
    );
    n.wait_phase("probed", "Running");
    let ready = |c: usize| {
        n.jsonpath(
            "probed",
            &format!("{{.status.containerStatuses[{c}].ready}}"),
        )
    };
    // Not ready until the readiness page exists.
    let web_not_ready_first = ready(0) == "false";
    n.wait("readiness to pass", 30, |_| ready(0) == "true");
    assert!(web_not_ready_first, "web was ready before its probe passed");
    // An exec probe runs in the container through the shim.
    n.wait("the exec readiness probe to pass", 30, |_| {
        ready(2) == "true"
    });
    // The liveness probe of `dead` fails and the container is restarted.
    n.wait("a liveness restart", 60, |_| {
        n.jsonpath("probed", "{.status.containerStatuses[1].restartCount}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 1
    });
    let events = s.k(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
    ]);
    assert!(
        events.contains("Unhealthy") && events.contains("Liveness probe failed"),
        "{events}"
    );
    assert!(
        events.contains("failed liveness probe, will be restarted"),
        "{events}"
    );
    assert!(events.contains("Started"), "{events}");

    // A ConfigMap change reaches the mounted file in place.
    s.k(&[
        "patch",
        "configmap",
        "live",
        "-p",
        r#"{"data":{"value":"two"}}"#,
    ]);
    n.wait("the updated ConfigMap in the volume", 60, |s| {
        s.kubectl(&["logs", "probed", "-c", "dead", "--tail=1"])
            .1
            .trim()
            == "two"
    });

    n.wait_phase("farewell", "Failed");
    let msg = |c: usize| {
        n.jsonpath(
            "farewell",
            &format!("{{.status.containerStatuses[{c}].state.terminated.message}}"),
        )
    };
    assert_eq!(msg(0).trim(), "bye");
    assert_eq!(msg(1).trim(), "last words");
}

#[test]
fn a_failing_cni_plugin_is_reported_and_leaves_nothing_behind() {
    let _g = serial();
    // Debian's plugins, except a bridge that refuses every ADD.
    let bin = tempfile::tempdir().unwrap();
    for p in ["host-local", "portmap", "loopback"] {
        std::os::unix::fs::symlink(format!("/usr/lib/cni/{p}"), bin.path().join(p)).unwrap();
    }
    let bridge = bin.path().join("bridge");
    std::fs::write(
        &bridge,
        "#!/bin/sh\ncase \"$CNI_COMMAND\" in\nVERSION) echo '{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[\"0.4.0\",\"1.0.0\"]}' ;;\nADD) echo '{\"cniVersion\":\"1.0.0\",\"code\":11,\"msg\":\"no bridge today\"}'; exit 1 ;;\n*) exit 0 ;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&bridge, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let n = Node::start_with(
        "pods-6",
        "10.206.0.0/16",
        &["--cni-bin-dir", bin.path().to_str().unwrap()],
    );
    let s = &n.server;
    s.k(&[
        "run",
        "stuck",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sleep",
        "100",
    ]);
    n.wait("the sandbox failure event", 30, |s| {
        s.kubectl(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=stuck",
        ])
        .1
        .contains("no bridge today")
    });
    let events = s.k(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=stuck",
    ]);
    assert!(events.contains("FailedCreatePodSandBox"), "{events}");
    assert_eq!(n.jsonpath("stuck", "{.status.phase}"), "Pending");
    assert_eq!(
        n.jsonpath(
            "stuck",
            "{.status.conditions[?(@.type==\"PodReadyToStartContainers\")].status}"
        ),
        "False"
    );
    let uid = n.jsonpath("stuck", "{.metadata.uid}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !PathBuf::from("/run/k1s/netns").join(&uid).exists(),
        "a network namespace leaked"
    );
    // Nothing of the pod's network is left on the node's side: no cached attachment and no
    // address held by host-local.
    let cni = s.data_dir().join("data/agent/cni");
    let held: Vec<String> = walk(&cni)
        .into_iter()
        .filter(|p| p.contains(&uid) || p.contains("/networks/k1s/10."))
        .collect();
    assert!(held.is_empty(), "CNI state left behind: {held:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn a_deployment_rolls_out_real_pods_and_its_deletion_cascades() {
    let _g = serial();
    let n = Node::start("pods-7", "10.207.0.0/16");
    let s = &n.server;
    // Scheduled by the scheduler (no nodeName), ready once httpd answers.
    let deploy = |version: &str| {
        format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  strategy: {{rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: busybox
        env: [{{name: VERSION, value: "{version}"}}]
        command: ["sh", "-c", "mkdir -p /www && echo $VERSION > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
"#
        )
    };
    s.k_in(&["apply", "-f", "-"], &deploy("v1"));
    let out = s.k(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    s.k_in(&["apply", "-f", "-"], &deploy("v2"));
    let out = s.k(&["rollout", "status", "deploy/web", "--timeout=90s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    n.wait("only v2 pods", 60, |s| {
        s.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].spec.containers[0].env[0].value}",
        ])
        .1 == "v2 v2"
    });
    s.k(&["delete", "deploy", "web"]);
    n.wait("the pods to go", 60, |s| {
        s.kubectl(&["get", "pods", "-l", "app=web", "-o", "name"])
            .1
            .trim()
            .is_empty()
    });
}

#[test]
fn a_claim_of_the_default_class_is_provisioned_mounted_and_reclaimed() {
    let _g = serial();
    let n = Node::start("pods-pvc", "10.205.0.0/16");
    let s = &n.server;
    s.k_in(
        &["apply", "-f", "-"],
        r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: writer}
spec:
  terminationGracePeriodSeconds: 1
  volumes: [{name: d, persistentVolumeClaim: {claimName: data}}]
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "echo kept > /data/hello; trap 'exit 0' TERM; while true; do sleep 1; done"]
    volumeMounts: [{name: d, mountPath: /data}]
"#,
    );
    n.wait_phase("writer", "Running");
    assert_eq!(
        s.k(&[
            "get",
            "pvc",
            "data",
            "-o",
            "jsonpath={.status.phase} {.spec.storageClassName}"
        ]),
        "Bound local-path"
    );
    let storage = s.data_dir().join("data/storage");
    let dir = std::fs::read_dir(&storage)
        .expect("the storage directory")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("_default_data"))
        .expect("a directory for the claim");
    let file = dir.join("hello");
    n.wait("the pod's write on the volume", 30, |_| {
        std::fs::read_to_string(&file).is_ok_and(|c| c == "kept\n")
    });
    // Reclaim policy Delete: the directory goes with the claim.
    s.k(&["delete", "pod", "writer", "--grace-period=1"]);
    s.k(&["delete", "pvc", "data"]);
    n.wait("the volume's directory to be removed", 60, |_| {
        !dir.exists()
    });
}
