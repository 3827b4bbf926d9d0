//! The union of the schedule tests of CronJob validation (errors in robfig's words) and of the
//! CronJob controller (next run times, macros, zones, daylight saving).

use super::*;
use jiff::Zoned;

fn at(s: &str, tz: &str) -> Zoned {
    let civil: jiff::civil::DateTime = s.parse().unwrap();
    civil.to_zoned(TimeZone::get(tz).unwrap()).unwrap()
}

fn next(spec: &str, from: &str, tz: &str) -> String {
    let s = Schedule::parse(spec).unwrap();
    let n = s.next(&at(from, tz)).unwrap();
    n.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

#[test]
fn fields_ranges_steps_lists_names() {
    assert_eq!(
        next("*/15 * * * *", "2026-01-01T10:07:30", "UTC"),
        "2026-01-01T10:15:00+00:00"
    );
    assert_eq!(
        next("5 * * * *", "2026-01-01T10:05:00", "UTC"),
        "2026-01-01T11:05:00+00:00"
    );
    assert_eq!(
        next("0 9-17/4 * * *", "2026-01-01T13:00:00", "UTC"),
        "2026-01-01T17:00:00+00:00"
    );
    assert_eq!(
        next("0,30 8 * * *", "2026-01-01T08:10:00", "UTC"),
        "2026-01-01T08:30:00+00:00"
    );
    // 2026-01-01 is a Thursday
    assert_eq!(
        next("0 0 * * MON", "2026-01-01T00:00:00", "UTC"),
        "2026-01-05T00:00:00+00:00"
    );
    assert_eq!(
        next("0 0 1 mar *", "2026-01-01T00:00:00", "UTC"),
        "2026-03-01T00:00:00+00:00"
    );
    assert_eq!(
        next("0 0 * * 1-5", "2026-01-02T12:00:00", "UTC"),
        "2026-01-05T00:00:00+00:00"
    );
    // day of month OR day of week when both are restricted
    assert_eq!(
        next("0 0 13 * 5", "2026-01-01T00:00:00", "UTC"),
        "2026-01-02T00:00:00+00:00"
    );
    assert_eq!(
        next("0 0 29 2 *", "2026-01-01T00:00:00", "UTC"),
        "2028-02-29T00:00:00+00:00"
    );
    assert_eq!(
        next("5/20 * * * *", "2026-01-01T00:06:00", "UTC"),
        "2026-01-01T00:25:00+00:00"
    );
}

#[test]
fn macros() {
    let from = "2026-05-13T10:20:00";
    assert_eq!(next("@hourly", from, "UTC"), "2026-05-13T11:00:00+00:00");
    assert_eq!(next("@daily", from, "UTC"), "2026-05-14T00:00:00+00:00");
    assert_eq!(next("@midnight", from, "UTC"), "2026-05-14T00:00:00+00:00");
    assert_eq!(next("@weekly", from, "UTC"), "2026-05-17T00:00:00+00:00");
    assert_eq!(next("@monthly", from, "UTC"), "2026-06-01T00:00:00+00:00");
    assert_eq!(next("@yearly", from, "UTC"), "2027-01-01T00:00:00+00:00");
    assert_eq!(next("@annually", from, "UTC"), "2027-01-01T00:00:00+00:00");
    assert_eq!(
        next("@every 90s", "2026-05-13T10:20:00.5", "UTC"),
        "2026-05-13T10:21:30+00:00"
    );
    assert_eq!(
        next("@every 1h30m", from, "UTC"),
        "2026-05-13T11:50:00+00:00"
    );
}

#[test]
fn bad_input() {
    for bad in [
        "",
        "* * * *",
        "* * * * * *",
        "60 * * * *",
        "* 24 * * *",
        "* * 0 * *",
        "* * * 13 *",
        "* * * * 7",
        "5-1 * * * *",
        "*/0 * * * *",
        "1-2-3 * * * *",
        "*/2/3 * * * *",
        "x * * * *",
        "* * * FOO *",
        "@fortnightly",
        "@every",
        "@every 5 minutes",
        "TZ=Nowhere/Land * * * * *",
        "TZ=UTC",
    ] {
        assert!(Schedule::parse(bad).is_err(), "{bad:?} should not parse");
    }
    // the 31st of February never comes
    let s = Schedule::parse("0 0 31 2 *").unwrap();
    assert_eq!(s.next(&at("2026-01-01T00:00:00", "UTC")), None);
}

#[test]
fn schedule_zone_prefix() {
    let s = Schedule::parse("CRON_TZ=Asia/Tokyo 0 9 * * *").unwrap();
    let n = s.next(&at("2026-01-01T00:30:00", "UTC")).unwrap();
    // 09:00 in Tokyo is 00:00 UTC: the next one is the following day
    assert_eq!(
        n.strftime("%Y-%m-%dT%H:%M%:z").to_string(),
        "2026-01-02T00:00+00:00"
    );
}

#[test]
fn daylight_saving_in_a_zone() {
    let tz = "America/New_York";
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT. 02:30 does not exist that day.
    assert_eq!(
        next("30 2 * * *", "2026-03-08T00:00:00", tz),
        "2026-03-09T02:30:00-04:00"
    );
    // hourly jobs skip the missing hour
    assert_eq!(
        next("0 * * * *", "2026-03-08T01:30:00", tz),
        "2026-03-08T03:00:00-04:00"
    );
    // a daily job at 09:00 stays at 09:00 local on both sides of the change
    assert_eq!(
        next("0 9 * * *", "2026-03-07T10:00:00", tz),
        "2026-03-08T09:00:00-04:00"
    );
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST. 01:30 happens twice: it runs twice.
    let s = Schedule::parse("30 1 * * *").unwrap();
    let first = s.next(&at("2026-11-01T00:00:00", tz)).unwrap();
    assert_eq!(first.strftime("%H:%M%:z").to_string(), "01:30-04:00");
    let second = s.next(&first).unwrap();
    assert_eq!(second.strftime("%H:%M%:z").to_string(), "01:30-05:00");
    let third = s.next(&second).unwrap();
    assert_eq!(third.strftime("%m-%d %H:%M").to_string(), "11-02 01:30");
}

fn err(spec: &str) -> String {
    Schedule::parse(spec).unwrap_err().to_string()
}

#[test]
fn cron_schedules() {
    for ok in [
        "*/5 * * * *",
        "0 0 * * 0",
        "@hourly",
        "@every 1h30m",
        "0 9-17 * jan-mar mon-fri",
        "TZ=UTC 0 * * * *",
    ] {
        assert!(Schedule::parse(ok).is_ok(), "{ok}");
    }
    assert_eq!(
        err("* * * *"),
        "expected exactly 5 fields, found 4: [* * * *]"
    );
    assert_eq!(
        err("60 * * * *"),
        "end of range (60) above maximum (59): 60"
    );
    assert_eq!(err("@foo"), "unrecognized descriptor: @foo");
    assert_eq!(
        err("x * * * *"),
        "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
    );
    assert_eq!(
        err("* * 0 * *"),
        "beginning of range (0) below minimum (1): 0"
    );
    assert!(Schedule::parse("@every bogus").is_err());
}

#[test]
fn errors_in_robfigs_words() {
    assert_eq!(err(""), "empty spec string");
    assert_eq!(err("   "), "expected exactly 5 fields, found 0: []");
    assert_eq!(
        err("5-1 * * * *"),
        "beginning of range (5) beyond end of range (1): 5-1"
    );
    assert_eq!(err("1-2-3 * * * *"), "too many hyphens: 1-2-3");
    assert_eq!(err("*/2/3 * * * *"), "too many slashes: */2/3");
    assert_eq!(
        err("*/0 * * * *"),
        "step of range should be a positive number: */0"
    );
    assert_eq!(
        err("99999999999 * * * *"),
        "failed to parse int from 99999999999: strconv.Atoi: parsing \"99999999999\": value out of range"
    );
    assert_eq!(
        err("@every 5 minutes"),
        "failed to parse duration @every 5 minutes: time: invalid duration \"5 minutes\""
    );
    assert_eq!(
        err("TZ=UTC"),
        "provided bad location TZ=UTC: unknown time zone"
    );
    assert_eq!(
        err("TZ=Nowhere/Land * * * * *"),
        "provided bad location Nowhere/Land: unknown time zone Nowhere/Land"
    );
}
