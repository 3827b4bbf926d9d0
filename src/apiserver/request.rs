//! Parsing a request line into what it asks for: the API path (group, version, namespace,
//! resource, name, subresource), the verb, and the query parameters.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestInfo {
    /// true for /api and /apis paths
    pub is_resource_request: bool,
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// get, list, watch, create, update, patch, delete, deletecollection
    pub verb: String,
}

/// Decoded query parameters; a repeated key keeps its first value.
#[derive(Debug, Default, Clone)]
pub struct Query(pub HashMap<String, String>);

impl Query {
    pub fn parse(q: Option<&str>) -> Query {
        let mut m = HashMap::new();
        for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            m.entry(percent_decode(k))
                .or_insert_with(|| percent_decode(v));
        }
        Query(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1") | Some(""))
    }
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(v) => {
                        out.push(v);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Subresources of a namespace object (as opposed to resources in the namespace).
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

pub fn parse(method: &http::Method, path: &str, query: &Query) -> RequestInfo {
    let parts: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let mut info = RequestInfo::default();
    let rest: &[String] = match parts.first().map(String::as_str) {
        Some("api") if parts.len() >= 2 => {
            info.version = parts[1].clone();
            &parts[2..]
        }
        Some("apis") if parts.len() >= 3 => {
            info.group = parts[1].clone();
            info.version = parts[2].clone();
            &parts[3..]
        }
        _ => return info,
    };
    if rest.is_empty() {
        return info;
    }
    info.is_resource_request = true;
    let mut rest = rest;
    if rest[0] == "namespaces" && rest.len() >= 2 {
        info.namespace = Some(rest[1].clone());
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2].as_str()) {
            rest = &rest[2..];
        } else {
            info.namespace = None;
        }
    }
    info.resource = rest[0].clone();
    if info.resource == "namespaces" && rest.len() >= 2 {
        // a namespace object: its "namespace" is itself, but it is cluster-scoped
        info.namespace = None;
    }
    info.name = rest.get(1).cloned();
    info.subresource = rest.get(2).cloned();
    let collection = info.name.is_none();
    info.verb = match *method {
        http::Method::GET | http::Method::HEAD if collection => {
            if query.flag("watch") && query.get("watch") != Some("false") {
                "watch"
            } else {
                "list"
            }
        }
        http::Method::GET | http::Method::HEAD => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if collection => "deletecollection",
        http::Method::DELETE => "delete",
        _ => "",
    }
    .to_string();
    info
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Method;

    fn p(m: Method, path: &str, q: &str) -> RequestInfo {
        parse(&m, path, &Query::parse(Some(q)))
    }

    #[test]
    fn paths() {
        let r = p(Method::GET, "/api/v1/namespaces/default/pods/web/log", "");
        assert_eq!(
            (
                r.namespace.as_deref(),
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref(),
                r.verb.as_str()
            ),
            (Some("default"), "pods", Some("web"), Some("log"), "get")
        );
        let r = p(Method::GET, "/apis/apps/v1/deployments", "watch=true");
        assert_eq!(
            (
                r.group.as_str(),
                r.resource.as_str(),
                r.verb.as_str(),
                r.namespace
            ),
            ("apps", "deployments", "watch", None)
        );
        let r = p(Method::PUT, "/api/v1/namespaces/kube-system/finalize", "");
        assert_eq!(
            (
                r.resource.as_str(),
                r.name.as_deref(),
                r.subresource.as_deref(),
                r.namespace
            ),
            ("namespaces", Some("kube-system"), Some("finalize"), None)
        );
        let r = p(Method::GET, "/api/v1/namespaces/foo", "");
        assert_eq!(
            (r.resource.as_str(), r.name.as_deref(), r.verb.as_str()),
            ("namespaces", Some("foo"), "get")
        );
        let r = p(
            Method::DELETE,
            "/api/v1/namespaces/a/configmaps",
            "labelSelector=x%3Dy",
        );
        assert_eq!(r.verb, "deletecollection");
        assert!(!p(Method::GET, "/apis/apps/v1", "").is_resource_request);
        assert_eq!(
            Query::parse(Some("labelSelector=app%20in%20(a%2Cb)")).get("labelSelector"),
            Some("app in (a,b)")
        );
    }
}
