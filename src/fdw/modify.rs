//! INSERT and COPY FROM: every row becomes one Kafka message, and the statement ends
//! only once Kafka acknowledged all of them.
//!
//! Meta columns route the message (partition, key, timestamp, headers); data columns
//! are encoded with the table's format, the codec the scan decodes with (`outgoing`).
//! Messages are sent asynchronously as rows come; `EndForeignModify`/`EndForeignInsert`
//! wait for the delivery reports and raise an ERROR if any message was not confirmed
//! delivered.

use std::ffi::{c_int, c_void, CString};

use pgrx::{pg_guard, pg_sys, FromDatum, PgMemoryContexts};

use crate::codec::encode::{DerivedField, RecordEncoder};
use crate::codec::json::JsonPath;
use crate::codec::{ColumnType, FieldDef, Format};
use crate::error::{ErrorKind, FdwError};
use crate::kafka::{Counts, Outgoing, Sender};
use crate::options::layout::ColumnSource;
use crate::options::{MetaColumn, TableOptions};
use crate::pg::catalog;
use crate::pg::clients::{self, TableProducer};
use crate::pg::compat;
use crate::pg::encoding;
use crate::pg::errors::{raise, OrRaise};
use crate::pg::schemas::{self, MessagePart};
use crate::pg::stats;
use crate::plan;
use crate::plan::stats::TableCounters;

use super::outgoing::{self, FieldOutput};

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
            FieldOutput::new(attribute, attr, field, raw_bytes)
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
                        sql_type: outgoing::sql_type(attr.atttypid, attr.atttypmod),
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
        let transactional = matches!(producer, TableProducer::Transactional(_));
        let sender = match definition.table.topics.single() {
            Some(topic) => Sender::new(producer, settings, topic),
            None if topic_column.is_some() => Sender::routed(producer, settings, definition.table.topics.describe()),
            None => raise(
                FdwError::new(ErrorKind::FeatureNotSupported, "INSERT into a foreign table over several Kafka topics needs its topic column")
                    .with_detail(format!(
                        "Foreign table {} reads {}; each row goes to the topic its topic column names.",
                        catalog::relation_name(definition.relid),
                        definition.table.topics.describe()
                    ))
                    .with_hint("Add a column with option topic 'true' to the table."),
            ),
        };
        let state = ModifyState {
            transactional,
            sender,
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
        let topic = state.topic_column.and_then(value).and_then(|d| String::from_datum(d, false));
        let routed = state.table.topics.single().is_none();
        match &topic {
            Some(topic) if !state.table.topics.includes(topic) => raise(
                FdwError::new(
                    ErrorKind::FeatureNotSupported,
                    format!("cannot produce to topic \"{topic}\" through a table of {}", state.table.topics.describe()),
                )
                .with_hint(if routed { "Give each row one of the table's topics." } else { "Leave the topic column out of the INSERT, or NULL." }),
            ),
            None if routed => raise(
                FdwError::new(ErrorKind::NotNullViolation, "a row inserted into a foreign table over several Kafka topics needs its topic")
                    .with_detail(format!("The table reads {}; the topic column says which one a row goes to.", state.table.topics.describe())),
            ),
            _ => {}
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
                        outgoing::encode_record(encoder, &written, format, MessagePart::Key, values, nulls, &mut key);
                        Some(key)
                    }
                    (None, false) => Some(outgoing::encode_json(&written, values, nulls)),
                }
            }
        };
        // Kafka timestamps are whole milliseconds: sub-millisecond digits are dropped.
        let timestamp = state.timestamp.and_then(value).map(|datum| plan::millisecond_bounds(datum.value() as i64).0);
        // The headers column is jsonb (checked at CREATE) and the value not NULL.
        let headers = state.headers.and_then(value).map(|datum| outgoing::headers_of(&encoding::jsonb_value(datum)));

        let payload = match &state.record_encoder {
            Some(encoder) => {
                let fields: Vec<&FieldOutput> = state.fields.iter().collect();
                Some(outgoing::encode_record(encoder, &fields, state.table.format, MessagePart::Value, values, nulls, &mut state.payload))
            }
            None => outgoing::encode_payload(&state.fields, &state.table, values, nulls, &mut state.payload),
        };
        let message = Outgoing { topic: topic.as_deref().filter(|_| routed), partition, key: key.as_deref(), payload, timestamp, headers };
        state.sender.send(message).or_raise();
    }
}

/// Adds a statement's messages and their outcomes to the table's statistics (those
/// still in flight when it failed count as unknown: they may be in the topic).
fn record_statement(relation: pg_sys::Oid, counts: Counts) {
    let counters = TableCounters {
        inserts: 1,
        messages_sent: counts.sent,
        messages_delivered: counts.delivered,
        messages_failed: counts.failed,
        messages_unknown: counts.unknown + counts.in_flight(),
        ..TableCounters::default()
    };
    stats::record(relation, &counters);
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
            let finished = (*state).sender.finish();
            record_statement((*(*rinfo).ri_RelationDesc).rd_id, (*state).sender.counts());
            finished
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
        let (label, value) = definition.table.topics.explained();
        let label = CString::new(label).unwrap_or_default();
        let value = CString::new(value).unwrap_or_default();
        pg_sys::ExplainPropertyText(label.as_ptr(), value.as_ptr(), es);
    }
}
