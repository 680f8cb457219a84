//! The wrapper's handler: the table of callbacks PostgreSQL calls for Kafka tables.

use pgrx::{pg_guard, pg_sys, PgBox};

use super::{analyze, modify, scan, schema};

/// V1 calling-convention record PostgreSQL looks up for `kafka_fdw_handler`.
#[no_mangle]
pub extern "C" fn pg_finfo_kafka_fdw_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1_API: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1_API
}

/// `kafka_fdw.kafka_fdw_handler() RETURNS fdw_handler`, declared in the extension script.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn kafka_fdw_handler(_fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let mut routine = PgBox::<pg_sys::FdwRoutine>::alloc_node(pg_sys::NodeTag::T_FdwRoutine);
        routine.GetForeignRelSize = Some(scan::get_foreign_rel_size);
        routine.GetForeignPaths = Some(scan::get_foreign_paths);
        routine.GetForeignPlan = Some(scan::get_foreign_plan);
        routine.BeginForeignScan = Some(scan::begin_foreign_scan);
        routine.IterateForeignScan = Some(scan::iterate_foreign_scan);
        routine.ReScanForeignScan = Some(scan::rescan_foreign_scan);
        routine.EndForeignScan = Some(scan::end_foreign_scan);
        routine.ExplainForeignScan = Some(scan::explain_foreign_scan);
        routine.IsForeignScanParallelSafe = Some(scan::is_foreign_scan_parallel_safe);
        routine.EstimateDSMForeignScan = Some(scan::estimate_dsm_foreign_scan);
        routine.InitializeDSMForeignScan = Some(scan::initialize_dsm_foreign_scan);
        routine.ReInitializeDSMForeignScan = Some(scan::reinitialize_dsm_foreign_scan);
        routine.InitializeWorkerForeignScan = Some(scan::initialize_worker_foreign_scan);
        routine.ShutdownForeignScan = Some(scan::shutdown_foreign_scan);
        routine.IsForeignRelUpdatable = Some(modify::is_foreign_rel_updatable);
        routine.BeginForeignModify = Some(modify::begin_foreign_modify);
        routine.ExecForeignInsert = Some(modify::exec_foreign_insert);
        routine.EndForeignModify = Some(modify::end_foreign_modify);
        routine.BeginForeignInsert = Some(modify::begin_foreign_insert);
        routine.EndForeignInsert = Some(modify::end_foreign_insert);
        routine.ExplainForeignModify = Some(modify::explain_foreign_modify);
        routine.AnalyzeForeignTable = Some(analyze::analyze_foreign_table);
        routine.ImportForeignSchema = Some(schema::import_foreign_schema);
        pg_sys::Datum::from(routine.into_pg())
    }
}
