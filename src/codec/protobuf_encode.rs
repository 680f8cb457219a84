//! Writing Protobuf messages: a row's columns become a message of one of the schema's
//! message types (the table's `protobuf_message`, else the first, the type Confluent's
//! index `[0]` names, as IMPORT FOREIGN SCHEMA reads it), framed with the schema's
//! registry id and the type's indexes.
//!
//! The row is turned into the message's canonical JSON form (proto3 JSON mapping) and
//! parsed by prost-reflect against the descriptor, so every conversion is the one
//! Protobuf defines: numbers from their texts, enums by name, bytes from base64,
//! `google.protobuf.Timestamp` from RFC 3339, wrapper types from their value, repeated
//! fields from arrays, maps and messages from JSON objects. A NULL goes to a field with
//! presence (`optional`, messages, oneof members) as unset, and to a repeated or map
//! field as empty (they have no NULL); a scalar without presence would read back as its
//! default, so a NULL there is an error.

use base64::Engine;
use super::error::CodecError;
use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Map, Value as Json};

use super::encode::{bytea_hex, derived_field_name, derived_record_name, Cell, ColumnValue, DerivedField, SqlType};
use super::json::JsonPath;
use super::protobuf::ProtobufSchema;
use super::text::timestamp_text;
use super::wire::{frame_header, message_indexes_bytes};

/// Encodes rows as messages of one writer schema's first message type.
pub struct ProtobufEncoder {
    message: MessageDescriptor,
    /// The frame header and the message type's indexes.
    header: Vec<u8>,
}

impl ProtobufEncoder {
    /// An encoder of the message type named `message` (its full name), or the schema's first.
    pub fn new(schema: &ProtobufSchema, id: u32, message: Option<&str>) -> Result<Self, CodecError> {
        let (message, indexes) = schema.message_type_named(message)?;
        let mut header = frame_header(id).to_vec();
        header.extend(message_indexes_bytes(&indexes));
        Ok(ProtobufEncoder { message, header })
    }

