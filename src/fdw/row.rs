//! Turning one Kafka message into one row of a foreign table's tuple slot.
//!
//! Each data column's text goes through the column type's input function, as `COPY`
//! does, so every type PostgreSQL can read from text works. Only the columns the query
//! uses are decoded (`count(*)` parses nothing), except where bad messages are skipped
//! or collected in junk columns: then every data column is checked, so whether a message
//! is bad never depends on the query.
//!
//! Catching an input function's ERROR and going on (instead of letting the transaction
//! abort) is only sound if the function holds nothing an abort would release: locks,
//! buffer pins, cache references, files. The built-in input functions of
//! [`SELF_CONTAINED_INPUT`] types only allocate memory and raise (PostgreSQL 16 made
//! exactly these report soft errors), so their ERRORs are caught directly. Any other
//! type (a domain, whose CHECK may run SQL; an enum; an array; a user type) converts
//! inside an internal subtransaction when bad messages don't raise, as PL/pgSQL's
//! EXCEPTION blocks do, and the subtransaction's abort cleans up after a failure.
//! (Such scans are not parallel-safe: PostgreSQL 15 starts no subtransaction in a
//! parallel query.)

use std::borrow::Cow;
use std::ffi::c_char;

use pgrx::pg_sys;
use pgrx::IntoDatum;
use rdkafka::message::Headers;
use rdkafka::Message;

use crate::pg::catalog::ForeignTableDef;
use crate::pg::schemas::{self, MessagePart};
use crate::pg::stats;
use crate::pg::compat;
use crate::pg::encoding;
use crate::pg::subtransaction;
use crate::codec::{excerpt, invalid_value, malformed_message, mismatched_message, MessagePosition, PayloadDecoder};
use crate::error::{capitalized, ErrorKind, FdwError};
use crate::codec::{ColumnType, Decoded, FieldDef, Format};
use crate::codec::native::{self, Cell, FieldValue, Target};
use crate::options::layout::ColumnSource;
use crate::options::{MetaColumn, OnError};
use crate::pg::errors::{raise, reported_kind};
use crate::plan;

/// How one attribute of the tuple gets its value.
enum Fill {
    /// Not needed by the query, or dropped: NULL.
    Null,
    /// A message property, into a column of that type.
    Meta(MetaColumn, ColumnType),
    Field(FieldInput),
    /// A field of the decoded key (or the whole key), as a data column is filled.
    KeyField(FieldInput),
}

/// A data column and its type's input function.
struct FieldInput {
    index: usize,
    field: FieldDef,
    /// Raw bytes straight into a bytea column (format raw), not through byteain.
    raw_bytes: bool,
    /// Boxed so the address PostgreSQL may cache in `fn_extra` stays put.
    function: Box<pg_sys::FmgrInfo>,
    io_param: pg_sys::Oid,
    typmod: i32,
    /// Whether a failure may be caught without a subtransaction (see the module doc).
    self_contained: bool,
    /// The built-in type typed values fill without the input function, if it is one.
    target: Option<Target>,
}

/// Whether a scan of `definition` (foreign table `relid`) may convert values inside
/// subtransactions: bad messages don't raise, and a data column's type is not
/// [`SELF_CONTAINED_INPUT`]. PostgreSQL 15 starts no subtransaction in a parallel
/// query, so such scans are not parallel-safe.
///
/// # Safety
/// A catalog lookup: inside a transaction, with `relid` a relation.
pub unsafe fn converts_in_subtransactions(relid: pg_sys::Oid, definition: &ForeignTableDef) -> bool {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let handles_bad_messages = definition.layout.has_junk_columns() || definition.table.on_error != OnError::Error;
        handles_bad_messages
            && definition.layout.columns.iter().enumerate().any(|(i, source)| {
                matches!(source, ColumnSource::Field(_) | ColumnSource::KeyField(_)) && !SELF_CONTAINED_INPUT.contains(&pg_sys::get_atttype(relid, (i + 1) as i16))
            })
    }
}

