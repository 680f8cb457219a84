//! INSERT and COPY FROM: every row becomes one Kafka message, and the statement ends
//! only once Kafka acknowledged all of them.
//!
//! Meta columns route the message (partition, key, timestamp, headers); data columns
//! are encoded with the table's format, the codec the scan decodes with. Messages are
//! sent asynchronously as rows come; `EndForeignModify`/`EndForeignInsert` wait for the
//! delivery reports and raise an ERROR if any message was not confirmed delivered.

use std::ffi::{c_int, c_void, CStr, CString};

use pgrx::{pg_guard, pg_sys, FromDatum, PgMemoryContexts};
use rdkafka::message::{Header, OwnedHeaders};

use crate::pg::catalog;
use crate::codec::csv;
use crate::codec::json::{self, JsonField, JsonPath};
use crate::pg::clients::{self, TableProducer};
use crate::pg::schemas::{self, MessagePart};
use crate::pg::compat;
use crate::pg::encoding;
use crate::kafka::{Outgoing, Sender};
use crate::codec::encode::{Cell, ColumnValue, DerivedField, RecordEncoder, SqlType};
use crate::codec::{ColumnType, FieldDef, Format};
use crate::options::layout::ColumnSource;
use crate::options::{MetaColumn, TableOptions};
use crate::error::{capitalized, ErrorKind, FdwError};
use crate::pg::errors::{raise, OrRaise};
use crate::plan;

/// How one data column is written.
struct FieldOutput {
    attribute: usize,
    name: String,
    /// How an Avro or Protobuf row takes the column's value.
    cell_kind: CellKind,
    /// Boxed so the address PostgreSQL may cache in `fn_extra` stays put.
    function: Box<pg_sys::FmgrInfo>,
    json_path: JsonPath,
    json_kind: JsonKind,
    /// A bytea column of a raw table: its bytes are the payload.
    raw_bytes: bool,
}

/// How a column's text goes into a JSON message.
#[derive(Clone, Copy, PartialEq, Eq)]
enum JsonKind {
    String,
    /// Numbers, written bare when their text is a JSON number (not NaN or Infinity).
    Number,
    /// PostgreSQL's `t` and `f`, written as true and false.
    Boolean,
    /// json and jsonb, embedded.
    Json,
}

/// What a column's datum becomes for the encoders of typed formats (see [`Cell`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum CellKind {
    Bool,
    Bytes,
    Timestamp,
    TimestampTz,
    Date,
    Time,
    Json,
    /// Any array, as `array_to_json` gives it.
    Array,
    /// The output function's text of a number.
    Number,
    /// The output function's text.
    Text,
}

