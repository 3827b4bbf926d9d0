//! RBAC policy rules as plain data: whether a rule allows a request, whether one set of rules
//! covers another (the escalation check), and the compact rendering upstream's error messages
//! use. Pure functions; this file never reads cluster state and never allocates on the
//! matching path.

use crate::apiserver::auth::Attributes;
use k8s_openapi::api::rbac::v1::PolicyRule;

/// One rule of a Role or ClusterRole. Empty lists mean "none" (not "all"): only `*` is a
/// wildcard, as upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

const ALL: &str = "*";

impl From<&PolicyRule> for Rule {
    fn from(r: &PolicyRule) -> Rule {
        Rule {
            verbs: r.verbs.clone(),
            api_groups: r.api_groups.clone().unwrap_or_default(),
            resources: r.resources.clone().unwrap_or_default(),
            resource_names: r.resource_names.clone().unwrap_or_default(),
            non_resource_urls: r.non_resource_urls.clone().unwrap_or_default(),
        }
    }
}

impl From<&Rule> for PolicyRule {
    fn from(r: &Rule) -> PolicyRule {
        let opt = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        PolicyRule {
            verbs: r.verbs.clone(),
            api_groups: opt(&r.api_groups),
            resources: opt(&r.resources),
            resource_names: opt(&r.resource_names),
            non_resource_urls: opt(&r.non_resource_urls),
        }
    }
}

impl Rule {
    /// A rule on resources (`groups` x `resources` x `verbs`).
    pub fn resource(groups: &[&str], resources: &[&str], verbs: &[&str]) -> Rule {
        Rule {
            verbs: owned(verbs),
            api_groups: owned(groups),
            resources: owned(resources),
            ..Rule::default()
        }
    }

    /// A rule on non-resource URLs (`/healthz`, `/apis/*`).
    pub fn urls(urls: &[&str], verbs: &[&str]) -> Rule {
        Rule {
            verbs: owned(verbs),
            non_resource_urls: owned(urls),
            ..Rule::default()
        }
    }

    /// Restrict the rule to these object names.
    pub fn names(mut self, names: &[&str]) -> Rule {
        self.resource_names = owned(names);
        self
    }

    /// Whether this rule allows the request. A request with a resource is a resource request;
    /// one without is a non-resource request on `attrs.path`.
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        if !verb_matches(&self.verbs, a.verb) {
            return false;
        }
        if a.resource.is_empty() {
            return url_matches(&self.non_resource_urls, a.path);
        }
        list_matches(&self.api_groups, a.group)
            && resource_matches(&self.resources, a.resource, a.subresource)
            && name_matches(&self.resource_names, a.name)
    }

    /// Upstream's compact rendering: `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get"]}`.
    pub fn compact_string(&self) -> String {
        let mut parts = vec![];
        for (label, v) in [
            ("APIGroups", &self.api_groups),
            ("Resources", &self.resources),
            ("NonResourceURLs", &self.non_resource_urls),
            ("ResourceNames", &self.resource_names),
            ("Verbs", &self.verbs),
        ] {
            if !v.is_empty() {
                parts.push(format!("{label}:{}", quoted_list(v)));
            }
        }
        format!("{{{}}}", parts.join(", "))
    }
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", items.join(" "))
}

fn verb_matches(verbs: &[String], verb: &str) -> bool {
    verbs.iter().any(|v| v == ALL || v == verb)
}

fn list_matches(list: &[String], want: &str) -> bool {
    list.iter().any(|g| g == ALL || g == want)
}

/// `pods`, `pods/log`, `*`, and `*/scale` (any resource's scale subresource).
fn resource_matches(resources: &[String], resource: &str, sub: Option<&str>) -> bool {
    resources.iter().any(|r| {
        if r == ALL {
            return true;
        }
        match sub {
            None => r == resource,
            Some(sub) => match r.split_once('/') {
                Some((res, rsub)) => rsub == sub && (res == resource || res == ALL),
                None => false,
            },
        }
    })
}

