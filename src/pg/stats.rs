//! The foreign tables' cumulative statistics (`kafka_fdw.stat_foreign_tables`), kept in
//! shared memory when kafka_fdw is in `shared_preload_libraries`, as `pg_stat_statements`
//! keeps its own: scans and INSERTs add their counters once per statement (a scan when it
//! starts and when it ends), under one lightweight lock.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

use pgrx::shmem::PGRXSharedMemory;
use pgrx::{pg_guard, pg_shmem_init, pg_sys, PgLwLock};

use crate::error::{ErrorKind, FdwError};
use crate::pg::errors::raise;
use crate::plan::stats::{StatsTable, TableCounters, TableStats};

// SAFETY: plain numbers in a fixed-size array, no pointers: the same in every process.
unsafe impl PGRXSharedMemory for StatsTable {}

static STATS: PgLwLock<StatsTable> = unsafe { PgLwLock::new(c"kafka_fdw statistics") };

/// Whether the shared memory was set up: the library was preloaded (set in the
/// postmaster, and so in every process it starts).
static KEPT: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// The table whose message the backend is turning into a row, for counting a bad
    /// message that raises (see [`bad_message_raised`]).
    static DECODING: Cell<Option<pg_sys::Oid>> = const { Cell::new(None) };
}

/// Sets up the statistics' shared memory; called from `_PG_init` while the library is
/// preloaded.
// pgrx's macro also names PostgreSQL versions this crate has no features for.
#[allow(unexpected_cfgs)]
pub fn init() {
    pg_shmem_init!(STATS);
    KEPT.store(true, Ordering::Relaxed);
}

/// Adds `counters` to those of `relation` in the current database (nothing when the
/// library was not preloaded).
pub fn record(relation: pg_sys::Oid, counters: &TableCounters) {
    if !KEPT.load(Ordering::Relaxed) {
        return;
    }
    // SAFETY: a plain read of a backend global, set before any query runs.
    let database = unsafe { pg_sys::MyDatabaseId };
    STATS.exclusive().add(database.to_u32(), relation.to_u32(), counters);
}

/// Notes that the backend turns a message of `relation` into a row now.
pub fn decoding(relation: pg_sys::Oid) {
    DECODING.set(Some(relation));
}

/// Counts a bad message that raises an ERROR, for the table being decoded.
pub fn bad_message_raised() {
    if let Some(relation) = DECODING.get() {
        record(relation, &TableCounters { bad_messages_raised: 1, ..TableCounters::default() });
    }
}

/// The counters of the current database's tables.
pub fn of_current_database() -> Vec<TableStats> {
    require_kept();
    // SAFETY: a plain read of a backend global, set before any query runs.
    let database = unsafe { pg_sys::MyDatabaseId };
    STATS.share().of_database(database.to_u32())
}

/// Forgets the counters of `relation`, or of every table of the current database.
pub fn reset(relation: Option<pg_sys::Oid>) {
    require_kept();
    // SAFETY: a plain read of a backend global, set before any query runs.
    let database = unsafe { pg_sys::MyDatabaseId };
    STATS.exclusive().reset(database.to_u32(), relation.map(pg_sys::Oid::to_u32));
}

fn require_kept() {
    if !KEPT.load(Ordering::Relaxed) {
        raise(
            FdwError::new(ErrorKind::ObjectNotInPrerequisiteState, "kafka_fdw's statistics need kafka_fdw in shared_preload_libraries")
                .with_hint("Add kafka_fdw to shared_preload_libraries in postgresql.conf and restart the server (the scheduler needs it too)."),
        );
    }
}
