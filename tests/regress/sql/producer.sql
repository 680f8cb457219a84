-- INSERT and COPY produce one message per row; the statement ends only after Kafka
-- acknowledged every message.
\getenv brokers KAFKA_BROKERS
\getenv mock_brokers KAFKA_MOCK_BROKERS
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
CREATE SERVER producer_server FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (mpp_execute 'all segments', brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER producer_server;

-- The reference page's INSERT: partitions 0, 1, 0 and 3, and one where Kafka's
-- partitioner puts it.
CREATE FOREIGN TABLE kafka_insert (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
)
SERVER producer_server OPTIONS
    (format 'csv', topic 'regress_insert', batch_size '1000', buffer_delay '1000');
INSERT INTO kafka_insert(part, some_int, some_text)
VALUES
    (0, 5464565, 'some text goes into partition 0'),
    (1, 5464565, 'some text goes into partition 1'),
    (0, 5464565, 'some text goes into partition 0'),
    (3, 5464565, 'some text goes into partition 3'),
    (NULL, 5464565, 'some text goes into partition selected by kafka');
SELECT part, offs, some_int, some_text FROM kafka_insert
WHERE some_text <> 'some text goes into partition selected by kafka' ORDER BY part, offs;
SELECT count(*), min(part) >= 0 AND max(part) <= 3 AS valid_partition FROM kafka_insert
WHERE some_text = 'some text goes into partition selected by kafka';
-- The offset is Kafka's to choose; a partition must exist.
INSERT INTO kafka_insert(part, offs, some_int) VALUES (0, 5, 1);
INSERT INTO kafka_insert(part, some_int) VALUES (7, 1);
EXPLAIN (COSTS OFF) INSERT INTO kafka_insert(part, some_int) VALUES (1, 1);

-- CSV round trip: NULL versus empty string, quotes, delimiters, line breaks, unicode.
CREATE TABLE samples (id int, t text, d date, ts timestamp);
INSERT INTO samples VALUES
    (1, NULL, NULL, NULL),
    (2, '', '2024-02-29', '2024-02-29 23:59:59.999999'),
    (3, 'with, comma', '0001-01-01', '1970-01-01 00:00:00'),
    (4, 'say "hi"', '2000-01-01', '2000-01-01 12:00:00'),
    (5, E'two\nlines\r\nand a tab\t', '2020-05-05', '2020-05-05 05:05:05'),
    (6, 'żółw ✓ 日本 😀', '2021-06-06', '2021-06-06 06:06:06.5'),
    (7, ' spaces ', '2022-07-07', '2022-07-07 07:07:07'),
    (8, '\N', '2023-08-08', '2023-08-08 08:08:08');
CREATE FOREIGN TABLE copy_csv (part int OPTIONS (partition 'true'), id int, t text, d date, ts timestamp)
SERVER producer_server OPTIONS (topic 'regress_copy');
INSERT INTO copy_csv (part, id, t, d, ts) SELECT id % 2, id, t, d, ts FROM samples;
SELECT id, t, t IS NULL AS null_t, d, ts FROM copy_csv ORDER BY id;
SELECT count(*) AS differences FROM (
    (SELECT id, t, d, ts FROM copy_csv EXCEPT ALL SELECT * FROM samples)
    UNION ALL (SELECT * FROM samples EXCEPT ALL SELECT id, t, d, ts FROM copy_csv)) diff;

-- COPY into a foreign table produces too.
\getenv datadir KAFKA_FDW_REGRESS_DATA
\set file :datadir '/values.csv'
CREATE FOREIGN TABLE copy_target (some_int int, some_text text, some_date date, some_time timestamp)
SERVER producer_server OPTIONS (topic 'regress_copy_in');
COPY copy_target FROM :'file' (FORMAT csv);
CREATE TABLE copy_source (LIKE copy_target);
COPY copy_source FROM :'file' (FORMAT csv);
SELECT (SELECT count(*) FROM copy_target) AS produced,
       (SELECT count(*) FROM (SELECT * FROM copy_target EXCEPT ALL SELECT * FROM copy_source) d) AS differences;

-- JSON round trip: numbers and Booleans stay JSON numbers and Booleans, jsonb is
-- embedded, and nested keys build nested objects.
CREATE FOREIGN TABLE json_out (
    part int OPTIONS (partition 'true'),
    id int,
    t text,
    flag boolean,
    amount numeric,
    ratio float8,
    doc jsonb,
    inner_value text OPTIONS (json 'nested.value')
) SERVER producer_server OPTIONS (topic 'regress_insert_json', format 'json');
INSERT INTO json_out (part, id, t, flag, amount, ratio, doc, inner_value) VALUES
    (0, 1, 'plain', true, 12.50, 0.25, '{"a": [1, 2]}', 'deep'),
    (1, 2, '', false, -1, 'NaN', 'null', NULL),
    (0, 3, NULL, NULL, NULL, 'Infinity', NULL, 'x'),
    (1, 4, E'quote " backslash \\ newline \n ✓', true, 1e20, -0.5, '"text"', '');
SELECT id, t, t IS NULL AS null_t, flag, amount, ratio, doc, inner_value FROM json_out ORDER BY id;
CREATE FOREIGN TABLE json_raw_text (offs bigint OPTIONS (offset 'true'), part int OPTIONS (partition 'true'), message text)
SERVER producer_server OPTIONS (topic 'regress_insert_json', format 'raw');
SELECT message FROM json_raw_text ORDER BY part, offs;

-- Key, headers and timestamp columns route into the message, not its payload.
CREATE FOREIGN TABLE meta_out (
    offs bigint OPTIONS (offset 'true'),
    k text OPTIONS (key 'true'),
    h jsonb OPTIONS (headers 'true'),
    ts timestamptz OPTIONS (timestamp 'true'),
    payload text
) SERVER producer_server OPTIONS (topic 'regress_insert_meta', format 'raw');
INSERT INTO meta_out (k, h, ts, payload) VALUES
    ('key-1', '{"source": "sql", "n": 1, "empty": null}', '2024-05-01 10:00:00.123+00', 'first'),
    (NULL, NULL, '2024-05-01 10:00:01+02', 'second'),
    ('key-3', '{}', NULL, 'third');
SELECT offs, k, h, ts, payload FROM meta_out WHERE offs < 2 ORDER BY offs;
SELECT offs, k, h, ts > now() - interval '1 hour' AS recent, payload FROM meta_out WHERE offs = 2;
INSERT INTO meta_out (h, payload) VALUES ('[1, 2]', 'headers must be an object');

-- Faults: a broker that is down, and a broker that refuses every produce request
-- (librdkafka's mock cluster with injected errors). The INSERT fails, and nothing it
-- reported is missing from the topic.
CREATE SERVER dead_producer_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '127.0.0.1:1', timeout_ms '1000');
CREATE USER MAPPING FOR PUBLIC SERVER dead_producer_server;
CREATE FOREIGN TABLE dead_out (part int OPTIONS (partition 'true'), x text) SERVER dead_producer_server OPTIONS (topic 't');
SELECT clock_timestamp() AS started \gset
INSERT INTO dead_out VALUES (0, 'lost'), (0, 'lost too');
SELECT clock_timestamp() - :'started' < interval '5 seconds' AS bounded;
-- Waiting for delivery reports is interruptible.
SET statement_timeout = '500ms';
SELECT clock_timestamp() AS started \gset
INSERT INTO dead_out VALUES (0, 'cancelled');
RESET statement_timeout;
SELECT clock_timestamp() - :'started' < interval '1 second' AS cancelled_in_time;

CREATE SERVER fault_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'mock_brokers', timeout_ms '3000');
CREATE USER MAPPING FOR PUBLIC SERVER fault_server;
CREATE FOREIGN TABLE faults (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), x text)
SERVER fault_server OPTIONS (topic 'regress_faults');
INSERT INTO faults VALUES (0, NULL, 'before');
-- 87 = INVALID_RECORD, which retries cannot fix.
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" request-errors Produce 87 87 87 87 87 87 87 87 87 87
INSERT INTO faults SELECT 0, NULL, 'refused ' || i FROM generate_series(1, 3) i;
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" clear-errors Produce
INSERT INTO faults VALUES (0, NULL, 'after');
SELECT offs, x FROM faults ORDER BY offs;
