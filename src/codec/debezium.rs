//! Debezium change events as Kafka Connect's JsonConverter writes them with its schema
//! (`schemas.enable=true`: `{"schema": …, "payload": …}`): each value of the event's
//! `before` and `after` rows turned into what PostgreSQL's input functions read, by the
//! semantic type (`name`) its field's schema gives: days since 1970 into a date,
//! microseconds into a timestamp, a Connect `Decimal`'s base64 bytes into a number, a
//! `Json` field's text into JSON, and so on. Values of fields without a semantic type
//! stay as they are.

use base64::engine::general_purpose::STANDARD as BASE64;
use super::error::CodecError;
use base64::Engine;
use chrono::DateTime;
use num_bigint::BigInt;
use serde_json::Value;

use super::text;

/// The semantic type of strings holding JSON text.
pub const JSON: &str = "io.debezium.data.Json";

/// The Avro logical type that reads a value of Avro type `avro_type` carrying Kafka
/// Connect semantic type `connect_name` (`"connect.name"`, as Confluent's AvroConverter
/// writes Debezium's types into Avro schemas) as PostgreSQL reads it: days into a date,
/// milli- and microseconds into times and wall-clock timestamps. Connect's own Date,
/// Time, Timestamp and Decimal come with their Avro logical types already.
pub fn avro_logical_type(connect_name: &str, avro_type: &str) -> Option<&'static str> {
    Some(match (connect_name, avro_type) {
        ("io.debezium.time.Date", "int") => "date",
        ("io.debezium.time.Time", "int") => "time-millis",
        ("io.debezium.time.MicroTime", "long") => "time-micros",
        ("io.debezium.time.Timestamp", "long") => "local-timestamp-millis",
        ("io.debezium.time.MicroTimestamp", "long") => "local-timestamp-micros",
        ("io.debezium.time.NanoTimestamp", "long") => "local-timestamp-nanos",
        _ => return None,
    })
}

/// The event's payload with its `before` and `after` rows converted along the schema.
/// An event without a usable schema gives its payload unchanged.
pub fn payload(event: &Value) -> Result<Value, CodecError> {
    let mut payload = event.get("payload").cloned().unwrap_or(Value::Null);
    let Some(fields) = event.get("schema").and_then(|s| s.get("fields")).and_then(Value::as_array) else {
        return Ok(payload);
    };
    for row_schema in fields {
        let Some(row) = row_schema.get("field").and_then(Value::as_str).filter(|f| *f == "before" || *f == "after") else {
            continue;
        };
        if let Some(value) = payload.get_mut(row) {
            convert(value, row_schema).map_err(|e| e.map_reason(|e| format!("{row}.{e}")))?;
        }
    }
    Ok(payload)
}

/// Debezium's `time.precision.mode`: the unit of the times and timestamps of events
/// that travel without their schema (with it, each field's semantic type says).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePrecision {
    /// Milliseconds for a column of precision 0 to 3, microseconds otherwise.
    #[default]
    Adaptive,
    /// Times in microseconds, timestamps as `Adaptive`.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's: milliseconds.
    Connect,
}

