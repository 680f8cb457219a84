//! Kafka transactions for a host that decides when they begin and end (PostgreSQL's
//! transaction callbacks, in the `pg` layer): a producer with a `transactional.id`, and
//! its begin, commit and abort, each bounded by the settings' timeout.
//!
//! librdkafka's transactional calls block; a call that times out is retriable and
//! resumes where it was, so each is made in short slices until it succeeds or the timeout
//! passes. Any failure leaves the producer unfit for another transaction: the caller drops
//! it, and the next producer with the same id fences it (its open transaction, if any, is
//! aborted by the transaction coordinator when the new one initializes).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::Producer;

use crate::error::{ErrorKind, FdwError, FdwResult};

use super::config::{ClientSettings, EVENTS_SERVED, IsolationLevel, KafkaConsumer, Refused, is_refusal, refusal};
use super::metadata::watermarks;
use super::sender::{configured_producer, KafkaProducer, WrittenOffsets};
use super::{Interrupt, POLL_SLICE};

/// A producer whose messages are sent inside transactions of `transactional_id`, ready
/// for [`begin_transaction`]. Initializing fences any earlier producer of the same id:
/// its open transaction is aborted.
///
/// A broker may take a transactional id and messages sent in its transactions without
/// offering EndTxn, the request that commits or aborts one (tansu 0.6.0 does this):
/// librdkafka finds out only at the commit, after the messages went out, and fails it
/// as retriable until it times out. So the producer asks librdkafka for its debug lines
/// about the APIs each broker offers, and is refused before it sends anything when a
/// broker it spoke to lacks EndTxn.
pub fn transactional_producer(settings: &ClientSettings, transactional_id: &str) -> FdwResult<KafkaProducer> {
    let debug = match settings.properties.iter().rev().find(|(name, _)| name == "debug") {
        Some((_, contexts)) => format!("{contexts},feature"),
        None => "feature".to_string(),
    };
    let producer = configured_producer(settings, |config| {
        config.set("transactional.id", transactional_id).set("debug", debug).set_log_level(RDKafkaLogLevel::Debug);
    })?;
    in_slices(settings, settings.interrupt, "initialize Kafka transactions", |slice| producer.init_transactions(slice)).map_err(
        |failure| match failure.code {
            Some(code) if is_refusal(code) => {
                refusal(settings, Refused::TransactionalId(transactional_id), failure.error.detail.as_deref().unwrap_or_default())
            }
            _ => failure.error,
        },
    )?;
    // The lines wait in the producer's queue as log events, served by polls (one each).
    for _ in 0..EVENTS_SERVED {
        producer.poll(Duration::ZERO);
    }
    if let Some(broker) = producer.context().broker_apis.lacking_end_txn() {
        return Err(FdwError::new(ErrorKind::FeatureNotSupported, "the Kafka brokers do not support transactions")
            .with_detail(format!(
                "Broker {broker} does not offer EndTxn (KIP-98), the request that commits or aborts a Kafka transaction; nothing was sent."
            ))
            .with_hint("Set transactional 'false' on the table or server, or use brokers with Kafka transactions (Apache Kafka 0.11 or later, Redpanda)."));
    }
    Ok(producer)
}

/// Which brokers offer EndTxn, as librdkafka's debug lines (facility `APIVERSION`, context
/// `feature`) list each broker's APIs when it connects: a `…: Broker API support:` line,
/// then one `…:   ApiKey <name> (<key>) Versions <min>..<max>` line per API, each line
/// starting with the broker's thread and name.
#[derive(Default)]
pub struct BrokerApis {
    /// By the lines' broker prefix: whether the broker offers EndTxn.
    end_txn: Mutex<BTreeMap<String, bool>>,
}

impl BrokerApis {
    pub(super) fn record(&self, facility: &str, line: &str) {
        if facility != "APIVERSION" {
            return;
        }
        let mut end_txn = self.end_txn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(broker) = line.strip_suffix("Broker API support:") {
            end_txn.entry(broker.to_string()).or_insert(false);
        } else if let Some((broker, _)) = line.split_once("  ApiKey EndTxn (") {
            end_txn.insert(broker.to_string(), true);
        }
    }

