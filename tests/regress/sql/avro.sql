-- Avro: Confluent's wire format with a Schema Registry (kafka-tool's, which speaks the
-- registry's REST API), bare Avro with the avro_schema option, every type, two schema
-- versions in one topic, bad messages, and a registry that is down or refuses us.
-- The data was produced by kafka-tool from tests/regress/data/avro_v*.jsonl; the
-- reference rows below are computed from the same JSON lines by PostgreSQL itself.
\getenv brokers KAFKA_BROKERS
\getenv registry KAFKA_REGISTRY_URL
\getenv auth_registry KAFKA_AUTH_REGISTRY_URL
\getenv data KAFKA_FDW_REGRESS_DATA
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
CREATE SERVER avro_server FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (brokers :'brokers', schema_registry :'registry');
CREATE USER MAPPING FOR PUBLIC SERVER avro_server;

-- Every type of version 1, by field name; a nested field by path.
CREATE FOREIGN TABLE avro_events (
    offs bigint OPTIONS (offset 'true'),
    id bigint,
    name text,
    score float8,
    small int,
    ratio real,
    ok boolean,
    raw bytea,
    kind text,
    day date,
    at timestamptz,
    at_ms timestamptz,
    local timestamp,
    clock time,
    price numeric,
    uid uuid,
    tags text[],
    counts bigint[],
    attrs jsonb,
    point jsonb,
    point_y int OPTIONS (field 'point.y'),
    hash bytea,
    choice jsonb
) SERVER avro_server OPTIONS (topic 'regress_avro', format 'avro');

SELECT id, name, score, small, ratio, ok, raw, kind, day, at, at_ms, local, clock, price
FROM avro_events WHERE id <= 3 ORDER BY id;
SELECT id, uid, tags, counts, attrs, point, point_y, hash, choice FROM avro_events WHERE id <= 3 ORDER BY id;

-- The same rows computed from the JSON lines kafka-tool encoded.
CREATE TEMP TABLE avro_lines (doc jsonb);
\set v1_file :data '/avro_v1.jsonl'
COPY avro_lines FROM :'v1_file' WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02');
CREATE TEMP VIEW avro_reference AS
SELECT (doc->>'id')::bigint AS id, doc->>'name' AS name, (doc->>'score')::float8 AS score,
       (doc->>'small')::int AS small, (doc->>'ratio')::real AS ratio, (doc->>'ok')::boolean AS ok,
       convert_to(doc->>'raw', 'LATIN1') AS raw, doc->>'kind' AS kind, (doc->>'day')::date AS day,
       'epoch'::timestamptz + (doc->>'at')::bigint * interval '1 microsecond' AS at,
       'epoch'::timestamptz + (doc->>'at_ms')::bigint * interval '1 millisecond' AS at_ms,
       'epoch'::timestamp + (doc->>'local')::bigint * interval '1 microsecond' AS local,
       '00:00'::time + (doc->>'clock')::bigint * interval '1 microsecond' AS clock,
       (doc->>'price')::numeric AS price, (doc->>'uid')::uuid AS uid,
       ARRAY(SELECT jsonb_array_elements_text(doc->'tags')) AS tags,
       ARRAY(SELECT jsonb_array_elements_text(doc->'counts')::bigint) AS counts,
       doc->'attrs' AS attrs, doc->'point' AS point, (doc->'point'->>'y')::int AS point_y,
       convert_to(doc->>'hash', 'LATIN1') AS hash, nullif(doc->'choice', 'null') AS choice
FROM avro_lines;
SELECT count(*) AS differences FROM (
    (SELECT id, name, score, small, ratio, ok, raw, kind, day, at, at_ms, local, clock, price, uid, tags, counts,
            attrs, point, point_y, hash, choice FROM avro_events WHERE id <= 3
     EXCEPT ALL SELECT * FROM avro_reference)
    UNION ALL
    (SELECT * FROM avro_reference
     EXCEPT ALL SELECT id, name, score, small, ratio, ok, raw, kind, day, at, at_ms, local, clock, price, uid, tags,
            counts, attrs, point, point_y, hash, choice FROM avro_events WHERE id <= 3)
) d;

-- Version 2 of the schema (a field dropped, one added) in the same topic: columns map
-- by field name; a field a message's writer schema lacks is NULL.
SELECT id, name, score, point_y FROM avro_events ORDER BY id;
CREATE FOREIGN TABLE avro_versions (id bigint, email text, score float8)
    SERVER avro_server OPTIONS (topic 'regress_avro', format 'avro');
SELECT * FROM avro_versions ORDER BY id;

