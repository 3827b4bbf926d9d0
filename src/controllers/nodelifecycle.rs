//! The node lifecycle controller. It watches every Node's heartbeat (its Lease in
//! `kube-node-lease` and its Ready condition's lastHeartbeatTime), and a node not heard from
//! for the grace period gets its Ready, MemoryPressure, DiskPressure and PIDPressure
//! conditions set to Unknown, as upstream does. It keeps the node's condition taints in step
//! with its conditions (`not-ready` / `unreachable` NoSchedule and NoExecute, the pressure
//! taints, `unschedulable` mirroring `spec.unschedulable`), marks the pods of a node that
//! stops being ready not ready, and runs taint-based eviction (`tainteviction`). Heartbeats
//! are timed on the controller's own clock when it sees them change, so skew between nodes
//! does not matter; the clock is injected. It writes Nodes' status and taints and Pods'
//! status and deletions, only through the API, and never touches taints it does not own.

use super::clock::{self, Clock, SystemClock};
use super::common::Recorder;
use super::informers::Informers;
use super::tainteviction::{self, Verdict};
use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const LEASE_NAMESPACE: &str = "kube-node-lease";
/// Conditions the controller sets to Unknown for a silent node.
const WATCHED_CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];
/// NoSchedule taints that mirror a condition being True (upstream's map).
const CONDITION_TAINTS: [(&str, &str); 4] = [
    ("MemoryPressure", "node.kubernetes.io/memory-pressure"),
    ("DiskPressure", "node.kubernetes.io/disk-pressure"),
    ("PIDPressure", "node.kubernetes.io/pid-pressure"),
    (
        "NetworkUnavailable",
        "node.kubernetes.io/network-unavailable",
    ),
];

/// Periods of the controller; upstream's defaults.
#[derive(Clone)]
pub struct Config {
    /// How often every node is looked at (`--node-monitor-period`).
    pub monitor_period: Duration,
    /// A node not heard from this long is unreachable (`--node-monitor-grace-period`).
    pub grace_period: Duration,
    /// A node that never posted a status gets this long after it was first seen.
    pub startup_grace_period: Duration,
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(40),
            startup_grace_period: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("node {node}: {what}: {source}")]
    Api {
        node: String,
        what: &'static str,
        source: kube::Error,
    },
}

/// What the controller last saw of a node's heartbeat, and when (on its clock).
#[derive(Clone)]
struct Seen {
    renew: Option<Timestamp>,
    heartbeat: Option<Timestamp>,
    probed: Timestamp,
    ready: Option<String>,
}

struct Ctx {
    client: Client,
    cfg: Config,
    pods: Store<Pod>,
    leases: Store<Lease>,
    seen: Mutex<HashMap<String, Seen>>,
    /// The controller's own cache of nodes, to forget the heartbeats of deleted ones.
    nodes: Store<Node>,
    recorder: Recorder,
}

pub async fn run(informers: Informers, cfg: Config, cancel: CancellationToken) {
    let client = informers.client().clone();
    let (pod_informer, node_informer) = (informers.get::<Pod>(), informers.get::<Node>());
    let pods = pod_informer.store();
    let (leases, lease_writer) = reflector::store::<Lease>();
    let lease_events = reflector::reflector(
        lease_writer,
        watcher(
            Api::<Lease>::namespaced(client.clone(), LEASE_NAMESPACE),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .touched_objects();
    let ctx = Ctx {
        recorder: Recorder::new(client.clone(), "node-controller"),
        client: client.clone(),
        cfg,
        pods,
        leases,
        seen: Mutex::new(HashMap::new()),
        nodes: node_informer.store(),
    };
    // The controller's own kind triggers on nodes that exist, as `Controller::new` would.
    let ctrl = Controller::for_shared_stream(node_informer.subscribe_applied(), ctx.nodes.clone());
    let ctx = Arc::new(ctx);
    ctrl.watches_shared_stream(pod_informer.subscribe(), |p: Arc<Pod>| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
            .map(ObjectRef::new)
    })
    .watches_stream(lease_events, |l: Lease| Some(ObjectRef::new(&l.name_any())))
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "node lifecycle reconcile");
        }
    })
    .await;
}

fn error_policy(_node: Arc<Node>, e: &Error, ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "node lifecycle, retrying");
    Action::requeue(ctx.cfg.monitor_period)
}

fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
}

