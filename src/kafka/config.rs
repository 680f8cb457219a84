//! Client configuration: settings, librdkafka property lookup, creating consumers, and
//! classifying the errors clients report.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::error::{ErrorKind, FdwError, FdwResult};

use super::{Interrupt, MAX_FETCH_WAIT};

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
    pub(super) fn record(&self, error: KafkaError, reason: &str) {
        let mut last = self.last.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // "All brokers are down" follows every failure: keep the failure's own reason
        // (an authentication or TLS error, say).
        if last.is_some() && error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        *last = Some(if reason.is_empty() { error.to_string() } else { without_timing(reason).to_string() });
    }

    pub(super) fn take(&self) -> Option<String> {
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

/// Which messages of transactional producers a scan reads (Kafka's `isolation.level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IsolationLevel {
    /// Only messages of committed transactions (and of producers without transactions),
    /// up to the last stable offset: the first offset of a transaction still open.
    ReadCommitted,
    /// Every message, aborted and still-open transactions' included, up to the high
    /// watermark.
    ReadUncommitted,
}

impl IsolationLevel {
    /// librdkafka's spelling of the level (`isolation.level`).
    pub fn property_value(self) -> &'static str {
        match self {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        }
    }
}

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
    /// What consumers read and where watermarks end (see [`IsolationLevel`]).
    pub isolation: IsolationLevel,
    /// At most this many bytes per fetch, for consumers that read short runs and jump
    /// between them (ANALYZE's): what a fetch brings past a run is thrown away at the
    /// jump. `None`: librdkafka's defaults (1 MB per partition, 50 MB per fetch).
    pub fetch_max_bytes: Option<usize>,
    pub interrupt: Interrupt,
}

impl ClientSettings {
    /// A consumer's `fetch.wait.max.ms`: `fetch_wait`, capped at [`MAX_FETCH_WAIT`].
    pub fn consumer_fetch_wait(&self) -> Duration {
        self.fetch_wait.min(MAX_FETCH_WAIT)
    }
}

/// Runs `create` with every signal blocked in the calling thread, so that the threads
/// librdkafka starts inherit a mask that keeps the host's signals (SIGINT for cancel,
/// SIGALRM for statement_timeout, ...) on the host's own thread.
pub fn with_signals_blocked<T>(create: impl FnOnce() -> T) -> T {
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

/// The librdkafka properties [`ClientSettings::fetch_max_bytes`] sets.
const FETCH_SIZE_PROPERTIES: [&str; 3] = ["max.partition.fetch.bytes", "fetch.max.bytes", "message.max.bytes"];

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
        .set("queued.max.messages.kbytes", "16384")
        .set("isolation.level", settings.isolation.property_value());
    // Fetch sizes the server or user mapping sets are theirs to keep consistent: librdkafka
    // refuses a fetch.max.bytes below message.max.bytes.
    let sized_by_user = settings.properties.iter().any(|(name, _)| FETCH_SIZE_PROPERTIES.contains(&name.as_str()));
    if let Some(bytes) = settings.fetch_max_bytes.filter(|_| !sized_by_user) {
        // Per partition (Kafka) and per fetch (all partitions; tansu honours only this
        // one); message.max.bytes bounds a consumer's requests, which are small.
        for name in FETCH_SIZE_PROPERTIES {
            config.set(name, bytes.to_string());
        }
    }
    apply_properties(&mut config, settings);
    with_signals_blocked(|| config.create_with_context::<_, KafkaConsumer>(ClientErrors::default())).map_err(|e| {
        FdwError::new(ErrorKind::Kafka, "could not create a Kafka consumer").with_detail(e.to_string())
    })
}

pub(super) fn apply_properties(config: &mut ClientConfig, settings: &ClientSettings) {
    for (name, value) in &settings.properties {
        config.set(name, value);
    }
}

/// Events served while looking for the reason of a failure. A poll serves at most one,
/// and does not tell an empty queue from a served log event.
pub(super) const EVENTS_SERVED: usize = 1000;

