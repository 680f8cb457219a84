-- CREATE EXTENSION makes the handler, the validator and the wrapper.
CREATE EXTENSION kafka_fdw;
SELECT fdwname, fdwhandler::regproc, fdwvalidator::regproc FROM pg_foreign_data_wrapper;
SELECT evtname, evtevent, evttags FROM pg_event_trigger;
-- DROP EXTENSION removes everything it made, the schema included.
DROP EXTENSION kafka_fdw;
SELECT count(*) AS wrappers FROM pg_foreign_data_wrapper;
SELECT count(*) AS schemas FROM pg_namespace WHERE nspname = 'kafka_fdw';
SELECT count(*) AS event_triggers FROM pg_event_trigger;
SELECT count(*) AS functions FROM pg_proc WHERE proname LIKE 'kafka_fdw%' OR proname LIKE 'check_%foreign_table%';
-- Again, for the tests that follow.
CREATE EXTENSION kafka_fdw;