/// A rule with names allows only requests naming one of them (so never list or create).
fn name_matches(names: &[String], name: Option<&str>) -> bool {
    names.is_empty() || name.is_some_and(|n| names.iter().any(|r| r == n))
}

/// Exact paths, `*`, and prefixes ending in `*` (`/apis/*`).
fn url_matches(urls: &[String], path: &str) -> bool {
    urls.iter().any(|u| url_covers(u, path))
}

fn url_covers(owner: &str, path: &str) -> bool {
    owner == ALL
        || owner == path
        || owner
            .strip_suffix('*')
            .is_some_and(|prefix| path.starts_with(prefix.trim_end_matches('*')))
}

/// The parts of `servant` that no rule of `owner` covers, each broken down to one verb on one
/// resource (and one name) or one URL; empty when `owner` covers all of `servant`.
pub fn uncovered(owner: &[Rule], servant: &[Rule]) -> Vec<Rule> {
    let mut missing = vec![];
    for rule in servant {
        for sub in breakdown(rule) {
            if !owner.iter().any(|o| covers(o, &sub)) {
                missing.push(sub);
            }
        }
    }
    missing
}

/// Every (group, resource, verb[, name]) and (url, verb) a rule names, each as its own rule.
fn breakdown(r: &Rule) -> Vec<Rule> {
    let mut out = vec![];
    for g in &r.api_groups {
        for res in &r.resources {
            for v in &r.verbs {
                let base = Rule {
                    verbs: vec![v.clone()],
                    api_groups: vec![g.clone()],
                    resources: vec![res.clone()],
                    ..Rule::default()
                };
                if r.resource_names.is_empty() {
                    out.push(base);
                } else {
                    for n in &r.resource_names {
                        let mut one = base.clone();
                        one.resource_names = vec![n.clone()];
                        out.push(one);
                    }
                }
            }
        }
    }
    for u in &r.non_resource_urls {
        for v in &r.verbs {
            out.push(Rule {
                verbs: vec![v.clone()],
                non_resource_urls: vec![u.clone()],
                ..Rule::default()
            });
        }
    }
    out
}

/// Whether `owner` covers `sub`, a rule from `breakdown`. Wildcards cover by name only:
/// `*` in the owner covers anything, but the servant's `*` needs the owner's `*`.
fn covers(owner: &Rule, sub: &Rule) -> bool {
    let has_all = |set: &[String], want: &[String]| {
        set.iter().any(|s| s == ALL) || want.iter().all(|w| set.contains(w))
    };
    let names = if sub.resource_names.is_empty() {
        owner.resource_names.is_empty()
    } else {
        owner.resource_names.is_empty()
            || sub
                .resource_names
                .iter()
                .all(|n| owner.resource_names.contains(n))
    };
    has_all(&owner.verbs, &sub.verbs)
        && has_all(&owner.api_groups, &sub.api_groups)
        && has_all(&owner.resources, &sub.resources)
        && sub
            .non_resource_urls
            .iter()
            .all(|p| owner.non_resource_urls.iter().any(|o| url_covers(o, p)))
        && names
}

/// Merge single-resource rules that differ only in their verb, so an escalation error lists
/// `Verbs:["get" "list"]` once instead of one line per verb.
pub fn compact(rules: &[Rule]) -> Vec<Rule> {
    let mut out: Vec<Rule> = vec![];
    for r in rules {
        let simple = r.api_groups.len() == 1
            && r.resources.len() == 1
            && r.resource_names.is_empty()
            && r.non_resource_urls.is_empty();
        if simple {
            if let Some(m) = out.iter_mut().find(|m| {
                m.resource_names.is_empty()
                    && m.non_resource_urls.is_empty()
                    && m.api_groups == r.api_groups
                    && m.resources == r.resources
            }) {
                for v in &r.verbs {
                    if !m.verbs.contains(v) {
                        m.verbs.push(v.clone());
                    }
                }
                continue;
            }
        }
        out.push(r.clone());
    }
    out
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
