//! kafka_fdw: Apache Kafka topics as PostgreSQL foreign tables.
//!
//! Pure modules (no PostgreSQL): `error`, `options`, `plan`, `parallel`, `properties`, `codec`, `infer`,
//! `progress`, `kafka`.
//! Glue (pgrx): `pgerror`, `privileges`, `catalog`, `connection`, `pushdown`, `validator`, `handler`, `scan`,
//! `row`, `modify`, `functions`, `import`, `scheduler`, `schema`.

pub mod codec;
pub mod error;
pub mod infer;
pub mod kafka;
pub mod options;
pub mod parallel;
pub mod plan;
pub mod progress;
pub mod properties;

mod catalog;
mod connection;
mod functions;
mod handler;
mod import;
mod modify;
mod pgerror;
mod privileges;
mod pushdown;
mod row;
mod scan;
mod schema;
mod scheduler;
mod validator;

::pgrx::pg_module_magic!(name, version);

/// The extension's SQL objects live in schema `kafka_fdw`.
#[pgrx::pg_schema]
mod kafka_fdw {}

pgrx::extension_sql_file!(
    "../sql/wrapper.sql",
    name = "wrapper",
    requires = [validator::kafka_fdw_validator, validator::check_foreign_table],
);

pgrx::extension_sql_file!(
    "../sql/import.sql",
    name = "import",
    requires = [
        "wrapper",
        functions::watermarks,
        functions::meta_columns,
        import::import_plan,
        import::save_import_progress,
        import::reset_import,
        import::start_import,
        import::stop_import,
        import::stop_import_job,
        import::import_as,
    ],
);

/// Registers the import scheduler when the library is preloaded.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // SAFETY: reading a flag PostgreSQL sets while it loads preloaded libraries.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        scheduler::register();
    }
}

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
