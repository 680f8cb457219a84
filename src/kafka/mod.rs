//! The Kafka side of a scan, with no PostgreSQL in it.
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

use std::borrow::Borrow;
use std::ffi::{CStr, CString};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings;
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
    error.rdkafka_error_code().is_some_and(is_transient_code)
}

/// Error codes that mean "no answer yet" rather than "the answer is no".
fn is_transient_code(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::RequestTimedOut
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

/// One request of librdkafka's asynchronous Admin API, issued once on an existing
/// client and awaited in slices of at most [`POLL_SLICE`] so that interrupts are seen.
///
/// Owns a result queue of its own, the request's options and, once it arrived, the
/// result event; all three are destroyed on drop, also when an interrupt unwinds
/// through a wait. That is safe while the request is still in flight: librdkafka keeps
/// its own reference to the queue (and copies the options and arguments into the
/// request), and a result enqueued on a queue whose owner destroyed it is discarded.
struct AdminRequest {
    queue: *mut bindings::rd_kafka_queue_t,
    options: *mut bindings::rd_kafka_AdminOptions_t,
    event: *mut bindings::rd_kafka_event_t,
}

/// How long after its request timeout a result may still arrive: librdkafka fails a
/// timed-out request from a timer, so its event comes a little after the deadline.
const ADMIN_RESULT_GRACE: Duration = Duration::from_millis(500);

/// The pauses before a request is issued again after a transient answer: librdkafka's
/// defaults `retry.backoff.ms`, doubled after each retry up to `retry.backoff.max.ms`.
const RETRY_BACKOFF: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl AdminRequest {
    /// A request of kind `op` on `client` that librdkafka fails after `timeout`
    /// (broker lookup, sending, and the answer included).
    fn new(client: &KafkaConsumer, op: bindings::rd_kafka_admin_op_t, timeout: Duration) -> Self {
        let rk = client.client().native_ptr();
        let timeout_ms = timeout.as_millis().clamp(1, 3_600_000) as libc::c_int;
        let mut errstr = [0 as libc::c_char; 256];
        // SAFETY: `rk` is a live client handle, borrowed for this call only; the queue and
        // options created here are owned by the returned value and destroyed in Drop. The
        // timeout is within librdkafka's range, and `errstr` is writable for its length.
        unsafe {
            let queue = bindings::rd_kafka_queue_new(rk);
            let options = bindings::rd_kafka_AdminOptions_new(rk, op);
            bindings::rd_kafka_AdminOptions_set_request_timeout(options, timeout_ms, errstr.as_mut_ptr(), errstr.len());
            AdminRequest { queue, options, event: std::ptr::null_mut() }
        }
    }

    /// Waits, in slices checking for interrupts, until the result arrived or `deadline`
    /// (plus [`ADMIN_RESULT_GRACE`]) passed; the result event if it did.
    fn wait(&mut self, settings: &ClientSettings, deadline: Instant) -> Option<*mut bindings::rd_kafka_event_t> {
        let give_up = deadline + ADMIN_RESULT_GRACE;
        while self.event.is_null() {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let slice = POLL_SLICE.min(left).as_millis().max(1) as libc::c_int;
            // SAFETY: the queue is owned by self and alive; the event returned (if any)
            // becomes owned by self and is destroyed in Drop.
            self.event = unsafe { bindings::rd_kafka_queue_poll(self.queue, slice) };
            if self.event.is_null() {
                (settings.interrupt)();
            }
        }
        Some(self.event)
    }
}

impl Drop for AdminRequest {
    fn drop(&mut self) {
        // SAFETY: each pointer is owned by self and destroyed exactly once; librdkafka
        // keeps the queue alive for a request still in flight (see the type's comment).
        unsafe {
            if !self.event.is_null() {
                bindings::rd_kafka_event_destroy(self.event);
            }
            if !self.options.is_null() {
                bindings::rd_kafka_AdminOptions_destroy(self.options);
            }
            if !self.queue.is_null() {
                bindings::rd_kafka_queue_destroy(self.queue);
            }
        }
    }
}

/// The error of a result event, if it has one.
///
/// # Safety
/// `event` must be a live event.
unsafe fn event_error(event: *mut bindings::rd_kafka_event_t) -> Option<(RDKafkaErrorCode, String)> {
    let code = bindings::rd_kafka_event_error(event);
    if code == bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return None;
    }
    let text = bindings::rd_kafka_event_error_string(event);
    let text = if text.is_null() { String::new() } else { CStr::from_ptr(text).to_string_lossy().into_owned() };
    Some((RDKafkaErrorCode::from(code), text))
}

/// What one attempt at a request came to.
enum Attempt<T> {
    Done(T),
    /// A transient answer ("no leader yet", "timed out"): worth asking again.
    Retry(String),
}

/// Runs `attempt` (one request, issued once, given its deadline) until it is done, fails
/// for good, or `settings.timeout` has passed since the start; after a transient answer
/// it asks again, after a backoff from [`RETRY_BACKOFF`] to [`RETRY_BACKOFF_MAX`].
fn with_retries<T>(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    what: &str,
    mut attempt: impl FnMut(Instant) -> FdwResult<Attempt<T>>,
) -> FdwResult<T> {
    let deadline = Instant::now() + settings.timeout;
    // Only errors reported during this call explain its failure.
    consumer.context().take();
    let mut backoff = RETRY_BACKOFF;
    loop {
        let reason = match attempt(deadline)? {
            Attempt::Done(value) => return Ok(value),
            Attempt::Retry(reason) => reason,
        };
        let now = Instant::now();
        if now + RETRY_BACKOFF >= deadline {
            let last_error = reported_errors(consumer).unwrap_or(reason);
            return Err(unreachable_brokers(settings, what, &last_error));
        }
        // The last attempt still gets a backoff's time to answer.
        let resume = (now + backoff).min(deadline - RETRY_BACKOFF);
        backoff = (backoff * 2).min(RETRY_BACKOFF_MAX);
        while Instant::now() < resume {
            (settings.interrupt)();
            std::thread::sleep(resume.saturating_duration_since(Instant::now()).min(POLL_SLICE));
        }
    }
}

