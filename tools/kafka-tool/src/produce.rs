//! The produce commands: text lines as they are (`produce`) and JSON lines encoded as Avro
//! (`produce-avro`), both through one [`Sender`] that checks every delivery.

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
use crate::registry::Credentials;
use crate::registry_client;
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
}

impl Sender {
    fn new(brokers: &str, compression: &str) -> Result<Self> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("compression.type", compression)
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .create_with_context(DeliveryCounter::default())?;
        Ok(Sender { producer, sent: 0, started: Instant::now() })
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

pub fn produce(args: &ProduceArgs) -> Result<()> {
    let lines = read_lines(args.file.as_ref())?;
    let mut headers = OwnedHeaders::new();
    for header in &args.headers {
        let (name, value) = header.split_once('=').ok_or("--header takes NAME=VALUE")?;
        headers = headers.insert(Header { key: name, value: Some(value) });
    }
    let mut sender = Sender::new(&args.brokers, &args.compression)?;
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
            let credentials =
                args.user.as_ref().map(|user| Credentials { user: user.clone(), password: args.password.clone().unwrap_or_default() });
            Some(registry_client::register(url, &subject, &schema_text, credentials.as_ref())?)
        }
        None => None,
    };
    // Every line is encoded before anything is sent, so that a bad line leaves the topic
    // as it was.
    let mut messages = Vec::new();
    for (number, line) in read_lines(None)?.iter().enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at_line = |error: &dyn std::fmt::Display| format!("line {}: {error}", number + 1);
        let json: serde_json::Value = serde_json::from_slice(line).map_err(|e| at_line(&e))?;
        let payload = encoder.encode(&json, schema_id).map_err(|e| at_line(&*e))?;
        let key = args.key_field.as_ref().and_then(|field| match json.get(field) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) => Some(text.clone()),
            Some(other) => Some(other.to_string()),
        });
        messages.push((key, payload));
    }
    let mut sender = Sender::new(&args.brokers, "none")?;
    let partitions = args.placement.partitions(&sender, &args.topic)?;
    for (key, payload) in &messages {
        let mut record = BaseRecord::<[u8], [u8]>::to(&args.topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key.as_bytes());
        }
        if let Some(p) = args.placement.partition_for(sender.sent(), partitions) {
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
    use super::split_line;

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
