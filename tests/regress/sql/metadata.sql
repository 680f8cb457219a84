-- What is in a topic: watermarks, topics, offsets for a time, and IMPORT FOREIGN SCHEMA.
\getenv brokers KAFKA_BROKERS
SET timezone = 'UTC';
CREATE SERVER meta_functions FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER meta_functions;
CREATE FOREIGN TABLE numbers_topic (x text) SERVER meta_functions OPTIONS (topic 'contrib_regress_csv');
CREATE FOREIGN TABLE meta_topic (x text) SERVER meta_functions OPTIONS (topic 'regress_meta');

SELECT * FROM kafka_fdw.watermarks('numbers_topic') ORDER BY partition;
SELECT * FROM kafka_fdw.watermarks('meta_topic') ORDER BY partition;
SELECT * FROM kafka_fdw.topics('meta_functions')
WHERE topic IN ('contrib_regress_csv', 'regress_values', 'regress_empty', 'regress_meta', 'regress_mistyped');
-- Message i of regress_meta has timestamp 2023-11-14 22:13:20 UTC + i seconds, and
-- went to partition i mod 2; two more messages are at 22:15:00 in partition 0.
SELECT * FROM kafka_fdw.offsets_for_time('meta_topic', '2023-11-14 22:13:24+00') ORDER BY partition;
SELECT * FROM kafka_fdw.offsets_for_time('meta_topic', '2023-11-14 22:13:24.5+00') ORDER BY partition;
-- Kafka timestamps are whole milliseconds: the message at 22:13:24 is before 22:13:24.0004.
SELECT * FROM kafka_fdw.offsets_for_time('meta_topic', '2023-11-14 22:13:24.0004+00') ORDER BY partition;
SELECT * FROM kafka_fdw.offsets_for_time('meta_topic', '2000-01-01 00:00:00+00') ORDER BY partition;
SELECT * FROM kafka_fdw.watermarks('pg_class');
SELECT * FROM kafka_fdw.topics('no_such_server');

-- IMPORT FOREIGN SCHEMA: a table per topic (LIMIT TO and EXCEPT filter by topic name),
-- the meta columns partition, offset, key and timestamp, and value columns: JSON keys
-- with the narrowest type the sampled messages allow, CSV fields, or a raw value.
CREATE SCHEMA imported_json;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_json, regress_insert_json, no_such_topic)
FROM SERVER meta_functions INTO imported_json OPTIONS (format 'json', ignore_junk 'true');
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attfdwoptions
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = 'imported_json'::regnamespace AND a.attnum > 0 ORDER BY c.relname, a.attnum;
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'imported_json.regress_json'::regclass;
SET client_min_messages = error;
SELECT "offset", int_val, text_val, date_val FROM imported_json.regress_json ORDER BY "offset";
RESET client_min_messages;
SELECT id, t, flag, amount, doc FROM imported_json.regress_insert_json ORDER BY id;

CREATE SCHEMA imported_csv;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (contrib_regress_csv, regress_values)
FROM SERVER meta_functions INTO imported_csv OPTIONS (sample_size '10');
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
WHERE c.relnamespace = 'imported_csv'::regnamespace AND a.attnum > 0 ORDER BY c.relname, a.attnum;
SELECT count(*), count(DISTINCT field_1), min(field_2) FROM imported_csv.contrib_regress_csv;

CREATE SCHEMA imported_all;
IMPORT FOREIGN SCHEMA kafka EXCEPT (contrib_regress_csv, regress_values)
FROM SERVER meta_functions INTO imported_all OPTIONS (format 'raw');
SELECT count(*) > 10 AS many, bool_and(relname NOT IN ('contrib_regress_csv', 'regress_values')) AS excepted
FROM pg_class WHERE relnamespace = 'imported_all'::regnamespace;
SELECT key, value FROM imported_all.regress_meta WHERE partition = 1 ORDER BY "offset" LIMIT 2;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_meta) FROM SERVER meta_functions INTO imported_all OPTIONS (topic 'x');
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_meta) FROM SERVER meta_functions INTO imported_all OPTIONS (format 'yaml');

-- An unreachable broker is an ERROR within the server's timeout.
CREATE SERVER meta_dead FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '127.0.0.1:1', timeout_ms '500');
CREATE USER MAPPING FOR PUBLIC SERVER meta_dead;
CREATE FOREIGN TABLE dead_topic (x text) SERVER meta_dead OPTIONS (topic 't');
\set VERBOSITY terse
SELECT * FROM kafka_fdw.watermarks('dead_topic');
SELECT * FROM kafka_fdw.topics('meta_dead');
IMPORT FOREIGN SCHEMA kafka FROM SERVER meta_dead INTO imported_all;
\set VERBOSITY default
