//! The exactly-once import: `kafka_fdw.import` and its helpers (the progress table and
//! status view are sql/import.sql), its jobs (a task each, `tasks.rs`), the upsert and
//! debezium modes (`changes`), and its COPY paths (`copy`: a query's rows, `query_rows`,
//! or CSV messages as lines, `message_lines`).
//!
//! `kafka_fdw.import` runs as its caller: PostgreSQL checks the caller's SELECT on the
//! source and INSERT on the target as for any query. Its bookkeeping, the table
//! `kafka_fdw.import_progress`, no normal role may write: the functions here check that
//! the caller could run the import, then write it as the extension. A scheduled import
//! ([`start_import`]) is a task (`tasks.rs`), each run a session of its owner.

use pgrx::datum::Interval;
use pgrx::prelude::*;
use pgrx::spi::quote_qualified_identifier;
use pgrx::PgRelation;

use crate::pg::catalog::ForeignTableDef;
use crate::api::topics::{kafka_table, meta_column_name, meta_column_names};
use crate::codec::Format;
use crate::options::MetaColumn;
use crate::kafka::{self, ReadRange, Watermarks};
use crate::error::{ErrorKind, FdwError};
use crate::pg::errors::{raise, OrInternal, OrRaise};
use crate::pg::privileges::{self, Columns};
use crate::plan::changes::ImportMode;
use crate::plan::progress::{self, CurrentTopic, OnReset, StoredOffset};
use crate::pg::clients::{client_key, table_client_settings, TopicClient};
use crate::pg::locks;
use crate::api::tasks::{self, Task};

pub mod changes;
mod copy;
mod group_offsets;
mod message_lines;
mod query_rows;

use copy::InsertPath;
use group_offsets::GroupCommit;

fn qualified_name(relation: &PgRelation) -> String {
    quote_qualified_identifier(relation.namespace(), relation.name())
}

/// The source's definition, after raising PostgreSQL's permission error unless the
/// current user may read the source's partition and offset columns and insert into the
/// target: the least an import of this pair needs. Reading or changing the pair's
/// progress needs as much.
fn require_import_privileges(source: &PgRelation, target: &PgRelation) -> ForeignTableDef {
    let definition = kafka_table(source);
    let (partition, offset) = meta_column_names(&definition, source);
    let meta: Vec<i16> = [partition, offset].into_iter().flatten().map(|name| privileges::attnum(source.oid(), &name)).collect();
    privileges::require_relation_privilege(source.oid(), pg_sys::ACL_SELECT as pg_sys::AclMode, Columns::Each(&meta));
    privileges::require_relation_privilege(target.oid(), pg_sys::ACL_INSERT as pg_sys::AclMode, Columns::Any);
    definition
}

/// The stored offsets of a source and target.
fn stored_offsets(source: pg_sys::Oid, target: pg_sys::Oid) -> Vec<StoredOffset> {
    privileges::as_extension(|| {
        Spi::connect(|client| {
            let rows = client.select(
                "SELECT partition, next_offset, topic, topic_id, cluster FROM kafka_fdw.import_progress WHERE source = $1 AND target = $2",
                None,
                &[source.into(), target.into()],
            )?;
            rows.map(|row| {
                Ok(StoredOffset {
                    partition: row.get::<i32>(1)?.unwrap_or_default(),
                    next_offset: row.get::<i64>(2)?.unwrap_or_default(),
                    topic: row.get::<String>(3)?.unwrap_or_default(),
                    topic_id: row.get::<String>(4)?,
                    cluster: row.get::<String>(5)?,
                })
            })
            .collect::<Result<Vec<_>, pgrx::spi::Error>>()
        })
        .or_internal("could not read kafka_fdw.import_progress")
    })
}

/// Which topic stored offsets belong to.
struct TopicIdentity<'a> {
    topic: &'a str,
    topic_id: Option<&'a str>,
    cluster: Option<&'a str>,
}

/// Whose stored offsets [`store_offsets`] replaces.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Replacing {
    /// The pair's: a source of one topic keeps the offsets of that topic only (those of a
    /// topic it read before go).
    Pair,
    /// The topic's: a source over many topics keeps each topic's.
    Topic,
}

