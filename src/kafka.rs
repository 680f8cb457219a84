//! The Kafka side of a scan, with no PostgreSQL in it.
//!
//! A scan is a set of [`ReadRange`]s (partition, first offset, end offset). The
//! [`RangeReader`] assigns exactly those ranges to a librdkafka consumer and hands out
//! messages until every range is exhausted. The end of a range is known, never waited
//! for: it is the high watermark captured at scan start (or a smaller bound from the
//! plan), and a partition whose remaining offsets hold no deliverable message (control
//! records, compaction gaps) is closed by librdkafka's partition-EOF event.
//!
//! Every wait is a loop of short polls. Between polls the host's `interrupt` hook runs
//! (PostgreSQL's `CHECK_FOR_INTERRUPTS`, which may unwind), and a wait with no progress
//! for the configured timeout fails with an error instead of hanging.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::BorrowedMessage;
use rdkafka::metadata::Metadata;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::Message;

use crate::error::{ErrorKind, FdwError, FdwResult};

/// The longest single blocking call into librdkafka, so interrupts are seen quickly.
pub const POLL_SLICE: Duration = Duration::from_millis(100);

/// The longest a fetch request may wait on the broker for more data. A scan never waits
/// for data past its end, but when it ends librdkafka has usually sent the next fetch
/// already, and a reused client's first fetch queues behind that one, so it must come
/// back quickly. Zero would make librdkafka re-fetch an exhausted partition in a tight
/// loop until the scan consumes its last message, so this is a few milliseconds.
pub const MAX_FETCH_WAIT: Duration = Duration::from_millis(5);

/// Called between poll slices. In a backend this is `CHECK_FOR_INTERRUPTS`.
pub type Interrupt = fn();

/// How to reach the cluster and how long to wait for it.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub brokers: String,
    /// The longest wait with no progress before a call fails.
    pub timeout: Duration,
    /// librdkafka's `fetch.wait.max.ms`: the most one fetch request may wait on the
    /// broker, capped at [`MAX_FETCH_WAIT`].
    pub fetch_wait: Duration,
    pub interrupt: Interrupt,
}

/// Offsets `[start, end)` of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Runs `create` with every signal blocked in the calling thread, so that the threads
/// librdkafka starts inherit a mask that keeps the host's signals (SIGINT for cancel,
/// SIGALRM for statement_timeout, ...) on the host's own thread.
fn with_signals_blocked<T>(create: impl FnOnce() -> T) -> T {
    // SAFETY: plain POSIX calls on stack-allocated signal sets; the old mask is restored
    // before returning, and `create` does not unwind through here (it returns a Result).
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut previous: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut previous);
        let created = create();
        libc::pthread_sigmask(libc::SIG_SETMASK, &previous, std::ptr::null_mut());
        created
    }
}

/// A consumer with no group: it reads the ranges it is assigned and commits nothing.
pub fn new_consumer(settings: &ClientSettings) -> FdwResult<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", "kafka_fdw")
        // librdkafka only allows assign() with a group; nothing is ever committed to it.
        .set("group.id", "kafka_fdw")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A range whose start fell below the low watermark (retention) reads what is left.
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", settings.fetch_wait.min(MAX_FETCH_WAIT).as_millis().to_string());
    with_signals_blocked(|| config.create::<BaseConsumer>()).map_err(|e| {
        FdwError::new(ErrorKind::Kafka, "could not create a Kafka consumer").with_detail(e.to_string())
    })
}

/// Retries `call` in slices of at most [`POLL_SLICE`] until it succeeds, fails for good,
/// or `settings.timeout` has passed.
fn retry_sliced<T>(
    settings: &ClientSettings,
    what: &str,
    mut call: impl FnMut(Duration) -> KafkaResult<T>,
) -> FdwResult<T> {
    let started = Instant::now();
    loop {
        let slice = POLL_SLICE.min(settings.timeout.saturating_sub(started.elapsed())).max(Duration::from_millis(1));
        let error = match call(slice) {
            Ok(value) => return Ok(value),
            Err(error) if is_transient(&error) => error,
            Err(error) => {
                return Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(error.to_string()))
            }
        };
        (settings.interrupt)();
        if started.elapsed() >= settings.timeout {
            return Err(unreachable_brokers(settings, what, &error.to_string()));
        }
    }
}

type KafkaResult<T> = Result<T, KafkaError>;

/// Errors that mean "no answer yet" rather than "the answer is no".
fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::RequestTimedOut
        )
    )
}

