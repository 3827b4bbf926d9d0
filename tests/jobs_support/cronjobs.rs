//! CronJob controller tests on a manual clock (part of the `jobs` test binary). No Job
//! controller runs: tests finish Jobs by writing their status.

use crate::jobs_support::*;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::time::Duration;

fn cronjob(name: &str, schedule: &str, extra: serde_json::Value) -> CronJob {
    let mut spec = json!({
        "schedule": schedule,
        "jobTemplate": {
            "metadata": {"labels": {"from": name}},
            "spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "main", "image": "busybox"}]
            }}}
        }
    });
    if let (Some(m), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name}, "spec": spec
    }))
    .unwrap()
}

/// The first multiple of `step` seconds strictly after `t`.
fn boundary_after(t: Timestamp, step: i64) -> Timestamp {
    let s = t.as_second();
    Timestamp::from_second(s - s.rem_euclid(step) + step).unwrap()
}

async fn create(client: &Client, cj: CronJob) -> (Api<CronJob>, Timestamp) {
    let api: Api<CronJob> = Api::namespaced(client.clone(), "default");
    let cj = api.create(&PostParams::default(), &cj).await.unwrap();
    (api, cj.metadata.creation_timestamp.unwrap().0)
}

async fn jobs_of(client: &Client, cronjob: &str) -> Vec<Job> {
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    let lp = ListParams::default().labels(&format!("from={cronjob}"));
    let mut v: Vec<Job> = api
        .list(&lp)
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|j| j.metadata.deletion_timestamp.is_none())
        .collect();
    v.sort_by_key(|j| j.name_any());
    v
}

/// Finish a Job by hand, as the Job controller would.
async fn finish(client: &Client, name: &str, kind: &str, at: Timestamp) {
    let api: Api<Job> = Api::namespaced(client.clone(), "default");
    let mut st = json!({"status": {
        "startTime": (at - SignedDuration::from_secs(5)).to_string(),
        "conditions": [{"type": kind, "status": "True", "lastTransitionTime": at.to_string()}]
    }});
    if kind == "Complete" {
        st["status"]["completionTime"] = json!(at.to_string());
        st["status"]["succeeded"] = json!(1);
    } else {
        st["status"]["failed"] = json!(1);
    }
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&st))
        .await
        .unwrap();
}

async fn quiet() {
    tokio::time::sleep(Duration::from_millis(400)).await;
}

#[tokio::test]
async fn cronjob_creates_jobs_at_the_scheduled_time() {
    let (c, clock) = cron_cluster(Timestamp::now()).await;
    let (api, created) = create(
        &c.client,
        cronjob("tick", "*/5 * * * *", json!({"timeZone": "UTC"})),
    )
    .await;
    let due = boundary_after(created, 300);
    clock.set(due - SignedDuration::from_secs(10));
    quiet().await;
    assert!(jobs_of(&c.client, "tick").await.is_empty());
    clock.set(due + SignedDuration::from_secs(1));
    let job = eventually(10, "a job", || async {
        jobs_of(&c.client, "tick").await.pop()
    })
    .await;
    assert_eq!(job.name_any(), format!("tick-{}", due.as_second() / 60));
    assert_eq!(
        job.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        due.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    );
    let r = &job.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((r.kind.as_str(), r.name.as_str()), ("CronJob", "tick"));
    assert_eq!(r.controller, Some(true));
    let st = eventually(10, "status", || async {
        let s = api.get("tick").await.unwrap().status?;
        (s.active.as_ref().is_some_and(|a| a.len() == 1)).then_some(s)
    })
    .await;
    assert_eq!(st.last_schedule_time.unwrap().0, due);
    assert_eq!(
        st.active.unwrap()[0].name.as_deref(),
        Some(job.name_any().as_str())
    );
    let done_at = due + SignedDuration::from_secs(30);
    finish(&c.client, &job.name_any(), "Complete", done_at).await;
    eventually(10, "active cleared", || async {
        let s = api.get("tick").await.unwrap().status?;
        (s.active.is_none() && s.last_successful_time.as_ref().map(|t| t.0) == Some(done_at))
            .then_some(())
    })
    .await;
    let reasons = event_reasons(&c.client, "tick").await;
    assert!(reasons.contains(&"SuccessfulCreate".into()), "{reasons:?}");
    assert!(reasons.contains(&"SawCompletedJob".into()), "{reasons:?}");
    // nothing more until the next time
    clock.set(due + SignedDuration::from_secs(299));
    quiet().await;
    assert_eq!(jobs_of(&c.client, "tick").await.len(), 1);
    clock.set(due + SignedDuration::from_secs(301));
    eventually(10, "a second job", || async {
        (jobs_of(&c.client, "tick").await.len() == 2).then_some(())
    })
    .await;
}

