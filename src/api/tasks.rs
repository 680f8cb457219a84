//! Scheduled tasks (sql/tasks.sql), pg_cron's `cron.schedule` for any SQL: the
//! reference page's `CREATE TASK … schedule '1 seconds' AS $$…$$` is
//! `SELECT kafka_fdw.schedule(name, '1 seconds', $$…$$)`. Import jobs are tasks too
//! (`kafka_fdw.start_import`, in `import/`, checks the import's privileges and saves
//! its task here).
//!
//! A task belongs to the role that scheduled it, by name, and each run is a session of
//! that role (`task_run.rs`); the scheduler (`scheduler.rs`) only launches runs. The table
//! `kafka_fdw.tasks` no normal role may write: the functions here check who is asking,
//! then write it as the extension.

use std::time::{SystemTime, UNIX_EPOCH};

use pgrx::datum::Interval;
use pgrx::prelude::*;

use crate::error::{ErrorKind, FdwError};
use crate::pg::errors::{raise, OrInternal, OrRaise};
use crate::pg::privileges;
use crate::plan::schedule::Schedule;

/// The next time `schedule` is due strictly after `after` (seconds since the Unix epoch,
/// fractions kept for `'N seconds'`); NULL when a cron expression never matches. SQL's
/// `kafka_fdw.schedule_next(schedule, after timestamptz)` wraps it.
#[pg_extern(schema = "kafka_fdw", immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn schedule_next_epoch(schedule: &str, after: f64) -> Option<f64> {
    match Schedule::parse(schedule).or_raise() {
        Schedule::Seconds(n) => Some(after + f64::from(n)),
        cron => cron.next_after(after.floor() as i64).map(|next| next as f64),
    }
}

/// A task as the front ends see it: its id, owner's name, and what it is.
pub struct Task {
    pub id: i64,
    pub owner: String,
    /// The task's name; None for an import job.
    pub name: Option<String>,
}

impl Task {
    /// The task in words, for messages: `task "prune"` or `import job 7`.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("task \"{name}\""),
            None => format!("import job {}", self.id),
        }
    }

    /// Raises unless the current role may change or end this task: be its owner, a member
    /// of it, or a superuser.
    pub fn require_owner_rights(&self, action: &str) {
        let (kind, changes) = if self.name.is_some() { ("task", "change or unschedule") } else { ("job", "change or stop") };
        privileges::require_owner_rights(&self.describe(), kind, changes, &self.owner, action);
    }

    /// Deletes the task and its finished runs (a run in progress ends on its own, and
    /// deletes itself as its task is gone).
    pub fn delete(self) {
        privileges::as_extension(|| {
            Spi::run_with_args("DELETE FROM kafka_fdw.tasks WHERE task_id = $1", &[self.id.into()])
                .or_internal("could not write kafka_fdw.tasks");
            Spi::run_with_args("DELETE FROM kafka_fdw.task_runs WHERE task_id = $1 AND status <> 'running'", &[self.id.into()])
                .or_internal("could not write kafka_fdw.task_runs");
        });
    }
}

