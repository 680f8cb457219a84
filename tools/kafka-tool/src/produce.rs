//! The produce commands: text lines as they are (`produce`) and JSON lines encoded as Avro
//! (`produce-avro`) or Protobuf (`produce-protobuf`), all through one [`Sender`] that
//! checks every delivery.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Args;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{DeliveryResult, Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::avro::AvroEncoder;
use crate::protobuf::ProtobufEncoder;
use crate::registry::Credentials;
use crate::registry_client::{self, NewSchema};
use crate::{Result, METADATA_TIMEOUT};

#[derive(Args)]
pub struct ProduceArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[command(flatten)]
    placement: Placement,
    /// Read lines from this file instead of standard input.
    #[arg(long)]
    file: Option<PathBuf>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// Produce this many copies of the input (for benchmark loads).
    #[arg(long, default_value_t = 1)]
    repeat: u64,
    /// Split each line at the first occurrence of this character: key before, payload after.
    #[arg(long)]
    key_delimiter: Option<char>,
    /// Read `\n`, `\r` and `\\` in a line as a line feed, a carriage return and a
    /// backslash: messages that hold line breaks.
    #[arg(long)]
    unescape: bool,
    /// A payload equal to this text is sent as no value at all: a tombstone (with
    /// --key-delimiter, `KEY|TEXT` deletes KEY in a compacted topic).
    #[arg(long)]
    tombstone: Option<String>,
    /// A header NAME=VALUE added to every message (repeatable).
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Message timestamp of the first message, in ms since 1970 (default: now).
    #[arg(long)]
    timestamp_start: Option<i64>,
    /// Produce everything in one Kafka transaction with this transactional.id.
    #[arg(long)]
    transactional_id: Option<String>,
    /// With --transactional-id: how the transaction ends: commit, abort, or open (exit
    /// without ending it, as a crashed producer would).
    #[arg(long, default_value = "commit", requires = "transactional_id", value_parser = ["commit", "abort", "open"])]
    end: String,
    /// Added to the timestamp for each next message, in ms.
    #[arg(long, default_value_t = 0)]
    timestamp_step: i64,
}

#[derive(Args)]
pub struct ProduceAvroArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// The Avro schema (JSON) every input line is encoded with.
    #[arg(long)]
    schema_file: PathBuf,
    /// Schema Registry base URL: register the schema there and frame each message in
    /// Confluent's wire format. Without it, messages are bare Avro datums.
    #[arg(long)]
    registry: Option<String>,
    /// The subject to register the schema under (default: `<topic>-value`).
    #[arg(long, requires = "registry")]
    subject: Option<String>,
    /// Registry user (HTTP basic auth).
    #[arg(long, requires_all = ["registry", "password"])]
    user: Option<String>,
    #[arg(long, requires = "user")]
    password: Option<String>,
    #[command(flatten)]
    placement: Placement,
    /// Use this top-level field's value as the message key (a string as it is, other
    /// values as JSON text; null or absent: no key).
    #[arg(long)]
    key_field: Option<String>,
}

/// Counts delivery reports; remembers the first failure.
#[derive(Default)]
struct DeliveryCounter {
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.first_error.lock().unwrap().get_or_insert_with(|| error.to_string());
            }
        }
    }
}

/// An idempotent producer that waits out a full queue and, at the end, fails unless every
/// message was reported delivered.
struct Sender {
    producer: BaseProducer<DeliveryCounter>,
    sent: u64,
    started: Instant,
    /// How the Kafka transaction every message is in ends; `None`: no transaction.
    transaction_end: Option<String>,
}

/// The longest wait for the transaction coordinator.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

impl Sender {
    fn new(brokers: &str, compression: &str) -> Result<Self> {
        Self::transactional(brokers, compression, None, "commit")
    }

