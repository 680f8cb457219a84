//! Import modes that apply messages as changes to a keyed table: `upsert` (a message
//! sets its key's row, a tombstone deletes it) and `debezium` (Debezium change events).
//! No PostgreSQL in here: the glue (src/api/import/changes.rs) describes the source and target
//! from the catalogs, and runs the statement built here once per import batch.
//!
//! Within one batch only the last message of each key counts (highest offset; a key
//! lives in one partition, as Kafka's keyed partitioning keeps it), and batches follow
//! offset order, so the target ends as replaying the topic message by message would
//! leave it.

use crate::codec::debezium::{ColumnKind, TimePrecision};
use crate::error::{ErrorKind, FdwError, FdwResult};

/// How `kafka_fdw.import` writes the messages it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode {
    /// One row inserted per message.
    Append,
    /// Insert or update the row of the message's key; a tombstone deletes it.
    Upsert,
    /// Debezium change events: create/read/update set the row of `after`, delete
    /// deletes the row of `before`.
    Debezium,
}

impl ImportMode {
    pub fn parse(value: &str) -> FdwResult<ImportMode> {
        match value {
            "append" => Ok(ImportMode::Append),
            "upsert" => Ok(ImportMode::Upsert),
            "debezium" => Ok(ImportMode::Debezium),
            _ => Err(FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid import mode: \"{value}\""))
                .with_hint("Valid modes are \"append\", \"upsert\" and \"debezium\".")),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImportMode::Append => "append",
            ImportMode::Upsert => "upsert",
            ImportMode::Debezium => "debezium",
        }
    }
}

/// A column and its type as SQL names it (`format_type`, without the modifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub sql_type: String,
    /// The type modifier (atttypmod; -1 for none).
    pub modifier: i32,
}

/// What a change import needs to know of its source, a Kafka foreign table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceShape {
    /// Qualified and quoted, as SQL names it.
    pub relation: String,
    pub partition_column: String,
    pub offset_column: String,
    /// The `key` meta column, if it is text.
    pub key_column: Option<String>,
    /// The columns read from the message's value, in order.
    pub data_columns: Vec<Column>,
    /// Every column (meta columns too), in order.
    pub columns: Vec<String>,
    /// How Debezium events without their schema carry times (table option
    /// time_precision_mode).
    pub time_precision: TimePrecision,
}

/// What a change import needs to know of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetShape {
    /// Qualified and quoted, as SQL names it.
    pub relation: String,
    /// The columns an INSERT may write (not generated), in order.
    pub columns: Vec<Column>,
    /// The primary key, if it has one.
    pub primary_key: Option<PrimaryKey>,
}

/// A target's primary key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryKey {
    pub constraint: String,
    pub columns: Vec<String>,
    /// Per column, the equality operator of its index, schema-qualified as
    /// `OPERATOR(schema.=)`: the statement runs with search_path pinned to pg_catalog, so
    /// a key of a type whose operators live elsewhere (citext) compares as its index does.
    pub equality: Vec<String>,
}

/// Where an upsert takes a target column's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ValueSource {
    /// The source column of the same name.
    SourceColumn,
    /// The field of that name of the message key, read as a JSON object.
    KeyField(String),
}

/// How the rows of a batch are read from the source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reader {
    Upsert {
        values: Vec<(Column, ValueSource)>,
        /// The value columns read: all NULL means the message has no value (a tombstone).
        value_columns: Vec<String>,
    },
    Debezium {
        /// The source column holding the whole event.
        envelope_column: String,
        written: Vec<Column>,
    },
}

/// One import's way of applying a batch of messages to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangePlan {
    source: SourceShape,
    target: String,
    constraint: String,
    key: Vec<String>,
    key_equality: Vec<String>,
    reader: Reader,
}

/// What stopped a batch: the first message (by partition and offset) that could not be
/// applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A message without a value for each key column.
    NoKey,
    /// A Debezium truncate event.
    Truncate,
    /// A value that is not a Debezium change event (no known `op`).
    NotAnEvent,
}

