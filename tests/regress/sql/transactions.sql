-- transactional 'true': INSERT and COPY produce in a Kafka transaction that commits in
-- PostgreSQL's pre-commit phase and aborts with the PostgreSQL transaction (or with a
-- subtransaction that wrote). isolation_level: what scans read.
--
-- Against Apache Kafka, whose read_committed readers see a transaction's messages once it
-- commits and never those of one that aborts. What kafka_fdw's scans read is compared
-- with what kafka-tool's librdkafka consumer reads at the same isolation level. (A
-- backend killed with SIGKILL restarts the whole server: tests/scenarios.sh has that
-- case.) A commit the coordinator refuses needs an injected error: that part runs on
-- librdkafka's mock cluster.
\getenv brokers KAFKA_BROKERS
\getenv mock_brokers KAFKA_MOCK_BROKERS
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_txn --partitions 2 >/dev/null

CREATE SERVER txn_server FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (brokers :'brokers', transactional 'true', timeout_ms '10000');
CREATE USER MAPPING FOR PUBLIC SERVER txn_server;
CREATE FOREIGN TABLE txn_out (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), v text)
SERVER txn_server OPTIONS (topic 'regress_txn', format 'csv');
-- The same topic read uncommitted, and written without transactions (the table's option
-- overrides the server's).
CREATE FOREIGN TABLE txn_uncommitted (part int OPTIONS (partition 'true'), v text)
SERVER txn_server OPTIONS (topic 'regress_txn', isolation_level 'read_uncommitted');
CREATE FOREIGN TABLE plain_out (part int OPTIONS (partition 'true'), v text)
SERVER txn_server OPTIONS (topic 'regress_txn', transactional 'false');

-- Options are checked when set.
CREATE FOREIGN TABLE txn_bad (v text) SERVER txn_server OPTIONS (topic 't', transactional 'maybe');
CREATE FOREIGN TABLE txn_bad (v text) SERVER txn_server OPTIONS (topic 't', isolation_level 'serializable');
ALTER SERVER txn_server OPTIONS (ADD "transactional.id" 'mine');
ALTER SERVER txn_server OPTIONS (ADD "isolation.level" 'read_uncommitted');
ALTER FOREIGN TABLE txn_out OPTIONS (ADD isolation_level 'read_uncommitted');
ALTER FOREIGN TABLE txn_out OPTIONS (SET isolation_level 'read_committed');

-- Messages committed with the transaction, several statements in one transaction. Until
-- the COMMIT, read_committed readers see none of them, not even this transaction's own
-- scans; read_uncommitted readers see them as they are delivered.
CREATE TABLE txn_local (v text);
BEGIN;
INSERT INTO txn_out (part, v) SELECT 0, 'committed ' || i FROM generate_series(1, 3) i;
INSERT INTO txn_out (part, v) VALUES (1, 'committed 4');
INSERT INTO txn_local VALUES ('with the commit');
SELECT count(*) AS read_committed FROM txn_out;
\set raw_count `"$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_txn --isolation-level read_committed | cut -d' ' -f1`
SELECT :raw_count AS kafka_tool_read_committed;
SELECT part, v FROM txn_uncommitted ORDER BY part, v;
COMMIT;
SELECT part, v FROM txn_out ORDER BY part, offs;
-- Outside an explicit transaction: the statement's own transaction. COPY too.
INSERT INTO txn_out (part, v) VALUES (1, 'autocommit');
COPY txn_out (part, v) FROM STDIN (FORMAT csv);
0,copied
\.
SELECT count(*) FROM txn_out;

-- A transaction open in another backend (through dblink): a concurrent scan, and
-- kafka-tool, see none of its messages until it commits, then all of them at once.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=postgres',
    current_setting('unix_socket_directories'), current_setting('port'), current_database()));
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', $$INSERT INTO txn_out (part, v) SELECT i % 2, 'concurrent ' || i FROM generate_series(1, 100) i$$);
SELECT count(*) FILTER (WHERE v LIKE 'concurrent %') AS read_committed, count(*) AS all_messages FROM txn_out;
\set raw_count `"$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_txn --isolation-level read_committed | cut -d' ' -f1`
SELECT :raw_count AS kafka_tool_read_committed;
SELECT count(*) FILTER (WHERE v LIKE 'concurrent %') AS read_uncommitted FROM txn_uncommitted;
SELECT dblink_exec('other', 'COMMIT');
SELECT count(*) FILTER (WHERE v LIKE 'concurrent %') AS read_committed, count(*) AS all_messages FROM txn_out;
\set raw_count `"$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_txn --isolation-level read_committed | cut -d' ' -f1`
SELECT :raw_count AS kafka_tool_read_committed;