#[tokio::test]
async fn forbid_and_replace() {
    let (c, clock) = cron_cluster(Timestamp::now()).await;
    create(
        &c.client,
        cronjob(
            "forbid",
            "* * * * *",
            json!({"concurrencyPolicy": "Forbid"}),
        ),
    )
    .await;
    create(
        &c.client,
        cronjob(
            "replace",
            "* * * * *",
            json!({"concurrencyPolicy": "Replace"}),
        ),
    )
    .await;
    let first = boundary_after(Timestamp::now(), 60) + SignedDuration::from_secs(1);
    clock.set(first);
    for cj in ["forbid", "replace"] {
        eventually(10, "first jobs", || async {
            (jobs_of(&c.client, cj).await.len() == 1).then_some(())
        })
        .await;
    }
    let old_replace = jobs_of(&c.client, "replace").await.pop().unwrap();
    clock.set(first + SignedDuration::from_secs(60));
    let new_replace = eventually(10, "the replacement", || async {
        let v = jobs_of(&c.client, "replace").await;
        (v.len() == 1 && v[0].name_any() != old_replace.name_any()).then(|| v[0].clone())
    })
    .await;
    assert!(new_replace.name_any() > old_replace.name_any());
    eventually(10, "JobAlreadyActive", || async {
        event_reasons(&c.client, "forbid")
            .await
            .contains(&"JobAlreadyActive".to_string())
            .then_some(())
    })
    .await;
    assert_eq!(jobs_of(&c.client, "forbid").await.len(), 1);
    let reasons = event_reasons(&c.client, "replace").await;
    assert!(reasons.contains(&"SuccessfulDelete".into()), "{reasons:?}");
}

#[tokio::test]
async fn history_limits() {
    let (c, clock) = cron_cluster(Timestamp::now()).await;
    let limits = json!({"successfulJobsHistoryLimit": 1, "failedJobsHistoryLimit": 1});
    create(&c.client, cronjob("hist", "* * * * *", limits)).await;
    let start = boundary_after(Timestamp::now(), 60);
    let mut names = vec![];
    for (i, kind) in ["Complete", "Complete", "Failed", "Failed"]
        .iter()
        .enumerate()
    {
        let t = start + SignedDuration::from_secs(60 * i as i64 + 1);
        clock.set(t);
        let name = format!("hist-{}", (t.as_second() - 1) / 60);
        eventually(10, "the job", || async {
            jobs_of(&c.client, "hist")
                .await
                .iter()
                .any(|j| j.name_any() == name)
                .then_some(())
        })
        .await;
        finish(&c.client, &name, kind, t + SignedDuration::from_secs(10)).await;
        names.push(name);
    }
    eventually(10, "only the newest of each", || async {
        let left: Vec<String> = jobs_of(&c.client, "hist")
            .await
            .iter()
            .map(|j| j.name_any())
            .collect();
        (left == vec![names[1].clone(), names[3].clone()]).then_some(())
    })
    .await;
}