/// What an INSERT or COPY keeps between rows. Owned by the query's memory context, so
/// the producer goes back to the pool (or is closed, with messages pending) on ERROR.
struct ModifyState {
    sender: Sender<TableProducer>,
    /// The messages are sent in the PostgreSQL transaction's Kafka transaction.
    transactional: bool,
    table: TableOptions,
    /// Attribute numbers - 1 of the meta columns.
    partition: Option<(usize, ColumnType)>,
    offset: Option<usize>,
    key: Option<(usize, ColumnType)>,
    timestamp: Option<usize>,
    headers: Option<usize>,
    topic_column: Option<usize>,
    fields: Vec<FieldOutput>,
    /// Avro and Protobuf tables: the writer schema's encoder.
    record_encoder: Option<RecordEncoder>,
    /// `key_format` json, avro or protobuf: the key field columns (the key column too).
    key_fields: Vec<FieldOutput>,
    /// `key_format` avro or protobuf: the key schema's encoder.
    key_encoder: Option<RecordEncoder>,
    /// Reset after every row: output functions allocate there. A child of the query's
    /// context, which deletes it (so it is never deleted here).
    row_context: pg_sys::MemoryContext,
    /// The current row's encoded payload; the buffer is reused from row to row.
    payload: Vec<u8>,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn is_foreign_rel_updatable(_rel: pg_sys::Relation) -> c_int {
    1 << pg_sys::CmdType::CMD_INSERT as c_int
}

/// # Safety
/// `rinfo` is the executor's result relation of a Kafka table, at the start of an INSERT or COPY.
unsafe fn begin(rinfo: *mut pg_sys::ResultRelInfo) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let relation = (*rinfo).ri_RelationDesc;
        let definition = catalog::foreign_table(relation);
        let tupdesc = (*relation).rd_att;
        let attrs = compat::attributes(tupdesc);
        let mut state_fields = Vec::new();
        let mut key_fields = Vec::new();
        let (mut partition, mut offset, mut key, mut timestamp, mut headers, mut topic_column) = (None, None, None, None, None, None);
        let output = |attribute: usize, attr: &pg_sys::FormData_pg_attribute, field: &FieldDef, raw_bytes: bool| {
            let mut output_function = pg_sys::Oid::INVALID;
            let mut is_varlena = false;
            pg_sys::getTypeOutputInfo(attr.atttypid, &mut output_function, &mut is_varlena);
            let mut function = Box::new(std::mem::zeroed::<pg_sys::FmgrInfo>());
            pg_sys::fmgr_info(output_function, function.as_mut());
            FieldOutput {
                attribute,
                name: field.name.clone(),
                cell_kind: cell_kind(attr.atttypid),
                function,
                json_path: field.json_path.clone(),
                json_kind: json_kind(attr.atttypid),
                raw_bytes,
            }
        };
        for (attribute, (source, attr)) in definition.layout.columns.iter().zip(attrs).enumerate() {
            match *source {
                ColumnSource::Field(index) => {
                    let field = &definition.layout.fields[index];
                    let raw_bytes = definition.table.format == Format::Raw && field.column_type == ColumnType::Bytea;
                    state_fields.push(output(attribute, attr, field, raw_bytes));
                }
                ColumnSource::KeyField(index) => key_fields.push(output(attribute, attr, &definition.layout.key_fields[index], false)),
                ColumnSource::Meta(MetaColumn::Partition, column_type) => partition = Some((attribute, column_type)),
                ColumnSource::Meta(MetaColumn::Offset, _) => offset = Some(attribute),
                ColumnSource::Meta(MetaColumn::Key, column_type) => key = Some((attribute, column_type)),
                ColumnSource::Meta(MetaColumn::Timestamp, _) => timestamp = Some(attribute),
                ColumnSource::Meta(MetaColumn::Headers, _) => headers = Some(attribute),
                ColumnSource::Meta(MetaColumn::Topic, _) => topic_column = Some(attribute),
                // Junk columns describe messages that were read; an INSERT ignores them.
                ColumnSource::Meta(MetaColumn::Junk | MetaColumn::JunkError, _) | ColumnSource::Dropped => {}
            }
        }
        // Asked before any message goes out: a missing subject or schema fails the statement first.
        let encoder = |part: MessagePart, fields: &[FieldOutput]| {
            let derived: Vec<DerivedField<'_>> = fields
                .iter()
                .map(|field| {
                    let attr = &attrs[field.attribute];
                    DerivedField {
                        name: &field.name,
                        path: &field.json_path,
                        sql_type: sql_type(attr.atttypid, attr.atttypmod),
                        not_null: attr.attnotnull,
                    }
                })
                .collect();
            schemas::record_encoder(&definition, part, &derived)
        };
        let record_encoder = definition.table.format.has_schema().then(|| encoder(MessagePart::Value, &state_fields));
        // Only a table that writes keys needs (or registers) the key subject's schema.
        let key_encoder =
            (definition.table.key_format.has_schema() && !key_fields.is_empty()).then(|| encoder(MessagePart::Key, &key_fields));
        let (settings, producer) = clients::table_producer(&definition);
        let state = ModifyState {
            transactional: matches!(producer, TableProducer::Transactional(_)),
            sender: Sender::new(producer, settings, &definition.table.topic),
            table: definition.table,
            partition,
            offset,
            key,
            timestamp,
            headers,
            topic_column,
            fields: state_fields,
            record_encoder,
            key_fields,
            key_encoder,
            row_context: pg_sys::AllocSetContextCreateInternal(
                pg_sys::CurrentMemoryContext,
                c"kafka_fdw row".as_ptr(),
                pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
                pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
            ),
            payload: Vec::new(),
        };
        (*rinfo).ri_FdwState = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state) as *mut c_void;
    }
}

