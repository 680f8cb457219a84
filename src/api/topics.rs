//! SQL functions that ask Kafka about a table's topic or a server's topics.

use pgrx::prelude::*;
use pgrx::datetime::TimestampWithTimeZone;
use pgrx::PgRelation;

use crate::pg::catalog::{self, ForeignTableDef};
use crate::kafka;
use crate::options::layout::ColumnSource;
use crate::options::{self, MetaColumn};
use crate::pg::errors::{raise, OrRaise};
use crate::plan;
use crate::pg::privileges::{self, Columns};
use crate::pg::clients::TopicClient;

/// The definition of a Kafka foreign table, or an ERROR saying it is not one.
pub(crate) fn kafka_table(source: &PgRelation) -> ForeignTableDef {
    // SAFETY: the relation is open (PgRelation holds a lock on it).
    unsafe {
        if !catalog::is_kafka_table(source.oid()) {
            raise(crate::error::FdwError::new(
                crate::error::ErrorKind::InvalidParameterValue,
                format!("\"{}\" is not a kafka_fdw foreign table", source.name()),
            ));
        }
        catalog::foreign_table(source.as_ptr())
    }
}

/// The definition of a Kafka foreign table the current user may SELECT from (as
/// `count(*)` would need: the table, or any of its columns).
fn readable_kafka_table(source: &PgRelation) -> ForeignTableDef {
    privileges::require_relation_privilege(source.oid(), pg_sys::ACL_SELECT as pg_sys::AclMode, Columns::Any);
    kafka_table(source)
}

/// Low and high watermarks of every partition of a foreign table's topic.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn watermarks(
    source: PgRelation,
) -> TableIterator<'static, (name!(partition, i32), name!(low, i64), name!(high, i64))> {
    TableIterator::new(watermark_rows(&source))
}

/// Per topic the table reads now (of a list, those that exist; of a pattern, those it
/// matches), the low and high watermarks of every partition: [`watermarks`] for tables
/// over many topics too.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn topic_watermarks(
    source: PgRelation,
) -> TableIterator<'static, (name!(topic, String), name!(partition, i32), name!(low, i64), name!(high, i64))> {
    let definition = readable_kafka_table(&source);
    let client = TopicClient::for_topic(&definition, "");
    let (topics, _) = client.existing_topics_of(&definition);
    let mut rows = Vec::new();
    for topic in topics {
        rows.extend(client.watermarks_of(&topic).into_iter().map(|w| (topic.clone(), w.partition, w.low, w.high)));
    }
    TableIterator::new(rows)
}

/// The offsets Kafka consumer group `group_id` has committed for a foreign table's topic,
/// per partition, with the high watermark and the lag between them, as `kafka-consumer-groups
/// --describe` shows them (`committed` and `lag` NULL where the group has no offset): an
/// import with `group_id` commits its progress there.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn group_offsets(
    source: PgRelation,
    group_id: &str,
) -> TableIterator<'static, (name!(partition, i32), name!(committed, Option<i64>), name!(high, i64), name!(lag, Option<i64>))> {
    let client = TopicClient::for_table(&readable_kafka_table(&source), "kafka_fdw.group_offsets");
    let marks = client.all_watermarks();
    let partitions: Vec<i32> = marks.iter().map(|w| w.partition).collect();
    let committed = kafka::group_offsets(client.consumer.client(), &client.settings, group_id, &client.topic, &partitions).or_raise();
    TableIterator::new(marks.into_iter().map(move |w| {
        let offset = committed.iter().find(|(partition, _)| *partition == w.partition).map(|&(_, offset)| offset);
        (w.partition, offset, w.high, offset.map(|offset| (w.high - offset).max(0)))
    }))
}

