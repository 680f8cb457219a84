-- Privileges: every function checks what the equivalent query would need; import jobs
-- belong to the role that started them (their runs, sessions of that role, are watched
-- in scheduler.sql).
-- Then stored offsets: a topic switched or re-created never has messages skipped.
\getenv brokers KAFKA_BROKERS
CREATE SERVER priv_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER priv_server;
CREATE FOREIGN TABLE priv_source (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text
) SERVER priv_server OPTIONS (topic 'regress_privileges');

CREATE ROLE kafka_importer;
CREATE ROLE kafka_victim;
CREATE ROLE kafka_outsider;
GRANT USAGE ON SCHEMA kafka_fdw TO kafka_importer, kafka_victim, kafka_outsider;
GRANT CREATE ON SCHEMA public TO kafka_importer, kafka_victim;

-- A table owned by a normal role, with a trigger that makes that role a superuser when
-- it fires as one (the escalation a job running as the scheduler's superuser allowed),
-- and records who it fired as.
SET ROLE kafka_victim;
CREATE TABLE victim_table (part int, offs bigint, some_int int, some_text text);
CREATE TABLE seen_as (who name, superuser bool);
GRANT INSERT ON seen_as TO PUBLIC;
CREATE FUNCTION escalate() RETURNS trigger LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    INSERT INTO seen_as SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        ALTER ROLE kafka_victim SUPERUSER;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER escalate BEFORE INSERT ON victim_table FOR EACH ROW EXECUTE FUNCTION escalate();
GRANT INSERT ON victim_table TO kafka_importer;
RESET ROLE;
GRANT SELECT ON priv_source TO kafka_importer;

\set VERBOSITY terse
-- Refused: no SELECT on the source, no INSERT on the target, INSERT on some columns only.
SET ROLE kafka_outsider;
SELECT kafka_fdw.start_import('priv_source', 'victim_table');
RESET ROLE;
GRANT SELECT ON priv_source TO kafka_outsider;
SET ROLE kafka_outsider;
SELECT kafka_fdw.start_import('priv_source', 'victim_table');
RESET ROLE;
GRANT INSERT (some_int) ON victim_table TO kafka_outsider;
SET ROLE kafka_outsider;
SELECT kafka_fdw.start_import('priv_source', 'victim_table');
SELECT kafka_fdw.import('priv_source', 'victim_table');
-- The columns it may write are enough for a job that writes only those.
SELECT kafka_fdw.start_import('priv_source', 'victim_table', ARRAY['some_int']) IS NOT NULL AS started;
SELECT owner, source, target, state FROM kafka_fdw.import_jobs_status;
SELECT kafka_fdw.stop_import('priv_source', 'victim_table');
RESET ROLE;
REVOKE INSERT (some_int) ON victim_table FROM kafka_outsider;
REVOKE SELECT ON priv_source FROM kafka_outsider;

-- Refused: metadata without SELECT on the table or USAGE on the server; the
-- bookkeeping tables and the scheduler's functions, directly.
SET ROLE kafka_outsider;
SELECT * FROM kafka_fdw.watermarks('priv_source');
SELECT * FROM kafka_get_watermarks('priv_source');
SELECT * FROM kafka_fdw.offsets_for_time('priv_source', now());
SELECT * FROM kafka_fdw.topics('priv_server');
SELECT kafka_fdw.reset_import('priv_source', 'victim_table', 'earliest');
INSERT INTO kafka_fdw.import_progress (source, target, partition, next_offset, topic)
VALUES ('priv_source', 'victim_table', 0, 1000, 'regress_privileges');
UPDATE kafka_fdw.import_progress SET next_offset = 1000;
INSERT INTO kafka_fdw.tasks (owner, schedule, source, target, next_run)
VALUES ('postgres', '1 second', 'priv_source', 'victim_table', now());
UPDATE kafka_fdw.tasks SET owner = 'postgres';
SELECT kafka_fdw.lock_import('priv_source', 'victim_table');
RESET ROLE;
GRANT USAGE ON FOREIGN SERVER priv_server TO kafka_outsider;
SET ROLE kafka_outsider;
SELECT topic, partitions, messages FROM kafka_fdw.topics('priv_server') WHERE topic = 'regress_privileges';
RESET ROLE;

-- A job belongs to the role that started it. Run by that role, the import fires the
-- trigger as kafka_importer, and kafka_victim stays a normal role.
SET ROLE kafka_importer;
SELECT kafka_fdw.start_import('priv_source', 'victim_table') AS job \gset
SELECT owner, source, target, state FROM kafka_fdw.import_jobs_status;
SELECT kafka_fdw.import('priv_source', 'victim_table') AS imported;
RESET ROLE;
SELECT rolsuper AS victim_is_superuser FROM pg_roles WHERE rolname = 'kafka_victim';
SELECT who, superuser, count(*) FROM seen_as GROUP BY 1, 2;
SELECT count(*) AS imported, count(DISTINCT (part, offs)) AS distinct_messages FROM victim_table;
-- Other roles neither see nor stop it.
SET ROLE kafka_outsider;
SELECT count(*) AS jobs_seen FROM kafka_fdw.import_jobs_status;
SELECT count(*) AS pairs_seen FROM kafka_fdw.import_status;
SELECT kafka_fdw.stop_import(:job);
RESET ROLE;

-- A superuser who starts a job into another role's table is warned.
SELECT kafka_fdw.start_import('priv_source', 'victim_table') = :job AS same_job;
SELECT owner FROM kafka_fdw.import_jobs_status WHERE job_id = :job;
SELECT kafka_fdw.stop_import(:job);

-- A job whose target was dropped can still be stopped by its id; one whose owner was
-- dropped keeps the owner's name, and only superusers see and stop it.
SET ROLE kafka_importer;
CREATE TABLE importer_table (some_int int, some_text text);
SELECT kafka_fdw.start_import('priv_source', 'importer_table') AS job \gset
DROP TABLE importer_table;
SELECT kafka_fdw.stop_import(:job);
RESET ROLE;
CREATE ROLE kafka_leaving;
GRANT USAGE ON SCHEMA kafka_fdw TO kafka_leaving;
GRANT SELECT ON priv_source TO kafka_leaving;
CREATE TABLE leaving_table (some_int int);
GRANT INSERT ON leaving_table TO kafka_leaving;
SET ROLE kafka_leaving;
SELECT kafka_fdw.start_import('priv_source', 'leaving_table') AS job \gset
RESET ROLE;
DROP OWNED BY kafka_leaving;
DROP ROLE kafka_leaving;
SELECT owner, state FROM kafka_fdw.import_jobs_status WHERE job_id = :job;
SET ROLE kafka_importer;
SELECT count(*) AS seen_by_others FROM kafka_fdw.import_jobs_status WHERE job_id = :job;
SELECT kafka_fdw.stop_import(:job);
RESET ROLE;
SELECT kafka_fdw.stop_import(:job) AS stopped;
\set VERBOSITY default

-- Stored offsets belong to a topic. Switching the table to another topic starts that
-- one from its oldest message (NOTICE), and every message of both is imported.
CREATE TABLE switched (part int, offs bigint, some_int int, some_text text);
SELECT kafka_fdw.import('priv_source', 'switched');
ALTER FOREIGN TABLE priv_source OPTIONS (SET topic 'regress_privileges_other');
SELECT kafka_fdw.import('priv_source', 'switched');
SELECT kafka_fdw.import('priv_source', 'switched');
SELECT count(*) AS imported, count(*) FILTER (WHERE some_text LIKE 'priv %') AS first_topic,
       count(*) FILTER (WHERE some_text LIKE 'other %') AS second_topic,
       count(DISTINCT some_int) AS distinct_messages FROM switched;
SELECT partition, next_offset, topic, cluster IS NOT NULL AS has_cluster
FROM kafka_fdw.import_progress WHERE target = 'switched'::regclass ORDER BY partition;

-- A topic deleted and created again: the import refuses to skip the new messages, and
-- says how to go on. Topic ids differ from run to run: reset_errors shows them as UUID.
CREATE FUNCTION pg_temp.reset_error(statement text) RETURNS TABLE (state text, message text, detail text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE statement;
    RETURN QUERY SELECT 'no error', NULL::text, NULL::text, NULL::text;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    detail := regexp_replace(detail, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', 'UUID', 'g');
    RETURN NEXT;
END
$$;
CREATE SERVER scratch_server FOREIGN DATA WRAPPER kafka_fdw OPTIONS (brokers :'brokers');
CREATE USER MAPPING FOR PUBLIC SERVER scratch_server;
CREATE FOREIGN TABLE recreated (
    part int OPTIONS (partition 'true'),
    offs bigint OPTIONS (offset 'true'),
    some_int int,
    some_text text
) SERVER scratch_server OPTIONS (topic 'regress_recreated');
CREATE TABLE recreated_copy (part int, offs bigint, some_int int, some_text text);
SELECT kafka_fdw.import('recreated', 'recreated_copy');
-- Created again with fewer messages (10) than were imported (100): the topic id changed,
-- and the stored offsets are past the new high watermarks.
\! "$KAFKA_TOOL" delete-topic --brokers "$KAFKA_BROKERS" --topic regress_recreated >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_recreated --partitions 2 >/dev/null
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_recreated --round-robin --file "$KAFKA_FDW_REGRESS_DATA/recreated.csv" >/dev/null
\x on
SELECT * FROM pg_temp.reset_error($$SELECT kafka_fdw.import('recreated', 'recreated_copy')$$);
\x off
SELECT count(*) AS imported FROM recreated_copy;
-- Reset: 'latest' skips the 10 new messages, 'earliest' imports them.
SELECT kafka_fdw.reset_import('recreated', 'recreated_copy', 'latest');
SELECT kafka_fdw.import('recreated', 'recreated_copy');
SELECT kafka_fdw.reset_import('recreated', 'recreated_copy', 'earliest');
SELECT kafka_fdw.import('recreated', 'recreated_copy');
SELECT count(*) AS imported, count(*) FILTER (WHERE some_text LIKE 'recreated %') AS new_messages,
       (SELECT count(*) FROM recreated) AS in_topic FROM recreated_copy;
SELECT kafka_fdw.reset_import('recreated', 'recreated_copy', 'newest');
-- Created again and refilled past the stored offsets (5 per partition) before the next
-- import: only the topic id tells. Per call, on_reset => 'earliest' starts it over
-- (with a WARNING naming the ids).
\! "$KAFKA_TOOL" delete-topic --brokers "$KAFKA_BROKERS" --topic regress_recreated >/dev/null
\! "$KAFKA_TOOL" create-topic --brokers "$KAFKA_BROKERS" --topic regress_recreated --partitions 2 >/dev/null
\! "$KAFKA_TOOL" produce --brokers "$KAFKA_BROKERS" --topic regress_recreated --round-robin --file "$KAFKA_FDW_REGRESS_DATA/privileges.csv" >/dev/null
\x on
SELECT * FROM pg_temp.reset_error($$SELECT kafka_fdw.import('recreated', 'recreated_copy')$$);
\x off
SET client_min_messages = error;
SELECT kafka_fdw.import('recreated', 'recreated_copy', on_reset => 'earliest');
RESET client_min_messages;
SELECT count(*) AS imported, count(*) FILTER (WHERE some_text LIKE 'priv %') AS first_and_refilled,
       (SELECT count(*) FROM recreated) AS in_topic FROM recreated_copy;