-- Defaults for fields a writer lacks: the subject's latest schema (version 2 of
-- regress_avro_evolve-value) is the reader's, so version 1 messages read its defaults
-- (an enum, an int, a date; a null default and a field without one are NULL).
CREATE FOREIGN TABLE avro_evolve (id bigint, name text, tier text, level int, joined date, note text)
    SERVER avro_server OPTIONS (topic 'regress_avro_evolve', format 'avro');
SELECT * FROM avro_evolve ORDER BY id;

-- A table whose only data column is jsonb gets the whole record.
CREATE FOREIGN TABLE avro_whole (doc jsonb) SERVER avro_server OPTIONS (topic 'regress_avro', format 'avro');
SELECT doc->'id' AS id, doc->'point' AS point, doc ? 'email' AS has_email FROM avro_whole ORDER BY 1;

-- Bare Avro (no registry header) with the schema given as a table option.
\set v2_file :data '/avro_event_v2.avsc'
CREATE TEMP TABLE avro_schema_text (schema text);
COPY avro_schema_text FROM :'v2_file' WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02');
SELECT string_agg(schema, e'\n') AS v2 FROM avro_schema_text \gset
CREATE SERVER avro_plain FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER avro_plain;
CREATE FOREIGN TABLE avro_bare (id bigint, name text, x int OPTIONS (field 'point.x'))
    SERVER avro_plain OPTIONS (topic 'regress_avro_bare', format 'avro', avro_schema :'v2');
SELECT * FROM avro_bare ORDER BY id;
-- Writing bare Avro: INSERT and COPY, nested fields by path, email left to its default.
CREATE FOREIGN TABLE avro_bare_out (id bigint, name text, x int OPTIONS (field 'point.x'), y int OPTIONS (field 'point.y'))
    SERVER avro_plain OPTIONS (topic 'regress_avro_bare_out', format 'avro', avro_schema :'v2');
INSERT INTO avro_bare_out VALUES (1, 'one', 10, 20), (2, NULL, -1, 0);
COPY avro_bare_out FROM STDIN;
3	three	2147483647	-2147483648
\.
CREATE FOREIGN TABLE avro_bare_whole (doc jsonb)
    SERVER avro_plain OPTIONS (topic 'regress_avro_bare_out', format 'avro', avro_schema :'v2');
SELECT doc FROM avro_bare_whole ORDER BY doc->'id';
INSERT INTO avro_bare_whole VALUES ('{"id": 4, "point": {"x": 1, "y": 2}, "email": "e@x"}');
INSERT INTO avro_bare_whole VALUES ('{"id": 5, "point": {"x": 1}}');
SELECT * FROM avro_bare_out WHERE id > 3;

-- Options: a schema is needed, must parse, and only goes with format 'avro'.
CREATE FOREIGN TABLE avro_no_schema (id bigint) SERVER avro_plain OPTIONS (topic 't', format 'avro');
CREATE FOREIGN TABLE avro_bad_schema (id bigint) SERVER avro_plain
    OPTIONS (topic 't', format 'avro', avro_schema '{"type": "recrod"}');
