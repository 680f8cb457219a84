//! Metadata and offsets through librdkafka's asynchronous Admin API (DescribeTopics,
//! ListOffsets): each request is issued once with the whole timeout, and only a
//! transient answer is asked again, after a backoff.

use std::ffi::{CStr, CString};
use std::time::{Duration, Instant};

use rdkafka::bindings;
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::error::{ErrorKind, FdwError, FdwResult};

use super::config::{ClientSettings, IsolationLevel, KafkaConsumer, Refused, is_refusal, is_transient, is_transient_code, refusal, reported_errors, unreachable_brokers, with_signals_blocked};
use super::{POLL_SLICE, Watermarks};

/// One request of librdkafka's asynchronous Admin API, issued once on an existing
/// client and awaited in slices of at most [`POLL_SLICE`] so that interrupts are seen.
///
/// Owns a result queue of its own, the request's options and, once it arrived, the
/// result event; all three are destroyed on drop, also when an interrupt unwinds
/// through a wait. That is safe while the request is still in flight: librdkafka keeps
/// its own reference to the queue (and copies the options and arguments into the
/// request), and a result enqueued on a queue whose owner destroyed it is discarded.
pub(super) struct AdminRequest {
    pub(super) queue: *mut bindings::rd_kafka_queue_t,
    pub(super) options: *mut bindings::rd_kafka_AdminOptions_t,
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
    pub(super) fn new(client: &KafkaConsumer, op: bindings::rd_kafka_admin_op_t, timeout: Duration) -> Self {
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
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let code = bindings::rd_kafka_event_error(event);
        if code == bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return None;
        }
        let text = bindings::rd_kafka_event_error_string(event);
        let text = if text.is_null() { String::new() } else { CStr::from_ptr(text).to_string_lossy().into_owned() };
        Some((RDKafkaErrorCode::from(code), text))
    }
}

/// What one attempt at a request came to.
pub(super) enum Attempt<T> {
    Done(T),
    /// A transient answer ("no leader yet", "timed out"): worth asking again.
    Retry(String),
}

/// Runs `attempt` (one request, issued once, given its deadline) until it is done, fails
/// for good, or `settings.timeout` has passed since the start; after a transient answer
/// it asks again, after a backoff from [`RETRY_BACKOFF`] to [`RETRY_BACKOFF_MAX`].
pub(super) fn with_retries<T>(
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

/// Awaits `request` and sorts its result: the event to read, a reason to ask again (no
/// answer in time, or a transient error), or a definite error.
pub(super) fn await_admin(
    request: &mut AdminRequest,
    settings: &ClientSettings,
    what: &str,
    deadline: Instant,
) -> FdwResult<Attempt<*mut bindings::rd_kafka_event_t>> {
    let Some(event) = request.wait(settings, deadline) else {
        return Ok(Attempt::Retry("no answer".to_string()));
    };
    // SAFETY: the event is alive as long as `request`.
    match unsafe { event_error(event) } {
        None => Ok(Attempt::Done(event)),
        Some((code, text)) if is_transient_code(code) || leaders_unknown(code, &text) => Ok(Attempt::Retry(text)),
        Some((code, text)) => Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}"))
            .with_detail(if text.is_empty() { code.to_string() } else { text })),
    }
}

/// Whether a request failed because no partition leader is known yet: ListOffsets asks
/// for the leaders first and, while brokers come back (or elect new leaders), librdkafka
/// may answer NOENT for the whole request before its own timeout. Asked again, it works.
fn leaders_unknown(code: RDKafkaErrorCode, text: &str) -> bool {
    code == RDKafkaErrorCode::NoEnt && text.starts_with("Failed to query partition leaders")
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
        Err(code) if is_refusal(code) => Err(refusal(settings, Refused::Topic { topic, operation: "DESCRIBE" }, &code.to_string())),
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
        Attempt::Done(event) => event,
        Attempt::Retry(reason) => return Ok(Attempt::Retry(reason)),
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

pub(super) fn no_such_topic(topic: &str) -> FdwError {
    FdwError::new(ErrorKind::Kafka, format!("Kafka topic \"{topic}\" does not exist"))
        .with_hint("Create the topic first, or check the table's \"topic\" option.")
}

/// One ListOffsets request for `partitions` of `topic`, each asking for `spec` (an
/// `rd_kafka_OffsetSpec_t` or a timestamp) at `isolation` (read_committed: "latest" is
/// the last stable offset), issued on `consumer` without waiting.
fn issue_list_offsets(
    consumer: &KafkaConsumer,
    topic: &str,
    partitions: &[i32],
    spec: i64,
    isolation: IsolationLevel,
    deadline: Instant,
) -> FdwResult<AdminRequest> {
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
    let level = match isolation {
        IsolationLevel::ReadCommitted => bindings::rd_kafka_IsolationLevel_t::RD_KAFKA_ISOLATION_LEVEL_READ_COMMITTED,
        IsolationLevel::ReadUncommitted => bindings::rd_kafka_IsolationLevel_t::RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED,
    };
    // SAFETY: librdkafka copies the partition list into the request; the handle, options
    // and queue are alive. Setting the isolation level of ListOffsets options cannot fail
    // (its error, always NULL for a valid level, needs no destroying).
    unsafe {
        bindings::rd_kafka_AdminOptions_set_isolation_level(request.options, level);
        bindings::rd_kafka_ListOffsets(consumer.client().native_ptr(), query.ptr(), request.options, request.queue);
    }
    Ok(request)
}

/// librdkafka's "no offset" (`RD_KAFKA_OFFSET_INVALID`).
pub(super) const RD_KAFKA_OFFSET_INVALID: i64 = -1001;

/// The answer of a ListOffsets request about `topic`: per partition, its offset (-1: none).
fn list_offsets_result(
    request: &mut AdminRequest,
    settings: &ClientSettings,
    topic: &str,
    what: &str,
    deadline: Instant,
) -> FdwResult<Attempt<Vec<(i32, i64)>>> {
    let event = match await_admin(request, settings, what, deadline)? {
        Attempt::Done(event) => event,
        Attempt::Retry(reason) => return Ok(Attempt::Retry(reason)),
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
            } else if is_refusal(code) {
                return Err(refusal(settings, Refused::Topic { topic, operation: "DESCRIBE" }, &code.to_string()));
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
/// latest) for all of them, in flight together. Under read_committed (the settings'
/// isolation level) the high mark is the last stable offset: a transaction still open
/// there, and everything after it, is not read.
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
        let mut low = issue_list_offsets(consumer, topic, partitions, earliest, settings.isolation, deadline)?;
        let mut high = issue_list_offsets(consumer, topic, partitions, latest, settings.isolation, deadline)?;
        let lows = match list_offsets_result(&mut low, settings, topic, &what, deadline)? {
            Attempt::Done(lows) => lows,
            Attempt::Retry(reason) => return Ok(Attempt::Retry(reason)),
        };
        Ok(match list_offsets_result(&mut high, settings, topic, &what, deadline)? {
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
        let mut request = issue_list_offsets(consumer, topic, partitions, unix_ms.max(0), settings.isolation, deadline)?;
        list_offsets_result(&mut request, settings, topic, &what, deadline)
    })?;
    Ok(partitions
        .iter()
        .map(|&partition| {
            let offset = answer.iter().find(|(p, _)| *p == partition).map(|&(_, offset)| offset);
            (partition, offset.filter(|&offset| offset >= 0))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::testing::*;
    use crate::kafka::config::new_consumer;
    

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
}
