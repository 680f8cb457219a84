//! The scheduler: a background worker that runs the jobs of `kafka_fdw.import_jobs` and
//! the scheduled SQL tasks of `kafka_fdw.tasks` when they are due (every second at the
//! finest), each run in its own transaction (an import's with its offsets), so a crash or
//! restart resumes without duplicates or gaps. pg_cron's finest schedule here (1.4) is a
//! minute, hence this.
//!
//! It starts with the server when `shared_preload_libraries` has `kafka_fdw`, and works in
//! the database `kafka_fdw.scheduler_database` (default `postgres`), waiting until the
//! extension exists there. The worker itself is a superuser; each job's import runs as
//! the job's owner (`kafka_fdw.run_import_job` → `kafka_fdw.import_as`), each task's
//! command as the task's owner (`kafka_fdw.run_task` → `kafka_fdw.task_as`), both
//! through `privileges::as_job_owner`.
//!
//! Terminated (`pg_terminate_backend`) or crashed, it is started again by the postmaster
//! after [`RESTART_AFTER`]; a run cut short commits nothing, so its job is simply due,
//! and a task run it left 'running' is recorded as failed when it starts again.

use std::ffi::CString;
use std::time::Duration;

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;

static SCHEDULER_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// How many runs of each task `kafka_fdw.task_runs` keeps (read by kafka_fdw.run_task).
static TASK_RUN_HISTORY: GucSetting<i32> = GucSetting::<i32>::new(1000);

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
    GucRegistry::define_int_guc(
        c"kafka_fdw.task_run_history",
        c"How many runs of each scheduled task kafka_fdw.task_run_details keeps.",
        c"After each run, older runs of the task are deleted.",
        &TASK_RUN_HISTORY,
        1,
        i32::MAX,
        GucContext::Suset,
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
    // Runs left 'running' by the previous worker ended with it (restart, crash,
    // termination): their transactions never committed. Recorded once the extension is
    // there.
    let mut interrupted_runs_closed = false;
    while BackgroundWorker::wait_latch(Some(TICK)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads the configuration files between transactions, as
            // PostgreSQL's own background workers do on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if !interrupted_runs_closed {
            interrupted_runs_closed = BackgroundWorker::transaction(|| {
                let installed = Spi::get_one::<bool>("SELECT pg_catalog.to_regclass('kafka_fdw.task_runs') IS NOT NULL")
                    .ok()
                    .flatten()
                    .unwrap_or(false);
                if installed {
                    Spi::run(
                        "UPDATE kafka_fdw.task_runs SET status = 'failed', end_time = pg_catalog.now(),
                                return_message = 'the scheduler stopped during this run (server restart, crash or termination); nothing it did was committed'
                         WHERE status = 'running'",
                    )
                    .unwrap_or_else(|error| warning!("kafka_fdw scheduler: {error}"));
                }
                installed
            });
        }
        let (jobs, tasks): (Vec<i32>, Vec<i64>) = BackgroundWorker::transaction(|| {
            let installed = Spi::get_one::<bool>(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'kafka_fdw')
                        AND pg_catalog.to_regclass('kafka_fdw.tasks') IS NOT NULL",
            )
            .ok()
            .flatten()
            .unwrap_or(false);
            if !installed {
                return (Vec::new(), Vec::new());
            }
            Spi::connect(|client| {
                let jobs = client
                    .select("SELECT job_id FROM kafka_fdw.import_jobs WHERE next_run <= now() ORDER BY next_run", None, &[])
                    .map(|rows| rows.filter_map(|row| row.get::<i32>(1).ok().flatten()).collect())
                    .unwrap_or_default();
                let tasks = client
                    .select("SELECT task_id FROM kafka_fdw.tasks WHERE next_run <= now() ORDER BY next_run", None, &[])
                    .map(|rows| rows.filter_map(|row| row.get::<i64>(1).ok().flatten()).collect())
                    .unwrap_or_default();
                (jobs, tasks)
            })
        });
        for job in jobs {
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
        for task in tasks {
            if BackgroundWorker::sigterm_received() {
                break;
            }
            // The run is recorded as 'running' and the task's next time set, committed;
            // then the command runs in a transaction of its own with its outcome
            // (kafka_fdw.run_task catches its errors). One task after the other, so a
            // task never overlaps itself; one that overran its interval runs again at once.
            let run = BackgroundWorker::transaction(|| {
                Spi::get_one_with_args::<i64>("SELECT kafka_fdw.begin_task_run($1)", &[task.into()]).ok().flatten()
            });
            if let Some(run) = run {
                BackgroundWorker::transaction(|| {
                    Spi::run_with_args("SELECT kafka_fdw.run_task($1)", &[run.into()])
                        .unwrap_or_else(|error| warning!("kafka_fdw task {task}: {error}"));
                });
            }
        }
    }
    log!("kafka_fdw import scheduler stopping: terminated");
    // A background worker that exits with 0 is never started again; with 1 the postmaster
    // restarts it after RESTART_AFTER, unless the server is shutting down.
    // SAFETY: proc_exit ends the process through PostgreSQL's exit callbacks.
    unsafe { pg_sys::proc_exit(1) };
}