impl Replacing {
    /// What storing a topic's offsets replaces for the source `definition`.
    fn for_source(definition: &ForeignTableDef) -> Replacing {
        if definition.table.topics.single().is_some() { Replacing::Pair } else { Replacing::Topic }
    }
}

/// Replaces the stored offsets of a source and target (of the pair, or of topic `of`
/// only) with `offsets` (partition, next offset) of topic `of`.
fn store_offsets(source: pg_sys::Oid, target: pg_sys::Oid, of: TopicIdentity<'_>, offsets: &[(i32, i64)], replacing: Replacing) {
    let partitions: Vec<i32> = offsets.iter().map(|o| o.0).collect();
    let next_offsets: Vec<i64> = offsets.iter().map(|o| o.1).collect();
    privileges::as_extension(|| {
        Spi::connect_mut(|client| {
            // Offsets of partitions (or topics) the import no longer reads go.
            let stale = match replacing {
                Replacing::Pair => "(topic <> $3 OR partition <> ALL ($4))",
                Replacing::Topic => "topic = $3 AND partition <> ALL ($4)",
            };
            client.update(
                &format!("DELETE FROM kafka_fdw.import_progress WHERE source = $1 AND target = $2 AND {stale}"),
                None,
                &[source.into(), target.into(), of.topic.into(), partitions.clone().into()],
            )?;
            client.update(
                "INSERT INTO kafka_fdw.import_progress AS p (source, target, partition, next_offset, topic, topic_id, cluster, imported_at)
                 SELECT $1, $2, stored.partition, stored.next_offset, $3, $4, $5, now()
                 FROM unnest($6::int[], $7::bigint[]) AS stored(partition, next_offset)
                 ON CONFLICT ON CONSTRAINT import_progress_pkey DO UPDATE
                     SET next_offset = excluded.next_offset, topic = excluded.topic, topic_id = excluded.topic_id,
                         cluster = excluded.cluster,
                         imported_at = CASE WHEN excluded.next_offset <> p.next_offset THEN excluded.imported_at ELSE p.imported_at END",
                None,
                &[
                    source.into(),
                    target.into(),
                    of.topic.into(),
                    of.topic_id.into(),
                    of.cluster.into(),
                    partitions.into(),
                    next_offsets.into(),
                ],
            )?;
            Ok::<_, pgrx::spi::Error>(())
        })
        .or_internal("could not write kafka_fdw.import_progress")
    })
}

/// A table's topic as the cluster describes it now.
struct TopicNow {
    topic: String,
    topic_id: Option<String>,
    /// The cluster id the brokers reported (tansu and the mock cluster report one; very
    /// old brokers do not).
    cluster: Option<String>,
    marks: Vec<Watermarks>,
}

impl TopicNow {
    fn of(client: &TopicClient, topic: &str) -> TopicNow {
        let (settings, consumer) = (&client.settings, client.consumer.client());
        let description = kafka::describe(consumer, settings, topic).or_raise();
        let marks = kafka::watermarks(consumer, settings, topic, &description.partitions).or_raise();
        // Asked after the other requests, so librdkafka usually knows it already.
        let cluster = kafka::cluster_id(consumer, std::time::Duration::from_millis(1000));
        TopicNow { topic: topic.to_string(), topic_id: description.topic_id, cluster, marks }
    }

    fn identity(&self) -> TopicIdentity<'_> {
        TopicIdentity { topic: &self.topic, topic_id: self.topic_id.as_deref(), cluster: self.cluster.as_deref() }
    }
}

/// Where the next import of `source` into `target` starts and ends, per partition: from
/// the stored offsets (checked against the topic now, see `progress::resume_points`) to
/// the high watermarks. Raises on a detected reset unless `on_reset` is 'earliest'.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn import_plan(
    source: PgRelation,
    target: PgRelation,
    on_reset: default!(&str, "'error'"),
) -> TableIterator<
    'static,
    (
        name!(partition, i32),
        name!(start_offset, i64),
        name!(end_offset, i64),
        name!(topic, String),
        name!(topic_id, Option<String>),
        name!(cluster, Option<String>),
    ),
