-- Tables over many topics: a list (`topics`) or a pattern (`topic_pattern`), the topic
-- column, `topic = …` / `topic IN (…)` pushed down to the topics read, EXPLAIN, INSERT
-- routed by the topic column. Each topic's count comes from kafka-tool, not the FDW.
\getenv brokers KAFKA_BROKERS
CREATE SERVER topics_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER topics_server;

-- Exactly one of topic, topics and topic_pattern; names as Kafka allows them; a valid
-- regular expression.
CREATE FOREIGN TABLE bad (x text) SERVER topics_server;
CREATE FOREIGN TABLE bad (x text) SERVER topics_server OPTIONS (topic 'a', topics 'b,c');
CREATE FOREIGN TABLE bad (x text) SERVER topics_server OPTIONS (topics 'a,,b');
CREATE FOREIGN TABLE bad (x text) SERVER topics_server OPTIONS (topics 'a, b, a');
CREATE FOREIGN TABLE bad (x text) SERVER topics_server OPTIONS (topic 'no spaces');
CREATE FOREIGN TABLE bad (x text) SERVER topics_server OPTIONS (topic_pattern 'regress_(');

-- A list of three topics (2, 1 and 3 partitions).
CREATE FOREIGN TABLE listed (
    topic text OPTIONS (topic 'true'),
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    n int,
    t text
) SERVER topics_server OPTIONS (topics 'regress_many_a, regress_many_b, regress_many_c');
\set count_a `"$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_many_a | cut -d' ' -f1`
\set count_b `"$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_many_b | cut -d' ' -f1`
\set count_c `"$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_many_c | cut -d' ' -f1`
CREATE TABLE kafka_counts (topic text, messages bigint);
INSERT INTO kafka_counts VALUES ('regress_many_a', :count_a), ('regress_many_b', :count_b), ('regress_many_c', :count_c);
-- Every message of every topic, each once, with the topic it came from.
SELECT topic, count(*), count(DISTINCT (part, offs)) AS distinct_messages, min(n), max(n),
       bool_and(t LIKE right(topic, 1) || ' %') AS own_messages
FROM listed GROUP BY topic ORDER BY topic;
SELECT l.topic, l.rows = k.messages AS equals_kafka_tool
FROM (SELECT topic, count(*) AS rows FROM listed GROUP BY topic) l JOIN kafka_counts k USING (topic) ORDER BY 1;
EXPLAIN (COSTS OFF) SELECT * FROM listed;

