//! Option parsing for every catalog level (server, user mapping, foreign table, column).
//!
//! The validator that runs at `CREATE`/`ALTER` and the executor that runs at query time
//! both call the same parsers here, so an option list the validator accepted is exactly
//! one the scan can use. Nothing here touches PostgreSQL: the glue hands in
//! `(name, value)` pairs and gets typed settings or an [`FdwError`] back.

use std::time::Duration;

use crate::error::{ErrorKind, FdwError, FdwResult};

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
    pub fn valid_names(self) -> &'static [&'static str] {
        match self {
            OptionLevel::Wrapper | OptionLevel::UserMapping => &[],
            OptionLevel::Server => &["brokers", "mpp_execute", "timeout_ms"],
            OptionLevel::Table => &["topic", "format", "batch_size", "buffer_delay", "timestamps_ordered"],
            OptionLevel::Column => &["partition", "offset", "key", "timestamp", "headers", "topic"],
        }
    }
}

/// Where an MPP database runs the scan (Greenplum's `mpp_execute`). Plain PostgreSQL
/// has one coordinator, so the value is accepted and stored for portability.
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
    pub mpp_execute: MppExecute,
    /// The longest any single wait on Kafka may take before the query fails.
    pub timeout: Duration,
}

/// How a message's payload maps onto the data columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableOptions {
    pub topic: String,
    pub format: Format,
    /// Messages taken from the client per batch.
    pub batch_size: usize,
    /// The most a single fetch request may wait on the broker.
    pub buffer_delay: Duration,
    /// Whether message timestamps never decrease within a partition, so that an upper
    /// bound on the timestamp column can end a read early.
    pub timestamps_ordered: bool,
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
}

impl MetaColumn {
    const ALL: [MetaColumn; 6] =
        [MetaColumn::Partition, MetaColumn::Offset, MetaColumn::Key, MetaColumn::Timestamp, MetaColumn::Headers, MetaColumn::Topic];

    /// The column option that declares it.
    pub fn option_name(self) -> &'static str {
        match self {
            MetaColumn::Partition => "partition",
            MetaColumn::Offset => "offset",
            MetaColumn::Key => "key",
            MetaColumn::Timestamp => "timestamp",
            MetaColumn::Headers => "headers",
            MetaColumn::Topic => "topic",
        }
    }

    fn allowed_types(self) -> (&'static [ColumnType], &'static str) {
        use ColumnType::*;
        match self {
            MetaColumn::Partition => (&[SmallInt, Integer, BigInt], "smallint, integer or bigint"),
            MetaColumn::Offset => (&[BigInt], "bigint"),
            MetaColumn::Key => (&[Text, Bytea], "text or bytea"),
            MetaColumn::Timestamp => (&[TimestampTz], "timestamp with time zone"),
            MetaColumn::Headers => (&[Jsonb], "jsonb"),
            MetaColumn::Topic => (&[Text], "text"),
        }
    }
}

/// What a column of a Kafka foreign table holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnRole {
    /// Part of the message payload.
    Data,
    Meta(MetaColumn),
}

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_BATCH_SIZE: usize = 1000;
pub const DEFAULT_BUFFER_DELAY: Duration = Duration::from_millis(100);

/// Parses any level's options, for the validator: the typed result is dropped, only the
/// verdict matters.
pub fn validate(level: OptionLevel, options: &[(String, String)]) -> FdwResult<()> {
    match level {
        OptionLevel::Wrapper | OptionLevel::UserMapping => check_names(level, options),
        OptionLevel::Server => parse_server(options).map(drop),
        OptionLevel::Table => parse_table(options).map(drop),
        OptionLevel::Column => parse_column(options).map(drop),
    }
}

pub fn parse_server(options: &[(String, String)]) -> FdwResult<ServerOptions> {
    check_names(OptionLevel::Server, options)?;
    let brokers = required(OptionLevel::Server, options, "brokers")?;
    if brokers.trim().is_empty() {
        return Err(invalid_value("brokers", brokers)
            .with_hint("Give a comma-separated list of host:port pairs."));
    }
    let mpp_execute = match lookup(options, "mpp_execute") {
        None => MppExecute::Coordinator,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "any" => MppExecute::Any,
            "master" | "coordinator" => MppExecute::Coordinator,
            "all segments" => MppExecute::AllSegments,
            _ => {
                return Err(invalid_value("mpp_execute", value)
                    .with_hint("Valid values are \"any\", \"master\", \"coordinator\" and \"all segments\"."))
            }
        },
    };
    let timeout = match lookup(options, "timeout_ms") {
        None => DEFAULT_TIMEOUT,
        Some(value) => Duration::from_millis(positive_integer("timeout_ms", value)?),
    };
    Ok(ServerOptions { brokers: brokers.to_string(), mpp_execute, timeout })
}

