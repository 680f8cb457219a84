-- mpp_execute 'all segments' lets parallel workers share a scan: the leader plans the
-- offset ranges once and workers claim them from a queue in shared memory. The result
-- is identical to the serial scan's.
\getenv brokers KAFKA_BROKERS
CREATE SERVER all_segments FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (mpp_execute 'all segments', brokers :'brokers');
CREATE SERVER coordinator_only FOREIGN DATA WRAPPER kafka_fdw
OPTIONS (mpp_execute 'coordinator', brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER all_segments;
CREATE USER MAPPING FOR PUBLIC SERVER coordinator_only;
CREATE FOREIGN TABLE kp (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
) SERVER all_segments OPTIONS (topic 'contrib_regress_csv');
CREATE FOREIGN TABLE kc (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int
) SERVER coordinator_only OPTIONS (topic 'contrib_regress_csv');
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
EXPLAIN (COSTS OFF) SELECT part, count(*), sum(some_int) FROM kp GROUP BY part;
-- Skipping bad values of a type caught in a subtransaction (a domain) is never planned
-- parallel: PostgreSQL 15 starts no subtransaction in a parallel query. Built-in types
-- are.
CREATE DOMAIN kp_int AS int CHECK (VALUE > 0);
CREATE FOREIGN TABLE kp_domain (part int OPTIONS (partition 'true'), some_int kp_int)
SERVER all_segments OPTIONS (topic 'contrib_regress_csv', on_error 'skip');
EXPLAIN (COSTS OFF) SELECT count(*) FROM kp_domain t WHERE t IS NOT NULL;
SELECT count(*) FROM kp_domain t WHERE t IS NOT NULL;
ALTER FOREIGN TABLE kp_domain ALTER COLUMN some_int TYPE int;
EXPLAIN (COSTS OFF) SELECT count(*) FROM kp_domain t WHERE t IS NOT NULL;
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM kp;
CREATE TABLE parallel_result AS SELECT * FROM kp;
SELECT part, count(*), sum(some_int), min(offs), max(offs) FROM kp GROUP BY part ORDER BY part;
-- The same with pushed conditions.
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF)
SELECT count(*) FROM kp WHERE (part = 0 AND offs > 1000) OR part = 3;
SELECT count(*), sum(some_int) FROM kp WHERE (part = 0 AND offs > 1000) OR part = 3;
-- Other servers keep serial plans.
EXPLAIN (COSTS OFF) SELECT count(*) FROM kc;
SET max_parallel_workers_per_gather = 0;
CREATE TABLE serial_result AS SELECT * FROM kp;
SELECT count(*), sum(some_int) FROM kp WHERE (part = 0 AND offs > 1000) OR part = 3;
SELECT (SELECT count(*) FROM serial_result) AS serial_rows,
       (SELECT count(*) FROM parallel_result) AS parallel_rows,
       (SELECT count(*) FROM (SELECT * FROM serial_result EXCEPT ALL SELECT * FROM parallel_result) d) AS only_serial,
       (SELECT count(*) FROM (SELECT * FROM parallel_result EXCEPT ALL SELECT * FROM serial_result) d) AS only_parallel;
-- Fewer workers start than were planned (here none): the participants that run claim
-- every unit the others would have read.
SET max_parallel_workers_per_gather = 2;
SET max_parallel_workers = 0;
EXPLAIN (ANALYZE, BUFFERS OFF, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM kp;
CREATE TABLE leader_only_result AS SELECT * FROM kp;
SELECT (SELECT count(*) FROM leader_only_result) AS leader_only_rows,
       (SELECT count(*) FROM (SELECT * FROM serial_result EXCEPT ALL SELECT * FROM leader_only_result) d) AS only_serial,
       (SELECT count(*) FROM (SELECT * FROM leader_only_result EXCEPT ALL SELECT * FROM serial_result) d) AS only_leader;
RESET max_parallel_workers;