-- Conditions on the topic read only the topics they leave: EXPLAIN's ranges, and the
-- messages EXPLAIN ANALYZE fetched.
CREATE FUNCTION read_by(condition text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    line text;
BEGIN
    FOR line IN EXECUTE format('EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT * FROM listed WHERE %s', condition)
    LOOP
        IF line ~ 'Kafka (Ranges|Messages)' THEN
            RETURN NEXT trim(line);
        END IF;
    END LOOP;
END
$$;
SELECT read_by($$topic = 'regress_many_b'$$);
SELECT read_by($$topic IN ('regress_many_a', 'regress_not_listed')$$);
SELECT read_by($$(topic = 'regress_many_a' AND part = 1) OR (topic = 'regress_many_c' AND offs >= 4)$$);
SELECT read_by($$topic = 'regress_not_listed'$$);
SELECT read_by($$topic = ANY (ARRAY[NULL, 'regress_many_b'])$$);
-- Not pushed (a pattern, an ordering comparison): every topic is read, rows filtered.
SELECT read_by($$topic LIKE '%_b'$$);
SELECT count(*) FROM listed WHERE topic > 'regress_many_b';
-- The same answers as without pushdown.
SELECT topic, count(*) FROM listed WHERE topic = 'regress_many_b' OR (topic = 'regress_many_c' AND part = 2) GROUP BY 1 ORDER BY 1;
-- A parameter, as a prepared statement or a nested loop gives it.
PREPARE by_topic(text) AS SELECT count(*), min(n) FROM listed WHERE topic = $1;
EXECUTE by_topic('regress_many_c');
EXECUTE by_topic('regress_many_a');
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SELECT k.topic, count(l.n) FROM kafka_counts k JOIN listed l ON l.topic = k.topic WHERE k.topic <> 'regress_many_a' GROUP BY 1 ORDER BY 1;
RESET enable_hashjoin;
RESET enable_mergejoin;

-- A pattern: the topics whose whole name matches when each scan starts.
CREATE FOREIGN TABLE by_pattern (topic text OPTIONS (topic 'true'), n int, t text)
SERVER topics_server OPTIONS (topic_pattern 'regress_many_.*');
EXPLAIN (COSTS OFF) SELECT * FROM by_pattern WHERE topic <> 'regress_many_c';
SELECT topic, count(*), sum(n) FROM by_pattern GROUP BY topic ORDER BY topic;
-- A fifth topic, created after the table, is read by the next scan.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_many_e --partitions 2 >/dev/null
\! printf '31,e 31\n32,e 32\n33,e 33\n34,e 34\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_many_e --round-robin >/dev/null
\set count_e `"$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_many_e | cut -d' ' -f1`
INSERT INTO kafka_counts VALUES ('regress_many_d', 0), ('regress_many_e', :count_e);
SELECT coalesce(p.topic, k.topic) AS topic, coalesce(p.rows, 0) AS rows, k.messages, coalesce(p.rows, 0) = k.messages AS equals_kafka_tool
FROM (SELECT topic, count(*) AS rows FROM by_pattern GROUP BY topic) p FULL JOIN kafka_counts k USING (topic) ORDER BY 1;
SELECT count(*) FROM by_pattern WHERE topic = 'regress_many_e';
-- Whole names only: a pattern naming a prefix matches nothing.
CREATE FOREIGN TABLE by_prefix (n int) SERVER topics_server OPTIONS (topic_pattern 'regress_many');
SELECT count(*) FROM by_prefix;
EXPLAIN (COSTS OFF) SELECT * FROM by_prefix;

-- ANALYZE samples every topic: the row count is the topics' total.
ANALYZE by_pattern;
SELECT reltuples = (SELECT sum(messages) FROM kafka_counts) AS counted_every_topic FROM pg_class WHERE relname = 'by_pattern';

-- A bad message names its topic, partition and offset.
CREATE FOREIGN TABLE mixed (topic text OPTIONS (topic 'true'), a int, b int)
SERVER topics_server OPTIONS (topics 'regress_many_b, regress_mistyped');
SELECT topic, sum(a) FROM mixed GROUP BY topic ORDER BY topic;
SELECT topic, a FROM mixed WHERE topic = 'regress_mistyped' AND b IS NULL;
-- A listed topic that does not exist is an error, as for a table of one topic.
CREATE FOREIGN TABLE missing (n int) SERVER topics_server OPTIONS (topics 'regress_many_a, regress_never_created');
SELECT count(*) FROM missing;

-- INSERT writes each row to the topic its topic column names, one of the table's.
CREATE FOREIGN TABLE routed (topic text OPTIONS (topic 'true'), part int OPTIONS (partition 'true'), n int, t text)
SERVER topics_server OPTIONS (topics 'regress_routed_1,regress_routed_2');
INSERT INTO routed (topic, n, t) VALUES ('regress_routed_1', 1, 'one'), ('regress_routed_2', 2, 'two'), ('regress_routed_2', 3, 'three');
INSERT INTO routed (topic, part, n, t) SELECT 'regress_routed_2', 1, i, 'more' FROM generate_series(4, 6) i;
SELECT topic, n, t FROM routed ORDER BY n;
SELECT n, part FROM routed WHERE n >= 4 ORDER BY n;
\! "$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_routed_1 | cut -d' ' -f1
\! "$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_routed_2 | cut -d' ' -f1
EXPLAIN (COSTS OFF) INSERT INTO routed (topic, n) VALUES ('regress_routed_1', 7);
-- A row without a topic, or with one the table does not have, is an ERROR.
INSERT INTO routed (topic, n) VALUES (NULL, 9);
INSERT INTO routed (topic, n) VALUES ('regress_many_a', 10);
CREATE FOREIGN TABLE routed_by_pattern (topic text OPTIONS (topic 'true'), n int, t text)
SERVER topics_server OPTIONS (topic_pattern 'regress_routed_.*');
INSERT INTO routed_by_pattern VALUES ('regress_routed_1', 11, 'pattern');
INSERT INTO routed_by_pattern VALUES ('regress_many_a', 12, 'not a topic of the pattern');
SELECT topic, n, t FROM routed_by_pattern WHERE n > 10;
-- Without a topic column there is nowhere to send a row.
CREATE FOREIGN TABLE routed_blind (n int) SERVER topics_server OPTIONS (topics 'regress_routed_1,regress_routed_2');
INSERT INTO routed_blind VALUES (1);

-- Imports keep each topic's progress: every message of every topic once, a topic created
-- later from its oldest message, a topic deleted reported while the others go on.
CREATE FOREIGN TABLE many_source (
    topic text OPTIONS (topic 'true'),
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    n int,
    t text
) SERVER topics_server OPTIONS (topic_pattern 'regress_many_.*');
CREATE TABLE many_copy (topic text, part int, offs bigint, n int, t text);
SELECT kafka_fdw.import('many_source', 'many_copy');
SELECT kafka_fdw.import('many_source', 'many_copy');
SELECT topic, count(*), count(DISTINCT (part, offs)) AS distinct_messages FROM many_copy GROUP BY topic ORDER BY topic;
SELECT topic, partition, next_offset, lag FROM kafka_fdw.import_status WHERE target = 'many_copy'::regclass ORDER BY topic, partition;
\! printf '16,b 16\n17,b 17\n18,b 18\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_many_b >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_many_f --partitions 1 >/dev/null
\! printf '40,f 40\n41,f 41\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_many_f >/dev/null
SELECT topic, partition, start_offset, end_offset FROM kafka_fdw.import_plan('many_source', 'many_copy') WHERE start_offset < end_offset ORDER BY topic, partition;
SELECT kafka_fdw.import('many_source', 'many_copy');
\! "$KAFKA_TOOL" delete-topic --brokers "$KAFKA_BROKERS" --topic regress_many_d >/dev/null
\! printf '42,f 42\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_many_f >/dev/null
SELECT kafka_fdw.import('many_source', 'many_copy');
SELECT topic, partition, next_offset FROM kafka_fdw.import_progress WHERE target = 'many_copy'::regclass ORDER BY topic, partition;
-- Exactly once: the copy equals the topics as the scan reads them now.
SELECT (SELECT count(*) FROM many_copy) AS imported, (SELECT count(*) FROM many_source) AS in_topics,
       (SELECT count(*) FROM (SELECT topic, part, offs FROM many_copy EXCEPT SELECT topic, part, offs FROM many_source) extra) AS extra,
       (SELECT count(*) FROM (SELECT DISTINCT topic, part, offs FROM many_copy) d) AS distinct_messages;
-- With group_id, each topic's progress goes to the consumer group (read back per topic).
SELECT kafka_fdw.import('many_source', 'many_copy', group_id => 'regress_many_group');
CREATE FOREIGN TABLE only_a (n int) SERVER topics_server OPTIONS (topic 'regress_many_a');
CREATE FOREIGN TABLE only_f (n int) SERVER topics_server OPTIONS (topic 'regress_many_f');
SELECT 'regress_many_a' AS topic, * FROM kafka_fdw.group_offsets('only_a', 'regress_many_group')
UNION ALL SELECT 'regress_many_f', * FROM kafka_fdw.group_offsets('only_f', 'regress_many_group') ORDER BY 1, 2;
-- A topic of the pattern deleted and created again (fewer messages than were imported):
-- its stored offsets do not fit, an ERROR naming it; on_reset => 'earliest' imports it
-- from its oldest message, the other topics untouched.
\! "$KAFKA_TOOL" delete-topic --brokers "$KAFKA_BROKERS" --topic regress_many_f >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_many_f --partitions 1 >/dev/null
\! printf '50,f 50\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_many_f >/dev/null
SET client_min_messages = error;
\set VERBOSITY terse
SELECT kafka_fdw.import('many_source', 'many_copy');
\set VERBOSITY default
SELECT kafka_fdw.import('many_source', 'many_copy', on_reset => 'earliest');
RESET client_min_messages;
SELECT topic, count(*) FROM many_copy WHERE topic IN ('regress_many_a', 'regress_many_f') GROUP BY topic ORDER BY topic;
SELECT n FROM many_copy WHERE topic = 'regress_many_f' ORDER BY n;
-- A listed topic that does not exist is skipped with a WARNING; a batch reads its topic
-- through the topic column, which such an import needs.
CREATE FOREIGN TABLE listed_source (topic text OPTIONS (topic 'true'), part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int)
SERVER topics_server OPTIONS (topics 'regress_many_b, regress_many_gone');
CREATE TABLE listed_copy (topic text, n int);
SELECT kafka_fdw.import('listed_source', 'listed_copy');
CREATE FOREIGN TABLE blind_source (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int)
SERVER topics_server OPTIONS (topics 'regress_many_a, regress_many_b');
SELECT kafka_fdw.import('blind_source', 'listed_copy');
-- The scan path (not straight to COPY) of a raw source over two topics.
CREATE FOREIGN TABLE raw_source (topic text OPTIONS (topic 'true'), part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), v text)
SERVER topics_server OPTIONS (topics 'regress_routed_1, regress_routed_2', format 'raw');
CREATE TABLE raw_copy (topic text, part int, offs bigint, v text);
SELECT kafka_fdw.import('raw_source', 'raw_copy');
SELECT kafka_fdw.import('raw_source', 'raw_copy');
SELECT topic, count(*), count(DISTINCT (part, offs)) AS distinct_messages FROM raw_copy GROUP BY topic ORDER BY topic;