CREATE FOREIGN TABLE avro_csv (id bigint) SERVER avro_plain OPTIONS (topic 't', avro_schema :'v2');
CREATE SERVER avro_bad_url FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers', schema_registry 'localhost:8081');
CREATE USER MAPPING FOR CURRENT_USER SERVER avro_server OPTIONS ("schema_registry.username" 'alone');
-- The registry is asked over HTTP from the database server: only superusers point a
-- server at one (as for librdkafka's OAuth token endpoint); credentials are anyone's own.
CREATE ROLE avro_user;
GRANT USAGE ON FOREIGN DATA WRAPPER kafka_fdw TO avro_user;
SET ROLE avro_user;
CREATE SERVER avro_own FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers', schema_registry :'registry');
CREATE SERVER avro_own FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
ALTER SERVER avro_own OPTIONS (ADD schema_registry 'http://127.0.0.1:9');
CREATE USER MAPPING FOR avro_user SERVER avro_own
    OPTIONS ("schema_registry.username" 'me', "schema_registry.password" 'mine');
DROP SERVER avro_own CASCADE;
RESET ROLE;
REVOKE USAGE ON FOREIGN DATA WRAPPER kafka_fdw FROM avro_user;
DROP ROLE avro_user;

-- Producing Avro: INSERT encodes rows with the latest schema of the topic's value
-- subject (regress_avro_out-value holds version 1), framed with its id. The rows
-- kafka-tool wrote, written again by INSERT, read back as the reference.
CREATE FOREIGN TABLE avro_out (
    id bigint, name text, score float8, small int, ratio real, ok boolean, raw bytea, kind text, day date,
    at timestamptz, at_ms timestamptz, local timestamp, clock time, price numeric, uid uuid, tags text[],
    counts bigint[], attrs jsonb, point jsonb, hash bytea, choice jsonb
) SERVER avro_server OPTIONS (topic 'regress_avro_out', format 'avro');
CREATE TEMP TABLE avro_rows AS
SELECT id, name, score, small, ratio, ok, raw, kind, day, at, at_ms, local, clock, price, uid, tags, counts,
       attrs, point, hash, choice
FROM avro_events WHERE id <= 3;
INSERT INTO avro_out SELECT * FROM avro_rows;
SELECT count(*) AS differences FROM (
    (SELECT id, name, score, small, ratio, ok, raw, kind, day, at, at_ms, local, clock, price, uid, tags, counts,
            attrs, point, (point->>'y')::int, hash, choice FROM avro_out
     EXCEPT ALL SELECT * FROM avro_reference)
    UNION ALL
    (SELECT * FROM avro_reference
     EXCEPT ALL SELECT id, name, score, small, ratio, ok, raw, kind, day, at, at_ms, local, clock, price, uid, tags,
            counts, attrs, point, (point->>'y')::int, hash, choice FROM avro_out)
) d;
-- The union ["null", "long", "string"] keeps each value's branch.
SELECT id, choice, jsonb_typeof(choice) FROM avro_out ORDER BY id;
-- A value that does not fit the schema is an ERROR naming the column, before anything
-- is sent: a text that is no enum symbol, too many digits for decimal(20, 4), NULL
-- for a field that is not nullable, a fixed of the wrong size, a map value of the
-- wrong type.
BEGIN;
UPDATE avro_rows SET kind = 'D' WHERE id = 1;
INSERT INTO avro_out SELECT * FROM avro_rows WHERE id = 1;
ROLLBACK;
BEGIN;
UPDATE avro_rows SET price = 1e17 WHERE id = 1;
INSERT INTO avro_out SELECT * FROM avro_rows WHERE id = 1;
ROLLBACK;
INSERT INTO avro_out (id, name) VALUES (4, 'no score');
BEGIN;
UPDATE avro_rows SET hash = '\x00' WHERE id = 1;
INSERT INTO avro_out SELECT * FROM avro_rows WHERE id = 1;
ROLLBACK;
BEGIN;
UPDATE avro_rows SET attrs = '{"a": "x"}' WHERE id = 1;
INSERT INTO avro_out SELECT * FROM avro_rows WHERE id = 1;
ROLLBACK;
SELECT count(*) FROM avro_out;
-- Across types, as PostgreSQL casts them in the session's time zone: a timestamp into
-- timestamp-micros is the instant of that wall clock, a timestamptz into
-- local-timestamp-micros its wall clock.
SET timezone = 'America/New_York';
CREATE FOREIGN TABLE avro_cross (
    id bigint, name text, score float8, small int, ratio real, ok boolean, raw bytea, kind text, day date,
    at timestamp, at_ms timestamptz, local timestamptz, clock time, price numeric, uid uuid, tags text[],
    counts bigint[], attrs jsonb, point jsonb, hash bytea, choice jsonb
) SERVER avro_server OPTIONS (topic 'regress_avro_out', format 'avro');
INSERT INTO avro_cross
SELECT 10, name, score, small, ratio, ok, raw, kind, day, '2024-01-01 12:00', at_ms, '2024-06-01 12:00+00', clock,
       price, uid, tags, counts, attrs, point, hash, choice
FROM avro_rows WHERE id = 1;
SELECT at, local FROM avro_out WHERE id = 10;
SET timezone = 'UTC';
-- No subject for the topic: an ERROR saying so.
CREATE FOREIGN TABLE avro_nowhere (id bigint) SERVER avro_server OPTIONS (topic 'regress_avro_bare_out', format 'avro');
INSERT INTO avro_nowhere VALUES (1);
-- auto_register: a topic without a value subject gets a schema derived from the
-- table's columns, registered by the first INSERT; IMPORT FOREIGN SCHEMA reads it back.
CREATE FOREIGN TABLE avro_auto (
    id bigint NOT NULL, name text, price numeric(8, 2), at timestamptz, day date, tags text[], doc jsonb, ok boolean
) SERVER avro_server OPTIONS (topic 'regress_avro_auto', format 'avro', auto_register 'true');
-- A jsonb column has no field type that reads back as JSON: refused, nothing registered.
INSERT INTO avro_auto (id) VALUES (0);
ALTER FOREIGN TABLE avro_auto DROP COLUMN doc;
INSERT INTO avro_auto VALUES
    (1, 'a', 12.345, '2024-01-01 00:00:00.5+00', '2024-02-29', '{x,NULL}', true),
    (2, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO avro_auto (id) VALUES (3);
SELECT * FROM avro_auto ORDER BY id;
CREATE SCHEMA avro_auto_imported;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_avro_auto) FROM SERVER avro_server INTO avro_auto_imported
    OPTIONS (format 'avro');
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = 'avro_auto_imported' ORDER BY ordinal_position;
DROP SCHEMA avro_auto_imported CASCADE;
CREATE FOREIGN TABLE avro_auto_csv (id bigint) SERVER avro_server OPTIONS (topic 't', auto_register 'true');

-- Bad messages, in one partition: good (offset 0), plain text (1), an unknown schema id
-- (2), a record cut inside a string (3), a record cut inside a number (4), good (5).
-- Fields no column reads are no problem (here: email and point), unless strict.
CREATE FOREIGN TABLE avro_junk (offs bigint OPTIONS (offset 'true'), id bigint, name text)
    SERVER avro_server OPTIONS (topic 'regress_avro_junk', format 'avro');
SELECT * FROM avro_junk WHERE offs IN (0, 5) ORDER BY offs;
SELECT * FROM avro_junk WHERE offs = 1;
SELECT * FROM avro_junk WHERE offs = 2;
SELECT * FROM avro_junk WHERE offs = 3;
SELECT * FROM avro_junk WHERE offs = 4;
ALTER FOREIGN TABLE avro_junk OPTIONS (ADD on_error 'skip');
SELECT * FROM avro_junk ORDER BY offs;
ALTER FOREIGN TABLE avro_junk OPTIONS (DROP on_error);
ALTER FOREIGN TABLE avro_junk ADD COLUMN problem text OPTIONS (junk_error 'true');
SELECT offs, id, name, problem FROM avro_junk ORDER BY offs;
ALTER FOREIGN TABLE avro_junk OPTIONS (ADD strict 'true');
SELECT offs, id, problem FROM avro_junk WHERE offs = 0;

-- An id the registry does not know is believed unknown for a while (10 s): a topic full
-- of messages naming one asks the registry once, however many scans read it meanwhile.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_avro_unknown --partitions 1 >/dev/null
\! seq 1000 | while read -r _; do printf '\000\000\000\003\346\016\n'; done >"$KAFKA_FDW_REGRESS_DATA/avro_unknown.bin"
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_avro_unknown --partition 0 --file "$KAFKA_FDW_REGRESS_DATA/avro_unknown.bin" >/dev/null
CREATE FOREIGN TABLE avro_unknown (id bigint) SERVER avro_server OPTIONS (topic 'regress_avro_unknown', format 'avro', on_error 'skip');
SELECT count(*), count(id) FROM avro_unknown;
SELECT count(*), count(id) FROM avro_unknown;
SELECT count(*), count(id) FROM avro_unknown;
\! if [ -n "$KAFKA_REGISTRY_LOG" ]; then grep -c 'GET /schemas/ids/998 ' "$KAFKA_REGISTRY_LOG"; else echo 'not counted: this registry keeps no log of requests'; fi

-- A registry that is down: an ERROR within timeout_ms, not a hang.
CREATE SERVER avro_down FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (brokers :'brokers', schema_registry 'http://127.0.0.1:9', timeout_ms '2000');
CREATE USER MAPPING FOR PUBLIC SERVER avro_down;
CREATE FOREIGN TABLE avro_unreachable (id bigint) SERVER avro_down OPTIONS (topic 'regress_avro', format 'avro');
SELECT clock_timestamp() AS started \gset
\set VERBOSITY terse
SELECT id FROM avro_unreachable;
\set VERBOSITY default
SELECT clock_timestamp() - :'started' < interval '4 seconds' AS in_time;
-- count(*) decodes nothing, so it needs no schema.
SELECT count(*) FROM avro_unreachable;
-- INSERT asks the registry for the subject's latest schema first: the same ERROR in
-- time, nothing sent.
SELECT clock_timestamp() AS started \gset
\set VERBOSITY terse
INSERT INTO avro_unreachable VALUES (1);
\set VERBOSITY default
SELECT clock_timestamp() - :'started' < interval '4 seconds' AS in_time;

-- A registry that wants credentials: refused without, read with.
CREATE SERVER avro_auth FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers', schema_registry :'auth_registry');
CREATE USER MAPPING FOR PUBLIC SERVER avro_auth;
CREATE FOREIGN TABLE avro_guarded (id bigint) SERVER avro_auth OPTIONS (topic 'regress_avro', format 'avro');
\set VERBOSITY terse
SELECT id FROM avro_guarded ORDER BY id;
CREATE USER MAPPING FOR CURRENT_USER SERVER avro_auth
    OPTIONS ("schema_registry.username" 'reader', "schema_registry.password" 'wrong');
SELECT id FROM avro_guarded ORDER BY id;
\set VERBOSITY default
ALTER USER MAPPING FOR CURRENT_USER SERVER avro_auth OPTIONS (SET "schema_registry.password" 'secret');
SELECT id FROM avro_guarded ORDER BY id;

-- A registry over HTTPS with its own certificate: refused unless trusted through
-- schema_registry.ca.pem (the server's, or a user mapping's, which replaces it).
\getenv tls_registry KAFKA_TLS_REGISTRY_URL
\set registry_ca `cat "$KAFKA_TLS_REGISTRY_CA"`
\set untrusted_ca `cat "$KAFKA_UNTRUSTED_CA"`
CREATE SERVER avro_tls FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers', schema_registry :'tls_registry');
CREATE USER MAPPING FOR PUBLIC SERVER avro_tls;
CREATE FOREIGN TABLE avro_over_tls (id bigint) SERVER avro_tls OPTIONS (topic 'regress_avro', format 'avro');
\set VERBOSITY terse
SELECT id FROM avro_over_tls ORDER BY id;
\set VERBOSITY default
ALTER SERVER avro_tls OPTIONS (ADD "schema_registry.ca.pem" :'registry_ca');
SELECT id FROM avro_over_tls ORDER BY id;
CREATE USER MAPPING FOR CURRENT_USER SERVER avro_tls OPTIONS ("schema_registry.ca.pem" :'untrusted_ca');
\set VERBOSITY terse
SELECT id FROM avro_over_tls ORDER BY id;
\set VERBOSITY default
ALTER USER MAPPING FOR CURRENT_USER SERVER avro_tls OPTIONS (SET "schema_registry.ca.pem" 'not a certificate');
DROP SERVER avro_tls CASCADE;

-- IMPORT FOREIGN SCHEMA of Avro topics: the columns of the latest schema of the topic's
-- value subject (regress_avro-value: version 2); a topic without a subject
-- (regress_avro_bare) gets the whole record as jsonb.
CREATE SCHEMA avro_imported;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_avro, regress_avro_bare) FROM SERVER avro_server INTO avro_imported
    OPTIONS (format 'avro');
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'avro_imported' ORDER BY table_name, ordinal_position;
SELECT id, name, email, point FROM avro_imported.regress_avro ORDER BY id;
-- Without options the registry decides: regress_avro has an Avro value subject, so its
-- table gets format 'avro' and the same columns as above, and reads the same rows;
-- regress_avro_bare has no subject and is imported as any topic (CSV, the default). No
-- key subject: the key stays text.
CREATE SCHEMA avro_found;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_avro, regress_avro_bare) FROM SERVER avro_server INTO avro_found;
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'avro_found' ORDER BY table_name, ordinal_position;
SELECT foreign_table_name, option_name, option_value FROM information_schema.foreign_table_options
WHERE foreign_table_schema = 'avro_found' ORDER BY 1, 2;
(SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'avro_found' AND table_name = 'regress_avro'
 EXCEPT SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'avro_imported' AND table_name = 'regress_avro')
UNION ALL
(SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'avro_imported' AND table_name = 'regress_avro'
 EXCEPT SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'avro_found' AND table_name = 'regress_avro');
SELECT count(*) AS rows, count(DISTINCT (f.*)::text) AS distinct_rows FROM avro_found.regress_avro f;
(SELECT * FROM avro_found.regress_avro EXCEPT ALL SELECT * FROM avro_imported.regress_avro)
UNION ALL
(SELECT * FROM avro_imported.regress_avro EXCEPT ALL SELECT * FROM avro_found.regress_avro);
-- A format the import names wins over the registry's.
CREATE SCHEMA avro_named;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_avro) FROM SERVER avro_server INTO avro_named OPTIONS (format 'raw');
SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'avro_named' ORDER BY ordinal_position;
SELECT count(*) FROM avro_named.regress_avro WHERE get_byte(value, 0) = 0;
DROP SCHEMA avro_found, avro_named CASCADE;

DROP SCHEMA avro_imported CASCADE;
DROP SERVER avro_server, avro_plain, avro_down, avro_auth CASCADE;
