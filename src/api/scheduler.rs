//! The scheduler: a background worker that launches the due runs of `kafka_fdw.tasks`
//! (SQL tasks and import jobs alike, every second at the finest; pg_cron's finest
//! schedule here, 1.4, is a minute). It never runs anyone's SQL itself: each run is a
//! dynamic background worker of its own (`task_run.rs`) that connects to the database as
//! the task's owner, so a slow run holds up nothing but itself.
//!
//! It starts with the server when `shared_preload_libraries` has `kafka_fdw`, and works in
//! the database `kafka_fdw.scheduler_database` (default `postgres`), waiting until the
//! extension exists there. It connects as the bootstrap superuser, with `search_path`
//! pinned to `pg_catalog, pg_temp`, and runs only the extension's own statements on its
//! own tables and the catalogs, taking no lock a normal role could hold against it.
//!
//! Each tick it: reaps runs whose worker exited without recording an outcome (a crash,
//! a termination, a server restart: their transaction never committed); cancels runs
//! past their time limit (and terminates those that ignore the cancel); launches due
//! tasks that have no run in progress, up to `kafka_fdw.max_running_tasks` at a time,
//! after checking that the owner could log in now (a run that can't is recorded as
//! failed, with the reason). Its cost does not grow with idle tasks: due tasks come from
//! an index on `next_run`, runs in progress from a partial index.
//!
//! Terminated (`pg_terminate_backend`) or crashed, it is started again by the postmaster
//! after [`RESTART_AFTER`]; runs in progress go on, and it finds them by their locks.

use std::ffi::CString;
use std::time::{Duration, Instant};

use pgrx::bgworkers::{BackgroundWorker, BackgroundWorkerBuilder, BgWorkerStartTime, SignalWakeFlags};
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

use crate::api::task_run;
use crate::pg::locks;

static SCHEDULER_DATABASE: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c"postgres"));

/// How many runs of each task `kafka_fdw.task_runs` keeps.
static TASK_RUN_HISTORY: GucSetting<i32> = GucSetting::<i32>::new(1000);

/// How many runs may be in progress at once.
static MAX_RUNNING_TASKS: GucSetting<i32> = GucSetting::<i32>::new(4);

/// The longest a run may take unless its task says otherwise, in seconds (0: no limit).
static TASK_TIME_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(3600);

/// How often the scheduler looks for due tasks and ended runs (a run's start and exit
/// also wake it).
const TICK: Duration = Duration::from_millis(100);

/// How soon the postmaster starts the scheduler again after it ended for any reason but
/// a server shutdown (`bgw_restart_time`).
const RESTART_AFTER: Duration = Duration::from_secs(1);

/// How long a run that was cancelled at its time limit may take to end before its worker
/// is terminated.
const TERMINATE_AFTER: Duration = Duration::from_secs(10);

/// What the history says of a run whose worker ended without recording an outcome (an
/// ERROR is recorded by the run itself): its transaction never committed.
const RUN_LOST: &str = "the run ended without recording an outcome (its worker was terminated, or the server \
                        crashed, restarted or is shutting down; see the server log): nothing it did was committed";

/// The `backend_type` of runs' workers in `pg_stat_activity`.
pub const RUN_WORKER_TYPE: &str = "kafka_fdw task run";

