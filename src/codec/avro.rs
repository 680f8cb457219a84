//! Avro messages: Confluent's wire format (a zero byte, the writer schema's 4-byte
//! big-endian registry id, then the binary datum) or bare datums of one given schema.
//!
//! A message must be a record. Columns map to its fields by name, or by a path into
//! nested records and maps (the `json` column option), as for JSON messages; writer
//! schemas of different versions read into the same columns because fields are matched
//! by name, and a field the writer lacks is NULL. A column's text is what its type's
//! input function gets: numbers and strings as written, bytes as `\x` hex, dates and
//! times in ISO form (timestamps in UTC), decimals exact at their scale, arrays of
//! scalars as PostgreSQL array literals, and records, maps and other arrays as JSON.
//!
//! apache-avro parses the schemas; the messages are read by `avro_datum`, straight from
//! their bytes, each column's text from its field's bytes when it is asked for.

use std::borrow::Cow;
use super::error::CodecError;
use std::collections::HashMap;
use std::rc::Rc;

use apache_avro::schema::Schema;

use super::avro_datum::{DatumError, Node, NodeId, Plan, Reader, JSON_TEXT};
use super::avro_encode::AvroEncoder;
use super::debezium;
use super::json::JsonPath;
use super::native::FieldValue;
use super::wire::{frame, CompiledSchema, LastSchema, SchemaById};

/// A schema, compiled for reading messages written with it.
pub struct AvroSchema {
    plan: Plan,
}

impl AvroSchema {
    /// Parses and compiles a schema's JSON text; the error says why it is not one. Types
    /// with a Kafka Connect semantic type Avro has a logical type for read as that
    /// (Debezium's dates, times and timestamps: [`debezium::avro_logical_type`]).
    pub fn parse(text: &str) -> Result<Rc<AvroSchema>, CodecError> {
        let schema = match with_connect_logical_types(text) {
            Some(rewritten) => Schema::parse(&rewritten),
            None => Schema::parse_str(text),
        }
        .map_err(|e| CodecError::Schema(format!("invalid Avro schema: {e}")))?;
        let plan = Plan::compile(&schema).map_err(|e| e.within("invalid Avro schema"))?;
        Ok(Rc::new(AvroSchema { plan }))
    }

    /// About the bytes of memory it holds (see `CompiledSchema::heap_size`).
    pub fn heap_size(&self) -> usize {
        std::mem::size_of::<AvroSchema>() + self.plan.heap_size()
    }
}

/// Schema JSON `text` read along the Kafka Connect semantic types (`"connect.name"`)
/// its types carry: a logical type added to each primitive type Avro has one for, and the
/// fields whose strings hold JSON marked [`JSON_TEXT`]; None if there is none of them (or
/// the text is no JSON: apache-avro says why).
fn with_connect_logical_types(text: &str) -> Option<serde_json::Value> {
    use serde_json::Value as Json;
    fn connect_name(schema: &Json) -> Option<&str> {
        schema.get("connect.name").and_then(Json::as_str)
    }
    fn rewrite(value: &mut Json) -> bool {
        match value {
            Json::Array(items) => items.iter_mut().fold(false, |changed, item| rewrite(item) | changed),
            Json::Object(_) => {
                let logical = match (connect_name(value), value.get("type").and_then(Json::as_str), value.get("logicalType")) {
                    (Some(name), Some(kind), None) => debezium::avro_logical_type(name, kind),
                    _ => None,
                };
                // A record field (name and type) whose type, or a branch of it, is a Json string.
                let holds_json = value.get("name").is_some()
                    && value.get("type").is_some_and(|kind| {
                        let is_json = |schema: &Json| connect_name(schema) == Some(debezium::JSON);
                        is_json(kind) || kind.as_array().is_some_and(|branches| branches.iter().any(is_json))
                    });
                let Json::Object(object) = value else { unreachable!("matched above") };
                let mut changed = object.values_mut().fold(false, |changed, member| rewrite(member) | changed);
                if let Some(logical) = logical {
                    object.insert("logicalType".into(), logical.into());
                    changed = true;
                }
                if holds_json {
                    object.insert(JSON_TEXT.into(), true.into());
                    changed = true;
                }
                changed
            }
            _ => false,
        }
    }
    // Cheap test first: most schemas name no Connect type.
    if !text.contains("connect.name") {
        return None;
    }
    let mut schema: serde_json::Value = serde_json::from_str(text).ok()?;
    rewrite(&mut schema).then_some(schema)
}

/// Where the writer schema of a message comes from.
pub enum WriterSchemas {
    /// Bare datums, all written with this schema (table option `avro_schema`).
    Given(Rc<AvroSchema>),
    /// Confluent's wire format: the id in each message names its schema.
    Registry(Box<dyn SchemaById>),
}

/// Decodes Avro messages.
pub struct AvroDecoder {
    schemas: WriterSchemas,
    last: LastSchema<AvroSchema>,
    /// Where the top-level fields of the last message start in its datum.
    field_starts: Vec<usize>,
    /// Messages must be records (values); keys may be of any type.
    records_only: bool,
    /// The defaults of the subject's latest schema, asked for at the first message
    /// (`None` until then).
    reader_defaults: Option<Option<Rc<ReaderDefaults>>>,
}

/// What a reader of the subject's latest schema takes for a top-level field a message's
/// writer lacks: the field's default, encoded, and rendered with the latest schema's plan.
pub struct ReaderDefaults {
    schema: Rc<AvroSchema>,
    encoded: HashMap<String, Vec<u8>>,
}

impl ReaderDefaults {
    /// The defaults of the record schema `text`; `None` if it is no Avro record schema.
    pub fn new(text: &str) -> Option<ReaderDefaults> {
        let schema = AvroSchema::parse(text).ok()?;
        schema.plan.record()?;
        let encoded = AvroEncoder::new(text, None).ok()?.field_defaults().into_iter().collect();
        Some(ReaderDefaults { schema, encoded })
    }

    /// Where a field's default is read from: its node in the latest schema's plan and
    /// the encoded default.
    fn field(&self, name: &str) -> Option<(NodeId, Reader<'_>)> {
        let bytes = self.encoded.get(name)?;
        let record = self.schema.plan.record()?;
        Some((record.fields[record.position(name)?].1, Reader::new(bytes)))
    }
}

/// A decoded message: its datum, checked against the schema it was written with, and
/// where its fields start. Columns are rendered from the bytes as they are asked for.
pub struct AvroRecord<'a> {
    schema: Rc<AvroSchema>,
    datum: &'a [u8],
    field_starts: &'a [usize],
    /// The subject's latest schema's defaults, for fields the writer lacks.
    defaults: Option<&'a ReaderDefaults>,
}

impl AvroDecoder {
    pub fn new(schemas: WriterSchemas) -> Self {
        AvroDecoder { schemas, last: LastSchema::default(), field_starts: Vec::new(), records_only: true, reader_defaults: None }
    }

    /// A decoder of keys, which may be of any type (a `"long"` or `"string"` key is read
    /// whole).
    pub fn for_keys(schemas: WriterSchemas) -> Self {
        AvroDecoder { records_only: false, ..AvroDecoder::new(schemas) }
    }

