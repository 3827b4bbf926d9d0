//! A CRD version's `x-kubernetes-validations` rules, compiled once per version ([`RuleSet`]) and
//! run against custom resources as upstream's apiextensions-apiserver runs them: at every schema
//! node where the value is present, transition rules only where an old value correlates, errors
//! on unchanged values ratcheted into warnings, one cost budget per object, and upstream's
//! wording for every failure.

use super::compile::{build, Rule, SNode};
use super::schema::to_value;
use super::value::{ErrKind, Value};
use super::{PER_CALL_LIMIT, RUNTIME_BUDGET};
use crate::registry::schema::{exceeds_depth, go_quote, json_eq, SchemaError, MAX_DEPTH};
use serde_json::Value as Json;
use std::rc::Rc;

/// The compiled rules of one CRD version. Rules that fail to compile are left out: the CRD
/// check refuses them before a CRD is stored.
#[derive(Debug, Default)]
pub struct RuleSet {
    root: Option<SNode>,
}

impl PartialEq for RuleSet {
    /// Rule sets are derived from the schema, which is compared on its own.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl RuleSet {
    pub fn new(schema: &Json) -> RuleSet {
        RuleSet {
            root: build(schema, true, 0),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    /// Runs every rule on `obj` (and `old` on update); returns the errors and the warnings of
    /// ratcheted errors on values the update left unchanged.
    pub fn validate(&self, obj: &Json, old: Option<&Json>) -> (Vec<SchemaError>, Vec<String>) {
        let mut run = Run {
            budget: RUNTIME_BUDGET as i64,
            errs: vec![],
            warnings: vec![],
        };
        if let Some(root) = &self.root {
            let same = old.is_some_and(|o| json_eq(obj, o));
            run.node(root, "", obj, old, same);
        }
        (run.errs, run.warnings)
    }
}

struct Run {
    budget: i64,
    errs: Vec<SchemaError>,
    warnings: Vec<String>,
}

fn child(path: &str, k: &str) -> String {
    crate::registry::schema::child(path, k)
}

impl Run {
    fn node(&mut self, n: &SNode, path: &str, obj: &Json, old: Option<&Json>, same: bool) {
        if obj.is_null() || self.budget < 0 {
            return;
        }
        self.rules(n, path, obj, old, same);
        if self.budget < 0 {
            return;
        }
        match obj {
            Json::Object(m) => {
                let old_map = old.and_then(Json::as_object).filter(|_| n.map_correlates);
                let visit = |run: &mut Run, sub: &SNode, k: &String, v: &Json| {
                    let o = old_map.and_then(|om| om.get(k));
                    let same = match o {
                        Some(o) => json_eq(v, o),
                        None => same,
                    };
                    run.node(sub, &child(path, k), v, o, same);
                };
                if let Some(a) = &n.additional {
                    for (k, v) in m {
                        visit(self, a, k, v);
                    }
                }
                for (k, sub) in &n.props {
                    if let Some(v) = m.get(k) {
                        visit(self, sub, k, v);
                    }
                }
            }
            Json::Array(a) => {
                let Some(it) = &n.items else { return };
                let old_list = old.and_then(Json::as_array);
                for (i, v) in a.iter().enumerate() {
                    let o = match (&n.list_keys, old_list) {
                        (Some(keys), Some(ol)) => ol.iter().find(|x| {
                            keys.iter().all(|k| match (x.get(k), v.get(k)) {
                                (Some(p), Some(q)) => json_eq(p, q),
                                (None, None) => true,
                                _ => false,
                            })
                        }),
                        _ => None,
                    };
                    let same_i = match o {
                        Some(o) => json_eq(v, o),
                        None => same,
                    };
                    self.node(it, &format!("{path}[{i}]"), v, o, same_i);
                }
            }
            _ => {}
        }
    }

    fn rules(&mut self, n: &SNode, path: &str, obj: &Json, old: Option<&Json>, same: bool) {
        if n.rules.is_empty() {
            return;
        }
        let field = if path.is_empty() { "<nil>" } else { path };
        let shown = go_quote(&n.ty);
        if self.budget <= 0 {
            self.errs.push(out_of_budget(field, &shown));
            self.budget = -1;
            return;
        }
        let this = to_value(obj, &n.schema, n.root);
        let before = old.map(|o| to_value(o, &n.schema, n.root));
        for rule in &n.rules {
            let uses_old = rule.program.uses_old_self;
            if uses_old && before.is_none() && !rule.optional_old_self {
                continue;
            }
            let mut vars = vec![("self", this.clone())];
            if rule.optional_old_self {
                vars.push(("oldSelf", Value::Optional(before.clone().map(Rc::new))));
            } else if let Some(b) = &before {
                vars.push(("oldSelf", b.clone()));
            }
            let limit = PER_CALL_LIMIT.min(self.budget.max(0) as u64);
            let mut cost = 0;
            let result = rule.program.eval(vars.clone(), limit, &mut cost);
            self.budget -= cost as i64;
            let name = rule_name(rule);
            let ok = match result {
                Ok(Value::Bool(true)) => continue,
                Ok(_) => false,
                Err(e) if e.kind == ErrKind::Cost => {
                    if limit < PER_CALL_LIMIT {
                        self.errs.push(out_of_budget(field, &shown));
                    } else {
                        self.errs.push(SchemaError::invalid(field, &shown, &format!("'{e}': no further validation rules will be run due to call cost exceeds limit for rule: {name}")));
                    }
                    self.budget = -1;
                    return;
                }
                Err(e) if e.kind == ErrKind::Overload => {
                    self.errs.push(SchemaError::invalid(field, &shown, &format!("'{e}': call arguments did not match a supported operator, function or macro signature for rule: {name}")));
                    true
                }
                Err(e) => {
                    self.errs.push(SchemaError::invalid(
                        field,
                        &shown,
                        &format!("{e} evaluating rule: {name}"),
                    ));
                    true
                }
            };
            if ok {
                continue;
            }
            let at = match &rule.field_path {
                Some(fp) if path.is_empty() => fp.clone(),
                Some(fp) => format!("{path}.{fp}"),
                None => field.to_string(),
            };
            let mut detail = if rule.message.is_empty() {
                format!("failed rule: {}", rule.src)
            } else {
                rule.message.clone()
            };
            if let Some((_, mp)) = &rule.message_expr {
                let mut cost = 0;
                let r = mp.eval(
                    vars,
                    PER_CALL_LIMIT.min(self.budget.max(0) as u64),
                    &mut cost,
                );
                self.budget -= cost as i64;
                if let Ok(Value::String(s)) = r {
                    let t = s.trim();
                    if !t.is_empty() && t.len() <= 5120 && !t.contains('\n') {
                        detail = t.to_string();
                    }
                }
            }
            let e = match rule.reason.as_deref() {
                Some("FieldValueForbidden") => SchemaError::forbidden(&at, &detail),
                Some("FieldValueRequired") => SchemaError::required(&at, &detail),
                Some("FieldValueDuplicate") => SchemaError::duplicate(&at, &shown),
                _ => SchemaError::invalid(&at, &shown, &detail),
            };
            if !uses_old && same {
                self.warnings.push(e.message);
            } else {
                self.errs.push(e);
            }
        }
    }
}

fn out_of_budget(field: &str, shown: &str) -> SchemaError {
    SchemaError::invalid(
        field,
        shown,
        "validation failed due to running out of cost budget, no further validation rules will be run",
    )
}

fn rule_name(r: &Rule) -> &str {
    if r.message.is_empty() {
        &r.src
    } else {
        &r.message
    }
}

/// The CEL part of a custom resource's validation, after the schema's own checks found
/// `prior`: as upstream, rules are not run when the object has the wrong type somewhere or an
/// unsupported value (their `self` would not be what the rule expects); one error says so.
pub fn validate_custom(
    rules: &RuleSet,
    obj: &Json,
    old: Option<&Json>,
    prior: &[SchemaError],
) -> (Vec<SchemaError>, Vec<String>) {
    // Too deep an object is already an error of its own, and converting it would recurse.
    if rules.is_empty() || exceeds_depth(obj, MAX_DEPTH).is_some() {
        return (vec![], vec![]);
    }
    let old = old.filter(|o| exceeds_depth(o, MAX_DEPTH).is_none());
    let blocking = prior
        .iter()
        .any(|e| matches!(e.reason, "FieldValueTypeInvalid" | "FieldValueNotSupported"));
    if blocking {
        let e = SchemaError::invalid(
            "<nil>",
            "\"null\"",
            "some validation rules were not checked because the object was invalid; correct the existing errors to complete validation",
        );
        return (vec![e], vec![]);
    }
    rules.validate(obj, old)
}
