-- The reference page's walkthrough on plain PostgreSQL 15 against a real broker.
-- Run by scripts/demo.sh, which starts Apache Kafka and PostgreSQL, and loads 4 partitions of
-- topic contrib_regress_csv with kafka-tool.
\set ON_ERROR_STOP on
\pset pager off
\getenv brokers KAFKA_BROKERS

CREATE EXTENSION kafka_fdw;

CREATE SERVER kafka_server
FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (mpp_execute 'all segments', brokers :'brokers');

CREATE USER MAPPING FOR PUBLIC SERVER kafka_server;

CREATE FOREIGN TABLE kafka_test (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
)
SERVER kafka_server OPTIONS
    (format 'csv', topic 'contrib_regress_csv', batch_size '1000', buffer_delay '1000');

-- What is in the topic.
SELECT part, count(*), min(offs), max(offs) FROM kafka_test GROUP BY part ORDER BY part;

-- Query: partition and offset conditions.
SELECT * FROM kafka_test WHERE part = 0 AND offs > 1000 LIMIT 60;

-- Multiple conditions (the full result is long: its size per partition, then the first rows).
SELECT part, count(*) FROM (
    SELECT * FROM kafka_test WHERE (part = 0 AND offs > 100) OR (part = 1 AND offs > 300) OR (part = 3 AND offs > 700)
) q GROUP BY part ORDER BY part;
\getenv output DEMO_OUTPUT
\o :output
SELECT * FROM kafka_test WHERE (part = 0 AND offs > 100) OR (part = 1 AND offs > 300) OR (part = 3 AND offs > 700);
\o
\! head -n 12 "$DEMO_OUTPUT"; echo '   ...'; tail -n 6 "$DEMO_OUTPUT"

-- Data import with the reference page's function, verbatim.
\i demo/import_kafka_data.sql
CREATE TABLE dest_table_fdw (some_int int, some_text text, some_date date, some_time timestamp);
SELECT import_kafka_data('kafka_test', 'dest_table_fdw', ARRAY['some_int', 'some_text', 'some_date', 'some_time']);
SELECT * FROM kafka_test_import_progress ORDER BY part;
SELECT count(*) AS imported, count(DISTINCT some_int) AS distinct_rows FROM dest_table_fdw;

-- More messages arrive (produced by kafka-tool); the next import takes only those.
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic contrib_regress_csv --round-robin --file "$DEMO_MORE_ROWS"
SELECT import_kafka_data('kafka_test', 'dest_table_fdw', ARRAY['some_int', 'some_text', 'some_date', 'some_time']);
SELECT * FROM kafka_test_import_progress ORDER BY part;
SELECT count(*) AS imported, count(DISTINCT some_int) AS distinct_rows FROM dest_table_fdw;
SELECT count(*) AS in_topic FROM kafka_test;

-- Message producer: INSERT produces one message per row, acknowledged by Kafka before
-- the statement completes.
INSERT INTO kafka_test(part, some_int, some_text)
VALUES
    (0, 5464565, 'some text goes into partition 0'),
    (1, 5464565, 'some text goes into partition 1'),
    (0, 5464565, 'some text goes into partition 0'),
    (3, 5464565, 'some text goes into partition 3'),
    (NULL, 5464565, 'some text goes into partition selected by kafka');
SELECT part, offs, some_int, some_text FROM kafka_test WHERE some_int = 5464565 ORDER BY part, offs;

-- Scheduled import every second (the reference's CREATE TASK … schedule '1 seconds'):
-- the extension's scheduler runs the built-in exactly-once import.
CREATE TABLE dest_table_task (part int, offs bigint, some_int int, some_text text, some_date date, some_time timestamp);
SELECT kafka_fdw.start_import('kafka_test', 'dest_table_task', run_every => '1 second');
SELECT pg_sleep(2);
SELECT count(*) AS imported, (SELECT count(*) FROM kafka_test) AS in_topic FROM dest_table_task;
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic contrib_regress_csv --round-robin --file "$DEMO_LAST_ROWS"
SELECT pg_sleep(2);
SELECT count(*) AS imported, count(DISTINCT (part, offs)) AS distinct_messages, (SELECT count(*) FROM kafka_test) AS in_topic
FROM dest_table_task;
SELECT job_id, source, target, state, last_error, lag FROM kafka_fdw.import_jobs_status;
SELECT * FROM kafka_fdw.import_status ORDER BY partition;

-- The reference page's scheduled import, CREATE TASK import_kafka_data schedule
-- '1 seconds' AS $$…$$, as one line: a scheduled SQL task running its function every
-- second (as the role that scheduled it, in the scheduler's database).
SELECT count(*) AS imported, (SELECT count(*) FROM kafka_test) AS in_topic FROM dest_table_fdw;
SELECT kafka_fdw.schedule('import_kafka_data', '1 seconds', $$SELECT import_kafka_data('kafka_test', 'dest_table_fdw', ARRAY['some_int', 'some_text', 'some_date', 'some_time']);$$);
-- Wait (at most 20 s) until the table holds every message of the topic.
CREATE FUNCTION pg_temp.wait_for_task() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 100 LOOP
        IF (SELECT count(*) FROM dest_table_fdw) = (SELECT count(*) FROM kafka_test) THEN
            RETURN format('caught up after %s s', round(i * 0.2 - 0.2, 1));
        END IF;
        PERFORM pg_sleep(0.2);
    END LOOP;
    RETURN 'not caught up after 20 s';
END
$$;
SELECT pg_temp.wait_for_task();
SELECT count(*) AS imported, count(DISTINCT some_int) AS distinct_rows, (SELECT count(*) FROM kafka_test) AS in_topic FROM dest_table_fdw;
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic contrib_regress_csv --round-robin --file "$DEMO_FINAL_ROWS"
SELECT pg_temp.wait_for_task();
SELECT count(*) AS imported, count(DISTINCT some_int) AS distinct_rows, (SELECT count(*) FROM kafka_test) AS in_topic FROM dest_table_fdw;
SELECT name, owner, schedule, last_status, last_message FROM kafka_fdw.scheduled_tasks;
SELECT runid, task, status, return_message, end_time - start_time AS took FROM kafka_fdw.task_run_details ORDER BY runid DESC LIMIT 3;
