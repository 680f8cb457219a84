//! IMPORT FOREIGN SCHEMA: one foreign table per topic, with the meta columns partition,
//! offset, key and timestamp, and value columns inferred from a sample of each topic's
//! newest messages — or, on a server with a Schema Registry, from the latest schema of
//! the topic's value subject (`<topic>-value`, Confluent's TopicNameStrategy), whose
//! type (Avro, Protobuf) is then the table's format unless the import names one; the key
//! subject (`<topic>-key`) likewise gives `key_format` and key field columns.

use std::ffi::{CStr, CString};

use pgrx::{pg_guard, pg_sys, PgList};

use crate::pg::catalog;
use crate::pg::clients::PooledConsumer;
use crate::error::{ErrorKind, FdwError};
use crate::codec::infer::{self, SubjectColumns};
use crate::registry::{self, RegistrySettings};
use crate::kafka::{self, RangeReader, ReadRange};
use crate::codec::Format;
use crate::options;
use crate::pg::errors::{raise, OrRaise};
use crate::pg::clients::TopicClient;
use crate::pg::schemas;

/// Messages sampled per topic unless the option `sample_size` says otherwise.
const DEFAULT_SAMPLE_SIZE: i64 = 100;

/// Names of the meta columns every imported table has.
const META_COLUMNS: [&str; 4] = ["partition", "offset", "key", "timestamp"];

/// A sampled message: its key and payload.
struct Sample {
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

#[pg_guard]
pub unsafe extern "C-unwind" fn import_foreign_schema(
    stmt: *mut pg_sys::ImportForeignSchemaStmt,
    server_oid: pg_sys::Oid,
) -> *mut pg_sys::List {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let server = pg_sys::GetForeignServer(server_oid);
        let server_options = options::parse_server(&catalog::def_elems((*server).options)).or_raise();
        let server_name = CStr::from_ptr((*server).servername).to_string_lossy().into_owned();

        // The import's own options; any other table option is copied to every table.
        let mut sample_size = DEFAULT_SAMPLE_SIZE;
        let mut table_options: Vec<(String, String)> = Vec::new();
        for (name, value) in catalog::def_elems((*stmt).options) {
            match name.as_str() {
                "sample_size" => {
                    sample_size = value.parse().ok().filter(|n| *n >= 0).unwrap_or_else(|| {
                        raise(FdwError::new(ErrorKind::InvalidParameterValue, "\"sample_size\" requires a non-negative integer value"))
                    })
                }
                "topic" | "topics" | "topic_pattern" => raise(FdwError::new(
                    ErrorKind::InvalidOptionName,
                    format!("option \"{name}\" is set per table by IMPORT FOREIGN SCHEMA"),
                )),
                _ => table_options.push((name, value)),
            }
        }
        let mut with_topic = table_options.clone();
        with_topic.push(("topic".into(), "checked".into()));
        let parsed = options::parse_table(&with_topic).or_raise();

        let listed: Vec<String> = PgList::<pg_sys::RangeVar>::from_pg((*stmt).table_list)
            .iter_ptr()
            .map(|range_var| CStr::from_ptr((*range_var).relname).to_string_lossy().into_owned())
            .collect();
        let wanted = |topic: &str| match (*stmt).list_type {
            pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_LIMIT_TO => listed.iter().any(|name| name == topic),
            pg_sys::ImportForeignSchemaType::FDW_IMPORT_SCHEMA_EXCEPT => !listed.iter().any(|name| name == topic),
            _ => true,
        };

        // A format the import names wins; else the registry's subjects say, if there is one.
        let named = |option: &str| table_options.iter().any(|(name, _)| name == option);
        let (named_format, named_key_format) = (named("format"), named("key_format"));
        let registry = (!server_options.schema_registry.is_empty()).then(|| schemas::registry_settings(server_oid, &server_options).0);
        let ask = |wanted: bool, subject: String| registry.as_ref().filter(|_| wanted).and_then(|settings| subject_columns(settings, &subject));
        let client = TopicClient::for_server(server_oid, &server_options);
        let topics = kafka::all_topics(client.consumer.client(), &client.settings).or_raise();
        let mut reader = client.into_reader().or_raise();

        let mut commands = PgList::<std::ffi::c_char>::new();
        for (topic, partitions) in topics {
            if topic.starts_with("__") || !wanted(&topic) {
                continue;
            }
            let samples = sample(&mut reader, &topic, &partitions, sample_size);
            let value = ask(!named_format || parsed.format.has_schema(), format!("{topic}-value"));
            let key = ask(!named_key_format || parsed.key_format.has_schema(), format!("{topic}-key"));
            let format = if named_format { parsed.format } else { value.as_ref().map_or(parsed.format, |s| s.format) };
            let key_format = if named_key_format { parsed.key_format } else { key.as_ref().map_or(parsed.key_format, |s| s.format) };
            // A subject of another format than the table's says nothing about its messages.
            let value = value.filter(|s| s.format == format);
            let key = key.filter(|s| s.format == key_format);
            let columns = columns_for(format, &samples, &parsed.csv, value, key);
            let mut options_sql = vec![format!("topic {}", literal(&topic))];
            if !named_format && format != parsed.format {
                options_sql.push(format!("format {}", literal(format.name())));
            }
            if !named_key_format && key_format != parsed.key_format {
                options_sql.push(format!("key_format {}", literal(key_format.name())));
            }
            options_sql.extend(table_options.iter().map(|(name, value)| format!("{} {}", identifier(name), literal(value))));
            let command = format!(
                "CREATE FOREIGN TABLE {} ({}) SERVER {} OPTIONS ({})",
                identifier(&topic),
                columns.join(", "),
                identifier(&server_name),
                options_sql.join(", ")
            );
            let command = CString::new(command).expect("no NUL in SQL");
            commands.push(pg_sys::pstrdup(command.as_ptr()));
        }
        commands.into_pg()
    }
}