fn unreachable_brokers(settings: &ClientSettings, what: &str, last_error: &str) -> FdwError {
    FdwError::new(
        ErrorKind::UnableToEstablishConnection,
        format!("could not {what}: no answer from Kafka brokers \"{}\" within {} ms", settings.brokers, settings.timeout.as_millis()),
    )
    .with_detail(format!("Last client error: {last_error}"))
    .with_hint("Check that the brokers are running and reachable, or raise the server option \"timeout_ms\".")
}

/// The partition ids of `topic`, in ascending order.
pub fn topic_partitions(consumer: &BaseConsumer, settings: &ClientSettings, topic: &str) -> FdwResult<Vec<i32>> {
    let what = format!("read metadata of topic \"{topic}\"");
    let metadata: Metadata = retry_sliced(settings, &what, |slice| {
        let metadata = consumer.fetch_metadata(Some(topic), slice)?;
        // While the cluster is still starting, a topic can briefly report a transient error.
        if let Some(code) = metadata.topics().first().and_then(|t| t.error()) {
            let code = RDKafkaErrorCode::from(code);
            if code == RDKafkaErrorCode::LeaderNotAvailable {
                return Err(KafkaError::MetadataFetch(code));
            }
        }
        Ok(metadata)
    })?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Err(no_such_topic(topic));
    };
    if let Some(code) = entry.error() {
        let code = RDKafkaErrorCode::from(code);
        if code == RDKafkaErrorCode::UnknownTopicOrPartition {
            return Err(no_such_topic(topic));
        }
        return Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(code.to_string()));
    }
    let mut partitions: Vec<i32> = entry.partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    Ok(partitions)
}

fn no_such_topic(topic: &str) -> FdwError {
    FdwError::new(ErrorKind::Kafka, format!("Kafka topic \"{topic}\" does not exist"))
        .with_hint("Create the topic first, or check the table's \"topic\" option.")
}

/// Low and high watermarks of the given partitions.
pub fn watermarks(
    consumer: &BaseConsumer,
    settings: &ClientSettings,
    topic: &str,
    partitions: &[i32],
) -> FdwResult<Vec<Watermarks>> {
    partitions
        .iter()
        .map(|&partition| {
            let what = format!("read the watermarks of topic \"{topic}\" partition {partition}");
            let (low, high) = retry_sliced(settings, &what, |slice| consumer.fetch_watermarks(topic, partition, slice))?;
            Ok(Watermarks { partition, low, high })
        })
        .collect()
}

/// Reads a fixed set of offset ranges of one topic, then ends.
pub struct RangeReader {
    consumer: BaseConsumer,
    settings: ClientSettings,
    topic: String,
    /// End offset (exclusive) per partition id; `None` once the partition is finished.
    open_ends: Vec<Option<i64>>,
    open_count: usize,
    last_client_error: Option<KafkaError>,
    /// Messages handed out so far.
    pub messages_read: u64,
}

impl RangeReader {
    /// Assigns the non-empty `ranges` to `consumer`. Empty ranges are never fetched, so a
    /// scan of empty or caught-up partitions returns at once.
    pub fn new(consumer: BaseConsumer, settings: ClientSettings, topic: &str, ranges: &[ReadRange]) -> FdwResult<Self> {
        let mut reader = RangeReader {
            consumer,
            settings,
            topic: topic.to_string(),
            open_ends: Vec::new(),
            open_count: 0,
            last_client_error: None,
            messages_read: 0,
        };
        reader.restart(ranges)?;
        Ok(reader)
    }

    /// Starts over on `ranges`, reusing the client (a rescan).
    pub fn restart(&mut self, ranges: &[ReadRange]) -> FdwResult<()> {
        let wanted: Vec<&ReadRange> = ranges.iter().filter(|r| r.start < r.end).collect();
        let slots = wanted.iter().map(|r| r.partition as usize + 1).max().unwrap_or(0);
        self.open_ends = vec![None; slots];
        self.open_count = wanted.len();
        let mut assignment = TopicPartitionList::with_capacity(wanted.len());
        for range in &wanted {
            self.open_ends[range.partition as usize] = Some(range.end);
            assignment
                .add_partition_offset(&self.topic, range.partition, Offset::Offset(range.start))
                .map_err(|e| self.client_error("build the partition assignment", e))?;
        }
        // Replacing the assignment also discards messages prefetched for the old one.
        self.consumer.assign(&assignment).map_err(|e| self.client_error("assign partitions", e))?;
        Ok(())
    }