/// # Safety
/// A catalog lookup: inside a transaction.
unsafe fn cell_kind(type_oid: pg_sys::Oid) -> CellKind {
    // SAFETY: the caller keeps the contract above. A domain is its base type here.
    let type_oid = unsafe { pg_sys::getBaseType(type_oid) };
    match type_oid {
        pg_sys::BOOLOID => CellKind::Bool,
        pg_sys::BYTEAOID => CellKind::Bytes,
        pg_sys::TIMESTAMPOID => CellKind::Timestamp,
        pg_sys::TIMESTAMPTZOID => CellKind::TimestampTz,
        pg_sys::DATEOID => CellKind::Date,
        pg_sys::TIMEOID => CellKind::Time,
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID | pg_sys::FLOAT4OID | pg_sys::FLOAT8OID | pg_sys::NUMERICOID => {
            CellKind::Number
        }
        pg_sys::JSONOID | pg_sys::JSONBOID => CellKind::Json,
        // SAFETY: the caller keeps the contract above.
        _ if unsafe { pg_sys::get_element_type(type_oid) } != pg_sys::InvalidOid => CellKind::Array,
        _ => CellKind::Text,
    }
}

/// A column's type for a derived schema.
///
/// # Safety
/// A catalog lookup: inside a transaction.
unsafe fn sql_type(type_oid: pg_sys::Oid, typmod: i32) -> SqlType {
    // SAFETY: the caller keeps the contract above. A domain is its base type here.
    let type_oid = unsafe { pg_sys::getBaseType(type_oid) };
    match type_oid {
        pg_sys::BOOLOID => SqlType::Boolean,
        pg_sys::INT2OID => SqlType::SmallInt,
        pg_sys::INT4OID => SqlType::Integer,
        pg_sys::INT8OID => SqlType::BigInt,
        pg_sys::FLOAT4OID => SqlType::Real,
        pg_sys::FLOAT8OID => SqlType::Double,
        // numeric(p, s)'s typmod: ((p << 16) | s) + VARHDRSZ; a negative scale has no Avro decimal.
        pg_sys::NUMERICOID => SqlType::Numeric((typmod >= 4).then(|| (((typmod - 4) >> 16) as u32, ((typmod - 4) & 0xffff) as u32)).filter(|(p, s)| s <= p)),
        pg_sys::BYTEAOID => SqlType::Bytea,
        pg_sys::DATEOID => SqlType::Date,
        pg_sys::TIMEOID => SqlType::Time,
        pg_sys::TIMESTAMPOID => SqlType::Timestamp,
        pg_sys::TIMESTAMPTZOID => SqlType::TimestampTz,
        pg_sys::UUIDOID => SqlType::Uuid,
        pg_sys::JSONOID | pg_sys::JSONBOID => SqlType::Json,
        other => {
            // SAFETY: the caller keeps the contract above.
            let element = unsafe { pg_sys::get_element_type(other) };
            if element == pg_sys::InvalidOid {
                SqlType::Text
            } else {
                // SAFETY: as above.
                SqlType::Array(Box::new(unsafe { sql_type(element, -1) }))
            }
        }
    }
}

fn json_kind(type_oid: pg_sys::Oid) -> JsonKind {
    match type_oid {
        pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID | pg_sys::FLOAT4OID | pg_sys::FLOAT8OID | pg_sys::NUMERICOID => {
            JsonKind::Number
        }
        pg_sys::BOOLOID => JsonKind::Boolean,
        pg_sys::JSONOID | pg_sys::JSONBOID => JsonKind::Json,
        _ => JsonKind::String,
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_modify(
    _mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
    _fdw_private: *mut pg_sys::List,
    _subplan_index: c_int,
    eflags: c_int,
) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int == 0 {
            begin(rinfo);
        }
    }
}

