-- Import modes that keep a table equal to a topic's state: upsert (last value per key,
-- tombstones delete) and debezium (change events). Each result is compared with a
-- reference computed independently: in SQL over the raw messages, or the table the
-- Debezium events were captured from.
\getenv brokers KAFKA_BROKERS
CREATE SERVER upsert_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER upsert_server;

-- A keyed topic: 3000 messages over 200 keys (the key is the id), every 11th a
-- tombstone; keyed messages go to their key's partition.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_upsert --partitions 3 >/dev/null
\! seq 1 3000 | awk '{ k = ($1 * 7) % 200; if ($1 % 11 == 0) printf "%d|DELETE\n", k; else printf "%d|name %d,%d\n", k, $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_upsert --key-delimiter '|' --tombstone DELETE >/dev/null
CREATE FOREIGN TABLE kafka_upsert (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    id text OPTIONS (key 'true'),
    name text,
    n int
) SERVER upsert_server OPTIONS (topic 'regress_upsert');
-- The reference: per key the message of the highest offset, unless it has no value.
CREATE VIEW upsert_reference AS
SELECT id::int, name, n
FROM (SELECT id, name, n, rank() OVER (PARTITION BY id ORDER BY offs DESC) AS newest FROM kafka_upsert) m
WHERE newest = 1 AND (name IS NOT NULL OR n IS NOT NULL);
SELECT count(*) AS messages, count(*) FILTER (WHERE name IS NULL) AS tombstones, count(DISTINCT id) AS keys,
       (SELECT count(*) FROM upsert_reference) AS live_keys,
       (SELECT count(*) FROM (SELECT id FROM kafka_upsert GROUP BY id HAVING count(DISTINCT part) > 1) k) AS keys_in_two_partitions
FROM kafka_upsert;

CREATE TABLE upserted (id int PRIMARY KEY, name text, n int);
-- A row that the topic updates, and one that it never mentions.
INSERT INTO upserted VALUES (3, 'before the import', 0), (1000, 'not in the topic', 0);
SELECT kafka_fdw.import('kafka_upsert', 'upserted', mode => 'upsert') > 0 AS changed;
SELECT (SELECT count(*) FROM upserted) AS rows,
       (SELECT count(*) FROM (SELECT * FROM upsert_reference EXCEPT SELECT * FROM upserted) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM upserted WHERE id <> 1000 EXCEPT SELECT * FROM upsert_reference) d) AS extra;
SELECT * FROM upserted WHERE id = 1000;
-- A partition column declared bigint (smallint, integer and bigint are allowed) imports
-- the same.
CREATE FOREIGN TABLE kafka_upsert_bigint_part (part bigint OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'),
    id text OPTIONS (key 'true'), name text, n int) SERVER upsert_server OPTIONS (topic 'regress_upsert');
CREATE TABLE upserted_bigint_part (id int PRIMARY KEY, name text, n int);
SELECT kafka_fdw.import('kafka_upsert_bigint_part', 'upserted_bigint_part', mode => 'upsert') > 0 AS changed;
SELECT (SELECT count(*) FROM (SELECT * FROM upsert_reference EXCEPT SELECT * FROM upserted_bigint_part) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM upserted_bigint_part EXCEPT SELECT * FROM upsert_reference) d) AS extra;
DROP TABLE upserted_bigint_part;
-- A key of a type whose operators live outside pg_catalog (citext, in public) compares
-- as its index does, though the import runs with search_path pinned: a tombstone of
-- key 'ALICE' deletes the row of 'Alice'.
CREATE EXTENSION citext;
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_upsert_citext --partitions 1 >/dev/null
\! printf 'Alice|first,1\nBob|second,2\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_upsert_citext --key-delimiter '|' --tombstone DELETE >/dev/null
CREATE FOREIGN TABLE kafka_citext (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'),
    id text OPTIONS (key 'true'), name text, n int) SERVER upsert_server OPTIONS (topic 'regress_upsert_citext');
