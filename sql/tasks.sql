-- Scheduled work, one kind of it: a task runs either SQL (kafka_fdw.schedule, pg_cron's
-- shape) or an import (kafka_fdw.start_import: an import job is a task whose command is
-- an import). One catalog, one run history, one scheduler (src/api/scheduler.rs), which
-- only launches: each run is a background worker of its own that connects to the
-- database as the task's owner (src/api/task_run.rs). Included by src/lib.rs.
--
-- Every function here runs with search_path pinned to pg_catalog, pg_temp, as do the
-- scheduler and the runs' own bookkeeping: nothing another role creates ever runs in
-- their sessions. No normal role has any privilege on the tables; the functions check
-- who is asking, then write them as the extension.

-- The first time `schedule` is due strictly after `after`: 'N seconds' later, or the
-- next minute a cron expression (UTC) matches.
CREATE FUNCTION kafka_fdw.schedule_next(schedule text, after timestamptz DEFAULT pg_catalog.now()) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT pg_catalog.to_timestamp(kafka_fdw.schedule_next_epoch(schedule, pg_catalog.date_part('epoch', after)));
$$;

-- The tasks. A task belongs to the role named `owner` (a name, as pg_cron's
-- `username`: a dump restored into another cluster runs it as the role of that name)
-- and each run connects as that role. Names are unique in the database; import jobs
-- have none and are unique per source and target.
CREATE TABLE kafka_fdw.tasks (
    task_id bigserial PRIMARY KEY,
    name text UNIQUE,
    owner name NOT NULL,
    -- As given: 'N seconds', a cron expression, or an import job's interval.
    schedule text NOT NULL,
    -- The period of an 'N seconds' schedule or of an import job; NULL for cron.
    every interval CHECK (every > interval '0'),
    -- The SQL of a task; NULL for an import job.
    command text,
    -- An import job: kafka_fdw.import(source, target, columns, on_reset => …, mode => …,
    -- group_id => …), and the names of source and target when it was started (to name
    -- them once dropped).
    source regclass,
    target regclass,
    columns text[],
    on_reset text,
    mode text,
    group_id text,
    source_name text,
    target_name text,
    -- Longest a run may take; NULL: kafka_fdw.task_time_limit.
    time_limit interval CHECK (time_limit >= interval '0'),
    next_run timestamptz NOT NULL,
    -- Consecutive failed runs (the back-off grows with them), and when the last WARNING
    -- about them was logged.
    failures int NOT NULL DEFAULT 0,
    warned_at timestamptz,
    -- Runs finished (succeeded or failed) since the task was scheduled, and the rows the
    -- succeeded ones processed (inserted, for an import job).
    runs bigint NOT NULL DEFAULT 0,
    rows_total bigint NOT NULL DEFAULT 0,
    CHECK ((command IS NULL) = (source IS NOT NULL) AND (source IS NULL) = (target IS NULL)),
    CHECK (name IS NOT NULL OR source IS NOT NULL)
);
CREATE UNIQUE INDEX tasks_import ON kafka_fdw.tasks (source, target) WHERE source IS NOT NULL;
CREATE INDEX tasks_next_run ON kafka_fdw.tasks (next_run);
REVOKE ALL ON kafka_fdw.tasks FROM PUBLIC;
-- Tasks and jobs are part of a dump (their owners by name, sources and targets as
-- qualified names, which restore to the new OIDs); the run history is not.
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.tasks', '');
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.tasks_task_id_seq', '');

