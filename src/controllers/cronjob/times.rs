//! Which scheduled time a CronJob is due for now, and when to look again: upstream's
//! `mostRecentScheduleTime` rules, with its approximate count of missed start times (more
//! than 100 is reported and only the latest is run). Pure functions of the CronJob's times,
//! the schedule and now; no I/O.

use crate::cron::Schedule;
use jiff::{SignedDuration, Timestamp, Zoned};

/// How many start times were missed since the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    None,
    Few,
    /// More than 100: the count, for the event.
    Many(i64),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimesError {
    #[error("time difference between two schedules is less than 1 second")]
    TooClose,
}

/// What the controller knows of a CronJob's past.
#[derive(Debug, Clone, Copy)]
pub struct History {
    pub created: Timestamp,
    pub last_schedule: Option<Timestamp>,
    pub starting_deadline_seconds: Option<i64>,
}

/// The earliest time to consider, and the most recent scheduled time at or before `now`
/// after it (None if the next one is still to come).
pub fn most_recent(
    h: &History,
    now: &Zoned,
    sched: &Schedule,
    with_deadline: bool,
) -> Result<(Zoned, Option<Zoned>, Missed), TimesError> {
    let tz = now.time_zone().clone();
    let mut earliest = h.last_schedule.unwrap_or(h.created);
    if let (true, Some(d)) = (with_deadline, h.starting_deadline_seconds) {
        let limit = now.timestamp() - SignedDuration::from_secs(d);
        if limit > earliest {
            earliest = limit;
        }
    }
    let earliest = earliest.to_zoned(tz);
    let Some(t1) = sched.next(&earliest) else {
        return Ok((earliest, None, Missed::None));
    };
    if *now < t1 {
        return Ok((earliest, None, Missed::None));
    }
    let Some(t2) = sched.next(&t1) else {
        return Ok((earliest, Some(t1), Missed::None));
    };
    if *now < t2 {
        return Ok((earliest, Some(t1), Missed::None));
    }
    let between = t2.duration_since(&t1).as_secs_f64().round() as i64;
    if between < 1 {
        return Err(TimesError::TooClose);
    }
    let elapsed = now.duration_since(&t1).as_secs();
    let missed = elapsed / between + 1;
    // Jump close to now by whole intervals (one short, for schedules with uneven gaps), then
    // walk the schedule up to now.
    let skip = SignedDuration::from_secs((missed - 2).max(0).saturating_mul(between));
    let mut t = t1.checked_add(skip).unwrap_or_else(|_| t1.clone());
    let mut latest = None;
    while let Some(n) = sched.next(&t) {
        if &n > now {
            break;
        }
        latest = Some(n.clone());
        t = n;
    }
    let m = if missed > 100 {
        Missed::Many(missed)
    } else {
        Missed::Few
    };
    Ok((earliest, latest, m))
}

/// How long until the controller should look at the CronJob again: just after the next
/// scheduled time (100 ms later, as upstream, so the time has surely come).
pub fn requeue_after(h: &History, now: &Zoned, sched: &Schedule) -> Option<std::time::Duration> {
    let (earliest, recent, missed) = most_recent(h, now, sched, false).ok()?;
    let base = match (recent, missed) {
        (Some(t), _) => t,
        (None, Missed::None) => earliest,
        (None, _) => now.clone(),
    };
    let next = sched.next(&base)?;
    let wait = next.duration_since(now) + SignedDuration::from_millis(100);
    std::time::Duration::try_from(wait.max(SignedDuration::ZERO)).ok()
}

/// The Job name for a scheduled time: `<cronjob>-<minutes since the epoch>`.
pub fn job_name(cronjob: &str, scheduled: &Zoned) -> String {
    format!(
        "{cronjob}-{}",
        scheduled.timestamp().as_second().div_euclid(60)
    )
}

