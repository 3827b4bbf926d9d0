//! One field of a five-field schedule: values, names, ranges and steps as bit sets, checked
//! against the field's bounds with robfig/cron's errors, and Go's duration syntax for `@every`.
//! Knows nothing of time zones or of finding the next run.

use super::ScheduleError;

pub(super) struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MONTHS: &[(&str, u32)] = &[
    ("jan", 1),
    ("feb", 2),
    ("mar", 3),
    ("apr", 4),
    ("may", 5),
    ("jun", 6),
    ("jul", 7),
    ("aug", 8),
    ("sep", 9),
    ("oct", 10),
    ("nov", 11),
    ("dec", 12),
];
const DAYS: &[(&str, u32)] = &[
    ("sun", 0),
    ("mon", 1),
    ("tue", 2),
    ("wed", 3),
    ("thu", 4),
    ("fri", 5),
    ("sat", 6),
];

/// Minute, hour, day of month, month, day of week.
pub(super) const FIELDS: [Bounds; 5] = [
    Bounds {
        min: 0,
        max: 59,
        names: &[],
    },
    Bounds {
        min: 0,
        max: 23,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 31,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Bounds {
        min: 0,
        max: 6,
        names: DAYS,
    },
];

/// A number as Go's `strconv.Atoi` reads it, which must not be negative.
fn parse_int(expr: &str) -> Result<u32, ScheduleError> {
    let n: i64 = expr
        .parse()
        .map_err(|_| ScheduleError::NotANumber(expr.to_string()))?;
    if n < 0 {
        return Err(ScheduleError::Negative {
            value: n,
            expr: expr.to_string(),
        });
    }
    u32::try_from(n).map_err(|_| ScheduleError::OutOfRange(expr.to_string()))
}

fn parse_int_or_name(expr: &str, b: &Bounds) -> Result<u32, ScheduleError> {
    let lower = expr.to_lowercase();
    if let Some((_, n)) = b.names.iter().find(|(name, _)| *name == lower) {
        return Ok(*n);
    }
    parse_int(expr)
}

/// One comma-separated part of a field: its bits, and whether it is a wildcard.
pub(super) fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), ScheduleError> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_high.len() == 1;
    let (start, mut end);
    let mut star = false;
    if low_high[0] == "*" || low_high[0] == "?" {
        start = b.min;
        end = b.max;
        star = true;
    } else {
        start = parse_int_or_name(low_high[0], b)?;
        end = match low_high.len() {
            1 => start,
            2 => parse_int_or_name(low_high[1], b)?,
            _ => return Err(ScheduleError::Hyphens(expr.to_string())),
        };
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let s = parse_int(range_and_step[1])?;
            if single {
                end = b.max;
            }
            if s > 1 {
                star = false;
            }
            s
        }
        _ => return Err(ScheduleError::Slashes(expr.to_string())),
    };
    let expr = || expr.to_string();
    if start < b.min {
        return Err(ScheduleError::BelowMinimum {
            start,
            min: b.min,
            expr: expr(),
        });
    }
    if end > b.max {
        return Err(ScheduleError::AboveMaximum {
            end,
            max: b.max,
            expr: expr(),
        });
    }
    if start > end {
        return Err(ScheduleError::Reversed {
            start,
            end,
            expr: expr(),
        });
    }
    if step == 0 {
        return Err(ScheduleError::ZeroStep(expr()));
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star))
}