/// About `size` of the newest messages of a topic, spread over its partitions.
fn sample(reader: &mut RangeReader<PooledConsumer>, topic: &str, partitions: &[i32], size: i64) -> Vec<Sample> {
    let marks = kafka::watermarks(reader.consumer(), reader.settings(), topic, partitions).or_raise();
    let filled = marks.iter().filter(|w| w.high > w.low).count().max(1) as i64;
    let per_partition = (size + filled - 1) / filled;
    let ranges: Vec<ReadRange> = marks
        .iter()
        .map(|w| ReadRange { partition: w.partition, start: w.low.max(w.high - per_partition), end: w.high })
        .collect();
    reader.retarget(topic, &ranges).or_raise();
    let mut samples = Vec::new();
    while let Some(message) = reader.next_message().or_raise() {
        use rdkafka::Message;
        samples.push(Sample {
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec).unwrap_or_default(),
        });
    }
    samples
}

/// The columns of the latest schema of `subject`, if the registry has one it can read
/// (Avro, Protobuf). A registry that does not answer is an ERROR: guessing the format
/// instead would make a table that misreads every message.
fn subject_columns(settings: &RegistrySettings, subject: &str) -> Option<SubjectColumns> {
    let latest = schemas::registry_latest(settings, subject)?;
    let references = match latest.schema_type.as_str() {
        "PROTOBUF" => schemas::or_not_found(registry::referenced_schemas(settings, &latest)).ok()?,
        _ => Vec::new(),
    };
    infer::subject_columns(&latest.schema_type, &latest.schema, &references)
}

