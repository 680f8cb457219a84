//! Planner and executor callbacks of a foreign scan.

use std::ffi::{c_int, c_void, CString};

use pgrx::{pg_guard, pg_sys, PgList, PgMemoryContexts};

use crate::catalog;
use crate::connection::{self, ClientKey, Lease};
use crate::kafka::{self, ClientSettings, RangeReader, ReadRange};
use crate::pgerror::OrRaise;
use crate::row::RowBuilder;

/// What a running scan keeps between calls. Owned by the executor's query memory
/// context: if the query fails, deleting that context drops this, and with it the Kafka
/// client, even though `EndForeignScan` never runs after an ERROR.
struct ScanState {
    /// `None` once the client went back to the pool.
    reader: Option<RangeReader>,
    lease: Lease,
    ranges: Vec<ReadRange>,
    row: RowBuilder,
}

impl ScanState {
    /// Hands the client back to the backend's pool for the next query.
    fn release(&mut self) {
        if let Some(reader) = self.reader.take() {
            connection::return_consumer(self.lease, reader.into_consumer());
        }
    }
}

impl Drop for ScanState {
    /// Runs when the query's memory context goes away, also after an ERROR.
    fn drop(&mut self) {
        self.release();
    }
}

/// Attribute number that stands for "the whole row" in `fdw_private`.
const WHOLE_ROW: i32 = 0;

