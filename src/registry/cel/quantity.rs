//! The Kubernetes quantity library: `quantity()`, `isQuantity()`, and on a quantity `sign`,
//! `isGreaterThan`, `isLessThan`, `compareTo`, `add`, `sub`, `asInteger`, `isInteger` and
//! `asApproximateFloat`. Parsing (and upstream's syntax error) is the registry's quantity parser;
//! arithmetic here is exact on `mantissa * 10^exp`.

use super::value::{EvalError, Value};
use crate::registry::rules::quantity::Quantity;
use std::cmp::Ordering;
use std::rc::Rc;

#[derive(Clone, Debug)]
pub struct Qty {
    pub text: String,
    q: Quantity,
}

impl Qty {
    pub fn parse(s: &str) -> Result<Qty, String> {
        Ok(Qty {
            text: s.to_string(),
            q: Quantity::parse(s)?,
        })
    }

    pub fn cmp(&self, other: &Qty) -> Ordering {
        self.q.cmp(&other.q)
    }

    fn from_parts(m: i128, e: i32) -> Result<Qty, EvalError> {
        let text = render(m, e);
        let q = Quantity::parse(&text).map_err(EvalError::new)?;
        Ok(Qty { text, q })
    }

    /// The value as an exact integer, when it is one and fits.
    fn integer(&self) -> Option<i64> {
        let (m, e) = self.q.parts();
        let mut v = m;
        if e < 0 {
            let d = 10i128.checked_pow(e.unsigned_abs())?;
            if v % d != 0 {
                return None;
            }
            v /= d;
        } else {
            v = v.checked_mul(10i128.checked_pow(e as u32)?)?;
        }
        i64::try_from(v).ok()
    }
}

/// A decimal text for `m * 10^e` that the quantity parser reads back exactly.
fn render(m: i128, e: i32) -> String {
    if e >= 0 {
        format!("{m}e{e}").replace("e0", "")
    } else {
        let neg = m < 0;
        let digits = m.unsigned_abs().to_string();
        let k = e.unsigned_abs() as usize;
        let padded = if digits.len() <= k {
            format!("{}{}", "0".repeat(k + 1 - digits.len()), digits)
        } else {
            digits
        };
        let (a, b) = padded.split_at(padded.len() - k);
        format!("{}{a}.{b}", if neg { "-" } else { "" })
    }
}

/// Whether `name` is a quantity function.
pub fn owns(name: &str) -> bool {
    matches!(
        name,
        "quantity"
            | "isQuantity"
            | "sign"
            | "isGreaterThan"
            | "isLessThan"
            | "compareTo"
            | "add"
            | "sub"
            | "asInteger"
            | "isInteger"
            | "asApproximateFloat"
    )
}

fn arith(a: &Qty, b: &Qty, negate: bool) -> Result<Qty, EvalError> {
    let over = || EvalError::new("quantity overflow");
    let (am, ae) = a.q.parts();
    let (bm, be) = b.q.parts();
    let bm = if negate { -bm } else { bm };
    let e = ae.min(be);
    let scale = |m: i128, from: i32| -> Result<i128, EvalError> {
        let p = u32::try_from(from - e).map_err(|_| over())?;
        m.checked_mul(10i128.checked_pow(p).ok_or_else(over)?)
            .ok_or_else(over)
    };
    let sum = scale(am, ae)?
        .checked_add(scale(bm, be)?)
        .ok_or_else(over)?;
    Qty::from_parts(sum, e)
}

fn int_qty(i: i64) -> Result<Qty, EvalError> {
    Qty::from_parts(i128::from(i), 0)
}

pub fn call(target: Option<Value>, name: &str, args: &[Value]) -> Result<Value, EvalError> {
    use Value::*;
    let q = |x: Qty| Quantity(Rc::new(x));
    Ok(match (target, name, args) {
        (None, "quantity", [String(s)]) => q(Qty::parse(s).map_err(EvalError::new)?),
        (None, "isQuantity", [String(s)]) => Bool(Qty::parse(s).is_ok()),
        (Some(Quantity(a)), "sign", []) => Int(match a.q.parts().0.signum() {
            1 => 1,
            -1 => -1,
            _ => 0,
        }),
        (Some(Quantity(a)), "isGreaterThan", [Quantity(b)]) => Bool(a.cmp(b) == Ordering::Greater),
        (Some(Quantity(a)), "isLessThan", [Quantity(b)]) => Bool(a.cmp(b) == Ordering::Less),
        (Some(Quantity(a)), "compareTo", [Quantity(b)]) => Int(match a.cmp(b) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        }),
        (Some(Quantity(a)), "add", [Quantity(b)]) => q(arith(&a, b, false)?),
        (Some(Quantity(a)), "add", [Int(i)]) => q(arith(&a, &int_qty(*i)?, false)?),
        (Some(Quantity(a)), "sub", [Quantity(b)]) => q(arith(&a, b, true)?),
        (Some(Quantity(a)), "sub", [Int(i)]) => q(arith(&a, &int_qty(*i)?, true)?),
        (Some(Quantity(a)), "asInteger", []) => Int(a
            .integer()
            .ok_or_else(|| EvalError::new("cannot convert value to integer"))?),
        (Some(Quantity(a)), "isInteger", []) => Bool(a.integer().is_some()),
        (Some(Quantity(a)), "asApproximateFloat", []) => Double(a.q.to_f64()),
        _ => return Err(EvalError::no_overload()),
    })
}
