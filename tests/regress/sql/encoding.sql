-- A database whose encoding is not UTF-8 (LATIN1 here). Kafka's text is UTF-8: a
-- message's text is converted to the database's encoding when read, a column's text to
-- UTF-8 when written (value, key and headers, in every format), as PostgreSQL converts
-- between a client's encoding and the server's. A character the other side cannot
-- hold is an ERROR naming the message, never a silent replacement.
\getenv brokers KAFKA_BROKERS
\set regress_database :DBNAME
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_latin1_csv --partitions 1 >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_latin1_json --partitions 1 >/dev/null
CREATE DATABASE regress_latin1 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0;
\c regress_latin1
SET client_encoding = 'UTF8';
SELECT getdatabaseencoding();
CREATE EXTENSION kafka_fdw;
CREATE SERVER latin1_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER latin1_server;
CREATE FOREIGN TABLE latin1_csv (offs bigint OPTIONS (offset 'true'), k text OPTIONS (key 'true'), n int, t text)
SERVER latin1_server OPTIONS (topic 'regress_latin1_csv');
CREATE FOREIGN TABLE latin1_json (offs bigint OPTIONS (offset 'true'), h jsonb OPTIONS (headers 'true'), n int, t text, a text[])
SERVER latin1_server OPTIONS (topic 'regress_latin1_json', format 'json');
-- The same topics' bytes as they are in Kafka.
CREATE FOREIGN TABLE latin1_csv_bytes (offs bigint OPTIONS (offset 'true'), k bytea OPTIONS (key 'true'), v bytea)
SERVER latin1_server OPTIONS (topic 'regress_latin1_csv', format 'raw');
CREATE FOREIGN TABLE latin1_json_bytes (offs bigint OPTIONS (offset 'true'), v bytea)
SERVER latin1_server OPTIONS (topic 'regress_latin1_json', format 'raw');

-- Writing: é and ü are one byte each in LATIN1 and two in UTF-8.
INSERT INTO latin1_csv (k, n, t) VALUES ('clé', 1, 'café'), ('ascii', 2, 'plain');
INSERT INTO latin1_json (h, n, t, a) VALUES ('{"origine": "Zürich"}', 1, 'café', ARRAY['crème', 'brûlée']);
SELECT offs, convert_from(k, 'UTF8') AS key_as_utf8, encode(k, 'hex') AS key_bytes,
       convert_from(v, 'UTF8') AS value_as_utf8, encode(v, 'hex') AS value_bytes
FROM latin1_csv_bytes ORDER BY offs;
SELECT offs, convert_from(v, 'UTF8') AS value_as_utf8 FROM latin1_json_bytes ORDER BY offs;

-- Reading: back as they were written, in every column kind.
SELECT offs, k, n, t, length(t) AS characters, octet_length(t) AS latin1_bytes FROM latin1_csv ORDER BY offs;
SELECT offs, h, n, t, a FROM latin1_json ORDER BY offs;

-- A character LATIN1 has no room for (€, written by another producer): an ERROR naming
-- the message and the column when read; the other columns still read.
\! printf 'euro,3,price in €\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_latin1_csv --key-delimiter , >/dev/null
SELECT offs, k, n, t FROM latin1_csv WHERE offs = 2;
SELECT offs, k, n FROM latin1_csv WHERE offs = 2;
\! printf 'price in €,4,euro\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_latin1_csv --key-delimiter , >/dev/null
SELECT offs, k FROM latin1_csv WHERE offs = 3;

-- A bad message's junk columns never fail: what LATIN1 has no room for is written as a
-- Unicode escape there.
CREATE FOREIGN TABLE latin1_junk (offs bigint OPTIONS (offset 'true'), n int,
    junk text OPTIONS (junk 'true'), junk_error text OPTIONS (junk_error 'true'))
SERVER latin1_server OPTIONS (topic 'regress_latin1_json', format 'json');
\! printf '{"n": 3, "t": "5 €\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_latin1_json >/dev/null
SELECT offs, n, junk, junk_error FROM latin1_junk ORDER BY offs;

\c :regress_database
DROP DATABASE regress_latin1;
