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

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, DeliveryResult, OwnedHeaders};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
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

/// Whether librdkafka knows a configuration property (global or topic, aliases
/// included; hidden test properties are not). Only looks the name up, in librdkafka's
/// own property listing: setting some properties has effects (`plugin.library.paths`
/// loads a library at once), and reading back an unset one reports it unknown.
pub fn is_known_property(name: &str) -> bool {
    static KNOWN: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    KNOWN.get_or_init(property_names).contains(name)
}

/// The first column of `rd_kafka_conf_properties_show`'s tables.
fn property_names() -> std::collections::HashSet<String> {
    let mut buffer: *mut libc::c_char = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: open_memstream allocates `buffer`, which holds `size` bytes of text once the
    // stream is closed; librdkafka only writes to the stream. The buffer is freed here.
    let listing = unsafe {
        let stream = libc::open_memstream(&mut buffer, &mut size);
        if stream.is_null() {
            return Default::default();
        }
        rdkafka::bindings::rd_kafka_conf_properties_show(stream.cast());
        libc::fclose(stream);
        let text = String::from_utf8_lossy(std::slice::from_raw_parts(buffer as *const u8, size)).into_owned();
        libc::free(buffer.cast());
        text
    };
    listing
        .lines()
        .filter_map(|line| line.split_once(" | ").map(|(name, _)| name.trim()))
        .filter(|name| !name.is_empty() && *name != "Property" && !name.contains(' '))
        .map(str::to_string)
        .collect()
}

/// The last error librdkafka reported on its own, outside any call: failed
/// authentication, a TLS handshake, a broker going down. These otherwise only reach a
/// log, and the call that then times out could not say why.
#[derive(Default)]
pub struct ClientErrors {
    last: Mutex<Option<String>>,
}

impl ClientErrors {
    fn record(&self, error: KafkaError, reason: &str) {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // "All brokers are down" follows every failure: keep the failure's own reason
        // (an authentication or TLS error, say).
        if last.is_some() && error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        *last = Some(if reason.is_empty() { error.to_string() } else { without_timing(reason).to_string() });
    }

    fn take(&self) -> Option<String> {
        self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

/// A broker error's reason without librdkafka's trailer "(after 15ms in state
/// AUTH_REQ, 1 identical error(s) suppressed)", which varies from one failure to the next.
fn without_timing(reason: &str) -> &str {
    match reason.rfind(" (after ") {
        Some(start) if reason.ends_with(')') => &reason[..start],
        _ => reason,
    }
}

impl ClientContext for ClientErrors {
    fn error(&self, error: KafkaError, reason: &str) {
        self.record(error, reason);
    }
}

impl ConsumerContext for ClientErrors {}

/// Consumers remember their client errors.
pub type KafkaConsumer = BaseConsumer<ClientErrors>;

/// How to reach the cluster and how long to wait for it.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub brokers: String,
    /// librdkafka properties of the server and user mapping (credentials, TLS, tuning),
    /// applied over kafka_fdw's defaults.
    pub properties: Vec<(String, String)>,
    /// The longest wait with no progress before a call fails.
    pub timeout: Duration,
    /// The most one fetch request may wait on the broker, as asked (`buffer_delay`);
    /// consumers use [`ClientSettings::consumer_fetch_wait`].
    pub fetch_wait: Duration,
    pub interrupt: Interrupt,
}

impl ClientSettings {
    /// A consumer's `fetch.wait.max.ms`: `fetch_wait`, capped at [`MAX_FETCH_WAIT`].
    pub fn consumer_fetch_wait(&self) -> Duration {
        self.fetch_wait.min(MAX_FETCH_WAIT)
    }
}

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
pub fn new_consumer(settings: &ClientSettings) -> FdwResult<KafkaConsumer> {
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
        .set("fetch.wait.max.ms", settings.consumer_fetch_wait().as_millis().to_string())
        // When the prefetch queue is full, librdkafka pauses fetching for this long
        // (default: a whole second, a stall every few hundred thousand messages).
        .set("fetch.queue.backoff.ms", "10")
        // Prefetch at most this much per client: bounds a scan's memory.
        .set("queued.max.messages.kbytes", "16384");
    apply_properties(&mut config, settings);
    with_signals_blocked(|| config.create_with_context::<_, KafkaConsumer>(ClientErrors::default())).map_err(|e| {
        FdwError::new(ErrorKind::Kafka, "could not create a Kafka consumer").with_detail(e.to_string())
    })
}

fn apply_properties(config: &mut ClientConfig, settings: &ClientSettings) {
    for (name, value) in &settings.properties {
        config.set(name, value);
    }
}

/// Retries `call` in slices of at most [`POLL_SLICE`] until it succeeds, fails for good,
/// or `settings.timeout` has passed.
fn retry_sliced<T>(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    what: &str,
    mut call: impl FnMut(Duration) -> KafkaResult<T>,
) -> FdwResult<T> {
    let started = Instant::now();
    // Only errors reported during this call explain its failure.
    consumer.context().take();
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
            let last_error = reported_errors(consumer).unwrap_or_else(|| error.to_string());
            return Err(unreachable_brokers(settings, what, &last_error));
        }
    }
}

