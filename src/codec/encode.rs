//! What the encoders of typed formats (Avro, Protobuf) share: a row's columns as cells,
//! and the encoder of a table's format. The glue hands over what needs no parsing
//! (booleans, bytes, dates and times as numbers, JSON) and the output function's text
//! for the rest, so that nothing depends on the session's DateStyle or TimeZone.

use std::borrow::Cow;
use super::error::CodecError;

use serde_json::Value as Json;

use super::avro_encode::AvroEncoder;
use super::json::JsonPath;
use super::protobuf_encode::ProtobufEncoder;
use super::text::{date_text, time_text, timestamp_text};

/// Encodes rows as records of the table's writer schema.
pub enum RecordEncoder {
    Avro(AvroEncoder),
    Protobuf(ProtobufEncoder),
}

impl RecordEncoder {
    /// Encodes a row into `out` (cleared first); the error names the column or field.
    pub fn encode(&self, columns: &[ColumnValue<'_>], out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            RecordEncoder::Avro(encoder) => encoder.encode(columns, out),
            RecordEncoder::Protobuf(encoder) => encoder.encode(columns, out),
        }
    }
}

/// One column of a row to encode: where it goes (a field's name or path, or the whole
/// record) and its value.
pub struct ColumnValue<'a> {
    pub name: &'a str,
    pub path: &'a JsonPath,
    pub cell: Cell<'a>,
}

/// A column's PostgreSQL type, as far as a schema derived from the table's columns
/// (`auto_register`) tells types apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlType {
    Boolean,
    SmallInt,
    Integer,
    BigInt,
    Real,
    Double,
    /// With its precision and scale, if the column has them.
    Numeric(Option<(u32, u32)>),
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Uuid,
    Json,
    Array(Box<SqlType>),
    /// Text, and every type written as its text.
    Text,
}

/// A data column a derived schema has a field for.
pub struct DerivedField<'a> {
    pub name: &'a str,
    pub path: &'a JsonPath,
    pub sql_type: SqlType,
    pub not_null: bool,
}

/// The name a derived field gets: the column's (or its `field` option's) one key, which
/// must be a valid Avro and Protobuf name. json and jsonb columns get no field: neither
/// format has a type that reads back as JSON (a string would read back as a JSON string).
pub fn derived_field_name<'a>(field: &DerivedField<'a>) -> Result<&'a str, CodecError> {
    if field.sql_type == SqlType::Json {
        return Err(CodecError::Schema(format!(
            "column \"{}\" is json or jsonb, which no field of a derived schema reads back as; register the schema yourself (a record, map or array field for it)",
            field.name
        )));
    }
    let name = match field.path {
        JsonPath::Keys(keys) if keys.len() == 1 => keys[0].as_str(),
        _ => return Err(CodecError::Schema(format!("column \"{}\" reads a nested field or the whole record: a schema cannot be derived for it", field.name))),
    };
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(CodecError::Schema(format!("\"{name}\" is not a valid field name for a schema (letters, digits and _, not starting with a digit)")));
    }
    Ok(name)
}

/// A topic's name as a record or message name: letters, digits and _.
pub fn derived_record_name(topic: &str) -> String {
    let name: String = topic.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        format!("_{name}")
    } else {
        name
    }
}

/// A column's value.

#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    /// The output function's text of a number (integers, floats, numeric).
    Number(Cow<'a, str>),
    /// The output function's text of anything else: strings, uuid, …
    Text(Cow<'a, str>),
    Bool(bool),
    Bytes(&'a [u8]),
    /// A timestamp as microseconds since 1970-01-01 00:00: the instant (UTC) and the wall
    /// clock, one of them converted from the other in the session's time zone, as
    /// PostgreSQL casts between timestamptz and timestamp.
    Timestamp { utc: i64, local: i64 },
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// json and jsonb values, and arrays (as `array_to_json` gives them).
    Json(Json),
}

impl<'a> Cell<'a> {
    /// A value inside a JSON column, as a cell of its own.
    pub fn of_json(json: &'a Json) -> Cell<'a> {
        match json {
            Json::Null => Cell::Null,
            Json::Bool(b) => Cell::Bool(*b),
            Json::Number(n) => Cell::Number(Cow::Owned(n.to_string())),
            Json::String(s) => Cell::Text(Cow::Borrowed(s)),
            other => Cell::Json(other.clone()),
        }
    }

    /// The value as text, as PostgreSQL would print it (timestamps in UTC, ISO style);
    /// `None` for bytes that are not UTF-8 and for NULL.
    pub fn text(&self) -> Option<Cow<'_, str>> {
        Some(match self {
            Cell::Null => return None,
            Cell::Text(text) | Cell::Number(text) => Cow::Borrowed(text.as_ref()),
            Cell::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Cell::Bytes(bytes) => Cow::Borrowed(std::str::from_utf8(bytes).ok()?),
            Cell::Timestamp { utc, .. } => Cow::Owned(timestamp_text(*utc, true)),
            Cell::Date(days) => Cow::Owned(date_text(*days)),
            Cell::Time(micros) => Cow::Owned(time_text(*micros)),
            Cell::Json(Json::String(text)) => Cow::Borrowed(text.as_str()),
            Cell::Json(json) => Cow::Owned(json.to_string()),
        })
    }

    /// What the value is, for error messages.
    pub fn describe(&self) -> String {
        match self {
            Cell::Null => "NULL".to_string(),
            Cell::Bytes(bytes) => format!("{} bytes", bytes.len()),
            other => {
                let text = other.text().unwrap_or_default();
                let mut shown: String = text.chars().take(60).collect();
                if shown.len() < text.len() {
                    shown.push('…');
                }
                format!("\"{shown}\"")
            }
        }
    }
}

/// The bytes of bytea's hex form, `\x` and pairs of hex digits; `None` for other texts.
pub fn bytea_hex(text: &str) -> Option<Vec<u8>> {
    let digits = text.strip_prefix("\\x")?.as_bytes();
    if digits.len() % 2 != 0 {
        return None;
    }
    digits.chunks(2).map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()).collect()
}