> {
    let definition = require_import_privileges(&source, &target);
    let mut rows = Vec::new();
    for TopicImport { now, ranges } in resume_topics(&source, &target, &definition, on_reset) {
        let TopicNow { topic, topic_id, cluster, .. } = now;
        rows.extend(ranges.into_iter().map(|r| (r.partition, r.start, r.end, topic.clone(), topic_id.clone(), cluster.clone())));
    }
    TableIterator::new(rows)
}

/// One topic of an import: the topic as the cluster describes it now, and where the
/// import starts and ends in each of its partitions.
struct TopicImport {
    now: TopicNow,
    ranges: Vec<ReadRange>,
}

/// See [`import_plan`]: the ranges of each topic the source reads now. `definition` is
/// the source's, after `require_import_privileges`. Of a source over many topics, each
/// topic resumes from its own stored offsets (a new one from its oldest message), and a
/// topic that is gone (or no longer one of the table's) is a WARNING, its offsets kept:
/// the others are imported.
fn resume_topics(source: &PgRelation, target: &PgRelation, definition: &ForeignTableDef, on_reset: &str) -> Vec<TopicImport> {
    let on_reset = OnReset::parse(on_reset).or_raise();
    let client = TopicClient::for_topic(definition, "");
    let stored = stored_offsets(source.oid(), target.oid());
    let (source_name, target_name) = (qualified_name(source), qualified_name(target));
    let (topics, missing) = client.existing_topics_of(definition);
    let many = definition.table.topics.single().is_none();
    if many {
        for topic in &missing {
            warning!("topic \"{topic}\" of \"{source_name}\" does not exist: importing the table's other topics into \"{target_name}\"");
        }
        let mut gone: Vec<&str> = stored.iter().map(|s| s.topic.as_str()).filter(|t| !topics.iter().any(|now| now == t)).collect();
        gone.retain(|topic| !missing.iter().any(|m| m == topic));
        gone.sort_unstable();
        gone.dedup();
        for topic in gone {
            warning!(
                "topic \"{topic}\" is no longer one of \"{source_name}\"'s (deleted, or the table's topics changed): its offsets stored for \"{target_name}\" are kept"
            );
        }
    }
    topics
        .iter()
        .map(|topic| {
            let now = TopicNow::of(&client, topic);
            // A source of one topic applies no other topic's offsets (resume_points says so).
            let stored: Vec<StoredOffset> = stored.iter().filter(|s| !many || s.topic == *topic).cloned().collect();
            let identity = now.identity();
            let current = CurrentTopic {
                source: &source_name,
                target: &target_name,
                topic: identity.topic,
                topic_id: identity.topic_id,
                cluster: identity.cluster,
            };
            let start = progress::resume_points(&stored, current, &now.marks, on_reset).or_raise();
            for notice in &start.notices {
                notice!("{notice}");
            }
            for warning in &start.warnings {
                warning!("{warning}");
            }
            TopicImport { now, ranges: start.ranges }
        })
        .collect()
}

/// One batch (one bulk insert of a query's rows, or one apply of changes) reads at most
/// about this many messages, over as many partitions as it takes (partitions read
/// together keep librdkafka's fetches busy); long imports report progress after each.
const BATCH_MESSAGES: i64 = 100_000;