    /// A sender whose messages are all in one transaction of `transactional_id` (if
    /// given), ended by `finish` as `end` says.
    fn transactional(brokers: &str, compression: &str, transactional_id: Option<&str>, end: &str) -> Result<Self> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("compression.type", compression)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5");
        if let Some(id) = transactional_id {
            config.set("transactional.id", id);
        }
        let producer: BaseProducer<DeliveryCounter> = config.create_with_context(DeliveryCounter::default())?;
        if transactional_id.is_some() {
            producer.init_transactions(TRANSACTION_TIMEOUT)?;
            producer.begin_transaction()?;
        }
        let transaction_end = transactional_id.map(|_| end.to_string());
        Ok(Sender { producer, sent: 0, started: Instant::now(), transaction_end })
    }

    fn partition_count(&self, topic: &str) -> Result<i32> {
        let metadata = self.producer.client().fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let count = metadata.topics().first().map(|t| t.partitions().len()).unwrap_or(0) as i32;
        if count == 0 {
            return Err(format!("topic {topic} has no partitions (does it exist?)").into());
        }
        Ok(count)
    }

    /// Messages queued so far.
    fn sent(&self) -> u64 {
        self.sent
    }

    fn send(&mut self, record: BaseRecord<'_, [u8], [u8]>) -> Result<()> {
        let mut pending = record;
        loop {
            match self.producer.send(pending) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    self.producer.poll(Duration::from_millis(10));
                    pending = back;
                }
                Err((error, _)) => return Err(error.into()),
            }
        }
        self.sent += 1;
        if self.sent.is_multiple_of(100_000) {
            self.producer.poll(Duration::ZERO);
            eprintln!("kafka-tool: {} messages queued", self.sent);
        }
        Ok(())
    }

    /// Waits for every delivery report and prints the rate.
    fn finish(self) -> Result<()> {
        self.producer.flush(Duration::from_secs(120))?;
        match self.transaction_end.as_deref() {
            Some("commit") => self.producer.commit_transaction(TRANSACTION_TIMEOUT)?,
            Some("abort") => self.producer.abort_transaction(TRANSACTION_TIMEOUT)?,
            // Left open: the process exits without ending it.
            _ => {}
        }
        let context = self.producer.context();
        let sent = self.sent;
        let failed = context.failed.load(Ordering::Relaxed);
        if failed > 0 {
            return Err(format!(
                "{failed} of {sent} messages failed; first error: {}",
                context.first_error.lock().unwrap().clone().unwrap_or_default()
            )
            .into());
        }
        let delivered = context.delivered.load(Ordering::Relaxed);
        if delivered != sent {
            return Err(format!("only {delivered} of {sent} deliveries were reported").into());
        }
        let seconds = self.started.elapsed().as_secs_f64();
        println!("produced {delivered} messages in {seconds:.3} s ({:.0} msg/s)", delivered as f64 / seconds);
        Ok(())
    }
}

/// Every line of the file (or standard input), without its line end.
fn read_lines(file: Option<&PathBuf>) -> Result<Vec<Vec<u8>>> {
    let input: Box<dyn BufRead> = match file {
        Some(path) => Box::new(BufReader::new(File::open(path)?)),
        None => Box::new(BufReader::new(io::stdin())),
    };
    Ok(input
        .split(b'\n')
        .map(|line| {
            line.map(|mut l| {
                if l.last() == Some(&b'\r') {
                    l.pop();
                }
                l
            })
        })
        .collect::<io::Result<_>>()?)
}

/// A line's key (before the first `key_delimiter`, if given and present) and payload
/// (the rest; None if it is the `tombstone` text).
fn split_line<'a>(line: &'a [u8], key_delimiter: Option<char>, tombstone: Option<&str>) -> (Option<&'a [u8]>, Option<&'a [u8]>) {
    let (key, payload) = match key_delimiter.and_then(|d| line.iter().position(|&b| b == d as u8)) {
        Some(at) => (Some(&line[..at]), &line[at + 1..]),
        None => (None, line),
    };
    (key, Some(payload).filter(|p| tombstone.map(str::as_bytes) != Some(*p)))
}

