//! The import modes `upsert` and `debezium` (src/plan/changes.rs): kafka_fdw.import
//! (sql/import.sql) calls [`apply_changes`] once per batch, in its own transaction, so
//! the changes and the stored offsets commit together as the appended rows do.
//!
//! Everything runs as the caller: PostgreSQL checks its INSERT, UPDATE and DELETE rights
//! on the target and SELECT on the source when the batch's statement runs.

use pgrx::prelude::*;
use pgrx::spi::quote_qualified_identifier;
use pgrx::PgRelation;

use crate::api::topics::{kafka_table, meta_column_names};
use crate::codec::debezium::{self, ColumnKind, TimePrecision};
use crate::codec::ColumnType;
use crate::error::{ErrorKind, FdwError};
use crate::options::layout::ColumnSource;
use crate::options::{MetaColumn, OnError};
use crate::pg::catalog::ForeignTableDef;
use crate::pg::errors::{codec_kind, raise, OrInternal, OrRaise};
use crate::pg::row_errors::{self, MessageAt};
use crate::pg::subtransaction;
use crate::plan::changes::{self, ChangePlan, Column, ImportMode, PrimaryKey, Problem, SourceShape, TargetShape};

/// Name, type and attribute number of each live column of a relation (generated
/// columns left out where `writable`).
fn columns_of(relation: pg_sys::Oid, writable: bool) -> Vec<(i16, Column)> {
    Spi::connect(|client| {
        let rows = client.select(
            // The type without its modifier: an explicit cast to varchar(n) would cut
            // values (and keys) short where INSERT's assignment raises.
            "SELECT attnum, attname::text, format_type(atttypid, NULL), atttypmod FROM pg_catalog.pg_attribute
             WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND (NOT $2 OR attgenerated = '')
             ORDER BY attnum",
            None,
            &[relation.into(), writable.into()],
        )?;
        rows.map(|row| {
            Ok((
                row.get::<i16>(1)?.unwrap_or_default(),
                Column {
                    name: row.get::<String>(2)?.unwrap_or_default(),
                    sql_type: row.get::<String>(3)?.unwrap_or_default(),
                    modifier: row.get::<i32>(4)?.unwrap_or(-1),
                },
            ))
        })
        .collect::<Result<Vec<_>, pgrx::spi::Error>>()
    })
    .or_internal("could not read the columns of an import's tables")
}

/// The primary key: its name, columns, and each column's equality operator (the one of
/// its index's operator class, as ON CONFLICT compares keys).
fn primary_key(relation: pg_sys::Oid) -> Option<PrimaryKey> {
    Spi::connect(|client| {
        let rows = client.select(
            "SELECT c.conname::text, pg_catalog.array_agg(a.attname::text ORDER BY k.n),
                    pg_catalog.array_agg(pg_catalog.format('OPERATOR(%I.%s)', opn.nspname, op.oprname) ORDER BY k.n)
             FROM pg_catalog.pg_constraint c
             CROSS JOIN LATERAL pg_catalog.unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
             JOIN pg_catalog.pg_index i ON i.indexrelid = c.conindid
             JOIN pg_catalog.pg_opclass oc ON oc.oid = i.indclass[(k.n - 1)::int]
             JOIN pg_catalog.pg_amop ao ON ao.amopfamily = oc.opcfamily AND ao.amopstrategy = 3
                                       AND ao.amoplefttype = oc.opcintype AND ao.amoprighttype = oc.opcintype
             JOIN pg_catalog.pg_operator op ON op.oid = ao.amopopr
             JOIN pg_catalog.pg_namespace opn ON opn.oid = op.oprnamespace
             WHERE c.conrelid = $1 AND c.contype = 'p'
             GROUP BY c.conname",
            None,
            &[relation.into()],
        )?;
        let mut found = None;
        for row in rows {
            if let (Some(constraint), Some(columns), Some(equality)) =
                (row.get::<String>(1)?, row.get::<Vec<String>>(2)?, row.get::<Vec<String>>(3)?)
            {
                found = Some(PrimaryKey { constraint, columns, equality });
            }
        }
        Ok::<_, pgrx::spi::Error>(found)
    })
    .or_internal("could not read the primary key of an import's target")
}

fn qualified_name(relation: &PgRelation) -> String {
    quote_qualified_identifier(relation.namespace(), relation.name())
}

