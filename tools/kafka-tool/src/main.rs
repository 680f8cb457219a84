//! kafka-tool: puts test data into Kafka and reads it back, independently of kafka_fdw.
//!
//! It is also the baseline of the benchmarks: its consume and produce loops are the raw
//! librdkafka speed that the FDW is measured against, so they do no parsing at all.
//!
//! Subcommands: `produce`, `produce-avro` (JSON lines as Avro, bare or Confluent-framed),
//! `produce-protobuf` (JSON lines as Protobuf, Confluent-framed),
//! `count`, `dump`, `watermarks`, `leaders`, `offsets-for-time`, `create-topic`, `delete-topic`,
//! `delete-records`, `acl` (grant one), `mock` (host a librdkafka mock cluster in this
//! process), `mock-ctl` (send it commands: create topics, take brokers
//! down and up, inject request errors and latency) and `registry` (host an in-memory
//! Confluent-compatible Schema Registry).

mod admin;
mod avro;
mod produce;
mod protobuf;
mod registry;
mod registry_client;

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::Message;

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Parser)]
#[command(name = "kafka-tool", about = "Test data and raw baselines for kafka_fdw")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Produce one message per input line and wait for every delivery report.
    Produce(produce::ProduceArgs),
    /// Encode each JSON line of standard input as an Avro datum of a schema and produce it:
    /// Confluent-framed with the schema registered (--registry), or bare.
    ProduceAvro(produce::ProduceAvroArgs),
    /// Encode JSON lines from standard input as Protobuf messages in Confluent's wire
    /// format, registering the .proto file (and its imports) in a Schema Registry.
    ProduceProtobuf(produce::ProduceProtobufArgs),
    /// Read every partition from its low to its high watermark; print the count and rate.
    Count {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
        /// Read the topic this many times with the same client (after the first, the
        /// connection is warm, as a pooled client's is); one line per pass.
        #[arg(long, default_value_t = 1)]
        passes: u32,
        /// read_committed (librdkafka's default: aborted messages and open transactions
        /// are not read) or read_uncommitted.
        #[arg(long, default_value = "read_committed", value_parser = ["read_committed", "read_uncommitted"])]
        isolation_level: String,
    },
    /// Print every message as `partition<TAB>offset<TAB>payload`, ordered by partition and offset.
    Dump {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
        /// read_committed (librdkafka's default: aborted messages and open transactions
        /// are not read) or read_uncommitted.
        #[arg(long, default_value = "read_committed", value_parser = ["read_committed", "read_uncommitted"])]
        isolation_level: String,
    },
    /// Print `partition<TAB>low<TAB>high` per partition.
    Watermarks {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
    },
    /// Print `partition<TAB>leader` per partition (the leader's node id; -1: none).
    Leaders {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
    },
    /// Print `partition<TAB>offset` of the first message at or after a time (-1: none).
    OffsetsForTime {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
        /// Milliseconds since 1970.
        #[arg(long)]
        ms: i64,
    },
    /// Create a topic (CreateTopics) and wait until the brokers' metadata shows it.
    CreateTopic(admin::CreateTopicArgs),
    /// Delete a topic (DeleteTopics) and wait until the brokers' metadata no longer shows it.
    DeleteTopic {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
    },
    /// Delete a partition's records before an offset (DeleteRecords): its log start
    /// offset moves there.
    DeleteRecords {
        #[arg(long)]
        brokers: String,
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        #[arg(long)]
        before: i64,
    },
    /// Grant an ACL (CreateAcls; needs a broker with an authorizer).
    Acl(admin::AclArgs),
    /// Host a librdkafka mock cluster until killed.
    Mock {
        /// Number of brokers in the cluster.
        #[arg(long, default_value_t = 1)]
        brokers: i32,
        /// Written once the cluster is up: `bootstrap=HOST:PORT` and `control=HOST:PORT`.
        #[arg(long)]
        address_file: PathBuf,
        /// Topics to create at start, as NAME:PARTITIONS.
        #[arg(long = "topic")]
        topics: Vec<String>,
    },
    /// Send one command to a `mock` process: create-topic NAME PARTITIONS, broker-down ID,
    /// broker-up ID, rtt ID MS, rtt-all MS (every broker), request-errors API_KEY ERR_CODE...,
    /// clear-errors API_KEY, api-versions API_KEY MIN MAX | none.
    MockCtl {
        /// The mock's control address (the `control=` line of its address file).
        #[arg(long)]
        control: String,
        command: Vec<String>,
    },
    /// Host an in-memory Confluent-compatible Schema Registry on 127.0.0.1 until killed.
    Registry {
        /// Written once it listens: its base URL, `http://127.0.0.1:PORT`.
        #[arg(long)]
        address_file: PathBuf,
        /// Require HTTP basic auth with this user and --password.
        #[arg(long, requires = "password")]
        user: Option<String>,
        #[arg(long, requires = "user")]
        password: Option<String>,
        /// Answer every request this many milliseconds late (one request at a time).
        #[arg(long, default_value_t = 0)]
        delay_ms: u64,
    },
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Produce(args) => produce::produce(&args),
        Command::ProduceAvro(args) => produce::produce_avro(&args),
        Command::ProduceProtobuf(args) => produce::produce_protobuf(&args),
        Command::Count { brokers, topic, passes, isolation_level } => count(&brokers, &topic, passes, &isolation_level),
        Command::Dump { brokers, topic, isolation_level } => dump(&brokers, &topic, &isolation_level),
        Command::Watermarks { brokers, topic } => print_watermarks(&brokers, &topic),
        Command::Leaders { brokers, topic } => print_leaders(&brokers, &topic),
        Command::OffsetsForTime { brokers, topic, ms } => offsets_for_time(&brokers, &topic, ms),
        Command::CreateTopic(args) => admin::create_topic(&args),
        Command::DeleteTopic { brokers, topic } => admin::delete_topic(&brokers, &topic),
        Command::DeleteRecords { brokers, topic, partition, before } => {
            admin::delete_records(&brokers, &topic, partition, before)
        }
        Command::Acl(args) => admin::grant_acl(&args),
        Command::Mock { brokers, address_file, topics } => host_mock(brokers, &address_file, &topics),
        Command::MockCtl { control, command } => mock_ctl(&control, &command),
        Command::Registry { address_file, user, password, delay_ms } => {
            let credentials = user.map(|user| registry::Credentials { user, password: password.unwrap_or_default() });
            registry::serve(&address_file, credentials, std::time::Duration::from_millis(delay_ms))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kafka-tool: {error}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn consumer(brokers: &str) -> Result<BaseConsumer> {
    reading_consumer(brokers, "read_committed")
}

/// A consumer reading with `isolation_level`.
fn reading_consumer(brokers: &str, isolation_level: &str) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("isolation.level", isolation_level)
        .set("enable.partition.eof", "true")
        // librdkafka only allows assign() with a group; nothing is committed to it.
        .set("group.id", format!("kafka-tool-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // The settings kafka_fdw's scans use, so the raw loop is a like-for-like baseline.
        .set("fetch.wait.max.ms", "5")
        .set("fetch.queue.backoff.ms", "10")
        .set("queued.max.messages.kbytes", "16384")
        .create()?)
}

/// `(partition, low, high)` of every partition of `topic`.
fn watermarks(consumer: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
    let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let Some(entry) = metadata.topics().first() else { return Err("no metadata".into()) };
    if let Some(error) = entry.error() {
        return Err(format!("topic {topic}: {error:?}").into());
    }
    let mut marks = Vec::new();
    for partition in entry.partitions() {
        let (low, high) = consumer.fetch_watermarks(topic, partition.id(), METADATA_TIMEOUT)?;
        marks.push((partition.id(), low, high));
    }
    marks.sort_unstable();
    Ok(marks)
}

fn offsets_for_time(brokers: &str, topic: &str, ms: i64) -> Result<()> {
    let consumer = consumer(brokers)?;
    let mut query = TopicPartitionList::new();
    for (partition, _, _) in watermarks(&consumer, topic)? {
        query.add_partition_offset(topic, partition, Offset::Offset(ms))?;
    }
    for element in consumer.offsets_for_times(query, METADATA_TIMEOUT)?.elements() {
        println!("{}\t{}", element.partition(), element.offset().to_raw().unwrap_or(-1));
    }
    Ok(())
}

fn print_leaders(brokers: &str, topic: &str) -> Result<()> {
    let metadata = consumer(brokers)?.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
    let Some(entry) = metadata.topics().first() else { return Err("no metadata".into()) };
    if let Some(error) = entry.error() {
        return Err(format!("topic {topic}: {error:?}").into());
    }
    let mut leaders: Vec<(i32, i32)> = entry.partitions().iter().map(|p| (p.id(), p.leader())).collect();
    leaders.sort_unstable();
    for (partition, leader) in leaders {
        println!("{partition}\t{leader}");
    }
    Ok(())
}

fn print_watermarks(brokers: &str, topic: &str) -> Result<()> {
    for (partition, low, high) in watermarks(&consumer(brokers)?, topic)? {
        println!("{partition}\t{low}\t{high}");
    }
    Ok(())
}

/// The raw consume loop: every partition from low to high watermark, calling `each` per
/// message. Ends on reaching the high watermarks (or partition EOF), never on a timeout.
fn consume_all(consumer: &BaseConsumer, topic: &str, mut each: impl FnMut(&BorrowedMessage<'_>)) -> Result<u64> {
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for (partition, low, high) in watermarks(consumer, topic)? {
        if low < high {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Offset(low))?;
        }
    }
    consumer.assign(&assignment)?;
    let mut read = 0u64;
    let mut idle = Instant::now();
    // Stop fetching a partition once its end is reached, as kafka_fdw's scans do.
    let finish = |ends: &mut HashMap<i32, i64>, partition: i32| {
        ends.remove(&partition);
        let mut done = TopicPartitionList::new();
        done.add_partition(topic, partition);
        let _ = consumer.incremental_unassign(&done);
    };
    while !ends.is_empty() {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                idle = Instant::now();
                let Some(&end) = ends.get(&message.partition()) else { continue };
                if message.offset() >= end {
                    finish(&mut ends, message.partition());
                    continue;
                }
                each(&message);
                read += 1;
                if message.offset() + 1 >= end {
                    finish(&mut ends, message.partition());
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                if ends.contains_key(&partition) {
                    finish(&mut ends, partition);
                }
            }
            Some(Err(error)) => eprintln!("kafka-tool: {error}"),
            None if idle.elapsed() > METADATA_TIMEOUT => return Err("no progress for 10 s".into()),
            None => {}
        }
    }
    Ok(read)
}

