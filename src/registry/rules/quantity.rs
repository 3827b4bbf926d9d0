//! A small exact parser for Kubernetes resource quantities ("100m", "1Gi",
//! "1e3", "0.5"), enough to validate syntax and compare values.

use std::cmp::Ordering;

/// Upstream's message for a quantity that does not parse.
pub const FORMAT_ERROR: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A quantity as `mantissa * 10^exp10`, exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quantity {
    mantissa: i128,
    exp10: i32,
}

const MAX_DIGITS: usize = 36;

impl Quantity {
    /// Parse a quantity string; the error is upstream's message.
    pub fn parse(input: &str) -> Result<Quantity, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err(FORMAT_ERROR.to_string());
        }
        let (neg, rest) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, suffix) = rest.split_at(num_end);
        if num.is_empty() || num.matches('.').count() > 1 || num == "." {
            return Err(FORMAT_ERROR.to_string());
        }
        let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
        let mut mantissa: i128 = 0;
        let mut exp10: i32 = 0;
        let mut digits = 0usize;
        for c in int_part.bytes() {
            if digits < MAX_DIGITS {
                mantissa = mantissa * 10 + i128::from(c - b'0');
                if mantissa != 0 {
                    digits += 1;
                }
            } else {
                exp10 += 1;
            }
        }
        for c in frac_part.bytes() {
            if digits < MAX_DIGITS {
                mantissa = mantissa * 10 + i128::from(c - b'0');
                exp10 -= 1;
                if mantissa != 0 {
                    digits += 1;
                }
            }
        }
        let (mul2, e10) = parse_suffix(suffix)?;
        exp10 = exp10.saturating_add(e10);
        for _ in 0..mul2 {
            mantissa = match mantissa.checked_mul(2) {
                Some(m) => m,
                None => {
                    // Keep magnitude, trade precision.
                    exp10 = exp10.saturating_add(1);
                    (mantissa / 10) * 2
                }
            };
        }
        if neg {
            mantissa = -mantissa;
        }
        Ok(Quantity { mantissa, exp10 }.normalized())
    }

    fn normalized(mut self) -> Quantity {
        if self.mantissa == 0 {
            self.exp10 = 0;
            return self;
        }
        while self.mantissa % 10 == 0 {
            self.mantissa /= 10;
            self.exp10 += 1;
        }
        self
    }

    /// The exact value as `(mantissa, exponent)`: `mantissa * 10^exponent`.
    pub fn parts(&self) -> (i128, i32) {
        (self.mantissa, self.exp10)
    }

    pub fn is_negative(&self) -> bool {
        self.mantissa < 0
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }

    pub fn to_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exp10)
    }
}

/// Returns (power of two, power of ten) for a suffix.
fn parse_suffix(s: &str) -> Result<(u32, i32), String> {
    let r = match s {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        _ => {
            let exp = s
                .strip_prefix('e')
                .or_else(|| s.strip_prefix('E'))
                .ok_or_else(|| FORMAT_ERROR.to_string())?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return Err(FORMAT_ERROR.to_string());
            }
            let n: i32 = exp
                .parse()
                .map_err(|_| "unable to parse quantity's suffix".to_string())?;
            (0, n)
        }
    };
    Ok(r)
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        let sign = |q: &Quantity| q.mantissa.signum();
        if sign(self) != sign(other) || self.mantissa == 0 {
            return sign(self).cmp(&sign(other));
        }
        let (hi, lo, flip) = if self.exp10 >= other.exp10 {
            (self, other, false)
        } else {
            (other, self, true)
        };
        let mut scaled = Some(hi.mantissa);
        for _ in 0..(i64::from(hi.exp10) - i64::from(lo.exp10)).min(40) {
            scaled = scaled.and_then(|m| m.checked_mul(10));
        }
        let ord = match scaled {
            Some(m) if i64::from(hi.exp10) - i64::from(lo.exp10) <= 40 => m.cmp(&lo.mantissa),
            _ => {
                // |hi| dwarfs |lo|: the sign decides.
                if hi.mantissa > 0 {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
        };
        if flip {
            ord.reverse()
        } else {
            ord
        }
    }
}
