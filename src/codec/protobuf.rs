//! Protobuf messages in Confluent's wire format: the frame header, the indexes of the
//! message type in the writer schema, then the encoded message. The writer schema is
//! the registry's `.proto` text (with the files it imports, also from the registry;
//! Google's well-known types are built in), compiled once per schema id.
//!
//! Columns map to the message's fields by name, or by a path into nested messages and
//! maps (the `field` column option), as for Avro. A field without presence (a proto3
//! scalar) reads as its default when absent, as every Protobuf reader sees it; an
//! unset message field, `optional` field or oneof member is NULL. Texts: numbers and
//! strings as written, bytes as `\x` hex, enums by name, `google.protobuf.Timestamp`
//! as a UTC timestamp, wrapper types as their value, repeated scalars as PostgreSQL
//! array literals, and messages, maps and other lists as JSON.

use std::borrow::Cow;
use super::error::CodecError;
use std::collections::HashMap;
use std::rc::Rc;

use prost_reflect::{DynamicMessage, FieldDescriptor, FileDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage, Value};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::{Map, Value as Json};

use super::json::JsonPath;
use super::text::{self, bytea_text, float_text, json_float, timestamp_text};
use super::wire::{frame, message_indexes, CompiledSchema, LastSchema, SchemaById};

/// The name the writer schema's own text is compiled under (its imports keep theirs).
const WRITER_FILE: &str = "kafka_fdw/writer_schema.proto";

/// What a compiled descriptor pool holds in memory per byte of its files' encoded
/// descriptors, at most (`cache`'s tests measure it: 18 for a message of many fields, 23
/// for many small messages).
const DESCRIPTOR_BYTES_PER_ENCODED_BYTE: usize = 28;

/// A compiled `.proto` writer schema.
pub struct ProtobufSchema {
    file: FileDescriptor,
}

impl ProtobufSchema {
    /// Compiles `text`, whose imports are among `references` (name, text) or Google's
    /// well-known types; the error says why it is not a valid schema.
    pub fn compile(text: &str, references: &[(String, String)]) -> Result<ProtobufSchema, CodecError> {
        let mut sources: HashMap<String, String> = references.iter().cloned().collect();
        sources.insert(WRITER_FILE.to_string(), text.to_string());
        let mut resolver = ChainFileResolver::new();
        resolver.add(Sources(sources));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.open_file(WRITER_FILE).map_err(|e| CodecError::Schema(format!("invalid Protobuf schema: {e}")))?;
        let file = compiler
            .descriptor_pool()
            .get_file_by_name(WRITER_FILE)
            .ok_or_else(|| CodecError::Schema("invalid Protobuf schema: not compiled".to_string()))?;
        Ok(ProtobufSchema { file })
    }

    /// About the bytes of memory it holds (see `CompiledSchema::heap_size`): the
    /// compiled files' descriptors take about [`DESCRIPTOR_BYTES_PER_ENCODED_BYTE`] times
    /// their encoded size.
    pub fn heap_size(&self) -> usize {
        let encoded: usize = self.file.parent_pool().file_descriptor_protos().map(prost_reflect::prost::Message::encoded_len).sum();
        encoded * DESCRIPTOR_BYTES_PER_ENCODED_BYTE
    }

    /// The message type at `indexes` (top-level, then nested, in declaration order).
    pub(super) fn message_type(&self, indexes: &[usize]) -> Result<MessageDescriptor, CodecError> {
        let missing = || CodecError::Schema(format!("the schema has no message type at index {indexes:?}"));
        let (first, nested) = indexes.split_first().ok_or_else(missing)?;
        let top = self.file.messages().nth(*first).ok_or_else(missing)?;
        nested.iter().try_fold(top, |message, &index| message.child_messages().nth(index).ok_or_else(missing))
    }
}