    /// A broker that listed its APIs without EndTxn, by name; `None` if every broker that
    /// listed them offers it (or none did: librdkafka asked no broker, `api.version.request`).
    pub(super) fn lacking_end_txn(&self) -> Option<String> {
        let end_txn = self.end_txn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (prefix, _) = end_txn.iter().find(|(_, offered)| !**offered)?;
        // "[thrd:HOST:PORT/ID]: HOST:PORT/ID: "
        let name = prefix.trim_end().trim_end_matches(':');
        Some(name.rsplit("]: ").next().unwrap_or(name).to_string())
    }

    /// How many brokers listed their APIs.
    #[cfg(test)]
    fn brokers(&self) -> usize {
        self.end_txn.lock().unwrap().len()
    }
}

/// Starts a transaction (local to the client: the coordinator hears of it with the first
/// message).
pub fn begin_transaction(producer: &KafkaProducer) -> FdwResult<()> {
    producer.begin_transaction().map_err(|e| failed("begin a Kafka transaction", &e))?;
    // From here on the producer notes where its messages land, for `await_visible`.
    producer.context().take_transaction_offsets();
    Ok(())
}

/// Commits the open transaction: every message sent in it becomes visible to
/// read_committed readers at once (once the commit markers are written: see
/// [`await_visible`]). Waits at most the settings' timeout and is not interrupted (an
/// interrupt could leave a commit under way on the broker while the host rolls back). A
/// commit that fails is aborted when it can be. Returns where the transaction wrote.
pub fn commit_transaction(producer: &KafkaProducer, settings: &ClientSettings) -> FdwResult<WrittenOffsets> {
    let committed = in_slices(settings, no_interrupt, "commit the Kafka transaction", |slice| producer.commit_transaction(slice));
    if let Err(error) = &committed {
        if error.requires_abort {
            // The broker keeps nothing of it either way: the error says what went wrong.
            let _ = abort_transaction(producer, settings);
        }
    }
    committed.map_err(|error| error.error)?;
    Ok(producer.context().take_transaction_offsets())
}

/// Pause between two looks at the last stable offsets of a transaction just committed.
const VISIBILITY_POLL: Duration = Duration::from_millis(5);

/// Waits until read_committed readers see the messages of a transaction just committed
/// (`written`, as [`commit_transaction`] returned it). The coordinator acknowledges a
/// commit once it has logged it, and writes the commit markers into the partitions
/// after that; until a partition has its marker, its last stable offset stays at the
/// transaction's first message there, and a scan right after the commit would read
/// nothing of it. A last stable offset below that first message belongs to an earlier
/// transaction of another producer, still open: the messages become visible when that
/// one ends, which is not waited for. Not interrupted (the transaction is committed
/// already); at most the settings' timeout, with `consumer` (any of the cluster).
pub fn await_visible(consumer: &KafkaConsumer, settings: &ClientSettings, written: &WrittenOffsets) -> FdwResult<()> {
    let settings = ClientSettings { isolation: IsolationLevel::ReadCommitted, interrupt: no_interrupt, ..settings.clone() };
    let deadline = Instant::now() + settings.timeout;
    let mut pending: Vec<(&str, Vec<(i32, i64)>)> = written
        .iter()
        .map(|(topic, partitions)| (topic.as_str(), partitions.iter().map(|(&partition, &(first, _))| (partition, first)).collect()))
        .collect();
    loop {
        for (topic, partitions) in &mut pending {
            let ids: Vec<i32> = partitions.iter().map(|&(partition, _)| partition).collect();
            let marks = watermarks(consumer, &settings, topic, &ids)?;
            partitions.retain(|&(partition, first)| marks.iter().any(|m| m.partition == partition && m.high == first));
        }
        pending.retain(|(_, partitions)| !partitions.is_empty());
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let waiting: Vec<String> = pending
                .iter()
                .map(|(topic, partitions)| {
                    let ids: Vec<String> = partitions.iter().map(|(partition, _)| partition.to_string()).collect();
                    format!("topic \"{topic}\" partition(s) {}", ids.join(", "))
                })
                .collect();
            return Err(FdwError::new(
                ErrorKind::Kafka,
                format!("the Kafka transaction committed, but read_committed readers did not see it within {} ms", settings.timeout.as_millis()),
            )
            .with_detail(format!("No commit marker yet in {}.", waiting.join("; "))));
        }
        thread::sleep(VISIBILITY_POLL);
    }
}

/// Aborts the open transaction: its messages never become visible to read_committed
/// readers. Never interrupted (the host calls it while rolling back).
pub fn abort_transaction(producer: &KafkaProducer, settings: &ClientSettings) -> FdwResult<()> {
    in_slices(settings, no_interrupt, "abort the Kafka transaction", |slice| producer.abort_transaction(slice)).map_err(|e| e.error)
}