-- ROLLBACK and an ERROR abort the Kafka transaction; the next transaction works.
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'rolled back');
ROLLBACK;
BEGIN;
INSERT INTO txn_out (part, v) VALUES (1, 'before the error');
SELECT 1 / 0;
COMMIT;
INSERT INTO txn_out (part, v) VALUES (0, 'after the aborts');

-- Savepoints: rolling back a subtransaction that wrote aborts the Kafka transaction;
-- the PostgreSQL transaction can then write no more to Kafka and cannot commit.
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'before the savepoint');
SAVEPOINT s;
INSERT INTO txn_out (part, v) VALUES (0, 'in the savepoint');
ROLLBACK TO SAVEPOINT s;
INSERT INTO txn_local VALUES ('after the rollback to savepoint');
INSERT INTO txn_out (part, v) VALUES (0, 'after the savepoint');
ROLLBACK;
BEGIN;
SAVEPOINT s;
INSERT INTO txn_out (part, v) VALUES (0, 'only in the savepoint');
ROLLBACK TO SAVEPOINT s;
INSERT INTO txn_local VALUES ('not committed either');
COMMIT;
SELECT v FROM txn_local ORDER BY v;
-- A subtransaction that wrote nothing, or that committed, changes nothing.
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'kept 1');
SAVEPOINT s;
SELECT 1;
ROLLBACK TO SAVEPOINT s;
SAVEPOINT t;
INSERT INTO txn_out (part, v) VALUES (0, 'kept 2');
RELEASE SAVEPOINT t;
COMMIT;
-- A PL/pgSQL exception block that catches an error after writing is such a rollback.
DO $$
BEGIN
    BEGIN
        INSERT INTO txn_out (part, v) VALUES (0, 'caught');
        PERFORM 1 / 0;
    EXCEPTION WHEN division_by_zero THEN
        RAISE NOTICE 'caught';
    END;
END
$$;

-- A non-transactional table in the same transaction produces as before: its message
-- stays when the transaction rolls back.
BEGIN;
INSERT INTO plain_out (part, v) VALUES (1, 'plain');
INSERT INTO txn_out (part, v) VALUES (1, 'transactional and rolled back');
ROLLBACK;

-- PREPARE TRANSACTION cannot include a Kafka transaction.
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'prepared');
PREPARE TRANSACTION 'kafka_txn';

-- Two backends with transactions open at once do not fence each other: both commit.
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'first backend');
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', $$INSERT INTO txn_out (part, v) VALUES (1, 'second backend')$$);
SELECT dblink_exec('other', 'COMMIT');
COMMIT;
-- A backend terminated in the middle of a transaction aborts it on its way out, and a
-- later backend (here: this one, and the next in its slot) is not held up by it.
SELECT pid AS other_pid FROM dblink('other', 'SELECT pg_backend_pid()') AS t(pid int) \gset
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', $$INSERT INTO txn_out (part, v) VALUES (1, 'terminated')$$);
SELECT pg_terminate_backend(:other_pid, 10000);
SELECT dblink_disconnect('other');
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=postgres',
    current_setting('unix_socket_directories'), current_setting('port'), current_database()));
SELECT dblink_exec('other', $$INSERT INTO txn_out (part, v) VALUES (1, 'next backend')$$);
SELECT dblink_disconnect('other');
INSERT INTO txn_out (part, v) VALUES (1, 'this backend');

-- Every message sent, and whether read_committed readers see it: those of committed
-- transactions (and the plain one) only. The scans read exactly what kafka-tool's
-- consumer reads at each isolation level (partition:value, sorted, joined by |).
SELECT v, count(*) AS sent, count(*) FILTER (WHERE v IN (SELECT v FROM txn_out)) AS read_committed
FROM txn_uncommitted WHERE v NOT LIKE 'concurrent %' GROUP BY v ORDER BY v;
\set raw_committed `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_txn --isolation-level read_committed | awk -F'\t' '{ print $1 ":" $3 }' | LC_ALL=C sort | paste -sd'|'`
\set raw_uncommitted `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_txn --isolation-level read_uncommitted | awk -F'\t' '{ print $1 ":" $3 }' | LC_ALL=C sort | paste -sd'|'`
SELECT count(*) AS read_committed, string_agg(part || ':' || v, '|' ORDER BY part || ':' || v COLLATE "C") = :'raw_committed' AS same_as_kafka_tool FROM txn_out;
SELECT count(*) AS read_uncommitted, string_agg(part || ':' || v, '|' ORDER BY part || ':' || v COLLATE "C") = :'raw_uncommitted' AS same_as_kafka_tool FROM txn_uncommitted;