fn to_std(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

async fn reconcile(node: Arc<Node>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let name = node.name_any();
    if node.metadata.deletion_timestamp.is_some() {
        ctx.seen.lock().expect("seen lock").remove(&name);
        return Ok(Action::await_change());
    }
    let now = ctx.cfg.clock.now();
    let mut node = (*node).clone();
    let was_ready = observe(&ctx, &node, now);
    if let Some(conditions) = silent_conditions(&ctx, &node, now) {
        node = write_conditions(&ctx, &name, &node, conditions).await?;
    }
    let ready = condition(&node, "Ready").map(|c| c.status.clone());
    if let Some(seen) = ctx.seen.lock().expect("seen lock").get_mut(&name) {
        seen.ready = ready.clone();
    }
    let taints = desired_taints(&node, now);
    let current = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    if taints.as_slice() != current.unwrap_or_default() {
        write_taints(&ctx, &name, &node, &taints).await?;
    }
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(name.as_str()))
        .collect();
    // Upstream marks pods not ready when the node stops being ready; a node gone silent is
    // marked every pass, as no kubelet will contradict it.
    let stopped = was_ready.as_deref() == Some("True") && ready.as_deref() != Some("True");
    if stopped || ready.as_deref() == Some("Unknown") {
        mark_pods_not_ready(&ctx, &name, &pods).await?;
    }
    let mut next = ctx.cfg.monitor_period;
    for pod in pods.iter().filter(|p| tainteviction::evictable(p)) {
        match tainteviction::verdict(pod, &taints, now) {
            Verdict::Stay => {}
            Verdict::EvictAt(at) if at > now => next = next.min(clock::until(now, at)),
            Verdict::Evict | Verdict::EvictAt(_) => {
                tracing::info!(node = %name, pod = %pod.name_any(), "evicting pod for a NoExecute taint");
                tainteviction::evict(&ctx.client, &ctx.recorder, pod)
                    .await
                    .map_err(|source| Error::Api {
                        node: name.clone(),
                        what: "evicting a pod",
                        source,
                    })?;
            }
        }
    }
    Ok(Action::requeue(next.max(Duration::from_millis(10))))
}

/// Record the node's heartbeat; returns the Ready status seen on the previous pass.
fn observe(ctx: &Ctx, node: &Node, now: Timestamp) -> Option<String> {
    let name = node.name_any();
    let renew = ctx
        .leases
        .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE))
        .and_then(|l| l.spec.as_ref()?.renew_time.as_ref().map(|t| t.0));
    let heartbeat =
        condition(node, "Ready").and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    let mut seen = ctx.seen.lock().expect("seen lock");
    if ctx.nodes.len() < seen.len() {
        seen.retain(|n, _| ctx.nodes.get(&ObjectRef::new(n)).is_some());
    }
    let entry = seen.entry(name).or_insert(Seen {
        renew,
        heartbeat,
        probed: now,
        ready: condition(node, "Ready").map(|c| c.status.clone()),
    });
    let previous = entry.ready.clone();
    if entry.renew != renew || entry.heartbeat != heartbeat {
        entry.renew = renew;
        entry.heartbeat = heartbeat;
        entry.probed = now;
    }
    previous
}

