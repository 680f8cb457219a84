//! Row codecs: how a message payload maps onto a table's data columns.
//!
//! Pure Rust, shared by the scan (decode) and the producer (encode), so what one writes
//! the other reads back unchanged.

pub mod avro;
pub mod avro_encode;
mod avro_datum;
pub mod cache;
pub mod encode;
pub mod error;
pub mod csv;
pub mod debezium;
pub mod infer;
pub mod json;
pub mod native;
pub mod protobuf;
pub mod protobuf_encode;
pub mod text;
pub mod wire;

use std::borrow::Cow;

use crate::error::{capitalized, ErrorKind, FdwError};

use avro::{AvroDecoder, AvroRecord, WriterSchemas};
use protobuf::{ProtobufDecoder, ProtobufRecord};
use csv::{CsvDecoder, CsvError, CsvOptions, CsvRecord};
use json::{JsonMessage, JsonPath};
use native::FieldValue;

/// How a message's payload maps onto the data columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One CSV record per message, fields by position.
    Csv,
    /// One JSON object per message, columns by key.
    Json,
    /// The whole message in the table's one data column (text or bytea).
    Raw,
    /// One Avro record per message, columns by field name (see `avro`).
    Avro,
    /// One Protobuf message per message, columns by field name (see `protobuf`).
    Protobuf,
}

impl Format {
    /// Whether messages are records of a schema (Avro, Protobuf).
    pub fn has_schema(self) -> bool {
        matches!(self, Format::Avro | Format::Protobuf)
    }

    /// The value of the table option `format`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Raw => "raw",
            Format::Avro => "avro",
            Format::Protobuf => "protobuf",
        }
    }

    /// Whether columns map to named (and nested) fields of a record.
    pub fn has_fields(self) -> bool {
        matches!(self, Format::Json | Format::Avro | Format::Protobuf)
    }
}

/// The PostgreSQL types meta columns can have; the glue classifies a column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    SmallInt,
    Integer,
    BigInt,
    Text,
    Bytea,
    TimestampTz,
    Json,
    Jsonb,
    Other,
}

impl ColumnType {
    /// Whether the column takes nested values as JSON text.
    pub fn holds_json(self) -> bool {
        matches!(self, ColumnType::Json | ColumnType::Jsonb)
    }
}

/// A data column: its name, type and, for JSON and Avro, where its value sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDef {
    pub name: String,
    pub column_type: ColumnType,
    pub json_path: JsonPath,
}

/// Decodes payloads of one format, reusing its buffers from message to message.
pub enum PayloadDecoder {
    Csv(CsvDecoder),
    Json,
    /// JSON keys: any JSON value (see `json::decode_key`).
    JsonKey,
    Raw,
    Avro(AvroDecoder),
    Protobuf(ProtobufDecoder),
}

