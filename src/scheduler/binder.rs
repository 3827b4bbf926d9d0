//! The scheduler's writes, all through the API: binding a pod (pods/binding), its
//! PodScheduled=False condition and nominated node (pods/status), the Scheduled and
//! FailedScheduling events, and deleting preemption victims. Each returns a typed error
//! naming the pod; this module must never read cluster state or decide anything.

use super::{Error, SCHEDULER_NAME};
use k8s_openapi::api::core::v1::{Binding, Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

fn pod_name(pod: &Pod) -> (&str, &str) {
    (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
    )
}

pub async fn bind(client: &Client, pod: &Pod, node: &str) -> Result<(), Error> {
    let (ns, name) = pod_name(pod);
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let binding = Binding {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        target: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Node".into()),
            name: Some(node.to_string()),
            ..Default::default()
        },
    };
    api.create_subresource::<Binding, serde_json::Value>(
        "binding",
        name,
        &PostParams::default(),
        &binding,
    )
    .await
    .map_err(|source| Error::Bind {
        pod: format!("{ns}/{name}"),
        node: node.to_string(),
        source,
    })?;
    Ok(())
}

/// A core/v1 Event about `pod` from the scheduler.
pub async fn event(
    client: &Client,
    pod: &Pod,
    type_: &str,
    reason: &str,
    message: &str,
) -> Result<(), Error> {
    let (ns, name) = pod_name(pod);
    let now = jiff::Timestamp::now();
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.to_string()),
            namespace: Some(ns.to_string()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_string()),
        message: Some(message.to_string()),
        type_: Some(type_.to_string()),
        source: Some(EventSource {
            component: Some(SCHEDULER_NAME.into()),
            host: None,
        }),
        reporting_component: Some(SCHEDULER_NAME.into()),
        reporting_instance: Some(SCHEDULER_NAME.into()),
        action: Some(
            if type_ == "Normal" {
                "Binding"
            } else {
                "Scheduling"
            }
            .into(),
        ),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        count: Some(1),
        event_time: None::<MicroTime>,
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), ns);
    api.create(&PostParams::default(), &ev)
        .await
        .map_err(|source| Error::Event {
            pod: format!("{ns}/{name}"),
            reason: reason.to_string(),
            source,
        })?;
    Ok(())
}

/// Whether the pod already says what [`mark_unschedulable`] would write (the times aside), so
/// the write can be skipped as upstream skips an unchanged condition.
pub fn marked_unschedulable(pod: &Pod, message: &str, nominated: Option<&str>) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled");
    let same = condition.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
            && c.message.as_deref() == Some(message)
    });
    same && (nominated.is_none() || status.nominated_node_name.as_deref() == nominated)
}

/// Sets PodScheduled=False/Unschedulable with `message` (what `kubectl describe` shows)
/// and, after preemption, `status.nominatedNodeName`.
pub async fn mark_unschedulable(
    client: &Client,
    pod: &Pod,
    message: &str,
    nominated: Option<&str>,
) -> Result<(), Error> {
    let (ns, name) = pod_name(pod);
    let now = jiff::Timestamp::now().to_string();
    let mut status = json!({
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": now,
        }]
    });
    if let Some(n) = nominated {
        status["nominatedNodeName"] = json!(n);
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Strategic(json!({ "status": status })),
    )
    .await
    .map_err(|source| Error::Status {
        pod: format!("{ns}/{name}"),
        source,
    })?;
    Ok(())
}

/// Deletes a preemption victim (with its own grace period, as upstream does).
pub async fn evict(client: &Client, victim: &Pod) -> Result<(), Error> {
    let (ns, name) = pod_name(victim);
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(source) => Err(Error::Evict {
            pod: format!("{ns}/{name}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::marked_unschedulable;
    use k8s_openapi::api::core::v1::Pod;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).unwrap()
    }

    #[test]
    fn an_unchanged_condition_is_not_written_again() {
        let msg = "0/0 nodes are available.";
        let marked = pod(
            json!({"conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": msg, "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
        );
        assert!(marked_unschedulable(&marked, msg, None));
        assert!(!marked_unschedulable(
            &marked,
            "0/1 nodes are available: 1 Insufficient cpu.",
            None
        ));
        assert!(!marked_unschedulable(&marked, msg, Some("n1")));
        assert!(!marked_unschedulable(
            &pod(json!({"phase": "Pending"})),
            msg,
            None
        ));
        let nominated = pod(
            json!({"nominatedNodeName": "n1", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable", "message": msg}]}),
        );
        assert!(marked_unschedulable(&nominated, msg, Some("n1")));
    }
}
