-- Loading a topic into an ordinary table: the reference page's function verbatim, and
-- the built-in exactly-once import.
\getenv brokers KAFKA_BROKERS
\getenv datadir KAFKA_FDW_REGRESS_DATA
\getenv repo KAFKA_FDW_REPO
CREATE SERVER import_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER import_server;
CREATE FOREIGN TABLE kafka_import (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text
) SERVER import_server OPTIONS (topic 'regress_import');

-- The reference function, verbatim, run twice with new messages in between.
\set function_file :repo '/demo/import_kafka_data.sql'
\i :function_file
CREATE TABLE dest_table_fdw (some_int int, some_text text);
SELECT import_kafka_data('kafka_import', 'dest_table_fdw', ARRAY['some_int', 'some_text']);
SELECT count(*) AS imported FROM dest_table_fdw;
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_import --round-robin --file "$KAFKA_FDW_REGRESS_DATA/import_second.csv" >/dev/null
SET client_min_messages = warning;
SELECT import_kafka_data('kafka_import', 'dest_table_fdw', ARRAY['some_int', 'some_text']);
RESET client_min_messages;
SELECT part, offs FROM kafka_import_import_progress ORDER BY part;
-- The target equals the topic, with no duplicates.
SELECT (SELECT count(*) FROM dest_table_fdw) AS imported,
       (SELECT count(DISTINCT some_int) FROM dest_table_fdw) AS distinct_rows,
       (SELECT count(*) FROM kafka_import) AS in_topic,
       (SELECT count(*) FROM (SELECT some_int, some_text FROM kafka_import
                              EXCEPT ALL SELECT * FROM dest_table_fdw) d) AS missing;

-- The built-in import stores its offsets in kafka_fdw.import_progress in the same
-- transaction as the rows.
CREATE TABLE imported (part int, offs bigint, some_int int, some_text text);
SELECT kafka_fdw.import('kafka_import', 'imported', max_messages => 600);
SELECT partition, next_offset FROM kafka_fdw.import_progress ORDER BY partition;
SELECT kafka_fdw.import('kafka_import', 'imported');
SELECT kafka_fdw.import('kafka_import', 'imported');
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_import --round-robin --file "$KAFKA_FDW_REGRESS_DATA/import_third.csv" >/dev/null
SELECT kafka_fdw.import('kafka_import', 'imported');
SELECT (SELECT count(*) FROM imported) AS imported,
       (SELECT count(DISTINCT (part, offs)) FROM imported) AS distinct_messages,
       (SELECT count(*) FROM kafka_import) AS in_topic,
       (SELECT count(*) FROM (SELECT * FROM kafka_import EXCEPT ALL SELECT * FROM imported) d) AS missing;
SELECT source, target, partition, next_offset, low, high, lag, imported_at IS NOT NULL AS imported
FROM kafka_fdw.import_status ORDER BY partition;
-- An error (here a CHECK constraint, checked by COPY's multi-insert path) rolls back
-- rows and offsets together.
CREATE TABLE picky (some_int int CHECK (some_int < 1700), part int, offs bigint);
\set VERBOSITY terse
SELECT kafka_fdw.import('kafka_import', 'picky', ARRAY['some_int', 'part', 'offs']);
\set VERBOSITY default
SELECT count(*) AS rows, (SELECT count(*) FROM kafka_fdw.import_progress WHERE target = 'picky'::regclass) AS offsets FROM picky;
-- A message the scan cannot convert (here a text field read as an int) raises from
-- inside the COPY, naming the message; nothing is inserted or stored.
CREATE FOREIGN TABLE kafka_import_misread (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), some_int int, some_text int)
SERVER import_server OPTIONS (topic 'regress_import');
CREATE TABLE misread (part int, offs bigint, some_int int, some_text int);
DO $$
BEGIN
    PERFORM kafka_fdw.import('kafka_import_misread', 'misread');
EXCEPTION WHEN OTHERS THEN
    -- Which partition the scan reads first varies.
    RAISE NOTICE 'raised: %', regexp_replace(SQLERRM, 'partition \d+, offset \d+', 'partition P, offset O');
