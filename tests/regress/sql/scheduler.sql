-- The scheduler at work: scheduled tasks and import jobs run by its background worker,
-- each run a background worker of its own connected as the task's owner. Runs happen in
-- kafka_fdw.scheduler_database only (kafka_fdw_scheduler, as scripts/lib.sh starts the
-- server), so this file works there: it creates the database and drops it at the end.
\getenv brokers KAFKA_BROKERS
\getenv repo KAFKA_FDW_REPO
CREATE DATABASE kafka_fdw_scheduler;
\c kafka_fdw_scheduler
SET timezone = 'UTC';
SET client_min_messages = warning;
CREATE EXTENSION kafka_fdw;
RESET client_min_messages;
CREATE SERVER sched_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER sched_server;

-- Waits (at most `timeout`) until `condition` holds; whether it did.
CREATE FUNCTION wait_for(condition text, timeout interval DEFAULT '30 seconds') RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + timeout;
    holds boolean;
BEGIN
    LOOP
        EXECUTE 'SELECT ' || condition INTO holds;
        IF holds THEN
            RETURN true;
        ELSIF clock_timestamp() > deadline THEN
            RETURN false;
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
-- Waits until task `name` has `n` finished runs.
CREATE FUNCTION wait_for_runs(name text, n int DEFAULT 1) RETURNS boolean LANGUAGE sql AS $$
    SELECT wait_for(format('(SELECT count(*) >= %s FROM kafka_fdw.task_run_details WHERE task = %L AND status <> ''running'')', n, name));
$$;

\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_scheduler --partitions 2 >/dev/null
\! seq 1 200 | awk '{ printf "%d,task %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_scheduler --round-robin >/dev/null
CREATE FOREIGN TABLE kafka_tasks (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text
) SERVER sched_server OPTIONS (topic 'regress_scheduler');

-- The reference page's task, as one line: import_kafka_data every second keeps a table
-- equal to the topic.
\set function_file :repo '/demo/import_kafka_data.sql'
\i :function_file
CREATE TABLE dest_table_task (some_int int, some_text text);
SELECT kafka_fdw.schedule('import_kafka_data', '1 seconds',
    $$SELECT import_kafka_data('kafka_tasks', 'dest_table_task', ARRAY['some_int', 'some_text']);$$) AS task \gset
SELECT wait_for('(SELECT count(*) = 200 FROM dest_table_task)') AS imported;
\! seq 201 300 | awk '{ printf "%d,task %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_scheduler --round-robin >/dev/null
SELECT wait_for('(SELECT count(*) = 300 FROM dest_table_task)') AS imported_more;
SELECT (SELECT count(DISTINCT some_int) FROM dest_table_task) AS distinct_rows,
       (SELECT count(*) FROM (SELECT some_int, some_text FROM kafka_tasks EXCEPT ALL SELECT * FROM dest_table_task) d) AS missing;
SELECT kafka_fdw.unschedule('import_kafka_data');
SELECT wait_for('(SELECT count(*) = 0 FROM kafka_fdw.task_runs)') AS history_gone_with_the_task;

-- What a run records: the last statement's tag and rows; an error, with the command
-- rolled back; several statements in one transaction, settings included; no COMMIT.
-- Each run is a session of its own, so a temporary table is allowed and gone after.
CREATE TABLE task_log (n int);
SELECT kafka_fdw.schedule('failing', '1 seconds', 'INSERT INTO task_log VALUES (1); SELECT 1/0') IS NOT NULL AS scheduled;
SELECT kafka_fdw.schedule('several', '1 seconds',
    $$SET work_mem = '77MB'; INSERT INTO task_log SELECT 2 WHERE current_setting('work_mem') = '77MB'$$) IS NOT NULL AS scheduled;
SELECT kafka_fdw.schedule('commits', '1 seconds', 'COMMIT') IS NOT NULL AS scheduled;
SELECT kafka_fdw.schedule('temporary', '1 seconds', 'CREATE TEMP TABLE t AS SELECT 1 AS n; SELECT * FROM t') IS NOT NULL AS scheduled;
SELECT wait_for_runs('failing') AND wait_for_runs('several') AND wait_for_runs('commits') AND wait_for_runs('temporary') AS ran;
SELECT DISTINCT task, status, return_message, rows FROM kafka_fdw.task_run_details WHERE status <> 'running' ORDER BY task;
SELECT kafka_fdw.unschedule('failing'), kafka_fdw.unschedule('several'), kafka_fdw.unschedule('commits'), kafka_fdw.unschedule('temporary');
SELECT DISTINCT n FROM task_log ORDER BY n;

