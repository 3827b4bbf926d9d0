//! The workload walk-throughs end to end with real pods, driven with kubectl against a server
//! that is also its node: Jobs that complete and fail, a CronJob that fires, a DaemonSet
//! rolled to a new template, a StatefulSet with a headless Service and a claim per pod,
//! scheduling held back by node selectors and taints until the node matches, and a
//! namespace deleted with everything in it. The tests share the host's pod bridge, so they
//! run one at a time; every wait is bounded and a timeout prints what kubectl shows.

mod common;
mod image_support;
mod node_support;
mod workloads_support;

use node_support::{serial, Node};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use workloads_support::{events, get, k, state, wait, web_pods};

const JOBS: &str = r#"
apiVersion: batch/v1
kind: Job
metadata: {name: three}
spec:
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox, command: ["sh", "-c", "echo done"]}
---
apiVersion: batch/v1
kind: Job
metadata: {name: broken}
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - {name: c, image: busybox, command: ["sh", "-c", "echo failing; exit 1"]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "@every 5s"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          terminationGracePeriodSeconds: 1
          containers:
          - {name: c, image: busybox, command: ["sh", "-c", "echo tick"]}
"#;

#[test]
fn jobs_complete_and_fail_and_a_cronjob_fires() {
    let _g = serial();
    let n = Node::start("walk-jobs", "10.211.0.0/16");
    let s = &n.server;
    s.k_in(&["apply", "-f", "-"], JOBS);

    // Three completions, two at a time.
    let mut most_active = 0;
    wait(&n, "job three to complete", 90, &["job/three"], || {
        let active: usize = get(&n, "job three", "{.status.active}")
            .parse()
            .unwrap_or(0);
        most_active = most_active.max(active);
        get(&n, "job three", "{.status.succeeded}") == "3"
    });
    assert!(most_active <= 2, "{most_active} pods active at once");
    let out = k(
        &n,
        &[
            "wait",
            "--for=condition=complete",
            "job/three",
            "--timeout=30s",
        ],
        &["job/three"],
    );
    assert!(out.contains("condition met"), "{out}");
    let phases = get(
        &n,
        "pods -l job-name=three",
        "{range .items[*]}{.status.phase} {end}",
    );
    assert_eq!(
        phases.split_whitespace().collect::<Vec<_>>(),
        ["Succeeded"; 3],
        "{phases}"
    );
    assert_eq!(k(&n, &["logs", "job/three"], &[]).trim(), "done");
    let table = k(&n, &["get", "job", "three"], &[]);
    assert!(
        table.contains("3/3") && table.contains("Complete"),
        "{table}"
    );

    // Two failures with backoffLimit 1: the Job fails, its failed pods stay.
    let out = k(
        &n,
        &[
            "wait",
            "--for=condition=failed",
            "job/broken",
            "--timeout=90s",
        ],
        &["job/broken"],
    );
    assert!(out.contains("condition met"), "{out}");
    assert_eq!(
        get(
            &n,
            "job broken",
            "{.status.conditions[?(@.type==\"Failed\")].reason}"
        ),
        "BackoffLimitExceeded"
    );
    assert_eq!(get(&n, "job broken", "{.status.failed}"), "2");
    let events = k(
        &n,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=broken",
        ],
        &[],
    );
    assert!(
        events.contains("BackoffLimitExceeded")
            && events.contains("Job has reached the specified backoff limit"),
        "{events}"
    );
    let phases = get(
        &n,
        "pods -l job-name=broken",
        "{range .items[*]}{.status.phase} {end}",
    );
    assert_eq!(
        phases.split_whitespace().collect::<Vec<_>>(),
        ["Failed"; 2],
        "{phases}"
    );
    let exit = get(
        &n,
        "pods -l job-name=broken",
        "{.items[0].status.containerStatuses[0].state.terminated.exitCode}",
    );
    assert_eq!(exit, "1");

    // The CronJob has fired meanwhile: a Job of its own whose pod succeeded.
    wait(
        &n,
        "the CronJob's first success",
        60,
        &["cronjob/tick"],
        || !get(&n, "cronjob tick", "{.status.lastSuccessfulTime}").is_empty(),
    );
    s.k(&[
        "patch",
        "cronjob",
        "tick",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]);
    assert!(!get(&n, "cronjob tick", "{.status.lastScheduleTime}").is_empty());
    let jobs = get(
        &n,
        "jobs",
        "{range .items[?(@.metadata.ownerReferences[0].name==\"tick\")]}{.metadata.name}={.status.succeeded} {end}",
    );
    let done = jobs
        .split_whitespace()
        .find_map(|j| j.strip_suffix("=1"))
        .unwrap_or_else(|| panic!("no succeeded Job of the CronJob: {jobs}"));
    assert!(done.starts_with("tick-"), "{done}");
    let logs = k(&n, &["logs", &format!("job/{done}")], &[]);
    assert_eq!(logs.trim(), "tick");
    let events = k(
        &n,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=tick",
        ],
        &[],
    );
    assert!(
        events.contains("SuccessfulCreate") && events.contains(done),
        "{events}"
    );
}

