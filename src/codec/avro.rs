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

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use apache_avro::schema::{NamesRef, ResolvedSchema, Schema};
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use num_bigint::BigInt;
use serde_json::{Map, Value as Json};

use super::json::JsonPath;
use super::text::{self, bytea_text, date_text, float_text, json_float, time_text, timestamp_text};
use super::wire::{frame, SchemaById, WriterSchema};

/// A parsed schema, with its named types (for following references) and a reader.
pub struct AvroSchema {
    root: &'static Schema,
    names: NamesRef<'static>,
    reader: GenericDatumReader<'static>,
}

thread_local! {
    /// Schemas parsed so far, by their text. A reader borrows its schema, so a schema
    /// lives as long as the process: each distinct schema text is parsed (and kept) once.
    static PARSED: RefCell<HashMap<String, Rc<AvroSchema>>> = RefCell::new(HashMap::new());
}

impl AvroSchema {
    /// Parses a schema's JSON text; the error says why it is not one.
    pub fn parse(text: &str) -> Result<Rc<AvroSchema>, String> {
        if let Some(parsed) = PARSED.with_borrow(|parsed| parsed.get(text).cloned()) {
            return Ok(parsed);
        }
        let invalid = |e: apache_avro::Error| format!("invalid Avro schema: {e}");
        let root: &'static Schema = Box::leak(Box::new(Schema::parse_str(text).map_err(invalid)?));
        let names = ResolvedSchema::try_from(root).map_err(invalid)?.get_names().clone();
        let reader = GenericDatumReader::builder(root).build().map_err(invalid)?;
        let schema = Rc::new(AvroSchema { root, names, reader });
        PARSED.with_borrow_mut(|parsed| parsed.insert(text.to_string(), schema.clone()));
        Ok(schema)
    }

    fn root(&self) -> &Schema {
        self.root
    }

    /// `schema` itself, or the named type it refers to.
    fn resolve<'s>(&'s self, schema: &'s Schema) -> &'s Schema {
        match schema {
            Schema::Ref { name } => self.names.get(name).copied().unwrap_or(schema),
            other => other,
        }
    }
}

/// Where the writer schema of a message comes from.
pub enum WriterSchemas {
    /// Bare datums, all written with this schema (table option `avro_schema`).
    Given(Rc<AvroSchema>),
    /// Confluent's wire format: the id in each message names its schema.
    Registry(Box<dyn SchemaById>),
}

/// Decodes Avro messages, parsing each writer schema once.
pub struct AvroDecoder {
    schemas: WriterSchemas,
    by_id: HashMap<u32, Result<Rc<AvroSchema>, String>>,
}

/// A decoded message: a record and the schema it was written with.
pub struct AvroRecord {
    schema: Rc<AvroSchema>,
    value: Value,
}

impl AvroDecoder {
    pub fn new(schemas: WriterSchemas) -> Self {
        AvroDecoder { schemas, by_id: HashMap::new() }
    }

    /// Decodes a payload; the error says why it is not an Avro record of its schema.
    pub fn decode(&mut self, payload: &[u8]) -> Result<AvroRecord, String> {
        let (schema, mut datum) = match &mut self.schemas {
            WriterSchemas::Given(schema) => (schema.clone(), payload),
            WriterSchemas::Registry(registry) => {
                let (id, datum) = frame(payload)?;
                let schema = self
                    .by_id
                    .entry(id)
                    .or_insert_with(|| registry.schema(id).and_then(|writer| avro_text(id, writer)).and_then(|text| AvroSchema::parse(&text)))
                    .clone()
                    .map_err(|e| format!("schema id {id}: {e}"))?;
                (schema, datum)
            }
        };
        let value = schema.reader.read_value(&mut datum).map_err(|e| format!("invalid Avro data: {e}"))?;
        if !datum.is_empty() {
            return Err(format!("invalid Avro data: {} bytes after the record", datum.len()));
        }
        if !complete(&schema, schema.root(), &value) {
            return Err("invalid Avro data: the record ends early".to_string());
        }
        if !matches!(value, Value::Record(_)) {
            return Err("Avro message is not a record".to_string());
        }
        Ok(AvroRecord { schema, value })
    }
}

