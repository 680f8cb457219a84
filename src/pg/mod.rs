//! PostgreSQL glue shared by the wrapper's callbacks (`fdw`) and the SQL functions
//! (`api`): raising errors, reading the catalogs, pooled Kafka clients per user mapping,
//! writer schemas from the Schema Registry (cached), privilege checks, Kafka transactions
//! tied to PostgreSQL's, subtransactions, errors naming the message of a row, text in
//! databases not encoded in UTF-8, and what differs between PostgreSQL versions
//! (`compat`).

pub mod catalog;
pub mod clients;
pub mod compat;
pub mod encoding;
pub mod errors;
pub mod locks;
pub mod privileges;
pub mod row_errors;
pub mod schemas;
pub mod stats;
pub mod subtransaction;
pub mod transactions;

/// Only `cargo pgrx test` (feature `pg_test`) builds these: they need a backend.
#[cfg(feature = "pg_test")]
mod in_db_tests;
