//! The import scheduler: a background worker that runs the jobs of
//! `kafka_fdw.import_jobs` when they are due (every second by default), each run in its
//! own transaction with its offsets, so a crash or restart resumes without duplicates or
//! gaps. pg_cron's finest schedule here (1.4) is a minute, hence this.
//!
//! It starts with the server when `shared_preload_libraries` has `kafka_fdw`, and works in
//! the database `kafka_fdw.scheduler_database` (default `postgres`), waiting until the
//! extension exists there. The worker itself is a superuser; each job's import runs as
//! the job's owner (`kafka_fdw.run_import_job` → `kafka_fdw.import_as`).
//!
//! Terminated (`pg_terminate_backend`) or crashed, it is started again by the postmaster
//! after [`RESTART_AFTER`]; a run cut short commits nothing, so its job is simply due.

use std::ffi::CString;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

static SCHEDULER_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// How often the scheduler looks for due jobs.
const TICK: Duration = Duration::from_millis(100);

/// How soon the postmaster starts the scheduler again after it ended for any reason but
/// a server shutdown (`bgw_restart_time`).
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// Registers the scheduler's setting and worker; called from `_PG_init` when the library
/// is preloaded (a worker can only be registered then).
pub fn register() {
    GucRegistry::define_string_guc(
        c"kafka_fdw.scheduler_database",
        c"Database whose kafka_fdw.import_jobs the import scheduler runs.",
        c"The scheduler is a background worker started with the server; it needs shared_preload_libraries to include kafka_fdw.",
        &SCHEDULER_DATABASE,
        GucContext::Postmaster,
        GucFlags::default(),
    );
    BackgroundWorkerBuilder::new("kafka_fdw import scheduler")
        .set_library("kafka_fdw")
        .set_function("kafka_fdw_scheduler_main")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn kafka_fdw_scheduler_main(_argument: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = SCHEDULER_DATABASE.get().map(|name| name.to_string_lossy().into_owned());
    // If the database does not exist yet, this fails and the worker restarts later.
    BackgroundWorker::connect_worker_to_spi(database.as_deref(), None);
    log!("kafka_fdw import scheduler started in database \"{}\"", database.unwrap_or_default());
    while BackgroundWorker::wait_latch(Some(TICK)) {
        let due: Vec<i32> = BackgroundWorker::transaction(|| {
            let installed = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'kafka_fdw')",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if !installed {
                return Vec::new();
            }
            Spi::connect(|client| {
                client
                    .select("SELECT job_id FROM kafka_fdw.import_jobs WHERE next_run <= now() ORDER BY next_run", None, &[])
                    .map(|rows| rows.filter_map(|row| row.get::<i32>(1).ok().flatten()).collect())
                    .unwrap_or_default()
            })
        });
        for job in due {
            if BackgroundWorker::sigterm_received() {
                break;
            }
            // Each run commits on its own; a failing job records its error and backs off
            // (kafka_fdw.run_import_job catches it), leaving the other jobs to run.
            BackgroundWorker::transaction(|| {
                Spi::run_with_args("SELECT kafka_fdw.run_import_job($1)", &[job.into()])
                    .unwrap_or_else(|error| warning!("kafka_fdw import job {job}: {error}"));
            });
        }
    }
    log!("kafka_fdw import scheduler stopping: terminated");
    // A background worker that exits with 0 is never started again; with 1 the postmaster
    // restarts it after RESTART_AFTER, unless the server is shutting down.
    // SAFETY: proc_exit ends the process through PostgreSQL's exit callbacks.
    unsafe { pg_sys::proc_exit(1) };
}
