//! Values as the texts PostgreSQL's input functions take, shared by the codecs of
//! typed formats (Avro, Protobuf): bytes as `\x` hex, dates and times in ISO form
//! (timestamps in UTC with `+00`), floats with PostgreSQL's names for NaN and the
//! infinities, arrays of scalars as array literals.

use std::fmt::Write;

use chrono::{DateTime, NaiveDate};
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

/// Days since 1970-01-01.
pub fn date_text(days: i32) -> String {
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
    match DateTime::from_timestamp_micros(micros) {
        Some(at) => at.naive_utc().format(if utc { "%Y-%m-%d %H:%M:%S%.6f+00" } else { "%Y-%m-%d %H:%M:%S%.6f" }).to_string(),
        None => format!("invalid timestamp {micros}"),
    }
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
}