/// Types whose built-in input functions acquire nothing but memory.
const SELF_CONTAINED_INPUT: [pg_sys::Oid; 20] = [
    pg_sys::BOOLOID,
    pg_sys::INT2OID,
    pg_sys::INT4OID,
    pg_sys::INT8OID,
    pg_sys::FLOAT4OID,
    pg_sys::FLOAT8OID,
    pg_sys::NUMERICOID,
    pg_sys::TEXTOID,
    pg_sys::VARCHAROID,
    pg_sys::BPCHAROID,
    pg_sys::BYTEAOID,
    pg_sys::DATEOID,
    pg_sys::TIMEOID,
    pg_sys::TIMETZOID,
    pg_sys::TIMESTAMPOID,
    pg_sys::TIMESTAMPTZOID,
    pg_sys::INTERVALOID,
    pg_sys::UUIDOID,
    pg_sys::JSONOID,
    pg_sys::JSONBOID,
];

/// What became of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The slot holds its row.
    Row,
    /// A bad message dropped under `on_error 'skip'`.
    Skipped,
}

pub struct RowBuilder {
    fills: Vec<Fill>,
    decoder: PayloadDecoder,
    /// Decodes keys when the query reads key fields (`key_format` json, avro, protobuf).
    key_decoder: Option<PayloadDecoder>,
    decodes_payload: bool,
    on_error: OnError,
    strict: bool,
    /// junk/junk_error columns collect bad messages instead of raising.
    collects_junk: bool,
    all_fields: Vec<FieldDef>,
    /// NUL-terminated copy of the field being converted, reused across rows.
    cstring: Vec<u8>,
    problems: Vec<String>,
    /// The table's topics, for the summary of bad messages: `topic "a"`.
    topics: String,
    /// The table's topic, if it has one: every message's, without asking librdkafka.
    one_topic: Option<String>,
    /// The foreign table, whose statistics count the bad messages that raise.
    relation: pg_sys::Oid,
    /// Messages with a problem that did not raise (NULLed, skipped or collected).
    pub bad_messages: u64,
}