CREATE TABLE citext_target (id citext PRIMARY KEY, name text, n int);
SELECT kafka_fdw.import('kafka_citext', 'citext_target', mode => 'upsert') AS changed;
\! printf 'ALICE|DELETE\nBOB|third,3\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_upsert_citext --key-delimiter '|' --tombstone DELETE >/dev/null
SELECT kafka_fdw.import('kafka_citext', 'citext_target', mode => 'upsert') AS changed;
SELECT * FROM citext_target;
DROP TABLE citext_target;
DROP EXTENSION citext;

-- In small pieces (batches end anywhere: a key's updates and tombstones fall in
-- different imports), with more messages arriving in between: the same result.
CREATE TABLE upserted_in_pieces (id int PRIMARY KEY, name text, n int);
SELECT sum(kafka_fdw.import('kafka_upsert', 'upserted_in_pieces', max_messages => 137, mode => 'upsert')) > 0 AS changed
FROM generate_series(1, 10);
\! seq 3001 3500 | awk '{ k = ($1 * 13) % 250; if ($1 % 5 == 0) printf "%d|DELETE\n", k; else printf "%d|later %d,%d\n", k, $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_upsert --key-delimiter '|' --tombstone DELETE >/dev/null
SELECT kafka_fdw.import('kafka_upsert', 'upserted_in_pieces', max_messages => 1000, mode => 'upsert') > 0 AS changed;
SELECT kafka_fdw.import('kafka_upsert', 'upserted_in_pieces', mode => 'upsert') > 0 AS changed;
SELECT kafka_fdw.import('kafka_upsert', 'upserted_in_pieces', mode => 'upsert') AS nothing_new;
SELECT (SELECT count(*) FROM upserted_in_pieces) = (SELECT count(*) FROM upsert_reference) AS same_count,
       (SELECT count(*) FROM (SELECT * FROM upsert_reference EXCEPT SELECT * FROM upserted_in_pieces) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM upserted_in_pieces EXCEPT SELECT * FROM upsert_reference) d) AS extra,
       (SELECT sum(lag) FROM kafka_fdw.import_status WHERE target = 'upserted_in_pieces'::regclass) AS lag;

-- A composite key from the fields of a JSON message key; values in JSON.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_upsert_json --partitions 2 >/dev/null
\! seq 1 1000 | awk '{ r = ($1 % 3 == 0) ? "eu" : "us"; id = $1 % 50; if ($1 % 13 == 0) printf "{\"region\": \"%s\", \"id\": %d}|DELETE\n", r, id; else printf "{\"region\": \"%s\", \"id\": %d}|{\"name\": \"item %d\", \"qty\": %d}\n", r, id, $1, $1 }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_upsert_json --key-delimiter '|' --tombstone DELETE >/dev/null
CREATE FOREIGN TABLE kafka_upsert_json (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    k text OPTIONS (key 'true'),
    name text,
    qty int
) SERVER upsert_server OPTIONS (topic 'regress_upsert_json', format 'json');
CREATE TABLE stock (region text, id int, name text, qty int, PRIMARY KEY (region, id));
SELECT kafka_fdw.import('kafka_upsert_json', 'stock', mode => 'upsert') > 0 AS changed;
CREATE VIEW stock_reference AS
SELECT k::jsonb ->> 'region' AS region, (k::jsonb ->> 'id')::int AS id, name, qty
FROM (SELECT k, name, qty, rank() OVER (PARTITION BY k::jsonb ORDER BY offs DESC) AS newest FROM kafka_upsert_json) m
WHERE newest = 1 AND (name IS NOT NULL OR qty IS NOT NULL);
SELECT (SELECT count(*) FROM stock) AS rows, (SELECT count(*) FROM stock_reference) AS reference,
       (SELECT count(*) FROM (SELECT * FROM stock_reference EXCEPT SELECT * FROM stock) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM stock EXCEPT SELECT * FROM stock_reference) d) AS extra;

-- Debezium: a table's changes captured as Debezium's JSON change events (a snapshot
-- 'r', then 'c', 'u', 'd' each followed by a tombstone, as Debezium writes them), every
-- other key's events in the schema/payload wrapper, produced keyed by {"id": …}.
CREATE TABLE customers (id int PRIMARY KEY, name text, email text, score numeric, active boolean);
INSERT INTO customers SELECT i, 'customer ' || i, 'c' || i || '@example.com', i * 1.5, i % 2 = 0 FROM generate_series(1, 100) i;
CREATE TABLE customer_events (seq serial, key text, value text);
CREATE FUNCTION customer_event(op text, before jsonb, after jsonb) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    id int := coalesce(after, before) ->> 'id';
    event jsonb := jsonb_build_object('before', before, 'after', after, 'op', op, 'ts_ms', 1700000000000,
                                      'source', jsonb_build_object('connector', 'postgresql', 'table', 'customers'));
