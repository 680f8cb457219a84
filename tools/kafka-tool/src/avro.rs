//! Avro test data: a JSON value converted to an Avro value of a schema, encoded as a bare
//! datum or framed in Confluent's wire format.
//!
//! The JSON is what a person writes, not Avro's JSON encoding: a nullable union takes a
//! plain value or null, an enum its symbol, bytes and fixed a string of code points
//! U+0000..U+00FF (one byte each, as in Avro's JSON encoding), a decimal a string or
//! number whose digits are encoded exactly at the schema's scale, a uuid its text, and the
//! date and time types either their Avro integer or a date/time string.

use std::collections::HashMap;

use apache_avro::schema::{DecimalSchema, ResolvedSchema, Schema};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::{Days, Decimal, Duration, Millis, Months, Uuid};
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use num_bigint::BigInt;
use serde_json::Value as Json;

use crate::Result;

/// Confluent's wire format: magic byte 0, then the schema id as 4 bytes big-endian.
const MAGIC_BYTE: u8 = 0;

pub struct AvroEncoder<'s> {
    schema: &'s Schema,
    /// The named types of the schema, for the references to them inside it.
    names: ResolvedSchema<'s>,
    writer: GenericDatumWriter<'s>,
}

impl<'s> AvroEncoder<'s> {
    pub fn new(schema: &'s Schema) -> Result<Self> {
        Ok(AvroEncoder { schema, names: ResolvedSchema::try_from(schema)?, writer: GenericDatumWriter::builder(schema).build()? })
    }

    /// The datum of `json`, after a Confluent header with `schema_id` if there is one.
    pub fn encode(&self, json: &Json, schema_id: Option<u32>) -> Result<Vec<u8>> {
        let value = self.value(json, self.schema)?;
        let mut encoded = Vec::new();
        if let Some(id) = schema_id {
            encoded.push(MAGIC_BYTE);
            encoded.extend_from_slice(&id.to_be_bytes());
        }
        self.writer.write_value_ref(&mut encoded, &value)?;
        Ok(encoded)
    }

