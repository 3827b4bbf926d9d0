//! The tree-walking evaluator: variables, field selection, indexing, the logical operators with
//! CEL's commutative error absorption (`false && error` is false, `true || error` is true, in
//! either order), the conditional, literals and the comprehension macros.
//!
//! Every node evaluated, every element visited and every byte produced is charged against a cost
//! limit, so no expression can run without bound or build unbounded values: past the limit the
//! evaluation stops with cel-go's "actual cost limit exceeded" error.

use super::ast::{Kind, Lit, Macro, MacroKind, Node};
use super::value::{lookup, EvalError, Key, MapVal, Value};
use super::{functions, ops};
use std::collections::HashMap;
use std::rc::Rc;

pub struct Eval<'a> {
    vars: Vec<(&'a str, Value)>,
    pub cost: u64,
    limit: u64,
    regexes: Option<&'a HashMap<String, regex::Regex>>,
}

impl<'a> Eval<'a> {
    pub fn new(vars: Vec<(&'a str, Value)>, limit: u64) -> Eval<'a> {
        Eval {
            vars,
            cost: 0,
            limit,
            regexes: None,
        }
    }

    pub fn with_regexes(mut self, r: &'a HashMap<String, regex::Regex>) -> Eval<'a> {
        self.regexes = Some(r);
        self
    }

    /// A compiled regular expression: the rule's literal ones were compiled with the rule;
    /// others (built at run time) are compiled here, charged by their length.
    pub fn regex(&mut self, re: &str) -> Result<std::borrow::Cow<'a, regex::Regex>, EvalError> {
        if let Some(r) = self.regexes.and_then(|m| m.get(re)) {
            return Ok(std::borrow::Cow::Borrowed(r));
        }
        self.charge(re.len() as u64 + 100)?;
        regex::RegexBuilder::new(re)
            .size_limit(1 << 20)
            .build()
            .map(std::borrow::Cow::Owned)
            .map_err(|e| EvalError::new(format!("invalid regex: {e}")))
    }

    /// Charges `n` units of cost; fails once the limit is passed.
    pub fn charge(&mut self, n: u64) -> Result<(), EvalError> {
        self.cost = self.cost.saturating_add(n);
        if self.cost > self.limit {
            return Err(EvalError::cost());
        }
        Ok(())
    }

    pub fn eval(&mut self, n: &'a Node) -> Result<Value, EvalError> {
        self.charge(1)?;
        match &n.kind {
            Kind::Lit(l) => Ok(literal(l)),
            Kind::Ident(name) => self
                .vars
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| is_type_name(name).then(|| Value::Type(Rc::from(name.as_str()))))
                .ok_or_else(|| EvalError::new(format!("no such attribute: {name}"))),
            Kind::Select(o, f) => {
                let v = self.eval(o)?;
                select(&v, f)
            }
            Kind::Has(o, f) => match self.eval(o)? {
                Value::Map(m) => Ok(Value::Bool(m.contains_key(&Key::Str(Rc::from(f.as_str()))))),
                _ => Err(EvalError::no_overload()),
            },
            Kind::Index(a, i) => {
                let a = self.eval(a)?;
                let i = self.eval(i)?;
                index(&a, &i)
            }
            Kind::Call(target, name, args) => {
                let target = match target {
                    Some(t) => Some(self.eval(t)?),
                    None => None,
                };
                let mut vals = Vec::with_capacity(args.len());
                for a in args {
                    vals.push(self.eval(a)?);
                }
                functions::call(self, target, name, vals)
            }
            Kind::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    out.push(self.eval(i)?);
                }
                Ok(Value::List(Rc::new(out)))
            }
            Kind::Map(entries) => {
                let mut m = MapVal::new();
                for (k, v) in entries {
                    let k = Key::from_value(&self.eval(k)?)?;
                    let v = self.eval(v)?;
                    if m.insert(k.clone(), v).is_some() {
                        return Err(EvalError::new(format!("Failed with repeated key: {k}")));
                    }
                }
                Ok(Value::Map(Rc::new(m)))
            }
            Kind::Not(e) => match self.eval(e)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                _ => Err(EvalError::no_overload()),
            },
            Kind::Neg(e) => ops::negate(self.eval(e)?),
            Kind::Bin(op, a, b) => {
                let a = self.eval(a)?;
                let b = self.eval(b)?;
                ops::binary(self, *op, a, b)
            }
            Kind::And(a, b) => self.logic(a, b, false),
            Kind::Or(a, b) => self.logic(a, b, true),
            Kind::Cond(c, a, b) => match self.eval(c)? {
                Value::Bool(true) => self.eval(a),
                Value::Bool(false) => self.eval(b),
                _ => Err(EvalError::no_overload()),
            },
            Kind::Macro(m) => self.comprehension(m),
        }
    }

    /// `&&` (short = false) and `||` (short = true): the short-circuiting value wins over an
    /// error on either side; otherwise the first error is the result. Cost-limit errors are
    /// never absorbed.
    fn logic(&mut self, a: &'a Node, b: &'a Node, short: bool) -> Result<Value, EvalError> {
        let left = self.eval(a).and_then(as_bool);
        match left {
            Ok(v) if v == short => return Ok(Value::Bool(short)),
            Err(e) if e.kind == super::value::ErrKind::Cost => return Err(e),
            _ => {}
        }
        let right = self.eval(b).and_then(as_bool);
        match (left, right) {
            (_, Ok(v)) if v == short => Ok(Value::Bool(short)),
            (_, Err(e)) if e.kind == super::value::ErrKind::Cost => Err(e),
            (Err(e), _) | (_, Err(e)) => Err(e),
            _ => Ok(Value::Bool(!short)),
        }
    }

    fn comprehension(&mut self, m: &'a Macro) -> Result<Value, EvalError> {
        let range = self.eval(&m.range)?;
        let items: Vec<Value> = match &range {
            Value::List(l) => l.as_ref().clone(),
            Value::Map(mv) => mv.keys().map(Key::to_value).collect(),
            _ => return Err(EvalError::no_overload()),
        };
        self.charge(items.len() as u64)?;
        let mut out = Vec::new();
        let mut count = 0usize;
        let mut found_err: Option<EvalError> = None;
        for it in items {
            self.vars.push((m.var.as_str(), it));
            let r = self.step(m, &mut out);
            self.vars.pop();
            match m.kind {
                MacroKind::All | MacroKind::Exists => {
                    let want = m.kind == MacroKind::Exists;
                    match r.and_then(as_bool) {
                        Ok(b) if b == want => return Ok(Value::Bool(want)),
                        Ok(_) => {}
                        Err(e) if e.kind == super::value::ErrKind::Cost => return Err(e),
                        Err(e) => {
                            found_err.get_or_insert(e);
                        }
                    }
                }
                MacroKind::ExistsOne => {
                    if as_bool(r?)? {
                        count += 1;
                    }
                }
                MacroKind::Map | MacroKind::Filter => {
                    r?;
                }
            }
        }
        match m.kind {
            MacroKind::All | MacroKind::Exists => match found_err {
                Some(e) => Err(e),
                None => Ok(Value::Bool(m.kind == MacroKind::All)),
            },
            MacroKind::ExistsOne => Ok(Value::Bool(count == 1)),
            MacroKind::Map | MacroKind::Filter => Ok(Value::List(Rc::new(out))),
        }
    }

    /// One iteration: the predicate's value for quantifiers, or the output pushed for map and
    /// filter (whose returned value is then unused).
    fn step(&mut self, m: &'a Macro, out: &mut Vec<Value>) -> Result<Value, EvalError> {
        match m.kind {
            MacroKind::Map => {
                if let Some(f) = &m.filter {
                    if !as_bool(self.eval(f)?)? {
                        return Ok(Value::Null);
                    }
                }
                let v = self.eval(&m.body)?;
                self.charge(v.weight())?;
                out.push(v);
                Ok(Value::Null)
            }
            MacroKind::Filter => {
                if as_bool(self.eval(&m.body)?)? {
                    let v = self.vars.last().expect("bound").1.clone();
                    out.push(v);
                }
                Ok(Value::Null)
            }
            _ => self.eval(&m.body),
        }
    }
}