-- Each run is the owner's own session: session_user and current_user are the owner, so
-- a row-level security policy on session_user shows it its own rows only, in a task as
-- in an import job (whose target's trigger records who inserts).
CREATE ROLE sched_owner LOGIN;
CREATE ROLE sched_other LOGIN;
GRANT USAGE ON SCHEMA kafka_fdw TO sched_owner, sched_other;
CREATE TABLE documents (owner name, body text);
ALTER TABLE documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_documents ON documents USING (owner = session_user);
INSERT INTO documents VALUES ('sched_owner', 'mine'), ('sched_other', 'theirs'), ('postgres', 'the superuser''s');
GRANT SELECT ON documents TO sched_owner;
CREATE TABLE seen (context text, session_user_ name, current_user_ name, documents text);
GRANT INSERT ON seen TO sched_owner;
CREATE TABLE job_target (some_int int, some_text text);
CREATE FUNCTION record_inserter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.seen VALUES ('job trigger', session_user, current_user, NULL);
    RETURN NULL;
END
$$;
CREATE TRIGGER record_inserter AFTER INSERT ON job_target FOR EACH STATEMENT EXECUTE FUNCTION record_inserter();
GRANT SELECT ON kafka_tasks TO sched_owner;
GRANT INSERT ON job_target TO sched_owner;
SET ROLE sched_owner;
SELECT kafka_fdw.schedule('whoami', '1 seconds', $$
    INSERT INTO seen SELECT 'task', session_user, current_user, string_agg(body, ', ' ORDER BY body) FROM documents$$) IS NOT NULL AS scheduled;
SELECT kafka_fdw.start_import('kafka_tasks', 'job_target') AS job \gset
RESET ROLE;
SELECT wait_for_runs('whoami') AND wait_for('(SELECT count(*) = 300 FROM job_target)') AS ran;
SELECT DISTINCT owner, pid IS NOT NULL AND pid <> pg_backend_pid() AS own_process FROM kafka_fdw.task_runs WHERE status <> 'running';
SELECT kafka_fdw.unschedule('whoami'), kafka_fdw.stop_import(:job);
SELECT DISTINCT context, session_user_, current_user_, documents FROM seen ORDER BY context;

-- A run whose owner cannot log in now fails as a connection would, and runs nothing:
-- no LOGIN, an expired password, no CONNECT on the database.
TRUNCATE seen;
CREATE ROLE sched_nologin NOLOGIN;
CREATE ROLE sched_expired LOGIN VALID UNTIL '2001-01-01';
CREATE ROLE sched_noconnect LOGIN;
REVOKE CONNECT ON DATABASE kafka_fdw_scheduler FROM PUBLIC;
GRANT CONNECT ON DATABASE kafka_fdw_scheduler TO sched_nologin, sched_expired, sched_owner, sched_other;
GRANT USAGE ON SCHEMA kafka_fdw TO sched_nologin, sched_expired, sched_noconnect;
GRANT INSERT ON seen TO sched_nologin, sched_expired, sched_noconnect;
SET ROLE sched_nologin;
SELECT kafka_fdw.schedule('nologin', '1 seconds', $$INSERT INTO seen VALUES ('nologin')$$) IS NOT NULL AS scheduled;
SET ROLE sched_expired;
SELECT kafka_fdw.schedule('expired', '1 seconds', $$INSERT INTO seen VALUES ('expired')$$) IS NOT NULL AS scheduled;
SET ROLE sched_noconnect;
SELECT kafka_fdw.schedule('noconnect', '1 seconds', $$INSERT INTO seen VALUES ('noconnect')$$) IS NOT NULL AS scheduled;
RESET ROLE;
-- And a task whose owner was dropped.
CREATE ROLE sched_dropped LOGIN;
GRANT USAGE ON SCHEMA kafka_fdw TO sched_dropped;
SET ROLE sched_dropped;
SELECT kafka_fdw.schedule('dropped', '1 seconds', $$SELECT 1$$) IS NOT NULL AS scheduled;
RESET ROLE;
DROP OWNED BY sched_dropped;
DROP ROLE sched_dropped;
SELECT wait_for_runs('nologin') AND wait_for_runs('expired') AND wait_for_runs('noconnect') AND wait_for_runs('dropped') AS ran;
SELECT DISTINCT task, status, return_message, pid IS NULL AS no_process FROM kafka_fdw.task_run_details ORDER BY task;
SELECT kafka_fdw.unschedule('nologin'), kafka_fdw.unschedule('expired'), kafka_fdw.unschedule('noconnect'),
       kafka_fdw.unschedule('dropped');
SELECT count(*) AS ran_anyway FROM seen;

-- A failing task backs off (the wait doubles with each failure, up to a minute) and
-- logs its first failure, not each one; a success resets it.
SELECT kafka_fdw.schedule('backing_off', '1 seconds', 'SELECT 1/0') AS backing_off \gset
SELECT wait_for_runs('backing_off', 3) AS failed_three_times;
SELECT failures >= 3 AS counted, next_run - last_start > interval '3 seconds' AS waits_longer
FROM kafka_fdw.scheduled_tasks WHERE name = 'backing_off';
SELECT kafka_fdw.schedule('backing_off', '1 seconds', 'SELECT 1') = :backing_off AS same_task;
SELECT wait_for('(SELECT last_status = ''succeeded'' AND failures = 0 FROM kafka_fdw.scheduled_tasks WHERE name = ''backing_off'')') AS recovered;

-- The history keeps the last kafka_fdw.task_run_history runs of each task.
ALTER SYSTEM SET kafka_fdw.task_run_history = 3;
SELECT pg_reload_conf();
SELECT max(runid) AS last_run FROM kafka_fdw.task_runs \gset
SELECT wait_for(format('(SELECT count(*) > 0 FROM kafka_fdw.task_runs WHERE runid >= %s AND status <> ''running'')', :last_run + 5)) AS five_more_runs;
SELECT count(*) AS kept FROM kafka_fdw.task_runs WHERE task_id = :backing_off AND status <> 'running';
ALTER SYSTEM RESET kafka_fdw.task_run_history;
SELECT pg_reload_conf();
SELECT kafka_fdw.unschedule('backing_off');

-- A run past its time limit is cancelled, and says so; one slow run holds up nothing
-- else (a 1-second task keeps running beside it); unscheduling does not wait for it.
SELECT kafka_fdw.schedule('slow', '1 seconds', 'SELECT pg_sleep(60)', time_limit => '2 seconds') IS NOT NULL AS scheduled;
SELECT kafka_fdw.schedule('quick', '1 seconds', 'SELECT 1') IS NOT NULL AS scheduled;
SELECT wait_for_runs('slow') AS cancelled, wait_for_runs('quick', 2) AS quick_ran;
SELECT status, return_message FROM kafka_fdw.task_run_details WHERE task = 'slow' ORDER BY runid LIMIT 1;
SELECT kafka_fdw.schedule('slow', '1 seconds', 'SELECT pg_sleep(60)', time_limit => '0') IS NOT NULL AS no_limit;
-- (claimed by its worker: the scheduler records a run as running before its worker starts)
SELECT wait_for('(SELECT count(*) = 1 FROM kafka_fdw.task_run_details WHERE task = ''slow'' AND status = ''running'' AND pid IS NOT NULL)') AS running;
SELECT clock_timestamp() AS before_unschedule \gset
SELECT kafka_fdw.unschedule('slow'), kafka_fdw.unschedule('quick');
SELECT clock_timestamp() - :'before_unschedule' < interval '5 seconds' AS did_not_wait,
       (SELECT count(*) FROM kafka_fdw.task_runs WHERE status <> 'running') AS finished_runs_left;
SELECT count(pg_terminate_backend(pid)) >= 1 AS terminated FROM pg_stat_activity WHERE backend_type = 'kafka_fdw task run';
SELECT wait_for('(SELECT count(*) = 0 FROM kafka_fdw.task_runs)') AS run_gone_with_its_task;

-- Nothing a normal role creates runs in another role's session. The database's owner,
-- a normal role, owns schema public (PostgreSQL 15) and plants look-alikes there of
-- what the extension's SQL calls, each recording its call and making its owner a
-- superuser when a superuser runs it.
CREATE ROLE sched_dbowner LOGIN;
ALTER DATABASE kafka_fdw_scheduler OWNER TO sched_dbowner;
GRANT USAGE ON SCHEMA kafka_fdw TO sched_dbowner;
GRANT USAGE ON FOREIGN SERVER sched_server TO sched_dbowner;
CREATE TABLE public.planted_calls (what text, by_role name);
GRANT INSERT ON public.planted_calls TO PUBLIC;
SET ROLE sched_dbowner;
CREATE FUNCTION public.planted(what text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.planted_calls VALUES (what, current_user);
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        ALTER ROLE sched_dbowner SUPERUSER;
    END IF;
END
$$;
CREATE FUNCTION public.power(integer, integer) RETURNS double precision LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('power'); RETURN 1; END$$;
CREATE FUNCTION public.format(text, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('format'); RETURN ''; END$$;
CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('unnest'); RETURN; END$$;
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('now'); RETURN '2000-01-01'; END$$;
CREATE FUNCTION public.nullif(text, text) RETURNS text LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('nullif'); RETURN $1; END$$;
CREATE FUNCTION public.concat_planted(text[], text) RETURNS text[] LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('||'); RETURN $1; END$$;
CREATE OPERATOR public.|| (LEFTARG = text[], RIGHTARG = text, FUNCTION = public.concat_planted);
CREATE FUNCTION public.eq_planted(regclass, oid) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('='); RETURN $1::oid = $2; END$$;
CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = oid, FUNCTION = public.eq_planted);
CREATE FUNCTION public.eq_planted(regclass, regclass) RETURNS boolean LANGUAGE plpgsql AS
    $$BEGIN PERFORM public.planted('='); RETURN $1::oid = $2::oid; END$$;
CREATE OPERATOR public.= (LEFTARG = regclass, RIGHTARG = regclass, FUNCTION = public.eq_planted);
CREATE TABLE public.dbowner_target (some_int int, some_text text);
RESET ROLE;
GRANT SELECT ON kafka_tasks TO sched_dbowner;
-- They run wherever public is on the path (as in a superuser's session): the test sees
-- them, here called by a role that is no superuser.
SET ROLE sched_other;
SELECT format('%s', 'x') AS planted_format, ARRAY['a'] || 'b'::text AS planted_concat;
RESET ROLE;
SELECT what, by_role FROM planted_calls ORDER BY what;
TRUNCATE planted_calls;
-- This session, a superuser's, leaves public off its path from here on: its own checks
-- must not call the planted objects either (it names public's objects).
SET search_path = pg_catalog, pg_temp;
-- A superuser imports; a failing 1-second job (its topic does not exist) and a
-- succeeding one of the database owner's; a job and a task of the superuser's that
-- import; a reset and a stop.
CREATE TABLE public.dest_superuser (some_int int, some_text text);
SELECT kafka_fdw.import('public.kafka_tasks', 'public.dest_superuser') AS imported_by_superuser;
CREATE FOREIGN TABLE public.kafka_missing (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), some_int int, some_text text)
SERVER sched_server OPTIONS (topic 'regress_scheduler_missing');
GRANT SELECT ON public.kafka_missing TO sched_dbowner;
SET ROLE sched_dbowner;
SELECT kafka_fdw.start_import('public.kafka_missing', 'public.dbowner_target') IS NOT NULL AS failing_job;
SELECT kafka_fdw.start_import('public.kafka_tasks', 'public.dbowner_target') IS NOT NULL AS succeeding_job;
RESET ROLE;
CREATE TABLE public.dest_superuser_task (some_int int, some_text text);
CREATE TABLE public.dest_superuser_job (some_int int, some_text text);
SELECT kafka_fdw.start_import('public.kafka_tasks', 'public.dest_superuser_job') IS NOT NULL AS superusers_job;
SELECT kafka_fdw.schedule('superuser_import', '1 seconds',
    $$SELECT kafka_fdw.import('kafka_tasks', 'dest_superuser_task')$$) IS NOT NULL AS scheduled;
SELECT public.wait_for('(SELECT count(*) = 300 FROM public.dbowner_target)') AS job_imported,
       public.wait_for('(SELECT count(*) = 300 FROM public.dest_superuser_task)') AS task_imported,
       public.wait_for('(SELECT count(*) = 300 FROM public.dest_superuser_job)') AS superusers_job_imported,
       public.wait_for('(SELECT failures >= 3 FROM kafka_fdw.import_jobs_status WHERE source = ''public.kafka_missing''::regclass)') AS job_failed;
SELECT kafka_fdw.reset_import('public.kafka_tasks', 'public.dest_superuser', 'earliest') AS partitions_reset;
SELECT kafka_fdw.unschedule('superuser_import'), kafka_fdw.stop_import('public.kafka_tasks', 'public.dest_superuser_job');
SET ROLE sched_dbowner;
SELECT kafka_fdw.stop_import('public.kafka_missing', 'public.dbowner_target'),
       kafka_fdw.stop_import('public.kafka_tasks', 'public.dbowner_target');
RESET ROLE;
SELECT what, by_role, count(*) FROM public.planted_calls GROUP BY 1, 2;
SELECT rolsuper AS dbowner_is_superuser FROM pg_roles WHERE rolname = 'sched_dbowner';

-- Imports take a lock no SQL statement can take: holding the advisory lock the import
-- once used, or any other, holds up no job.
SELECT pg_advisory_lock(hashtext('kafka_fdw.import ' || 'public.kafka_tasks'::regclass::oid || ' ' || 'public.job_target'::regclass::oid));
SET ROLE sched_owner;
SELECT kafka_fdw.start_import('public.kafka_tasks', 'public.job_target', ARRAY['some_int', 'some_text']) AS job \gset
RESET ROLE;
\! seq 301 310 | awk '{ printf "%d,task %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_scheduler --round-robin >/dev/null
SELECT public.wait_for('(SELECT count(*) = 310 FROM public.job_target)') AS imported_despite_the_lock;
SELECT pg_advisory_unlock_all();
SELECT kafka_fdw.stop_import(:job);

\c kafka_fdw_regress
DROP DATABASE kafka_fdw_scheduler WITH (FORCE);
DROP ROLE sched_owner, sched_other, sched_nologin, sched_expired, sched_noconnect, sched_dbowner;
