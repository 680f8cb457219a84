-- What adjust/kafka_fdw's users rely on, under adjust's names: kafka_get_watermarks
-- (regclass) with adjust's columns, in the extension's schema, and the table option
-- num_partitions (accepted and validated; partitions come from the topic's metadata).
-- The tables and queries are those of adjust's tests.
\getenv brokers KAFKA_BROKERS
CREATE SERVER adjust_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER adjust_server;
CREATE FOREIGN TABLE kafka_test_part (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text,
    some_date date,
    some_time timestamp
)
SERVER adjust_server OPTIONS
    (format 'csv', topic 'contrib_regress_csv', batch_size '30', buffer_delay '100');

-- num_partitions, as adjust's parallel test sets it.
ALTER FOREIGN TABLE kafka_test_part OPTIONS (ADD num_partitions '4');
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 'kafka_test_part'::regclass;
-- A count that does not match the topic changes nothing: every partition is read.
ALTER FOREIGN TABLE kafka_test_part OPTIONS (SET num_partitions '2');
SELECT count(*), count(DISTINCT part) FROM kafka_test_part;
ALTER FOREIGN TABLE kafka_test_part OPTIONS (SET num_partitions '0');
ALTER FOREIGN TABLE kafka_test_part OPTIONS (SET num_partitions 'four');
CREATE FOREIGN TABLE kafka_bad (x text) SERVER adjust_server OPTIONS (topic 't', num_partitions '-1');

-- kafka_get_watermarks, as adjust's utils test calls it, and its signature.
SELECT SUM(offset_low), SUM(offset_high) FROM kafka_get_watermarks('kafka_test_part');
SELECT * FROM kafka_get_watermarks('kafka_test_part') ORDER BY partition;
SELECT pronamespace::regnamespace AS schema, pg_get_function_arguments(oid) AS arguments,
       pg_get_function_result(oid) AS result, proisstrict
FROM pg_proc WHERE proname = 'kafka_get_watermarks';
SELECT * FROM kafka_get_watermarks('pg_class');
-- It needs SELECT on the table (or any of its columns), as kafka_fdw.watermarks does.
-- (privileges.sql checks the refusal.)
CREATE ROLE adjust_reader;
GRANT SELECT (offs) ON kafka_test_part TO adjust_reader;
SET ROLE adjust_reader;
SELECT sum(offset_high) FROM kafka_get_watermarks('kafka_test_part');
RESET ROLE;
REVOKE ALL ON kafka_test_part FROM adjust_reader;
DROP ROLE adjust_reader;
