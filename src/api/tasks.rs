//! Scheduled SQL tasks (sql/tasks.sql), pg_cron's `cron.schedule` for any SQL: the
//! reference page's `CREATE TASK … schedule '1 seconds' AS $$…$$` is
//! `SELECT kafka_fdw.schedule(name, '1 seconds', $$…$$)`.
//!
//! A task belongs to the role that scheduled it and runs as that role, as import jobs
//! do ([`task_as`] → [`privileges::as_job_owner`]); the scheduler's background worker
//! (`scheduler.rs`) runs both from one loop. The table `kafka_fdw.tasks` no normal role
//! may write: the functions here check who is asking, then write it as the extension.

use std::ffi::CString;
use std::time::{SystemTime, UNIX_EPOCH};

use pgrx::prelude::*;

use crate::error::{ErrorKind, FdwError};
use crate::pg::errors::{raise, OrInternal, OrRaise};
use crate::pg::privileges;
use crate::plan::schedule::Schedule;

/// The next time `schedule` is due strictly after `after` (seconds since the Unix epoch,
/// fractions kept for `'N seconds'`); NULL when a cron expression never matches. SQL's
/// `kafka_fdw.schedule_next(schedule, after timestamptz)` wraps it.
#[pg_extern(schema = "kafka_fdw", immutable, parallel_safe)]
fn schedule_next_epoch(schedule: &str, after: f64) -> Option<f64> {
    match Schedule::parse(schedule).or_raise() {
        Schedule::Seconds(n) => Some(after + f64::from(n)),
        cron => cron.next_after(after.floor() as i64).map(|next| next as f64),
    }
}

/// The task of that name and its id and owner, if there is one.
fn task_where(condition: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Option<(i64, String, pg_sys::Oid)> {
    privileges::as_extension(|| {
        Spi::connect(|client| {
            let rows =
                client.select(&format!("SELECT task_id, name, owner FROM kafka_fdw.tasks WHERE {condition}"), Some(1), args)?;
            let mut found = None;
            for row in rows {
                if let (Some(id), Some(name), Some(owner)) = (row.get::<i64>(1)?, row.get::<String>(2)?, row.get::<pg_sys::Oid>(3)?) {
                    found = Some((id, name, owner));
                }
            }
            Ok::<_, pgrx::spi::Error>(found)
        })
        .or_internal("could not read kafka_fdw.tasks")
    })
}

/// Raises unless `caller` may act as the owner of task `name`: be it, be a member of it,
/// or be a superuser, as for import jobs and PostgreSQL's own objects.
fn require_task_owner(name: &str, owner: pg_sys::Oid, caller: pg_sys::Oid, action: &str) {
    privileges::require_owner_rights(&format!("task \"{name}\""), "task", "change or unschedule", owner, caller, action);
}

/// Warns when no scheduler will run this database's tasks: the library is not preloaded,
/// or the scheduler works in another database.
fn warn_unless_scheduled_here(name: &str) {
    let (setting, database) = Spi::get_two::<String, String>(
        "SELECT pg_catalog.current_setting('kafka_fdw.scheduler_database', true), pg_catalog.current_database()::text",
    )
    .or_internal("could not read kafka_fdw.scheduler_database");
    match setting.filter(|s| !s.is_empty()) {
        None => warning!("task \"{name}\" will not run until kafka_fdw is in shared_preload_libraries (its scheduler starts with the server)"),
        Some(setting) if Some(&setting) != database.as_ref() => warning!(
            "task \"{name}\" will not run here: the scheduler runs the tasks of database \"{setting}\" (kafka_fdw.scheduler_database)"
        ),
        Some(_) => {}
    }
}

/// Schedules `command` (any SQL, run in one transaction) as task `name`, or changes the
/// task of that name: `'N seconds'` (1 to 59) or a 5-field cron expression (UTC). The
/// task belongs to the calling role and runs as it. Returns the task's id.
#[pg_extern(schema = "kafka_fdw")]
fn schedule(name: &str, schedule: &str, command: &str) -> i64 {
    let parsed = Schedule::parse(schedule).or_raise();
    if name.trim().is_empty() {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, "a task needs a name"));
    }
    if command.trim().is_empty() {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, format!("task \"{name}\" needs a command")));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
    if parsed.next_after(now).is_none() {
        raise(
            FdwError::new(ErrorKind::InvalidParameterValue, format!("schedule \"{schedule}\" never runs"))
                .with_detail("No date in the next 30 years matches its day and month fields."),
        );
    }
    let every_seconds = match parsed {
        Schedule::Seconds(n) => Some(n as i32),
        Schedule::Cron(_) => None,
    };
    let caller = privileges::current_user();
    if let Some((_, existing, owner)) = task_where("name = $1", &[name.into()]) {
        require_task_owner(&existing, owner, caller, "change");
    }
    warn_unless_scheduled_here(name);
    privileges::as_extension(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO kafka_fdw.tasks AS t (name, owner, schedule, every_seconds, command, next_run)
             VALUES ($1, $2, $3, $4, $5,
                     CASE WHEN $4 IS NOT NULL THEN pg_catalog.now() ELSE kafka_fdw.schedule_next($3, pg_catalog.now()) END)
             ON CONFLICT (name) DO UPDATE
                 SET owner = excluded.owner, schedule = excluded.schedule, every_seconds = excluded.every_seconds,
                     command = excluded.command, next_run = excluded.next_run
             RETURNING task_id",
            &[name.into(), caller.into(), schedule.into(), every_seconds.into(), command.into()],
        )
        .or_internal("could not write kafka_fdw.tasks")
        .unwrap_or_default()
    })
}

fn unschedule_task(found: Option<(i64, String, pg_sys::Oid)>) -> bool {
    let Some((id, name, owner)) = found else { return false };
    require_task_owner(&name, owner, privileges::current_user(), "unschedule");
    privileges::as_extension(|| {
        Spi::run_with_args("DELETE FROM kafka_fdw.tasks WHERE task_id = $1", &[id.into()]).or_internal("could not write kafka_fdw.tasks")
    });
    true
}

/// Unschedules task `name` (its run history goes with it); false if there is none.
#[pg_extern(schema = "kafka_fdw")]
fn unschedule(name: &str) -> bool {
    unschedule_task(task_where("name = $1", &[name.into()]))
}

/// Unschedules task `task_id`; false if there is none.
#[pg_extern(schema = "kafka_fdw", name = "unschedule")]
fn unschedule_id(task_id: i64) -> bool {
    unschedule_task(task_where("task_id = $1", &[task_id.into()]))
}

/// One scheduled run's command, as `owner` (with the owner's rights only, in a
/// security-restricted operation, settings restored afterwards), returning what it did
/// as a command tag ("SELECT 1", "INSERT 0 5"). Only the scheduler (a superuser) calls
/// it, from kafka_fdw.run_task, which catches its errors.
#[pg_extern(schema = "kafka_fdw")]
fn task_as(owner: pg_sys::Oid, command: &str) -> String {
    privileges::require_superuser_for("kafka_fdw.task_as", "Only the scheduler runs tasks.");
    privileges::as_job_owner(owner, || execute(command))
}

/// Runs `command` (one or more statements) through SPI and names what the last one did.
fn execute(command: &str) -> String {
    let sql = CString::new(command)
        .unwrap_or_else(|_| raise(FdwError::new(ErrorKind::InvalidParameterValue, "a task's command cannot contain NUL")));
    // SAFETY: SPI inside a transaction; an ERROR in the command unwinds through the
    // pg_guard'ed calls, and the (sub)transaction's abort closes the SPI connection.
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
    match code as u32 {
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
    }
}