/// adjust/kafka_fdw's name and columns for [`watermarks`], in the extension's schema as
/// adjust's is (`SELECT * FROM kafka_get_watermarks('t')`).
#[pg_extern]
#[search_path(pg_catalog, pg_temp)]
fn kafka_get_watermarks(
    rel: PgRelation,
) -> TableIterator<'static, (name!(partition, i32), name!(offset_low, i64), name!(offset_high, i64))> {
    TableIterator::new(watermark_rows(&rel))
}

/// Partition, low and high watermark of every partition of a foreign table's topic, if
/// the current user may read the table.
fn watermark_rows(source: &PgRelation) -> Vec<(i32, i64, i64)> {
    let marks = TopicClient::for_table(&readable_kafka_table(source), "kafka_fdw.watermarks").all_watermarks();
    marks.into_iter().map(|w| (w.partition, w.low, w.high)).collect()
}

/// Per partition, the offset of the first message at or after `at` (NULL: none yet).
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn offsets_for_time(
    source: PgRelation,
    at: TimestampWithTimeZone,
) -> TableIterator<'static, (name!(partition, i32), name!(offset, Option<i64>))> {
    let client = TopicClient::for_table(&readable_kafka_table(&source), "kafka_fdw.offsets_for_time");
    // Kafka timestamps are whole milliseconds: the first one at or after `at`.
    let (_, unix_ms) = plan::millisecond_bounds(at.into_inner());
    let offsets =
        kafka::offsets_for_time(client.consumer.client(), &client.settings, &client.topic, &client.partitions(), unix_ms)
            .or_raise();
    TableIterator::new(offsets)
}

/// The topics of a server, with their partition and message counts. Internal topics
/// (names starting with `__`) only when asked for.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn topics(
    server: &str,
    include_internal: default!(bool, false),
) -> TableIterator<'static, (name!(topic, String), name!(partitions, i32), name!(messages, i64))> {
    let server_name = std::ffi::CString::new(server).unwrap_or_default();
    // SAFETY: catalog lookups inside a transaction; GetForeignServerByName raises on a
    // missing server when missing_ok is false.
    let (server_id, server_options) = unsafe {
        let server = pg_sys::GetForeignServerByName(server_name.as_ptr(), false);
        (
            (*server).serverid,
            options::parse_server(&catalog::def_elems((*server).options)).or_raise(),
        )
    };
    privileges::require_server_usage(server_id, server);
    let TopicClient { settings, consumer, .. } = TopicClient::for_server(server_id, &server_options);
    let listed = kafka::all_topics(consumer.client(), &settings).or_raise();
    let mut rows = Vec::new();
    for (topic, partitions) in listed {
        if topic.starts_with("__") && !include_internal {
            continue;
        }
        let marks = kafka::watermarks(consumer.client(), &settings, &topic, &partitions).or_raise();
        let messages = marks.iter().map(|w| w.high - w.low).sum();
        rows.push((topic, partitions.len() as i32, messages));
    }
    rows.sort();
    TableIterator::new(rows)
}

/// The names of a foreign table's partition and offset columns (NULL where it has none),
/// for SQL that builds queries on them.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn meta_columns(
    source: PgRelation,
) -> TableIterator<'static, (name!(partition_column, Option<String>), name!(offset_column, Option<String>))> {
    TableIterator::once(meta_column_names(&kafka_table(&source), &source))
}

/// The names of the partition and offset columns of a Kafka foreign table.
pub(crate) fn meta_column_names(definition: &ForeignTableDef, source: &PgRelation) -> (Option<String>, Option<String>) {
    (meta_column_name(definition, source, MetaColumn::Partition), meta_column_name(definition, source, MetaColumn::Offset))
}

/// The name of a Kafka foreign table's `meta` column, if it has one.
pub(crate) fn meta_column_name(definition: &ForeignTableDef, source: &PgRelation, meta: MetaColumn) -> Option<String> {
    let position = definition.layout.columns.iter().position(|c| matches!(c, ColumnSource::Meta(m, _) if *m == meta))?;
    source.tuple_desc().get(position).map(|attr| attr.name().to_string())
}