type KafkaResult<T> = Result<T, KafkaError>;

/// Events served while looking for the reason of a failure. A poll serves at most one,
/// and does not tell an empty queue from a served log event.
const EVENTS_SERVED: usize = 1000;

/// The last error librdkafka reported since the last call. Its error events wait in the
/// consumer's queue until polled, which metadata and offset requests do not do, so this
/// serves the queue: only on the way to failing, since it may also consume messages of a
/// partition being read, which the failed query no longer needs.
fn reported_errors(consumer: &KafkaConsumer) -> Option<String> {
    for _ in 0..EVENTS_SERVED {
        consumer.poll(Duration::ZERO);
    }
    consumer.context().take()
}

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
    .with_hint("Check that the brokers are running and reachable, and the credentials and TLS properties of the server and user mapping; or raise the server option \"timeout_ms\".")
}

/// The partition ids of `topic`, in ascending order.
pub fn topic_partitions(consumer: &KafkaConsumer, settings: &ClientSettings, topic: &str) -> FdwResult<Vec<i32>> {
    let what = format!("read metadata of topic \"{topic}\"");
    let metadata: Metadata = retry_sliced(consumer, settings, &what, |slice| {
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

/// Every topic of the cluster with its partition ids, by name.
pub fn all_topics(consumer: &KafkaConsumer, settings: &ClientSettings) -> FdwResult<Vec<(String, Vec<i32>)>> {
    let metadata = retry_sliced(consumer, settings, "read the cluster's metadata", |slice| consumer.fetch_metadata(None, slice))?;
    let mut topics: Vec<(String, Vec<i32>)> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| {
            let mut partitions: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
            partitions.sort_unstable();
            (t.name().to_string(), partitions)
        })
        .collect();
    topics.sort();
    Ok(topics)
}

fn no_such_topic(topic: &str) -> FdwError {
    FdwError::new(ErrorKind::Kafka, format!("Kafka topic \"{topic}\" does not exist"))
        .with_hint("Create the topic first, or check the table's \"topic\" option.")
}

/// Low and high watermarks of the given partitions.
pub fn watermarks(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    topic: &str,
    partitions: &[i32],
) -> FdwResult<Vec<Watermarks>> {
    partitions
        .iter()
        .map(|&partition| {
            let what = format!("read the watermarks of topic \"{topic}\" partition {partition}");
            let (low, high) = retry_sliced(consumer, settings, &what, |slice| consumer.fetch_watermarks(topic, partition, slice))?;
            Ok(Watermarks { partition, low, high })
        })
        .collect()
}

/// The ranges still to read in one partition, in offset order; bookkeeping only.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct PartitionRanges(VecDeque<(i64, i64)>);

/// What the fetcher of a partition must do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Go on reading where it is.
    Continue,
    /// Jump to this offset: the next range starts there.
    Seek(i64),
    /// Nothing more to read in this partition.
    Close,
}

impl PartitionRanges {
    /// Decides about a message at `offset`: whether it is inside a range (and so handed
    /// out), and what the fetcher does next. Messages arrive in offset order, but offsets
    /// may be missing (compaction, transaction markers), so a message can skip past the
    /// end of a range or several.
    fn on_message(&mut self, offset: i64) -> (bool, Next) {
        let mut skipped_a_range = false;
        while self.0.front().is_some_and(|&(_, end)| offset >= end) {
            self.0.pop_front();
            skipped_a_range = true;
        }
        let Some(&(start, end)) = self.0.front() else {
            return (false, Next::Close);
        };
        if offset < start {
            return (false, if skipped_a_range { Next::Seek(start) } else { Next::Continue });
        }
        if offset + 1 < end {
            return (true, Next::Continue);
        }
        self.0.pop_front();
        match self.0.front() {
            Some(&(next_start, _)) => (true, Next::Seek(next_start)),
            None => (true, Next::Close),
        }
    }
}

/// For each of `partitions`, the first offset whose timestamp is at or after `unix_ms`,
/// or `None` when no message is (Kafka's time index lookup).
pub fn offsets_for_time(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    topic: &str,
    partitions: &[i32],
    unix_ms: i64,
) -> FdwResult<Vec<(i32, Option<i64>)>> {
    let what = format!("look up offsets by time in topic \"{topic}\"");
    let mut query = TopicPartitionList::with_capacity(partitions.len());
    for &partition in partitions {
        // Negative times are Kafka's codes for "latest" and "earliest": no message is
        // older than 1970, so ask for 0 instead.
        query
            .add_partition_offset(topic, partition, Offset::Offset(unix_ms.max(0)))
            .map_err(|e| FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(e.to_string()))?;
    }
    let answer = retry_sliced(consumer, settings, &what, |slice| consumer.offsets_for_times(query.clone(), slice))?;
    answer
        .elements()
        .iter()
        .map(|element| {
            element.error().map_err(|e| {
                FdwError::new(ErrorKind::Kafka, format!("could not {what}, partition {}", element.partition()))
                    .with_detail(e.to_string())
            })?;
            Ok((element.partition(), element.offset().to_raw().filter(|&offset| offset >= 0)))
        })
        .collect()
}

/// Counts delivery reports of a producer. Reports arrive on the thread that polls the
/// producer (the backend's own), but librdkafka requires the context to be shareable.
#[derive(Default)]
pub struct DeliveryTracker {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    client_errors: ClientErrors,
}

impl DeliveryTracker {
    /// Whether any message of this producer ever failed. librdkafka keeps some errors
    /// (a topic's authorization failure, say) in its metadata for minutes, so such a
    /// producer is not reused.
    pub fn has_failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed) > 0
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: KafkaError, reason: &str) {
        self.client_errors.record(error, reason);
    }
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, message)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                first.get_or_insert_with(|| format!("{error} (partition {})", message.partition()));
            }
        }
    }
}

