-- kafka_fdw.stat_foreign_tables counts what scans and INSERTs did with each foreign
-- table, exactly: a scripted sequence and the counts it must give.
\getenv brokers KAFKA_BROKERS
\getenv mock_brokers KAFKA_MOCK_BROKERS
CREATE SERVER stats_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER stats_server;
CREATE FOREIGN TABLE stats_rows (part int OPTIONS (partition 'true'), offs bigint OPTIONS (offset 'true'), n int, t text)
SERVER stats_server OPTIONS (topic 'regress_stats');
CREATE FOREIGN TABLE stats_raw (v text) SERVER stats_server OPTIONS (topic 'regress_stats', format 'raw');
CREATE VIEW stats AS
SELECT relname, scans, messages_fetched AS fetched, rows_returned AS rows, bad_messages_skipped AS skipped,
       bad_messages_raised AS raised, inserts, messages_sent AS sent, messages_delivered AS delivered,
       messages_failed AS failed, messages_unknown AS unknown
FROM kafka_fdw.stat_foreign_tables WHERE relname LIKE 'stats%' ORDER BY relname;
SELECT kafka_fdw.stat_reset();
SELECT * FROM stats;

-- 100 messages written, then read whole and in part (the pushed-down range fetches 5).
INSERT INTO stats_rows (n, t) SELECT i, 'row ' || i FROM generate_series(1, 100) i;
SELECT count(*) FROM stats_rows;
SELECT n FROM stats_rows WHERE offs >= 95 ORDER BY n;
SELECT * FROM stats;
-- Bytes are those of the messages read: 105 CSV lines such as "1,row 1".
SELECT bytes_fetched = (SELECT sum(octet_length(i || ',row ' || i)) FROM generate_series(1, 100) i)
                     + (SELECT sum(octet_length(i || ',row ' || i)) FROM generate_series(96, 100) i) AS bytes_as_read,
       broker_wait_time >= 0 AS waited
FROM kafka_fdw.stat_foreign_tables WHERE relname = 'stats_rows';
-- EXPLAIN reads nothing, and counts no scan.
EXPLAIN (COSTS OFF) SELECT * FROM stats_rows;

-- A bad message: an ERROR, then skipped (count(*) decodes no column, so it is no bad
-- message there).
INSERT INTO stats_raw VALUES ('not a number,x');
SELECT count(*) FROM stats_rows;
SELECT sum(n) FROM stats_rows;
ALTER FOREIGN TABLE stats_rows OPTIONS (ADD on_error 'skip');
SELECT sum(n) FROM stats_rows;
SELECT * FROM stats;

-- Deliveries that fail: a broker refusing every produce request, and one that is down
-- (the messages time out before they were sent).
CREATE SERVER stats_fault_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'mock_brokers', timeout_ms '3000');
CREATE USER MAPPING FOR PUBLIC SERVER stats_fault_server;
CREATE FOREIGN TABLE stats_faults (x text) SERVER stats_fault_server OPTIONS (topic 'regress_stats_faults');
INSERT INTO stats_faults VALUES ('before');
-- 87 = INVALID_RECORD, which retries cannot fix.
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" request-errors Produce 87 87 87 87 87 87 87 87 87 87
INSERT INTO stats_faults SELECT 'refused ' || i FROM generate_series(1, 3) i;
\! "$KAFKA_TOOL" mock-ctl --control "$KAFKA_MOCK_CONTROL" clear-errors Produce
CREATE SERVER stats_dead_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '127.0.0.1:1', timeout_ms '1000');
CREATE USER MAPPING FOR PUBLIC SERVER stats_dead_server;
CREATE FOREIGN TABLE stats_dead (x text) SERVER stats_dead_server OPTIONS (topic 't');
INSERT INTO stats_dead VALUES ('lost'), ('lost too');
SELECT * FROM stats;

-- One table's counters reset; then all. Resetting is a superuser's, unless granted.
SELECT kafka_fdw.stat_reset('stats_rows');
SELECT relname, scans, inserts FROM stats;
CREATE ROLE regress_stats_role;
GRANT USAGE ON SCHEMA kafka_fdw TO regress_stats_role;
SET ROLE regress_stats_role;
SELECT count(*) > 0 AS visible FROM kafka_fdw.stat_foreign_tables;
SELECT kafka_fdw.stat_reset();
RESET ROLE;
SELECT kafka_fdw.stat_reset();
SELECT * FROM stats;
REVOKE USAGE ON SCHEMA kafka_fdw FROM regress_stats_role;
DROP ROLE regress_stats_role;
