-- Every error of an import names its message: topic, partition, offset and, for a value
-- the target refuses, the column; in each mode and on each write path. The 50,000th
-- message of each topic holds a value a numeric column refuses ("lots"); nothing of a
-- failed import stays (rows and offsets roll back together).
\getenv brokers KAFKA_BROKERS
CREATE SERVER errors_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER errors_server;
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_errors_json --partitions 1 >/dev/null
\! seq 1 50000 | awk '{ printf "%d|{\"id\": %d, \"amount\": \"%s\"}\n", $1, $1, $1 == 50000 ? "lots" : $1 ".25" }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_errors_json --key-delimiter '|' >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_errors_csv --partitions 1 >/dev/null
\! seq 1 50000 | awk '{ printf "%d,%s\n", $1, $1 == 50000 ? "lots" : $1 ".25" }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_errors_csv >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_errors_debezium --partitions 1 >/dev/null
\! seq 1 50000 | awk '{ printf "{\"id\": %d}|{\"op\": \"c\", \"after\": {\"id\": %d, \"amount\": \"%s\"}}\n", $1, $1, $1 == 50000 ? "lots" : $1 ".25" }' | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_errors_debezium --key-delimiter '|' >/dev/null

CREATE TABLE amounts (id int PRIMARY KEY, amount numeric, part int, offs bigint);
CREATE VIEW outcome AS
SELECT (SELECT count(*) FROM amounts) AS rows,
       (SELECT count(*) FROM kafka_fdw.import_progress WHERE target = 'amounts'::regclass) AS offsets;

-- Append, JSON: the scan converts the value into the source column's type and refuses it.
CREATE FOREIGN TABLE errors_json (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), id int, amount numeric)
SERVER errors_server OPTIONS (topic 'regress_errors_json', format 'json');
SELECT kafka_fdw.import('errors_json', 'amounts');
SELECT * FROM outcome;

-- Append, CSV (COPY FROM's own parser reads the messages).
CREATE FOREIGN TABLE errors_csv (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), id int, amount numeric)
SERVER errors_server OPTIONS (topic 'regress_errors_csv', format 'csv');
SELECT kafka_fdw.import('errors_csv', 'amounts');
SELECT * FROM outcome;

-- Upsert: the source reads the amount as text; the import casts it to the target's type.
CREATE FOREIGN TABLE errors_text (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), id int, amount text)
SERVER errors_server OPTIONS (topic 'regress_errors_json', format 'json');
SELECT kafka_fdw.import('errors_text', 'amounts', mode => 'upsert');
SELECT * FROM outcome;

-- Debezium: the event's row becomes the target's (jsonb_populate_record).
CREATE FOREIGN TABLE errors_debezium (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), value jsonb)
SERVER errors_server OPTIONS (topic 'regress_errors_debezium', format 'json');
SELECT kafka_fdw.import('errors_debezium', 'amounts', ARRAY['id', 'amount'], mode => 'debezium');
SELECT * FROM outcome;

-- The messages before the bad one import.
SELECT kafka_fdw.import('errors_text', 'amounts', max_messages => 49999, mode => 'upsert') AS upserted;
SELECT * FROM outcome;
SELECT count(*) AS rows, sum(amount) = (SELECT sum(n + 0.25) FROM generate_series(1, 49999) n) AS amounts_right FROM amounts;

-- A constraint the row violates names the message too: in append mode through the scan
-- (COPY FROM's binary rows, checked row by row), and when INSERT writes the rows
-- instead (here: the target has a rule).
TRUNCATE amounts;
SELECT kafka_fdw.reset_import('errors_text', 'amounts', 'earliest');
ALTER TABLE amounts ADD CONSTRAINT not_12345 CHECK (id <> 12345);
SELECT kafka_fdw.import('errors_json', 'amounts', max_messages => 20000);
CREATE TABLE ruled (id int PRIMARY KEY CHECK (id <> 12345), amount numeric);
CREATE TABLE ruled_log (n int);
CREATE RULE log_insert AS ON INSERT TO ruled DO ALSO INSERT INTO public.ruled_log VALUES (NEW.id);
SELECT kafka_fdw.import('errors_json', 'ruled', max_messages => 20000);
-- A duplicate key, caught when COPY's multi-insert buffer is written: still the message
-- of the row.
ALTER TABLE amounts DROP CONSTRAINT not_12345;
INSERT INTO amounts VALUES (15000, 0);
SELECT kafka_fdw.import('errors_json', 'amounts', max_messages => 20000);
SELECT * FROM outcome;
-- The upsert and debezium modes write a batch's rows after reading all its messages;
-- a constraint a row violates names that row's message all the same.
TRUNCATE amounts;
ALTER TABLE amounts ADD CONSTRAINT not_12345 CHECK (id <> 12345);
SELECT kafka_fdw.import('errors_text', 'amounts', max_messages => 20000, mode => 'upsert');
SELECT kafka_fdw.import('errors_debezium', 'amounts', ARRAY['id', 'amount'], max_messages => 20000, mode => 'debezium');
ALTER TABLE amounts DROP CONSTRAINT not_12345;
-- A foreign key is checked when the batch's statement ends, once every row is written:
-- its error is about no one message and names none (not the batch's last).
CREATE TABLE known_ids (id int PRIMARY KEY);
INSERT INTO known_ids SELECT generate_series(1, 10);
ALTER TABLE amounts ADD CONSTRAINT known_id FOREIGN KEY (id) REFERENCES known_ids;
SELECT kafka_fdw.import('errors_text', 'amounts', max_messages => 20, mode => 'upsert');
ALTER TABLE amounts DROP CONSTRAINT known_id;
SELECT * FROM outcome;