/// Imports the messages of `source` not imported into `target` yet, up to the high
/// watermarks taken when it starts (and at most `max_messages`), and returns the number
/// of rows inserted. `columns` (default: the target's columns the source also has) name
/// the source columns read and the target columns written. Stored offsets that no longer
/// fit the topic (re-created or truncated) raise an ERROR, or with on_reset => 'earliest'
/// start the topic over with a WARNING. `mode` 'upsert' or 'debezium' applies the
/// messages as changes to the target's rows by key instead (`changes`, per batch) and
/// returns the rows inserted, updated or deleted. With `group_id`, once the transaction
/// commits, the pair's progress is committed to that Kafka consumer group too
/// (`group_offsets`), where Kafka's tools show its lag.
///
/// The write path: CSV messages straight into COPY FROM's parser when that gives the
/// rows the scan gives (one COPY for the whole plan, `message_lines`); otherwise the
/// scan's rows in batches, through COPY FROM's machinery (`query_rows`) or applied as
/// changes. The stored offsets are written in the same transaction as the rows they
/// account for, so a crash or an error leaves neither duplicates nor gaps.
///
/// Runs as its caller, with search_path pinned: so do the triggers, defaults and
/// constraints of the target it fires, whose functions should name their schemas (or SET
/// search_path), as PostgreSQL 17 asks of functions that maintenance commands run.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn import(
    source: PgRelation,
    target: PgRelation,
    columns: default!(Option<Vec<String>>, "NULL"),
    max_messages: default!(Option<i64>, "NULL"),
    on_reset: default!(&str, "'error'"),
    mode: default!(&str, "'append'"),
    group_id: default!(Option<&str>, "NULL"),
) -> i64 {
    check_group_id(group_id);
    let definition = lock_pair(&source, &target);
    let source_name = regclass_text(&source);
    let (Some(partition_column), Some(offset_column)) = meta_column_names(&definition, &source) else {
        raise(
            FdwError::new(ErrorKind::InvalidParameterValue, format!("kafka_fdw.import needs the partition and offset columns of \"{source_name}\""))
                .with_hint("Add columns with the options partition 'true' and offset 'true' to the foreign table."),
        )
    };
    let append = mode == "append";
    let column_names = if append {
        import_columns(&source, &target, columns.clone())
    } else {
        changes::check_mode(&source, &target, columns.clone(), mode);
        Vec::new()
    };

    // A source over many topics: each batch reads one topic, by the topic column.
    let replacing = Replacing::for_source(&definition);
    let topic_column = definition.table.topics.single().is_none().then(|| {
        meta_column_name(&definition, &source, MetaColumn::Topic).unwrap_or_else(|| {
            raise(
                FdwError::new(ErrorKind::InvalidParameterValue, format!("kafka_fdw.import needs the topic column of \"{source_name}\""))
                    .with_detail(format!("\"{source_name}\" reads {}.", definition.table.topics.describe()))
                    .with_hint("Add a column with the option topic 'true' to the foreign table."),
            )
        })
    });

    // From the stored offsets (checked against each topic: see plan/progress.rs) to the
    // high watermarks taken now.
    let mut topics = resume_topics(&source, &target, &definition, on_reset);
    let mut budget = max_messages;
    for topic in &mut topics {
        topic.ranges.sort_by_key(|range| range.partition);
        if let Some(left) = budget.as_mut() {
            progress::limit_ranges(&mut topic.ranges, *left);
            *left -= topic.ranges.iter().map(|range| range.end - range.start).sum::<i64>();
        }
    }
    let wanted: i64 = topics.iter().flat_map(|topic| &topic.ranges).map(|range| range.end - range.start).sum();
    // The client the group's offsets are committed with, as the current user.
    let group_client = group_id.map(|_| {
        let settings = table_client_settings(&definition);
        (client_key(definition.server_id, &settings), settings)
    });

    let copied = if append { copy_message_ranges(&source, &target, definition, &column_names, &topics, &source_name) } else { None };
    let total = copied.unwrap_or_else(|| {
        let quoted: Vec<String> = column_names.iter().map(pgrx::spi::quote_identifier).collect();
        let column_list = quoted.join(", ");
        let (partition_column, offset_column) = (pgrx::spi::quote_identifier(&partition_column), pgrx::spi::quote_identifier(&offset_column));
        let mut total = 0;
        let mut done = 0;
        for topic in &topics {
            let name = topic.now.topic.as_str();
            let of_topic = topic_column.as_ref().map(|column| format!("{} = {}", pgrx::spi::quote_identifier(column), pgrx::spi::quote_literal(name)));
            for batch in progress::batches(&topic.ranges, BATCH_MESSAGES) {
                let ranges = batch
                    .ranges
                    .iter()
                    .map(|r| format!("({partition_column} = {} AND {offset_column} >= {} AND {offset_column} < {})", r.partition, r.start, r.end))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                let condition = match &of_topic {
                    Some(of_topic) => format!("{of_topic} AND ({ranges})"),
                    None => ranges,
                };
                total += if append {
                    insert_rows(&target, &column_names, &format!("SELECT {column_list} FROM {source_name} WHERE {condition}"))
                } else {
                    changes::apply(&source, &target, columns.clone(), mode, &condition, name, of_topic.as_deref())
                };
                // Every batch but a topic's last is full; a last one cut short says nothing more.
                if batch.messages >= BATCH_MESSAGES {
                    done += batch.messages;
                    notice!("kafka_fdw.import: {done} of {wanted} messages of \"{source_name}\"");
                }
            }
        }
        total
    });

    for topic in topics.iter().filter(|topic| !topic.ranges.is_empty()) {
        let offsets: Vec<(i32, i64)> = topic.ranges.iter().map(|range| (range.partition, range.end)).collect();
        store_offsets(source.oid(), target.oid(), topic.now.identity(), &offsets, replacing);
    }
    if let (Some(group), Some((key, settings))) = (group_id, group_client) {
        // All of the pair's progress, not only this import's: what an earlier commit to
        // the group failed to write is written now.
        let stored = stored_offsets(source.oid(), target.oid());
        for topic in topics {
            let offsets: Vec<(i32, i64)> =
                stored.iter().filter(|s| s.topic == topic.now.topic).map(|s| (s.partition, s.next_offset)).collect();
            let commit = GroupCommit { key, settings: settings.clone(), group: group.to_string(), topic: topic.now.topic, offsets };
            group_offsets::commit_after_transaction(commit);
        }
    }
    total
}