-- Upsert over two topics, each read in turn (per key, the last message of the topics in
-- their order); a value the target refuses names its topic, partition, offset and column.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_keyed_1 --partitions 1 >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_keyed_2 --partitions 1 >/dev/null
\! printf '1|one,1\n2|two,2\n3|DELETE\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_keyed_1 --key-delimiter '|' --tombstone DELETE >/dev/null
\! printf '1|uno,10\n3|tres,30\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_keyed_2 --key-delimiter '|' --tombstone DELETE >/dev/null
CREATE FOREIGN TABLE keyed_many (
    topic text OPTIONS (topic 'true'),
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    id text OPTIONS (key 'true'),
    name text,
    n text
) SERVER topics_server OPTIONS (topics 'regress_keyed_1, regress_keyed_2');
CREATE TABLE keyed_copy (id int PRIMARY KEY, name text, n int);
SELECT kafka_fdw.import('keyed_many', 'keyed_copy', mode => 'upsert');
SELECT * FROM keyed_copy ORDER BY id;
\! printf '4|four,4\n5|five,not a number\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_keyed_2 --key-delimiter '|' >/dev/null
SELECT kafka_fdw.import('keyed_many', 'keyed_copy', mode => 'upsert');
SELECT * FROM keyed_copy ORDER BY id;

