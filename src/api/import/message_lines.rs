//! CSV messages straight into COPY FROM's CSV parser (`copy`), when that gives exactly the
//! rows a scan would ([`plan_message_copy`]): a thread reads the topic's ranges and hands
//! the messages over as lines, with the partition, offset or topic the target takes after
//! their fields.

use std::ffi::c_int;

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgRelation;

use std::borrow::Borrow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;

use rdkafka::Message;

use crate::codec::csv::{self, CopyLines, LineError};
use crate::codec::{malformed_message, mismatched_message, FieldDef, MessagePosition};
use crate::error::{ErrorKind, FdwError};
use crate::kafka::{self, ClientSettings, KafkaConsumer, RangeReader, POLL_SLICE};
use crate::kafka::ReadRange;
use crate::options::layout::ColumnSource;
use crate::options::{MetaColumn, OnError};
use crate::pg::catalog::ForeignTableDef;
use crate::pg::clients::{check_interrupts, TopicClient};
use crate::pg::errors::{raise, OrInternal, OrRaise};
use crate::pg::privileges::{self, Columns};
use crate::pg::row_errors::RefusedRow;
use crate::pg::stats;
use crate::plan::stats::TableCounters;

use super::copy::{another_copy_feeding, begin_copy, copy_from, copy_options, copy_refusal, row_by_row_reason, Feed, FeedGuard, InsertPath, MessageRuns, Source, FEED};

/// Lines handed to COPY per refill: about COPY's own read size.
const REFILL_BYTES: usize = 64 * 1024;

/// How often a long import says how far it got, in messages.
const PROGRESS_EVERY: u64 = 100_000;

/// A message property a line carries after the message's fields, for a column of the
/// target that takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trailing {
    Partition,
    Offset,
    Topic,
}

/// What the import hands COPY's CSV parser: which messages, read how, into which target
/// columns. Built by [`plan_message_copy`].
pub struct MessageCopy {
    /// The source, whose statistics count the messages read.
    source: pg_sys::Oid,
    definition: ForeignTableDef,
    /// The target's columns in the order of a line's fields: the data fields, then the
    /// trailing properties.
    copy_columns: Vec<String>,
    trailing: Vec<Trailing>,
    fields: Vec<FieldDef>,
}

/// Whether the messages of `source` (a Kafka foreign table, read through `definition`)
/// can go straight into COPY FROM's CSV parser for an import of `columns` (named alike
/// in source and target) into `target`, giving exactly the rows a scan would: the
/// plan, or why not. Takes the source's format for granted (csv).
pub fn plan_message_copy(source: &PgRelation, definition: ForeignTableDef, target: &PgRelation, columns: &[String]) -> Result<MessageCopy, String> {
    let table = &definition.table;
    if table.on_error != OnError::Error || definition.layout.has_junk_columns() {
        return Err("bad messages are skipped or kept (on_error, ignore_junk or junk columns), which only the scan does".into());
    }
    if let Some(why) = csv::copy_incompatibility(&table.csv) {
        return Err(format!("COPY reads its CSV options otherwise: {why}"));
    }
    // SAFETY: reading the database's encoding.
    if unsafe { pg_sys::GetDatabaseEncoding() } != pg_sys::pg_enc::PG_UTF8 as c_int {
        return Err("the database encoding is not UTF8, which the scan checks messages against".into());
    }
    if definition.layout.fields.is_empty() {
        return Err("the source has no data columns, so the scan reads no message's value".into());
    }
    let mut by_field: Vec<Option<String>> = vec![None; definition.layout.fields.len()];
    let mut trailing = Vec::new();
    let mut trailing_columns = Vec::new();
    let mut source_types = Vec::with_capacity(columns.len());
    for name in columns {
        let attnum = privileges::attnum(source.oid(), name);
        let Some(column) = usize::try_from(attnum - 1).ok().and_then(|i| definition.layout.columns.get(i)) else {
            return Err(format!("the source has no column \"{name}\""));
        };
        match *column {
            ColumnSource::Field(index) if by_field[index].is_some() => return Err(format!("column \"{name}\" is listed twice")),
            ColumnSource::Field(index) => by_field[index] = Some(name.clone()),
            ColumnSource::Meta(MetaColumn::Partition, _) => trailing.push(Trailing::Partition),
            ColumnSource::Meta(MetaColumn::Offset, _) => trailing.push(Trailing::Offset),
            ColumnSource::Meta(MetaColumn::Topic, _) => trailing.push(Trailing::Topic),
            ColumnSource::Meta(meta, _) => return Err(format!("column \"{name}\" holds the message's {}, which only the scan reads", meta.option_name())),
            ColumnSource::KeyField(_) => return Err(format!("column \"{name}\" holds a field of the message's key, which only the scan reads")),
            ColumnSource::Dropped => return Err(format!("the source has no column \"{name}\"")),
        }
        if !matches!(column, ColumnSource::Field(_)) {
            trailing_columns.push(name.clone());
        }
        source_types.push(type_and_modifier(source.oid(), attnum));
    }
    let Some(data_columns) = by_field.into_iter().collect::<Option<Vec<String>>>() else {
        return Err("the target does not take every field of the messages".into());
    };
    let refusal = Spi::connect(|client| copy_refusal(client, target, columns, &source_types.iter().map(|t| t.0).collect::<Vec<_>>()));
    if let Some(why) = refusal.or_else(another_copy_feeding) {
        return Err(why);
    }
    for (name, &(_, typmod)) in columns.iter().zip(&source_types) {
        if type_and_modifier(target.oid(), privileges::attnum(target.oid(), name)).1 != typmod {
            return Err(format!("column \"{name}\" has another type modifier in the target"));
        }
    }
    // The scan checks SELECT on the columns it reads; so does this.
    let read: Vec<i16> = columns.iter().map(|name| privileges::attnum(source.oid(), name)).collect();
    privileges::require_relation_privilege(source.oid(), pg_sys::ACL_SELECT as pg_sys::AclMode, Columns::Each(&read));
    let fields = definition.layout.fields.clone();
    Ok(MessageCopy { source: source.oid(), definition, copy_columns: data_columns.into_iter().chain(trailing_columns).collect(), trailing, fields })
}

