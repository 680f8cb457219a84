//! Turning one Kafka message into one row of a foreign table's tuple slot.
//!
//! Each data column's text goes through the column type's input function, as `COPY`
//! does, so every type PostgreSQL can read from text works. Only the columns the query
//! uses are decoded: `count(*)` parses nothing.

use std::ffi::c_char;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::{IntoDatum, JsonB, PgSqlErrorCode, PgTryBuilder};
use rdkafka::message::{BorrowedHeaders, BorrowedMessage, Headers};
use rdkafka::Message;

use crate::codec::csv::{CsvDecoder, CsvOptions};
use crate::options::{ColumnSource, ColumnType, MetaColumn};
use crate::plan;
use crate::pgerror::raise_with;

/// How one attribute of the tuple gets its value.
enum Fill {
    /// Not needed by the query, or dropped: NULL.
    Null,
    /// A message property, into a column of that type.
    Meta(MetaColumn, ColumnType),
    Field(FieldInput),
}

/// A data column and its type's input function.
struct FieldInput {
    index: usize,
    name: String,
    /// Boxed so the address PostgreSQL may cache in `fn_extra` stays put.
    function: Box<pg_sys::FmgrInfo>,
    io_param: pg_sys::Oid,
    typmod: i32,
}

pub struct RowBuilder {
    fills: Vec<Fill>,
    decoder: CsvDecoder,
    decodes_payload: bool,
    /// NUL-terminated copy of the field being converted, reused across rows.
    cstring: Vec<u8>,
    topic: String,
}

/// Where a message came from, for error messages.
struct MessagePosition<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

impl MessagePosition<'_> {
    fn describe(&self) -> String {
        format!("topic \"{}\", partition {}, offset {}", self.topic, self.partition, self.offset)
    }
}

impl RowBuilder {
    /// # Safety
    /// `tupdesc` must describe the relation whose `columns` layout is given, and
    /// `needed[i]` says whether attribute `i + 1` is used by the query.
    pub unsafe fn new(tupdesc: pg_sys::TupleDesc, columns: &[ColumnSource], needed: &[bool], topic: &str) -> Self {
        let attrs = (*tupdesc).attrs.as_slice((*tupdesc).natts as usize);
        let fills = columns
            .iter()
            .zip(attrs)
            .zip(needed)
            .map(|((source, attr), &needed)| match source {
                _ if !needed => Fill::Null,
                ColumnSource::Dropped => Fill::Null,
                ColumnSource::Meta(meta, column_type) => Fill::Meta(*meta, *column_type),
                ColumnSource::Field(index) => {
                    let mut input_function = pg_sys::Oid::INVALID;
                    let mut io_param = pg_sys::Oid::INVALID;
                    pg_sys::getTypeInputInfo(attr.atttypid, &mut input_function, &mut io_param);
                    let mut function = Box::new(std::mem::zeroed::<pg_sys::FmgrInfo>());
                    pg_sys::fmgr_info(input_function, function.as_mut());
                    Fill::Field(FieldInput {
                        index: *index,
                        name: std::ffi::CStr::from_ptr(attr.attname.data.as_ptr()).to_string_lossy().into_owned(),
                        function,
                        io_param,
                        typmod: attr.atttypmod,
                    })
                }
            })
            .collect::<Vec<_>>();
        let decodes_payload = fills.iter().any(|fill| matches!(fill, Fill::Field(_)));
        RowBuilder {
            fills,
            decoder: CsvDecoder::new(CsvOptions::default()),
            decodes_payload,
            cstring: Vec::new(),
            topic: topic.to_string(),
        }
    }

    /// Fills `slot`'s values and nulls from `message` (the caller stores the tuple).
    ///
    /// # Safety
    /// `slot` must be a cleared slot of the relation this builder was made for, and the
    /// current memory context must be the per-tuple one.
    pub unsafe fn fill(&mut self, slot: *mut pg_sys::TupleTableSlot, message: &BorrowedMessage<'_>) {
        let natts = self.fills.len();
        let values = std::slice::from_raw_parts_mut((*slot).tts_values, natts);
        let nulls = std::slice::from_raw_parts_mut((*slot).tts_isnull, natts);
        values.fill(pg_sys::Datum::from(0));
        nulls.fill(true);
        let position = MessagePosition { topic: &self.topic, partition: message.partition(), offset: message.offset() };
        for (i, fill) in self.fills.iter().enumerate() {
            if let Fill::Meta(meta, column_type) = fill {
                if let Some(value) = meta_value(*meta, *column_type, message, &position) {
                    values[i] = value;
                    nulls[i] = false;
                }
            }
        }
        if !self.decodes_payload {
            return;
        }
        let Some(payload) = message.payload() else {
            return; // a tombstone: every data column is NULL
        };
        if let Err(error) = std::str::from_utf8(payload) {
            raise_with(
                PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                format!("invalid UTF-8 in Kafka message at {}", position.describe()),
                Some(format!("{}. Message: {}", capitalized(&error.to_string()), excerpt(payload))),
                None,
            );
        }
        let record = match self.decoder.decode(payload) {
            Ok(record) => record,
            Err(error) => raise_with(
                PgSqlErrorCode::ERRCODE_BAD_COPY_FILE_FORMAT,
                format!("malformed CSV in Kafka message at {}", position.describe()),
                Some(format!("{}. Message: {}", capitalized(&error.to_string()), excerpt(payload))),
                None,
            ),
        };
        for (i, fill) in self.fills.iter().enumerate() {
            let Fill::Field(input) = fill else { continue };
            let Some(text) = record.field(input.index) else { continue };
            if text.contains(&0) {
                raise_with(
                    PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
                    format!("invalid byte 0x00 in Kafka message at {}", position.describe()),
                    Some(format!("Column \"{}\".", input.name)),
                    None,
                );
            }
            self.cstring.clear();
            self.cstring.extend_from_slice(text);
            self.cstring.push(0);
            values[i] = convert(input, &self.cstring, payload, &position);
            nulls[i] = false;
        }
    }
}

