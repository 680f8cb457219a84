-- Partition and offset conditions become per-partition offset ranges: EXPLAIN shows
-- them ("Kafka Ranges", half-open), EXPLAIN ANALYZE what was fetched, and every result
-- equals that of a full scan followed by the same filter (a heap copy of the topic).
\getenv brokers KAFKA_BROKERS
CREATE SERVER pushdown_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER pushdown_server;
CREATE FOREIGN TABLE kt (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text
) SERVER pushdown_server OPTIONS (topic 'contrib_regress_csv');
CREATE TABLE kt_copy AS SELECT * FROM kt;
SELECT count(*) FROM kt_copy;

CREATE FUNCTION same_as_full_scan(condition text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    extra bigint;
    missing bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM (SELECT * FROM kt WHERE %s EXCEPT ALL SELECT * FROM kt_copy WHERE %s) d',
                   condition, condition) INTO extra;
    EXECUTE format('SELECT count(*) FROM (SELECT * FROM kt_copy WHERE %s EXCEPT ALL SELECT * FROM kt WHERE %s) d',
                   condition, condition) INTO missing;
    RETURN CASE WHEN extra = 0 AND missing = 0 THEN 'same'
                ELSE format('DIFFERS: %s extra rows, %s missing', extra, missing) END;
END
$$;

