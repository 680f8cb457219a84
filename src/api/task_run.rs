//! One run of a scheduled task or import job: what the scheduler records when it
//! launches one ([`begin`]), and the background worker that carries it out as the task's
//! owner ([`kafka_fdw_task_run_main`]).
//!
//! The worker connects to the database as the owner (`BackgroundWorkerInitializeConnection`
//! with the role's name, as pg_cron's background-worker mode does): `session_user` and
//! `current_user` are the owner, with the owner's settings, and PostgreSQL refuses the
//! connection of a role that may not log in or has no CONNECT privilege, as it would a
//! client's. Nothing of a superuser is on the stack while the owner's command runs; the
//! extension's own bookkeeping (the run's row, the task's failure count) is written as the
//! extension (`privileges::as_extension`) before and after it, never around it. The
//! command and the run's 'succeeded' commit together; a failure rolls the command back
//! and is recorded in a transaction of its own. One process per run, so nothing a run
//! sets or leaves behind reaches another.

use std::ffi::CString;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use pgrx::bgworkers::BackgroundWorker;
use pgrx::pg_sys::panic::{CaughtError, ErrorReportWithLevel};
use pgrx::prelude::*;
use pgrx::{PgSqlErrorCode, PgTryBuilder};

use crate::api::scheduler;
use crate::error::{ErrorKind, FdwError};
use crate::pg::compat;
use crate::pg::errors::{raise, OrInternal};
use crate::pg::{locks, privileges};
use crate::plan::schedule::{backoff_seconds, warn_about_failure};

/// The longest `return_message` kept, in bytes: the history stays bounded whatever a
/// command's errors or results say.
const MESSAGE_LIMIT: usize = 4000;

/// A run the scheduler just recorded as 'running', for its worker.
pub struct Start {
    pub run: i64,
    pub owner: String,
    /// The task's own time limit, if it sets one.
    pub time_limit_seconds: Option<f64>,
}

/// The first row `query` returns, read by `read`; None when it returns none. (Run as a
/// statement that may write: some lock the rows they read.)
fn first_row<T>(
    query: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
    read: impl Fn(&pgrx::spi::SpiHeapTupleData<'_>) -> Result<T, pgrx::spi::Error>,
) -> Option<T> {
    Spi::connect_mut(|client| {
        let mut rows = client.update(query, Some(1), args)?;
        rows.next().map(|row| read(&row)).transpose()
    })
    .or_internal("could not read the scheduler's tables")
}

/// Why the owner of a task could not log in now, as PostgreSQL would refuse the
/// connection; None if it could.
fn login_refusal(owner: &str) -> Option<String> {
    let row = first_row(
        "SELECT r.rolcanlogin,
                pg_catalog.has_database_privilege(r.oid, d.oid, 'CONNECT'),
                CASE WHEN r.rolvaliduntil < pg_catalog.now()
                     THEN pg_catalog.to_char(r.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC' END
         FROM pg_catalog.pg_authid r, pg_catalog.pg_database d
         WHERE r.rolname = $1 AND d.datname = pg_catalog.current_database()",
        &[owner.into()],
        |row| Ok((row.get::<bool>(1)?.unwrap_or(false), row.get::<bool>(2)?.unwrap_or(false), row.get::<String>(3)?)),
    );
    let database = scheduler::database();
    match row {
        Some((can_login, can_connect, expired)) => {
            if !can_login {
                Some(format!("role \"{owner}\" is not permitted to log in"))
            } else if let Some(when) = expired {
                Some(format!("role \"{owner}\" cannot log in: its password expired at {when}"))
            } else if !can_connect {
                Some(format!("permission denied for database \"{database}\": role \"{owner}\" does not have CONNECT privilege"))
            } else {
                None
            }
        }
        None => Some(format!("role \"{owner}\" does not exist: the task's owner was dropped; unschedule it, or schedule it again as another role")),
    }
}

/// Starts a run of due task `task`, in the scheduler's transaction: moves the task's
/// next run on ('N seconds' and jobs: one period after it was due, or now if that is
/// past; cron: the next matching minute), and records the run as 'running' — or, when
/// its owner could not log in now, as failed with the reason (the task then backs off).
/// None when there is nothing to launch (the task is gone, being changed, or refused).
pub fn begin(task: i64) -> Option<Start> {
    let (owner, time_limit_seconds) = first_row(
        "SELECT owner::text, pg_catalog.date_part('epoch', time_limit) FROM kafka_fdw.tasks
         WHERE task_id = $1 AND next_run <= pg_catalog.now() FOR UPDATE SKIP LOCKED",
        &[task.into()],
        |row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<f64>(2)?)),
    )?;
    Spi::run_with_args(
        "UPDATE kafka_fdw.tasks
         SET next_run = CASE WHEN every IS NOT NULL THEN greatest(next_run + every, pg_catalog.now())
                             ELSE coalesce(kafka_fdw.schedule_next(schedule, greatest(next_run, pg_catalog.now())), 'infinity') END
         WHERE task_id = $1",
        &[task.into()],
    )
    .or_internal("could not write kafka_fdw.tasks");
    let run = Spi::get_one_with_args::<i64>(
        "INSERT INTO kafka_fdw.task_runs (task_id, owner, status, start_time)
         VALUES ($1, $2, 'running', pg_catalog.clock_timestamp())
         RETURNING runid",
        &[task.into(), owner.as_str().into()],
    )
    .or_internal("could not write kafka_fdw.task_runs")?;
    if let Some(why) = login_refusal(&owner) {
        fail_if_running(task, run, &why);
        return None;
    }
    Some(Start { run, owner, time_limit_seconds })
}

