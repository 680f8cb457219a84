//! `kafka_fdw.stat_foreign_tables`: what scans and INSERTs did with each foreign table of
//! the database since the last `kafka_fdw.stat_reset` (`pg::stats` keeps the counters), as
//! `pg_stat_user_tables` shows what was done with tables.

use pgrx::prelude::*;
use pgrx::PgRelation;

use crate::pg::stats;

/// The counters of the current database's foreign tables; the view
/// `kafka_fdw.stat_foreign_tables` names the tables.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)]
fn foreign_table_stats() -> TableIterator<
    'static,
    (
        name!(relid, pg_sys::Oid),
        name!(scans, i64),
        name!(messages_fetched, i64),
        name!(bytes_fetched, i64),
        name!(rows_returned, i64),
        name!(bad_messages_skipped, i64),
        name!(bad_messages_raised, i64),
        name!(inserts, i64),
        name!(messages_sent, i64),
        name!(messages_delivered, i64),
        name!(messages_failed, i64),
        name!(messages_unknown, i64),
        name!(broker_wait_time, f64),
    ),
> {
    let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    TableIterator::new(stats::of_current_database().into_iter().map(move |table| {
        let c = table.counters;
        (
            pg_sys::Oid::from(table.relation),
            count(c.scans),
            count(c.messages_fetched),
            count(c.bytes_fetched),
            count(c.rows_returned),
            count(c.bad_messages_skipped),
            count(c.bad_messages_raised),
            count(c.inserts),
            count(c.messages_sent),
            count(c.messages_delivered),
            count(c.messages_failed),
            count(c.messages_unknown),
            // Milliseconds, as pg_stat_statements and pg_stat_io give times.
            c.broker_wait_us as f64 / 1000.0,
        )
    }))
}

/// Forgets the counters of `relation`, or of every foreign table of the database (as
/// `pg_stat_reset_single_table_counters` and `pg_stat_reset`; only superusers may, unless
/// granted EXECUTE).
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn stat_reset(relation: default!(Option<PgRelation>, "NULL")) {
    stats::reset(relation.map(|relation| relation.oid()));
}

extension_sql!(
    r#"
CREATE VIEW kafka_fdw.stat_foreign_tables AS
SELECT s.relid, n.nspname AS schemaname, c.relname, s.scans, s.messages_fetched, s.bytes_fetched, s.rows_returned,
       s.bad_messages_skipped, s.bad_messages_raised, s.inserts, s.messages_sent, s.messages_delivered,
       s.messages_failed, s.messages_unknown, s.broker_wait_time
FROM kafka_fdw.foreign_table_stats() s
JOIN pg_catalog.pg_class c ON c.oid = s.relid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace;
GRANT SELECT ON kafka_fdw.stat_foreign_tables TO PUBLIC;
REVOKE EXECUTE ON FUNCTION kafka_fdw.stat_reset(regclass) FROM PUBLIC;
"#,
    name = "stat_foreign_tables",
    requires = [foreign_table_stats, stat_reset],
);