/// The type names an expression may use as values (`type(x) == int`).
pub fn is_type_name(name: &str) -> bool {
    matches!(
        name,
        "int"
            | "uint"
            | "double"
            | "bool"
            | "string"
            | "bytes"
            | "list"
            | "map"
            | "null_type"
            | "type"
    )
}

pub fn as_bool(v: Value) -> Result<bool, EvalError> {
    match v {
        Value::Bool(b) => Ok(b),
        _ => Err(EvalError::no_overload()),
    }
}

fn literal(l: &Lit) -> Value {
    match l {
        Lit::Null => Value::Null,
        Lit::Bool(b) => Value::Bool(*b),
        Lit::Int(i) => Value::Int(*i),
        Lit::Uint(u) => Value::Uint(*u),
        Lit::Double(d) => Value::Double(*d),
        Lit::Str(s) => Value::str(s),
        Lit::Bytes(b) => Value::Bytes(Rc::from(b.as_slice())),
    }
}

pub fn select(v: &Value, f: &str) -> Result<Value, EvalError> {
    match v {
        Value::Map(m) => m
            .get(&Key::Str(Rc::from(f)))
            .cloned()
            .ok_or_else(|| EvalError::no_such_key(&f)),
        _ => Err(EvalError::no_overload()),
    }
}

pub fn index(a: &Value, i: &Value) -> Result<Value, EvalError> {
    match a {
        Value::List(l) => {
            let idx = match i {
                Value::Int(x) => *x,
                Value::Uint(x) => i64::try_from(*x).unwrap_or(i64::MAX),
                Value::Double(d) if d.fract() == 0.0 => *d as i64,
                Value::Double(d) => {
                    return Err(EvalError::new(format!("unsupported index value {d}")))
                }
                _ => return Err(EvalError::no_overload()),
            };
            usize::try_from(idx)
                .ok()
                .and_then(|x| l.get(x))
                .cloned()
                .ok_or_else(|| EvalError::new(format!("index out of bounds: {idx}")))
        }
        Value::Map(m) => {
            if !matches!(
                i,
                Value::String(_)
                    | Value::Int(_)
                    | Value::Uint(_)
                    | Value::Bool(_)
                    | Value::Double(_)
            ) {
                return Err(EvalError::no_overload());
            }
            lookup(m, i).cloned().ok_or_else(|| match i {
                Value::String(s) => EvalError::no_such_key(s),
                Value::Int(x) => EvalError::no_such_key(x),
                Value::Uint(x) => EvalError::no_such_key(x),
                Value::Bool(x) => EvalError::no_such_key(x),
                Value::Double(x) => EvalError::no_such_key(x),
                _ => EvalError::no_overload(),
            })
        }
        _ => Err(EvalError::no_overload()),
    }
}
