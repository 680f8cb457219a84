//! Writing Avro messages: a row's columns become a record of the writer schema (the
//! subject's latest, or the table's `avro_schema`), framed with the schema's registry id
//! when it has one.
//!
//! Columns go to fields as the scan reads them back: by name, or by a path into nested
//! records (`field 'a.b'`); a lone json/jsonb column is the whole record. A field no
//! column writes takes its schema default, or null if it is nullable; otherwise the row
//! is refused. Values are converted by the field's type, never silently changed: a
//! number out of range, a text that is no symbol of an enum, a NULL for a field that is
//! not nullable, a decimal with more digits than its precision are errors naming the
//! column. Decimals round to the schema's scale, times and timestamps truncate to the
//! type's unit (as PostgreSQL's own typmods do).

use std::borrow::Cow;
use super::error::CodecError;
use std::collections::HashMap;
use std::rc::Rc;
use std::str::FromStr;

use apache_avro::schema::{DecimalSchema, InnerDecimalSchema, NamesRef, RecordField, RecordSchema, ResolvedSchema, Schema, UuidSchema};
use apache_avro::types::Value;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Decimal;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use num_bigint::BigInt;
use serde_json::Value as Json;

use super::encode::{bytea_hex, derived_field_name, derived_record_name, Cell, ColumnValue, DerivedField, SqlType};
use super::json::JsonPath;
use super::wire::frame_header;

/// A writer schema, parsed for encoding, with its named types (for following references).
struct WriterSchema {
    // `writer` and `names` borrow the schema in `root`: declared first, they are dropped
    // first.
    writer: GenericDatumWriter<'static>,
    names: NamesRef<'static>,
    /// The schema: never mutated, and never moved (an `Rc`'s value stays where it is
    /// when the struct moves, and, unlike a `Box`'s, may stay borrowed meanwhile).
    root: Rc<Schema>,
}

impl WriterSchema {
    fn parse(text: &str) -> Result<WriterSchema, CodecError> {
        let invalid = |e: apache_avro::Error| CodecError::Schema(format!("invalid Avro schema: {e}"));
        let root = Rc::new(Schema::parse_str(text).map_err(invalid)?);
        // SAFETY: the schema outlives `names` and `writer`, which are dropped before
        // `root` (see the struct), and nothing mutates it. The 'static borrows never leave
        // the struct: its methods hand out borrows of `self`.
        let schema: &'static Schema = unsafe { &*Rc::as_ptr(&root) };
        let names = ResolvedSchema::try_from(schema).map_err(invalid)?.get_names().clone();
        let writer = GenericDatumWriter::builder(schema).build().map_err(invalid)?;
        Ok(WriterSchema { writer, names, root })
    }

    fn root(&self) -> &Schema {
        &self.root
    }

    /// `schema` itself, or the named type it refers to.
    fn resolve<'s>(&'s self, schema: &'s Schema) -> &'s Schema {
        match schema {
            Schema::Ref { name } => self.names.get(name).copied().unwrap_or(schema),
            other => other,
        }
    }
}

/// Encodes rows as records of one writer schema.
pub struct AvroEncoder {
    schema: WriterSchema,
    /// The registry id messages are framed with; `None` for bare datums.
    id: Option<u32>,
}

impl AvroEncoder {
    /// An encoder of values of the schema `text` (a record, or for keys any type),
    /// framed with `id` if given.
    pub fn new(text: &str, id: Option<u32>) -> Result<Self, CodecError> {
        Ok(AvroEncoder { schema: WriterSchema::parse(text)?, id })
    }

    /// The binary encoding of each top-level field's default (fields without one left
    /// out): what a reader of this schema takes for a field a message's writer lacks.
    pub fn field_defaults(&self) -> Vec<(String, Vec<u8>)> {
        let root = self.schema.root();
        let Schema::Record(record) = self.schema.resolve(root) else { return Vec::new() };
        record
            .fields
            .iter()
            .filter_map(|field| {
                let value = self.default(&field.schema, field.default.as_ref()?).ok()?;
                // The field's schema may name types defined anywhere in the record's.
                let names = ResolvedSchema::try_from(root).ok()?;
                let writer = GenericDatumWriter::builder(&field.schema).resolved_schemata(names).build().ok()?;
                Some((field.name.clone(), writer.write_value_to_vec(value).ok()?))
            })
            .collect()
    }