/// Registers the scheduler's settings and worker; called from `_PG_init` when the library
/// is preloaded (a worker can only be registered then).
pub fn register() {
    GucRegistry::define_string_guc(
        c"kafka_fdw.scheduler_database",
        c"Database whose kafka_fdw.tasks (scheduled tasks and import jobs) the scheduler runs.",
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
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"kafka_fdw.max_running_tasks",
        c"How many runs of scheduled tasks and import jobs may be in progress at once.",
        c"Each run is a background worker: max_worker_processes must leave room for them, the scheduler and parallel queries.",
        &MAX_RUNNING_TASKS,
        1,
        1000,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"kafka_fdw.task_time_limit",
        c"The longest a run of a scheduled task or import job may take, unless the task sets its own (0: no limit).",
        c"A run past its limit is cancelled, and terminated if it has not ended 10 seconds later.",
        &TASK_TIME_LIMIT,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    BackgroundWorkerBuilder::new("kafka_fdw scheduler")
        .set_type("kafka_fdw scheduler")
        .set_library("kafka_fdw")
        .set_function("kafka_fdw_scheduler_main")
        .enable_spi_access()
        .set_restart_time(Some(RESTART_AFTER))
        .load();
}

/// The database whose tasks run.
pub fn database() -> String {
    SCHEDULER_DATABASE.get().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The time limit of runs whose task sets none, in seconds (0: none).
pub fn default_time_limit_seconds() -> i32 {
    TASK_TIME_LIMIT.get()
}

/// How many runs of each task the history keeps.
pub fn run_history() -> i32 {
    TASK_RUN_HISTORY.get()
}

/// A run this scheduler launched, until its worker exits.
struct Launched {
    run: i64,
    task: i64,
    /// The postmaster's handle of the worker, in the scheduler's TopMemoryContext.
    handle: *mut pg_sys::BackgroundWorkerHandle,
    started: Instant,
    time_limit: Option<Duration>,
    cancelled: bool,
    terminated: bool,
}

impl Launched {
    /// The worker's process id, None once it exited.
    fn pid(&self) -> Option<pg_sys::pid_t> {
        let mut pid = 0;
        // SAFETY: the handle came from RegisterDynamicBackgroundWorker and is freed only
        // when the run is forgotten.
        let status = unsafe { pg_sys::GetBackgroundWorkerPid(self.handle, &mut pid) };
        match status {
            pg_sys::BgwHandleStatus::BGWH_STOPPED | pg_sys::BgwHandleStatus::BGWH_POSTMASTER_DIED => None,
            // Not started yet: alive, without a process to signal.
            _ => Some(pid),
        }
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        // SAFETY: the handle was palloc'd in TopMemoryContext by RegisterDynamicBackgroundWorker.
        unsafe { pg_sys::pfree(self.handle.cast()) }
    }
}

#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn kafka_fdw_scheduler_main(_argument: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let database = database();
    // If the database does not exist yet, this fails and the worker restarts later.
    BackgroundWorker::connect_worker_to_spi(Some(&database), None);
    // SAFETY: sets a setting of this process, outside any transaction.
    unsafe {
        pg_sys::SetConfigOption(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
    log!("kafka_fdw scheduler started in database \"{database}\"");
    let mut launched: Vec<Launched> = Vec::new();
    while BackgroundWorker::wait_latch(Some(TICK)) {
        if BackgroundWorker::sighup_received() {
            // SAFETY: rereads the configuration files between transactions, as
            // PostgreSQL's own background workers do on SIGHUP.
            unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        }
        if !BackgroundWorker::transaction(installed) {
            continue;
        }
        reap(&mut launched);
        enforce_time_limits(&mut launched);
        launch_due(&mut launched);
    }
    log!("kafka_fdw scheduler stopping: terminated");
    // A background worker that exits with 0 is never started again; with 1 the postmaster
    // restarts it after RESTART_AFTER, unless the server is shutting down.
    // SAFETY: proc_exit ends the process through PostgreSQL's exit callbacks.
    unsafe { pg_sys::proc_exit(1) };
}

fn installed() -> bool {
    Spi::get_one::<bool>(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'kafka_fdw')
                AND pg_catalog.to_regclass('kafka_fdw.task_runs') IS NOT NULL",
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// Records as failed the runs whose worker exited without recording an outcome: those
/// this scheduler launched, by their handles, and any other 'running' run that no process
/// holds the lock of (left by an earlier scheduler: a crash or restart). Either way the
/// run's transaction never committed.
fn reap(launched: &mut Vec<Launched>) {
    let mut ended = Vec::new();
    launched.retain_mut(|run| {
        if run.pid().is_some() {
            return true;
        }
        let why = if run.terminated {
            format!("the run exceeded its time limit ({}) and was terminated", seconds_text(run.time_limit))
        } else {
            RUN_LOST.to_string()
        };
        ended.push((run.run, run.task, why));
        false
    });
    let ours: Vec<i64> = launched.iter().map(|run| run.run).collect();
    BackgroundWorker::transaction(move || {
        for (run, task, why) in &ended {
            task_run::fail_if_running(*task, *run, why);
        }
        let others = Spi::connect(|client| {
            client
                .select(
                    "SELECT runid, task_id FROM kafka_fdw.task_runs WHERE status = 'running' AND runid <> ALL ($1)",
                    None,
                    &[ours.into()],
                )
                .map(|rows| rows.filter_map(|row| row.get::<i64>(1).ok().flatten().zip(row.get::<i64>(2).ok().flatten())).collect::<Vec<_>>())
                .unwrap_or_default()
        });
        for (run, task) in others {
            if !locks::task_is_running(task) {
                task_run::fail_if_running(task, run, RUN_LOST);
            }
        }
    });
}

/// Cancels the runs past their time limit, as `statement_timeout` cancels a statement
/// (the run records the failure itself), and terminates those still going
/// [`TERMINATE_AFTER`] later.
fn enforce_time_limits(launched: &mut [Launched]) {
    for run in launched.iter_mut() {
        let (Some(limit), Some(pid)) = (run.time_limit, run.pid()) else { continue };
        let elapsed = run.started.elapsed();
        if elapsed >= limit && !run.cancelled && pid > 0 {
            // SAFETY: SIGINT to one of our own runs' workers: its query-cancel handler.
            unsafe { libc::kill(pid, libc::SIGINT) };
            run.cancelled = true;
        }
        if elapsed >= limit + TERMINATE_AFTER && !run.terminated {
            // SAFETY: the handle is valid (see Launched::pid).
            unsafe { pg_sys::TerminateBackgroundWorker(run.handle) };
            run.terminated = true;
        }
    }
}

/// Launches the due tasks that have no run in progress, oldest due first, as long as
/// fewer than kafka_fdw.max_running_tasks runs are in progress (this scheduler's and any
/// an earlier one left running).
fn launch_due(launched: &mut Vec<Launched>) {
    let most = i64::from(MAX_RUNNING_TASKS.get());
    if launched.len() as i64 >= most {
        return;
    }
    let due: Vec<i64> = BackgroundWorker::transaction(move || {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT t.task_id FROM kafka_fdw.tasks t
                     WHERE t.next_run <= pg_catalog.now()
                       AND NOT EXISTS (SELECT FROM kafka_fdw.task_runs r WHERE r.task_id = t.task_id AND r.status = 'running')
                     ORDER BY t.next_run
                     LIMIT greatest(0, $1 - (SELECT count(*) FROM kafka_fdw.task_runs WHERE status = 'running'))",
                    None,
                    &[most.into()],
                )
                .map(|rows| rows.filter_map(|row| row.get::<i64>(1).ok().flatten()).collect())
                .unwrap_or_default()
        })
    });
    for task in due {
        if BackgroundWorker::sigterm_received() {
            return;
        }
        let started = BackgroundWorker::transaction(move || task_run::begin(task));
        let Some(start) = started else { continue };
        let time_limit = Some(start.time_limit_seconds.unwrap_or_else(|| f64::from(default_time_limit_seconds())))
            .filter(|seconds| *seconds > 0.0)
            .map(Duration::from_secs_f64);
        match start_worker(start.run, task, &start.owner) {
            Some(handle) => launched.push(Launched {
                run: start.run,
                task,
                handle,
                started: Instant::now(),
                time_limit,
                cancelled: false,
                terminated: false,
            }),
            None => BackgroundWorker::transaction(move || {
                task_run::fail_if_running(
                    task,
                    start.run,
                    "could not start a background worker for the run: all max_worker_processes slots are in use",
                )
            }),
        }
    }
}

/// Starts the worker of run `run` of task `task`, connecting as `owner`; None when the
/// postmaster has no free worker slot.
fn start_worker(run: i64, task: i64, owner: &str) -> Option<*mut pg_sys::BackgroundWorkerHandle> {
    let builder = BackgroundWorkerBuilder::new(&format!("kafka_fdw run {run} of task {task}"))
        .set_type(RUN_WORKER_TYPE)
        .set_library("kafka_fdw")
        .set_function("kafka_fdw_task_run_main")
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::RecoveryFinished)
        .set_restart_time(None)
        .set_argument(Some(pg_sys::Datum::from(run)))
        // A role's name has at most 63 bytes; bgw_extra holds 127.
        .set_extra(owner)
        // SAFETY: reads a backend global.
        .set_notify_pid(unsafe { pg_sys::MyProcPid });
    let mut worker: pg_sys::BackgroundWorker = (&builder).into();
    let mut handle: *mut pg_sys::BackgroundWorkerHandle = std::ptr::null_mut();
    // SAFETY: registers the worker described above; the handle is palloc'd in the
    // scheduler's TopMemoryContext, so it outlives transactions until Launched frees it.
    let registered = unsafe {
        PgMemoryContexts::TopMemoryContext.switch_to(|_| pg_sys::RegisterDynamicBackgroundWorker(&mut worker, &mut handle))
    };
    registered.then_some(handle)
}

fn seconds_text(limit: Option<Duration>) -> String {
    limit.map_or_else(|| "none".into(), |limit| format!("{} s", limit.as_secs_f64()))
}