impl Problem {
    /// The code the batch statement reports the problem with.
    fn code(self) -> &'static str {
        match self {
            Problem::NoKey => "no key",
            Problem::Truncate => "truncate",
            Problem::NotAnEvent => "not an event",
        }
    }

    pub fn from_code(code: &str) -> Option<Problem> {
        [Problem::NoKey, Problem::Truncate, Problem::NotAnEvent].into_iter().find(|p| p.code() == code)
    }
}

/// Columns of the batch that cannot clash with a target's (PostgreSQL names never hold
/// this prefix by accident).
const PARTITION: &str = "\"kafka_fdw partition\"";
const OFFSET: &str = "\"kafka_fdw offset\"";
const DELETES: &str = "\"kafka_fdw deletes\"";
const PROBLEM: &str = "\"kafka_fdw problem\"";

/// The row a Debezium event sets (`after`) or deletes (`before`), by its `op`.
const DEBEZIUM_ROW: &str = "CASE WHEN e.op = 'd' THEN w.event -> 'before' WHEN e.op IN ('c', 'r', 'u') THEN w.event -> 'after' END";

/// The value an upsert writes into `column`, cast to its type.
fn upsert_value(column: &Column, from: &ValueSource) -> String {
    let value = match from {
        ValueSource::SourceColumn => format!("s.{}", quote_ident(&column.name)),
        ValueSource::KeyField(key_column) => format!("kafka_fdw.key_field(s.{}, {})", quote_ident(key_column), quote_literal(&column.name)),
    };
    format!("CAST({value} AS {})", column.sql_type)
}

/// An identifier, always quoted (quoting an ordinary name changes nothing).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal that means the same whatever `standard_conforming_strings` says
/// (PostgreSQL's quote_literal: `E''` with doubled backslashes when there are any).
fn quote_literal(text: &str) -> String {
    let quoted = text.replace('\'', "''");
    if text.contains('\\') {
        format!("E'{}'", quoted.replace('\\', "\\\\"))
    } else {
        format!("'{quoted}'")
    }
}

fn no_key_error(target: &TargetShape) -> FdwError {
    FdwError::new(ErrorKind::InvalidParameterValue, format!("import target \"{}\" has no primary key", target.relation))
        .with_detail("The upsert and debezium modes update and delete the rows of the messages' keys.")
        .with_hint("Add a primary key to the target, or import with mode => 'append'.")
}

impl ChangePlan {
    /// The plan of an import of `source` into `target` in `mode` (not `Append`), writing
    /// `columns` (default: for upsert the target's columns the source also has, for
    /// debezium all the target's columns).
    pub fn new(mode: ImportMode, source: SourceShape, target: &TargetShape, columns: Option<&[String]>) -> FdwResult<ChangePlan> {
        let PrimaryKey { constraint, columns: key, equality: key_equality } =
            target.primary_key.clone().ok_or_else(|| no_key_error(target))?;
        let target_column = |name: &str| {
            target.columns.iter().find(|c| c.name == name).cloned().ok_or_else(|| {
                FdwError::new(ErrorKind::InvalidParameterValue, format!("column \"{name}\" of import target \"{}\" cannot be written", target.relation))
                    .with_hint("Name columns of the target that are not generated.")
            })
        };
        let named: Option<Vec<Column>> = columns.map(|names| names.iter().map(|n| target_column(n)).collect()).transpose()?;
        let reader = match mode {
            ImportMode::Append => {
                return Err(FdwError::new(ErrorKind::Internal, "append imports insert rows; they have no change plan"))
            }
            ImportMode::Upsert => {
                let written = named.unwrap_or_else(|| {
                    target.columns.iter().filter(|c| source.columns.contains(&c.name)).cloned().collect()
                });
                Self::upsert_reader(&source, target, &key, written)?
            }
            ImportMode::Debezium => {
                let written = named.unwrap_or_else(|| target.columns.clone());
                Self::debezium_reader(&source, written)?
            }
        };
        Ok(ChangePlan { source, target: target.relation.clone(), constraint, key, key_equality, reader })
    }

