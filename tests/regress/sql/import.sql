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
-- An error rolls back rows and offsets together.
CREATE TABLE picky (some_int int CHECK (some_int < 1700), part int, offs bigint);
\set VERBOSITY terse
SELECT kafka_fdw.import('kafka_import', 'picky', ARRAY['some_int', 'part', 'offs']);
\set VERBOSITY default
SELECT count(*) AS rows, (SELECT count(*) FROM kafka_fdw.import_progress WHERE target = 'picky'::regclass) AS offsets FROM picky;
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
SELECT kafka_fdw.stop_import('kafka_import', 'imported');
SELECT kafka_fdw.stop_import('kafka_import', 'imported');
