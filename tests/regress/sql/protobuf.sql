-- Protobuf: Confluent's wire format with a Schema Registry (kafka-tool's, which speaks
-- the registry's REST API): every type, a schema that imports another registered
-- schema (a reference) and Google's well-known types, two message types of one schema
-- in one topic, bad messages. The data was produced by kafka-tool from
-- tests/regress/data/protobuf_orders.jsonl; the reference rows below are computed from
-- the same JSON lines by PostgreSQL itself.
\getenv brokers KAFKA_BROKERS
\getenv registry KAFKA_REGISTRY_URL
\getenv data KAFKA_FDW_REGRESS_DATA
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
CREATE SERVER proto_server FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (brokers :'brokers', schema_registry :'registry');
CREATE USER MAPPING FOR PUBLIC SERVER proto_server;

-- Every type, by field name; nested fields by path (through the imported Money type).
CREATE FOREIGN TABLE proto_orders (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    id bigint,
    customer text,
    total float8,
    ratio real,
    paid boolean,
    raw bytea,
    status text,
    at timestamptz,
    tags text[],
    counts bigint[],
    attrs jsonb,
    first jsonb,
    first_sku text OPTIONS (field 'first.sku'),
    lines jsonb,
    price_units bigint OPTIONS (field 'price.units'),
    note text,
    maybe bigint,
    big numeric,
    delta int
) SERVER proto_server OPTIONS (topic 'regress_protobuf', format 'protobuf');

SELECT id, customer, total, ratio, paid, raw, status, at, tags, counts FROM proto_orders WHERE part = 0 ORDER BY id;
SELECT id, attrs, first, first_sku, lines, price_units, note, maybe, big, delta FROM proto_orders WHERE part = 0 ORDER BY id;

-- The same rows computed from the JSON lines kafka-tool encoded (Protobuf's JSON
-- mapping: bytes in base64, an absent proto3 scalar is its default, an absent
-- message or optional field is unset).
CREATE TEMP TABLE proto_lines (doc jsonb);
\set orders_file :data '/protobuf_orders.jsonl'
COPY proto_lines FROM :'orders_file' WITH (FORMAT csv, QUOTE e'\x01', DELIMITER e'\x02');
CREATE TEMP VIEW proto_reference AS
SELECT (doc->>'id')::bigint AS id, coalesce(doc->>'customer', '') AS customer,
       coalesce((doc->>'total')::float8, 0) AS total, coalesce((doc->>'ratio')::real, 0) AS ratio,
       coalesce((doc->>'paid')::boolean, false) AS paid, decode(coalesce(doc->>'raw', ''), 'base64') AS raw,
       coalesce(doc->>'status', 'NEW') AS status, (doc->>'at')::timestamptz AS at,
       ARRAY(SELECT jsonb_array_elements_text(coalesce(doc->'tags', '[]'))) AS tags,
       ARRAY(SELECT jsonb_array_elements_text(coalesce(doc->'counts', '[]'))::bigint) AS counts,
       coalesce(doc->'attrs', '{}') AS attrs, doc->'first' AS first, doc->'first'->>'sku' AS first_sku,
       coalesce(doc->'lines', '[]') AS lines, (doc->'price'->>'units')::bigint AS price_units,
       doc->>'note' AS note, (doc->>'maybe')::bigint AS maybe, coalesce((doc->>'big')::numeric, 0) AS big,
       coalesce((doc->>'delta')::int, 0) AS delta
FROM proto_lines;
SELECT count(*) AS differences FROM (
    (SELECT id, customer, total, ratio, paid, raw, status, at, tags, counts, attrs, first, first_sku, lines,
            price_units, note, maybe, big, delta FROM proto_orders WHERE part = 0
     EXCEPT ALL SELECT * FROM proto_reference)
    UNION ALL
    (SELECT * FROM proto_reference
     EXCEPT ALL SELECT id, customer, total, ratio, paid, raw, status, at, tags, counts, attrs, first, first_sku,
            lines, price_units, note, maybe, big, delta FROM proto_orders WHERE part = 0)
) d;

