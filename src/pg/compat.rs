//! What differs between the PostgreSQL versions kafka_fdw builds for (cargo features
//! `pg15`, `pg16`, `pg17`, `pg18`): each item here hides one change of PostgreSQL's C
//! API, named in its comment with the version that made it, so that the rest of the
//! crate reads alike on every version. Nothing here changes what kafka_fdw does.

use std::ffi::{c_char, c_int, c_void};

use pgrx::pg_sys;

/// Whether `set` is empty. PostgreSQL 16 made every empty Bitmapset NULL and
/// `bms_is_empty` a macro that tests for NULL; before, a set could be empty and not NULL.
pub fn bitmapset_is_empty(set: *const pg_sys::Bitmapset) -> bool {
    #[cfg(feature = "pg15")]
    // SAFETY: reads a set PostgreSQL made (or NULL, the empty set).
    return unsafe { pg_sys::bms_is_empty(set) };
    #[cfg(not(feature = "pg15"))]
    return set.is_null();
}

/// The attributes of `tupdesc`, dropped ones included, in order. PostgreSQL 18 put an
/// array of `CompactAttribute`s before them in `TupleDescData`, reached through
/// `TupleDescAttr` (an inline function, which pgrx's C shim exports).
///
/// # Safety
/// `tupdesc` is a valid tuple descriptor that outlives the slice.
pub unsafe fn attributes<'a>(tupdesc: pg_sys::TupleDesc) -> &'a [pg_sys::FormData_pg_attribute] {
    // SAFETY: the caller keeps the contract above; `natts` attributes follow.
    unsafe {
        let count = (*tupdesc).natts as usize;
        #[cfg(not(feature = "pg18"))]
        return (*tupdesc).attrs.as_slice(count);
        #[cfg(feature = "pg18")]
        return std::slice::from_raw_parts(pg_sys::TupleDescAttr(tupdesc, 0), count);
    }
}

/// The current user's `mode` privilege on foreign server `server`. PostgreSQL 16
/// replaced the per-kind `pg_foreign_server_aclcheck` by `object_aclcheck` on the
/// object's catalog.
pub fn foreign_server_aclcheck(server: pg_sys::Oid, mode: pg_sys::AclMode) -> pg_sys::AclResult::Type {
    // SAFETY: a catalog lookup inside a transaction (an ERROR for a missing server).
    unsafe {
        #[cfg(feature = "pg15")]
        return pg_sys::pg_foreign_server_aclcheck(server, pg_sys::GetUserId(), mode);
        #[cfg(not(feature = "pg15"))]
        return pg_sys::object_aclcheck(pg_sys::ForeignServerRelationId, server, pg_sys::GetUserId(), mode);
    }
}

/// This backend's slot: unique among the backends alive together, reused after one
/// exits. PostgreSQL 17 replaced `MyBackendId` (from 1) by `MyProcNumber` (the index of
/// the backend's PGPROC, from 0).
pub fn backend_slot() -> i32 {
    // SAFETY: a backend global, set before any query runs.
    unsafe {
        #[cfg(any(feature = "pg15", feature = "pg16"))]
        return pg_sys::MyBackendId;
        #[cfg(not(any(feature = "pg15", feature = "pg16")))]
        return pg_sys::MyProcNumber;
    }
}

/// Installs `handler` for signal `signal` in this backend. PostgreSQL 18 named the
/// backend's `pqsignal` `pqsignal_be` (a macro keeps the old name for C callers).
///
/// # Safety
/// `handler` is safe to run in a signal handler.
pub unsafe fn set_signal_handler(signal: c_int, handler: pg_sys::pqsigfunc) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        pg_sys::pqsignal(signal, handler);
        #[cfg(feature = "pg18")]
        pg_sys::pqsignal_be(signal, handler);
    }
}

/// Whether `pathkey` sorts in descending order. PostgreSQL 18 replaced its btree
/// strategy (`pk_strategy`, `BTGreaterStrategyNumber` for descending) by a compare type
/// of any index method (`pk_cmptype`, `COMPARE_GT`).
///
/// # Safety
/// `pathkey` is a valid PathKey.
pub unsafe fn pathkey_is_descending(pathkey: *const pg_sys::PathKey) -> bool {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        #[cfg(not(feature = "pg18"))]
        return (*pathkey).pk_strategy == pg_sys::BTGreaterStrategyNumber as c_int;
        #[cfg(feature = "pg18")]
        return (*pathkey).pk_cmptype == pg_sys::CompareType::COMPARE_GT;
    }
}