/// COPY FROM into a Kafka table (and tuple routing) starts here instead.
#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_insert(_mtstate: *mut pg_sys::ModifyTableState, rinfo: *mut pg_sys::ResultRelInfo) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        begin(rinfo);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn exec_foreign_insert(
    _estate: *mut pg_sys::EState,
    rinfo: *mut pg_sys::ResultRelInfo,
    slot: *mut pg_sys::TupleTableSlot,
    _plan_slot: *mut pg_sys::TupleTableSlot,
) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let state = &mut *((*rinfo).ri_FdwState as *mut ModifyState);
        pg_sys::slot_getallattrs(slot);
        let natts = (*(*slot).tts_tupleDescriptor).natts as usize;
        let values = std::slice::from_raw_parts((*slot).tts_values, natts);
        let nulls = std::slice::from_raw_parts((*slot).tts_isnull, natts);
        let row_context = state.row_context;
        PgMemoryContexts::For(row_context).switch_to(|_| send_row(state, values, nulls));
        pg_sys::MemoryContextReset(row_context);
        slot
    }
}

/// Routes and encodes one row and hands it to the producer.
///
/// # Safety
/// `values` and `nulls` are a tuple's deformed columns, as many as the table has attributes, with datums valid for the call.
unsafe fn send_row(state: &mut ModifyState, values: &[pg_sys::Datum], nulls: &[bool]) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let value = |attribute: usize| (!nulls[attribute]).then(|| values[attribute]);
        if state.offset.and_then(value).is_some() {
            raise(
                FdwError::new(ErrorKind::FeatureNotSupported, "cannot choose the offset of a produced Kafka message")
                    .with_hint("Kafka assigns offsets; leave the offset column out of the INSERT, or NULL."),
            );
        }
        if let Some(topic) = state.topic_column.and_then(value).and_then(|d| String::from_datum(d, false)) {
            if topic != state.table.topic {
                raise(
                    FdwError::new(ErrorKind::FeatureNotSupported, format!("cannot produce to topic \"{topic}\" through a table of topic \"{}\"", state.table.topic))
                        .with_hint("Leave the topic column out of the INSERT, or NULL."),
                );
            }
        }
        let partition = state.partition.and_then(|(attribute, column_type)| {
            let datum = value(attribute)?;
            let number = match column_type {
                ColumnType::SmallInt => i16::from_datum(datum, false).map(i64::from),
                ColumnType::Integer => i32::from_datum(datum, false).map(i64::from),
                _ => i64::from_datum(datum, false),
            }?;
            Some(i32::try_from(number).unwrap_or_else(|_| {
                raise(FdwError::new(ErrorKind::NumericValueOutOfRange, format!("partition {number} is out of range")))
            }))
        });
        let key: Option<Vec<u8>> = match (&state.key_encoder, state.table.key_format) {
            (_, Format::Raw) => state.key.and_then(|(attribute, column_type)| {
                let datum = value(attribute)?;
                match column_type {
                    ColumnType::Bytea => Vec::<u8>::from_datum(datum, false),
                    // A non-NULL value of the key column, a text type.
                    _ => Some(encoding::text_datum_to_utf8(datum)),
                }
            }),
            (encoder, format) => {
                let given: Vec<&FieldOutput> = state.key_fields.iter().filter(|field| !nulls[field.attribute]).collect();
                // The key column (the whole key) or the key field columns, not both.
                let (whole, fields): (Vec<&FieldOutput>, Vec<&FieldOutput>) =
                    state.key_fields.iter().partition(|field| field.json_path == JsonPath::Whole);
                let written: Vec<&FieldOutput> = match (given.iter().any(|f| f.json_path == JsonPath::Whole), given.len()) {
                    (_, 0) => Vec::new(),
                    (true, 1) => whole,
                    (true, _) => raise(
                        FdwError::new(ErrorKind::InvalidParameterValue, "the key column and key field columns both have a value")
                            .with_hint("Give the whole key in the key column, or its fields in the key field columns."),
                    ),
                    (false, _) => fields,
                };
                match (encoder, written.is_empty()) {
                    // No key column has a value: no key.
                    (_, true) => None,
                    (Some(encoder), false) => {
                        let mut key = Vec::new();
                        encode_record(encoder, &written, format, MessagePart::Key, values, nulls, &mut key);
                        Some(key)
                    }
                    (None, false) => Some(encode_json(&written, values, nulls)),
                }
            }
        };
        // Kafka timestamps are whole milliseconds: sub-millisecond digits are dropped.
        let timestamp = state.timestamp.and_then(value).map(|datum| plan::millisecond_bounds(datum.value() as i64).0);
        // The headers column is jsonb (checked at CREATE) and the value not NULL.
        let headers = state.headers.and_then(value).map(|datum| headers_of(&encoding::jsonb_value(datum)));

        let payload = match &state.record_encoder {
            Some(encoder) => {
                let fields: Vec<&FieldOutput> = state.fields.iter().collect();
                Some(encode_record(encoder, &fields, state.table.format, MessagePart::Value, values, nulls, &mut state.payload))
            }
            None => encode_payload(&state.fields, &state.table, values, nulls, &mut state.payload),
        };
        let message = Outgoing { partition, key: key.as_deref(), payload: payload.as_deref(), timestamp, headers };
        state.sender.send(message).or_raise();
    }
}

