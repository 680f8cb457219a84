//! Avro's binary encoding, read straight from a message's bytes.
//!
//! Each writer schema is compiled once into a [`Plan`]: its types as nodes of a graph
//! (named types shared, recursive ones looping back), so that a message is read by
//! walking its bytes along the plan. Decoding a message checks every byte of it (the
//! reasons a message is bad are found whatever columns a table reads) and notes where
//! each top-level field starts; a column's text is then rendered from its field's
//! bytes alone, without building a tree of values for the record.
//!
//! The texts are those the codec has always given (see `avro.rs`): strings borrowed from
//! the message, numbers as Rust prints them, bytes as `\x` hex, dates and times in ISO
//! form, records, maps and other arrays as JSON.

use std::borrow::Cow;
use super::error::CodecError;
use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, NamesRef, NamespaceRef, ResolvedSchema, Schema, UuidSchema};
use apache_avro::{BigDecimal, Uuid};
use num_bigint::BigInt;
use serde_json::Value as Json;

use super::native::{FieldValue, Native};
use super::text::{self, bytea_text, decimal_text, json_float, time_text};

/// An index into a plan's nodes.
pub(super) type NodeId = usize;

/// A writer schema compiled for reading: its types, the record's at `root`.
pub(super) struct Plan {
    nodes: Vec<Node>,
    /// By node: whether its values are written in no bytes at all (null, a fixed of size
    /// 0, a record of such fields). Every other value takes a byte at least.
    empty: Vec<bool>,
    root: NodeId,
}

/// An Avro type, with what reading and rendering it needs.
pub(super) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// A string holding JSON text (a field marked [`JSON_TEXT`]): JSON itself where JSON
    /// is asked for.
    JsonText,
    /// The symbols, by index.
    Enum(Vec<String>),
    /// The size in bytes.
    Fixed(usize),
    Uuid(UuidEncoding),
    /// Days since 1970-01-01 (an int).
    Date,
    /// Milliseconds since midnight (an int).
    TimeMillis,
    /// Microseconds since midnight (a long).
    TimeMicros,
    /// A long counting `unit`s since the epoch; `utc` for timestamp-*, not local-timestamp-*.
    Timestamp { unit: TimeUnit, utc: bool },
    /// Big-endian two's complement digits in bytes, or in a fixed of the given size.
    Decimal { precision: usize, scale: usize, fixed: Option<usize> },
    /// Bytes holding the digits' bytes and then the scale (apache-avro's big-decimal).
    BigDecimal,
    /// Debezium's `io.debezium.data.VariableScaleDecimal` (a numeric of no fixed scale), a
    /// record of the scale (an int) and the unscaled digits (bytes, as a decimal's): read
    /// as the one number it is.
    VariableScaleDecimal,
    /// A fixed of the given size (valid if 12: months, days, milliseconds).
    Duration(usize),
    Array(NodeId),
    Map(NodeId),
    Union(Vec<NodeId>),
    Record(Record),
}

#[derive(Clone, Copy)]
pub(super) enum UuidEncoding {
    String,
    Bytes,
    Fixed(usize),
}

#[derive(Clone, Copy)]
pub(super) enum TimeUnit {
    Millis,
    Micros,
    Nanos,
}

pub(super) struct Record {
    /// Field names and types, in the order they are written.
    pub fields: Vec<(String, NodeId)>,
    /// A field's position by name, for records of many fields.
    positions: HashMap<String, usize>,
}

impl Node {
    /// What the node owns on the heap.
    fn heap_size(&self) -> usize {
        match self {
            Node::Enum(symbols) => allocation(symbols.capacity() * std::mem::size_of::<String>()) + strings(symbols.iter()),
            Node::Union(variants) => allocation(variants.capacity() * std::mem::size_of::<NodeId>()),
            Node::Record(record) => {
                let fields = allocation(record.fields.capacity() * std::mem::size_of::<(String, NodeId)>());
                // A hash table's slots and their control bytes, in one allocation.
                let positions = match record.positions.capacity() {
                    0 => 0,
                    slots => allocation(slots * (std::mem::size_of::<(String, usize)>() + 1)),
                };
                fields + strings(record.fields.iter().map(|(name, _)| name)) + positions + strings(record.positions.keys())
            }
            _ => 0,
        }
    }
}

