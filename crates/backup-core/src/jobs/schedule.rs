//! Cron schedules evaluated in an IANA time zone, correct across DST.
//!
//! A schedule is a 5-field cron expression (minute, hour, day of month,
//! month, day of week, with names, ranges, steps and lists, as in Vixie
//! cron; parsed by [`croner`]) or one of `@yearly`, `@monthly`, `@weekly`,
//! `@daily`, `@hourly`, read as wall-clock times in a time zone. Each
//! matching wall-clock time runs once:
//!
//! - a time that does not exist because the clocks spring forward runs once,
//!   at the first instant after the gap (`30 2 * * *` in America/Chicago on
//!   2027-03-14 runs at 03:00 CDT);
//! - a time that exists twice because the clocks fall back runs once, at its
//!   first occurrence (`30 1 * * *` on 2026-11-01 runs at 01:30 CDT, not
//!   again at 01:30 CST).
//!
//! ```
//! use backup_core::jobs::schedule::Schedule;
//! let s = Schedule::parse("0 3 * * *", "America/Chicago").unwrap();
//! let after = "2027-03-13T00:00:00Z".parse().unwrap();
//! let next: Vec<String> = s.upcoming(after).take(2).map(|t| t.to_rfc3339()).collect();
//! assert_eq!(next, ["2027-03-13T03:00:00-06:00", "2027-03-14T03:00:00-05:00"]);
//! ```

