//! The Kubernetes CEL libraries over strings and lists (upstream's `library/` package and
//! cel-go's strings extension): `charAt`, `indexOf`, `lastIndexOf`, `lowerAscii`, `upperAscii`,
//! `replace`, `split`, `substring`, `trim`, `join`; `isSorted`, `sum`, `min`, `max`, list
//! `indexOf`/`lastIndexOf`; regex `find`/`findAll`. URL, IP/CIDR and quantity calls go to
//! their own files. String positions count code points, as CEL does.

use super::eval::Eval;
use super::value::{compare, equals, EvalError, Value};
use super::{ip, quantity, url};
use std::cmp::Ordering;
use std::rc::Rc;

pub fn call(
    ev: &mut Eval<'_>,
    target: Option<Value>,
    name: &str,
    args: Vec<Value>,
) -> Result<Value, EvalError> {
    use Value::*;
    match (target, name, args.as_slice()) {
        (Some(String(s)), _, _) if is_string_fn(name) => {
            ev.charge(s.len() as u64 / 8 + 1)?;
            string_fn(ev, &s, name, &args)
        }
        (Some(List(l)), "join", []) => join(ev, &l, ""),
        (Some(List(l)), "join", [String(sep)]) => join(ev, &l, sep),
        (Some(List(l)), _, _) => {
            ev.charge(l.len() as u64)?;
            list_fn(&l, name, &args)
        }
        (target, name, _) => match target {
            Some(Quantity(_)) | None if quantity::owns(name) => quantity::call(target, name, &args),
            Some(Ip(_) | Cidr(..)) | None if ip::owns(name) => ip::call(target, name, &args),
            _ => url::call(target, name, &args),
        },
    }
}

fn is_string_fn(name: &str) -> bool {
    matches!(
        name,
        "charAt"
            | "indexOf"
            | "lastIndexOf"
            | "lowerAscii"
            | "upperAscii"
            | "replace"
            | "split"
            | "substring"
            | "trim"
            | "find"
            | "findAll"
    )
}

fn out_of_range(i: i64) -> EvalError {
    EvalError::new(format!("index out of range: {i}"))
}

/// The byte offset of code point `i` (which may equal the length).
fn byte_at(s: &str, i: i64) -> Result<usize, EvalError> {
    let n = usize::try_from(i).map_err(|_| out_of_range(i))?;
    if n == 0 {
        return Ok(0);
    }
    s.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(s.len()))
        .nth(n)
        .ok_or_else(|| out_of_range(i))
}

fn char_pos(s: &str, byte: usize) -> i64 {
    s[..byte].chars().count() as i64
}

fn string_fn(ev: &mut Eval<'_>, s: &str, name: &str, args: &[Value]) -> Result<Value, EvalError> {
    use Value::*;
    let r = match (name, args) {
        ("charAt", [Int(i)]) => {
            let b = byte_at(s, *i)?;
            Value::str(
                &s[b..]
                    .chars()
                    .next()
                    .map(std::string::String::from)
                    .unwrap_or_default(),
            )
        }
        ("indexOf", [String(t)]) => Int(s.find(&**t).map(|b| char_pos(s, b)).unwrap_or(-1)),
        ("indexOf", [String(t), Int(from)]) => {
            let b = byte_at(s, *from)?;
            Int(s[b..].find(&**t).map(|x| char_pos(s, b + x)).unwrap_or(-1))
        }
        ("lastIndexOf", [String(t)]) => Int(s.rfind(&**t).map(|b| char_pos(s, b)).unwrap_or(-1)),
        ("lastIndexOf", [String(t), Int(from)]) => {
            let b = byte_at(s, *from)?;
            let end = (b + t.len()).min(s.len());
            let end = (0..=end)
                .rev()
                .find(|e| s.is_char_boundary(*e))
                .unwrap_or(0);
            Int(s[..end].rfind(&**t).map(|x| char_pos(s, x)).unwrap_or(-1))
        }
        ("lowerAscii", []) => Value::str(&s.to_ascii_lowercase()),
        ("upperAscii", []) => Value::str(&s.to_ascii_uppercase()),
        ("replace", [String(a), String(b)]) => replace(ev, s, a, b, -1)?,
        ("replace", [String(a), String(b), Int(n)]) => replace(ev, s, a, b, *n)?,
        ("split", [String(sep)]) => split(ev, s, sep, -1)?,
        ("split", [String(sep), Int(n)]) => split(ev, s, sep, *n)?,
        ("substring", [Int(a)]) => Value::str(&s[byte_at(s, *a)?..]),
        ("substring", [Int(a), Int(b)]) => {
            if a > b {
                return Err(EvalError::new(format!(
                    "invalid substring range. start: {a}, end: {b}"
                )));
            }
            Value::str(&s[byte_at(s, *a)?..byte_at(s, *b)?])
        }
        ("trim", []) => Value::str(s.trim()),
        ("find", [String(re)]) => {
            let re = ev.regex(re)?;
            Value::str(re.find(s).map(|m| m.as_str()).unwrap_or(""))
        }
        ("findAll", [String(re)]) => find_all(ev, s, re, -1)?,
        ("findAll", [String(re), Int(n)]) => find_all(ev, s, re, *n)?,
        _ => return Err(EvalError::no_overload()),
    };
    Ok(r)
}