impl AvroSchema {
    /// The columns a table of this record's fields would have (IMPORT FOREIGN SCHEMA):
    /// each field's name and the PostgreSQL type its values read as; `None` if the
    /// schema is not a record.
    pub fn columns(&self) -> Option<Vec<(String, String)>> {
        let Schema::Record(record) = self.root() else { return None };
        Some(record.fields.iter().map(|field| (field.name.clone(), self.sql_type(&field.schema))).collect())
    }

    fn sql_type(&self, schema: &Schema) -> String {
        let schema = match self.resolve(schema) {
            // Nullable: ["null", T] or [T, "null"].
            Schema::Union(union) => match union.variants() {
                [Schema::Null, other] | [other, Schema::Null] => self.resolve(other),
                _ => return "jsonb".to_string(),
            },
            other => other,
        };
        match schema {
            Schema::Boolean => "boolean".into(),
            Schema::Int => "integer".into(),
            Schema::Long => "bigint".into(),
            Schema::Float => "real".into(),
            Schema::Double => "double precision".into(),
            Schema::Bytes | Schema::Fixed(_) => "bytea".into(),
            Schema::String | Schema::Enum(_) => "text".into(),
            Schema::Uuid(_) => "uuid".into(),
            Schema::Date => "date".into(),
            Schema::TimeMillis | Schema::TimeMicros => "time".into(),
            Schema::TimestampMillis | Schema::TimestampMicros | Schema::TimestampNanos => "timestamp with time zone".into(),
            Schema::LocalTimestampMillis | Schema::LocalTimestampMicros | Schema::LocalTimestampNanos => "timestamp".into(),
            Schema::Decimal(decimal) => format!("numeric({}, {})", decimal.precision, decimal.scale),
            Schema::BigDecimal => "numeric".into(),
            Schema::Duration(_) => "interval".into(),
            Schema::Array(_) if items_are_scalars(self, schema) => {
                let Schema::Array(array) = schema else { unreachable!() };
                format!("{}[]", self.sql_type(&array.items))
            }
            _ => "jsonb".into(),
        }
    }
}

/// The text of an Avro writer schema; another type of schema is a bad message's reason.
fn avro_text(id: u32, writer: WriterSchema) -> Result<String, String> {
    match writer.schema_type.as_str() {
        "AVRO" => Ok(writer.text),
        other => Err(format!("schema {id} is a {other} schema, not Avro")),
    }
}

impl AvroRecord {
    /// The text of the field at `path` (`None` for null or a missing field); with
    /// `as_json`, for a json/jsonb column, as JSON text.
    pub fn field(&self, path: &JsonPath, as_json: bool) -> Option<Cow<'_, [u8]>> {
        let (schema, value) = match path {
            JsonPath::Whole => (self.schema.root(), &self.value),
            JsonPath::Keys(keys) => keys.iter().try_fold((self.schema.root(), &self.value), |(schema, value), key| {
                self.child(schema, value, key)
            })?,
        };
        // Null is NULL for every column, json and jsonb included, as for JSON messages.
        let (schema, value) = unwrap_union(&self.schema, schema, value);
        let text = match value {
            Value::Null => None,
            _ if as_json => Some(to_json(&self.schema, schema, value).to_string()),
            _ => to_text(&self.schema, schema, value),
        };
        text.map(|text| Cow::Owned(text.into_bytes()))
    }

    /// Top-level fields no path starts with.
    pub fn unmapped_fields<'p>(&self, paths: impl Iterator<Item = &'p JsonPath> + Clone) -> Vec<&str> {
        if paths.clone().any(|path| matches!(path, JsonPath::Whole)) {
            return Vec::new();
        }
        let Value::Record(fields) = &self.value else { return Vec::new() };
        fields
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| !paths.clone().any(|path| matches!(path, JsonPath::Keys(keys) if keys[0] == *name)))
            .collect()
    }

    /// The member `key` of a record or map (through nullable unions).
    fn child<'v>(&'v self, schema: &'v Schema, value: &'v Value, key: &str) -> Option<(&'v Schema, &'v Value)> {
        let (schema, value) = unwrap_union(&self.schema, schema, value);
        match (schema, value) {
            (Schema::Record(record), Value::Record(fields)) => {
                let position = fields.iter().position(|(name, _)| name == key)?;
                Some((&record.fields[position].schema, &fields[position].1))
            }
            (Schema::Map(map), Value::Map(entries)) => Some((&map.types, entries.get(key)?)),
            _ => None,
        }
    }
}

