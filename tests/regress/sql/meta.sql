-- Meta columns (key, timestamp, headers, topic), timestamp bounds pushed down through
-- the broker's time index, and compressed topics.
\getenv brokers KAFKA_BROKERS
SET timezone = 'UTC';
SET datestyle = 'ISO, YMD';
CREATE SERVER meta_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER meta_server;
CREATE FOREIGN TABLE kmeta (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    k text OPTIONS (key 'true'),
    ts timestamptz OPTIONS (timestamp 'true'),
    h jsonb OPTIONS (headers 'true'),
    t text OPTIONS (topic 'true'),
    name text,
    n int
) SERVER meta_server OPTIONS (topic 'regress_meta');
SELECT * FROM kmeta ORDER BY part, offs;

-- A bytea key column reads the key's bytes.
CREATE FOREIGN TABLE kmeta_bytes (k bytea OPTIONS (key 'true'), name text, n int) SERVER meta_server OPTIONS (topic 'regress_meta');
SELECT k, n FROM kmeta_bytes WHERE n < 2 ORDER BY n;
-- Header values are reachable with jsonb operators.
SELECT count(*) FILTER (WHERE h->>'trace' = 'abc') AS traced, count(*) FILTER (WHERE h IS NULL) AS without_headers FROM kmeta;

-- Meta columns have one column each, of a fitting type.
CREATE FOREIGN TABLE bad (k1 text OPTIONS (key 'true'), k2 bytea OPTIONS (key 'true')) SERVER meta_server OPTIONS (topic 't');
CREATE FOREIGN TABLE bad (ts timestamp OPTIONS (timestamp 'true')) SERVER meta_server OPTIONS (topic 't');
CREATE FOREIGN TABLE bad (h json OPTIONS (headers 'true')) SERVER meta_server OPTIONS (topic 't');

-- Timestamp bounds. A lower bound always narrows the read: the broker's time index
-- gives the first offset at or after it. An upper bound narrows it only when the table
-- declares timestamps_ordered (timestamps never decrease within a partition), since
-- otherwise a later message may be older.
CREATE TABLE kmeta_copy AS SELECT * FROM kmeta;
CREATE FUNCTION meta_check(tbl text, condition text) RETURNS TABLE (rows bigint, same_as_full_scan boolean, plan text)
LANGUAGE plpgsql AS $$
DECLARE
    line text;
    diff bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %I WHERE %s', tbl, condition) INTO rows;
    EXECUTE format('SELECT count(*) FROM ((SELECT * FROM %I WHERE %s EXCEPT ALL SELECT * FROM kmeta_copy WHERE %s)
                    UNION ALL (SELECT * FROM kmeta_copy WHERE %s EXCEPT ALL SELECT * FROM %I WHERE %s)) d',
                   tbl, condition, condition, condition, tbl, condition) INTO diff;
    same_as_full_scan := diff = 0;
    plan := '';
    FOR line IN EXECUTE format('EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM %I WHERE %s', tbl, condition)
    LOOP
        IF line ~ 'Kafka (Ranges|Messages)' THEN
            plan := plan || trim(line) || '; ';
        END IF;
    END LOOP;
    RETURN NEXT;
END
$$;
CREATE FOREIGN TABLE kmeta_ordered (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    k text OPTIONS (key 'true'),
    ts timestamptz OPTIONS (timestamp 'true'),
    h jsonb OPTIONS (headers 'true'),
    t text OPTIONS (topic 'true'),
    name text,
    n int
) SERVER meta_server OPTIONS (topic 'regress_meta', timestamps_ordered 'true');
CREATE TABLE ts_conditions (id serial, condition text);
INSERT INTO ts_conditions (condition) VALUES
    ('ts >= ''2023-11-14 22:13:25+00'''),
    ('ts > ''2023-11-14 22:13:25+00'''),
    ('ts > ''2023-11-14 22:13:24.9995+00'''),
    ('ts < ''2023-11-14 22:13:23+00'''),
    ('ts <= ''2023-11-14 22:13:23+00'''),
    ('ts BETWEEN ''2023-11-14 22:13:22+00'' AND ''2023-11-14 22:13:26+00'''),
    ('ts = ''2023-11-14 22:13:27+00'''),
    ('ts = ''2023-11-14 22:13:27.5+00'''),
    -- Past the newest message: the broker's time index answers "none", nothing is read.
    ('ts >= ''2023-11-15 00:00:00+00'''),
    ('ts < ''2000-01-01 00:00:00+00'''),
    ('ts >= ''2023-11-14 22:13:28+00'' AND part = 1'),
    ('ts >= now() - interval ''100 years''');
SELECT c.id, c.condition, m.* FROM ts_conditions c, meta_check('kmeta', c.condition) m ORDER BY c.id;
SELECT c.id, m.* FROM ts_conditions c, meta_check('kmeta_ordered', c.condition) m ORDER BY c.id;
-- As a parameter of a generic plan.
PREPARE since(timestamptz) AS SELECT n FROM kmeta WHERE ts >= $1 ORDER BY n;
SET plan_cache_mode = force_generic_plan;
EXECUTE since('2023-11-14 22:13:27+00');
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE since('2023-11-14 22:13:27+00');
RESET plan_cache_mode;

-- Compressed topics read exactly, one per codec. Each holds the 5000 rows of numbers.csv.
CREATE FOREIGN TABLE k_gzip (some_int int, some_text text, some_date date, some_time timestamp) SERVER meta_server OPTIONS (topic 'regress_gzip');
CREATE FOREIGN TABLE k_lz4 (some_int int, some_text text, some_date date, some_time timestamp) SERVER meta_server OPTIONS (topic 'regress_lz4');
CREATE FOREIGN TABLE k_zstd (some_int int, some_text text, some_date date, some_time timestamp) SERVER meta_server OPTIONS (topic 'regress_zstd');
CREATE FOREIGN TABLE k_snappy (some_int int, some_text text, some_date date, some_time timestamp) SERVER meta_server OPTIONS (topic 'regress_snappy');
CREATE TABLE numbers_copy (some_int int, some_text text, some_date date, some_time timestamp);
\getenv datadir KAFKA_FDW_REGRESS_DATA
\set file :datadir '/numbers.csv'
COPY numbers_copy FROM :'file' (FORMAT csv);
SELECT codec,
       (SELECT count(*) FROM numbers_copy) AS expected,
       count AS rows,
       differences
FROM (VALUES
    ('gzip', (SELECT count(*) FROM k_gzip), (SELECT count(*) FROM (SELECT * FROM k_gzip EXCEPT ALL SELECT * FROM numbers_copy) d)),
    ('lz4', (SELECT count(*) FROM k_lz4), (SELECT count(*) FROM (SELECT * FROM k_lz4 EXCEPT ALL SELECT * FROM numbers_copy) d)),
    ('zstd', (SELECT count(*) FROM k_zstd), (SELECT count(*) FROM (SELECT * FROM k_zstd EXCEPT ALL SELECT * FROM numbers_copy) d)),
    ('snappy', (SELECT count(*) FROM k_snappy), (SELECT count(*) FROM (SELECT * FROM k_snappy EXCEPT ALL SELECT * FROM numbers_copy) d))
) AS r(codec, count, differences);