pub type KafkaProducer = BaseProducer<DeliveryTracker>;

/// An idempotent producer whose messages fail after `settings.timeout` if Kafka does
/// not acknowledge them (librdkafka's default would wait five minutes). A NULL
/// partition goes through murmur2_random, the partitioner of Java clients.
pub fn new_producer(settings: &ClientSettings) -> FdwResult<KafkaProducer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("client.id", "kafka_fdw")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("message.timeout.ms", settings.timeout.as_millis().max(1).to_string())
        .set("linger.ms", "5")
        // Bounded memory for big INSERTs: sending waits while this much is queued.
        .set("queue.buffering.max.kbytes", "65536");
    apply_properties(&mut config, settings);
    with_signals_blocked(|| config.create_with_context::<_, KafkaProducer>(DeliveryTracker::default())).map_err(|e| {
        FdwError::new(ErrorKind::Kafka, "could not create a Kafka producer").with_detail(e.to_string())
    })
}

/// One message to produce. A `None` partition lets the partitioner choose.
#[derive(Debug, Clone, Default)]
pub struct Outgoing<'a> {
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// Milliseconds since 1970; `None` for the time of sending.
    pub timestamp: Option<i64>,
    pub headers: Option<OwnedHeaders>,
}

/// Sends messages to one topic and, at the end, waits until Kafka acknowledged every
/// one of them. `P` is the producer or something that lends one (a pooled client).
pub struct Sender<P: Borrow<KafkaProducer>> {
    producer: P,
    settings: ClientSettings,
    topic: String,
    sent: u64,
    /// The tracker's counts when this sender started (a pooled producer is reused).
    delivered_before: u64,
    failed_before: u64,
}