    fn upsert_reader(source: &SourceShape, target: &TargetShape, key: &[String], written: Vec<Column>) -> FdwResult<Reader> {
        let mut values = Vec::new();
        for column in written {
            if !source.columns.contains(&column.name) {
                return Err(FdwError::new(
                    ErrorKind::InvalidParameterValue,
                    format!("import source \"{}\" has no column \"{}\"", source.relation, column.name),
                )
                .with_hint("In upsert mode the columns name source columns and the target columns they fill."));
            }
            values.push((column, ValueSource::SourceColumn));
        }
        for name in key {
            if values.iter().any(|(c, _)| &c.name == name) {
                continue;
            }
            let Some(key_column) = &source.key_column else {
                return Err(FdwError::new(
                    ErrorKind::InvalidParameterValue,
                    format!("nothing fills key column \"{name}\" of import target \"{}\"", target.relation),
                )
                .with_detail(format!(
                    "The import reads no source column \"{name}\", and \"{}\" has no text column with the option key 'true' to read a field \"{name}\" from.",
                    source.relation
                ))
                .with_hint("Name the source's key column (or a value column) as the key column, or add a key column to the source."));
            };
            let column = target.columns.iter().find(|c| &c.name == name).cloned().ok_or_else(|| no_key_error(target))?;
            values.push((column, ValueSource::KeyField(key_column.clone())));
        }
        let writes_a_value = values
            .iter()
            .any(|(c, from)| *from == ValueSource::SourceColumn && source.data_columns.iter().any(|d| d.name == c.name));
        if !writes_a_value {
            return Err(FdwError::new(
                ErrorKind::InvalidParameterValue,
                format!("an upsert of \"{}\" into \"{}\" reads no column of the messages' values", source.relation, target.relation),
            )
            .with_detail("A message whose value columns are all NULL is a tombstone; without value columns every message would be one.")
            .with_hint("Import at least one column read from the value (for a table of keys only, a raw or jsonb column of the whole value)."));
        }
        // A tombstone has no value at all: every data column of the source is NULL, not
        // only the ones written (a message whose written fields are null is an update).
        let value_columns = source.data_columns.iter().map(|d| d.name.clone()).collect();
        Ok(Reader::Upsert { values, value_columns })
    }

    fn debezium_reader(source: &SourceShape, written: Vec<Column>) -> FdwResult<Reader> {
        match source.data_columns.as_slice() {
            [only] if matches!(only.sql_type.as_str(), "jsonb" | "json") => {
                Ok(Reader::Debezium { envelope_column: only.name.clone(), written })
            }
            _ => Err(FdwError::new(
                ErrorKind::InvalidParameterValue,
                format!("a debezium import needs the whole value of \"{}\" in one jsonb column", source.relation),
            )
            .with_detail(format!("The source has {} columns read from the value.", source.data_columns.len()))
            .with_hint("Declare the source with format 'json' and one jsonb column besides its meta columns.")),
        }
    }

    /// The key columns, for messages.
    pub fn key(&self) -> &[String] {
        &self.key
    }

    /// The columns the batch reads besides partition and offset: the target's columns
    /// (cast to their types), whether the message deletes its key, and its problem.
    fn batch_columns(&self) -> String {
        let s = |name: &str| format!("s.{}", quote_ident(name));
        match &self.reader {
            Reader::Upsert { values, value_columns } => {
                let mut out: Vec<String> =
                    values.iter().map(|(column, from)| format!("{} AS {}", upsert_value(column, from), quote_ident(&column.name))).collect();
                let tombstone = value_columns.iter().map(|c| format!("{} IS NULL", s(c))).collect::<Vec<_>>().join(" AND ");
                out.push(format!("({tombstone}) AS {DELETES}"));
                out.push(format!("NULL::text AS {PROBLEM}"));
                out.join(", ")
            }
            Reader::Debezium { .. } => {
                let mut out: Vec<String> = self.written().into_iter().map(|n| format!("r.{}", quote_ident(n))).collect();
                out.push(format!("e.op = 'd' AS {DELETES}"));
                out.push(format!(
                    "CASE WHEN e.op = 't' THEN '{}' WHEN e.op IS NULL OR e.op NOT IN ('c', 'r', 'u', 'd') THEN '{}' END AS {PROBLEM}",
                    Problem::Truncate.code(),
                    Problem::NotAnEvent.code()
                ));
                out.join(", ")
            }
        }
    }