pub fn parse_table(options: &[(String, String)]) -> FdwResult<TableOptions> {
    check_names(OptionLevel::Table, options)?;
    let topic = required(OptionLevel::Table, options, "topic")?;
    if topic.is_empty() {
        return Err(invalid_value("topic", topic));
    }
    let format = match lookup(options, "format") {
        None => Format::Csv,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "csv" => Format::Csv,
            "json" => Format::Json,
            _ => return Err(invalid_value("format", value).with_hint("Valid formats are \"csv\" and \"json\".")),
        },
    };
    let batch_size = match lookup(options, "batch_size") {
        None => DEFAULT_BATCH_SIZE,
        Some(value) => positive_integer("batch_size", value)? as usize,
    };
    let buffer_delay = match lookup(options, "buffer_delay") {
        None => DEFAULT_BUFFER_DELAY,
        Some(value) => Duration::from_millis(non_negative_integer("buffer_delay", value)?),
    };
    let timestamps_ordered = match lookup(options, "timestamps_ordered") {
        None => false,
        Some(value) => boolean("timestamps_ordered", value)?,
    };
    Ok(TableOptions { topic: topic.to_string(), format, batch_size, buffer_delay, timestamps_ordered })
}

/// A column's role: data, or the one meta column its options declare.
pub fn parse_column(options: &[(String, String)]) -> FdwResult<ColumnRole> {
    check_names(OptionLevel::Column, options)?;
    let mut role = ColumnRole::Data;
    for (name, value) in options {
        if !boolean(name, value)? {
            continue;
        }
        let meta = MetaColumn::ALL.into_iter().find(|m| m.option_name() == name).expect("names were checked");
        if let ColumnRole::Meta(first) = role {
            return Err(FdwError::new(
                ErrorKind::InvalidParameterValue,
                format!("a column cannot have both options \"{}\" and \"{}\"", first.option_name(), name),
            ));
        }
        role = ColumnRole::Meta(meta);
    }
    Ok(role)
}

/// The PostgreSQL types meta columns can have; the glue classifies a column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    SmallInt,
    Integer,
    BigInt,
    Text,
    Bytea,
    TimestampTz,
    Jsonb,
    Other,
}

/// One attribute of a foreign table, as the glue reads it from the catalog.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: String,
    pub column_type: ColumnType,
    pub role: ColumnRole,
    pub dropped: bool,
}

/// What the scan fills into each attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    /// A message property, and the column's type.
    Meta(MetaColumn, ColumnType),
    /// The n-th field of the payload (0-based, counting data columns only).
    Field(usize),
    /// A dropped attribute: always NULL.
    Dropped,
}

/// Checks the table-wide column rules (at most one column per meta property, of a type
/// that can hold it) and returns where each attribute's value comes from.
pub fn table_layout(columns: &[ColumnDef]) -> FdwResult<Vec<ColumnSource>> {
    let mut layout = Vec::with_capacity(columns.len());
    let mut declared: Vec<(MetaColumn, &str)> = Vec::new();
    let mut fields = 0;
    for column in columns {
        if column.dropped {
            layout.push(ColumnSource::Dropped);
            continue;
        }
        let source = match column.role {
            ColumnRole::Data => {
                fields += 1;
                ColumnSource::Field(fields - 1)
            }
            ColumnRole::Meta(meta) => {
                if let Some((_, first)) = declared.iter().find(|(m, _)| *m == meta) {
                    return Err(FdwError::new(
                        ErrorKind::InvalidParameterValue,
                        format!("only one column may have option \"{}\"", meta.option_name()),
                    )
                    .with_detail(format!("Columns \"{first}\" and \"{}\" both have it.", column.name)));
                }
                declared.push((meta, &column.name));
                let (allowed, description) = meta.allowed_types();
                if !allowed.contains(&column.column_type) {
                    return Err(FdwError::new(
                        ErrorKind::InvalidDataType,
                        format!(
                            "column \"{}\" with option \"{}\" must be of type {description}",
                            column.name,
                            meta.option_name()
                        ),
                    ));
                }
                ColumnSource::Meta(meta, column.column_type)
            }
        };
        layout.push(source);
    }
    Ok(layout)
}

fn check_names(level: OptionLevel, options: &[(String, String)]) -> FdwResult<()> {
    let valid = level.valid_names();
    for (name, _) in options {
        if !valid.contains(&name.as_str()) {
            let hint = if valid.is_empty() {
                "There are no valid options in this context.".to_string()
            } else {
                format!("Valid options in this context are: {}", valid.join(", "))
            };
            return Err(FdwError::new(ErrorKind::InvalidOptionName, format!("invalid option \"{name}\""))
                .with_hint(hint));
        }
    }
    Ok(())
}