/// The plan of an import in `mode` (not append), and the source's definition.
fn change_plan(source: &PgRelation, target: &PgRelation, columns: Option<Vec<String>>, mode: ImportMode) -> (ChangePlan, ForeignTableDef) {
    let definition = kafka_table(source);
    if definition.table.on_error == OnError::Null || definition.layout.has_junk_columns() {
        raise(
            FdwError::new(
                ErrorKind::InvalidParameterValue,
                format!("kafka_fdw.import in mode {} cannot read \"{}\", which turns bad messages into NULLs", mode.name(), source.name()),
            )
            .with_detail("An unreadable message would read as a tombstone and delete its key's row.")
            .with_hint("Drop the option ignore_junk and the junk columns of the source (on_error 'skip' may stay), or import with mode => 'append'."),
        )
    }
    let (Some(partition_column), Some(offset_column)) = meta_column_names(&definition, source) else {
        raise(
            FdwError::new(ErrorKind::InvalidParameterValue, format!("kafka_fdw.import needs the partition and offset columns of \"{}\"", source.name()))
                .with_hint("Add columns with the options partition 'true' and offset 'true' to the foreign table."),
        )
    };
    let mut shape = SourceShape {
        relation: qualified_name(source),
        partition_column,
        offset_column,
        key_column: None,
        data_columns: Vec::new(),
        columns: Vec::new(),
        time_precision: definition.table.time_precision,
    };
    for (attnum, column) in columns_of(source.oid(), false) {
        match definition.layout.columns.get(attnum as usize - 1) {
            Some(ColumnSource::Field(_)) => shape.data_columns.push(column.clone()),
            Some(ColumnSource::Meta(MetaColumn::Key, ColumnType::Text)) => shape.key_column = Some(column.name.clone()),
            _ => {}
        }
        shape.columns.push(column.name);
    }
    let target_shape = TargetShape {
        relation: qualified_name(target),
        columns: columns_of(target.oid(), true).into_iter().map(|(_, c)| c).collect(),
        primary_key: primary_key(target.oid()),
    };
    let plan = ChangePlan::new(mode, shape, &target_shape, columns.as_deref()).or_raise();
    (plan, definition)
}

/// Checks that `source` can be imported into `target` in `mode` (the target's key, the
/// columns that fill it), raising what is wrong, before any message is read.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn check_import_mode(source: PgRelation, target: PgRelation, columns: Option<Vec<String>>, mode: &str) {
    check_mode(&source, &target, columns, mode);
}

/// See [`check_import_mode`].
pub(super) fn check_mode(source: &PgRelation, target: &PgRelation, columns: Option<Vec<String>>, mode: &str) {
    let mode = ImportMode::parse(mode).or_raise();
    if mode != ImportMode::Append {
        change_plan(source, target, columns, mode);
    }
}

/// Applies the messages of `source` that `batch` (a condition on its partition and
/// offset columns) selects to `target`, in `mode` 'upsert' or 'debezium', and returns the
/// number of rows inserted, updated or deleted. A message that cannot be applied raises
/// an ERROR naming it.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn apply_changes(source: PgRelation, target: PgRelation, columns: Option<Vec<String>>, mode: &str, batch: &str) -> i64 {
    let topic = kafka_table(&source).single_topic("kafka_fdw.apply_changes").to_string();
    apply(&source, &target, columns, mode, batch, &topic, None)
}

/// See [`apply_changes`]: `batch` reads messages of `topic` only; `of_topic`, the condition
/// on the source's topic column that keeps to them (a source over many topics).
pub(super) fn apply(
    source: &PgRelation,
    target: &PgRelation,
    columns: Option<Vec<String>>,
    mode: &str,
    batch: &str,
    topic: &str,
    of_topic: Option<&str>,
) -> i64 {
    let mode = ImportMode::parse(mode).or_raise();
    let (plan, _) = change_plan(source, target, columns, mode);
    row_errors::forget();
    row_errors::writing_batch_of(Some((source.oid(), topic.into())));
    let applied = subtransaction::attempt(|| {
        Spi::connect_mut(|client| {
            let mut rows = client.update(&plan.statement(batch), None, &[])?;
            let row = rows.next().ok_or(pgrx::spi::Error::InvalidPosition)?;
            Ok::<_, pgrx::spi::Error>((
                row.get::<i64>(1)?.unwrap_or_default(),
                row.get::<i32>(2)?,
                row.get::<i64>(3)?,
                row.get::<String>(4)?,
            ))
        })
        .or_internal("could not apply a batch of changes")
    });
    row_errors::writing_batch_of(None);
    // A value the statement refused converting a message's row: the column is the first
    // whose conversion fails alone.
    let first_refused_column = |at: &MessageAt| {
        plan.conversion_probes(at.partition, at.offset, of_topic)
            .into_iter()
            .find(|(_, probe)| subtransaction::attempt(|| Spi::run(probe)).is_err())
            .and_then(|(column, _)| column)
    };
    let (changed, partition, offset, problem) =
        applied.unwrap_or_else(|report| row_errors::raise_naming_the_message(report, first_refused_column));
    if let (Some(partition), Some(offset), Some(code)) = (partition, offset, problem) {
        let problem = Problem::from_code(&code).unwrap_or(Problem::NotAnEvent);
        raise(plan.problem_error(mode, problem, topic, partition, offset));
    }
    changed
}

