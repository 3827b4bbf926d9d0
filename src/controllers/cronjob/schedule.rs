//! Cron schedules as upstream's CronJob controller reads them (robfig/cron's standard parser):
//! five fields (minute, hour, day of month, month, day of week) with lists, ranges, steps and
//! month and day names, the `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`
//! and `@hourly` macros, `@every <duration>` (which upstream accepts too), and a leading
//! `TZ=`/`CRON_TZ=` zone kept from older objects. `next` finds the first matching minute after
//! a time in the schedule's zone, stepping through daylight-saving changes as robfig does (a
//! time skipped by a spring-forward gap does not run that day, one repeated by a fall-back
//! runs twice). No I/O and no clock here.
//!
//! Written by hand because the cron crates on crates.io read a different dialect (six or seven
//! fields with seconds, other day-of-week rules) and the schedule must mean what it means in
//! Kubernetes.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, Zoned};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty spec string")]
    Empty,
    #[error("expected exactly 5 fields, found {0}: {1}")]
    FieldCount(usize, String),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse duration {0}")]
    Duration(String),
    #[error("provided bad location {0}")]
    Location(String),
    #[error("{0}: {1}")]
    Field(String, &'static str),
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Spec(Spec),
    /// `@every`: a fixed interval, whole seconds, at least one.
    Every(SignedDuration),
}

/// Bit sets of the allowed values of each field. A day field written as `*` or `?` (without a
/// step above one) is a wildcard: then both day fields must match, else either may.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    dom_star: bool,
    dow_star: bool,
    zone: Option<TimeZone>,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "", "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Bounds; 5] = [
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

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
        let mut spec = spec.trim();
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let mut zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let (tz, rest) = spec
                .split_once(' ')
                .ok_or_else(|| ScheduleError::Location(spec.to_string()))?;
            let name = tz.split_once('=').map(|(_, n)| n).unwrap_or_default();
            zone =
                Some(TimeZone::get(name).map_err(|_| ScheduleError::Location(name.to_string()))?);
            spec = rest.trim();
        }
        let expanded = match spec {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            s if s.starts_with("@every ") => {
                let d = go_duration(s["@every ".len()..].trim())
                    .ok_or_else(|| ScheduleError::Duration(s.to_string()))?;
                // robfig: whole seconds, at least one
                let secs = d.as_secs().max(1);
                return Ok(Schedule::Every(SignedDuration::from_secs(secs)));
            }
            s if s.starts_with('@') => return Err(ScheduleError::Descriptor(s.to_string())),
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(ScheduleError::FieldCount(
                fields.len(),
                expanded.to_string(),
            ));
        }
        let mut bits = [0u64; 5];
        let mut stars = [false; 5];
        for (i, (f, b)) in fields.iter().zip(FIELDS.iter()).enumerate() {
            for expr in f.split(',') {
                let (set, star) = range(expr, b)?;
                bits[i] |= set;
                stars[i] |= star;
            }
        }
        Ok(Schedule::Spec(Spec {
            minute: bits[0],
            hour: bits[1],
            dom: bits[2],
            month: bits[3],
            dow: bits[4],
            dom_star: stars[2],
            dow_star: stars[4],
            zone,
        }))
    }

    /// The first scheduled time strictly after `t` (in `t`'s zone unless the schedule names
    /// its own), or None if there is none within five years (e.g. the 30th of February).
    pub fn next(&self, t: &Zoned) -> Option<Zoned> {
        match self {
            Schedule::Every(d) => {
                let sub = SignedDuration::from_nanos(i64::from(t.subsec_nanosecond()));
                t.checked_add(*d - sub).ok()
            }
            Schedule::Spec(s) => s.next(t),
        }
    }
}

fn bit(set: u64, v: i8) -> bool {
    u32::try_from(v).is_ok_and(|v| v < 64 && set & (1 << v) != 0)
}

fn trunc(t: &Zoned, unit_secs: i64) -> Option<Zoned> {
    let s = t.timestamp().as_second();
    let ts = Timestamp::from_second(s - s.rem_euclid(unit_secs)).ok()?;
    Some(ts.to_zoned(t.time_zone().clone()))
}