impl RowBuilder {
    /// # Safety
    /// `tupdesc` must describe the relation whose `layout` is given, and `needed[i]`
    /// says whether attribute `i + 1` is used by the query.
    pub unsafe fn new(relation: pg_sys::Oid, tupdesc: pg_sys::TupleDesc, definition: &ForeignTableDef, needed: &[bool]) -> Self {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            let (layout, table) = (&definition.layout, &definition.table);
            let attrs = compat::attributes(tupdesc);
            let collects_junk = layout.has_junk_columns();
            // Skipping or collecting bad messages checks every data column, needed or not.
            let checks_all = collects_junk || table.on_error == OnError::Skip;
            let input = |attr: &pg_sys::FormData_pg_attribute, index: usize, field: &FieldDef| {
                let mut input_function = pg_sys::Oid::INVALID;
                let mut io_param = pg_sys::Oid::INVALID;
                pg_sys::getTypeInputInfo(attr.atttypid, &mut input_function, &mut io_param);
                let mut function = Box::new(std::mem::zeroed::<pg_sys::FmgrInfo>());
                pg_sys::fmgr_info(input_function, function.as_mut());
                FieldInput {
                    index,
                    raw_bytes: table.format == Format::Raw && field.column_type == ColumnType::Bytea,
                    field: field.clone(),
                    function,
                    io_param,
                    typmod: attr.atttypmod,
                    self_contained: SELF_CONTAINED_INPUT.contains(&attr.atttypid),
                    target: native_target(attr.atttypid, attr.atttypmod),
                }
            };
            let fills = layout
                .columns
                .iter()
                .zip(attrs)
                .zip(needed)
                .map(|((source, attr), &needed)| match source {
                    ColumnSource::Dropped => Fill::Null,
                    ColumnSource::Field(index) if needed || checks_all => Fill::Field(input(attr, *index, &layout.fields[*index])),
                    ColumnSource::KeyField(index) if needed || checks_all => {
                        let mut key_input = input(attr, *index, &layout.key_fields[*index]);
                        key_input.raw_bytes = false;
                        Fill::KeyField(key_input)
                    }
                    _ if !needed => Fill::Null,
                    ColumnSource::Meta(meta, column_type) => Fill::Meta(*meta, *column_type),
                    ColumnSource::Field(_) | ColumnSource::KeyField(_) => Fill::Null,
                })
                .collect::<Vec<_>>();
            let decodes_key = fills.iter().any(|fill| matches!(fill, Fill::KeyField(_)));
            let decodes_payload = fills.iter().any(|fill| matches!(fill, Fill::Field(_)));
            let on_error = if collects_junk { OnError::Null } else { table.on_error };
            RowBuilder {
                fills,
                decoder: PayloadDecoder::new(table.format, &table.csv, || schemas::writer_schemas(definition)),
                key_decoder: decodes_key
                    .then(|| PayloadDecoder::for_keys(table.key_format, &table.csv, || schemas::registry_writer_schemas(definition, MessagePart::Key))),
                decodes_payload,
                on_error,
                strict: table.strict,
                collects_junk,
                all_fields: layout.fields.clone(),
                cstring: Vec::new(),
                problems: Vec::new(),
                topics: table.topics.describe(),
                one_topic: table.topics.single().map(str::to_string),
                relation,
                bad_messages: 0,
            }
        }
    }

    /// What a scan reports about its bad messages, once, at its end (if anything).
    pub fn bad_message_summary(&self) -> Option<String> {
        if self.bad_messages == 0 || self.collects_junk {
            return None;
        }
        let what = match self.on_error {
            OnError::Skip => "were skipped (on_error 'skip')",
            _ => "had fields that could not be read set to NULL (ignore_junk)",
        };
        Some(format!("{} bad messages of Kafka {} {what}", self.bad_messages, self.topics))
    }

    /// Fills `slot`'s values and nulls from `message` (the caller stores the tuple unless
    /// the message was skipped).
    ///
    /// # Safety
    /// `slot` must be a cleared slot of the relation this builder was made for, and the
    /// current memory context must be the per-tuple one.
    pub unsafe fn fill<M: Message>(&mut self, slot: *mut pg_sys::TupleTableSlot, message: &M) -> Outcome {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            let natts = self.fills.len();
            let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
            let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
            values.fill(pg_sys::Datum::from(0));
            nulls.fill(true);
            stats::decoding(self.relation);
            let topic = self.one_topic.as_deref().unwrap_or_else(|| message.topic());
            let position = MessagePosition { topic, partition: message.partition(), offset: message.offset() };
            for (i, fill) in self.fills.iter().enumerate() {
                if let Fill::Meta(meta, column_type) = fill {
                    if let Some(value) = meta_value(*meta, *column_type, message, &position) {
                        values[i] = value;
                        nulls[i] = false;
                    }
                }
            }
            self.problems.clear();
            if let (Some(key_decoder), Some(key)) = (&mut self.key_decoder, message.key()) {
                let RowBuilder { fills, on_error, cstring, problems, .. } = self;
                match key_decoder.decode(key) {
                    Err(undecodable) if *on_error == OnError::Error => raise_bad_message(
                        FdwError::new(ErrorKind::BadMessageFormat, format!("malformed key of Kafka message at {}", position.describe()))
                            .with_detail(format!("{}. Key: {}", capitalized(&undecodable.reason), excerpt(key))),
                    ),
                    Err(undecodable) => problems.push(format!("key: {}", undecodable.reason)),
                    Ok(decoded) => {
                        let converted = Converted { values: &mut *values, nulls: &mut *nulls, problems: &mut *problems };
                        fill_fields(&decoded, fills, key_field, cstring, *on_error, key, &position, converted);
                    }
                }
            }
            let payload = match message.payload().filter(|_| self.decodes_payload) {
                Some(payload) => payload,
                // Nothing to decode, or a tombstone: data columns are NULL.
                None if self.problems.is_empty() => return Outcome::Row,
                None => return self.bad_message(values, nulls, &[]),
            };
            let RowBuilder { fills, decoder, on_error, strict, collects_junk, all_fields, cstring, problems, .. } = self;
            let decoded = match decoder.decode(payload) {
                Err(undecodable) => {
                    if *on_error == OnError::Error {
                        raise_bad_message(malformed_message(&position, &undecodable.reason, payload));
                    }
                    problems.push(undecodable.reason);
                    // The fields read before the problem still fill their columns.
                    undecodable.partial
                }
                Ok(decoded) => {
                    // Without strict or junk columns no mismatch counts: don't look for them.
                    let mismatches = if *strict || *collects_junk { decoded.mismatches(all_fields) } else { Vec::new() };
                    for mismatch in mismatches {
                        let counts = *strict || matches!(mismatch, crate::codec::Mismatch::Extra(_));
                        if !counts {
                            continue;
                        }
                        if *on_error == OnError::Error {
                            raise_bad_message(mismatched_message(&position, &mismatch, payload));
                        }
                        problems.push(mismatch.text().to_string());
                    }
                    Some(decoded)
                }
            };
            if let Some(decoded) = decoded {
                let converted = Converted { values: &mut *values, nulls: &mut *nulls, problems: &mut *problems };
                fill_fields(&decoded, fills, data_field, cstring, *on_error, payload, &position, converted);
            }
            if problems.is_empty() {
                return Outcome::Row;
            }
            self.bad_message(values, nulls, payload)
        }
    }

    /// Counts a message with problems that did not raise, and skips it or fills its junk
    /// columns.
    fn bad_message(&mut self, values: &mut [pg_sys::Datum], nulls: &mut [bool], payload: &[u8]) -> Outcome {
        self.bad_messages += 1;
        if self.on_error == OnError::Skip {
            return Outcome::Skipped;
        }
        if self.collects_junk {
            // The data columns keep what did convert; the junk columns say what did not.
            let junk_text = String::from_utf8_lossy(payload);
            let errors = self.problems.join("\n");
            for (i, fill) in self.fills.iter().enumerate() {
                let value = match fill {
                    Fill::Meta(MetaColumn::Junk, _) => Some(encoding::text_datum_escaping(&junk_text)),
                    Fill::Meta(MetaColumn::JunkError, _) => Some(encoding::text_datum_escaping(&errors)),
                    _ => continue,
                };
                values[i] = value.expect("text is never NULL");
                nulls[i] = false;
            }
        }
        Outcome::Row
    }
}

