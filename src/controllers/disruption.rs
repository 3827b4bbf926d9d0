//! The disruption controller: keeps every PodDisruptionBudget's status current, as
//! upstream's. For the pods its selector picks (an empty selector picks the whole
//! namespace, a missing one nothing) it counts expectedPods (the pods themselves for an
//! integer minAvailable, else the scale of their controllers: ReplicaSet, or the Deployment
//! above it, ReplicationController, StatefulSet), desiredHealthy (minAvailable, or expected
//! minus maxUnavailable, percentages rounded up), currentHealthy (ready, not terminating,
//! not just evicted), disruptionsAllowed, the DisruptionAllowed condition and observed
//! generation, and it ages out `disruptedPods` entries the eviction subresource wrote once
//! their pod is gone or two minutes have passed. A budget it cannot compute allows nothing
//! (upstream's fail-safe). It writes only budgets' status, through the API.

use super::clock::{Clock, SystemClock};
use super::common::Recorder;
use super::informers::Informers;
use super::podutil;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long an eviction's entry in disruptedPods holds its pod out of the healthy count
/// while the pod is not yet marked for deletion (upstream's DeletionTimeout).
pub const DELETION_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("poddisruptionbudget {ns}/{name}: {source}")]
    Api {
        ns: String,
        name: String,
        source: kube::Error,
    },
}

/// Why a budget's numbers cannot be computed (the SyncFailed condition's message).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SyncError {
    #[error("found no controllers for pod {0:?}")]
    NoController(String),
    #[error("invalid value {0:?}: a percentage (\"10%\") or an integer is expected")]
    BadValue(String),
    #[error("reading controller {kind} {name}: {message}")]
    Controller {
        kind: String,
        name: String,
        message: String,
    },
}

pub struct Config {
    pub clock: Arc<dyn Clock>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            clock: Arc::new(SystemClock),
        }
    }
}

struct Ctx {
    client: Client,
    pods: Store<Pod>,
    clock: Arc<dyn Clock>,
    recorder: Recorder,
}

pub async fn run(informers: Informers, cfg: Config, cancel: CancellationToken) {
    let client = informers.client().clone();
    let pod_informer = informers.get::<Pod>();
    let pods = pod_informer.store();
    let ctrl = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let budgets = ctrl.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), "controllermanager"),
        client,
        pods,
        clock: cfg.clock,
    });
    ctrl.watches_shared_stream(pod_informer.subscribe(), move |pod: Arc<Pod>| {
        budgets_of(&pod, &budgets)
    })
    .graceful_shutdown_on(async move { cancel.cancelled().await })
    .run(reconcile, error_policy, ctx)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "disruption reconcile");
        }
    })
    .await;
}

fn error_policy(_pdb: Arc<PodDisruptionBudget>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::debug!(error = %e, "disruption budget status, retrying");
    Action::requeue(Duration::from_secs(1))
}

/// Whether a budget's selector picks these labels: policy/v1 lets an empty selector pick
/// every pod of the namespace.
pub fn selects(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = sel else { return false };
    Selector::try_from(sel.clone()).is_ok_and(|s| s.matches(labels))
}

fn budgets_of(
    pod: &Pod,
    budgets: &Store<PodDisruptionBudget>,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    let ns = pod.namespace();
    budgets
        .state()
        .iter()
        .filter(|b| b.namespace() == ns)
        .filter(|b| {
            selects(
                b.spec.as_ref().and_then(|s| s.selector.as_ref()),
                pod.labels(),
            )
        })
        .map(|b| ObjectRef::from_obj(b.as_ref()))
        .collect()
}

