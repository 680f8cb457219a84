-- ANALYZE: reltuples from the watermarks, and column statistics from a sample of
-- messages spread over every partition (the whole topic when it holds no more than the
-- sample size, 300 x the statistics target).
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

-- The whole topic (5000 messages, fewer than 30000).
ANALYZE analyze_numbers;
SELECT reltuples, relpages FROM pg_class WHERE oid = 'analyze_numbers'::regclass;
SELECT attname, null_frac, n_distinct, correlation IS NOT NULL AS has_correlation,
       histogram_bounds IS NOT NULL AS has_histogram
FROM pg_stats WHERE tablename = 'analyze_numbers' ORDER BY attname;
SELECT (histogram_bounds::text::int[])[1] AS lowest, (histogram_bounds::text::int[])[101] AS highest
FROM pg_stats WHERE tablename = 'analyze_numbers' AND attname = 'some_int';
-- Now the estimate follows the values: 500 of 5000 rows.
SELECT estimated_rows('SELECT * FROM analyze_numbers WHERE some_int <= 500') BETWEEN 450 AND 550 AS close_to_500;

-- A sample: 3000 of the 5000 messages (statistics target 10), 750 from each partition
-- in runs of 100 spread along it. reltuples is still the message count.
SET default_statistics_target = 10;
ANALYZE analyze_numbers;
RESET default_statistics_target;
SELECT reltuples FROM pg_class WHERE oid = 'analyze_numbers'::regclass;
SELECT attname, null_frac, n_distinct FROM pg_stats WHERE tablename = 'analyze_numbers' ORDER BY attname;
-- Every partition was sampled, along its whole length.
SELECT (histogram_bounds::text::int[])[1] AS lowest, (histogram_bounds::text::int[])[11] > 1100 AS near_the_end
FROM pg_stats WHERE tablename = 'analyze_numbers' AND attname = 'offs';
SELECT array_length(most_common_vals::text::int[], 1) AS partitions, most_common_freqs
FROM pg_stats WHERE tablename = 'analyze_numbers' AND attname = 'part';
SELECT estimated_rows('SELECT * FROM analyze_numbers WHERE some_int <= 500') BETWEEN 300 AND 800 AS near_500;

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