/// One decoded message.
pub enum Decoded<'a> {
    Csv(CsvRecord<'a>),
    Json(JsonMessage<'a>),
    Raw(&'a [u8]),
    Avro(AvroRecord<'a>),
    Protobuf(ProtobufRecord),
}

/// How a message's fields fail to match the table's data columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// Fields or keys no column takes.
    Extra(String),
    /// A column the message has no field for (CSV).
    Missing(String),
    /// A record field no column reads (Avro, Protobuf): a problem under `strict` only, since a
    /// table often reads some of a record's fields.
    Unread(String),
}

impl Mismatch {
    pub fn text(&self) -> &str {
        match self {
            Mismatch::Extra(text) | Mismatch::Missing(text) | Mismatch::Unread(text) => text,
        }
    }
}

/// Where a message came from, for error messages.
pub struct MessagePosition<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl MessagePosition<'_> {
    pub fn describe(&self) -> String {
        format!("topic \"{}\", partition {}, offset {}", self.topic, self.partition, self.offset)
    }
}

/// The error of a message that is not one of the table's format (`reason`: why, which may
/// end in a schema registry's own sentence, with or without its full stop).
pub fn malformed_message(position: &MessagePosition<'_>, reason: &str, payload: &[u8]) -> FdwError {
    FdwError::new(ErrorKind::BadMessageFormat, format!("malformed Kafka message at {}", position.describe()))
        .with_detail(format!("{}. Message: {}", capitalized(reason.trim_end_matches('.')), excerpt(payload)))
}

/// The error of a message holding a value that a column's type refuses (`cause`: the
/// type's own words, as PostgreSQL's input function or cast said them), naming the column
/// where it is known.
pub fn invalid_value(kind: ErrorKind, position: &MessagePosition<'_>, column: Option<&str>, cause: &str, payload: &[u8]) -> FdwError {
    let detail = match column {
        Some(column) => format!("Column \"{column}\": {cause}. Message: {}", excerpt(payload)),
        None => format!("{}. Message: {}", capitalized(cause), excerpt(payload)),
    };
    FdwError::new(kind, format!("invalid value in Kafka message at {}", position.describe())).with_detail(detail)
}

/// The error of a message whose fields do not match the table's data columns (under the
/// table option strict, or an extra field with junk columns).
pub fn mismatched_message(position: &MessagePosition<'_>, mismatch: &Mismatch, payload: &[u8]) -> FdwError {
    FdwError::new(ErrorKind::BadMessageFormat, format!("Kafka message at {} does not match the table", position.describe()))
        .with_detail(format!("{}. Message: {}", capitalized(mismatch.text()), excerpt(payload)))
        .with_hint("Without the table option strict, extra fields are ignored and missing ones are NULL.")
}

/// The start of a payload, lossily decoded, for error details.
pub fn excerpt(bytes: &[u8]) -> String {
    const LIMIT: usize = 60;
    // Control characters as \xNN: binary messages (Avro) would otherwise end the text at
    // their first zero byte.
    let text: String = String::from_utf8_lossy(&bytes[..bytes.len().min(LIMIT)])
        .chars()
        .map(|c| if c.is_control() { format!("\\x{:02x}", c as u32) } else { c.to_string() })
        .collect();
    if bytes.len() > LIMIT {
        format!("\"{text}…\"")
    } else {
        format!("\"{text}\"")
    }
}

impl PayloadDecoder {
    /// A decoder of `format`; `writer_schemas` is asked only for Avro and Protobuf.
    pub fn new(format: Format, csv: &CsvOptions, writer_schemas: impl FnOnce() -> WriterSchemas) -> Self {
        match format {
            Format::Csv => PayloadDecoder::Csv(CsvDecoder::new(csv.clone())),
            Format::Json => PayloadDecoder::Json,
            Format::Raw => PayloadDecoder::Raw,
            Format::Avro => PayloadDecoder::Avro(AvroDecoder::new(writer_schemas())),
            Format::Protobuf => match writer_schemas() {
                WriterSchemas::Registry(registry) => PayloadDecoder::Protobuf(ProtobufDecoder::new(registry)),
                WriterSchemas::Given(_) => unreachable!("a given schema (avro_schema) is for format 'avro' only"),
            },
        }
    }

    /// A decoder of keys in `format` (json, avro or protobuf): as for payloads, but a
    /// JSON or Avro key need not be an object or record.
    pub fn for_keys(format: Format, csv: &CsvOptions, writer_schemas: impl FnOnce() -> WriterSchemas) -> Self {
        match format {
            Format::Avro => PayloadDecoder::Avro(AvroDecoder::for_keys(writer_schemas())),
            Format::Json => PayloadDecoder::JsonKey,
            _ => PayloadDecoder::new(format, csv, writer_schemas),
        }
    }

    /// Parses a payload; the error says why it is not a message of this format, and
    /// holds what could still be read of it.
    pub fn decode<'a>(&'a mut self, payload: &'a [u8]) -> Result<Decoded<'a>, Undecodable<'a>> {
        match self {
            PayloadDecoder::Csv(decoder) => match decoder.decode(payload) {
                // Decoded again from the decoder's buffers, so the error arm may borrow them too.
                Ok(_) => Ok(Decoded::Csv(decoder.fields())),
                Err(error) => Err(Undecodable {
                    reason: error.to_string(),
                    partial: matches!(error, CsvError::UnterminatedQuote { .. })
                        .then(|| Decoded::Csv(decoder.fields())),
                }),
            },
            PayloadDecoder::Json => {
                json::decode(payload).map(Decoded::Json).map_err(|e| Undecodable { reason: e.to_string(), partial: None })
            }
            PayloadDecoder::JsonKey => {
                json::decode_key(payload).map(Decoded::Json).map_err(|e| Undecodable { reason: e.to_string(), partial: None })
            }
            PayloadDecoder::Raw => Ok(Decoded::Raw(payload)),
            PayloadDecoder::Avro(decoder) => {
                decoder.decode(payload).map(Decoded::Avro).map_err(|e| Undecodable { reason: e.to_string(), partial: None })
            }
            PayloadDecoder::Protobuf(decoder) => {
                decoder.decode(payload).map(Decoded::Protobuf).map_err(|e| Undecodable { reason: e.to_string(), partial: None })
            }
        }
    }
}