    pub fn consumer(&self) -> &BaseConsumer {
        &self.consumer
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    /// Stops fetching and hands the client back for reuse. Unassigning also drops any
    /// prefetched messages, so the next user starts clean.
    pub fn into_consumer(self) -> BaseConsumer {
        // An unassign that fails leaves a fetch running that the next assign replaces.
        let _ = self.consumer.assign(&TopicPartitionList::new());
        self.consumer
    }

    fn client_error(&self, what: &str, error: KafkaError) -> FdwError {
        FdwError::new(ErrorKind::Kafka, format!("could not {what} of topic \"{}\"", self.topic)).with_detail(error.to_string())
    }

    /// The next message inside the ranges, or `None` once all of them are read.
    pub fn next_message(&mut self) -> FdwResult<Option<BorrowedMessage<'_>>> {
        let mut idle_since = Instant::now();
        while self.open_count > 0 {
            match self.consumer.poll(POLL_SLICE) {
                Some(Ok(message)) => {
                    let partition = message.partition();
                    let offset = message.offset();
                    let Some(end) = self.open_ends.get(partition as usize).copied().flatten() else {
                        continue; // prefetched after its range was closed
                    };
                    if offset + 1 >= end {
                        close(&self.consumer, &self.topic, &mut self.open_ends, &mut self.open_count, partition);
                    }
                    if offset >= end {
                        continue;
                    }
                    self.messages_read += 1;
                    return Ok(Some(message));
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    if self.open_ends.get(partition as usize).copied().flatten().is_some() {
                        close(&self.consumer, &self.topic, &mut self.open_ends, &mut self.open_count, partition);
                    }
                    idle_since = Instant::now();
                }
                Some(Err(error)) => {
                    if matches!(error, KafkaError::MessageConsumptionFatal(_)) || !is_transient(&error) {
                        return Err(self.client_error("read messages", error));
                    }
                    self.last_client_error = Some(error);
                    (self.settings.interrupt)();
                }
                None => {
                    (self.settings.interrupt)();
                    if idle_since.elapsed() >= self.settings.timeout {
                        return Err(self.stalled());
                    }
                }
            }
        }
        Ok(None)
    }

    fn stalled(&self) -> FdwError {
        let waiting: Vec<String> = self
            .open_ends
            .iter()
            .enumerate()
            .filter(|(_, end)| end.is_some())
            .map(|(partition, _)| partition.to_string())
            .collect();
        let last = match &self.last_client_error {
            Some(error) => error.to_string(),
            None => "none".to_string(),
        };
        unreachable_brokers(
            &self.settings,
            &format!("read topic \"{}\" partition(s) {}", self.topic, waiting.join(", ")),
            &last,
        )
    }
}