/// The type and type modifier of attribute `attnum` of `relid`, an existing one.
fn type_and_modifier(relid: pg_sys::Oid, attnum: i16) -> (pg_sys::Oid, i32) {
    let (mut type_id, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
    // SAFETY: a catalog lookup inside a transaction (an ERROR for a missing attribute).
    unsafe { pg_sys::get_atttypetypmodcoll(relid, attnum, &mut type_id, &mut typmod, &mut collation) };
    (type_id, typmod)
}

/// What the fetching thread renders and hands to COPY's data source: the messages'
/// CSV lines, in chunks.
enum Fetched {
    Lines {
        lines: Vec<u8>,
        /// Where each message of `lines` starts (line numbers count on across chunks).
        runs: MessageRuns,
        messages: u64,
    },
    /// Every message is rendered.
    End,
    /// The reading failed, or a message the scan would have failed on (its error).
    Failed(FdwError),
}

/// Chunks rendered ahead of COPY: enough to keep both threads busy, bounded memory.
const CHUNKS_AHEAD: usize = 4;

/// Reads the messages of `ranges` and renders them as CSV lines for COPY, in chunks of
/// about [`REFILL_BYTES`], until they are all read, something fails, `stop` is set or
/// the receiver is gone. Runs on a thread of its own beside the backend's, which
/// meanwhile parses and inserts the previous chunks: it touches nothing of PostgreSQL
/// (its reader's settings interrupt nothing; the backend checks for interrupts). Returns
/// what it read, for the source's statistics.
fn fetch_lines<C: Borrow<KafkaConsumer>>(mut reader: RangeReader<C>, mut lines: CopyLines, trailing: &[Trailing], topic: &str, sender: SyncSender<Fetched>) -> TableCounters {
    let mut read = TableCounters { scans: 1, ..TableCounters::default() };
    let finish = |reader: &RangeReader<C>, mut read: TableCounters| {
        read.messages_fetched = reader.messages_fetched;
        read.broker_wait_us = u64::try_from(reader.waited.as_micros()).unwrap_or(u64::MAX);
        read
    };
    let mut topic_field = Vec::new();
    csv::encode(&[Some(topic.as_bytes())], lines.options(), &mut topic_field);
    let (mut partition_text, mut offset_text) = (Vec::with_capacity(12), Vec::with_capacity(20));
    let mut lines_rendered = 0u64;
    loop {
        let mut chunk = Vec::with_capacity(REFILL_BYTES + 1024);
        let mut runs = MessageRuns::default();
        let mut messages = 0;
        let mut failure = None;
        let mut finished = false;
        while chunk.len() < REFILL_BYTES {
            let message = match reader.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => {
                    finished = true;
                    break;
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            let (partition, offset) = (message.partition(), message.offset());
            read.bytes_fetched += (message.key_len() + message.payload_len()) as u64;
            if !trailing.is_empty() {
                partition_text.clear();
                offset_text.clear();
                // Writing to a Vec does not fail.
                let _ = write!(partition_text, "{partition}");
                let _ = write!(offset_text, "{offset}");
            }
            let mut values: [&[u8]; 3] = [&[]; 3];
            for (value, trailing) in values.iter_mut().zip(trailing) {
                *value = match trailing {
                    Trailing::Partition => &partition_text,
                    Trailing::Offset => &offset_text,
                    Trailing::Topic => &topic_field,
                };
            }
            match lines.render(message.payload(), &values[..trailing.len()], &mut chunk) {
                Ok(breaks) => {
                    runs.record(lines_rendered + 1, partition, offset);
                    lines_rendered += 1 + breaks as u64;
                    messages += 1;
                    read.rows_returned += 1;
                }
                Err(error) => {
                    read.bad_messages_raised += 1;
                    let position = MessagePosition { topic, partition, offset };
                    let payload = message.payload().unwrap_or_default();
                    failure = Some(match error {
                        LineError::Malformed(reason) => malformed_message(&position, &reason, payload),
                        LineError::Mismatch(mismatch) => mismatched_message(&position, &mismatch, payload),
                    });
                    break;
                }
            }
        }
        // Lines before a failure go first, so that COPY reports their own errors first, as
        // a scan would.
        if !chunk.is_empty() && sender.send(Fetched::Lines { lines: chunk, runs, messages }).is_err() {
            return finish(&reader, read);
        }
        if let Some(error) = failure {
            let _ = sender.send(Fetched::Failed(error));
            return finish(&reader, read);
        }
        if finished {
            let _ = sender.send(Fetched::End);
            return finish(&reader, read);
        }
    }
}

/// COPY's input from the fetching thread, on the backend's side.
pub(super) struct MessageLines {
    receiver: Receiver<Fetched>,
    pub(super) rendered: Vec<u8>,
    runs: MessageRuns,
    /// The error the fetching thread ended with: raised after COPY has read the lines
    /// before it.
    pending: Option<FdwError>,
    /// For the progress NOTICEs: the source's name, messages read and to read.
    source_name: String,
    read: u64,
    wanted: u64,
}

impl MessageLines {
    /// Takes the next chunk of lines; false at the end (or a failure, kept in `pending`).
    pub(super) fn render_more(&mut self) -> bool {
        let fetched = loop {
            match self.receiver.recv_timeout(POLL_SLICE) {
                Ok(fetched) => break fetched,
                Err(RecvTimeoutError::Timeout) => check_interrupts(),
                Err(RecvTimeoutError::Disconnected) => {
                    break Fetched::Failed(FdwError::new(ErrorKind::Internal, "kafka_fdw's fetching thread ended before the messages did"))
                }
            }
        };
        match fetched {
            Fetched::Lines { lines, runs, messages } => {
                if self.rendered.is_empty() {
                    self.rendered = lines; // COPY read everything before: no copy
                } else {
                    self.rendered.extend_from_slice(&lines);
                }
                self.runs.extend(runs);
                let before = self.read / PROGRESS_EVERY;
                self.read += messages;
                if self.read / PROGRESS_EVERY > before {
                    notice!("kafka_fdw.import: {} of {} messages of \"{}\"", self.read, self.wanted, self.source_name);
                }
                true
            }
            Fetched::End => false,
            Fetched::Failed(error) => {
                self.pending = Some(error);
                false
            }
        }
    }

    /// The partition and offset of the message on COPY's line `line` (a message may span
    /// several lines).
    pub(super) fn message_at(&self, line: u64) -> Option<(i32, i64)> {
        self.runs.message_at(line, true)
    }
}

/// Sets a flag when dropped, however the scope it guards ends.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// COPY FROM of the messages of `topic` (one of the source's) in `ranges` into the
/// target as `plan` says; the number of rows and how they went in. A thread of its own
/// reads and renders the messages meanwhile (`fetch_lines`). `source_name` is for the
/// progress NOTICEs.
pub fn copy_messages(target: &PgRelation, plan: &MessageCopy, topic: &str, ranges: &[ReadRange], source_name: String) -> (u64, InsertPath) {
    // SAFETY: opens a relation the caller has open; the lock is COPY FROM's.
    let target = unsafe { PgRelation::with_lock(target.oid(), pg_sys::RowExclusiveLock as pg_sys::LOCKMODE) };
    let table = &plan.definition.table;
    let client = TopicClient::for_topic(&plan.definition, topic);
    let consumer = client.consumer.client();
    // The fetching thread must not call into PostgreSQL; the backend checks for
    // interrupts while it waits for lines.
    let fetch_settings = ClientSettings { interrupt: || {}, ..client.settings.clone() };
    let csv = &table.csv;
    let options = copy_options(&[
        (c"format", b"csv"),
        (c"delimiter", &[csv.delimiter]),
        (c"quote", &[csv.quote]),
        (c"escape", &[csv.escape]),
        (c"null", &csv.null),
        // The messages' bytes as they are: COPY checks them as UTF-8, as the scan does.
        (c"encoding", b"UTF8"),
    ]);
    let outcome = std::thread::scope(|scope| {
        let stop = Arc::new(AtomicBool::new(false));
        let mut reader = RangeReader::new(consumer, fetch_settings, topic, ranges).or_raise();
        reader.stop_when(stop.clone());
        let (sender, receiver) = sync_channel(CHUNKS_AHEAD);
        let lines = CopyLines::new(table.csv.clone(), plan.fields.clone(), table.strict);
        let trailing = &plan.trailing;
        // Spawned with every signal blocked, so that the thread inherits a mask that
        // keeps the backend's signals on the backend's thread.
        let fetcher = kafka::with_signals_blocked(|| {
            std::thread::Builder::new().name("kafka_fdw fetch".into()).spawn_scoped(scope, move || fetch_lines(reader, lines, trailing, topic, sender))
        })
        .or_internal("could not start the thread that reads the messages");
        // Declared after the thread, so dropped (when the COPY fails, too) before the
        // scope waits for it: the thread stops at its next message or idle poll.
        let _stop = SetOnDrop(stop);
        let _guard = FeedGuard;
        let feed = MessageLines {
            receiver,
            rendered: Vec::new(),
            runs: MessageRuns::default(),
            pending: None,
            source_name,
            read: 0,
            wanted: ranges.iter().map(|r| (r.end - r.start).max(0) as u64).sum(),
        };
        FEED.with(|slot| *slot.borrow_mut() = Some(Feed { source: Source::Messages(Box::new(feed)), read: 0, finished: false }));
        // SAFETY: the relation is open and locked; the options are valid
        // (copy_incompatibility checked the CSV ones); the feed is set.
        let copied = unsafe { copy_from(begin_copy(&target, &plan.copy_columns, options), &target, false) };
        let pending = FEED.with(|slot| match slot.borrow_mut().take().map(|feed| feed.source) {
            Some(Source::Messages(messages)) => messages.pending,
            _ => None,
        });
        drop(_stop);
        // The thread has rendered everything, or stops now; it panics only on a bug.
        let read = fetcher.join().unwrap_or_default();
        (copied, pending, read)
    });
    let (copied, pending, mut read) = outcome;
    // A value COPY's parser refused is a bad message, as the scan's own conversion would
    // have counted it (a constraint of the target is not the message's fault).
    read.bad_messages_raised += u64::from(copied.as_ref().is_err_and(RefusedRow::is_data_exception));
    stats::record(plan.source, &read);
    match (copied, pending) {
        (Err(refused), _) => {
            let payload = client.payload_at(refused.partition, refused.offset);
            raise(refused.error(topic, &payload))
        }
        (Ok(_), Some(error)) => raise(error),
        (Ok(inserted), None) => (inserted, row_by_row_reason(&target).map_or(InsertPath::Copy, InsertPath::CopyRowByRow)),
    }
}