fn count(brokers: &str, topic: &str, passes: u32, isolation_level: &str) -> Result<()> {
    let mut started = Instant::now();
    let consumer = reading_consumer(brokers, isolation_level)?;
    for _ in 0..passes {
        let mut bytes = 0usize;
        let read = consume_all(&consumer, topic, |message| bytes += message.payload_len())?;
        let seconds = started.elapsed().as_secs_f64();
        println!("{read} messages, {bytes} bytes in {seconds:.3} s ({:.0} msg/s)", read as f64 / seconds);
        started = Instant::now();
        consumer.assign(&TopicPartitionList::new())?;
    }
    Ok(())
}

fn dump(brokers: &str, topic: &str, isolation_level: &str) -> Result<()> {
    let mut rows: Vec<(i32, i64, Vec<u8>)> = Vec::new();
    consume_all(&reading_consumer(brokers, isolation_level)?, topic, |message| {
        rows.push((message.partition(), message.offset(), message.payload().unwrap_or_default().to_vec()))
    })?;
    rows.sort_unstable_by_key(|(partition, offset, _)| (*partition, *offset));
    let mut out = BufWriter::new(io::stdout().lock());
    for (partition, offset, payload) in rows {
        write!(out, "{partition}\t{offset}\t")?;
        out.write_all(&payload)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn host_mock(broker_count: i32, address_file: &Path, topics: &[String]) -> Result<()> {
    // The mock names broker 0 as the cluster's controller (where librdkafka sends Admin
    // API requests such as kafka_fdw's DescribeTopics) but numbers its brokers from 1:
    // add broker 0, as a real cluster always has a live controller.
    let host: BaseProducer = ClientConfig::new().set("test.mock.num.brokers", broker_count.to_string()).create()?;
    // SAFETY: the host was created with a mock cluster, which lives as long as the host.
    let added = unsafe {
        rdkafka::bindings::rd_kafka_mock_broker_add(rdkafka::bindings::rd_kafka_handle_mock_cluster(host.client().native_ptr()), 0)
    };
    if added != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return Err(format!("could not add the mock's controller: {added:?}").into());
    }
    let cluster = host.client().mock_cluster().ok_or("no mock cluster")?;
    for spec in topics {
        let (name, partitions) = spec.split_once(':').ok_or("--topic takes NAME:PARTITIONS")?;
        create_topic(&cluster, broker_count, name, partitions.parse()?)?;
    }
    let control = TcpListener::bind("127.0.0.1:0")?;
    let contents = format!("bootstrap={}\ncontrol={}\n", cluster.bootstrap_servers(), control.local_addr()?);
    write_address_file(address_file, &contents)?;
    for stream in control.incoming() {
        let mut stream = stream?;
        let mut line = String::new();
        BufReader::new(&stream).read_line(&mut line)?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match mock_command(&cluster, broker_count, &words) {
            Ok(()) => "ok\n".to_string(),
            Err(error) => format!("error: {error}\n"),
        };
        stream.write_all(reply.as_bytes())?;
    }
    Ok(())
}

/// Tells a waiting script where a service listens. Written then renamed, so a reader
/// never sees half a file.
fn write_address_file(path: &Path, contents: &str) -> Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, contents)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