/// Awaits `request` and sorts its result: `Ok(Ok(event))` to read, `Ok(Err(reason))` to
/// ask again (no answer in time, or a transient error), or a definite error.
fn await_admin(
    request: &mut AdminRequest,
    settings: &ClientSettings,
    what: &str,
    deadline: Instant,
) -> FdwResult<Result<*mut bindings::rd_kafka_event_t, String>> {
    let Some(event) = request.wait(settings, deadline) else {
        return Ok(Err("no answer".to_string()));
    };
    // SAFETY: the event is alive as long as `request`.
    match unsafe { event_error(event) } {
        None => Ok(Ok(event)),
        Some((code, text)) if is_transient_code(code) => Ok(Err(text)),
        Some((code, text)) => Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}"))
            .with_detail(if text.is_empty() { code.to_string() } else { text })),
    }
}

/// One metadata request (of `topic`, or of the whole cluster), issued once with what is
/// left until `deadline`.
///
/// librdkafka's asynchronous Admin API cannot list all topics (DescribeTopics needs their
/// names), so the synchronous request runs on a helper thread while this thread waits in
/// slices of [`POLL_SLICE`], checking for interrupts. The helper borrows the client, so
/// it is scoped: if an interrupt unwinds, the scope waits for the request to end (at
/// most until `deadline`) before the unwinding goes on and may drop the client. An
/// interrupt is seen at once, but takes effect only when the request ends.
fn fetch_metadata_once(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    topic: Option<&str>,
    deadline: Instant,
) -> Result<Metadata, KafkaError> {
    let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
    std::thread::scope(|scope| {
        let (sender, receiver) = std::sync::mpsc::channel();
        // The helper must not take the host's signals (its handlers expect their own thread).
        let helper = with_signals_blocked(|| {
            std::thread::Builder::new().name("kafka_fdw metadata".into()).spawn_scoped(scope, move || {
                let _ = sender.send(consumer.fetch_metadata(topic, left));
            })
        });
        if helper.is_err() {
            // No thread to be had: wait on this one, without interrupts.
            return consumer.fetch_metadata(topic, left);
        }
        loop {
            match receiver.recv_timeout(POLL_SLICE) {
                Ok(answer) => return answer,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => (settings.interrupt)(),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::Fail))
                }
            }
        }
    })
}

/// What the cluster says of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Partition ids, ascending.
    pub partitions: Vec<i32>,
    /// The topic's id (a UUID, new each time a topic of that name is created), where the
    /// brokers report one (Kafka 2.8 and later, tansu; not the mock cluster).
    pub topic_id: Option<String>,
}

/// The partition ids of `topic`, in ascending order: one DescribeTopics request.
pub fn topic_partitions(consumer: &KafkaConsumer, settings: &ClientSettings, topic: &str) -> FdwResult<Vec<i32>> {
    describe(consumer, settings, topic).map(|description| description.partitions)
}

/// The partitions and id of `topic`: one DescribeTopics request.
pub fn describe(consumer: &KafkaConsumer, settings: &ClientSettings, topic: &str) -> FdwResult<TopicDescription> {
    let what = format!("read metadata of topic \"{topic}\"");
    match with_retries(consumer, settings, &what, |deadline| describe_topic(consumer, settings, topic, &what, deadline))? {
        Ok(description) => Ok(description),
        Err(RDKafkaErrorCode::UnknownTopicOrPartition) => Err(no_such_topic(topic)),
        Err(code) => Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(code.to_string())),
    }
}

/// Every topic of the cluster with its partition ids, by name.
pub fn all_topics(consumer: &KafkaConsumer, settings: &ClientSettings) -> FdwResult<Vec<(String, Vec<i32>)>> {
    let what = "read the cluster's metadata";
    let metadata = with_retries(consumer, settings, what, |deadline| match fetch_metadata_once(consumer, settings, None, deadline) {
        Ok(metadata) => Ok(Attempt::Done(metadata)),
        Err(error) if is_transient(&error) => Ok(Attempt::Retry(error.to_string())),
        Err(error) => Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(error.to_string())),
    })?;
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

/// Describes one topic: its partition ids, or the topic's own error code.
fn describe_topic(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    topic: &str,
    what: &str,
    deadline: Instant,
) -> FdwResult<Attempt<Result<TopicDescription, RDKafkaErrorCode>>> {
    let name = CString::new(topic).map_err(|_| no_such_topic(topic))?;
    let mut request = AdminRequest::new(
        consumer,
        bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBETOPICS,
        deadline.saturating_duration_since(Instant::now()),
    );
    // SAFETY: the collection copies the name and librdkafka copies the collection's names
    // into the request, so both are freed here; the handle, options and queue are alive.
    unsafe {
        let names = [name.as_ptr()];
        let collection = bindings::rd_kafka_TopicCollection_of_topic_names(names.as_ptr() as *mut _, 1);
        bindings::rd_kafka_DescribeTopics(consumer.client().native_ptr(), collection, request.options, request.queue);
        bindings::rd_kafka_TopicCollection_destroy(collection);
    }
    let event = match await_admin(&mut request, settings, what, deadline)? {
        Ok(event) => event,
        Err(reason) => return Ok(Attempt::Retry(reason)),
    };
    // SAFETY: the result and everything read from it live as long as the event, which
    // `request` owns until the end of this function; counts bound the arrays.
    unsafe {
        let result = bindings::rd_kafka_event_DescribeTopics_result(event);
        let mut count = 0;
        let topics = bindings::rd_kafka_DescribeTopics_result_topics(result, &mut count);
        let Some(&description) = (0..count).map(|i| *topics.add(i)).find(|d| !d.is_null()).as_ref() else {
            return Ok(Attempt::Done(Err(RDKafkaErrorCode::UnknownTopicOrPartition)));
        };
        let error = bindings::rd_kafka_TopicDescription_error(description);
        if !error.is_null() {
            let code = RDKafkaErrorCode::from(bindings::rd_kafka_error_code(error));
            if code != RDKafkaErrorCode::NoError {
                if is_transient_code(code) {
                    return Ok(Attempt::Retry(code.to_string()));
                }
                return Ok(Attempt::Done(Err(code)));
            }
        }
        let mut count = 0;
        let partitions = bindings::rd_kafka_TopicDescription_partitions(description, &mut count);
        let mut ids: Vec<i32> =
            (0..count).map(|i| bindings::rd_kafka_TopicPartitionInfo_partition(*partitions.add(i))).collect();
        ids.sort_unstable();
        let id = bindings::rd_kafka_TopicDescription_topic_id(description);
        let topic_id = if id.is_null() {
            None
        } else {
            uuid_text(bindings::rd_kafka_Uuid_most_significant_bits(id), bindings::rd_kafka_Uuid_least_significant_bits(id))
        };
        Ok(Attempt::Done(Ok(TopicDescription { partitions: ids, topic_id })))
    }
}