BEGIN
    IF id % 2 = 0 THEN
        event := jsonb_build_object('schema', jsonb_build_object('type', 'struct', 'name', 'customers.Envelope'), 'payload', event);
    END IF;
    INSERT INTO customer_events (key, value) VALUES (jsonb_build_object('id', id)::text, event::text);
    IF op = 'd' THEN
        INSERT INTO customer_events (key, value) VALUES (jsonb_build_object('id', id)::text, 'TOMBSTONE');
    END IF;
END
$$;
SELECT count(*) AS snapshot_events FROM (SELECT customer_event('r', NULL, to_jsonb(c)) FROM customers c ORDER BY id) s;
CREATE FUNCTION capture_customer() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM customer_event(CASE TG_OP WHEN 'INSERT' THEN 'c' WHEN 'UPDATE' THEN 'u' ELSE 'd' END,
                           CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END,
                           CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END);
    RETURN NULL;
END
$$;
CREATE TRIGGER capture AFTER INSERT OR UPDATE OR DELETE ON customers FOR EACH ROW EXECUTE FUNCTION capture_customer();
INSERT INTO customers SELECT i, 'customer ' || i, NULL, i, true FROM generate_series(101, 150) i;
UPDATE customers SET score = score + 1, email = 'new' || id || '@example.com' WHERE id % 3 = 0;
UPDATE customers SET active = NOT active, name = name || ' (renamed)' WHERE id % 7 = 0;
DELETE FROM customers WHERE id % 10 = 0;
INSERT INTO customers VALUES (20, 'back again', NULL, 0, false), (40, 'back again', 'b@example.com', 1, true);
UPDATE customers SET score = NULL WHERE id = 40;
SELECT count(*) AS events, count(*) FILTER (WHERE value = 'TOMBSTONE') AS tombstones,
       count(*) FILTER (WHERE value LIKE '{"schema"%') AS wrapped FROM customer_events;
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_debezium --partitions 3 >/dev/null
SELECT key || '|' || value FROM customer_events ORDER BY seq
\g (format=unaligned tuples_only=on) |"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_debezium --key-delimiter '|' --tombstone TOMBSTONE >/dev/null
CREATE FOREIGN TABLE kafka_debezium (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    key text OPTIONS (key 'true'),
    value jsonb
) SERVER upsert_server OPTIONS (topic 'regress_debezium', format 'json');
SELECT count(*) AS messages, count(*) FILTER (WHERE value IS NULL) AS tombstones FROM kafka_debezium;
CREATE TABLE customers_copy (id int PRIMARY KEY, name text, email text, score numeric, active boolean);
SELECT kafka_fdw.import('kafka_debezium', 'customers_copy', mode => 'debezium') > 0 AS changed;
-- A table imported from change events, against the table they were captured from: its
-- rows, and rows missing or extra either way.
CREATE FUNCTION against_source(imported regclass, source regclass, OUT rows bigint, OUT source_rows bigint, OUT missing bigint, OUT extra bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('SELECT (SELECT count(*) FROM %1$s), (SELECT count(*) FROM %2$s),
                           (SELECT count(*) FROM (SELECT * FROM %2$s EXCEPT SELECT * FROM %1$s) d),
                           (SELECT count(*) FROM (SELECT * FROM %1$s EXCEPT SELECT * FROM %2$s) d)', imported, source)
    INTO rows, source_rows, missing, extra;
END
$$;
SELECT * FROM against_source('customers_copy', 'customers');
-- In pieces, into a copy with fewer columns.
CREATE TABLE customer_names (id int PRIMARY KEY, name text);
SELECT sum(kafka_fdw.import('kafka_debezium', 'customer_names', max_messages => 41, mode => 'debezium')) > 0 AS changed
FROM generate_series(1, 20);
SELECT (SELECT count(*) FROM (SELECT id, name FROM customers EXCEPT SELECT * FROM customer_names) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM customer_names EXCEPT SELECT id, name FROM customers) d) AS extra;

-- What cannot be imported by key. Nothing is written, no offset stored.
CREATE TABLE no_key (id int, name text, n int);
SELECT kafka_fdw.import('kafka_upsert', 'no_key', mode => 'upsert');
SELECT kafka_fdw.import('kafka_upsert', 'upserted', mode => 'merge');
CREATE TABLE only_key (id int PRIMARY KEY);
SELECT kafka_fdw.import('kafka_upsert', 'only_key', mode => 'upsert');
-- Only a message without a value deletes: one whose written column is null (n, not
-- name) updates. A source that turns bad messages into NULLs is refused (a bad message
-- would read as a tombstone).
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_upsert_sparse --partitions 1 >/dev/null
\! printf '1|one,1\n2|two,2\n1|uno,\n2|DELETE\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_upsert_sparse --partition 0 --key-delimiter '|' --tombstone DELETE >/dev/null
CREATE FOREIGN TABLE kafka_upsert_sparse (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    id text OPTIONS (key 'true'),
    name text,
    n int
) SERVER upsert_server OPTIONS (topic 'regress_upsert_sparse');
CREATE TABLE sparse_counts (id int PRIMARY KEY, n int);
SELECT kafka_fdw.import('kafka_upsert_sparse', 'sparse_counts', mode => 'upsert') AS changed;
SELECT * FROM sparse_counts ORDER BY id;
ALTER FOREIGN TABLE kafka_upsert_sparse OPTIONS (ADD ignore_junk 'true');
SELECT kafka_fdw.import('kafka_upsert_sparse', 'sparse_counts', mode => 'upsert');
-- A key cast to a shorter varchar raises instead of cutting keys to the same text,
-- naming the message of the row refused.
CREATE TABLE short_keys (id varchar(1) PRIMARY KEY, n int);
SELECT kafka_fdw.import('kafka_upsert', 'short_keys', mode => 'upsert');
SELECT count(*) AS written FROM short_keys;
CREATE FOREIGN TABLE kafka_upsert_keyless (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    name text,
    n int
) SERVER upsert_server OPTIONS (topic 'regress_upsert');
SELECT kafka_fdw.import('kafka_upsert_keyless', 'upserted', mode => 'upsert');
SELECT kafka_fdw.import('kafka_upsert', 'customers_copy', mode => 'debezium');
-- A message without a key, and a truncate event.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_upsert_bad --partitions 1 >/dev/null
\! printf '1|one,1\nno key,2\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_upsert_bad --partition 0 --key-delimiter '|' >/dev/null
CREATE FOREIGN TABLE kafka_upsert_bad (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    id text OPTIONS (key 'true'),
    name text,
    n int
) SERVER upsert_server OPTIONS (topic 'regress_upsert_bad');
CREATE TABLE bad_target (id int PRIMARY KEY, name text, n int);
SELECT kafka_fdw.import('kafka_upsert_bad', 'bad_target', mode => 'upsert');
SELECT (SELECT count(*) FROM bad_target) AS rows,
       (SELECT count(*) FROM kafka_fdw.import_progress WHERE target = 'bad_target'::regclass) AS offsets;
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_debezium_bad --partitions 1 >/dev/null
\! printf '{"id": 1}|{"op": "c", "after": {"id": 1, "name": "one"}}\n{"id": 1}|{"op": "t"}\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_debezium_bad --partition 0 --key-delimiter '|' >/dev/null
CREATE FOREIGN TABLE kafka_debezium_bad (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    value jsonb
) SERVER upsert_server OPTIONS (topic 'regress_debezium_bad', format 'json');
SELECT kafka_fdw.import('kafka_debezium_bad', 'customer_names', mode => 'debezium');
SELECT kafka_fdw.import('kafka_debezium_bad', 'customer_names', max_messages => 1, mode => 'debezium');
SELECT kafka_fdw.reset_import('kafka_debezium_bad', 'customer_names', 'latest');
SELECT * FROM customer_names WHERE id = 1;
\! printf '{"id": 2}|{"hello": "world"}\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_debezium_bad --partition 0 --key-delimiter '|' >/dev/null
SELECT kafka_fdw.import('kafka_debezium_bad', 'customer_names', mode => 'debezium');

-- Jobs keep their mode; a job checks the target's key when it starts.
SELECT kafka_fdw.start_import('kafka_upsert', 'no_key', mode => 'upsert');
SELECT kafka_fdw.start_import('kafka_upsert', 'upserted', mode => 'upsert') > 0 AS started;
SELECT source, target, mode, state FROM kafka_fdw.import_jobs_status WHERE target = 'upserted'::regclass;
SELECT kafka_fdw.stop_import('kafka_upsert', 'upserted');

-- Debezium with its defaults: the JsonConverter with schemas.enable=true,
-- time.precision.mode=adaptive, decimal.handling.mode=precise. Each event carries the
-- Kafka Connect schema; a date travels as days since 1970 (io.debezium.time.Date), a
-- timestamp as microseconds (MicroTimestamp), a timestamptz as ISO text (ZonedTimestamp),
-- a numeric(12,2) as base64 of its unscaled two's-complement bytes (Connect's Decimal,
-- scale in the schema's parameters), jsonb as text (io.debezium.data.Json), uuid as text.
-- The events are made here in SQL from the source table's rows, as Debezium's PostgreSQL
-- connector writes them (an update's and a delete's "before" holds only the key, the
-- default REPLICA IDENTITY; a delete is followed by a tombstone), and imported into a
-- table typed as the source is; it must equal the source's final state.
CREATE TABLE orders (id int PRIMARY KEY, placed date, stamped timestamp, zoned timestamptz,
                     amount numeric(12,2), paid boolean, details jsonb, ref uuid);
INSERT INTO orders SELECT i, date '1969-12-25' + i * 37, timestamp '1969-12-31 23:59:58.5' + i * interval '1 day 3.000123 s',
                          timestamptz '2024-02-29 12:00:00+05' + i * interval '1 hour 0.25 s',
                          CASE i % 4 WHEN 0 THEN -98765432.10 WHEN 1 THEN 9999999999.99 WHEN 2 THEN 0 ELSE i * -0.01 END,
                          i % 3 = 0, jsonb_build_object('n', i, 'tags', jsonb_build_array('a', i)),
                          md5(i::text)::uuid
                   FROM generate_series(1, 60) i;
-- Connect's Decimal: the unscaled value's shortest two's-complement bytes, base64.
CREATE FUNCTION connect_decimal(n numeric, scale int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    b bytea := int8send((n * power(10::numeric, scale))::bigint);
BEGIN
    WHILE length(b) > 1 AND ((get_byte(b, 0) = 0 AND get_byte(b, 1) < 128) OR (get_byte(b, 0) = 255 AND get_byte(b, 1) >= 128)) LOOP
        b := substring(b FROM 2);
    END LOOP;
    RETURN encode(b, 'base64');
END
$$;
CREATE FUNCTION order_row(o orders) RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('id', o.id, 'placed', o.placed - date '1970-01-01',
        'stamped', (extract(epoch FROM o.stamped) * 1000000)::bigint,
        'zoned', to_char(o.zoned AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'amount', connect_decimal(o.amount, 2), 'paid', o.paid, 'details', o.details::text, 'ref', o.ref::text)
$$;
CREATE TABLE order_events (seq serial, key text, value text);
-- The same events as Debezium's Avro converter carries them (tests/regress/data/debezium_orders.avsc:
-- dates as days, timestamps as microseconds, each with its Connect name; decimals as Avro
-- decimals; JSON as text), written as JSON lines for kafka-tool's Avro producer.
CREATE TABLE order_avro_events (seq serial, value text);
CREATE FUNCTION order_event(op text, id int, after orders) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    row_fields jsonb := '[
        {"type": "int32", "optional": false, "field": "id"},
        {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "version": 1, "field": "placed"},
        {"type": "int64", "optional": true, "name": "io.debezium.time.MicroTimestamp", "version": 1, "field": "stamped"},
        {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "version": 1, "field": "zoned"},
        {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "12"}, "field": "amount"},
        {"type": "boolean", "optional": true, "field": "paid"},
        {"type": "string", "optional": true, "name": "io.debezium.data.Json", "version": 1, "field": "details"},
        {"type": "string", "optional": true, "name": "io.debezium.data.Uuid", "version": 1, "field": "ref"}]';
    schema jsonb := jsonb_build_object('type', 'struct', 'optional', false, 'name', 'dbserver1.public.orders.Envelope', 'version', 1,
        'fields', jsonb_build_array(
            jsonb_build_object('type', 'struct', 'fields', row_fields, 'optional', true, 'name', 'dbserver1.public.orders.Value', 'field', 'before'),
            jsonb_build_object('type', 'struct', 'fields', row_fields, 'optional', true, 'name', 'dbserver1.public.orders.Value', 'field', 'after'),
            jsonb_build_object('type', 'string', 'optional', false, 'field', 'op'),
            jsonb_build_object('type', 'int64', 'optional', true, 'field', 'ts_ms')));
    key_only jsonb := jsonb_build_object('id', id, 'placed', NULL, 'stamped', NULL, 'zoned', NULL, 'amount', NULL,
                                         'paid', NULL, 'details', NULL, 'ref', NULL);
    payload jsonb := jsonb_build_object('before', CASE WHEN op IN ('u', 'd') THEN key_only END,
                                        'after', CASE WHEN op <> 'd' THEN order_row(after) END, 'op', op, 'ts_ms', 1700000000000);
    key text := jsonb_build_object('schema', jsonb_build_object('type', 'struct', 'optional', false, 'name', 'dbserver1.public.orders.Key',
                    'fields', jsonb_build_array(jsonb_build_object('type', 'int32', 'optional', false, 'field', 'id'))),
                    'payload', jsonb_build_object('id', id))::text;