    /// Encodes a row into `out` (cleared first); the error names the column or field.
    pub fn encode(&self, columns: &[ColumnValue<'_>], out: &mut Vec<u8>) -> Result<(), CodecError> {
        let root = self.schema.resolve(self.schema.root());
        let value = match columns {
            [ColumnValue { path: JsonPath::Whole, cell, name }] => {
                self.value(root, cell).map_err(|why| why.within(format_args!("column \"{name}\"")))?
            }
            _ => {
                let Schema::Record(record) = root else {
                    return Err(CodecError::Unwritable(format!("the Avro schema is {}, not a record: one column must hold the whole value", type_name(root))));
                };
                let routed = columns
                    .iter()
                    .map(|column| match column.path {
                        JsonPath::Keys(keys) => Ok((keys.as_slice(), column)),
                        JsonPath::Whole => Err(CodecError::Unwritable(format!("column \"{}\" is the whole record, but the row has other columns", column.name))),
                    })
                    .collect::<Result<Vec<_>, CodecError>>()?;
                self.record(record, &routed)?
            }
        };
        out.clear();
        if let Some(id) = self.id {
            out.extend_from_slice(&frame_header(id));
        }
        // The value was built from the schema, so a validation failure is a bug here.
        self.schema.writer.write_value(out, value).map_err(|e| CodecError::Unwritable(format!("could not encode the Avro record: {e}")))?;
        Ok(())
    }

    /// A record from the columns whose remaining paths start at its fields.
    fn record(&self, record: &RecordSchema, columns: &[(&[String], &ColumnValue<'_>)]) -> Result<Value, CodecError> {
        for (path, column) in columns {
            if !record.lookup.contains_key(&path[0]) {
                return Err(CodecError::Unwritable(format!(
                    "column \"{}\": the schema's record {} has no field \"{}\"",
                    column.name, record.name.name(), path[0]
                )));
            }
        }
        let mut fields = Vec::with_capacity(record.fields.len());
        for field in &record.fields {
            let here: Vec<(&[String], &ColumnValue<'_>)> =
                columns.iter().filter(|(path, _)| path[0] == field.name).map(|(path, column)| (&path[1..], *column)).collect();
            let value = match here.as_slice() {
                [] => self.unwritten(field)?,
                [(rest, column)] if rest.is_empty() => {
                    self.value(&field.schema, &column.cell).map_err(|why| why.within(format_args!("column \"{}\"", column.name)))?
                }
                nested if nested.iter().all(|(rest, _)| !rest.is_empty()) => self.nested(&field.schema, nested)?,
                clash => {
                    let names: Vec<String> = clash.iter().map(|(_, column)| format!("\"{}\"", column.name)).collect();
                    return Err(CodecError::Unwritable(format!("columns {} all write field \"{}\"", names.join(", "), field.name)));
                }
            };
            fields.push((field.name.clone(), value));
        }
        Ok(Value::Record(fields))
    }

    /// A record field (or a nullable one) that columns write into by paths; null when it
    /// is nullable and every one of them is NULL (as the scan reads a null record).
    fn nested(&self, schema: &Schema, columns: &[(&[String], &ColumnValue<'_>)]) -> Result<Value, CodecError> {
        if columns.iter().all(|(_, column)| column.cell == Cell::Null) {
            if let Ok(null) = self.value(schema, &Cell::Null) {
                return Ok(null);
            }
        }
        match self.schema.resolve(schema) {
            Schema::Record(record) => self.record(record, columns),
            Schema::Union(union) => {
                let branch = union.variants().iter().position(|v| matches!(self.schema.resolve(v), Schema::Record(_)));
                match branch {
                    Some(index) => Ok(Value::Union(index as u32, Box::new(self.nested(&union.variants()[index], columns)?))),
                    None => Err(CodecError::Unwritable(format!("column \"{}\": its path leads into a field that is not a record", columns[0].1.name))),
                }
            }
            _ => Err(CodecError::Unwritable(format!("column \"{}\": its path leads into a field that is not a record", columns[0].1.name))),
        }
    }

    /// A field no column writes: its default, or null.
    fn unwritten(&self, field: &RecordField) -> Result<Value, CodecError> {
        match &field.default {
            Some(default) => self.default(&field.schema, default),
            None => self
                .value(&field.schema, &Cell::Null)
                .map_err(|_| CodecError::Unwritable(format!("no column writes field \"{}\", which has no default and is not nullable", field.name))),
        }
    }

    /// A schema default: JSON, the first branch's for a union, bytes as latin-1 text.
    fn default(&self, schema: &Schema, default: &Json) -> Result<Value, CodecError> {
        match (self.schema.resolve(schema), default) {
            (Schema::Union(union), _) => {
                let first = union.variants().first().ok_or_else(|| CodecError::Schema("an empty union".to_string()))?;
                Ok(Value::Union(0, Box::new(self.default(first, default)?)))
            }
            (Schema::Bytes | Schema::Fixed(_) | Schema::Decimal(_), Json::String(text)) => {
                // Avro's JSON form of bytes: one character per byte.
                let bytes: Vec<u8> = text.chars().map(|c| c as u32 as u8).collect();
                match self.schema.resolve(schema) {
                    Schema::Decimal(_) => Ok(Value::Decimal(Decimal::from(bytes))),
                    _ => self.value(schema, &Cell::Bytes(&bytes)),
                }
            }
            // Logical types' defaults are their underlying numbers.
            (logical, Json::Number(number)) if number.as_i64().is_some() && is_numeric_logical(logical) => {
                let n = number.as_i64().unwrap_or_default();
                let int = || i32::try_from(n).map_err(|_| CodecError::Schema(format!("default {n} is out of range")));
                Ok(match logical {
                    Schema::Date => Value::Date(int()?),
                    Schema::TimeMillis => Value::TimeMillis(int()?),
                    Schema::TimeMicros => Value::TimeMicros(n),
                    Schema::TimestampMillis => Value::TimestampMillis(n),
                    Schema::TimestampMicros => Value::TimestampMicros(n),
                    Schema::TimestampNanos => Value::TimestampNanos(n),
                    Schema::LocalTimestampMillis => Value::LocalTimestampMillis(n),
                    Schema::LocalTimestampMicros => Value::LocalTimestampMicros(n),
                    _ => Value::LocalTimestampNanos(n),
                })
            }
            (_, default) => self.value(schema, &Cell::of_json(default)),
        }
    }

    /// A value of `schema` from a cell; the error says why it does not fit.
    fn value(&self, schema: &Schema, cell: &Cell<'_>) -> Result<Value, CodecError> {
        let schema = self.schema.resolve(schema);
        let mismatch = || CodecError::Unwritable(format!("{} does not fit Avro type {}", cell.describe(), type_name(schema)));
        let text = || cell.text().ok_or_else(mismatch);
        Ok(match (schema, cell) {
            (Schema::Union(union), Cell::Null) => {
                let index = union.variants().iter().position(|v| matches!(v, Schema::Null)).ok_or_else(|| not_nullable(schema))?;
                Value::Union(index as u32, Box::new(Value::Null))
            }
            (Schema::Union(union), _) => {
                // The branches of the value's own kind first (a jsonb string "5" stays a
                // string in ["long", "string"], a bigint 5 a long), and among numbers the
                // ones that keep the value (a fraction to double before float).
                let mut branches: Vec<(usize, &Schema)> =
                    union.variants().iter().enumerate().filter(|(_, v)| !matches!(v, Schema::Null)).collect();
                branches.sort_by_key(|(_, v)| affinity(self.schema.resolve(v), cell));
                let mut last_error = mismatch();
                for (index, variant) in branches {
                    match self.value(variant, cell) {
                        Ok(value) => return Ok(Value::Union(index as u32, Box::new(value))),
                        Err(why) => last_error = why,
                    }
                }
                return Err(last_error);
            }
            (Schema::Null, Cell::Null) => Value::Null,
            (Schema::Null, _) => return Err(mismatch()),
            (_, Cell::Null) => return Err(not_nullable(schema)),
            (Schema::Boolean, Cell::Bool(b)) => Value::Boolean(*b),
            (Schema::Boolean, _) => match text()?.as_ref() {
                "true" | "t" => Value::Boolean(true),
                "false" | "f" => Value::Boolean(false),
                _ => return Err(mismatch()),
            },
            (Schema::Int, _) => Value::Int(text()?.parse().map_err(|_| mismatch())?),
            (Schema::Long, _) => Value::Long(text()?.parse().map_err(|_| mismatch())?),
            (Schema::Float, _) => {
                let x = parse_float(&text()?).ok_or_else(mismatch)?;
                let narrow = x as f32;
                if narrow.is_infinite() && x.is_finite() {
                    return Err(CodecError::Unwritable(format!("{} is out of range for Avro type float", cell.describe())));
                }
                Value::Float(narrow)
            }
            (Schema::Double, _) => Value::Double(parse_float(&text()?).ok_or_else(mismatch)?),
            (Schema::String, _) => Value::String(text()?.into_owned()),
            (Schema::Bytes, _) => Value::Bytes(bytes_of(cell).ok_or_else(mismatch)?),
            (Schema::Fixed(fixed), _) => {
                let bytes = bytes_of(cell).ok_or_else(mismatch)?;
                if bytes.len() != fixed.size {
                    return Err(CodecError::Unwritable(format!("{} bytes do not fit Avro fixed {} of {} bytes", bytes.len(), fixed.name.name(), fixed.size)));
                }
                Value::Fixed(fixed.size, bytes)
            }
            (Schema::Enum(enumeration), _) => {
                let symbol = text()?;
                let index = enumeration.symbols.iter().position(|s| *s == symbol).ok_or_else(|| {
                    CodecError::Unwritable(format!("\"{symbol}\" is not a symbol of Avro enum {} ({})", enumeration.name.name(), enumeration.symbols.join(", ")))
                })?;
                Value::Enum(index as u32, symbol.into_owned())
            }
            (Schema::Uuid(kind), _) => {
                let bytes = uuid_bytes(&text()?).ok_or_else(mismatch)?;
                match kind {
                    UuidSchema::String => Value::String(text()?.to_lowercase()),
                    UuidSchema::Bytes => Value::Bytes(bytes.to_vec()),
                    UuidSchema::Fixed(_) => Value::Fixed(16, bytes.to_vec()),
                }
            }
            (Schema::Date, _) => Value::Date(days_of(cell).ok_or_else(mismatch)?),
            (Schema::TimeMillis, _) => Value::TimeMillis((time_of(cell).ok_or_else(mismatch)? / 1000) as i32),
            (Schema::TimeMicros, _) => Value::TimeMicros(time_of(cell).ok_or_else(mismatch)?),
            (Schema::TimestampMillis, _) => Value::TimestampMillis(micros_of(cell, Clock::Utc).ok_or_else(mismatch)?.div_euclid(1000)),
            (Schema::TimestampMicros, _) => Value::TimestampMicros(micros_of(cell, Clock::Utc).ok_or_else(mismatch)?),
            (Schema::TimestampNanos, _) => {
                Value::TimestampNanos(nanos(micros_of(cell, Clock::Utc).ok_or_else(mismatch)?).ok_or_else(mismatch)?)
            }
            (Schema::LocalTimestampMillis, _) => {
                Value::LocalTimestampMillis(micros_of(cell, Clock::Local).ok_or_else(mismatch)?.div_euclid(1000))
            }
            (Schema::LocalTimestampMicros, _) => Value::LocalTimestampMicros(micros_of(cell, Clock::Local).ok_or_else(mismatch)?),
            (Schema::LocalTimestampNanos, _) => {
                Value::LocalTimestampNanos(nanos(micros_of(cell, Clock::Local).ok_or_else(mismatch)?).ok_or_else(mismatch)?)
            }
            (Schema::Decimal(decimal), _) => Value::Decimal(decimal_value(decimal, &text()?)?),
            (Schema::Array(array), _) => match json_of(cell).ok_or_else(mismatch)?.as_ref() {
                Json::Array(items) => Value::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| self.value(&array.items, &Cell::of_json(item)).map_err(|why| why.within(format_args!("item {}", i + 1))))
                        .collect::<Result<_, _>>()?,
                ),
                _ => return Err(mismatch()),
            },
            (Schema::Map(map), _) => match json_of(cell).ok_or_else(mismatch)?.as_ref() {
                Json::Object(entries) => Value::Map(
                    entries
                        .iter()
                        .map(|(key, item)| Ok((key.clone(), self.value(&map.types, &Cell::of_json(item)).map_err(|why| why.within(format_args!("key \"{key}\"")))?)))
                        .collect::<Result<HashMap<_, _>, CodecError>>()?,
                ),
                _ => return Err(mismatch()),
            },
            (Schema::Record(record), _) => match json_of(cell).ok_or_else(mismatch)?.as_ref() {
                Json::Object(members) => {
                    if let Some(unknown) = members.keys().find(|name| !record.lookup.contains_key(*name)) {
                        return Err(CodecError::Unwritable(format!("the schema's record {} has no field \"{unknown}\"", record.name.name())));
                    }
                    let fields = record
                        .fields
                        .iter()
                        .map(|field| {
                            let value = match members.get(&field.name) {
                                Some(member) => self.value(&field.schema, &Cell::of_json(member)),
                                None => self.unwritten(field),
                            };
                            Ok((field.name.clone(), value.map_err(|why| why.within(format_args!("field \"{}\"", field.name)))?))
                        })
                        .collect::<Result<Vec<_>, CodecError>>()?;
                    Value::Record(fields)
                }
                _ => return Err(mismatch()),
            },
            (Schema::BigDecimal | Schema::Duration(_) | Schema::Ref { .. }, _) => {
                return Err(CodecError::Unwritable(format!("writing Avro type {} is not supported", type_name(schema))))
            }
        })
    }
}

fn is_numeric_logical(schema: &Schema) -> bool {
    matches!(
        schema,
        Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
    )
}

/// How well `schema` takes a cell: a union tries its branches from the lowest.
fn affinity(schema: &Schema, cell: &Cell<'_>) -> u8 {
    const OTHER: u8 = 9;
    match cell {
        Cell::Json(number @ Json::Number(_)) => affinity(schema, &Cell::of_json(number)),
        Cell::Number(text) => {
            let integral = !text.contains(['.', 'e', 'E', 'N', 'I']);
            match (schema, integral) {
                (Schema::Long, true) => 0,
                (Schema::Int, true) => 1,
                (Schema::Decimal(_), _) => 2,
                (Schema::Double, _) => 3,
                (Schema::Float, _) => 4,
                (Schema::Long | Schema::Int, false) => 5,
                _ => OTHER,
            }
        }
        _ if natural_for(schema, cell) => 0,
        _ => OTHER,
    }
}

/// Whether `schema` is the kind of type a cell is (numbers aside: see [`affinity`]).
fn natural_for(schema: &Schema, cell: &Cell<'_>) -> bool {
    match cell {
        Cell::Null => matches!(schema, Schema::Null),
        Cell::Number(_) => matches!(schema, Schema::Int | Schema::Long | Schema::Float | Schema::Double | Schema::Decimal(_)),
        Cell::Text(_) => matches!(schema, Schema::String | Schema::Enum(_) | Schema::Uuid(_)),
        Cell::Bool(_) => matches!(schema, Schema::Boolean),
        Cell::Bytes(_) => matches!(schema, Schema::Bytes | Schema::Fixed(_)),
        Cell::Timestamp { .. } => matches!(
            schema,
            Schema::TimestampMillis
                | Schema::TimestampMicros
                | Schema::TimestampNanos
                | Schema::LocalTimestampMillis
                | Schema::LocalTimestampMicros
                | Schema::LocalTimestampNanos
        ),
        Cell::Date(_) => matches!(schema, Schema::Date),
        Cell::Time(_) => matches!(schema, Schema::TimeMillis | Schema::TimeMicros),
        Cell::Json(Json::Array(_)) => matches!(schema, Schema::Array(_)),
        Cell::Json(Json::Object(_)) => matches!(schema, Schema::Record(_) | Schema::Map(_)),
        Cell::Json(json) => natural_for(schema, &Cell::of_json(json)),
    }
}

/// The Avro schema (JSON text) of a record with a field per column (or of a whole key
/// column's type), as INSERT registers it under `auto_register`: each column's type as the codec reads it back (numeric with
/// a typmod as decimal, without as string; json as string), nullable unless NOT NULL.
pub fn derived_schema(topic: &str, fields: &[DerivedField<'_>]) -> Result<String, CodecError> {
    // A key column alone (the whole key): a schema of its type, as a `"long"` key.
    if let [field @ DerivedField { path: JsonPath::Whole, .. }] = fields {
        if field.sql_type == SqlType::Json {
            return Err(CodecError::Unwritable(format!("column \"{}\" is json or jsonb, which no type of a derived schema reads back as", field.name)));
        }
        return Ok(derived_type(&field.sql_type).to_string());
    }
    let fields = fields
        .iter()
        .map(|field| {
            let name = derived_field_name(field)?;
            let avro_type = derived_type(&field.sql_type);
            Ok(if field.not_null {
                serde_json::json!({ "name": name, "type": avro_type })
            } else {
                serde_json::json!({ "name": name, "type": ["null", avro_type], "default": null })
            })
        })
        .collect::<Result<Vec<Json>, CodecError>>()?;
    Ok(serde_json::json!({ "type": "record", "name": derived_record_name(topic), "fields": fields }).to_string())
}

fn derived_type(sql_type: &SqlType) -> Json {
    use serde_json::json;
    let logical = |base: &str, logical: &str| json!({ "type": base, "logicalType": logical });
    match sql_type {
        SqlType::Boolean => json!("boolean"),
        SqlType::SmallInt | SqlType::Integer => json!("int"),
        SqlType::BigInt => json!("long"),
        SqlType::Real => json!("float"),
        SqlType::Double => json!("double"),
        SqlType::Numeric(Some((precision, scale))) => {
            json!({ "type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale })
        }
        SqlType::Bytea => json!("bytes"),
        SqlType::Date => logical("int", "date"),
        SqlType::Time => logical("long", "time-micros"),
        SqlType::Timestamp => logical("long", "local-timestamp-micros"),
        SqlType::TimestampTz => logical("long", "timestamp-micros"),
        SqlType::Uuid => logical("string", "uuid"),
        SqlType::Array(items) => json!({ "type": "array", "items": ["null", derived_type(items)] }),
        // Json has no field (derived_field_name).
        SqlType::Numeric(None) | SqlType::Json | SqlType::Text => json!("string"),
    }
}

fn not_nullable(schema: &Schema) -> CodecError {
    CodecError::Unwritable(format!("NULL does not fit Avro type {}, which is not nullable", type_name(schema)))
}

fn type_name(schema: &Schema) -> String {
    match schema {
        Schema::Record(record) => format!("record {}", record.name.name()),
        Schema::Enum(enumeration) => format!("enum {}", enumeration.name.name()),
        Schema::Fixed(fixed) => format!("fixed {}", fixed.name.name()),
        Schema::Union(union) => {
            let names: Vec<String> = union.variants().iter().map(type_name).collect();
            format!("[{}]", names.join(", "))
        }
        Schema::Decimal(decimal) => format!("decimal({}, {})", decimal.precision, decimal.scale),
        other => serde_json::to_value(other)
            .ok()
            .map(|json| match json {
                Json::String(name) => name,
                Json::Object(object) => object
                    .get("logicalType")
                    .or_else(|| object.get("type"))
                    .and_then(Json::as_str)
                    .unwrap_or("?")
                    .to_string(),
                _ => "?".to_string(),
            })
            .unwrap_or_else(|| "?".to_string()),
    }
}

/// PostgreSQL's float texts, including NaN and the infinities.
fn parse_float(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => text.parse().ok(),
    }
}

/// Bytes from a bytea column, a bytea's hex text (`\x00ff`, as bytea arrays and values
/// inside JSON spell them), or a text's UTF-8 bytes.
fn bytes_of(cell: &Cell<'_>) -> Option<Vec<u8>> {
    match cell {
        Cell::Bytes(bytes) => Some(bytes.to_vec()),
        Cell::Text(text) => Some(bytea_hex(text).unwrap_or_else(|| text.as_bytes().to_vec())),
        _ => None,
    }
}


fn json_of<'c>(cell: &'c Cell<'_>) -> Option<Cow<'c, Json>> {
    match cell {
        Cell::Json(json) => Some(Cow::Borrowed(json)),
        Cell::Text(text) => serde_json::from_str(text.as_ref()).ok().map(Cow::Owned),
        _ => None,
    }
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = text.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || text.len() != 36 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, pair) in hex.chunks(2).enumerate() {
        bytes[i] = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

fn days_of(cell: &Cell<'_>) -> Option<i32> {
    match cell {
        Cell::Date(days) => Some(*days),
        // A timestamp's date is its wall clock's, as PostgreSQL casts timestamptz to date.
        Cell::Timestamp { local, .. } => i32::try_from(local.div_euclid(86_400_000_000)).ok(),
        Cell::Text(text) => {
            // NaiveDate's default is 1970-01-01.
            let days = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()? - NaiveDate::default();
            i32::try_from(days.num_days()).ok()
        }
        _ => None,
    }
}

fn time_of(cell: &Cell<'_>) -> Option<i64> {
    match cell {
        Cell::Time(micros) => Some(*micros),
        Cell::Text(text) => {
            let time = NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok()?;
            Some(i64::from(time.num_seconds_from_midnight()) * 1_000_000 + i64::from(time.nanosecond() / 1000))
        }
        _ => None,
    }
}

/// Which of a timestamp's readings a type takes.
#[derive(Clone, Copy)]
enum Clock {
    /// The instant (timestamp-*).
    Utc,
    /// The wall clock (local-timestamp-*).
    Local,
}

/// Microseconds since the epoch from a timestamp, a date, or an ISO text (with an offset,
/// the instant, or its wall clock as written; without, UTC).
fn micros_of(cell: &Cell<'_>, clock: Clock) -> Option<i64> {
    match (cell, clock) {
        (Cell::Timestamp { utc, .. }, Clock::Utc) => Some(*utc),
        (Cell::Timestamp { local, .. }, Clock::Local) => Some(*local),
        (Cell::Date(days), _) => Some(i64::from(*days) * 86_400_000_000),
        (Cell::Text(text), _) => {
            let text = text.trim();
            let with_offset =
                DateTime::parse_from_rfc3339(text).ok().or_else(|| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z").ok());
            match (with_offset, clock) {
                (Some(at), Clock::Utc) => Some(at.timestamp_micros()),
                (Some(at), Clock::Local) => Some(at.naive_local().and_utc().timestamp_micros()),
                (None, _) => ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                    .iter()
                    .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
                    .map(|at| at.and_utc().timestamp_micros()),
            }
        }
        _ => None,
    }
}

fn nanos(micros: i64) -> Option<i64> {
    micros.checked_mul(1000)
}

/// The decimal of `text` at the schema's scale (rounded half away from zero, as
/// PostgreSQL's numeric(p, s) does); more digits than the precision is an error.
fn decimal_value(decimal: &DecimalSchema, text: &str) -> Result<Decimal, CodecError> {
    let unscaled = unscaled(text, decimal.scale).ok_or_else(|| CodecError::Unwritable(format!("\"{text}\" is not a number for Avro decimal")))?;
    let digits = unscaled.magnitude().to_string().len();
    if digits > decimal.precision && unscaled != BigInt::from(0) {
        return Err(CodecError::Unwritable(format!(
            "{text} does not fit Avro decimal({}, {}): more than {} digits",
            decimal.precision, decimal.scale, decimal.precision
        )));
    }
    let bytes = unscaled.to_signed_bytes_be();
    if let InnerDecimalSchema::Fixed(fixed) = &decimal.inner {
        if bytes.len() > fixed.size {
            return Err(CodecError::Unwritable(format!("{text} does not fit Avro decimal in fixed {} of {} bytes", fixed.name.name(), fixed.size)));
        }
    }
    Ok(Decimal::from(bytes))
}

/// `text` (digits, an optional fraction and exponent) times 10^scale, rounded half away
/// from zero; `None` if it is not a finite number.
fn unscaled(text: &str, scale: usize) -> Option<BigInt> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && fraction.is_empty() || !whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    // digits × 10^(exponent - fraction digits) × 10^scale
    let digits = format!("{whole}{fraction}");
    let shift = exponent.checked_sub(fraction.len() as i64)?.checked_add(scale as i64)?;
    if shift.unsigned_abs() > 10_000 {
        return None;
    }
    let mut value = BigInt::from_str(&digits).ok()?;
    if shift >= 0 {
        value *= BigInt::from(10).pow(shift as u32);
    } else {
        let divisor = BigInt::from(10).pow(shift.unsigned_abs() as u32);
        let (quotient, remainder) = (&value / &divisor, &value % &divisor);
        value = if remainder * 2 >= divisor { quotient + 1 } else { quotient };
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unwritable(reason: &str) -> CodecError {
        CodecError::Unwritable(reason.to_string())
    }
    use crate::codec::avro::{AvroDecoder, AvroSchema, WriterSchemas};

    const SCHEMA: &str = r#"{"type": "record", "name": "Row", "fields": [
        {"name": "id", "type": "long"},
        {"name": "name", "type": ["null", "string"], "default": null},
        {"name": "ok", "type": "boolean", "default": true},
        {"name": "small", "type": "int"},
        {"name": "ratio", "type": "double"},
        {"name": "f", "type": "float"},
        {"name": "blob", "type": "bytes"},
        {"name": "hash", "type": {"type": "fixed", "name": "H", "size": 2}},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
        {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
        {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "point", "type": ["null", {"type": "record", "name": "P", "fields": [{"name": "x", "type": "int"}, {"name": "y", "type": "int", "default": 7}]}]}
    ]}"#;

    fn keys(path: &str) -> JsonPath {
        JsonPath::parse(path).unwrap()
    }

    fn text(s: &str) -> Cell<'_> {
        Cell::Text(Cow::Borrowed(s))
    }

    fn encoder() -> AvroEncoder {
        AvroEncoder::new(SCHEMA, Some(42)).unwrap()
    }

    fn encode(columns: Vec<(&str, Cell<'_>)>) -> Result<Vec<u8>, CodecError> {
        let paths: Vec<JsonPath> = columns.iter().map(|(name, _)| keys(name)).collect();
        let row: Vec<ColumnValue<'_>> =
            columns.into_iter().zip(&paths).map(|((name, cell), path)| ColumnValue { name, path, cell }).collect();
        let mut out = Vec::new();
        encoder().encode(&row, &mut out).map(|()| out)
    }

    fn full_row() -> Vec<(&'static str, Cell<'static>)> {
        vec![
            ("id", text("9007199254740993")),
            ("small", text("-2147483648")),
            ("ratio", text("-Infinity")),
            ("f", text("1.5")),
            ("blob", Cell::Bytes(b"\x00\xff")),
            ("hash", Cell::Bytes(b"ab")),
            ("color", text("GREEN")),
            ("uid", text("0E8A1F5C-1111-2222-3333-444455556666")),
            ("day", Cell::Date(-1)),
            ("at", Cell::Timestamp { utc: 1_700_000_000_123_999, local: 0 }),
            ("local", Cell::Timestamp { utc: 0, local: -1 }),
            ("tm", Cell::Time(3_723_004_999)),
            ("price", text("-1234.565")),
            ("tags", Cell::Json(serde_json::json!(["a", "b \"c\""]))),
            ("attrs", Cell::Json(serde_json::json!({"k": 1}))),
            ("point.x", text("3")),
        ]
    }

    #[test]
    fn rows_read_back_as_written() {
        let payload = encode(full_row()).unwrap();
        assert_eq!(&payload[..5], &[0, 0, 0, 0, 42]);
        let given = AvroSchema::parse(SCHEMA).unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(given));
        let record = decoder.decode(&payload[5..]).unwrap();
        let read = |path: &str| record.field(&keys(path), false).map(|t| String::from_utf8(t.into_owned()).unwrap());
        assert_eq!(read("id").as_deref(), Some("9007199254740993"));
        assert_eq!(read("name"), None, "nullable fields without a column are null");
        assert_eq!(read("ok").as_deref(), Some("true"), "defaults");
        assert_eq!(read("small").as_deref(), Some("-2147483648"));
        assert_eq!(read("ratio").as_deref(), Some("-Infinity"));
        assert_eq!(read("blob").as_deref(), Some("\\x00ff"));
        assert_eq!(read("hash").as_deref(), Some("\\x6162"));
        assert_eq!(read("color").as_deref(), Some("GREEN"));
        assert_eq!(read("uid").as_deref(), Some("0e8a1f5c-1111-2222-3333-444455556666"));
        assert_eq!(read("day").as_deref(), Some("1969-12-31"));
        assert_eq!(read("at").as_deref(), Some("2023-11-14 22:13:20.123000+00"), "milliseconds truncate");
        assert_eq!(read("local").as_deref(), Some("1969-12-31 23:59:59.999999"));
        assert_eq!(read("tm").as_deref(), Some("01:02:03.004000"));
        assert_eq!(read("price").as_deref(), Some("-1234.57"), "rounded half away from zero");
        assert_eq!(read("tags").as_deref(), Some("{\"a\",\"b \\\"c\\\"\"}"));
        assert_eq!(read("attrs").as_deref(), Some("{\"k\":1}"));
        assert_eq!(read("point.x").as_deref(), Some("3"));
        assert_eq!(read("point.y").as_deref(), Some("7"), "nested defaults");
    }

    #[test]
    fn values_that_do_not_fit_are_errors_naming_the_column() {
        let with = |name: &str, cell: Cell<'static>| {
            let mut row = full_row();
            row.retain(|(n, _)| *n != name);
            row.push((Box::leak(name.to_string().into_boxed_str()), cell));
            encode(row).unwrap_err()
        };
        assert_eq!(with("small", text("2147483648")), unwritable("column \"small\": \"2147483648\" does not fit Avro type int"));
        assert_eq!(with("id", Cell::Null), unwritable("column \"id\": NULL does not fit Avro type long, which is not nullable"));
        assert_eq!(with("color", text("BLUE")), unwritable("column \"color\": \"BLUE\" is not a symbol of Avro enum Color (RED, GREEN)"));
        assert_eq!(with("hash", Cell::Bytes(b"abc")), unwritable("column \"hash\": 3 bytes do not fit Avro fixed H of 2 bytes"));
        assert_eq!(with("price", text("12345.6")), unwritable("column \"price\": 12345.6 does not fit Avro decimal(6, 2): more than 6 digits"));
        assert_eq!(with("uid", text("nope")), unwritable("column \"uid\": \"nope\" does not fit Avro type uuid"));
        assert_eq!(
            with("tags", Cell::Json(serde_json::json!(["a", null]))),
            unwritable("column \"tags\": item 2: NULL does not fit Avro type string, which is not nullable")
        );
        assert!(with("nope", text("1")).reason().contains("has no field \"nope\""));
        let mut row = full_row();
        row.retain(|(n, _)| *n != "small");
        assert_eq!(encode(row).unwrap_err(), unwritable("no column writes field \"small\", which has no default and is not nullable"));
    }

    #[test]
    fn a_lone_json_column_is_the_whole_record() {
        let text = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"b","type":["null","string"],"default":null}]}"#;
        let schema = AvroSchema::parse(text).unwrap();
        let encoder = AvroEncoder::new(text, None).unwrap();
        let whole = JsonPath::Whole;
        let mut out = Vec::new();
        let row = [ColumnValue { name: "doc", path: &whole, cell: Cell::Json(serde_json::json!({"a": 5})) }];
        encoder.encode(&row, &mut out).unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema));
        let record = decoder.decode(&out).unwrap();
        assert_eq!(record.field(&whole, true).unwrap().as_ref(), br#"{"a":5,"b":null}"#);
        let row = [ColumnValue { name: "doc", path: &whole, cell: Cell::Json(serde_json::json!({"a": 5, "c": 1})) }];
        assert_eq!(encoder.encode(&row, &mut out).unwrap_err(), unwritable("column \"doc\": the schema's record R has no field \"c\""));
    }

    #[test]
    fn unions_take_the_branch_of_the_values_kind_first() {
        let union = r#"{"type":"record","name":"U","fields":[{"name":"c","type":["null","long","string"]}]}"#;
        let schema = AvroSchema::parse(union).unwrap();
        let encoder = AvroEncoder::new(union, None).unwrap();
        let path = keys("c");
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(schema));
        let mut branch = |cell: Cell<'_>| {
            let mut out = Vec::new();
            encoder.encode(&[ColumnValue { name: "c", path: &path, cell }], &mut out).unwrap();
            let record = decoder.decode(&out).unwrap();
            record.field(&path, true).map(|t| String::from_utf8(t.into_owned()).unwrap())
        };
        assert_eq!(branch(Cell::Json(serde_json::json!("5"))).as_deref(), Some("\"5\""), "a JSON string stays a string");
        assert_eq!(branch(Cell::Json(serde_json::json!(5))).as_deref(), Some("5"));
        assert_eq!(branch(Cell::Number("5".into())).as_deref(), Some("5"), "a number column writes the long");
        assert_eq!(branch(text("5")).as_deref(), Some("\"5\""), "a text column writes the string");
        assert_eq!(branch(Cell::Null), None);
    }

    #[test]
    fn derived_schemas_read_back_into_their_columns() {
        let paths: Vec<JsonPath> = ["id", "price", "at", "tags", "doc"].iter().map(|k| keys(k)).collect();
        let types = [
            SqlType::BigInt,
            SqlType::Numeric(Some((10, 2))),
            SqlType::TimestampTz,
            SqlType::Array(Box::new(SqlType::Text)),
            SqlType::Numeric(None),
        ];
        let fields: Vec<DerivedField<'_>> = paths
            .iter()
            .zip(types)
            .enumerate()
            .map(|(i, (path, sql_type))| DerivedField { name: "c", path, sql_type, not_null: i == 0 })
            .collect();
        let text = derived_schema("my-topic.v1", &fields).unwrap();
        let schema = AvroSchema::parse(&text).unwrap();
        assert_eq!(
            schema.columns().unwrap(),
            [
                ("id", "bigint"),
                ("price", "numeric(10, 2)"),
                ("at", "timestamp with time zone"),
                ("tags", "text[]"),
                ("doc", "text"),
            ]
            .map(|(n, t)| (n.to_string(), t.to_string()))
        );
        assert!(text.contains(r#""name":"my_topic_v1""#), "{text}");
        let encoder = AvroEncoder::new(&text, Some(1)).unwrap();
        let row: Vec<ColumnValue<'_>> = vec![
            ColumnValue { name: "id", path: &paths[0], cell: Cell::Number("1".into()) },
            ColumnValue { name: "price", path: &paths[1], cell: Cell::Number("2.5".into()) },
            ColumnValue { name: "at", path: &paths[2], cell: Cell::Null },
            ColumnValue { name: "tags", path: &paths[3], cell: Cell::Json(serde_json::json!(["a", null])) },
            ColumnValue { name: "doc", path: &paths[4], cell: Cell::Number("1e400".into()) },
        ];
        encoder.encode(&row, &mut Vec::new()).unwrap();
        let nested = [DerivedField { name: "p", path: &keys("a.b"), sql_type: SqlType::Text, not_null: false }];
        assert!(matches!(derived_schema("t", &nested).unwrap_err(), CodecError::Schema(why) if why.contains("nested field")));
        let odd = [DerivedField { name: "my col", path: &keys("my col"), sql_type: SqlType::Text, not_null: false }];
        assert!(matches!(derived_schema("t", &odd).unwrap_err(), CodecError::Schema(why) if why.contains("not a valid field name")));
        let json = [DerivedField { name: "doc", path: &keys("doc"), sql_type: SqlType::Json, not_null: false }];
        assert!(matches!(derived_schema("t", &json).unwrap_err(), CodecError::Schema(why) if why.contains("is json or jsonb")));
    }

    #[test]
    fn a_schema_that_is_not_a_record_takes_one_whole_column() {
        let encoder = AvroEncoder::new(r#""long""#, Some(3)).unwrap();
        let whole = JsonPath::Whole;
        let mut out = Vec::new();
        encoder.encode(&[ColumnValue { name: "k", path: &whole, cell: Cell::Number("-1".into()) }], &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 0, 3, 1], "framed zigzag -1");
        let mut keys_decoder = AvroDecoder::for_keys(WriterSchemas::Given(AvroSchema::parse(r#""long""#).unwrap()));
        assert_eq!(keys_decoder.decode(&out[5..]).unwrap().field(&whole, false).unwrap().as_ref(), b"-1");
        let mut values_decoder = AvroDecoder::new(WriterSchemas::Given(AvroSchema::parse(r#""long""#).unwrap()));
        assert_eq!(values_decoder.decode(&out[5..]).err().unwrap(), CodecError::Malformed("Avro message is not a record".to_string()));
        let id = keys("id");
        let error = encoder.encode(&[ColumnValue { name: "k", path: &id, cell: Cell::Number("1".into()) }], &mut out).unwrap_err();
        assert_eq!(error, unwritable("the Avro schema is long, not a record: one column must hold the whole value"));
    }

    #[test]
    fn review_cases_bytes_parents_defaults_and_numbers() {
        let text = r#"{"type":"record","name":"R","fields":[
            {"name":"blobs","type":{"type":"array","items":"bytes"}},
            {"name":"p","type":["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}],"default":null},
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"default":0},
            {"name":"n","type":["null","float","double","long"],"default":null},
            {"name":"f","type":["null","float"],"default":null}
        ]}"#;
        let encoder = AvroEncoder::new(text, None).unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Given(AvroSchema::parse(text).unwrap()));
        let paths: Vec<JsonPath> = ["blobs", "p.x", "n", "f"].iter().map(|k| keys(k)).collect();
        let mut row = |blobs: Cell<'static>, x: Cell<'static>, n: Cell<'static>, f: Cell<'static>| {
            let cells = [blobs, x, n, f];
            let columns: Vec<ColumnValue<'_>> =
                paths.iter().zip(cells).map(|(path, cell)| ColumnValue { name: "c", path, cell }).collect();
            let mut out = Vec::new();
            encoder.encode(&columns, &mut out).map(|()| {
                let record = decoder.decode(&out).unwrap();
                ["blobs", "p", "at", "n"].map(|k| record.field(&keys(k), true).map(|t| String::from_utf8(t.into_owned()).unwrap()))
            })
        };
        let read = row(Cell::Json(serde_json::json!(["\\x00ff"])), Cell::Null, Cell::Number("1.5".into()), Cell::Null).unwrap();
        assert_eq!(read[0].as_deref(), Some(r#"["\\x00ff"]"#), "bytea hex text is its bytes, not the text");
        assert_eq!(read[1], None, "all columns of a nullable record NULL: the record is null");
        assert_eq!(read[2].as_deref(), Some(r#""1970-01-01 00:00:00.000000+00""#), "a logical type's default");
        assert_eq!(read[3].as_deref(), Some("1.5"), "a fraction goes to double before float... or float exactly");
        let read = row(Cell::Json(serde_json::json!([])), Cell::Number("3".into()), Cell::Number("9007199254740993".into()), Cell::Null).unwrap();
        assert_eq!(read[1].as_deref(), Some(r#"{"x":3}"#));
        assert_eq!(read[3].as_deref(), Some("9007199254740993"), "an integer goes to long, not double");
        let error = row(Cell::Json(serde_json::json!([])), Cell::Null, Cell::Null, Cell::Number("1e39".into())).unwrap_err();
        assert_eq!(error, unwritable("column \"c\": \"1e39\" is out of range for Avro type float"));
    }

    #[test]
    fn fields_the_writer_lacks_read_as_the_latest_schemas_defaults() {
        use crate::codec::wire::{CompiledSchema, SchemaById, WriterSchema};
        const V1: &str = r#"{"type":"record","name":"E","fields":[{"name":"id","type":"long"}]}"#;
        const V2: &str = r#"{"type":"record","name":"E","fields":[
            {"name":"id","type":"long"},
            {"name":"tier","type":"string","default":"basic"},
            {"name":"since","type":{"type":"int","logicalType":"date"},"default":1},
            {"name":"point","type":{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]},"default":{"x":7}},
            {"name":"note","type":["null","string"],"default":null},
            {"name":"bare","type":"string"}
        ]}"#;
        struct Evolving;
        impl SchemaById for Evolving {
            fn schema(&mut self, id: u32) -> Result<CompiledSchema, CodecError> {
                let text = if id == 1 { V1 } else { V2 };
                CompiledSchema::compile(&WriterSchema { schema_type: "AVRO".into(), text: text.into(), references: Vec::new() })
            }
            fn latest(&mut self) -> Option<WriterSchema> {
                Some(WriterSchema { schema_type: "AVRO".into(), text: V2.into(), references: Vec::new() })
            }
        }
        let mut out = Vec::new();
        let id_path = keys("id");
        AvroEncoder::new(V1, Some(1))
            .unwrap()
            .encode(&[ColumnValue { name: "id", path: &id_path, cell: Cell::Number("5".into()) }], &mut out)
            .unwrap();
        let mut decoder = AvroDecoder::new(WriterSchemas::Registry(Box::new(Evolving)));
        let record = decoder.decode(&out).unwrap();
        let read = |path: &str, json: bool| record.field(&keys(path), json).map(|t| String::from_utf8(t.into_owned()).unwrap());
        assert_eq!(read("id", false).as_deref(), Some("5"));
        assert_eq!(read("tier", false).as_deref(), Some("basic"));
        assert_eq!(read("since", false).as_deref(), Some("1970-01-02"));
        assert_eq!(read("point.x", false).as_deref(), Some("7"));
        assert_eq!(read("point", true).as_deref(), Some(r#"{"x":7}"#));
        assert_eq!(read("note", false), None, "a null default");
        assert_eq!(read("bare", false), None, "no default: NULL");
        assert_eq!(read("nope", false), None);
    }

    #[test]
    fn decimals_scale_and_round_like_numeric() {
        assert_eq!(unscaled("1.005", 2), Some(BigInt::from(101)));
        assert_eq!(unscaled("-1.005", 2), Some(BigInt::from(-101)));
        assert_eq!(unscaled("1.004", 2), Some(BigInt::from(100)));
        assert_eq!(unscaled("12", 3), Some(BigInt::from(12000)));
        assert_eq!(unscaled("1.5e2", 0), Some(BigInt::from(150)));
        assert_eq!(unscaled("0.000", 1), Some(BigInt::from(0)));
        assert_eq!(unscaled("NaN", 2), None);
        assert_eq!(unscaled("1e99999", 2), None);
        assert_eq!(unscaled(".", 2), None);
    }
}