fn replace(ev: &mut Eval<'_>, s: &str, a: &str, b: &str, n: i64) -> Result<Value, EvalError> {
    let count = if a.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(a).count()
    };
    let count = if n < 0 { count } else { count.min(n as usize) };
    // Charge the size of the result before building it.
    ev.charge(((s.len() + count * b.len()) / 8 + 1) as u64)?;
    let out = if n < 0 {
        s.replace(a, b)
    } else {
        s.replacen(a, b, n as usize)
    };
    Ok(Value::str(&out))
}

fn split(ev: &mut Eval<'_>, s: &str, sep: &str, n: i64) -> Result<Value, EvalError> {
    let parts: Vec<&str> = match n {
        0 => vec![],
        n if n < 0 => {
            if sep.is_empty() {
                s.split_terminator("").skip(1).collect()
            } else {
                s.split(sep).collect()
            }
        }
        n => {
            if sep.is_empty() {
                let mut v: Vec<&str> = vec![];
                let mut rest = s;
                while !rest.is_empty() && (v.len() as i64) < n - 1 {
                    let c = rest.chars().next().map(char::len_utf8).unwrap_or(1);
                    v.push(&rest[..c]);
                    rest = &rest[c..];
                }
                if !rest.is_empty() {
                    v.push(rest);
                }
                v
            } else {
                s.splitn(n as usize, sep).collect()
            }
        }
    };
    ev.charge(parts.len() as u64)?;
    Ok(Value::List(Rc::new(
        parts.into_iter().map(Value::str).collect(),
    )))
}

fn find_all(ev: &mut Eval<'_>, s: &str, re: &str, n: i64) -> Result<Value, EvalError> {
    let re = ev.regex(re)?;
    let limit = if n < 0 { usize::MAX } else { n as usize };
    let out: Vec<Value> = re
        .find_iter(s)
        .take(limit)
        .map(|m| Value::str(m.as_str()))
        .collect();
    ev.charge(out.len() as u64)?;
    Ok(Value::List(Rc::new(out)))
}

fn join(ev: &mut Eval<'_>, l: &[Value], sep: &str) -> Result<Value, EvalError> {
    let mut parts = Vec::with_capacity(l.len());
    let mut len = 0usize;
    for v in l {
        match v {
            Value::String(s) => {
                len += s.len() + sep.len();
                parts.push(&**s);
            }
            _ => return Err(EvalError::no_overload()),
        }
    }
    ev.charge((len / 8 + 1) as u64)?;
    Ok(Value::str(&parts.join(sep)))
}

fn list_fn(l: &[Value], name: &str, args: &[Value]) -> Result<Value, EvalError> {
    match (name, args) {
        ("isSorted", []) => {
            for w in l.windows(2) {
                if compare(&w[0], &w[1])? == Some(Ordering::Greater) {
                    return Ok(Value::Bool(false));
                }
            }
            Ok(Value::Bool(true))
        }
        ("sum", []) => {
            let mut acc = match l.first() {
                None => return Ok(Value::Int(0)),
                Some(Value::Double(_)) => Value::Double(0.0),
                Some(Value::Uint(_)) => Value::Uint(0),
                Some(Value::Duration(_)) => Value::Duration(jiff::SignedDuration::ZERO),
                Some(_) => Value::Int(0),
            };
            for v in l {
                acc = super::ops::binary(
                    &mut Eval::new(vec![], u64::MAX),
                    super::ast::BinOp::Add,
                    acc,
                    v.clone(),
                )?;
            }
            Ok(acc)
        }
        ("min", []) | ("max", []) => {
            let want = if name == "min" {
                Ordering::Less
            } else {
                Ordering::Greater
            };
            let mut best = l
                .first()
                .cloned()
                .ok_or_else(|| EvalError::new(format!("{name} called on empty list")))?;
            for v in &l[1..] {
                if compare(v, &best)? == Some(want) {
                    best = v.clone();
                }
            }
            Ok(best)
        }
        ("indexOf", [x]) => Ok(Value::Int(
            l.iter()
                .position(|v| equals(v, x))
                .map(|i| i as i64)
                .unwrap_or(-1),
        )),
        ("lastIndexOf", [x]) => Ok(Value::Int(
            l.iter()
                .rposition(|v| equals(v, x))
                .map(|i| i as i64)
                .unwrap_or(-1),
        )),
        _ => Err(EvalError::no_overload()),
    }
}
