//! CEL's operators on values: arithmetic with int64/uint64 overflow and division-by-zero errors,
//! IEEE doubles, string, bytes and list concatenation (charged by the size produced), timestamp
//! and duration arithmetic within CEL's ranges, equality, ordering and membership.

use super::ast::BinOp;
use super::eval::Eval;
use super::value::{compare, equals, lookup, EvalError, Value};
use std::cmp::Ordering;
use std::rc::Rc;

/// The largest duration CEL represents: 10,000 years of seconds.
pub const MAX_DURATION_SECS: i64 = 315_576_000_000;

fn overflow() -> EvalError {
    EvalError::new("integer overflow")
}
fn uoverflow() -> EvalError {
    EvalError::new("unsigned integer overflow")
}

pub fn negate(v: Value) -> Result<Value, EvalError> {
    match v {
        Value::Int(i) => i.checked_neg().map(Value::Int).ok_or_else(overflow),
        Value::Double(d) => Ok(Value::Double(-d)),
        _ => Err(EvalError::no_overload()),
    }
}

/// A timestamp checked to lie within CEL's range (years 1 to 9999).
pub fn ts(t: jiff::Timestamp) -> Result<Value, EvalError> {
    let s = t.as_second();
    if !(-62_135_596_800..=253_402_300_799).contains(&s) {
        return Err(EvalError::new("timestamp overflow"));
    }
    Ok(Value::Timestamp(t))
}

/// A duration checked to lie within CEL's range.
pub fn dur(d: jiff::SignedDuration) -> Result<Value, EvalError> {
    if d.as_secs().abs() > MAX_DURATION_SECS {
        return Err(EvalError::new("duration overflow"));
    }
    Ok(Value::Duration(d))
}

pub fn binary(ev: &mut Eval<'_>, op: BinOp, a: Value, b: Value) -> Result<Value, EvalError> {
    use Value::*;
    let r = match op {
        BinOp::Eq => Bool(equals(&a, &b)),
        BinOp::Ne => Bool(!equals(&a, &b)),
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            ev.charge(a.weight().min(b.weight()))?;
            let o = compare(&a, &b)?;
            Bool(match (op, o) {
                (_, None) => false,
                (BinOp::Lt, Some(o)) => o == Ordering::Less,
                (BinOp::Le, Some(o)) => o != Ordering::Greater,
                (BinOp::Gt, Some(o)) => o == Ordering::Greater,
                (_, Some(o)) => o != Ordering::Less,
            })
        }
        BinOp::In => match &b {
            List(l) => {
                ev.charge(l.len() as u64)?;
                Bool(l.iter().any(|x| equals(&a, x)))
            }
            Map(m) => Bool(lookup(m, &a).is_some()),
            _ => return Err(EvalError::no_overload()),
        },
        BinOp::Add => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_add(y).ok_or_else(overflow)?),
            (Uint(x), Uint(y)) => Uint(x.checked_add(y).ok_or_else(uoverflow)?),
            (Double(x), Double(y)) => Double(x + y),
            (String(x), String(y)) => {
                ev.charge((x.len() + y.len()) as u64 / 8 + 1)?;
                let mut s = std::string::String::with_capacity(x.len() + y.len());
                s.push_str(&x);
                s.push_str(&y);
                String(Rc::from(s))
            }
            (Bytes(x), Bytes(y)) => {
                ev.charge((x.len() + y.len()) as u64 / 8 + 1)?;
                Bytes(Rc::from([&x[..], &y[..]].concat()))
            }
            (List(x), List(y)) => {
                ev.charge((x.len() + y.len()) as u64)?;
                let mut l = x.as_ref().clone();
                l.extend(y.iter().cloned());
                List(Rc::new(l))
            }
            (Timestamp(t), Duration(d)) | (Duration(d), Timestamp(t)) => ts(t
                .checked_add(d)
                .map_err(|_| EvalError::new("timestamp overflow"))?)?,
            (Duration(x), Duration(y)) => dur(x
                .checked_add(y)
                .ok_or_else(|| EvalError::new("duration overflow"))?)?,
            _ => return Err(EvalError::no_overload()),
        },
        BinOp::Sub => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_sub(y).ok_or_else(overflow)?),
            (Uint(x), Uint(y)) => Uint(x.checked_sub(y).ok_or_else(uoverflow)?),
            (Double(x), Double(y)) => Double(x - y),
            (Timestamp(x), Timestamp(y)) => dur(x.duration_since(y))?,
            (Timestamp(t), Duration(d)) => ts(t
                .checked_sub(d)
                .map_err(|_| EvalError::new("timestamp overflow"))?)?,
            (Duration(x), Duration(y)) => dur(x
                .checked_sub(y)
                .ok_or_else(|| EvalError::new("duration overflow"))?)?,
            _ => return Err(EvalError::no_overload()),
        },
        BinOp::Mul => match (a, b) {
            (Int(x), Int(y)) => Int(x.checked_mul(y).ok_or_else(overflow)?),
            (Uint(x), Uint(y)) => Uint(x.checked_mul(y).ok_or_else(uoverflow)?),
            (Double(x), Double(y)) => Double(x * y),
            _ => return Err(EvalError::no_overload()),
        },
        BinOp::Div => match (a, b) {
            (Int(_), Int(0)) | (Uint(_), Uint(0)) => {
                return Err(EvalError::new("division by zero"))
            }
            (Int(x), Int(y)) => Int(x.checked_div(y).ok_or_else(overflow)?),
            (Uint(x), Uint(y)) => Uint(x / y),
            (Double(x), Double(y)) => Double(x / y),
            _ => return Err(EvalError::no_overload()),
        },
        BinOp::Rem => match (a, b) {
            (Int(_), Int(0)) | (Uint(_), Uint(0)) => return Err(EvalError::new("modulus by zero")),
            (Int(x), Int(y)) => Int(x.checked_rem(y).ok_or_else(overflow)?),
            (Uint(x), Uint(y)) => Uint(x % y),
            _ => return Err(EvalError::no_overload()),
        },
    };
    Ok(r)
}