fn check_interrupts() {
    pgrx::check_for_interrupts!();
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_rel_size(
    _root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _foreigntableid: pg_sys::Oid,
) {
    // Until estimates come from the watermarks, assume a mid-sized topic.
    (*baserel).rows = 1000.0;
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_paths(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _foreigntableid: pg_sys::Oid,
) {
    let rows = (*baserel).rows;
    // Startup pays for metadata and watermark round trips; each row for a message.
    let startup_cost = 25.0;
    let total_cost = startup_cost + rows * (pg_sys::cpu_tuple_cost * 2.0);
    let path = pg_sys::create_foreignscan_path(
        root,
        baserel,
        std::ptr::null_mut(),
        rows,
        startup_cost,
        total_cost,
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    pg_sys::add_path(baserel, path as *mut pg_sys::Path);
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_plan(
    _root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    _foreigntableid: pg_sys::Oid,
    _best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    scan_clauses: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    // Every qual stays a local filter for now; only the columns are narrowed.
    let clauses = pg_sys::extract_actual_clauses(scan_clauses, false);
    pg_sys::make_foreignscan(
        tlist,
        clauses,
        (*baserel).relid,
        std::ptr::null_mut(),
        used_attributes(baserel),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        outer_plan,
    )
}

/// The attribute numbers the query reads (target list and quals), as an integer list.
unsafe fn used_attributes(baserel: *mut pg_sys::RelOptInfo) -> *mut pg_sys::List {
    let relid = (*baserel).relid;
    let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
    pg_sys::pull_varattnos((*(*baserel).reltarget).exprs as *mut pg_sys::Node, relid, &mut attrs);
    for restriction in PgList::<pg_sys::RestrictInfo>::from_pg((*baserel).baserestrictinfo).iter_ptr() {
        pg_sys::pull_varattnos((*restriction).clause as *mut pg_sys::Node, relid, &mut attrs);
    }
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    let mut member = -1;
    loop {
        member = pg_sys::bms_next_member(attrs, member);
        if member < 0 {
            break;
        }
        let attno = member + pg_sys::FirstLowInvalidHeapAttributeNumber;
        if attno >= WHOLE_ROW {
            list = pg_sys::lappend_int(list, attno);
        }
    }
    list
}

/// `needed[i]`: whether attribute `i + 1` is read, from the plan's integer list.
unsafe fn needed_attributes(fdw_private: *mut pg_sys::List, natts: usize) -> Vec<bool> {
    let used = PgList::<c_void>::from_pg(fdw_private);
    let mut needed = vec![false; natts];
    for attno in used.iter_int() {
        if attno == WHOLE_ROW {
            needed.fill(true);
        } else {
            needed[attno as usize - 1] = true;
        }
    }
    needed
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_scan(node: *mut pg_sys::ForeignScanState, eflags: c_int) {
    if eflags & pg_sys::EXEC_FLAG_EXPLAIN_ONLY as c_int != 0 {
        return;
    }
    let relation = (*node).ss.ss_currentRelation;
    let definition = catalog::foreign_table(relation);
    // Like postgres_fdw, a scan needs a user mapping (credentials will live there).
    let user_mapping = pg_sys::GetUserMapping(pg_sys::GetUserId(), definition.server_id);

    let plan = (*node).ss.ps.plan as *mut pg_sys::ForeignScan;
    let tupdesc = (*relation).rd_att;
    let needed = needed_attributes((*plan).fdw_private, (*tupdesc).natts as usize);
    let topic = definition.table.topic.as_str();
    let row = RowBuilder::new(tupdesc, &definition.columns, &needed, topic);

    let settings = ClientSettings {
        brokers: definition.server.brokers.clone(),
        timeout: definition.server.timeout,
        fetch_wait: definition.table.buffer_delay,
        interrupt: check_interrupts,
    };
    let key = ClientKey {
        server: definition.server_id,
        user_mapping: (*user_mapping).umid,
        fetch_wait: settings.fetch_wait.min(kafka::MAX_FETCH_WAIT),
    };
    let (consumer, lease) = connection::borrow_consumer(key, &settings).or_raise();
    let reader = RangeReader::new(consumer, settings, topic, &[]).or_raise();
    // From here on the state owns the client, so it goes back to the pool however the
    // query ends.
    let state = ScanState { reader: Some(reader), lease, ranges: Vec::new(), row };
    let state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state);
    (*node).fdw_state = state as *mut c_void;

    let reader = (*state).reader.as_mut().expect("just created");
    let partitions = kafka::topic_partitions(reader.consumer(), reader.settings(), topic).or_raise();
    // The high watermarks taken here are where the scan ends: messages produced while it
    // runs belong to the next one.
    let ranges: Vec<ReadRange> = kafka::watermarks(reader.consumer(), reader.settings(), topic, &partitions)
        .or_raise()
        .iter()
        .map(|marks| ReadRange { partition: marks.partition, start: marks.low, end: marks.high })
        .collect();
    reader.restart(&ranges).or_raise();
    (*state).ranges = ranges;
}

#[pg_guard]
pub unsafe extern "C-unwind" fn iterate_foreign_scan(node: *mut pg_sys::ForeignScanState) -> *mut pg_sys::TupleTableSlot {
    let slot = (*node).ss.ss_ScanTupleSlot;
    pg_sys::ExecClearTuple(slot);
    let state = &mut *((*node).fdw_state as *mut ScanState);
    let Some(reader) = state.reader.as_mut() else {
        return slot;
    };
    if let Some(message) = reader.next_message().or_raise() {
        state.row.fill(slot, &message);
        pg_sys::ExecStoreVirtualTuple(slot);
    }
    slot
}

#[pg_guard]
pub unsafe extern "C-unwind" fn rescan_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    let state = &mut *((*node).fdw_state as *mut ScanState);
    if let Some(reader) = state.reader.as_mut() {
        reader.restart(&state.ranges).or_raise();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    let state = (*node).fdw_state as *mut ScanState;
    if !state.is_null() {
        // Give the client back now rather than when the query's memory goes away.
        (*state).release();
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn explain_foreign_scan(node: *mut pg_sys::ForeignScanState, es: *mut pg_sys::ExplainState) {
    let definition = catalog::foreign_table((*node).ss.ss_currentRelation);
    let topic = CString::new(definition.table.topic).unwrap_or_default();
    pg_sys::ExplainPropertyText(c"Kafka topic".as_ptr(), topic.as_ptr(), es);
}