fn daemonset(version: &str) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {{name: agent}}
spec:
  selector: {{matchLabels: {{app: agent}}}}
  template:
    metadata: {{labels: {{app: agent}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        env: [{{name: VERSION, value: {version}}}]
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#
    )
}

const SLEEPER: &str =
    "command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 1; done\"]";

/// A daemon pod per node, replaced when the template changes; pods held Pending by a node
/// selector and by a taint, each with upstream's reason, until the node matches.
#[test]
fn a_daemonset_rolls_and_pods_wait_for_labels_and_taints() {
    let _g = serial();
    let node = "walk-ds";
    let n = Node::start(node, "10.212.0.0/16");
    let s = &n.server;
    s.k_in(&["apply", "-f", "-"], &daemonset("v1"));
    let out = k(
        &n,
        &["rollout", "status", "ds/agent", "--timeout=90s"],
        &["ds/agent"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    let pods = || {
        get(
            &n,
            "pods -l app=agent",
            "{range .items[*]}{.metadata.name},{.spec.nodeName},{.status.phase},{.spec.containers[0].env[0].value},{.metadata.labels.pod-template-generation},{.metadata.deletionTimestamp} {end}",
        )
        .split_whitespace()
        .map(String::from)
        .collect::<Vec<_>>()
    };
    let first = pods();
    assert_eq!(first.len(), 1, "{first:?}");
    let f: Vec<&str> = first[0].split(',').collect();
    assert_eq!(&f[1..5], [node, "Running", "v1", "1"], "{first:?}");
    let old = f[0].to_string();
    assert!(!get(
        &n,
        &format!("pod {old}"),
        "{.metadata.labels.controller-revision-hash}"
    )
    .is_empty());

    // A new template: the pod is replaced by one of the new generation.
    s.k_in(&["apply", "-f", "-"], &daemonset("v2"));
    let out = k(
        &n,
        &["rollout", "status", "ds/agent", "--timeout=90s"],
        &["ds/agent"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    wait(&n, "only the new daemon pod", 60, &["ds/agent"], || {
        let p = pods();
        p.len() == 1 && p[0].contains(",Running,v2,2,") && !p[0].starts_with(&old)
    });
    let history = k(&n, &["rollout", "history", "ds/agent"], &[]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    // A node selector no node matches: Pending, with upstream's reason, until labelled.
    s.k_in(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: picky}}\nspec:\n  nodeSelector: {{disk: ssd}}\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    {SLEEPER}\n"
        ),
    );
    wait(
        &n,
        "picky's FailedScheduling event",
        30,
        &["pod/picky"],
        || !events(&n, "picky", "FailedScheduling").is_empty(),
    );
    let msg = events(&n, "picky", "FailedScheduling");
    assert!(
        msg.starts_with(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        ),
        "{msg}"
    );
    assert_eq!(get(&n, "pod picky", "{.status.phase}"), "Pending");
    assert_eq!(
        get(
            &n,
            "pod picky",
            "{.status.conditions[?(@.type==\"PodScheduled\")].reason}"
        ),
        "Unschedulable"
    );
    s.k(&["label", "node", node, "disk=ssd"]);
    wait(
        &n,
        "picky to run once the node matches",
        60,
        &["pod/picky"],
        || get(&n, "pod picky", "{.status.phase}") == "Running",
    );
    assert_eq!(get(&n, "pod picky", "{.spec.nodeName}"), node);

    // A NoSchedule taint keeps new pods off but leaves running ones, the daemon pod too.
    s.k(&["taint", "node", node, "dedicated=x:NoSchedule"]);
    s.k_in(
        &["apply", "-f", "-"],
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: plain}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: busybox\n    {SLEEPER}\n"
        ),
    );
    wait(
        &n,
        "plain's FailedScheduling event",
        30,
        &["pod/plain"],
        || !events(&n, "plain", "FailedScheduling").is_empty(),
    );
    let msg = events(&n, "plain", "FailedScheduling");
    assert!(
        msg.starts_with(
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: x}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
        ),
        "{msg}"
    );
    assert_eq!(get(&n, "pod plain", "{.status.phase}"), "Pending");
    let p = pods();
    assert!(
        p.len() == 1 && p[0].contains(",Running,v2,2,"),
        "the daemon pod did not stay: {p:?}"
    );
    assert_eq!(get(&n, "pod picky", "{.status.phase}"), "Running");
    s.k(&["taint", "node", node, "dedicated=x:NoSchedule-"]);
    wait(
        &n,
        "plain to run once the taint is gone",
        60,
        &["pod/plain"],
        || get(&n, "pod plain", "{.status.phase}") == "Running",
    );
}