    fn value(&self, json: &Json, schema: &Schema) -> std::result::Result<Value, String> {
        let text = || json.as_str().ok_or_else(|| format!("expected a string, not {json}"));
        Ok(match schema {
            Schema::Null if json.is_null() => Value::Null,
            Schema::Null => return Err(format!("expected null, not {json}")),
            Schema::Boolean => Value::Boolean(json.as_bool().ok_or_else(|| format!("expected true or false, not {json}"))?),
            Schema::Int => Value::Int(int(json)?),
            Schema::Long => Value::Long(long(json)?),
            Schema::Float => Value::Float(number(json)? as f32),
            Schema::Double => Value::Double(number(json)?),
            Schema::Bytes => Value::Bytes(latin1(text()?)?),
            Schema::String => Value::String(text()?.to_string()),
            Schema::Array(array) => {
                let items = json.as_array().ok_or_else(|| format!("expected an array, not {json}"))?;
                Value::Array(items.iter().map(|item| self.value(item, &array.items)).collect::<std::result::Result<_, _>>()?)
            }
            Schema::Map(map) => {
                let entries = json.as_object().ok_or_else(|| format!("expected an object, not {json}"))?;
                let mut values = HashMap::with_capacity(entries.len());
                for (key, item) in entries {
                    values.insert(key.clone(), self.value(item, &map.types).map_err(|e| format!("{key}: {e}"))?);
                }
                Value::Map(values)
            }
            Schema::Union(union) => {
                // The first branch the value fits: null for null, else a non-null branch.
                let fits = union.variants().iter().enumerate().filter(|(_, variant)| json.is_null() == matches!(variant, Schema::Null));
                let mut found = None;
                for (index, variant) in fits {
                    if let Ok(value) = self.value(json, variant) {
                        found = Some(Value::Union(index as u32, Box::new(value)));
                        break;
                    }
                }
                found.ok_or_else(|| format!("{json} fits no branch of the union"))?
            }
            Schema::Record(record) => {
                let fields = json.as_object().ok_or_else(|| format!("expected an object, not {json}"))?;
                if let Some(unknown) = fields.keys().find(|key| !record.fields.iter().any(|f| &f.name == *key)) {
                    return Err(format!("{unknown}: no such field in record {}", record.name));
                }
                let mut values = Vec::with_capacity(record.fields.len());
                for field in &record.fields {
                    let given = fields.get(&field.name).or(field.default.as_ref());
                    let json = given.ok_or_else(|| format!("{}: missing, and it has no default", field.name))?;
                    values.push((field.name.clone(), self.value(json, &field.schema).map_err(|e| format!("{}: {e}", field.name))?));
                }
                Value::Record(values)
            }
            Schema::Enum(enumeration) => {
                let symbol = text()?;
                let index = enumeration.symbols.iter().position(|s| s == symbol);
                let index = index.ok_or_else(|| format!("{symbol} is not a symbol of enum {}", enumeration.name))?;
                Value::Enum(index as u32, symbol.to_string())
            }
            Schema::Fixed(fixed) => {
                let bytes = latin1(text()?)?;
                if bytes.len() != fixed.size {
                    return Err(format!("{} bytes for fixed {} of size {}", bytes.len(), fixed.name, fixed.size));
                }
                Value::Fixed(fixed.size, bytes)
            }
            Schema::Decimal(decimal) => Value::Decimal(decimal_value(json, decimal)?),
            Schema::Uuid(_) => Value::Uuid(Uuid::parse_str(text()?).map_err(|e| e.to_string())?),
            Schema::Date => match json.as_str() {
                Some(date) => {
                    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|e| format!("{date}: {e}"))?;
                    Value::Date((date - DateTime::UNIX_EPOCH.date_naive()).num_days() as i32)
                }
                None => Value::Date(int(json)?),
            },
            Schema::TimeMillis => Value::TimeMillis(match json.as_str() {
                Some(time) => (time_of_day(time)?.num_nanoseconds().unwrap_or_default() / 1_000_000) as i32,
                None => int(json)?,
            }),
            Schema::TimeMicros => Value::TimeMicros(match json.as_str() {
                Some(time) => time_of_day(time)?.num_microseconds().unwrap_or_default(),
                None => long(json)?,
            }),
            Schema::TimestampMillis => Value::TimestampMillis(instant(json, |t| Some(t.timestamp_millis()))?),
            Schema::TimestampMicros => Value::TimestampMicros(instant(json, |t| Some(t.timestamp_micros()))?),
            Schema::TimestampNanos => Value::TimestampNanos(instant(json, |t| t.timestamp_nanos_opt())?),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(local_instant(json, |t| Some(t.timestamp_millis()))?),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(local_instant(json, |t| Some(t.timestamp_micros()))?),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(local_instant(json, |t| t.timestamp_nanos_opt())?),
            Schema::Duration(_) => {
                let part = |name: &str| -> std::result::Result<u32, String> {
                    let n = json
                        .get(name)
                        .and_then(Json::as_u64)
                        .ok_or_else(|| format!("expected {{\"months\", \"days\", \"millis\"}}, not {json}"))?;
                    u32::try_from(n).map_err(|_| format!("{name} {n} is out of range"))
                };
                Value::Duration(Duration::new(Months::new(part("months")?), Days::new(part("days")?), Millis::new(part("millis")?)))
            }
            Schema::BigDecimal => return Err("big-decimal is not supported".into()),
            Schema::Ref { name } => {
                let named = self.names.get_names().get(name).ok_or_else(|| format!("unknown type {name}"))?;
                self.value(json, named)?
            }
        })
    }
}

fn long(json: &Json) -> std::result::Result<i64, String> {
    json.as_i64().ok_or_else(|| format!("expected an integer, not {json}"))
}

fn int(json: &Json) -> std::result::Result<i32, String> {
    i32::try_from(long(json)?).map_err(|_| format!("{json} is out of range for an int"))
}

fn number(json: &Json) -> std::result::Result<f64, String> {
    json.as_f64().ok_or_else(|| format!("expected a number, not {json}"))
}

/// Avro's JSON encoding of bytes: each code point U+0000..U+00FF is one byte.
fn latin1(text: &str) -> std::result::Result<Vec<u8>, String> {
    text.chars().map(|c| u8::try_from(c).map_err(|_| format!("{c:?} is not a byte (U+0000..U+00FF)"))).collect()
}

