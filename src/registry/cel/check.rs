//! The static checks cel-go's checker makes that matter for CRD rules: variables are declared,
//! functions exist, fields selected on schema objects are declared, operator argument types have
//! an overload where both are known, and the result type of a rule (bool) or a
//! messageExpression (string). Types are followed as far as the schema states them; anything
//! else is dynamic and checked at run time. Literal regular expressions are compiled here.

use super::ast::{BinOp, Kind, Lit, MacroKind, Node};
use super::functions::{GLOBALS, MEMBERS};
use super::schema::Ty;
use super::CompileError;
use std::collections::HashMap;

pub struct Checker<'s> {
    scope: Vec<(String, Ty<'s>)>,
}

fn undeclared(pos: usize, name: &str) -> CompileError {
    CompileError::check(
        pos,
        format!("undeclared reference to '{name}' (in container '')"),
    )
}

impl<'s> Checker<'s> {
    pub fn new(vars: Vec<(String, Ty<'s>)>) -> Checker<'s> {
        Checker { scope: vars }
    }

    pub fn check(&mut self, n: &Node) -> Result<Ty<'s>, CompileError> {
        Ok(match &n.kind {
            Kind::Lit(l) => match l {
                Lit::Null => Ty::Null,
                Lit::Bool(_) => Ty::Bool,
                Lit::Int(_) => Ty::Int,
                Lit::Uint(_) => Ty::Uint,
                Lit::Double(_) => Ty::Double,
                Lit::Str(_) => Ty::String,
                Lit::Bytes(_) => Ty::Bytes,
            },
            Kind::Ident(name) => self
                .scope
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, t)| t.clone())
                .or_else(|| super::eval::is_type_name(name).then_some(Ty::Type))
                .ok_or_else(|| undeclared(n.pos, name))?,
            Kind::Select(o, f) | Kind::Has(o, f) => {
                let t = self.check(o)?;
                let ft = t
                    .field(f)
                    .ok_or_else(|| CompileError::check(n.pos, format!("undefined field '{f}'")))?;
                if matches!(n.kind, Kind::Has(..)) {
                    Ty::Bool
                } else {
                    ft
                }
            }
            Kind::Index(a, i) => {
                let t = self.check(a)?;
                self.check(i)?;
                match t {
                    Ty::List(e) | Ty::Map(e) => *e,
                    _ => Ty::Dyn,
                }
            }
            Kind::Call(target, name, args) => {
                let known = if target.is_some() {
                    MEMBERS.contains(&name.as_str())
                } else {
                    GLOBALS.contains(&name.as_str())
                };
                if !known {
                    return Err(undeclared(n.pos, name));
                }
                let tt = match target {
                    Some(t) => Some(self.check(t)?),
                    None => None,
                };
                let mut arg_types = Vec::with_capacity(args.len());
                for a in args {
                    arg_types.push(self.check(a)?);
                }
                if let Some(t) = &tt {
                    if !receiver_ok(name, t) {
                        let args: Vec<&str> = arg_types.iter().map(Ty::name).collect();
                        return Err(CompileError::check(
                            n.pos,
                            format!(
                                "found no matching overload for '{name}' applied to '{}.({})'",
                                t.name(),
                                args.join(", ")
                            ),
                        ));
                    }
                }
                result_type(name, tt.as_ref())
            }
            Kind::List(items) => {
                for i in items {
                    self.check(i)?;
                }
                Ty::List(Box::new(Ty::Dyn))
            }
            Kind::Map(entries) => {
                for (k, v) in entries {
                    self.check(k)?;
                    self.check(v)?;
                }
                Ty::Map(Box::new(Ty::Dyn))
            }
            Kind::Not(e) => {
                self.expect(e, "!_", &["bool"])?;
                Ty::Bool
            }
            Kind::Neg(e) => {
                let t = self.check(e)?;
                match t {
                    Ty::Int | Ty::Double | Ty::Dyn => t,
                    other => return Err(no_overload(n.pos, "-_", &[other.name()])),
                }
            }
            Kind::And(a, b) | Kind::Or(a, b) => {
                let op = if matches!(n.kind, Kind::And(..)) {
                    "_&&_"
                } else {
                    "_||_"
                };
                self.expect(a, op, &["bool"])?;
                self.expect(b, op, &["bool"])?;
                Ty::Bool
            }
            Kind::Cond(c, a, b) => {
                self.expect(c, "_?_:_", &["bool"])?;
                let ta = self.check(a)?;
                let tb = self.check(b)?;
                if ta.name() == tb.name() {
                    ta
                } else {
                    Ty::Dyn
                }
            }
            Kind::Bin(op, a, b) => {
                let ta = self.check(a)?;
                let tb = self.check(b)?;
                binary_type(n.pos, *op, ta, tb)?
            }
            Kind::Macro(m) => {
                let rt = self.check(&m.range)?;
                let elem = match rt {
                    Ty::List(e) => *e,
                    Ty::Map(_) | Ty::Object(..) | Ty::Meta => Ty::String,
                    _ => Ty::Dyn,
                };
                self.scope.push((m.var.clone(), elem));
                let r = (|| {
                    if let Some(f) = &m.filter {
                        self.check(f)?;
                    }
                    self.check(&m.body)
                })();
                self.scope.pop();
                let body = r?;
                match m.kind {
                    MacroKind::Map => Ty::List(Box::new(body)),
                    MacroKind::Filter => match self.check(&m.range)? {
                        l @ Ty::List(_) => l,
                        _ => Ty::List(Box::new(Ty::Dyn)),
                    },
                    _ => Ty::Bool,
                }
            }
        })
    }

    fn expect(&mut self, e: &Node, op: &str, want: &[&str]) -> Result<(), CompileError> {
        let t = self.check(e)?;
        if matches!(t, Ty::Dyn) || want.contains(&t.name()) {
            return Ok(());
        }
        Err(no_overload(e.pos, op, &[t.name()]))
    }
}