/// A UUID in its usual text form; `None` for the zero UUID, which brokers without topic
/// ids report.
fn uuid_text(most: i64, least: i64) -> Option<String> {
    if most == 0 && least == 0 {
        return None;
    }
    let hex = format!("{:016x}{:016x}", most as u64, least as u64);
    Some(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

/// The id of the cluster `consumer` talks to, from its brokers' metadata answers (librdkafka
/// keeps the last one); `None` when they report none, or no answer came within `wait`.
pub fn cluster_id(consumer: &KafkaConsumer, wait: Duration) -> Option<String> {
    consumer.client().fetch_cluster_id(wait)
}

fn no_such_topic(topic: &str) -> FdwError {
    FdwError::new(ErrorKind::Kafka, format!("Kafka topic \"{topic}\" does not exist"))
        .with_hint("Create the topic first, or check the table's \"topic\" option.")
}

/// One ListOffsets request for `partitions` of `topic`, each asking for `spec` (an
/// `rd_kafka_OffsetSpec_t` or a timestamp), issued on `consumer` without waiting.
fn issue_list_offsets(consumer: &KafkaConsumer, topic: &str, partitions: &[i32], spec: i64, deadline: Instant) -> FdwResult<AdminRequest> {
    let mut query = TopicPartitionList::with_capacity(partitions.len());
    for &partition in partitions {
        query.add_partition_offset(topic, partition, Offset::from_raw(spec)).map_err(|e| {
            FdwError::new(ErrorKind::Kafka, format!("could not list offsets of topic \"{topic}\"")).with_detail(e.to_string())
        })?;
    }
    let request = AdminRequest::new(
        consumer,
        bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS,
        deadline.saturating_duration_since(Instant::now()),
    );
    // SAFETY: librdkafka copies the partition list into the request; the handle, options
    // and queue are alive.
    unsafe {
        bindings::rd_kafka_ListOffsets(consumer.client().native_ptr(), query.ptr(), request.options, request.queue);
    }
    Ok(request)
}

/// librdkafka's "no offset" (`RD_KAFKA_OFFSET_INVALID`).
const RD_KAFKA_OFFSET_INVALID: i64 = -1001;

/// The answer of a ListOffsets request: per partition, its offset (-1: none).
fn list_offsets_result(
    request: &mut AdminRequest,
    settings: &ClientSettings,
    what: &str,
    deadline: Instant,
) -> FdwResult<Attempt<Vec<(i32, i64)>>> {
    let event = match await_admin(request, settings, what, deadline)? {
        Ok(event) => event,
        Err(reason) => return Ok(Attempt::Retry(reason)),
    };
    let mut offsets = Vec::new();
    // SAFETY: the result and everything read from it live as long as the event, which
    // `request` owns; counts bound the arrays.
    unsafe {
        let result = bindings::rd_kafka_event_ListOffsets_result(event);
        let mut count = 0;
        let infos = bindings::rd_kafka_ListOffsets_result_infos(result, &mut count);
        for i in 0..count {
            let element = &*bindings::rd_kafka_ListOffsetsResultInfo_topic_partition(*infos.add(i));
            let code = RDKafkaErrorCode::from(element.err);
            if code == RDKafkaErrorCode::NoError && element.offset == RD_KAFKA_OFFSET_INVALID {
                // A leader that did not answer (down, say) leaves its partitions so.
                return Ok(Attempt::Retry(format!("no offset for partition {}", element.partition)));
            } else if code == RDKafkaErrorCode::NoError {
                offsets.push((element.partition, element.offset));
            } else if is_transient_code(code) {
                return Ok(Attempt::Retry(format!("{code} (partition {})", element.partition)));
            } else {
                return Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}, partition {}", element.partition))
                    .with_detail(code.to_string()));
            }
        }
    }
    offsets.sort_unstable();
    Ok(Attempt::Done(offsets))
}

/// Low and high watermarks of the given partitions: two ListOffsets requests (earliest,
/// latest) for all of them, in flight together.
pub fn watermarks(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    topic: &str,
    partitions: &[i32],
) -> FdwResult<Vec<Watermarks>> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let what = format!("read the watermarks of topic \"{topic}\"");
    let earliest = bindings::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_EARLIEST as i64;
    let latest = bindings::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_LATEST as i64;
    let (lows, highs) = with_retries(consumer, settings, &what, |deadline| {
        let mut low = issue_list_offsets(consumer, topic, partitions, earliest, deadline)?;
        let mut high = issue_list_offsets(consumer, topic, partitions, latest, deadline)?;
        let lows = match list_offsets_result(&mut low, settings, &what, deadline)? {
            Attempt::Done(lows) => lows,
            Attempt::Retry(reason) => return Ok(Attempt::Retry(reason)),
        };
        Ok(match list_offsets_result(&mut high, settings, &what, deadline)? {
            Attempt::Done(highs) => Attempt::Done((lows, highs)),
            Attempt::Retry(reason) => Attempt::Retry(reason),
        })
    })?;
    partitions
        .iter()
        .map(|&partition| {
            let find = |answer: &[(i32, i64)]| answer.iter().find(|(p, _)| *p == partition).map(|&(_, offset)| offset);
            match (find(&lows), find(&highs)) {
                (Some(low), Some(high)) => Ok(Watermarks { partition, low, high }),
                _ => Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}, partition {partition}"))
                    .with_detail("The broker's answer has no offsets for it.")),
            }
        })
        .collect()
}

