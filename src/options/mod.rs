//! Option parsing for every catalog level (server, user mapping, foreign table, column).
//!
//! The validator that runs at `CREATE`/`ALTER` and the executor that runs at query time
//! both call the same parsers here, so an option list the validator accepted is exactly
//! one the scan can use. Nothing here touches PostgreSQL: the glue hands in
//! `(name, value)` pairs and gets typed settings or an [`FdwError`] back.

pub mod declarations;
pub mod layout;
pub mod properties;
pub mod topics;

use std::time::Duration;

use crate::codec::csv::CsvOptions;
use crate::codec::json::JsonPath;
use crate::codec::debezium::TimePrecision;
use crate::codec::Format;
use crate::error::{capitalized, ErrorKind, FdwError, FdwResult};
use crate::kafka;
use crate::registry;
use crate::kafka::IsolationLevel;
use declarations::{Declaration, DECLARATIONS};
use properties::Access;
use topics::Topics;

/// The catalog an option list belongs to, as PostgreSQL's validator is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionLevel {
    Wrapper,
    Server,
    UserMapping,
    Table,
    Column,
}

impl OptionLevel {
    /// The option names valid at this level, in the order the hint lists them.
    pub fn valid_names(self) -> Vec<&'static str> {
        DECLARATIONS.iter().filter(|option| option.levels.contains(&self)).map(|option| option.name).collect()
    }

    /// The level's name in the README's options table.
    pub fn name(self) -> &'static str {
        match self {
            OptionLevel::Wrapper => "wrapper",
            OptionLevel::Server => "server",
            OptionLevel::UserMapping => "user mapping",
            OptionLevel::Table => "table",
            OptionLevel::Column => "column",
        }
    }
}

/// Where an MPP database runs the scan (Greenplum's `mpp_execute`). Plain PostgreSQL
/// has one coordinator; there `all segments` allows parallel scans, and the other
/// values are accepted for portability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MppExecute {
    Any,
    Coordinator,
    AllSegments,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// librdkafka's `bootstrap.servers`.
    pub brokers: String,
    /// librdkafka properties (all other options).
    pub properties: Vec<(String, String)>,
    pub mpp_execute: MppExecute,
    /// The longest any single wait on Kafka may take before the query fails.
    pub timeout: Duration,
    /// Base URLs of a Confluent-compatible Schema Registry, tried in order.
    pub schema_registry: Vec<String>,
    /// The certificates (PEM) that HTTPS registries are trusted by, instead of the usual
    /// public roots; a user mapping's own replace them.
    pub registry_ca_pem: Option<String>,
    /// The default of the server's tables (see [`TableOptions::transactional`]).
    pub transactional: Option<bool>,
    /// The default of the server's tables (see [`TableOptions::isolation_level`]).
    pub isolation_level: Option<IsolationLevel>,
}

/// User-mapping options for the Schema Registry (HTTP basic auth).
pub const REGISTRY_USERNAME: &str = "schema_registry.username";
pub const REGISTRY_PASSWORD: &str = "schema_registry.password";
/// Server and user-mapping option: the registry's TLS trust, as librdkafka's `ssl.ca.pem`.
pub const REGISTRY_CA_PEM: &str = "schema_registry.ca.pem";

/// A user mapping's options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserMappingOptions {
    /// librdkafka properties (per-role credentials, say), which override the server's.
    pub properties: Vec<(String, String)>,
    /// Basic-auth user and password for the server's Schema Registry.
    pub registry_credentials: Option<(String, String)>,
    /// Replaces the server's `schema_registry.ca.pem`.
    pub registry_ca_pem: Option<String>,
}

/// What happens to a message that cannot be decoded or converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The query fails with an ERROR naming the message (the default).
    Error,
    /// `ignore_junk 'true'`: unconvertible fields, or all data columns of an unparsable
    /// message, become NULL.
    Null,
    /// `on_error 'skip'`: the message gives no row.
    Skip,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    pub topics: Topics,
    pub format: Format,
    /// The reference page's batch size, validated and kept for compatibility; nothing
    /// reads it, since librdkafka batches fetches itself.
    pub batch_size: usize,
    /// The most a single fetch request may wait on the broker.
    pub buffer_delay: Duration,
    /// Whether message timestamps never decrease within a partition, so that an upper
    /// bound on the timestamp column can end a read early.
    pub timestamps_ordered: bool,
    pub csv: CsvOptions,
    /// CSV: a field count other than the data columns', JSON: a key no column maps,
    /// is a bad message.
    pub strict: bool,
    pub on_error: OnError,
    /// `format 'avro'` without a registry: the JSON text of the schema every message
    /// was written with.
    pub avro_schema: Option<String>,
    /// `format 'protobuf'`: the full name of the message type INSERT and COPY write
    /// (default: the schema's first).
    pub protobuf_message: Option<String>,
    /// INSERT and COPY register a schema derived from the table's columns when the
    /// topic's value subject has none (Confluent's `auto.register.schemas`).
    pub auto_register: bool,
    /// How message keys are encoded: `Raw` (`key_format` text or bytea, the default: the
    /// key column's type decides), or a format with fields (json, avro, protobuf).
    pub key_format: Format,
    /// INSERT and COPY produce inside a Kafka transaction that commits and aborts with the
    /// PostgreSQL transaction; `None`: as the server says.
    pub transactional: Option<bool>,
    /// What scans read of transactional producers' messages; `None`: as the server says.
    pub isolation_level: Option<IsolationLevel>,
    /// Debezium's `time.precision.mode` of the topic's events, for debezium imports of
    /// events without their schema.
    pub time_precision: TimePrecision,
}