const STATEFUL: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{name: http, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c"]
        args:
        - |
          [ -f /data/first ] || hostname > /data/first
          hostname >> /data/boots
          touch /tmp/ready
          trap 'exit 0' TERM
          while true; do sleep 1; done
        readinessProbe: {exec: {command: [test, -f, /tmp/ready]}, periodSeconds: 1}
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: client}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: busybox
    command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#;

/// The StatefulSet's identity end to end: ordered start, a claim and a volume per pod, a
/// stable DNS name under the headless Service, the same name and data after a deletion,
/// and scale-down in reverse order that keeps the claims.
#[test]
fn a_statefulset_keeps_names_claims_and_dns_identity() {
    let _g = serial();
    let n = Node::start("walk-sts", "10.213.0.0/16");
    let s = &n.server;
    s.k_in(&["apply", "-f", "-"], STATEFUL);
    wait(&n, "web-0..2 ready, in order", 150, &["sts/web"], || {
        let pods = web_pods(&n);
        for i in 1..3 {
            if pods.contains_key(&format!("web-{i}")) {
                let before = pods.get(&format!("web-{}", i - 1));
                assert!(
                    before.is_some_and(|(ready, _)| *ready),
                    "web-{i} exists before web-{} is ready: {pods:?}",
                    i - 1
                );
            }
        }
        pods.len() == 3 && pods.values().all(|(ready, _)| *ready)
    });
    let out = k(
        &n,
        &["rollout", "status", "sts/web", "--timeout=30s"],
        &["sts/web"],
    );
    assert!(out.contains("roll out complete"), "{out}");

    let mut volumes = BTreeMap::new();
    for i in 0..3 {
        let pod = format!("web-{i}");
        let claim = get(
            &n,
            &format!("pvc data-{pod}"),
            "{.status.phase},{.spec.storageClassName},{.spec.volumeName}",
        );
        let f: Vec<&str> = claim.split(',').collect();
        assert!(
            f.len() == 3 && f[0] == "Bound" && f[1] == "local-path" && !f[2].is_empty(),
            "claim of {pod}: {claim}"
        );
        volumes.insert(f[2].to_string(), pod.clone());
        let first = k(&n, &["exec", &pod, "--", "cat", "/data/first"], &[]);
        assert_eq!(first.trim(), pod);
    }
    assert_eq!(volumes.len(), 3, "claims share volumes: {volumes:?}");

    // web-0.web resolves, from another pod, to web-0's own address. busybox's nslookup
    // applies no search path to a name with a dot, so the script walks the pod's
    // resolv.conf search list as a libc resolver does (ndots:5).
    n.wait_phase("client", "Running");
    let ip0 = n.jsonpath("web-0", "{.status.podIP}");
    let script = "for d in $(awk '/^search/ {$1=\"\"; print}' /etc/resolv.conf); do nslookup web-0.web.$d && exit 0; done; exit 1";
    wait(&n, "web-0.web in DNS", 30, &["svc/web"], || {
        let (_, out, err) = s.kubectl(&["exec", "client", "--", "sh", "-c", script]);
        // shown only if the test fails
        eprintln!("web-0.web through the search path:\n{out}{err}");
        out.lines()
            .skip_while(|l| !l.starts_with("Name:"))
            .any(|l| l.starts_with("Address") && l.trim_end().ends_with(&ip0))
    });

    // A deleted pod comes back under its name, on its own claim, and finds its data.
    let uid1 = n.jsonpath("web-1", "{.metadata.uid}");
    let vol1 = get(&n, "pvc data-web-1", "{.spec.volumeName}");
    s.k(&["delete", "pod", "web-1"]);
    wait(
        &n,
        "web-1 back and ready",
        90,
        &["sts/web", "pod/web-1"],
        || {
            let uid = n.jsonpath("web-1", "{.metadata.uid}");
            !uid.is_empty() && uid != uid1 && web_pods(&n).get("web-1") == Some(&(true, false))
        },
    );
    assert_eq!(get(&n, "pvc data-web-1", "{.spec.volumeName}"), vol1);
    assert_eq!(
        k(&n, &["exec", "web-1", "--", "cat", "/data/first"], &[]).trim(),
        "web-1"
    );
    let boots = k(&n, &["exec", "web-1", "--", "cat", "/data/boots"], &[]);
    assert_eq!(boots.lines().collect::<Vec<_>>(), ["web-1", "web-1"]);

    // Scaled to one: web-2 goes first, then web-1; the claims stay.
    s.k(&["scale", "sts", "web", "--replicas=1"]);
    wait(&n, "web-1 and web-2 gone", 90, &["sts/web"], || {
        let pods = web_pods(&n);
        let going = |p: &str| pods.get(p).is_none_or(|(_, terminating)| *terminating);
        if going("web-1") {
            assert!(
                !pods.contains_key("web-2"),
                "web-1 went before web-2: {pods:?}"
            );
        }
        pods.keys().collect::<Vec<_>>() == ["web-0"]
    });
    let claims = get(&n, "pvc", "{.items[*].metadata.name}");
    assert_eq!(
        claims.split_whitespace().collect::<Vec<_>>(),
        ["data-web-0", "data-web-1", "data-web-2"]
    );
}

