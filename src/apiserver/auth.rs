//! Who is asking and whether they may: the identity from the TLS client certificate (or the
//! in-process client), and the authorizer interface. Until RBAC lands, the one authorizer
//! allows the `system:masters` group everything and refuses everyone else.

pub use crate::pki::UserInfo;

/// What a request wants to do, in RBAC's terms.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
    /// For non-resource requests (`/healthz`, `/version`…)
    pub path: &'a str,
}

pub trait Authorizer: Send + Sync {
    /// Ok(()) or the reason for refusal.
    fn authorize(&self, user: &UserInfo, attrs: &Attributes<'_>) -> Result<(), String>;
}

/// system:masters may do anything; nobody else may do anything yet.
pub struct MastersOnly;

impl Authorizer for MastersOnly {
    fn authorize(&self, user: &UserInfo, _attrs: &Attributes<'_>) -> Result<(), String> {
        if user.groups.iter().any(|g| g == "system:masters") {
            Ok(())
        } else {
            Err("no RBAC policy matched".into())
        }
    }
}

/// Upstream's message for a refused request.
pub fn forbidden_message(user: &UserInfo, a: &Attributes<'_>) -> String {
    if a.resource.is_empty() {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.name,
            a.verb.to_lowercase(),
            a.path
        );
    }
    let res = match a.subresource {
        Some(s) => format!("{}/{}", a.resource, s),
        None => a.resource.to_string(),
    };
    let what = match a.name {
        Some(n) => format!("{} \"{}\"", res, n),
        None => res.clone(),
    };
    let scope = match a.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    format!(
        "{what} is forbidden: User \"{}\" cannot {} resource \"{res}\" in API group \"{}\"{scope}",
        user.name, a.verb, a.group
    )
}