/// Whether a table's INSERTs are transactional: the table's option, else its server's,
/// else not (an INSERT then behaves as before transactions existed).
pub fn transactional(server: &ServerOptions, table: &TableOptions) -> bool {
    table.transactional.or(server.transactional).unwrap_or(false)
}

/// What a table's scans read: the table's option, else its server's, else read_committed,
/// as a PostgreSQL reader expects (never what another transaction may still roll back) and
/// as librdkafka's consumers default to.
pub fn isolation_level(server: &ServerOptions, table: Option<&TableOptions>) -> IsolationLevel {
    table.and_then(|t| t.isolation_level).or(server.isolation_level).unwrap_or(IsolationLevel::ReadCommitted)
}

/// A message property a column can hold instead of payload data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaColumn {
    Partition,
    Offset,
    Key,
    Timestamp,
    Headers,
    Topic,
    /// The raw payload of a message that had a problem (adjust/kafka_fdw's `junk`).
    Junk,
    /// The problems of such a message, one per line (adjust/kafka_fdw's `junk_error`).
    JunkError,
}

impl MetaColumn {
    const ALL: [MetaColumn; 8] = [
        MetaColumn::Partition,
        MetaColumn::Offset,
        MetaColumn::Key,
        MetaColumn::Timestamp,
        MetaColumn::Headers,
        MetaColumn::Topic,
        MetaColumn::Junk,
        MetaColumn::JunkError,
    ];

    /// The column option that declares it.
    pub fn option_name(self) -> &'static str {
        match self {
            MetaColumn::Partition => "partition",
            MetaColumn::Offset => "offset",
            MetaColumn::Key => "key",
            MetaColumn::Timestamp => "timestamp",
            MetaColumn::Headers => "headers",
            MetaColumn::Topic => "topic",
            MetaColumn::Junk => "junk",
            MetaColumn::JunkError => "junk_error",
        }
    }
}

/// What a column of a Kafka foreign table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// Part of the message payload.
    Data,
    Meta(MetaColumn),
    /// A field of the decoded key (column option `key 'field'`, with `key_format` json,
    /// avro or protobuf); its path is the column's `path`.
    KeyField,
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BATCH_SIZE: usize = 1000;
pub const DEFAULT_BUFFER_DELAY: Duration = Duration::from_millis(100);

/// Parses any level's options, for the validator: the typed result is dropped, only the
/// verdict matters.
///
/// `superuser` is whether the role running the command is one: other roles may set only
/// harmless librdkafka properties.
pub fn validate(level: OptionLevel, options: &[(String, String)], superuser: bool) -> FdwResult<()> {
    let properties = match level {
        OptionLevel::Wrapper => check_names(level, options).map(|()| Vec::new()),
        OptionLevel::UserMapping => parse_user_mapping(options).map(|mapping| mapping.properties),
        OptionLevel::Server => parse_server(options).map(|server| server.properties),
        OptionLevel::Table => parse_table(options).map(|_| Vec::new()),
        OptionLevel::Column => parse_column(options).map(|_| Vec::new()),
    }?;
    if superuser {
        return Ok(());
    }
    // The registry is asked over HTTP from the database server, as an OAuth token
    // endpoint would be: the same rule as for such properties.
    if level == OptionLevel::Server && lookup(options, "schema_registry").is_some() {
        return Err(FdwError::new(ErrorKind::InsufficientPrivilege, "only superusers may set option \"schema_registry\"")
            .with_hint("Properties that load code, run commands, reach other services, or read or write the database server's files are superuser-only."));
    }
    match properties.iter().find(|(name, _)| properties::access(name) == Access::Superuser) {
        None => Ok(()),
        Some((name, _)) => Err(FdwError::new(
            ErrorKind::InsufficientPrivilege,
            format!("only superusers may set librdkafka property \"{name}\""),
        )
        .with_hint(
            "Properties that load code, run commands, reach other services, or read or write the database server's files are superuser-only.",
        )),
    }
}