/// Time since midnight of `HH:MM:SS[.fraction]`.
fn time_of_day(text: &str) -> std::result::Result<chrono::Duration, String> {
    let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f").map_err(|e| format!("{text}: {e}"))?;
    Ok(chrono::Duration::seconds(time.num_seconds_from_midnight().into()) + chrono::Duration::nanoseconds(time.nanosecond().into()))
}

/// A timestamp given as the integer itself, or as RFC 3339 text.
fn instant(json: &Json, unit: impl Fn(DateTime<chrono::FixedOffset>) -> Option<i64>) -> std::result::Result<i64, String> {
    match json.as_str() {
        Some(text) => {
            let time = DateTime::parse_from_rfc3339(text).map_err(|e| format!("{text}: {e}"))?;
            unit(time).ok_or_else(|| format!("{text} is out of range"))
        }
        None => long(json),
    }
}

/// A local timestamp given as the integer itself, or as `YYYY-MM-DD[T ]HH:MM:SS[.fraction]`.
fn local_instant(json: &Json, unit: impl Fn(chrono::DateTime<chrono::Utc>) -> Option<i64>) -> std::result::Result<i64, String> {
    match json.as_str() {
        Some(text) => {
            let time = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|e| format!("{text}: {e}"))?;
            unit(time.and_utc()).ok_or_else(|| format!("{text} is out of range"))
        }
        None => long(json),
    }
}