    /// Decodes a payload; the error says why it is not an Avro record of its schema.
    pub fn decode<'a>(&'a mut self, payload: &'a [u8]) -> Result<AvroRecord<'a>, CodecError> {
        let (schema, datum) = match &mut self.schemas {
            WriterSchemas::Given(schema) => (schema.clone(), payload),
            WriterSchemas::Registry(registry) => {
                if self.reader_defaults.is_none() {
                    let latest = registry.latest().filter(|latest| latest.schema_type == "AVRO");
                    self.reader_defaults = Some(latest.and_then(|latest| ReaderDefaults::new(&latest.text)).map(Rc::new));
                }
                let (id, datum) = frame(payload)?;
                let schema = self.last.get(id, || registry.schema(id).and_then(|schema| avro_schema(id, schema)));
                // A schema that cannot be had makes the message a bad one.
                (schema.map_err(|e| CodecError::Malformed(format!("schema id {id}: {e}")))?, datum)
            }
        };
        schema.plan.check(datum, &mut self.field_starts).map_err(|e| CodecError::Malformed(e.to_string()))?;
        if self.records_only && schema.plan.record().is_none() {
            return Err(CodecError::Malformed("Avro message is not a record".to_string()));
        }
        let defaults = self.reader_defaults.as_ref().and_then(Option::as_deref);
        Ok(AvroRecord { schema, datum, field_starts: &self.field_starts, defaults })
    }
}

impl AvroSchema {
    /// The columns a table of this record's fields would have (IMPORT FOREIGN SCHEMA):
    /// each field's name and the PostgreSQL type its values read as; `None` if the
    /// schema is not a record.
    pub fn columns(&self) -> Option<Vec<(String, String)>> {
        let record = self.plan.record()?;
        Some(record.fields.iter().map(|(name, field)| (name.clone(), self.sql_type(*field))).collect())
    }

    /// The PostgreSQL type a whole datum reads as (a key column holds the whole key):
    /// jsonb for records, the scalar's type otherwise.
    pub fn whole_type(&self) -> String {
        self.sql_type(self.plan.root())
    }

    fn sql_type(&self, id: usize) -> String {
        let plan = &self.plan;
        let id = match plan.node(id) {
            Node::Union(_) => match plan.nullable(id) {
                Some(other) => other,
                None => return "jsonb".to_string(),
            },
            _ => id,
        };
        match plan.node(id) {
            Node::Boolean => "boolean".into(),
            Node::Int => "integer".into(),
            Node::Long => "bigint".into(),
            Node::Float => "real".into(),
            Node::Double => "double precision".into(),
            Node::Bytes | Node::Fixed(_) => "bytea".into(),
            Node::String | Node::Enum(_) => "text".into(),
            Node::JsonText => "jsonb".into(),
            Node::Uuid(_) => "uuid".into(),
            Node::Date => "date".into(),
            Node::TimeMillis | Node::TimeMicros => "time".into(),
            Node::Timestamp { utc: true, .. } => "timestamp with time zone".into(),
            Node::Timestamp { utc: false, .. } => "timestamp".into(),
            Node::Decimal { precision, scale, .. } => format!("numeric({precision}, {scale})"),
            Node::BigDecimal | Node::VariableScaleDecimal => "numeric".into(),
            Node::Duration(_) => "interval".into(),
            Node::Array(items) if plan.items_are_scalars(*items) => format!("{}[]", self.sql_type(*items)),
            Node::Null | Node::Array(_) | Node::Map(_) | Node::Union(_) | Node::Record(_) => "jsonb".into(),
        }
    }
}

/// What reading a part of a datum gives: the datum was checked whole by `decode`, so
/// reading it again cannot fail.
fn reread<T: std::fmt::Debug>(read: Result<T, DatumError>) -> Option<T> {
    debug_assert!(read.is_ok(), "a checked datum could not be read again: {read:?}");
    read.ok()
}

/// An Avro writer schema; another type of schema is a bad message's reason.
fn avro_schema(id: u32, schema: CompiledSchema) -> Result<Rc<AvroSchema>, CodecError> {
    match schema {
        CompiledSchema::Avro(schema) => Ok(schema),
        other => Err(CodecError::Schema(format!("schema {id} is a {} schema, not Avro", other.type_name()))),
    }
}