/// A user mapping's options: librdkafka properties and Schema Registry credentials.
pub fn parse_user_mapping(options: &[(String, String)]) -> FdwResult<UserMappingOptions> {
    let (own, properties) = split_properties(OptionLevel::UserMapping, options)?;
    let registry_credentials = match (lookup(&own, REGISTRY_USERNAME), lookup(&own, REGISTRY_PASSWORD)) {
        (None, None) => None,
        (Some(user), Some(password)) => Some((user.to_string(), password.to_string())),
        _ => {
            return Err(FdwError::new(
                ErrorKind::OptionNameNotFound,
                format!("options \"{REGISTRY_USERNAME}\" and \"{REGISTRY_PASSWORD}\" go together"),
            ))
        }
    };
    let registry_ca_pem = registry_ca_pem(&own)?;
    Ok(UserMappingOptions { properties, registry_credentials, registry_ca_pem })
}

/// A `schema_registry.ca.pem` option, checked to hold certificates.
fn registry_ca_pem(options: &[(String, String)]) -> FdwResult<Option<String>> {
    lookup(options, REGISTRY_CA_PEM).map(check_ca_pem).transpose()
}

/// Certificates in PEM, checked.
fn check_ca_pem(pem: &str) -> FdwResult<String> {
    registry::check_ca_pem(pem).map_err(|why| {
        FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid value for option \"{REGISTRY_CA_PEM}\""))
            .with_detail(capitalized(&why.to_string()))
            .with_hint("Give the certificates in PEM (-----BEGIN CERTIFICATE----- …), as for librdkafka's ssl.ca.pem.")
    })?;
    Ok(pem.to_string())
}

/// Separates kafka_fdw's own options from librdkafka properties, which must exist and
/// not be ones kafka_fdw manages.
fn split_properties(level: OptionLevel, options: &[(String, String)]) -> FdwResult<(Vec<(String, String)>, Vec<(String, String)>)> {
    let ours = level.valid_names();
    let (own, properties): (Vec<_>, Vec<_>) = options.iter().cloned().partition(|(name, _)| ours.contains(&name.as_str()));
    for (name, _) in &properties {
        if !kafka::is_known_property(name) {
            return Err(invalid_option(name, &ours, true));
        }
        if let Access::Reserved(instead) = properties::access(name) {
            return Err(FdwError::new(
                ErrorKind::InvalidOptionName,
                format!("librdkafka property \"{name}\" is set by kafka_fdw"),
            )
            .with_hint(instead));
        }
    }
    Ok((own, properties))
}

pub fn parse_server(options: &[(String, String)]) -> FdwResult<ServerOptions> {
    let (own, properties) = split_properties(OptionLevel::Server, options)?;
    let mut server = ServerOptions {
        brokers: String::new(),
        properties,
        mpp_execute: MppExecute::Coordinator,
        timeout: DEFAULT_TIMEOUT,
        schema_registry: Vec::new(),
        registry_ca_pem: None,
        transactional: None,
        isolation_level: None,
    };
    read_declared(OptionLevel::Server, &own, |option, value| option.server.map_or(Ok(()), |read| read(value, &mut server)))?;
    Ok(server)
}

/// The options that say which topics a table reads: exactly one is given.
const TOPIC_OPTIONS: [&str; 3] = ["topic", "topics", "topic_pattern"];

pub fn parse_table(options: &[(String, String)]) -> FdwResult<TableOptions> {
    check_names(OptionLevel::Table, options)?;
    let mut table = TableOptions {
        // Replaced by the one topic option given (checked below).
        topics: Topics::Listed(Vec::new()),
        format: Format::Csv,
        batch_size: DEFAULT_BATCH_SIZE,
        buffer_delay: DEFAULT_BUFFER_DELAY,
        timestamps_ordered: false,
        csv: CsvOptions::default(),
        strict: false,
        on_error: OnError::Error,
        avro_schema: None,
        protobuf_message: None,
        auto_register: false,
        key_format: Format::Raw,
        transactional: None,
        isolation_level: None,
        time_precision: TimePrecision::default(),
    };
    let topic_options: Vec<&str> = TOPIC_OPTIONS.into_iter().filter(|name| lookup(options, name).is_some()).collect();
    match topic_options[..] {
        [] => {
            return Err(FdwError::new(ErrorKind::OptionNameNotFound, "option \"topic\" is required for a kafka_fdw foreign table")
                .with_hint("Or name several topics with option \"topics\" or \"topic_pattern\"."))
        }
        [_] => {}
        [first, second, ..] => {
            return Err(FdwError::new(ErrorKind::InvalidParameterValue, format!("options \"{first}\" and \"{second}\" cannot be used together"))
                .with_hint("A table reads one topic (\"topic\"), a list of topics (\"topics\") or the topics a pattern matches (\"topic_pattern\")."))
        }
    }
    read_declared(OptionLevel::Table, options, |option, value| option.table.map_or(Ok(()), |read| read(value, &mut table)))?;
    // The rules between options no single reader sees whole.
    if table.csv.delimiter == table.csv.quote {
        return Err(FdwError::new(ErrorKind::InvalidParameterValue, "CSV delimiter and quote must be different"));
    }
    if table.csv.null.iter().any(|&b| b == table.csv.delimiter || b == b'\n' || b == b'\r') {
        return Err(FdwError::new(
            ErrorKind::InvalidParameterValue,
            "the NULL string cannot contain the delimiter or a line break",
        ));
    }
    Ok(table)
}

