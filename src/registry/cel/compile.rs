//! Compiling a CRD version's rules: the schema walked once, every rule and messageExpression
//! parsed and checked against its node, `fieldPath` resolved, and the result kept as a tree
//! that mirrors the schema where (and only where) rules are found.

use super::check::Checker;
use super::schema::Ty;
use super::Program;
use crate::registry::schema::{flag, items, node, properties, str_of};
use serde_json::{Map, Value as Json};

#[derive(Debug)]
pub(super) struct Rule {
    pub(super) src: String,
    pub(super) message: String,
    pub(super) message_expr: Option<(String, Program)>,
    pub(super) reason: Option<String>,
    /// `fieldPath` as a field-path suffix ("spec.replicas"), when it is valid.
    pub(super) field_path: Option<String>,
    pub(super) optional_old_self: bool,
    pub(super) program: Program,
}

#[derive(Debug)]
pub(super) struct SNode {
    pub(super) schema: Json,
    pub(super) ty: String,
    pub(super) root: bool,
    pub(super) rules: Vec<Rule>,
    pub(super) props: Vec<(String, SNode)>,
    pub(super) additional: Option<Box<SNode>>,
    pub(super) items: Option<Box<SNode>>,
    /// Whether values under an object correlate with old ones (map-type granular/atomic).
    pub(super) map_correlates: bool,
    /// The keys of an `x-kubernetes-list-type: map` list.
    pub(super) list_keys: Option<Vec<String>>,
}

pub(super) fn build(schema: &Json, root: bool, depth: usize) -> Option<SNode> {
    let s = node(schema)?;
    if depth > crate::registry::schema::MAX_DEPTH {
        return None;
    }
    let root = root || flag(s, "x-kubernetes-embedded-resource");
    let mut rules = vec![];
    for r in s
        .get("x-kubernetes-validations")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(rule) = compile_rule(schema, r, root) {
            rules.push(rule);
        }
    }
    let props: Vec<(String, SNode)> = properties(s)
        .into_iter()
        .flatten()
        .filter_map(|(k, p)| build(p, false, depth + 1).map(|n| (k.clone(), n)))
        .collect();
    let additional = s
        .get("additionalProperties")
        .filter(|a| a.is_object())
        .and_then(|a| build(a, false, depth + 1))
        .map(Box::new);
    let item = items(s)
        .and_then(|i| build(i, false, depth + 1))
        .map(Box::new);
    if rules.is_empty() && props.is_empty() && additional.is_none() && item.is_none() {
        return None;
    }
    let list_keys = (str_of(s, "x-kubernetes-list-type") == Some("map")).then(|| {
        s.get("x-kubernetes-list-map-keys")
            .and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    });
    Some(SNode {
        schema: if rules.is_empty() {
            Json::Null
        } else {
            schema.clone()
        },
        ty: str_of(s, "type").unwrap_or("").to_string(),
        root,
        rules,
        props,
        additional,
        items: item,
        map_correlates: matches!(
            str_of(s, "x-kubernetes-map-type"),
            None | Some("granular") | Some("atomic")
        ),
        list_keys,
    })
}

/// Why a rule did not compile: cel-go's issues, or a result of the wrong type.
pub(super) enum CompileFail {
    Issues(String),
    WrongType,
}

/// Parses and checks one rule (or messageExpression) against its schema node.
pub(super) fn compile(
    schema: &Json,
    src: &str,
    root: bool,
    old_self: bool,
    want: &str,
) -> Result<Program, CompileFail> {
    let prog = Program::parse(src).map_err(|e| CompileFail::Issues(e.render(src)))?;
    let ty = Ty::of_schema(schema, root);
    let mut vars = vec![("self".to_string(), ty.clone())];
    if old_self {
        vars.push(("oldSelf".to_string(), ty));
    }
    let t = Checker::new(vars)
        .check(&prog.root)
        .map_err(|e| CompileFail::Issues(e.render(src)))?;
    if !matches!(t, Ty::Dyn) && t.name() != want {
        return Err(CompileFail::WrongType);
    }
    Ok(prog)
}

fn compile_rule(schema: &Json, r: &Json, root: bool) -> Option<Rule> {
    let src = r.get("rule")?.as_str()?.trim().to_string();
    if src.is_empty() {
        return None;
    }
    let optional_old_self = r.get("optionalOldSelf").and_then(Json::as_bool) == Some(true);
    let program = compile(schema, &src, root, true, "bool").ok()?;
    let message_expr = r
        .get("messageExpression")
        .and_then(Json::as_str)
        .filter(|m| !m.trim().is_empty())
        .and_then(|m| {
            compile(schema, m, root, true, "string")
                .ok()
                .map(|p| (m.to_string(), p))
        });
    let field_path = r
        .get("fieldPath")
        .and_then(Json::as_str)
        .and_then(|p| valid_field_path(p, schema).ok());
    Some(Rule {
        message: r
            .get("message")
            .and_then(Json::as_str)
            .unwrap_or("")
            .trim()
            .to_string(),
        reason: r.get("reason").and_then(Json::as_str).map(String::from),
        src,
        message_expr,
        field_path,
        optional_old_self,
        program,
    })
}

/// Upstream's `ValidFieldPath`: `.a.b`, `['key']` forms, resolved against the schema; the
/// result is the field path without its leading dot.
pub fn valid_field_path(p: &str, schema: &Json) -> Result<String, String> {
    let bad = || "does not refer to a valid field".to_string();
    let mut out = String::new();
    let mut s: &Map<String, Json> = node(schema).ok_or_else(bad)?;
    let mut rest = p;
    while !rest.is_empty() {
        let (name, next, quoted) = if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            (r[..end].to_string(), &r[end..], false)
        } else if let Some(r) = rest.strip_prefix("['") {
            let end = r.find("']").ok_or_else(bad)?;
            (
                r[..end].replace("\\'", "'").replace("\\\\", "\\"),
                &r[end + 2..],
                true,
            )
        } else {
            return Err(format!("expected [ or . but got: {rest}"));
        };
        if name.is_empty() {
            return Err("unexpected end of JSON path".into());
        }
        let next_schema = if let Some(p) = properties(s) {
            let sub = p.get(&name).ok_or_else(bad)?;
            out = if out.is_empty() {
                name.clone()
            } else {
                format!("{out}.{name}")
            };
            sub
        } else if let Some(a) = s.get("additionalProperties").filter(|a| a.is_object()) {
            out = format!("{out}[{name}]");
            a
        } else {
            return Err(bad());
        };
        let _ = quoted;
        s = node(next_schema).ok_or_else(bad)?;
        rest = next;
    }
    Ok(out)
}
