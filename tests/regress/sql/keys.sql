-- Keys with fields (key_format json, avro, protobuf): the key column holds the whole
-- decoded key, key field columns (column option key 'field') its fields; INSERT encodes
-- them (Avro and Protobuf with the latest schema of <topic>-key, here registered by
-- auto_register), SELECT decodes them; a key that does not decode is a bad message.
\getenv brokers KAFKA_BROKERS
\getenv registry KAFKA_REGISTRY_URL
SET datestyle = 'ISO, YMD';
SET timezone = 'UTC';
CREATE SERVER key_server FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (brokers :'brokers', schema_registry :'registry');
CREATE USER MAPPING FOR PUBLIC SERVER key_server;

-- JSON keys, written by field and read back whole, by field and as the raw bytes.
CREATE FOREIGN TABLE json_keys_in (kid int OPTIONS (key 'id'), kregion text OPTIONS (key 'region'), v text)
    SERVER key_server OPTIONS (topic 'regress_keys_json', format 'json', key_format 'json');
INSERT INTO json_keys_in VALUES (1, 'eu', 'one'), (2, NULL, 'two'), (NULL, NULL, 'keyless');
CREATE FOREIGN TABLE json_keys (
    k jsonb OPTIONS (key 'true'), kid int OPTIONS (key 'id'), kregion text OPTIONS (key 'region'), v text
) SERVER key_server OPTIONS (topic 'regress_keys_json', format 'json', key_format 'json');
SELECT * FROM json_keys ORDER BY v;
-- INSERT through the key column (the whole key) or the key field columns, not both.
INSERT INTO json_keys (k, v) VALUES ('{"id": 7, "region": "us"}', 'whole');
INSERT INTO json_keys (k, kid, v) VALUES ('{"id": 8}', 8, 'both');
SELECT * FROM json_keys WHERE v = 'whole';
CREATE FOREIGN TABLE json_keys_raw (k text OPTIONS (key 'true'), v text)
    SERVER key_server OPTIONS (topic 'regress_keys_json', format 'json');
SELECT * FROM json_keys_raw ORDER BY v;

-- A key that is not JSON: the usual bad-message handling, naming the key.
INSERT INTO json_keys_raw VALUES ('not json', 'bad key');
SELECT * FROM json_keys ORDER BY v;
SELECT kid, v FROM json_keys WHERE v = 'one';
ALTER FOREIGN TABLE json_keys OPTIONS (ADD on_error 'skip');
SELECT kid, v FROM json_keys ORDER BY v;
ALTER FOREIGN TABLE json_keys OPTIONS (DROP on_error);
ALTER FOREIGN TABLE json_keys ADD COLUMN problem text OPTIONS (junk_error 'true');
SELECT kid, v, problem FROM json_keys ORDER BY v;

-- JSON keys need not be objects (Kafka Connect's JsonConverter writes "abc" and 42): a
-- key column reads them whole; a text key column writes a JSON string.
CREATE FOREIGN TABLE json_scalar_keys (k text OPTIONS (key 'true'), v text)
    SERVER key_server OPTIONS (topic 'regress_keys_json_scalar', format 'json', key_format 'json');
INSERT INTO json_scalar_keys VALUES ('abc', 'string'), ('say "hi"', 'quotes');
CREATE FOREIGN TABLE json_scalar_keys_raw (k text OPTIONS (key 'true'), v text)
    SERVER key_server OPTIONS (topic 'regress_keys_json_scalar', format 'json');
INSERT INTO json_scalar_keys_raw VALUES ('42', 'number');
SELECT * FROM json_scalar_keys ORDER BY v;
SELECT * FROM json_scalar_keys_raw ORDER BY v;

-- Avro keys: auto_register derives the key schema from the key field columns (a
-- record of id and region) and the value schema from the data columns.
CREATE FOREIGN TABLE avro_keys_in (kid bigint OPTIONS (key 'id') NOT NULL, kregion text OPTIONS (key 'region'), v text)
    SERVER key_server OPTIONS (topic 'regress_keys_avro', format 'avro', key_format 'avro', auto_register 'true');
INSERT INTO avro_keys_in VALUES (1, 'eu', 'one'), (2, NULL, 'two');
CREATE FOREIGN TABLE avro_keys (
    k jsonb OPTIONS (key 'true'), kid bigint OPTIONS (key 'id'), kregion text OPTIONS (key 'region'), v text
) SERVER key_server OPTIONS (topic 'regress_keys_avro', format 'avro', key_format 'avro');
SELECT * FROM avro_keys ORDER BY v;
INSERT INTO avro_keys (kid, kregion, v) VALUES (3, 'us', 'three');
INSERT INTO avro_keys (k, v) VALUES ('{"id": 4, "region": null}', 'four');
SELECT kid, kregion, v FROM avro_keys WHERE kid > 2 ORDER BY kid;
-- The raw key is in the registry's wire format (zero byte, the key schema's id, the record).
CREATE FOREIGN TABLE avro_keys_raw (k bytea OPTIONS (key 'true'), v bytea)
    SERVER key_server OPTIONS (topic 'regress_keys_avro', format 'raw');
