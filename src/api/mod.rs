//! The extension's SQL functions beyond the wrapper itself: questions about topics, the
//! exactly-once import and the background worker that runs its jobs.

pub mod functions;
pub mod import;
pub mod scheduler;
