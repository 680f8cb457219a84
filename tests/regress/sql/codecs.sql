-- Row codecs: CSV options, JSON mapping, raw payloads, and every outcome for bad
-- messages: the default error, strict, ignore_junk, junk/junk_error columns, and
-- on_error 'skip'.
\getenv brokers KAFKA_BROKERS
SET datestyle = 'ISO, YMD';
CREATE SERVER codec_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER codec_server;

-- The CSV topic: good lines mixed with an extra field, missing fields, an invalid date,
-- an unterminated quote, an out-of-range integer and invalid UTF-8.
CREATE FOREIGN TABLE junk_csv (
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
) SERVER codec_server OPTIONS (topic 'regress_junk');

-- Default: each bad message raises an ERROR naming topic, partition and offset, with
-- the column and the message in the DETAIL. (Fewer or more fields than columns are
-- fine without strict.)
SELECT * FROM junk_csv WHERE offs IN (0, 1, 2, 7) ORDER BY offs;
SELECT * FROM junk_csv WHERE offs = 3;
SELECT * FROM junk_csv WHERE offs = 4;
SELECT * FROM junk_csv WHERE offs = 5;
SELECT * FROM junk_csv WHERE offs = 6;
-- Only the columns a query reads are converted.
SELECT offs, some_text FROM junk_csv WHERE offs IN (3, 5) ORDER BY offs;

-- strict: the field count must match.
ALTER FOREIGN TABLE junk_csv OPTIONS (ADD strict 'true');
SELECT * FROM junk_csv WHERE offs = 1;
SELECT * FROM junk_csv WHERE offs = 2;
SELECT * FROM junk_csv WHERE offs = 0;
ALTER FOREIGN TABLE junk_csv OPTIONS (DROP strict);

-- ignore_junk: nothing raises; what cannot be read is NULL, and a WARNING counts the
-- messages affected, once per scan. The fields before an unterminated quote are kept
-- (offset 4 keeps 401), as adjust/kafka_fdw keeps them.
ALTER FOREIGN TABLE junk_csv OPTIONS (ADD ignore_junk 'true');
SELECT * FROM junk_csv ORDER BY offs;
ALTER FOREIGN TABLE junk_csv OPTIONS (DROP ignore_junk);

-- junk and junk_error columns: bad messages don't raise; the columns hold the payload
-- and the problems (one per line) of every message that had one, NULL otherwise, and
-- the fields that did convert are still filled.
CREATE FOREIGN TABLE junk_csv_collect (
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp,
    junk text OPTIONS (junk 'true'),
    junk_err text OPTIONS (junk_error 'true')
) SERVER codec_server OPTIONS (topic 'regress_junk');
\x on
SELECT offs, some_int, some_text, some_date, some_time, junk, string_to_array(junk_err, E'\n') AS problems
FROM junk_csv_collect ORDER BY offs;
\x off
-- Routing bad messages to an error table.
CREATE TABLE bad_messages AS SELECT offs, junk, junk_err FROM junk_csv_collect WHERE junk IS NOT NULL;
SELECT offs FROM bad_messages ORDER BY offs;

-- on_error 'skip': bad messages give no row, counted in a WARNING.
CREATE FOREIGN TABLE junk_csv_skip (
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
) SERVER codec_server OPTIONS (topic 'regress_junk', on_error 'skip', strict 'true');
SELECT * FROM junk_csv_skip ORDER BY offs;
-- Skipping judges every column, whatever the query reads.
SELECT count(*) FROM junk_csv_skip;
-- A type whose input runs SQL (a domain whose CHECK calls PL/pgSQL, which reads a
-- table through SPI and raises): its errors are caught inside a subtransaction, which
-- releases what the failed call held; the scan goes on and the session stays sound.
CREATE TABLE codec_limits (max_value int);
INSERT INTO codec_limits VALUES (500);
CREATE FUNCTION codec_within_limit(v int) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
    IF v > (SELECT max_value FROM codec_limits) THEN
        RAISE EXCEPTION 'value % is over the limit', v;
    END IF;
    RETURN true;
END
$$;
CREATE DOMAIN limited_int AS int CHECK (codec_within_limit(VALUE));
CREATE FOREIGN TABLE junk_domain_skip (
    offs bigint OPTIONS (offset 'true'),
    some_int limited_int,
    some_text text
) SERVER codec_server OPTIONS (topic 'regress_junk', on_error 'skip');
SELECT * FROM junk_domain_skip ORDER BY offs;
CREATE FOREIGN TABLE junk_domain_collect (
    offs bigint OPTIONS (offset 'true'),
    some_int limited_int,
    junk_err text OPTIONS (junk_error 'true')
) SERVER codec_server OPTIONS (topic 'regress_junk');
SELECT offs, some_int, junk_err FROM junk_domain_collect ORDER BY offs;
-- Without bad-message handling the domain's error is the query's, as for COPY.
CREATE FOREIGN TABLE junk_domain (offs bigint OPTIONS (offset 'true'), some_int limited_int)
SERVER codec_server OPTIONS (topic 'regress_junk');
SELECT * FROM junk_domain WHERE offs = 7;
SELECT count(*) AS relation_locks_left FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'codec_limits'::regclass;
CREATE FOREIGN TABLE bad (j text OPTIONS (junk 'true')) SERVER codec_server OPTIONS (topic 't', on_error 'skip');
CREATE FOREIGN TABLE bad (x text) SERVER codec_server OPTIONS (topic 't', ignore_junk 'true', on_error 'skip');

