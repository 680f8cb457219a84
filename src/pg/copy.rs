//! Inserting a query's rows at COPY speed: PostgreSQL's own `COPY FROM` machinery
//! (`BeginCopyFrom` with a data source callback, then `CopyFrom`, as file_fdw and COPY use
//! it) fed with the query's rows in COPY's binary format. COPY then does what it does for
//! a file: batches rows into the table AM's multi-insert, maintains indexes, checks
//! constraints, computes defaults and generated columns, routes to partitions, fires
//! triggers (inserting one row at a time where BEFORE/INSTEAD row triggers need it, as
//! COPY does), and reports in `pg_stat_progress_copy`.
//!
//! The binary format carries each value through its type's send and receive functions:
//! no text parsing, and a value arrives as the source column had it. So the COPY path
//! needs each source column of the target column's type; where that or anything else
//! COPY would handle differently from `INSERT` does not hold (a view or foreign table,
//! row-level security, an identity column GENERATED ALWAYS, a type without binary I/O, a client
//! encoding other than the database's, which text's send and receive functions convert
//! to), the rows go through `INSERT INTO target (columns) query` instead, and a NOTICE
//! says why.

use std::cell::RefCell;
use std::ffi::{c_int, c_void, CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_qualified_identifier;
use pgrx::PgRelation;

use std::borrow::Borrow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use rdkafka::Message;
use pgrx::PgTryBuilder;

use crate::codec::csv::{self, CopyLines, LineError};
use crate::codec::{malformed_message, mismatched_message, FieldDef, MessagePosition};
use crate::error::{ErrorKind, FdwError};
use crate::kafka::{self, ClientSettings, KafkaConsumer, RangeReader, POLL_SLICE};
use crate::kafka::ReadRange;
use crate::options::layout::ColumnSource;
use crate::options::{MetaColumn, OnError};
use crate::pg::catalog::{self, ForeignTableDef};
use crate::pg::clients::{check_interrupts, TopicClient};
use crate::pg::compat::{self, CopyFromStatePrefix};
use crate::pg::errors::{raise, OrInternal, OrRaise};
use crate::pg::privileges::{self, Columns};
use crate::pg::row_errors::{self, RefusedRow};
use crate::pg::subtransaction;

/// How the rows of one call went in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertPath {
    /// COPY FROM's machinery, with its multi-insert buffers.
    Copy,
    /// COPY FROM's machinery, one row at a time, as COPY does for these targets; why.
    CopyRowByRow(String),
    /// `INSERT … SELECT`; why COPY was not used.
    Insert(String),
}

/// Rows run through the portal per refill of COPY's input.
const ROWS_PER_FETCH: std::ffi::c_long = 1000;

/// The binary COPY header: signature, flags, header extension length.
const BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

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

