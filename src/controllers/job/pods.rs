//! The Job controller's writes to pods: building a pod from the Job's template (generated
//! name, controller reference, the `batch.kubernetes.io/job-tracking` finalizer, and for
//! Indexed Jobs the completion index as annotation and label, the `<job>-<index>` hostname
//! and the `JOB_COMPLETION_INDEX` variable read from the annotation through the downward
//! API, as upstream does), creating them in slow-start batches, deleting them, and removing
//! the tracking finalizer once a pod is counted. Deciding what to do is not done here.

use super::indexes;
use crate::controllers::common::{self, Expect, Recorder};
use crate::controllers::podutil;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ObjectFieldSelector, Pod, PodTemplateSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::ResourceExt;
use serde_json::json;
use std::collections::HashSet;

pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

pub fn has_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

fn add_index_env(containers: &mut [Container]) {
    for c in containers {
        let env = c.env.get_or_insert_with(Vec::new);
        if env.iter().any(|e| e.name == INDEX_ENV) {
            continue;
        }
        env.push(EnvVar {
            name: INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: format!("metadata.annotations['{}']", indexes::COMPLETION_INDEX),
                }),
                ..Default::default()
            }),
        });
    }
}

/// A pod for `job` (for `index` in an Indexed Job, whose earlier failures were `failures`).
pub fn pod_for(job: &Job, index: Option<i32>, failures: i32) -> Pod {
    let template: PodTemplateSpec = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut spec = template.spec.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    if !finalizers.iter().any(|f| f == TRACKING_FINALIZER) {
        finalizers.push(TRACKING_FINALIZER.into());
    }
    let name = job.name_any();
    let mut generate = format!("{name}-");
    if let Some(i) = index {
        annotations.insert(indexes::COMPLETION_INDEX.into(), i.to_string());
        labels.insert(indexes::COMPLETION_INDEX.into(), i.to_string());
        if job
            .spec
            .as_ref()
            .is_some_and(|s| s.backoff_limit_per_index.is_some())
        {
            annotations.insert(indexes::FAILURE_COUNT.into(), failures.to_string());
        }
        generate = format!("{name}-{i}-");
        if spec.hostname.as_deref().is_none_or(str::is_empty) {
            spec.hostname = Some(format!("{name}-{i}"));
        }
        add_index_env(&mut spec.containers);
        if let Some(init) = spec.init_containers.as_mut() {
            add_index_env(init);
        }
    }
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate),
            namespace: job.namespace(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![common::owner_ref(job)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

/// Create `pods` in slow-start batches (1, 2, 4, ...), stopping at the first batch with a
/// failure. Returns how many were created and the first error.
pub async fn create(
    recorder: &Recorder,
    job: &Job,
    api: &Api<Pod>,
    pods: Vec<Pod>,
    expect: &mut Vec<Expect>,
) -> (usize, Option<kube::Error>) {
    let mut created = 0;
    let mut rest = pods.into_iter();
    for batch in podutil::slow_start_batches(rest.len()) {
        let chunk: Vec<Pod> = rest.by_ref().take(batch).collect();
        let results = futures::future::join_all(chunk.iter().map(|p| async {
            let r = api.create(&PostParams::default(), p).await;
            match &r {
                Ok(p) => {
                    let msg = format!("Created pod: {}", p.name_any());
                    recorder.publish(job, false, "SuccessfulCreate", msg).await;
                }
                Err(e) => {
                    let msg = format!("Error creating: {}", api_message(e));
                    recorder.publish(job, true, "FailedCreate", msg).await;
                }
            }
            r
        }))
        .await;
        let mut failed = None;
        for r in results {
            match r {
                Ok(p) => {
                    created += 1;
                    expect.push(Expect::Present(p.name_any()));
                }
                Err(e) => failed = Some(e),
            }
        }
        if failed.is_some() {
            return (created, failed);
        }
    }
    (created, None)
}

/// Delete `pods` (by uid precondition). Returns how many are gone and the first error.
pub async fn delete(
    recorder: &Recorder,
    job: &Job,
    api: &Api<Pod>,
    pods: &[&Pod],
    expect: &mut Vec<Expect>,
) -> (usize, Option<kube::Error>) {
    let results = futures::future::join_all(pods.iter().map(|p| async {
        let name = p.name_any();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: p.uid(),
                resource_version: None,
            }),
            ..Default::default()
        };
        let r = match api.delete(&name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
            Err(e) => Err(e),
        };
        match &r {
            Ok(()) => {
                let msg = format!("Deleted pod: {name}");
                recorder.publish(job, false, "SuccessfulDelete", msg).await;
            }
            Err(e) => {
                let msg = format!("Error deleting: {}", api_message(e));
                recorder.publish(job, true, "FailedDelete", msg).await;
            }
        }
        (name, r)
    }))
    .await;
    let mut deleted = 0;
    let mut failed = None;
    for (name, r) in results {
        match r {
            Ok(()) => {
                deleted += 1;
                expect.push(Expect::Gone(name));
            }
            Err(e) => failed = Some(e),
        }
    }
    (deleted, failed)
}

/// Remove the tracking finalizer from `pods`. Returns the uids it is gone from (removed
/// now, or the pod is gone) and the first error.
pub async fn remove_finalizers(
    api: &Api<Pod>,
    pods: &[&Pod],
    expect: &mut Vec<Expect>,
) -> (HashSet<String>, Option<kube::Error>) {
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": [TRACKING_FINALIZER]}});
    let patch = &patch;
    let results = futures::future::join_all(pods.iter().map(|p| async move {
        let r = api
            .patch(
                &p.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await;
        (p, r)
    }))
    .await;
    let mut done = HashSet::new();
    let mut failed = None;
    for (p, r) in results {
        let gone = matches!(&r, Err(kube::Error::Api(e)) if e.code == 404);
        match r {
            Ok(_) => {
                done.insert(p.uid().unwrap_or_default());
                let rv = p.resource_version().unwrap_or_default();
                expect.push(Expect::Changed(p.name_any(), rv));
            }
            Err(_) if gone => {
                done.insert(p.uid().unwrap_or_default());
            }
            Err(e) => failed = Some(e),
        }
    }
    (done, failed)
}
