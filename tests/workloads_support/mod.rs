//! Helpers for the workload walk-throughs (`workloads.rs`): bounded waits and kubectl calls
//! that, when they fail, print what kubectl shows of the cluster and the end of the server
//! log. They only read through kubectl; they never change the cluster.

use super::node_support::Node;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What kubectl shows of the cluster and of `objects` (each a `kubectl describe` argument
/// list, split on spaces), with the end of the server log.
pub fn state(n: &Node, objects: &[&str]) -> String {
    let s = &n.server;
    let mut out = String::new();
    let mut run = |args: &[&str]| {
        let (_, o, e) = s.kubectl(args);
        out.push_str(&format!("$ kubectl {}\n{o}{e}\n", args.join(" ")));
    };
    run(&["get", "all,pvc,pv,nodes", "-A", "-o", "wide"]);
    run(&["get", "events", "-A", "--sort-by=.lastTimestamp"]);
    for obj in objects {
        let mut args = vec!["describe"];
        args.extend(obj.split_whitespace());
        run(&args);
    }
    let log = s.log();
    let tail: Vec<&str> = log.lines().rev().take(150).collect();
    out.push_str("server log (end):\n");
    for l in tail.into_iter().rev() {
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// Polls `f` until it holds, for at most `secs`; on timeout panics with `state`.
pub fn wait(n: &Node, what: &str, secs: u64, objects: &[&str], mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > deadline {
            panic!(
                "timed out after {secs}s waiting for {what}\n{}",
                state(n, objects)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// kubectl that must succeed, or the test fails with `state`.
pub fn k(n: &Node, args: &[&str], objects: &[&str]) -> String {
    let (ok, out, err) = n.server.kubectl(args);
    assert!(
        ok,
        "kubectl {args:?} failed:\n{out}{err}\n{}",
        state(n, objects)
    );
    out
}

/// `kubectl get <what> -o jsonpath=<path>` (`what` split on spaces); empty if it fails.
pub fn get(n: &Node, what: &str, path: &str) -> String {
    let mut args = vec!["get"];
    args.extend(what.split_whitespace());
    let path = format!("jsonpath={path}");
    args.extend(["-o", &path]);
    n.server.kubectl(&args).1
}

/// The messages of the pod's events of one reason.
pub fn events(n: &Node, pod: &str, reason: &str) -> String {
    n.server
        .kubectl(&[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={pod}"),
            "-o",
            &format!("jsonpath={{range .items[?(@.reason==\"{reason}\")]}}{{.message}}{{\"\\n\"}}{{end}}"),
        ])
        .1
}

/// web-N -> (ready, terminating) for the StatefulSet's pods that exist now.
pub fn web_pods(n: &Node) -> BTreeMap<String, (bool, bool)> {
    get(
        n,
        "pods -l app=web",
        "{range .items[*]}{.metadata.name},{.status.conditions[?(@.type==\"Ready\")].status},{.metadata.deletionTimestamp} {end}",
    )
    .split_whitespace()
    .filter_map(|p| {
        let mut f = p.split(',');
        let name = f.next()?.to_string();
        let ready = f.next() == Some("True");
        let terminating = f.next().is_some_and(|t| !t.is_empty());
        Some((name, (ready, terminating)))
    })
    .collect()
}
