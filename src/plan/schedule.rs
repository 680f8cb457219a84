//! When a scheduled task runs: its schedule as pg_cron writes one, the next time it is
//! due, and how a task that keeps failing backs off and logs.
//!
//! Two kinds, as `cron.schedule` accepts them:
//! - `'N seconds'` (N from 1 to 59; `'1 second'` too): every N seconds;
//! - a 5-field cron expression, `minute hour day-of-month month day-of-week`, in UTC (as
//!   pg_cron's default `cron.timezone`), each field `*`, a number, a range `a-b`, any of
//!   them with a step `/n`, or a comma list of those; months and weekdays also by their
//!   English three-letter names; weekday 0 or 7 is Sunday. When both day fields are
//!   restricted (neither starts with `*`), a day matching either runs, as in Vixie cron.
//!   `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight` and `@hourly` are
//!   the usual shorthands.
//!
//! No cron crate fits here without more than it gives: the `cron` crate wants 6 or 7
//! fields (seconds first), and none is vendored; the standard 5 fields are small.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Timelike, Utc};

use crate::error::{ErrorKind, FdwError, FdwResult};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every this many seconds (1–59).
    Seconds(u32),
    Cron(Cron),
}

/// A 5-field cron expression: the values each field allows, as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month and day-of-week fields start with `*` (Vixie cron's
    /// DOM_STAR and DOW_STAR: a starred day field leaves the day to the other one).
    days_star: bool,
    weekdays_star: bool,
}

/// How far ahead [`Schedule::next_after`] looks for a matching minute: a leap day on a
/// weekday it names can be 28 years away.
const SEARCH_DAYS: i64 = 366 * 30;

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn invalid(schedule: &str, why: impl Into<String>) -> FdwError {
    FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid schedule: \"{schedule}\""))
        .with_detail(why.into())
        .with_hint("Use 'N seconds' (1 to 59) or a cron expression of 5 fields (minute hour day-of-month month day-of-week), e.g. '*/5 * * * *'.")
}

impl Schedule {
    pub fn parse(text: &str) -> FdwResult<Schedule> {
        let lower = text.trim().to_ascii_lowercase();
        let expanded = match lower.as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() == 2 && matches!(fields[1], "seconds" | "second") {
            return match fields[0].parse::<u32>() {
                Ok(n) if (1..=59).contains(&n) => Ok(Schedule::Seconds(n)),
                _ => Err(invalid(text, format!("\"{}\" is not a number of seconds from 1 to 59.", fields[0]))),
            };
        }
        if fields.len() != 5 {
            return Err(invalid(text, format!("A cron expression has 5 fields; this has {}.", fields.len())));
        }
        let field = |index: usize, name: &str, min: u32, max: u32, names: &[&str]| {
            parse_field(fields[index], min, max, names).map_err(|why| invalid(text, format!("{name} \"{}\": {why}", fields[index])))
        };
        let minutes = field(0, "minute", 0, 59, &[])?;
        let hours = field(1, "hour", 0, 23, &[])?;
        let days = field(2, "day of month", 1, 31, &[])?;
        let months = field(3, "month", 1, 12, &MONTHS)?;
        let mut weekdays = field(4, "day of week", 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays & !(1 << 7)) | 1;
        }
        let cron = Cron {
            minutes,
            hours,
            days,
            months,
            weekdays,
            days_star: fields[2].starts_with('*'),
            weekdays_star: fields[4].starts_with('*'),
        };
        Ok(Schedule::Cron(cron))
    }

    /// The first time, in seconds since the Unix epoch, strictly after `after` at which
    /// the schedule is due: `after` + N for `'N seconds'`, the next matching minute for
    /// a cron expression (None when no minute in the next 30 years matches, e.g. `0 0 30
    /// 2 *`).
    pub fn next_after(&self, after: i64) -> Option<i64> {
        match self {
            Schedule::Seconds(n) => after.checked_add(i64::from(*n)),
            Schedule::Cron(cron) => cron.next_after(after),
        }
    }
}

impl Cron {
    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let day = self.days & (1 << date.day()) != 0;
        let weekday = self.weekdays & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.days_star || self.weekdays_star {
            day && weekday
        } else {
            day || weekday
        }
    }

    fn next_after(&self, after: i64) -> Option<i64> {
        // The first whole minute after `after`.
        let start = DateTime::<Utc>::from_timestamp(after.div_euclid(60).checked_add(1)?.checked_mul(60)?, 0)?;
        let mut date = start.date_naive();
        let mut first_minute = start.hour() * 60 + start.minute();
        for _ in 0..SEARCH_DAYS {
            if self.day_matches(date) {
                for minute_of_day in first_minute..24 * 60 {
                    let (hour, minute) = (minute_of_day / 60, minute_of_day % 60);
                    if self.hours & (1 << hour) != 0 && self.minutes & (1 << minute) != 0 {
                        return Some(date.and_hms_opt(hour, minute, 0)?.and_utc().timestamp());
                    }
                }
            }
            date = date.checked_add_signed(Duration::days(1))?;
            first_minute = 0;
        }
        None
    }
}