BEGIN
    INSERT INTO order_events (key, value) VALUES (key, jsonb_build_object('schema', schema, 'payload', payload)::text);
    INSERT INTO order_avro_events (value) VALUES (jsonb_build_object(
        'before', CASE WHEN op IN ('u', 'd') THEN jsonb_build_object('id', id) END,
        'after', CASE WHEN op <> 'd' THEN order_row(after) || jsonb_build_object('amount', after.amount::text) END,
        'source', jsonb_build_object('connector', 'postgresql', 'db', 'shop', 'schema', 'public', 'table', 'orders', 'lsn', 1000 + id),
        'op', op, 'ts_ms', 1700000000000)::text);
    IF op = 'd' THEN
        INSERT INTO order_events (key, value) VALUES (key, 'TOMBSTONE');
    END IF;
END
$$;
SELECT count(*) AS snapshot_events FROM (SELECT order_event('r', o.id, o) FROM orders o ORDER BY id) s;
CREATE FUNCTION capture_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM order_event(CASE TG_OP WHEN 'INSERT' THEN 'c' WHEN 'UPDATE' THEN 'u' ELSE 'd' END,
                        CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END, CASE WHEN TG_OP <> 'DELETE' THEN NEW END);
    RETURN NULL;
END
$$;
CREATE TRIGGER capture AFTER INSERT OR UPDATE OR DELETE ON orders FOR EACH ROW EXECUTE FUNCTION capture_order();
INSERT INTO orders SELECT i, date '2038-01-19' + i, timestamp '2038-01-19 03:14:07.999999' + i * interval '1 minute',
                          NULL, -0.01 * i, NULL, '{}'::jsonb, NULL FROM generate_series(61, 80) i;