/// The heap bytes of the strings' texts.
fn strings<'a>(texts: impl Iterator<Item = &'a String>) -> usize {
    texts.map(|text| allocation(text.capacity())).sum()
}

/// What an allocation of `bytes` takes from glibc's malloc: a chunk of at least 32 bytes,
/// the size plus an 8-byte header rounded up to 16.
fn allocation(bytes: usize) -> usize {
    match bytes {
        0 => 0,
        _ => (bytes + 8).next_multiple_of(16).max(32),
    }
}

impl Record {
    /// Up to this many fields, comparing names is quicker than hashing one.
    const FEW_FIELDS: usize = 16;

    pub fn position(&self, name: &str) -> Option<usize> {
        match self.fields.len() {
            0..=Self::FEW_FIELDS => self.fields.iter().position(|(field, _)| field == name),
            _ => self.positions.get(name).copied(),
        }
    }
}

/// How deep values may nest in a message (through a recursive type): deeper is a bad
/// message, not a stack overflow. The JSON codec's parser has the same limit.
const MAX_DEPTH: usize = 128;

/// How many items an array of values written in no bytes (nulls, empty records) may
/// hold: such items cost nothing to write, and a count must neither make the reader loop
/// for ever nor a column's text huge. Other items take a byte each at least, so the
/// message's length bounds their count. (apache-avro bounds every array by 512 MiB of
/// its values.)
const MAX_EMPTY_ITEMS: u64 = 1 << 20;

/// Why a message's bytes are not a datum of its schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum DatumError {
    /// The bytes end before the datum does.
    EndsEarly,
    Invalid(String),
}

impl std::fmt::Display for DatumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DatumError::EndsEarly => f.write_str("invalid Avro data: the record ends early"),
            DatumError::Invalid(why) => write!(f, "invalid Avro data: {why}"),
        }
    }
}

type Read<T> = Result<T, DatumError>;

fn invalid<T>(why: String) -> Read<T> {
    Err(DatumError::Invalid(why))
}

impl Plan {
    /// Compiles a parsed schema; the error says why it cannot be read (a name that
    /// refers to no type).
    pub fn compile(schema: &Schema) -> Result<Plan, CodecError> {
        let resolved = ResolvedSchema::try_from(schema).map_err(|e| CodecError::Schema(e.to_string()))?;
        let mut compiler = Compiler { names: resolved.get_names(), named: HashMap::new(), nodes: Vec::new() };
        let root = compiler.node(schema, None)?;
        let nodes = compiler.nodes;
        let empty = (0..nodes.len()).map(|id| written_in_no_bytes(&nodes, id, &mut Vec::new())).collect();
        Ok(Plan { nodes, empty, root })
    }

    pub fn root(&self) -> NodeId {
        self.root
    }

