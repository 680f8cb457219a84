//! A row's columns as the parts of a Kafka message (INSERT and COPY, `modify`): how each
//! data column is written (its output function, its kind for JSON and for the typed
//! formats, its type for a derived schema), and the payload, key and headers encoded in
//! the table's format with the codecs the scan decodes with.

use std::ffi::CStr;

use pgrx::{pg_sys, FromDatum};
use rdkafka::message::{Header, OwnedHeaders};

use crate::codec::csv;
use crate::codec::encode::{Cell, ColumnValue, RecordEncoder, SqlType};
use crate::codec::json::{self, JsonField, JsonPath};
use crate::codec::{FieldDef, Format};
use crate::error::{capitalized, ErrorKind, FdwError};
use crate::options::TableOptions;
use crate::pg::encoding;
use crate::pg::errors::{codec_error, raise};
use crate::pg::schemas::MessagePart;
use crate::plan;

/// How one data column is written.
pub struct FieldOutput {
    pub attribute: usize,
    pub name: String,
    /// How an Avro or Protobuf row takes the column's value.
    cell_kind: CellKind,
    /// Boxed so the address PostgreSQL may cache in `fn_extra` stays put.
    function: Box<pg_sys::FmgrInfo>,
    pub json_path: JsonPath,
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

impl FieldOutput {
    /// How column `attribute` (described by `attr`, holding `field`) is written; a raw
    /// table's bytea column is its bytes.
    ///
    /// # Safety
    /// Catalog lookups: inside a transaction.
    pub unsafe fn new(attribute: usize, attr: &pg_sys::FormData_pg_attribute, field: &FieldDef, raw_bytes: bool) -> Self {
        // SAFETY: the caller keeps the contract above.
        unsafe {
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
        }
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
pub unsafe fn sql_type(type_oid: pg_sys::Oid, typmod: i32) -> SqlType {
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

/// Kafka headers from a jsonb object: strings as their text, null as no value, other
/// values as their JSON text.
pub fn headers_of(json: &serde_json::Value) -> OwnedHeaders {
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
/// `values` and `nulls` are a tuple's deformed columns, as many as the table has
/// attributes, with datums valid for the call.
pub unsafe fn encode_payload<'a>(
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
/// `values` and `nulls` are a tuple's deformed columns, as many as the table has
/// attributes, with datums valid for the call.
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
    json::encode(&fields).unwrap_or_else(|error| raise(codec_error("could not encode a JSON message", error)))
}

/// A JSON key of the key field columns.
///
/// # Safety
/// `values` and `nulls` are a tuple's deformed columns, as many as the table has
/// attributes, with datums valid for the call.
pub unsafe fn encode_json(fields: &[&FieldOutput], values: &[pg_sys::Datum], nulls: &[bool]) -> Vec<u8> {
    // SAFETY: the caller keeps the contract above.
    json_message(fields, &unsafe { output_texts(fields, values, nulls) })
}

/// The payload (or key) of a row of an Avro or Protobuf table, encoded into `buffer`.
///
/// # Safety
/// `values` and `nulls` are a tuple's deformed columns, as many as the table has
/// attributes, with datums valid for the call.
pub unsafe fn encode_record<'a>(
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
        raise(codec_error(format!("could not encode the {what} as {record}"), why))
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
