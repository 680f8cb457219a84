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
SELECT (SELECT count(*) FROM customers_copy) AS rows, (SELECT count(*) FROM customers) AS source_rows,
       (SELECT count(*) FROM (SELECT * FROM customers EXCEPT SELECT * FROM customers_copy) d) AS missing,
       (SELECT count(*) FROM (SELECT * FROM customers_copy EXCEPT SELECT * FROM customers) d) AS extra;
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
-- A key cast to a shorter varchar raises instead of cutting keys to the same text.
CREATE TABLE short_keys (id varchar(1) PRIMARY KEY, n int);
\set VERBOSITY terse
SELECT kafka_fdw.import('kafka_upsert', 'short_keys', mode => 'upsert');
\set VERBOSITY default
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