    /// About the bytes of memory the plan holds: its nodes and what they own, each
    /// allocation as malloc rounds it.
    pub fn heap_size(&self) -> usize {
        let own = allocation(self.nodes.capacity() * std::mem::size_of::<Node>()) + allocation(self.empty.capacity());
        own + self.nodes.iter().map(Node::heap_size).sum::<usize>()
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The record the messages are, if the schema is one.
    pub fn record(&self) -> Option<&Record> {
        match self.node(self.root) {
            Node::Record(record) => Some(record),
            _ => None,
        }
    }

    /// The type that is not null of a union of null and one other type.
    pub fn nullable(&self, id: NodeId) -> Option<NodeId> {
        match self.node(id) {
            Node::Union(variants) => match variants[..] {
                [a, b] if matches!(self.node(a), Node::Null) => Some(b),
                [a, b] if matches!(self.node(b), Node::Null) => Some(a),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether an array's items are scalars (or nullable scalars), so that it reads
    /// into a PostgreSQL array.
    pub fn items_are_scalars(&self, items: NodeId) -> bool {
        let item = match self.node(items) {
            Node::Union(_) => match self.nullable(items) {
                Some(item) => item,
                None => return false,
            },
            _ => items,
        };
        !matches!(self.node(item), Node::Array(_) | Node::Map(_) | Node::Record(_) | Node::Union(_))
    }

    /// Checks a whole message, noting in `starts` where each top-level field of a record
    /// begins; the bytes must hold exactly one datum.
    pub fn check(&self, datum: &[u8], starts: &mut Vec<usize>) -> Result<(), DatumError> {
        starts.clear();
        let mut reader = Reader { rest: datum };
        match self.record() {
            Some(record) => {
                for &(_, field) in &record.fields {
                    starts.push(datum.len() - reader.rest.len());
                    self.skip(field, &mut reader, 1)?;
                }
            }
            None => self.skip(self.root, &mut reader, 1)?,
        }
        match reader.rest.len() {
            0 => Ok(()),
            after => invalid(format!("{after} bytes after the record")),
        }
    }

    /// Reads past a value, checking it.
    fn skip<'a>(&'a self, id: NodeId, reader: &mut Reader<'a>, depth: usize) -> Read<()> {
        if depth > MAX_DEPTH {
            return invalid(format!("values nest deeper than {MAX_DEPTH} levels"));
        }
        match self.node(id) {
            Node::Array(items) => reader.blocks(self.empty[*items], |reader| self.skip(*items, reader, depth + 1)),
            Node::Map(values) => reader.blocks(false, |reader| {
                reader.string()?;
                self.skip(*values, reader, depth + 1)
            }),
            Node::Union(variants) => {
                // A union's branch is no union (Avro has no unions of unions): no deeper.
                let variant = reader.branch(variants)?;
                self.skip(variant, reader, depth)
            }
            Node::Record(record) => record.fields.iter().try_for_each(|&(_, field)| self.skip(field, reader, depth + 1)),
            _ => self.scalar(id, reader).map(drop),
        }
    }

    /// The type a value has after the union branches it took, read from `reader`.
    fn branches(&self, mut id: NodeId, reader: &mut Reader<'_>) -> Read<NodeId> {
        while let Node::Union(variants) = self.node(id) {
            id = reader.branch(variants)?;
        }
        Ok(id)
    }

    /// The member `key` of the record or map at `reader` (through nullable unions), and
    /// where its value starts; for a map with `key` more than once, the last one.
    pub fn child<'a>(&'a self, id: NodeId, mut reader: Reader<'a>, key: &str) -> Read<Option<(NodeId, Reader<'a>)>> {
        let id = self.branches(id, &mut reader)?;
        match self.node(id) {
            Node::Record(record) => {
                let Some(position) = record.position(key) else { return Ok(None) };
                for &(_, field) in &record.fields[..position] {
                    self.skip(field, &mut reader, 1)?;
                }
                Ok(Some((record.fields[position].1, reader)))
            }
            Node::Map(values) => {
                let mut found = None;
                reader.blocks(false, |reader| {
                    if reader.string()? == key {
                        found = Some((*values, *reader));
                    }
                    self.skip(*values, reader, 1)
                })?;
                Ok(found)
            }
            _ => Ok(None),
        }
    }

    /// The text of the value at `reader`, `None` for null; with `as_json` (a json or
    /// jsonb column) as JSON.
    pub fn text<'a>(&'a self, id: NodeId, mut reader: Reader<'a>, as_json: bool) -> Read<Option<Cow<'a, [u8]>>> {
        let id = self.branches(id, &mut reader)?;
        Ok(Some(match self.node(id) {
            Node::Null => return Ok(None),
            Node::Array(items) if !as_json && self.items_are_scalars(*items) => {
                let mut texts = Vec::new();
                reader.blocks(self.empty[*items], |reader| {
                    let item = self.branches(*items, reader)?;
                    texts.push(match self.scalar(item, reader)? {
                        Scalar::Null => None,
                        scalar => Some(scalar.text().into_owned()),
                    });
                    Ok(())
                })?;
                Cow::Owned(text::array_literal(texts.into_iter()).into_bytes())
            }
            Node::Array(_) | Node::Map(_) | Node::Record(_) => Cow::Owned(self.json_text(id, reader)?),
            _ if as_json => Cow::Owned(self.json_text(id, reader)?),
            _ => match self.scalar(id, &mut reader)?.text() {
                Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                Cow::Owned(text) => Cow::Owned(text.into_bytes()),
            },
        }))
    }

    /// The value at `reader` as [`text`](Self::text) gives it, but typed when it is a
    /// [`Native`] scalar and no JSON is asked for.
    pub fn value<'a>(&'a self, id: NodeId, reader: Reader<'a>, as_json: bool) -> Read<Option<FieldValue<'a>>> {
        if !as_json {
            let mut branch_reader = reader;
            let branch = self.branches(id, &mut branch_reader)?;
            if self.is_native(branch) {
                if let Scalar::Native(native) = self.scalar(branch, &mut branch_reader)? {
                    return Ok(Some(FieldValue::Native(native)));
                }
            }
        }
        Ok(self.text(id, reader, as_json)?.map(FieldValue::Text))
    }

    fn is_native(&self, id: NodeId) -> bool {
        matches!(
            self.node(id),
            Node::Boolean | Node::Int | Node::Long | Node::Float | Node::Double | Node::String | Node::Enum(_) | Node::Date | Node::Timestamp { .. }
        )
    }

    fn json_text<'a>(&'a self, id: NodeId, mut reader: Reader<'a>) -> Read<Vec<u8>> {
        let mut json = Vec::new();
        self.write_json(id, &mut reader, &mut json)?;
        Ok(json)
    }

    /// Writes the value at `reader` as JSON: strings for text, bytes, dates, times,
    /// UUIDs and (exact) decimals; map keys sorted, so that the text is stable.
    fn write_json<'a>(&'a self, id: NodeId, reader: &mut Reader<'a>, json: &mut Vec<u8>) -> Read<()> {
        let id = self.branches(id, reader)?;
        match self.node(id) {
            Node::Record(record) => {
                json.push(b'{');
                for (i, (name, field)) in record.fields.iter().enumerate() {
                    if i > 0 {
                        json.push(b',');
                    }
                    write_json_string(name, json);
                    json.push(b':');
                    self.write_json(*field, reader, json)?;
                }
                json.push(b'}');
            }
            Node::Map(values) => {
                let mut entries = Vec::new();
                reader.blocks(false, |reader| {
                    entries.push((reader.string()?, *reader));
                    self.skip(*values, reader, 1)
                })?;
                // Stable: of the entries of a key written more than once, the last one counts.
                entries.sort_by(|(a, _), (b, _)| a.cmp(b));
                json.push(b'{');
                let mut first = true;
                for (i, (key, value)) in entries.iter().enumerate() {
                    if entries.get(i + 1).is_some_and(|(next, _)| next == key) {
                        continue;
                    }
                    if !std::mem::take(&mut first) {
                        json.push(b',');
                    }
                    write_json_string(key, json);
                    json.push(b':');
                    self.write_json(*values, &mut { *value }, json)?;
                }
                json.push(b'}');
            }
            Node::Array(items) => {
                json.push(b'[');
                let mut first = true;
                reader.blocks(self.empty[*items], |reader| {
                    if !std::mem::take(&mut first) {
                        json.push(b',');
                    }
                    self.write_json(*items, reader, json)
                })?;
                json.push(b']');
            }
            _ => match self.scalar(id, reader)? {
                Scalar::Null => json.extend_from_slice(b"null"),
                Scalar::Native(Native::Boolean(b)) => json.extend_from_slice(if b { b"true" } else { b"false" }),
                Scalar::Native(Native::Integer(n)) => json.extend_from_slice(n.to_string().as_bytes()),
                Scalar::Native(Native::Float(x)) => write_json_number(&json_float(f64::from(x)), json),
                Scalar::Native(Native::Double(x)) => write_json_number(&json_float(x), json),
                // As it is when it is JSON.
                Scalar::JsonText(text) if serde_json::from_str::<Json>(text).is_ok() => json.extend_from_slice(text.as_bytes()),
                other => write_json_string(&other.text(), json),
            },
        }
        Ok(())
    }