/// A line with `\n`, `\r` and `\\` read as a line feed, a carriage return and a
/// backslash; any other backslash stays.
fn unescape(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut bytes = line.iter().peekable();
    while let Some(&byte) = bytes.next() {
        let escaped = match (byte, bytes.peek().map(|&&next| next)) {
            (b'\\', Some(b'n')) => b'\n',
            (b'\\', Some(b'r')) => b'\r',
            (b'\\', Some(b'\\')) => b'\\',
            _ => {
                out.push(byte);
                continue;
            }
        };
        bytes.next();
        out.push(escaped);
    }
    out
}

pub fn produce(args: &ProduceArgs) -> Result<()> {
    let mut lines = read_lines(args.file.as_ref())?;
    if args.unescape {
        lines = lines.iter().map(|line| unescape(line)).collect();
    }
    let mut headers = OwnedHeaders::new();
    for header in &args.headers {
        let (name, value) = header.split_once('=').ok_or("--header takes NAME=VALUE")?;
        headers = headers.insert(Header { key: name, value: Some(value) });
    }
    let mut sender = Sender::transactional(&args.brokers, &args.compression, args.transactional_id.as_deref(), &args.end)?;
    let partitions = args.placement.partitions(&sender, &args.topic)?;
    for _ in 0..args.repeat {
        for line in &lines {
            let (key, payload) = split_line(line, args.key_delimiter, args.tombstone.as_deref());
            let mut record = BaseRecord::<[u8], [u8]>::to(&args.topic);
            if let Some(payload) = payload {
                record = record.payload(payload);
            }
            if let Some(key) = key {
                record = record.key(key);
            }
            if !args.headers.is_empty() {
                record = record.headers(headers.clone());
            }
            if let Some(start) = args.timestamp_start {
                record = record.timestamp(start + args.timestamp_step * sender.sent() as i64);
            }
            if let Some(p) = args.placement.partition_for(sender.sent(), partitions) {
                record = record.partition(p);
            }
            sender.send(record)?;
        }
    }
    sender.finish()
}

pub fn produce_avro(args: &ProduceAvroArgs) -> Result<()> {
    let schema_text = std::fs::read_to_string(&args.schema_file)?;
    let schema = apache_avro::Schema::parse_str(&schema_text)?;
    let encoder = AvroEncoder::new(&schema)?;
    let schema_id = match &args.registry {
        Some(url) => {
            let subject = args.subject.clone().unwrap_or_else(|| format!("{}-value", args.topic));
            let schema = NewSchema { text: &schema_text, schema_type: None, references: Vec::new() };
            Some(registry_client::register(url, &subject, &schema, credentials(&args.user, &args.password).as_ref())?.0)
        }
        None => None,
    };
    produce_json_lines(&args.brokers, &args.topic, &args.placement, args.key_field.as_deref(), |json| encoder.encode(json, schema_id))
}

#[derive(Args)]
pub struct ProduceProtobufArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    /// The .proto file; the files it imports are read from its directory.
    #[arg(long)]
    schema_file: PathBuf,
    /// The message type of every line (default: the file's first message).
    #[arg(long)]
    message: Option<String>,
    /// Schema Registry base URL.
    #[arg(long)]
    registry: String,
    /// The subject to register the schema under (default: `<topic>-value`).
    #[arg(long)]
    subject: Option<String>,
    /// Registry user (HTTP basic auth).
    #[arg(long, requires = "password")]
    user: Option<String>,
    #[arg(long, requires = "user")]
    password: Option<String>,
    #[command(flatten)]
    placement: Placement,
    /// Use this top-level field's value as the message key (as for produce-avro).
    #[arg(long)]
    key_field: Option<String>,
}