/// Marks a partition finished and stops fetching it.
fn close(consumer: &BaseConsumer, topic: &str, open_ends: &mut [Option<i64>], open_count: &mut usize, partition: i32) {
    open_ends[partition as usize] = None;
    *open_count -= 1;
    let mut finished = TopicPartitionList::with_capacity(1);
    finished.add_partition(topic, partition);
    // Unassigning only saves fetch work; a failure changes no result, since messages of
    // closed partitions are dropped above.
    let _ = consumer.incremental_unassign(&finished);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    fn no_interrupt() {}

    fn test_settings(brokers: &str) -> ClientSettings {
        ClientSettings {
            brokers: brokers.to_string(),
            timeout: Duration::from_secs(5),
            fetch_wait: Duration::from_millis(100),
            interrupt: no_interrupt,
        }
    }

    fn produce(brokers: &str, topic: &str, partition: i32, payloads: &[String]) {
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
        for payload in payloads {
            producer.send(BaseRecord::<(), _>::to(topic).partition(partition).payload(payload)).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    fn read_all(reader: &mut RangeReader) -> Vec<(i32, i64, String)> {
        let mut rows = Vec::new();
        while let Some(message) = reader.next_message().unwrap() {
            let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
            rows.push((message.partition(), message.offset(), payload));
        }
        rows
    }

    #[test]
    fn reads_exactly_the_ranges_up_to_the_captured_high_watermark() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("t", 3, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        produce(&brokers, "t", 0, &lines);
        produce(&brokers, "t", 2, &lines[..7]);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();

        assert_eq!(topic_partitions(&consumer, &settings, "t").unwrap(), vec![0, 1, 2]);
        let marks = watermarks(&consumer, &settings, "t", &[0, 1, 2]).unwrap();
        assert_eq!(
            marks,
            vec![
                Watermarks { partition: 0, low: 0, high: 50 },
                Watermarks { partition: 1, low: 0, high: 0 },
                Watermarks { partition: 2, low: 0, high: 7 }
            ]
        );
        // Messages produced after the watermarks were taken are not part of this scan.
        produce(&brokers, "t", 2, &lines[..3]);

        let ranges = [
            ReadRange { partition: 0, start: 10, end: 13 },
            ReadRange { partition: 1, start: 0, end: 0 },
            ReadRange { partition: 2, start: 0, end: 7 },
        ];
        let mut reader = RangeReader::new(consumer, settings, "t", &ranges).unwrap();
        let mut rows = read_all(&mut reader);
        rows.sort();
        let mut expected: Vec<(i32, i64, String)> = (10..13).map(|o| (0, o, format!("m{o}"))).collect();
        expected.extend((0..7).map(|o| (2, o, format!("m{o}"))));
        assert_eq!(rows, expected);
        assert_eq!(reader.messages_read, 10);
    }

    #[test]
    fn restart_reads_the_ranges_again() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("again", 2, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        produce(&brokers, "again", 0, &lines);
        produce(&brokers, "again", 1, &lines);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();
        let first = [ReadRange { partition: 0, start: 0, end: 20 }, ReadRange { partition: 1, start: 5, end: 6 }];
        let mut reader = RangeReader::new(consumer, settings, "again", &first).unwrap();
        // Stop half-way, as a LIMIT would, then rescan with other ranges.
        for _ in 0..3 {
            reader.next_message().unwrap().unwrap();
        }
        let second = [ReadRange { partition: 0, start: 18, end: 20 }, ReadRange { partition: 1, start: 0, end: 2 }];
        reader.restart(&second).unwrap();
        let mut rows = read_all(&mut reader);
        rows.sort();
        assert_eq!(
            rows,
            vec![(0, 18, "m18".into()), (0, 19, "m19".into()), (1, 0, "m0".into()), (1, 1, "m1".into())]
        );
        reader.restart(&first).unwrap();
        assert_eq!(read_all(&mut reader).len(), 21);
        // A reused client must not sit out a librdkafka backoff (1 s once pause/resume
        // was involved) or a long broker-side fetch wait before its first fetch.
        let consumer = reader.into_consumer();
        let started = Instant::now();
        let mut reader = RangeReader::new(consumer, test_settings(&brokers), "again", &second).unwrap();
        assert_eq!(read_all(&mut reader).len(), 4);
        assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    }

    #[test]
    fn empty_ranges_end_at_once() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("empty", 4, 1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        let consumer = new_consumer(&settings).unwrap();
        let partitions = topic_partitions(&consumer, &settings, "empty").unwrap();
        let ranges: Vec<ReadRange> = watermarks(&consumer, &settings, "empty", &partitions)
            .unwrap()
            .iter()
            .map(|w| ReadRange { partition: w.partition, start: w.low, end: w.high })
            .collect();
        let started = Instant::now();
        let mut reader = RangeReader::new(consumer, settings, "empty", &ranges).unwrap();
        assert!(read_all(&mut reader).is_empty());
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn a_missing_topic_is_a_clear_error() {
        let cluster = MockCluster::new(1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        let consumer = new_consumer(&settings).unwrap();
        let error = topic_partitions(&consumer, &settings, "nope").unwrap_err();
        assert_eq!(error.message, "Kafka topic \"nope\" does not exist");
    }

    #[test]
    fn an_unreachable_broker_fails_within_the_timeout() {
        // A port nothing listens on: connections are refused at once, forever.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let brokers = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut settings = test_settings(&brokers);
        settings.timeout = Duration::from_millis(700);
        let consumer = new_consumer(&settings).unwrap();
        let started = Instant::now();
        let error = topic_partitions(&consumer, &settings, "t").unwrap_err();
        assert_eq!(error.kind, ErrorKind::UnableToEstablishConnection);
        assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    }

    #[test]
    fn a_range_past_the_end_is_closed_by_partition_eof() {
        // The plan may ask for more than exists (e.g. a compacted tail); EOF ends it.
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("short", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        produce(&brokers, "short", 0, &["a".to_string(), "b".to_string()]);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();
        let mut reader =
            RangeReader::new(consumer, settings, "short", &[ReadRange { partition: 0, start: 0, end: 5 }]).unwrap();
        assert_eq!(read_all(&mut reader).len(), 2);
    }
}