/// Records run `run` of task `task` as failed with `why` unless it already ended, and
/// backs the task off (see [`record_failure`]).
pub fn fail_if_running(task: i64, run: i64, why: &str) {
    let still_running =
        first_row("SELECT FROM kafka_fdw.task_runs WHERE runid = $1 AND status = 'running' FOR UPDATE", &[run.into()], |_| Ok(()));
    if still_running.is_some() {
        record_failure(task, run, why);
    }
}

/// A message cut to [`MESSAGE_LIMIT`] bytes.
fn bounded(message: &str) -> String {
    if message.len() <= MESSAGE_LIMIT {
        return message.to_string();
    }
    let mut end = MESSAGE_LIMIT;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes cut)", &message[..end], message.len() - end)
}

/// How a task names itself in the server log.
fn describe_task(task: i64) -> (String, String) {
    first_row(
        "SELECT CASE WHEN name IS NOT NULL THEN pg_catalog.format('task %I', name)
                     ELSE pg_catalog.format('import job %s (%s into %s)', task_id, source_name, target_name) END,
                owner::text
         FROM kafka_fdw.tasks WHERE task_id = $1",
        &[task.into()],
        |row| Ok((row.get::<String>(1)?.unwrap_or_default(), row.get::<String>(2)?.unwrap_or_default())),
    )
    .unwrap_or_else(|| (format!("task {task}"), String::new()))
}

