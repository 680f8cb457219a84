//! The foreign-data wrapper: the handler's callbacks (planning, scanning, inserting,
//! ANALYZE, IMPORT FOREIGN SCHEMA) and the option validator, as PostgreSQL calls them.

pub mod analyze;
pub mod handler;
pub mod modify;
mod private;
pub mod pushdown;
pub mod row;
pub mod scan;
pub mod schema;
pub mod validator;