fn data_field(fill: &Fill) -> Option<&FieldInput> {
    if let Fill::Field(input) = fill { Some(input) } else { None }
}

fn key_field(fill: &Fill) -> Option<&FieldInput> {
    if let Fill::KeyField(input) = fill { Some(input) } else { None }
}

/// Where converted values go: the slot's values and nulls, and the problems of values
/// that did not convert (when they don't raise).
struct Converted<'a> {
    values: &'a mut [pg_sys::Datum],
    nulls: &'a mut [bool],
    problems: &'a mut Vec<String>,
}

/// Converts the fields of `decoded` (a payload, or a key) that the fills `pick` chooses
/// read into their attributes.
#[allow(clippy::too_many_arguments)]
fn fill_fields(
    decoded: &Decoded<'_>,
    fills: &[Fill],
    pick: fn(&Fill) -> Option<&FieldInput>,
    cstring: &mut Vec<u8>,
    on_error: OnError,
    bytes: &[u8],
    position: &MessagePosition<'_>,
    out: Converted<'_>,
) {
    for (i, fill) in fills.iter().enumerate() {
        let Some(input) = pick(fill) else { continue };
        let text = match input.target {
            None => decoded.field(input.index, &input.field),
            Some(target) => match decoded.value(input.index, &input.field) {
                None => None,
                Some(FieldValue::Text(text)) => Some(text),
                Some(FieldValue::Native(value)) => match native::cell(target, &value) {
                    Some(cell) => {
                        out.values[i] = cell_datum(cell);
                        out.nulls[i] = false;
                        continue;
                    }
                    None => Some(match value.text() {
                        Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
                        Cow::Owned(text) => Cow::Owned(text.into_bytes()),
                    }),
                },
            },
        };
        let Some(text) = text else { continue };
        match convert(input, &text, cstring, on_error, bytes, position) {
            Ok(value) => {
                out.values[i] = value;
                out.nulls[i] = false;
            }
            Err(problem) => out.problems.push(problem),
        }
    }
}