use std::fmt;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Wall-clock candidates examined before giving up (a pattern such as
/// `0 0 30 2 *` never matches).
const MAX_CANDIDATES: usize = 1000;

/// A cron expression in a time zone.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// Parses `expression` (5 fields or an `@daily`-style shortcut) for the
    /// IANA time zone `zone` (e.g. `America/Chicago`, `UTC`).
    ///
    /// # Errors
    ///
    /// When the expression or the zone does not parse, or the expression
    /// is `@reboot`; the message says which.
    pub fn parse(expression: &str, zone: &str) -> Result<Self, String> {
        let zone = parse_zone(zone)?;
        let trimmed = expression.trim();
        if trimmed.eq_ignore_ascii_case("@reboot") {
            return Err("`@reboot` is not a schedule the daemon can keep".into());
        }
        if !trimmed.starts_with('@') && trimmed.split_whitespace().count() != 5 {
            return Err(format!(
                "`{}` is not a cron expression: expected 5 fields (minute hour day-of-month \
                 month day-of-week) or @hourly/@daily/@weekly/@monthly/@yearly",
                expression.escape_debug()
            ));
        }
        // croner takes an empty list item as "no value at all" and then
        // searches thousands of years for a run that never comes.
        if let Some(field) = trimmed
            .split_whitespace()
            .find(|f| f.split(',').any(str::is_empty))
        {
            return Err(format!(
                "`{}`: the field `{field}` has an empty list item (two commas, or a comma at \
                 either end)",
                expression.escape_debug()
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build()
            .parse(trimmed)
            .map_err(|e| format!("`{}`: {e}", expression.escape_debug()))?;
        let schedule = Schedule {
            expression: trimmed.to_owned(),
            cron,
            zone,
        };
        // `0 0 30 2 *` parses, and never fires: a job on it would never run.
        if schedule.next_after(Utc::now()).is_none() {
            return Err(format!(
                "`{}` never fires (no such date in any year)",
                expression.escape_debug()
            ));
        }
        Ok(schedule)
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The time zone.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The first run strictly after `after`, or none when the expression
    /// never matches again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Tz>> {
        let mut wall = after.with_timezone(&self.zone).naive_local();
        for _ in 0..MAX_CANDIDATES {
            // croner searches wall-clock time; UTC has no DST, so it does
            // exactly that here, and the zone is applied below.
            let found = self
                .cron
                .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
                .ok()?
                .naive_utc();
            let at = self.instant(found)?;
            if at.with_timezone(&Utc) > after {
                return Some(at);
            }
            // A repeated wall time whose first occurrence has passed, or a
            // skipped one whose run was at the end of the gap.
            wall = found;
        }
        None
    }

    /// Runs after `after`, in order.
    pub fn upcoming(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Tz>> + '_ {
        let mut cursor = after;
        std::iter::from_fn(move || {
            let next = self.next_after(cursor)?;
            cursor = next.with_timezone(&Utc);
            Some(next)
        })
    }

    /// The latest run in `(after, until]`, if any: what a daemon that was
    /// down between the two missed most recently.
    pub fn last_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.upcoming(after)
            .map(|t| t.with_timezone(&Utc))
            .take_while(|t| *t <= until)
            .last()
    }

    /// The instant a wall-clock time stands for: its only or first
    /// occurrence, or for a time in a DST gap, the first instant after it.
    fn instant(&self, wall: NaiveDateTime) -> Option<DateTime<Tz>> {
        match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(t) => Some(t),
            LocalResult::Ambiguous(first, _) => Some(first),
            LocalResult::None => {
                // Gaps are whole minutes long in every zone in use (at most
                // a few hours); the first wall minute after one is the
                // instant the clocks changed.
                let mut probe = wall;
                for _ in 0..(26 * 60) {
                    probe += TimeDelta::minutes(1);
                    if let LocalResult::Single(t) | LocalResult::Ambiguous(t, _) =
                        self.zone.from_local_datetime(&probe)
                    {
                        return Some(t);
                    }
                }
                None
            }
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({} {})", self.expression, self.zone)
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` in {}", self.expression, self.zone)
    }
}

/// Parses an IANA time zone name.
///
/// # Errors
///
/// When it is not one; the message gives examples.
pub fn parse_zone(zone: &str) -> Result<Tz, String> {
    zone.parse::<Tz>().map_err(|_| {
        format!(
            "`{}` is not an IANA time zone (such as America/Chicago, Europe/Berlin or UTC)",
            zone.escape_debug()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    fn runs(expr: &str, zone: &str, after: &str, n: usize) -> Vec<String> {
        let s = Schedule::parse(expr, zone).expect("schedule");
        s.upcoming(at(after))
            .take(n)
            .map(|t| t.to_rfc3339())
            .collect()
    }

    #[test]
    fn spring_forward_runs_once_after_the_gap() {
        assert_eq!(
            runs("30 2 * * *", "America/Chicago", "2027-03-13T00:00:00Z", 3),
            [
                "2027-03-13T02:30:00-06:00",
                "2027-03-14T03:00:00-05:00",
                "2027-03-15T02:30:00-05:00"
            ]
        );
        // Every quarter hour of the missing hour collapses into one run.
        assert_eq!(
            runs("*/15 2 * * *", "Europe/Berlin", "2027-03-28T00:00:00Z", 3),
            [
                "2027-03-28T03:00:00+02:00",
                "2027-03-29T02:00:00+02:00",
                "2027-03-29T02:15:00+02:00"
            ]
        );
    }

    #[test]
    fn fall_back_runs_once_at_the_first_occurrence() {
        assert_eq!(
            runs("30 1 * * *", "America/Chicago", "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-06:00"]
        );
        // Hourly: 01:00 runs once (CDT); the repeated hour does not run again.
        assert_eq!(
            runs("0 * * * *", "America/Chicago", "2026-11-01T05:30:00Z", 3),
            [
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T02:00:00-06:00",
                "2026-11-01T03:00:00-06:00"
            ]
        );
        // Berlin falls back on 2026-10-25 (03:00 CEST -> 02:00 CET).
        assert_eq!(
            runs("30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
        );
        // Starting inside the repeated hour's second pass.
        assert_eq!(
            runs("45 1 * * *", "America/Chicago", "2026-11-01T07:10:00Z", 1),
            ["2026-11-02T01:45:00-06:00"]
        );
    }

    #[test]
    fn shortcuts_and_errors() {
        assert_eq!(
            runs("@daily", "UTC", "2026-01-01T00:00:00Z", 1),
            ["2026-01-02T00:00:00+00:00"]
        );
        assert_eq!(
            runs("0 5 * * SUN", "UTC", "2026-11-22T06:00:00Z", 1),
            ["2026-11-29T05:00:00+00:00"]
        );
        for bad in [
            "",
            "* * * *",
            "0 0 0 * * *",
            "61 * * * *",
            "@reboot",
            "x y z a b",
        ] {
            assert!(Schedule::parse(bad, "UTC").is_err(), "{bad}");
        }
        assert!(Schedule::parse("@daily", "Mars/Olympus").is_err());
        assert!(Schedule::parse("0 0 30 2 *", "UTC").is_err(), "never fires");
    }

    /// Found by the jobs_config fuzz target: `, * * * *` (an empty
    /// minute list) parsed, and looking for its next run took 62 s.
    #[test]
    fn empty_list_items_are_refused() {
        for expr in [", * * * *", "1,,2 * * * *", "* * * * 1,", "0 ,3 * * *"] {
            let err = Schedule::parse(expr, "UTC").expect_err(expr);
            assert!(err.contains("empty list item"), "{err}");
        }
        assert!(Schedule::parse("0,30 1,13 * * 1,5", "UTC").is_ok());
    }

    #[test]
    fn schedules_that_never_fire_are_refused() {
        for expr in ["0 0 30 2 *", "0 0 31 4,6,9,11 *"] {
            let err = Schedule::parse(expr, "UTC").expect_err(expr);
            assert!(err.contains("never fires"), "{err}");
        }
        assert!(
            Schedule::parse("0 0 29 2 *", "UTC").is_ok(),
            "leap years come"
        );
    }

    #[test]
    fn last_between_finds_the_missed_run() {
        let s = Schedule::parse("0 3 * * *", "America/Chicago").expect("schedule");
        assert_eq!(
            s.last_between(at("2026-11-20T00:00:00Z"), at("2026-11-22T12:00:00Z")),
            Some(at("2026-11-22T09:00:00Z"))
        );
        assert_eq!(
            s.last_between(at("2026-11-22T09:00:00Z"), at("2026-11-22T12:00:00Z")),
            None
        );
    }
}
