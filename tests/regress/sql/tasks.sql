-- Scheduled SQL tasks (kafka_fdw.schedule, pg_cron's shape). The scheduler's background
-- worker runs them in kafka_fdw.scheduler_database (kafka_fdw_scheduler here; see the
-- task scenario in tests/scenarios.sh); here each run is what the worker does for a
-- due task: kafka_fdw.begin_task_run (committed, 'running'), then kafka_fdw.run_task.
\getenv brokers KAFKA_BROKERS
SET timezone = 'UTC';

-- Schedules: 'N seconds' (1 to 59, '1 seconds' as the reference page writes it) and
-- 5-field cron expressions, in UTC.
SELECT kafka_fdw.schedule_next('1 seconds', '2024-01-01 00:00:00.25+00') AS one_second,
       kafka_fdw.schedule_next('59 seconds', '2024-01-01 00:00:00+00') AS fifty_nine,
       kafka_fdw.schedule_next('*/15 * * * *', '2024-01-01 00:07:00+00') AS quarter,
       kafka_fdw.schedule_next('0 9 * * mon-fri', '2024-01-05 10:00:00+00') AS weekday_morning,
       kafka_fdw.schedule_next('@daily', '2024-02-28 12:00:00+00') AS daily,
       kafka_fdw.schedule_next('0 0 29 2 *', '2024-03-01 00:00:00+00') AS leap_day;
\set VERBOSITY terse
SELECT kafka_fdw.schedule_next('60 seconds');
SELECT kafka_fdw.schedule_next('0 seconds');
SELECT kafka_fdw.schedule_next('* * * *');
SELECT kafka_fdw.schedule_next('61 * * * *');
SELECT kafka_fdw.schedule_next('* * * * fri-mon');
\set VERBOSITY default
SELECT kafka_fdw.schedule('bad', 'every second', 'SELECT 1');
SELECT kafka_fdw.schedule('never', '0 0 30 2 *', 'SELECT 1');
\set VERBOSITY terse
SELECT kafka_fdw.schedule('empty', '1 seconds', '  ');
SELECT kafka_fdw.schedule('', '1 seconds', 'SELECT 1');

-- The reference page's task, as one line: import_kafka_data (created by import.sql)
-- every second. The WARNING says this database's tasks do not run here.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_tasks --partitions 2 >/dev/null
\! seq 1 200 | awk '{ printf "%d,task %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_tasks --round-robin >/dev/null
CREATE FOREIGN TABLE kafka_tasks (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text
) SERVER import_server OPTIONS (topic 'regress_tasks');
CREATE TABLE dest_table_task (some_int int, some_text text);
SELECT kafka_fdw.schedule('import_kafka_data', '1 seconds',
    $$SELECT import_kafka_data('kafka_tasks', 'dest_table_task', ARRAY['some_int', 'some_text']);$$) AS task \gset
SELECT name, owner, schedule, command, next_run <= now() AS due, last_status FROM kafka_fdw.scheduled_tasks;
SELECT kafka_fdw.begin_task_run(:task) AS run \gset
SELECT status, end_time IS NULL AS running FROM kafka_fdw.task_run_details WHERE runid = :run;
SELECT next_run <= now() + interval '1 second' AS next_within_a_second FROM kafka_fdw.scheduled_tasks;
SELECT kafka_fdw.run_task(:run);
SELECT task, owner, status, return_message, end_time >= start_time AS ended FROM kafka_fdw.task_run_details WHERE runid = :run;
-- The table equals the topic; more messages arrive and the next run takes only them.
SELECT (SELECT count(*) FROM dest_table_task) AS imported, (SELECT count(*) FROM kafka_tasks) AS in_topic,
       (SELECT count(*) FROM (SELECT some_int, some_text FROM kafka_tasks EXCEPT ALL SELECT * FROM dest_table_task) d) AS missing;
\! seq 201 300 | awk '{ printf "%d,task %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_tasks --round-robin >/dev/null
SELECT kafka_fdw.begin_task_run(:task) AS run \gset
SELECT kafka_fdw.run_task(:run);
SELECT kafka_fdw.begin_task_run(:task) AS run \gset
SELECT kafka_fdw.run_task(:run);
SELECT (SELECT count(*) FROM dest_table_task) AS imported, (SELECT count(DISTINCT some_int) FROM dest_table_task) AS distinct_rows,
       (SELECT count(*) FROM kafka_tasks) AS in_topic,
       (SELECT count(*) FROM (SELECT some_int, some_text FROM kafka_tasks EXCEPT ALL SELECT * FROM dest_table_task) d) AS missing;
SELECT status, count(*) FROM kafka_fdw.task_run_details WHERE task = 'import_kafka_data' GROUP BY status;

-- Scheduling the same name again changes the task (same id).
SELECT kafka_fdw.schedule('import_kafka_data', '*/5 * * * *',
    $$SELECT import_kafka_data('kafka_tasks', 'dest_table_task', ARRAY['some_int', 'some_text'])$$) = :task AS same_task;
SELECT schedule, next_run > now() AND next_run <= now() + interval '5 minutes' AS within_5_minutes,
       extract(minute FROM next_run)::int % 5 AS minute_mod_5, extract(second FROM next_run)::int AS second
FROM kafka_fdw.scheduled_tasks WHERE name = 'import_kafka_data';

-- A failing run is recorded with its error and rolls back what it did; the command is
-- one transaction (several statements allowed, no COMMIT); settings it changes, SET or
-- SET LOCAL, are undone; it runs as a security-restricted operation.
CREATE TABLE task_log (n int);
SELECT kafka_fdw.schedule('failing', '1 seconds', 'INSERT INTO task_log VALUES (1); SELECT 1/0') AS failing \gset
SELECT kafka_fdw.schedule('several', '1 seconds',
    $$SET work_mem = '77MB'; SET LOCAL statement_timeout = '7s'; INSERT INTO task_log VALUES (2), (3)$$) AS several \gset
SELECT kafka_fdw.schedule('commits', '1 seconds', 'COMMIT') AS commits \gset
SELECT kafka_fdw.schedule('temporary', '1 seconds', 'CREATE TEMP TABLE t (n int)') AS temporary \gset
SELECT kafka_fdw.begin_task_run(:failing) AS run \gset
SELECT kafka_fdw.run_task(:run);
SELECT kafka_fdw.begin_task_run(:several) AS run \gset
SELECT kafka_fdw.run_task(:run);
SELECT current_setting('work_mem') AS work_mem, current_setting('statement_timeout') AS statement_timeout;
SELECT kafka_fdw.begin_task_run(:commits) AS run \gset
SELECT kafka_fdw.run_task(:run);
SELECT kafka_fdw.begin_task_run(:temporary) AS run \gset
SELECT kafka_fdw.run_task(:run);
SELECT n FROM task_log ORDER BY n;
SELECT task, status, return_message FROM kafka_fdw.task_run_details
WHERE task IN ('failing', 'several', 'commits', 'temporary') ORDER BY runid;

-- The history keeps the last kafka_fdw.task_run_history runs of each task.
SET kafka_fdw.task_run_history = 3;
SELECT kafka_fdw.run_task(kafka_fdw.begin_task_run(:several)) FROM generate_series(1, 5);
RESET kafka_fdw.task_run_history;
SELECT count(*) AS kept, max(runid) - min(runid) AS span FROM kafka_fdw.task_run_details WHERE task = 'several';

-- Unscheduling deletes the task and its history; again, there is none.
SELECT kafka_fdw.unschedule('failing'), kafka_fdw.unschedule('failing') AS again;
SELECT kafka_fdw.unschedule(:several), kafka_fdw.unschedule(:commits), kafka_fdw.unschedule('temporary');
SELECT name FROM kafka_fdw.scheduled_tasks ORDER BY name;
SELECT task, count(*) FROM kafka_fdw.task_run_details GROUP BY task;

-- Privileges. A task belongs to the role that scheduled it and runs as it, never as the
-- scheduler's superuser: a command that makes a superuser of its own role when it runs
-- as one stays harmless, and it sees only what its owner may see.
CREATE ROLE task_owner;
CREATE ROLE task_other;
CREATE ROLE task_member IN ROLE task_owner;
GRANT USAGE ON SCHEMA kafka_fdw TO task_owner, task_other, task_member;
CREATE TABLE task_secret (n int);
CREATE TABLE task_seen (who name, superuser bool);
GRANT INSERT ON task_seen TO task_owner;
SET ROLE task_owner;
SELECT kafka_fdw.schedule('owned', '1 seconds', $$
    INSERT INTO task_seen SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
    DO 'BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN ALTER ROLE task_owner SUPERUSER; END IF; END'
$$) AS owned \gset
SELECT kafka_fdw.schedule('snooping', '1 seconds', 'SELECT count(*) FROM task_secret') AS snooping \gset
SELECT kafka_fdw.schedule('escaping', '1 seconds', 'SET ROLE postgres') AS escaping \gset
SELECT name, owner FROM kafka_fdw.scheduled_tasks ORDER BY name;
RESET ROLE;
SELECT kafka_fdw.run_task(kafka_fdw.begin_task_run(:owned));
SELECT kafka_fdw.run_task(kafka_fdw.begin_task_run(:snooping));
SELECT kafka_fdw.run_task(kafka_fdw.begin_task_run(:escaping));
SELECT who, superuser, count(*) FROM task_seen GROUP BY 1, 2;
SELECT rolsuper AS task_owner_is_superuser FROM pg_roles WHERE rolname = 'task_owner';
SELECT task, owner, status, return_message FROM kafka_fdw.task_run_details WHERE task IN ('owned', 'snooping', 'escaping') ORDER BY runid;
-- Other roles neither see, change, unschedule nor run it, nor touch the tables behind.
SET ROLE task_other;
SELECT count(*) AS tasks_seen FROM kafka_fdw.scheduled_tasks;
SELECT count(*) AS runs_seen FROM kafka_fdw.task_run_details;
SELECT kafka_fdw.unschedule('owned');
SELECT kafka_fdw.unschedule(:owned);
SELECT kafka_fdw.schedule('owned', '1 seconds', 'ALTER ROLE task_other SUPERUSER');
SELECT * FROM kafka_fdw.tasks;
SELECT * FROM kafka_fdw.task_runs;
UPDATE kafka_fdw.tasks SET command = 'SELECT 2';
INSERT INTO kafka_fdw.task_runs (task_id, owner, command, status, start_time) VALUES (:owned, 10, 'SELECT 1', 'running', now());
SELECT kafka_fdw.begin_task_run(:owned);
SELECT kafka_fdw.run_task(1);
SELECT kafka_fdw.task_as(10, 'SELECT 1');
RESET ROLE;
SELECT command LIKE '%INSERT INTO task_seen%' AS unchanged FROM kafka_fdw.scheduled_tasks WHERE name = 'owned';
-- A member of the owner sees and unschedules it, as superusers may.
SET ROLE task_member;
SELECT name FROM kafka_fdw.scheduled_tasks ORDER BY name;
SELECT kafka_fdw.unschedule('owned');
RESET ROLE;
SELECT kafka_fdw.unschedule('snooping');

-- A dropped owner fails the runs with an error naming it.
CREATE ROLE task_leaving;
GRANT USAGE ON SCHEMA kafka_fdw TO task_leaving;
SET ROLE task_leaving;
SELECT kafka_fdw.schedule('orphan', '1 seconds', 'SELECT 1') AS orphan \gset
RESET ROLE;
DROP OWNED BY task_leaving;
DROP ROLE task_leaving;
SET client_min_messages = error;
SELECT kafka_fdw.run_task(kafka_fdw.begin_task_run(:orphan));
RESET client_min_messages;
SELECT task, owner LIKE 'unknown%' AS owner_unknown, status, regexp_replace(return_message, '[0-9]+', 'N', 'g') AS return_message
FROM kafka_fdw.task_run_details WHERE task = 'orphan';
SELECT kafka_fdw.unschedule('orphan'), kafka_fdw.unschedule('escaping'), kafka_fdw.unschedule('import_kafka_data');
SELECT count(*) AS tasks, (SELECT count(*) FROM kafka_fdw.task_runs) AS runs FROM kafka_fdw.tasks;
\set VERBOSITY default
DROP TABLE task_seen, task_secret;
DROP OWNED BY task_owner, task_other, task_member;
DROP ROLE task_owner, task_other, task_member;