fn lookup<'a>(options: &'a [(String, String)], name: &str) -> Option<&'a str> {
    options.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn required<'a>(level: OptionLevel, options: &'a [(String, String)], name: &str) -> FdwResult<&'a str> {
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
    fn server_rejects_bad_options() {
        let err = parse_server(&opts(&[("brokers", "b:1"), ("host", "x")])).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidOptionName);
        assert_eq!(err.message, "invalid option \"host\"");
        assert_eq!(err.hint.as_deref(), Some("Valid options in this context are: brokers, mpp_execute, timeout_ms"));
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
        assert_eq!(table.topic, "contrib_regress_csv");
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
        for (name, value) in [("batch_size", "0"), ("batch_size", "-1"), ("batch_size", "x"), ("buffer_delay", "-1"), ("format", "xml")] {
            let err = parse_table(&opts(&[("topic", "t"), (name, value)])).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidParameterValue, "{name}={value}");
        }
    }

    #[test]
    fn column_options() {
        assert_eq!(parse_column(&opts(&[])).unwrap(), ColumnRole::Data);
        assert_eq!(parse_column(&opts(&[("partition", "true")])).unwrap(), ColumnRole::Meta(MetaColumn::Partition));
        assert_eq!(parse_column(&opts(&[("offset", "on")])).unwrap(), ColumnRole::Meta(MetaColumn::Offset));
        assert_eq!(parse_column(&opts(&[("headers", "yes")])).unwrap(), ColumnRole::Meta(MetaColumn::Headers));
        assert_eq!(parse_column(&opts(&[("offset", "false")])).unwrap(), ColumnRole::Data);
        assert!(parse_column(&opts(&[("offset", "maybe")])).is_err());
        let err = parse_column(&opts(&[("offset", "true"), ("key", "true")])).unwrap_err();
        assert_eq!(err.message, "a column cannot have both options \"offset\" and \"key\"");
        assert_eq!(parse_column(&opts(&[("json", "true")])).unwrap_err().kind, ErrorKind::InvalidOptionName);
    }

    #[test]
    fn user_mapping_and_wrapper_accept_no_options_yet() {
        validate(OptionLevel::UserMapping, &[]).unwrap();
        let err = validate(OptionLevel::Wrapper, &opts(&[("x", "1")])).unwrap_err();
        assert_eq!(err.hint.as_deref(), Some("There are no valid options in this context."));
    }

    const PARTITION: ColumnRole = ColumnRole::Meta(MetaColumn::Partition);
    const OFFSET: ColumnRole = ColumnRole::Meta(MetaColumn::Offset);

    fn col(name: &str, column_type: ColumnType, role: ColumnRole) -> ColumnDef {
        ColumnDef { name: name.into(), column_type, role, dropped: false }
    }

    #[test]
    fn layout_maps_data_columns_positionally() {
        let mut dropped = col("gone", ColumnType::Other, ColumnRole::Data);
        dropped.dropped = true;
        let layout = table_layout(&[
            col("part", ColumnType::Integer, PARTITION),
            col("a", ColumnType::Other, ColumnRole::Data),
            dropped,
            col("offs", ColumnType::BigInt, OFFSET),
            col("b", ColumnType::Integer, ColumnRole::Data),
            col("k", ColumnType::Bytea, ColumnRole::Meta(MetaColumn::Key)),
        ])
        .unwrap();
        assert_eq!(
            layout,
            vec![
                ColumnSource::Meta(MetaColumn::Partition, ColumnType::Integer),
                ColumnSource::Field(0),
                ColumnSource::Dropped,
                ColumnSource::Meta(MetaColumn::Offset, ColumnType::BigInt),
                ColumnSource::Field(1),
                ColumnSource::Meta(MetaColumn::Key, ColumnType::Bytea),
            ]
        );
    }

    #[test]
    fn layout_rejects_duplicate_and_mistyped_meta_columns() {
        let err = table_layout(&[col("p1", ColumnType::Integer, PARTITION), col("p2", ColumnType::Integer, PARTITION)])
            .unwrap_err();
        assert_eq!(err.message, "only one column may have option \"partition\"");
        let err = table_layout(&[col("p", ColumnType::Other, PARTITION)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidDataType);
        let err = table_layout(&[col("o", ColumnType::Integer, OFFSET)]).unwrap_err();
        assert_eq!(err.message, "column \"o\" with option \"offset\" must be of type bigint");
        let err = table_layout(&[col("t", ColumnType::Text, ColumnRole::Meta(MetaColumn::Timestamp))]).unwrap_err();
        assert_eq!(err.message, "column \"t\" with option \"timestamp\" must be of type timestamp with time zone");
        table_layout(&[col("p", ColumnType::SmallInt, PARTITION)]).unwrap();
    }
}
