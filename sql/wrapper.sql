-- The wrapper, its handler and the table check; included by src/lib.rs.
CREATE FUNCTION kafka_fdw.kafka_fdw_handler() RETURNS fdw_handler
    AS 'MODULE_PATHNAME', 'kafka_fdw_handler' LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER kafka_fdw
    HANDLER kafka_fdw.kafka_fdw_handler
    VALIDATOR kafka_fdw.kafka_fdw_validator;

-- Runs in the session of whoever creates a foreign table (superusers included), so with
-- search_path pinned: no function or operator another role created can run in it.
CREATE FUNCTION kafka_fdw.check_new_foreign_tables() RETURNS event_trigger
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    command record;
BEGIN
    FOR command IN SELECT objid FROM pg_catalog.pg_event_trigger_ddl_commands()
                   WHERE object_type = 'foreign table'
    LOOP
        PERFORM kafka_fdw.check_foreign_table(command.objid);
    END LOOP;
END
$$;

-- Column rules that span several columns (one partition column, one offset column,
-- their types) can't be checked by the per-column validator, so they are checked when
-- the table is created or altered.
CREATE EVENT TRIGGER kafka_fdw_check_foreign_tables ON ddl_command_end
    WHEN TAG IN ('CREATE FOREIGN TABLE', 'ALTER FOREIGN TABLE', 'IMPORT FOREIGN SCHEMA')
    EXECUTE FUNCTION kafka_fdw.check_new_foreign_tables();