/// Deleting a namespace removes what is in it and stops its pods' containers, within the
/// pods' grace period and a margin.
#[test]
fn deleting_a_namespace_stops_and_removes_everything_in_it() {
    let _g = serial();
    let n = Node::start("walk-ns", "10.214.0.0/16");
    let s = &n.server;
    s.k(&["create", "namespace", "doomed"]);
    // sh as the container's first process ignores SIGTERM: each pod takes its full grace.
    s.k_in(
        &["apply", "-n", "doomed", "-f", "-"],
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 3
      containers:
      - name: c
        image: busybox
        command: ["sh", "-c", "while true; do sleep 1; done"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {mode: fast}
"#,
    );
    let out = k(
        &n,
        &[
            "rollout",
            "status",
            "-n",
            "doomed",
            "deploy/web",
            "--timeout=90s",
        ],
        &["-n doomed deploy/web"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    let uids = get(
        &n,
        "pods -n doomed",
        "{range .items[?(@.status.phase==\"Running\")]}{.metadata.uid} {end}",
    );
    let uids: Vec<&str> = uids.split_whitespace().collect();
    assert_eq!(uids.len(), 2, "{uids:?}");
    let shims: Vec<PathBuf> = uids
        .iter()
        .map(|u| PathBuf::from("/run/k1s/pods").join(u))
        .collect();
    for dir in &shims {
        assert!(dir.exists(), "no shim dir {}", dir.display());
    }

    let started = Instant::now();
    let (ok, out, err) = s.kubectl(&["delete", "namespace", "doomed", "--timeout=60s"]);
    let took = started.elapsed();
    eprintln!("namespace doomed deleted in {took:?}");
    assert!(ok, "{out}{err}\n{}", state(&n, &["ns/doomed"]));
    // kubectl waits for the namespace itself to be gone.
    assert!(
        took < Duration::from_secs(3 + 25),
        "the namespace took {took:?} to go\n{}",
        state(&n, &["ns/doomed"])
    );
    let (found, _, err) = s.kubectl(&["get", "namespace", "doomed"]);
    assert!(!found && err.contains("NotFound"), "{err}");
    for kind in [
        "pods",
        "deployments",
        "replicasets",
        "services",
        "configmaps",
    ] {
        let left = get(
            &n,
            &format!("{kind} -n doomed"),
            "{.items[*].metadata.name}",
        );
        assert!(left.trim().is_empty(), "{kind} left: {left}");
    }
    for dir in &shims {
        assert!(
            !dir.exists(),
            "shim dir {} left after the namespace went",
            dir.display()
        );
    }
    for u in &uids {
        assert!(!PathBuf::from("/run/k1s/netns").join(u).exists());
    }
    assert!(
        s.k(&["get", "namespaces"]).contains("default"),
        "other namespaces are untouched"
    );
}
