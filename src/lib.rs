//! kafka_fdw: Apache Kafka topics as PostgreSQL foreign tables.
//!
//! Layers, each depending only on the ones below it (`tests/layout.sh` checks this):
//! - `api`, `fdw`: what PostgreSQL calls — SQL functions, scheduled tasks and the scheduler; the
//!   wrapper's callbacks and validator.
//! - `pg`: glue they share — errors, catalogs, pooled clients, privileges.
//! - `plan`, `options`, `codec`: pure Rust — WHERE clauses to offset ranges and where an
//!   import resumes; option parsing and table layout; message formats.
//! - `kafka`, `registry`: the Kafka client (librdkafka) and the Schema Registry client
//!   (HTTP), no PostgreSQL.
//! - `error`: the one error type, with its SQLSTATE classes.

// Every unsafe operation sits in an `unsafe` block that says why it is sound, also
// inside `unsafe fn`s (the 2024 edition's default).
#![deny(unsafe_op_in_unsafe_fn)]

pub mod api;
pub mod codec;
pub mod error;
pub mod fdw;
pub mod kafka;
pub mod options;
pub mod pg;
pub mod plan;
pub mod registry;

::pgrx::pg_module_magic!(name, version);

/// The extension's SQL objects live in schema `kafka_fdw`.
#[pgrx::pg_schema]
mod kafka_fdw {}

pgrx::extension_sql_file!(
    "../sql/wrapper.sql",
    name = "wrapper",
    requires = [fdw::validator::kafka_fdw_validator, fdw::validator::check_foreign_table],
);

pgrx::extension_sql_file!(
    "../sql/import.sql",
    name = "import",
    requires = ["wrapper", api::topics::topic_watermarks],
);

pgrx::extension_sql_file!(
    "../sql/tasks.sql",
    name = "tasks",
    requires = [
        "import",
        api::tasks::schedule_next_epoch,
    ],
);

/// Defines the settings, and registers the scheduler (scheduled tasks and import jobs)
/// and the foreign tables' statistics when the library is preloaded.
#[pgrx::pg_guard]
pub extern "C-unwind" fn _PG_init() {
    pg::schemas::define_settings();
    // SAFETY: reading a flag PostgreSQL sets while it loads preloaded libraries.
    if unsafe { pgrx::pg_sys::process_shared_preload_libraries_in_progress } {
        api::scheduler::register();
        pg::stats::init();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