impl TimePrecision {
    pub const NAMES: [&'static str; 3] = ["adaptive", "adaptive_time_microseconds", "connect"];

    pub fn parse(value: &str) -> Option<TimePrecision> {
        match value {
            "adaptive" => Some(TimePrecision::Adaptive),
            "adaptive_time_microseconds" => Some(TimePrecision::AdaptiveTimeMicroseconds),
            "connect" => Some(TimePrecision::Connect),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// The HINT of an error about a mode that is none of these.
    pub fn valid_modes_hint() -> String {
        format!("Valid modes are Debezium's time.precision.mode values {}.", Self::NAMES.map(|n| format!("\"{n}\"")).join(", "))
    }
}

/// A target column whose values an event without its schema may carry in Debezium's
/// encodings; the precision and scale are the column's type modifier's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Date,
    Time { precision: Option<u32> },
    Timestamp { precision: Option<u32> },
    Numeric { scale: Option<u32> },
    Bytea,
    Json,
}

impl ColumnKind {
    /// The kind of a column of type `sql_type` (as format_type names it without its
    /// modifier) with type modifier `modifier` (atttypmod: -1 for none); None for the
    /// types whose values Debezium writes in their own input syntax.
    pub fn of(sql_type: &str, modifier: i32) -> Option<ColumnKind> {
        let precision = u32::try_from(modifier).ok();
        Some(match sql_type {
            "date" => ColumnKind::Date,
            "time without time zone" => ColumnKind::Time { precision },
            "timestamp without time zone" => ColumnKind::Timestamp { precision },
            // numeric's modifier: ((precision << 16) | scale) + VARHDRSZ.
            "numeric" => ColumnKind::Numeric { scale: u32::try_from(modifier - 4).ok().map(|m| m & 0xffff) },
            "bytea" => ColumnKind::Bytea,
            "json" | "jsonb" => ColumnKind::Json,
            _ => return None,
        })
    }

    /// The Connect schema a value of this column travels with (`"name"` its semantic
    /// type) when the value has the shape of Debezium's encoding of it, so that the
    /// conversions of events with their schema apply; None for a value already in
    /// PostgreSQL's input syntax.
    fn schema_for(self, value: &Value, precision: TimePrecision) -> Option<Value> {
        let named = |name: &str| Some(serde_json::json!({ "type": "int64", "name": name }));
        let milliseconds = |column_precision: Option<u32>| match precision {
            TimePrecision::Connect => true,
            _ => column_precision.is_some_and(|p| p <= 3),
        };
        match (self, value) {
            (ColumnKind::Date, Value::Number(_)) => named("io.debezium.time.Date"),
            (ColumnKind::Time { precision: column }, Value::Number(_)) => {
                let micro = precision == TimePrecision::AdaptiveTimeMicroseconds || !milliseconds(column);
                named(if micro { "io.debezium.time.MicroTime" } else { "io.debezium.time.Time" })
            }
            (ColumnKind::Timestamp { precision: column }, Value::Number(_)) => {
                named(if milliseconds(column) { "io.debezium.time.Timestamp" } else { "io.debezium.time.MicroTimestamp" })
            }
            // decimal.handling.mode=precise: base64 of the unscaled value, scale from
            // the column; a number's text (mode string) stays.
            (ColumnKind::Numeric { scale: Some(scale) }, Value::String(text)) if text.parse::<f64>().is_err() => Some(
                serde_json::json!({ "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": { "scale": scale.to_string() } }),
            ),
            (ColumnKind::Numeric { .. }, Value::Object(_)) => named("io.debezium.data.VariableScaleDecimal"),
            (ColumnKind::Bytea, Value::String(_)) => Some(serde_json::json!({ "type": "bytes" })),
            (ColumnKind::Json, Value::String(text)) if serde_json::from_str::<Value>(text).is_ok() => named(JSON),
            _ => None,
        }
    }
}

/// The event without its schema (`schemas.enable=false`), its `before` and `after` rows'
/// values converted for the columns of `columns` that take them, when their shape is
/// Debezium's encoding of such a column's type: a number into a date is days, into a
/// time or timestamp a count of `precision`'s unit, base64 text into a numeric the
/// unscaled value at the column's scale, into bytea the bytes, JSON text into json the
/// JSON; values already in PostgreSQL's input syntax stay.
pub fn schemaless_event(mut event: Value, columns: &[(String, ColumnKind)], precision: TimePrecision) -> Result<Value, CodecError> {
    for row in ["before", "after"] {
        let Some(values) = event.get_mut(row).and_then(Value::as_object_mut) else { continue };
        for (column, kind) in columns {
            let Some(value) = values.get_mut(column) else { continue };
            if let Some(schema) = kind.schema_for(value, precision) {
                convert(value, &schema).map_err(|e| e.map_reason(|e| format!("{row}.{column}{}", dotted(&e))))?;
            }
        }
    }
    Ok(event)
}

/// Converts `value` in place along `schema`; the error names the field path.
fn convert(value: &mut Value, schema: &Value) -> Result<(), CodecError> {
    if value.is_null() {
        return Ok(());
    }
    let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
    if let Some(name) = schema.get("name").and_then(Value::as_str) {
        if let Some(converted) = semantic(name, value, schema)? {
            *value = converted;
            return Ok(());
        }
    }
    match kind {
        "struct" => {
            let (Some(object), Some(fields)) = (value.as_object_mut(), schema.get("fields").and_then(Value::as_array)) else {
                return Ok(());
            };
            for field_schema in fields {
                let Some(name) = field_schema.get("field").and_then(Value::as_str) else { continue };
                if let Some(field) = object.get_mut(name) {
                    convert(field, field_schema).map_err(|e| e.map_reason(|e| format!("{name}{}", dotted(&e))))?;
                }
            }
        }
        "array" => {
            if let (Some(items), Some(item_schema)) = (value.as_array_mut(), schema.get("items")) {
                for (i, item) in items.iter_mut().enumerate() {
                    convert(item, item_schema).map_err(|e| e.map_reason(|e| format!("[{}]{}", i + 1, dotted(&e))))?;
                }
            }
        }
        // Connect's plain bytes travel as base64; PostgreSQL's bytea reads hex. Named
        // ones (io.debezium.data.Bits, say) stay as they are.
        "bytes" if schema.get("name").is_none() => *value = Value::String(text::bytea_text(&base64_bytes(value)?)),
        _ => {}
    }
    Ok(())
}

/// ": message" for a leaf's error, ".field…: message" or "[i]…" below it.
fn dotted(inner: &str) -> String {
    if inner.starts_with(':') || inner.starts_with('[') {
        inner.to_string()
    } else {
        format!(".{inner}")
    }
}

/// The value of a field of semantic type `name` as PostgreSQL input, or None for a
/// type that needs nothing (strings such as ZonedTimestamp, Uuid, Enum).
fn semantic(name: &str, value: &Value, schema: &Value) -> Result<Option<Value>, CodecError> {
    let text = |s: String| Ok(Some(Value::String(s)));
    match name {
        "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => text(date(integer(value)?)?),
        "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => text(time_of_day(integer(value)?, 1_000_000)?),
        "io.debezium.time.MicroTime" => text(time_of_day(integer(value)?, 1_000)?),
        "io.debezium.time.NanoTime" => text(time_of_day(integer(value)?, 1)?),
        "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => text(timestamp(integer(value)?, 1_000_000)?),
        "io.debezium.time.MicroTimestamp" => text(timestamp(integer(value)?, 1_000)?),
        "io.debezium.time.NanoTimestamp" => text(timestamp(integer(value)?, 1)?),
        "org.apache.kafka.connect.data.Decimal" => {
            // With decimal.handling.mode=string or double the value is no base64 text.
            if !value.is_string() || schema.get("type").and_then(Value::as_str) != Some("bytes") {
                return Ok(None);
            }
            let scale = schema
                .get("parameters")
                .and_then(|p| p.get("scale"))
                .and_then(|s| s.as_str().map(str::to_string).or_else(|| s.as_i64().map(|n| n.to_string())))
                .ok_or_else(|| malformed(": a Decimal field's schema without parameters.scale".to_string()))?;
            let scale = scale.parse().map_err(|_| malformed(format!(": a Decimal field's scale \"{scale}\"")))?;
            Ok(Some(number(&decimal(&base64_bytes(value)?, scale))))
        }
        "io.debezium.data.VariableScaleDecimal" => {
            let scale = value.get("scale").and_then(Value::as_i64).ok_or_else(|| malformed(": a VariableScaleDecimal without scale".to_string()))?;
            let bytes = base64_bytes(value.get("value").ok_or_else(|| malformed(": a VariableScaleDecimal without value".to_string()))?)?;
            Ok(Some(number(&decimal(&bytes, scale))))
        }
        JSON => match value {
            Value::String(json) => serde_json::from_str(json).map(Some).map_err(|e| malformed(format!(": a Json field that is not JSON ({e})"))),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

fn integer(value: &Value) -> Result<i64, CodecError> {
    value.as_i64().ok_or_else(|| malformed(format!(": {value} is not a whole number")))
}

fn base64_bytes(value: &Value) -> Result<Vec<u8>, CodecError> {
    let text = value.as_str().ok_or_else(|| malformed(format!(": {value} is not base64 text")))?;
    BASE64.decode(text).map_err(|e| malformed(format!(": \"{text}\" is not base64 ({e})")))
}

/// A value in a change event that is not what Debezium writes for its type.
fn malformed(reason: String) -> CodecError {
    CodecError::Malformed(reason)
}

/// A JSON number of decimal text (serde_json keeps its digits: arbitrary_precision).
fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn date(days: i64) -> Result<String, CodecError> {
    i32::try_from(days).map(text::date_text).map_err(|_| malformed(format!(": {days} days from 1970-01-01 is out of range")))
}

/// A count of `unit_nanos`-nanosecond units as microseconds, rounded half to even as
/// PostgreSQL rounds the fraction of a second beyond six digits.
fn micros(count: i64, unit_nanos: i64) -> Option<i64> {
    let nanos = i128::from(count) * i128::from(unit_nanos);
    let (whole, rest) = (nanos.div_euclid(1000), nanos.rem_euclid(1000));
    let rounded = if rest > 500 || (rest == 500 && whole % 2 != 0) { whole + 1 } else { whole };
    i64::try_from(rounded).ok()
}

/// A time of day from `count` units of `unit_nanos` nanoseconds since midnight.
fn time_of_day(count: i64, unit_nanos: i64) -> Result<String, CodecError> {
    micros(count, unit_nanos)
        .filter(|m| (0..86_400_000_000).contains(m))
        .map(text::time_text)
        .ok_or_else(|| malformed(format!(": {count} is no time of day")))
}

/// A timestamp (without time zone) from `count` units of `unit_nanos` nanoseconds since
/// 1970-01-01 00:00 UTC.
fn timestamp(count: i64, unit_nanos: i64) -> Result<String, CodecError> {
    micros(count, unit_nanos)
        .filter(|&m| DateTime::from_timestamp_micros(m).is_some())
        .map(|m| text::timestamp_text(m, false))
        .ok_or_else(|| malformed(": a timestamp out of range".to_string()))
}

/// The decimal text of the two's-complement big-endian integer `bytes` (Java's
/// BigInteger.toByteArray, which Connect's Decimal holds) divided by 10^scale.
fn decimal(bytes: &[u8], scale: i64) -> String {
    let unscaled = BigInt::from_signed_bytes_be(bytes);
    match usize::try_from(scale) {
        Ok(scale) => text::decimal_text(&unscaled, scale),
        Err(_) => text::decimal_text(&(unscaled * BigInt::from(10).pow(scale.unsigned_abs() as u32)), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field(name: &str, kind: &str, semantic: Option<&str>) -> Value {
        let mut f = json!({"field": name, "type": kind, "optional": true});
        if let Some(s) = semantic {
            f["name"] = json!(s);
        }
        f
    }

    #[test]
    fn events_without_schema_convert_by_the_column_types_when_the_shape_says_so() {
        let columns = [
            ("day".to_string(), ColumnKind::of("date", -1).unwrap()),
            ("at".to_string(), ColumnKind::of("timestamp without time zone", -1).unwrap()),
            ("at_ms".to_string(), ColumnKind::of("timestamp without time zone", 3).unwrap()),
            ("clock".to_string(), ColumnKind::of("time without time zone", 6).unwrap()),
            // numeric(12,2): ((12 << 16) | 2) + 4
            ("amount".to_string(), ColumnKind::of("numeric", (12 << 16 | 2) + 4).unwrap()),
            ("amount_text".to_string(), ColumnKind::of("numeric", (12 << 16 | 2) + 4).unwrap()),
            ("any_scale".to_string(), ColumnKind::of("numeric", -1).unwrap()),
            ("raw".to_string(), ColumnKind::of("bytea", -1).unwrap()),
            ("doc".to_string(), ColumnKind::of("jsonb", -1).unwrap()),
            ("day_text".to_string(), ColumnKind::of("date", -1).unwrap()),
        ];
        assert_eq!(ColumnKind::of("integer", -1), None);
        let event = json!({"op": "u", "before": {"day": 0}, "after": {
            "day": 3653, "at": 1_704_067_200_123_456_i64, "at_ms": 1_704_067_200_123_i64, "clock": 3_723_000_004_i64,
            "amount": "/w==", "amount_text": "12.50", "any_scale": {"scale": 3, "value": "AQ=="}, "raw": "AP8=",
            "doc": "{\"a\": [1]}", "day_text": "2024-01-01", "other": 5}});
        let converted = schemaless_event(event.clone(), &columns, TimePrecision::Adaptive).unwrap();
        assert_eq!(converted["before"]["day"], "1970-01-01");
        let after = &converted["after"];
        assert_eq!(after["day"], "1980-01-02");
        assert_eq!(after["at"], "2024-01-01 00:00:00.123456");
        assert_eq!(after["at_ms"], "2024-01-01 00:00:00.123000");
        assert_eq!(after["clock"], "01:02:03.000004");
        assert_eq!(after["amount"].to_string(), "-0.01");
        assert_eq!(after["amount_text"], "12.50");
        assert_eq!(after["any_scale"].to_string(), "0.001");
        assert_eq!(after["raw"], "\\x00ff");
        assert_eq!(after["doc"], json!({"a": [1]}));
        assert_eq!(after["day_text"], "2024-01-01");
        assert_eq!(after["other"], 5);
        // time.precision.mode=connect: milliseconds whatever the column's precision.
        let ms = json!({"op": "c", "after": {"at": 1_704_067_200_123_i64, "clock": 3_723_004}});
        let connect = schemaless_event(ms, &columns, TimePrecision::Connect).unwrap();
        assert_eq!(connect["after"]["at"], "2024-01-01 00:00:00.123000");
        assert_eq!(connect["after"]["clock"], "01:02:03.004000");
        let micro_time = schemaless_event(json!({"op": "c", "after": {"clock": 4}}), &[("clock".into(), ColumnKind::Time { precision: Some(3) })], TimePrecision::AdaptiveTimeMicroseconds).unwrap();
        assert_eq!(micro_time["after"]["clock"], "00:00:00.000004");
        // A value its column's encoding cannot hold names the field.
        let bad = json!({"op": "c", "after": {"day": 1.5}});
        assert_eq!(schemaless_event(bad, &columns, TimePrecision::Adaptive).unwrap_err(), CodecError::Malformed("after.day: 1.5 is not a whole number".to_string()));
        assert_eq!(TimePrecision::parse("adaptive_time_microseconds").map(TimePrecision::name), Some("adaptive_time_microseconds"));
        assert_eq!(TimePrecision::parse("micro"), None);
    }

    fn event(fields: Vec<Value>, after: Value) -> Value {
        json!({
            "schema": {"type": "struct", "name": "db.public.t.Envelope", "fields": [
                {"field": "before", "type": "struct", "optional": true, "fields": fields.clone()},
                {"field": "after", "type": "struct", "optional": true, "fields": fields},
                {"field": "op", "type": "string"}
            ]},
            "payload": {"before": null, "after": after, "op": "c"}
        })
    }

    #[test]
    fn decimals_read_twos_complement_bytes_with_the_schemas_scale() {
        // Java: new BigDecimal("1234.56").unscaledValue().toByteArray() = 0x01 0xE2 0x40.
        assert_eq!(decimal(&[0x01, 0xE2, 0x40], 2), "1234.56");
        assert_eq!(decimal(&[0xFE, 0x1D, 0xC0], 2), "-1234.56");
        assert_eq!(decimal(&[0x00], 2), "0.00");
        assert_eq!(decimal(&[0xFF], 3), "-0.001");
        assert_eq!(decimal(&[0x05], 0), "5");
        assert_eq!(decimal(&[0x05], -2), "500");
        // 2^80 = 1208925819614629174706176, beyond 64 bits.
        let mut big = vec![0x01];
        big.extend([0u8; 10]);
        assert_eq!(decimal(&big, 4), "120892581961462917470.6176");
        // Every bigint round-trips through its minimal two's-complement bytes.
        for n in [i64::MIN, -129, -128, -1, 1, 127, 128, 255, 256, 99_999_999, i64::MAX] {
            let bytes = n.to_be_bytes();
            let skip = (0..7).take_while(|&i| (bytes[i] == 0 && bytes[i + 1] < 0x80) || (bytes[i] == 0xFF && bytes[i + 1] >= 0x80)).count();
            assert_eq!(decimal(&bytes[skip..], 0), n.to_string(), "{n}");
        }
    }

    #[test]
    fn times_and_dates_from_their_counts() {
        assert_eq!(date(0).unwrap(), "1970-01-01");
        assert_eq!(date(3652).unwrap(), "1980-01-01");
        assert_eq!(date(-1).unwrap(), "1969-12-31");
        assert!(date(i64::MAX).is_err());
        assert_eq!(time_of_day(45_296_789, 1_000_000).unwrap(), "12:34:56.789000");
        assert_eq!(time_of_day(45_296_789_012_500, 1).unwrap(), "12:34:56.789012");
        assert_eq!(time_of_day(45_296_789_013_500, 1).unwrap(), "12:34:56.789014");
        assert_eq!(time_of_day(45_296_789_012, 1_000).unwrap(), "12:34:56.789012");
        assert!(time_of_day(86_400_000, 1_000_000).is_err());
        assert_eq!(timestamp(1_700_000_000_123_456, 1_000).unwrap(), "2023-11-14 22:13:20.123456");
        assert_eq!(timestamp(-1, 1_000).unwrap(), "1969-12-31 23:59:59.999999");
        assert_eq!(timestamp(1_700_000_000_123, 1_000_000).unwrap(), "2023-11-14 22:13:20.123000");
        assert!(timestamp(i64::MAX, 1_000_000).is_err());
    }

    #[test]
    fn rows_convert_along_the_envelopes_schema() {
        let fields = vec![
            field("id", "int32", None),
            field("born", "int32", Some("io.debezium.time.Date")),
            field("seen", "int64", Some("io.debezium.time.MicroTimestamp")),
            field("zoned", "string", Some("io.debezium.time.ZonedTimestamp")),
            json!({"field": "price", "type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal",
                   "parameters": {"scale": "2", "connect.decimal.precision": "10"}}),
            field("doc", "string", Some("io.debezium.data.Json")),
            field("raw", "bytes", None),
            field("flag", "boolean", None),
            json!({"field": "days", "type": "array", "optional": true, "items": {"type": "int32", "name": "io.debezium.time.Date"}}),
        ];
        let converted = payload(&event(
            fields,
            json!({"id": 7, "born": 3653, "seen": 1_700_000_000_123_456i64, "zoned": "2023-11-14T22:13:20.5Z",
                   "price": "/h3A", "doc": "{\"a\": [1, 2]}", "raw": "AQL/", "flag": true, "days": [0, 1]}),
        ))
        .unwrap();
        assert_eq!(
            converted["after"],
            json!({"id": 7, "born": "1980-01-02", "seen": "2023-11-14 22:13:20.123456", "zoned": "2023-11-14T22:13:20.5Z",
                   "price": serde_json::from_str::<Value>("-1234.56").unwrap(), "doc": {"a": [1, 2]}, "raw": "\\x0102ff",
                   "flag": true, "days": ["1970-01-01", "1970-01-02"]})
        );
        assert_eq!(converted["before"], Value::Null);
        assert_eq!(converted["op"], "c");
    }

    #[test]
    fn values_without_semantic_types_or_schemas_stay() {
        // decimal.handling.mode=string: a Decimal-free string field.
        let plain = payload(&event(vec![field("price", "string", None)], json!({"price": "12.50"}))).unwrap();
        assert_eq!(plain["after"]["price"], "12.50");
        let no_schema = json!({"schema": {"type": "struct"}, "payload": {"op": "c", "after": {"d": 3653}}});
        assert_eq!(payload(&no_schema).unwrap()["after"]["d"], 3653);
    }

    #[test]
    fn a_bad_value_names_its_field() {
        let bad = event(vec![json!({"field": "price", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                                    "parameters": {"scale": "2"}})], json!({"price": "not base64!"}));
        let error = payload(&bad).unwrap_err();
        assert!(matches!(&error, CodecError::Malformed(why) if why.starts_with("after.price: \"not base64!\" is not base64")), "{error:?}");
    }
}