/// For each of `partitions`, the first offset whose timestamp is at or after `unix_ms`,
/// or `None` when no message is (Kafka's time index lookup): one ListOffsets request.
pub fn offsets_for_time(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    topic: &str,
    partitions: &[i32],
    unix_ms: i64,
) -> FdwResult<Vec<(i32, Option<i64>)>> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let what = format!("look up offsets by time in topic \"{topic}\"");
    // Negative times are Kafka's codes for "latest" and "earliest": no message is older
    // than 1970, so ask for 0 instead.
    let answer = with_retries(consumer, settings, &what, |deadline| {
        let mut request = issue_list_offsets(consumer, topic, partitions, unix_ms.max(0), deadline)?;
        list_offsets_result(&mut request, settings, &what, deadline)
    })?;
    Ok(partitions
        .iter()
        .map(|&partition| {
            let offset = answer.iter().find(|(p, _)| *p == partition).map(|&(_, offset)| offset);
            (partition, offset.filter(|&offset| offset >= 0))
        })
        .collect())
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

/// What became of the messages of one statement, as far as delivery reports told.
#[derive(Debug, Default)]
struct Outcomes {
    delivered: u64,
    /// The broker (or librdkafka, before sending) said no: not in the topic.
    failed: u64,
    /// No answer in time after the message was sent: it may be in the topic.
    unknown: u64,
    first_error: Option<String>,
    /// Per partition: messages delivered, lowest and highest offset.
    offsets: BTreeMap<i32, (u64, i64, i64)>,
}

/// Counts delivery reports of a producer. Reports arrive on the thread that polls the
/// producer (the backend's own), but librdkafka requires the context to be shareable.
#[derive(Default)]
pub struct DeliveryTracker {
    outcomes: Mutex<Outcomes>,
    /// Whether any message ever failed or went unanswered, over every statement.
    ever_failed: AtomicBool,
    /// A delivery failed because the topic does not exist.
    missing_topic: AtomicBool,
    client_errors: ClientErrors,
}

impl DeliveryTracker {
    /// Whether any message of this producer ever failed. librdkafka keeps some errors
    /// (a topic's authorization failure, say) in its metadata for minutes, so such a
    /// producer is not reused.
    pub fn has_failed(&self) -> bool {
        self.ever_failed.load(Ordering::Relaxed)
    }

    fn outcomes(&self) -> std::sync::MutexGuard<'_, Outcomes> {
        self.outcomes.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: KafkaError, reason: &str) {
        self.client_errors.record(error, reason);
    }
}

/// Whether a failed message may nevertheless be in the topic: it was sent, and no
/// answer came (librdkafka's persistence status; a message that timed out is only
/// known not to be there if it was never sent).
fn may_be_persisted(code: Option<RDKafkaErrorCode>, status: bindings::rd_kafka_msg_status_t) -> bool {
    use bindings::rd_kafka_msg_status_t::*;
    status == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED
        || (code == Some(RDKafkaErrorCode::MessageTimedOut) && status != RD_KAFKA_MSG_STATUS_NOT_PERSISTED)
}

impl ProducerContext for DeliveryTracker {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let mut outcomes = self.outcomes();
        match result {
            Ok(message) => {
                outcomes.delivered += 1;
                let offset = message.offset();
                let entry = outcomes.offsets.entry(message.partition()).or_insert((0, offset, offset));
                *entry = (entry.0 + 1, entry.1.min(offset), entry.2.max(offset));
            }
            Err((error, message)) => {
                self.ever_failed.store(true, Ordering::Relaxed);
                let code = error.rdkafka_error_code();
                // SAFETY: the message of a delivery report is alive during the callback.
                let status = unsafe { bindings::rd_kafka_message_status(message.ptr()) };
                if may_be_persisted(code, status) {
                    outcomes.unknown += 1;
                } else {
                    outcomes.failed += 1;
                }
                if matches!(code, Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition)) {
                    self.missing_topic.store(true, Ordering::Relaxed);
                }
                outcomes.first_error.get_or_insert_with(|| format!("{error} (partition {})", message.partition()));
            }
        }
    }
}

pub type KafkaProducer = BaseProducer<DeliveryTracker>;

/// How long the producer waits for a missing topic to appear in the cluster's metadata
/// before failing its messages (librdkafka's default, 30 s, would hold an INSERT into a
/// missing topic that long). A broker that creates topics on demand answers "leader not
/// available" rather than "unknown topic", so this does not apply to it.
const TOPIC_PROPAGATION_WAIT: Duration = Duration::from_secs(1);

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
        .set("topic.metadata.propagation.max.ms", TOPIC_PROPAGATION_WAIT.as_millis().to_string())
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
}

/// Serve delivery reports every this many messages, so they never pile up.
const POLL_EVERY: u64 = 1024;

/// rdkafka's `BaseProducer::poll` always waits out its whole timeout, even once a report
/// arrived, so waits on a producer poll in slices this short.
const PRODUCER_POLL_SLICE: Duration = Duration::from_millis(1);

/// librdkafka fails timed-out messages on a scan about once a second, so a delivery
/// report may come this long after `message.timeout.ms`.
const DELIVERY_REPORT_GRACE: Duration = Duration::from_secs(2);

/// The outcomes of a statement's messages so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    sent: u64,
    delivered: u64,
    failed: u64,
    unknown: u64,
}

impl Counts {
    fn settled(&self) -> u64 {
        self.delivered + self.failed + self.unknown
    }

    fn in_flight(&self) -> u64 {
        self.sent.saturating_sub(self.settled())
    }

    /// For an error's detail: "Of 12 messages sent: 3 delivered, ...".
    fn summary(&self) -> String {
        format!(
            "Of {} messages sent: {} delivered, {} failed, {} unknown (may be in the topic), {} in flight (may be in the topic).",
            self.sent,
            self.delivered,
            self.failed,
            self.unknown,
            self.in_flight()
        )
    }
}