-- A topic written by transactional producers (kafka-tool: a committed, an aborted and an
-- open transaction, and plain messages): read_committed reads the committed and plain
-- messages, up to the open transaction; read_uncommitted reads all of them. Each scan
-- reads the messages kafka-tool's consumer reads at its isolation level.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_txn_mixed --partitions 2 >/dev/null
\! seq 1 5 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_mixed --partition 0 --transactional-id regress-mixed --end commit >/dev/null
\! seq 6 8 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_mixed --partition 0 --transactional-id regress-mixed --end abort >/dev/null
\! seq 9 10 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_mixed --partition 1 >/dev/null
\! seq 11 12 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_mixed --partition 1 --transactional-id regress-open --end open >/dev/null
CREATE FOREIGN TABLE txn_mixed (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int)
SERVER txn_server OPTIONS (topic 'regress_txn_mixed');
CREATE FOREIGN TABLE txn_mixed_uncommitted (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int)
SERVER txn_server OPTIONS (topic 'regress_txn_mixed', isolation_level 'read_uncommitted');
\set raw_committed `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_txn_mixed --isolation-level read_committed | cut -f3 | sort -n | paste -sd,`
\set raw_uncommitted `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_txn_mixed --isolation-level read_uncommitted | cut -f3 | sort -n | paste -sd,`
SELECT string_agg(n::text, ',' ORDER BY n) AS read_committed, string_agg(n::text, ',' ORDER BY n) = :'raw_committed' AS same_as_kafka_tool FROM txn_mixed;
SELECT string_agg(n::text, ',' ORDER BY n) AS read_uncommitted, string_agg(n::text, ',' ORDER BY n) = :'raw_uncommitted' AS same_as_kafka_tool FROM txn_mixed_uncommitted;
-- The ends each isolation level reads to: the last stable offset (partition 0: past the
-- markers; partition 1: the open transaction's first message) and the high watermark.
SELECT * FROM kafka_fdw.watermarks('txn_mixed') ORDER BY partition;
SELECT * FROM kafka_fdw.watermarks('txn_mixed_uncommitted') ORDER BY partition;

-- An import of a topic with aborted transactions imports the committed messages only,
-- exactly once: kafka-tool's transactions (committed, aborted, committed) and plain
-- messages, then a transaction of kafka_fdw's open in another backend while an import
-- runs (it imports up to it), an aborted one after it, and the commit.
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_txn_import --partitions 2 >/dev/null
\! seq 1 5 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_import --partition 0 --transactional-id regress-import --end commit >/dev/null
\! seq 6 8 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_import --partition 0 --transactional-id regress-import --end abort >/dev/null
\! seq 9 10 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_import --partition 1 >/dev/null
\! seq 11 12 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_import --partition 0 --transactional-id regress-import --end commit >/dev/null
CREATE FOREIGN TABLE txn_import_source (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int)
SERVER txn_server OPTIONS (topic 'regress_txn_import');
CREATE TABLE txn_imported (part int, offs bigint, n int);
SELECT kafka_fdw.import('txn_import_source', 'txn_imported');
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=postgres',
    current_setting('unix_socket_directories'), current_setting('port'), current_database()));
SELECT dblink_exec('other', 'BEGIN');
SELECT dblink_exec('other', $$INSERT INTO txn_import_source (part, n) VALUES (0, 13), (0, 14), (1, 15)$$);
\! seq 16 17 | "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_txn_import --partition 1 --transactional-id regress-import --end abort >/dev/null
SELECT kafka_fdw.import('txn_import_source', 'txn_imported');
SELECT dblink_exec('other', 'COMMIT');
SELECT dblink_disconnect('other');
SELECT kafka_fdw.import('txn_import_source', 'txn_imported');
SELECT kafka_fdw.import('txn_import_source', 'txn_imported');
\set raw_committed `"$KAFKA_TOOL" dump --brokers "$KAFKA_BROKERS" --topic regress_txn_import --isolation-level read_committed | cut -f3 | sort -n | paste -sd,`
SELECT count(*) AS imported, count(DISTINCT (part, offs)) AS distinct_messages,
       string_agg(n::text, ',' ORDER BY n) AS messages,
       string_agg(n::text, ',' ORDER BY n) = :'raw_committed' AS same_as_kafka_tool