fn no_overload(pos: usize, op: &str, args: &[&str]) -> CompileError {
    CompileError::check(
        pos,
        format!(
            "found no matching overload for '{op}' applied to '({})'",
            args.join(", ")
        ),
    )
}

fn binary_type<'s>(pos: usize, op: BinOp, a: Ty<'s>, b: Ty<'s>) -> Result<Ty<'s>, CompileError> {
    if matches!(a, Ty::Dyn) || matches!(b, Ty::Dyn) {
        return Ok(match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => Ty::Dyn,
            _ => Ty::Bool,
        });
    }
    let (x, y) = (a.name(), b.name());
    let numeric = |t: &str| matches!(t, "int" | "uint" | "double");
    let ok = match op {
        BinOp::Eq | BinOp::Ne => true,
        BinOp::In => matches!(b, Ty::List(_) | Ty::Map(_) | Ty::Object(..) | Ty::Meta),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            (numeric(x) && numeric(y))
                || (x == y
                    && matches!(
                        x,
                        "string"
                            | "bytes"
                            | "bool"
                            | "google.protobuf.Timestamp"
                            | "google.protobuf.Duration"
                    ))
        }
        BinOp::Add => {
            (x == y
                && matches!(
                    x,
                    "int"
                        | "uint"
                        | "double"
                        | "string"
                        | "bytes"
                        | "list"
                        | "google.protobuf.Duration"
                ))
                || matches!(
                    (x, y),
                    ("google.protobuf.Timestamp", "google.protobuf.Duration")
                        | ("google.protobuf.Duration", "google.protobuf.Timestamp")
                )
        }
        BinOp::Sub => {
            (x == y
                && matches!(
                    x,
                    "int"
                        | "uint"
                        | "double"
                        | "google.protobuf.Duration"
                        | "google.protobuf.Timestamp"
                ))
                || (x, y) == ("google.protobuf.Timestamp", "google.protobuf.Duration")
        }
        BinOp::Mul | BinOp::Div => x == y && numeric(x),
        BinOp::Rem => x == y && matches!(x, "int" | "uint"),
    };
    if !ok {
        return Err(no_overload(pos, op.name(), &[x, y]));
    }
    Ok(match op {
        BinOp::Add | BinOp::Mul | BinOp::Div | BinOp::Rem => a,
        BinOp::Sub if x == "google.protobuf.Timestamp" && y == x => Ty::Duration,
        BinOp::Sub => a,
        _ => Ty::Bool,
    })
}

/// Whether a member function has an overload for a receiver of type `t` (dynamic receivers
/// are checked at run time).
fn receiver_ok(name: &str, t: &Ty<'_>) -> bool {
    if matches!(t, Ty::Dyn) {
        return true;
    }
    let ty = t.name();
    let allowed: &[&str] = match name {
        "contains" | "startsWith" | "endsWith" | "matches" | "charAt" | "lowerAscii"
        | "upperAscii" | "replace" | "split" | "substring" | "trim" | "find" | "findAll" => {
            &["string"]
        }
        "indexOf" | "lastIndexOf" => &["string", "list"],
        "isSorted" | "sum" | "min" | "max" | "join" => &["list"],
        "size" => &["string", "bytes", "list", "map"],
        "getFullYear" | "getMonth" | "getDayOfMonth" | "getDate" | "getDayOfWeek"
        | "getDayOfYear" => &["google.protobuf.Timestamp"],
        "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds" => {
            &["google.protobuf.Timestamp", "google.protobuf.Duration"]
        }
        "getScheme" | "getHost" | "getHostname" | "getPort" | "getEscapedPath" | "getQuery" => {
            &["kubernetes.URL"]
        }
        "sign" | "isGreaterThan" | "isLessThan" | "compareTo" | "add" | "sub" | "asInteger"
        | "isInteger" | "asApproximateFloat" => &["kubernetes.Quantity"],
        _ => return true,
    };
    allowed.contains(&ty)
}