/// Kafka headers from a jsonb object: strings as their text, null as no value, other
/// values as their JSON text.
fn headers_of(json: &serde_json::Value) -> OwnedHeaders {
    let serde_json::Value::Object(object) = json else {
        raise(
            FdwError::new(ErrorKind::InvalidParameterValue, "the headers column must hold a JSON object")
                .with_detail(format!("Got {json}.")),
        )
    };
    let mut headers = OwnedHeaders::new_with_capacity(object.len());
    for (name, value) in object {
        let text = match value {
            serde_json::Value::Null => None,
            serde_json::Value::String(text) => Some(text.clone()),
            other => Some(other.to_string()),
        };
        headers = headers.insert(Header { key: name, value: text.as_deref() });
    }
    headers
}

/// The payload of a row in the table's format, encoded into `buffer` (reused from row to
/// row); a raw table's payload is its column's own bytes, and `None` (a tombstone) for
/// its NULL.
///
/// # Safety
/// As for [`send_row`].
unsafe fn encode_payload<'a>(
    fields: &[FieldOutput],
    table: &TableOptions,
    values: &[pg_sys::Datum],
    nulls: &[bool],
    buffer: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    let fields: Vec<&FieldOutput> = fields.iter().collect();
    // SAFETY: the caller keeps the contract above.
    let texts = unsafe { output_texts(&fields, values, nulls) };
    buffer.clear();
    match table.format {
        Format::Csv => csv::encode(&texts, &table.csv, buffer),
        Format::Raw => return texts[0],
        Format::Avro | Format::Protobuf => unreachable!("typed formats go through encode_record"),
        Format::Json => *buffer = json_message(&fields, &texts),
    }
    Some(buffer.as_slice())
}

/// The columns' output texts (a raw bytea column's own bytes); `None` for NULL.
///
/// # Safety
/// As for [`send_row`].
unsafe fn output_texts<'a>(fields: &[&FieldOutput], values: &[pg_sys::Datum], nulls: &[bool]) -> Vec<Option<&'a [u8]>> {
    fields
        .iter()
        .map(|field| {
            if nulls[field.attribute] {
                return None;
            }
            let datum = values[field.attribute];
            // SAFETY: the caller keeps the contract above; the text lives in the row's context.
            unsafe {
                if field.raw_bytes {
                    return <&[u8]>::from_datum(datum, false);
                }
                let text = pg_sys::OutputFunctionCall(field.function.as_ref() as *const _ as *mut _, datum);
                Some(encoding::database_to_utf8(CStr::from_ptr(text)))
            }
        })
        .collect()
}

