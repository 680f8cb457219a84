//! The extension's SQL functions beyond the wrapper itself: questions about topics, the
//! exactly-once import, scheduled SQL tasks and the background worker that runs both.

pub mod import;
pub mod scheduler;
pub mod stats;
pub mod task_run;
pub mod tasks;
pub mod topics;
