//! Row codecs: how a message payload maps onto a table's data columns.
//!
//! Pure Rust, shared by the scan (decode) and the producer (encode), so what one writes
//! the other reads back unchanged.

pub mod csv;