-- The Audit message (the schema's first type) in partition 1: its one field, no Order fields.
CREATE FOREIGN TABLE proto_any (part int OPTIONS (partition 'true'), id bigint, who text)
    SERVER proto_server OPTIONS (topic 'regress_protobuf', format 'protobuf');
SELECT * FROM proto_any ORDER BY part, id;

-- A table whose only data column is jsonb gets the whole message, every field.
CREATE FOREIGN TABLE proto_whole (doc jsonb) SERVER proto_server OPTIONS (topic 'regress_protobuf', format 'protobuf');
SELECT doc->'id' AS id, doc->'at' AS at, doc->'price' AS price, doc->'note' AS note FROM proto_whole
WHERE doc ? 'id' ORDER BY 1;

-- Options: the registry is needed; protobuf_message is a full name, for protobuf only.
CREATE SERVER proto_plain FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE FOREIGN TABLE proto_no_registry (id bigint) SERVER proto_plain OPTIONS (topic 't', format 'protobuf');
CREATE FOREIGN TABLE proto_given (id bigint) SERVER proto_server
    OPTIONS (topic 't', format 'protobuf', avro_schema '"long"');
CREATE FOREIGN TABLE proto_bad_name (id bigint) SERVER proto_server
    OPTIONS (topic 't', format 'protobuf', protobuf_message 'shop Order');
CREATE FOREIGN TABLE proto_not_proto (id bigint) SERVER proto_server
    OPTIONS (topic 't', protobuf_message 'shop.Order');

-- Producing Protobuf: INSERT encodes rows with the latest schema of the topic's value
-- subject, as the message type protobuf_message names (Order, the schema's second:
-- framed with indexes [1]). The rows kafka-tool wrote, written again by INSERT, read
-- back as the reference.
CREATE FOREIGN TABLE proto_out (
    id bigint, customer text, total float8, ratio real, paid boolean, raw bytea, status text, at timestamptz,
    tags text[], counts bigint[], attrs jsonb, first jsonb, lines jsonb, note text, maybe bigint, big numeric,
    delta int
) SERVER proto_server OPTIONS (topic 'regress_protobuf_out', format 'protobuf', protobuf_message 'shop.Order');
INSERT INTO proto_out
SELECT id, customer, total, ratio, paid, raw, status, at, tags, counts, attrs, first, lines, note, maybe, big, delta
FROM proto_orders WHERE part = 0;
SELECT count(*) AS differences FROM (
    (SELECT * FROM proto_out
     EXCEPT ALL SELECT id, customer, total, ratio, paid, raw, status, at, tags, counts, attrs, first, lines, note,
            maybe, big, delta FROM proto_reference)
    UNION ALL
    (SELECT id, customer, total, ratio, paid, raw, status, at, tags, counts, attrs, first, lines, note, maybe, big,
            delta FROM proto_reference
     EXCEPT ALL SELECT * FROM proto_out)
) d;
CREATE FOREIGN TABLE proto_out_raw (value bytea) SERVER proto_server OPTIONS (topic 'regress_protobuf_out', format 'raw');
SELECT DISTINCT substr(value, 6, 2) AS indexes FROM proto_out_raw;
-- What does not fit is an ERROR naming the column, before anything is sent: a name no
-- enum has, NULL for a field without presence (it would read back as 0), a field the
-- message lacks.
INSERT INTO proto_out
SELECT 9, customer, total, ratio, paid, raw, 'LOST', at, tags, counts, attrs, first, lines, note, maybe, big, delta
FROM proto_out WHERE id = 1;
INSERT INTO proto_out (id, customer) VALUES (9, 'x');
CREATE FOREIGN TABLE proto_extra (id bigint, customer text, shoe_size int)
    SERVER proto_server OPTIONS (topic 'regress_protobuf_out', format 'protobuf', protobuf_message 'shop.Order');
INSERT INTO proto_extra VALUES (9, 'x', 42);
-- A lone jsonb column is the whole message, in Protobuf's JSON form (absent fields
-- unset); COPY works too.
CREATE FOREIGN TABLE proto_out_whole (doc jsonb)
    SERVER proto_server OPTIONS (topic 'regress_protobuf_out', format 'protobuf', protobuf_message 'shop.Order');