#[tokio::test]
async fn too_many_missed_start_times() {
    let (c, clock) = cron_cluster(Timestamp::now()).await;
    let (_, created) = create(&c.client, cronjob("busy", "* * * * *", json!({}))).await;
    // 200 minutes later: more than 100 missed; only the latest one runs
    let now = created + SignedDuration::from_mins(200) + SignedDuration::from_secs(5);
    clock.set(now);
    let jobs = eventually(10, "busy job", || async {
        let v = jobs_of(&c.client, "busy").await;
        (!v.is_empty()).then_some(v)
    })
    .await;
    quiet().await;
    let jobs_now = jobs_of(&c.client, "busy").await;
    assert_eq!(jobs_now.len(), 1, "only the most recent missed time runs");
    let latest = now.as_second() - now.as_second().rem_euclid(60);
    assert_eq!(jobs[0].name_any(), format!("busy-{}", latest / 60));
    let reasons = event_reasons(&c.client, "busy").await;
    assert!(
        reasons.contains(&"TooManyMissedTimes".into()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn starting_deadline() {
    let (c, clock) = cron_cluster(Timestamp::now()).await;
    let deadline = json!({"startingDeadlineSeconds": 30});
    let (_, created) = create(&c.client, cronjob("late", "0 * * * *", deadline)).await;
    // the hour passed 90 s ago, beyond the 30 s deadline: skipped
    let hour = boundary_after(created, 3600);
    clock.set(hour + SignedDuration::from_secs(90));
    quiet().await;
    assert!(jobs_of(&c.client, "late").await.is_empty());
    // 10 s after the next hour: in time
    clock.set(hour + SignedDuration::from_secs(3600 + 10));
    let late = eventually(10, "late job", || async {
        jobs_of(&c.client, "late").await.pop()
    })
    .await;
    assert_eq!(
        late.name_any(),
        format!("late-{}", (hour.as_second() + 3600) / 60)
    );
}

#[tokio::test]
async fn suspended_cronjob_creates_nothing() {
    let (c, clock) = cron_cluster(Timestamp::now()).await;
    let (api, _) = create(
        &c.client,
        cronjob("sleepy", "* * * * *", json!({"suspend": true})),
    )
    .await;
    clock.advance(SignedDuration::from_mins(10));
    quiet().await;
    assert!(jobs_of(&c.client, "sleepy").await.is_empty());
    let resume = json!({"spec": {"suspend": false}});
    api.patch("sleepy", &PatchParams::default(), &Patch::Merge(&resume))
        .await
        .unwrap();
    eventually(10, "a job after resuming", || async {
        (jobs_of(&c.client, "sleepy").await.len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn time_zones() {
    let (c, clock) = cron_cluster(Timestamp::now()).await;
    let tz = json!({"timeZone": "Asia/Tokyo"});
    let (_, created) = create(&c.client, cronjob("tokyo", "0 9 * * *", tz)).await;
    // 09:00 in Tokyo is midnight UTC
    let due = boundary_after(created, 86400);
    clock.set(due - SignedDuration::from_secs(5));
    quiet().await;
    assert!(jobs_of(&c.client, "tokyo").await.is_empty());
    clock.set(due + SignedDuration::from_secs(1));
    let job = eventually(10, "a job", || async {
        jobs_of(&c.client, "tokyo").await.pop()
    })
    .await;
    assert_eq!(job.name_any(), format!("tokyo-{}", due.as_second() / 60));
    let stamp = &job.annotations()["batch.kubernetes.io/cronjob-scheduled-timestamp"];
    assert!(stamp.ends_with("T09:00:00+09:00"), "{stamp}");
}

#[tokio::test]
async fn bad_schedules_and_zones_are_rejected() {
    let (c, _clock) = cron_cluster(Timestamp::now()).await;
    let api: Api<CronJob> = Api::namespaced(c.client.clone(), "default");
    for (name, schedule, extra) in [
        (
            "badzone",
            "* * * * *",
            json!({"timeZone": "Mars/Olympus_Mons"}),
        ),
        ("badsched", "61 * * * *", json!({})),
        ("badmacro", "@fortnightly", json!({})),
        ("fourfields", "* * * *", json!({})),
    ] {
        match api
            .create(&PostParams::default(), &cronjob(name, schedule, extra))
            .await
        {
            Err(kube::Error::Api(e)) => assert_eq!(e.code, 422, "{name}: {e:?}"),
            other => panic!("{name}: expected 422, got {other:?}"),
        }
    }
    // a zone that exists is fine
    let ok = cronjob(
        "goodzone",
        "* * * * *",
        json!({"timeZone": "Europe/Berlin"}),
    );
    api.create(&PostParams::default(), &ok).await.unwrap();
}
