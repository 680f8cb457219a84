-- transactional 'true': INSERT and COPY produce in a Kafka transaction that commits in
-- PostgreSQL's pre-commit phase and aborts with the PostgreSQL transaction (or with a
-- subtransaction that wrote). isolation_level: what scans read.
--
-- The broker is librdkafka's mock cluster, the only one here whose producer API accepts
-- transactions (tansu 0.6.0 does not advertise EndTxn). The mock implements the protocol
-- (InitProducerId, AddPartitionsToTxn, EndTxn, errors on request) but no read_committed
-- semantics: it writes no transaction markers, reports the high watermark as the last
-- stable offset and lists no aborted transactions. So this file checks what kafka_fdw
-- does (when it commits and aborts, what errors roll back), not what a reader sees.
\getenv mock_brokers KAFKA_MOCK_BROKERS
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" create-topic regress_txn 2

CREATE SERVER txn_server FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (brokers :'mock_brokers', transactional 'true', timeout_ms '3000');
CREATE USER MAPPING FOR PUBLIC SERVER txn_server;
CREATE FOREIGN TABLE txn_out (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), v text)
SERVER txn_server OPTIONS (topic 'regress_txn', format 'csv');
-- The same topic without transactions (the table's option overrides the server's).
CREATE FOREIGN TABLE plain_out (part int OPTIONS (partition 'true'), v text)
SERVER txn_server OPTIONS (topic 'regress_txn', transactional 'false');

-- Options are checked when set.
CREATE FOREIGN TABLE txn_bad (v text) SERVER txn_server OPTIONS (topic 't', transactional 'maybe');
CREATE FOREIGN TABLE txn_bad (v text) SERVER txn_server OPTIONS (topic 't', isolation_level 'serializable');
ALTER SERVER txn_server OPTIONS (ADD "transactional.id" 'mine');
ALTER SERVER txn_server OPTIONS (ADD "isolation.level" 'read_uncommitted');
ALTER FOREIGN TABLE txn_out OPTIONS (ADD isolation_level 'read_uncommitted');
ALTER FOREIGN TABLE txn_out OPTIONS (SET isolation_level 'read_committed');

-- Messages committed with the transaction, several statements in one transaction.
CREATE TABLE txn_local (v text);
BEGIN;
INSERT INTO txn_out (part, v) SELECT 0, 'committed ' || i FROM generate_series(1, 3) i;
INSERT INTO txn_out (part, v) VALUES (1, 'committed 4');
INSERT INTO txn_local VALUES ('with the commit');
COMMIT;
SELECT part, v FROM txn_out ORDER BY part, offs;
-- Outside an explicit transaction: the statement's own transaction. COPY too.
INSERT INTO txn_out (part, v) VALUES (1, 'autocommit');
COPY txn_out (part, v) FROM STDIN (FORMAT csv);
0,copied
\.
SELECT count(*) FROM txn_out;

-- ROLLBACK and an ERROR abort the Kafka transaction; the next transaction works.
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'rolled back');
ROLLBACK;
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'before the error');
SELECT 1 / 0;
COMMIT;
INSERT INTO txn_out (part, v) VALUES (0, 'after the aborts');

-- A commit the coordinator refuses is an ERROR at COMMIT: the PostgreSQL transaction
-- rolls back with it (the local row is gone), and the next transaction gets a new producer.
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" request-errors EndTxn 53 53 53 53 53 53 53 53 53 53
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'refused');
INSERT INTO txn_local VALUES ('refused with the commit');
COMMIT;
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" clear-errors EndTxn
SELECT v FROM txn_local ORDER BY v;
INSERT INTO txn_out (part, v) VALUES (0, 'after the refusal');

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

-- A non-transactional table in the same transaction produces as before.
BEGIN;
INSERT INTO plain_out (part, v) VALUES (1, 'plain');
INSERT INTO txn_out (part, v) VALUES (1, 'transactional');
COMMIT;

-- PREPARE TRANSACTION cannot include a Kafka transaction.
BEGIN;
INSERT INTO txn_out (part, v) VALUES (0, 'prepared');
PREPARE TRANSACTION 'kafka_txn';

-- Two backends with transactions open at once (the second through dblink) do not fence
-- each other: both commit.
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT dblink_connect('other', format('host=%s port=%s dbname=%s user=postgres',
    current_setting('unix_socket_directories'), current_setting('port'), current_database()));
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

