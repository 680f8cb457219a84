//! Every option of kafka_fdw's own (librdkafka properties aside), declared once: its
//! name, the levels it is valid at, and its line in the README's options table.
//! Validation's valid names come from here (`OptionLevel::valid_names`), the parsers read
//! no undeclared name (`lookup` checks it in debug builds), and a unit test checks the
//! README's table against these declarations: options with the same levels and meaning,
//! declared one after another, share a line there.

use super::{OptionLevel, REGISTRY_CA_PEM, REGISTRY_PASSWORD, REGISTRY_USERNAME};

/// An option: see the module's comment.
pub struct Declaration {
    pub name: &'static str,
    pub levels: &'static [OptionLevel],
    pub required: bool,
    /// The README table's "meaning".
    pub doc: &'static str,
}

const SERVER: &[OptionLevel] = &[OptionLevel::Server];
const SERVER_AND_TABLE: &[OptionLevel] = &[OptionLevel::Server, OptionLevel::Table];
const SERVER_AND_USER_MAPPING: &[OptionLevel] = &[OptionLevel::Server, OptionLevel::UserMapping];
const USER_MAPPING: &[OptionLevel] = &[OptionLevel::UserMapping];
const TABLE: &[OptionLevel] = &[OptionLevel::Table];
const COLUMN: &[OptionLevel] = &[OptionLevel::Column];

const fn option(name: &'static str, levels: &'static [OptionLevel], doc: &'static str) -> Declaration {
    Declaration { name, levels, required: false, doc }
}

const fn required_option(name: &'static str, levels: &'static [OptionLevel], doc: &'static str) -> Declaration {
    Declaration { name, levels, required: true, doc }
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
    required_option("brokers", SERVER, "bootstrap list, `host:port[,host:port…]`"),
    option("mpp_execute", SERVER, "Greenplum's `any`, `master`/`coordinator`, `all segments`; `all segments` enables parallel scans"),
    option("timeout_ms", SERVER, "longest wait on Kafka with no progress before an ERROR (default 10000); also produce's delivery timeout and a Schema Registry request's"),
    option("schema_registry", SERVER, "Schema Registry base URL(s), comma-separated, for `format 'avro'` and `'protobuf'`; superuser-only (asked over HTTP from the database server, like an OAuth token endpoint)"),
    option(REGISTRY_USERNAME, USER_MAPPING, REGISTRY_AUTH_DOC),
    option(REGISTRY_PASSWORD, USER_MAPPING, REGISTRY_AUTH_DOC),
    option(REGISTRY_CA_PEM, SERVER_AND_USER_MAPPING, "the certificates (PEM) an `https://` Schema Registry is trusted by, instead of the usual public roots, as librdkafka's `ssl.ca.pem`; a user mapping's replace the server's"),
    required_option("topic", TABLE, "the Kafka topic"),
    option("format", TABLE, "`csv` (default), `json`, `raw`, `avro` or `protobuf`"),
    option("batch_size", TABLE, "accepted and validated (> 0) for compatibility; librdkafka batches fetches itself"),
    option("buffer_delay", TABLE, "most a single fetch request may wait on the broker, ms (≥ 0; capped at 5 ms internally, since scans never wait for data past their end)"),
    option("num_partitions", TABLE, "adjust/kafka_fdw's partition count for estimates: accepted and validated (> 0) for compatibility; partitions and estimates come from the topic's metadata and watermarks"),
    option("timestamps_ordered", TABLE, "timestamps never decrease within a partition: upper timestamp bounds end reads"),
    option("delimiter", TABLE, CSV_DOC),
    option("quote", TABLE, CSV_DOC),
    option("escape", TABLE, CSV_DOC),
    option("null", TABLE, CSV_DOC),
    option("strict", TABLE, BAD_MESSAGES_DOC),
    option("ignore_junk", TABLE, BAD_MESSAGES_DOC),
    option("on_error", TABLE, BAD_MESSAGES_DOC),
    option("avro_schema", TABLE, "`format 'avro'` without a registry: the JSON text of the schema of the (bare) records"),
    option("protobuf_message", TABLE, "`format 'protobuf'`: the full name of the message type INSERT and COPY write (default: the schema's first)"),
    option("auto_register", TABLE, "`format 'avro'`/`'protobuf'` with a registry: INSERT registers a schema derived from the columns when `<topic>-value` (or, for key field columns, `<topic>-key`) has none (default false)"),
    option("key_format", TABLE, "`text` (default), `bytea`, `json`, `avro` or `protobuf`: how message keys are encoded (key field columns need json, avro or protobuf)"),
    option("transactional", SERVER_AND_TABLE, "`true`: INSERT/COPY produce in a Kafka transaction that commits and rolls back with the PostgreSQL transaction (default `false`; the table's setting wins), see [Writing](#writing)"),
    option("isolation_level", SERVER_AND_TABLE, "`read_committed` (default) or `read_uncommitted`: whether scans read messages of aborted and still-open Kafka transactions (the table's setting wins), see [Reading](#reading)"),
    option("time_precision_mode", TABLE, "Debezium's `time.precision.mode` of the topic's change events: `adaptive` (default), `adaptive_time_microseconds` or `connect`; how a `mode => 'debezium'` import reads the times and timestamps of events without their schema, see [Loading topics into tables](#loading-topics-into-tables)"),
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
