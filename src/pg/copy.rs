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
use std::ffi::{c_int, c_void, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_qualified_identifier;
use pgrx::PgRelation;

use crate::pg::errors::OrInternal;

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
            (*tupdesc).attrs.as_slice((*tupdesc).natts as usize).iter().map(|attr| attr.atttypid).collect()
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
            let inserted = client.update(&insert, None, &[]).or_internal("could not insert the rows").len();
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
}

/// What the data source callback reads from: the portal, through the renderer.
struct Feed {
    portal: pg_sys::Portal,
    renderer: Box<Renderer>,
    /// Rendered bytes before this were handed to COPY.
    read: usize,
    /// The trailer is rendered: the portal is exhausted.
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

/// COPY FROM of the portal's rows into `columns` of `target`; the number of rows.
///
/// # Safety
/// Inside SPI; `target` open and locked for insertion; `portal` open, its columns in
/// the order of `columns` and of the target columns' types.
unsafe fn copy_from_portal(target: &PgRelation, columns: &[String], portal: pg_sys::Portal) -> u64 {
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
        let rte = (*item).p_rte;
        (*rte).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        let mut names = std::ptr::null_mut::<pg_sys::List>();
        for column in columns {
            let column = CString::new(column.as_str()).unwrap_or_default();
            let attnum = pg_sys::attnameAttNum(relation, column.as_ptr(), false);
            (*rte).insertedCols =
                pg_sys::bms_add_member((*rte).insertedCols, attnum as c_int - pg_sys::FirstLowInvalidHeapAttributeNumber);
            names = pg_sys::lappend(names, pg_sys::makeString(pg_sys::pstrdup(column.as_ptr())).cast());
        }
        // COPY's own privilege and read-only checks, as DoCopy makes them.
        pg_sys::ExecCheckRTPerms((*pstate).p_rtable, true);
        if pg_sys::XactReadOnly && !(*relation).rd_islocaltemp {
            pg_sys::PreventCommandIfReadOnly(c"COPY FROM".as_ptr());
        }
        let binary = pg_sys::makeDefElem(pg_sys::pstrdup(c"format".as_ptr()), pg_sys::makeString(pg_sys::pstrdup(c"binary".as_ptr())).cast(), -1);
        let options = pg_sys::lappend(std::ptr::null_mut(), binary.cast());

        let tupdesc = (*portal).tupDesc;
        let senders = (*tupdesc)
            .attrs
            .as_slice((*tupdesc).natts as usize)
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
        let renderer = Box::new(Renderer { receiver, senders, rendered: BINARY_HEADER.to_vec(), scratch });
        let _guard = FeedGuard;
        FEED.with(|feed| *feed.borrow_mut() = Some(Feed { portal, renderer, read: 0, finished: false }));
        let state = pg_sys::BeginCopyFrom(pstate, relation, std::ptr::null_mut(), std::ptr::null(), false, Some(feed_copy), names, options);
        let inserted = pg_sys::CopyFrom(state);
        pg_sys::EndCopyFrom(state);
        inserted
    }
}

/// COPY's data source: at least `minread` and at most `maxread` bytes of the binary
/// rendering into `outbuf`; fewer than `minread` only at the end.
#[pg_guard]
extern "C-unwind" fn feed_copy(outbuf: *mut c_void, minread: c_int, maxread: c_int) -> c_int {
    FEED.with(|feed| {
        let mut feed = feed.borrow_mut();
        let Some(feed) = feed.as_mut() else { return 0 };
        if feed.renderer.rendered.len() - feed.read < minread as usize {
            feed.renderer.rendered.drain(..feed.read);
            feed.read = 0;
        }
        while feed.renderer.rendered.len() - feed.read < minread as usize && !feed.finished {
            // From the whole Renderer, which render_row reaches through this pointer.
            let receiver: *mut pg_sys::DestReceiver = (&mut *feed.renderer as *mut Renderer).cast();
            // SAFETY: the portal is open until the COPY ends; the renderer outlives the
            // fetch and is reached only through `receiver` during it.
            let fetched = unsafe { pg_sys::PortalRunFetch(feed.portal, pg_sys::FetchDirection::FETCH_FORWARD, ROWS_PER_FETCH, receiver) };
            if fetched == 0 {
                feed.renderer.rendered.extend_from_slice(&(-1i16).to_be_bytes());
                feed.finished = true;
            }
        }
        let count = (feed.renderer.rendered.len() - feed.read).min(maxread as usize);
        // SAFETY: COPY hands a buffer of at least `maxread` bytes.
        unsafe { std::ptr::copy_nonoverlapping(feed.renderer.rendered[feed.read..].as_ptr(), outbuf.cast::<u8>(), count) };
        feed.read += count;
        count as c_int
    })
}

/// Appends one row of the portal to the rendering: its field count, then each value's
/// length and send function's bytes (-1 for NULL).
#[pg_guard]
extern "C-unwind" fn render_row(slot: *mut pg_sys::TupleTableSlot, receiver: *mut pg_sys::DestReceiver) -> bool {
    // SAFETY: `receiver` is the first field of a live Renderer (copy_from_portal), and
    // `slot` a row of the portal's descriptor, whose values live until the next row; the
    // send functions' results live in `scratch` until its reset below.
    unsafe {
        let renderer = &mut *receiver.cast::<Renderer>();
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