/// `v` resolved against `total`: an integer as is, a percentage of it rounded up.
pub fn scaled(v: &IntOrString, total: i32) -> Result<i32, SyncError> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| SyncError::BadValue(s.clone()))?;
            Ok(((pct * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// The numbers of a budget: (expectedPods, desiredHealthy).
pub fn expectations(
    pdb: &PodDisruptionBudget,
    pods: usize,
    controller_scale: impl FnOnce() -> Result<i32, SyncError>,
) -> Result<(i32, i32), SyncError> {
    let spec = pdb.spec.clone().unwrap_or_default();
    let pods = pods as i32;
    match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => {
            let expected = controller_scale()?;
            let max = scaled(max, expected)?;
            Ok((expected, (expected - max).max(0)))
        }
        (None, Some(IntOrString::Int(min))) => Ok((pods, *min)),
        (None, Some(min)) => {
            let expected = controller_scale()?;
            Ok((expected, scaled(min, expected)?))
        }
        (None, None) => Ok((pods, 0)),
    }
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if pdb.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()) && selects(selector, p.labels()))
        .collect();
    if pods.is_empty() {
        ctx.recorder
            .publish(
                pdb.as_ref(),
                false,
                "NoPods",
                "No matching pods found".into(),
            )
            .await;
    }
    let now = ctx.clock.now();
    let old = pdb.status.clone().unwrap_or_default();
    let (disrupted, recheck) = live_disruptions(&old, &pods, now);
    let computed = match pods.is_empty() {
        true => expectations(&pdb, 0, || Ok(0)),
        false => {
            let scale = controllers_scale(&ctx.client, &ns, &pods).await;
            expectations(&pdb, pods.len(), || scale)
        }
    };
    let mut status = PodDisruptionBudgetStatus {
        observed_generation: pdb.metadata.generation,
        disrupted_pods: Some(disrupted.clone()).filter(|d| !d.is_empty()),
        ..Default::default()
    };
    let condition = match computed {
        Ok((expected, desired)) => {
            let healthy = pods
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| !disrupted.contains_key(&p.name_any()))
                .filter(|p| podutil::is_ready(p))
                .count() as i32;
            let allowed = (healthy - desired).max(0);
            status.current_healthy = healthy;
            status.desired_healthy = desired;
            status.expected_pods = expected;
            status.disruptions_allowed = allowed;
            if allowed > 0 {
                ("True", "SufficientPods", String::new())
            } else {
                ("False", "InsufficientPods", String::new())
            }
        }
        Err(e) => {
            if let SyncError::NoController(_) = e {
                ctx.recorder
                    .publish(pdb.as_ref(), true, "NoControllers", e.to_string())
                    .await;
            }
            status.current_healthy = old.current_healthy;
            status.desired_healthy = old.desired_healthy;
            status.expected_pods = old.expected_pods;
            ("False", "SyncFailed", e.to_string())
        }
    };
    let since = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == condition.0)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    status.conditions = Some(vec![Condition {
        type_: "DisruptionAllowed".into(),
        status: condition.0.into(),
        reason: condition.1.into(),
        message: condition.2,
        observed_generation: pdb.metadata.generation,
        last_transition_time: since,
    }]);
    if pdb.status.as_ref() != Some(&status) {
        let mut updated = (*pdb).clone();
        updated.status = Some(status);
        updated.metadata.managed_fields = None;
        let api: Api<PodDisruptionBudget> = Api::namespaced(ctx.client.clone(), &ns);
        api.replace_status(&name, &PostParams::default(), &updated)
            .await
            .map_err(|source| Error::Api {
                ns: ns.clone(),
                name: name.clone(),
                source,
            })?;
    }
    Ok(match recheck {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// The disruptedPods entries still in force: their pod exists, is not yet terminating, and
/// was evicted less than DELETION_TIMEOUT ago. Also when the first of them runs out.
fn live_disruptions(
    old: &PodDisruptionBudgetStatus,
    pods: &[Arc<Pod>],
    now: Timestamp,
) -> (BTreeMap<String, Time>, Option<Duration>) {
    let timeout = SignedDuration::try_from(DELETION_TIMEOUT).unwrap_or(SignedDuration::MAX);
    let names: HashSet<String> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| p.name_any())
        .collect();
    let mut recheck: Option<Duration> = None;
    let mut live = BTreeMap::new();
    for (pod, at) in old.disrupted_pods.iter().flatten() {
        let expires = at.0 + timeout;
        if !names.contains(pod) || expires <= now {
            if names.contains(pod) {
                tracing::warn!(%pod, "pod was expected to be deleted after its eviction but was not");
            }
            continue;
        }
        let left = super::clock::until(now, expires);
        recheck = Some(recheck.map_or(left, |r| r.min(left)));
        live.insert(pod.clone(), at.clone());
    }
    (live, recheck)
}

/// The sum of the scales of the pods' controllers, each counted once. A pod without a
/// controller makes the budget uncomputable, as upstream.
async fn controllers_scale(client: &Client, ns: &str, pods: &[Arc<Pod>]) -> Result<i32, SyncError> {
    let mut seen = HashSet::new();
    let mut total = 0;
    for pod in pods {
        let Some(r) = super::common::controller_of(&pod.metadata) else {
            return Err(SyncError::NoController(pod.name_any()));
        };
        let (kind, name, scale) = scale_of(client, ns, &r.kind, &r.name, &r.uid).await?;
        if seen.insert((kind, name)) {
            total += scale;
        }
    }
    Ok(total)
}

async fn get<K>(client: &Client, ns: &str, name: &str) -> Result<K, String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .map_err(|e| e.to_string())
}

