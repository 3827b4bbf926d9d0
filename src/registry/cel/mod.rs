//! CEL (the Common Expression Language) for the `x-kubernetes-validations` rules of
//! CustomResourceDefinitions: a lexer, a parser to a syntax tree, a static checker against the
//! structural schema, a tree-walking evaluator with a cost limit, CEL's standard functions and
//! the Kubernetes libraries (lists, strings, regex, URLs, quantities), and the rule runner that
//! applies a CRD version's rules to custom resources with upstream's error wording.
//!
//! Written here because no maintained Rust crate implements CEL with the Kubernetes libraries
//! and the schema-typed values the apiserver gives `self`. Not supported: the optional syntax
//! (`?.`, `[?`, `optional.of`), `format`, message construction.
//!
//! This module never does I/O, never panics on input (rules and objects are user-supplied), and
//! never runs unbounded: parsing depth, evaluation cost and produced sizes are all limited.

mod ast;
mod check;
mod compile;
mod crd;
mod eval;
mod functions;
mod ip;
mod lexer;
mod library;
mod ops;
mod parser;
mod quantity;
mod rules;
mod schema;
mod url;
mod value;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_rules;

pub use crd::check_crd_rules;
pub use rules::{validate_custom, RuleSet};
pub use value::{EvalError, Value};

use std::collections::HashMap;

/// The cost one expression may spend (upstream's per-call limit).
pub const PER_CALL_LIMIT: u64 = 1_000_000;
/// The cost all rules on one object may spend together (upstream's runtime budget).
pub const RUNTIME_BUDGET: u64 = 10_000_000;

/// A parse or check error, shown as cel-go shows its issues.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileError {
    pub pos: usize,
    pub message: String,
}

impl CompileError {
    pub fn syntax(pos: usize, msg: &str) -> CompileError {
        CompileError {
            pos,
            message: format!("Syntax error: {msg}"),
        }
    }
    pub fn check(pos: usize, msg: String) -> CompileError {
        CompileError { pos, message: msg }
    }

    /// `ERROR: <input>:1:6: message` followed by the source line and a caret.
    pub fn render(&self, src: &str) -> String {
        let pos = self.pos.min(src.len());
        let before = &src[..pos];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let col = src[line_start..pos].chars().count();
        let text = src[line_start..].lines().next().unwrap_or("");
        format!(
            "ERROR: <input>:{line}:{}: {}\n | {text}\n | {}^",
            col + 1,
            self.message,
            ".".repeat(col)
        )
    }
}

/// A parsed and checked expression, ready to evaluate any number of times.
#[derive(Debug)]
pub struct Program {
    root: ast::Node,
    /// Regular expressions given as literals, compiled once.
    regexes: HashMap<String, regex::Regex>,
    pub uses_old_self: bool,
}

impl Program {
    /// Parses `src` without checking it against a schema (every variable is dynamic).
    pub fn parse(src: &str) -> Result<Program, CompileError> {
        let root = parser::parse(src)?;
        let mut regexes = HashMap::new();
        check::literal_regexes(&root, &mut regexes)?;
        Ok(Program {
            uses_old_self: root.references("oldSelf"),
            root,
            regexes,
        })
    }

    /// Evaluates with the given variables; `cost` is increased by what was spent.
    pub fn eval(
        &self,
        vars: Vec<(&str, Value)>,
        limit: u64,
        cost: &mut u64,
    ) -> Result<Value, EvalError> {
        let mut ev = eval::Eval::new(vars, limit).with_regexes(&self.regexes);
        let r = ev.eval(&self.root);
        *cost += ev.cost;
        r
    }
}