/// The column type typed values go into as they are (see `codec::native`): a built-in
/// type without a type modifier; text only when the database is UTF-8, as decoded text is.
pub(super) fn native_target(type_oid: pg_sys::Oid, typmod: i32) -> Option<Target> {
    Some(match type_oid {
        pg_sys::INT2OID => Target::SmallInt,
        pg_sys::INT4OID => Target::Integer,
        pg_sys::INT8OID => Target::BigInt,
        pg_sys::FLOAT4OID => Target::Real,
        pg_sys::FLOAT8OID => Target::Double,
        pg_sys::BOOLOID => Target::Boolean,
        pg_sys::TEXTOID if encoding::database_is_utf8() => Target::Text,
        pg_sys::DATEOID => Target::Date,
        pg_sys::TIMESTAMPOID if typmod < 0 => Target::Timestamp,
        pg_sys::TIMESTAMPTZOID if typmod < 0 => Target::TimestampTz,
        _ => return None,
    })
}

/// The datum of a column's value (pass-by-value types, or text in the current memory
/// context).
pub(super) fn cell_datum(cell: Cell<'_>) -> pg_sys::Datum {
    match cell {
        Cell::Int2(n) => pg_sys::Datum::from(n),
        Cell::Int4(n) | Cell::Date(n) => pg_sys::Datum::from(n),
        Cell::Int8(n) | Cell::Timestamp(n) => pg_sys::Datum::from(n),
        // As Float4GetDatum: the bits as an int32, sign-extended.
        Cell::Float4(x) => pg_sys::Datum::from(x.to_bits() as i32),
        Cell::Float8(x) => x.into_datum().expect("a double is never NULL"),
        Cell::Bool(b) => pg_sys::Datum::from(b),
        Cell::Text(text) => encoding::text_datum(text),
    }
}

/// The value of a meta column for `message`; `None` for NULL (no key, no timestamp, no
/// headers).
fn meta_value<M: Message>(
    meta: MetaColumn,
    column_type: ColumnType,
    message: &M,
    position: &MessagePosition<'_>,
) -> Option<pg_sys::Datum> {
    match (meta, column_type) {
        (MetaColumn::Partition, ColumnType::SmallInt) => (position.partition as i16).into_datum(),
        (MetaColumn::Partition, ColumnType::Integer) => position.partition.into_datum(),
        (MetaColumn::Partition, _) => (position.partition as i64).into_datum(),
        (MetaColumn::Offset, _) => position.offset.into_datum(),
        (MetaColumn::Topic, _) => position.topic.into_datum(),
        (MetaColumn::Key, ColumnType::Bytea) => message.key()?.into_datum(),
        (MetaColumn::Key, _) => Some(key_text(text(message.key()?, "key", position), position)),
        (MetaColumn::Timestamp, _) => {
            let unix_ms = message.timestamp().to_millis()?;
            let postgres_micros = unix_ms.checked_mul(1000)?.checked_sub(plan::POSTGRES_EPOCH_UNIX_MICROS)?;
            // timestamptz is an i64 of microseconds since 2000-01-01, passed by value.
            Some(pg_sys::Datum::from(postgres_micros))
        }
        (MetaColumn::Headers, _) => Some(encoding::jsonb_datum(&headers_json(message.headers()?))),
        // Filled after decoding, and only for messages with a problem.
        (MetaColumn::Junk | MetaColumn::JunkError, _) => None,
    }
}