/// A payload that is not a message of the table's format.
pub struct Undecodable<'a> {
    /// Why not.
    pub reason: String,
    /// The fields read before the problem (CSV before an unterminated quote): the
    /// columns they map to keep their values in the junk modes, as in adjust/kafka_fdw.
    pub partial: Option<Decoded<'a>>,
}

impl std::fmt::Debug for Undecodable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Undecodable").field("reason", &self.reason).field("partial", &self.partial.is_some()).finish()
    }
}

impl Decoded<'_> {
    /// The value of data column `index` as [`field`](Self::field) gives it, typed where
    /// the format knows its type (Avro).
    pub fn value(&self, index: usize, field: &FieldDef) -> Option<FieldValue<'_>> {
        match self {
            Decoded::Avro(record) => record.value(&field.json_path, field.column_type.holds_json()),
            _ => self.field(index, field).map(FieldValue::Text),
        }
    }

    /// The text of data column `index` (described by `field`), `None` for NULL.
    pub fn field(&self, index: usize, field: &FieldDef) -> Option<Cow<'_, [u8]>> {
        match self {
            Decoded::Csv(record) => record.field(index).map(Cow::Borrowed),
            Decoded::Json(message) => {
                message.field(&field.json_path, field.column_type.holds_json())
            }
            Decoded::Raw(payload) => Some(Cow::Borrowed(payload)),
            Decoded::Avro(record) => record.field(&field.json_path, field.column_type.holds_json()),
            Decoded::Protobuf(message) => message.field(&field.json_path, field.column_type.holds_json()),
        }
    }

    /// Fields the columns don't take, and columns the message has no field for.
    pub fn mismatches(&self, fields: &[FieldDef]) -> Vec<Mismatch> {
        match self {
            Decoded::Csv(record) if record.len() > fields.len() => {
                vec![Mismatch::Extra("extra data after last expected column".to_string())]
            }
            Decoded::Csv(record) => fields[record.len()..]
                .iter()
                .take(1)
                .map(|field| Mismatch::Missing(format!("missing data for column \"{}\"", field.name)))
                .collect(),
            Decoded::Json(message) => message
                .unmapped_keys(fields.iter().map(|f| &f.json_path))
                .into_iter()
                .map(|key| Mismatch::Extra(format!("key \"{key}\" maps to no column")))
                .collect(),
            Decoded::Avro(record) => record
                .unmapped_fields(fields.iter().map(|f| &f.json_path))
                .into_iter()
                .map(|name| Mismatch::Unread(format!("field \"{name}\" maps to no column")))
                .collect(),
            Decoded::Protobuf(message) => message
                .unmapped_fields(fields.iter().map(|f| &f.json_path))
                .into_iter()
                .map(|name| Mismatch::Unread(format!("field \"{name}\" maps to no column")))
                .collect(),
            Decoded::Raw(_) => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_avro() -> WriterSchemas {
        unreachable!("not an Avro table")
    }
    use json::JsonPath;

    fn field(name: &str) -> FieldDef {
        FieldDef { name: name.into(), column_type: ColumnType::Text, json_path: JsonPath::Keys(vec![name.into()]) }
    }

    #[test]
    fn mismatches_of_csv_and_json() {
        let fields = [field("a"), field("b")];
        let mut csv = PayloadDecoder::new(Format::Csv, &CsvOptions::default(), no_avro);
        assert_eq!(csv.decode(b"1,2").unwrap().mismatches(&fields), vec![]);
        assert_eq!(
            csv.decode(b"1,2,3").unwrap().mismatches(&fields),
            vec![Mismatch::Extra("extra data after last expected column".into())]
        );
        assert_eq!(csv.decode(b"1").unwrap().mismatches(&fields), vec![Mismatch::Missing("missing data for column \"b\"".into())]);
        // An unterminated quote: the fields before it are still there.
        let undecodable = csv.decode(b"1,\"2,3").err().unwrap();
        assert_eq!(undecodable.reason, "unterminated CSV quoted field (field 2)");
        let partial = undecodable.partial.unwrap();
        assert_eq!(partial.field(0, &fields[0]).as_deref(), Some(&b"1"[..]));
        assert_eq!(partial.field(1, &fields[1]), None);
        assert!(csv.decode(b"1,2\n3").err().unwrap().partial.is_none());
        let mut json = PayloadDecoder::new(Format::Json, &CsvOptions::default(), no_avro);
        assert_eq!(
            json.decode(br#"{"a": 1, "c": 2}"#).unwrap().mismatches(&fields),
            vec![Mismatch::Extra("key \"c\" maps to no column".into())]
        );
        assert!(json.decode(b"[]").is_err());
        let mut raw = PayloadDecoder::new(Format::Raw, &CsvOptions::default(), no_avro);
        let decoded = raw.decode(b"\xff\x00anything").unwrap();
        assert_eq!(decoded.field(0, &field("a")).unwrap().as_ref(), b"\xff\x00anything");
    }

    /// A benchmark, not a test (bench/run.sh runs it): decode rate of a typical row.
    #[test]
    #[ignore]
    fn codec_throughput() {
        let fields = [field("some_int"), field("some_text"), field("some_date"), field("some_time")];
        let csv_row = b"123456,payload text number 000123456 with some padding to reach about one hundred bytes,2024-05-17,2024-01-01 12:34:56";
        let json_row = br#"{"some_int": 123456, "some_text": "payload text number 000123456 with some padding", "some_date": "2024-05-17", "some_time": "2024-01-01 12:34:56"}"#;
        // The same record in Avro (bare, the schema given): a long, a string, a date and a
        // local timestamp, as the CSV and JSON rows hold.
        let schema = avro::AvroSchema::parse(
            r#"{"type": "record", "name": "Row", "fields": [
                {"name": "some_int", "type": "long"}, {"name": "some_text", "type": "string"},
                {"name": "some_date", "type": {"type": "int", "logicalType": "date"}},
                {"name": "some_time", "type": {"type": "long", "logicalType": "local-timestamp-micros"}}]}"#,
        )
        .unwrap();
        let avro_row = [
            &[0x80, 0x89, 0x0f][..], // 123456, zigzag varint
            &[0x5e][..],             // string of 47 bytes
            b"payload text number 000123456 with some padding",
            &[0xa8, 0xb6, 0x02][..],                                  // 19860 days: 2024-05-17
            &[0x80, 0xf0, 0xd9, 0xbf, 0xb3, 0xf8, 0x86, 0x06][..], // 2024-01-01 12:34:56 in µs
        ]
        .concat();
        // And in Protobuf (Confluent-framed, schema id 1, message index [0]): int64,
        // string, and the date and time as strings (Protobuf has no date type).
        let proto = r#"syntax = "proto3"; message Row { int64 some_int = 1; string some_text = 2; string some_date = 3; string some_time = 4; }"#;
        let protobuf_row = [
            &[0, 0, 0, 0, 1, 0, 0x08, 0xc0, 0xc4, 0x07, 0x12, 0x2f][..],
            b"payload text number 000123456 with some padding",
            &[0x1a, 0x0a][..],
            b"2024-05-17",
            &[0x22, 0x13][..],
            b"2024-01-01 12:34:56",
        ]
        .concat();
        struct OneSchema(String);
        impl wire::SchemaById for OneSchema {
            fn schema(&mut self, _: u32) -> Result<wire::CompiledSchema, error::CodecError> {
                wire::CompiledSchema::compile(&wire::WriterSchema { schema_type: "PROTOBUF".into(), text: self.0.clone(), references: Vec::new() })
            }
        }
        let rows = [
            ("csv", Format::Csv, &csv_row[..]),
            ("json", Format::Json, &json_row[..]),
            ("avro", Format::Avro, &avro_row[..]),
            ("protobuf", Format::Protobuf, &protobuf_row[..]),
        ];
        for (name, format, row) in rows {
            let mut decoder = PayloadDecoder::new(format, &CsvOptions::default(), || match format {
                Format::Protobuf => avro::WriterSchemas::Registry(Box::new(OneSchema(proto.to_string()))),
                _ => avro::WriterSchemas::Given(schema.clone()),
            });
            let check = decoder.decode(row).unwrap();
            assert_eq!(check.field(0, &fields[0]).as_deref(), Some(&b"123456"[..]), "{name}");
            assert!(check.field(3, &fields[3]).unwrap().starts_with(b"2024-01-01 12:34:56"), "{name}");
            let messages = 1_000_000;
            let started = std::time::Instant::now();
            let mut bytes = 0;
            for _ in 0..messages {
                let decoded = decoder.decode(std::hint::black_box(row)).unwrap();
                for (i, f) in fields.iter().enumerate() {
                    bytes += decoded.field(i, f).map_or(0, |text| text.len());
                }
            }
            assert!(bytes > 0);
            println!("codec {name}: {} messages/s", (messages as f64 / started.elapsed().as_secs_f64()) as u64);
        }
    }
}
