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
-- Every function the extension installs runs with search_path pinned to pg_catalog,
-- pg_temp, so nothing another role creates is ever picked by its SQL (the handler, a C
-- function of no SQL, aside).
SELECT p.oid::regprocedure AS unpinned
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kafka_fdw')
  AND NOT coalesce('search_path=pg_catalog, pg_temp' = ANY (p.proconfig), false)
ORDER BY 1;
SELECT count(*) > 20 AS pinned_functions
FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'kafka_fdw')
  AND 'search_path=pg_catalog, pg_temp' = ANY (p.proconfig);
