//! COPY FROM's machinery fed from the import's own source, as file_fdw and COPY use it
//! (`BeginCopyFrom` with a data source callback, then `CopyFrom`): either a query's rows
//! rendered in COPY's binary format (`query_rows`) or a topic's CSV messages as lines
//! (`message_lines`). COPY then does what it does for a file: batches rows into the table
//! AM's multi-insert, maintains indexes, checks constraints, computes defaults and
//! generated columns, routes to partitions, fires triggers (one row at a time where
//! BEFORE/INSTEAD row triggers need it, as COPY does), and reports in
//! `pg_stat_progress_copy`. An ERROR about a row names the message it came from
//! ([`MessageRuns`]).

use std::cell::RefCell;
use std::ffi::{c_int, c_void, CStr, CString};

use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgRelation;

use std::panic::AssertUnwindSafe;

use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use pgrx::PgTryBuilder;

use crate::pg::compat::{self, CopyFromStatePrefix};
use crate::pg::errors::OrInternal;
use crate::pg::row_errors::RefusedRow;

use super::message_lines::MessageLines;
use super::query_rows::{Renderer, ROWS_PER_FETCH};

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

/// Why rows can't take the COPY path into `target`, if they can't: where COPY would
/// refuse or behave otherwise than INSERT.
pub(super) fn copy_refusal(client: &pgrx::spi::SpiClient<'_>, target: &PgRelation, columns: &[String], source_types: &[pg_sys::Oid]) -> Option<String> {
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
pub(super) fn another_copy_feeding() -> Option<String> {
    let busy = FEED.with(|feed| feed.try_borrow().map_or(true, |feed| feed.is_some()));
    busy.then(|| "another bulk insert is running in this backend (from a trigger or function inside it)".into())
}

/// Why COPY inserts into `target` one row at a time, where it does so for a reason the
/// user set: row triggers that see each row before it is inserted.
pub(super) fn row_by_row_reason(target: &PgRelation) -> Option<String> {
    // SAFETY: the relation's trigger description, valid while it is open.
    let triggers = unsafe { target.trigdesc.as_ref() }?;
    (triggers.trig_insert_before_row || triggers.trig_insert_instead_row)
        .then(|| "it has BEFORE ROW INSERT triggers".into())
}

/// What the data source callback reads from.
pub(super) enum Source {
    /// A query's rows, rendered as binary COPY by the renderer.
    Portal { portal: pg_sys::Portal, renderer: Box<Renderer> },
    /// A topic's messages, as CSV lines.
    Messages(Box<MessageLines>),
}

/// The input of the COPY running in this backend.
pub(super) struct Feed {
    pub(super) source: Source,
    /// Rendered bytes before this were handed to COPY.
    pub(super) read: usize,
    /// Everything is rendered.
    pub(super) finished: bool,
}

thread_local! {
    /// The feed of the COPY running in this backend (one at a time: COPY's callback
    /// takes no argument of ours).
    pub(super) static FEED: RefCell<Option<Feed>> = const { RefCell::new(None) };
}

/// Clears [`FEED`] however the COPY ends.
pub(super) struct FeedGuard;

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
pub(super) unsafe fn begin_copy(target: &PgRelation, columns: &[String], options: *mut pg_sys::List) -> pg_sys::CopyFromState {
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
pub(super) fn copy_options(options: &[(&CStr, &[u8])]) -> *mut pg_sys::List {
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

/// Consecutive messages of one partition on consecutive lines: how a line number that
/// COPY reports names its message.
pub(super) struct MessageRun {
    first_line: u64,
    partition: i32,
    first_offset: i64,
    count: u64,
}

/// The messages of COPY's lines, as runs (a scan's rows come in long runs of one
/// partition's offsets, so this stays small whatever the number of lines).
#[derive(Default)]
pub(super) struct MessageRuns(Vec<MessageRun>);

impl MessageRuns {
    /// Line `line` (counting from 1, in order) holds the message at `partition` and `offset`.
    pub(super) fn record(&mut self, line: u64, partition: i32, offset: i64) {
        match self.0.last_mut() {
            Some(run) if run.partition == partition && run.first_offset + run.count as i64 == offset && run.first_line + run.count == line => {
                run.count += 1
            }
            _ => self.0.push(MessageRun { first_line: line, partition, first_offset: offset, count: 1 }),
        }
    }

    pub(super) fn extend(&mut self, other: MessageRuns) {
        self.0.extend(other.0);
    }

    /// The partition and offset of the message on COPY's line `line`; with
    /// `spanning_lines` a line past a run's last one is still its last message's (a CSV
    /// message spanning several lines ends a run), otherwise it is none.
    pub(super) fn message_at(&self, line: u64, spanning_lines: bool) -> Option<(i32, i64)> {
        let index = self.0.partition_point(|run| run.first_line <= line).checked_sub(1)?;
        let run = &self.0[index];
        let step = line - run.first_line;
        if step >= run.count && !spanning_lines {
            return None;
        }
        Some((run.partition, run.first_offset + step.min(run.count - 1) as i64))
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
pub(super) unsafe fn copy_from(state: pg_sys::CopyFromState, target: &PgRelation, binary: bool) -> Result<u64, RefusedRow> {
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