/// One field: the bit set of the values it allows, or why it is invalid.
fn parse_field(field: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |text: &str| -> Result<u32, String> {
        let n = match names.iter().position(|name| *name == text) {
            Some(index) => index as u32 + if min == 1 { 1 } else { 0 },
            None => text.parse::<u32>().map_err(|_| format!("\"{text}\" is not a number"))?,
        };
        if n < min || n > max {
            return Err(format!("{n} is out of range ({min} to {max})"));
        }
        Ok(n)
    };
    let mut set = 0u64;
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step = step.parse::<u32>().map_err(|_| format!("step \"{step}\" is not a number"))?;
                if step == 0 {
                    return Err("a step must be at least 1".into());
                }
                (range, Some(step))
            }
            None => (item, None),
        };
        let (low, high) = if range == "*" {
            (min, max)
        } else if let Some((low, high)) = range.split_once('-') {
            let (low, high) = (value(low)?, value(high)?);
            if low > high {
                return Err(format!("range {low}-{high} runs backwards"));
            }
            (low, high)
        } else if range.is_empty() {
            return Err("an empty item".into());
        } else {
            // `5/15` means from 5 to the end, every 15 (Vixie cron).
            let low = value(range)?;
            (low, if step.is_some() { max } else { low })
        };
        let step = step.unwrap_or(1);
        let mut n = low;
        while n <= high {
            set |= 1 << n;
            n += step;
        }
    }
    Ok(set)
}

/// The longest a task that keeps failing waits between runs.
pub const MAX_BACKOFF_SECONDS: f64 = 60.0;

/// How often, at most, a task that keeps failing logs a WARNING about it (besides its
/// first failure).
pub const WARNING_INTERVAL_SECONDS: f64 = 600.0;

/// How long after its `failures`-th consecutive failure (1 or more) a task waits before
/// it runs again: its period (a cron task's: a minute), doubled with each further
/// failure, at most [`MAX_BACKOFF_SECONDS`] (or one period, when that is longer).
pub fn backoff_seconds(period_seconds: f64, failures: u32) -> f64 {
    let doublings = failures.saturating_sub(1).min(30);
    (period_seconds * f64::from(1u32 << doublings)).min(MAX_BACKOFF_SECONDS.max(period_seconds))
}