/// What a call returns, where it is fixed by the function (or by its target's type).
fn result_type<'s>(name: &str, target: Option<&Ty<'s>>) -> Ty<'s> {
    match name {
        "size" | "getFullYear" | "getMonth" | "getDayOfMonth" | "getDate" | "getDayOfWeek"
        | "getDayOfYear" | "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds" | "int"
        | "sign" | "compareTo" | "asInteger" => Ty::Int,
        "indexOf" | "lastIndexOf" | "family" | "prefixLength" => Ty::Int,
        "contains"
        | "startsWith"
        | "endsWith"
        | "matches"
        | "isURL"
        | "isQuantity"
        | "isSorted"
        | "isGreaterThan"
        | "isLessThan"
        | "isInteger"
        | "bool"
        | "hasValue"
        | "isIP"
        | "isCIDR"
        | "ip.isCanonical"
        | "isUnspecified"
        | "isLoopback"
        | "isLinkLocalMulticast"
        | "isLinkLocalUnicast"
        | "isGlobalUnicast"
        | "containsIP"
        | "containsCIDR" => Ty::Bool,
        "string" | "charAt" | "lowerAscii" | "upperAscii" | "replace" | "substring" | "trim"
        | "join" | "find" | "getScheme" | "getHost" | "getHostname" | "getPort"
        | "getEscapedPath" => Ty::String,
        "split" | "findAll" => Ty::List(Box::new(Ty::String)),
        "uint" => Ty::Uint,
        "double" | "asApproximateFloat" => Ty::Double,
        "bytes" => Ty::Bytes,
        "duration" => Ty::Duration,
        "timestamp" => Ty::Timestamp,
        "type" => Ty::Type,
        "url" => Ty::Url,
        "quantity" | "add" | "sub" if !matches!(target, Some(Ty::Dyn)) => match target {
            None | Some(Ty::Quantity) => Ty::Quantity,
            _ => Ty::Dyn,
        },
        "min" | "max" => match target {
            Some(Ty::List(e)) => (**e).clone(),
            _ => Ty::Dyn,
        },
        _ => Ty::Dyn,
    }
}

/// Compiles every string literal used as a pattern (`matches`, `find`, `findAll`), reporting an
/// invalid one as cel-go's checker does.
pub fn literal_regexes(
    n: &Node,
    out: &mut HashMap<String, regex::Regex>,
) -> Result<(), CompileError> {
    let mut stack = vec![n];
    while let Some(n) = stack.pop() {
        match &n.kind {
            Kind::Call(target, name, args) => {
                let pat = match (name.as_str(), target.is_some(), args.as_slice()) {
                    ("matches" | "find" | "findAll", true, [p, ..]) => Some(p),
                    ("matches", false, [_, p]) => Some(p),
                    _ => None,
                };
                if let Some(Node {
                    kind: Kind::Lit(Lit::Str(p)),
                    pos,
                    ..
                }) = pat
                {
                    let re = regex::RegexBuilder::new(p)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| {
                            CompileError::check(*pos, format!("invalid matches argument: {e}"))
                        })?;
                    out.insert(p.clone(), re);
                }
                stack.extend(target.iter().map(|b| &**b));
                stack.extend(args.iter());
            }
            Kind::Select(o, _) | Kind::Has(o, _) | Kind::Not(o) | Kind::Neg(o) => stack.push(o),
            Kind::Index(a, b) | Kind::Bin(_, a, b) | Kind::And(a, b) | Kind::Or(a, b) => {
                stack.push(a);
                stack.push(b);
            }
            Kind::Cond(a, b, c) => stack.extend([&**a, &**b, &**c]),
            Kind::List(items) => stack.extend(items.iter()),
            Kind::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
            Kind::Macro(m) => {
                stack.push(&m.range);
                stack.push(&m.body);
                stack.extend(m.filter.iter());
            }
            Kind::Lit(_) | Kind::Ident(_) => {}
        }
    }
    Ok(())
}