END
$$;
SELECT count(*) AS rows, (SELECT count(*) FROM kafka_fdw.import_progress WHERE target = 'misread'::regclass) AS offsets FROM misread;
-- Rows go in through COPY FROM's machinery (kafka_fdw.bulk_insert): row triggers fire
-- once per row (a BEFORE ROW trigger makes COPY insert one row at a time, and the NOTICE
-- says so), and the import shows in pg_stat_progress_copy while it runs. (The import
-- runs with search_path pinned to pg_catalog, so trigger functions set their own.)
CREATE TABLE trigger_log (trigger text, part int, offs bigint, progress_relid regclass, command text, type text);
CREATE FUNCTION log_row() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    INSERT INTO trigger_log
    SELECT TG_NAME, NEW.part, NEW.offs, p.relid::regclass, p.command, p.type
    FROM (SELECT) AS one LEFT JOIN pg_stat_progress_copy p ON p.pid = pg_backend_pid();
    RETURN NEW;
END
$$;
CREATE TABLE triggered_before (part int, offs bigint, some_int int, some_text text);
CREATE TRIGGER before_row BEFORE INSERT ON triggered_before FOR EACH ROW EXECUTE FUNCTION log_row();
SELECT kafka_fdw.import('kafka_import', 'triggered_before') = (SELECT count(*) FROM kafka_import) AS imported_all;
CREATE TABLE triggered_after (part int, offs bigint, some_int int, some_text text, PRIMARY KEY (part, offs));
CREATE TRIGGER after_row AFTER INSERT ON triggered_after FOR EACH ROW EXECUTE FUNCTION log_row();
SELECT kafka_fdw.import('kafka_import', 'triggered_after') = (SELECT count(*) FROM kafka_import) AS imported_all;
-- Each message fired each trigger once, while COPY into the trigger's table ran.
SELECT l.trigger, count(*) = (SELECT count(*) FROM kafka_import) AS once_per_message,
       count(DISTINCT (l.part, l.offs)) = count(*) AS no_repeats,
       bool_and(k.part IS NOT NULL) AS all_from_topic,
       array_agg(DISTINCT l.progress_relid) AS progress_relation, array_agg(DISTINCT l.command) AS command,
       array_agg(DISTINCT l.type) AS type
FROM trigger_log l LEFT JOIN kafka_import k ON k.part = l.part AND k.offs = l.offs
GROUP BY l.trigger ORDER BY l.trigger;
-- kafka_fdw.bulk_insert runs its query as the caller and checks as COPY FROM does.
BEGIN READ ONLY;
SELECT kafka_fdw.bulk_insert('misread', ARRAY['some_int'], 'SELECT 1');
ROLLBACK;
SELECT kafka_fdw.bulk_insert('misread', ARRAY['some_int', 'some_text'], 'SELECT 1, 2 UNION ALL SELECT 3, 4');
SELECT some_int, some_text FROM misread ORDER BY 1;
-- A bulk insert from a BEFORE ROW trigger of another one's target (COPY calls it in the
-- middle of its input) goes by INSERT, and the outer one still gets every row.
CREATE TABLE nest_log (n int);
CREATE TABLE nest_target (n int);
CREATE FUNCTION nest_logger() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    PERFORM kafka_fdw.bulk_insert('nest_log', ARRAY['n'], format('SELECT %s', NEW.n));
    RETURN NEW;
