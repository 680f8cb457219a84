//! Running a piece of work that may raise an ERROR in an internal subtransaction, rolled
//! back if it does, so that the caller goes on (reads the catalogs, runs SQL) and decides
//! what to raise: as PL/pgSQL's EXCEPTION blocks and PL/Python's subtransactions do.

use pgrx::pg_sys;
use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use pgrx::PgTryBuilder;

/// What `run` returned, or the ERROR it raised (its subtransaction rolled back). A Rust
/// panic goes on unwinding. `run` allocates in the caller's memory context either way.
///
/// Not in parallel mode: PostgreSQL cannot start a subtransaction there.
pub fn attempt<T>(run: impl FnOnce() -> T) -> Result<T, ErrorReportWithLevel> {
    // SAFETY: the sequence of PostgreSQL's PLy_spi_subtransaction_begin/commit/abort. The
    // subtransaction begins and ends here; the caller's memory context and resource owner
    // are restored on both paths (pgrx has copied and flushed the error before the abort).
    unsafe {
        let memory_context = pg_sys::CurrentMemoryContext;
        let resource_owner = pg_sys::CurrentResourceOwner;
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(memory_context);
        let result = catch_error(run);
        if result.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(memory_context);
        pg_sys::CurrentResourceOwner = resource_owner;
        result
    }
}

/// What `run` returned, or the ERROR it raised, caught without a subtransaction: the
/// caller may only raise an ERROR after a caught one (the abort that follows releases what
/// `run` held). A Rust panic goes on unwinding.
pub fn catch_error<T>(run: impl FnOnce() -> T) -> Result<T, ErrorReportWithLevel> {
    // Unwind safety: after a caught ERROR nothing `run` touched is used again.
    PgTryBuilder::new(std::panic::AssertUnwindSafe(|| Ok(run())))
        .catch_others(|caught| match caught {
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => Err(report),
            CaughtError::RustPanic { .. } => caught.rethrow(),
        })
        .execute()
}

/// Raises a caught ERROR again, as it was.
pub fn raise_again(report: ErrorReportWithLevel) -> ! {
    CaughtError::PostgresError(report).rethrow()
}
