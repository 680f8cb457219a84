//! Typed values a decoder hands over as they are, and the columns that take them without
//! their type's input function.
//!
//! A schema'd format (Avro) knows a field is a long, a date or a timestamp; writing it as
//! text only for PostgreSQL's input function to parse it back costs more than the rest
//! of the row (a timestamp's text goes through `ParseDateTime` and `DecodeDateTime`).
//! [`cell`] gives the value a column of a built-in type holds, computed the way the
//! input function would compute it from the value's text, and `None` whenever it might
//! not be the same (a value out of the column type's range, a type modifier, a date
//! before year 1, text with a NUL byte): the caller then takes the text path, which
//! gives the input function's value or its error. An in-database test checks the two
//! paths against each other (`pg/in_db_tests.rs`).

use std::borrow::Cow;

use super::text::{date_text, float_text, timestamp_text};

/// A decoded value of a type some columns take as it is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Native<'a> {
    Boolean(bool),
    /// An int or a long.
    Integer(i64),
    Float(f32),
    Double(f64),
    Text(&'a str),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since 1970-01-01 00:00, and whether in UTC (a local timestamp is not).
    Timestamp(i64, bool),
}

impl<'a> Native<'a> {
    /// The text a PostgreSQL input function takes.
    pub fn text(&self) -> Cow<'a, str> {
        Cow::Owned(match self {
            Native::Boolean(b) => return Cow::Borrowed(if *b { "true" } else { "false" }),
            Native::Integer(n) => n.to_string(),
            Native::Float(x) => float_text(f64::from(*x)),
            Native::Double(x) => float_text(*x),
            Native::Text(text) => return Cow::Borrowed(text),
            Native::Date(days) => date_text(*days),
            Native::Timestamp(micros, utc) => timestamp_text(*micros, *utc),
        })
    }
}

/// A field's value: typed, or as the text its column's input function reads.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue<'a> {
    Native(Native<'a>),
    Text(Cow<'a, [u8]>),
}

/// The built-in column types [`cell`] fills. A column of another type (a domain, a type
/// modifier such as `timestamp(3)`, `varchar(n)`) has none: its input function runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    Boolean,
    /// `text`, in a UTF-8 database (elsewhere text is converted to its encoding).
    Text,
    Date,
    Timestamp,
    TimestampTz,
}