/// Checks that the options `level` requires are given, then runs `read` on each given
/// option of the level, in declaration order.
fn read_declared(
    level: OptionLevel,
    options: &[(String, String)],
    mut read: impl FnMut(&Declaration, &str) -> FdwResult<()>,
) -> FdwResult<()> {
    let declared = || DECLARATIONS.iter().filter(move |option| option.levels.contains(&level));
    for option in declared().filter(|option| option.required) {
        required(level, options, option.name)?;
    }
    for option in declared() {
        if let Some(value) = lookup(options, option.name) {
            read(option, value)?;
        }
    }
    Ok(())
}

/// The rules between a table's options and its server's.
pub fn check_table_on_server(table: &TableOptions, server: &ServerOptions) -> FdwResult<()> {
    if table.format == Format::Avro && table.avro_schema.is_none() && server.schema_registry.is_empty() {
        return Err(FdwError::new(ErrorKind::OptionNameNotFound, "format 'avro' needs the messages' schema").with_hint(
            "Set the server option schema_registry (messages in the registry's wire format), or the table option avro_schema (bare Avro records of that schema).",
        ));
    }
    if table.key_format.has_schema() && server.schema_registry.is_empty() {
        return Err(FdwError::new(
            ErrorKind::OptionNameNotFound,
            format!("key_format '{}' needs the server option schema_registry", table.key_format.name()),
        )
        .with_hint("Keys are read in the Schema Registry's wire format, with their writer schemas from the registry."));
    }
    if table.format == Format::Protobuf && server.schema_registry.is_empty() {
        return Err(FdwError::new(ErrorKind::OptionNameNotFound, "format 'protobuf' needs the server option schema_registry")
            .with_hint("Protobuf messages are read in the Schema Registry's wire format, with their writer schemas from the registry."));
    }
    Ok(())
}

/// A CSV option that must be one single-byte character, as in COPY.
fn csv_character(name: &str, value: &str) -> FdwResult<u8> {
    if value.len() == 1 && value != "\n" && value != "\r" {
        return Ok(value.as_bytes()[0]);
    }
    Err(FdwError::new(
        ErrorKind::InvalidParameterValue,
        format!("CSV {name} must be a single one-byte character other than a line break"),
    ))
}

/// A column's options: its role, and for JSON where its value sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnOptions {
    pub role: ColumnRole,
    /// The `json` or `field` option (a key, a dotted path or a JSON Pointer), parsed:
    /// where a JSON or Avro column's value sits.
    pub path: Option<JsonPath>,
}

/// A column's options: data, or the one meta column its Boolean options declare.
pub fn parse_column(options: &[(String, String)]) -> FdwResult<ColumnOptions> {
    check_names(OptionLevel::Column, options)?;
    let mut parsed = ColumnOptions { role: ColumnRole::Data, path: None };
    for (name, value) in options {
        if name == "json" || name == "field" {
            if parsed.role == ColumnRole::KeyField {
                return Err(FdwError::new(ErrorKind::InvalidParameterValue, "a key field column has no other column option"));
            }
            parsed.path = Some(JsonPath::parse(value).map_err(|error| invalid_value(name, value).with_detail(error.0))?);
            continue;
        }
        // `key 'true'` is the key column; `key 'id'` reads a field of the decoded key.
        if name == "key" && boolean(name, value).is_err() {
            if parsed.role != ColumnRole::Data || parsed.path.is_some() {
                return Err(FdwError::new(ErrorKind::InvalidParameterValue, "a key field column has no other column option"));
            }
            parsed.role = ColumnRole::KeyField;
            parsed.path = Some(JsonPath::parse(value).map_err(|error| invalid_value(name, value).with_detail(error.0))?);
            continue;
        }
        if !boolean(name, value)? {
            continue;
        }
        let meta = MetaColumn::ALL.into_iter().find(|m| m.option_name() == name).expect("names were checked");
        match parsed.role {
            ColumnRole::Meta(first) => {
                return Err(FdwError::new(
                    ErrorKind::InvalidParameterValue,
                    format!("a column cannot have both options \"{}\" and \"{}\"", first.option_name(), name),
                ))
            }
            ColumnRole::KeyField => {
                return Err(FdwError::new(ErrorKind::InvalidParameterValue, "a key field column has no other column option"))
            }
            ColumnRole::Data => {}
        }
        parsed.role = ColumnRole::Meta(meta);
    }
    if parsed.path.is_some() && matches!(parsed.role, ColumnRole::Meta(_)) {
        return Err(FdwError::new(ErrorKind::InvalidParameterValue, "options \"json\" and \"field\" apply to data columns only"));
    }
    Ok(parsed)
}