UPDATE orders SET amount = -amount, paid = NOT paid, placed = placed - 36500 WHERE id % 3 = 0;
UPDATE orders SET details = details || '{"updated": true}', zoned = zoned + interval '1 year' WHERE id % 5 = 0;
DELETE FROM orders WHERE id % 7 = 0;
INSERT INTO orders VALUES (14, '0001-01-01', '1900-01-01 00:00:00.000001', '1999-12-31 23:59:59.999999+00', 1234567890.12, true, '[1, "two"]', '00000000-0000-0000-0000-000000000000');
SELECT count(*) AS events, count(*) FILTER (WHERE value = 'TOMBSTONE') AS tombstones FROM order_events;
-- One event as it travels: no date, timestamp or number PostgreSQL would read as such.
SELECT value::jsonb -> 'payload' -> 'after' AS after FROM order_events WHERE key::jsonb -> 'payload' ->> 'id' = '4' ORDER BY seq LIMIT 1;
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_debezium_defaults --partitions 3 >/dev/null
SELECT key || '|' || value FROM order_events ORDER BY seq
\g (format=unaligned tuples_only=on) |"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_debezium_defaults --key-delimiter '|' --tombstone TOMBSTONE >/dev/null
CREATE FOREIGN TABLE kafka_debezium_defaults (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    key text OPTIONS (key 'true'),
    value jsonb
) SERVER upsert_server OPTIONS (topic 'regress_debezium_defaults', format 'json');
CREATE TABLE orders_copy (LIKE orders INCLUDING ALL);
SELECT kafka_fdw.import('kafka_debezium_defaults', 'orders_copy', mode => 'debezium') > 0 AS changed;
SELECT * FROM against_source('orders_copy', 'orders');
SELECT * FROM orders_copy WHERE id IN (3, 14, 61) ORDER BY id;
-- The same events in Avro through the Schema Registry (Confluent's framing), as most
-- Debezium deployments write them: the source reads each whole event into one jsonb
-- column, Debezium's dates, times and timestamps read by their Connect names and its
-- JSON as JSON, and the import gives the same table.
\getenv registry KAFKA_REGISTRY_URL
CREATE SERVER upsert_registry FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers', schema_registry :'registry');
CREATE USER MAPPING FOR PUBLIC SERVER upsert_registry;
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_debezium_avro --partitions 1 >/dev/null
SELECT value FROM order_avro_events ORDER BY seq
\g (format=unaligned tuples_only=on) |"$KAFKA_TOOL" produce-avro --brokers "$KAFKA_BROKERS" --topic regress_debezium_avro --partition 0 --registry "$KAFKA_REGISTRY_URL" --schema-file "$KAFKA_FDW_REGRESS_DATA/debezium_orders.avsc" >/dev/null
CREATE FOREIGN TABLE kafka_debezium_avro (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), value jsonb)
SERVER upsert_registry OPTIONS (topic 'regress_debezium_avro', format 'avro');
SELECT value -> 'after' AS after FROM kafka_debezium_avro WHERE value -> 'after' ->> 'id' = '4' ORDER BY offs LIMIT 1;
CREATE TABLE orders_avro (LIKE orders INCLUDING ALL);
SELECT kafka_fdw.import('kafka_debezium_avro', 'orders_avro', mode => 'debezium') > 0 AS changed;
SELECT * FROM against_source('orders_avro', 'orders');
-- IMPORT FOREIGN SCHEMA reads the envelope's subject: the rows as jsonb, op as text.
CREATE SCHEMA debezium_avro;
IMPORT FOREIGN SCHEMA kafka LIMIT TO (regress_debezium_avro) FROM SERVER upsert_registry INTO debezium_avro;
SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'debezium_avro' ORDER BY ordinal_position;
-- A numeric column of no fixed scale, as Debezium's Avro events carry it: a record
-- io.debezium.data.VariableScaleDecimal of the scale and the unscaled digits (bytes,
-- written here in Avro's JSON form, a character per byte): read as the number, in the
-- envelope's JSON as in numeric columns.
-- The events: 12.34, -0.5, a 30-digit integer, NULL, 0, 5 at scale -2 (500); then 1
-- becomes 99.999 and 5 is deleted.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_debezium_avro_numbers --partitions 1 >/dev/null
\! printf '%s\n' '{"after": {"id": 1, "total": {"scale": 2, "value": "\u0004\u00d2"}}, "op": "r"}' '{"after": {"id": 2, "total": {"scale": 1, "value": "\u00fb"}}, "op": "r"}' '{"after": {"id": 3, "total": {"scale": 0, "value": "\u0001\u008e\u00e9\u000f\u00f6\u00c3\u0073\u00e0\u00ee\u004e\u003f\u000a\u00d2"}}, "op": "c"}' '{"after": {"id": 4, "total": null}, "op": "c"}' '{"after": {"id": 5, "total": {"scale": 0, "value": "\u0000"}}, "op": "c"}' '{"after": {"id": 6, "total": {"scale": -2, "value": "\u0005"}}, "op": "c"}' '{"before": {"id": 1, "total": null}, "after": {"id": 1, "total": {"scale": 3, "value": "\u0001\u0086\u009f"}}, "op": "u"}' '{"before": {"id": 5, "total": null}, "op": "d"}' | "$KAFKA_TOOL" produce-avro --brokers "$KAFKA_BROKERS" --topic regress_debezium_avro_numbers --partition 0 --registry "$KAFKA_REGISTRY_URL" --schema-file "$KAFKA_FDW_REGRESS_DATA/debezium_totals.avsc" >/dev/null
CREATE FOREIGN TABLE kafka_debezium_avro_numbers (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), value jsonb)
SERVER upsert_registry OPTIONS (topic 'regress_debezium_avro_numbers', format 'avro');
SELECT offs, value -> 'after' AS after FROM kafka_debezium_avro_numbers ORDER BY offs;
CREATE TABLE totals (id int PRIMARY KEY, total numeric);
SELECT kafka_fdw.import('kafka_debezium_avro_numbers', 'totals', mode => 'debezium');
SELECT id, total, scale(total) FROM totals ORDER BY id;