-- A broker 300 ms away (the mock cluster): a pattern table's scan and import give the
-- answers they give at 0 ms; a dead broker is an ERROR within the server's timeout.
\getenv mock_brokers KAFKA_MOCK_BROKERS
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" create-topic regress_slow_1 2
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" create-topic regress_slow_2 1
\! seq 1 20 | awk '{ printf "%d,s %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_MOCK_BROKERS" --topic regress_slow_1 --round-robin >/dev/null
\! seq 21 25 | awk '{ printf "%d,s %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_MOCK_BROKERS" --topic regress_slow_2 >/dev/null
CREATE SERVER topics_slow FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'mock_brokers', timeout_ms '5000');
CREATE USER MAPPING FOR PUBLIC SERVER topics_slow;
CREATE FOREIGN TABLE slow_pattern (topic text OPTIONS (topic 'true'), part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER topics_slow OPTIONS (topic_pattern 'regress_slow_.*');
CREATE TABLE slow_copy (topic text, part int, offs bigint, n int, t text);
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" rtt-all 300
SELECT topic, count(*), sum(n) FROM slow_pattern GROUP BY topic ORDER BY topic;
SELECT count(*) FROM slow_pattern WHERE topic = 'regress_slow_2';
SELECT kafka_fdw.import('slow_pattern', 'slow_copy');
SELECT topic, count(*), count(DISTINCT (part, offs)) FROM slow_copy GROUP BY topic ORDER BY topic;
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" rtt-all 0
CREATE SERVER topics_dead FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '127.0.0.1:1', timeout_ms '1000');
CREATE USER MAPPING FOR PUBLIC SERVER topics_dead;
CREATE FOREIGN TABLE dead_pattern (n int) SERVER topics_dead OPTIONS (topic_pattern 'regress_.*');
SELECT clock_timestamp() AS started \gset
\set VERBOSITY terse
SELECT count(*) FROM dead_pattern;
\set VERBOSITY default
SELECT clock_timestamp() - :'started' < interval '5 seconds' AS bounded;

-- A role without SELECT on a table gets neither its topics' watermarks nor its imports'
-- status.
CREATE ROLE regress_topics_role;
GRANT USAGE ON SCHEMA kafka_fdw TO regress_topics_role;
SET ROLE regress_topics_role;
SELECT * FROM kafka_fdw.topic_watermarks('listed');
SELECT count(*) AS pairs_seen FROM kafka_fdw.import_status WHERE target = 'many_copy'::regclass;
RESET ROLE;
GRANT SELECT ON listed TO regress_topics_role;
SET ROLE regress_topics_role;
SELECT topic, count(*) AS partitions FROM kafka_fdw.topic_watermarks('listed') GROUP BY topic ORDER BY topic;
RESET ROLE;

-- What needs one topic says so.
SELECT * FROM kafka_fdw.watermarks('listed');
SELECT * FROM kafka_fdw.group_offsets('listed', 'g');
-- IMPORT FOREIGN SCHEMA makes tables of one topic each.
CREATE SCHEMA topics_import;
IMPORT FOREIGN SCHEMA kafka FROM SERVER topics_server INTO topics_import OPTIONS (topics 'regress_many_a');

DROP SCHEMA topics_import;
DROP TABLE listed_copy, kafka_counts, many_copy, raw_copy, keyed_copy, slow_copy;
DROP SERVER topics_server, topics_slow, topics_dead CASCADE;
DROP OWNED BY regress_topics_role;
DROP ROLE regress_topics_role;