impl AvroRecord<'_> {
    /// The text of the field at `path` (`None` for null or a missing field); with
    /// `as_json`, for a json/jsonb column, as JSON text.
    pub fn field(&self, path: &JsonPath, as_json: bool) -> Option<Cow<'_, [u8]>> {
        let (plan, node, reader) = self.locate(path)?;
        reread(plan.text(node, reader, as_json))?
    }

    /// The field at `path` as [`field`](Self::field) gives it, but typed when it is a
    /// boolean, number, string, enum, date or timestamp and no JSON is asked for.
    pub fn value(&self, path: &JsonPath, as_json: bool) -> Option<FieldValue<'_>> {
        let (plan, node, reader) = self.locate(path)?;
        reread(plan.value(node, reader, as_json))?
    }

    /// Where the value at `path` starts, and the plan of the schema that wrote it (the
    /// reader's, for a default); `None` for a field neither schema has.
    fn locate(&self, path: &JsonPath) -> Option<(&Plan, NodeId, Reader<'_>)> {
        let plan = &self.schema.plan;
        match path {
            JsonPath::Whole => Some((plan, plan.root(), Reader::new(self.datum))),
            JsonPath::Keys(keys) => {
                let (first, rest) = keys.split_first()?;
                let (plan, start) = match plan.record()?.position(first) {
                    Some(position) => (plan, (plan.record()?.fields[position].1, Reader::new(&self.datum[self.field_starts[position]..]))),
                    // A field the writer lacks: the reader's default, if it has one.
                    None => {
                        let defaults = self.defaults?;
                        (&defaults.schema.plan, defaults.field(first)?)
                    }
                };
                let (node, reader) = rest.iter().try_fold(start, |(node, reader), key| reread(plan.child(node, reader, key))?)?;
                Some((plan, node, reader))
            }
        }
    }

    /// Top-level fields no path starts with.
    pub fn unmapped_fields<'p>(&self, paths: impl Iterator<Item = &'p JsonPath> + Clone) -> Vec<&str> {
        if paths.clone().any(|path| matches!(path, JsonPath::Whole)) {
            return Vec::new();
        }
        let Some(record) = self.schema.plan.record() else { return Vec::new() };
        record
            .fields
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| !paths.clone().any(|path| matches!(path, JsonPath::Keys(keys) if keys[0] == *name)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::{Record, Value};
    use num_bigint::BigInt;
    use serde_json::Value as Json;

    use crate::codec::text::decimal_text;
    use crate::codec::wire::WriterSchema;

    const SCHEMA: &str = r#"{
        "type": "record", "name": "Event",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": ["null", "string"], "default": null},
            {"name": "score", "type": "double"},
            {"name": "ok", "type": "boolean"},
            {"name": "raw", "type": "bytes"},
            {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
            {"name": "day", "type": {"type": "int", "logicalType": "date"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
            {"name": "clock", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "int"}},
            {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]}},
            {"name": "again", "type": ["null", "Inner"]}
        ]
    }"#;

    /// The schema as apache-avro parses it, to write test data with.
    fn parsed(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    fn event(schema: &Schema) -> Vec<u8> {
        let mut record = Record::new(schema).unwrap();
        record.put("id", 7i64);
        record.put("name", Value::Union(1, Box::new(Value::String("a \"quoted\" name".into()))));
        record.put("score", 2.5f64);
        record.put("ok", true);
        record.put("raw", Value::Bytes(vec![0, 255]));
        record.put("kind", Value::Enum(1, "B".into()));
        record.put("day", Value::Date(19_723));
        record.put("at", Value::TimestampMicros(1_704_067_200_123_456));
        record.put("local", Value::LocalTimestampMillis(86_400_000));
        record.put("clock", Value::TimeMillis(3_723_004));
        record.put("price", Value::Decimal(apache_avro::Decimal::from(vec![0xfb, 0x2e]))); // -1234
        record.put("tags", Value::Array(vec![Value::String("x".into()), Value::String("y,z".into())]));
        record.put("attrs", Value::Map([("b".to_string(), Value::Int(2)), ("a".to_string(), Value::Int(1))].into()));
        record.put("inner", Value::Record(vec![("x".into(), Value::Int(5))]));
        record.put("again", Value::Union(0, Box::new(Value::Null)));
        datum(schema, record).unwrap()
    }

    #[allow(deprecated)] // the simplest writer; decoding is what is tested
    fn datum(schema: &Schema, value: impl Into<Value>) -> Result<Vec<u8>, apache_avro::Error> {
        apache_avro::to_avro_datum(schema, value)
    }

    fn text(record: &AvroRecord, path: &str, as_json: bool) -> Option<String> {
        record.field(&JsonPath::parse(path).unwrap(), as_json).map(|t| String::from_utf8(t.into_owned()).unwrap())
    }

    struct Registry(HashMap<u32, String>);

    impl SchemaById for Registry {
        fn schema(&mut self, id: u32) -> Result<CompiledSchema, CodecError> {
            let text = self.0.get(&id).cloned().ok_or_else(|| CodecError::Schema(format!("no schema with id {id}")))?;
            let schema_type = if text.starts_with("syntax") { "PROTOBUF" } else { "AVRO" }.to_string();
            CompiledSchema::compile(&WriterSchema { schema_type, text, references: Vec::new() })
        }
    }

    fn framed(id: u32, datum: &[u8]) -> Vec<u8> {
        let mut message = vec![0];
        message.extend_from_slice(&id.to_be_bytes());
        message.extend_from_slice(datum);
        message
    }

    #[test]
    fn every_type_reads_as_postgresql_input_text() {
        let schema = AvroSchema::parse(SCHEMA).unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema.clone()));
        let datum = event(&parsed(SCHEMA));
        let record = decoder.decode(&datum).unwrap();
        let expect = [
            ("id", "7"),
            ("name", "a \"quoted\" name"),
            ("score", "2.5"),
            ("ok", "true"),
            ("raw", "\\x00ff"),
            ("kind", "B"),
            ("day", "2024-01-01"),
            ("at", "2024-01-01 00:00:00.123456+00"),
            ("local", "1970-01-02 00:00:00.000000"),
            ("clock", "01:02:03.004000"),
            ("price", "-12.34"),
            ("tags", "{\"x\",\"y,z\"}"),
            ("attrs", "{\"a\":1,\"b\":2}"),
            ("inner", "{\"x\":5}"),
            ("inner.x", "5"),
            ("attrs.b", "2"),
        ];
        for (path, want) in expect {
            assert_eq!(text(&record, path, false).as_deref(), Some(want), "{path}");
        }
        assert_eq!(text(&record, "again", false), None);
        assert_eq!(text(&record, "again", true), None);
        assert_eq!(text(&record, "again.x", false), None);
        assert_eq!(text(&record, "missing", false), None);
        assert_eq!(text(&record, "tags", true).as_deref(), Some("[\"x\",\"y,z\"]"));
        assert_eq!(text(&record, "price", true).as_deref(), Some("\"-12.34\""));
        let whole = record.field(&JsonPath::Whole, true).unwrap();
        let whole: Json = serde_json::from_slice(&whole).unwrap();
        assert_eq!(whole["inner"]["x"], 5);
        assert_eq!(whole["again"], Json::Null);
        let id_only = [JsonPath::parse("id").unwrap()];
        assert_eq!(record.unmapped_fields(id_only.iter()).len(), 14);
    }

    #[test]
    fn framed_messages_name_their_writer_schema_and_versions_read_by_field_name() {
        let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#;
        let v2 = r#"{"type":"record","name":"R","fields":[{"name":"b","type":"string"},{"name":"a","type":"long"}]}"#;
        let (s1, s2) = (parsed(v1), parsed(v2));
        let registry = Registry([(1, v1.to_string()), (2, v2.to_string())].into());
        let mut decoder = AvroDecoder::new(WriterSchemas::Registry(Box::new(registry)));
        let old = datum(&s1, Value::Record(vec![("a".into(), Value::Int(1))])).unwrap();
        let new = datum(
            &s2,
            Value::Record(vec![("b".into(), Value::String("n".into())), ("a".into(), Value::Long(2))]),
        )
        .unwrap();
        let (old, new) = (framed(1, &old), framed(2, &new));
        let first = decoder.decode(&old).unwrap();
        assert_eq!((text(&first, "a", false).as_deref(), text(&first, "b", false)), (Some("1"), None));
        let second = decoder.decode(&new).unwrap();
        assert_eq!((text(&second, "a", false).as_deref(), text(&second, "b", false).as_deref()), (Some("2"), Some("n")));
    }

    #[test]
    fn bad_messages_are_errors() {
        let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
        let good = datum(&parsed(v1), Value::Record(vec![("a".into(), Value::String("hello".into()))])).unwrap();
        let registry = Registry([(1, v1.to_string()), (3, "syntax = \"proto3\";".to_string())].into());
        let mut decoder = AvroDecoder::new(WriterSchemas::Registry(Box::new(registry)));
        let cases: [(Vec<u8>, &str); 8] = [
            (framed(3, &good), "schema id 3: schema 3 is a PROTOBUF schema, not Avro"),
            (Vec::new(), "empty message"),
            (vec![1, 0, 0, 0, 1], "unknown magic byte 1"),
            (vec![0, 0, 0], "shorter than the 5-byte"),
            (framed(9, &good), "schema id 9: no schema with id 9"),
            (framed(1, &good[..3]), "the record ends early"),
            (framed(1, &good[..1]), "invalid Avro data"),
            ([framed(1, &good), vec![0]].concat(), "1 bytes after the record"),
        ];
        for (payload, want) in cases {
            let error = decoder.decode(&payload).err().unwrap_or_else(|| panic!("{payload:?} decoded"));
            assert!(matches!(&error, CodecError::Malformed(why) if why.contains(want)), "{payload:?}: {error:?}");
        }
        assert!(decoder.decode(&framed(1, &good)).is_ok());
        let not_a_record = AvroSchema::parse(r#""long""#).unwrap();
        let mut bare = AvroDecoder::new(WriterSchemas::Given(not_a_record));
        assert_eq!(bare.decode(&[2]).err().unwrap(), CodecError::Malformed("Avro message is not a record".to_string()));
        assert!(matches!(AvroSchema::parse("{\"type\": \"recordd\"}").err().unwrap(), CodecError::Schema(why) if why.starts_with("invalid Avro schema")));
    }

    #[test]
    fn record_fields_give_the_columns_of_an_imported_table() {
        let schema = AvroSchema::parse(SCHEMA).unwrap();
        let columns: Vec<String> = schema.columns().unwrap().into_iter().map(|(name, sql)| format!("{name} {sql}")).collect();
        assert_eq!(
            columns,
            [
                "id bigint", "name text", "score double precision", "ok boolean", "raw bytea", "kind text", "day date",
                "at timestamp with time zone", "local timestamp", "clock time", "price numeric(10, 2)", "tags text[]",
                "attrs jsonb", "inner jsonb", "again jsonb",
            ]
        );
        assert_eq!(AvroSchema::parse(r#""long""#).unwrap().columns(), None);
    }

    #[test]
    fn debezium_semantic_types_read_as_dates_times_and_timestamps() {
        // As Confluent's AvroConverter writes Debezium's types: the Connect name beside a
        // primitive type, the column nullable.
        let schema_text = r#"{"type": "record", "name": "Value", "connect.name": "db.public.orders.Value", "fields": [
            {"name": "placed", "type": ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}]},
            {"name": "stamped", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTimestamp"}},
            {"name": "at_ms", "type": {"type": "long", "connect.name": "io.debezium.time.Timestamp"}},
            {"name": "clock", "type": {"type": "long", "connect.name": "io.debezium.time.MicroTime"}},
            {"name": "count", "type": {"type": "long", "connect.name": "some.Other"}},
            {"name": "details", "type": ["null", {"type": "string", "connect.version": 1, "connect.name": "io.debezium.data.Json"}]},
            {"name": "not_json", "type": ["null", {"type": "string", "connect.name": "io.debezium.data.Json"}]}
        ]}"#;
        let schema = AvroSchema::parse(schema_text).unwrap();
        let columns: Vec<String> = schema.columns().unwrap().into_iter().map(|(name, sql)| format!("{name} {sql}")).collect();
        assert_eq!(columns, ["placed date", "stamped timestamp", "at_ms timestamp", "clock time", "count bigint", "details jsonb", "not_json jsonb"]);
        let plain = parsed(schema_text);
        let mut record = Record::new(&plain).unwrap();
        record.put("placed", Value::Union(1, Box::new(Value::Int(3653))));
        record.put("stamped", Value::Long(1_704_067_200_123_456));
        record.put("at_ms", Value::Long(-1));
        record.put("clock", Value::Long(3_723_000_004));
        record.put("count", Value::Long(5));
        record.put("details", Value::Union(1, Box::new(Value::String(r#"{"n": [1, "two"]}"#.into()))));
        record.put("not_json", Value::Union(1, Box::new(Value::String("{oops".into()))));
        let datum = datum(&plain, record).unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema));
        let decoded = decoder.decode(&datum).unwrap();
        assert_eq!(text_of(&decoded, "placed"), "1980-01-02");
        assert_eq!(text_of(&decoded, "stamped"), "2024-01-01 00:00:00.123456");
        assert_eq!(text_of(&decoded, "at_ms"), "1969-12-31 23:59:59.999000");
        assert_eq!(text_of(&decoded, "clock"), "01:02:03.000004");
        assert_eq!(text_of(&decoded, "count"), "5");
        let whole: serde_json::Value = serde_json::from_slice(&decoded.field(&JsonPath::Whole, true).unwrap()).unwrap();
        assert_eq!(whole["placed"], "1980-01-02");
        // Json fields: the JSON itself where JSON is asked for (a jsonb column, the whole
        // record), the text otherwise; text that is no JSON stays a string.
        assert_eq!(whole["details"], serde_json::json!({"n": [1, "two"]}));
        assert_eq!(whole["not_json"], "{oops");
        assert_eq!(text(&decoded, "details", true).unwrap(), r#"{"n": [1, "two"]}"#);
        assert_eq!(text_of(&decoded, "details"), r#"{"n": [1, "two"]}"#);
    }

    #[test]
    fn debezium_variable_scale_decimals_read_as_numbers() {
        // As Confluent's AvroConverter writes Debezium's numeric of no fixed scale: a
        // record of the scale and the unscaled digits, nullable; the second field names
        // the record type again. A record of another name, or of other fields, stays JSON.
        let schema_text = r#"{"type": "record", "name": "Value", "namespace": "db.public.totals", "fields": [
            {"name": "total", "type": ["null", {"type": "record", "name": "VariableScaleDecimal", "namespace": "io.debezium.data",
                "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
                "connect.doc": "Variable scaled decimal", "connect.version": 1, "connect.name": "io.debezium.data.VariableScaleDecimal"}]},
            {"name": "again", "type": "io.debezium.data.VariableScaleDecimal"},
            {"name": "lookalike", "type": {"type": "record", "name": "Other", "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}]}}
        ]}"#;
        let schema = AvroSchema::parse(schema_text).unwrap();
        let columns: Vec<String> = schema.columns().unwrap().into_iter().map(|(name, sql)| format!("{name} {sql}")).collect();
        assert_eq!(columns, ["total numeric", "again numeric", "lookalike jsonb"]);
        let plain = parsed(schema_text);
        let number = |scale: i32, unscaled: &str| {
            let digits = unscaled.parse::<BigInt>().unwrap().to_signed_bytes_be();
            Value::Record(vec![("scale".into(), Value::Int(scale)), ("value".into(), Value::Bytes(digits))])
        };
        let cases = [
            (2, "1234", "12.34"),
            (1, "-5", "-0.5"),
            (0, "0", "0"),
            (3, "-128", "-0.128"),
            (0, "123456789012345678901234567890", "123456789012345678901234567890"),
            (-2, "5", "500"),
        ];
        for (scale, unscaled, want) in cases {
            let mut record = Record::new(&plain).unwrap();
            record.put("total", Value::Union(1, Box::new(number(scale, unscaled))));
            record.put("again", number(scale, unscaled));
            record.put("lookalike", Value::Record(vec![("scale".into(), Value::Int(1)), ("value".into(), Value::Bytes(vec![7]))]));
            let datum = datum(&plain, record).unwrap();
            let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema.clone()));
            let decoded = decoder.decode(&datum).unwrap();
            assert_eq!(text_of(&decoded, "total"), want);
            assert_eq!(text_of(&decoded, "again"), want);
            // In JSON (a jsonb column of the record, Debezium's envelope): a string, as
            // decimals are.
            let whole: serde_json::Value = serde_json::from_slice(&decoded.field(&JsonPath::Whole, true).unwrap()).unwrap();
            assert_eq!(whole["total"], want);
            assert_eq!(whole["lookalike"], serde_json::json!({"scale": 1, "value": "\\x07"}));
        }
        // The scale comes with each message: one that would make a number of billions
        // of digits is a bad message.
        for scale in [i32::MIN, -1001, 16384, i32::MAX] {
            let mut record = Record::new(&plain).unwrap();
            record.put("total", Value::Union(1, Box::new(number(scale, "1"))));
            record.put("again", number(0, "1"));
            record.put("lookalike", Value::Record(vec![("scale".into(), Value::Int(1)), ("value".into(), Value::Bytes(vec![7]))]));
            let datum = datum(&plain, record).unwrap();
            let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema.clone()));
            let error = decoder.decode(&datum).err().expect("a bad message").to_string();
            assert!(error.contains(&format!("scale {scale} is out of range")), "{error}");
        }
        let mut record = Record::new(&plain).unwrap();
        record.put("total", Value::Union(0, Box::new(Value::Null)));
        record.put("again", number(0, "1"));
        record.put("lookalike", Value::Record(vec![("scale".into(), Value::Int(1)), ("value".into(), Value::Bytes(vec![7]))]));
        let datum = datum(&plain, record).unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema));
        assert_eq!(text(&decoder.decode(&datum).unwrap(), "total", false), None);
    }

    fn text_of(record: &AvroRecord, path: &str) -> String {
        text(record, path, false).unwrap()
    }

    #[test]
    fn decimals_are_exact_at_their_scale() {
        for (unscaled, scale, want) in
            [(12345, 2, "123.45"), (-5, 3, "-0.005"), (0, 2, "0.00"), (7, 0, "7"), (-120, 1, "-12.0")]
        {
            assert_eq!(decimal_text(&BigInt::from(unscaled), scale), want);
        }
        let huge = "123456789012345678901234567890123456789".parse::<BigInt>().unwrap();
        assert_eq!(decimal_text(&huge, 5), "1234567890123456789012345678901234.56789");
    }

    #[test]
    fn random_and_corrupted_payloads_never_panic() {
        let good = event(&parsed(SCHEMA));
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(AvroSchema::parse(SCHEMA).unwrap()));
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let paths: Vec<JsonPath> = ["id", "name", "price", "tags", "attrs", "inner.x", "at"].iter().map(|p| JsonPath::parse(p).unwrap()).collect();
        for round in 0..100_000 {
            let mut payload = if round % 2 == 0 { good.clone() } else { (0..next() % 64).map(|_| next() as u8).collect() };
            if round % 2 == 0 {
                for _ in 0..1 + next() % 4 {
                    let at = (next() as usize) % payload.len();
                    payload[at] = next() as u8;
                }
                payload.truncate(payload.len() - (next() as usize % 3));
            }
            if let Ok(record) = decoder.decode(&payload) {
                for path in &paths {
                    let _ = record.field(path, round % 3 == 0);
                }
            }
        }
    }

    /// A schema with every type the codec reads: logical types, named types used again,
    /// nested records, maps and arrays, unions of every kind, a recursive type, and types
    /// written in no bytes at all.
    const RICH: &str = r#"{"type": "record", "name": "Rich", "namespace": "test", "fields": [
        {"name": "n", "type": "null"},
        {"name": "b", "type": "boolean"},
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "by", "type": "bytes"},
        {"name": "s", "type": "string"},
        {"name": "e", "type": {"type": "enum", "name": "Suit", "symbols": ["S", "H", "D", "C"]}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "uf", "type": {"type": "fixed", "name": "Sixteen", "size": 16, "logicalType": "uuid"}},
        {"name": "date", "type": {"type": "int", "logicalType": "date"}},
        {"name": "tms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "tus", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "tsms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tsus", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "tsns", "type": {"type": "long", "logicalType": "timestamp-nanos"}},
        {"name": "ltms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "ltus", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "ltns", "type": {"type": "long", "logicalType": "local-timestamp-nanos"}},
        {"name": "dec", "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 3}},
        {"name": "decf", "type": {"type": "fixed", "name": "Dec8", "size": 8, "logicalType": "decimal", "precision": 18, "scale": 2}},
        {"name": "big", "type": {"type": "bytes", "logicalType": "big-decimal"}},
        {"name": "dur", "type": {"type": "fixed", "name": "Dur", "size": 12, "logicalType": "duration"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "maybe", "type": {"type": "array", "items": ["null", "long"]}},
        {"name": "suits", "type": {"type": "array", "items": "Suit"}},
        {"name": "grid", "type": {"type": "array", "items": {"type": "array", "items": "int"}}},
        {"name": "attrs", "type": {"type": "map", "values": "int"}},
        {"name": "deep", "type": {"type": "map", "values": ["null", {"type": "record", "name": "Leaf", "fields": [
            {"name": "x", "type": "int"}, {"name": "s", "type": ["string", "null"]}]}]}},
        {"name": "leaf", "type": "Leaf"},
        {"name": "opt", "type": ["null", "test.Leaf"]},
        {"name": "choice", "type": ["null", "long", "string", "Four"]},
        {"name": "either", "type": ["string", "null"]},
        {"name": "list", "type": ["null", {"type": "record", "name": "Cell", "fields": [
            {"name": "v", "type": "long"}, {"name": "next", "type": ["null", "Cell"]}]}]},
        {"name": "empty", "type": {"type": "record", "name": "Empty", "fields": []}},
        {"name": "nulls", "type": {"type": "array", "items": "null"}}
    ]}"#;

    /// The column paths the differential test reads: every field, nested ones through
    /// records, maps, nullable unions and the recursive type, and paths that lead nowhere.
    const RICH_PATHS: &[&str] = &[
        "n", "b", "i", "l", "f", "d", "by", "s", "e", "fx", "u", "uf", "date", "tms", "tus", "tsms", "tsus", "tsns",
        "ltms", "ltus", "ltns", "dec", "decf", "big", "dur", "tags", "maybe", "suits", "grid", "attrs", "deep", "leaf",
        "opt", "choice", "either", "list", "empty", "nulls", "leaf.x", "leaf.s", "opt.x", "opt.s", "deep.a", "deep.a.x",
        "deep.b.s", "attrs.a", "attrs.b", "list.v", "list.next.v", "list.next.next.v", "list.next.next",
        "missing", "leaf.missing", "s.x", "choice.x", "tags.0", "empty.x",
    ];

    /// xorshift64: deterministic random numbers for the generated tests.
    struct Random(u64);

    impl Random {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// Small, 32-bit and 64-bit magnitudes and the extremes, as often.
        fn long(&mut self) -> i64 {
            match self.below(5) {
                0 => self.below(200) as i64 - 100,
                1 => self.next() as i32 as i64,
                2 => self.next() as i64,
                3 => [i64::MIN, i64::MAX, 0, -1, 1_700_000_000_000_000][self.below(5) as usize],
                _ => (self.next() >> (self.below(64) as u32)) as i64 * if self.below(2) == 0 { 1 } else { -1 },
            }
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }

        fn string(&mut self) -> String {
            const PIECES: [&str; 12] = ["a", "Z", " ", "\"", "\\", "\n", "\u{1}", "é", "✓", "😀", "/", "\u{7f}"];
            (0..self.below(6)).map(|_| PIECES[self.below(PIECES.len() as u64) as usize]).collect()
        }
    }

    /// A random value of `schema`, as apache-avro's writer takes it.
    fn random_value(oracle: &oracle::Oracle, schema: &Schema, random: &mut Random, depth: usize) -> Value {
        use apache_avro::{Days, Duration, Millis, Months};
        match oracle.resolve(schema) {
            Schema::Null => Value::Null,
            Schema::Boolean => Value::Boolean(random.below(2) == 0),
            Schema::Int => Value::Int(random.long() as i32),
            Schema::Long => Value::Long(random.long()),
            Schema::Float => Value::Float(match random.below(3) {
                0 => f32::from_bits(random.next() as u32),
                1 => [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.1, -0.0][random.below(5) as usize],
                _ => random.long() as f32 / 1000.0,
            }),
            Schema::Double => Value::Double(match random.below(3) {
                0 => f64::from_bits(random.next()),
                1 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -0.0][random.below(5) as usize],
                _ => random.long() as f64 / 1000.0,
            }),
            Schema::Bytes => {
                let len = random.below(6) as usize;
                Value::Bytes(random.bytes(len))
            }
            Schema::String => Value::String(random.string()),
            Schema::Enum(e) => {
                let index = random.below(e.symbols.len() as u64) as usize;
                Value::Enum(index as u32, e.symbols[index].clone())
            }
            Schema::Fixed(fixed) => Value::Fixed(fixed.size, random.bytes(fixed.size)),
            Schema::Uuid(_) => Value::Uuid(apache_avro::Uuid::from_u64_pair(random.next(), random.next())),
            Schema::Date => Value::Date(if random.below(2) == 0 { random.long() as i32 } else { random.below(40_000) as i32 - 10_000 }),
            Schema::TimeMillis => Value::TimeMillis(random.below(86_400_000) as i32),
            Schema::TimeMicros => Value::TimeMicros(random.below(86_400_000_000) as i64),
            Schema::TimestampMillis => Value::TimestampMillis(random.long()),
            Schema::TimestampMicros => Value::TimestampMicros(random.long()),
            Schema::TimestampNanos => Value::TimestampNanos(random.long()),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(random.long()),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(random.long()),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(random.long()),
            Schema::Decimal(decimal) => {
                let len = match &decimal.inner {
                    apache_avro::schema::InnerDecimalSchema::Fixed(fixed) => fixed.size,
                    apache_avro::schema::InnerDecimalSchema::Bytes => 1 + random.below(12) as usize,
                };
                Value::Decimal(apache_avro::Decimal::from(random.bytes(len)))
            }
            Schema::BigDecimal => {
                let unscaled = BigInt::from(random.long()) * BigInt::from(random.long());
                Value::BigDecimal(apache_avro::BigDecimal::new(unscaled, random.below(40) as i64 - 20))
            }
            Schema::Duration(_) => Value::Duration(Duration::new(
                Months::new(random.next() as u32),
                Days::new(random.next() as u32),
                Millis::new(random.next() as u32),
            )),
            Schema::Array(array) => {
                let len = if depth > 3 { 0 } else { random.below(4) };
                Value::Array((0..len).map(|_| random_value(oracle, &array.items, random, depth + 1)).collect())
            }
            Schema::Map(map) => {
                let len = if depth > 3 { 0 } else { random.below(4) };
                Value::Map(
                    (0..len)
                        .map(|_| (["a", "b", "c", ""][random.below(4) as usize].to_string(), random_value(oracle, &map.types, random, depth + 1)))
                        .collect(),
                )
            }
            Schema::Union(union) => {
                // Deep down, the first (null) branch, so that the recursive type ends.
                let index = if depth > 4 { 0 } else { random.below(union.variants().len() as u64) as usize };
                Value::Union(index as u32, Box::new(random_value(oracle, &union.variants()[index], random, depth + 1)))
            }
            Schema::Record(record) => Value::Record(
                record.fields.iter().map(|field| (field.name.clone(), random_value(oracle, &field.schema, random, depth + 1))).collect(),
            ),
            Schema::Ref { name } => unreachable!("{name} resolved"),
        }
    }

    /// A payload made bad in one of the ways messages get damaged.
    fn corrupted(good: &[u8], random: &mut Random) -> Vec<u8> {
        let mut bad = good.to_vec();
        match random.below(6) {
            0 if !bad.is_empty() => {
                for _ in 0..1 + random.below(3) {
                    let at = random.below(bad.len() as u64) as usize;
                    bad[at] = random.next() as u8;
                }
            }
            1 => bad.truncate(random.below(good.len() as u64 + 1) as usize),
            2 => {
                let at = random.below(bad.len() as u64 + 1) as usize;
                bad.insert(at, random.next() as u8);
            }
            3 if !bad.is_empty() => {
                // A byte with its continuation bit flipped: varints swallow or lose bytes.
                let at = random.below(bad.len() as u64) as usize;
                bad[at] ^= 0x80;
            }
            4 => {
                let len = 1 + random.below(3) as usize;
                bad.extend(random.bytes(len));
            }
            _ => {
                let len = random.below(48) as usize;
                bad = random.bytes(len);
            }
        }
        bad
    }

    /// The new decoder against apache-avro's reader and the codec's former renderer (the
    /// oracle): for random records of every type and random damage to them, the same
    /// messages are bad, and the good ones give the same text for every path, as text and
    /// as JSON, and the same unmapped fields.
    #[test]
    fn decodes_as_apache_avro_reads() {
        let schema = parsed(RICH);
        let oracle = oracle::Oracle::new(&schema);
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(AvroSchema::parse(RICH).unwrap()));
        let paths: Vec<JsonPath> = RICH_PATHS.iter().map(|path| JsonPath::parse(path).unwrap()).collect();
        let some_paths = [JsonPath::parse("s").unwrap(), JsonPath::parse("leaf.x").unwrap()];
        let mut random = Random(0x5eed_cafe_f00d_d00d);
        let (mut read, mut bad, mut damaged_but_good) = (0, 0, 0);
        for round in 0..3000 {
            let value = random_value(&oracle, &schema, &mut random, 0);
            let good = datum(&schema, value).unwrap();
            for attempt in 0..4 {
                let payload = if attempt == 0 { good.clone() } else { corrupted(&good, &mut random) };
                let expected = oracle.decode(&payload);
                let got = decoder.decode(&payload);
                let (expected, record) = match (expected, got) {
                    (None, Err(_)) => {
                        bad += 1;
                        continue;
                    }
                    (Some(expected), Ok(record)) => (expected, record),
                    (expected, got) => panic!(
                        "round {round}, attempt {attempt}, payload {payload:?}: apache-avro read {expected:?}, the codec {:?}",
                        got.map(|_| "a record")
                    ),
                };
                read += 1;
                damaged_but_good += usize::from(attempt > 0);
                for path in paths.iter().chain([&JsonPath::Whole]) {
                    for as_json in [false, true] {
                        let want = oracle.field(&expected, path, as_json);
                        let have = record.field(path, as_json).map(|text| String::from_utf8(text.into_owned()).unwrap());
                        assert_eq!(have, want, "round {round}, attempt {attempt}, {path:?} (json: {as_json}), payload {payload:?}");
                        // Typed, a value has the same text.
                        let typed = record.value(path, as_json).map(|value| match value {
                            FieldValue::Native(native) => native.text().into_owned(),
                            FieldValue::Text(text) => String::from_utf8(text.into_owned()).unwrap(),
                        });
                        assert_eq!(typed, want, "round {round}, attempt {attempt}, {path:?} (json: {as_json}), typed");
                    }
                }
                assert_eq!(record.unmapped_fields(some_paths.iter()), oracle.unmapped_fields(&expected, some_paths.iter()));
            }
        }
        // Both kinds were met often: good messages read, damaged ones refused, and some
        // damage that still leaves a record of the schema.
        assert!(read > 3000 && bad > 5000 && damaged_but_good > 100, "{read} read, {bad} bad, {damaged_but_good} damaged but good");
    }

    /// Blocks of arrays and maps as writers may split them (a negative count, then the
    /// block's size in bytes), non-canonical varints, and a map key written twice (the
    /// last value counts): what the codec reads is what apache-avro reads.
    #[test]
    fn blocks_and_repeated_map_keys_read_as_apache_avro_reads() {
        let text_schema = r#"{"type": "record", "name": "B", "fields": [
            {"name": "a", "type": {"type": "array", "items": "long"}},
            {"name": "m", "type": {"type": "map", "values": "int"}}]}"#;
        let schema = parsed(text_schema);
        let oracle = oracle::Oracle::new(&schema);
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(AvroSchema::parse(text_schema).unwrap()));
        // a: a block of -3 items of 3 bytes (1, 2, 3), a block of 1 item (4, its count
        // written in two bytes), the end; m: k → 1, j → 2, k → 3, in one block, the end.
        let datum = [5, 6, 2, 4, 6, 0x82, 0x00, 8, 0, 6, 2, b'k', 2, 2, b'j', 4, 2, b'k', 6, 0];
        let record = decoder.decode(&datum).unwrap();
        let value = oracle.decode(&datum).unwrap();
        for path in ["a", "m", "m.k", "m.j"] {
            for as_json in [false, true] {
                assert_eq!(text(&record, path, as_json), oracle.field(&value, &JsonPath::parse(path).unwrap(), as_json), "{path}");
            }
        }
        assert_eq!(text(&record, "a", false).as_deref(), Some(r#"{"1","2","3","4"}"#));
        assert_eq!(text(&record, "m", false).as_deref(), Some(r#"{"j":2,"k":3}"#));
        assert_eq!(text(&record, "m.k", false).as_deref(), Some("3"));
    }

    /// Bad datums of every kind are bad messages with a reason, found without reading
    /// (or allocating for) lengths and counts beyond the message, and without recursing
    /// without end; a message cut before a union's branch is cut short, not a NULL.
    #[test]
    fn bad_datums_say_why() {
        let field = |avro_type: &str| format!(r#"{{"type": "record", "name": "R", "fields": [{{"name": "f", "type": {avro_type}}}]}}"#);
        let list = r#"{"type": "record", "name": "Cell", "fields": [{"name": "v", "type": "long"}, {"name": "next", "type": ["null", "Cell"]}]}"#;
        let nested = |depth: usize| [vec![0, 2].repeat(depth), vec![0, 0]].concat();
        let cases: Vec<(String, Vec<u8>, Result<&str, &str>)> = vec![
            (field(r#""long""#), vec![0x80, 0x80, 0x00], Ok("0")),
            (field(r#""long""#), [vec![0xff; 9], vec![0x01]].concat(), Ok("-9223372036854775808")),
            (field(r#""long""#), [vec![0xff; 10], vec![0x01]].concat(), Err("a variable-length integer is longer than 10 bytes")),
            (field(r#""long""#), vec![0xff; 5], Err("the record ends early")),
            (field(r#""int""#), vec![0x80, 0x80, 0x80, 0x80, 0x10], Err("2147483648 is out of range for an int")),
            (field(r#""boolean""#), vec![2], Err("2 is not a boolean (0 or 1)")),
            (field(r#""string""#), vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], Err("the record ends early")),
            (field(r#""bytes""#), vec![0x01], Err("negative length -1")),
            (field(r#""string""#), vec![2, 0xff], Err("a string is not valid UTF-8")),
            (field(r#"{"type": "string", "logicalType": "uuid"}"#), vec![2, b'x'], Err("invalid uuid: invalid character: found `x` at 0")),
            (field(r#"{"type": "enum", "name": "E", "symbols": ["A"]}"#), vec![2], Err("enum index 1 out of range (1 symbols)")),
            (field(r#"["null", "long"]"#), vec![4], Err("union branch 2 out of range (2 branches)")),
            (field(r#"["null", "long"]"#), vec![], Err("the record ends early")),
            (field(r#"["null", "long"]"#), vec![0], Ok("")),
            (field(r#"{"type": "array", "items": "null"}"#), vec![0xfe, 0x07, 0], Ok("")),
            (field(r#"{"type": "array", "items": "null"}"#), vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x40], Err("an array of more than 1048576 items written in no bytes")),
            (field(r#"{"type": "array", "items": {"type": "record", "name": "E", "fields": [{"name": "n", "type": "null"}]}}"#), vec![0x81, 0x80, 0x80, 0x01, 0], Err("an array of more than 1048576 items written in no bytes")),
            (field(r#"{"type": "array", "items": {"type": "record", "name": "E", "fields": []}}"#), vec![6, 0], Ok("[{},{},{}]")),
            (field(r#"{"type": "array", "items": "long"}"#), vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 2], Err("the record ends early")),
            (field(r#"{"type": "array", "items": "long"}"#), vec![6, 2], Err("the record ends early")),
            (field(r#"{"type": "map", "values": "long"}"#), vec![1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], Err("the record ends early")),
            (field(r#"{"type": "fixed", "name": "F", "size": 3}"#), vec![1, 2], Err("the record ends early")),
            (list.to_string(), nested(100), Ok("")),
            (list.to_string(), nested(200), Err("values nest deeper than 128 levels")),
        ];
        for (schema, datum, want) in cases {
            let mut decoder = AvroDecoder::new(WriterSchemas::Given(AvroSchema::parse(&schema).unwrap()));
            match (decoder.decode(&datum), want) {
                (Ok(record), Ok(want)) if !want.is_empty() => assert_eq!(text(&record, "f", false).as_deref(), Some(want), "{schema} {datum:?}"),
                (Ok(_), Ok(_)) => {}
                (Err(error), Err(want)) => assert_eq!(error, CodecError::Malformed(format!("invalid Avro data: {want}")), "{schema} {datum:?}"),
                (got, want) => panic!("{schema} {datum:?}: {:?}, not {want:?}", got.map(|_| "a record")),
            }
        }
    }

    /// The former decoder: apache-avro's reader and the codec's renderer of its values.
    mod oracle {
        use std::io::Read;

        use apache_avro::reader::datum::GenericDatumReader;
        use apache_avro::schema::{NamesRef, ResolvedSchema, Schema};
        use apache_avro::types::Value;
        use num_bigint::BigInt;
        use serde_json::{Map, Value as Json};

        use crate::codec::text::decimal_text;
        use crate::codec::json::JsonPath;
        use crate::codec::text::{self, bytea_text, date_text, float_text, json_float, time_text, timestamp_text};

        pub struct Oracle<'s> {
            root: &'s Schema,
            names: NamesRef<'s>,
        }

        /// Bytes that note whether apache-avro read at their end: it reads a string,
        /// boolean or union index cut off there as null, which is a message cut short.
        struct Watched<'a> {
            rest: &'a [u8],
            read_at_end: bool,
        }

        impl Read for Watched<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if !buf.is_empty() && self.rest.is_empty() {
                    self.read_at_end = true;
                }
                self.rest.read(buf)
            }
        }

        impl<'s> Oracle<'s> {
            pub fn new(root: &'s Schema) -> Self {
                Oracle { root, names: ResolvedSchema::try_from(root).unwrap().get_names().clone() }
            }

            /// The record apache-avro reads, if it reads one, not cut short, with no bytes over.
            pub fn decode(&self, datum: &[u8]) -> Option<Value> {
                let mut watched = Watched { rest: datum, read_at_end: false };
                let reader = GenericDatumReader::builder(self.root).build().unwrap();
                let value = reader.read_value(&mut watched).ok()?;
                (!watched.read_at_end && watched.rest.is_empty() && matches!(value, Value::Record(_))).then_some(value)
            }

            /// `schema` itself, or the named type it refers to.
            pub fn resolve<'v>(&'v self, schema: &'v Schema) -> &'v Schema {
                match schema {
                    Schema::Ref { name } => self.names.get(name).copied().unwrap_or(schema),
                    other => other,
                }
            }

            pub fn field(&self, value: &Value, path: &JsonPath, as_json: bool) -> Option<String> {
                let (schema, value) = match path {
                    JsonPath::Whole => (self.root, value),
                    JsonPath::Keys(keys) => keys.iter().try_fold((self.root, value), |(schema, value), key| self.child(schema, value, key))?,
                };
                let (schema, value) = self.unwrap_union(schema, value);
                match value {
                    Value::Null => None,
                    _ if as_json => Some(self.to_json(schema, value).to_string()),
                    _ => self.to_text(schema, value),
                }
            }

            pub fn unmapped_fields<'p>(&self, value: &'s Value, paths: impl Iterator<Item = &'p JsonPath> + Clone) -> Vec<&'s str> {
                let Value::Record(fields) = value else { return Vec::new() };
                fields
                    .iter()
                    .map(|(name, _)| name.as_str())
                    .filter(|name| !paths.clone().any(|path| matches!(path, JsonPath::Keys(keys) if keys[0] == *name)))
                    .collect()
            }

            fn child<'v>(&'v self, schema: &'v Schema, value: &'v Value, key: &str) -> Option<(&'v Schema, &'v Value)> {
                let (schema, value) = self.unwrap_union(schema, value);
                match (schema, value) {
                    (Schema::Record(record), Value::Record(fields)) => {
                        let position = fields.iter().position(|(name, _)| name == key)?;
                        Some((&record.fields[position].schema, &fields[position].1))
                    }
                    (Schema::Map(map), Value::Map(entries)) => Some((&map.types, entries.get(key)?)),
                    _ => None,
                }
            }

            fn unwrap_union<'v>(&'v self, schema: &'v Schema, value: &'v Value) -> (&'v Schema, &'v Value) {
                let mut schema = self.resolve(schema);
                let mut value = value;
                while let (Schema::Union(union), Value::Union(branch, inner)) = (schema, value) {
                    let Some(variant) = union.variants().get(*branch as usize) else { break };
                    schema = self.resolve(variant);
                    value = inner;
                }
                (schema, value)
            }

            fn to_text(&self, schema: &Schema, value: &Value) -> Option<String> {
                let (schema, value) = self.unwrap_union(schema, value);
                Some(match value {
                    Value::Null => return None,
                    Value::Boolean(b) => b.to_string(),
                    Value::Int(n) => n.to_string(),
                    Value::Long(n) => n.to_string(),
                    Value::Float(x) => float_text(f64::from(*x)),
                    Value::Double(x) => float_text(*x),
                    Value::Bytes(bytes) | Value::Fixed(_, bytes) => bytea_text(bytes),
                    Value::String(text) | Value::Enum(_, text) => text.clone(),
                    Value::Uuid(uuid) => uuid.to_string(),
                    Value::Date(days) => date_text(*days),
                    Value::TimeMillis(ms) => time_text(i64::from(*ms) * 1000),
                    Value::TimeMicros(us) => time_text(*us),
                    // The former renderer multiplied (wrapping round in release builds); now saturated.
                    Value::TimestampMillis(ms) => timestamp_text(ms.saturating_mul(1000), true),
                    Value::TimestampMicros(us) => timestamp_text(*us, true),
                    Value::TimestampNanos(ns) => timestamp_text(ns.div_euclid(1000), true),
                    Value::LocalTimestampMillis(ms) => timestamp_text(ms.saturating_mul(1000), false),
                    Value::LocalTimestampMicros(us) => timestamp_text(*us, false),
                    Value::LocalTimestampNanos(ns) => timestamp_text(ns.div_euclid(1000), false),
                    Value::Decimal(decimal) => decimal_text(&BigInt::from(decimal.clone()), decimal_scale(schema)),
                    Value::BigDecimal(decimal) => decimal.to_string(),
                    Value::Duration(duration) => format!(
                        "{} mons {} days {} milliseconds",
                        u32::from(duration.months()),
                        u32::from(duration.days()),
                        u32::from(duration.millis())
                    ),
                    Value::Array(items) if self.items_are_scalars(schema) => {
                        let Schema::Array(array) = schema else { unreachable!() };
                        text::array_literal(items.iter().map(|item| self.to_text(&array.items, item)))
                    }
                    Value::Array(_) | Value::Map(_) | Value::Record(_) | Value::Union(..) => self.to_json(schema, value).to_string(),
                })
            }

            fn to_json(&self, schema: &Schema, value: &Value) -> Json {
                let (schema, value) = self.unwrap_union(schema, value);
                match value {
                    Value::Null => Json::Null,
                    Value::Boolean(b) => Json::Bool(*b),
                    Value::Int(n) => Json::from(*n),
                    Value::Long(n) => Json::from(*n),
                    Value::Float(x) => json_float(f64::from(*x)),
                    Value::Double(x) => json_float(*x),
                    Value::Record(fields) => {
                        let field_schemas: Vec<&Schema> = match schema {
                            Schema::Record(record) => record.fields.iter().map(|f| &f.schema).collect(),
                            _ => Vec::new(),
                        };
                        let object: Map<String, Json> = fields
                            .iter()
                            .enumerate()
                            .map(|(i, (name, value))| (name.clone(), self.to_json(field_schemas.get(i).copied().unwrap_or(schema), value)))
                            .collect();
                        Json::Object(object)
                    }
                    Value::Map(entries) => {
                        let item = match schema {
                            Schema::Map(map) => map.types.as_ref(),
                            other => other,
                        };
                        let mut keys: Vec<&String> = entries.keys().collect();
                        keys.sort();
                        Json::Object(keys.into_iter().map(|key| (key.clone(), self.to_json(item, &entries[key]))).collect())
                    }
                    Value::Array(items) => {
                        let item = match schema {
                            Schema::Array(array) => array.items.as_ref(),
                            other => other,
                        };
                        Json::Array(items.iter().map(|value| self.to_json(item, value)).collect())
                    }
                    other => self.to_text(schema, other).map_or(Json::Null, Json::String),
                }
            }

            fn items_are_scalars(&self, schema: &Schema) -> bool {
                let Schema::Array(array) = schema else { return false };
                let mut item = self.resolve(&array.items);
                if let Schema::Union(union) = item {
                    match union.variants() {
                        [Schema::Null, other] | [other, Schema::Null] => item = self.resolve(other),
                        _ => return false,
                    }
                }
                !matches!(item, Schema::Array(_) | Schema::Map(_) | Schema::Record(_) | Schema::Union(_))
            }
        }

        fn decimal_scale(schema: &Schema) -> usize {
            match schema {
                Schema::Decimal(decimal) => decimal.scale,
                _ => 0,
            }
        }
    }
}
