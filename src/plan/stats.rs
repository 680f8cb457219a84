//! The cumulative statistics of foreign tables (`kafka_fdw.stat_foreign_tables`): what
//! scans and INSERTs did with each table, added up since the last reset, in a table of
//! fixed size that the glue keeps in shared memory.

/// What kafka_fdw did with one foreign table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TableCounters {
    /// Scans begun (a parallel scan is one; EXPLAIN without ANALYZE none).
    pub scans: u64,
    /// Messages the scans received from Kafka, inside their ranges or not.
    pub messages_fetched: u64,
    /// Bytes of the keys and values of the messages the scans read (inside their ranges).
    pub bytes_fetched: u64,
    /// Rows the scans returned.
    pub rows_returned: u64,
    /// Bad messages skipped (`on_error 'skip'`, junk columns, or NULL rows).
    pub bad_messages_skipped: u64,
    /// Bad messages that raised an ERROR.
    pub bad_messages_raised: u64,
    /// INSERT and COPY statements that wrote to the topic.
    pub inserts: u64,
    /// Messages those statements sent.
    pub messages_sent: u64,
    /// Of those, acknowledged by Kafka; failed (Kafka refused them); unknown (no answer
    /// in time: they may have been written).
    pub messages_delivered: u64,
    pub messages_failed: u64,
    pub messages_unknown: u64,
    /// Time spent waiting for messages from the brokers, in microseconds.
    pub broker_wait_us: u64,
}

impl TableCounters {
    pub fn add(&mut self, other: &TableCounters) {
        let TableCounters {
            scans,
            messages_fetched,
            bytes_fetched,
            rows_returned,
            bad_messages_skipped,
            bad_messages_raised,
            inserts,
            messages_sent,
            messages_delivered,
            messages_failed,
            messages_unknown,
            broker_wait_us,
        } = other;
        self.scans += scans;
        self.messages_fetched += messages_fetched;
        self.bytes_fetched += bytes_fetched;
        self.rows_returned += rows_returned;
        self.bad_messages_skipped += bad_messages_skipped;
        self.bad_messages_raised += bad_messages_raised;
        self.inserts += inserts;
        self.messages_sent += messages_sent;
        self.messages_delivered += messages_delivered;
        self.messages_failed += messages_failed;
        self.messages_unknown += messages_unknown;
        self.broker_wait_us += broker_wait_us;
    }
}

/// One table's counters: its database and relation (OIDs), and what was done with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[repr(C)]
pub struct TableStats {
    pub database: u32,
    pub relation: u32,
    pub counters: TableCounters,
}

/// How many tables the statistics keep, over every database of the cluster.
pub const STATS_TABLES: usize = 1000;

/// The counters of up to [`STATS_TABLES`] tables. A table first counted when every slot
/// is taken is not kept: `untracked` counts its updates, and a reset frees the slots.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct StatsTable {
    tables: [TableStats; STATS_TABLES],
    used: usize,
    pub untracked: u64,
}

impl Default for StatsTable {
    fn default() -> Self {
        StatsTable { tables: [TableStats::default(); STATS_TABLES], used: 0, untracked: 0 }
    }
}

impl StatsTable {
    /// Adds `counters` to those of `relation` in `database`.
    pub fn add(&mut self, database: u32, relation: u32, counters: &TableCounters) {
        let kept = &mut self.tables[..self.used];
        if let Some(table) = kept.iter_mut().find(|t| t.database == database && t.relation == relation) {
            table.counters.add(counters);
        } else if self.used < STATS_TABLES {
            self.tables[self.used] = TableStats { database, relation, counters: *counters };
            self.used += 1;
        } else {
            self.untracked += 1;
        }
    }

    /// The tables of `database` with their counters.
    pub fn of_database(&self, database: u32) -> Vec<TableStats> {
        self.tables[..self.used].iter().filter(|t| t.database == database).copied().collect()
    }

    /// Forgets the counters of `relation` in `database`, or of every table of it.
    pub fn reset(&mut self, database: u32, relation: Option<u32>) {
        let mut kept = 0;
        for i in 0..self.used {
            let table = self.tables[i];
            let forgotten = table.database == database && relation.is_none_or(|relation| table.relation == relation);
            if !forgotten {
                self.tables[kept] = table;
                kept += 1;
            }
        }
        self.used = kept;
        if relation.is_none() {
            self.untracked = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(rows: u64) -> TableCounters {
        TableCounters { scans: 1, messages_fetched: rows, rows_returned: rows, ..TableCounters::default() }
    }

    #[test]
    fn counters_add_up_per_table_and_database() {
        let mut stats = StatsTable::default();
        stats.add(1, 100, &scanned(10));
        stats.add(1, 100, &scanned(5));
        stats.add(1, 101, &TableCounters { inserts: 1, messages_sent: 3, messages_delivered: 2, messages_unknown: 1, ..TableCounters::default() });
        stats.add(2, 100, &scanned(7));
        let one = stats.of_database(1);
        assert_eq!(one.len(), 2);
        assert_eq!(one[0].counters, TableCounters { scans: 2, messages_fetched: 15, rows_returned: 15, ..TableCounters::default() });
        assert_eq!((one[1].relation, one[1].counters.messages_delivered, one[1].counters.messages_unknown), (101, 2, 1));
        assert_eq!(stats.of_database(2)[0].counters.rows_returned, 7);
    }

    #[test]
    fn a_reset_forgets_one_table_or_a_database_and_frees_the_slots() {
        let mut stats = StatsTable::default();
        for relation in 0..STATS_TABLES as u32 {
            stats.add(1, relation, &scanned(1));
        }
        stats.add(2, 7, &scanned(1));
        assert_eq!((stats.of_database(2).len(), stats.untracked), (0, 1), "full: not kept, counted");
        stats.reset(1, Some(3));
        stats.add(2, 7, &scanned(1));
        assert_eq!(stats.of_database(2).len(), 1);
        assert!(stats.of_database(1).iter().all(|t| t.relation != 3));
        stats.reset(1, None);
        assert_eq!((stats.of_database(1).len(), stats.of_database(2).len(), stats.untracked), (0, 1, 0));
    }
}