impl Spec {
    fn day_matches(&self, t: &Zoned) -> bool {
        let dom = bit(self.dom, t.day());
        let dow = bit(self.dow, t.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn next(&self, from: &Zoned) -> Option<Zoned> {
        let tz = self
            .zone
            .clone()
            .unwrap_or_else(|| from.time_zone().clone());
        let start = trunc(from, 1)?
            .checked_add(SignedDuration::from_secs(1))
            .ok()?;
        let mut t = start.with_time_zone(tz.clone());
        let mut added = false;
        let year_limit = t.year() + 5;
        let midnight = |t: &Zoned, hour: i8| t.date().at(hour, 0, 0, 0).to_zoned(tz.clone()).ok();
        'wrap: loop {
            if t.year() > year_limit {
                return None;
            }
            while !bit(self.month, t.month()) {
                if !added {
                    added = true;
                    t = t
                        .date()
                        .first_of_month()
                        .at(0, 0, 0, 0)
                        .to_zoned(tz.clone())
                        .ok()?;
                }
                t = t.checked_add(jiff::Span::new().months(1)).ok()?;
                if t.month() == 1 {
                    continue 'wrap;
                }
            }
            while !self.day_matches(&t) {
                if !added {
                    added = true;
                    t = midnight(&t, 0)?;
                }
                t = t.checked_add(jiff::Span::new().days(1)).ok()?;
                // A day that starts inside a daylight-saving gap: back to the day's start.
                let h = i64::from(t.hour());
                if h != 0 {
                    let fix = if h > 12 { 24 - h } else { -h };
                    t = t.checked_add(SignedDuration::from_hours(fix)).ok()?;
                }
                if t.day() == 1 {
                    continue 'wrap;
                }
            }
            while !bit(self.hour, t.hour()) {
                if !added {
                    added = true;
                    t = midnight(&t, t.hour())?;
                }
                t = t.checked_add(SignedDuration::from_hours(1)).ok()?;
                if t.hour() == 0 {
                    continue 'wrap;
                }
            }
            while !bit(self.minute, t.minute()) {
                if !added {
                    added = true;
                    t = trunc(&t, 60)?;
                }
                t = t.checked_add(SignedDuration::from_mins(1)).ok()?;
                if t.minute() == 0 {
                    continue 'wrap;
                }
            }
            while t.second() != 0 {
                if !added {
                    added = true;
                    t = trunc(&t, 1)?;
                }
                t = t.checked_add(SignedDuration::from_secs(1)).ok()?;
                if t.second() == 0 {
                    continue 'wrap;
                }
            }
            return Some(t.with_time_zone(from.time_zone().clone()));
        }
    }
}

fn value(s: &str, b: &Bounds, expr: &str) -> Result<u32, ScheduleError> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = b.names.iter().position(|n| !n.is_empty() && *n == lower) {
        return Ok(i as u32);
    }
    s.parse::<u32>()
        .map_err(|_| ScheduleError::Field(expr.to_string(), "not a number or name"))
}

/// One comma-separated part of a field: its bits, and whether it is a wildcard.
fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), ScheduleError> {
    let err = |m| Err(ScheduleError::Field(expr.to_string(), m));
    let (rng, step) = match expr.split_once('/') {
        Some((r, s)) => {
            if s.contains('/') {
                return err("too many slashes");
            }
            let step = s
                .parse::<u32>()
                .map_err(|_| ScheduleError::Field(expr.to_string(), "bad step"))?;
            (r, Some(step))
        }
        None => (expr, None),
    };
    let mut star = false;
    let (start, mut end) = if rng == "*" || rng == "?" {
        star = true;
        (b.min, b.max)
    } else {
        match rng.split_once('-') {
            Some((lo, hi)) => {
                if hi.contains('-') {
                    return err("too many hyphens");
                }
                (value(lo, b, expr)?, value(hi, b, expr)?)
            }
            None => {
                let v = value(rng, b, expr)?;
                (v, v)
            }
        }
    };
    let step = match step {
        Some(s) => {
            if !rng.contains('-') {
                end = b.max;
            }
            if s > 1 {
                star = false;
            }
            s
        }
        None => 1,
    };
    if start < b.min {
        return err("beginning of range below minimum");
    }
    if end > b.max {
        return err("end of range above maximum");
    }
    if start > end {
        return err("beginning of range beyond end of range");
    }
    if step == 0 {
        return err("step of range should be a positive number");
    }
    let mut bits = 0u64;
    let mut v = start;
    while v <= end {
        bits |= 1 << v;
        v += step;
    }
    Ok((bits, star))
}

/// Go's `time.ParseDuration` ("1h30m", "90s", "1.5h", "0").
fn go_duration(s: &str) -> Option<SignedDuration> {
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if s == "0" {
        return Some(SignedDuration::ZERO);
    }
    if s.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[u..];
        total += num * scale;
    }
    let d = SignedDuration::try_from_secs_f64(total).ok()?;
    Some(if neg { -d } else { d })
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