-- Every message the committed statements sent is there; read_uncommitted and
-- read_committed scans read the same on the mock (see above).
SELECT v FROM txn_out WHERE v IN ('first backend', 'second backend', 'next backend', 'this backend', 'kept 1', 'kept 2', 'transactional', 'plain', 'after the refusal', 'after the aborts') ORDER BY v;
ALTER FOREIGN TABLE txn_out OPTIONS (SET isolation_level 'read_uncommitted');
CREATE TEMP TABLE uncommitted_count AS SELECT count(*) AS n FROM txn_out;
ALTER FOREIGN TABLE txn_out OPTIONS (DROP isolation_level);
SELECT count(*) = (SELECT n FROM uncommitted_count) AS same_count FROM txn_out;

-- A topic written by transactional producers (kafka-tool: a committed, an aborted and an
-- open transaction, and plain messages): a read_committed scan counts what the raw
-- client counts at read_committed (on the mock that includes the aborted and open
-- ones, see above), and reads the same messages.
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" create-topic regress_txn_mixed 2
\! seq 1 5 | "$KAFKA_TOOL" produce --brokers "$KAFKA_MOCK_BROKERS" --topic regress_txn_mixed --partition 0 --transactional-id regress-mixed --end commit >/dev/null
\! seq 6 8 | "$KAFKA_TOOL" produce --brokers "$KAFKA_MOCK_BROKERS" --topic regress_txn_mixed --partition 0 --transactional-id regress-mixed --end abort >/dev/null
\! seq 9 10 | "$KAFKA_TOOL" produce --brokers "$KAFKA_MOCK_BROKERS" --topic regress_txn_mixed --partition 1 >/dev/null
\! seq 11 12 | "$KAFKA_TOOL" produce --brokers "$KAFKA_MOCK_BROKERS" --topic regress_txn_mixed --partition 1 --transactional-id regress-open --end open >/dev/null
\set raw_count `"$KAFKA_TOOL" count --brokers "$KAFKA_MOCK_BROKERS" --topic regress_txn_mixed --isolation-level read_committed | cut -d' ' -f1`
\set raw_sum `"$KAFKA_TOOL" dump --brokers "$KAFKA_MOCK_BROKERS" --topic regress_txn_mixed --isolation-level read_committed | awk -F'\t' '{ s += $3 } END { print s + 0 }'`
CREATE FOREIGN TABLE txn_mixed (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int)
SERVER txn_server OPTIONS (topic 'regress_txn_mixed');
SELECT count(*) = :raw_count AS same_count, sum(n) = :raw_sum AS same_messages FROM txn_mixed;

-- A broker without Kafka transactions: tansu 0.6.0 takes a transactional id and the
-- messages of a transaction, but offers no EndTxn to commit or abort it (librdkafka
-- would find out at COMMIT, after sending). The first INSERT or COPY fails before
-- anything is sent, with SQLSTATE 0A000; the topic keeps the one message written
-- without a transaction.
\getenv brokers KAFKA_BROKERS
\! tansu topic create regress_txn_tansu --partitions 1 --broker "tcp://$KAFKA_BROKERS" >/dev/null
CREATE SERVER txn_tansu FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers', transactional 'true');
CREATE USER MAPPING FOR PUBLIC SERVER txn_tansu;
CREATE FOREIGN TABLE tansu_txn_out (v text) SERVER txn_tansu OPTIONS (topic 'regress_txn_tansu');
CREATE FOREIGN TABLE tansu_plain (v text) SERVER txn_tansu
    OPTIONS (topic 'regress_txn_tansu', transactional 'false', isolation_level 'read_uncommitted');
INSERT INTO tansu_plain VALUES ('without a transaction');
\set VERBOSITY terse
INSERT INTO tansu_txn_out VALUES ('never sent');
BEGIN;
INSERT INTO txn_local VALUES ('rolled back with it');
COPY tansu_txn_out FROM STDIN;
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
    INSERT INTO tansu_txn_out VALUES ('never sent');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RAISE NOTICE 'SQLSTATE %: %', state, regexp_replace(detail, '127\.0\.0\.1:[0-9]+/[0-9a-z]+', 'BROKER');
    RAISE NOTICE 'HINT: %', hint;
END $$;
SELECT v FROM tansu_plain;
-- Every message the broker holds, read by the raw client (tansu reports no high
-- watermark for transactional messages).
\! "$KAFKA_TOOL" count --brokers "$KAFKA_BROKERS" --topic regress_txn_tansu --isolation-level read_uncommitted | cut -d' ' -f1
SELECT count(*) FROM txn_local WHERE v = 'rolled back with it';

DROP EXTENSION dblink;
DROP TABLE txn_local;
DROP SERVER txn_server CASCADE;
DROP SERVER txn_tansu CASCADE;
