//! Escalation prevention on writes of roles and bindings, as upstream's policy-based storage
//! does it: a user may write a Role or ClusterRole only with rules they hold themselves (or
//! with the `escalate` verb on it), may set an aggregationRule only with full authority, and
//! may bind a role only if they hold its permissions or have `bind` on it. Members of
//! `system:masters` skip the check. Answers from the snapshot; never does I/O.

use super::rules::{self, Rule};
use super::snapshot::Snapshot;
use crate::apiserver::auth::{Attributes, GrantWrite, UserInfo, MASTERS};
use crate::registry::ApiError;
use k8s_openapi::api::rbac::v1::PolicyRule;
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub const GROUP: &str = "rbac.authorization.k8s.io";

/// Refuse `w` if it would grant `user` (or anyone) more than `user` holds.
pub fn check(snap: &Snapshot, user: &UserInfo, w: &GrantWrite<'_>) -> Result<(), ApiError> {
    if w.group != GROUP || user.groups.iter().any(|g| g == MASTERS) {
        return Ok(());
    }
    if w.old.is_some_and(|old| only_gc_fields(w.obj, old)) {
        return Ok(());
    }
    match w.resource {
        "roles" | "clusterroles" => check_role(snap, user, w),
        "rolebindings" | "clusterrolebindings" => check_binding(snap, user, w),
        _ => Ok(()),
    }
}

fn check_role(snap: &Snapshot, user: &UserInfo, w: &GrantWrite<'_>) -> Result<(), ApiError> {
    let escalate = Attributes {
        verb: "escalate",
        group: GROUP,
        resource: w.resource,
        subresource: None,
        namespace: w.namespace,
        // as upstream, the name is the request's: a create names no object yet
        name: w.old.map(|_| w.name),
        path: "",
    };
    if snap.authorize(user, &escalate).is_ok() {
        return Ok(());
    }
    let wanted = rules_in(&w.obj["rules"]);
    confirm(snap, user, w.namespace, &wanted).map_err(|m| forbidden(w, &m))?;
    let aggregates = |o: &Value| {
        o["aggregationRule"]["clusterRoleSelectors"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    };
    if w.resource == "clusterroles" && (aggregates(w.obj) || w.old.is_some_and(aggregates)) {
        // an aggregationRule can gather anything, so it takes `*` on everything
        let full = [
            Rule::resource(&["*"], &["*"], &["*"]),
            Rule::urls(&["*"], &["*"]),
        ];
        confirm(snap, user, w.namespace, &full).map_err(|_| {
            forbidden(
                w,
                "must have cluster-admin privileges to use the aggregationRule",
            )
        })?;
    }
    Ok(())
}

fn check_binding(snap: &Snapshot, user: &UserInfo, w: &GrantWrite<'_>) -> Result<(), ApiError> {
    let role_ref = &w.obj["roleRef"];
    let kind = role_ref["kind"].as_str().unwrap_or_default();
    let name = role_ref["name"].as_str().unwrap_or_default();
    let bind = Attributes {
        verb: "bind",
        group: role_ref["apiGroup"].as_str().unwrap_or_default(),
        resource: if kind == "Role" {
            "roles"
        } else {
            "clusterroles"
        },
        subresource: None,
        // where the binding is: `bind` in a namespace allows binding there only
        namespace: w.namespace,
        name: Some(name),
        path: "",
    };
    if snap.authorize(user, &bind).is_ok() {
        return Ok(());
    }
    let rules = snap
        .role_ref_rules(kind, name, w.namespace)
        .map_err(|message| ApiError {
            code: 404,
            reason: "NotFound",
            message,
            details: Some(json!({"name": name, "group": GROUP, "kind": kind.to_lowercase()})),
        })?;
    confirm(snap, user, w.namespace, &rules).map_err(|m| forbidden(w, &m))
}

/// The rules of a role object, as validated by the registry.
fn rules_in(v: &Value) -> Vec<Rule> {
    serde_json::from_value::<Vec<PolicyRule>>(v.clone())
        .unwrap_or_default()
        .iter()
        .map(Rule::from)
        .collect()
}

/// Ok if `user` holds every rule of `wanted` in `namespace`, else upstream's message listing
/// what is missing.
pub fn confirm(
    snap: &Snapshot,
    user: &UserInfo,
    namespace: Option<&str>,
    wanted: &[Rule],
) -> Result<(), String> {
    let (held, errors) = snap.rules_for(user, namespace);
    let missing = rules::uncovered(&held, wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let lines: BTreeSet<String> = rules::compact(&missing)
        .iter()
        .map(Rule::compact_string)
        .collect();
    let mut msg = format!(
        "user {:?} (groups={}) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        rules::quoted_list(&user.groups),
        lines.into_iter().collect::<Vec<_>>().join("\n")
    );
    if !errors.is_empty() {
        msg.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(msg)
}

fn forbidden(w: &GrantWrite<'_>, msg: &str) -> ApiError {
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("{}.{GROUP} {:?} is forbidden: {msg}", w.resource, w.name),
        details: Some(json!({"name": w.name, "group": GROUP, "kind": w.resource})),
    }
}

/// Whether an update changes nothing but what the garbage collector needs to delete the
/// object (owner references and finalizers), which anyone allowed to update may do.
fn only_gc_fields(obj: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v["metadata"].as_object_mut() {
            for f in [
                "ownerReferences",
                "finalizers",
                "managedFields",
                "resourceVersion",
                "generation",
            ] {
                m.remove(f);
            }
        }
        v
    };
    strip(obj) == strip(old)
}

#[cfg(test)]
#[path = "escalation_tests.rs"]
mod tests;