    /// The FROM clause of a batch: the source's messages that `batch_condition` selects
    /// (in a subquery, so that its names cannot clash with the target row's; PostgreSQL
    /// pulls it up, and the scan reads only the batch's ranges), and for Debezium the
    /// event's parts (`w.event`, `e.op`) and its row as the target's (`r`).
    fn batch_from(&self, batch_condition: &str) -> String {
        match &self.reader {
            Reader::Upsert { .. } => format!("(SELECT * FROM {} WHERE ({batch_condition})) s", self.source.relation),
            Reader::Debezium { envelope_column, .. } => format!(
                "{} CROSS JOIN LATERAL jsonb_populate_record(NULL::{}, {DEBEZIUM_ROW}) r",
                self.events_from(envelope_column, batch_condition),
                self.target
            ),
        }
    }

    /// The Debezium events (in `envelope_column`) of the messages `batch_condition`
    /// selects (`w.event`) and their `op` (`e.op`). A tombstone (no value) says nothing to
    /// a Debezium import: Kafka's log compaction uses it to drop the events of a deleted key.
    fn events_from(&self, envelope_column: &str, batch_condition: &str) -> String {
        let column = quote_ident(envelope_column);
        format!(
            "(SELECT * FROM {source} WHERE ({batch_condition}) AND {column} IS NOT NULL) s \
             CROSS JOIN LATERAL (SELECT CASE WHEN v ? 'schema' AND v ? 'payload' THEN kafka_fdw.debezium_payload(v) ELSE {schemaless} END AS event \
                                 FROM (SELECT CAST(s.{column} AS jsonb) AS v) raw) w \
             CROSS JOIN LATERAL (SELECT w.event ->> 'op' AS op) e",
            source = self.source.relation,
            schemaless = self.schemaless_event("v"),
        )
    }

    /// The expression of a Debezium event without its schema (`event`) whose values go
    /// into columns that may need Debezium's encodings undone (dates, times, numerics…:
    /// ColumnKind), converted by kafka_fdw.debezium_schemaless; the event itself if none do.
    fn schemaless_event(&self, event: &str) -> String {
        let Reader::Debezium { written, .. } = &self.reader else { return event.to_string() };
        let converted: Vec<&Column> = written.iter().filter(|c| ColumnKind::of(&c.sql_type, c.modifier).is_some()).collect();
        if converted.is_empty() {
            return event.to_string();
        }
        let texts = |values: Vec<String>| format!("ARRAY[{}]::text[]", values.join(", "));
        format!(
            "kafka_fdw.debezium_schemaless({event}, {}, {}, ARRAY[{}]::int[], {})",
            texts(converted.iter().map(|c| quote_literal(&c.name)).collect()),
            texts(converted.iter().map(|c| quote_literal(&c.sql_type)).collect()),
            converted.iter().map(|c| c.modifier.to_string()).collect::<Vec<_>>().join(", "),
            quote_literal(self.source.time_precision.name()),
        )
    }

    /// Statements that each convert one thing of the message at `partition` and
    /// `offset` as the batch statement does: first everything but the columns (the
    /// message read, a Debezium event unwrapped), then each written column alone, named.
    /// When the batch statement failed converting that message, the first that fails
    /// tells what failed (None: not a column).
    /// `of_topic`: the condition that keeps to the batch's topic, of a source over many.
    pub fn conversion_probes(&self, partition: i32, offset: i64, of_topic: Option<&str>) -> Vec<(Option<String>, String)> {
        let message = format!(
            "{} = {partition} AND {} = {offset}",
            quote_ident(&self.source.partition_column),
            quote_ident(&self.source.offset_column)
        );
        let condition = match of_topic {
            Some(of_topic) => format!("{of_topic} AND {message}"),
            None => message,
        };
        match &self.reader {
            Reader::Upsert { values, .. } => {
                let from = self.batch_from(&condition);
                std::iter::once((None, format!("SELECT 1 FROM {from}")))
                    .chain(values.iter().map(|(column, value)| {
                        (Some(column.name.clone()), format!("SELECT {} FROM {from}", upsert_value(column, value)))
                    }))
                    .collect()
            }
            Reader::Debezium { envelope_column, .. } => {
                let from = self.events_from(envelope_column, &condition);
                // e.op, unlike count(*), needs the event unwrapped.
                std::iter::once((None, format!("SELECT e.op FROM {from}")))
                    .chain(self.written().into_iter().map(|name| {
                        let field = quote_literal(name);
                        let probe = format!(
                            "SELECT (jsonb_populate_record(NULL::{}, jsonb_build_object({field}, {DEBEZIUM_ROW} -> {field}))).{} FROM {from}",
                            self.target,
                            quote_ident(name)
                        );
                        (Some(name.to_string()), probe)
                    }))
                    .collect()
            }
        }
    }