/// Records run `run` of task `task` as failed with `why`, counts the failure and backs the
/// task off: its next run waits its period doubled with each consecutive failure, up to a
/// minute ([`backoff_seconds`]). Logs a WARNING for the first failure of a series and then
/// at most every ten minutes ([`warn_about_failure`]). Then cuts the task's history.
pub fn record_failure(task: i64, run: i64, why: &str) {
    let message = bounded(why);
    privileges::as_extension(|| {
        Spi::run_with_args(
            "UPDATE kafka_fdw.task_runs SET status = 'failed', return_message = $2, end_time = pg_catalog.clock_timestamp()
             WHERE runid = $1",
            &[run.into(), message.as_str().into()],
        )
        .or_internal("could not write kafka_fdw.task_runs");
        let counts = first_row(
            "SELECT failures + 1, pg_catalog.date_part('epoch', coalesce(every, interval '1 minute')),
                    pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - warned_at)
             FROM kafka_fdw.tasks WHERE task_id = $1 FOR UPDATE",
            &[task.into()],
            |row| Ok((row.get::<i32>(1)?.unwrap_or(1), row.get::<f64>(2)?.unwrap_or(60.0), row.get::<f64>(3)?)),
        );
        let Some((failures, period, since_warning)) = counts else {
            // Unscheduled meanwhile: the history went with the task.
            delete_run(run);
            return;
        };
        let failures = failures.max(1) as u32;
        let warn = warn_about_failure(failures, since_warning);
        let next = Spi::get_one_with_args::<String>(
            "UPDATE kafka_fdw.tasks
             SET failures = $2, runs = runs + 1,
                 next_run = greatest(next_run, pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => $3)),
                 warned_at = CASE WHEN $4 THEN pg_catalog.clock_timestamp() ELSE warned_at END
             WHERE task_id = $1
             RETURNING next_run::text",
            &[task.into(), (failures as i32).into(), backoff_seconds(period, failures).into(), warn.into()],
        )
        .or_internal("could not write kafka_fdw.tasks");
        if warn {
            let (what, owner) = describe_task(task);
            let series = if failures > 1 {
                format!(" ({failures} failures in a row; next run at {})", next.unwrap_or_default())
            } else {
                String::new()
            };
            warning!("kafka_fdw {what} (as role \"{owner}\") failed: {message}{series}");
        }
        cut_history(task);
    });
}

/// Deletes a run whose task was unscheduled while it ran.
fn delete_run(run: i64) {
    Spi::run_with_args("DELETE FROM kafka_fdw.task_runs WHERE runid = $1", &[run.into()]).or_internal("could not write kafka_fdw.task_runs");
}

/// Deletes the task's finished runs beyond the last kafka_fdw.task_run_history.
fn cut_history(task: i64) {
    Spi::run_with_args(
        "DELETE FROM kafka_fdw.task_runs
         WHERE task_id = $1 AND status <> 'running'
           AND runid <= (SELECT runid FROM kafka_fdw.task_runs WHERE task_id = $1 ORDER BY runid DESC OFFSET $2 LIMIT 1)",
        &[task.into(), i64::from(scheduler::run_history()).into()],
    )
    .or_internal("could not write kafka_fdw.task_runs");
}

/// What a run carries out.
enum Work {
    Sql(String),
    Import { source: pg_sys::Oid, target: pg_sys::Oid, columns: Option<Vec<String>>, on_reset: String, mode: String, group_id: Option<String> },
}

/// A run its worker claimed.
struct Claimed {
    task: i64,
    run: i64,
    work: Work,
    time_limit_seconds: f64,
    /// When the scheduler launched it, as this process's clock tells.
    launched: Instant,
}

/// Runs `body` in a transaction of its own, committed when it returns (the commit's own
/// work, deferred triggers and constraints, included); an ERROR rolls it back and is
/// returned.
fn transaction<T>(body: impl FnOnce() -> T) -> Result<T, ErrorReportWithLevel> {
    // SAFETY: starts a transaction between transactions, as BackgroundWorker::transaction
    // does; the catch handler aborts it as PostgreSQL's own error recovery does.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    PgTryBuilder::new(AssertUnwindSafe(|| {
        let value = body();
        // SAFETY: ends the transaction started above.
        unsafe {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        }
        Ok(value)
    }))
    .catch_others(|caught| {
        let report = match caught {
            CaughtError::PostgresError(report) | CaughtError::ErrorReport(report) => report,
            CaughtError::RustPanic { ereport, .. } => ereport,
        };
        // SAFETY: the transaction failed; aborting it releases what it held.
        unsafe { pg_sys::AbortCurrentTransaction() };
        Err(report)
    })
    .execute()
}