/// Raises unless `group_id` is absent or a consumer group's name.
fn check_group_id(group_id: Option<&str>) {
    if group_id.is_some_and(|group| group.is_empty() || group.contains('\0')) {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, "group_id must be a Kafka consumer group's name, or NULL"));
    }
}

/// Stores where the next import of `source` into `target` starts, in the caller's
/// transaction (what kafka_fdw.import does after inserting the rows).
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn save_import_progress(
    source: PgRelation,
    target: PgRelation,
    topic: &str,
    topic_id: Option<&str>,
    cluster: Option<&str>,
    partitions: Vec<i32>,
    next_offsets: Vec<i64>,
) {
    require_import_privileges(&source, &target);
    if partitions.len() != next_offsets.len() {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, "kafka_fdw.save_import_progress needs as many partitions as offsets"));
    }
    let offsets: Vec<(i32, i64)> = partitions.into_iter().zip(next_offsets).collect();
    let replacing = Replacing::for_source(&kafka_table(&source));
    store_offsets(source.oid(), target.oid(), TopicIdentity { topic, topic_id, cluster }, &offsets, replacing);
}

/// Inserts the rows of `query` into `columns` of `target` as `INSERT INTO target
/// (columns) query` would, through COPY FROM's machinery (multi-insert buffers; see
/// `query_rows`); kafka_fdw.import runs it once per batch. Runs as its caller, query
/// included. A NOTICE says when the rows did not take the multi-insert path, and why.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn bulk_insert(target: PgRelation, columns: Vec<String>, query: &str) -> i64 {
    insert_rows(&target, &columns, query)
}

/// See [`bulk_insert`].
fn insert_rows(target: &PgRelation, columns: &[String], query: &str) -> i64 {
    let (inserted, path) = query_rows::insert_query_rows(target, columns, query);
    let name = qualified_name(target);
    match path {
        InsertPath::Copy => {}
        InsertPath::CopyRowByRow(why) => notice!("kafka_fdw.import: COPY inserts into {name} one row at a time: {why}"),
        InsertPath::Insert(why) => notice!("kafka_fdw.import: rows go into {name} by INSERT, not COPY: {why}"),
    }
    inserted as i64
}

