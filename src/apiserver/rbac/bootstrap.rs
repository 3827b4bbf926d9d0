//! Writes the default policy (`policy`) at server start, through the API, idempotently and
//! as upstream reconciles it: a missing object is created; an existing one keeps what users
//! added and gains what the defaults add (rules, aggregation selectors, subjects, labels and
//! annotations) unless it is annotated `rbac.authorization.kubernetes.io/autoupdate: "false"`.
//! A binding whose roleRef changed is recreated (roleRef is immutable). Never removes
//! permissions.

use super::policy::{self, DefaultBinding, DefaultRole, Who, AUTOUPDATE, BOOTSTRAPPING};
use super::rules::{self, Rule};
use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use kube::Client;
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("reconciling {kind} {name}: {source}")]
    Api {
        kind: &'static str,
        name: String,
        source: kube::Error,
    },
    #[error("reconciling {kind} {name}: it keeps changing under us")]
    Contended { kind: &'static str, name: String },
}

const ATTEMPTS: usize = 5;

/// Create or reconcile every default ClusterRole and ClusterRoleBinding.
pub async fn reconcile(client: &Client) -> Result<(), BootstrapError> {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    for d in policy::cluster_roles() {
        reconcile_role(&roles, &expected_role(&d)).await?;
    }
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    for d in policy::cluster_role_bindings() {
        reconcile_binding(&bindings, &expected_binding(&d)).await?;
    }
    Ok(())
}

fn meta(name: &str, extra_labels: &[&str]) -> ObjectMeta {
    let mut labels = BTreeMap::from([(BOOTSTRAPPING.0.to_string(), BOOTSTRAPPING.1.to_string())]);
    for l in extra_labels {
        labels.insert(l.to_string(), "true".into());
    }
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(AUTOUPDATE.into(), "true".into())])),
        ..Default::default()
    }
}

fn expected_role(d: &DefaultRole) -> ClusterRole {
    let aggregation_rule = (!d.aggregate_from.is_empty()).then(|| AggregationRule {
        cluster_role_selectors: Some(
            d.aggregate_from
                .iter()
                .map(|l| LabelSelector {
                    match_labels: Some(BTreeMap::from([(l.to_string(), "true".into())])),
                    ..Default::default()
                })
                .collect(),
        ),
    });
    ClusterRole {
        metadata: meta(d.name, d.labels),
        rules: Some(d.rules.iter().map(PolicyRule::from).collect()),
        aggregation_rule,
    }
}

fn expected_binding(d: &DefaultBinding) -> ClusterRoleBinding {
    let subject = |kind: &str, name: &str, ns: Option<&str>| Subject {
        kind: kind.into(),
        name: name.into(),
        namespace: ns.map(String::from),
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".into()),
    };
    ClusterRoleBinding {
        metadata: meta(d.role, &[]),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: d.role.into(),
        },
        subjects: Some(
            d.subjects
                .iter()
                .map(|w| match w {
                    Who::User(n) => subject("User", n, None),
                    Who::Group(n) => subject("Group", n, None),
                    Who::ServiceAccount(ns, n) => subject("ServiceAccount", n, Some(ns)),
                })
                .collect(),
        ),
    }
}

fn protected(m: &ObjectMeta) -> bool {
    m.annotations
        .as_ref()
        .and_then(|a| a.get(AUTOUPDATE))
        .is_some_and(|v| v == "false")
}