/// Serve delivery reports every this many messages, so they never pile up.
const POLL_EVERY: u64 = 1024;

/// rdkafka's `BaseProducer::poll` always waits out its whole timeout, even once a report
/// arrived, so waits on a producer poll in slices this short.
const PRODUCER_POLL_SLICE: Duration = Duration::from_millis(1);

/// librdkafka fails timed-out messages on a scan about once a second, so a delivery
/// report may come this long after `message.timeout.ms`.
const DELIVERY_REPORT_GRACE: Duration = Duration::from_secs(2);

impl<P: Borrow<KafkaProducer>> Sender<P> {
    pub fn new(producer: P, settings: ClientSettings, topic: &str) -> Self {
        let tracker = producer.borrow().context();
        *tracker.first_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        tracker.client_errors.take();
        Sender {
            delivered_before: tracker.delivered.load(Ordering::Relaxed),
            failed_before: tracker.failed.load(Ordering::Relaxed),
            producer,
            settings,
            topic: topic.to_string(),
            sent: 0,
        }
    }

    fn tracker(&self) -> &DeliveryTracker {
        self.producer.borrow().context()
    }

    /// Queues one message; while librdkafka's queue is full, serves delivery reports
    /// (in short slices, checking for interrupts) until there is room.
    pub fn send(&mut self, message: Outgoing<'_>) -> FdwResult<()> {
        let producer = self.producer.borrow();
        let mut record = BaseRecord::<[u8], [u8]>::to(&self.topic);
        record.partition = message.partition;
        record.key = message.key;
        record.payload = message.payload;
        record.timestamp = message.timestamp;
        record.headers = message.headers;
        let started = Instant::now();
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    producer.poll(PRODUCER_POLL_SLICE);
                    (self.settings.interrupt)();
                    if started.elapsed() >= self.settings.timeout {
                        return Err(unreachable_brokers(&self.settings, &format!("produce to topic \"{}\"", self.topic), "queue full"));
                    }
                }
                Err((error, returned)) => {
                    let partition = returned.partition.map(|p| format!(" partition {p}")).unwrap_or_default();
                    return Err(FdwError::new(
                        ErrorKind::Kafka,
                        format!("could not produce to topic \"{}\"{partition}", self.topic),
                    )
                    .with_detail(error.to_string()));
                }
            }
        }
        self.sent += 1;
        if self.sent % POLL_EVERY == 0 {
            producer.poll(Duration::ZERO);
        }
        Ok(())
    }

    /// Messages sent that Kafka has neither acknowledged nor failed yet.
    fn pending(&self) -> u64 {
        let tracker = self.tracker();
        let settled = tracker.delivered.load(Ordering::Relaxed) - self.delivered_before
            + tracker.failed.load(Ordering::Relaxed)
            - self.failed_before;
        self.sent.saturating_sub(settled)
    }

    /// Waits for every delivery report; the number of messages Kafka acknowledged, or an
    /// error saying how many failed and why the first one did. A failed message is
    /// never reported as produced.
    pub fn finish(&mut self) -> FdwResult<u64> {
        let producer = self.producer.borrow();
        let mut last_progress = Instant::now();
        let mut pending = self.pending();
        while pending > 0 {
            producer.poll(PRODUCER_POLL_SLICE);
            (self.settings.interrupt)();
            let now_pending = self.pending();
            if now_pending < pending {
                last_progress = Instant::now();
            } else if last_progress.elapsed() >= self.settings.timeout + DELIVERY_REPORT_GRACE {
                // message.timeout.ms fails every message after the timeout, so this is
                // only reached if librdkafka itself stalls.
                return Err(unreachable_brokers(&self.settings, &format!("produce to topic \"{}\"", self.topic), "no delivery reports"));
            }
            pending = now_pending;
        }
        let tracker = self.tracker();
        let failed = tracker.failed.load(Ordering::Relaxed) - self.failed_before;
        let delivered = tracker.delivered.load(Ordering::Relaxed) - self.delivered_before;
        if failed > 0 {
            let first = tracker.first_error.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone().unwrap_or_default();
            return Err(FdwError::new(
                ErrorKind::Kafka,
                format!("{failed} of {} messages to Kafka topic \"{}\" were not delivered", self.sent, self.topic),
            )
            .with_detail(match tracker.client_errors.take() {
                Some(client_error) => format!("First error: {first}. {delivered} messages were delivered. Last client error: {client_error}"),
                None => format!("First error: {first}. {delivered} messages were delivered."),
            })
            .with_hint("Messages already delivered stay in Kafka whether or not the transaction commits."));
        }
        Ok(delivered)
    }
}