/// `create_foreignscan_path` with PostgreSQL 15's arguments. PostgreSQL 17 added
/// `fdw_restrictinfo` (the join clauses a foreign join path checks itself: none for a
/// base relation's scan), 18 `disabled_nodes` (how many plan nodes `enable_*` settings
/// disabled below the path: none, a foreign scan has no setting).
///
/// # Safety
/// As for `create_foreignscan_path`: during planning of `rel`.
#[allow(clippy::too_many_arguments)]
pub unsafe fn create_foreignscan_path(
    root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    target: *mut pg_sys::PathTarget,
    rows: f64,
    startup_cost: pg_sys::Cost,
    total_cost: pg_sys::Cost,
    pathkeys: *mut pg_sys::List,
    required_outer: pg_sys::Relids,
    fdw_outerpath: *mut pg_sys::Path,
    fdw_private: *mut pg_sys::List,
) -> *mut pg_sys::ForeignPath {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        #[cfg(any(feature = "pg15", feature = "pg16"))]
        return pg_sys::create_foreignscan_path(
            root, rel, target, rows, startup_cost, total_cost, pathkeys, required_outer, fdw_outerpath, fdw_private,
        );
        #[cfg(feature = "pg17")]
        return pg_sys::create_foreignscan_path(
            root, rel, target, rows, startup_cost, total_cost, pathkeys, required_outer, fdw_outerpath,
            std::ptr::null_mut(), fdw_private,
        );
        #[cfg(feature = "pg18")]
        return pg_sys::create_foreignscan_path(
            root, rel, target, rows, 0, startup_cost, total_cost, pathkeys, required_outer, fdw_outerpath,
            std::ptr::null_mut(), fdw_private,
        );
    }
}

/// COPY FROM's privilege check as DoCopy makes it: INSERT on columns `attnums` of the
/// relation `item` names, just added to `pstate`'s range table (an ERROR if missing).
/// PostgreSQL 16 moved the privileges a query needs from its range table entries into
/// `RTEPermissionInfo` nodes, checked by `ExecCheckPermissions` instead of
/// `ExecCheckRTPerms`.
///
/// # Safety
/// `item` is the namespace item `addRangeTableEntryForRelation` returned for `pstate`;
/// inside a transaction.
pub unsafe fn check_insert_privileges(pstate: *mut pg_sys::ParseState, item: *mut pg_sys::ParseNamespaceItem, attnums: &[i16]) {
    // SAFETY: the caller keeps the contract above; the set is built in the current
    // memory context.
    unsafe {
        #[cfg(feature = "pg15")]
        let permissions = (*item).p_rte;
        #[cfg(not(feature = "pg15"))]
        let permissions = (*item).p_perminfo;
        (*permissions).requiredPerms = pg_sys::ACL_INSERT as pg_sys::AclMode;
        for &attnum in attnums {
            (*permissions).insertedCols =
                pg_sys::bms_add_member((*permissions).insertedCols, attnum as c_int - pg_sys::FirstLowInvalidHeapAttributeNumber);
        }
        #[cfg(feature = "pg15")]
        pg_sys::ExecCheckRTPerms((*pstate).p_rtable, true);
        #[cfg(not(feature = "pg15"))]
        pg_sys::ExecCheckPermissions((*pstate).p_rtable, (*pstate).p_rteperminfos, true);
    }
}

/// The leading fields of COPY FROM's state, `CopyFromStateData`
/// (commands/copyfrom_internal.h, which pgrx's bindings leave opaque), up to the line
/// and column COPY's own error context reports. Identical in PostgreSQL 15 to 17 but
/// for `CopyFormatOptions`, which the bindings give per version; PostgreSQL 18 put the
/// format's routines (`CopyFromRoutine`, for COPY formats of extensions) first. Read
/// only after checking the fields it can be checked by (`api::import::copy::reads_copy_state`).
#[repr(C)]
pub struct CopyFromStatePrefix {
    #[cfg(feature = "pg18")]
    routine: *const c_void,
    copy_src: c_int,
    copy_file: *mut c_void,
    fe_msgbuf: *mut c_void,
    eol_type: c_int,
    file_encoding: c_int,
    need_transcoding: bool,
    conversion_proc: pg_sys::Oid,
    pub rel: pg_sys::Relation,
    attnumlist: *mut pg_sys::List,
    pub filename: *mut c_char,
    is_program: bool,
    pub data_source_cb: pg_sys::copy_data_source_cb,
    pub opts: pg_sys::CopyFormatOptions,
    convert_select_flags: *mut bool,
    where_clause: *mut pg_sys::Node,
    cur_relname: *const c_char,
    pub cur_lineno: u64,
    pub cur_attname: *const c_char,
}
