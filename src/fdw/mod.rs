//! The foreign-data wrapper: the handler's callbacks (planning, scanning, inserting,
//! ANALYZE, IMPORT FOREIGN SCHEMA) and the option validator, as PostgreSQL calls them.

pub mod analyze;
pub mod handler;
pub mod modify;
mod outgoing;
mod private;
pub mod pushdown;
pub mod row;
pub mod scan;
pub mod schema;
pub mod validator;

/// Only `cargo pgrx test` (feature `pg_test`) builds these: they need a backend.
#[cfg(feature = "pg_test")]
mod in_db_tests;
