//! End-to-end: Jobs and CronJobs of a real `k1s server` driven by the real kubectl. The
//! server runs without its node agent, so the test plays the kubelet and marks pods
//! Succeeded through `kubectl patch --subresource=status`.

mod common;
use common::{wait_for, TestServer};

/// Mark every pending or running pod of `job` Succeeded; returns how many.
fn succeed_pods(s: &TestServer, job: &str) -> usize {
    let tmpl = r#"{range .items[*]}{.metadata.name} {.status.phase}{"\n"}{end}"#;
    let out = s.k(&[
        "get",
        "pods",
        "-l",
        &format!("batch.kubernetes.io/job-name={job}"),
        "-o",
        &format!("jsonpath={tmpl}"),
    ]);
    let mut n = 0;
    for line in out.lines() {
        let mut parts = line.split_whitespace();
        if let (Some(name), Some("Pending" | "Running")) = (parts.next(), parts.next()) {
            let done = r#"{"status":{"phase":"Succeeded"}}"#;
            s.k(&[
                "patch",
                "pod",
                name,
                "--subresource=status",
                "--type=merge",
                "-p",
                done,
            ]);
            n += 1;
        }
    }
    n
}

fn header(out: &str) -> Vec<String> {
    out.lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn jobs_and_cronjobs_with_kubectl() {
    let s = TestServer::start();
    s.k(&["create", "job", "pi", "--image=busybox", "--", "true"]);
    let mut seen = 0;
    wait_for("the pod of job pi", 30, || {
        seen += succeed_pods(&s, "pi");
        seen > 0
    });
    let out = s.k(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=30s",
    ]);
    assert!(out.contains("job.batch/pi condition met"), "{out}");
    let out = s.k(&["get", "jobs"]);
    assert_eq!(
        header(&out),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{out}"
    );
    let row = out.lines().find(|l| l.starts_with("pi ")).expect("pi row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..3], ["Complete", "1/1"], "{out}");
    assert!(cells[3].ends_with('s'), "duration {out}");
    let labels = s.k(&["get", "pods", "-l", "job-name=pi", "-o", "name"]);
    assert_eq!(labels.lines().count(), 1, "{labels}");

    // a cron job and a Job made from it by hand
    s.k(&[
        "create",
        "cronjob",
        "hello",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "--",
        "true",
    ]);
    let out = s.k(&["get", "cronjobs"]);
    assert_eq!(
        header(&out),
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ],
        "{out}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("hello "))
        .expect("hello row");
    assert!(
        row.contains("*/5 * * * *") && row.contains("False"),
        "{out}"
    );
    s.k(&["create", "job", "hello-manual", "--from=cronjob/hello"]);
    let owner = s.k(&[
        "get",
        "job",
        "hello-manual",
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    ]);
    assert_eq!(owner, "CronJob/hello");
    let mut seen = 0;
    wait_for("the pod of hello-manual", 30, || {
        seen += succeed_pods(&s, "hello-manual");
        seen > 0
    });
    s.k(&[
        "wait",
        "--for=condition=complete",
        "job/hello-manual",
        "--timeout=30s",
    ]);
    let out = s.k(&["get", "job", "hello-manual"]);
    assert!(out.contains("Complete") && out.contains("1/1"), "{out}");
    // `kubectl describe` shows the controller's events
    let out = s.k(&["describe", "job", "hello-manual"]);
    assert!(
        out.contains("SuccessfulCreate") && out.contains("Completed"),
        "{out}"
    );

    // bad input is refused with the field named
    let (ok, _, err) = s.kubectl(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=99 * * * *",
    ]);
    assert!(!ok && err.contains("spec.schedule"), "{err}");
    let bad_zone = r#"{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"badzone"},
        "spec":{"schedule":"* * * * *","timeZone":"Nowhere/City","jobTemplate":{"spec":{"template":
        {"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"busybox"}]}}}}}}"#;
    let (ok, _, err) = s.kubectl_stdin(&["create", "-f", "-"], Some(bad_zone));
    assert!(!ok && err.contains("spec.timeZone"), "{err}");
}