type Mock<'c> = MockCluster<'c, rdkafka::producer::DefaultProducerContext>;

/// Creates a topic whose partitions are led by brokers 1.., never by the added
/// controller 0, so that taking brokers 1.. down still takes all data away.
fn create_topic(cluster: &Mock<'_>, broker_count: i32, name: &str, partitions: i32) -> Result<()> {
    cluster.create_topic(name, partitions, 1)?;
    for partition in 0..partitions {
        cluster.partition_leader(name, partition, Some(1 + partition % broker_count.max(1)))?;
    }
    Ok(())
}

fn mock_command(cluster: &Mock<'_>, broker_count: i32, words: &[&str]) -> Result<()> {
    match words {
        ["create-topic", name, partitions] => create_topic(cluster, broker_count, name, partitions.parse()?)?,
        ["broker-down", id] => cluster.broker_down(id.parse()?)?,
        ["broker-up", id] => cluster.broker_up(id.parse()?)?,
        ["rtt", id, ms] => cluster.broker_round_trip_time(id.parse()?, Duration::from_millis(ms.parse()?))?,
        ["rtt-all", ms] => {
            for id in 0..=broker_count {
                cluster.broker_round_trip_time(id, Duration::from_millis(ms.parse()?))?;
            }
        }
        ["request-errors", api, codes @ ..] => {
            let errors: Vec<RDKafkaRespErr> = codes.iter().map(|c| response_error(c)).collect::<Result<_>>()?;
            cluster.request_errors(api_key(api)?, &errors)
        }
        ["clear-errors", api] => cluster.clear_request_errors(api_key(api)?),
        // The versions of a request the brokers offer; "none" offers it not at all (as a
        // broker without that API: tansu 0.6.0 has no EndTxn).
        ["api-versions", api, "none"] => cluster.apiversion(api_key(api)?, None, None)?,
        ["api-versions", api, min, max] => cluster.apiversion(api_key(api)?, Some(min.parse()?), Some(max.parse()?))?,
        _ => return Err(format!("unknown command: {}", words.join(" ")).into()),
    }
    Ok(())
}

