//! Cron schedules as Kubernetes reads them (robfig/cron's standard parser): five fields
//! (minute, hour, day of month, month, day of week) with lists, ranges, steps and month and
//! day names, the `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight` and
//! `@hourly` macros, `@every <duration>`, and a leading `TZ=`/`CRON_TZ=` zone kept from older
//! objects. The one parser of the crate: CronJob validation reports its errors, in robfig's
//! words, and the CronJob controller schedules with what it returns (`next`, in `next.rs`).
//! Pure: no I/O, no clock, no Kubernetes types.
//!
//! Written by hand because the cron crates on crates.io read a different dialect (six or seven
//! fields with seconds, other day-of-week rules) and the schedule must mean what it means in
//! Kubernetes.

mod fields;
mod next;

use fields::{range, FIELDS};
use jiff::tz::TimeZone;
use jiff::SignedDuration;

/// Why a schedule does not parse, worded as robfig/cron words it (validation shows these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("empty spec string")]
    Empty,
    #[error("expected exactly 5 fields, found {}: [{}]", .0.len(), .0.join(" "))]
    FieldCount(Vec<String>),
    #[error("unrecognized descriptor: {0}")]
    Descriptor(String),
    #[error("failed to parse duration {spec}: time: invalid duration \"{duration}\"")]
    Duration { spec: String, duration: String },
    /// A `TZ=` prefix with no schedule after it.
    #[error("provided bad location {0}: unknown time zone")]
    ZoneOnly(String),
    #[error("provided bad location {0}: unknown time zone {0}")]
    Location(String),
    #[error("failed to parse int from {0}: strconv.Atoi: parsing \"{0}\": invalid syntax")]
    NotANumber(String),
    #[error("failed to parse int from {0}: strconv.Atoi: parsing \"{0}\": value out of range")]
    OutOfRange(String),
    #[error("negative number ({value}) not allowed: {expr}")]
    Negative { value: i64, expr: String },
    #[error("too many hyphens: {0}")]
    Hyphens(String),
    #[error("too many slashes: {0}")]
    Slashes(String),
    #[error("beginning of range ({start}) below minimum ({min}): {expr}")]
    BelowMinimum { start: u32, min: u32, expr: String },
    #[error("end of range ({end}) above maximum ({max}): {expr}")]
    AboveMaximum { end: u32, max: u32, expr: String },
    #[error("beginning of range ({start}) beyond end of range ({end}): {expr}")]
    Reversed { start: u32, end: u32, expr: String },
    #[error("step of range should be a positive number: {0}")]
    ZeroStep(String),
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

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, ScheduleError> {
        if spec.is_empty() {
            return Err(ScheduleError::Empty);
        }
        let mut spec = spec.trim();
        let mut zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let Some((tz, rest)) = spec.split_once(' ') else {
                return Err(ScheduleError::ZoneOnly(spec.to_string()));
            };
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
                let duration = s["@every ".len()..].trim();
                let d = crate::goduration::parse(duration)
                    .map(SignedDuration::from_nanos)
                    .ok_or_else(|| ScheduleError::Duration {
                        spec: s.to_string(),
                        duration: duration.to_string(),
                    })?;
                // robfig: whole seconds, at least one
                let secs = d.as_secs().max(1);
                return Ok(Schedule::Every(SignedDuration::from_secs(secs)));
            }
            s if s.starts_with('@') => return Err(ScheduleError::Descriptor(s.to_string())),
            s => s,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            let fields = fields.iter().map(|f| f.to_string()).collect();
            return Err(ScheduleError::FieldCount(fields));
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
}

#[cfg(test)]
mod tests;