    /// Reads a value of a type that is not an array, map, union or record.
    fn scalar<'a>(&'a self, id: NodeId, reader: &mut Reader<'a>) -> Read<Scalar<'a>> {
        Ok(match self.node(id) {
            Node::Null => Scalar::Null,
            Node::Boolean => Scalar::Native(Native::Boolean(reader.boolean()?)),
            Node::Int => Scalar::Native(Native::Integer(i64::from(reader.int()?))),
            Node::Long => Scalar::Native(Native::Integer(reader.long()?)),
            Node::Float => Scalar::Native(Native::Float(f32::from_le_bytes(reader.array()?))),
            Node::Double => Scalar::Native(Native::Double(f64::from_le_bytes(reader.array()?))),
            Node::Bytes => Scalar::Bytes(reader.bytes()?),
            Node::Fixed(size) => Scalar::Bytes(reader.fixed(*size)?),
            Node::String => Scalar::Native(Native::Text(reader.string()?)),
            Node::JsonText => Scalar::JsonText(reader.string()?),
            Node::Enum(symbols) => {
                let index = reader.int()?;
                match usize::try_from(index).ok().and_then(|i| symbols.get(i)) {
                    Some(symbol) => Scalar::Native(Native::Text(symbol)),
                    None => return invalid(format!("enum index {index} out of range ({} symbols)", symbols.len())),
                }
            }
            Node::Uuid(encoding) => {
                let uuid = match encoding {
                    UuidEncoding::String => Uuid::parse_str(reader.string()?).map_err(|e| e.to_string()),
                    UuidEncoding::Bytes => Uuid::from_slice(reader.bytes()?).map_err(|e| e.to_string()),
                    UuidEncoding::Fixed(16) => Uuid::from_slice(reader.fixed(16)?).map_err(|e| e.to_string()),
                    UuidEncoding::Fixed(size) => Err(format!("a uuid must be a fixed of 16 bytes, not {size}")),
                };
                Scalar::Uuid(uuid.or_else(|e| invalid(format!("invalid uuid: {e}")))?)
            }
            Node::Date => Scalar::Native(Native::Date(reader.int()?)),
            Node::TimeMillis => Scalar::Time(i64::from(reader.int()?) * 1000),
            Node::TimeMicros => Scalar::Time(reader.long()?),
            Node::Timestamp { unit, utc } => {
                let value = reader.long()?;
                let micros = match unit {
                    // Beyond chrono's range either way (saturated, not wrapped round).
                    TimeUnit::Millis => value.saturating_mul(1000),
                    TimeUnit::Micros => value,
                    TimeUnit::Nanos => value.div_euclid(1000),
                };
                Scalar::Native(Native::Timestamp(micros, *utc))
            }
            Node::Decimal { scale, fixed, .. } => {
                let digits = match fixed {
                    Some(size) => reader.fixed(*size)?,
                    None => reader.bytes()?,
                };
                Scalar::Decimal(digits, *scale)
            }
            Node::BigDecimal => Scalar::BigDecimal(big_decimal(reader.bytes()?)?),
            Node::VariableScaleDecimal => {
                // The scale is the message's, not the schema's: bounded before it sizes
                // the text (PostgreSQL's numeric takes no more digits than this).
                let scale = reader.int()?;
                let digits = reader.bytes()?;
                if !VARIABLE_SCALES.contains(&scale) {
                    return invalid(format!(
                        "a VariableScaleDecimal's scale {scale} is out of range ({} to {})",
                        VARIABLE_SCALES.start(),
                        VARIABLE_SCALES.end()
                    ));
                }
                match usize::try_from(scale) {
                    Ok(scale) => Scalar::Decimal(digits, scale),
                    // A negative scale multiplies: 5 at scale -2 is 500.
                    Err(_) => {
                        let unscaled = BigInt::from_signed_bytes_be(digits) * BigInt::from(10).pow(scale.unsigned_abs());
                        Scalar::BigDecimal(BigDecimal::new(unscaled, 0))
                    }
                }
            }
            Node::Duration(12) => Scalar::Duration(reader.array()?),
            Node::Duration(size) => return invalid(format!("a duration must be a fixed of 12 bytes, not {size}")),
            Node::Array(_) | Node::Map(_) | Node::Union(_) | Node::Record(_) => {
                unreachable!("containers are read by skip, text and write_json")
            }
        })
    }
}