/// The value of a meta column for `message`; `None` for NULL (no key, no timestamp, no
/// headers).
fn meta_value(
    meta: MetaColumn,
    column_type: ColumnType,
    message: &BorrowedMessage<'_>,
    position: &MessagePosition<'_>,
) -> Option<pg_sys::Datum> {
    match (meta, column_type) {
        (MetaColumn::Partition, ColumnType::SmallInt) => (position.partition as i16).into_datum(),
        (MetaColumn::Partition, ColumnType::Integer) => position.partition.into_datum(),
        (MetaColumn::Partition, _) => (position.partition as i64).into_datum(),
        (MetaColumn::Offset, _) => position.offset.into_datum(),
        (MetaColumn::Topic, _) => position.topic.into_datum(),
        (MetaColumn::Key, ColumnType::Bytea) => message.key()?.into_datum(),
        (MetaColumn::Key, _) => text(message.key()?, "key", position).into_datum(),
        (MetaColumn::Timestamp, _) => {
            let unix_ms = message.timestamp().to_millis()?;
            let postgres_micros = unix_ms.checked_mul(1000)?.checked_sub(plan::POSTGRES_EPOCH_UNIX_MICROS)?;
            // timestamptz is an i64 of microseconds since 2000-01-01, passed by value.
            Some(pg_sys::Datum::from(postgres_micros))
        }
        (MetaColumn::Headers, _) => JsonB(headers_json(message.headers()?)).into_datum(),
    }
}

/// Headers as a JSON object of key to value. Values that are UTF-8 become strings,
/// others bytea's hex text (`\x…`), absent ones null; with a repeated key the last wins,
/// as in any jsonb object.
fn headers_json(headers: &BorrowedHeaders) -> serde_json::Value {
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

/// `bytes` as text, or an ERROR naming the message when they are not UTF-8.
fn text<'a>(bytes: &'a [u8], what: &str, position: &MessagePosition<'_>) -> &'a str {
    std::str::from_utf8(bytes).unwrap_or_else(|error| {
        raise_with(
            PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
            format!("invalid UTF-8 in the {what} of Kafka message at {}", position.describe()),
            Some(format!("{}. Declare the column bytea to read any bytes.", capitalized(&error.to_string()))),
            None,
        )
    })
}

/// Runs the column type's input function on `cstring`, re-raising a failure with the
/// message's position and the column in the error.
unsafe fn convert(input: &FieldInput, cstring: &[u8], payload: &[u8], position: &MessagePosition<'_>) -> pg_sys::Datum {
    let function = &*input.function as *const pg_sys::FmgrInfo as *mut pg_sys::FmgrInfo;
    PgTryBuilder::new(|| unsafe {
        pg_sys::InputFunctionCall(function, cstring.as_ptr() as *mut c_char, input.io_param, input.typmod)
    })
    .catch_others(|caught| {
        let (code, cause) = match &caught {
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => {
                (report.sql_error_code(), report.message().to_string())
            }
            CaughtError::RustPanic { .. } => caught.rethrow(),
        };
        raise_with(
            code,
            format!("invalid value in Kafka message at {}", position.describe()),
            Some(format!("Column \"{}\": {cause}. Message: {}", input.name, excerpt(payload))),
            None,
        )
    })
    .execute()
}

/// PostgreSQL's style: a DETAIL is a sentence.
fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The start of a payload, lossily decoded, for error details.
fn excerpt(bytes: &[u8]) -> String {
    const LIMIT: usize = 60;
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(LIMIT)]);
    if bytes.len() > LIMIT {
        format!("\"{text}…\"")
    } else {
        format!("\"{text}\"")
    }
}