/// Why rows can't take the COPY path into `target`, if they can't: where COPY would
/// refuse or behave otherwise than INSERT.
fn copy_refusal(client: &pgrx::spi::SpiClient<'_>, target: &PgRelation, columns: &[String], source_types: &[pg_sys::Oid]) -> Option<String> {
    // SAFETY: the relation's cached catalog row, valid while it is open.
    let relkind = unsafe { (*target.rd_rel).relkind } as u8;
    if ![pg_sys::RELKIND_RELATION, pg_sys::RELKIND_PARTITIONED_TABLE].contains(&relkind) {
        return Some("it is not a table".into());
    }
    // SAFETY: as above.
    if unsafe { (*target.rd_rel).relhasrules } {
        return Some("it has rules, which COPY FROM does not apply".into());
    }
    // SAFETY: catalog lookups inside a transaction.
    if unsafe { pg_sys::check_enable_rls(target.oid(), pg_sys::InvalidOid, false) } == pg_sys::CheckEnableRlsResult::RLS_ENABLED as c_int {
        return Some("it has row-level security, which COPY FROM does not support".into());
    }
    // SAFETY: reading the session's and the database's encoding. SQL_ASCII (a background
    // worker's) converts nothing and still validates what text's receive function gets.
    let client_encoding = unsafe { pg_sys::pg_get_client_encoding() };
    if client_encoding != unsafe { pg_sys::GetDatabaseEncoding() } && client_encoding != pg_sys::pg_enc::PG_SQL_ASCII as c_int {
        return Some("client_encoding differs from the database's".into());
    }
    let rows = client
        .select(
            "SELECT a.attname::text, a.atttypid, a.attidentity = 'a', t.typsend <> 0 AND t.typreceive <> 0, pg_catalog.format_type(a.atttypid, NULL)
             FROM unnest($2::text[]) WITH ORDINALITY AS c(name, n)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = $1 AND a.attname = c.name AND a.attnum > 0 AND NOT a.attisdropped
             JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
             ORDER BY c.n",
            None,
            &[target.oid().into(), columns.to_vec().into()],
        )
        .or_internal("could not read the target's columns");
    let mut found = 0;
    for (row, source_type) in rows.zip(source_types) {
        found += 1;
        let name = row.get::<String>(1).ok().flatten().unwrap_or_default();
        if row.get::<bool>(3).ok().flatten() == Some(true) {
            return Some(format!("column \"{name}\" is an identity column GENERATED ALWAYS"));
        }
        if row.get::<bool>(4).ok().flatten() != Some(true) {
            return Some(format!("the type of column \"{name}\" has no binary input and output functions"));
        }
        if row.get::<pg_sys::Oid>(2).ok().flatten() != Some(*source_type) {
            let target_type = row.get::<String>(5).ok().flatten().unwrap_or_default();
            return Some(format!("column \"{name}\" is of type {target_type} in the target, of another type in the source"));
        }
    }
    // A column the target lacks, or a count mismatch: INSERT raises the right error.
    (found != columns.len() || columns.len() != source_types.len()).then(|| "the columns do not match".into())
}

/// A reason not to take the COPY path: this backend is already feeding a COPY (this call
/// comes from a trigger or function running inside one). Its feed is the backend's one
/// [`FEED`]: replacing it would end the outer COPY early, as if its rows had run out.
fn another_copy_feeding() -> Option<String> {
    let busy = FEED.with(|feed| feed.try_borrow().map_or(true, |feed| feed.is_some()));
    busy.then(|| "another bulk insert is running in this backend (from a trigger or function inside it)".into())
}

/// Why COPY inserts into `target` one row at a time, where it does so for a reason the
/// user set: row triggers that see each row before it is inserted.
fn row_by_row_reason(target: &PgRelation) -> Option<String> {
    // SAFETY: the relation's trigger description, valid while it is open.
    let triggers = unsafe { target.trigdesc.as_ref() }?;
    (triggers.trig_insert_before_row || triggers.trig_insert_instead_row)
        .then(|| "it has BEFORE ROW INSERT triggers".into())
}

/// Renders the rows the portal sends it as binary COPY (a DestReceiver: the rows come
/// straight from the executor's slots, not copied into SPI's tuple table).
#[repr(C)]
struct Renderer {
    /// First, so PostgreSQL's `DestReceiver *` is a `Renderer *`.
    receiver: pg_sys::DestReceiver,
    /// Each column's send function (never resized, so the addresses PostgreSQL may
    /// cache in `fn_extra` stay put).
    senders: Vec<pg_sys::FmgrInfo>,
    rendered: Vec<u8>,
    /// The send functions' results, reset after each row.
    scratch: pg_sys::MemoryContext,
    /// Rows rendered so far.
    rows: u64,
    /// The message each row came from, where a Kafka scan was at one (see row_errors), to
    /// name it in an ERROR about the row's line.
    messages: MessageRuns,
    /// The foreign table of those messages, with its topic's client: looked up at its
    /// first row, while nothing has failed.
    messages_of: Option<(pg_sys::Oid, ForeignTableDef, TopicClient)>,
}