/// Headers as a JSON object of key to value. Values that are UTF-8 become strings,
/// others bytea's hex text (`\x…`), absent ones null; with a repeated key the last wins,
/// as in any jsonb object.
fn headers_json(headers: &impl Headers) -> serde_json::Value {
    let mut object = serde_json::Map::with_capacity(headers.count());
    for header in headers.iter() {
        let value = match header.value {
            None => serde_json::Value::Null,
            Some(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => serde_json::Value::String(text.to_string()),
                Err(_) => serde_json::Value::String(format!("\\x{}", hex(bytes))),
            },
        };
        object.insert(header.key.to_string(), value);
    }
    serde_json::Value::Object(object)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Raises the error of a bad message (`on_error 'error'`), counted in the table's
/// statistics.
fn raise_bad_message(error: FdwError) -> ! {
    stats::bad_message_raised();
    raise(error)
}

/// A key's text datum in the database's encoding, or an ERROR naming the message when
/// the database has no room for one of its characters.
fn key_text(key: &str, position: &MessagePosition<'_>) -> pg_sys::Datum {
    // Only an ERROR is caught, and one is raised right after it.
    subtransaction::catch_error(|| encoding::text_datum(key)).unwrap_or_else(|report| {
        raise_bad_message(
            FdwError::new(reported_kind(report.sql_error_code()), format!("invalid key in Kafka message at {}", position.describe()))
                .with_detail(format!("{}.", capitalized(report.message()))),
        )
    })
}

/// `bytes` as text, or an ERROR naming the message when they are not UTF-8.
fn text<'a>(bytes: &'a [u8], what: &str, position: &MessagePosition<'_>) -> &'a str {
    std::str::from_utf8(bytes).unwrap_or_else(|error| {
        raise_bad_message(
            FdwError::new(
                ErrorKind::CharacterNotInRepertoire,
                format!("invalid UTF-8 in the {what} of Kafka message at {}", position.describe()),
            )
            .with_detail(format!("{}. Declare the column bytea to read any bytes.", capitalized(&error.to_string()))),
        )
    })
}

/// The datum of a data column from its text: the column type's input function, or the
/// bytes themselves for a raw bytea column. A failure raises under `on_error 'error'`
/// (naming the message and the column) and is returned as a problem otherwise.
fn convert(
    input: &FieldInput,
    text: &[u8],
    cstring: &mut Vec<u8>,
    on_error: OnError,
    payload: &[u8],
    position: &MessagePosition<'_>,
) -> Result<pg_sys::Datum, String> {
    if input.raw_bytes {
        return Ok(text.into_datum().expect("bytes are never NULL"));
    }
    let fail = |kind: ErrorKind, cause: String| -> Result<pg_sys::Datum, String> {
        if on_error != OnError::Error {
            return Err(cause);
        }
        raise_bad_message(invalid_value(kind, position, Some(&input.field.name), &cause, payload))
    };
    if let Err(error) = std::str::from_utf8(text) {
        return fail(ErrorKind::CharacterNotInRepertoire, format!("invalid UTF-8: {error}"));
    }
    if text.contains(&0) {
        return fail(ErrorKind::CharacterNotInRepertoire, "invalid byte 0x00".to_string());
    }
    cstring.clear();
    cstring.extend_from_slice(text);
    cstring.push(0);
    let function = &*input.function as *const pg_sys::FmgrInfo as *mut pg_sys::FmgrInfo;
    let cstring = cstring.as_ptr() as *mut c_char;
    // SAFETY: `function` was set up by fmgr_info for this column's type, and `cstring` is
    // `len` bytes of UTF-8 (checked above), NUL-terminated; both outlive the call.
    let len = text.len();
    // The conversion to the database's encoding raises as the input function does.
    let call = || unsafe { pg_sys::InputFunctionCall(function, encoding::utf8_to_database(cstring, len), input.io_param, input.typmod) };
    // Under on_error 'error' a caught ERROR is raised again at once, and the abort that
    // follows releases whatever the function held.
    let converted = if on_error == OnError::Error || input.self_contained {
        subtransaction::catch_error(call)
    } else {
        // SAFETY: reads a backend global.
        if unsafe { pg_sys::IsInParallelMode() } {
            // Only when another part of the query runs in parallel: such scans themselves
            // are not parallel-safe (converts_in_subtransactions).
            raise(
                FdwError::new(ErrorKind::FeatureNotSupported, "cannot catch a bad value of this type in a parallel query")
                    .with_detail("Bad messages are skipped or collected by catching the type's input errors in a subtransaction, which parallel queries cannot start.")
                    .with_hint("SET max_parallel_workers_per_gather = 0 for this query."),
            );
        }
        subtransaction::attempt(call)
    };
    converted.or_else(|report| fail(reported_kind(report.sql_error_code()), report.message().to_string()))
}
