//! Resource lists (quantities keyed by resource name) and container
//! requests/limits rules.

use std::collections::HashMap;

use serde_json::Value;

use super::json::{self, child, key, Errs};
use super::names;
use super::quantity::Quantity;

fn is_standard_container_resource(n: &str) -> bool {
    matches!(n, "cpu" | "memory" | "ephemeral-storage") || n.starts_with("hugepages-")
}

fn overcommit_allowed(n: &str) -> bool {
    let native = !n.contains('/') || n.contains("kubernetes.io/");
    native && !n.starts_with("hugepages-")
}

/// Parse and check a `ResourceList` member; returns the parsed entries.
pub fn resource_list<'a>(
    v: &'a Value,
    k: &str,
    base: &str,
    container: bool,
    errs: &mut Errs,
) -> HashMap<&'a str, (Quantity, &'a str)> {
    let lp = child(base, k);
    let mut out = HashMap::new();
    let Some(m) = json::opt_obj(v, k, base, errs) else {
        return out;
    };
    for (name, q) in m {
        let fp = key(&lp, name);
        for msg in names::is_qualified_name(name) {
            errs.push(json::invalid_str(&fp, name, &msg));
        }
        if container && !name.contains('/') && !is_standard_container_resource(name) {
            errs.push(json::invalid_str(
                &fp,
                name,
                "must be a standard resource for containers",
            ));
        }
        let text = match q {
            Value::String(s) => s.as_str(),
            Value::Number(_) => {
                // Numbers are accepted by the quantity decoder.
                match Quantity::parse(&q.to_string()) {
                    Ok(parsed) => {
                        if parsed.is_negative() {
                            errs.push(json::invalid(&fp, q.to_string(), json::NONNEG));
                        }
                        out.insert(name.as_str(), (parsed, ""));
                    }
                    Err(e) => errs.push(json::invalid(&fp, q.to_string(), &e)),
                }
                continue;
            }
            other => {
                errs.push(json::type_error(&fp, other, "must be a quantity string"));
                continue;
            }
        };
        match Quantity::parse(text) {
            Ok(parsed) => {
                if parsed.is_negative() {
                    errs.push(json::invalid_str(&fp, text, json::NONNEG));
                }
                out.insert(name.as_str(), (parsed, text));
            }
            Err(e) => errs.push(json::invalid_str(&fp, text, &e)),
        }
    }
    out
}

pub fn validate_resources(c: &Value, path: &str, errs: &mut Errs) {
    let Some(r) = json::opt_objv(c, "resources", path, errs) else {
        return;
    };
    let rp = child(path, "resources");
    let limits = resource_list(r, "limits", &rp, true, errs);
    let requests = resource_list(r, "requests", &rp, true, errs);
    let mut names_sorted: Vec<&&str> = requests.keys().collect();
    names_sorted.sort();
    for name in names_sorted {
        let (req, req_text) = &requests[*name];
        let shown = if req_text.is_empty() {
            req.to_f64().to_string()
        } else {
            req_text.to_string()
        };
        match limits.get(*name) {
            Some((lim, lim_text)) => {
                if req != lim && !overcommit_allowed(name) {
                    errs.push(json::invalid_str(
                        &child(&rp, "requests"),
                        &shown,
                        &format!("must be equal to {name} limit of {lim_text}"),
                    ));
                } else if req > lim {
                    errs.push(json::invalid_str(
                        &child(&rp, "requests"),
                        &shown,
                        &format!("must be less than or equal to {name} limit of {lim_text}"),
                    ));
                }
            }
            None if !overcommit_allowed(name) => errs.push(json::required(
                &child(&rp, "limits"),
                "Limit must be set for non overcommitable resources",
            )),
            None => {}
        }
    }
}