/// The last error librdkafka reported since the last call. Its error events wait in the
/// consumer's queue until polled, which metadata and offset requests do not do, so this
/// serves the queue: only on the way to failing, since it may also consume messages of a
/// partition being read, which the failed query no longer needs.
pub(super) fn reported_errors(consumer: &KafkaConsumer) -> Option<String> {
    for _ in 0..EVENTS_SERVED {
        consumer.poll(Duration::ZERO);
    }
    consumer.context().take()
}

/// Errors that mean "no answer yet" rather than "the answer is no".
pub(super) fn is_transient(error: &KafkaError) -> bool {
    error.rdkafka_error_code().is_some_and(is_transient_code)
}

/// Error codes that mean "no answer yet" rather than "the answer is no".
pub(super) fn is_transient_code(code: RDKafkaErrorCode) -> bool {
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

/// What a broker's authorizer refused, by its ACLs, to the client's principal.
#[derive(Debug, Clone, Copy)]
pub(super) enum Refused<'a> {
    /// An operation (DESCRIBE, READ, WRITE) on a topic.
    Topic { topic: &'a str, operation: &'static str },
    /// IDEMPOTENT_WRITE on the cluster, which an idempotent producer asks for before it
    /// writes to `topic`.
    IdempotentWrite { topic: &'a str },
    /// WRITE on a transactional id.
    TransactionalId(&'a str),
    /// READ on a consumer group, which committing its offsets needs.
    Group(&'a str),
}

/// Whether Kafka's answer is a refusal by its authorizer.
pub(super) fn is_refusal(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
    )
}

/// An operation Kafka refused (`cause`: its answer), as an insufficient-privilege error
/// naming the resource, the operation and the principal it was refused to.
pub(super) fn refusal(settings: &ClientSettings, refused: Refused<'_>, cause: &str) -> FdwError {
    let principal = settings
        .properties
        .iter()
        .find(|(name, _)| name == "sasl.username")
        .map_or_else(|| "the client's principal".to_string(), |(_, user)| format!("principal User:{user}"));
    let cause = cause.trim_end_matches('.');
    let (message, detail, hint) = match refused {
        Refused::Topic { topic, operation } => (
            format!("permission denied for Kafka topic \"{topic}\""),
            format!("Kafka refused {operation} on topic \"{topic}\" to {principal}: {cause}."),
            format!(
                "An ACL allowing {operation} on the topic to that principal is needed{}.",
                if operation == "DESCRIBE" { " (READ or WRITE imply it)" } else { "" }
            ),
        ),
        Refused::IdempotentWrite { topic } => (
            "permission denied for the Kafka cluster".to_string(),
            format!(
                "Kafka refused IDEMPOTENT_WRITE on the cluster to {principal}, which kafka_fdw's idempotent producer needs before writing to topic \"{topic}\": {cause}."
            ),
            format!(
                "An ACL allowing WRITE on topic \"{topic}\" to that principal is needed (Kafka 3.0 and later then allow idempotent writes too), or IDEMPOTENT_WRITE on the cluster."
            ),
        ),
        Refused::TransactionalId(id) => (
            format!("permission denied for Kafka transactional id \"{id}\""),
            format!("Kafka refused WRITE on transactional id \"{id}\" to {principal}: {cause}."),
            "kafka_fdw's transactional ids all begin with \"kafka_fdw-\": an ACL allowing WRITE on transactional ids with that prefix serves every backend.".to_string(),
        ),
        Refused::Group(group) => (
            format!("permission denied for Kafka consumer group \"{group}\""),
            format!("Kafka refused READ on group \"{group}\" to {principal}: {cause}."),
            "Committing a group's offsets needs an ACL allowing READ on the group, and READ on the topic.".to_string(),
        ),
    };
    FdwError::new(ErrorKind::InsufficientPrivilege, message).with_detail(detail).with_hint(hint)
}

pub(super) fn unreachable_brokers(settings: &ClientSettings, what: &str, last_error: &str) -> FdwError {
    FdwError::new(
        ErrorKind::UnableToEstablishConnection,
        format!("could not {what}: no answer from Kafka brokers \"{}\" within {} ms", settings.brokers, settings.timeout.as_millis()),
    )
    .with_detail(format!("Last client error: {last_error}"))
    .with_hint("Check that the brokers are running and reachable, and the credentials and TLS properties of the server and user mapping; or raise the server option \"timeout_ms\".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::testing::*;
    

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
}
