-- Topics as Apache Kafka shapes them (tests/regress/load.sh): compacted, with offset
-- gaps; its oldest segment deleted by retention (log start offset > 0); 100
-- partitions; timestamps by LogAppendTime. Every result is compared with what
-- kafka-tool's librdkafka consumer reads from the same topic ("offset:payload" lines,
-- sorted, joined by |), or with its offsets-for-time.
\getenv brokers KAFKA_BROKERS
SET timezone = 'UTC';
CREATE SERVER shapes_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER shapes_server;

-- Compacted: 346 messages went in, the cleaner left 101 (the latest value of each key,
-- five tombstones, and the last message), at offsets with gaps between them.
CREATE FOREIGN TABLE compacted (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), id text OPTIONS (key 'true'), k int, r int)
SERVER shapes_server OPTIONS (topic 'regress_compacted');
CREATE FOREIGN TABLE compacted_raw (offs bigint OPTIONS (offset 'true'), v text)
SERVER shapes_server OPTIONS (topic 'regress_compacted', format 'raw');
\set reference `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_compacted | awk -F'\t' '{ print $2 ":" $3 }' | LC_ALL=C sort | paste -sd'|'`
SELECT w.low, w.high, count(*) AS messages, w.high - w.low - count(*) AS offsets_missing,
       count(*) FILTER (WHERE v IS NULL) AS tombstones,
       string_agg(offs || ':' || coalesce(v, ''), '|' ORDER BY offs || ':' || coalesce(v, '') COLLATE "C") = :'reference' AS same_as_kafka_tool
FROM compacted_raw, kafka_fdw.watermarks('compacted_raw') w GROUP BY w.low, w.high;
-- The latest value of every key, and nothing older.
SELECT count(*) AS keys, count(*) FILTER (WHERE r = 3) AS third_round, count(*) FILTER (WHERE r = 4) AS fourth_round,
       count(*) FILTER (WHERE k IS NULL) AS deleted, count(DISTINCT id) = count(*) AS one_per_key
FROM compacted;
-- Ranges across the gaps: each returns exactly the messages kafka-tool has there.
SELECT offs, id, k, r FROM compacted WHERE offs BETWEEN 215 AND 225 ORDER BY offs;
SELECT offs, id FROM compacted WHERE offs >= 5 ORDER BY offs LIMIT 3;
SELECT offs, id FROM compacted ORDER BY offs DESC LIMIT 3;
SELECT min(offs), max(offs) FROM compacted;
-- An import reads the gaps through, and the next one resumes after them, exactly once.
CREATE TABLE compacted_copy (offs bigint, id text, k int, r int);
SELECT kafka_fdw.import('compacted', 'compacted_copy');
\! seq 100 109 | awk '{ printf "%d|%d,6\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_compacted --partition 0 --key-delimiter '|' >/dev/null
SELECT kafka_fdw.import('compacted', 'compacted_copy');
SELECT kafka_fdw.import('compacted', 'compacted_copy');
\set reference `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_compacted | awk -F'\t' '{ print $2 }' | LC_ALL=C sort | paste -sd'|'`
SELECT count(*) AS imported, count(DISTINCT offs) AS distinct_offsets,
       string_agg(offs::text, '|' ORDER BY offs::text COLLATE "C") = :'reference' AS same_offsets_as_kafka_tool
FROM compacted_copy;

-- Retention (1 hour): 100 messages stamped 2020, then 100 stamped now in a new segment;
-- the broker deletes the old segment whole, and the log start offset becomes 100.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_retention --partitions 1 --config retention.ms=3600000 --config segment.ms=100 >/dev/null
\! seq 1 100 | awk '{ printf "%d,old %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_retention --partition 0 --timestamp-start 1577836800000 >/dev/null
\! sleep 0.2; seq 101 200 | awk '{ printf "%d,new %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_retention --partition 0 >/dev/null
-- Wait (up to 30 s) for the broker's retention check, which runs every second here.
\! for i in $(seq 150); do [ "$("$KAFKA_TOOL" watermarks --brokers "$KAFKA_BROKERS" --topic regress_retention | cut -f2)" = 100 ] && break; sleep 0.2; done
CREATE FOREIGN TABLE retained (offs bigint OPTIONS (offset 'true'), ts timestamptz OPTIONS (timestamp 'true'), n int, t text)
SERVER shapes_server OPTIONS (topic 'regress_retention');
SELECT * FROM kafka_fdw.watermarks('retained');
\set reference `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_retention | awk -F'\t' '{ print $2 ":" $3 }' | LC_ALL=C sort | paste -sd'|'`
SELECT count(*), min(offs), min(t), max(t),
       string_agg(offs || ':' || n || ',' || t, '|' ORDER BY offs || ':' || n || ',' || t COLLATE "C") = :'reference' AS same_as_kafka_tool
FROM retained;
SELECT count(*) AS below_the_log_start FROM retained WHERE offs < 100;
SELECT count(*) AS from_2020 FROM retained WHERE ts < '2021-01-01';
-- The time index starts at the log start too: a time before everything left gives its
-- first offset, as kafka-tool's lookup does.
\set reference `"$KAFKA_TOOL" offsets-for-time --brokers "$KAFKA_BROKERS" --topic regress_retention --ms 1500000000000 | cut -f2`
SELECT "offset", "offset" = :reference AS same_as_kafka_tool FROM kafka_fdw.offsets_for_time('retained', '2017-07-14 02:40:00+00');