-- The same events without their schema (the JsonConverter's schemas.enable=false): the
-- values keep Debezium's encodings, and each is read by its column's type when its shape
-- is such an encoding (days into a date, microseconds into a timestamp: Debezium's
-- adaptive time.precision.mode by the column's precision, base64 into a numeric at the
-- column's scale, JSON text into jsonb).
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_debezium_schemaless --partitions 3 >/dev/null
SELECT key::jsonb ->> 'payload' || '|' || CASE WHEN value = 'TOMBSTONE' THEN value ELSE (value::jsonb -> 'payload')::text END FROM order_events ORDER BY seq
\g (format=unaligned tuples_only=on) |"$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_debezium_schemaless --key-delimiter '|' --tombstone TOMBSTONE >/dev/null
CREATE FOREIGN TABLE kafka_debezium_schemaless (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), value jsonb)
SERVER upsert_server OPTIONS (topic 'regress_debezium_schemaless', format 'json');
SELECT value -> 'after' AS after FROM kafka_debezium_schemaless WHERE value -> 'after' ->> 'id' = '4' ORDER BY offs LIMIT 1;
CREATE TABLE orders_schemaless (LIKE orders INCLUDING ALL);
SELECT kafka_fdw.import('kafka_debezium_schemaless', 'orders_schemaless', mode => 'debezium') > 0 AS changed;
SELECT * FROM against_source('orders_schemaless', 'orders');
-- time.precision.mode=connect: milliseconds, whatever the column's precision; the
-- source table says so.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_debezium_connect_time --partitions 1 >/dev/null
\! printf '{"id": 1}|{"op": "c", "after": {"id": 1, "at": 1704067200123, "clock": 3723004}}\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_debezium_connect_time --key-delimiter '|' >/dev/null
CREATE FOREIGN TABLE kafka_debezium_connect_time (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), value jsonb)
SERVER upsert_server OPTIONS (topic 'regress_debezium_connect_time', format 'json', time_precision_mode 'connect');
CREATE TABLE connect_times (id int PRIMARY KEY, at timestamp(6), clock time);
SELECT kafka_fdw.import('kafka_debezium_connect_time', 'connect_times', mode => 'debezium');
SELECT * FROM connect_times;
ALTER FOREIGN TABLE kafka_debezium_connect_time OPTIONS (SET time_precision_mode 'nanos');

-- A value its semantic type cannot hold is an ERROR naming the message and the field.
\! printf '{"id": 1}|{"schema": {"type": "struct", "fields": [{"field": "after", "type": "struct", "fields": [{"field": "amount", "type": "bytes", "name": "org.apache.kafka.connect.data.Decimal", "parameters": {"scale": "2"}}]}]}, "payload": {"op": "c", "after": {"id": 1, "amount": "not base64!"}}}\n' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_debezium_defaults --partition 0 --key-delimiter '|' >/dev/null
SELECT kafka_fdw.import('kafka_debezium_defaults', 'orders_copy', mode => 'debezium');