/// A JSON message (or key) of the columns' texts, each at its path.
fn json_message(fields: &[&FieldOutput], texts: &[Option<&[u8]>]) -> Vec<u8> {
    let fields: Vec<(&JsonPath, JsonField<'_>)> = fields
        .iter()
        .zip(texts)
        .map(|(field, text)| {
            // Output texts are UTF-8 once converted; a raw bytea field's bytes may not be.
            let text = text.map(|bytes| {
                std::str::from_utf8(bytes).unwrap_or_else(|error| {
                    raise(
                        FdwError::new(ErrorKind::CharacterNotInRepertoire, format!("column \"{}\" holds bytes that are not UTF-8", field.name))
                            .with_detail(format!("{}. A JSON message holds text only.", capitalized(&error.to_string()))),
                    )
                })
            });
            (&field.json_path, json_field(field.json_kind, text))
        })
        .collect();
    json::encode(&fields).unwrap_or_else(|error| {
        raise(FdwError::new(ErrorKind::InvalidTextRepresentation, format!("could not encode a JSON message: {error}")))
    })
}

/// A JSON key of the key field columns.
///
/// # Safety
/// As for [`send_row`].
unsafe fn encode_json(fields: &[&FieldOutput], values: &[pg_sys::Datum], nulls: &[bool]) -> Vec<u8> {
    // SAFETY: the caller keeps the contract above.
    json_message(fields, &unsafe { output_texts(fields, values, nulls) })
}

/// The payload (or key) of a row of an Avro or Protobuf table, encoded into `buffer`.
///
/// # Safety
/// As for [`send_row`].
unsafe fn encode_record<'a>(
    encoder: &RecordEncoder,
    fields: &[&FieldOutput],
    format: Format,
    part: MessagePart,
    values: &[pg_sys::Datum],
    nulls: &[bool],
    buffer: &'a mut Vec<u8>,
) -> &'a [u8] {
    // SAFETY: the caller keeps the contract above.
    let columns: Vec<ColumnValue<'_>> = fields
        .iter()
        .map(|field| ColumnValue {
            name: &field.name,
            path: &field.json_path,
            cell: if nulls[field.attribute] { Cell::Null } else { unsafe { cell(field, values[field.attribute]) } },
        })
        .collect();
    encoder.encode(&columns, buffer).unwrap_or_else(|why| {
        let record = if format == Format::Avro { "an Avro record" } else { "a Protobuf message" };
        let what = if part == MessagePart::Key { "key" } else { "row" };
        raise(
            FdwError::new(ErrorKind::InvalidTextRepresentation, format!("could not encode the {what} as {record}"))
                .with_detail(format!("{}.", capitalized(&why))),
        )
    });
    buffer.as_slice()
}