/// What the data source callback reads from.
enum Source {
    /// A query's rows, rendered as binary COPY by the renderer.
    Portal { portal: pg_sys::Portal, renderer: Box<Renderer> },
    /// A topic's messages, as CSV lines.
    Messages(Box<MessageLines>),
}

/// The input of the COPY running in this backend.
struct Feed {
    source: Source,
    /// Rendered bytes before this were handed to COPY.
    read: usize,
    /// Everything is rendered.
    finished: bool,
}

thread_local! {
    /// The feed of the COPY running in this backend (one at a time: COPY's callback
    /// takes no argument of ours).
    static FEED: RefCell<Option<Feed>> = const { RefCell::new(None) };
}

/// Clears [`FEED`] however the COPY ends.
struct FeedGuard;

impl Drop for FeedGuard {
    fn drop(&mut self) {
        // try_: a panic while unwinding would abort the backend.
        FEED.with(|feed| feed.try_borrow_mut().map(|mut feed| feed.take()).ok());
    }
}

/// Starts COPY FROM into `columns` of `target` with `options` (a `List` of `DefElem`),
/// reading from [`feed_copy`], after COPY's own privilege and read-only checks.
///
/// # Safety
/// `target` open and locked for insertion; `options` valid COPY options.
unsafe fn begin_copy(target: &PgRelation, columns: &[String], options: *mut pg_sys::List) -> pg_sys::CopyFromState {
    // SAFETY: the caller keeps the contract above; every node is built in the current
    // (SPI procedure) memory context, which outlives the COPY.
    unsafe {
        let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
        let relation = target.as_ptr();
        let item = pg_sys::addRangeTableEntryForRelation(
            pstate,
            relation,
            pg_sys::RowExclusiveLock as c_int,
            std::ptr::null_mut(),
            false,
            false,
        );
        let mut names = std::ptr::null_mut::<pg_sys::List>();
        let mut attnums = Vec::with_capacity(columns.len());
        for column in columns {
            let column = CString::new(column.as_str()).unwrap_or_default();
            attnums.push(pg_sys::attnameAttNum(relation, column.as_ptr(), false) as i16);
            names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup(column.as_ptr())).cast());
        }
        // COPY's own privilege and read-only checks, as DoCopy makes them.
        compat::check_insert_privileges(pstate, item, &attnums);
        if pg_sys::XactReadOnly && !(*relation).rd_islocaltemp {
            pg_sys::PreventCommandIfReadOnly(c"COPY FROM".as_ptr());
        }
        pg_sys::BeginCopyFrom(pstate, relation, std::ptr::null_mut(), std::ptr::null(), false, Some(feed_copy), names, options)
    }
}

/// COPY options, as the parser makes them.
fn copy_options(options: &[(&CStr, &[u8])]) -> *mut pg_sys::List {
    let mut list = std::ptr::null_mut();
    for (name, value) in options {
        let value = CString::new(*value).or_internal("a COPY option holds a NUL byte");
        // SAFETY: nodes built in the current memory context from NUL-terminated copies.
        unsafe {
            let element = pg_sys::makeDefElem(pg_sys::pstrdup(name.as_ptr()), pg_sys::makeString(pg_sys::pstrdup(value.as_ptr())).cast(), -1);
            list = pg_sys::lappend(list, element.cast());
        }
    }
    list
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
                let Some((_, definition, client)) = messages_of else {
                    raise(FdwError::new(ErrorKind::Internal, "a failed COPY's row has a message but no table"))
                };
                let payload = client.payload_at(refused.partition, refused.offset);
                raise(refused.error(&definition.table.topic, &payload))
            }
        }
    }
}