/// A run's row and its task's, as its worker reads them.
struct RunRow {
    /// None when the task was unscheduled meanwhile.
    task: Option<i64>,
    owner: Option<String>,
    command: Option<String>,
    source: Option<pg_sys::Oid>,
    target: Option<pg_sys::Oid>,
    columns: Option<Vec<String>>,
    on_reset: String,
    mode: String,
    group_id: Option<String>,
    time_limit_seconds: Option<f64>,
    /// The name of the import job's source or target that no longer exists.
    dropped: Option<(&'static str, String)>,
    /// Seconds since the scheduler launched the run (its time limit counts from then).
    launched_ago: f64,
}

fn read_run(run: i64) -> Option<RunRow> {
    first_row(
        "SELECT t.task_id, t.owner::text, t.command, t.source::oid, t.target::oid, t.columns, t.on_reset, t.mode,
                pg_catalog.date_part('epoch', t.time_limit), t.group_id,
                CASE WHEN t.source IS NOT NULL AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = t.source)
                     THEN t.source_name END,
                CASE WHEN t.target IS NOT NULL AND NOT EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = t.target)
                     THEN t.target_name END,
                pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - r.start_time)
         FROM kafka_fdw.task_runs r LEFT JOIN kafka_fdw.tasks t ON t.task_id = r.task_id
         WHERE r.runid = $1 AND r.status = 'running'",
        &[run.into()],
        |row| {
            let dropped = match (row.get::<String>(11)?, row.get::<String>(12)?) {
                (Some(source), _) => Some(("source", source)),
                (None, Some(target)) => Some(("target", target)),
                (None, None) => None,
            };
            Ok(RunRow {
                task: row.get(1)?,
                owner: row.get(2)?,
                command: row.get(3)?,
                source: row.get(4)?,
                target: row.get(5)?,
                columns: row.get(6)?,
                on_reset: row.get::<String>(7)?.unwrap_or_default(),
                mode: row.get::<String>(8)?.unwrap_or_default(),
                time_limit_seconds: row.get(9)?,
                group_id: row.get(10)?,
                dropped,
                launched_ago: row.get::<f64>(13)?.unwrap_or_default(),
            })
        },
    )
}

/// Claims run `run` for this worker, in a transaction of its own: takes the task's lock
/// (held until the process exits, so two runs of a task never overlap), records the
/// worker's pid, and reads what to do. None when there is nothing to do: the run was
/// given up, its task unscheduled (the run is then deleted), or the run refused here
/// (recorded as failed).
fn claim(run: i64, session_owner: &str) -> Option<Claimed> {
    privileges::as_extension(|| {
        let row = read_run(run)?;
        let Some(task) = row.task else {
            delete_run(run);
            return None;
        };
        let refusal = if row.owner.as_deref() != Some(session_owner) {
            Some("the task's owner changed before the run started; the next run connects as the new owner".to_string())
        } else if !locks::try_lock_task_for_session(task) {
            Some("the previous run of this task is still in progress".to_string())
        } else if let Some((what, name)) = &row.dropped {
            Some(format!("the {what} \"{name}\" of import job {task} was dropped; stop the job: SELECT kafka_fdw.stop_import({task});"))
        } else {
            login_refusal(session_owner)
        };
        if let Some(why) = refusal {
            record_failure(task, run, &why);
            return None;
        }
        // SAFETY: reads a backend global.
        let pid = unsafe { pg_sys::MyProcPid };
        Spi::run_with_args("UPDATE kafka_fdw.task_runs SET pid = $2 WHERE runid = $1", &[run.into(), pid.into()])
            .or_internal("could not write kafka_fdw.task_runs");
        let work = match (row.command, row.source, row.target) {
            (Some(command), _, _) => Work::Sql(command),
            (None, Some(source), Some(target)) => {
                Work::Import { source, target, columns: row.columns, on_reset: row.on_reset, mode: row.mode, group_id: row.group_id }
            }
            _ => return None,
        };
        let time_limit_seconds = row.time_limit_seconds.unwrap_or_else(|| f64::from(scheduler::default_time_limit_seconds()));
        let launched = Instant::now().checked_sub(Duration::from_secs_f64(row.launched_ago.max(0.0))).unwrap_or_else(Instant::now);
        Some(Claimed { task, run, work, time_limit_seconds, launched })
    })
}