impl ProtobufSchema {
    /// The message type of full name `name` (the first top-level one without a name),
    /// with its indexes.
    pub fn message_type_named(&self, name: Option<&str>) -> Result<(MessageDescriptor, Vec<usize>), CodecError> {
        let Some(name) = name else { return Ok((self.message_type(&[0])?, vec![0])) };
        fn find(messages: impl Iterator<Item = MessageDescriptor>, name: &str, path: &mut Vec<usize>) -> Option<MessageDescriptor> {
            for (index, message) in messages.enumerate() {
                path.push(index);
                if message.full_name() == name {
                    return Some(message);
                }
                if let Some(found) = find(message.child_messages(), name, path) {
                    return Some(found);
                }
                path.pop();
            }
            None
        }
        let mut indexes = Vec::new();
        let message = find(self.file.messages(), name, &mut indexes).ok_or_else(|| CodecError::Schema(format!("the schema has no message type {name}")))?;
        Ok((message, indexes))
    }

    /// The columns a table of the schema's first message type would have (IMPORT
    /// FOREIGN SCHEMA; the type Confluent's `[0]` index names): each field's name and
    /// the PostgreSQL type its values read as.
    pub fn columns(&self) -> Option<Vec<(String, String)>> {
        let message = self.file.messages().next()?;
        Some(message.fields().map(|field| (field.name().to_string(), sql_type(&field))).collect())
    }
}

fn sql_type(field: &FieldDescriptor) -> String {
    if field.is_map() {
        return "jsonb".into();
    }
    let scalar = match field.kind() {
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => "integer",
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => "bigint",
        Kind::Uint64 | Kind::Fixed64 => "numeric",
        Kind::Float => "real",
        Kind::Double => "double precision",
        Kind::Bool => "boolean",
        Kind::String | Kind::Enum(_) => "text",
        Kind::Bytes => "bytea",
        Kind::Message(message) => match message.full_name() {
            TIMESTAMP => "timestamp with time zone",
            "google.protobuf.DoubleValue" => "double precision",
            "google.protobuf.FloatValue" => "real",
            "google.protobuf.Int64Value" | "google.protobuf.UInt32Value" => "bigint",
            "google.protobuf.UInt64Value" => "numeric",
            "google.protobuf.Int32Value" => "integer",
            "google.protobuf.BoolValue" => "boolean",
            "google.protobuf.StringValue" => "text",
            "google.protobuf.BytesValue" => "bytea",
            _ => return "jsonb".into(),
        },
    };
    if field.is_list() {
        format!("{scalar}[]")
    } else {
        scalar.to_string()
    }
}

/// Schema texts by file name, for the compiler's imports.
struct Sources(HashMap<String, String>);

impl FileResolver for Sources {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(text) => File::from_source(name, text),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// Decodes Protobuf messages.
pub struct ProtobufDecoder {
    registry: Box<dyn SchemaById>,
    last: LastSchema<ProtobufSchema>,
}

/// A decoded message.
pub struct ProtobufRecord {
    message: DynamicMessage,
}

impl ProtobufDecoder {
    pub fn new(registry: Box<dyn SchemaById>) -> Self {
        ProtobufDecoder { registry, last: LastSchema::default() }
    }

    /// Decodes a payload; the error says why it is not a Protobuf message of its schema.
    pub fn decode(&mut self, payload: &[u8]) -> Result<ProtobufRecord, CodecError> {
        let (id, rest) = frame(payload)?;
        let registry = &mut self.registry;
        let schema = self.last.get(id, || registry.schema(id).and_then(|schema| protobuf_schema(id, schema)));
        // A schema that cannot be had, or lacks the message's type, makes it a bad message.
        let unreadable = |e: CodecError| CodecError::Malformed(format!("schema id {id}: {e}"));
        let schema = schema.map_err(unreadable)?;
        let (indexes, encoded) = message_indexes(rest)?;
        let message_type = schema.message_type(&indexes).map_err(unreadable)?;
        let message = DynamicMessage::decode(message_type, encoded).map_err(|e| CodecError::Malformed(format!("invalid Protobuf data: {e}")))?;
        Ok(ProtobufRecord { message })
    }
}

/// A Protobuf writer schema; another type of schema is a bad message's reason.
fn protobuf_schema(id: u32, schema: CompiledSchema) -> Result<Rc<ProtobufSchema>, CodecError> {
    match schema {
        CompiledSchema::Protobuf(schema) => Ok(schema),
        other => Err(CodecError::Schema(format!("schema {id} is of type {}, not PROTOBUF", other.type_name()))),
    }
}

/// A value with the kind its field declares (for a list, its items'; for a map, its entries').
struct Typed<'v> {
    value: &'v Value,
    kind: Kind,
}

