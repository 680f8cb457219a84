//! Producing: messages are sent through librdkafka's queue and every delivery report is
//! awaited; a delivery is delivered, failed, or unknown (it may be persisted), never
//! guessed.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::bindings;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::Message;

use crate::error::{ErrorKind, FdwError, FdwResult};

use super::config::{ClientErrors, ClientSettings, Refused, apply_properties, is_refusal, refusal, unreachable_brokers, with_signals_blocked};
use super::metadata::no_such_topic;
use super::transaction::BrokerApis;

/// What became of the messages of one statement, as far as delivery reports told.
#[derive(Debug, Default)]
struct Outcomes {
    delivered: u64,
    /// The broker (or librdkafka, before sending) said no: not in the topic.
    failed: u64,
    /// No answer in time after the message was sent: it may be in the topic.
    unknown: u64,
    first_error: Option<String>,
    /// The failure's code, when Kafka answered one.
    first_error_code: Option<RDKafkaErrorCode>,
    /// The topic of the message that failed first.
    first_error_topic: Option<String>,
    /// A topic whose messages failed because it does not exist.
    missing_topic: Option<String>,
    /// Per topic and partition: messages delivered, lowest and highest offset.
    offsets: BTreeMap<String, BTreeMap<i32, (u64, i64, i64)>>,
    /// Of a transactional producer, the offsets delivered since its current Kafka
    /// transaction began, over its statements (see [`super::transaction`]); `None` for
    /// other producers.
    transaction_offsets: Option<WrittenOffsets>,
}

/// Per topic, per partition: the first and last offset written.
pub type WrittenOffsets = BTreeMap<String, BTreeMap<i32, (i64, i64)>>;

/// Counts delivery reports of a producer. Reports arrive on the thread that polls the
/// producer (the backend's own), but librdkafka requires the context to be shareable.
#[derive(Default)]
pub struct DeliveryTracker {
    outcomes: Mutex<Outcomes>,
    /// Whether any message ever failed or went unanswered, over every statement.
    ever_failed: AtomicBool,
    client_errors: ClientErrors,
    /// The APIs brokers offer, from the debug lines transactional producers ask for.
    pub(super) broker_apis: BrokerApis,
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

    /// The offsets delivered since the last call, which starts the tracking (a
    /// transactional producer calls it when each transaction begins and ends).
    pub(super) fn take_transaction_offsets(&self) -> WrittenOffsets {
        self.outcomes().transaction_offsets.replace(WrittenOffsets::new()).unwrap_or_default()
    }
}

impl ClientContext for DeliveryTracker {
    fn error(&self, error: KafkaError, reason: &str) {
        self.client_errors.record(error, reason);
    }

    /// Notes the brokers' APIs; librdkafka's other log lines go nowhere, as they would
    /// through the `log` crate, which has no logger in a backend.
    fn log(&self, _level: RDKafkaLogLevel, facility: &str, line: &str) {
        self.broker_apis.record(facility, line);
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
                let partitions = match outcomes.offsets.get_mut(message.topic()) {
                    Some(partitions) => partitions,
                    None => outcomes.offsets.entry(message.topic().to_string()).or_default(),
                };
                let entry = partitions.entry(message.partition()).or_insert((0, offset, offset));
                *entry = (entry.0 + 1, entry.1.min(offset), entry.2.max(offset));
                if let Some(written) = outcomes.transaction_offsets.as_mut() {
                    let partitions = match written.get_mut(message.topic()) {
                        Some(partitions) => partitions,
                        None => written.entry(message.topic().to_string()).or_default(),
                    };
                    let span = partitions.entry(message.partition()).or_insert((offset, offset));
                    *span = (span.0.min(offset), span.1.max(offset));
                }
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
                    outcomes.missing_topic.get_or_insert_with(|| message.topic().to_string());
                }
                if outcomes.first_error.is_none() {
                    outcomes.first_error = Some(format!("{error} (partition {})", message.partition()));
                    outcomes.first_error_code = code;
                    outcomes.first_error_topic = Some(message.topic().to_string());
                }
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
    configured_producer(settings, |_| {})
}

/// A producer as [`new_producer`] makes it, with `extra` settings over the user's
/// (kafka_fdw's own, such as a transactional id).
pub(super) fn configured_producer(settings: &ClientSettings, extra: impl FnOnce(&mut ClientConfig)) -> FdwResult<KafkaProducer> {
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
    extra(&mut config);
    with_signals_blocked(|| config.create_with_context::<_, KafkaProducer>(DeliveryTracker::default())).map_err(|e| {
        FdwError::new(ErrorKind::Kafka, "could not create a Kafka producer").with_detail(e.to_string())
    })
}

