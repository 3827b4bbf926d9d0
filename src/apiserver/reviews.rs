//! Review resources: questions the server answers without storing anything.
//! `SelfSubjectReview` (who am I: `kubectl auth whoami`), and the access reviews
//! (`kubectl auth can-i`) answered by the same authorizer that guards every request.

use super::auth::{Attributes, Authorizer, RuleSet, UserInfo};
use crate::registry::{ApiError, ResourceInfo};
use serde_json::{json, Value};

pub(super) fn answer(
    authz: &dyn Authorizer,
    res: &ResourceInfo,
    ns: Option<&str>,
    body: &Value,
    user: &UserInfo,
) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} must be a JSON object",
            res.kind
        )));
    }
    let mut out = body.clone();
    out["apiVersion"] = json!(res.api_version());
    out["kind"] = json!(res.kind);
    if !out["metadata"].is_object() {
        out["metadata"] = json!({});
    }
    out["metadata"]["creationTimestamp"] = Value::Null;
    match res.kind.as_str() {
        "SelfSubjectReview" => {
            out["status"] = json!({"userInfo": {"username": user.name, "groups": user.groups}});
        }
        "SelfSubjectAccessReview" | "LocalSubjectAccessReview" | "SubjectAccessReview" => {
            let spec = &body["spec"];
            let subject = if res.kind == "SelfSubjectAccessReview" {
                user.clone()
            } else {
                let name = spec["user"].as_str().unwrap_or_default().to_string();
                let groups = spec["groups"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|g| g.as_str().map(String::from))
                    .collect();
                if name.is_empty() && spec["groups"].as_array().is_none_or(|g| g.is_empty()) {
                    return Err(ApiError::bad_request(format!("{} spec.user: Invalid value: at least one of user or group must be specified", res.kind)));
                }
                UserInfo { name, groups }
            };
            let ra = &spec["resourceAttributes"];
            let nra = &spec["nonResourceAttributes"];
            let str_of = |v: &Value| v.as_str().unwrap_or_default().to_string();
            let (verb, group, resource, sub, namespace, name, path) = if ra.is_object() {
                let namespace = if res.kind == "LocalSubjectAccessReview" {
                    ns.map(String::from)
                } else {
                    ra["namespace"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                };
                (
                    str_of(&ra["verb"]),
                    str_of(&ra["group"]),
                    str_of(&ra["resource"]),
                    ra["subresource"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                    namespace,
                    ra["name"]
                        .as_str()
                        .filter(|s| !s.is_empty())
                        .map(String::from),
                    String::new(),
                )
            } else if nra.is_object() {
                (
                    str_of(&nra["verb"]),
                    String::new(),
                    String::new(),
                    None,
                    None,
                    None,
                    str_of(&nra["path"]),
                )
            } else {
                return Err(ApiError::bad_request(format!("{} spec: Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified", res.kind)));
            };
            let attrs = Attributes {
                verb: &verb,
                group: &group,
                resource: &resource,
                subresource: sub.as_deref(),
                namespace: namespace.as_deref(),
                name: name.as_deref(),
                path: &path,
            };
            out["status"] = match authz.authorize(&subject, &attrs) {
                Ok(()) => json!({"allowed": true}),
                Err(reason) if reason.is_empty() => json!({"allowed": false}),
                Err(reason) => json!({"allowed": false, "reason": reason}),
            };
        }
        "SelfSubjectRulesReview" => {
            let namespace = body["spec"]["namespace"].as_str().filter(|s| !s.is_empty());
            out["status"] = rules_review(&authz.rules_for(user, namespace));
        }
        other => {
            return Err(ApiError::method_not_allowed(format!(
                "{other} is not a review resource"
            )))
        }
    }
    Ok(out)
}

/// A SelfSubjectRulesReview's status: the rules split into resource and non-resource ones.
fn rules_review(set: &RuleSet) -> Value {
    let list = |v: &[String]| json!(v);
    let mut resource = vec![];
    let mut non_resource = vec![];
    for r in &set.rules {
        if !r.resources.is_empty() {
            let mut rule = json!({"verbs": list(&r.verbs), "apiGroups": list(&r.api_groups), "resources": list(&r.resources)});
            if !r.resource_names.is_empty() {
                rule["resourceNames"] = list(&r.resource_names);
            }
            resource.push(rule);
        }
        if !r.non_resource_urls.is_empty() {
            non_resource.push(
                json!({"verbs": list(&r.verbs), "nonResourceURLs": list(&r.non_resource_urls)}),
            );
        }
    }
    let mut status = json!({"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": !set.errors.is_empty()});
    if !set.errors.is_empty() {
        status["evaluationError"] = json!(set.errors.join(", "));
    }
    status
}
