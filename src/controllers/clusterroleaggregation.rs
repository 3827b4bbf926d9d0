//! The ClusterRole aggregation controller: a ClusterRole with an `aggregationRule` gets as its
//! rules the union of the rules of every other ClusterRole its selectors match (in name
//! order, each rule once), as upstream's. This is how `admin`, `edit` and `view` gain the
//! rules of `system:aggregate-to-*` and of any role a user labels for them. Any ClusterRole
//! change requeues every aggregating one. It writes only the `rules` of aggregating roles.

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("listing cluster roles to aggregate into {name}: {source}")]
    List { name: String, source: kube::Error },
    #[error("writing the aggregated rules of cluster role {name}: {source}")]
    Write { name: String, source: kube::Error },
}

struct Ctx {
    api: Api<ClusterRole>,
}

pub async fn run(client: Client, cancel: CancellationToken) {
    let api: Api<ClusterRole> = Api::all(client);
    let controller = Controller::new(api.clone(), watcher::Config::default());
    let store = controller.store();
    controller
        // any role may be one an aggregating role selects: requeue every aggregating role
        .watches(
            api.clone(),
            watcher::Config::default(),
            move |_: ClusterRole| {
                store
                    .state()
                    .into_iter()
                    .filter(|r| aggregates(r))
                    .map(|r| ObjectRef::from_obj(&*r))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(async move { cancel.cancelled().await })
        .run(reconcile, error_policy, Arc::new(Ctx { api }))
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "cluster role aggregation");
            }
        })
        .await;
}

fn error_policy(_role: Arc<ClusterRole>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "retrying");
    Action::requeue(Duration::from_secs(2))
}

fn selectors(role: &ClusterRole) -> &[LabelSelector] {
    role.aggregation_rule
        .as_ref()
        .and_then(|a| a.cluster_role_selectors.as_deref())
        .unwrap_or(&[])
}

fn aggregates(role: &ClusterRole) -> bool {
    !selectors(role).is_empty()
}

async fn reconcile(role: Arc<ClusterRole>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    if !aggregates(&role) {
        return Ok(Action::await_change());
    }
    let name = role.name_any();
    // listed, not read from the cache: the change that woke us may not be in it yet
    let all = ctx
        .api
        .list(&ListParams::default())
        .await
        .map_err(|source| Error::List {
            name: name.clone(),
            source,
        })?;
    let rules = aggregate(&role, &all.items);
    if role.rules.as_deref().unwrap_or(&[]) == rules.as_slice() {
        return Ok(Action::await_change());
    }
    ctx.api
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"rules": rules})),
        )
        .await
        .map_err(|source| Error::Write {
            name: name.clone(),
            source,
        })?;
    tracing::debug!(role = %name, rules = rules.len(), "aggregated cluster role rules");
    Ok(Action::await_change())
}

/// The rules of every other role any of `role`'s selectors match, by role name, each once.
fn aggregate(role: &ClusterRole, all: &[ClusterRole]) -> Vec<PolicyRule> {
    let name = role.name_any();
    let empty = BTreeMap::new();
    let mut matched: Vec<&ClusterRole> = all
        .iter()
        .filter(|r| r.name_any() != name)
        .filter(|r| {
            let labels = r.metadata.labels.as_ref().unwrap_or(&empty);
            selectors(role).iter().any(|s| selects(s, labels))
        })
        .collect();
    matched.sort_by_key(|r| r.name_any());
    let mut rules: Vec<PolicyRule> = vec![];
    for r in matched {
        for rule in r.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    rules
}

/// A label selector against labels; an empty selector selects everything, as upstream.
fn selects(s: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let simple = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    simple
        && s.match_expressions.iter().flatten().all(|e| {
            let v = labels.get(&e.key);
            let values = e.values.as_deref().unwrap_or(&[]);
            match e.operator.as_str() {
                "In" => v.is_some_and(|v| values.contains(v)),
                "NotIn" => v.is_none_or(|v| !values.contains(v)),
                "Exists" => v.is_some(),
                "DoesNotExist" => v.is_none(),
                _ => false,
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    fn role(name: &str, labels: &[(&str, &str)], verbs: &[&str]) -> ClusterRole {
        ClusterRole {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            rules: Some(vec![PolicyRule {
                verbs: verbs.iter().map(|v| v.to_string()).collect(),
                api_groups: Some(vec!["".into()]),
                resources: Some(vec!["pods".into()]),
                ..Default::default()
            }]),
            aggregation_rule: None,
        }
    }

    #[test]
    fn union_by_name_each_rule_once() {
        let mut agg = role("agg", &[], &[]);
        agg.aggregation_rule = Some(k8s_openapi::api::rbac::v1::AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([("to".into(), "agg".into())])),
                ..Default::default()
            }]),
        });
        let all = vec![
            agg.clone(),
            role("b", &[("to", "agg")], &["list"]),
            role("a", &[("to", "agg")], &["get"]),
            role("a2", &[("to", "agg")], &["get"]),
            role("other", &[("to", "x")], &["delete"]),
        ];
        let rules = aggregate(&agg, &all);
        let verbs: Vec<&str> = rules.iter().map(|r| r.verbs[0].as_str()).collect();
        assert_eq!(verbs, vec!["get", "list"]);
    }
}