fn no_interrupt() {}

/// A transactional call's failure, whether librdkafka wants the transaction aborted, and
/// Kafka's error code.
struct CallFailure {
    error: FdwError,
    requires_abort: bool,
    code: Option<RDKafkaErrorCode>,
}

/// Calls `call` with short timeouts until it succeeds, fails for good, or `settings.timeout`
/// passed; `interrupt` runs between the slices.
fn in_slices(
    settings: &ClientSettings,
    interrupt: Interrupt,
    what: &str,
    call: impl Fn(Duration) -> Result<(), KafkaError>,
) -> Result<(), CallFailure> {
    let deadline = Instant::now() + settings.timeout;
    loop {
        let error = match call(POLL_SLICE) {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let (retriable, requires_abort) = match &error {
            KafkaError::Transaction(e) => (e.is_retriable() && !e.is_fatal(), e.txn_requires_abort()),
            // commit_transaction first flushes, in the same slice.
            KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut) => (true, false),
            _ => (false, false),
        };
        if !retriable || Instant::now() >= deadline {
            let mut failure = failed(what, &error);
            if retriable {
                failure = FdwError::new(
                    ErrorKind::UnableToEstablishConnection,
                    format!("could not {what}: no answer from Kafka brokers \"{}\" within {} ms", settings.brokers, settings.timeout.as_millis()),
                )
                .with_detail(error.to_string());
            }
            return Err(CallFailure { error: failure, requires_abort, code: error.rdkafka_error_code() });
        }
        interrupt();
    }
}

