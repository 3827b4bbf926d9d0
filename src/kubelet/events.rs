//! Events the node agent reports about a pod (Pulled, Created, Started, Killing, Unhealthy,
//! Failed ...), as core/v1 Events from the `kubelet` component, so `kubectl describe pod` and
//! `kubectl get events` show what happened on the node. Best effort: a failed write is logged.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use kube::api::{Api, PostParams};

/// Record one event about `pod` (and `container`, when it is about one).
pub async fn record(
    client: &kube::Client,
    node: &str,
    pod: &Pod,
    container: Option<&str>,
    warning: bool,
    reason: &str,
    message: &str,
) {
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let field_path = container.map(|c| {
        let init = pod
            .spec
            .as_ref()
            .is_some_and(|s| s.init_containers.iter().flatten().any(|i| i.name == c));
        format!(
            "spec.{}{{{c}}}",
            if init { "initContainers" } else { "containers" }
        )
    });
    let ev = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(ns.clone()),
            uid: pod.metadata.uid.clone(),
            field_path,
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        }),
        reporting_component: Some("kubelet".into()),
        reporting_instance: Some(node.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some(reason.into()),
        count: Some(1),
        ..Default::default()
    };
    let api: Api<Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = api.create(&PostParams::default(), &ev).await {
        tracing::debug!(error = %e, reason, "recording an event");
    }
}