/// What a column holds: the glue makes the datum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Bool(bool),
    Text(&'a str),
    /// PostgreSQL's date: days since 2000-01-01.
    Date(i32),
    /// PostgreSQL's timestamp and timestamptz: microseconds since 2000-01-01 00:00 (UTC
    /// for timestamptz).
    Timestamp(i64),
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch.
const POSTGRES_EPOCH_DAYS: i32 = 10_957;
const MICROS_PER_DAY: i64 = 86_400_000_000;
/// The days of years 1 to 9999, the dates whose text is `YYYY-MM-DD` (others have a
/// signed year, read by PostgreSQL's rules for such years).
const FIRST_DAY: i32 = -719_162;
const LAST_DAY: i32 = 2_932_896;

/// The value `target` holds for `value`, as its input function reads `value.text()`;
/// `None` when the text path must decide.
pub fn cell<'a>(target: Target, value: &Native<'a>) -> Option<Cell<'a>> {
    match (target, *value) {
        (Target::SmallInt, Native::Integer(n)) => i16::try_from(n).ok().map(Cell::Int2),
        (Target::Integer, Native::Integer(n)) => i32::try_from(n).ok().map(Cell::Int4),
        (Target::BigInt, Native::Integer(n)) => Some(Cell::Int8(n)),
        // float_text writes the shortest text that reads back as the same value (NaN
        // as "NaN", read as the one quiet NaN); a subnormal one may be refused as out of
        // range by some versions: text path.
        (Target::Real, Native::Float(x)) if !x.is_subnormal() => Some(Cell::Float4(if x.is_nan() { f32::NAN } else { x })),
        (Target::Double, Native::Float(x)) if !x.is_subnormal() => Some(Cell::Float8(if x.is_nan() { f64::NAN } else { f64::from(x) })),
        (Target::Double, Native::Double(x)) if !x.is_subnormal() => Some(Cell::Float8(if x.is_nan() { f64::NAN } else { x })),
        (Target::Boolean, Native::Boolean(b)) => Some(Cell::Bool(b)),
        (Target::Text, Native::Text(text)) if !text.contains('\0') => Some(Cell::Text(text)),
        (Target::Date, Native::Date(days)) if (FIRST_DAY..=LAST_DAY).contains(&days) => {
            Some(Cell::Date(days - POSTGRES_EPOCH_DAYS))
        }
        // timestamp_in drops the `+00` of a UTC timestamp's text; timestamptz_in would
        // read a local one in the session's time zone: text path.
        (Target::Timestamp, Native::Timestamp(micros, _)) | (Target::TimestampTz, Native::Timestamp(micros, true)) => {
            let days = micros.div_euclid(MICROS_PER_DAY);
            (i64::from(FIRST_DAY)..=i64::from(LAST_DAY))
                .contains(&days)
                .then(|| Cell::Timestamp(micros - i64::from(POSTGRES_EPOCH_DAYS) * MICROS_PER_DAY))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_in_range_fill_their_columns_as_they_are() {
        assert_eq!(cell(Target::SmallInt, &Native::Integer(-32768)), Some(Cell::Int2(-32768)));
        assert_eq!(cell(Target::Integer, &Native::Integer(i64::from(i32::MAX))), Some(Cell::Int4(i32::MAX)));
        assert_eq!(cell(Target::BigInt, &Native::Integer(i64::MIN)), Some(Cell::Int8(i64::MIN)));
        assert_eq!(cell(Target::Real, &Native::Float(0.1)), Some(Cell::Float4(0.1)));
        assert_eq!(cell(Target::Double, &Native::Float(0.1)), Some(Cell::Float8(f64::from(0.1f32))));
        assert_eq!(cell(Target::Boolean, &Native::Boolean(true)), Some(Cell::Bool(true)));
        assert_eq!(cell(Target::Text, &Native::Text("é")), Some(Cell::Text("é")));
        assert_eq!(cell(Target::Date, &Native::Date(0)), Some(Cell::Date(-10_957)));
        assert_eq!(cell(Target::Date, &Native::Date(FIRST_DAY)), Some(Cell::Date(FIRST_DAY - 10_957)));
        assert_eq!(cell(Target::Timestamp, &Native::Timestamp(946_684_800_000_001, false)), Some(Cell::Timestamp(1)));
        assert_eq!(cell(Target::Timestamp, &Native::Timestamp(-1, true)), Some(Cell::Timestamp(-946_684_800_000_001)));
        assert_eq!(cell(Target::TimestampTz, &Native::Timestamp(0, true)), Some(Cell::Timestamp(-946_684_800_000_000)));
    }

    #[test]
    fn the_text_path_decides_what_might_read_otherwise() {
        assert_eq!(cell(Target::SmallInt, &Native::Integer(32768)), None);
        assert_eq!(cell(Target::Integer, &Native::Integer(i64::from(i32::MIN) - 1)), None);
        assert_eq!(cell(Target::Real, &Native::Double(0.1)), None);
        assert_eq!(cell(Target::Real, &Native::Float(f32::from_bits(1))), None);
        assert_eq!(cell(Target::Integer, &Native::Double(1.0)), None);
        assert_eq!(cell(Target::Double, &Native::Integer(1)), None);
        assert_eq!(cell(Target::Text, &Native::Text("a\0b")), None);
        assert_eq!(cell(Target::Text, &Native::Integer(1)), None);
        assert_eq!(cell(Target::Date, &Native::Date(FIRST_DAY - 1)), None);
        assert_eq!(cell(Target::Date, &Native::Date(LAST_DAY + 1)), None);
        assert_eq!(cell(Target::TimestampTz, &Native::Timestamp(0, false)), None);
        assert_eq!(cell(Target::Timestamp, &Native::Date(0)), None);
        assert_eq!(cell(Target::Timestamp, &Native::Timestamp(i64::MAX, true)), None);
    }

    #[test]
    fn the_range_limits_are_the_first_and_last_day_of_four_digit_years() {
        assert_eq!(date_text(FIRST_DAY), "0001-01-01");
        assert_eq!(date_text(LAST_DAY), "9999-12-31");
    }
}
