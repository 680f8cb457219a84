-- Options are checked at CREATE and ALTER time, at every level.

-- Server: the reference page's options, and every mpp_execute value Greenplum knows.
CREATE SERVER s_ref FOREIGN DATA WRAPPER kafka_fdw
    OPTIONS (mpp_execute 'all segments', brokers 'localhost:9092');
CREATE SERVER s_any FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b1:9092,b2:9092', mpp_execute 'any');
CREATE SERVER s_master FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', mpp_execute 'master');
CREATE SERVER s_coord FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', mpp_execute 'coordinator', timeout_ms '2500');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', host 'x');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (mpp_execute 'all segments');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers '');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', mpp_execute 'some segments');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', timeout_ms '0');
CREATE SERVER bad FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers 'b:1', timeout_ms 'soon');
ALTER SERVER s_any OPTIONS (ADD bogus 'x');
ALTER SERVER s_any OPTIONS (SET mpp_execute 'nowhere');
ALTER SERVER s_any OPTIONS (DROP brokers);
ALTER SERVER s_any OPTIONS (SET mpp_execute 'coordinator', ADD timeout_ms '1500');
SELECT srvname, srvoptions FROM pg_foreign_server ORDER BY srvname;

-- The wrapper itself takes no options.
ALTER FOREIGN DATA WRAPPER kafka_fdw OPTIONS (ADD debug 'true');

-- User mappings hold librdkafka properties (per-role credentials), and nothing else.
CREATE USER MAPPING FOR PUBLIC SERVER s_ref;
CREATE USER MAPPING FOR CURRENT_USER SERVER s_any OPTIONS (password 'secret');
CREATE USER MAPPING FOR CURRENT_USER SERVER s_any OPTIONS ("sasl.username" 'me', "sasl.password" 'secret');

-- Foreign tables: topic is required; format, batch_size and buffer_delay are checked.
CREATE FOREIGN TABLE t_ref (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text
) SERVER s_ref OPTIONS (format 'csv', topic 't', batch_size '1000', buffer_delay '1000');
CREATE FOREIGN TABLE t_json (doc text) SERVER s_ref OPTIONS (format 'json', topic 't', buffer_delay '0');
CREATE FOREIGN TABLE t_bad (x text) SERVER s_ref OPTIONS (format 'csv');
CREATE FOREIGN TABLE t_bad (x text) SERVER s_ref OPTIONS (topic 't', format 'xml');
CREATE FOREIGN TABLE t_bad (x text) SERVER s_ref OPTIONS (topic 't', batch_size '0');
CREATE FOREIGN TABLE t_bad (x text) SERVER s_ref OPTIONS (topic 't', batch_size 'ten');
CREATE FOREIGN TABLE t_bad (x text) SERVER s_ref OPTIONS (topic 't', buffer_delay '-1');
CREATE FOREIGN TABLE t_bad (x text) SERVER s_ref OPTIONS (topic 't', partitions '4');
ALTER FOREIGN TABLE t_ref OPTIONS (SET batch_size '-5');
ALTER FOREIGN TABLE t_ref OPTIONS (DROP topic);
ALTER FOREIGN TABLE t_ref OPTIONS (SET buffer_delay '5000');
SELECT ftoptions FROM pg_foreign_table WHERE ftrelid = 't_ref'::regclass;

-- Columns: partition and offset are Booleans, at most one of each, of integer type.
CREATE FOREIGN TABLE t_bad (p int OPTIONS (partition 'yes please')) SERVER s_ref OPTIONS (topic 't');
CREATE FOREIGN TABLE t_bad (p int OPTIONS (kafka_key 'true')) SERVER s_ref OPTIONS (topic 't');
CREATE FOREIGN TABLE t_bad (p int OPTIONS (partition 'true', offset 'true')) SERVER s_ref OPTIONS (topic 't');
CREATE FOREIGN TABLE t_bad (
    p1 int OPTIONS (partition 'true'),
    p2 int OPTIONS (partition 'true')
) SERVER s_ref OPTIONS (topic 't');
CREATE FOREIGN TABLE t_bad (o int OPTIONS (offset 'true')) SERVER s_ref OPTIONS (topic 't');
CREATE FOREIGN TABLE t_bad (p text OPTIONS (partition 'true')) SERVER s_ref OPTIONS (topic 't');
CREATE FOREIGN TABLE t_small (p smallint OPTIONS (partition 'on'), o bigint OPTIONS (offset 'on')) SERVER s_ref OPTIONS (topic 't');
CREATE FOREIGN TABLE t_big (p bigint OPTIONS (partition 'true'), o bigint OPTIONS (offset 'false')) SERVER s_ref OPTIONS (topic 't');
ALTER FOREIGN TABLE t_ref ADD COLUMN p2 int OPTIONS (partition 'true');
ALTER FOREIGN TABLE t_ref ALTER COLUMN some_int OPTIONS (ADD offset 'true');
ALTER FOREIGN TABLE t_ref ALTER COLUMN offs OPTIONS (SET offset 'false');
ALTER FOREIGN TABLE t_ref ALTER COLUMN some_int TYPE bigint, ALTER COLUMN some_int OPTIONS (ADD offset 'true');
SELECT attname, attfdwoptions FROM pg_attribute
WHERE attrelid = 't_ref'::regclass AND attnum > 0 ORDER BY attnum;

DROP SERVER s_ref, s_any, s_master, s_coord CASCADE;
