//! Label and field selectors: parsing the query-string forms and matching objects.
//!
//! Label selectors accept upstream's grammar (`a=b`, `a==b`, `a!=b`, `a in (x,y)`,
//! `a notin (x)`, `a`, `!a`); field selectors accept `=`, `==` and `!=` on the fields each
//! kind supports, and refuse others as upstream does ("field label not supported").

use super::error::ApiError;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<(String, Op)>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let bad = |why: &str| ApiError::bad_request(format!("unable to parse requirement: {why}"));
        let mut reqs = vec![];
        for part in split_top(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            let req = if let Some(k) = part.strip_prefix('!') {
                (k.trim().to_string(), Op::NotExists)
            } else if let Some((k, v)) = part.split_once("!=") {
                (k.trim().to_string(), Op::NotEq(v.trim().to_string()))
            } else if let Some((k, v)) = part.split_once("==") {
                (k.trim().to_string(), Op::Eq(v.trim().to_string()))
            } else if let Some((k, v)) = part.split_once('=') {
                (k.trim().to_string(), Op::Eq(v.trim().to_string()))
            } else if let Some((k, rest)) = split_set_op(part, " notin ") {
                (k, Op::NotIn(parse_set(&rest).ok_or_else(|| bad(part))?))
            } else if let Some((k, rest)) = split_set_op(part, " in ") {
                (k, Op::In(parse_set(&rest).ok_or_else(|| bad(part))?))
            } else {
                (part.to_string(), Op::Exists)
            };
            if req.0.is_empty() || req.0.contains(' ') {
                return Err(bad(&format!("invalid label key {:?}", req.0)));
            }
            if let Some(k) = crate::registry::rules::is_qualified_name(&req.0).first() {
                return Err(bad(&format!("invalid label key \"{}\": {}", req.0, k)));
            }
            let values: Vec<&String> = match &req.1 {
                Op::Eq(v) | Op::NotEq(v) => vec![v],
                Op::In(vs) | Op::NotIn(vs) => vs.iter().collect(),
                _ => vec![],
            };
            for v in values {
                if let Some(e) = crate::registry::rules::is_valid_label_value(v).first() {
                    return Err(bad(&format!(
                        "invalid label value: \"{v}\": at key: \"{}\": {e}",
                        req.0
                    )));
                }
            }
            reqs.push(req);
        }
        Ok(LabelSelector { reqs })
    }

    /// Build from a metav1.LabelSelector object (matchLabels / matchExpressions).
    pub fn from_object(sel: &Value) -> Result<LabelSelector, String> {
        let mut reqs = vec![];
        if let Some(m) = sel["matchLabels"].as_object() {
            for (k, v) in m {
                reqs.push((
                    k.clone(),
                    Op::Eq(v.as_str().unwrap_or_default().to_string()),
                ));
            }
        }
        for e in sel["matchExpressions"].as_array().into_iter().flatten() {
            let key = e["key"].as_str().unwrap_or_default().to_string();
            let vals: Vec<String> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            let op = match e["operator"].as_str() {
                Some("In") => Op::In(vals),
                Some("NotIn") => Op::NotIn(vals),
                Some("Exists") => Op::Exists,
                Some("DoesNotExist") => Op::NotExists,
                other => return Err(format!("{other:?} is not a valid label selector operator")),
            };
            reqs.push((key, op));
        }
        Ok(LabelSelector { reqs })
    }

    pub fn matches(&self, labels: &Value) -> bool {
        self.reqs.iter().all(|(k, op)| {
            let v = labels.get(k).and_then(|v| v.as_str());
            match op {
                Op::Eq(x) => v == Some(x.as_str()),
                Op::NotEq(x) => v != Some(x.as_str()),
                Op::In(xs) => v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::NotIn(xs) => !v.is_some_and(|v| xs.iter().any(|x| x == v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }
}

/// Split on commas outside parentheses.
fn split_top(s: &str) -> Vec<&str> {
    let mut out = vec![];
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn split_set_op(part: &str, op: &str) -> Option<(String, String)> {
    let i = part.find(op)?;
    Some((
        part[..i].trim().to_string(),
        part[i + op.len()..].trim().to_string(),
    ))
}

fn parse_set(s: &str) -> Option<Vec<String>> {
    let inner = s.strip_prefix('(')?.strip_suffix(')')?;
    Some(
        inner
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
    )
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

impl FieldSelector {
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }

    /// Parse and check every field against what the kind supports.
    pub fn parse(
        s: &str,
        group: &str,
        kind: &str,
        namespaced: bool,
    ) -> Result<FieldSelector, ApiError> {
        let mut reqs = vec![];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, eq, v) = if let Some((k, v)) = part.split_once("!=") {
                (k, false, v)
            } else if let Some((k, v)) = part.split_once("==") {
                (k, true, v)
            } else if let Some((k, v)) = part.split_once('=') {
                (k, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            let k = k.trim();
            if !supported_field(group, kind, namespaced, k) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {k}"
                )));
            }
            reqs.push((k.to_string(), eq, v.trim().to_string()));
        }
        Ok(FieldSelector { reqs })
    }

    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs
            .iter()
            .all(|(k, eq, v)| (field_value(obj, k) == *v) == *eq)
    }
}

fn supported_field(group: &str, kind: &str, namespaced: bool, field: &str) -> bool {
    if field == "metadata.name" || (namespaced && field == "metadata.namespace") {
        return true;
    }
    let extra: &[&str] = match (group, kind) {
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "Event") => &[
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "reason",
            "type",
            "reportingController",
        ],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "Secret") => &["type"],
        ("", "ReplicationController") => &["status.replicas"],
        ("", "PersistentVolumeClaim") => &["spec.volumeName"],
        ("apps", "ReplicaSet") => &["status.replicas"],
        ("batch", "Job") => &["status.successful"],
        ("certificates.k8s.io", "CertificateSigningRequest") => &["spec.signerName"],
        _ => &[],
    };
    extra.contains(&field)
}

/// The string form of a selectable field, as upstream's field sets render it.
pub fn field_value(obj: &Value, path: &str) -> String {
    let v = match path {
        "status.podIPs" => {
            return obj["status"]["podIP"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
        "source" => {
            return obj["source"]["component"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        }
        _ => path.split('.').fold(obj, |v, k| &v[k]),
    };
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null if path == "spec.unschedulable" || path == "spec.hostNetwork" => "false".into(),
        Value::Null if path == "status.replicas" || path == "status.successful" => "0".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_forms() {
        let l = json!({"app": "web", "tier": "front"});
        let ok = [
            "app=web",
            "app==web",
            "app!=db",
            "app in (web,db)",
            "tier notin (back)",
            "app",
            "!missing",
            "app=web,tier in (front)",
        ];
        for s in ok {
            assert!(LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        let no = [
            "app=db",
            "app notin (web)",
            "!app",
            "missing",
            "app in (db)",
        ];
        for s in no {
            assert!(!LabelSelector::parse(s).unwrap().matches(&l), "{s}");
        }
        assert!(LabelSelector::parse("a in (x").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selector_checks_support() {
        let p = json!({"metadata": {"name": "a", "namespace": "n"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let f =
            FieldSelector::parse("spec.nodeName=n1,status.phase!=Failed", "", "Pod", true).unwrap();
        assert!(f.matches(&p));
        let e = FieldSelector::parse("spec.foo=x", "", "Pod", true).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(e.message.contains("field label not supported: spec.foo"));
    }
}
