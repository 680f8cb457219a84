-- Reading CSV topics from Apache Kafka. tests/regress/load.sh put the data in
-- with kafka-tool, line i of each file into partition (i - 1) mod 4.
\getenv brokers KAFKA_BROKERS
\getenv datadir KAFKA_FDW_REGRESS_DATA

-- The reference page's objects.
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

-- 5000 rows went in; a scan reads exactly them, every time.
SELECT count(*) FROM kafka_test;
SELECT count(*) FROM kafka_test;
SELECT part, count(*), min(offs), max(offs) FROM kafka_test GROUP BY part ORDER BY part;
-- Each row sits at the partition and offset it was produced to.
SELECT count(*) AS misplaced FROM kafka_test
WHERE part <> (some_int - 1) % 4 OR offs <> (some_int - 1) / 4;
-- And holds what the file holds: compare with COPY of the same file.
CREATE TABLE numbers (some_int int, some_text text, some_date date, some_time timestamp);
\set file :datadir '/numbers.csv'
COPY numbers FROM :'file' (FORMAT csv);
SELECT count(*) AS only_in_kafka FROM (
    SELECT some_int, some_text, some_date, some_time FROM kafka_test EXCEPT ALL SELECT * FROM numbers) d;
SELECT count(*) AS only_in_file FROM (
    SELECT * FROM numbers EXCEPT ALL SELECT some_int, some_text, some_date, some_time FROM kafka_test) d;

-- The reference page's queries.
SELECT count(*), min(offs), max(offs), min(part), max(part) FROM (
    SELECT * FROM kafka_test WHERE part = 0 AND offs > 1000 LIMIT 60) q;
SELECT part, count(*), min(offs), max(offs) FROM kafka_test
WHERE (part = 0 AND offs > 100) OR (part = 1 AND offs > 300) OR (part = 3 AND offs > 700)
GROUP BY part ORDER BY part;
SELECT * FROM kafka_test WHERE part = 2 AND offs BETWEEN 10 AND 12 ORDER BY offs;

-- Commas, quotes, empty strings versus NULL, unicode, dates and timestamps come back
-- exactly as produced.
CREATE FOREIGN TABLE kafka_values (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
) SERVER kafka_server OPTIONS (topic 'regress_values');
SELECT part, offs, some_int, some_text, some_text IS NULL AS null_text, some_date, some_time
FROM kafka_values ORDER BY part, offs;
CREATE TABLE values_copy (some_int int, some_text text, some_date date, some_time timestamp);
\set file :datadir '/values.csv'
COPY values_copy FROM :'file' (FORMAT csv);
SELECT count(*) AS only_in_kafka FROM (
    SELECT some_int, some_text, some_date, some_time FROM kafka_values EXCEPT ALL SELECT * FROM values_copy) d;
SELECT count(*) AS only_in_file FROM (
    SELECT * FROM values_copy EXCEPT ALL SELECT some_int, some_text, some_date, some_time FROM kafka_values) d;

-- Columns may come in any order and need not cover the message: data columns take the
-- fields in order, missing fields are NULL.
CREATE FOREIGN TABLE kafka_narrow (
    first_field int,
    offs bigint OPTIONS (offset 'true'),
    second_field text,
    part smallint OPTIONS (partition 'true')
) SERVER kafka_server OPTIONS (topic 'regress_values');
SELECT * FROM kafka_narrow WHERE first_field < 3 ORDER BY first_field;
CREATE FOREIGN TABLE kafka_wide (a int, b text, c date, d timestamp, e text, f int)
SERVER kafka_server OPTIONS (topic 'regress_values');
SELECT count(*), count(e), count(f) FROM kafka_wide;

-- An empty topic gives no rows at once, even with a long buffer_delay: the end of a
-- scan is the high watermark, never a timeout.
CREATE FOREIGN TABLE kafka_empty (part int OPTIONS (partition 'true'), x text)
SERVER kafka_server OPTIONS (topic 'regress_empty', buffer_delay '5000');
SELECT clock_timestamp() AS started \gset
SELECT * FROM kafka_empty;
SELECT count(*) FROM kafka_empty;
SELECT clock_timestamp() - :'started' < interval '1 second' AS immediate;

-- EXPLAIN names the topic.
EXPLAIN (COSTS OFF) SELECT * FROM kafka_test;

-- A topic that does not exist.
CREATE FOREIGN TABLE kafka_missing (x text) SERVER kafka_server OPTIONS (topic 'no_such_topic');
SELECT * FROM kafka_missing;

-- A message that does not fit the column type names topic, partition and offset.
CREATE FOREIGN TABLE kafka_mistyped (a int, b int)
SERVER kafka_server OPTIONS (topic 'regress_mistyped');
SELECT * FROM kafka_mistyped;

-- A broker that cannot be reached gives an ERROR within the server's timeout.
CREATE SERVER dead_server FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (brokers '127.0.0.1:1', timeout_ms '1000');
CREATE USER MAPPING FOR PUBLIC SERVER dead_server;
CREATE FOREIGN TABLE kafka_dead (x text) SERVER dead_server OPTIONS (topic 'contrib_regress_csv');
SELECT clock_timestamp() AS started \gset
\set VERBOSITY terse
SELECT * FROM kafka_dead;
\set VERBOSITY default
SELECT clock_timestamp() - :'started' < interval '5 seconds' AS bounded;

-- No user mapping, no scan (as in postgres_fdw).
CREATE SERVER unmapped FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE FOREIGN TABLE kafka_unmapped (x text) SERVER unmapped OPTIONS (topic 'regress_values');
SELECT * FROM kafka_unmapped;