/// apache-avro's big-decimal: bytes holding the unscaled value's bytes (with their
/// length) and the scale.
fn big_decimal(bytes: &[u8]) -> Read<BigDecimal> {
    let mut inner = Reader { rest: bytes };
    let parts = inner.bytes().and_then(|digits| Ok((digits, inner.long()?)));
    match parts {
        Ok((digits, scale)) => Ok(BigDecimal::new(BigInt::from_signed_bytes_be(digits), scale)),
        Err(_) => invalid("a big-decimal is cut short".to_string()),
    }
}

// Writing to a Vec cannot fail, and strings and numbers always serialize.
fn write_json_string(text: &str, json: &mut Vec<u8>) {
    let _ = serde_json::to_writer(json, text);
}

fn write_json_number(number: &Json, json: &mut Vec<u8>) {
    let _ = serde_json::to_writer(json, number);
}

/// A value of a type that is not a container.
enum Scalar<'a> {
    Null,
    /// A boolean, int, long, float, double, string, enum symbol (as text), date or
    /// timestamp.
    Native(Native<'a>),
    /// Bytes or a fixed.
    Bytes(&'a [u8]),
    /// A string holding JSON text.
    JsonText(&'a str),
    Uuid(Uuid),
    /// Microseconds since midnight.
    Time(i64),
    /// Big-endian two's complement unscaled digits, and the scale.
    Decimal(&'a [u8], usize),
    BigDecimal(BigDecimal),
    /// Months, days, milliseconds, as little-endian u32s.
    Duration([u8; 12]),
}

impl<'a> Scalar<'a> {
    /// The text a PostgreSQL input function takes (null has none: it is NULL).
    fn text(&self) -> Cow<'a, str> {
        Cow::Owned(match self {
            Scalar::Null => String::new(),
            Scalar::Native(native) => return native.text(),
            Scalar::Bytes(bytes) => bytea_text(bytes),
            Scalar::JsonText(text) => return Cow::Borrowed(text),
            Scalar::Uuid(uuid) => uuid.to_string(),
            Scalar::Time(micros) => time_text(*micros),
            Scalar::Decimal(digits, scale) => decimal_text(&BigInt::from_signed_bytes_be(digits), *scale),
            Scalar::BigDecimal(decimal) => decimal.to_string(),
            Scalar::Duration(bytes) => {
                let part = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
                format!("{} mons {} days {} milliseconds", part(0), part(4), part(8))
            }
        })
    }
}

/// The bytes of a message not read yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    fn take(&mut self, n: usize) -> Read<&'a [u8]> {
        if n > self.rest.len() {
            return Err(DatumError::EndsEarly);
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Read<[u8; N]> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    /// A zigzag varint of at most 10 bytes (bits beyond 64 dropped, as apache-avro does).
    fn long(&mut self) -> Read<i64> {
        let mut value: u64 = 0;
        for (i, &byte) in self.rest.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok((value >> 1) as i64 ^ -((value & 1) as i64));
            }
        }
        match self.rest.len() {
            0..10 => Err(DatumError::EndsEarly),
            _ => invalid("a variable-length integer is longer than 10 bytes".to_string()),
        }
    }

    fn int(&mut self) -> Read<i32> {
        let value = self.long()?;
        i32::try_from(value).or_else(|_| invalid(format!("{value} is out of range for an int")))
    }

    fn boolean(&mut self) -> Read<bool> {
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            other => invalid(format!("{other} is not a boolean (0 or 1)")),
        }
    }

    fn fixed(&mut self, size: usize) -> Read<&'a [u8]> {
        self.take(size)
    }

    /// A length, then as many bytes.
    fn bytes(&mut self) -> Read<&'a [u8]> {
        let length = self.long()?;
        match usize::try_from(length) {
            Ok(length) => self.take(length),
            Err(_) => invalid(format!("negative length {length}")),
        }
    }

    fn string(&mut self) -> Read<&'a str> {
        std::str::from_utf8(self.bytes()?).or_else(|_| invalid("a string is not valid UTF-8".to_string()))
    }

    /// The branch a union value took.
    fn branch(&mut self, variants: &[NodeId]) -> Read<NodeId> {
        let index = self.long()?;
        match usize::try_from(index).ok().and_then(|i| variants.get(i)) {
            Some(&variant) => Ok(variant),
            None => invalid(format!("union branch {index} out of range ({} branches)", variants.len())),
        }
    }

    /// The items of an array or map: blocks of a count and as many items, ended by a
    /// count of 0; a negative count is followed by the block's size in bytes.
    /// `empty_items`: whether the items are written in no bytes.
    fn blocks(&mut self, empty_items: bool, mut item: impl FnMut(&mut Self) -> Read<()>) -> Read<()> {
        let mut total: u64 = 0;
        loop {
            let count = match self.long()? {
                0 => return Ok(()),
                count if count < 0 => {
                    self.long()?;
                    count.unsigned_abs()
                }
                count => count as u64,
            };
            if empty_items {
                total = total.saturating_add(count);
                if total > MAX_EMPTY_ITEMS {
                    return invalid(format!("an array of more than {MAX_EMPTY_ITEMS} items written in no bytes"));
                }
            } else if count > self.rest.len() as u64 {
                // Fewer bytes than items, each of a byte at least.
                return Err(DatumError::EndsEarly);
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}

/// Whether the values of a node are written in no bytes at all (a record that contains
/// itself, through no union, array or map, has no values to write).
fn written_in_no_bytes(nodes: &[Node], id: NodeId, records_in: &mut Vec<NodeId>) -> bool {
    match &nodes[id] {
        Node::Null | Node::Fixed(0) | Node::Decimal { fixed: Some(0), .. } => true,
        Node::Record(record) if !records_in.contains(&id) => {
            records_in.push(id);
            let empty = record.fields.iter().all(|&(_, field)| written_in_no_bytes(nodes, field, records_in));
            records_in.pop();
            empty
        }
        _ => false,
    }
}

/// The scales a VariableScaleDecimal may have: PostgreSQL's numeric keeps at most 16,383
/// digits after the point, and its typmods' scales go down to -1,000.
const VARIABLE_SCALES: std::ops::RangeInclusive<i32> = -1000..=16383;

/// Whether a record is Debezium's `io.debezium.data.VariableScaleDecimal` as Kafka
/// Connect's Avro converter writes it: named so, of an int `scale` and bytes `value`.
fn is_variable_scale_decimal(name: &Name, record: &apache_avro::schema::RecordSchema) -> bool {
    let fields: Vec<(&str, &Schema)> = record.fields.iter().map(|field| (field.name.as_str(), &field.schema)).collect();
    name.fullname(None) == "io.debezium.data.VariableScaleDecimal"
        && matches!(fields[..], [("scale", Schema::Int), ("value", Schema::Bytes)])
}

/// The field attribute that marks a field's strings as JSON text (set by the schema's
/// reader for Kafka Connect's `io.debezium.data.Json`; see avro.rs).
pub(super) const JSON_TEXT: &str = "kafka_fdw.json_text";

/// Compiles schemas into plan nodes, each named type once.
struct Compiler<'s> {
    names: &'s NamesRef<'s>,
    named: HashMap<Name, NodeId>,
    nodes: Vec<Node>,
}

impl Compiler<'_> {
    fn push(&mut self, node: Node) -> NodeId {
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// The node of a field marked [`JSON_TEXT`]: its strings (also in a union) hold JSON.
    fn json_text_node(&mut self, schema: &Schema, namespace: NamespaceRef<'_>) -> Result<NodeId, CodecError> {
        match schema {
            Schema::String => Ok(self.push(Node::JsonText)),
            Schema::Union(union) => {
                let variants = union.variants().iter().map(|variant| self.json_text_node(variant, namespace)).collect::<Result<_, _>>()?;
                Ok(self.push(Node::Union(variants)))
            }
            other => self.node(other, namespace),
        }
    }

    /// The node of `schema`; named types are resolved as apache-avro resolves them
    /// (relative to the enclosing record's namespace).
    fn node(&mut self, schema: &Schema, namespace: NamespaceRef<'_>) -> Result<NodeId, CodecError> {
        let node = match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            Schema::Bytes => Node::Bytes,
            Schema::String => Node::String,
            Schema::Uuid(UuidSchema::String) => Node::Uuid(UuidEncoding::String),
            Schema::Uuid(UuidSchema::Bytes) => Node::Uuid(UuidEncoding::Bytes),
            Schema::Uuid(UuidSchema::Fixed(fixed)) => Node::Uuid(UuidEncoding::Fixed(fixed.size)),
            Schema::Date => Node::Date,
            Schema::TimeMillis => Node::TimeMillis,
            Schema::TimeMicros => Node::TimeMicros,
            Schema::TimestampMillis => Node::Timestamp { unit: TimeUnit::Millis, utc: true },
            Schema::TimestampMicros => Node::Timestamp { unit: TimeUnit::Micros, utc: true },
            Schema::TimestampNanos => Node::Timestamp { unit: TimeUnit::Nanos, utc: true },
            Schema::LocalTimestampMillis => Node::Timestamp { unit: TimeUnit::Millis, utc: false },
            Schema::LocalTimestampMicros => Node::Timestamp { unit: TimeUnit::Micros, utc: false },
            Schema::LocalTimestampNanos => Node::Timestamp { unit: TimeUnit::Nanos, utc: false },
            Schema::Decimal(decimal) => Node::Decimal {
                precision: decimal.precision,
                scale: decimal.scale,
                fixed: match &decimal.inner {
                    InnerDecimalSchema::Bytes => None,
                    InnerDecimalSchema::Fixed(fixed) => Some(fixed.size),
                },
            },
            Schema::BigDecimal => Node::BigDecimal,
            Schema::Duration(fixed) => Node::Duration(fixed.size),
            Schema::Array(array) => {
                let items = self.node(&array.items, namespace)?;
                Node::Array(items)
            }
            Schema::Map(map) => {
                let values = self.node(&map.types, namespace)?;
                Node::Map(values)
            }
            Schema::Union(union) => {
                let variants = union.variants().iter().map(|variant| self.node(variant, namespace)).collect::<Result<_, _>>()?;
                Node::Union(variants)
            }
            Schema::Enum(named) => return Ok(self.named(&named.name, namespace, Node::Enum(named.symbols.clone()))),
            Schema::Fixed(named) => return Ok(self.named(&named.name, namespace, Node::Fixed(named.size))),
            Schema::Record(record) => {
                let name = record.name.fully_qualified_name(namespace).into_owned();
                if let Some(&id) = self.named.get(&name) {
                    return Ok(id);
                }
                if is_variable_scale_decimal(&name, record) {
                    return Ok(self.named(&name, None, Node::VariableScaleDecimal));
                }
                // Registered before its fields, which may refer to it.
                let id = self.named(&name, None, Node::Null);
                let fields = record
                    .fields
                    .iter()
                    .map(|field| {
                        let node = if field.custom_attributes.contains_key(JSON_TEXT) {
                            self.json_text_node(&field.schema, name.namespace())?
                        } else {
                            self.node(&field.schema, name.namespace())?
                        };
                        Ok((field.name.clone(), node))
                    })
                    .collect::<Result<Vec<_>, CodecError>>()?;
                let mut positions = HashMap::new();
                if fields.len() > Record::FEW_FIELDS {
                    for (position, (name, _)) in fields.iter().enumerate() {
                        positions.entry(name.clone()).or_insert(position);
                    }
                }
                self.nodes[id] = Node::Record(Record { fields, positions });
                return Ok(id);
            }
            Schema::Ref { name } => {
                let name = name.fully_qualified_name(namespace).into_owned();
                if let Some(&id) = self.named.get(&name) {
                    return Ok(id);
                }
                let Some(&schema) = self.names.get(&name) else {
                    return Err(CodecError::Schema(format!("the schema refers to {name}, which it does not define")));
                };
                return self.node(schema, name.namespace());
            }
        };
        Ok(self.push(node))
    }

    /// The node of a named type, added under its full name (or the one defined before).
    fn named(&mut self, name: &Name, namespace: NamespaceRef<'_>, node: Node) -> NodeId {
        let name = name.fully_qualified_name(namespace).into_owned();
        if let Some(&id) = self.named.get(&name) {
            return id;
        }
        let id = self.push(node);
        self.named.insert(name, id);
        id
    }
}