/// The node's conditions with the watched ones set to Unknown, if it has been silent past
/// its grace period and any is not Unknown yet.
fn silent_conditions(ctx: &Ctx, node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let probed = ctx
        .seen
        .lock()
        .expect("seen lock")
        .get(&node.name_any())?
        .probed;
    let grace = if condition(node, "Ready").is_none() {
        ctx.cfg.startup_grace_period
    } else {
        ctx.cfg.grace_period
    };
    if now <= probed + to_std(grace) {
        return None;
    }
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in WATCHED_CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some("NodeStatusUnknown".into());
                c.message = Some("Kubelet stopped posting node status.".into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some("NodeStatusNeverUpdated".into()),
                    message: Some("Kubelet never posted node status.".into()),
                    last_heartbeat_time: node.metadata.creation_timestamp.clone(),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// The node's taints with the controller's own brought in line with its conditions and
/// `spec.unschedulable`; taints that stay keep their timeAdded, others are left alone.
pub fn desired_taints(node: &Node, now: Timestamp) -> Vec<Taint> {
    let mut want: Vec<(&str, &str)> = vec![];
    match condition(node, "Ready").map(|c| c.status.as_str()) {
        Some("False") => want.extend([(NOT_READY, "NoSchedule"), (NOT_READY, "NoExecute")]),
        Some("Unknown") => want.extend([(UNREACHABLE, "NoSchedule"), (UNREACHABLE, "NoExecute")]),
        _ => {}
    }
    for (cond, key) in CONDITION_TAINTS {
        if condition(node, cond).is_some_and(|c| c.status == "True") {
            want.push((key, "NoSchedule"));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        want.push((UNSCHEDULABLE, "NoSchedule"));
    }
    let owned = |key: &str| {
        [NOT_READY, UNREACHABLE, UNSCHEDULABLE].contains(&key)
            || CONDITION_TAINTS.iter().any(|(_, k)| *k == key)
    };
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !owned(&t.key) || want.contains(&(t.key.as_str(), t.effect.as_str())))
        .cloned()
        .collect();
    for (key, effect) in want {
        if !out.iter().any(|t| t.key == key && t.effect == effect) {
            out.push(Taint {
                key: key.into(),
                effect: effect.into(),
                value: None,
                time_added: (effect == "NoExecute").then_some(Time(now)),
            });
        }
    }
    out
}

async fn write_conditions(
    ctx: &Ctx,
    name: &str,
    node: &Node,
    conditions: Vec<NodeCondition>,
) -> Result<Node, Error> {
    tracing::info!(node = %name, "node stopped posting status, marking it unknown");
    ctx.recorder
        .publish(
            node,
            false,
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        )
        .await;
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "status": {"conditions": conditions},
    });
    Api::<Node>::all(ctx.client.clone())
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Api {
            node: name.into(),
            what: "setting conditions unknown",
            source,
        })
}

async fn write_taints(ctx: &Ctx, name: &str, node: &Node, taints: &[Taint]) -> Result<(), Error> {
    let patch = json!({
        "metadata": {"resourceVersion": node.metadata.resource_version},
        "spec": {"taints": taints},
    });
    Api::<Node>::all(ctx.client.clone())
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|source| Error::Api {
            node: name.into(),
            what: "updating taints",
            source,
        })?;
    Ok(())
}

async fn mark_pods_not_ready(ctx: &Ctx, node: &str, pods: &[Arc<Pod>]) -> Result<(), Error> {
    let now = Timestamp::now().to_string();
    for pod in pods {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        if pod.metadata.deletion_timestamp.is_some() || ready.is_none_or(|c| c.status == "False") {
            continue;
        }
        let patch = json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": now}
        ]}});
        let api: Api<Pod> =
            Api::namespaced(ctx.client.clone(), &pod.namespace().unwrap_or_default());
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(source) => {
                return Err(Error::Api {
                    node: node.into(),
                    what: "marking a pod not ready",
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(ready: Option<&str>, unschedulable: bool, taints: serde_json::Value) -> Node {
        let conditions = ready
            .map(|s| json!([{"type": "Ready", "status": s}]))
            .unwrap_or(json!([]));
        serde_json::from_value(json!({
            "metadata": {"name": "n"},
            "spec": {"unschedulable": unschedulable, "taints": taints},
            "status": {"conditions": conditions},
        }))
        .unwrap()
    }

    fn keys(t: &[Taint]) -> Vec<String> {
        t.iter()
            .map(|t| format!("{}:{}", t.key, t.effect))
            .collect()
    }

    #[test]
    fn taints_follow_readiness_and_cordon() {
        let now = Timestamp::from_second(100).unwrap();
        let t = desired_taints(&node(Some("Unknown"), false, json!([])), now);
        assert_eq!(
            keys(&t),
            [
                format!("{UNREACHABLE}:NoSchedule"),
                format!("{UNREACHABLE}:NoExecute")
            ]
        );
        assert_eq!(t[1].time_added.as_ref().map(|t| t.0), Some(now));
        let mine = json!([{"key": "mine", "effect": "NoSchedule"}, {"key": UNREACHABLE, "effect": "NoExecute"}]);
        let t = desired_taints(&node(Some("False"), true, mine), now);
        assert_eq!(
            keys(&t),
            [
                "mine:NoSchedule".to_string(),
                format!("{NOT_READY}:NoSchedule"),
                format!("{NOT_READY}:NoExecute"),
                format!("{UNSCHEDULABLE}:NoSchedule")
            ]
        );
        let old =
            json!([{"key": NOT_READY, "effect": "NoExecute", "timeAdded": "2020-01-01T00:00:00Z"}]);
        let t = desired_taints(&node(Some("True"), false, old), now);
        assert!(t.is_empty());
    }
}