/// Inserts the messages of `source` in the given offset ranges (per partition: the
/// first offset and the end, exclusive) into `columns` of `target` by handing them to
/// COPY FROM's own CSV parser, when that gives exactly the rows an import through the
/// foreign table's scan gives (see `message_lines::plan_message_copy`): one COPY for all the
/// ranges. Returns the number of rows, or NULL when it can't (a CSV source says why in a
/// NOTICE) and kafka_fdw.import goes through the scan. Runs as its caller.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn copy_messages(
    source: PgRelation,
    target: PgRelation,
    columns: Vec<String>,
    partitions: Vec<i32>,
    starts: Vec<i64>,
    ends: Vec<i64>,
) -> Option<i64> {
    let definition = require_import_privileges(&source, &target);
    if definition.table.format != Format::Csv {
        return None;
    }
    if partitions.len() != starts.len() || partitions.len() != ends.len() {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, "kafka_fdw.copy_messages needs as many partitions as starts and ends"));
    }
    let ranges: Vec<ReadRange> =
        partitions.into_iter().zip(starts).zip(ends).map(|((partition, start), end)| ReadRange { partition, start, end }).collect();
    let client = TopicClient::for_table(&definition, "kafka_fdw.copy_messages");
    let topic = TopicImport { now: TopicNow::of(&client, &client.topic), ranges };
    copy_message_ranges(&source, &target, definition, &columns, &[topic], &regclass_text(&source))
}

/// See [`copy_messages`]: the ranges of each of `topics`. `definition` is the source's,
/// after `require_import_privileges`; `source_name` its name as regclass prints it.
fn copy_message_ranges(
    source: &PgRelation,
    target: &PgRelation,
    definition: ForeignTableDef,
    columns: &[String],
    topics: &[TopicImport],
    source_name: &str,
) -> Option<i64> {
    if definition.table.format != Format::Csv {
        return None;
    }
    let target_name = qualified_name(target);
    let plan = match message_lines::plan_message_copy(source, definition, target, columns) {
        Ok(plan) => plan,
        Err(why) => {
            notice!("kafka_fdw.import: messages of \"{source_name}\" go through the foreign table's scan, not straight to COPY: {why}");
            return None;
        }
    };
    let mut inserted = 0;
    for topic in topics {
        let (rows, path) = message_lines::copy_messages(target, &plan, &topic.now.topic, &topic.ranges, source_name.to_string());
        if let InsertPath::CopyRowByRow(why) = path {
            notice!("kafka_fdw.import: COPY inserts into {target_name} one row at a time: {why}");
        }
        inserted += rows as i64;
    }
    Some(inserted)
}

/// A relation's name as `regclass` prints it (schema-qualified only when not visible).
fn regclass_text(relation: &PgRelation) -> String {
    Spi::get_one_with_args::<String>("SELECT $1::regclass::text", &[relation.oid().into()])
        .or_internal("could not name the relation")
        .unwrap_or_default()
}

/// Waits until no other import of `source` into `target` runs, and keeps others waiting
/// until the end of the transaction: one import of a pair at a time, the second starting
/// from the offsets the first stored. A lock no SQL statement can take (`pg::locks`), so
/// no role can stall imports by holding it; taking it needs the import's privileges.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn lock_import(source: PgRelation, target: PgRelation) {
    lock_pair(&source, &target);
}

/// See [`lock_import`]; the source's definition.
fn lock_pair(source: &PgRelation, target: &PgRelation) -> ForeignTableDef {
    let definition = require_import_privileges(source, target);
    locks::lock_import(source.oid(), target.oid());
    definition
}