CREATE FUNCTION ranges_of(condition text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE format('EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM kt WHERE %s', condition)
    LOOP
        IF line ~ 'Kafka (Ranges|Messages)' THEN
            RETURN NEXT trim(line);
        END IF;
    END LOOP;
END
$$;

CREATE TABLE shapes (id serial, condition text);
INSERT INTO shapes (condition) VALUES
    ('part = 0 AND offs > 1000'),
    ('(part = 0 AND offs > 100) OR (part = 1 AND offs > 300) OR (part = 3 AND offs > 700)'),
    ('part = 2 AND offs = 17'),
    ('2 = part AND 17 = offs'),
    ('part < 2 AND offs < 3'),
    ('part <= 1 AND offs <= 2'),
    ('part > 2 AND offs >= 1248'),
    ('offs BETWEEN 10 AND 12'),
    ('part BETWEEN 1 AND 2 AND offs BETWEEN 1240 AND 1300'),
    ('part IN (1, 3) AND offs IN (5, 7, 1249, 99999)'),
    ('part = ANY (ARRAY[0, 2]) AND offs = ANY (ARRAY[1, NULL, 3]::bigint[])'),
    ('(offs < 2 OR offs > 1247) AND part = 1'),
    ('((part = 0 OR part = 1) AND (offs < 1 OR (offs > 5 AND offs < 7))) OR (part = 3 AND offs = 0)'),
    ('part = 0 AND part = 1'),
    ('part = 9'),
    ('offs > 1249'),
    ('offs = NULL'),
    ('part = 1 AND offs > 1240 AND some_int > 0'),
    ('(part = 0 AND offs > 1245) OR some_int = 5'),
    ('NOT (part = 0) AND offs < 1'),
    ('part::bigint = 1::bigint AND offs < 2::smallint'),
    ('offs > 1248 OR offs < 1'),
    ('part = 0 AND offs > 1248.5');
SELECT id, condition, same_as_full_scan(condition) FROM shapes ORDER BY id;
SELECT id, ranges_of(condition) FROM shapes ORDER BY id;

-- A prepared statement: custom plans first, then the generic plan (executed 7 times),
-- whose ranges come from the parameters when the scan starts.
PREPARE point(int, bigint) AS SELECT part, offs, some_int FROM kt WHERE part = $1 AND offs = $2;
EXECUTE point(0, 1);
EXECUTE point(1, 2);
EXECUTE point(2, 3);
EXECUTE point(3, 4);
EXECUTE point(0, 5);
EXECUTE point(1, 6);
EXECUTE point(2, 7);
SET plan_cache_mode = force_generic_plan;
EXPLAIN (COSTS OFF) EXECUTE point(3, 8);
EXECUTE point(3, 8);
EXECUTE point(0, 1249);
EXECUTE point(0, 1250);
EXECUTE point(NULL, 1);
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE point(1, 1000);
PREPARE parts(int[]) AS SELECT part, count(*) FROM kt WHERE part = ANY ($1) AND offs < 10 GROUP BY part ORDER BY part;
EXECUTE parts(ARRAY[1, 3]);
EXECUTE parts(ARRAY[]::int[]);
RESET plan_cache_mode;
-- A plan without its parameters' values (GENERIC_PLAN, new in PostgreSQL 16) has its
-- ranges chosen when a scan starts.
EXPLAIN (GENERIC_PLAN, COSTS OFF) SELECT * FROM kt WHERE part = $1 AND offs < 5;

-- One partition's messages come in offset order either way, so max(), min() and
-- ORDER BY offs [DESC] LIMIT read only the messages they return.
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT max(offs) FROM kt WHERE part = 1;
SELECT max(offs), min(offs) FROM kt WHERE part = 1;
SELECT max(offs), min(offs) FROM kt_copy WHERE part = 1;
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT offs, some_int FROM kt WHERE part = 3 ORDER BY offs DESC LIMIT 5;
SELECT offs, some_int FROM kt WHERE part = 3 AND offs BETWEEN 100 AND 1000 ORDER BY offs DESC LIMIT 5;
SELECT offs, some_int FROM kt_copy WHERE part = 3 AND offs BETWEEN 100 AND 1000 ORDER BY offs DESC LIMIT 5;
SELECT count(*) AS differences FROM (
    SELECT offs, row_number() OVER () FROM (SELECT offs FROM kt WHERE part = 0 ORDER BY offs DESC) a
    EXCEPT SELECT offs, row_number() OVER () FROM (SELECT offs FROM kt_copy WHERE part = 0 ORDER BY offs DESC) b) d;

-- A correlated subquery over partitions: each loop reads only its partition.
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT p, (SELECT count(*) FROM kt WHERE kt.part = p AND kt.offs < 5) FROM generate_series(0, 4) p;
SELECT p, (SELECT sum(some_int) FROM kt WHERE kt.part = p AND kt.offs < 5) FROM generate_series(0, 4) p;
SELECT p, (SELECT sum(some_int) FROM kt_copy WHERE kt_copy.part = p AND kt_copy.offs < 5) FROM generate_series(0, 4) p;

-- A parameterized nested loop: the join clause on the partition column is pushed, so
-- each loop reads one partition.
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT v.p, count(*) FROM (VALUES (1), (3)) v(p) JOIN kt ON kt.part = v.p GROUP BY v.p;
SELECT v.p, count(*), sum(kt.some_int) FROM (VALUES (1), (3)) v(p) JOIN kt ON kt.part = v.p GROUP BY v.p ORDER BY 1;
SELECT v.p, count(*), sum(kt_copy.some_int) FROM (VALUES (1), (3)) v(p) JOIN kt_copy ON kt_copy.part = v.p GROUP BY v.p ORDER BY 1;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;

-- Randomly generated WHERE clauses (AND/OR trees of comparisons, IN lists and an
-- unpushable clause) give the same rows as the full scan.
CREATE FUNCTION random_condition(depth int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    column_name text := CASE WHEN random() < 0.4 THEN 'part' ELSE 'offs' END;
    bound int := CASE WHEN column_name = 'part' THEN floor(random() * 6)::int - 1
                      ELSE floor(random() * 1260)::int - 5 END;
    choice float := random();
BEGIN
    IF depth > 0 AND choice < 0.35 THEN
        RETURN format('(%s %s %s)', random_condition(depth - 1),
                      CASE WHEN random() < 0.5 THEN 'AND' ELSE 'OR' END, random_condition(depth - 1));
    ELSIF choice < 0.45 THEN
        RETURN format('%s IN (%s, %s)', column_name, bound, bound + floor(random() * 3)::int);
    ELSIF choice < 0.5 THEN
        RETURN format('some_int %% 7 = %s', floor(random() * 7)::int);
    END IF;
    RETURN format('%s %s %s', column_name, (ARRAY['=', '<', '<=', '>', '>='])[1 + floor(random() * 5)::int], bound);
END
$$;
SELECT setseed(0.42);
CREATE TABLE random_conditions AS SELECT i, random_condition(3) AS condition FROM generate_series(1, 150) i;
SELECT count(*) AS conditions, count(*) FILTER (WHERE same_as_full_scan(condition) = 'same') AS same_as_full_scan
FROM random_conditions;
