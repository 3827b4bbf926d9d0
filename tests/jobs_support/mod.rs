//! Helpers for the Job and CronJob tests: an in-process API with the batch controllers, Job
//! manifests, and pod status writes that stand in for a kubelet.
#![allow(dead_code)]

pub use crate::common::eventually;
pub use crate::common::inprocess::Cluster;
use k1s::controllers::cronjob::clock::ManualClock;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use std::sync::Arc;

pub const TRACKING: &str = "batch.kubernetes.io/job-tracking";
pub const INDEX: &str = "batch.kubernetes.io/job-completion-index";

/// The Job controller and the garbage collector (and the TTL-after-finished controller if
/// `ttl`).
pub async fn cluster(ttl: bool) -> Cluster {
    let c = Cluster::new().await;
    tokio::spawn(k1s::controllers::job::run(
        c.informers.clone(),
        c.cancel.clone(),
    ));
    tokio::spawn(k1s::controllers::garbagecollector::run(
        c.client.clone(),
        c.cancel.clone(),
    ));
    if ttl {
        tokio::spawn(k1s::controllers::ttlafterfinished::run(
            c.informers.clone(),
            c.cancel.clone(),
        ));
    }
    c
}

/// The CronJob controller alone (Jobs are finished by hand), on a manual clock.
pub async fn cron_cluster(start: jiff::Timestamp) -> (Cluster, ManualClock) {
    let c = Cluster::new().await;
    let clock = ManualClock::new(start);
    tokio::spawn(k1s::controllers::cronjob::run_with_clock(
        c.informers.clone(),
        Arc::new(clock.clone()),
        c.cancel.clone(),
    ));
    (c, clock)
}

/// A Job running one busybox container named `main`, with `spec` merged in.
pub fn job(name: &str, spec: serde_json::Value) -> Job {
    let mut s = json!({
        "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]
        }}
    });
    if let (Some(m), Some(extra)) = (s.as_object_mut(), spec.as_object()) {
        m.extend(extra.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": s
    }))
    .unwrap()
}

/// Every pod of the Job (by its job-name label), finished and terminating ones included.
pub async fn job_pods(client: &Client, job: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={job}"));
    api.list(&lp).await.unwrap().items
}

async fn patch_status(client: &Client, name: &str, st: serde_json::Value) {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => panic!("writing the status of {name}: {e}"),
    }
}

fn terminated(code: i32, at: jiff::Timestamp) -> serde_json::Value {
    json!([{
        "name": "main", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": {"terminated": {
            "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
            "startedAt": (at - jiff::SignedDuration::from_secs(1)).to_string(),
            "finishedAt": at.to_string()
        }}
    }])
}

/// Set a pod's phase as a kubelet would; `exit` adds the container's terminated state.
pub async fn set_phase(client: &Client, name: &str, phase: &str, exit: Option<i32>) {
    let mut st = json!({"status": {"phase": phase}});
    if let Some(code) = exit {
        st["status"]["containerStatuses"] = terminated(code, jiff::Timestamp::now());
    }
    patch_status(client, name, st).await;
}

/// The pod failed: its container exited with `code` at `at`.
pub async fn set_failed(client: &Client, name: &str, code: i32, at: jiff::Timestamp) {
    let st = json!({"status": {"phase": "Failed", "containerStatuses": terminated(code, at)}});
    patch_status(client, name, st).await;
}

pub async fn mark_ready(client: &Client, name: &str) {
    let now = jiff::Timestamp::now().to_string();
    let st = json!({"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now}
    ]}});
    patch_status(client, name, st).await;
}

/// Whether the Job has the condition with status True.
pub fn condition(job: &Job, type_: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == type_ && c.status == "True"))
}

/// The reasons of the events about an object.
pub async fn event_reasons(client: &Client, name: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().fields(&format!("involvedObject.name={name}"));
    let evs = events.list(&lp).await.unwrap();
    evs.items.into_iter().filter_map(|e| e.reason).collect()
}
