//! Column definitions for IMPORT FOREIGN SCHEMA, inferred from sampled messages or
//! read from a subject's schema in a Schema Registry.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::codec::avro::AvroSchema;
use crate::codec::csv::{CsvDecoder, CsvOptions};
use crate::codec::protobuf::ProtobufSchema;
use crate::codec::Format;

/// The PostgreSQL type that holds every sampled value of a JSON key, from narrowest to
/// widest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InferredType {
    Boolean,
    Integer,
    BigInt,
    Numeric,
    Date,
    TimestampTz,
    Text,
    Jsonb,
}

impl InferredType {
    pub fn sql(self) -> &'static str {
        match self {
            InferredType::Boolean => "boolean",
            InferredType::Integer => "integer",
            InferredType::BigInt => "bigint",
            InferredType::Numeric => "numeric",
            InferredType::Date => "date",
            InferredType::TimestampTz => "timestamp with time zone",
            InferredType::Text => "text",
            InferredType::Jsonb => "jsonb",
        }
    }

    /// The narrowest type of one value; `None` for null, which says nothing.
    fn of(value: &Value) -> Option<InferredType> {
        Some(match value {
            Value::Null => return None,
            Value::Bool(_) => InferredType::Boolean,
            Value::Number(number) => match number.as_i64() {
                Some(n) if i32::try_from(n).is_ok() => InferredType::Integer,
                Some(_) => InferredType::BigInt,
                None => InferredType::Numeric,
            },
            Value::String(text) if is_date(text) => InferredType::Date,
            Value::String(text) if is_timestamp(text) => InferredType::TimestampTz,
            Value::String(_) => InferredType::Text,
            Value::Array(_) | Value::Object(_) => InferredType::Jsonb,
        })
    }

    /// A type that holds values of both.
    fn widen(self, other: InferredType) -> InferredType {
        use InferredType::*;
        match (self.min(other), self.max(other)) {
            (a, b) if a == b => a,
            (Integer | BigInt, BigInt | Numeric) => self.max(other),
            (Date, TimestampTz) => TimestampTz,
            (_, Jsonb) => Jsonb,
            _ => Text,
        }
    }
}

fn is_date(text: &str) -> bool {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").is_ok()
}

fn is_timestamp(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
        || ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .iter()
            .any(|format| chrono::NaiveDateTime::parse_from_str(text, format).is_ok())
}

/// Top-level keys of sampled JSON objects, in first-seen order, with the narrowest type
/// that holds all their values (text when only nulls were seen). Messages that are not
/// JSON objects are ignored.
pub fn json_columns(samples: &[Vec<u8>]) -> Vec<(String, InferredType)> {
    let mut order: Vec<String> = Vec::new();
    let mut types: BTreeMap<String, Option<InferredType>> = BTreeMap::new();
    for sample in samples {
        let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(sample) else { continue };
        for (key, value) in object {
            let seen = types.entry(key.clone()).or_insert_with(|| {
                order.push(key.clone());
                None
            });
            *seen = match (*seen, InferredType::of(&value)) {
                (Some(known), Some(new)) => Some(known.widen(new)),
                (known, new) => known.or(new),
            };
        }
    }
    order.into_iter().map(|key| {
        let inferred = types[&key].unwrap_or(InferredType::Text);
        (key, inferred)
    }).collect()
}

/// The largest field count among sampled CSV messages (1 when nothing parsed).
pub fn csv_field_count(samples: &[Vec<u8>], options: &CsvOptions) -> usize {
    let mut decoder = CsvDecoder::new(options.clone());
    samples.iter().filter_map(|sample| decoder.decode(sample).ok().map(|record| record.len())).max().unwrap_or(1)
}

/// What a subject's schema gives an imported table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectColumns {
    /// The format its messages are in.
    pub format: Format,
    /// The type a whole datum reads as: jsonb for records and messages.
    pub whole_type: String,
    /// A record's (or the first message type's) fields: names and types; `None` for a
    /// schema that is not a record.
    pub fields: Option<Vec<(String, String)>>,
}