/// The task that `condition` (on kafka_fdw.tasks) selects, if there is one.
pub fn find_task(condition: &str, args: &[pgrx::datum::DatumWithOid<'_>]) -> Option<Task> {
    privileges::as_extension(|| {
        Spi::connect(|client| {
            let rows = client.select(
                &format!("SELECT task_id, owner::text, name FROM kafka_fdw.tasks WHERE {condition}"),
                Some(1),
                args,
            )?;
            let mut found = None;
            for row in rows {
                if let (Some(id), Some(owner)) = (row.get::<i64>(1)?, row.get::<String>(2)?) {
                    found = Some(Task { id, owner, name: row.get::<String>(3)? });
                }
            }
            Ok::<_, pgrx::spi::Error>(found)
        })
        .or_internal("could not read kafka_fdw.tasks")
    })
}

/// The name of the current role, who will own what it schedules.
pub fn current_role_name() -> String {
    privileges::role_name(privileges::current_user())
}

/// Warns when no scheduler will run this database's tasks: the library is not preloaded,
/// or the scheduler works in another database.
pub fn warn_unless_scheduled_here(what: &str) {
    let (setting, database) = Spi::get_two::<String, String>(
        "SELECT pg_catalog.current_setting('kafka_fdw.scheduler_database', true), pg_catalog.current_database()::text",
    )
    .or_internal("could not read kafka_fdw.scheduler_database");
    match setting.filter(|s| !s.is_empty()) {
        None => warning!("{what} will not run until kafka_fdw is in shared_preload_libraries (its scheduler starts with the server)"),
        Some(setting) if Some(&setting) != database.as_ref() => warning!(
            "{what} will not run here: the scheduler runs the tasks of database \"{setting}\" (kafka_fdw.scheduler_database)"
        ),
        Some(_) => {}
    }
}

/// An interval in seconds, months counted as 30 days as PostgreSQL's own interval
/// comparisons count them.
pub fn interval_seconds(interval: Interval) -> f64 {
    (f64::from(interval.months()) * 30.0 + f64::from(interval.days())) * 86_400.0 + interval.micros() as f64 / 1e6
}

/// Raises unless `time_limit` is a usable limit on a run (0: none).
pub fn check_time_limit(time_limit: Option<Interval>) {
    if let Some(limit) = time_limit {
        if interval_seconds(limit) < 0.0 {
            raise(
                FdwError::new(ErrorKind::InvalidParameterValue, "a task's time limit cannot be negative")
                    .with_hint("Give an interval such as '5 minutes', or 0 for no limit."),
            );
        }
    }
}

/// Schedules `command` (any SQL, run in one transaction) as task `name`, or changes the
/// task of that name: `'N seconds'` (1 to 59) or a 5-field cron expression (UTC). The
/// task belongs to the calling role and each run is a session of that role. A run that
/// takes longer than `time_limit` (default `kafka_fdw.task_time_limit`) is cancelled.
/// Returns the task's id.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn schedule(name: &str, schedule: &str, command: &str, time_limit: default!(Option<Interval>, "NULL")) -> i64 {
    let parsed = Schedule::parse(schedule).or_raise();
    if name.trim().is_empty() {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, "a task needs a name"));
    }
    if command.trim().is_empty() {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, format!("task \"{name}\" needs a command")));
    }
    if command.contains('\0') {
        raise(FdwError::new(ErrorKind::InvalidParameterValue, "a task's command cannot contain NUL"));
    }
    check_time_limit(time_limit);
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or_default();
    if parsed.next_after(now).is_none() {
        raise(
            FdwError::new(ErrorKind::InvalidParameterValue, format!("schedule \"{schedule}\" never runs"))
                .with_detail("No date in the next 30 years matches its day and month fields."),
        );
    }
    let every_seconds = match parsed {
        Schedule::Seconds(n) => Some(f64::from(n)),
        Schedule::Cron(_) => None,
    };
    if let Some(existing) = find_task("name = $1", &[name.into()]) {
        existing.require_owner_rights("change");
    }
    warn_unless_scheduled_here(&format!("task \"{name}\""));
    let owner = current_role_name();
    privileges::as_extension(|| {
        Spi::get_one_with_args::<i64>(
            "INSERT INTO kafka_fdw.tasks AS t (name, owner, schedule, every, command, time_limit, next_run)
             VALUES ($1, $2, $3, pg_catalog.make_interval(secs => $4), $5, $6,
                     CASE WHEN $4 IS NOT NULL THEN pg_catalog.now() ELSE kafka_fdw.schedule_next($3, pg_catalog.now()) END)
             ON CONFLICT (name) DO UPDATE
                 SET owner = excluded.owner, schedule = excluded.schedule, every = excluded.every,
                     command = excluded.command, time_limit = excluded.time_limit, next_run = excluded.next_run,
                     failures = 0, warned_at = NULL
             RETURNING task_id",
            &[name.into(), owner.as_str().into(), schedule.into(), every_seconds.into(), command.into(), time_limit.into()],
        )
        .or_internal("could not write kafka_fdw.tasks")
        .unwrap_or_default()
    })
}

/// Ends `found` (`action`: "unschedule" a task, "stop" a job) if the current role may;
/// false if there is none.
pub fn end_task(found: Option<Task>, action: &str) -> bool {
    let Some(task) = found else { return false };
    task.require_owner_rights(action);
    task.delete();
    true
}

/// Unschedules task `name` (its run history goes with it); false if there is none.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn unschedule(name: &str) -> bool {
    end_task(find_task("name = $1", &[name.into()]), "unschedule")
}

/// Unschedules task (or import job) `task_id`; false if there is none.
#[pg_extern(schema = "kafka_fdw", name = "unschedule")]
#[search_path(pg_catalog, pg_temp)]
fn unschedule_id(task_id: i64) -> bool {
    end_task(find_task("task_id = $1", &[task_id.into()]), "unschedule")
}