/// Add the expected labels and annotations the object lacks; existing values win.
fn merge_meta(have: &mut ObjectMeta, want: &ObjectMeta) {
    for (field, wanted) in [
        (&mut have.labels, &want.labels),
        (&mut have.annotations, &want.annotations),
    ] {
        let target = field.get_or_insert_with(BTreeMap::new);
        for (k, v) in wanted.iter().flatten() {
            target.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// The role as it should be: the existing one plus whatever the default adds.
fn reconciled_role(existing: &ClusterRole, want: &ClusterRole) -> ClusterRole {
    let mut out = existing.clone();
    merge_meta(&mut out.metadata, &want.metadata);
    let have: Vec<Rule> = existing.rules.iter().flatten().map(Rule::from).collect();
    let wanted: Vec<Rule> = want.rules.iter().flatten().map(Rule::from).collect();
    let missing = rules::uncovered(&have, &wanted);
    if !missing.is_empty() {
        let list = out.rules.get_or_insert_with(Vec::new);
        list.extend(missing.iter().map(PolicyRule::from));
    }
    if let Some(want_agg) = &want.aggregation_rule {
        let agg = out.aggregation_rule.get_or_insert_with(Default::default);
        let selectors = agg.cluster_role_selectors.get_or_insert_with(Vec::new);
        for s in want_agg.cluster_role_selectors.iter().flatten() {
            if !selectors.contains(s) {
                selectors.push(s.clone());
            }
        }
    }
    out
}

async fn reconcile_role(api: &Api<ClusterRole>, want: &ClusterRole) -> Result<(), BootstrapError> {
    let name = want.metadata.name.clone().unwrap_or_default();
    let err = |source| BootstrapError::Api {
        kind: "ClusterRole",
        name: name.clone(),
        source,
    };
    for _ in 0..ATTEMPTS {
        let Some(existing) = api.get_opt(&name).await.map_err(err)? else {
            match api.create(&post(), want).await {
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                r => return r.map(drop).map_err(err),
            }
        };
        if protected(&existing.metadata) {
            return Ok(());
        }
        let next = reconciled_role(&existing, want);
        if next == existing {
            return Ok(());
        }
        match api.replace(&name, &post(), &next).await {
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => continue,
            r => return r.map(drop).map_err(err),
        }
    }
    Err(BootstrapError::Contended {
        kind: "ClusterRole",
        name,
    })
}

async fn reconcile_binding(
    api: &Api<ClusterRoleBinding>,
    want: &ClusterRoleBinding,
) -> Result<(), BootstrapError> {
    let name = want.metadata.name.clone().unwrap_or_default();
    let err = |source| BootstrapError::Api {
        kind: "ClusterRoleBinding",
        name: name.clone(),
        source,
    };
    for _ in 0..ATTEMPTS {
        let Some(existing) = api.get_opt(&name).await.map_err(err)? else {
            match api.create(&post(), want).await {
                Err(kube::Error::Api(e)) if e.code == 409 => continue,
                r => return r.map(drop).map_err(err),
            }
        };
        if protected(&existing.metadata) {
            return Ok(());
        }
        if existing.role_ref != want.role_ref {
            // roleRef cannot change: delete, and create on the next round
            match api.delete(&name, &DeleteParams::default()).await {
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                r => drop(r.map_err(err)?),
            }
            continue;
        }
        let mut next = existing.clone();
        merge_meta(&mut next.metadata, &want.metadata);
        let subjects = next.subjects.get_or_insert_with(Vec::new);
        for s in want.subjects.iter().flatten() {
            if !subjects.contains(s) {
                subjects.push(s.clone());
            }
        }
        if next == existing {
            return Ok(());
        }
        match api.replace(&name, &post(), &next).await {
            Err(kube::Error::Api(e)) if e.code == 409 || e.code == 404 => continue,
            r => return r.map(drop).map_err(err),
        }
    }
    Err(BootstrapError::Contended {
        kind: "ClusterRoleBinding",
        name,
    })
}

fn post() -> PostParams {
    PostParams {
        field_manager: Some("k1s".into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_adds_and_keeps() {
        let defaults = policy::cluster_roles();
        let view = defaults
            .iter()
            .find(|d| d.name == "system:aggregate-to-view");
        let want = expected_role(view.expect("view"));
        // a user trimmed a rule away and added one of their own, and a label
        let mut existing = want.clone();
        let rules = existing.rules.as_mut().expect("rules");
        rules.remove(0);
        rules.push(PolicyRule::from(&Rule::resource(
            &["x.io"],
            &["things"],
            &["get"],
        )));
        existing
            .metadata
            .labels
            .as_mut()
            .expect("labels")
            .insert("mine".into(), "yes".into());
        let next = reconciled_role(&existing, &want);
        let have: Vec<Rule> = next.rules.iter().flatten().map(Rule::from).collect();
        let wanted: Vec<Rule> = want.rules.iter().flatten().map(Rule::from).collect();
        assert!(rules::uncovered(&have, &wanted).is_empty());
        assert!(have.contains(&Rule::resource(&["x.io"], &["things"], &["get"])));
        assert_eq!(
            next.metadata.labels.as_ref().expect("labels")["mine"],
            "yes"
        );
        // reconciling again changes nothing
        assert_eq!(reconciled_role(&next, &want), next);
        let admin = defaults.iter().find(|d| d.name == "admin").expect("admin");
        let want = expected_role(admin);
        let mut bare = want.clone();
        bare.aggregation_rule = None;
        assert_eq!(
            reconciled_role(&bare, &want).aggregation_rule,
            want.aggregation_rule
        );
    }
}