/// The unscaled value of a decimal written in plain notation, exactly: a digit beyond
/// the scale (other than a trailing zero) or beyond the precision is an error, never
/// rounded away.
fn decimal_value(json: &Json, schema: &DecimalSchema) -> std::result::Result<Decimal, String> {
    let written = match json {
        Json::String(text) => text.clone(),
        Json::Number(number) => number.to_string(),
        _ => return Err(format!("expected a decimal string or number, not {json}")),
    };
    let (negative, unsigned) = match written.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, written.strip_prefix('+').unwrap_or(&written)),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let is_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !is_digits(whole) || !is_digits(fraction) {
        return Err(format!("{written} is not a decimal number"));
    }
    let fraction = fraction.trim_end_matches('0');
    if fraction.len() > schema.scale {
        return Err(format!("{written} has more than {} digits after the point", schema.scale));
    }
    let digits = format!("{whole}{fraction}{}", "0".repeat(schema.scale - fraction.len()));
    let significant = digits.trim_start_matches('0');
    if significant.len() > schema.precision {
        return Err(format!("{written} has more than {} digits", schema.precision));
    }
    let mut unscaled = BigInt::parse_bytes(if significant.is_empty() { b"0" } else { significant.as_bytes() }, 10)
        .ok_or_else(|| format!("{written} is not a decimal number"))?;
    if negative {
        unscaled = -unscaled;
    }
    Ok(Decimal::from(unscaled.to_signed_bytes_be()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: &str = r#"{
        "type": "record", "name": "Everything", "namespace": "t",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "small", "type": "int"},
            {"name": "flag", "type": "boolean"},
            {"name": "ratio", "type": "float"},
            {"name": "score", "type": "double"},
            {"name": "name", "type": "string"},
            {"name": "note", "type": ["null", "string"]},
            {"name": "missing_note", "type": ["null", "string"], "default": null},
            {"name": "count", "type": ["null", "long"]},
            {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
            {"name": "raw", "type": "bytes"},
            {"name": "hash", "type": {"type": "fixed", "name": "Hash", "size": 2}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "day_number", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "at_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "at_text", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "time", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "debt", "type": {"type": "fixed", "name": "Money", "size": 4, "logicalType": "decimal", "precision": 9, "scale": 3}},
            {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "counts", "type": {"type": "map", "values": "int"}},
            {"name": "other_color", "type": ["null", "Color"]},
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}}
        ]
    }"#;

    fn line() -> Json {
        json!({
            "id": 9_000_000_000i64, "small": -5, "flag": true, "ratio": 0.5, "score": 2.25,
            "name": "ünïcode", "note": "n", "count": null, "color": "GREEN",
            "raw": "\u{0}\u{ff}A", "hash": "ab", "day": "2024-02-29", "day_number": 3,
            "at_ms": 1_700_000_000_123i64, "at_us": 1_700_000_000_123_456i64,
            "at_text": "2024-01-01T00:00:01.5+01:00", "local": "2024-01-01 00:00:00",
            "time": "01:00:00.250", "price": "-123.45", "debt": 7.5,
            "uid": "550e8400-e29b-41d4-a716-446655440000", "tags": ["a", "b"], "counts": {"k": 1},
            "other_color": "RED", "inner": {"x": 1}
        })
    }

    #[test]
    fn json_line_round_trips_through_the_wire_format() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let encoder = AvroEncoder::new(&schema).unwrap();
        let framed = encoder.encode(&line(), Some(258)).unwrap();
        assert_eq!(framed[..5], [0, 0, 0, 1, 2]);
        assert_eq!(framed[5..], encoder.encode(&line(), None).unwrap());

        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&schema).build().unwrap();
        let decoded = reader.read_value(&mut &framed[5..]).unwrap();
        let decimal = |unscaled: i64| Value::Decimal(Decimal::from(BigInt::from(unscaled).to_signed_bytes_be()));
        let expected = Value::Record(vec![
            ("id".into(), Value::Long(9_000_000_000)),
            ("small".into(), Value::Int(-5)),
            ("flag".into(), Value::Boolean(true)),
            ("ratio".into(), Value::Float(0.5)),
            ("score".into(), Value::Double(2.25)),
            ("name".into(), Value::String("ünïcode".into())),
            ("note".into(), Value::Union(1, Box::new(Value::String("n".into())))),
            ("missing_note".into(), Value::Union(0, Box::new(Value::Null))),
            ("count".into(), Value::Union(0, Box::new(Value::Null))),
            ("color".into(), Value::Enum(1, "GREEN".into())),
            ("raw".into(), Value::Bytes(vec![0, 255, b'A'])),
            ("hash".into(), Value::Fixed(2, b"ab".to_vec())),
            ("day".into(), Value::Date(19782)),
            ("day_number".into(), Value::Date(3)),
            ("at_ms".into(), Value::TimestampMillis(1_700_000_000_123)),
            ("at_us".into(), Value::TimestampMicros(1_700_000_000_123_456)),
            ("at_text".into(), Value::TimestampMicros(1_704_063_601_500_000)),
            ("local".into(), Value::LocalTimestampMillis(1_704_067_200_000)),
            ("time".into(), Value::TimeMillis(3_600_250)),
            ("price".into(), decimal(-12345)),
            ("debt".into(), decimal(7500)),
            ("uid".into(), Value::Uuid(Uuid::parse_str("550e8400-e29b-41d4-a716-446655440000").unwrap())),
            ("tags".into(), Value::Array(vec![Value::String("a".into()), Value::String("b".into())])),
            ("counts".into(), Value::Map(HashMap::from([("k".to_string(), Value::Int(1))]))),
            ("other_color".into(), Value::Union(1, Box::new(Value::Enum(0, "RED".into())))),
            ("inner".into(), Value::Record(vec![("x".into(), Value::Int(1))])),
        ]);
        assert_eq!(decoded, expected);
    }

    #[test]
    fn what_does_not_fit_is_an_error_naming_the_field() {
        let schema = Schema::parse_str(SCHEMA).unwrap();
        let encoder = AvroEncoder::new(&schema).unwrap();
        let cases = [
            ("price", json!("1.234"), "price: 1.234 has more than 2 digits after the point"),
            ("price", json!("12345678.9"), "price: 12345678.9 has more than 9 digits"),
            ("color", json!("BLUE"), "color: BLUE is not a symbol of enum t.Color"),
            ("small", json!(1i64 << 40), "small: 1099511627776 is out of range for an int"),
            ("raw", json!("€"), "raw: '€' is not a byte (U+0000..U+00FF)"),
            ("note", json!(5), "note: 5 fits no branch of the union"),
        ];
        for (field, value, message) in cases {
            let mut json = line();
            json[field] = value;
            assert_eq!(encoder.encode(&json, None).unwrap_err().to_string(), message);
        }
        let mut json = line();
        json.as_object_mut().unwrap().remove("name");
        assert_eq!(encoder.encode(&json, None).unwrap_err().to_string(), "name: missing, and it has no default");
        json = line();
        json["nmae"] = json!("typo");
        assert_eq!(encoder.encode(&json, None).unwrap_err().to_string(), "nmae: no such field in record t.Everything");
    }
}