/// Whether a failure should be logged: the first of a series always, later ones at most
/// once per [`WARNING_INTERVAL_SECONDS`] (`since_last_warning`: seconds since the last
/// one, None if none was logged), so a task failing every second fills no log.
pub fn warn_about_failure(failures: u32, since_last_warning: Option<f64>) -> bool {
    failures <= 1 || since_last_warning.is_none_or(|since| since >= WARNING_INTERVAL_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i64 {
        DateTime::parse_from_rfc3339(text).unwrap().timestamp()
    }

    fn next(schedule: &str, after: &str) -> String {
        let next = Schedule::parse(schedule).unwrap().next_after(at(after)).unwrap();
        DateTime::<Utc>::from_timestamp(next, 0).unwrap().format("%Y-%m-%d %H:%M:%S %a").to_string()
    }

    #[test]
    fn seconds() {
        assert_eq!(Schedule::parse("1 seconds").unwrap(), Schedule::Seconds(1));
        assert_eq!(Schedule::parse(" 1 second ").unwrap(), Schedule::Seconds(1));
        assert_eq!(Schedule::parse("59 Seconds").unwrap(), Schedule::Seconds(59));
        assert_eq!(Schedule::parse("10 seconds").unwrap().next_after(100), Some(110));
        for bad in ["0 seconds", "60 seconds", "-1 seconds", "x seconds", "1.5 seconds"] {
            let error = Schedule::parse(bad).unwrap_err();
            assert_eq!(error.kind, ErrorKind::InvalidParameterValue, "{bad}");
            assert!(error.detail.unwrap().contains("seconds from 1 to 59"), "{bad}");
        }
    }

    #[test]
    fn cron_next_times() {
        assert_eq!(next("* * * * *", "2024-01-01T00:00:00Z"), "2024-01-01 00:01:00 Mon");
        assert_eq!(next("* * * * *", "2024-01-01T00:00:59Z"), "2024-01-01 00:01:00 Mon");
        assert_eq!(next("*/15 * * * *", "2024-01-01T00:07:00Z"), "2024-01-01 00:15:00 Mon");
        assert_eq!(next("*/15 * * * *", "2024-01-01T00:45:00Z"), "2024-01-01 01:00:00 Mon");
        assert_eq!(next("30 2 * * *", "2024-01-01T02:30:00Z"), "2024-01-02 02:30:00 Tue");
        assert_eq!(next("0 9-17/4 * * mon-fri", "2024-01-05T17:00:00Z"), "2024-01-08 09:00:00 Mon");
        assert_eq!(next("0 0 1 jan,jul *", "2024-02-01T00:00:00Z"), "2024-07-01 00:00:00 Mon");
        assert_eq!(next("0 0 29 2 *", "2024-03-01T00:00:00Z"), "2028-02-29 00:00:00 Tue");
        assert_eq!(next("5/20 * * * *", "2024-01-01T00:30:00Z"), "2024-01-01 00:45:00 Mon");
        assert_eq!(next("0 12 * * 7", "2024-01-01T00:00:00Z"), "2024-01-07 12:00:00 Sun");
        assert_eq!(next("0 12 * * 0", "2024-01-01T00:00:00Z"), "2024-01-07 12:00:00 Sun");
        // Both day fields restricted: either matches (the 13th, or any Friday).
        assert_eq!(next("0 0 13 * 5", "2024-01-01T00:00:00Z"), "2024-01-05 00:00:00 Fri");
        assert_eq!(next("0 0 13 * 5", "2024-01-12T00:00:00Z"), "2024-01-13 00:00:00 Sat");
        // A day field starting with `*` leaves the day to the other one: Fridays only.
        assert_eq!(next("0 0 */1 * 5", "2024-01-06T00:00:00Z"), "2024-01-12 00:00:00 Fri");
        assert_eq!(next("@hourly", "2024-01-01T00:00:00Z"), "2024-01-01 01:00:00 Mon");
        assert_eq!(next("@daily", "2024-01-01T00:00:00Z"), "2024-01-02 00:00:00 Tue");
        assert_eq!(next("@weekly", "2024-01-01T00:00:00Z"), "2024-01-07 00:00:00 Sun");
        assert_eq!(next("@monthly", "2024-01-31T23:59:59Z"), "2024-02-01 00:00:00 Thu");
        assert_eq!(next("@yearly", "2024-01-01T00:00:00Z"), "2025-01-01 00:00:00 Wed");
        assert_eq!(next("1,2,58-59 23 31 dec *", "2024-12-31T23:02:00Z"), "2024-12-31 23:58:00 Tue");
    }

    #[test]
    fn never() {
        assert_eq!(Schedule::parse("0 0 30 2 *").unwrap().next_after(at("2024-01-01T00:00:00Z")), None);
        assert_eq!(Schedule::parse("0 0 31 4,6,9,11 *").unwrap().next_after(0), None);
    }

    #[test]
    fn invalid_expressions() {
        for (bad, why) in [
            ("* * * *", "5 fields; this has 4"),
            ("* * * * * *", "5 fields; this has 6"),
            ("", "5 fields; this has 0"),
            ("60 * * * *", "minute \"60\": 60 is out of range (0 to 59)"),
            ("* 24 * * *", "hour \"24\": 24 is out of range (0 to 23)"),
            ("* * 0 * *", "day of month \"0\": 0 is out of range (1 to 31)"),
            ("* * * 13 *", "month \"13\": 13 is out of range (1 to 12)"),
            ("* * * * 8", "day of week \"8\": 8 is out of range (0 to 7)"),
            ("* * * foo *", "month \"foo\": \"foo\" is not a number"),
            ("*/0 * * * *", "a step must be at least 1"),
            ("5-1 * * * *", "range 5-1 runs backwards"),
            ("1,,2 * * * *", "an empty item"),
            ("@often", "5 fields; this has 1"),
        ] {
            let error = Schedule::parse(bad).unwrap_err();
            assert_eq!(error.message, format!("invalid schedule: \"{bad}\""));
            let detail = error.detail.unwrap();
            assert!(detail.contains(why), "{bad}: {detail}");
            assert!(error.hint.unwrap().contains("cron expression"));
        }
    }

    #[test]
    fn every_minute_of_a_day_matches_a_brute_force_check() {
        // `*/7 3,5-6 * * *` from midnight: each next time is the first minute after the
        // previous one that the fields allow.
        let schedule = Schedule::parse("*/7 3,5-6 * * *").unwrap();
        let mut t = at("2024-03-10T00:00:00Z");
        let mut seen = Vec::new();
        while let Some(n) = schedule.next_after(t) {
            if n >= at("2024-03-11T00:00:00Z") {
                break;
            }
            seen.push(n);
            t = n;
        }
        let expected: Vec<i64> = (0..24 * 60)
            .filter(|m| [3, 5, 6].contains(&(m / 60)) && (m % 60) % 7 == 0)
            .map(|m| at("2024-03-10T00:00:00Z") + i64::from(m) * 60)
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn failing_tasks_back_off_doubling_up_to_a_minute() {
        let waits: Vec<f64> = (1..=9).map(|failures| backoff_seconds(1.0, failures)).collect();
        assert_eq!(waits, [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]);
        assert_eq!(backoff_seconds(0.5, 1), 0.5);
        assert_eq!(backoff_seconds(10.0, 3), 40.0);
        assert_eq!(backoff_seconds(10.0, u32::MAX), 60.0);
        // A period longer than the cap is never shortened.
        assert_eq!(backoff_seconds(3600.0, 5), 3600.0);
    }

    #[test]
    fn failures_are_logged_first_then_every_ten_minutes() {
        assert!(warn_about_failure(1, Some(1.0)));
        assert!(!warn_about_failure(2, Some(1.0)));
        assert!(!warn_about_failure(500, Some(599.0)));
        assert!(warn_about_failure(501, Some(600.0)));
        assert!(warn_about_failure(7, None));
    }
}
