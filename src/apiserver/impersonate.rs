//! Impersonation (`kubectl --as`, `--as-group`): a request carrying `Impersonate-*` headers
//! acts as the user they name, once the authenticated user is authorized to `impersonate`
//! each part (users, groups, service accounts, uids, extra fields), as upstream's filter.
//! Never changes the identity without that check.

use super::auth::{forbidden_message, Attributes, Authorizer, UserInfo};
use crate::registry::ApiError;
use http::HeaderMap;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";
const SA_PREFIX: &str = "system:serviceaccount:";
const AUTHN_GROUP: &str = "authentication.k8s.io";

/// The user the request acts as: `user` itself without impersonation headers.
pub fn resolve(
    authz: &dyn Authorizer,
    headers: &HeaderMap,
    user: UserInfo,
) -> Result<UserInfo, ApiError> {
    let text = |name: &str| -> Result<Vec<String>, ApiError> {
        headers
            .get_all(name)
            .iter()
            .map(|v| {
                v.to_str()
                    .map(String::from)
                    .map_err(|_| ApiError::bad_request(format!("invalid value in header {name}")))
            })
            .collect()
    };
    let names = text(USER)?;
    let groups = text(GROUP)?;
    let uids = text(UID)?;
    let mut extras: Vec<(String, String)> = vec![];
    for (k, v) in headers {
        if let Some(key) = k.as_str().strip_prefix(EXTRA) {
            let v = v.to_str().map_err(|_| {
                ApiError::bad_request(format!("invalid value in header {}", k.as_str()))
            })?;
            extras.push((super::request::percent_decode(key), v.to_string()));
        }
    }
    let Some(name) = names.first() else {
        if groups.is_empty() && uids.is_empty() && extras.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::bad_request(
            "impersonating groups, a uid or extra fields requires impersonating a user",
        ));
    };
    let allow = |a: Attributes<'_>| -> Result<(), ApiError> {
        authz
            .authorize(&user, &a)
            .map_err(|reason| ApiError::forbidden(forbidden_message(&user, &a, &reason)))
    };
    let service_account = name
        .strip_prefix(SA_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    match service_account {
        Some((ns, sa)) => allow(attrs("", "serviceaccounts", None, Some(ns), sa))?,
        None => allow(attrs("", "users", None, None, name))?,
    }
    for g in &groups {
        allow(attrs("", "groups", None, None, g))?;
    }
    for uid in &uids {
        allow(attrs(AUTHN_GROUP, "uids", None, None, uid))?;
    }
    for (k, v) in &extras {
        allow(attrs(AUTHN_GROUP, "userextras", Some(k), None, v))?;
    }
    let mut out = UserInfo {
        name: name.clone(),
        groups,
    };
    if let Some((ns, _)) = service_account {
        if out.groups.is_empty() {
            out.groups = vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
            ];
        }
    }
    let implied = if out.name == "system:anonymous" {
        "system:unauthenticated"
    } else {
        "system:authenticated"
    };
    if !out.groups.iter().any(|g| g == implied) {
        out.groups.push(implied.into());
    }
    Ok(out)
}

fn attrs<'a>(
    group: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: &'a str,
) -> Attributes<'a> {
    Attributes {
        verb: "impersonate",
        group,
        resource,
        subresource,
        namespace,
        name: Some(name),
        path: "",
    }
}
