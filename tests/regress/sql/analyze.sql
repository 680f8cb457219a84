-- ANALYZE: reltuples from the watermarks, and column statistics from a sample of
-- messages spread over every partition: the whole topic when it holds no more than twice
-- the sample size (a fortieth of the topic, but no fewer than a thirtieth and no more
-- than all of the 300 x statistics target rows PostgreSQL asks for), else a few long runs
-- per partition.
\getenv brokers KAFKA_BROKERS
CREATE SERVER analyze_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER analyze_server;
-- 5000 messages over 4 partitions: line i is "i,row i,2020-01-(i mod 28 + 1),2020-01-01 00:(i mod 60):(i mod 60)".
CREATE FOREIGN TABLE analyze_numbers (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
) SERVER analyze_server OPTIONS (topic 'contrib_regress_csv');
-- The planner's row estimate for a query.
CREATE FUNCTION estimated_rows(query text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    plan json;
BEGIN
    EXECUTE 'EXPLAIN (FORMAT JSON) ' || query INTO plan;
    RETURN (plan -> 0 -> 'Plan' ->> 'Plan Rows')::int;
END
$$;

-- Before: never analyzed, and a condition on a data column gets a default selectivity.
SELECT reltuples, relpages FROM pg_class WHERE oid = 'analyze_numbers'::regclass;
SELECT estimated_rows('SELECT * FROM analyze_numbers WHERE some_int <= 500');

-- The whole topic: at statistics target 300 PostgreSQL asks for 90000 rows, and 5000
-- messages are no more than twice 3000 (a thirtieth of 90000).
SET default_statistics_target = 300;
ANALYZE analyze_numbers;
RESET default_statistics_target;
SELECT reltuples, relpages FROM pg_class WHERE oid = 'analyze_numbers'::regclass;
SELECT attname, null_frac, n_distinct, correlation IS NOT NULL AS has_correlation,
       histogram_bounds IS NOT NULL AS has_histogram
FROM pg_stats WHERE tablename = 'analyze_numbers' ORDER BY attname;
SELECT (histogram_bounds::text::int[])[1] AS lowest, (histogram_bounds::text::int[])[301] AS highest
FROM pg_stats WHERE tablename = 'analyze_numbers' AND attname = 'some_int';
-- Now the estimate follows the values: 500 of 5000 rows.
SELECT estimated_rows('SELECT * FROM analyze_numbers WHERE some_int <= 500') BETWEEN 450 AND 550 AS close_to_500;

-- A sample: at statistics target 10 PostgreSQL asks for 3000 rows, and a fortieth of
-- 5000, 125 (more than a thirtieth of 3000), is the sample: 31 or 32 messages from each
-- partition, in one run (the four partitions share the sample's two places, and 1250
-- messages are fewer than the 25000 per further run), placed along the partition by its
-- rank so the runs together cover the topic's history: partition 0's an eighth of the
-- way in, partition 3's seven eighths. reltuples is still the message count.
-- Only kafka_fdw's line of ANALYZE VERBOSE is kept: PostgreSQL 18 adds the analysis's
-- buffer, WAL and timing figures, which vary from run to run.
SELECT current_database() AS db \gset
\setenv PGDATABASE :db
\! psql -X -q -c 'SET default_statistics_target = 10' -c 'ANALYZE VERBOSE analyze_numbers' 2>&1 | grep 'Kafka topic'
SELECT reltuples FROM pg_class WHERE oid = 'analyze_numbers'::regclass;
SELECT attname, null_frac, n_distinct FROM pg_stats WHERE tablename = 'analyze_numbers' ORDER BY attname;
-- Offsets from 1/8 (152 = 1218 / 8, the room a run of 32 leaves) to 7/8 of the way
-- (1066 = 1219 * 7 / 8, the run of 31 ending at 1096).
SELECT (histogram_bounds::text::int[])[1] AS lowest, (histogram_bounds::text::int[])[11] AS highest
FROM pg_stats WHERE tablename = 'analyze_numbers' AND attname = 'offs';
SELECT array_length(most_common_vals::text::int[], 1) AS partitions, most_common_freqs
FROM pg_stats WHERE tablename = 'analyze_numbers' AND attname = 'part';
-- Line i is in partition i mod 4 at offset i div 4: the four runs hold values around
-- 12.5, 37.5, 62.5 and 87.5 % of some_int's range, so the median is estimated well.
SELECT estimated_rows('SELECT * FROM analyze_numbers WHERE some_int <= 2500') BETWEEN 2000 AND 3000 AS near_2500;

-- An empty topic: no rows, no statistics.
CREATE FOREIGN TABLE analyze_empty (x text) SERVER analyze_server OPTIONS (topic 'regress_empty');
ANALYZE analyze_empty;
SELECT reltuples FROM pg_class WHERE oid = 'analyze_empty'::regclass;
SELECT count(*) FROM pg_stats WHERE tablename = 'analyze_empty';

-- Rows are built as a scan builds them: bad messages skipped under on_error 'skip' are
-- not rows (2 of the 8 messages are good), and counted in the scan's WARNING.
CREATE FOREIGN TABLE analyze_skip (
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
) SERVER analyze_server OPTIONS (topic 'regress_junk', on_error 'skip', strict 'true');
ANALYZE analyze_skip;
SELECT reltuples FROM pg_class WHERE oid = 'analyze_skip'::regclass;
SELECT attname, n_distinct FROM pg_stats WHERE tablename = 'analyze_skip' ORDER BY attname;
-- With the default on_error, a bad message in the sample fails ANALYZE as it fails a scan.
CREATE FOREIGN TABLE analyze_junk (offs bigint OPTIONS (offset 'true'), some_int int)
SERVER analyze_server OPTIONS (topic 'regress_junk');
ANALYZE analyze_junk;

-- Only the owner (or a superuser) may ANALYZE, as PostgreSQL checks it.
CREATE ROLE analyze_stranger;
SET ROLE analyze_stranger;
ANALYZE analyze_numbers;
RESET ROLE;
DROP ROLE analyze_stranger;
