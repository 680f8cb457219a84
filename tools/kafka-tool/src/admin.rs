//! The admin commands: create and delete topics, delete records (move a partition's log
//! start), and grant ACLs, through librdkafka's Admin API, so that the tests set brokers
//! up the way any Kafka client would, independently of kafka_fdw.

use std::ffi::{CStr, CString};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::bindings;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::{consumer, Result, METADATA_TIMEOUT};

#[derive(Args)]
pub struct CreateTopicArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    topic: String,
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// A topic configuration NAME=VALUE (repeatable), e.g. cleanup.policy=compact.
    #[arg(long = "config")]
    configs: Vec<String>,
}

#[derive(Args)]
pub struct AclArgs {
    #[arg(long)]
    brokers: String,
    /// Whom the ACL is for, e.g. User:alice.
    #[arg(long)]
    principal: String,
    /// What may be done: read, write, describe, idempotent_write, all, …
    #[arg(long)]
    operation: String,
    /// What on: topic, group, transactional_id or cluster.
    #[arg(long)]
    resource_type: String,
    /// The resource's name (kafka-cluster for the cluster); with --prefixed, a prefix.
    #[arg(long)]
    resource: String,
    #[arg(long)]
    prefixed: bool,
}

fn admin_client(brokers: &str) -> Result<AdminClient<DefaultClientContext>> {
    Ok(ClientConfig::new().set("bootstrap.servers", brokers).create()?)
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().request_timeout(Some(METADATA_TIMEOUT)).operation_timeout(Some(METADATA_TIMEOUT))
}

/// Creates a topic and returns once every broker's metadata shows all its partitions
/// with a leader: Kafka answers CreateTopics before the brokers have the topic, and a
/// client that asks too early is told it does not exist.
pub fn create_topic(args: &CreateTopicArgs) -> Result<()> {
    let mut topic =
        NewTopic::new(&args.topic, args.partitions, TopicReplication::Fixed(args.replication_factor));
    let configs: Vec<(&str, &str)> = args
        .configs
        .iter()
        .map(|config| config.split_once('=').ok_or_else(|| format!("--config takes NAME=VALUE, not {config}")))
        .collect::<std::result::Result<_, _>>()?;
    for (name, value) in &configs {
        topic = topic.set(name, value);
    }
    for result in block_on(admin_client(&args.brokers)?.create_topics([&topic], &admin_options()))? {
        result.map_err(|(name, code)| format!("creating topic {name}: {code}"))?;
    }
    wait_for_metadata(&args.brokers, &args.topic, |partitions| {
        partitions.is_some_and(|partitions| {
            partitions.len() == args.partitions as usize && partitions.iter().all(|&leader| leader >= 0)
        })
    })
}

/// Deletes a topic and returns once the metadata no longer shows it, so that a topic of
/// the same name can be created right after.
pub fn delete_topic(brokers: &str, topic: &str) -> Result<()> {
    for result in block_on(admin_client(brokers)?.delete_topics(&[topic], &admin_options()))? {
        result.map_err(|(name, code)| format!("deleting topic {name}: {code}"))?;
    }
    wait_for_metadata(brokers, topic, |partitions| partitions.is_none())
}