/// Stops all fetching of a consumer and drops what it prefetched, so that its next
/// user starts clean.
pub fn clear_assignment(consumer: &KafkaConsumer) {
    // An unassign that fails leaves a fetch running that the next assign replaces.
    let _ = consumer.assign(&TopicPartitionList::new());
}

/// Reads a fixed set of offset ranges of one topic, then ends. `C` is the consumer or
/// something that lends one (a pooled client).
pub struct RangeReader<C: Borrow<KafkaConsumer>> {
    consumer: C,
    settings: ClientSettings,
    topic: String,
    /// Ranges left per partition id; empty once the partition is finished.
    partitions: Vec<PartitionRanges>,
    open_count: usize,
    last_client_error: Option<KafkaError>,
    /// Messages received from the client over every pass, inside the ranges or not.
    pub messages_fetched: u64,
}

impl<C: Borrow<KafkaConsumer>> RangeReader<C> {
    /// Assigns the non-empty `ranges` to `consumer`. Empty ranges are never fetched, so a
    /// scan of empty or caught-up partitions returns at once.
    pub fn new(consumer: C, settings: ClientSettings, topic: &str, ranges: &[ReadRange]) -> FdwResult<Self> {
        let mut reader = RangeReader {
            consumer,
            settings,
            topic: topic.to_string(),
            partitions: Vec::new(),
            open_count: 0,
            last_client_error: None,
            messages_fetched: 0,
        };
        reader.restart(ranges)?;
        Ok(reader)
    }

    /// Starts over on `ranges` of another topic.
    pub fn retarget(&mut self, topic: &str, ranges: &[ReadRange]) -> FdwResult<()> {
        self.topic = topic.to_string();
        self.restart(ranges)
    }