SELECT get_byte(k, 0) AS magic, length(k) > 5 AS framed FROM avro_keys_raw;
-- A key that does not fit the key schema is an ERROR naming the column.
INSERT INTO avro_keys_in VALUES (NULL, 'x', 'no id');

-- An upsert import takes the key from the key's fields: a key field column fills the
-- target's key column of its name; the last message of each key wins.
INSERT INTO avro_keys_in VALUES (1, 'eu', 'one again');
CREATE FOREIGN TABLE avro_keys_source (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'),
    id bigint OPTIONS (key 'id'), v text) SERVER key_server OPTIONS (topic 'regress_keys_avro', format 'avro', key_format 'avro');
CREATE TABLE avro_keyed (id bigint PRIMARY KEY, v text);
SELECT kafka_fdw.import('avro_keys_source', 'avro_keyed', mode => 'upsert') AS changed;
SELECT * FROM avro_keyed ORDER BY id;

-- A key that is not a record: the key column alone, auto_register derives "long".
CREATE FOREIGN TABLE avro_long_keys (k bigint OPTIONS (key 'true'), v text)
    SERVER key_server OPTIONS (topic 'regress_keys_avro_long', format 'avro', key_format 'avro', auto_register 'true');
INSERT INTO avro_long_keys VALUES (-5, 'minus five'), (NULL, 'keyless');
SELECT * FROM avro_long_keys ORDER BY v;
CREATE FOREIGN TABLE avro_long_keys_raw (k bytea OPTIONS (key 'true'), v bytea)
    SERVER key_server OPTIONS (topic 'regress_keys_avro_long', format 'raw');
SELECT substr(k, 6) AS zigzag_of_minus_five FROM avro_long_keys_raw WHERE k IS NOT NULL;

-- Protobuf keys, the same way.
CREATE FOREIGN TABLE proto_keys_in (kid bigint OPTIONS (key 'id'), kregion text OPTIONS (key 'region'), v text)
    SERVER key_server OPTIONS (topic 'regress_keys_protobuf', format 'protobuf', key_format 'protobuf', auto_register 'true');
INSERT INTO proto_keys_in VALUES (1, 'eu', 'one'), (2, NULL, 'two');
CREATE FOREIGN TABLE proto_keys (
    k jsonb OPTIONS (key 'true'), kid bigint OPTIONS (key 'id'), kregion text OPTIONS (key 'region'), v text
) SERVER key_server OPTIONS (topic 'regress_keys_protobuf', format 'protobuf', key_format 'protobuf');
SELECT * FROM proto_keys ORDER BY v;

-- IMPORT FOREIGN SCHEMA without options: the key subject (<topic>-key) gives key_format
-- and a column key_<field> per field of a record key (the key column holds the whole key,
-- jsonb for records, the key's type otherwise), the value subject the format and the
-- value columns; the tables read what the hand-made ones above read.
CREATE SCHEMA keys_found;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_keys_avro, regress_keys_avro_long, regress_keys_protobuf)
    FROM SERVER key_server INTO keys_found;
SELECT table_name, column_name, data_type FROM information_schema.columns
WHERE table_schema = 'keys_found' ORDER BY table_name, ordinal_position;
SELECT foreign_table_name, option_name, option_value FROM information_schema.foreign_table_options
WHERE foreign_table_schema = 'keys_found' ORDER BY 1, 2;
SELECT key, key_id, key_region, v FROM keys_found.regress_keys_avro ORDER BY v;
(SELECT key, key_id, key_region, v FROM keys_found.regress_keys_avro EXCEPT ALL SELECT k, kid, kregion, v FROM avro_keys)
UNION ALL
(SELECT k, kid, kregion, v FROM avro_keys EXCEPT ALL SELECT key, key_id, key_region, v FROM keys_found.regress_keys_avro);
SELECT key, v FROM keys_found.regress_keys_avro_long ORDER BY v;
(SELECT key, key_id, key_region, v FROM keys_found.regress_keys_protobuf EXCEPT ALL SELECT k, kid, kregion, v FROM proto_keys)
UNION ALL
(SELECT k, kid, kregion, v FROM proto_keys EXCEPT ALL SELECT key, key_id, key_region, v FROM keys_found.regress_keys_protobuf);
-- A key_format the import names wins: no key subject is asked for, no key field columns.
CREATE SCHEMA keys_named;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_keys_avro) FROM SERVER key_server INTO keys_named OPTIONS (key_format 'text');
SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'keys_named' ORDER BY ordinal_position;
DROP SCHEMA keys_found, keys_named CASCADE;

-- Options: key fields need a key_format with fields; registry formats need a registry.
CREATE FOREIGN TABLE key_field_text (kid int OPTIONS (key 'id'), v text)
    SERVER key_server OPTIONS (topic 't');
CREATE FOREIGN TABLE key_format_bad (v text) SERVER key_server OPTIONS (topic 't', key_format 'xml');
CREATE SERVER key_plain FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE FOREIGN TABLE key_no_registry (v text) SERVER key_plain OPTIONS (topic 't', key_format 'avro');
CREATE FOREIGN TABLE key_field_and_field (kid int OPTIONS (key 'id', field 'x'), v text)
    SERVER key_server OPTIONS (topic 't', key_format 'json');

DROP SERVER key_server, key_plain CASCADE;