/// Where the next import of `source` into `target` starts: 'earliest' forgets the stored
/// offsets (the next import reads the topic from its oldest message), 'latest' stores
/// the high watermarks (it skips what the topic holds now). Returns the number of
/// partitions the next import will start from the new position.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn reset_import(source: PgRelation, target: PgRelation, position: &str) -> i64 {
    let definition = require_import_privileges(&source, &target);
    locks::lock_import(source.oid(), target.oid());
    let latest = match position {
        "earliest" => false,
        "latest" => true,
        _ => raise(
            FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid position for kafka_fdw.reset_import: \"{position}\""))
                .with_hint("Valid positions are \"earliest\" and \"latest\"."),
        ),
    };
    let client = TopicClient::for_topic(&definition, "");
    let (topics, _) = client.existing_topics_of(&definition);
    let mut partitions = 0;
    // 'earliest' forgets every stored offset of the pair first (of topics gone too).
    let mut replacing = Replacing::Pair;
    for topic in topics {
        let now = TopicNow::of(&client, &topic);
        let offsets: Vec<(i32, i64)> = if latest { now.marks.iter().map(|w| (w.partition, w.high)).collect() } else { Vec::new() };
        store_offsets(source.oid(), target.oid(), now.identity(), &offsets, replacing);
        replacing = Replacing::for_source(&definition);
        partitions += now.marks.len() as i64;
    }
    partitions
}

/// The columns an import of `source` into `target` reads and writes: `columns`, or the
/// target's columns the source also has.
fn import_columns(source: &PgRelation, target: &PgRelation, columns: Option<Vec<String>>) -> Vec<String> {
    let names = columns.unwrap_or_else(|| {
        Spi::get_one_with_args::<Vec<String>>(
            "SELECT pg_catalog.array_agg(t.attname::text ORDER BY t.attnum)
             FROM pg_catalog.pg_attribute t
             WHERE t.attrelid = $2 AND t.attnum > 0 AND NOT t.attisdropped
               AND EXISTS (SELECT FROM pg_catalog.pg_attribute s
                           WHERE s.attrelid = $1 AND s.attname = t.attname AND s.attnum > 0 AND NOT s.attisdropped)",
            &[source.oid().into(), target.oid().into()],
        )
        .or_internal("could not list the import's columns")
        .unwrap_or_default()
    });
    if names.is_empty() {
        raise(
            FdwError::new(
                ErrorKind::InvalidParameterValue,
                format!("no columns to import from \"{}\" into \"{}\"", regclass_text(source), regclass_text(target)),
            )
            .with_hint("Give the columns, or give the target columns named as the source's."),
        );
    }
    names
}

/// Raises PostgreSQL's permission error unless the current user may read the columns
/// an append import of `source` into `target` reads and insert into those it writes.
fn require_append_privileges(source: &PgRelation, target: &PgRelation, columns: Option<Vec<String>>) {
    let definition = kafka_table(source);
    let names = import_columns(source, target, columns);
    let (partition, offset) = meta_column_names(&definition, source);
    let read: Vec<i16> =
        names.iter().cloned().chain(partition).chain(offset).map(|name| privileges::attnum(source.oid(), &name)).collect();
    let written: Vec<i16> = names.iter().map(|name| privileges::attnum(target.oid(), name)).collect();
    privileges::require_relation_privilege(source.oid(), pg_sys::ACL_SELECT as pg_sys::AclMode, Columns::Each(&read));
    privileges::require_relation_privilege(target.oid(), pg_sys::ACL_INSERT as pg_sys::AclMode, Columns::Each(&written));
}

/// Raises what keeps `source` from being imported into `target` in `mode` (upsert or
/// debezium: see kafka_fdw.check_import_mode), and PostgreSQL's permission error unless
/// the current user may read the source and insert, update and delete target rows.
fn require_change_privileges(source: &PgRelation, target: &PgRelation, columns: Option<Vec<String>>, mode: &str) {
    Spi::run_with_args(
        "SELECT kafka_fdw.check_import_mode($1, $2, $3, $4)",
        &[source.oid().into(), target.oid().into(), columns.into(), mode.into()],
    )
    .or_internal("could not check the import mode");
    privileges::require_relation_privilege(source.oid(), pg_sys::ACL_SELECT as pg_sys::AclMode, Columns::Any);
    for right in [pg_sys::ACL_INSERT, pg_sys::ACL_UPDATE, pg_sys::ACL_DELETE] {
        privileges::require_relation_privilege(target.oid(), right as pg_sys::AclMode, Columns::Any);
    }
}