/// Records the run as succeeded, in the transaction of its command, and counts it and its
/// rows; a task that had been failing is counted as healthy again (and says so in the log).
fn record_success(claimed: &Claimed, message: &str, rows: i64) {
    privileges::as_extension(|| {
        Spi::run_with_args(
            "UPDATE kafka_fdw.task_runs SET status = 'succeeded', return_message = $2, rows = $3, end_time = pg_catalog.clock_timestamp()
             WHERE runid = $1",
            &[claimed.run.into(), bounded(message).as_str().into(), rows.into()],
        )
        .or_internal("could not write kafka_fdw.task_runs");
        let Some(failures) =
            first_row("SELECT failures FROM kafka_fdw.tasks WHERE task_id = $1 FOR UPDATE", &[claimed.task.into()], |row| {
                Ok(row.get::<i32>(1)?.unwrap_or_default())
            })
        else {
            // Unscheduled meanwhile: the history went with the task.
            delete_run(claimed.run);
            return;
        };
        Spi::run_with_args(
            "UPDATE kafka_fdw.tasks SET failures = 0, warned_at = NULL, runs = runs + 1, rows_total = rows_total + $2 WHERE task_id = $1",
            &[claimed.task.into(), rows.into()],
        )
        .or_internal("could not write kafka_fdw.tasks");
        if failures > 0 {
            let (what, owner) = describe_task(claimed.task);
            log!("kafka_fdw {what} (as role \"{owner}\") succeeded again after {failures} failed runs");
        }
        cut_history(claimed.task);
    });
}

/// Runs `command` (one or more statements) through SPI and names what the last one did,
/// with the rows it processed.
fn execute(command: &str) -> (String, i64) {
    let sql = CString::new(command)
        .unwrap_or_else(|_| raise(FdwError::new(ErrorKind::InvalidParameterValue, "a task's command cannot contain NUL")));
    // SAFETY: SPI inside a transaction; an ERROR in the command unwinds through the
    // pg_guard'ed calls, and the transaction's abort closes the SPI connection.
    let (code, processed) = unsafe {
        if pg_sys::SPI_connect() != pg_sys::SPI_OK_CONNECT as i32 {
            raise(FdwError::new(ErrorKind::Internal, "SPI_connect failed"));
        }
        let code = pg_sys::SPI_execute(sql.as_ptr(), false, 0);
        let processed = pg_sys::SPI_processed;
        pg_sys::SPI_finish();
        (code, processed)
    };
    let tag = |name: &str| format!("{name} {processed}");
    let message = match code as u32 {
        pg_sys::SPI_OK_SELECT | pg_sys::SPI_OK_SELINTO => tag("SELECT"),
        pg_sys::SPI_OK_INSERT | pg_sys::SPI_OK_INSERT_RETURNING => tag("INSERT 0"),
        pg_sys::SPI_OK_UPDATE | pg_sys::SPI_OK_UPDATE_RETURNING => tag("UPDATE"),
        pg_sys::SPI_OK_DELETE | pg_sys::SPI_OK_DELETE_RETURNING => tag("DELETE"),
        pg_sys::SPI_OK_MERGE => tag("MERGE"),
        _ if code >= 0 => "OK".into(),
        _ if code == pg_sys::SPI_ERROR_TRANSACTION => raise(
            FdwError::new(ErrorKind::FeatureNotSupported, "a task's command cannot end or start transactions")
                .with_detail("Each run of a task is one transaction, committed when the command ends."),
        ),
        _ => {
            // SAFETY: returns a pointer to a static string.
            let why = unsafe { std::ffi::CStr::from_ptr(pg_sys::SPI_result_code_string(code)) };
            raise(FdwError::new(ErrorKind::FeatureNotSupported, format!("a task's command cannot run: {}", why.to_string_lossy())))
        }
    };
    (message, processed as i64)
}

