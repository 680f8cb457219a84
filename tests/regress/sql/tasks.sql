-- Scheduled SQL tasks (kafka_fdw.schedule, pg_cron's shape): scheduling, changing,
-- unscheduling and who may do what. They run only in kafka_fdw.scheduler_database
-- (kafka_fdw_scheduler here), so none runs in this database; scheduler.sql watches runs.
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
SELECT kafka_fdw.schedule('negative', '1 seconds', 'SELECT 1', time_limit => '-1 second');

-- A task of this database: the WARNING says it will not run here.
SELECT kafka_fdw.schedule('prune', '30 3 * * *', 'DELETE FROM task_log WHERE n < 0') AS task \gset
SELECT name, owner, schedule, command, next_run > now() AS later, time_limit, failures, last_status FROM kafka_fdw.scheduled_tasks;
-- Scheduling the same name again changes the task (same id), its time limit included.
SELECT kafka_fdw.schedule('prune', '*/5 * * * *', 'DELETE FROM task_log WHERE n < 1', time_limit => '5 minutes') = :task AS same_task;
SELECT schedule, next_run > now() AND next_run <= now() + interval '5 minutes' AS within_5_minutes,
       extract(minute FROM next_run)::int % 5 AS minute_mod_5, extract(second FROM next_run)::int AS second, time_limit
FROM kafka_fdw.scheduled_tasks WHERE name = 'prune';
SELECT kafka_fdw.schedule('every_second', '1 seconds', 'SELECT 1') AS every_second \gset
SELECT name, next_run <= now() AS due_now FROM kafka_fdw.scheduled_tasks ORDER BY name;

-- Unscheduling deletes the task; again, there is none.
SELECT kafka_fdw.unschedule('prune'), kafka_fdw.unschedule('prune') AS again;
SELECT kafka_fdw.unschedule(:every_second), kafka_fdw.unschedule(:every_second) AS again;
SELECT count(*) AS tasks FROM kafka_fdw.scheduled_tasks;

-- Privileges. A task belongs to the role that scheduled it, by name. Other roles neither
-- see, change nor unschedule it, nor touch the tables behind; members of the owner and
-- superusers may.
CREATE ROLE task_owner;
CREATE ROLE task_other;
CREATE ROLE task_member IN ROLE task_owner;
GRANT USAGE ON SCHEMA kafka_fdw TO task_owner, task_other, task_member;
SET ROLE task_owner;
SELECT kafka_fdw.schedule('owned', '1 seconds', 'SELECT 1') AS owned \gset
SELECT name, owner FROM kafka_fdw.scheduled_tasks ORDER BY name;
SET ROLE task_other;
SELECT count(*) AS tasks_seen FROM kafka_fdw.scheduled_tasks;
SELECT count(*) AS runs_seen FROM kafka_fdw.task_run_details;
SELECT kafka_fdw.unschedule('owned');
SELECT kafka_fdw.unschedule(:owned);
SELECT kafka_fdw.schedule('owned', '1 seconds', 'ALTER ROLE task_other SUPERUSER');
SELECT * FROM kafka_fdw.tasks;
SELECT * FROM kafka_fdw.task_runs;
UPDATE kafka_fdw.tasks SET command = 'SELECT 2';
INSERT INTO kafka_fdw.task_runs (task_id, owner, status, start_time) VALUES (:owned, 'postgres', 'running', now());
RESET ROLE;
SELECT command = 'SELECT 1' AS unchanged FROM kafka_fdw.scheduled_tasks WHERE name = 'owned';
SET ROLE task_member;
SELECT name FROM kafka_fdw.scheduled_tasks ORDER BY name;
SELECT kafka_fdw.unschedule('owned');
RESET ROLE;

-- A task whose owner was dropped keeps the owner's name; only superusers see it (and
-- may unschedule it); its runs fail, saying so (scheduler.sql).
CREATE ROLE task_leaving;
GRANT USAGE ON SCHEMA kafka_fdw TO task_leaving;
SET ROLE task_leaving;
SELECT kafka_fdw.schedule('orphan', '1 seconds', 'SELECT 1') AS orphan \gset
RESET ROLE;
DROP OWNED BY task_leaving;
DROP ROLE task_leaving;
SELECT name, owner FROM kafka_fdw.scheduled_tasks;
SET ROLE task_owner;
SELECT count(*) AS orphans_seen FROM kafka_fdw.scheduled_tasks;
SELECT kafka_fdw.unschedule('orphan');
RESET ROLE;
SELECT kafka_fdw.unschedule('orphan');
SELECT count(*) AS tasks, (SELECT count(*) FROM kafka_fdw.task_runs) AS runs FROM kafka_fdw.tasks;
\set VERBOSITY default
DROP OWNED BY task_owner, task_other, task_member;
DROP ROLE task_owner, task_other, task_member;