fn failed(what: &str, error: &KafkaError) -> FdwError {
    let fenced = error.rdkafka_error_code().is_some_and(|code| {
        matches!(code, RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
    });
    let error_out = FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(error.to_string());
    if fenced {
        return error_out.with_hint("Another producer with the same transactional.id took over (fenced this one); the transaction was aborted.");
    }
    error_out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::sender::{Outgoing, Sender};
    use crate::kafka::testing::*;

    fn send(producer: &KafkaProducer, settings: &ClientSettings, topic: &str, payload: &[u8]) -> FdwResult<u64> {
        let mut sender = Sender::new(producer, settings.clone(), topic);
        sender.send(Outgoing { partition: Some(0), payload: Some(payload), ..Outgoing::default() })?;
        sender.finish()
    }

    #[test]
    fn a_transaction_commits_and_the_next_one_aborts() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("tx", 1, 1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        let producer = transactional_producer(&settings, "kafka_fdw-test-1").unwrap();
        begin_transaction(&producer).unwrap();
        assert_eq!(send(&producer, &settings, "tx", b"a").unwrap(), 1);
        commit_transaction(&producer, &settings).unwrap();
        begin_transaction(&producer).unwrap();
        assert_eq!(send(&producer, &settings, "tx", b"b").unwrap(), 1);
        abort_transaction(&producer, &settings).unwrap();
        // The producer goes on to a third transaction after an abort.
        begin_transaction(&producer).unwrap();
        commit_transaction(&producer, &settings).unwrap();
    }

    #[test]
    fn producers_of_different_ids_do_not_fence_each_other() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("tx", 1, 1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        let first = transactional_producer(&settings, "kafka_fdw-test-a").unwrap();
        let second = transactional_producer(&settings, "kafka_fdw-test-b").unwrap();
        begin_transaction(&first).unwrap();
        begin_transaction(&second).unwrap();
        send(&first, &settings, "tx", b"1").unwrap();
        send(&second, &settings, "tx", b"2").unwrap();
        commit_transaction(&first, &settings).unwrap();
        commit_transaction(&second, &settings).unwrap();
    }

    #[test]
    fn a_new_producer_of_the_same_id_takes_over_from_one_left_open() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("tx", 1, 1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        let old = transactional_producer(&settings, "kafka_fdw-test-same").unwrap();
        begin_transaction(&old).unwrap();
        send(&old, &settings, "tx", b"old").unwrap();
        // A later holder of the id (a backend in a dead one's slot) initializes and works.
        // (librdkafka's mock cluster does not fence the old producer's epoch, so what
        // becomes of the old transaction is not observable here.)
        let new = transactional_producer(&settings, "kafka_fdw-test-same").unwrap();
        begin_transaction(&new).unwrap();
        send(&new, &settings, "tx", b"new").unwrap();
        commit_transaction(&new, &settings).unwrap();
    }

    #[test]
    fn a_commit_the_coordinator_refuses_is_an_error_within_the_timeout() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("tx", 1, 1).unwrap();
        let mut settings = test_settings(&cluster.bootstrap_servers());
        settings.timeout = Duration::from_secs(2);
        let producer = transactional_producer(&settings, "kafka_fdw-test-refused").unwrap();
        begin_transaction(&producer).unwrap();
        send(&producer, &settings, "tx", b"x").unwrap();
        let refusals = [rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED; 4];
        cluster.request_errors(rdkafka::types::RDKafkaApiKey::EndTxn, &refusals);
        let started = Instant::now();
        assert!(commit_transaction(&producer, &settings).is_err());
        assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    }

    #[test]
    fn a_transactional_id_kafka_refuses_is_a_privilege_error_naming_it() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        let refusals = [rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED; 10];
        cluster.request_errors(rdkafka::types::RDKafkaApiKey::InitProducerId, &refusals);
        let error = transactional_producer(&test_settings(&cluster.bootstrap_servers()), "kafka_fdw-test-refused-id")
            .err()
            .expect("refused");
        assert_eq!(error.kind, ErrorKind::InsufficientPrivilege);
        assert_eq!(error.message, "permission denied for Kafka transactional id \"kafka_fdw-test-refused-id\"");
        assert!(error.detail.unwrap().starts_with("Kafka refused WRITE on transactional id \"kafka_fdw-test-refused-id\""));
    }

    #[test]
    fn brokers_without_end_txn_are_refused_before_anything_is_sent() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("tx", 1, 1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        // The check sees every broker's APIs (were librdkafka to word its lines
        // otherwise, it would see none and let everything through).
        let producer = transactional_producer(&settings, "kafka_fdw-test-apis").unwrap();
        assert!(producer.context().broker_apis.brokers() >= 1);
        assert_eq!(producer.context().broker_apis.lacking_end_txn(), None);
        drop(producer);
        // As tansu 0.6.0: transactional ids and AddPartitionsToTxn, but no EndTxn.
        cluster.apiversion(rdkafka::types::RDKafkaApiKey::EndTxn, None, None).unwrap();
        let error = transactional_producer(&settings, "kafka_fdw-test-no-end-txn").err().expect("refused");
        assert_eq!(error.kind, ErrorKind::FeatureNotSupported);
        assert!(error.detail.as_deref().unwrap().starts_with("Broker 127.0.0.1:"), "{error:?}");
        assert!(error.detail.as_deref().unwrap().contains("does not offer EndTxn"), "{error:?}");
    }

    #[test]
    fn broker_api_lines_are_read_per_broker() {
        let apis = BrokerApis::default();
        let a = "[thrd:127.0.0.1:9092/bootstrap]: 127.0.0.1:9092/bootstrap: ";
        let b = "[thrd:127.0.0.1:9093/2]: 127.0.0.1:9093/2: ";
        apis.record("APIVERSION", &format!("{a}Broker API support:"));
        apis.record("APIVERSION", &format!("{b}Broker API support:"));
        apis.record("APIVERSION", &format!("{a}  ApiKey EndTxn (26) Versions 0..3"));
        apis.record("FEATURE", &format!("{b}  ApiKey EndTxn (26) Versions 0..3"));
        assert_eq!(apis.lacking_end_txn().as_deref(), Some("127.0.0.1:9093/2"));
        apis.record("APIVERSION", &format!("{b}  ApiKey Produce (0) Versions 0..9"));
        apis.record("APIVERSION", &format!("{b}  ApiKey EndTxn (26) Versions 0..3"));
        assert_eq!(apis.lacking_end_txn(), None);
        // A broker that connects again lists its APIs again.
        apis.record("APIVERSION", &format!("{a}Broker API support:"));
        assert_eq!(apis.lacking_end_txn(), None);
    }

    #[test]
    fn an_unreachable_coordinator_fails_initialization_within_the_timeout() {
        let mut settings = test_settings("127.0.0.1:1");
        settings.timeout = Duration::from_millis(800);
        let started = Instant::now();
        let error = transactional_producer(&settings, "kafka_fdw-test-nobody").err().expect("no broker");
        assert!(error.message.contains("initialize Kafka transactions"), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }
}