/// One message to produce. A `None` partition lets the partitioner choose; a `None`
/// topic is the sender's.
#[derive(Debug, Clone, Default)]
pub struct Outgoing<'a> {
    pub topic: Option<&'a str>,
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// Milliseconds since 1970; `None` for the time of sending.
    pub timestamp: Option<i64>,
    pub headers: Option<OwnedHeaders>,
}

/// Sends messages to a topic (or each to its own, [`Outgoing::topic`]) and, at the end,
/// waits until Kafka acknowledged every one of them. `P` is the producer or something
/// that lends one (a pooled client).
pub struct Sender<P: Borrow<KafkaProducer>> {
    producer: P,
    settings: ClientSettings,
    /// Where messages without a topic of their own go.
    topic: String,
    /// Where the messages go, for errors: `topic "a"`, `topics "a", "b"`.
    destination: String,
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
pub struct Counts {
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub unknown: u64,
}

impl Counts {
    fn settled(&self) -> u64 {
        self.delivered + self.failed + self.unknown
    }

    pub fn in_flight(&self) -> u64 {
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

/// "partition 0 offsets 10..57 (48 messages), partition 3 offset 4 (1 message)", each
/// partition prefixed with its topic when there are several (`topic "a" partition 0 …`).
fn delivered_offsets(offsets: &BTreeMap<String, BTreeMap<i32, (u64, i64, i64)>>) -> String {
    let several = offsets.len() > 1;
    offsets
        .iter()
        .flat_map(|(topic, partitions)| {
            let prefix = if several { format!("topic \"{topic}\" ") } else { String::new() };
            partitions.iter().map(move |(partition, &(count, low, high))| match count {
                1 => format!("{prefix}partition {partition} offset {low} (1 message)"),
                _ => format!("{prefix}partition {partition} offsets {low}..{high} ({count} messages)"),
            })
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl<P: Borrow<KafkaProducer>> Sender<P> {
    pub fn new(producer: P, settings: ClientSettings, topic: &str) -> Self {
        let tracker = producer.borrow().context();
        // A pooled producer is only reused with nothing in flight: counts start afresh
        // (a Kafka transaction's offsets span its statements).
        let mut outcomes = tracker.outcomes();
        *outcomes = Outcomes { transaction_offsets: outcomes.transaction_offsets.take(), ..Outcomes::default() };
        drop(outcomes);
        tracker.client_errors.take();
        Sender { producer, settings, topic: topic.to_string(), destination: format!("topic \"{topic}\""), sent: 0 }
    }

    /// A sender whose messages each name their topic (a table over several), described
    /// as `destination` in errors (`topics "a", "b"`).
    pub fn routed(producer: P, settings: ClientSettings, destination: String) -> Self {
        Sender { destination, ..Self::new(producer, settings, "") }
    }

    fn tracker(&self) -> &DeliveryTracker {
        self.producer.borrow().context()
    }

    /// The outcomes of the messages sent so far.
    pub fn counts(&self) -> Counts {
        let outcomes = self.tracker().outcomes();
        Counts { sent: self.sent, delivered: outcomes.delivered, failed: outcomes.failed, unknown: outcomes.unknown }
    }

    fn what(&self) -> String {
        format!("produce to {}", self.destination)
    }

    /// A topic turned out not to exist (its messages fail with "unknown topic").
    fn check_topic(&self) -> FdwResult<()> {
        match &self.tracker().outcomes().missing_topic {
            Some(topic) => Err(no_such_topic(topic)),
            None => Ok(()),
        }
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
        let topic = message.topic.unwrap_or(&self.topic);
        let mut record = BaseRecord::<[u8], [u8]>::to(topic);
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
                        format!("could not produce to topic \"{topic}\"{partition}"),
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
        let (first, first_code, first_topic, offsets) = {
            let outcomes = tracker.outcomes();
            let first_topic = outcomes.first_error_topic.clone().unwrap_or_else(|| self.topic.clone());
            (outcomes.first_error.clone().unwrap_or_default(), outcomes.first_error_code, first_topic, delivered_offsets(&outcomes.offsets))
        };
        let delivered = if offsets.is_empty() { "None was delivered.".to_string() } else { format!("Delivered: {offsets}.") };
        // A producer refused idempotence fails for good and purges its messages (their
        // own error says only that); a refused produce fails its messages.
        let refused = match producer.client().fatal_error() {
            Some((code, reason)) if is_refusal(code) => Some((Refused::IdempotentWrite { topic: &first_topic }, reason)),
            _ if first_code.is_some_and(is_refusal) => Some((Refused::Topic { topic: &first_topic, operation: "WRITE" }, first.clone())),
            _ => None,
        };
        if let Some((refused, cause)) = refused {
            let error = refusal(&self.settings, refused, &cause);
            let detail = format!("{} {} {delivered}", error.detail.as_deref().unwrap_or_default(), counts.summary());
            return Err(error.with_detail(detail));
        }
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
                "{} of {} messages to Kafka {} were not confirmed: {} failed, {} unknown (may be in the topic), {} delivered",
                counts.failed + counts.unknown,
                counts.sent,
                self.destination,
                counts.failed,
                counts.unknown,
                counts.delivered
            ),
        )
        .with_detail(detail)
        .with_hint(hint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::testing::*;
    use crate::kafka::config::new_consumer;
    use crate::kafka::metadata::watermarks;
    

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
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD; 50],
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
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_INVALID_RECORD; 50],
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
        assert!(detail.contains("Broker failed to validate record"), "{detail}");
        assert!(error.hint.unwrap().contains("retrying the statement duplicates them"));
    }

    #[test]
    fn a_write_kafka_refuses_is_a_privilege_error_naming_the_topic_and_operation() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("out", 1, 1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.properties = vec![("sasl.username".into(), "bob".into())];
        let producer = new_producer(&settings).unwrap();
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::Produce,
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
        );
        let mut sender = Sender::new(&producer, settings, "out");
        sender.send(Outgoing { partition: Some(0), payload: Some(b"refused"), ..Outgoing::default() }).unwrap();
        let error = sender.finish().unwrap_err();
        assert_eq!(error.kind, ErrorKind::InsufficientPrivilege);
        assert_eq!(error.message, "permission denied for Kafka topic \"out\"");
        let detail = error.detail.unwrap();
        assert!(detail.starts_with("Kafka refused WRITE on topic \"out\" to principal User:bob: "), "{detail}");
        assert!(detail.contains("None was delivered."), "{detail}");
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
        let partitions: BTreeMap<i32, (u64, i64, i64)> = [(0, (3, 10, 12)), (4, (1, 7, 7))].into_iter().collect();
        let one: BTreeMap<String, _> = [("a".to_string(), partitions.clone())].into_iter().collect();
        assert_eq!(delivered_offsets(&one), "partition 0 offsets 10..12 (3 messages), partition 4 offset 7 (1 message)");
        let two: BTreeMap<String, _> = [("a".to_string(), partitions), ("b".to_string(), [(1, (1, 0, 0))].into_iter().collect())].into_iter().collect();
        assert_eq!(
            delivered_offsets(&two),
            "topic \"a\" partition 0 offsets 10..12 (3 messages), topic \"a\" partition 4 offset 7 (1 message), topic \"b\" partition 1 offset 0 (1 message)"
        );
    }

    #[test]
    fn a_routed_sender_writes_each_message_to_its_topic_and_names_the_missing_one() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("east", 1, 1).unwrap();
        cluster.create_topic("west", 2, 1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.properties = vec![("allow.auto.create.topics".into(), "false".into())];
        let producer = new_producer(&settings).unwrap();
        let mut sender = Sender::routed(&producer, settings.clone(), "topics \"east\", \"west\"".into());
        for topic in ["east", "west", "west"] {
            sender.send(Outgoing { topic: Some(topic), partition: Some(0), payload: Some(topic.as_bytes()), ..Outgoing::default() }).unwrap();
        }
        assert_eq!(sender.finish().unwrap(), 3);
        let consumer = new_consumer(&settings).unwrap();
        assert_eq!(watermarks(&consumer, &settings, "east", &[0]).unwrap()[0].high, 1);
        assert_eq!(watermarks(&consumer, &settings, "west", &[0]).unwrap()[0].high, 2);

        let mut sender = Sender::routed(&producer, settings, "topics \"east\", \"nope\"".into());
        sender.send(Outgoing { topic: Some("east"), payload: Some(b"x"), ..Outgoing::default() }).unwrap();
        sender.send(Outgoing { topic: Some("nope"), payload: Some(b"y"), ..Outgoing::default() }).unwrap();
        assert_eq!(sender.finish().unwrap_err().message, "Kafka topic \"nope\" does not exist");
    }
}