/// Waits until `done` holds for the topic's partition leaders (None: no such topic).
fn wait_for_metadata(brokers: &str, topic: &str, done: impl Fn(Option<&[i32]>) -> bool) -> Result<()> {
    let consumer = consumer(brokers)?;
    let deadline = Instant::now() + METADATA_TIMEOUT;
    loop {
        let metadata = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let leaders: Option<Vec<i32>> = metadata
            .topics()
            .first()
            .filter(|entry| entry.error().is_none())
            .map(|entry| entry.partitions().iter().map(|partition| partition.leader()).collect());
        if done(leaders.as_deref()) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("topic {topic}: the metadata did not settle within {METADATA_TIMEOUT:?}").into());
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes every record of `partition` before `offset` (DeleteRecords): the partition's
/// log start offset becomes `offset`, as if retention had removed them.
pub fn delete_records(brokers: &str, topic: &str, partition: i32, offset: i64) -> Result<()> {
    let mut offsets = TopicPartitionList::new();
    offsets.add_partition_offset(topic, partition, Offset::Offset(offset))?;
    let result = block_on(admin_client(brokers)?.delete_records(&offsets, &admin_options()))?;
    for element in result.elements() {
        element.error().map_err(|error| format!("deleting records of {topic} [{partition}]: {error}"))?;
    }
    Ok(())
}

/// Grants an ACL (CreateAcls). rdkafka's Rust API has no ACL calls, so this uses
/// librdkafka's C API directly.
pub fn grant_acl(args: &AclArgs) -> Result<()> {
    use bindings::rd_kafka_AclOperation_t::*;
    use bindings::rd_kafka_ResourceType_t::*;
    let operation = match args.operation.to_ascii_lowercase().as_str() {
        "all" => RD_KAFKA_ACL_OPERATION_ALL,
        "read" => RD_KAFKA_ACL_OPERATION_READ,
        "write" => RD_KAFKA_ACL_OPERATION_WRITE,
        "create" => RD_KAFKA_ACL_OPERATION_CREATE,
        "delete" => RD_KAFKA_ACL_OPERATION_DELETE,
        "alter" => RD_KAFKA_ACL_OPERATION_ALTER,
        "describe" => RD_KAFKA_ACL_OPERATION_DESCRIBE,
        "idempotent_write" => RD_KAFKA_ACL_OPERATION_IDEMPOTENT_WRITE,
        other => return Err(format!("unknown ACL operation {other}").into()),
    };
    let resource_type = match args.resource_type.to_ascii_lowercase().as_str() {
        "topic" => RD_KAFKA_RESOURCE_TOPIC,
        "group" => RD_KAFKA_RESOURCE_GROUP,
        "transactional_id" => RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
        "cluster" => RD_KAFKA_RESOURCE_BROKER,
        other => return Err(format!("unknown resource type {other}").into()),
    };
    let pattern = if args.prefixed {
        bindings::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED
    } else {
        bindings::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_LITERAL
    };
    let admin = admin_client(&args.brokers)?;
    let name = CString::new(args.resource.as_str())?;
    let principal = CString::new(args.principal.as_str())?;
    let mut errstr = [0 as std::ffi::c_char; 512];
    // SAFETY: every pointer passed is valid for the call; the binding, options, queue and
    // event are destroyed here, on every path, after their last use.
    unsafe {
        let rk = admin.inner().native_ptr();
        let mut binding = bindings::rd_kafka_AclBinding_new(
            resource_type,
            name.as_ptr(),
            pattern,
            principal.as_ptr(),
            c"*".as_ptr(),
            operation,
            bindings::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        if binding.is_null() {
            return Err(format!("invalid ACL: {}", CStr::from_ptr(errstr.as_ptr()).to_string_lossy()).into());
        }
        let queue = bindings::rd_kafka_queue_new(rk);
        let options = bindings::rd_kafka_AdminOptions_new(rk, bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS);
        bindings::rd_kafka_CreateAcls(rk, &mut binding, 1, options, queue);
        let event = bindings::rd_kafka_queue_poll(queue, METADATA_TIMEOUT.as_millis() as i32);
        let outcome = if event.is_null() {
            Err("CreateAcls: no answer".to_string())
        } else if bindings::rd_kafka_event_error(event) != bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Err(format!("CreateAcls: {}", CStr::from_ptr(bindings::rd_kafka_event_error_string(event)).to_string_lossy()))
        } else {
            let result = bindings::rd_kafka_event_CreateAcls_result(event);
            let mut count = 0;
            let results = bindings::rd_kafka_CreateAcls_result_acls(result, &mut count);
            let errors: Vec<String> = (0..count)
                .map(|i| bindings::rd_kafka_acl_result_error(*results.add(i)))
                .filter(|error| !error.is_null())
                .map(|error| CStr::from_ptr(bindings::rd_kafka_error_string(error)).to_string_lossy().into_owned())
                .collect();
            if errors.is_empty() {
                Ok(())
            } else {
                Err(format!("CreateAcls: {}", errors.join("; ")))
            }
        };
        if !event.is_null() {
            bindings::rd_kafka_event_destroy(event);
        }
        bindings::rd_kafka_AdminOptions_destroy(options);
        bindings::rd_kafka_queue_destroy(queue);
        bindings::rd_kafka_AclBinding_destroy(binding);
        outcome.map_err(Into::into)
    }
}