END $$;
CREATE TRIGGER nest BEFORE INSERT ON nest_target FOR EACH ROW EXECUTE FUNCTION nest_logger();
SET client_min_messages = warning;
SELECT kafka_fdw.bulk_insert('nest_target', ARRAY['n'], 'SELECT generate_series(1, 3000)') AS inserted;
RESET client_min_messages;
SELECT (SELECT count(*) FROM nest_target) AS target, (SELECT count(DISTINCT n) FROM nest_log) AS logged;
DROP TABLE nest_target, nest_log;
DROP FUNCTION nest_logger();
-- Where COPY would differ from INSERT (here: a column of another type), the rows go in
-- by INSERT ... SELECT, with its assignment casts, and the NOTICE says so.
CREATE TABLE wider (part int, offs bigint, some_int numeric(10, 1), some_text varchar(40));
SELECT kafka_fdw.import('kafka_import', 'wider') = (SELECT count(*) FROM kafka_import) AS imported_all;
SELECT count(*) AS missing FROM (SELECT part, offs, some_int, some_text FROM kafka_import EXCEPT SELECT * FROM wider) d;
-- With group_id, the progress also goes to that Kafka consumer group once the
-- transaction commits (kafka-consumer-groups --describe and lag exporters read it there);
-- an import rolled back commits nothing to it.
CREATE TABLE grouped (part int, offs bigint, some_int int, some_text text);
BEGIN;
SELECT kafka_fdw.import('kafka_import', 'grouped', max_messages => 500, group_id => 'regress_import_group') AS imported;
ROLLBACK;
SELECT partition, committed, lag, high > 0 AS has_messages FROM kafka_fdw.group_offsets('kafka_import', 'regress_import_group') ORDER BY partition;
SELECT kafka_fdw.import('kafka_import', 'grouped', max_messages => 500, group_id => 'regress_import_group') AS imported;
SELECT g.partition, g.committed = s.next_offset AS committed_as_stored, g.lag = s.lag AS same_lag, g.lag
FROM kafka_fdw.group_offsets('kafka_import', 'regress_import_group') g
JOIN kafka_fdw.import_status s ON s.partition = g.partition AND s.target = 'grouped'::regclass ORDER BY 1;
SELECT kafka_fdw.import('kafka_import', 'grouped', group_id => 'regress_import_group') AS imported;
SELECT partition, committed = high AS caught_up, lag FROM kafka_fdw.group_offsets('kafka_import', 'regress_import_group') ORDER BY partition;
-- Another group knows nothing of it; a name that is no group's is refused.
SELECT count(committed) AS committed FROM kafka_fdw.group_offsets('kafka_import', 'regress_other_group');
SELECT kafka_fdw.import('kafka_import', 'grouped', group_id => '');
DROP TABLE grouped;
-- A commit Kafka refuses (30 = GROUP_AUTHORIZATION_FAILED, on librdkafka's mock cluster)
-- is a WARNING once the transaction has committed: the rows and the stored offsets stay,
-- and the next import commits the group's offsets.
\getenv mock_brokers KAFKA_MOCK_BROKERS
CREATE SERVER group_fault_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'mock_brokers', timeout_ms '3000');
CREATE USER MAPPING FOR PUBLIC SERVER group_fault_server;
CREATE FOREIGN TABLE group_faults (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), x text)
SERVER group_fault_server OPTIONS (topic 'regress_group_faults');
INSERT INTO group_faults (part, x) SELECT 0, 'm' || i FROM generate_series(1, 5) i;
CREATE TABLE group_faults_in (part int, offs bigint, x text);
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" request-errors OffsetCommit 30 30 30 30 30 30 30 30 30 30
SELECT kafka_fdw.import('group_faults', 'group_faults_in', group_id => 'regress_refused_group') AS imported;
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" clear-errors OffsetCommit
SELECT count(*) AS kept FROM group_faults_in;
SELECT partition, committed FROM kafka_fdw.group_offsets('group_faults', 'regress_refused_group');
SELECT kafka_fdw.import('group_faults', 'group_faults_in', group_id => 'regress_refused_group') AS imported;
SELECT partition, committed, lag FROM kafka_fdw.group_offsets('group_faults', 'regress_refused_group');
DROP TABLE group_faults_in;
-- Tables without the columns the import needs.
CREATE FOREIGN TABLE no_meta (some_int int) SERVER import_server OPTIONS (topic 'regress_import');
SELECT kafka_fdw.import('no_meta', 'imported');
SELECT kafka_fdw.import('imported', 'imported');
-- pg_dump keeps the offsets and jobs (extension configuration tables).
SELECT unnest(extconfig)::regclass AS dumped FROM pg_extension WHERE extname = 'kafka_fdw' ORDER BY 1;

-- Jobs for the scheduler (which runs them in kafka_fdw.scheduler_database; see the
-- scheduler scenario in tests/scenarios.sh).
SELECT kafka_fdw.start_import('kafka_import', 'imported');
SELECT kafka_fdw.start_import('kafka_import', 'imported', run_every => '5 seconds');
SELECT job_id, source, target, run_every, state FROM kafka_fdw.import_jobs_status;
SELECT kafka_fdw.start_import('kafka_import', 'imported', group_id => 'regress_job_group');
SELECT command FROM kafka_fdw.scheduled_tasks;
SELECT kafka_fdw.stop_import('kafka_import', 'imported');
SELECT kafka_fdw.stop_import('kafka_import', 'imported');
