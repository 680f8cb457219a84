//! Inserting a query's rows at COPY speed: COPY FROM's machinery (`copy`) fed with the
//! query's rows in COPY's binary format, rendered by a DestReceiver straight from the
//! executor's slots.
//!
//! The binary format carries each value through its type's send and receive functions:
//! no text parsing, and a value arrives as the source column had it. So the COPY path
//! needs each source column of the target column's type; where that or anything else
//! COPY would handle differently from `INSERT` does not hold (a view or foreign table,
//! row-level security, an identity column GENERATED ALWAYS, a type without binary I/O, a
//! client encoding other than the database's, which text's send and receive functions
//! convert to), the rows go through `INSERT INTO target (columns) query` instead, and a
//! NOTICE says why.

use std::ffi::{c_int, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_qualified_identifier;
use pgrx::PgRelation;



use crate::error::{ErrorKind, FdwError};
use crate::pg::catalog::{self, ForeignTableDef};
use crate::pg::clients::TopicClient;
use crate::pg::compat::{self};
use crate::pg::errors::{raise, OrInternal};
use crate::pg::row_errors::{self, MessageAt};
use crate::pg::subtransaction;

use super::copy::{another_copy_feeding, begin_copy, copy_from, copy_options, copy_refusal, row_by_row_reason, Feed, FeedGuard, InsertPath, MessageRuns, Source, FEED};

/// Rows run through the portal per refill of COPY's input.
pub(super) const ROWS_PER_FETCH: std::ffi::c_long = 1000;

/// The binary COPY header: signature, flags, header extension length.
pub(super) const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Inserts the rows of `query` (read as the current user) into `columns` of `target`, as
/// `INSERT INTO target (columns) query` would, checking the current user's INSERT
/// privilege on those columns as COPY does. Returns the number of rows inserted and the
/// path they took.
pub fn insert_query_rows(target: &PgRelation, columns: &[String], query: &str) -> (u64, InsertPath) {
    // SAFETY: opens a relation the caller has open; the lock is COPY FROM's and INSERT's.
    let target = unsafe { PgRelation::with_lock(target.oid(), pg_sys::RowExclusiveLock as pg_sys::LOCKMODE) };
    Spi::connect_mut(|client| {
        let query_c = CString::new(query).or_internal("the import's query holds a NUL byte");
        // SAFETY: SPI is connected (Spi::connect_mut); the portal lives until it is
        // closed below or the (sub)transaction ends.
        let portal = unsafe {
            pg_sys::SPI_cursor_open_with_args(
                std::ptr::null(),
                query_c.as_ptr(),
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
                false,
                0,
            )
        };
        // SAFETY: an open portal's tuple descriptor, valid while the portal is.
        let source_types: Vec<pg_sys::Oid> = unsafe {
            let tupdesc = (*portal).tupDesc;
            compat::attributes(tupdesc).iter().map(|attr| attr.atttypid).collect()
        };
        if let Some(why) = copy_refusal(client, &target, columns, &source_types).or_else(another_copy_feeding) {
            // SAFETY: the portal opened above, not used after.
            unsafe { pg_sys::SPI_cursor_close(portal) };
            let quoted: Vec<String> = columns.iter().map(pgrx::spi::quote_identifier).collect();
            let insert = format!(
                "INSERT INTO {} ({}) {query}",
                quote_qualified_identifier(target.namespace(), target.name()),
                quoted.join(", ")
            );
            row_errors::forget();
            // An ERROR about a row (a cast, a constraint) names the message the scan was at.
            let inserted = subtransaction::attempt(|| Spi::connect_mut(|client| client.update(&insert, None, &[]).map(|rows| rows.len())))
                .unwrap_or_else(|report| row_errors::raise_naming_the_message(report, |_| None))
                .or_internal("could not insert the rows");
            return (inserted as u64, InsertPath::Insert(why));
        }
        // SAFETY: the relation is open and locked; the portal is open, its columns
        // `columns` in order with the target's types (checked by copy_refusal).
        let inserted = unsafe { copy_from_portal(&target, columns, portal) };
        // SAFETY: the portal opened above, read to its end, not used after.
        unsafe { pg_sys::SPI_cursor_close(portal) };
        (inserted, row_by_row_reason(&target).map_or(InsertPath::Copy, InsertPath::CopyRowByRow))
    })
}

/// Renders the rows the portal sends it as binary COPY (a DestReceiver: the rows come
/// straight from the executor's slots, not copied into SPI's tuple table).
#[repr(C)]
pub(super) struct Renderer {
    /// First, so PostgreSQL's `DestReceiver *` is a `Renderer *`.
    receiver: pg_sys::DestReceiver,
    /// Each column's send function (never resized, so the addresses PostgreSQL may
    /// cache in `fn_extra` stay put).
    senders: Vec<pg_sys::FmgrInfo>,
    pub(super) rendered: Vec<u8>,
    /// The send functions' results, reset after each row.
    scratch: pg_sys::MemoryContext,
    /// Rows rendered so far.
    rows: u64,
    /// The message each row came from, where a Kafka scan was at one (see row_errors), to
    /// name it in an ERROR about the row's line.
    pub(super) messages: MessageRuns,
    /// The foreign table and topic of those messages (a message of them), with the
    /// topic's client: looked up at its first row, while nothing has failed.
    messages_of: Option<(MessageAt, ForeignTableDef, TopicClient)>,
}

/// COPY FROM of the portal's rows into `columns` of `target`; the number of rows.
///
/// # Safety
/// Inside SPI; `target` open and locked for insertion; `portal` open, its columns in
/// the order of `columns` and of the target columns' types.
unsafe fn copy_from_portal(target: &PgRelation, columns: &[String], portal: pg_sys::Portal) -> u64 {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let tupdesc = (*portal).tupDesc;
        let senders = compat::attributes(tupdesc)
            .iter()
            .map(|attr| {
                let (mut send, mut varlena) = (pg_sys::InvalidOid, false);
                pg_sys::getTypeBinaryOutputInfo(attr.atttypid, &mut send, &mut varlena);
                let mut function = std::mem::zeroed::<pg_sys::FmgrInfo>();
                pg_sys::fmgr_info(send, &mut function);
                function
            })
            .collect::<Vec<_>>();
        let scratch = pg_sys::AllocSetContextCreateInternal(
            pg_sys::CurrentMemoryContext,
            c"kafka_fdw bulk insert".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let receiver = pg_sys::DestReceiver {
            receiveSlot: Some(render_row),
            rStartup: Some(render_nothing_at_startup),
            rShutdown: Some(render_nothing_at_end),
            rDestroy: Some(render_nothing_at_end),
            mydest: pg_sys::CommandDest::DestNone,
        };
        let renderer =
            Box::new(Renderer { receiver, senders, rendered: BINARY_HEADER.to_vec(), scratch, rows: 0, messages: MessageRuns::default(), messages_of: None });
        let _guard = FeedGuard;
        FEED.with(|feed| *feed.borrow_mut() = Some(Feed { source: Source::Portal { portal, renderer }, read: 0, finished: false }));
        let state = begin_copy(target, columns, copy_options(&[(c"format", b"binary")]));
        match copy_from(state, target, true) {
            Ok(inserted) => inserted,
            Err(refused) => {
                let messages_of = FEED.with(|feed| match feed.borrow_mut().take().map(|feed| feed.source) {
                    Some(Source::Portal { renderer, .. }) => renderer.messages_of,
                    _ => None,
                });
                let Some((_, _, client)) = messages_of else {
                    raise(FdwError::new(ErrorKind::Internal, "a failed COPY's row has a message but no table"))
                };
                let payload = client.payload_at(refused.partition, refused.offset);
                raise(refused.error(&client.topic, &payload))
            }
        }
    }
}

/// Appends one row of the portal to the rendering: its field count, then each value's
/// length and send function's bytes (-1 for NULL).
#[pg_guard]
extern "C-unwind" fn render_row(slot: *mut pg_sys::TupleTableSlot, receiver: *mut pg_sys::DestReceiver) -> bool {
    // SAFETY: `receiver` is the first field of a live Renderer (copy_from_portal), and
    // `slot` a row of the portal's descriptor, whose values live until the next row; the
    // send functions' results live in `scratch` until its reset below. A table a scan of
    // the portal's query read is locked by it.
    unsafe {
        let renderer = &mut *receiver.cast::<Renderer>();
        renderer.rows += 1;
        if let Some(message) = row_errors::current() {
            renderer.messages.record(renderer.rows, message.partition, message.offset);
            // A batch reads one topic: a client for it, at its first row.
            let same = |(seen, ..): &(MessageAt, ForeignTableDef, TopicClient)| seen.table == message.table && seen.topic == message.topic;
            if !renderer.messages_of.as_ref().is_some_and(same) {
                let definition = catalog::foreign_table_by_id(message.table);
                let client = TopicClient::for_topic(&definition, &message.topic);
                renderer.messages_of = Some((message, definition, client));
            }
        }
        pg_sys::slot_getallattrs(slot);
        let count = renderer.senders.len();
        let values = std::slice::from_raw_parts((*slot).tts_values, count);
        let nulls = std::slice::from_raw_parts((*slot).tts_isnull, count);
        renderer.rendered.extend_from_slice(&(count as i16).to_be_bytes());
        let outer = pg_sys::MemoryContextSwitchTo(renderer.scratch);
        for ((sender, &value), &null) in renderer.senders.iter_mut().zip(values).zip(nulls) {
            if null {
                renderer.rendered.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            }
            let bytes = pg_sys::SendFunctionCall(sender, value);
            let length = pgrx::varlena::varsize_any_exhdr(bytes);
            renderer.rendered.extend_from_slice(&(length as i32).to_be_bytes());
            renderer.rendered.extend_from_slice(std::slice::from_raw_parts(pgrx::varlena::vardata_any(bytes).cast::<u8>(), length));
        }
        pg_sys::MemoryContextSwitchTo(outer);
        // Each row's few send buffers fit the context's first block, which a reset
        // keeps: no malloc per row.
        pg_sys::MemoryContextReset(renderer.scratch);
    }
    true
}

#[pg_guard]
extern "C-unwind" fn render_nothing_at_startup(_receiver: *mut pg_sys::DestReceiver, _operation: c_int, _tupdesc: pg_sys::TupleDesc) {}

#[pg_guard]
extern "C-unwind" fn render_nothing_at_end(_receiver: *mut pg_sys::DestReceiver) {}