    /// Starts over on `ranges` (any order, several per partition allowed, not
    /// overlapping), reusing the client: a rescan.
    pub fn restart(&mut self, ranges: &[ReadRange]) -> FdwResult<()> {
        let mut wanted: Vec<&ReadRange> = ranges.iter().filter(|r| r.start < r.end).collect();
        wanted.sort_by_key(|r| (r.partition, r.start));
        let slots = wanted.iter().map(|r| r.partition as usize + 1).max().unwrap_or(0);
        self.partitions = vec![PartitionRanges::default(); slots];
        for range in &wanted {
            self.partitions[range.partition as usize].0.push_back((range.start, range.end));
        }
        self.open_count = self.partitions.iter().filter(|p| !p.0.is_empty()).count();
        let mut assignment = TopicPartitionList::with_capacity(self.open_count);
        for (partition, ranges) in self.partitions.iter().enumerate() {
            if let Some(&(start, _)) = ranges.0.front() {
                assignment
                    .add_partition_offset(&self.topic, partition as i32, Offset::Offset(start))
                    .map_err(|e| self.client_error("build the partition assignment", e))?;
            }
        }
        // Replacing the assignment also discards messages prefetched for the old one.
        self.consumer().assign(&assignment).map_err(|e| self.client_error("assign partitions", e))?;
        // Only errors of this pass explain its failure.
        self.last_client_error = None;
        self.consumer().context().take();
        Ok(())
    }

    pub fn consumer(&self) -> &KafkaConsumer {
        self.consumer.borrow()
    }

    /// Whether every range has been read.
    pub fn is_finished(&self) -> bool {
        self.open_count == 0
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    fn client_error(&self, what: &str, error: KafkaError) -> FdwError {
        FdwError::new(ErrorKind::Kafka, format!("could not {what} of topic \"{}\"", self.topic)).with_detail(error.to_string())
    }

    /// The next message inside the ranges, or `None` once all of them are read.
    pub fn next_message(&mut self) -> FdwResult<Option<BorrowedMessage<'_>>> {
        // Started at the first empty poll: reading the clock per message would cost more
        // than the rest of this loop.
        let mut idle_since: Option<Instant> = None;
        while self.open_count > 0 {
            match self.consumer.borrow().poll(POLL_SLICE) {
                Some(Ok(message)) => {
                    self.messages_fetched += 1;
                    let partition = message.partition();
                    let Some(ranges) = self.partitions.get_mut(partition as usize).filter(|r| !r.0.is_empty()) else {
                        continue; // prefetched after the partition was closed
                    };
                    let (inside, next) = ranges.on_message(message.offset());
                    match next {
                        Next::Continue => {}
                        // Seeking bumps librdkafka's fetch version, so messages fetched
                        // before it never reach this loop.
                        Next::Seek(offset) => self
                            .consumer
                            .borrow()
                            .seek(&self.topic, partition, Offset::Offset(offset), Duration::ZERO)
                            .map_err(|e| self.client_error("seek", e))?,
                        Next::Close => close(self.consumer.borrow(), &self.topic, &mut self.open_count, partition),
                    }
                    if inside {
                        return Ok(Some(message));
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    // The partition has nothing past this point; later ranges lie beyond
                    // the high watermark taken at scan start, so they are empty too.
                    if let Some(ranges) = self.partitions.get_mut(partition as usize).filter(|r| !r.0.is_empty()) {
                        ranges.0.clear();
                        close(self.consumer.borrow(), &self.topic, &mut self.open_count, partition);
                    }
                    idle_since = None;
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
                    if idle_since.get_or_insert_with(Instant::now).elapsed() >= self.settings.timeout {
                        return Err(self.stalled());
                    }
                }
            }
        }
        Ok(None)
    }

    fn stalled(&self) -> FdwError {
        let waiting: Vec<String> = self
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, ranges)| !ranges.0.is_empty())
            .map(|(partition, _)| partition.to_string())
            .collect();
        let last = match &self.last_client_error {
            Some(error) => error.to_string(),
            None => self.consumer.borrow().context().take().unwrap_or_else(|| "none".to_string()),
        };
        unreachable_brokers(
            &self.settings,
            &format!("read topic \"{}\" partition(s) {}", self.topic, waiting.join(", ")),
            &last,
        )
    }
}