/// The row of the message at `partition` and `offset` is written now by the batch
/// statement of an upsert or debezium import ([`apply`]), so that an ERROR raised writing
/// it (a constraint, a BEFORE trigger) names the message; NULL: the writes are done, and
/// an ERROR after them (a foreign key checked at the statement's end) is about no one
/// message. Outside such a statement it notes nothing. Always true: the statement calls
/// it as a filter of the rows it writes.
#[pg_extern(schema = "kafka_fdw", volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn writing_message(partition: Option<i32>, offset: Option<i64>) -> bool {
    match (partition, offset) {
        (Some(partition), Some(offset)) => row_errors::written(partition, offset),
        _ => row_errors::forget(),
    }
    true
}

/// A Debezium change event without its schema (the JsonConverter's
/// `schemas.enable=false`), its `before` and `after` values converted for the columns
/// `names` (of types `types`, as format_type names them without modifier, and type
/// modifiers `modifiers`) that take Debezium's encodings of them: days into dates, counts
/// of `time_precision`'s unit (Debezium's time.precision.mode) into times and
/// timestamps, base64 into numerics and bytea, JSON text into JSON
/// (src/codec/debezium.rs). The debezium mode reads such events through it.
#[pg_extern(schema = "kafka_fdw", immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn debezium_schemaless(event: pgrx::JsonB, names: Vec<String>, types: Vec<String>, modifiers: Vec<i32>, time_precision: &str) -> pgrx::JsonB {
    let precision = TimePrecision::parse(time_precision).unwrap_or_else(|| {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid time precision mode: \"{time_precision}\""))
            .with_hint(TimePrecision::valid_modes_hint()))
    });
    let columns: Vec<(String, ColumnKind)> = names
        .into_iter()
        .zip(types.iter().zip(modifiers))
        .filter_map(|(name, (sql_type, modifier))| Some((name, ColumnKind::of(sql_type, modifier)?)))
        .collect();
    match debezium::schemaless_event(event.0, &columns, precision) {
        Ok(converted) => pgrx::JsonB(converted),
        Err(reason) => raise(
            FdwError::new(codec_kind(&reason), format!("invalid value in a Debezium change event: {reason}"))
                .with_hint("Without its schema, a value is read by its column's type; see the README's Debezium conversions."),
        ),
    }
}

/// Field `field` of a message key holding a JSON object (Debezium's `schema`/`payload`
/// wrapper unwrapped), as text; NULL if the key is no such object or lacks the field.
/// The upsert mode reads key columns with it.
#[pg_extern(schema = "kafka_fdw", immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn key_field(key: &str, field: &str) -> Option<String> {
    changes::key_field(key, field)
}

/// A Debezium change event with its Kafka Connect schema (`{"schema": …, "payload": …}`,
/// the JsonConverter's `schemas.enable=true`): its payload, the values of its `before` and
/// `after` rows converted by their fields' semantic types into what PostgreSQL's input
/// functions read (dates from days, timestamps from micro- or milliseconds, Connect
/// decimals from their bytes; src/codec/debezium.rs). The debezium mode reads such
/// events through it.
#[pg_extern(schema = "kafka_fdw", immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn debezium_payload(event: pgrx::JsonB) -> pgrx::JsonB {
    match debezium::payload(&event.0) {
        Ok(payload) => pgrx::JsonB(payload),
        Err(reason) => raise(
            FdwError::new(codec_kind(&reason), format!("invalid value in a Debezium change event: {reason}"))
                .with_hint("The event's schema gives each field's type; see the README's Debezium conversions."),
        ),
    }
}
