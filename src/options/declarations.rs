//! Every option of kafka_fdw's own (librdkafka properties aside), declared once: its
//! name, the levels it is valid at, how a server's or a table's value is read, and its
//! line in the README's options table. Validation's valid names come from here
//! (`OptionLevel::valid_names`), `parse_server` and `parse_table` run these readers (in
//! declaration order, so a reader may look at what options declared before it set) and
//! then only the rules between options; a unit test checks the README's table against
//! these declarations: options with the same levels and meaning, declared one after
//! another, share a line there. User-mapping and column options, whose values go
//! together (credentials, a column's one role), are read by `parse_user_mapping` and
//! `parse_column`.

use std::time::Duration;

use crate::codec::avro::AvroSchema;
use crate::codec::debezium::TimePrecision;
use crate::codec::Format;
use crate::error::{capitalized, ErrorKind, FdwError, FdwResult};
use crate::kafka::IsolationLevel;

use super::topics::{TopicPattern, Topics};

use super::{
    boolean, check_ca_pem, csv_character, invalid_value, non_negative_integer, positive_integer, MppExecute, OnError, OptionLevel,
    ServerOptions, TableOptions, REGISTRY_CA_PEM, REGISTRY_PASSWORD, REGISTRY_USERNAME,
};

/// An option: see the module's comment.
pub struct Declaration {
    pub name: &'static str,
    pub levels: &'static [OptionLevel],
    pub required: bool,
    /// The README table's "meaning".
    pub doc: &'static str,
    /// Reads a server's value.
    pub server: Option<fn(&str, &mut ServerOptions) -> FdwResult<()>>,
    /// Reads a table's value.
    pub table: Option<fn(&str, &mut TableOptions) -> FdwResult<()>>,
}

impl Declaration {
    const fn server(self, read: fn(&str, &mut ServerOptions) -> FdwResult<()>) -> Self {
        Declaration { server: Some(read), ..self }
    }

    const fn table(self, read: fn(&str, &mut TableOptions) -> FdwResult<()>) -> Self {
        Declaration { table: Some(read), ..self }
    }
}

const SERVER: &[OptionLevel] = &[OptionLevel::Server];
const SERVER_AND_TABLE: &[OptionLevel] = &[OptionLevel::Server, OptionLevel::Table];
const SERVER_AND_USER_MAPPING: &[OptionLevel] = &[OptionLevel::Server, OptionLevel::UserMapping];
const USER_MAPPING: &[OptionLevel] = &[OptionLevel::UserMapping];
const TABLE: &[OptionLevel] = &[OptionLevel::Table];
const COLUMN: &[OptionLevel] = &[OptionLevel::Column];

const fn option(name: &'static str, levels: &'static [OptionLevel], doc: &'static str) -> Declaration {
    Declaration { name, levels, required: false, doc, server: None, table: None }
}

const fn required_option(name: &'static str, levels: &'static [OptionLevel], doc: &'static str) -> Declaration {
    Declaration { required: true, ..option(name, levels, doc) }
}

/// A value of `valid` (compared in lower case), or the invalid-value error with `hint`.
fn one_of<T: Copy>(name: &str, value: &str, valid: &[(&str, T)], hint: &str) -> FdwResult<T> {
    let lower = value.to_ascii_lowercase();
    match valid.iter().find(|(spelling, _)| *spelling == lower) {
        Some((_, parsed)) => Ok(*parsed),
        None => Err(invalid_value(name, value).with_hint(hint)),
    }
}

fn transactional(value: &str) -> FdwResult<Option<bool>> {
    boolean("transactional", value).map(Some)
}

fn isolation_level(value: &str) -> FdwResult<Option<IsolationLevel>> {
    let valid = [("read_committed", IsolationLevel::ReadCommitted), ("read_uncommitted", IsolationLevel::ReadUncommitted)];
    one_of("isolation_level", value, &valid, "Valid values are \"read_committed\" and \"read_uncommitted\".").map(Some)
}

const CSV_DOC: &str = "CSV, as in COPY";
const BAD_MESSAGES_DOC: &str = "bad messages, see above (`on_error`: `error`, `null` = ignore_junk, `skip`)";
const META_DOC: &str = "meta columns, see above (at most one of each)";
const JUNK_DOC: &str = "bad-message columns (text)";
const PATH_DOC: &str = "where a data column's value sits in a JSON, Avro or Protobuf message: a key, dotted path or JSON Pointer";
const REGISTRY_AUTH_DOC: &str = "HTTP basic auth for the server's Schema Registry (both or neither)";

