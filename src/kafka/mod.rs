//! The Kafka client, with no PostgreSQL in it: `config` (settings, property lookup,
//! client creation), `metadata` (topics, watermarks, offsets by time), `groups`
//! (consumer-group offsets), `reader` (offset
//! ranges, forwards or backwards), `sender` (producing with checked delivery), and
//! `transaction` (Kafka transactions begun, committed and aborted by the host).
//!
//! A scan is a set of [`ReadRange`]s (partition, first offset, end offset). The
//! [`RangeReader`] assigns exactly those ranges to a librdkafka consumer and hands out
//! messages until every range is exhausted. The end of a range is known, never waited
//! for: it is the high watermark captured at scan start (or a smaller bound from the
//! plan), and a partition whose remaining offsets hold no deliverable message (control
//! records, compaction gaps) is closed by librdkafka's partition-EOF event.
//!
//! Every request to Kafka is issued once, with the whole timeout to answer, and never
//! re-issued because a poll ended: metadata and offsets go through librdkafka's
//! asynchronous Admin API (DescribeTopics, ListOffsets) on a queue of their own, fetches
//! and produce requests are librdkafka's own. Only a transient answer is asked again,
//! after a backoff. Every wait is a loop of short polls. Between polls the host's
//! `interrupt` hook runs (PostgreSQL's `CHECK_FOR_INTERRUPTS`, which may unwind), and a
//! wait with no progress for the configured timeout fails with an error instead of
//! hanging.

mod config;
mod groups;
mod metadata;
mod reader;
mod sender;
#[cfg(test)]
mod testing;
mod transaction;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use config::{is_known_property, new_consumer, with_signals_blocked, ClientSettings, IsolationLevel, KafkaConsumer};
pub use groups::{commit_group_offsets, group_offsets};
pub use metadata::{all_topics, cluster_id, describe, offsets_for_time, topic_partitions, watermarks, TopicDescription};
pub use reader::{clear_assignment, Backwards, RangeReader};
pub use sender::{new_producer, Counts, DeliveryTracker, KafkaProducer, Outgoing, Sender, WrittenOffsets};
pub use transaction::{abort_transaction, await_visible, begin_transaction, commit_transaction, transactional_producer};

/// The longest single blocking call into librdkafka, so interrupts are seen quickly.
pub const POLL_SLICE: Duration = Duration::from_millis(100);

/// The longest a fetch request may wait on the broker for more data. A scan never waits
/// for data past its end, but when it ends librdkafka has usually sent the next fetch
/// already, and a reused client's first fetch queues behind that one, so it must come
/// back quickly. Zero would make librdkafka re-fetch an exhausted partition in a tight
/// loop until the scan consumes its last message, so this is a few milliseconds.
pub const MAX_FETCH_WAIT: Duration = Duration::from_millis(5);

pub use crate::error::Interrupt;

/// Offsets `[start, end)` of one partition. `repr(C)`: parallel scans share them in
/// dynamic shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct ReadRange {
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

/// A partition's low and high watermarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermarks {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}
