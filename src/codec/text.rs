//! Values as the texts PostgreSQL's input functions take, shared by the codecs of
//! typed formats (Avro, Protobuf): bytes as `\x` hex, dates and times in ISO form
//! (timestamps in UTC with `+00`), floats with PostgreSQL's names for NaN and the
//! infinities, arrays of scalars as array literals.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate};
use num_bigint::{BigInt, Sign};
use serde_json::{Number, Value as Json};

pub fn json_float(x: f64) -> Json {
    // JSON has no NaN or infinities: those become their PostgreSQL text.
    Number::from_f64(x).map_or_else(|| Json::String(float_text(x)), Json::Number)
}

pub fn float_text(x: f64) -> String {
    match x {
        x if x.is_nan() => "NaN".to_string(),
        x if x.is_infinite() => (if x > 0.0 { "Infinity" } else { "-Infinity" }).to_string(),
        x => x.to_string(),
    }
}

pub fn bytea_text(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + 2 * bytes.len());
    text.push_str("\\x");
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// The exact decimal text of `unscaled` × 10^-`scale`.
pub fn decimal_text(unscaled: &BigInt, scale: usize) -> String {
    let digits = unscaled.magnitude().to_string();
    let sign = if unscaled.sign() == Sign::Minus { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// Days since 1970-01-01.
pub fn date_text(days: i32) -> String {
    let mut text = String::with_capacity(10);
    if push_date(&mut text, i64::from(days)) {
        return text;
    }
    // Years before 1 or after 9999, in chrono's form (signed, for PostgreSQL to refuse or read).
    const UNIX_EPOCH_FROM_CE: i32 = 719_163;
    days.checked_add(UNIX_EPOCH_FROM_CE)
        .and_then(NaiveDate::from_num_days_from_ce_opt)
        .map_or_else(|| format!("invalid date {days}"), |date| date.format("%Y-%m-%d").to_string())
}

/// Microseconds since midnight.
pub fn time_text(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    format!("{:02}:{:02}:{:02}.{:06}", seconds / 3600, seconds / 60 % 60, seconds % 60, micros.rem_euclid(1_000_000))
}

/// Microseconds since the epoch: UTC with `+00`, or a local date and time without.
pub fn timestamp_text(micros: i64, utc: bool) -> String {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let mut text = String::with_capacity(29);
    if push_date(&mut text, micros.div_euclid(MICROS_PER_DAY)) {
        let of_day = micros.rem_euclid(MICROS_PER_DAY);
        let seconds = of_day / 1_000_000;
        text.push(' ');
        push_digits(&mut text, (seconds / 3600) as u32, 2);
        text.push(':');
        push_digits(&mut text, (seconds / 60 % 60) as u32, 2);
        text.push(':');
        push_digits(&mut text, (seconds % 60) as u32, 2);
        text.push('.');
        push_digits(&mut text, (of_day % 1_000_000) as u32, 6);
        if utc {
            text.push_str("+00");
        }
        return text;
    }
    // Years before 1 or after 9999: chrono's form, as for dates.
    match DateTime::from_timestamp_micros(micros) {
        Some(at) => at.naive_utc().format(if utc { "%Y-%m-%d %H:%M:%S%.6f+00" } else { "%Y-%m-%d %H:%M:%S%.6f" }).to_string(),
        None => format!("invalid timestamp {micros}"),
    }
}

/// Appends `YYYY-MM-DD` of a day count since 1970-01-01 if its year is 1 to 9999 (what
/// chrono's `%Y-%m-%d` gives too, without parsing a format per value); false otherwise.
fn push_date(text: &mut String, days: i64) -> bool {
    // Howard Hinnant's civil_from_days: eras of 400 years, counted from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    if !(1..=9999).contains(&year) {
        return false;
    }
    push_digits(text, year as u32, 4);
    text.push('-');
    push_digits(text, month as u32, 2);
    text.push('-');
    push_digits(text, day as u32, 2);
    true
}

/// Appends `value` zero-padded to `width` digits (it has at most that many, at most 8).
fn push_digits(text: &mut String, mut value: u32, width: usize) {
    let mut digits = [b'0'; 8];
    for digit in digits[..width].iter_mut().rev() {
        *digit += (value % 10) as u8;
        value /= 10;
    }
    text.extend(digits[..width].iter().map(|&digit| char::from(digit)));
}

/// `{"1","2",NULL}`: every item quoted (so any text is safe), NULL unquoted.
pub fn array_literal(items: impl Iterator<Item = Option<String>>) -> String {
    let mut literal = String::from("{");
    for (i, item) in items.enumerate() {
        if i > 0 {
            literal.push(',');
        }
        match item {
            None => literal.push_str("NULL"),
            Some(text) => {
                literal.push('"');
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        literal.push('\\');
                    }
                    literal.push(c);
                }
                literal.push('"');
            }
        }
    }
    literal.push('}');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_postgresql_reads() {
        assert_eq!(bytea_text(&[0, 255]), "\\x00ff");
        assert_eq!(date_text(19_723), "2024-01-01");
        assert_eq!(time_text(3_723_004_000), "01:02:03.004000");
        assert_eq!(timestamp_text(86_400_000_000, false), "1970-01-02 00:00:00.000000");
        assert_eq!(timestamp_text(-1, true), "1969-12-31 23:59:59.999999+00");
        assert_eq!((float_text(f64::NAN), float_text(f64::NEG_INFINITY), float_text(2.5)), ("NaN".into(), "-Infinity".into(), "2.5".into()));
        assert_eq!(json_float(f64::INFINITY), Json::String("Infinity".into()));
        assert_eq!(array_literal([Some("a\"b".to_string()), None, Some("c\\".into())].into_iter()), r#"{"a\"b",NULL,"c\\"}"#);
    }

    /// Dates and timestamps are written without chrono's formatter for years 1 to 9999;
    /// the texts must be chrono's all the same, at every edge and at random.
    #[test]
    fn dates_and_timestamps_are_chronos_texts() {
        let chrono_date = |days: i32| {
            NaiveDate::from_num_days_from_ce_opt(days + 719_163).map(|date| date.format("%Y-%m-%d").to_string())
        };
        let chrono_timestamp = |micros: i64, utc: bool| {
            DateTime::from_timestamp_micros(micros)
                .map(|at| at.naive_utc().format(if utc { "%Y-%m-%d %H:%M:%S%.6f+00" } else { "%Y-%m-%d %H:%M:%S%.6f" }).to_string())
        };
        const DAY: i64 = 86_400_000_000;
        // 0001-01-01 and 9999-12-31 as days since 1970-01-01, and the days around them.
        let (first, last) = (-719_162_i64, 2_932_896_i64);
        let mut days: Vec<i64> = [first, last, 0, -1, 11_016, 10_957, 19_782, 19_417, 47_540, -141_427]
            .iter()
            .flat_map(|&d| [d - 1, d, d + 1])
            .collect();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..50_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            days.push(first - 1000 + (seed % (last - first + 2000) as u64) as i64);
        }
        for (i, &day) in days.iter().enumerate() {
            let day32 = day as i32;
            assert_eq!(Some(date_text(day32)), chrono_date(day32), "day {day}");
            let micros = day * DAY + (seed.rotate_left(i as u32 % 64) % DAY as u64) as i64;
            for at in [day * DAY, micros, day * DAY - 1] {
                assert_eq!(Some(timestamp_text(at, i % 2 == 0)), chrono_timestamp(at, i % 2 == 0), "{at}");
            }
        }
        assert_eq!(date_text(i32::MIN), "invalid date -2147483648");
        assert_eq!(timestamp_text(i64::MAX, true), format!("invalid timestamp {}", i64::MAX));
    }
}