/// Starts (or changes) the scheduled import of `source` into `target`: a task whose
/// command is this import (sql/tasks.sql). The job belongs to the calling role and each
/// run is a session of that role; the privileges the import needs are checked now and,
/// as the import runs, at every run. Returns the job's (task's) id.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)] // SQL's named parameters, most with defaults
fn start_import(
    source: PgRelation,
    target: PgRelation,
    columns: default!(Option<Vec<String>>, "NULL"),
    run_every: default!(Interval, "'1 second'"),
    on_reset: default!(&str, "'error'"),
    mode: default!(&str, "'append'"),
    time_limit: default!(Option<Interval>, "NULL"),
    group_id: default!(Option<&str>, "NULL"),
) -> i64 {
    OnReset::parse(on_reset).or_raise();
    check_group_id(group_id);
    if ImportMode::parse(mode).or_raise() == ImportMode::Append {
        require_append_privileges(&source, &target, columns.clone());
    } else {
        require_change_privileges(&source, &target, columns.clone(), mode);
    }
    if tasks::interval_seconds(run_every) <= 0.0 {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, "run_every must be a positive interval"));
    }
    tasks::check_time_limit(time_limit);

    let caller = privileges::current_user();
    let (source_name, target_name) = (qualified_name(&source), qualified_name(&target));
    if let Some(job) = job_of_pair(source.oid(), target.oid()) {
        job.require_owner_rights("change");
    }
    // SAFETY: reads the relation's cached catalog row, valid while it is open.
    let target_owner = unsafe { (*target.rd_rel).relowner };
    if privileges::is_superuser(caller) && target_owner != caller {
        warning!(
            "import job into \"{target_name}\" will run as superuser \"{}\", and so will the triggers that role \"{}\" may put on the table",
            privileges::role_name(caller),
            privileges::role_name(target_owner)
        );
    }
    tasks::warn_unless_scheduled_here(&format!("the import job of \"{source_name}\" into \"{target_name}\""));
    let owner = tasks::current_role_name();
    privileges::as_extension(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO kafka_fdw.tasks AS t (owner, schedule, every, source, target, source_name, target_name, columns,
                                               on_reset, mode, time_limit, group_id, next_run)
             VALUES ($1, $2::text, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, pg_catalog.now())
             ON CONFLICT (source, target) WHERE source IS NOT NULL DO UPDATE
                 SET owner = excluded.owner, schedule = excluded.schedule, every = excluded.every,
                     source_name = excluded.source_name, target_name = excluded.target_name, columns = excluded.columns,
                     on_reset = excluded.on_reset, mode = excluded.mode, time_limit = excluded.time_limit,
                     group_id = excluded.group_id, next_run = excluded.next_run, failures = 0, warned_at = NULL
             RETURNING task_id",
            &[
                owner.as_str().into(),
                run_every.into(),
                source.oid().into(),
                target.oid().into(),
                source_name.as_str().into(),
                target_name.as_str().into(),
                columns.into(),
                on_reset.into(),
                mode.into(),
                time_limit.into(),
                group_id.into(),
            ],
        )
        .or_internal("could not write kafka_fdw.tasks")
        .unwrap_or_default()
    })
}

/// The import job of a source and target, if there is one.
fn job_of_pair(source: pg_sys::Oid, target: pg_sys::Oid) -> Option<Task> {
    tasks::find_task("source = $1 AND target = $2", &[source.into(), target.into()])
}

/// Stops the scheduled import of `source` into `target`; false if there is none.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn stop_import(source: PgRelation, target: PgRelation) -> bool {
    tasks::end_task(job_of_pair(source.oid(), target.oid()), "stop")
}

/// Stops import job `job`, also when its source or target was dropped; false if there
/// is no such job.
#[pg_extern(schema = "kafka_fdw", name = "stop_import")]
#[search_path(pg_catalog, pg_temp)]
fn stop_import_job(job: i64) -> bool {
    tasks::end_task(tasks::find_task("task_id = $1 AND source IS NOT NULL", &[job.into()]), "stop")
}