/// COPY's data source: at least `minread` and at most `maxread` bytes of the feed's
/// rendering into `outbuf`; fewer than `minread` only at the end.
#[pg_guard]
extern "C-unwind" fn feed_copy(outbuf: *mut c_void, minread: c_int, maxread: c_int) -> c_int {
    FEED.with(|feed| {
        let mut feed = feed.borrow_mut();
        let Some(feed) = feed.as_mut() else { return 0 };
        if feed.source.rendered().len() - feed.read < minread as usize {
            let read = std::mem::take(&mut feed.read);
            feed.source.rendered_mut().drain(..read);
        }
        while feed.source.rendered().len() - feed.read < minread as usize && !feed.finished {
            feed.finished = !feed.source.render_more();
        }
        let rendered = feed.source.rendered();
        let count = (rendered.len() - feed.read).min(maxread as usize);
        // SAFETY: COPY hands a buffer of at least `maxread` bytes.
        unsafe { std::ptr::copy_nonoverlapping(rendered[feed.read..].as_ptr(), outbuf.cast::<u8>(), count) };
        feed.read += count;
        count as c_int
    })
}

impl Source {
    fn rendered(&self) -> &Vec<u8> {
        match self {
            Source::Portal { renderer, .. } => &renderer.rendered,
            Source::Messages(messages) => &messages.rendered,
        }
    }

    fn rendered_mut(&mut self) -> &mut Vec<u8> {
        match self {
            Source::Portal { renderer, .. } => &mut renderer.rendered,
            Source::Messages(messages) => &mut messages.rendered,
        }
    }