/// A column's value for the typed encoders; infinite dates and timestamps as their
/// text (which no Avro or Protobuf type takes).
///
/// # Safety
/// `datum` is a non-NULL value of the field's column, valid for the row.
unsafe fn cell<'a>(field: &FieldOutput, datum: pg_sys::Datum) -> Cell<'a> {
    /// From PostgreSQL's epoch (2000-01-01) to the Unix epoch.
    const POSTGRES_EPOCH_DAYS: i32 = (plan::POSTGRES_EPOCH_UNIX_MICROS / 86_400_000_000) as i32;
    let output = || {
        // SAFETY: the caller keeps the contract above; the text lives in the row's context.
        let text = unsafe { CStr::from_ptr(pg_sys::OutputFunctionCall(field.function.as_ref() as *const _ as *mut _, datum)) };
        String::from_utf8_lossy(encoding::database_to_utf8(text))
    };
    let json = |text: &str| serde_json::from_str(text).map(Cell::Json).unwrap_or_else(|_| Cell::Text(text.to_string().into()));
    match field.cell_kind {
        CellKind::Bool => Cell::Bool(datum.value() != 0),
        // SAFETY: a bytea datum, as the caller promises.
        CellKind::Bytes => Cell::Bytes(unsafe { <&[u8]>::from_datum(datum, false) }.unwrap_or_default()),
        CellKind::Timestamp | CellKind::TimestampTz => {
            // The other reading, as PostgreSQL casts it in the session's time zone
            // (fmgroids name functions by result then argument: timestamp(timestamptz)).
            let (cast, timestamptz) = match field.cell_kind {
                CellKind::TimestampTz => (pg_sys::F_TIMESTAMP_TIMESTAMPTZ, true),
                _ => (pg_sys::F_TIMESTAMPTZ_TIMESTAMP, false),
            };
            let unix = |micros: i64| micros.checked_add(plan::POSTGRES_EPOCH_UNIX_MICROS);
            let own = datum.value() as i64;
            match own {
                i64::MIN | i64::MAX => Cell::Text(output()),
                _ => {
                    // SAFETY: both casts take and return a timestamp datum (by value); finite
                    // ones never fail but far beyond the types' range, which raises.
                    let other = unsafe { pg_sys::OidFunctionCall1Coll(pg_sys::Oid::from(cast), pg_sys::InvalidOid, datum) }.value() as i64;
                    let (utc, local) = if timestamptz { (own, other) } else { (other, own) };
                    match (unix(utc), unix(local)) {
                        (Some(utc), Some(local)) => Cell::Timestamp { utc, local },
                        _ => Cell::Text(output()),
                    }
                }
            }
        }
        CellKind::Date => match datum.value() as i32 {
            i32::MIN | i32::MAX => Cell::Text(output()),
            days => Cell::Date(days + POSTGRES_EPOCH_DAYS),
        },
        CellKind::Time => Cell::Time(datum.value() as i64),
        CellKind::Json => json(&output()),
        CellKind::Array => {
            // SAFETY: array_to_json(anyarray) takes any array datum; its json result is a text datum.
            let array_json = unsafe {
                pg_sys::OidFunctionCall1Coll(pg_sys::Oid::from(pg_sys::F_ARRAY_TO_JSON_ANYARRAY), pg_sys::InvalidOid, datum)
            };
            // SAFETY: as above.
            json(&String::from_utf8_lossy(&unsafe { encoding::text_datum_to_utf8(array_json) }))
        }
        CellKind::Number => Cell::Number(output()),
        CellKind::Text => Cell::Text(output()),
    }
}

fn json_field(kind: JsonKind, text: Option<&str>) -> JsonField<'_> {
    match (kind, text) {
        (_, None) => JsonField::Null,
        // NaN and Infinity are numbers to PostgreSQL but not JSON literals.
        (JsonKind::Number, Some(text)) if serde_json::from_str::<serde_json::Number>(text).is_ok() => JsonField::Literal(text),
        (JsonKind::Boolean, Some("t")) => JsonField::Literal("true"),
        (JsonKind::Boolean, Some("f")) => JsonField::Literal("false"),
        (JsonKind::Json, Some(text)) => JsonField::Json(text),
        (_, Some(text)) => JsonField::Text(text),
    }
}

/// Waits until Kafka acknowledged every message of the statement, or raises.
///
/// # Safety
/// `rinfo` is a result relation that [`begin`] set up (or one it never reached: fdw_state NULL).
unsafe fn finish(rinfo: *mut pg_sys::ResultRelInfo) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let state = (*rinfo).ri_FdwState as *mut ModifyState;
        if !state.is_null() {
            let transactional = (*state).transactional;
            (*state)
                .sender
                .finish()
                .map_err(|error| {
                    if transactional {
                        error.with_hint("The Kafka transaction aborts with the PostgreSQL transaction: read_committed readers see none of its messages.")
                    } else {
                        error
                    }
                })
                .or_raise();
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_modify(_estate: *mut pg_sys::EState, rinfo: *mut pg_sys::ResultRelInfo) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        finish(rinfo);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_insert(_estate: *mut pg_sys::EState, rinfo: *mut pg_sys::ResultRelInfo) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        finish(rinfo);
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn explain_foreign_modify(
    _mtstate: *mut pg_sys::ModifyTableState,
    rinfo: *mut pg_sys::ResultRelInfo,
    _fdw_private: *mut pg_sys::List,
    _subplan_index: c_int,
    es: *mut pg_sys::ExplainState,
) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let definition = catalog::foreign_table((*rinfo).ri_RelationDesc);
        let topic = CString::new(definition.table.topic).unwrap_or_default();
        pg_sys::ExplainPropertyText(c"Kafka Topic".as_ptr(), topic.as_ptr(), es);
    }
}
