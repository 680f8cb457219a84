//! kafka_fdw: Apache Kafka topics as PostgreSQL foreign tables.
//!
//! Pure modules (no PostgreSQL): `error`, `options`, `codec`, `kafka`.
//! Glue (pgrx): `pgerror`, `catalog`, `connection`, `validator`, `handler`, `scan`, `row`.

pub mod codec;
pub mod error;
pub mod kafka;
pub mod options;

mod catalog;
mod connection;
mod handler;
mod pgerror;
mod row;
mod scan;
mod validator;

::pgrx::pg_module_magic!(name, version);

/// The extension's SQL objects live in schema `kafka_fdw`.
#[pgrx::pg_schema]
mod kafka_fdw {}

pgrx::extension_sql!(
    r#"
CREATE FUNCTION kafka_fdw.kafka_fdw_handler() RETURNS fdw_handler
    AS 'MODULE_PATHNAME', 'kafka_fdw_handler' LANGUAGE C STRICT;

CREATE FOREIGN DATA WRAPPER kafka_fdw
    HANDLER kafka_fdw.kafka_fdw_handler
    VALIDATOR kafka_fdw.kafka_fdw_validator;

CREATE FUNCTION kafka_fdw.check_new_foreign_tables() RETURNS event_trigger
    LANGUAGE plpgsql AS $$
DECLARE
    command record;
BEGIN
    FOR command IN SELECT objid FROM pg_event_trigger_ddl_commands()
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
"#,
    name = "wrapper",
    requires = [validator::kafka_fdw_validator, validator::check_foreign_table],
);

/// Only `cargo pgrx test` (feature `pg_test`) builds these: they need a backend.
#[cfg(feature = "pg_test")]
mod in_db_tests;

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