/// The columns of a registered schema of type `schema_type` (the registry's `AVRO`,
/// `PROTOBUF`; `references` the texts a Protobuf schema imports): `None` for other types
/// (JSON Schema) and for schemas that do not compile, whose topics are imported as if
/// they had no subject.
pub fn subject_columns(schema_type: &str, text: &str, references: &[(String, String)]) -> Option<SubjectColumns> {
    match schema_type {
        "AVRO" => {
            let schema = AvroSchema::parse(text).ok()?;
            Some(SubjectColumns { format: Format::Avro, whole_type: schema.whole_type(), fields: schema.columns() })
        }
        "PROTOBUF" => {
            let schema = ProtobufSchema::compile(text, references).ok()?;
            Some(SubjectColumns { format: Format::Protobuf, whole_type: "jsonb".into(), fields: schema.columns() })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(lines: &[&str]) -> Vec<Vec<u8>> {
        lines.iter().map(|line| line.as_bytes().to_vec()).collect()
    }

    #[test]
    fn json_types_are_as_narrow_as_the_sample_allows() {
        let columns = json_columns(&samples(&[
            r#"{"id": 1, "big": 1, "price": 2, "day": "2024-01-02", "at": "2024-01-02T03:04:05Z", "flag": true, "tags": [1], "name": "a", "maybe": null}"#,
            r#"{"id": 2, "big": 9999999999, "price": 2.5, "day": "2024-01-03", "at": "2024-01-02 03:04:05", "flag": false, "tags": {"a": 1}, "name": 7, "extra": "x"}"#,
            "not json",
            "[1, 2]",
        ]));
        assert_eq!(
            columns,
            vec![
                ("id".into(), InferredType::Integer),
                ("big".into(), InferredType::BigInt),
                ("price".into(), InferredType::Numeric),
                ("day".into(), InferredType::Date),
                ("at".into(), InferredType::TimestampTz),
                ("flag".into(), InferredType::Boolean),
                ("tags".into(), InferredType::Jsonb),
                ("name".into(), InferredType::Text),
                ("maybe".into(), InferredType::Text),
                ("extra".into(), InferredType::Text),
            ]
        );
        assert!(json_columns(&samples(&["nothing"])).is_empty());
        assert_eq!(InferredType::Date.widen(InferredType::TimestampTz), InferredType::TimestampTz);
        assert_eq!(InferredType::Boolean.widen(InferredType::Integer), InferredType::Text);
    }

    #[test]
    fn csv_takes_the_widest_record() {
        let options = CsvOptions::default();
        assert_eq!(csv_field_count(&samples(&["a,b", "a,b,c", "x"]), &options), 3);
        assert_eq!(csv_field_count(&[], &options), 1);
    }

    #[test]
    fn registered_schemas_give_their_format_and_fields() {
        let record = r#"{"type": "record", "name": "k", "fields": [{"name": "id", "type": "long"}, {"name": "region", "type": ["null", "string"]}]}"#;
        assert_eq!(
            subject_columns("AVRO", record, &[]),
            Some(SubjectColumns {
                format: Format::Avro,
                whole_type: "jsonb".into(),
                fields: Some(vec![("id".into(), "bigint".into()), ("region".into(), "text".into())]),
            })
        );
        assert_eq!(
            subject_columns("AVRO", r#""long""#, &[]),
            Some(SubjectColumns { format: Format::Avro, whole_type: "bigint".into(), fields: None })
        );
        let proto = "syntax = \"proto3\"; message K { int64 id = 1; string region = 2; }";
        assert_eq!(
            subject_columns("PROTOBUF", proto, &[]),
            Some(SubjectColumns {
                format: Format::Protobuf,
                whole_type: "jsonb".into(),
                fields: Some(vec![("id".into(), "bigint".into()), ("region".into(), "text".into())]),
            })
        );
        // JSON Schema is not read; a schema that does not compile is as no schema.
        assert_eq!(subject_columns("JSON", r#"{"type": "object"}"#, &[]), None);
        assert_eq!(subject_columns("AVRO", "not avro", &[]), None);
        assert_eq!(subject_columns("PROTOBUF", "message {", &[]), None);
    }
}
