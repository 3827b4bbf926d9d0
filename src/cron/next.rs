//! When a parsed schedule next runs: the first matching second after a time, in the
//! schedule's zone (its `TZ=` prefix) or else the zone of the time given, stepping through
//! daylight-saving changes as robfig/cron does (a time skipped by a spring-forward gap does not
//! run that day, one repeated by a fall-back runs twice). No clock: callers pass now.

use super::{Schedule, Spec};
use jiff::{SignedDuration, Timestamp, Zoned};

impl Schedule {
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