    /// The target columns written: for Debezium the named ones and the key.
    fn written(&self) -> Vec<&str> {
        match &self.reader {
            Reader::Upsert { values, .. } => values.iter().map(|(c, _)| c.name.as_str()).collect(),
            Reader::Debezium { written, .. } => {
                let mut names: Vec<&str> = written.iter().map(|c| c.name.as_str()).collect();
                for k in &self.key {
                    if !names.contains(&k.as_str()) {
                        names.push(k);
                    }
                }
                names
            }
        }
    }

    /// The statement that applies the messages `batch_condition` selects (a condition on
    /// the source's columns) to the target. It returns one row: the number of rows
    /// inserted, updated or deleted, and the partition, offset and problem code of the
    /// first message that could not be applied (NULL if none; the caller raises, which
    /// rolls the batch back). It notes the message of each row as it writes it
    /// (`kafka_fdw.writing_message`, in the filter of the rows the INSERT takes), so that
    /// a constraint the row violates names the message, and clears the note in its last
    /// column, evaluated after the counts and so after every write, before the AFTER
    /// triggers (foreign keys) run at the statement's end. The batch's partition is an
    /// integer whatever the source column's type (smallint, integer or bigint).
    pub fn statement(&self, batch_condition: &str) -> String {
        let keys: Vec<String> = self.key.iter().map(|k| quote_ident(k)).collect();
        let key_list = keys.join(", ");
        let key_missing = keys.iter().map(|k| format!("{k} IS NULL")).collect::<Vec<_>>().join(" OR ");
        let key_match =
            keys.iter().zip(&self.key_equality).map(|(k, equals)| format!("t.{k} {equals} newest.{k}")).collect::<Vec<_>>().join(" AND ");
        let written: Vec<String> = self.written().into_iter().map(quote_ident).collect();
        let updates: Vec<String> =
            written.iter().filter(|c| !keys.contains(c)).map(|c| format!("{c} = excluded.{c}")).collect();
        let on_conflict = if updates.is_empty() { "DO NOTHING".to_string() } else { format!("DO UPDATE SET {}", updates.join(", ")) };
        format!(
            "WITH batch AS MATERIALIZED (\
                 SELECT CAST(s.{partition} AS integer) AS {PARTITION}, s.{offset} AS {OFFSET}, {columns} \
                 FROM {from}), \
             newest AS (\
                 SELECT DISTINCT ON ({key_list}) * FROM batch WHERE {PROBLEM} IS NULL AND NOT ({key_missing}) \
                 ORDER BY {key_list}, {OFFSET} DESC), \
             deleted AS (\
                 DELETE FROM {target} t USING newest WHERE newest.{DELETES} AND {key_match} RETURNING 1), \
             written AS (\
                 INSERT INTO {target} ({written}) SELECT {written} FROM newest \
                 WHERE NOT newest.{DELETES} AND kafka_fdw.writing_message(newest.{PARTITION}, newest.{OFFSET}) \
                 ON CONFLICT ON CONSTRAINT {constraint} {on_conflict} RETURNING 1) \
             SELECT (SELECT count(*) FROM deleted) + (SELECT count(*) FROM written), \
                    unapplied.{PARTITION}, unapplied.{OFFSET}, unapplied.problem, \
                    kafka_fdw.writing_message(NULL, NULL) \
             FROM (SELECT 1) one LEFT JOIN LATERAL (\
                 SELECT {PARTITION}, {OFFSET}, coalesce({PROBLEM}, '{no_key}') AS problem FROM batch \
                 WHERE {PROBLEM} IS NOT NULL OR ({key_missing}) ORDER BY {PARTITION}, {OFFSET} LIMIT 1) unapplied ON true",
            partition = quote_ident(&self.source.partition_column),
            offset = quote_ident(&self.source.offset_column),
            columns = self.batch_columns(),
            from = self.batch_from(batch_condition),
            target = self.target,
            written = written.join(", "),
            constraint = quote_ident(&self.constraint),
            no_key = Problem::NoKey.code(),
        )
    }