fn check_names(level: OptionLevel, options: &[(String, String)]) -> FdwResult<()> {
    let valid = level.valid_names();
    match options.iter().find(|(name, _)| !valid.contains(&name.as_str())) {
        Some((name, _)) => Err(invalid_option(name, &valid, false)),
        None => Ok(()),
    }
}

/// PostgreSQL's "invalid option" error, with a hint naming what is valid here:
/// kafka_fdw's `valid` options, and librdkafka properties where `properties_too`.
fn invalid_option(name: &str, valid: &[&str], properties_too: bool) -> FdwError {
    let hint = match (valid.is_empty(), properties_too) {
        (true, false) => "There are no valid options in this context.".to_string(),
        (false, false) => format!("Valid options in this context are: {}", valid.join(", ")),
        (true, true) => "Only librdkafka configuration properties are valid in this context.".to_string(),
        (false, true) => format!("Valid options in this context are: {}, or librdkafka configuration properties.", valid.join(", ")),
    };
    FdwError::new(ErrorKind::InvalidOptionName, format!("invalid option \"{name}\"")).with_hint(hint)
}

fn lookup<'a>(options: &'a [(String, String)], name: &str) -> Option<&'a str> {
    debug_assert!(DECLARATIONS.iter().any(|option| option.name == name), "option \"{name}\" is not declared");
    options.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn required<'a>(level: OptionLevel, options: &'a [(String, String)], name: &str) -> FdwResult<&'a str> {
    debug_assert!(
        DECLARATIONS.iter().any(|option| option.name == name && option.required && option.levels.contains(&level)),
        "option \"{name}\" is not declared required at level {level:?}"
    );
    lookup(options, name).ok_or_else(|| {
        let object = match level {
            OptionLevel::Server => "a kafka_fdw server",
            _ => "a kafka_fdw foreign table",
        };
        FdwError::new(ErrorKind::OptionNameNotFound, format!("option \"{name}\" is required for {object}"))
    })
}

fn invalid_value(name: &str, value: &str) -> FdwError {
    FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid value for option \"{name}\": \"{value}\""))
}

fn positive_integer(name: &str, value: &str) -> FdwResult<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if n > 0 && n <= i32::MAX as u64 => Ok(n),
        _ => Err(FdwError::new(ErrorKind::InvalidParameterValue, format!("\"{name}\" requires a positive integer value"))
            .with_detail(format!("Got \"{value}\"."))),
    }
}

fn non_negative_integer(name: &str, value: &str) -> FdwResult<u64> {
    match value.trim().parse::<u64>() {
        Ok(n) if n <= i32::MAX as u64 => Ok(n),
        _ => Err(FdwError::new(
            ErrorKind::InvalidParameterValue,
            format!("\"{name}\" requires a non-negative integer value"),
        )
        .with_detail(format!("Got \"{value}\"."))),
    }
}