-- One row per run, as pg_cron's cron.job_run_details: 'running' is committed by the
-- scheduler when it launches the run; the run's worker records 'succeeded' in the
-- transaction of its command, 'failed' after rolling it back. The command is stored
-- once, in the task. Each task keeps its last kafka_fdw.task_run_history runs.
CREATE TABLE kafka_fdw.task_runs (
    runid bigserial PRIMARY KEY,
    -- No foreign key: unscheduling a task deletes its finished runs and never waits
    -- for one in progress, which deletes itself when it ends.
    task_id bigint NOT NULL,
    owner name NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    return_message text,
    -- Rows the command processed (a task's last statement) or an import inserted,
    -- updated or deleted.
    rows bigint,
    pid int,
    start_time timestamptz NOT NULL,
    end_time timestamptz
);
CREATE INDEX task_runs_task ON kafka_fdw.task_runs (task_id, runid);
CREATE INDEX task_runs_running ON kafka_fdw.task_runs (task_id) WHERE status = 'running';
REVOKE ALL ON kafka_fdw.task_runs FROM PUBLIC;

-- Whether the current role may act as role `owner` (be it, be a member, or be a
-- superuser), as PostgreSQL decides who may act as an object's owner; a role that was
-- dropped is only superusers' to act on.
CREATE FUNCTION kafka_fdw.acts_as(owner name) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN r.oid IS NULL THEN (SELECT s.rolsuper FROM pg_catalog.pg_roles s WHERE s.rolname = CURRENT_USER)
                ELSE pg_catalog.pg_has_role(r.oid, 'USAGE') END
    FROM (SELECT) AS one LEFT JOIN pg_catalog.pg_roles r ON r.rolname = owner;
$$;

-- The tasks the current role may act on: its own, its roles' (all, for superusers),
-- with their last run. Import jobs show their import as the command.
CREATE VIEW kafka_fdw.scheduled_tasks WITH (security_barrier) AS
SELECT t.task_id, t.name, t.owner, t.schedule,
       coalesce(t.command, pg_catalog.format('SELECT kafka_fdw.import(%L, %L, %L, on_reset => %L, mode => %L%s)',
                                             t.source, t.target, t.columns, t.on_reset, t.mode,
                                             CASE WHEN t.group_id IS NOT NULL THEN pg_catalog.format(', group_id => %L', t.group_id) ELSE '' END)) AS command,
       t.next_run, coalesce(t.time_limit, pg_catalog.current_setting('kafka_fdw.task_time_limit', true)::interval) AS time_limit,
       t.failures, last.start_time AS last_start, last.status AS last_status, last.return_message AS last_message,
       last.end_time - last.start_time AS last_duration, t.runs
FROM kafka_fdw.tasks t
LEFT JOIN LATERAL (SELECT r.start_time, r.end_time, r.status, r.return_message FROM kafka_fdw.task_runs r
                   WHERE r.task_id = t.task_id ORDER BY r.runid DESC LIMIT 1) last ON true
WHERE kafka_fdw.acts_as(t.owner);
GRANT SELECT ON kafka_fdw.scheduled_tasks TO PUBLIC;

-- The run history of those tasks (pg_cron's cron.job_run_details).
CREATE VIEW kafka_fdw.task_run_details WITH (security_barrier) AS
SELECT r.runid, r.task_id, s.name AS task, r.owner, s.command, r.status, r.return_message, r.rows, r.pid,
       r.start_time, r.end_time
FROM kafka_fdw.task_runs r
JOIN kafka_fdw.scheduled_tasks s ON s.task_id = r.task_id;
GRANT SELECT ON kafka_fdw.task_run_details TO PUBLIC;

-- The import jobs among them, as before tasks and jobs were one: state, last run and its
-- rows or error, the lag of the source and target, and the runs and rows since the job
-- was started.
CREATE VIEW kafka_fdw.import_jobs_status WITH (security_barrier) AS
SELECT t.task_id AS job_id, t.owner, t.source, t.target, t.every AS run_every, t.mode, t.group_id,
       CASE WHEN last.status = 'failed' THEN 'failing'
            WHEN last.status IS NULL THEN 'waiting'
            ELSE 'running' END AS state,
       last.start_time AS last_run, last.rows AS last_rows,
       CASE WHEN last.status = 'failed' THEN last.return_message END AS last_error, t.failures, t.next_run,
       (SELECT pg_catalog.sum(s.lag) FROM kafka_fdw.import_status s WHERE s.source = t.source AND s.target = t.target) AS lag,
       last.end_time - last.start_time AS last_duration, t.runs, t.rows_total AS rows
FROM kafka_fdw.tasks t
LEFT JOIN LATERAL (SELECT r.start_time, r.end_time, r.status, r.return_message, r.rows FROM kafka_fdw.task_runs r
                   WHERE r.task_id = t.task_id AND r.status <> 'running' ORDER BY r.runid DESC LIMIT 1) last ON true
WHERE t.source IS NOT NULL AND kafka_fdw.acts_as(t.owner);
GRANT SELECT ON kafka_fdw.import_jobs_status TO PUBLIC;
