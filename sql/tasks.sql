-- Scheduled SQL tasks, pg_cron's shape: kafka_fdw.schedule(name, schedule, command),
-- kafka_fdw.unschedule(name), the view kafka_fdw.scheduled_tasks and the run history
-- kafka_fdw.task_run_details. Run by the extension's scheduler (the background worker
-- that runs import jobs, in kafka_fdw.scheduler_database), each run in its own
-- transaction as the task's owner. Included by src/lib.rs.

-- The first time `schedule` is due strictly after `after`: 'N seconds' later, or the
-- next minute a cron expression (UTC) matches.
CREATE FUNCTION kafka_fdw.schedule_next(schedule text, after timestamptz DEFAULT pg_catalog.now()) RETURNS timestamptz
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT pg_catalog.to_timestamp(kafka_fdw.schedule_next_epoch(schedule, pg_catalog.date_part('epoch', after)));
$$;

-- The tasks. Written only through kafka_fdw.schedule and unschedule; no normal role has
-- any privilege on it. Names are unique in the database.
CREATE TABLE kafka_fdw.tasks (
    task_id bigserial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    owner oid NOT NULL,
    schedule text NOT NULL,
    -- N of an 'N seconds' schedule; NULL for a cron expression.
    every_seconds int,
    command text NOT NULL,
    next_run timestamptz NOT NULL
);
REVOKE ALL ON kafka_fdw.tasks FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.tasks', '');
SELECT pg_catalog.pg_extension_config_dump('kafka_fdw.tasks_task_id_seq', '');

-- One row per run, as pg_cron's cron.job_run_details: 'running' is committed when a run
-- starts, 'succeeded' or 'failed' with the run's own transaction. A task keeps its last
-- kafka_fdw.task_run_history runs (default 1000); unscheduling it deletes them.
CREATE TABLE kafka_fdw.task_runs (
    runid bigserial PRIMARY KEY,
    task_id bigint NOT NULL REFERENCES kafka_fdw.tasks ON DELETE CASCADE,
    owner oid NOT NULL,
    command text NOT NULL,
    status text NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    return_message text,
    start_time timestamptz NOT NULL,
    end_time timestamptz
);
CREATE INDEX task_runs_task ON kafka_fdw.task_runs (task_id, runid);
REVOKE ALL ON kafka_fdw.task_runs FROM PUBLIC;