-- An import that had read 30 of the first 100 messages when they were deleted (by
-- DeleteRecords, which moves the log start as retention does, at a moment the test
-- chooses) warns of the 70 it never saw and goes on from the new log start.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_deleted --partitions 1 >/dev/null
\! seq 1 100 | awk '{ printf "%d,first %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_deleted --partition 0 >/dev/null
CREATE FOREIGN TABLE deleted (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text) SERVER shapes_server OPTIONS (topic 'regress_deleted');
CREATE TABLE deleted_copy (offs bigint, n int, t text);
SELECT kafka_fdw.import('deleted', 'deleted_copy', max_messages => 30);
\! seq 101 200 | awk '{ printf "%d,second %d\n", $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_deleted --partition 0 >/dev/null
\! "$KAFKA_TOOL" delete-records --brokers "$KAFKA_BROKERS" --topic regress_deleted --partition 0 --before 100
SELECT * FROM kafka_fdw.watermarks('deleted');
SELECT kafka_fdw.import('deleted', 'deleted_copy');
\set reference `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_deleted | cut -f2 | LC_ALL=C sort | paste -sd'|'`
SELECT count(*) AS imported, count(*) FILTER (WHERE t LIKE 'first %') AS first, count(*) FILTER (WHERE t LIKE 'second %') AS second,
       count(DISTINCT offs) AS distinct_offsets,
       string_agg(offs::text, '|' ORDER BY offs::text COLLATE "C") FILTER (WHERE offs >= 100) = :'reference' AS rest_same_as_kafka_tool
FROM deleted_copy;

-- 100 partitions of 100 messages each.
CREATE FOREIGN TABLE wide (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER shapes_server OPTIONS (topic 'regress_wide');
\set reference `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_wide | awk -F'\t' '{ print $1 ":" $2 ":" $3 }' | LC_ALL=C sort | paste -sd'|'`
SELECT count(*), count(DISTINCT part) AS partitions, sum(n),
       string_agg(part || ':' || offs || ':' || n || ',' || t, '|' ORDER BY part || ':' || offs || ':' || n || ',' || t COLLATE "C") = :'reference' AS same_as_kafka_tool
FROM wide;
SELECT count(*) AS partitions, min(high - low), max(high - low) FROM kafka_fdw.watermarks('wide');
SELECT part, count(*), min(n), max(n) FROM wide WHERE part IN (7, 93) GROUP BY part ORDER BY part;
CREATE TABLE wide_copy (part int, offs bigint, n int, t text);
SELECT kafka_fdw.import('wide', 'wide_copy');
SELECT count(*), count(DISTINCT (part, offs)), count(DISTINCT n) FROM wide_copy;
SELECT count(*) AS partitions_stored, min(next_offset), max(next_offset) FROM kafka_fdw.import_progress WHERE target = 'wide_copy'::regclass;

-- LogAppendTime: the broker's clock, not the producer's 2017, and never decreasing
-- within a partition, so the table may say timestamps_ordered.
CREATE FOREIGN TABLE appended (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'),
                               ts timestamptz OPTIONS (timestamp 'true'), n int, t text)
SERVER shapes_server OPTIONS (topic 'regress_append_time', timestamps_ordered 'true');
SELECT count(*), min(ts) > '2020-01-01' AS stamped_by_the_broker, max(ts) <= now() AS not_in_the_future,
       bool_and(ordered) AS ordered_within_partitions
FROM (SELECT ts, ts >= lag(ts, 1, '-infinity') OVER (PARTITION BY part ORDER BY offs) AS ordered FROM appended) a;
-- The first message of the second batch: every partition's first offset at or after its
-- time is where kafka-tool's lookup says, and bounds on the time read just the batches
-- they select.
SELECT min(ts) AS second_batch, (extract(epoch FROM min(ts)) * 1000)::bigint AS second_batch_ms FROM appended WHERE t = 'batch 1' \gset
\set reference `"$KAFKA_TOOL" offsets-for-time --brokers "$KAFKA_BROKERS" --topic regress_append_time --ms :second_batch_ms | sort -n | awk -F'\t' '{ print $1 ":" $2 }' | paste -sd'|'`
SELECT string_agg(partition || ':' || "offset", '|' ORDER BY partition) = :'reference' AS same_as_kafka_tool,
       bool_and("offset" = 10) AS each_at_offset_10
FROM kafka_fdw.offsets_for_time('appended', :'second_batch');
SELECT t, count(*) FROM appended WHERE ts >= :'second_batch' GROUP BY t ORDER BY t;
SELECT t, count(*) FROM appended WHERE ts < :'second_batch' GROUP BY t ORDER BY t;
SELECT count(*) AS after_the_newest FROM appended WHERE ts > now();
SELECT count(*) FILTER (WHERE "offset" IS NULL) AS partitions_without FROM kafka_fdw.offsets_for_time('appended', now() + interval '1 hour');

DROP TABLE compacted_copy, deleted_copy, wide_copy;
DROP SERVER shapes_server CASCADE;