impl<'v> Typed<'v> {
    fn of(value: &'v Value, field: &FieldDescriptor) -> Self {
        Typed { value, kind: field.kind() }
    }
}

impl ProtobufRecord {
    /// The text of the field at `path` (`None` for an unset or missing field); with
    /// `as_json`, for a json/jsonb column, as JSON text.
    pub fn field(&self, path: &JsonPath, as_json: bool) -> Option<Cow<'_, [u8]>> {
        let text = match path {
            JsonPath::Whole => message_json(&self.message).to_string(),
            JsonPath::Keys(keys) => field_text(&self.message, keys, as_json)?,
        };
        Some(Cow::Owned(text.into_bytes()))
    }

    /// Top-level fields no path starts with.
    pub fn unmapped_fields<'p>(&self, paths: impl Iterator<Item = &'p JsonPath> + Clone) -> Vec<String> {
        if paths.clone().any(|path| matches!(path, JsonPath::Whole)) {
            return Vec::new();
        }
        self.message
            .descriptor()
            .fields()
            .map(|field| field.name().to_string())
            .filter(|name| !paths.clone().any(|path| matches!(path, JsonPath::Keys(keys) if keys[0] == *name)))
            .collect()
    }
}

/// The text of the field `keys[0]` of `message`, or of the value at the rest of the keys below it.
fn field_text(message: &DynamicMessage, keys: &[String], as_json: bool) -> Option<String> {
    let (name, rest) = keys.split_first()?;
    let field = message.descriptor().get_field_by_name(name)?;
    if field.supports_presence() && !message.has_field(&field) {
        return None;
    }
    let value = message.get_field(&field);
    value_text(Typed::of(&value, &field), rest, as_json)
}

/// The text of `typed`, or of the value at `keys` below it (in a message or map).
fn value_text(typed: Typed<'_>, keys: &[String], as_json: bool) -> Option<String> {
    let Some((key, rest)) = keys.split_first() else {
        return if as_json { Some(to_json(&typed).to_string()) } else { to_text(&typed) };
    };
    match (typed.value, &typed.kind) {
        (Value::Map(entries), Kind::Message(entry)) => {
            let found = entries.get(&map_key(&entry.map_entry_key_field().kind(), key)?)?;
            value_text(Typed::of(found, &entry.map_entry_value_field()), rest, as_json)
        }
        (Value::Message(inner), _) => field_text(inner, keys, as_json),
        _ => None,
    }
}