/// Runs an import job's import in the owner's session: `kafka_fdw.import` checks the
/// owner's privileges as for any call.
fn import(source: pg_sys::Oid, target: pg_sys::Oid, columns: &Option<Vec<String>>, on_reset: &str, mode: &str, group_id: &Option<String>) -> (String, i64) {
    let rows = Spi::get_one_with_args::<i64>(
        "SELECT kafka_fdw.import($1::pg_catalog.regclass, $2::pg_catalog.regclass, $3, on_reset => $4, mode => $5, group_id => $6)",
        &[source.into(), target.into(), columns.clone().into(), on_reset.into(), mode.into(), group_id.clone().into()],
    )
    .unwrap_or_else(|error| raise(FdwError::new(ErrorKind::Internal, format!("could not run kafka_fdw.import: {error}"))))
    .unwrap_or_default();
    (format!("{rows} rows"), rows)
}

/// The message of a failed run: the error's, with its DETAIL, and the time limit named
/// when the run was cancelled past it (`elapsed`: seconds since it was launched, as the
/// scheduler counts them).
fn failure_message(report: &ErrorReportWithLevel, claimed: &Claimed, elapsed: f64) -> String {
    let mut message = report.message().to_string();
    if let Some(detail) = report.detail() {
        message = format!("{message}\nDETAIL: {detail}");
    }
    let limit = claimed.time_limit_seconds;
    if report.sql_error_code() == PgSqlErrorCode::ERRCODE_QUERY_CANCELED && limit > 0.0 && elapsed >= limit {
        message = format!("the run exceeded its time limit ({limit} s): {message}");
    }
    message
}

unsafe extern "C-unwind" {
    /// PostgreSQL's SIGTERM handler for backends (tcop/postgres.c): the process ends at
    /// its next interrupt check. pgrx's binding wraps it for calls, so the handler itself
    /// is declared here.
    #[link_name = "die"]
    fn backend_sigterm_handler(signal: std::ffi::c_int);
}

/// The worker of one run: `argument` is the run's id, `bgw_extra` the owner's name.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn kafka_fdw_task_run_main(argument: pg_sys::Datum) {
    // SIGTERM (server shutdown, pg_terminate_backend, the scheduler past a time limit)
    // ends the run at its next interrupt check, as it ends any backend's query.
    // SAFETY: installs PostgreSQL's own handler, then lets signals in, as pg_cron's
    // workers do.
    unsafe {
        compat::set_signal_handler(libc::SIGTERM, Some(backend_sigterm_handler));
        pg_sys::BackgroundWorkerUnblockSignals();
    }
    let run = argument.value() as i64;
    let owner = BackgroundWorker::get_extra().to_string();
    // As the owner: PostgreSQL refuses (FATAL) a role that may not log in or connect.
    BackgroundWorker::connect_worker_to_spi(Some(&scheduler::database()), Some(&owner));
    let claimed = match transaction(|| claim(run, &owner)) {
        Ok(Some(claimed)) => claimed,
        Ok(None) => return,
        Err(report) => {
            warning!("kafka_fdw run {run}: {}", report.message());
            return;
        }
    };
    let outcome = transaction(|| {
        let (message, rows) = match &claimed.work {
            Work::Sql(command) => execute(command),
            Work::Import { source, target, columns, on_reset, mode, group_id } => import(*source, *target, columns, on_reset, mode, group_id),
        };
        record_success(&claimed, &message, rows);
    });
    if let Err(report) = outcome {
        let message = failure_message(&report, &claimed, claimed.launched.elapsed().as_secs_f64());
        if let Err(again) = transaction(|| record_failure(claimed.task, claimed.run, &message)) {
            warning!("kafka_fdw run {run} failed ({message}), and recording that failed too: {}", again.message());
        }
    }
}