pub fn produce_protobuf(args: &ProduceProtobufArgs) -> Result<()> {
    let subject = args.subject.clone().unwrap_or_else(|| format!("{}-value", args.topic));
    let credentials = credentials(&args.user, &args.password);
    let encoder = ProtobufEncoder::register(&args.schema_file, args.message.as_deref(), &args.registry, &subject, credentials.as_ref())?;
    produce_json_lines(&args.brokers, &args.topic, &args.placement, args.key_field.as_deref(), |json| encoder.encode(json))
}

fn credentials(user: &Option<String>, password: &Option<String>) -> Option<Credentials> {
    user.as_ref().map(|user| Credentials { user: user.clone(), password: password.clone().unwrap_or_default() })
}

/// Encodes every JSON line of standard input, then sends them all: a bad line leaves the
/// topic as it was. The key is `key_field`'s value (a string as it is, other values as
/// JSON text; null or absent: no key).
fn produce_json_lines(
    brokers: &str,
    topic: &str,
    placement: &Placement,
    key_field: Option<&str>,
    encode: impl Fn(&serde_json::Value) -> Result<Vec<u8>>,
) -> Result<()> {
    let mut messages = Vec::new();
    for (number, line) in read_lines(None)?.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at_line = |error: &dyn std::fmt::Display| format!("line {}: {error}", number + 1);
        let json: serde_json::Value = serde_json::from_slice(line).map_err(|e| at_line(&e))?;
        let payload = encode(&json).map_err(|e| at_line(&*e))?;
        let key = key_field.and_then(|field| match json.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        });
        messages.push((key, payload));
    }
    let mut sender = Sender::new(brokers, "none")?;
    let partitions = placement.partitions(&sender, topic)?;
    for (key, payload) in &messages {
        let mut record = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key.as_bytes());
        }
        if let Some(p) = placement.partition_for(sender.sent(), partitions) {
            record = record.partition(p);
        }
        sender.send(record)?;
    }
    sender.finish()
}

/// Where messages go.
#[derive(Args)]
pub struct Placement {
    /// Send every message to this partition (default: the partitioner chooses).
    #[arg(long, conflicts_with = "round_robin")]
    partition: Option<i32>,
    /// Send message i to partition i mod (partition count), evenly whatever the
    /// partitioner would do (the mock cluster holds only ~5 MB per partition).
    #[arg(long)]
    round_robin: bool,
}

impl Placement {
    /// The topic's partition count when sending round robin (asked once), else 0.
    fn partitions(&self, sender: &Sender, topic: &str) -> Result<i32> {
        if self.round_robin {
            sender.partition_count(topic)
        } else {
            Ok(0)
        }
    }

    /// The partition of the message after `sent` others; `None`: the partitioner's choice.
    fn partition_for(&self, sent: u64, partitions: i32) -> Option<i32> {
        match (self.partition, self.round_robin) {
            (Some(p), _) => Some(p),
            (None, true) => Some((sent % partitions as u64) as i32),
            (None, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{split_line, unescape};

    #[test]
    fn unescaping_reads_line_breaks_and_backslashes() {
        assert_eq!(unescape(br"a\nb\r\n\\.\x"), b"a\nb\r\n\\.\\x".to_vec());
    }

    #[test]
    fn lines_split_into_key_and_payload_or_tombstone() {
        assert_eq!(split_line(b"k|v", Some('|'), None), (Some(&b"k"[..]), Some(&b"v"[..])));
        assert_eq!(split_line(b"k|v|w", Some('|'), None), (Some(&b"k"[..]), Some(&b"v|w"[..])));
        assert_eq!(split_line(b"no key", Some('|'), None), (None, Some(&b"no key"[..])));
        assert_eq!(split_line(b"k|v", None, None), (None, Some(&b"k|v"[..])));
        assert_eq!(split_line(b"k|DELETE", Some('|'), Some("DELETE")), (Some(&b"k"[..]), None));
        assert_eq!(split_line(b"k|DELETED", Some('|'), Some("DELETE")), (Some(&b"k"[..]), Some(&b"DELETED"[..])));
        assert_eq!(split_line(b"k|", Some('|'), Some("")), (Some(&b"k"[..]), None));
    }
}