fn api_key(name: &str) -> Result<RDKafkaApiKey> {
    Ok(match name {
        "Produce" => RDKafkaApiKey::Produce,
        "Fetch" => RDKafkaApiKey::Fetch,
        "ListOffsets" => RDKafkaApiKey::ListOffsets,
        "Metadata" => RDKafkaApiKey::Metadata,
        "InitProducerId" => RDKafkaApiKey::InitProducerId,
        "EndTxn" => RDKafkaApiKey::EndTxn,
        "OffsetCommit" => RDKafkaApiKey::OffsetCommit,
        _ => return Err(format!("unsupported API key {name}").into()),
    })
}

/// A Kafka protocol error by its protocol number, for the codes fault tests need.
fn response_error(code: &str) -> Result<RDKafkaRespErr> {
    use RDKafkaRespErr::*;
    Ok(match code.parse::<i32>()? {
        3 => RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
        5 => RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE,
        6 => RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        7 => RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        8 => RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE,
        10 => RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE,
        13 => RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION,
        19 => RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        29 => RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        30 => RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
        53 => RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        87 => RD_KAFKA_RESP_ERR_INVALID_RECORD,
        other => return Err(format!("unsupported error code {other}").into()),
    })
}

fn mock_ctl(control: &str, command: &[String]) -> Result<()> {
    let mut stream = TcpStream::connect(control)?;
    stream.write_all(format!("{}\n", command.join(" ")).as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply)?;
    if reply.trim() != "ok" {
        return Err(reply.trim().to_string().into());
    }
    Ok(())
}
