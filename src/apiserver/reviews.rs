//! Review resources: questions the server answers without storing anything.
//! `SelfSubjectReview` (who am I: `kubectl auth whoami`), and the access reviews
//! (`kubectl auth can-i`) answered by the same authorizer that guards every request.

use super::auth::{Attributes, Authorizer, UserInfo};
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
                Err(reason) => json!({"allowed": false, "reason": reason}),
            };
        }
        "SelfSubjectRulesReview" => {
            let namespace = body["spec"]["namespace"].as_str().filter(|s| !s.is_empty());
            let all = authz
                .authorize(
                    user,
                    &Attributes {
                        verb: "*",
                        group: "*",
                        resource: "*",
                        subresource: None,
                        namespace,
                        name: None,
                        path: "*",
                    },
                )
                .is_ok();
            out["status"] = if all {
                json!({"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                       "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "incomplete": false})
            } else {
                json!({"resourceRules": [], "nonResourceRules": [], "incomplete": false})
            };
        }
        other => {
            return Err(ApiError::method_not_allowed(format!(
                "{other} is not a review resource"
            )))
        }
    }
    Ok(out)
}