    /// Renders more input; false once everything is rendered (the binary trailer
    /// included).
    fn render_more(&mut self) -> bool {
        match self {
            Source::Portal { portal, renderer } => {
                // From the whole Renderer, which render_row reaches through this pointer.
                let receiver: *mut pg_sys::DestReceiver = (&mut **renderer as *mut Renderer).cast();
                // SAFETY: the portal is open until the COPY ends; the renderer outlives the
                // fetch and is reached only through `receiver` during it.
                let fetched = unsafe { pg_sys::PortalRunFetch(*portal, pg_sys::FetchDirection::FETCH_FORWARD, ROWS_PER_FETCH, receiver) };
                if fetched == 0 {
                    renderer.rendered.extend_from_slice(&(-1i16).to_be_bytes());
                    return false;
                }
                true
            }
            Source::Messages(messages) => messages.render_more(),
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
            if renderer.messages_of.as_ref().map(|(table, ..)| *table) != Some(message.table) {
                let definition = catalog::foreign_table_by_id(message.table);
                let client = TopicClient::for_table(&definition);
                renderer.messages_of = Some((message.table, definition, client));
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
    Ok(MessageCopy { definition, copy_columns: data_columns.into_iter().chain(trailing_columns).collect(), trailing, fields })
}

/// The type and type modifier of attribute `attnum` of `relid`, an existing one.
fn type_and_modifier(relid: pg_sys::Oid, attnum: i16) -> (pg_sys::Oid, i32) {
    let (mut type_id, mut typmod, mut collation) = (pg_sys::InvalidOid, -1, pg_sys::InvalidOid);
    // SAFETY: a catalog lookup inside a transaction (an ERROR for a missing attribute).
    unsafe { pg_sys::get_atttypetypmodcoll(relid, attnum, &mut type_id, &mut typmod, &mut collation) };
    (type_id, typmod)
}

/// Consecutive messages of one partition on consecutive lines: how a line number that
/// COPY reports names its message.
struct MessageRun {
    first_line: u64,
    partition: i32,
    first_offset: i64,
    count: u64,
}

/// The messages of COPY's lines, as runs (a scan's rows come in long runs of one
/// partition's offsets, so this stays small whatever the number of lines).
#[derive(Default)]
struct MessageRuns(Vec<MessageRun>);

impl MessageRuns {
    /// Line `line` (counting from 1, in order) holds the message at `partition` and `offset`.
    fn record(&mut self, line: u64, partition: i32, offset: i64) {
        match self.0.last_mut() {
            Some(run) if run.partition == partition && run.first_offset + run.count as i64 == offset && run.first_line + run.count == line => {
                run.count += 1
            }
            _ => self.0.push(MessageRun { first_line: line, partition, first_offset: offset, count: 1 }),
        }
    }

    fn extend(&mut self, other: MessageRuns) {
        self.0.extend(other.0);
    }

    /// The partition and offset of the message on COPY's line `line`; with
    /// `spanning_lines` a line past a run's last one is still its last message's (a CSV
    /// message spanning several lines ends a run), otherwise it is none.
    fn message_at(&self, line: u64, spanning_lines: bool) -> Option<(i32, i64)> {
        let index = self.0.partition_point(|run| run.first_line <= line).checked_sub(1)?;
        let run = &self.0[index];
        let step = line - run.first_line;
        if step >= run.count && !spanning_lines {
            return None;
        }
        Some((run.partition, run.first_offset + step.min(run.count - 1) as i64))
    }
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
/// (its reader's settings interrupt nothing; the backend checks for interrupts).
fn fetch_lines<C: Borrow<KafkaConsumer>>(mut reader: RangeReader<C>, mut lines: CopyLines, trailing: &[Trailing], topic: &str, sender: SyncSender<Fetched>) {
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
                }
                Err(error) => {
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
            return;
        }
        if let Some(error) = failure {
            let _ = sender.send(Fetched::Failed(error));
            return;
        }
        if finished {
            let _ = sender.send(Fetched::End);
            return;
        }
    }
}

/// COPY's input from the fetching thread, on the backend's side.
struct MessageLines {
    receiver: Receiver<Fetched>,
    rendered: Vec<u8>,
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
    fn render_more(&mut self) -> bool {
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
    fn message_at(&self, line: u64) -> Option<(i32, i64)> {
        self.runs.message_at(line, true)
    }
}

/// Whether `state`, just begun by BeginCopyFrom on `relation` with [`feed_copy`], has
/// the layout of [`CopyFromStatePrefix`]: its relation, data source and format (binary,
/// or CSV) where the prefix says.
///
/// # Safety
/// `state` is a live COPY FROM state.
unsafe fn reads_copy_state(state: pg_sys::CopyFromState, relation: pg_sys::Relation, binary: bool) -> bool {
    // SAFETY: the state is at least as large as the prefix in every build of the
    // PostgreSQL version built for.
    let prefix = unsafe { &*state.cast::<CopyFromStatePrefix>() };
    prefix.rel == relation
        && prefix.data_source_cb.map(|f| f as *const ()) == Some(feed_copy as *const ())
        && prefix.opts.csv_mode != binary
        && prefix.opts.binary == binary
        && prefix.filename.is_null()
}

/// Where `report`, an ERROR COPY raised about a row (a value, an encoding, a
/// constraint), happened: the message of the line COPY was at (`state`'s line number),
/// and the column if an input function failed. `None` for other errors, or when the line
/// is not one of a message.
///
/// # Safety
/// `state` is the state of the COPY that failed, whose prefix [`reads_copy_state`]
/// recognized.
unsafe fn failed_at(state: pg_sys::CopyFromState, report: &ErrorReportWithLevel) -> Option<RefusedRow> {
    // SAFETY: the caller keeps the contract above; COPY's state outlives the COPY's ERROR
    // (it is freed with the function's memory context).
    let (line, column) = unsafe {
        let prefix = &*state.cast::<CopyFromStatePrefix>();
        let column = (!prefix.cur_attname.is_null()).then(|| CStr::from_ptr(prefix.cur_attname).to_string_lossy().into_owned());
        (prefix.cur_lineno, column)
    };
    let (partition, offset) = FEED.with(|feed| {
        let feed = feed.try_borrow().ok()?;
        match &feed.as_ref()?.source {
            Source::Messages(messages) => messages.message_at(line),
            Source::Portal { renderer, .. } => renderer.messages.message_at(line, false),
        }
    })?;
    RefusedRow::of(report, partition, offset, column)
}

/// Runs COPY FROM begun as `state` on `target`; the rows inserted, or the row that an
/// ERROR was about (a value, a constraint) when the feed knows the message of its line.
///
/// # Safety
/// `state` a COPY FROM state begun by [`begin_copy`] with [`feed_copy`], `binary` its
/// format; the FEED set.
unsafe fn copy_from(state: pg_sys::CopyFromState, target: &PgRelation, binary: bool) -> Result<u64, RefusedRow> {
    // SAFETY: the caller keeps the contract above; COPY's state lives until the
    // function's memory context ends.
    unsafe {
        let names_messages = reads_copy_state(state, target.as_ptr(), binary);
        // Unwind safety: after a caught ERROR only COPY's state and the feed are read, then
        // an ERROR raised.
        let copied = PgTryBuilder::new(AssertUnwindSafe(|| Ok(pg_sys::CopyFrom(state))))
            .catch_others(|caught| {
                let failed = match &caught {
                    CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) if names_messages => failed_at(state, report),
                    _ => None,
                };
                failed.map_or_else(|| caught.rethrow(), Err)
            })
            .execute();
        if copied.is_ok() {
            pg_sys::EndCopyFrom(state);
        }
        copied
    }
}

/// Sets a flag when dropped, however the scope it guards ends.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// COPY FROM of the messages in `ranges` into the target as `plan` says; the number of
/// rows and how they went in. A thread of its own reads and renders the messages
/// meanwhile (`fetch_lines`). `source_name` is for the progress NOTICEs.
pub fn copy_messages(target: &PgRelation, plan: MessageCopy, ranges: &[ReadRange], source_name: String) -> (u64, InsertPath) {
    // SAFETY: opens a relation the caller has open; the lock is COPY FROM's.
    let target = unsafe { PgRelation::with_lock(target.oid(), pg_sys::RowExclusiveLock as pg_sys::LOCKMODE) };
    let table = &plan.definition.table;
    let client = TopicClient::for_table(&plan.definition);
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
        let mut reader = RangeReader::new(consumer, fetch_settings, &table.topic, ranges).or_raise();
        reader.stop_when(stop.clone());
        let (sender, receiver) = sync_channel(CHUNKS_AHEAD);
        let lines = CopyLines::new(table.csv.clone(), plan.fields.clone(), table.strict);
        let (trailing, topic) = (&plan.trailing, table.topic.as_str());
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
        let _ = fetcher.join();
        (copied, pending)
    });
    match outcome {
        (Err(refused), _) => {
            let payload = client.payload_at(refused.partition, refused.offset);
            raise(refused.error(&table.topic, &payload))
        }
        (Ok(_), Some(error)) => raise(error),
        (Ok(inserted), None) => (inserted, row_by_row_reason(&target).map_or(InsertPath::Copy, InsertPath::CopyRowByRow)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_runs_name_the_message_of_each_line() {
        let mut runs = MessageRuns::default();
        // Partition 0 offsets 10-12 on lines 1-3, partition 1 offset 5 on line 4, a line
        // with no message (5), then partition 0 again from offset 20 (a gap) on 6-7.
        for (line, partition, offset) in [(1, 0, 10), (2, 0, 11), (3, 0, 12), (4, 1, 5), (6, 0, 20), (7, 0, 21)] {
            runs.record(line, partition, offset);
        }
        assert_eq!(runs.0.len(), 3);
        assert_eq!(runs.message_at(2, false), Some((0, 11)));
        assert_eq!(runs.message_at(4, false), Some((1, 5)));
        assert_eq!(runs.message_at(5, false), None);
        assert_eq!(runs.message_at(7, false), Some((0, 21)));
        assert_eq!(runs.message_at(8, false), None);
        assert_eq!(runs.message_at(0, false), None);
        // A CSV message spanning lines 4 and 5 is still partition 1's offset 5 on line 5.
        assert_eq!(runs.message_at(5, true), Some((1, 5)));
    }
}
