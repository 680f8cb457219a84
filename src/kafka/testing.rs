//! A librdkafka mock cluster and helpers for the client's tests.

use std::borrow::Borrow;
use std::time::{Duration, Instant};

use rdkafka::bindings;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::Message;

use crate::error::{ErrorKind, FdwResult};
use rdkafka::mocking::MockCluster;
use super::config::*;
use super::reader::*;

pub fn no_interrupt() {}

/// A librdkafka mock cluster, hosted by a client of its own. The mock names broker 0
/// as the cluster's controller (where librdkafka sends DescribeTopics) but numbers its
/// brokers from 1, so broker 0 is added, as a real cluster always has its controller.
pub struct Mock {
    host: BaseProducer,
}

pub fn mock_cluster(brokers: i32) -> Mock {
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
    pub fn cluster(&self) -> MockCluster<'_, rdkafka::producer::DefaultProducerContext> {
        self.host.client().mock_cluster().unwrap()
    }
}

pub fn test_settings(brokers: &str) -> ClientSettings {
    ClientSettings {
        brokers: brokers.to_string(),
        properties: Vec::new(),
        timeout: Duration::from_secs(5),
        fetch_wait: Duration::from_millis(100),
        isolation: crate::kafka::IsolationLevel::ReadCommitted,
        fetch_max_bytes: None,
        interrupt: no_interrupt,
    }
}

pub fn produce(brokers: &str, topic: &str, partition: i32, payloads: &[String]) {
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    for payload in payloads {
        producer.send(BaseRecord::<(), _>::to(topic).partition(partition).payload(payload)).unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

pub fn read_all<C: Borrow<KafkaConsumer>>(reader: &mut RangeReader<C>) -> Vec<(i32, i64, String)> {
    let mut rows = Vec::new();
    while let Some(message) = reader.next_message().unwrap() {
        let payload = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
        rows.push((message.partition(), message.offset(), payload));
    }
    rows
}

/// A broker that accepts connections and never answers: the listener is kept open
/// and never accepts, so the kernel completes the handshakes and holds the requests.
pub fn silent_broker() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    (listener, address)
}

pub fn assert_fails_in_time<T: std::fmt::Debug>(what: &str, timeout: Duration, call: impl FnOnce() -> FdwResult<T>) {
    let started = Instant::now();
    let error = call().expect_err(what);
    let took = started.elapsed();
    assert_eq!(error.kind, ErrorKind::UnableToEstablishConnection, "{what}: {error}");
    assert!(took >= timeout.saturating_sub(Duration::from_millis(50)), "{what} gave up early: {took:?}");
    assert!(took < timeout + Duration::from_secs(1), "{what} took {took:?}");
}