/// A map key written as text in a path, as the map's key type.
fn map_key(kind: &Kind, key: &str) -> Option<MapKey> {
    Some(match kind {
        Kind::String => MapKey::String(key.to_string()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(key.parse().ok()?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(key.parse().ok()?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(key.parse().ok()?),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(key.parse().ok()?),
        Kind::Bool => MapKey::Bool(key.parse().ok()?),
        _ => return None,
    })
}

/// A value as the text a PostgreSQL input function takes.
fn to_text(typed: &Typed<'_>) -> Option<String> {
    Some(match typed.value {
        Value::Bool(b) => b.to_string(),
        Value::I32(n) => n.to_string(),
        Value::I64(n) => n.to_string(),
        Value::U32(n) => n.to_string(),
        Value::U64(n) => n.to_string(),
        Value::F32(x) => float_text(f64::from(*x)),
        Value::F64(x) => float_text(*x),
        Value::String(text) => text.clone(),
        Value::Bytes(bytes) => bytea_text(bytes),
        Value::EnumNumber(number) => enum_name(&typed.kind, *number),
        Value::Message(message) => return Some(well_known_text(message).unwrap_or_else(|| message_json(message).to_string())),
        Value::List(items) if items_are_scalars(&typed.kind) => text::array_literal(
            items.iter().map(|item| to_text(&Typed { value: item, kind: typed.kind.clone() })),
        ),
        Value::List(_) | Value::Map(_) => to_json(typed).to_string(),
    })
}

/// Whether items of this kind read into a PostgreSQL array.
fn items_are_scalars(kind: &Kind) -> bool {
    match kind {
        Kind::Message(message) => is_well_known_scalar(message.full_name()),
        _ => true,
    }
}

fn enum_name(kind: &Kind, number: i32) -> String {
    match kind {
        Kind::Enum(descriptor) => descriptor.get_value(number).map_or_else(|| number.to_string(), |value| value.name().to_string()),
        _ => number.to_string(),
    }
}

const WRAPPERS: [&str; 9] = [
    "google.protobuf.DoubleValue",
    "google.protobuf.FloatValue",
    "google.protobuf.Int64Value",
    "google.protobuf.UInt64Value",
    "google.protobuf.Int32Value",
    "google.protobuf.UInt32Value",
    "google.protobuf.BoolValue",
    "google.protobuf.StringValue",
    "google.protobuf.BytesValue",
];
const TIMESTAMP: &str = "google.protobuf.Timestamp";

fn is_well_known_scalar(full_name: &str) -> bool {
    full_name == TIMESTAMP || WRAPPERS.contains(&full_name)
}

/// The text of a Timestamp (UTC) or of a wrapper's value; `None` for other messages.
fn well_known_text(message: &DynamicMessage) -> Option<String> {
    let name = message.descriptor().full_name().to_string();
    if name == TIMESTAMP {
        let seconds = message.get_field_by_name("seconds").and_then(|v| v.as_i64()).unwrap_or(0);
        let nanos = message.get_field_by_name("nanos").and_then(|v| v.as_i32()).unwrap_or(0);
        let micros = seconds.checked_mul(1_000_000).and_then(|m| m.checked_add(i64::from(nanos) / 1000));
        return Some(micros.map_or_else(|| format!("invalid timestamp {seconds}"), |micros| timestamp_text(micros, true)));
    }
    if WRAPPERS.contains(&name.as_str()) {
        let field = message.descriptor().get_field_by_name("value")?;
        return to_text(&Typed::of(&message.get_field(&field), &field));
    }
    None
}

/// A message as a JSON object of all its fields (unset ones with presence as null).
fn message_json(message: &DynamicMessage) -> Json {
    if let Some(text) = well_known_text(message) {
        let field = message.descriptor().get_field_by_name("value");
        return match field {
            // A wrapper: its value as JSON (a number stays a number).
            Some(field) => to_json(&Typed::of(&message.get_field(&field), &field)),
            None => Json::String(text),
        };
    }
    let object: Map<String, Json> = message
        .descriptor()
        .fields()
        .map(|field| {
            let value = if field.supports_presence() && !message.has_field(&field) {
                Json::Null
            } else {
                to_json(&Typed::of(&message.get_field(&field), &field))
            };
            (field.name().to_string(), value)
        })
        .collect();
    Json::Object(object)
}

/// A value as JSON: strings for text, bytes (`\x` hex) and enums (names).
fn to_json(typed: &Typed<'_>) -> Json {
    let item = |value| Typed { value, kind: typed.kind.clone() };
    match typed.value {
        Value::Bool(b) => Json::Bool(*b),
        Value::I32(n) => Json::from(*n),
        Value::I64(n) => Json::from(*n),
        Value::U32(n) => Json::from(*n),
        Value::U64(n) => Json::from(*n),
        Value::F32(x) => json_float(f64::from(*x)),
        Value::F64(x) => json_float(*x),
        Value::Message(message) => message_json(message),
        Value::List(items) => Json::Array(items.iter().map(|value| to_json(&item(value))).collect()),
        Value::Map(entries) => {
            let Kind::Message(entry) = &typed.kind else { return Json::Null };
            let value_field = entry.map_entry_value_field();
            let mut pairs: Vec<(String, Json)> = entries
                .iter()
                .map(|(key, value)| (map_key_text(key), to_json(&Typed::of(value, &value_field))))
                .collect();
            // Protobuf maps have no order; sorted keys keep the text stable.
            pairs.sort_by(|a, b| a.0.cmp(&b.0));
            Json::Object(pairs.into_iter().collect())
        }
        other => to_text(&item(other)).map_or(Json::Null, Json::String),
    }
}

fn map_key_text(key: &MapKey) -> String {
    match key {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(n) => n.to_string(),
        MapKey::I64(n) => n.to_string(),
        MapKey::U32(n) => n.to_string(),
        MapKey::U64(n) => n.to_string(),
        MapKey::String(text) => text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::wire::WriterSchema;
    use prost_reflect::prost::Message;

    const COMMON: &str = r#"
        syntax = "proto3";
        package common;
        message Money { string currency = 1; int64 units = 2; }
    "#;

    const ORDERS: &str = r#"
        syntax = "proto3";
        package shop;
        import "common.proto";
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";
        message Ignored { int32 x = 1; }
        message Order {
            enum Status { NEW = 0; PAID = 1; }
            message Line { string sku = 1; int32 quantity = 2; }
            int64 id = 1;
            string customer = 2;
            double total = 3;
            bool paid = 4;
            bytes raw = 5;
            Status status = 6;
            google.protobuf.Timestamp at = 7;
            repeated string tags = 8;
            map<string, int32> counts = 9;
            Line first = 10;
            repeated Line lines = 11;
            common.Money price = 12;
            optional string note = 13;
            google.protobuf.Int64Value maybe = 14;
            uint64 big = 15;
            float ratio = 16;
        }
    "#;

    struct Registry(HashMap<u32, WriterSchema>);

    impl SchemaById for Registry {
        fn schema(&mut self, id: u32) -> Result<CompiledSchema, CodecError> {
            self.0.get(&id).ok_or_else(|| CodecError::Schema(format!("no schema with id {id}"))).and_then(CompiledSchema::compile)
        }
    }

    fn registry() -> Box<Registry> {
        let orders = WriterSchema {
            schema_type: "PROTOBUF".into(),
            text: ORDERS.into(),
            references: vec![("common.proto".into(), COMMON.into())],
        };
        let avro = WriterSchema { schema_type: "AVRO".into(), text: "\"long\"".into(), references: vec![] };
        let broken = WriterSchema { schema_type: "PROTOBUF".into(), text: "syntax = \"proto3\"; message {".into(), references: vec![] };
        Box::new(Registry([(1, orders), (2, avro), (3, broken)].into()))
    }

    fn order_type() -> MessageDescriptor {
        ProtobufSchema::compile(ORDERS, &[("common.proto".into(), COMMON.into())]).unwrap().message_type(&[1]).unwrap()
    }

    /// Framed as Confluent's serializer writes it: header, indexes, message.
    fn framed(id: u32, indexes: &[u8], message: &DynamicMessage) -> Vec<u8> {
        [&[0][..], &id.to_be_bytes(), indexes, &message.encode_to_vec()].concat()
    }

    fn order() -> DynamicMessage {
        let order = order_type();
        let mut message = DynamicMessage::new(order.clone());
        let set = |message: &mut DynamicMessage, name: &str, value: Value| message.set_field_by_name(name, value);
        set(&mut message, "id", Value::I64(7));
        set(&mut message, "customer", Value::String("a \"quoted\" name".into()));
        set(&mut message, "total", Value::F64(2.5));
        set(&mut message, "paid", Value::Bool(true));
        set(&mut message, "raw", Value::Bytes(vec![0u8, 255].into()));
        set(&mut message, "status", Value::EnumNumber(1));
        let timestamp = order.get_field_by_name("at").unwrap().kind();
        let mut at = DynamicMessage::new(timestamp.as_message().unwrap().clone());
        at.set_field_by_name("seconds", Value::I64(1_704_067_200));
        at.set_field_by_name("nanos", Value::I32(123_456_000));
        set(&mut message, "at", Value::Message(at));
        set(&mut message, "tags", Value::List(vec![Value::String("x".into()), Value::String("y,z".into())]));
        set(&mut message, "counts", Value::Map([(MapKey::String("b".into()), Value::I32(2)), (MapKey::String("a".into()), Value::I32(1))].into()));
        let line_type = order.get_field_by_name("first").unwrap().kind().as_message().unwrap().clone();
        let mut line = DynamicMessage::new(line_type);
        line.set_field_by_name("sku", Value::String("s-1".into()));
        line.set_field_by_name("quantity", Value::I32(3));
        set(&mut message, "first", Value::Message(line.clone()));
        set(&mut message, "lines", Value::List(vec![Value::Message(line)]));
        set(&mut message, "big", Value::U64(u64::MAX));
        set(&mut message, "ratio", Value::F32(f32::NAN));
        message
    }

    fn text(record: &ProtobufRecord, path: &str, as_json: bool) -> Option<String> {
        record.field(&JsonPath::parse(path).unwrap(), as_json).map(|t| String::from_utf8(t.into_owned()).unwrap())
    }

    #[test]
    fn every_type_reads_as_postgresql_input_text() {
        let mut decoder = ProtobufDecoder::new(registry());
        // Order is the second top-level message: indexes [1] (count 1, index 1, zigzag).
        let record = decoder.decode(&framed(1, &[2, 2], &order())).unwrap();
        let expect = [
            ("id", "7"),
            ("customer", "a \"quoted\" name"),
            ("total", "2.5"),
            ("paid", "true"),
            ("raw", "\\x00ff"),
            ("status", "PAID"),
            ("at", "2024-01-01 00:00:00.123456+00"),
            ("tags", "{\"x\",\"y,z\"}"),
            ("counts", "{\"a\":1,\"b\":2}"),
            ("counts.b", "2"),
            ("first", "{\"sku\":\"s-1\",\"quantity\":3}"),
            ("first.sku", "s-1"),
            ("lines", "[{\"sku\":\"s-1\",\"quantity\":3}]"),
            ("big", "18446744073709551615"),
            ("ratio", "NaN"),
        ];
        for (path, want) in expect {
            assert_eq!(text(&record, path, false).as_deref(), Some(want), "{path}");
        }
        // Unset fields with presence are NULL; proto3 scalars read as their default.
        for unset in ["price", "price.units", "note", "maybe", "missing", "counts.zzz", "id.x"] {
            assert_eq!(text(&record, unset, false), None, "{unset}");
        }
        assert_eq!(text(&record, "tags", true).as_deref(), Some("[\"x\",\"y,z\"]"));
        assert_eq!(text(&record, "status", true).as_deref(), Some("\"PAID\""));
        let whole: Json = serde_json::from_slice(&record.field(&JsonPath::Whole, true).unwrap()).unwrap();
        assert_eq!(whole["at"], "2024-01-01 00:00:00.123456+00");
        assert_eq!(whole["first"]["quantity"], 3);
        assert_eq!(whole["note"], Json::Null);
        let mut sparse = DynamicMessage::new(order_type());
        sparse.set_field_by_name("note", Value::String(String::new()));
        let mut wrapped = DynamicMessage::new(order_type().get_field_by_name("maybe").unwrap().kind().as_message().unwrap().clone());
        wrapped.set_field_by_name("value", Value::I64(-5));
        sparse.set_field_by_name("maybe", Value::Message(wrapped));
        let sparse = decoder.decode(&framed(1, &[2, 2], &sparse)).unwrap();
        assert_eq!((text(&sparse, "id", false).as_deref(), text(&sparse, "note", false).as_deref()), (Some("0"), Some("")));
        assert_eq!(text(&sparse, "maybe", false).as_deref(), Some("-5"));
        assert_eq!(text(&sparse, "tags", false).as_deref(), Some("{}"));
        let id_only = [JsonPath::parse("id").unwrap()];
        assert_eq!(sparse.unmapped_fields(id_only.iter()).len(), 15);
    }

    #[test]
    fn message_indexes_pick_the_type_and_bad_messages_are_errors() {
        let mut decoder = ProtobufDecoder::new(registry());
        let mut ignored = DynamicMessage::new(order_type().parent_file().messages().next().unwrap());
        ignored.set_field_by_name("x", Value::I32(4));
        // [0] is written as the single byte 0.
        let first = decoder.decode(&framed(1, &[0], &ignored)).unwrap();
        assert_eq!(text(&first, "x", false).as_deref(), Some("4"));
        // [1, 0]: Order's first nested message, Line.
        let line = DynamicMessage::decode(order_type().get_field_by_name("first").unwrap().kind().as_message().unwrap().clone(), &b"\x0a\x01q"[..]).unwrap();
        let nested = decoder.decode(&framed(1, &[4, 2, 0], &line)).unwrap();
        assert_eq!(text(&nested, "sku", false).as_deref(), Some("q"));
        let good = framed(1, &[2, 2], &order());
        let cases: [(Vec<u8>, &str); 7] = [
            (vec![], "empty message"),
            (framed(9, &[0], &ignored), "schema id 9: no schema with id 9"),
            (framed(2, &[0], &ignored), "schema id 2: schema 2 is of type AVRO, not PROTOBUF"),
            (framed(3, &[0], &ignored), "schema id 3: invalid Protobuf schema"),
            (framed(1, &[2, 8], &ignored), "no message type at index [4]"),
            (good[..good.len() - 3].to_vec(), "invalid Protobuf data"),
            (vec![0, 0, 0, 0, 1, 0x80], "inside the Protobuf message indexes"),
        ];
        for (payload, want) in cases {
            let error = decoder.decode(&payload).err().unwrap_or_else(|| panic!("{payload:?} decoded"));
            assert!(matches!(&error, CodecError::Malformed(why) if why.contains(want)), "{payload:?}: {error:?}");
        }
        assert!(decoder.decode(&good).is_ok());
    }

    #[test]
    fn the_first_message_type_gives_the_columns_of_an_imported_table() {
        let schema = ProtobufSchema::compile(ORDERS, &[("common.proto".into(), COMMON.into())]).unwrap();
        assert_eq!(schema.columns().unwrap(), vec![("x".to_string(), "integer".to_string())]);
        let order = ORDERS.replace("message Ignored { int32 x = 1; }", "");
        let columns: Vec<String> = ProtobufSchema::compile(&order, &[("common.proto".into(), COMMON.into())])
            .unwrap()
            .columns()
            .unwrap()
            .into_iter()
            .map(|(name, sql)| format!("{name} {sql}"))
            .collect();
        assert_eq!(
            columns,
            [
                "id bigint", "customer text", "total double precision", "paid boolean", "raw bytea", "status text",
                "at timestamp with time zone", "tags text[]", "counts jsonb", "first jsonb", "lines jsonb", "price jsonb",
                "note text", "maybe bigint", "big numeric", "ratio real",
            ]
        );
    }

    #[test]
    fn random_and_corrupted_payloads_never_panic() {
        let good = framed(1, &[2, 2], &order());
        let mut decoder = ProtobufDecoder::new(registry());
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let paths: Vec<JsonPath> = ["id", "at", "counts.a", "first.sku", "lines", "tags"].iter().map(|p| JsonPath::parse(p).unwrap()).collect();
        for round in 0..100_000 {
            let mut payload = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = 5 + (next() as usize) % (payload.len() - 5);
                payload[at] = next() as u8;
            }
            payload.truncate(payload.len() - (next() as usize % 3));
            if let Ok(record) = decoder.decode(&payload) {
                for path in &paths {
                    let _ = record.field(path, round % 3 == 0);
                }
                let _ = record.field(&JsonPath::Whole, true);
            }
        }
    }
}