    /// The error for the first message of a batch that could not be applied.
    pub fn problem_error(&self, mode: ImportMode, problem: Problem, topic: &str, partition: i32, offset: i64) -> FdwError {
        let at = format!("topic \"{topic}\", partition {partition}, offset {offset}");
        match problem {
            Problem::NoKey => FdwError::new(ErrorKind::BadMessageFormat, format!("Kafka message without a key at {at}"))
                .with_detail(format!(
                    "Importing into \"{}\" in {} mode needs a value for its key column(s) {}.",
                    self.target,
                    mode.name(),
                    self.key.iter().map(|k| quote_ident(k)).collect::<Vec<_>>().join(", ")
                ))
                .with_hint(match mode {
                    ImportMode::Debezium => "A Debezium delete event needs the key in \"before\", a create, read or update event the key in \"after\".",
                    _ => "Every message needs a key; a tombstone (no value) has only the message key, so read the key columns from the source's key column.",
                }),
            Problem::Truncate => FdwError::new(ErrorKind::FeatureNotSupported, format!("Debezium truncate event at {at}"))
                .with_detail(format!("The import does not truncate \"{}\".", self.target))
                .with_hint("Truncate the target yourself, then move past the event with kafka_fdw.reset_import or a new topic."),
            Problem::NotAnEvent => FdwError::new(ErrorKind::BadMessageFormat, format!("not a Debezium change event at {at}"))
                .with_detail("Its \"op\" is none of c, r, u, d and t.")
                .with_hint("A debezium import reads values in Debezium's JSON envelope (with or without the schema/payload wrapper)."),
        }
    }
}