/// "partition 0 offsets 10..57 (48 messages), partition 3 offset 4 (1 message)".
fn delivered_offsets(offsets: &BTreeMap<i32, (u64, i64, i64)>) -> String {
    offsets
        .iter()
        .map(|(partition, &(count, low, high))| match count {
            1 => format!("partition {partition} offset {low} (1 message)"),
            _ => format!("partition {partition} offsets {low}..{high} ({count} messages)"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl<P: Borrow<KafkaProducer>> Sender<P> {
    pub fn new(producer: P, settings: ClientSettings, topic: &str) -> Self {
        let tracker = producer.borrow().context();
        // A pooled producer is only reused with nothing in flight: counts start afresh.
        *tracker.outcomes() = Outcomes::default();
        tracker.missing_topic.store(false, Ordering::Relaxed);
        tracker.client_errors.take();
        Sender { producer, settings, topic: topic.to_string(), sent: 0 }
    }

    fn tracker(&self) -> &DeliveryTracker {
        self.producer.borrow().context()
    }

    fn counts(&self) -> Counts {
        let outcomes = self.tracker().outcomes();
        Counts { sent: self.sent, delivered: outcomes.delivered, failed: outcomes.failed, unknown: outcomes.unknown }
    }

    fn what(&self) -> String {
        format!("produce to topic \"{}\"", self.topic)
    }

    /// The topic turned out not to exist (its messages fail with "unknown topic").
    fn check_topic(&self) -> FdwResult<()> {
        if self.tracker().missing_topic.load(Ordering::Relaxed) {
            return Err(no_such_topic(&self.topic));
        }
        Ok(())
    }

    /// A wait that made no progress for the timeout (`reason`, a sentence): says how far
    /// the statement got.
    fn stalled(&self, reason: &str) -> FdwError {
        let last_error = self.tracker().client_errors.take().unwrap_or_else(|| "none".to_string());
        let error = unreachable_brokers(&self.settings, &self.what(), &last_error);
        let detail = format!("{reason} {} {}", self.counts().summary(), error.detail.as_deref().unwrap_or_default());
        error.with_detail(detail)
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
                    self.check_topic()?;
                    if started.elapsed() >= self.settings.timeout {
                        return Err(self.stalled("The producer's queue stayed full."));
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
        if self.sent.is_multiple_of(POLL_EVERY) {
            producer.poll(Duration::ZERO);
            self.check_topic()?;
        }
        Ok(())
    }

    /// Waits for every delivery report; the number of messages Kafka acknowledged, or an
    /// error counting the messages delivered, failed and of unknown outcome. A message
    /// not acknowledged is never reported as produced.
    pub fn finish(&mut self) -> FdwResult<u64> {
        let producer = self.producer.borrow();
        let mut last_progress = Instant::now();
        let mut counts = self.counts();
        while counts.in_flight() > 0 {
            producer.poll(PRODUCER_POLL_SLICE);
            (self.settings.interrupt)();
            self.check_topic()?;
            let now = self.counts();
            if now.settled() > counts.settled() {
                last_progress = Instant::now();
            } else if last_progress.elapsed() >= self.settings.timeout + DELIVERY_REPORT_GRACE {
                // message.timeout.ms fails every message after the timeout, so this is
                // only reached if librdkafka itself stalls.
                return Err(self.stalled("No delivery reports came."));
            }
            counts = now;
        }
        self.check_topic()?;
        if counts.failed + counts.unknown == 0 {
            return Ok(counts.delivered);
        }
        let tracker = self.tracker();
        let (first, offsets) = {
            let outcomes = tracker.outcomes();
            (outcomes.first_error.clone().unwrap_or_default(), delivered_offsets(&outcomes.offsets))
        };
        let delivered = if offsets.is_empty() { "None was delivered.".to_string() } else { format!("Delivered: {offsets}.") };
        let mut detail = format!("First error: {first}. {delivered}");
        if let Some(client_error) = tracker.client_errors.take() {
            detail.push_str(&format!(" Last client error: {client_error}"));
        }
        let hint = match (counts.unknown > 0, counts.delivered > 0) {
            (true, _) => "Messages whose outcome is unknown may be in the topic; retrying the statement may duplicate them. Delivered messages stay in Kafka whether or not the transaction commits.",
            (false, true) => "Delivered messages stay in Kafka whether or not the transaction commits; retrying the statement duplicates them.",
            (false, false) => "No message reached the topic.",
        };
        Err(FdwError::new(
            ErrorKind::Kafka,
            format!(
                "{} of {} messages to Kafka topic \"{}\" were not confirmed: {} failed, {} unknown (may be in the topic), {} delivered",
                counts.failed + counts.unknown,
                counts.sent,
                self.topic,
                counts.failed,
                counts.unknown,
                counts.delivered
            ),
        )
        .with_detail(detail)
        .with_hint(hint))
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

    /// A librdkafka mock cluster, hosted by a client of its own. The mock names broker 0
    /// as the cluster's controller (where librdkafka sends DescribeTopics) but numbers its
    /// brokers from 1, so broker 0 is added, as a real cluster always has its controller.
    struct Mock {
        host: BaseProducer,
    }

    fn mock_cluster(brokers: i32) -> Mock {
        let host: BaseProducer = ClientConfig::new().set("test.mock.num.brokers", brokers.to_string()).create().unwrap();
        // SAFETY: the host was created with a mock cluster, which lives as long as it.
        unsafe {
            let cluster = bindings::rd_kafka_handle_mock_cluster(host.client().native_ptr());
            assert!(!cluster.is_null());
            assert_eq!(bindings::rd_kafka_mock_broker_add(cluster, 0), bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR);
        }
        Mock { host }
    }

    impl Mock {
        fn cluster(&self) -> MockCluster<'_, rdkafka::producer::DefaultProducerContext> {
            self.host.client().mock_cluster().unwrap()
        }
    }

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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        assert_eq!(
            error.message,
            "3 of 3 messages to Kafka topic \"out\" were not confirmed: 3 failed, 0 unknown (may be in the topic), 0 delivered"
        );
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
        // Never sent: known not to be in the topic.
        assert_eq!(
            error.message,
            "1 of 1 messages to Kafka topic \"t\" were not confirmed: 1 failed, 0 unknown (may be in the topic), 0 delivered"
        );
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }

    #[test]
    fn empty_ranges_end_at_once() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.properties = vec![("security.protocol".into(), "nonsense".into())];
        let error = new_consumer(&settings).err().expect("an invalid value fails client creation");
        assert!(error.detail.unwrap().contains("security.protocol"));
    }

    #[test]
    fn topic_ids_read_as_uuids() {
        assert_eq!(uuid_text(0, 0), None);
        assert_eq!(uuid_text(0x0123456789abcdef, -1).as_deref(), Some("01234567-89ab-cdef-ffff-ffffffffffff"));
    }

    #[test]
    fn a_missing_topic_is_a_clear_error() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
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
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("short", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        produce(&brokers, "short", 0, &["a".to_string(), "b".to_string()]);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();
        let mut reader =
            RangeReader::new(consumer, settings, "short", &[ReadRange { partition: 0, start: 0, end: 5 }]).unwrap();
        assert_eq!(read_all(&mut reader).len(), 2);
    }

    // ---- Slow brokers, silent brokers, interrupts (issue 15) ----

    /// Everything a statement asks of Kafka, against a cluster of two brokers that each
    /// take `rtt` to answer; the answers, to compare across round-trip times.
    #[allow(clippy::type_complexity)]
    fn everything_at_round_trip(
        rtt: Duration,
    ) -> (Vec<i32>, Vec<Watermarks>, Vec<(i32, Option<i64>)>, Vec<(i32, i64, String)>, Vec<(i32, i64, String)>, u64, Vec<Watermarks>) {
        let mock = mock_cluster(2);
        let cluster = mock.cluster();
        cluster.create_topic("slow", 3, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..30).map(|i| format!("m{i}")).collect();
        produce(&brokers, "slow", 0, &lines);
        produce(&brokers, "slow", 2, &lines[..4]);
        for broker in 0..=2 {
            cluster.broker_round_trip_time(broker, rtt).unwrap();
        }
        let mut settings = test_settings(&brokers);
        settings.timeout = Duration::from_secs(10);
        let consumer = new_consumer(&settings).unwrap();
        let partitions = topic_partitions(&consumer, &settings, "slow").unwrap();
        let marks = watermarks(&consumer, &settings, "slow", &partitions).unwrap();
        // The mock cluster has no time index: it answers "no such message" (-1).
        let by_time = offsets_for_time(&consumer, &settings, "slow", &partitions, 0).unwrap();
        let ranges: Vec<ReadRange> = marks.iter().map(|w| ReadRange { partition: w.partition, start: w.low, end: w.high }).collect();
        let mut reader = RangeReader::new(consumer, settings.clone(), "slow", &ranges).unwrap();
        let mut all = read_all(&mut reader);
        all.sort();
        reader.restart(&[ReadRange { partition: 2, start: 3, end: 4 }]).unwrap();
        let one = read_all(&mut reader);
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::new(&producer, settings.clone(), "slow");
        for i in 0..10 {
            sender.send(Outgoing { partition: Some(i % 3), payload: Some(b"new"), ..Outgoing::default() }).unwrap();
        }
        let produced = sender.finish().unwrap();
        let after = watermarks(reader.consumer(), &settings, "slow", &partitions).unwrap();
        (partitions, marks, by_time, all, one, produced, after)
    }

    fn assert_same_as_without_delay(rtt: Duration) {
        let started = Instant::now();
        let slow = everything_at_round_trip(rtt);
        let took = started.elapsed();
        let fast = everything_at_round_trip(Duration::ZERO);
        assert_eq!(slow, fast);
        assert_eq!(fast.0, vec![0, 1, 2]);
        assert_eq!(fast.1[0], Watermarks { partition: 0, low: 0, high: 30 });
        assert_eq!(fast.2, vec![(0, None), (1, None), (2, None)]);
        assert_eq!(fast.3.len(), 34);
        assert_eq!(fast.4, vec![(2, 3, "m3".to_string())]);
        assert_eq!(fast.5, 10);
        assert_eq!(fast.6.iter().map(|w| w.high).sum::<i64>(), 44);
        eprintln!("round trip {rtt:?}: took {took:?}");
    }

    #[test]
    fn a_300_ms_round_trip_changes_no_answer() {
        assert_same_as_without_delay(Duration::from_millis(300));
    }

    #[test]
    fn a_1000_ms_round_trip_changes_no_answer() {
        assert_same_as_without_delay(Duration::from_millis(1000));
    }

    /// A broker that accepts connections and never answers: the listener is kept open
    /// and never accepts, so the kernel completes the handshakes and holds the requests.
    fn silent_broker() -> (std::net::TcpListener, String) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        (listener, address)
    }

    fn assert_fails_in_time<T: std::fmt::Debug>(what: &str, timeout: Duration, call: impl FnOnce() -> FdwResult<T>) {
        let started = Instant::now();
        let error = call().expect_err(what);
        let took = started.elapsed();
        assert_eq!(error.kind, ErrorKind::UnableToEstablishConnection, "{what}: {error}");
        assert!(took >= timeout.saturating_sub(Duration::from_millis(50)), "{what} gave up early: {took:?}");
        assert!(took < timeout + Duration::from_secs(1), "{what} took {took:?}");
    }

    #[test]
    fn a_silent_broker_fails_every_call_within_the_timeout() {
        let (_listener, brokers) = silent_broker();
        let mut settings = test_settings(&brokers);
        settings.timeout = Duration::from_millis(700);
        let timeout = settings.timeout;
        let consumer = new_consumer(&settings).unwrap();
        assert_fails_in_time("topic_partitions", timeout, || topic_partitions(&consumer, &settings, "t"));
        assert_fails_in_time("watermarks", timeout, || watermarks(&consumer, &settings, "t", &[0, 1]));
        assert_fails_in_time("offsets_for_time", timeout, || offsets_for_time(&consumer, &settings, "t", &[0], 5));
        assert_fails_in_time("all_topics", timeout, || all_topics(&consumer, &settings));
        let mut reader =
            RangeReader::new(&consumer, settings.clone(), "t", &[ReadRange { partition: 0, start: 0, end: 5 }]).unwrap();
        assert_fails_in_time("next_message", timeout, || reader.next_message().map(|m| m.is_some()));
        // Messages fail at message.timeout.ms, found by librdkafka's scan once a second.
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::new(&producer, settings.clone(), "t");
        let started = Instant::now();
        sender.send(Outgoing { partition: Some(0), payload: Some(b"x"), ..Outgoing::default() }).unwrap();
        let error = sender.finish().unwrap_err();
        assert!(error.message.starts_with("1 of 1 messages to Kafka topic \"t\" were not confirmed"), "{error}");
        assert!(started.elapsed() < timeout + Duration::from_millis(1500), "took {:?}", started.elapsed());
    }

    #[test]
    fn a_down_mock_broker_fails_the_calls_within_the_timeout() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("t", 2, 1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.timeout = Duration::from_millis(700);
        let consumer = new_consumer(&settings).unwrap();
        assert_eq!(topic_partitions(&consumer, &settings, "t").unwrap(), vec![0, 1]);
        for broker in 0..=1 {
            cluster.broker_down(broker).unwrap();
        }
        assert_fails_in_time("topic_partitions", settings.timeout, || topic_partitions(&consumer, &settings, "t"));
        assert_fails_in_time("watermarks", settings.timeout, || watermarks(&consumer, &settings, "t", &[0, 1]));
        for broker in 0..=1 {
            cluster.broker_up(broker).unwrap();
        }
        assert_eq!(watermarks(&consumer, &settings, "t", &[0]).unwrap(), vec![Watermarks { partition: 0, low: 0, high: 0 }]);
    }

    thread_local! {
        /// Interrupt checks left before [`panicking_interrupt`] unwinds; `u32::MAX` never.
        static INTERRUPTS_LEFT: std::cell::Cell<u32> = const { std::cell::Cell::new(u32::MAX) };
        static INTERRUPTS_SEEN: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
        static UNWOUND_AT: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }

    const CANCEL: &str = "canceling statement due to user request";

    /// Like CHECK_FOR_INTERRUPTS with a cancel pending after a few checks.
    fn panicking_interrupt() {
        INTERRUPTS_SEEN.with(|seen| seen.set(seen.get() + 1));
        INTERRUPTS_LEFT.with(|left| match left.get() {
            u32::MAX => {}
            0 => {
                UNWOUND_AT.with(|at| at.set(Some(Instant::now())));
                std::panic::panic_any(CANCEL)
            }
            n => left.set(n - 1),
        });
    }

    /// Runs `call` with the interrupt armed to unwind at its `checks`+1st check; how long
    /// it took until the interrupt unwound. (Unwinding itself can take a while in a test
    /// binary: with RUST_BACKTRACE set, the panic hook symbolizes a backtrace.)
    fn unwinds_after<T>(checks: u32, call: impl FnOnce() -> T) -> Duration {
        // The test's own cancels print nothing: a backtrace takes seconds to symbolize.
        static QUIET: std::sync::Once = std::sync::Once::new();
        QUIET.call_once(|| {
            let default = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if info.payload().downcast_ref::<&str>() != Some(&CANCEL) {
                    default(info)
                }
            }));
        });
        INTERRUPTS_LEFT.with(|left| left.set(checks));
        UNWOUND_AT.with(|at| at.set(None));
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(call));
        let unwound = started.elapsed();
        INTERRUPTS_LEFT.with(|left| left.set(u32::MAX));
        assert!(outcome.is_err(), "the interrupt did not unwind");
        // Bounded by the request in flight, if any (all_topics), so by the timeout.
        assert!(unwound < Duration::from_secs(10), "unwinding took {unwound:?}");
        UNWOUND_AT.with(|at| at.get()).expect("the interrupt unwound") - started
    }

    #[test]
    fn interrupts_are_checked_while_waiting_and_unwinding_is_safe() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("t", 2, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        produce(&brokers, "t", 1, &["a".to_string()]);
        let mut settings = test_settings(&brokers);
        settings.timeout = Duration::from_secs(10);
        settings.interrupt = panicking_interrupt;
        let consumer = new_consumer(&settings).unwrap();
        // Answers take 1.5 s: every call below is in flight when the interrupt unwinds.
        for broker in 0..=1 {
            cluster.broker_round_trip_time(broker, Duration::from_millis(1500)).unwrap();
        }
        let took = unwinds_after(2, || topic_partitions(&consumer, &settings, "t"));
        assert!(took < Duration::from_millis(500), "took {took:?}");
        let took = unwinds_after(2, || watermarks(&consumer, &settings, "t", &[0, 1]));
        assert!(took < Duration::from_millis(500), "took {took:?}");
        let took = unwinds_after(2, || offsets_for_time(&consumer, &settings, "t", &[0, 1], 0));
        assert!(took < Duration::from_millis(500), "took {took:?}");
        // The list of all topics is a synchronous request on a helper thread: the
        // interrupt is seen as quickly, but unwinds only once the request ended.
        let took = unwinds_after(2, || all_topics(&consumer, &settings));
        assert!(took < Duration::from_millis(500), "took {took:?}");
        // The abandoned requests' answers arrive later, to queues that are gone; the
        // same client goes on working.
        assert_eq!(topic_partitions(&consumer, &settings, "t").unwrap(), vec![0, 1]);
        std::thread::sleep(Duration::from_millis(1600));
        assert_eq!(
            watermarks(&consumer, &settings, "t", &[0, 1]).unwrap(),
            vec![Watermarks { partition: 0, low: 0, high: 0 }, Watermarks { partition: 1, low: 0, high: 1 }]
        );
        // Waits check for interrupts at least every POLL_SLICE.
        INTERRUPTS_SEEN.with(|seen| seen.set(0));
        let started = Instant::now();
        topic_partitions(&consumer, &settings, "t").unwrap();
        let checks = INTERRUPTS_SEEN.with(|seen| seen.get()) as u128;
        assert!(checks + 1 >= started.elapsed().as_millis() / POLL_SLICE.as_millis(), "{checks} checks in {:?}", started.elapsed());
    }

    #[test]
    fn an_interrupt_against_a_silent_broker_unwinds_at_once() {
        let (_listener, brokers) = silent_broker();
        let mut settings = test_settings(&brokers);
        settings.timeout = Duration::from_secs(30);
        settings.interrupt = panicking_interrupt;
        let consumer = new_consumer(&settings).unwrap();
        for (what, took) in [
            ("topic_partitions", unwinds_after(3, || topic_partitions(&consumer, &settings, "t"))),
            ("watermarks", unwinds_after(3, || watermarks(&consumer, &settings, "t", &[0]))),
            ("offsets_for_time", unwinds_after(3, || offsets_for_time(&consumer, &settings, "t", &[0], 1))),
        ] {
            assert!(took < Duration::from_millis(500), "{what} took {took:?}");
        }
        drop(consumer);
    }

    // ---- Delivery outcomes ----

    #[test]
    fn timed_out_deliveries_are_unknown_not_failed() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("out", 1, 1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.timeout = Duration::from_millis(2000);
        let producer = new_producer(&settings).unwrap();
        // Connected, with a producer id: the next messages are sent at once.
        let mut warm = Sender::new(&producer, settings.clone(), "out");
        warm.send(Outgoing { partition: Some(0), payload: Some(b"first"), ..Outgoing::default() }).unwrap();
        assert_eq!(warm.finish().unwrap(), 1);
        // The broker writes them, but its answer comes after message.timeout.ms.
        for broker in 0..=1 {
            cluster.broker_round_trip_time(broker, Duration::from_millis(5000)).unwrap();
        }
        let mut sender = Sender::new(&producer, settings.clone(), "out");
        for _ in 0..4 {
            sender.send(Outgoing { partition: Some(0), payload: Some(b"maybe"), ..Outgoing::default() }).unwrap();
        }
        let error = sender.finish().unwrap_err();
        assert_eq!(
            error.message,
            "4 of 4 messages to Kafka topic \"out\" were not confirmed: 0 failed, 4 unknown (may be in the topic), 0 delivered"
        );
        assert!(error.hint.as_deref().unwrap().contains("may duplicate them"), "{error}");
        assert!(error.detail.as_deref().unwrap().contains("None was delivered."), "{error}");
        assert!(producer.context().has_failed());
        // And indeed they are in the topic.
        for broker in 0..=1 {
            cluster.broker_round_trip_time(broker, Duration::ZERO).unwrap();
        }
        settings.timeout = Duration::from_secs(10);
        let consumer = new_consumer(&settings).unwrap();
        let marks = watermarks(&consumer, &settings, "out", &[0]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(marks[0].high, 5);
    }

    #[test]
    fn definite_errors_are_failed_and_deliveries_are_listed() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("out", 2, 1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.timeout = Duration::from_millis(1500);
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::new(&producer, settings, "out");
        for partition in [0, 0, 0, 1] {
            sender.send(Outgoing { partition: Some(partition), payload: Some(b"ok"), ..Outgoing::default() }).unwrap();
        }
        let started = Instant::now();
        while sender.counts().delivered < 4 && started.elapsed() < Duration::from_secs(5) {
            producer.poll(Duration::from_millis(1));
        }
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::Produce,
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
        );
        for _ in 0..3 {
            sender.send(Outgoing { partition: Some(1), payload: Some(b"lost"), ..Outgoing::default() }).unwrap();
        }
        let error = sender.finish().unwrap_err();
        assert_eq!(
            error.message,
            "3 of 7 messages to Kafka topic \"out\" were not confirmed: 3 failed, 0 unknown (may be in the topic), 4 delivered"
        );
        let detail = error.detail.unwrap();
        assert!(detail.contains("Delivered: partition 0 offsets 0..2 (3 messages), partition 1 offset 0 (1 message)."), "{detail}");
        assert!(detail.contains("Topic authorization failed"), "{detail}");
        assert!(error.hint.unwrap().contains("retrying the statement duplicates them"));
    }

    #[test]
    fn a_full_queue_that_never_drains_reports_the_counts() {
        let (_listener, brokers) = silent_broker();
        let mut settings = test_settings(&brokers);
        settings.timeout = Duration::from_millis(700);
        settings.properties = vec![("queue.buffering.max.messages".into(), "5".into())];
        let producer = new_producer(&settings).unwrap();
        // Messages wait longer than the queue-full wait before they time out.
        let mut sender = Sender::new(&producer, settings.clone(), "t");
        settings.timeout = Duration::from_millis(200);
        sender.settings = settings;
        let error = (0..10)
            .map(|_| sender.send(Outgoing { partition: Some(0), payload: Some(b"x"), ..Outgoing::default() }))
            .find_map(Result::err)
            .expect("the queue fills up");
        assert_eq!(error.kind, ErrorKind::UnableToEstablishConnection);
        let detail = error.detail.unwrap();
        assert!(
            detail.starts_with(
                "The producer's queue stayed full. Of 5 messages sent: 0 delivered, 0 failed, 0 unknown (may be in the topic), 5 in flight"
            ),
            "{detail}"
        );
        assert!(detail.contains("Last client error:"), "{detail}");
    }

    // ---- Missing topics ----

    #[test]
    fn an_insert_into_a_missing_topic_fails_fast() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.timeout = Duration::from_secs(10);
        // As a broker without auto.create.topics.enable answers.
        settings.properties = vec![("allow.auto.create.topics".into(), "false".into())];
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::new(&producer, settings, "nope");
        let started = Instant::now();
        sender.send(Outgoing { partition: Some(0), payload: Some(b"x"), ..Outgoing::default() }).unwrap();
        sender.send(Outgoing { partition: None, payload: Some(b"y"), ..Outgoing::default() }).unwrap();
        let error = sender.finish().unwrap_err();
        assert_eq!(error.message, "Kafka topic \"nope\" does not exist");
        assert!(error.hint.is_some());
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }

    #[test]
    fn an_insert_into_a_topic_the_broker_creates_works() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        let settings = test_settings(&cluster.bootstrap_servers());
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::new(&producer, settings, "created");
        sender.send(Outgoing { partition: None, payload: Some(b"x"), ..Outgoing::default() }).unwrap();
        assert_eq!(sender.finish().unwrap(), 1);
    }

    #[test]
    fn delivered_offsets_are_listed_compactly() {
        let offsets: BTreeMap<i32, (u64, i64, i64)> = [(0, (3, 10, 12)), (4, (1, 7, 7))].into_iter().collect();
        assert_eq!(delivered_offsets(&offsets), "partition 0 offsets 10..12 (3 messages), partition 4 offset 7 (1 message)");
    }
}