/// RFC 3339 in the schedule's zone, as Go prints it ("Z" for UTC).
pub fn rfc3339(t: &Zoned) -> String {
    if t.offset().seconds() == 0 {
        t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn z(s: &str) -> Zoned {
        ts(s).to_zoned(TimeZone::UTC)
    }

    fn hist(created: &str, last: Option<&str>, deadline: Option<i64>) -> History {
        History {
            created: ts(created),
            last_schedule: last.map(ts),
            starting_deadline_seconds: deadline,
        }
    }

    #[test]
    fn due_times() {
        let s = Schedule::parse("*/10 * * * *").unwrap();
        let h = hist("2026-01-01T00:03:00Z", None, None);
        let (_, t, m) = most_recent(&h, &z("2026-01-01T00:09:59Z"), &s, true).unwrap();
        assert_eq!((t, m), (None, Missed::None));
        let (_, t, m) = most_recent(&h, &z("2026-01-01T00:10:00Z"), &s, true).unwrap();
        assert_eq!(t.unwrap().timestamp(), ts("2026-01-01T00:10:00Z"));
        assert_eq!(m, Missed::None);
        // three missed: the latest is due, the others are skipped
        let (_, t, m) = most_recent(&h, &z("2026-01-01T00:35:00Z"), &s, true).unwrap();
        assert_eq!(t.unwrap().timestamp(), ts("2026-01-01T00:30:00Z"));
        assert_eq!(m, Missed::Few);
        // after the last schedule
        let h = hist("2026-01-01T00:03:00Z", Some("2026-01-01T00:30:00Z"), None);
        let (_, t, _) = most_recent(&h, &z("2026-01-01T00:35:00Z"), &s, true).unwrap();
        assert_eq!(t, None);
    }

    #[test]
    fn too_many_missed_and_deadline() {
        let s = Schedule::parse("* * * * *").unwrap();
        let h = hist("2026-01-01T00:00:30Z", None, None);
        let (_, t, m) = most_recent(&h, &z("2026-01-01T05:00:10Z"), &s, true).unwrap();
        assert_eq!(t.unwrap().timestamp(), ts("2026-01-01T05:00:00Z"));
        assert!(matches!(m, Missed::Many(n) if n > 100));
        // a starting deadline bounds how far back the controller looks
        let h = hist("2026-01-01T00:00:30Z", None, Some(30));
        let (_, t, m) = most_recent(&h, &z("2026-01-01T05:00:10Z"), &s, true).unwrap();
        assert_eq!(t.unwrap().timestamp(), ts("2026-01-01T05:00:00Z"));
        assert_eq!(m, Missed::None);
        let s = Schedule::parse("0 * * * *").unwrap();
        let (_, t, _) = most_recent(&h, &z("2026-01-01T05:01:10Z"), &s, true).unwrap();
        assert_eq!(t, None, "05:00 is more than 30 s ago");
    }

    #[test]
    fn requeue_at_the_next_time() {
        let s = Schedule::parse("0 * * * *").unwrap();
        let h = hist("2026-01-01T00:10:00Z", None, None);
        let d = requeue_after(&h, &z("2026-01-01T00:20:00Z"), &s).unwrap();
        assert_eq!(d, std::time::Duration::from_millis(40 * 60 * 1000 + 100));
        let h = hist("2026-01-01T00:10:00Z", Some("2026-01-01T01:00:00Z"), None);
        let d = requeue_after(&h, &z("2026-01-01T01:00:01Z"), &s).unwrap();
        assert_eq!(d, std::time::Duration::from_millis(3599 * 1000 + 100));
    }

    #[test]
    fn names_and_stamps() {
        let t = z("2026-01-01T00:10:00Z");
        assert_eq!(
            job_name("backup", &t),
            format!("backup-{}", 1767226200 / 60)
        );
        assert_eq!(rfc3339(&t), "2026-01-01T00:10:00Z");
        let tokyo = t.with_time_zone(TimeZone::get("Asia/Tokyo").unwrap());
        assert_eq!(rfc3339(&tokyo), "2026-01-01T09:10:00+09:00");
    }
}