FROM txn_imported;
-- The stored offsets lie past the last transaction markers, at the high watermarks.
SELECT p.partition, p.next_offset = w.high AS at_the_end
FROM kafka_fdw.import_progress p JOIN kafka_fdw.watermarks('txn_import_source') w USING (partition)
WHERE p.target = 'txn_imported'::regclass ORDER BY p.partition;

-- A commit the coordinator refuses is an ERROR at COMMIT: the PostgreSQL transaction
-- rolls back with it (the local row is gone), and the next transaction gets a new
-- producer. (librdkafka's mock cluster, which can be told to refuse EndTxn. Its leader
-- lookups have been seen to take over 3 s once on a loaded machine: a 10-s timeout.)
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" create-topic regress_txn 2
CREATE SERVER mock_txn_server FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (brokers :'mock_brokers', transactional 'true', timeout_ms '10000');
CREATE USER MAPPING FOR PUBLIC SERVER mock_txn_server;
CREATE FOREIGN TABLE mock_txn_out (part int OPTIONS (partition 'true'), v text)
SERVER mock_txn_server OPTIONS (topic 'regress_txn');
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" request-errors EndTxn 53 53 53 53 53 53 53 53 53 53
BEGIN;
INSERT INTO mock_txn_out (part, v) VALUES (0, 'refused');
INSERT INTO txn_local VALUES ('refused with the commit');
COMMIT;
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" clear-errors EndTxn
SELECT v FROM txn_local ORDER BY v;
INSERT INTO mock_txn_out (part, v) VALUES (0, 'after the refusal');
SELECT v FROM mock_txn_out WHERE v = 'after the refusal';

-- A broker without Kafka transactions: tansu 0.6.0, say, takes a transactional id and
-- the messages of a transaction but offers no EndTxn to commit or abort it (librdkafka
-- would find out at COMMIT, after sending). The mock cluster is told to offer no EndTxn.
-- The first INSERT or COPY fails before anything is sent, with SQLSTATE 0A000; the topic
-- keeps the one message written without a transaction.
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" create-topic regress_txn_no_end 1
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" api-versions EndTxn none
CREATE SERVER txn_no_end FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'mock_brokers', transactional 'true');
CREATE USER MAPPING FOR PUBLIC SERVER txn_no_end;
CREATE FOREIGN TABLE no_end_txn_out (v text) SERVER txn_no_end OPTIONS (topic 'regress_txn_no_end');
CREATE FOREIGN TABLE no_end_plain (v text) SERVER txn_no_end
    OPTIONS (topic 'regress_txn_no_end', transactional 'false', isolation_level 'read_uncommitted');
INSERT INTO no_end_plain VALUES ('without a transaction');
\set VERBOSITY terse
INSERT INTO no_end_txn_out VALUES ('never sent');
BEGIN;
INSERT INTO txn_local VALUES ('rolled back with it');
COPY no_end_txn_out FROM STDIN;
never sent either
\.
ROLLBACK;
\set VERBOSITY default
DO $$
DECLARE
    state text;
    detail text;
    hint text;
BEGIN
    INSERT INTO no_end_txn_out VALUES ('never sent');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE 'SQLSTATE %: %', state, regexp_replace(detail, '127\.0\.0\.1:[0-9]+/[0-9a-z]+', 'BROKER');
    RAISE NOTICE 'HINT: %', hint;
END $$;
SELECT v FROM no_end_plain;
-- Every message the broker holds, read by the raw client.
\! "$KAFKA_TOOL" count --brokers "$KAFKA_MOCK_BROKERS" --topic regress_txn_no_end --isolation-level read_uncommitted | cut -d' ' -f1
SELECT count(*) FROM txn_local WHERE v = 'rolled back with it';
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" api-versions EndTxn 0 1

DROP EXTENSION dblink;
DROP TABLE txn_local, txn_imported;
DROP SERVER txn_server, mock_txn_server, txn_no_end CASCADE;