/// Whether no value is a null its schema does not allow. apache-avro's decoder reads a
/// string or bytes value cut off by the end of the message as null, and a record whose
/// last field is cut off that way must be a bad message, not a row with a NULL.
fn complete(names: &AvroSchema, schema: &Schema, value: &Value) -> bool {
    let (schema, value) = unwrap_union(names, schema, value);
    match (schema, value) {
        (Schema::Null, _) => true,
        (_, Value::Null) => false,
        (Schema::Record(record), Value::Record(fields)) => {
            fields.iter().zip(&record.fields).all(|((_, value), field)| complete(names, &field.schema, value))
        }
        (Schema::Array(array), Value::Array(items)) => items.iter().all(|item| complete(names, &array.items, item)),
        (Schema::Map(map), Value::Map(entries)) => entries.values().all(|value| complete(names, &map.types, value)),
        _ => true,
    }
}

/// The branch a union value took, with its schema; other values as they are.
fn unwrap_union<'v>(names: &'v AvroSchema, schema: &'v Schema, value: &'v Value) -> (&'v Schema, &'v Value) {
    let mut schema = names.resolve(schema);
    let mut value = value;
    while let (Schema::Union(union), Value::Union(branch, inner)) = (schema, value) {
        let Some(variant) = union.variants().get(*branch as usize) else { break };
        schema = names.resolve(variant);
        value = inner;
    }
    (schema, value)
}

/// A value as the text a PostgreSQL input function takes; `None` for null.
fn to_text(names: &AvroSchema, schema: &Schema, value: &Value) -> Option<String> {
    let (schema, value) = unwrap_union(names, schema, value);
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
        Value::TimestampMillis(ms) => timestamp_text(*ms * 1000, true),
        Value::TimestampMicros(us) => timestamp_text(*us, true),
        Value::TimestampNanos(ns) => timestamp_text(ns.div_euclid(1000), true),
        Value::LocalTimestampMillis(ms) => timestamp_text(*ms * 1000, false),
        Value::LocalTimestampMicros(us) => timestamp_text(*us, false),
        Value::LocalTimestampNanos(ns) => timestamp_text(ns.div_euclid(1000), false),
        Value::Decimal(decimal) => decimal_text(BigInt::from(decimal.clone()), decimal_scale(schema)),
        Value::BigDecimal(decimal) => decimal.to_string(),
        Value::Duration(duration) => format!(
            "{} mons {} days {} milliseconds",
            u32::from(duration.months()),
            u32::from(duration.days()),
            u32::from(duration.millis())
        ),
        Value::Array(items) if items_are_scalars(names, schema) => array_literal(names, schema, items),
        Value::Array(_) | Value::Map(_) | Value::Record(_) | Value::Union(..) => to_json(names, schema, value).to_string(),
    })
}

/// A value as JSON: strings for text, bytes, dates, times, UUIDs and (exact) decimals.
fn to_json(names: &AvroSchema, schema: &Schema, value: &Value) -> Json {
    let (schema, value) = unwrap_union(names, schema, value);
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
                .map(|(i, (name, value))| (name.clone(), to_json(names, field_schemas.get(i).copied().unwrap_or(schema), value)))
                .collect();
            Json::Object(object)
        }
        Value::Map(entries) => {
            let item = match schema {
                Schema::Map(map) => map.types.as_ref(),
                other => other,
            };
            let mut keys: Vec<&String> = entries.keys().collect();
            // Avro maps have no order; sorted keys keep the text stable.
            keys.sort();
            Json::Object(keys.into_iter().map(|key| (key.clone(), to_json(names, item, &entries[key]))).collect())
        }
        Value::Array(items) => {
            let item = match schema {
                Schema::Array(array) => array.items.as_ref(),
                other => other,
            };
            Json::Array(items.iter().map(|value| to_json(names, item, value)).collect())
        }
        other => to_text(names, schema, other).map_or(Json::Null, Json::String),
    }
}

fn decimal_scale(schema: &Schema) -> usize {
    match schema {
        Schema::Decimal(decimal) => decimal.scale,
        _ => 0,
    }
}