INSERT INTO proto_out_whole VALUES ('{"id": "10", "customer": "whole", "price": {"currency": "USD", "units": 3}}');
COPY proto_out_whole FROM STDIN;
{"id": 11, "customer": "copied", "status": "SHIPPED", "at": "2024-01-02T03:04:05.678901Z", "tags": ["a", "b c"]}
\.
INSERT INTO proto_out_whole VALUES ('{"id": 12, "status": "LOST"}');
SELECT id, customer, status, at, tags, note FROM proto_out WHERE id > 3 ORDER BY id;
SELECT count(*) FROM proto_out;
-- auto_register: a topic without a value subject gets a message type derived from the
-- table's columns (scalars optional, so NULL stays NULL), registered by the first INSERT.
CREATE FOREIGN TABLE proto_auto (id bigint, name text, at timestamptz, tags int[], paid boolean, raw bytea)
    SERVER proto_server OPTIONS (topic 'regress_protobuf_auto', format 'protobuf', auto_register 'true');
INSERT INTO proto_auto VALUES (1, 'a', '2024-01-01 00:00:00.5+00', '{1,2}', false, '\x00ff'), (2, NULL, NULL, NULL, NULL, NULL);
SELECT * FROM proto_auto ORDER BY id;
CREATE SCHEMA proto_auto_imported;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_protobuf_auto) FROM SERVER proto_server INTO proto_auto_imported
    OPTIONS (format 'protobuf');
SELECT column_name, data_type FROM information_schema.columns
WHERE table_schema = 'proto_auto_imported' ORDER BY ordinal_position;
DROP SCHEMA proto_auto_imported CASCADE;

-- Bad messages, made from the header of a good one: good (offset 0), plain text (1), an
-- unknown schema id (2), an Avro schema's id (3), a message cut inside a string (4), a
-- message type the schema does not have (5), good (6).
CREATE FOREIGN TABLE proto_raw (offs bigint OPTIONS (offset 'true'), value bytea)
    SERVER proto_plain OPTIONS (topic 'regress_protobuf', format 'raw');
CREATE FOREIGN TABLE proto_junk_raw (value bytea) SERVER proto_plain OPTIONS (topic 'regress_protobuf_junk', format 'raw');
CREATE USER MAPPING FOR PUBLIC SERVER proto_plain;
SELECT value AS good, substr(value, 1, 5) AS header FROM proto_raw WHERE offs = 1 AND value IS NOT NULL LIMIT 1 \gset
INSERT INTO proto_junk_raw VALUES
    (:'good'), ('not protobuf'), ('\x000000006300'), ('\x000000000100'),
    (:'header'::bytea || '\x02021205616263'::bytea), (:'header'::bytea || '\x0208'::bytea), (:'good');
CREATE FOREIGN TABLE proto_junk (offs bigint OPTIONS (offset 'true'), id bigint, customer text)
    SERVER proto_server OPTIONS (topic 'regress_protobuf_junk', format 'protobuf');
SELECT * FROM proto_junk WHERE offs IN (0, 6) ORDER BY offs;
SELECT * FROM proto_junk WHERE offs = 1;
SELECT * FROM proto_junk WHERE offs = 2;
SELECT * FROM proto_junk WHERE offs = 3;
SELECT * FROM proto_junk WHERE offs = 4;
SELECT * FROM proto_junk WHERE offs = 5;
ALTER FOREIGN TABLE proto_junk ADD COLUMN problem text OPTIONS (junk_error 'true');
SELECT offs, id, customer, problem FROM proto_junk ORDER BY offs;
-- Fields no column reads are a problem only under strict.
ALTER FOREIGN TABLE proto_junk OPTIONS (ADD strict 'true');
SELECT offs, id, problem IS NOT NULL AS flagged FROM proto_junk WHERE offs = 0;

-- IMPORT FOREIGN SCHEMA of Protobuf topics: the columns of the first message type of the
-- latest schema of the topic's value subject (regress_protobuf-value: Audit, index [0]);
-- a topic without a subject (regress_protobuf_junk) gets the whole message as jsonb.
CREATE SCHEMA proto_imported;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_protobuf, regress_protobuf_junk) FROM SERVER proto_server
    INTO proto_imported OPTIONS (format 'protobuf');
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'proto_imported' ORDER BY table_name, ordinal_position;
SELECT "partition", who FROM proto_imported.regress_protobuf ORDER BY 1, 2;

DROP SCHEMA proto_imported CASCADE;
DROP SERVER proto_server, proto_plain CASCADE;