/// Stops fetching a finished partition.
fn close(consumer: &KafkaConsumer, topic: &str, open_count: &mut usize, partition: i32) {
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
    use rdkafka::producer::BaseProducer;

    fn no_interrupt() {}

    fn test_settings(brokers: &str) -> ClientSettings {
        ClientSettings {
            brokers: brokers.to_string(),
            properties: Vec::new(),
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

    fn read_all<C: Borrow<KafkaConsumer>>(reader: &mut RangeReader<C>) -> Vec<(i32, i64, String)> {
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
        assert_eq!(reader.messages_fetched, 10);
    }

    fn ranges(spans: &[(i64, i64)]) -> PartitionRanges {
        PartitionRanges(spans.iter().copied().collect())
    }

    #[test]
    fn bookkeeping_delivers_inside_and_seeks_between_ranges() {
        let mut partition = ranges(&[(0, 2), (10, 12)]);
        assert_eq!(partition.on_message(0), (true, Next::Continue));
        assert_eq!(partition.on_message(1), (true, Next::Seek(10)));
        assert_eq!(partition.on_message(10), (true, Next::Continue));
        assert_eq!(partition.on_message(11), (true, Next::Close));
        assert_eq!(partition, ranges(&[]));
    }

    #[test]
    fn bookkeeping_survives_missing_offsets() {
        // Offset 1 is gone: 2 passes the first range, and the fetcher must jump to 10.
        let mut partition = ranges(&[(0, 2), (10, 12), (20, 22)]);
        assert_eq!(partition.on_message(0), (true, Next::Continue));
        assert_eq!(partition.on_message(2), (false, Next::Seek(10)));
        // Everything up to 20 is gone: the message at 21 is inside the last range.
        assert_eq!(partition.on_message(21), (true, Next::Close));
        // Past every range at once.
        let mut partition = ranges(&[(0, 2), (10, 12)]);
        assert_eq!(partition.on_message(50), (false, Next::Close));
    }

    #[test]
    fn reads_several_ranges_of_one_partition() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("gaps", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
        produce(&brokers, "gaps", 0, &lines);
        let consumer = new_consumer(&test_settings(&brokers)).unwrap();
        let wanted = [
            ReadRange { partition: 0, start: 4990, end: 5000 },
            ReadRange { partition: 0, start: 3, end: 5 },
            ReadRange { partition: 0, start: 2000, end: 2001 },
        ];
        let mut reader = RangeReader::new(consumer, test_settings(&brokers), "gaps", &wanted).unwrap();
        let offsets: Vec<i64> = read_all(&mut reader).iter().map(|(_, offset, _)| *offset).collect();
        let mut expected = vec![3, 4, 2000];
        expected.extend(4990..5000);
        assert_eq!(offsets, expected);
        // Seeking means the messages between the ranges were never delivered by the
        // client (a batch may still bring a few neighbours along).
        assert!(reader.messages_fetched < 1000, "fetched {}", reader.messages_fetched);
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
        let consumer = reader.consumer;
        clear_assignment(&consumer);
        let started = Instant::now();
        let mut reader = RangeReader::new(consumer, test_settings(&brokers), "again", &second).unwrap();
        assert_eq!(read_all(&mut reader).len(), 4);
        assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    }

    #[test]
    fn sends_are_acknowledged_before_finish_returns() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 4, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let settings = test_settings(&brokers);
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::new(&producer, settings.clone(), "out");
        for i in 0..5000 {
            let payload = format!("m{i}");
            let partition = if i % 2 == 0 { Some(i % 4) } else { None };
            sender.send(Outgoing { partition, payload: Some(payload.as_bytes()), ..Outgoing::default() }).unwrap();
        }
        assert_eq!(sender.finish().unwrap(), 5000);
        let consumer = new_consumer(&settings).unwrap();
        let marks = watermarks(&consumer, &settings, "out", &[0, 1, 2, 3]).unwrap();
        assert_eq!(marks.iter().map(|w| w.high).sum::<i64>(), 5000);
        // The same (pooled) producer counts afresh for the next statement.
        let mut again = Sender::new(&producer, settings, "out");
        again.send(Outgoing { partition: Some(0), payload: Some(b"x"), ..Outgoing::default() }).unwrap();
        assert_eq!(again.finish().unwrap(), 1);
    }

    #[test]
    fn failed_deliveries_make_finish_fail() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("out", 1, 1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.timeout = Duration::from_millis(1500);
        let producer = new_producer(&settings).unwrap();
        // A produce error that retries cannot fix.
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::Produce,
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
        );
        let mut sender = Sender::new(&producer, settings, "out");
        for _ in 0..3 {
            sender.send(Outgoing { partition: Some(0), payload: Some(b"lost"), ..Outgoing::default() }).unwrap();
        }
        let error = sender.finish().unwrap_err();
        assert_eq!(error.message, "3 of 3 messages to Kafka topic \"out\" were not delivered");
    }

    #[test]
    fn a_dead_broker_fails_the_sends_within_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let brokers = listener.local_addr().unwrap().to_string();
        drop(listener);
        let mut settings = test_settings(&brokers);
        settings.timeout = Duration::from_millis(800);
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::new(&producer, settings, "t");
        sender.send(Outgoing { partition: Some(0), payload: Some(b"x"), ..Outgoing::default() }).unwrap();
        let started = Instant::now();
        let error = sender.finish().unwrap_err();
        assert_eq!(error.message, "1 of 1 messages to Kafka topic \"t\" were not delivered");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
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
    fn all_topics_lists_every_topic_with_its_partitions() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("a", 2, 1).unwrap();
        cluster.create_topic("b", 3, 1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        let consumer = new_consumer(&settings).unwrap();
        let topics = all_topics(&consumer, &settings).unwrap();
        assert_eq!(topics, vec![("a".to_string(), vec![0, 1]), ("b".to_string(), vec![0, 1, 2])]);
    }

    #[test]
    fn client_errors_keep_the_reason_without_timings() {
        let errors = ClientErrors::default();
        let failure = "sasl_ssl://h:1/bootstrap: SASL authentication error: invalid-proof (after 5ms in state AUTH_REQ, 1 identical error(s) suppressed)";
        errors.record(KafkaError::Global(RDKafkaErrorCode::Authentication), failure);
        errors.record(KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down");
        assert_eq!(errors.take().as_deref(), Some("sasl_ssl://h:1/bootstrap: SASL authentication error: invalid-proof"));
        errors.record(KafkaError::Global(RDKafkaErrorCode::AllBrokersDown), "1/1 brokers are down");
        assert_eq!(errors.take().as_deref(), Some("1/1 brokers are down"));
        assert_eq!(errors.take(), None);
    }

    #[test]
    fn known_properties_are_looked_up_without_being_set() {
        assert!(is_known_property("sasl.username"));
        assert!(is_known_property("acks"));
        assert!(is_known_property("plugin.library.paths"));
        assert!(is_known_property("sasl.mechanisms"), "an alias");
        assert!(is_known_property("message.timeout.ms"), "a topic property");
        assert!(!is_known_property("test.mock.num.brokers"), "hidden");
        assert!(!is_known_property("no.such.property"));
        assert!(!is_known_property("brokers"));
    }

    #[test]
    fn properties_reach_the_client() {
        let cluster = MockCluster::new(1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.properties = vec![("security.protocol".into(), "nonsense".into())];
        let error = new_consumer(&settings).err().expect("an invalid value fails client creation");
        assert!(error.detail.unwrap().contains("security.protocol"));
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