/// The controller at the top of a pod's chain and its replicas: a ReplicaSet owned by a
/// Deployment counts as the Deployment.
async fn scale_of(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
    uid: &str,
) -> Result<(String, String, i32), SyncError> {
    let fail = |message: String| SyncError::Controller {
        kind: kind.into(),
        name: name.into(),
        message,
    };
    let (meta, replicas) = match kind {
        "ReplicaSet" => {
            let rs: ReplicaSet = get(client, ns, name).await.map_err(fail)?;
            (rs.metadata, rs.spec.and_then(|s| s.replicas))
        }
        "ReplicationController" => {
            let rc: ReplicationController = get(client, ns, name).await.map_err(fail)?;
            (rc.metadata, rc.spec.and_then(|s| s.replicas))
        }
        "StatefulSet" => {
            let ss: StatefulSet = get(client, ns, name).await.map_err(fail)?;
            (ss.metadata, ss.spec.and_then(|s| s.replicas))
        }
        _ => return Err(fail("kind has no known scale".into())),
    };
    if meta.uid.as_deref() != Some(uid) {
        return Err(fail("not found".into()));
    }
    let deployment = super::common::controller_of(&meta).filter(|r| r.kind == "Deployment");
    if let Some(d) = deployment.filter(|_| kind == "ReplicaSet") {
        let dep: Deployment = get(client, ns, &d.name).await.map_err(fail)?;
        let replicas = dep.spec.and_then(|s| s.replicas).unwrap_or(1);
        return Ok(("Deployment".into(), d.name.clone(), replicas));
    }
    Ok((kind.into(), name.into(), replicas.unwrap_or(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pdb(spec: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({"metadata": {"name": "b"}, "spec": spec})).unwrap()
    }

    #[test]
    fn budgets_resolve_as_upstream() {
        let p = pdb(json!({"minAvailable": 2}));
        assert_eq!(expectations(&p, 3, || unreachable!()), Ok((3, 2)));
        let p = pdb(json!({"minAvailable": "50%"}));
        assert_eq!(expectations(&p, 3, || Ok(5)), Ok((5, 3)));
        let p = pdb(json!({"maxUnavailable": 1}));
        assert_eq!(expectations(&p, 3, || Ok(4)), Ok((4, 3)));
        let p = pdb(json!({"maxUnavailable": "30%"}));
        assert_eq!(expectations(&p, 3, || Ok(4)), Ok((4, 2)));
        let p = pdb(json!({"maxUnavailable": "x"}));
        assert!(expectations(&p, 3, || Ok(4)).is_err());
        let p = pdb(json!({"maxUnavailable": 1}));
        assert_eq!(
            expectations(&p, 3, || Err(SyncError::NoController("a".into()))),
            Err(SyncError::NoController("a".into()))
        );
    }

    #[test]
    fn empty_selector_picks_everything_missing_picks_nothing() {
        let labels: BTreeMap<String, String> = [("a".to_string(), "b".to_string())].into();
        assert!(selects(Some(&LabelSelector::default()), &labels));
        assert!(!selects(None, &labels));
    }
}
