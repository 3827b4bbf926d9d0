//! Who is asking and whether they may: the identity from the TLS client certificate (or the
//! in-process client), the authorizer interface every request goes through, and upstream's
//! message for a refusal. RBAC (`super::rbac`) is the authorizer the server runs;
//! `MastersOnly` remains for tests and benchmarks that need no policy.

use crate::apiserver::rbac::rules::Rule;
pub use crate::pki::UserInfo;
use crate::registry::ApiError;
use serde_json::Value;

/// The group whose members may do anything, bindings or not (upstream's privileged group).
pub const MASTERS: &str = "system:masters";

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

/// The rules a user holds in a namespace, for SelfSubjectRulesReview (`kubectl auth can-i
/// --list`).
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    /// Why the list may be incomplete (bindings to roles that do not exist); empty if complete.
    pub errors: Vec<String>,
}

/// A write of an object that grants permissions (a role or a binding), for the escalation
/// check: the new object as it will be stored and the stored one on update.
#[derive(Debug, Clone, Copy)]
pub struct GrantWrite<'a> {
    pub group: &'a str,
    /// The resource's plural (`roles`, `clusterrolebindings`…)
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub obj: &'a Value,
    pub old: Option<&'a Value>,
}

/// Called on every request, so it must answer from memory and never block.
pub trait Authorizer: Send + Sync {
    /// Ok(()) or the reason for refusal (empty when there is nothing more to say than no).
    fn authorize(&self, user: &UserInfo, attrs: &Attributes<'_>) -> Result<(), String>;

    /// Every rule `user` holds in `namespace` (cluster-wide ones included).
    fn rules_for(&self, user: &UserInfo, namespace: Option<&str>) -> RuleSet;

    /// Refuse a write of a role or binding that would grant more than its author holds.
    fn check_grant(&self, _user: &UserInfo, _write: &GrantWrite<'_>) -> Result<(), ApiError> {
        Ok(())
    }
}

/// system:masters may do anything; nobody else may do anything.
pub struct MastersOnly;

impl Authorizer for MastersOnly {
    fn authorize(&self, user: &UserInfo, _attrs: &Attributes<'_>) -> Result<(), String> {
        if user.groups.iter().any(|g| g == MASTERS) {
            Ok(())
        } else {
            Err(String::new())
        }
    }

    fn rules_for(&self, user: &UserInfo, _namespace: Option<&str>) -> RuleSet {
        let rules = if user.groups.iter().any(|g| g == MASTERS) {
            vec![
                Rule::resource(&["*"], &["*"], &["*"]),
                Rule::urls(&["*"], &["*"]),
            ]
        } else {
            vec![]
        };
        RuleSet {
            rules,
            errors: vec![],
        }
    }
}

/// Upstream's message for a refused request; `reason` (the authorizer's) is appended.
pub fn forbidden_message(user: &UserInfo, a: &Attributes<'_>, reason: &str) -> String {
    let msg = refusal(user, a);
    if reason.is_empty() {
        msg
    } else {
        format!("{msg}: {reason}")
    }
}

fn refusal(user: &UserInfo, a: &Attributes<'_>) -> String {
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
    // the subject is the resource (no subresource), qualified by its group
    let qualified = if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let what = match a.name {
        Some(n) => format!("{qualified} \"{n}\""),
        None => qualified,
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
