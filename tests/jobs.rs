//! The Job, TTL-after-finished and CronJob controllers against the in-process API. No
//! scheduler or kubelet runs: tests mark pods Running, Succeeded or Failed (with container exit
//! codes) through pods/status, as a kubelet would. The CronJob controller runs on a manual
//! clock, so schedules hours apart are tested in milliseconds.

mod common;
#[path = "jobs_support/cronjobs.rs"]
mod cronjobs;
mod jobs_support;

use jobs_support::*;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn completions_and_parallelism() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let job = jobs
        .create(
            &PostParams::default(),
            &job("calc", json!({"completions": 3, "parallelism": 2})),
        )
        .await
        .unwrap();
    let uid = job.uid().unwrap();
    // the API generated the selector and the pod labels
    let sel = job.spec.as_ref().unwrap().selector.clone().unwrap();
    assert_eq!(
        sel.match_labels.unwrap()["batch.kubernetes.io/controller-uid"],
        uid
    );
    let pods = eventually(10, "2 pods", || async {
        let p = job_pods(&c.client, "calc").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    for p in &pods {
        let name = p.name_any();
        assert!(
            name.starts_with("calc-") && name.len() == "calc-".len() + 5,
            "{name}"
        );
        let l = p.labels();
        assert_eq!(l["batch.kubernetes.io/job-name"], "calc");
        assert_eq!(l["job-name"], "calc");
        assert_eq!(l["controller-uid"], uid);
        let r = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((r.kind.as_str(), r.uid.as_str()), ("Job", uid.as_str()));
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
        assert!(p.finalizers().iter().any(|f| f == TRACKING));
    }
    set_phase(&c.client, &pods[0].name_any(), "Running", None).await;
    mark_ready(&c.client, &pods[0].name_any()).await;
    eventually(10, "active 2, ready 1", || async {
        let s = jobs.get("calc").await.unwrap().status?;
        (s.active == Some(2) && s.ready == Some(1) && s.start_time.is_some()).then_some(())
    })
    .await;
    set_phase(&c.client, &pods[0].name_any(), "Succeeded", Some(0)).await;
    // the third pod comes, never a fourth
    let third = eventually(10, "a third pod", || async {
        let p = job_pods(&c.client, "calc").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    eventually(10, "the succeeded pod released", || async {
        let p: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let p = p.get(&pods[0].name_any()).await.unwrap();
        (!p.finalizers().iter().any(|f| f == TRACKING)).then_some(())
    })
    .await;
    eventually(10, "succeeded 1", || async {
        let s = jobs.get("calc").await.unwrap().status?;
        (s.succeeded == Some(1) && s.active == Some(2)).then_some(())
    })
    .await;
    for p in &third {
        set_phase(&c.client, &p.name_any(), "Succeeded", Some(0)).await;
    }
    let done = eventually(10, "complete", || async {
        let j = jobs.get("calc").await.unwrap();
        condition(&j, "Complete").then_some(j)
    })
    .await;
    let s = done.status.clone().unwrap();
    assert_eq!(s.succeeded, Some(3));
    assert_eq!(s.active, None);
    assert!(s.completion_time.is_some());
    assert!(condition(&done, "SuccessCriteriaMet"));
    let unc = s.uncounted_terminated_pods.unwrap_or_default();
    assert!(unc.succeeded.unwrap_or_default().is_empty());
    assert_eq!(job_pods(&c.client, "calc").await.len(), 3);
    for p in job_pods(&c.client, "calc").await {
        assert!(
            !p.finalizers().iter().any(|f| f == TRACKING),
            "{}",
            p.name_any()
        );
    }
    let reasons = event_reasons(&c.client, "calc").await;
    assert!(
        reasons.contains(&"SuccessfulCreate".to_string()),
        "{reasons:?}"
    );
    assert!(reasons.contains(&"Completed".to_string()), "{reasons:?}");
}

#[tokio::test]
async fn work_queue_and_zero_parallelism() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("idle", json!({"parallelism": 0})),
    )
    .await
    .unwrap();
    jobs.create(
        &PostParams::default(),
        &job("queue", json!({"parallelism": 2})),
    )
    .await
    .unwrap();
    let pods = eventually(10, "2 workers", || async {
        let p = job_pods(&c.client, "queue").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    set_phase(&c.client, &pods[0].name_any(), "Succeeded", Some(0)).await;
    eventually(10, "succeeded 1", || async {
        let s = jobs.get("queue").await.unwrap().status?;
        (s.succeeded == Some(1)).then_some(())
    })
    .await;
    // once one worker succeeded, no new ones start and the job waits for the other
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(job_pods(&c.client, "queue").await.len(), 2);
    assert!(!condition(&jobs.get("queue").await.unwrap(), "Complete"));
    set_phase(&c.client, &pods[1].name_any(), "Succeeded", Some(0)).await;
    eventually(10, "complete", || async {
        condition(&jobs.get("queue").await.unwrap(), "Complete").then_some(())
    })
    .await;
    assert!(job_pods(&c.client, "idle").await.is_empty());
    let idle = jobs.get("idle").await.unwrap();
    assert!(!condition(&idle, "Complete"));
}

#[tokio::test]
async fn backoff_then_backoff_limit_exceeded() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("flaky", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    let first = eventually(10, "a pod", || async {
        job_pods(&c.client, "flaky").await.pop()
    })
    .await;
    // it failed 6 s ago: the replacement waits until 10 s after the failure
    let failed_at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(6);
    set_failed(&c.client, &first.name_any(), 1, failed_at).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        job_pods(&c.client, "flaky").await.len(),
        1,
        "created before the back-off"
    );
    let second = eventually(10, "a replacement", || async {
        let p = job_pods(&c.client, "flaky").await;
        p.into_iter().find(|p| p.name_any() != first.name_any())
    })
    .await;
    assert!(jiff::Timestamp::now() >= failed_at + jiff::SignedDuration::from_secs(10));
    eventually(10, "failed 1", || async {
        let s = jobs.get("flaky").await.unwrap().status?;
        (s.failed == Some(1)).then_some(())
    })
    .await;
    set_failed(&c.client, &second.name_any(), 1, jiff::Timestamp::now()).await;
    let j = eventually(10, "failed", || async {
        let j = jobs.get("flaky").await.unwrap();
        condition(&j, "Failed").then_some(j)
    })
    .await;
    let conds = j.status.clone().unwrap().conditions.unwrap();
    let failed = conds.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert!(conds
        .iter()
        .any(|c| c.type_ == "FailureTarget" && c.status == "True"));
    assert_eq!(j.status.unwrap().failed, Some(2));
    assert_eq!(job_pods(&c.client, "flaky").await.len(), 2);
    let reasons = event_reasons(&c.client, "flaky").await;
    assert!(
        reasons.contains(&"BackoffLimitExceeded".to_string()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn indexed_completion() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let spec = json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"});
    jobs.create(&PostParams::default(), &job("idx", spec))
        .await
        .unwrap();
    let pods = eventually(10, "3 pods", || async {
        let p = job_pods(&c.client, "idx").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    let mut by_index = std::collections::BTreeMap::new();
    for p in &pods {
        let ix = p.annotations()[INDEX].clone();
        assert_eq!(p.labels()[INDEX], ix);
        let name = p.name_any();
        assert!(name.starts_with(&format!("idx-{ix}-")), "{name}");
        assert_eq!(name.len(), format!("idx-{ix}-").len() + 5);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.hostname.as_deref(), Some(format!("idx-{ix}").as_str()));
        let env = spec.containers[0].env.as_ref().unwrap();
        let e = env
            .iter()
            .find(|e| e.name == "JOB_COMPLETION_INDEX")
            .unwrap();
        let path = &e
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path;
        assert_eq!(
            path,
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        by_index.insert(ix, name);
    }
    assert_eq!(
        by_index.keys().cloned().collect::<Vec<_>>(),
        ["0", "1", "2"]
    );
    set_phase(&c.client, &by_index["0"], "Succeeded", Some(0)).await;
    set_phase(&c.client, &by_index["2"], "Succeeded", Some(0)).await;
    eventually(10, "completedIndexes 0,2", || async {
        let s = jobs.get("idx").await.unwrap().status?;
        (s.completed_indexes.as_deref() == Some("0,2") && s.succeeded == Some(2)).then_some(())
    })
    .await;
    // index 1 fails: it is recreated for the same index
    set_failed(
        &c.client,
        &by_index["1"],
        1,
        jiff::Timestamp::now() - jiff::SignedDuration::from_secs(20),
    )
    .await;
    let again = eventually(15, "index 1 again", || async {
        job_pods(&c.client, "idx")
            .await
            .into_iter()
            .find(|p| p.annotations()[INDEX] == "1" && p.name_any() != by_index["1"])
    })
    .await;
    set_phase(&c.client, &again.name_any(), "Succeeded", Some(0)).await;
    let j = eventually(10, "complete", || async {
        let j = jobs.get("idx").await.unwrap();
        condition(&j, "Complete").then_some(j)
    })
    .await;
    let s = j.status.unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!((s.succeeded, s.failed), (Some(3), Some(1)));
}

#[tokio::test]
async fn active_deadline_fails_the_job_and_deletes_pods() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let spec = json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 2});
    jobs.create(&PostParams::default(), &job("slow", spec))
        .await
        .unwrap();
    eventually(10, "2 pods", || async {
        (job_pods(&c.client, "slow").await.len() == 2).then_some(())
    })
    .await;
    let j = eventually(15, "failed", || async {
        let j = jobs.get("slow").await.unwrap();
        condition(&j, "Failed").then_some(j)
    })
    .await;
    let conds = j.status.clone().unwrap().conditions.unwrap();
    let failed = conds.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("DeadlineExceeded"));
    assert_eq!(
        failed.message.as_deref(),
        Some("Job was active longer than specified deadline")
    );
    // the running pods were deleted (they had no node, so they are gone)
    eventually(10, "pods gone", || async {
        job_pods(&c.client, "slow").await.is_empty().then_some(())
    })
    .await;
    let s = jobs.get("slow").await.unwrap().status.unwrap();
    assert_eq!((s.active, s.terminating), (None, Some(0)));
    assert!(event_reasons(&c.client, "slow")
        .await
        .contains(&"DeadlineExceeded".to_string()));
}

#[tokio::test]
async fn ttl_after_finished_deletes_the_job() {
    let c = cluster(true).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("short", json!({"ttlSecondsAfterFinished": 3})),
    )
    .await
    .unwrap();
    let pod = eventually(10, "a pod", || async {
        job_pods(&c.client, "short").await.pop()
    })
    .await;
    set_phase(&c.client, &pod.name_any(), "Succeeded", Some(0)).await;
    let j = eventually(10, "complete", || async {
        let j = jobs.get("short").await.unwrap();
        condition(&j, "Complete").then_some(j)
    })
    .await;
    let (_, done) = k1s::controllers::job::finished(&j).unwrap();
    let done = done.unwrap();
    // kept until three seconds after it finished, then deleted
    assert!(jobs.get_opt("short").await.unwrap().is_some());
    eventually(10, "job deleted", || async {
        jobs.get_opt("short").await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(jiff::Timestamp::now() >= done + jiff::SignedDuration::from_secs(3));
}

#[tokio::test]
async fn suspend_and_resume() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let spec = json!({"parallelism": 2, "completions": 2, "suspend": true});
    jobs.create(&PostParams::default(), &job("later", spec))
        .await
        .unwrap();
    eventually(10, "suspended", || async {
        condition(&jobs.get("later").await.unwrap(), "Suspended").then_some(())
    })
    .await;
    let s = jobs.get("later").await.unwrap().status.unwrap();
    assert!(s.start_time.is_none());
    assert!(job_pods(&c.client, "later").await.is_empty());
    let resume = json!({"spec": {"suspend": false}});
    jobs.patch("later", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .unwrap();
    eventually(10, "2 pods", || async {
        (job_pods(&c.client, "later").await.len() == 2).then_some(())
    })
    .await;
    let j = eventually(10, "resumed", || async {
        let j = jobs.get("later").await.unwrap();
        let s = j.status.clone()?;
        let c = s.conditions?.into_iter().find(|c| c.type_ == "Suspended")?;
        (c.status == "False" && c.reason.as_deref() == Some("JobResumed") && s.start_time.is_some())
            .then_some(j)
    })
    .await;
    assert!(!condition(&j, "Suspended"));
    let suspend = json!({"spec": {"suspend": true}});
    jobs.patch("later", &PatchParams::default(), &Patch::Merge(&suspend))
        .await
        .unwrap();
    eventually(10, "pods deleted", || async {
        job_pods(&c.client, "later").await.is_empty().then_some(())
    })
    .await;
    eventually(10, "suspended again", || async {
        let j = jobs.get("later").await.unwrap();
        (condition(&j, "Suspended") && j.status?.active.is_none()).then_some(())
    })
    .await;
    let reasons = event_reasons(&c.client, "later").await;
    for r in ["Suspended", "Resumed", "SuccessfulDelete"] {
        assert!(reasons.contains(&r.to_string()), "{r} in {reasons:?}");
    }
}

#[tokio::test]
async fn pod_failure_policy_ignore_and_fail_job() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let spec = json!({
        "backoffLimit": 5,
        "podFailurePolicy": {"rules": [
            {"action": "Ignore", "onExitCodes": {"operator": "In", "values": [3]}},
            {"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]}}
        ]}
    });
    jobs.create(&PostParams::default(), &job("picky", spec))
        .await
        .unwrap();
    let first = eventually(10, "a pod", || async {
        job_pods(&c.client, "picky").await.pop()
    })
    .await;
    // exit 3 is ignored: replaced at once, not counted, no back-off
    set_failed(&c.client, &first.name_any(), 3, jiff::Timestamp::now()).await;
    let second = eventually(5, "a replacement", || async {
        job_pods(&c.client, "picky")
            .await
            .into_iter()
            .find(|p| p.name_any() != first.name_any())
    })
    .await;
    eventually(10, "first released", || async {
        let p: Api<Pod> = Api::namespaced(c.client.clone(), "default");
        let p = p.get(&first.name_any()).await.unwrap();
        (!p.finalizers().iter().any(|f| f == TRACKING)).then_some(())
    })
    .await;
    assert_eq!(
        jobs.get("picky").await.unwrap().status.unwrap().failed,
        None
    );
    set_failed(&c.client, &second.name_any(), 42, jiff::Timestamp::now()).await;
    let j = eventually(10, "failed", || async {
        let j = jobs.get("picky").await.unwrap();
        condition(&j, "Failed").then_some(j)
    })
    .await;
    let conds = j.status.clone().unwrap().conditions.unwrap();
    let failed = conds.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("PodFailurePolicy"));
    let msg = failed.message.clone().unwrap();
    assert!(
        msg.contains("exit code 42 matching FailJob rule at index 1"),
        "{msg}"
    );
    assert_eq!(j.status.unwrap().failed, Some(1));
}

#[tokio::test]
async fn deleting_a_job_releases_its_pods() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("gone", json!({"parallelism": 2})),
    )
    .await
    .unwrap();
    eventually(10, "2 pods", || async {
        (job_pods(&c.client, "gone").await.len() == 2).then_some(())
    })
    .await;
    // foreground deletion waits for the pods; the controller must let go of them
    jobs.delete("gone", &DeleteParams::foreground())
        .await
        .unwrap();
    eventually(10, "finalizers removed", || async {
        let pods = job_pods(&c.client, "gone").await;
        pods.iter()
            .all(|p| !p.finalizers().iter().any(|f| f == TRACKING))
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn pods_of_a_deleted_job_are_released_and_collected() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job("brief", json!({"parallelism": 2})),
    )
    .await
    .unwrap();
    eventually(10, "2 pods", || async {
        (job_pods(&c.client, "brief").await.len() == 2).then_some(())
    })
    .await;
    // background: the Job goes at once, the collector deletes the pods, and their tracking
    // finalizers must not keep them
    jobs.delete("brief", &DeleteParams::background())
        .await
        .unwrap();
    eventually(15, "pods gone", || async {
        job_pods(&c.client, "brief").await.is_empty().then_some(())
    })
    .await;
}

#[tokio::test]
async fn backoff_limit_per_index_and_max_failed_indexes() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let long_ago = || jiff::Timestamp::now() - jiff::SignedDuration::from_secs(30);
    // no retries per index: a failed index stays failed, the others still run
    let spec = json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed",
        "backoffLimitPerIndex": 0});
    jobs.create(&PostParams::default(), &job("per", spec))
        .await
        .unwrap();
    let pods = eventually(10, "3 pods", || async {
        let p = job_pods(&c.client, "per").await;
        (p.len() == 3).then_some(p)
    })
    .await;
    let name_of = |ix: &str| {
        pods.iter()
            .find(|p| p.annotations()[INDEX] == ix)
            .unwrap()
            .name_any()
    };
    assert_eq!(
        pods[0].annotations()["batch.kubernetes.io/job-index-failure-count"],
        "0"
    );
    set_failed(&c.client, &name_of("1"), 1, long_ago()).await;
    eventually(10, "failedIndexes 1", || async {
        let s = jobs.get("per").await.unwrap().status?;
        (s.failed_indexes.as_deref() == Some("1") && s.failed == Some(1)).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        job_pods(&c.client, "per").await.len(),
        3,
        "a failed index is not retried"
    );
    set_phase(&c.client, &name_of("0"), "Succeeded", Some(0)).await;
    set_phase(&c.client, &name_of("2"), "Succeeded", Some(0)).await;
    let j = eventually(10, "failed", || async {
        let j = jobs.get("per").await.unwrap();
        condition(&j, "Failed").then_some(j)
    })
    .await;
    let s = j.status.unwrap();
    assert_eq!(s.completed_indexes.as_deref(), Some("0,2"));
    let failed = s
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("FailedIndexes"));

    // one retry per index, no failed index allowed
    let spec = json!({"completions": 2, "parallelism": 2, "completionMode": "Indexed",
        "backoffLimitPerIndex": 1, "maxFailedIndexes": 0});
    jobs.create(&PostParams::default(), &job("strict", spec))
        .await
        .unwrap();
    let pods = eventually(10, "2 pods", || async {
        let p = job_pods(&c.client, "strict").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let first = pods
        .iter()
        .find(|p| p.annotations()[INDEX] == "0")
        .unwrap()
        .name_any();
    set_failed(&c.client, &first, 1, long_ago()).await;
    let retry = eventually(10, "index 0 retried", || async {
        job_pods(&c.client, "strict")
            .await
            .into_iter()
            .find(|p| p.annotations()[INDEX] == "0" && p.name_any() != first)
    })
    .await;
    assert_eq!(
        retry.annotations()["batch.kubernetes.io/job-index-failure-count"],
        "1"
    );
    set_failed(&c.client, &retry.name_any(), 1, jiff::Timestamp::now()).await;
    let j = eventually(10, "failed", || async {
        let j = jobs.get("strict").await.unwrap();
        condition(&j, "Failed").then_some(j)
    })
    .await;
    let s = j.status.unwrap();
    assert_eq!(s.failed_indexes.as_deref(), Some("0"));
    let failed = s
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("MaxFailedIndexesExceeded"));
    // the running index 1 was stopped
    eventually(10, "index 1 gone", || async {
        let left = job_pods(&c.client, "strict").await;
        (!left.iter().any(|p| p.annotations()[INDEX] == "1")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn restarts_count_against_the_backoff_limit_with_on_failure() {
    let c = cluster(false).await;
    let jobs: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let mut j = job("restarts", json!({"backoffLimit": 2}));
    j.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("OnFailure".into());
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let pod = eventually(10, "a pod", || async {
        job_pods(&c.client, "restarts").await.pop()
    })
    .await;
    let st = |restarts: i32| {
        json!({"status": {"phase": "Running", "containerStatuses": [{
            "name": "main", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": restarts, "state": {"waiting": {"reason": "CrashLoopBackOff"}}
        }]}})
    };
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&st(1)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!condition(
        &jobs.get("restarts").await.unwrap(),
        "FailureTarget"
    ));
    pods.patch_status(
        &pod.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&st(2)),
    )
    .await
    .unwrap();
    let j = eventually(10, "failed", || async {
        let j = jobs.get("restarts").await.unwrap();
        condition(&j, "Failed").then_some(j)
    })
    .await;
    let conds = j.status.unwrap().conditions.unwrap();
    let failed = conds.iter().find(|c| c.type_ == "Failed").unwrap();
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
}