-- Starts a run of a due task: records it as 'running' and moves the task's next_run on
-- ('N seconds': N after the time it was due, or now if that is past; cron: the next
-- matching minute after now). The scheduler commits this before the run, so the
-- history shows runs in progress. NULL if the task is gone or being changed.
CREATE FUNCTION kafka_fdw.begin_task_run(task bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    t kafka_fdw.tasks;
    next timestamptz;
    run bigint;
BEGIN
    SELECT * INTO t FROM kafka_fdw.tasks WHERE task_id = task FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    IF t.every_seconds IS NOT NULL THEN
        next := greatest(t.next_run + pg_catalog.make_interval(secs => t.every_seconds), pg_catalog.now());
    ELSE
        next := kafka_fdw.schedule_next(t.schedule, greatest(t.next_run, pg_catalog.now()));
    END IF;
    UPDATE kafka_fdw.tasks SET next_run = coalesce(next, 'infinity') WHERE task_id = task;
    INSERT INTO kafka_fdw.task_runs (task_id, owner, command, status, start_time)
    VALUES (t.task_id, t.owner, t.command, 'running', pg_catalog.clock_timestamp())
    RETURNING runid INTO run;
    RETURN run;
END
$$;

-- Runs a started run, in the caller's transaction: the command (as the task's owner,
-- kafka_fdw.task_as) and its status commit together. A failure rolls the command back
-- (the EXCEPTION block is a subtransaction, whose abort also restores the scheduler's
-- own identity and settings), is recorded with its message and logged as a WARNING.
-- Runs of one task never overlap (an advisory lock per task). Then the history is cut to
-- the task's last kafka_fdw.task_run_history runs. Only the scheduler (a superuser)
-- runs it.
CREATE FUNCTION kafka_fdw.run_task(run bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r kafka_fdw.task_runs;
    task_name text;
    message text;
    keep int := coalesce(nullif(pg_catalog.current_setting('kafka_fdw.task_run_history', true), '')::int, 1000);
BEGIN
    SELECT * INTO r FROM kafka_fdw.task_runs WHERE runid = run AND status = 'running';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT name INTO task_name FROM kafka_fdw.tasks WHERE task_id = r.task_id;
    BEGIN
        IF NOT pg_catalog.pg_try_advisory_xact_lock(pg_catalog.hashtext('kafka_fdw.task'), r.task_id::int) THEN
            RAISE EXCEPTION 'the previous run of task "%" is still running', task_name;
        END IF;
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_authid WHERE oid = r.owner) THEN
            RAISE EXCEPTION 'the owner of task "%" (role with OID %) was dropped', task_name, r.owner
                USING HINT = format('Schedule it again as another role, or unschedule it: SELECT kafka_fdw.unschedule(%L);', task_name);
        END IF;
        message := kafka_fdw.task_as(r.owner, r.command);
        UPDATE kafka_fdw.task_runs SET status = 'succeeded', return_message = message, end_time = pg_catalog.clock_timestamp()
        WHERE runid = run;
    EXCEPTION WHEN OTHERS THEN
        UPDATE kafka_fdw.task_runs SET status = 'failed', return_message = SQLERRM, end_time = pg_catalog.clock_timestamp()
        WHERE runid = run;
        RAISE WARNING 'kafka_fdw task "%" (as role "%") failed: %',
            task_name, coalesce(pg_catalog.pg_get_userbyid(r.owner)::text, r.owner::text), SQLERRM;
    END;
    DELETE FROM kafka_fdw.task_runs
    WHERE task_id = r.task_id
      AND runid <= (SELECT runid FROM kafka_fdw.task_runs WHERE task_id = r.task_id ORDER BY runid DESC OFFSET greatest(keep, 1) LIMIT 1);
END
$$;
REVOKE ALL ON FUNCTION kafka_fdw.begin_task_run(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION kafka_fdw.run_task(bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION kafka_fdw.task_as(oid, text) FROM PUBLIC;

-- The tasks the current role may act on: its own, its roles' (all, for superusers),
-- with their last run.
CREATE VIEW kafka_fdw.scheduled_tasks WITH (security_barrier) AS
SELECT t.task_id, t.name, pg_catalog.pg_get_userbyid(t.owner) AS owner, t.schedule, t.command, t.next_run,
       last.start_time AS last_start, last.status AS last_status, last.return_message AS last_message
FROM kafka_fdw.tasks t
LEFT JOIN LATERAL (SELECT r.start_time, r.status, r.return_message FROM kafka_fdw.task_runs r
                   WHERE r.task_id = t.task_id ORDER BY r.runid DESC LIMIT 1) last ON true
WHERE pg_catalog.pg_has_role(t.owner, 'USAGE');
GRANT SELECT ON kafka_fdw.scheduled_tasks TO PUBLIC;

-- The run history of those tasks (pg_cron's cron.job_run_details).
CREATE VIEW kafka_fdw.task_run_details WITH (security_barrier) AS
SELECT r.runid, r.task_id, t.name AS task, pg_catalog.pg_get_userbyid(r.owner) AS owner, r.command, r.status,
       r.return_message, r.start_time, r.end_time
FROM kafka_fdw.task_runs r
JOIN kafka_fdw.tasks t USING (task_id)
WHERE pg_catalog.pg_has_role(t.owner, 'USAGE');
GRANT SELECT ON kafka_fdw.task_run_details TO PUBLIC;