/// PostgreSQL's boolean spellings, as `defGetBoolean` accepts them.
fn boolean(name: &str, value: &str) -> FdwResult<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "1" => Ok(true),
        "false" | "off" | "no" | "0" => Ok(false),
        _ => Err(FdwError::new(ErrorKind::InvalidParameterValue, format!("\"{name}\" requires a Boolean value"))
            .with_detail(format!("Got \"{value}\"."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn server_accepts_the_reference_options() {
        let server = parse_server(&opts(&[("mpp_execute", "all segments"), ("brokers", "localhost:9092")])).unwrap();
        assert_eq!(server.brokers, "localhost:9092");
        assert_eq!(server.mpp_execute, MppExecute::AllSegments);
        assert_eq!(server.timeout, DEFAULT_TIMEOUT);
        for value in ["any", "master", "coordinator", "ALL SEGMENTS"] {
            parse_server(&opts(&[("brokers", "b:1"), ("mpp_execute", value)])).unwrap();
        }
    }

    #[test]
    fn transaction_options_apply_to_the_table_over_the_server() {
        let server = parse_server(&opts(&[("brokers", "b:1"), ("transactional", "on"), ("isolation_level", "READ_UNCOMMITTED")])).unwrap();
        let plain = parse_table(&opts(&[("topic", "t")])).unwrap();
        assert!(transactional(&server, &plain));
        assert_eq!(isolation_level(&server, Some(&plain)), IsolationLevel::ReadUncommitted);
        assert_eq!(isolation_level(&server, None), IsolationLevel::ReadUncommitted);
        let own = parse_table(&opts(&[("topic", "t"), ("transactional", "false"), ("isolation_level", "read_committed")])).unwrap();
        assert!(!transactional(&server, &own));
        assert_eq!(isolation_level(&server, Some(&own)), IsolationLevel::ReadCommitted);
        let defaults = parse_server(&opts(&[("brokers", "b:1")])).unwrap();
        assert!(!transactional(&defaults, &plain));
        assert_eq!(isolation_level(&defaults, Some(&plain)), IsolationLevel::ReadCommitted);
        let error = parse_table(&opts(&[("topic", "t"), ("isolation_level", "serializable")])).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidParameterValue);
        assert!(parse_server(&opts(&[("brokers", "b:1"), ("transactional", "maybe")])).is_err());
        let reserved = parse_server(&opts(&[("brokers", "b:1"), ("isolation.level", "read_uncommitted")])).unwrap_err();
        assert_eq!(reserved.message, "librdkafka property \"isolation.level\" is set by kafka_fdw");
    }

    #[test]
    fn server_rejects_bad_options() {
        let err = parse_server(&opts(&[("brokers", "b:1"), ("host", "x")])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidOptionName);
        assert_eq!(err.message, "invalid option \"host\"");
        assert_eq!(
            err.hint.as_deref(),
            Some("Valid options in this context are: brokers, mpp_execute, timeout_ms, schema_registry, schema_registry.ca.pem, transactional, isolation_level, or librdkafka configuration properties.")
        );
        let err = parse_server(&opts(&[("brokers", "b:1"), ("group.id", "g")])).unwrap_err();
        assert_eq!(err.message, "librdkafka property \"group.id\" is set by kafka_fdw");
        let server = parse_server(&opts(&[("brokers", "b:1"), ("client.id", "me"), ("acks", "1")])).unwrap();
        assert_eq!(server.properties, opts(&[("client.id", "me"), ("acks", "1")]));
        let err = parse_server(&opts(&[("mpp_execute", "all")])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::OptionNameNotFound);
        let err = parse_server(&opts(&[("brokers", "b:1"), ("mpp_execute", "some segments")])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidParameterValue);
        assert!(parse_server(&opts(&[("brokers", "b:1"), ("timeout_ms", "0")])).is_err());
        assert_eq!(
            parse_server(&opts(&[("brokers", "b:1"), ("timeout_ms", "1500")])).unwrap().timeout,
            Duration::from_millis(1500)
        );
    }

    #[test]
    fn table_options_parse_with_defaults_and_limits() {
        let table = parse_table(&opts(&[
            ("format", "csv"),
            ("topic", "contrib_regress_csv"),
            ("batch_size", "1000"),
            ("buffer_delay", "1000"),
        ]))
        .unwrap();
        assert_eq!(table.topics, Topics::One("contrib_regress_csv".into()));
        assert_eq!(table.format, Format::Csv);
        assert_eq!(table.batch_size, 1000);
        assert_eq!(table.buffer_delay, Duration::from_millis(1000));

        let defaults = parse_table(&opts(&[("topic", "t")])).unwrap();
        assert_eq!(defaults.format, Format::Csv);
        assert_eq!(defaults.batch_size, DEFAULT_BATCH_SIZE);
        assert_eq!(defaults.buffer_delay, DEFAULT_BUFFER_DELAY);
        assert_eq!(parse_table(&opts(&[("topic", "t"), ("format", "JSON")])).unwrap().format, Format::Json);
        assert_eq!(parse_table(&opts(&[("topic", "t"), ("buffer_delay", "0")])).unwrap().buffer_delay, Duration::ZERO);
        assert!(!defaults.timestamps_ordered);
        assert!(parse_table(&opts(&[("topic", "t"), ("timestamps_ordered", "on")])).unwrap().timestamps_ordered);

        assert_eq!(parse_table(&opts(&[("format", "csv")])).unwrap_err().kind, ErrorKind::OptionNameNotFound);
        assert_eq!(parse_table(&opts(&[("topics", "a, b")])).unwrap().topics, Topics::listed("a,b").unwrap());
        let pattern = parse_table(&opts(&[("topic_pattern", "a-.*")])).unwrap().topics;
        assert!(pattern.includes("a-1") && !pattern.includes("b"));
        let both = parse_table(&opts(&[("topic", "a"), ("topic_pattern", "a-.*")])).unwrap_err();
        assert_eq!(both.message, "options \"topic\" and \"topic_pattern\" cannot be used together");
        assert_eq!(parse_table(&opts(&[("topics", "a,,b")])).unwrap_err().kind, ErrorKind::InvalidParameterValue);
        assert_eq!(parse_table(&opts(&[("topic", "t"), ("num_partitions", "4")])).unwrap(), defaults);
        for (name, value) in [
            ("batch_size", "0"),
            ("batch_size", "-1"),
            ("batch_size", "x"),
            ("buffer_delay", "-1"),
            ("format", "xml"),
            ("num_partitions", "0"),
            ("num_partitions", "four"),
        ] {
            let err = parse_table(&opts(&[("topic", "t"), (name, value)])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameterValue, "{name}={value}");
        }
    }

    #[test]
    fn column_options() {
        let role = |pairs: &[(&str, &str)]| parse_column(&opts(pairs)).map(|c| c.role);
        assert_eq!(role(&[]).unwrap(), ColumnRole::Data);
        assert_eq!(role(&[("partition", "true")]).unwrap(), ColumnRole::Meta(MetaColumn::Partition));
        assert_eq!(role(&[("offset", "on")]).unwrap(), ColumnRole::Meta(MetaColumn::Offset));
        assert_eq!(role(&[("headers", "yes")]).unwrap(), ColumnRole::Meta(MetaColumn::Headers));
        assert_eq!(role(&[("junk_error", "1")]).unwrap(), ColumnRole::Meta(MetaColumn::JunkError));
        assert_eq!(role(&[("offset", "false")]).unwrap(), ColumnRole::Data);
        assert!(role(&[("offset", "maybe")]).is_err());
        let err = role(&[("offset", "true"), ("key", "true")]).unwrap_err();
        assert_eq!(err.message, "a column cannot have both options \"offset\" and \"key\"");
        assert_eq!(parse_column(&opts(&[("json", "a.b")])).unwrap().path, Some(JsonPath::Keys(vec!["a".into(), "b".into()])));
        assert!(parse_column(&opts(&[("json", "a..b")])).is_err());
        assert!(parse_column(&opts(&[("json", "k"), ("key", "true")])).is_err());
        let key_field = parse_column(&opts(&[("key", "user.id")])).unwrap();
        assert_eq!((key_field.role, key_field.path), (ColumnRole::KeyField, Some(JsonPath::parse("user.id").unwrap())));
        assert_eq!(parse_column(&opts(&[("key", "on")])).unwrap().role, ColumnRole::Meta(MetaColumn::Key));
        assert!(parse_column(&opts(&[("key", "id"), ("field", "x")])).is_err());
        assert!(parse_column(&opts(&[("offset", "true"), ("key", "id")])).is_err());
        assert_eq!(role(&[("jsn", "true")]).unwrap_err().kind, ErrorKind::InvalidOptionName);
    }

    #[test]
    fn bad_message_and_csv_options() {
        let table = |pairs: &[(&str, &str)]| {
            let mut all = vec![("topic", "t")];
            all.extend_from_slice(pairs);
            parse_table(&opts(&all))
        };
        assert_eq!(table(&[]).unwrap().on_error, OnError::Error);
        assert_eq!(table(&[("ignore_junk", "true")]).unwrap().on_error, OnError::Null);
        assert_eq!(table(&[("on_error", "skip")]).unwrap().on_error, OnError::Skip);
        assert!(table(&[("on_error", "skip"), ("ignore_junk", "true")]).is_err());
        assert!(table(&[("on_error", "retry")]).is_err());
        assert!(table(&[("strict", "true")]).unwrap().strict);
        let csv = table(&[("delimiter", ";"), ("quote", "'"), ("null", "\\N")]).unwrap().csv;
        assert_eq!(csv, CsvOptions { delimiter: b';', quote: b'\'', escape: b'\'', null: b"\\N".to_vec() });
        assert!(table(&[("delimiter", ";;")]).is_err());
        assert!(table(&[("delimiter", "\"")]).is_err());
        assert!(table(&[("null", "a,b")]).is_err());
        assert_eq!(table(&[("format", "raw")]).unwrap().format, Format::Raw);
    }

    #[test]
    fn superuser_only_properties_are_refused_to_others() {
        let server = opts(&[("brokers", "b:1"), ("timeout_ms", "10"), ("sasl.kerberos.kinit.cmd", "x")]);
        validate(OptionLevel::Server, &server, true).unwrap();
        let err = validate(OptionLevel::Server, &server, false).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InsufficientPrivilege);
        assert_eq!(err.message, "only superusers may set librdkafka property \"sasl.kerberos.kinit.cmd\"");
        validate(OptionLevel::Server, &opts(&[("brokers", "b:1"), ("client.id", "x")]), false).unwrap();
        let mapping = opts(&[("sasl.password", "p"), ("ssl.key.location", "/k")]);
        assert_eq!(validate(OptionLevel::UserMapping, &mapping, false).unwrap_err().kind, ErrorKind::InsufficientPrivilege);
        let registry = opts(&[("brokers", "b:1"), ("schema_registry", "http://registry:8081")]);
        validate(OptionLevel::Server, &registry, true).unwrap();
        let err = validate(OptionLevel::Server, &registry, false).unwrap_err();
        assert_eq!(err.message, "only superusers may set option \"schema_registry\"");
        // Registry credentials are the role's own, like sasl.password.
        let credentials = opts(&[(REGISTRY_USERNAME, "u"), (REGISTRY_PASSWORD, "p")]);
        validate(OptionLevel::UserMapping, &credentials, false).unwrap();
    }

    #[test]
    fn user_mappings_take_properties_and_wrappers_nothing() {
        validate(OptionLevel::UserMapping, &[], false).unwrap();
        assert_eq!(
            parse_user_mapping(&opts(&[("sasl.username", "u"), ("sasl.password", "p")])).unwrap().properties,
            opts(&[("sasl.username", "u"), ("sasl.password", "p")])
        );
        assert!(parse_user_mapping(&opts(&[("password", "p")])).is_err());
        let with_registry = opts(&[(REGISTRY_USERNAME, "ann"), ("sasl.username", "u"), (REGISTRY_PASSWORD, "pw")]);
        let parsed = parse_user_mapping(&with_registry).unwrap();
        assert_eq!(parsed.registry_credentials, Some(("ann".to_string(), "pw".to_string())));
        assert_eq!(parsed.properties, opts(&[("sasl.username", "u")]));
        let err = parse_user_mapping(&opts(&[(REGISTRY_USERNAME, "ann")])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::OptionNameNotFound);
        let err = validate(OptionLevel::Wrapper, &opts(&[("x", "1")]), true).unwrap_err();
        assert_eq!(err.hint.as_deref(), Some("There are no valid options in this context."));
    }

    /// A self-signed certificate (openssl req -x509, P-256).
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nMIIBdDCCARugAwIBAgIUYIVriJJekJzirdi++K5BGHSEuQUwCgYIKoZIzj0EAwIw\nDzENMAsGA1UEAwwEdGVzdDAgFw0yNjEyMDIwMzAyNDdaGA8yMTI2MTEwODAzMDI0\nN1owDzENMAsGA1UEAwwEdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABBXE\nodjKhXhseE2YRMJhexukh+LM/rIW4E2KMq5igi6jBlQRt3wD/06iQ7Uc0w3shqkU\nXS2MbDPXI3m8pKhZ9gqjUzBRMB0GA1UdDgQWBBTDoimLl+kiib9tNc+y6U6UnAbF\n9jAfBgNVHSMEGDAWgBTDoimLl+kiib9tNc+y6U6UnAbF9jAPBgNVHRMBAf8EBTAD\nAQH/MAoGCCqGSM49BAMCA0cAMEQCIC6kBdtJnnyjY+gbpTPzmA8FSNjSFWcjGDeP\n9KmDDcQQAiAgOrkZtc2eGTrOoENKWB5shLUhUIYjuGkLPGy3cuKcXw==\n-----END CERTIFICATE-----";

    #[test]
    fn registry_certificates_are_checked_and_the_user_mappings_replace_the_servers() {
        let server = parse_server(&opts(&[("brokers", "b:1"), (REGISTRY_CA_PEM, CERTIFICATE)])).unwrap();
        assert_eq!(server.registry_ca_pem.as_deref(), Some(CERTIFICATE));
        assert!(server.properties.is_empty());
        let mapping = parse_user_mapping(&opts(&[(REGISTRY_CA_PEM, &CERTIFICATE.repeat(2))])).unwrap();
        assert_eq!(mapping.registry_ca_pem, Some(CERTIFICATE.repeat(2)));
        for bad in ["not a certificate", "", &CERTIFICATE.replace("BEGIN CERTIFICATE", "BEGIN PRIVATE KEY")] {
            let err = parse_user_mapping(&opts(&[(REGISTRY_CA_PEM, bad)])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameterValue, "{bad}");
            assert_eq!(err.message, "invalid value for option \"schema_registry.ca.pem\"");
            assert!(parse_server(&opts(&[("brokers", "b:1"), (REGISTRY_CA_PEM, bad)])).is_err());
        }
    }
}
