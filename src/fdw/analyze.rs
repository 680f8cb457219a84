//! ANALYZE of a Kafka foreign table: a sample of messages spread along the topic and over
//! its partitions (on a topic of many partitions and few messages, some of them), in a
//! few long runs whose cost is a small share of a scan's (`plan::sample`), read as a scan
//! reads its ranges and turned into rows by the scan's row builder, so the planner gets
//! column statistics; the row count comes from the watermarks. The sample may hold fewer
//! rows than PostgreSQL asks for (`targrows`), as a small table's does.
//!
//! PostgreSQL runs the sampling function as the table's owner (as postgres_fdw's, it so
//! uses the owner's user mapping), in ANALYZE's memory context, where the rows it
//! returns must be allocated.

use std::ffi::c_int;

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{pg_guard, pg_sys, PgLogLevel, PgMemoryContexts, PgSqlErrorCode};

use crate::fdw::row::{Outcome, RowBuilder};
use crate::kafka::Watermarks;
use crate::pg::catalog;
use crate::pg::clients::TopicClient;
use crate::pg::errors::OrRaise;
use crate::plan::sample;

#[pg_guard]
pub unsafe extern "C-unwind" fn analyze_foreign_table(
    _relation: pg_sys::Relation,
    func: *mut pg_sys::AcquireSampleRowsFunc,
    totalpages: *mut pg_sys::BlockNumber,
) -> bool {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        *func = Some(acquire_sample_rows);
        // A topic has no pages: pg_class.relpages stays 0, and estimates never use it.
        *totalpages = 0;
    }
    true
}

/// Fills `rows` with at most `targrows` rows built from sampled messages, in a palloc'd
/// array PostgreSQL provides; `totalrows` is what a full scan would return, estimated
/// from the watermarks; Kafka has no dead rows.
#[pg_guard]
unsafe extern "C-unwind" fn acquire_sample_rows(
    relation: pg_sys::Relation,
    elevel: c_int,
    rows: *mut pg_sys::HeapTuple,
    targrows: c_int,
    totalrows: *mut f64,
    totaldeadrows: *mut f64,
) -> c_int {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let definition = catalog::foreign_table(relation);
        let client = TopicClient::for_sample(&definition, "", sample::FETCH_BYTES);
        // A table over several topics samples each in proportion to its messages.
        let topics: Vec<(String, Vec<Watermarks>)> = client
            .topics_of(&definition)
            .into_iter()
            .map(|topic| {
                let marks = client.watermarks_of(&topic);
                (topic, marks)
            })
            .collect();
        let totals: Vec<i64> = topics.iter().map(|(_, marks)| marks.iter().map(|w| w.high - w.low).sum()).collect();
        let size = sample::sample_size(totals.iter().sum(), i64::from(targrows));
        let shares = sample::split_between_topics(size, &totals);

        let tupdesc = (*relation).rd_att;
        let every_column = vec![true; (*tupdesc).natts as usize];
        let mut builder = RowBuilder::new((*relation).rd_id, tupdesc, &definition, &every_column);
        let slot = pg_sys::MakeSingleTupleTableSlot(tupdesc, &pg_sys::TTSOpsVirtual);
        // Values are converted in a context of their own, reset after each row; the rows
        // are formed in ANALYZE's (the current one).
        let mut per_row = PgMemoryContexts::new("kafka_fdw ANALYZE row");
        let mut reader = client.into_reader().or_raise();
        let (mut sampled, mut runs, mut partitions_read, mut estimate) = (0, 0, 0, 0.0);
        for ((topic, marks), (share, messages)) in topics.iter().zip(shares.into_iter().zip(totals.iter().copied())) {
            let ranges = sample::ranges_of_sample(marks, share);
            reader.retarget(topic, &ranges).or_raise();
            let before = sampled;
            while sampled < targrows as usize {
                let Some(message) = reader.next_message().or_raise() else { break };
                pg_sys::ExecClearTuple(slot);
                if per_row.switch_to(|_| builder.fill(slot, &message)) == Outcome::Row {
                    *rows.add(sampled) = pg_sys::heap_form_tuple(tupdesc, (*slot).tts_values, (*slot).tts_isnull);
                    sampled += 1;
                }
                per_row.reset();
            }
            let sampled_offsets: i64 = ranges.iter().map(|r| r.end - r.start).sum();
            estimate += sample::estimated_rows(messages, sampled_offsets, sampled - before);
            runs += ranges.len();
            partitions_read += marks.iter().filter(|w| ranges.iter().any(|r| r.partition == w.partition)).count();
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        if let Some(summary) = builder.bad_message_summary() {
            pgrx::warning!("{summary}");
        }

        *totalrows = estimate;
        *totaldeadrows = 0.0;
        let name = std::ffi::CStr::from_ptr((*(*relation).rd_rel).relname.data.as_ptr()).to_string_lossy();
        let source = match &topics[..] {
            [(topic, _)] => format!("Kafka topic \"{topic}\" holds"),
            _ => format!("{} Kafka topics hold", topics.len()),
        };
        let counted = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        ErrorReport::new(
            PgSqlErrorCode::ERRCODE_SUCCESSFUL_COMPLETION,
            format!(
                "\"{name}\": {source} {} messages in {}; {sampled} rows in sample, from {} messages fetched in {} in {}",
                totals.iter().sum::<i64>(),
                counted(topics.iter().map(|(_, marks)| marks.len()).sum(), "partition"),
                reader.messages_fetched,
                counted(runs, "run"),
                counted(partitions_read, "partition"),
            ),
            "kafka_fdw",
        )
        .report(PgLogLevel::from(elevel));
        sampled as c_int
    }
}