/// Column definitions: the meta columns, then the value columns of the format (from
/// the value subject's schema when there is one), then the key's fields (from the key
/// subject's schema), as `key_<field>`, unless a value column has that name.
fn columns_for(
    format: Format,
    samples: &[Sample],
    csv: &crate::codec::csv::CsvOptions,
    value: Option<SubjectColumns>,
    key: Option<SubjectColumns>,
) -> Vec<String> {
    let key_type = match &key {
        Some(key) => key.whole_type.as_str(),
        None if samples.iter().any(|s| s.key.as_deref().is_some_and(|k| std::str::from_utf8(k).is_err())) => "bytea",
        None => "text",
    };
    let mut columns = vec![
        ("partition".to_string(), "partition integer OPTIONS (partition 'true')".to_string()),
        ("offset".to_string(), "\"offset\" bigint OPTIONS (\"offset\" 'true')".to_string()),
        ("key".to_string(), format!("key {key_type} OPTIONS (key 'true')")),
        ("timestamp".to_string(), "\"timestamp\" timestamp with time zone OPTIONS (\"timestamp\" 'true')".to_string()),
    ];
    let payloads: Vec<Vec<u8>> = samples.iter().map(|s| s.payload.clone()).collect();
    let whole = |name: &str, sql_type: &str| (name.to_string(), format!("{name} {sql_type}"));
    match format {
        Format::Json => {
            let inferred = infer::json_columns(&payloads);
            if inferred.is_empty() {
                columns.push(whole("value", "jsonb"));
            }
            for (key, inferred_type) in inferred {
                columns.push(value_column(&key, inferred_type.sql(), "json"));
            }
        }
        Format::Csv => {
            let count = infer::csv_field_count(&payloads, csv);
            columns.extend((1..=count).map(|n| whole(&format!("field_{n}"), "text")));
        }
        Format::Raw => {
            let binary = payloads.iter().any(|p| std::str::from_utf8(p).is_err());
            columns.push(whole("value", if binary { "bytea" } else { "text" }));
        }
        Format::Avro | Format::Protobuf => match value.and_then(|value| value.fields) {
            Some(fields) if !fields.is_empty() => {
                columns.extend(fields.iter().map(|(name, sql_type)| value_column(name, sql_type, "field")))
            }
            // No schema to read columns from: the whole record, as JSON.
            _ => columns.push(whole("value", "jsonb")),
        },
    }
    for (field, sql_type) in key.and_then(|key| key.fields).unwrap_or_default() {
        let name = format!("key_{field}");
        if !columns.iter().any(|(taken, _)| *taken == name) {
            // Always a JSON Pointer: a field named like a Boolean (`on`) is no option value.
            let pointer = json_pointer(&field);
            columns.push((name.clone(), format!("{} {sql_type} OPTIONS (key {})", identifier(&name), literal(&pointer))));
        }
    }
    columns.into_iter().map(|(_, definition)| definition).collect()
}

/// A value column (its name and definition): named after its key or field, unless a
/// meta column has that name (then `value_<name>`, with the column option `option`
/// pointing at it).
fn value_column(key: &str, sql_type: &str, option: &str) -> (String, String) {
    // Longer names would be cut to NAMEDATALEN - 1 bytes and read nothing: they get the option too.
    if !META_COLUMNS.contains(&key) && key.len() < pg_sys::NAMEDATALEN as usize {
        return (key.to_string(), format!("{} {}", identifier(key), sql_type));
    }
    let name = format!("value_{key}");
    (name.clone(), format!("{} {} OPTIONS ({option} {})", identifier(&name), sql_type, literal(&json_pointer(key))))
}

/// A JSON Pointer to a top-level field, so that names with dots stay one name.
fn json_pointer(field: &str) -> String {
    format!("/{}", field.replace('~', "~0").replace('/', "~1"))
}

fn identifier(name: &str) -> String {
    let name = CString::new(name).unwrap_or_default();
    // SAFETY: quote_identifier returns its argument or a palloc'd quoted copy.
    unsafe { CStr::from_ptr(pg_sys::quote_identifier(name.as_ptr())).to_string_lossy().into_owned() }
}

fn literal(value: &str) -> String {
    let value = CString::new(value).unwrap_or_default();
    // SAFETY: quote_literal_cstr returns a palloc'd string.
    unsafe { CStr::from_ptr(pg_sys::quote_literal_cstr(value.as_ptr())).to_string_lossy().into_owned() }
}