    /// Encodes a row into `out` (cleared first); the error names the column.
    pub fn encode(&self, columns: &[ColumnValue<'_>], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let mut document = Json::Object(Map::new());
        let mut nested_nulls = Vec::new();
        for column in columns {
            let placed = self.place(&mut document, column).map_err(|why| why.within(format_args!("column \"{}\"", column.name)))?;
            nested_nulls.extend(placed.map(|parents| (column, parents)));
        }
        // A NULL inside a message is fine while that message stays unset (it reads back
        // NULL); once other columns write the message, the field would read as its default.
        for (column, parents) in nested_nulls {
            if parents.iter().try_fold(&document, |object, name| object.get(name)).is_some() {
                return Err(no_presence(column.path).within(format_args!("column \"{}\"", column.name)));
            }
        }
        normalize_numbers(&mut document);
        let message = match DynamicMessage::deserialize(self.message.clone(), document) {
            Ok(message) => message,
            Err(error) => return Err(CodecError::Unwritable(self.culprit(columns).unwrap_or_else(|| error.to_string()))),
        };
        out.clear();
        out.extend_from_slice(&self.header);
        message.encode(out).map_err(|e| CodecError::Unwritable(format!("could not encode the Protobuf message: {e}")))
    }

    /// Puts a column's value into the message's JSON form at its path. A NULL for a
    /// nested field without presence is left out; its parents' JSON names are returned,
    /// for [`Self::encode`] to check that no other column writes them.
    fn place(&self, document: &mut Json, column: &ColumnValue<'_>) -> Result<Option<Vec<String>>, CodecError> {
        let keys = match column.path {
            JsonPath::Whole => {
                return match &column.cell {
                    Cell::Json(whole @ Json::Object(_)) => {
                        *document = whole.clone();
                        Ok(None)
                    }
                    other => Err(CodecError::Unwritable(format!("{} is not a JSON object, so it cannot be the whole message", other.describe()))),
                }
            }
            JsonPath::Keys(keys) => keys,
        };
        let (last, parents) = keys.split_last().ok_or_else(|| CodecError::Unwritable("an empty path".to_string()))?;
        let mut message = self.message.clone();
        let mut path_fields = Vec::with_capacity(parents.len());
        for key in parents {
            let field = field_of(&message, key)?;
            let Kind::Message(child) = field.kind() else {
                return Err(CodecError::Unwritable(format!("its path leads into field \"{key}\", which is not a message")));
            };
            if field.is_list() || field.is_map() {
                return Err(CodecError::Unwritable(format!("its path leads into field \"{key}\", which is repeated")));
            }
            path_fields.push(field);
            message = child;
        }
        let field = field_of(&message, last)?;
        // A NULL leaves the field unset, and creates no message on its path: a message all
        // of whose columns are NULL stays unset, as the scan reads an unset message.
        if column.cell == Cell::Null && !path_fields.is_empty() && !has_null(&field) {
            return Ok(Some(path_fields.iter().map(|parent| parent.json_name().to_string()).collect()));
        }
        let Some(value) = json_value(&field, &column.cell)? else { return Ok(None) };
        let mut object = document;
        for parent in path_fields {
            object = object
                .as_object_mut()
                .ok_or_else(|| CodecError::Unwritable("another column writes the whole of a message its path leads into".to_string()))?
                .entry(parent.json_name())
                .or_insert_with(|| Json::Object(Map::new()));
        }
        let members = object.as_object_mut().ok_or_else(|| CodecError::Unwritable("another column writes the whole of a message its path leads into".to_string()))?;
        if members.insert(field.json_name().to_string(), value).is_some() {
            return Err(CodecError::Unwritable(format!("another column also writes field \"{last}\"")));
        }
        Ok(None)
    }

    /// The first column whose value alone the message type refuses, with the reason.
    fn culprit(&self, columns: &[ColumnValue<'_>]) -> Option<String> {
        columns.iter().find_map(|column| {
            let mut alone = Json::Object(Map::new());
            self.place(&mut alone, column).ok()?;
            normalize_numbers(&mut alone);
            DynamicMessage::deserialize(self.message.clone(), alone)
                .err()
                .map(|error| format!("column \"{}\": {error}", column.name))
        })
    }
}

/// The `.proto` text (proto3) of a message with a field per column, as INSERT registers
/// it under `auto_register`: scalars `optional` (so NULL stays NULL), timestamptz as
/// `google.protobuf.Timestamp`, arrays `repeated`, numeric, dates, times, timestamps
/// and uuid as strings.
pub fn derived_schema(topic: &str, fields: &[DerivedField<'_>]) -> Result<String, CodecError> {
    let mut lines = Vec::with_capacity(fields.len());
    let mut imports_timestamp = false;
    for (number, field) in fields.iter().enumerate() {
        let name = derived_field_name(field)?;
        let (repeated, scalar) = match &field.sql_type {
            SqlType::Array(items) => (true, &**items),
            scalar => (false, scalar),
        };
        let proto_type = match scalar {
            SqlType::Boolean => "bool",
            SqlType::SmallInt | SqlType::Integer => "int32",
            SqlType::BigInt => "int64",
            SqlType::Real => "float",
            SqlType::Double => "double",
            SqlType::Bytea => "bytes",
            SqlType::TimestampTz => "google.protobuf.Timestamp",
            SqlType::Array(_) => return Err(CodecError::Schema(format!("column \"{}\" is an array of arrays: Protobuf has no such field", field.name))),
            // Json has no field (derived_field_name).
            SqlType::Numeric(_) | SqlType::Date | SqlType::Time | SqlType::Timestamp | SqlType::Uuid | SqlType::Json | SqlType::Text => {
                "string"
            }
        };
        imports_timestamp |= *scalar == SqlType::TimestampTz;
        // Messages have presence already; lists have none to give.
        let label = if repeated { "repeated " } else if *scalar == SqlType::TimestampTz { "" } else { "optional " };
        lines.push(format!("  {label}{proto_type} {name} = {};", number + 1));
    }
    let import = if imports_timestamp { "import \"google/protobuf/timestamp.proto\";\n\n" } else { "" };
    Ok(format!("syntax = \"proto3\";\n\n{import}message {} {{\n{}\n}}\n", derived_record_name(topic), lines.join("\n")))
}

/// JSON numbers as the deserializer takes them: serde_json keeps a number's text
/// (arbitrary_precision), and hands one that is not exactly what its f64 prints
/// (`10.50`, `1e+300`) on as a map, which Protobuf's number fields refuse. Integers
/// stay as written (exact); others become the f64 they stand for.
fn normalize_numbers(json: &mut Json) {
    match json {
        Json::Number(number) if number.as_i64().is_none() && number.as_u64().is_none() => {
            if let Some(normal) = number.as_f64().and_then(serde_json::Number::from_f64) {
                *number = normal;
            }
        }
        Json::Array(items) => items.iter_mut().for_each(normalize_numbers),
        Json::Object(members) => members.values_mut().for_each(normalize_numbers),
        _ => {}
    }
}

fn field_of(message: &MessageDescriptor, name: &str) -> Result<FieldDescriptor, CodecError> {
    message
        .get_field_by_name(name)
        .or_else(|| message.get_field_by_json_name(name))
        .ok_or_else(|| CodecError::Unwritable(format!("Protobuf message {} has no field \"{name}\"", message.full_name())))
}

/// Whether a NULL may go to `field`: fields with presence, and lists and maps, which
/// have no NULL (an empty one is the nearest, and reads back as {}).
fn has_null(field: &FieldDescriptor) -> bool {
    field.supports_presence() || field.is_list() || field.is_map()
}

fn no_presence(path: &JsonPath) -> CodecError {
    let name = match path {
        JsonPath::Keys(keys) => keys.last().map(String::as_str).unwrap_or_default(),
        JsonPath::Whole => "",
    };
    CodecError::Unwritable(format!("NULL does not fit Protobuf field \"{name}\", which has no presence (it would read back as its default); give it a value, or declare it optional"))
}

/// A cell in the proto3 JSON form of `field`; `None` leaves the field unset.
fn json_value(field: &FieldDescriptor, cell: &Cell<'_>) -> Result<Option<Json>, CodecError> {
    let base64 = |bytes: &[u8]| Json::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    Ok(Some(match cell {
        Cell::Null if has_null(field) => return Ok(None),
        Cell::Null => return Err(no_presence(&JsonPath::Keys(vec![field.name().to_string()]))),
        Cell::Bool(b) => Json::Bool(*b),
        Cell::Bytes(bytes) => base64(bytes),
        Cell::Text(text) if is_bytes(field) => base64(&bytea_hex(text).unwrap_or_else(|| text.as_bytes().to_vec())),
        // bytea[] (array_to_json spells bytes as bytea's hex text).
        Cell::Json(Json::Array(items)) if is_bytes(field) => Json::Array(
            items
                .iter()
                .map(|item| match item {
                    Json::String(text) => bytea_hex(text).map_or_else(|| item.clone(), |bytes| base64(&bytes)),
                    other => other.clone(),
                })
                .collect(),
        ),
        // Protobuf's JSON form takes numbers, enums, strings and wrapped values as strings.
        Cell::Text(text) | Cell::Number(text) => Json::String(text.to_string()),
        Cell::Timestamp { utc, .. } => {
            // RFC 3339 in UTC, as the JSON form of google.protobuf.Timestamp.
            let text = timestamp_text(*utc, true);
            Json::String(format!("{}Z", text.trim_end_matches("+00").replacen(' ', "T", 1)))
        }
        Cell::Date(_) | Cell::Time(_) => Json::String(cell.text().unwrap_or_default().into_owned()),
        Cell::Json(json) => json.clone(),
    }))
}

fn is_bytes(field: &FieldDescriptor) -> bool {
    match field.kind() {
        Kind::Bytes => true,
        Kind::Message(message) => message.full_name() == "google.protobuf.BytesValue",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::codec::protobuf::ProtobufDecoder;
    use crate::codec::wire::{CompiledSchema, SchemaById, WriterSchema};

    const SCHEMA: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";
        message Order {
            int64 id = 1;
            optional string note = 2;
            bool paid = 3;
            bytes blob = 4;
            Status status = 5;
            google.protobuf.Timestamp at = 6;
            repeated string tags = 7;
            map<string, int32> counts = 8;
            Line line = 9;
            uint64 big = 10;
            double ratio = 11;
            google.protobuf.Int64Value maybe = 12;
            enum Status { NEW = 0; SHIPPED = 1; }
        }
        message Line { string sku = 1; int32 qty = 2; }
    "#;

    struct OneSchema;
    impl SchemaById for OneSchema {
        fn schema(&mut self, _id: u32) -> Result<CompiledSchema, CodecError> {
            CompiledSchema::compile(&WriterSchema { schema_type: "PROTOBUF".into(), text: SCHEMA.into(), references: Vec::new() })
        }
    }

    fn text(s: &str) -> Cell<'_> {
        Cell::Text(Cow::Borrowed(s))
    }

    fn encode(columns: Vec<(&str, Cell<'_>)>) -> Result<Vec<u8>, CodecError> {
        let encoder = ProtobufEncoder::new(&ProtobufSchema::compile(SCHEMA, &[]).unwrap(), 7, None).unwrap();
        let paths: Vec<JsonPath> = columns.iter().map(|(name, _)| JsonPath::parse(name).unwrap()).collect();
        let row: Vec<ColumnValue<'_>> =
            columns.into_iter().zip(&paths).map(|((name, cell), path)| ColumnValue { name, path, cell }).collect();
        let mut out = Vec::new();
        encoder.encode(&row, &mut out).map(|()| out)
    }

    #[test]
    fn rows_read_back_as_written() {
        let payload = encode(vec![
            ("id", text("-9223372036854775808")),
            ("note", Cell::Null),
            ("paid", Cell::Bool(true)),
            ("blob", Cell::Bytes(b"\x00\xff")),
            ("status", text("SHIPPED")),
            ("at", Cell::Timestamp { utc: 1_700_000_000_123_456, local: 0 }),
            ("tags", Cell::Json(serde_json::json!(["a", "b"]))),
            ("counts", Cell::Json(serde_json::json!({"x": 3}))),
            ("line.sku", text("S-1")),
            ("big", text("18446744073709551615")),
            ("ratio", text("NaN")),
            ("maybe", text("5")),
        ])
        .unwrap();
        assert_eq!(&payload[..6], &[0, 0, 0, 0, 7, 0]);
        let mut decoder = ProtobufDecoder::new(Box::new(OneSchema));
        let record = decoder.decode(&payload).unwrap();
        let read = |path: &str| record.field(&JsonPath::parse(path).unwrap(), false).map(|t| String::from_utf8(t.into_owned()).unwrap());
        assert_eq!(read("id").as_deref(), Some("-9223372036854775808"));
        assert_eq!(read("note"), None);
        assert_eq!(read("paid").as_deref(), Some("true"));
        assert_eq!(read("blob").as_deref(), Some("\\x00ff"));
        assert_eq!(read("status").as_deref(), Some("SHIPPED"));
        assert_eq!(read("at").as_deref(), Some("2023-11-14 22:13:20.123456+00"));
        assert_eq!(read("tags").as_deref(), Some("{\"a\",\"b\"}"));
        assert_eq!(read("counts").as_deref(), Some("{\"x\":3}"));
        assert_eq!(read("line.sku").as_deref(), Some("S-1"));
        assert_eq!(read("line.qty").as_deref(), Some("0"));
        assert_eq!(read("big").as_deref(), Some("18446744073709551615"));
        assert_eq!(read("ratio").as_deref(), Some("NaN"));
        assert_eq!(read("maybe").as_deref(), Some("5"));
    }

    #[test]
    fn review_cases_numbers_bytes_and_unset_parents() {
        let payload = encode(vec![
            ("id", text("1")),
            ("paid", Cell::Bool(false)),
            ("ratio", Cell::Json(serde_json::from_str("10.50").unwrap())),
            ("blob", text("\\x00ff")),
            ("line.sku", Cell::Null),
            ("line.qty", Cell::Null),
        ])
        .unwrap();
        let record = ProtobufDecoder::new(Box::new(OneSchema)).decode(&payload).unwrap();
        let read = |path: &str| record.field(&JsonPath::parse(path).unwrap(), false).map(|t| String::from_utf8(t.into_owned()).unwrap());
        assert_eq!(read("ratio").as_deref(), Some("10.5"));
        assert_eq!(read("blob").as_deref(), Some("\\x00ff"), "bytea hex text is its bytes");
        assert_eq!(read("line"), None, "a message all of whose columns are NULL stays unset");
    }

    #[test]
    fn a_null_in_a_message_other_columns_write_is_refused() {
        let error = encode(vec![("id", text("1")), ("line.sku", Cell::Null), ("line.qty", text("2"))]).unwrap_err();
        assert!(matches!(&error, CodecError::Unwritable(why) if why.starts_with("column \"line.sku\": NULL does not fit Protobuf field \"sku\"")), "{error:?}");
    }

    #[test]
    fn a_named_message_type_is_framed_with_its_indexes() {
        let schema = ProtobufSchema::compile(SCHEMA, &[]).unwrap();
        let line = ProtobufEncoder::new(&schema, 7, Some("shop.Line")).unwrap();
        assert_eq!(line.header, [0, 0, 0, 0, 7, 2, 2], "[1]: count 1, index 1, zigzag");
        let status = ProtobufEncoder::new(&schema, 7, Some("shop.Order.Status"));
        assert_eq!(status.err().unwrap(), CodecError::Schema("the schema has no message type shop.Order.Status".to_string()));
        assert!(ProtobufEncoder::new(&schema, 7, Some("shop.Nope")).is_err());
    }

    #[test]
    fn derived_schemas_compile_and_keep_nulls() {
        let paths: Vec<JsonPath> = ["id", "at", "tags", "note"].iter().map(|k| JsonPath::parse(k).unwrap()).collect();
        let types = [SqlType::BigInt, SqlType::TimestampTz, SqlType::Array(Box::new(SqlType::Integer)), SqlType::Text];
        let fields: Vec<DerivedField<'_>> =
            paths.iter().zip(types).map(|(path, sql_type)| DerivedField { name: "c", path, sql_type, not_null: false }).collect();
        let proto = derived_schema("orders", &fields).unwrap();
        let schema = ProtobufSchema::compile(&proto, &[]).unwrap();
        let columns = schema.columns().unwrap();
        assert_eq!(
            columns,
            [("id", "bigint"), ("at", "timestamp with time zone"), ("tags", "integer[]"), ("note", "text")].map(|(n, t)| (n.to_string(), t.to_string()))
        );
        let encoder = ProtobufEncoder::new(&schema, 3, None).unwrap();
        let row = vec![
            ColumnValue { name: "id", path: &paths[0], cell: Cell::Null },
            ColumnValue { name: "at", path: &paths[1], cell: Cell::Timestamp { utc: 0, local: 0 } },
            ColumnValue { name: "tags", path: &paths[2], cell: Cell::Json(serde_json::json!([1, 2])) },
            ColumnValue { name: "note", path: &paths[3], cell: text("n") },
        ];
        let mut out = Vec::new();
        encoder.encode(&row, &mut out).unwrap();
    }

    #[test]
    fn values_that_do_not_fit_are_errors_naming_the_column() {
        let error = encode(vec![("id", Cell::Null)]).unwrap_err();
        assert!(matches!(&error, CodecError::Unwritable(why) if why.starts_with("column \"id\": NULL does not fit Protobuf field \"id\", which has no presence")), "{error:?}");
        let error = encode(vec![("id", text("1")), ("status", text("LOST"))]).unwrap_err();
        assert!(matches!(&error, CodecError::Unwritable(why) if why.starts_with("column \"status\": ")), "{error:?}");
        let error = encode(vec![("id", text("x1"))]).unwrap_err();
        assert!(matches!(&error, CodecError::Unwritable(why) if why.starts_with("column \"id\": ")), "{error:?}");
        let error = encode(vec![("nope", text("1"))]).unwrap_err();
        assert_eq!(error, CodecError::Unwritable("column \"nope\": Protobuf message shop.Order has no field \"nope\"".to_string()));
        let error = encode(vec![("id.x", text("1"))]).unwrap_err();
        assert_eq!(error, CodecError::Unwritable("column \"id.x\": its path leads into field \"id\", which is not a message".to_string()));
    }
}