/// Every option. A level's options are listed (in hints) in this order, and the README's
/// table has their lines in it.
pub const DECLARATIONS: &[Declaration] = &[
    required_option("brokers", SERVER, "bootstrap list, `host:port[,host:port…]`").server(|value, server| {
        if value.trim().is_empty() {
            return Err(invalid_value("brokers", value).with_hint("Give a comma-separated list of host:port pairs."));
        }
        server.brokers = value.to_string();
        Ok(())
    }),
    option("mpp_execute", SERVER, "Greenplum's `any`, `master`/`coordinator`, `all segments`; `all segments` enables parallel scans").server(|value, server| {
        let valid = [("any", MppExecute::Any), ("master", MppExecute::Coordinator), ("coordinator", MppExecute::Coordinator), ("all segments", MppExecute::AllSegments)];
        server.mpp_execute = one_of("mpp_execute", value, &valid, "Valid values are \"any\", \"master\", \"coordinator\" and \"all segments\".")?;
        Ok(())
    }),
    option("timeout_ms", SERVER, "longest wait on Kafka with no progress before an ERROR (default 10000); also produce's delivery timeout and a Schema Registry request's").server(|value, server| {
        server.timeout = Duration::from_millis(positive_integer("timeout_ms", value)?);
        Ok(())
    }),
    option("schema_registry", SERVER, "Schema Registry base URL(s), comma-separated, for `format 'avro'` and `'protobuf'`; superuser-only (asked over HTTP from the database server, like an OAuth token endpoint)").server(|value, server| {
        server.schema_registry = value.split(',').map(|url| url.trim().trim_end_matches('/').to_string()).collect();
        match server.schema_registry.iter().find(|url| !(url.starts_with("http://") || url.starts_with("https://"))) {
            Some(bad) => Err(invalid_value("schema_registry", bad)
                .with_hint("Give the registry's base URL (http:// or https://), or several separated by commas.")),
            None => Ok(()),
        }
    }),
    option(REGISTRY_USERNAME, USER_MAPPING, REGISTRY_AUTH_DOC),
    option(REGISTRY_PASSWORD, USER_MAPPING, REGISTRY_AUTH_DOC),
    option(REGISTRY_CA_PEM, SERVER_AND_USER_MAPPING, "the certificates (PEM) an `https://` Schema Registry is trusted by, instead of the usual public roots, as librdkafka's `ssl.ca.pem`; a user mapping's replace the server's").server(|value, server| {
        server.registry_ca_pem = Some(check_ca_pem(value)?);
        Ok(())
    }),
    option("topic", TABLE, "the Kafka topic; one of `topic`, `topics` and `topic_pattern` is required").table(|value, table| {
        table.topics = Topics::one(value)?;
        Ok(())
    }),
    option("topics", TABLE, "several topics, comma-separated: scans read each (the `topic` column says which), INSERT writes each row to the one its `topic` column names; see [Tables over many topics](#tables-over-many-topics)").table(|value, table| {
        table.topics = Topics::listed(value)?;
        Ok(())
    }),
    option("topic_pattern", TABLE, "a regular expression: the topics whose whole name matches it (internal `__` topics excepted), looked up when each scan starts, so topics created later are read too; otherwise as `topics`").table(|value, table| {
        table.topics = Topics::Pattern(TopicPattern::new(value)?);
        Ok(())
    }),
    option("format", TABLE, "`csv` (default), `json`, `raw`, `avro` or `protobuf`").table(|value, table| {
        let valid = [("csv", Format::Csv), ("json", Format::Json), ("raw", Format::Raw), ("avro", Format::Avro), ("protobuf", Format::Protobuf)];
        table.format = one_of("format", value, &valid, "Valid formats are \"csv\", \"json\", \"raw\", \"avro\" and \"protobuf\".")?;
        Ok(())
    }),
    option("batch_size", TABLE, "accepted and validated (> 0) for compatibility; librdkafka batches fetches itself").table(|value, table| {
        table.batch_size = positive_integer("batch_size", value)? as usize;
        Ok(())
    }),
    option("buffer_delay", TABLE, "most a single fetch request may wait on the broker, ms (≥ 0; capped at 5 ms internally, since scans never wait for data past their end)").table(|value, table| {
        table.buffer_delay = Duration::from_millis(non_negative_integer("buffer_delay", value)?);
        Ok(())
    }),
    option("num_partitions", TABLE, "adjust/kafka_fdw's partition count for estimates: accepted and validated (> 0) for compatibility; partitions and estimates come from the topic's metadata and watermarks").table(|value, _| {
        // Validated, then not needed.
        positive_integer("num_partitions", value).map(drop)
    }),
    option("timestamps_ordered", TABLE, "timestamps never decrease within a partition: upper timestamp bounds end reads").table(|value, table| {
        table.timestamps_ordered = boolean("timestamps_ordered", value)?;
        Ok(())
    }),
    option("delimiter", TABLE, CSV_DOC).table(|value, table| {
        table.csv.delimiter = csv_character("delimiter", value)?;
        Ok(())
    }),
    option("quote", TABLE, CSV_DOC).table(|value, table| {
        table.csv.quote = csv_character("quote", value)?;
        // The escape character is the quote unless an escape is given (declared after).
        table.csv.escape = table.csv.quote;
        Ok(())
    }),
    option("escape", TABLE, CSV_DOC).table(|value, table| {
        table.csv.escape = csv_character("escape", value)?;
        Ok(())
    }),
    option("null", TABLE, CSV_DOC).table(|value, table| {
        table.csv.null = value.as_bytes().to_vec();
        Ok(())
    }),
    option("strict", TABLE, BAD_MESSAGES_DOC).table(|value, table| {
        table.strict = boolean("strict", value)?;
        Ok(())
    }),
    option("ignore_junk", TABLE, BAD_MESSAGES_DOC).table(|value, table| {
        if boolean("ignore_junk", value)? {
            table.on_error = OnError::Null;
        }
        Ok(())
    }),
    option("on_error", TABLE, BAD_MESSAGES_DOC).table(|value, table| {
        let valid = [("error", OnError::Error), ("null", OnError::Null), ("skip", OnError::Skip)];
        let on_error = one_of("on_error", value, &valid, "Valid values are \"error\", \"null\" (as ignore_junk) and \"skip\".")?;
        // ignore_junk (declared before) has said null.
        if table.on_error == OnError::Null && on_error != OnError::Null {
            return Err(FdwError::new(ErrorKind::InvalidParameterValue, "\"ignore_junk\" conflicts with \"on_error\"")
                .with_hint("ignore_junk 'true' is on_error 'null'; give one of them."));
        }
        table.on_error = on_error;
        Ok(())
    }),
    option("avro_schema", TABLE, "`format 'avro'` without a registry: the JSON text of the schema of the (bare) records").table(|value, table| {
        if table.format != Format::Avro {
            return Err(FdwError::new(ErrorKind::InvalidParameterValue, "option \"avro_schema\" needs format 'avro'"));
        }
        AvroSchema::parse(value).map_err(|error| invalid_value("avro_schema", value).with_detail(capitalized(error.reason())))?;
        table.avro_schema = Some(value.to_string());
        Ok(())
    }),
    option("protobuf_message", TABLE, "`format 'protobuf'`: the full name of the message type INSERT and COPY write (default: the schema's first)").table(|value, table| {
        if table.format != Format::Protobuf {
            return Err(FdwError::new(ErrorKind::InvalidParameterValue, "option \"protobuf_message\" needs format 'protobuf'"));
        }
        let is_full_name = !value.is_empty()
            && value.split('.').all(|part| {
                part.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_') && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        if !is_full_name {
            return Err(invalid_value("protobuf_message", value).with_hint("Give the message type's full name, e.g. 'shop.Order'."));
        }
        table.protobuf_message = Some(value.to_string());
        Ok(())
    }),
    option("auto_register", TABLE, "`format 'avro'`/`'protobuf'` with a registry: INSERT registers a schema derived from the columns when `<topic>-value` (or, for key field columns, `<topic>-key`) has none (default false)").table(|value, table| {
        table.auto_register = boolean("auto_register", value)?;
        if table.auto_register && (!table.format.has_schema() || table.avro_schema.is_some()) {
            return Err(FdwError::new(ErrorKind::InvalidParameterValue, "option \"auto_register\" needs format 'avro' or 'protobuf' with a schema registry")
                .with_hint("It registers the schema INSERT writes with under the topic's value subject; a table with avro_schema writes bare records."));
        }
        Ok(())
    }),
    option("key_format", TABLE, "`text` (default), `bytea`, `json`, `avro` or `protobuf`: how message keys are encoded (key field columns need json, avro or protobuf)").table(|value, table| {
        let valid = [("text", Format::Raw), ("bytea", Format::Raw), ("json", Format::Json), ("avro", Format::Avro), ("protobuf", Format::Protobuf)];
        table.key_format = one_of("key_format", value, &valid, "Valid key formats are \"text\", \"bytea\", \"json\", \"avro\" and \"protobuf\".")?;
        Ok(())
    }),
    option("transactional", SERVER_AND_TABLE, "`true`: INSERT/COPY produce in a Kafka transaction that commits and rolls back with the PostgreSQL transaction (default `false`; the table's setting wins), see [Writing](#writing)")
    .server(|value, server| {
        server.transactional = transactional(value)?;
        Ok(())
    })
    .table(|value, table| {
        table.transactional = transactional(value)?;
        Ok(())
    }),
    option("isolation_level", SERVER_AND_TABLE, "`read_committed` (default) or `read_uncommitted`: whether scans read messages of aborted and still-open Kafka transactions (the table's setting wins), see [Reading](#reading)")
    .server(|value, server| {
        server.isolation_level = isolation_level(value)?;
        Ok(())
    })
    .table(|value, table| {
        table.isolation_level = isolation_level(value)?;
        Ok(())
    }),
    option("time_precision_mode", TABLE, "Debezium's `time.precision.mode` of the topic's change events: `adaptive` (default), `adaptive_time_microseconds` or `connect`; how a `mode => 'debezium'` import reads the times and timestamps of events without their schema, see [Loading topics into tables](#loading-topics-into-tables)").table(|value, table| {
        table.time_precision = TimePrecision::parse(&value.to_ascii_lowercase())
            .ok_or_else(|| invalid_value("time_precision_mode", value).with_hint(TimePrecision::valid_modes_hint()))?;
        Ok(())
    }),
    option("partition", COLUMN, META_DOC),
    option("offset", COLUMN, META_DOC),
    option("key", COLUMN, META_DOC),
    option("timestamp", COLUMN, META_DOC),
    option("headers", COLUMN, META_DOC),
    option("topic", COLUMN, META_DOC),
    option("junk", COLUMN, JUNK_DOC),
    option("junk_error", COLUMN, JUNK_DOC),
    option("json", COLUMN, PATH_DOC),
    option("field", COLUMN, PATH_DOC),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// The README's lines for the declared options: one per run of options with the same
    /// levels and meaning.
    fn declared_lines() -> Vec<String> {
        let mut lines: Vec<(String, Vec<String>, &str)> = Vec::new();
        for option in DECLARATIONS {
            let levels = option.levels.iter().map(|level| level.name()).collect::<Vec<_>>().join(", ");
            let name = format!("`{}`{}", option.name, if option.required { " (required)" } else { "" });
            match lines.last_mut() {
                Some((last_levels, names, doc)) if *last_levels == levels && *doc == option.doc => names.push(name),
                _ => lines.push((levels, vec![name], option.doc)),
            }
        }
        lines.into_iter().map(|(levels, names, doc)| format!("| {levels} | {} | {doc} |", names.join(", "))).collect()
    }

    /// The lines of the README's options table that name options (its other lines speak
    /// of librdkafka properties and of the `key 'field'` form).
    fn readme_option_lines() -> Vec<String> {
        let readme = include_str!("../../README.md");
        let table = readme.split_once("| level | option | meaning |\n|---|---|---|\n").expect("the README has an options table").1;
        let names_options = |cell: &str| {
            cell.split(", ").all(|name| {
                let name = name.strip_suffix(" (required)").unwrap_or(name);
                name.len() > 2
                    && name.starts_with('`')
                    && name.ends_with('`')
                    && name[1..name.len() - 1].chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            })
        };
        table
            .lines()
            .take_while(|line| line.starts_with('|'))
            .filter(|line| line.split(" | ").nth(1).is_some_and(names_options))
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn the_readme_lists_the_declared_options() {
        let (declared, readme) = (declared_lines(), readme_option_lines());
        assert!(
            declared == readme,
            "the README's options table disagrees with options::declarations; its lines naming options should read, in this order:\n{}\n\nthey read:\n{}",
            declared.join("\n"),
            readme.join("\n")
        );
    }

    #[test]
    fn a_name_is_declared_once_per_level() {
        for (i, option) in DECLARATIONS.iter().enumerate() {
            for other in &DECLARATIONS[..i] {
                let shared = option.levels.iter().any(|level| other.levels.contains(level));
                assert!(!(other.name == option.name && shared), "option {} declared twice", option.name);
            }
        }
    }
}