-- JSON: columns by name or by the json option (a key, a dotted path, or a JSON
-- Pointer); nested values fill json/jsonb columns; missing keys and null are NULL.
CREATE FOREIGN TABLE junk_json (
    offs bigint OPTIONS (offset 'true'),
    int_val int,
    text_val text,
    some_date date OPTIONS (json 'date_val'),
    deep_n int OPTIONS (json 'nested.deep.n'),
    deep jsonb OPTIONS (json '/nested/deep'),
    list json,
    missing text
) SERVER codec_server OPTIONS (topic 'regress_json', format 'json');
SELECT * FROM junk_json WHERE offs IN (0, 1, 7) ORDER BY offs;
SELECT * FROM junk_json WHERE offs = 2;
SELECT * FROM junk_json WHERE offs = 3;
SELECT * FROM junk_json WHERE offs = 4;
SELECT * FROM junk_json WHERE offs = 5;
SELECT * FROM junk_json WHERE offs = 6;
ALTER FOREIGN TABLE junk_json OPTIONS (ADD strict 'true');
SELECT offs, int_val FROM junk_json WHERE offs = 1;
ALTER FOREIGN TABLE junk_json OPTIONS (DROP strict, ADD ignore_junk 'true');
SELECT offs, int_val, text_val, some_date, deep_n FROM junk_json ORDER BY offs;
CREATE FOREIGN TABLE junk_json_collect (
    offs bigint OPTIONS (offset 'true'),
    int_val int,
    text_val text,
    date_val date,
    junk text OPTIONS (junk 'true'),
    junk_err text OPTIONS (junk_error 'true')
) SERVER codec_server OPTIONS (topic 'regress_json', format 'json');
SELECT offs, int_val, text_val, date_val, junk IS NOT NULL AS is_junk, junk_err FROM junk_json_collect ORDER BY offs;
-- A lone jsonb data column receives the whole message.
CREATE FOREIGN TABLE json_whole (offs bigint OPTIONS (offset 'true'), doc jsonb)
SERVER codec_server OPTIONS (topic 'regress_json', format 'json', ignore_junk 'true');
SELECT offs, doc->>'text_val' AS text_val, jsonb_typeof(doc) FROM json_whole ORDER BY offs;

-- raw: the whole message in one text or bytea column.
CREATE FOREIGN TABLE raw_text (offs bigint OPTIONS (offset 'true'), line text)
SERVER codec_server OPTIONS (topic 'regress_junk', format 'raw');
CREATE FOREIGN TABLE raw_bytes (offs bigint OPTIONS (offset 'true'), line bytea)
SERVER codec_server OPTIONS (topic 'regress_junk', format 'raw');
SELECT * FROM raw_text WHERE offs < 2 ORDER BY offs;
SELECT * FROM raw_text WHERE offs = 6;
SELECT offs, length(line), substr(line, 17, 4) FROM raw_bytes WHERE offs = 6;
CREATE FOREIGN TABLE bad (a text, b text) SERVER codec_server OPTIONS (topic 't', format 'raw');
CREATE FOREIGN TABLE bad (a int OPTIONS (json 'x')) SERVER codec_server OPTIONS (topic 't', format 'csv');

-- CSV options, as in COPY: delimiter, quote, escape and the NULL string.
CREATE FOREIGN TABLE semicolons (offs bigint OPTIONS (offset 'true'), a text, b text)
SERVER codec_server OPTIONS (topic 'regress_junk', quote '''', escape '\', null 'correct line');
SELECT offs, a, b, b IS NULL AS b_null FROM semicolons WHERE offs IN (0, 4, 7) ORDER BY offs;
CREATE FOREIGN TABLE bad (a text) SERVER codec_server OPTIONS (topic 't', delimiter ';;');
CREATE FOREIGN TABLE bad (a text) SERVER codec_server OPTIONS (topic 't', delimiter '"');

-- A topic of random bytes, through every format and bad-message mode: errors are clean,
-- and nothing crashes.
CREATE FOREIGN TABLE garbage_csv (a int, b text, c date) SERVER codec_server OPTIONS (topic 'regress_garbage');
CREATE FOREIGN TABLE garbage_json (a int, b text, c date) SERVER codec_server OPTIONS (topic 'regress_garbage', format 'json');
\set VERBOSITY terse
SELECT count(*) > 0 AS read_something FROM garbage_csv WHERE b IS NOT NULL;
SELECT count(*) FROM garbage_json WHERE b IS NOT NULL;
\set VERBOSITY default
ALTER FOREIGN TABLE garbage_csv OPTIONS (ADD ignore_junk 'true');
ALTER FOREIGN TABLE garbage_json OPTIONS (ADD on_error 'skip');
SET client_min_messages = error;
SELECT count(*) AS garbage_messages FROM garbage_csv;
SELECT count(*) FROM garbage_csv WHERE a IS NOT NULL OR b IS NOT NULL OR c IS NOT NULL;
SELECT count(*) AS clean_json_messages FROM garbage_json;
RESET client_min_messages;