/// The exact decimal text of `unscaled` × 10^-`scale`.
fn decimal_text(unscaled: BigInt, scale: usize) -> String {
    let digits = unscaled.magnitude().to_string();
    let sign = if unscaled.sign() == num_bigint::Sign::Minus { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

/// Whether an array's items are scalars, so that it reads into a PostgreSQL array.
fn items_are_scalars(names: &AvroSchema, schema: &Schema) -> bool {
    let Schema::Array(array) = schema else { return false };
    let mut item = names.resolve(&array.items);
    if let Schema::Union(union) = item {
        // Nullable items: ["null", T].
        match union.variants() {
            [Schema::Null, other] | [other, Schema::Null] => item = names.resolve(other),
            _ => return false,
        }
    }
    !matches!(item, Schema::Array(_) | Schema::Map(_) | Schema::Record(_) | Schema::Union(_))
}

/// The array as a PostgreSQL array literal (its items are scalars).
fn array_literal(names: &AvroSchema, schema: &Schema, items: &[Value]) -> String {
    let Schema::Array(array) = schema else { unreachable!("checked by items_are_scalars") };
    text::array_literal(items.iter().map(|item| to_text(names, &array.items, item)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Record;

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

    fn event(schema: &AvroSchema) -> Vec<u8> {
        let mut record = Record::new(schema.root()).unwrap();
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
        datum(schema.root(), record).unwrap()
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
        fn schema(&mut self, id: u32) -> Result<WriterSchema, String> {
            let text = self.0.get(&id).cloned().ok_or_else(|| format!("no schema with id {id}"))?;
            let schema_type = if text.starts_with("syntax") { "PROTOBUF" } else { "AVRO" }.to_string();
            Ok(WriterSchema { schema_type, text, references: Vec::new() })
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
        let datum = event(&schema);
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
        let (s1, s2) = (AvroSchema::parse(v1).unwrap(), AvroSchema::parse(v2).unwrap());
        let registry = Registry([(1, v1.to_string()), (2, v2.to_string())].into());
        let mut decoder = AvroDecoder::new(WriterSchemas::Registry(Box::new(registry)));
        let old = datum(s1.root(), Value::Record(vec![("a".into(), Value::Int(1))])).unwrap();
        let new = datum(
            s2.root(),
            Value::Record(vec![("b".into(), Value::String("n".into())), ("a".into(), Value::Long(2))]),
        )
        .unwrap();
        let first = decoder.decode(&framed(1, &old)).unwrap();
        assert_eq!((text(&first, "a", false).as_deref(), text(&first, "b", false)), (Some("1"), None));
        let second = decoder.decode(&framed(2, &new)).unwrap();
        assert_eq!((text(&second, "a", false).as_deref(), text(&second, "b", false).as_deref()), (Some("2"), Some("n")));
    }

    #[test]
    fn bad_messages_are_errors() {
        let v1 = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
        let schema = AvroSchema::parse(v1).unwrap();
        let good = datum(schema.root(), Value::Record(vec![("a".into(), Value::String("hello".into()))])).unwrap();
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
            assert!(error.contains(want), "{payload:?}: {error}");
        }
        assert!(decoder.decode(&framed(1, &good)).is_ok());
        let not_a_record = AvroSchema::parse(r#""long""#).unwrap();
        let mut bare = AvroDecoder::new(WriterSchemas::Given(not_a_record));
        assert_eq!(bare.decode(&[2]).err().unwrap(), "Avro message is not a record");
        assert!(AvroSchema::parse("{\"type\": \"recordd\"}").err().unwrap().starts_with("invalid Avro schema"));
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
    fn decimals_are_exact_at_their_scale() {
        for (unscaled, scale, want) in
            [(12345, 2, "123.45"), (-5, 3, "-0.005"), (0, 2, "0.00"), (7, 0, "7"), (-120, 1, "-12.0")]
        {
            assert_eq!(decimal_text(BigInt::from(unscaled), scale), want);
        }
        let huge = "123456789012345678901234567890123456789".parse::<BigInt>().unwrap();
        assert_eq!(decimal_text(huge, 5), "1234567890123456789012345678901234.56789");
    }

    #[test]
    fn random_and_corrupted_payloads_never_panic() {
        let schema = AvroSchema::parse(SCHEMA).unwrap();
        let good = event(&schema);
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema));
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
}