/// Field `field` of a message key that is a JSON object (or Debezium's `schema`/`payload`
/// wrapper around one), as text: strings as they are, other values as JSON. None when the
/// key is not such an object or lacks the field.
pub fn key_field(key: &str, field: &str) -> Option<String> {
    let json: serde_json::Value = serde_json::from_str(key).ok()?;
    let object = match json.get("payload") {
        Some(payload) if json.get("schema").is_some() => payload,
        _ => &json,
    };
    match object.as_object()?.get(field)? {
        serde_json::Value::Null => None,
        serde_json::Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, sql_type: &str) -> Column {
        Column { name: name.into(), sql_type: sql_type.into(), modifier: -1 }
    }

    fn source(data: &[(&str, &str)], key_column: Option<&str>) -> SourceShape {
        let mut columns = vec!["part".to_string(), "offs".to_string()];
        columns.extend(key_column.map(String::from));
        columns.extend(data.iter().map(|(n, _)| n.to_string()));
        SourceShape {
            relation: "public.src".into(),
            partition_column: "part".into(),
            offset_column: "offs".into(),
            key_column: key_column.map(String::from),
            data_columns: data.iter().map(|(n, t)| column(n, t)).collect(),
            columns,
            time_precision: TimePrecision::Adaptive,
        }
    }

    fn target(columns: &[(&str, &str)], key: &[&str]) -> TargetShape {
        TargetShape {
            relation: "public.dst".into(),
            columns: columns.iter().map(|(n, t)| column(n, t)).collect(),
            primary_key: (!key.is_empty()).then(|| PrimaryKey {
                constraint: "dst_pkey".to_string(),
                columns: key.iter().map(|k| k.to_string()).collect(),
                equality: key.iter().map(|_| "OPERATOR(pg_catalog.=)".to_string()).collect(),
            }),
        }
    }

    #[test]
    fn modes_parse_and_reject_others() {
        assert_eq!(ImportMode::parse("upsert").unwrap(), ImportMode::Upsert);
        assert_eq!(ImportMode::parse("debezium").unwrap(), ImportMode::Debezium);
        assert_eq!(ImportMode::parse("append").unwrap(), ImportMode::Append);
        let error = ImportMode::parse("merge").unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidParameterValue);
        assert!(error.hint.unwrap().contains("\"upsert\""));
    }

    #[test]
    fn conversion_probes_read_one_message_and_convert_one_column_each() {
        let t = target(&[("id", "integer"), ("amount", "numeric")], &["id"]);
        let upsert = ChangePlan::new(ImportMode::Upsert, source(&[("amount", "text")], Some("k")), &t, None).unwrap();
        let probes = upsert.conversion_probes(2, 41, None);
        let names: Vec<Option<&str>> = probes.iter().map(|(c, _)| c.as_deref()).collect();
        assert_eq!(names, [None, Some("amount"), Some("id")]);
        assert!(probes.iter().all(|(_, sql)| sql.contains(r#"WHERE ("part" = 2 AND "offs" = 41)"#)), "{probes:?}");
        assert!(probes[1].1.starts_with(r#"SELECT CAST(s."amount" AS numeric) FROM"#), "{}", probes[1].1);
        assert!(probes[2].1.starts_with(r#"SELECT CAST(kafka_fdw.key_field(s."k", 'id') AS integer) FROM"#), "{}", probes[2].1);
        // Of a source over many topics, the message of the batch's topic.
        let of_topic = upsert.conversion_probes(2, 41, Some(r#""t" = 'orders'"#));
        assert!(of_topic.iter().all(|(_, sql)| sql.contains(r#"WHERE ("t" = 'orders' AND "part" = 2 AND "offs" = 41)"#)), "{of_topic:?}");

        let debezium = ChangePlan::new(ImportMode::Debezium, source(&[("value", "jsonb")], None), &t, None).unwrap();
        let probes = debezium.conversion_probes(0, 7, None);
        let names: Vec<Option<&str>> = probes.iter().map(|(c, _)| c.as_deref()).collect();
        assert_eq!(names, [None, Some("id"), Some("amount")]);
        // The first unwraps the event alone; the others populate one field each, never the whole row.
        assert!(probes[0].1.starts_with("SELECT e.op FROM"), "{}", probes[0].1);
        assert!(probes[2].1.contains("jsonb_build_object('amount', CASE WHEN e.op = 'd'"), "{}", probes[2].1);
        assert!(probes[2].1.contains(r#"))."amount" FROM"#), "{}", probes[2].1);
        assert!(probes.iter().all(|(_, sql)| !sql.contains("jsonb_populate_record(NULL::public.dst, CASE")), "{probes:?}");
    }

    #[test]
    fn a_target_without_primary_key_is_refused() {
        let error = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], Some("id")), &target(&[("id", "integer"), ("name", "text")], &[]), None)
            .unwrap_err();
        assert!(error.message.contains("has no primary key"), "{}", error.message);
        assert!(error.hint.unwrap().contains("mode => 'append'"));
    }

    #[test]
    fn key_columns_come_from_same_named_columns_or_the_key_fields() {
        let t = target(&[("region", "text"), ("id", "integer"), ("name", "text")], &["region", "id"]);
        let plan = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], Some("k")), &t, None).unwrap();
        let sql = plan.statement("part = 0");
        assert!(sql.contains(r#"CAST(kafka_fdw.key_field(s."k", 'region') AS text) AS "region""#), "{sql}");
        assert!(sql.contains(r#"CAST(kafka_fdw.key_field(s."k", 'id') AS integer) AS "id""#), "{sql}");
        assert!(sql.contains(r#"(s."name" IS NULL) AS "kafka_fdw deletes""#), "{sql}");
        assert!(sql.contains(r#"ON CONFLICT ON CONSTRAINT "dst_pkey" DO UPDATE SET "name" = excluded."name""#), "{sql}");
        assert!(sql.contains(r#"t."region" OPERATOR(pg_catalog.=) newest."region" AND t."id" OPERATOR(pg_catalog.=) newest."id""#), "{sql}");
        assert!(sql.contains("(SELECT * FROM public.src WHERE (part = 0)) s"), "{sql}");
        // Each row's message is noted as the INSERT takes it, the note cleared last.
        assert!(
            sql.contains(r#"FROM newest WHERE NOT newest."kafka_fdw deletes" AND kafka_fdw.writing_message(newest."kafka_fdw partition", newest."kafka_fdw offset") ON CONFLICT"#),
            "{sql}"
        );
        assert!(sql.contains(r#"unapplied.problem, kafka_fdw.writing_message(NULL, NULL) FROM"#), "{sql}");
        assert!(sql.contains(r#"SELECT CAST(s."part" AS integer) AS "kafka_fdw partition""#), "{sql}");

        // A source column of the key's name is read instead (here the key meta column).
        let t = target(&[("id", "integer"), ("name", "text")], &["id"]);
        let plan = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], Some("id")), &t, None).unwrap();
        assert!(plan.statement("true").contains(r#"CAST(s."id" AS integer) AS "id""#));
    }

    #[test]
    fn an_unfillable_key_or_no_value_column_is_refused() {
        let t = target(&[("id", "integer"), ("name", "text")], &["id"]);
        let error = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], None), &t, None).unwrap_err();
        assert!(error.message.contains("nothing fills key column \"id\""), "{}", error.message);
        let only_key = target(&[("id", "text")], &["id"]);
        let error = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], Some("id")), &only_key, None).unwrap_err();
        assert!(error.message.contains("reads no column of the messages' values"), "{}", error.message);
        let error = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], Some("id")), &t, Some(&["nope".to_string()]))
            .unwrap_err();
        assert!(error.message.contains("column \"nope\""), "{}", error.message);
    }

    #[test]
    fn all_key_columns_make_do_nothing() {
        let t = target(&[("id", "integer"), ("name", "text")], &["id", "name"]);
        let plan = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], Some("id")), &t, None).unwrap();
        assert!(plan.statement("true").contains("DO NOTHING"));
    }

    #[test]
    fn debezium_reads_one_envelope_column_into_the_target_row() {
        let t = target(&[("id", "integer"), ("name", "text")], &["id"]);
        let plan = ChangePlan::new(ImportMode::Debezium, source(&[("value", "jsonb")], Some("k")), &t, None).unwrap();
        let sql = plan.statement("true");
        assert!(sql.contains("jsonb_populate_record(NULL::public.dst"), "{sql}");
        assert!(sql.contains(r#"WHERE (true) AND "value" IS NOT NULL) s"#), "{sql}");
        assert!(sql.contains(r#"e.op = 'd' AS "kafka_fdw deletes""#), "{sql}");
        let error =
            ChangePlan::new(ImportMode::Debezium, source(&[("a", "jsonb"), ("b", "int")], None), &t, None).unwrap_err();
        assert!(error.message.contains("in one jsonb column"), "{}", error.message);
    }

    #[test]
    fn problems_name_the_message() {
        let t = target(&[("id", "integer"), ("name", "text")], &["id"]);
        let plan = ChangePlan::new(ImportMode::Upsert, source(&[("name", "text")], Some("id")), &t, None).unwrap();
        let error = plan.problem_error(ImportMode::Upsert, Problem::from_code("no key").unwrap(), "t", 2, 40);
        assert_eq!(error.message, "Kafka message without a key at topic \"t\", partition 2, offset 40");
        assert!(error.detail.unwrap().contains("\"id\""));
        let error = plan.problem_error(ImportMode::Debezium, Problem::Truncate, "t", 0, 1);
        assert_eq!(error.kind, ErrorKind::FeatureNotSupported);
        assert_eq!(Problem::from_code("other"), None);
    }

    #[test]
    fn key_fields_read_json_objects_and_debezium_wrappers() {
        assert_eq!(key_field(r#"{"id": 7, "region": "eu"}"#, "id").as_deref(), Some("7"));
        assert_eq!(key_field(r#"{"id": 7, "region": "eu"}"#, "region").as_deref(), Some("eu"));
        assert_eq!(key_field(r#"{"schema": {}, "payload": {"id": 7}}"#, "id").as_deref(), Some("7"));
        assert_eq!(key_field(r#"{"id": null}"#, "id"), None);
        assert_eq!(key_field("not json", "id"), None);
        assert_eq!(key_field("42", "id"), None);
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b'c"), "E'a\\\\b''c'");
    }
}
