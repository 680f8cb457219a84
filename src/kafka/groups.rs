//! Consumer-group offsets, committed and read through librdkafka's Admin API
//! (AlterConsumerGroupOffsets, ListConsumerGroupOffsets) without joining the group: what
//! Kafka's tools (`kafka-consumer-groups --describe`, lag exporters) read a consumer's
//! progress from. An offset is the next one to read, as Kafka Connect commits it.

use std::ffi::{CStr, CString};
use std::time::Instant;

use rdkafka::bindings;
use rdkafka::consumer::Consumer;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::error::{ErrorKind, FdwError, FdwResult};

use super::config::{is_refusal, is_transient_code, refusal, ClientSettings, KafkaConsumer, Refused};
use super::metadata::{await_admin, with_retries, AdminRequest, Attempt, RD_KAFKA_OFFSET_INVALID};

/// Commits `offsets` (partition, next offset to read) of `topic` to consumer group
/// `group`. Kafka accepts such a commit only while no member of the group is active.
pub fn commit_group_offsets(consumer: &KafkaConsumer, settings: &ClientSettings, group: &str, topic: &str, offsets: &[(i32, i64)]) -> FdwResult<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    group_request(consumer, settings, GroupOp::Commit, group, topic, offsets).map(|_| ())
}

/// The offsets consumer group `group` has committed for `partitions` of `topic`:
/// (partition, next offset to read), leaving out partitions it has none for.
pub fn group_offsets(consumer: &KafkaConsumer, settings: &ClientSettings, group: &str, topic: &str, partitions: &[i32]) -> FdwResult<Vec<(i32, i64)>> {
    let asked: Vec<(i32, i64)> = partitions.iter().map(|&partition| (partition, RD_KAFKA_OFFSET_INVALID)).collect();
    let offsets = group_request(consumer, settings, GroupOp::List, group, topic, &asked)?;
    Ok(offsets.into_iter().filter(|&(_, offset)| offset >= 0).collect())
}

/// The two requests about a group's offsets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum GroupOp {
    /// AlterConsumerGroupOffsets
    Commit,
    /// ListConsumerGroupOffsets
    List,
}

/// One group request about `offsets` (partition, offset: the offset to commit, or
/// [`RD_KAFKA_OFFSET_INVALID`] to ask) of `topic`, asked again after transient answers: the group's
/// offsets of those partitions as the broker answers them.
fn group_request(
    consumer: &KafkaConsumer,
    settings: &ClientSettings,
    op: GroupOp,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> FdwResult<Vec<(i32, i64)>> {
    let what = match op {
        GroupOp::Commit => format!("commit the offsets of consumer group \"{group}\""),
        GroupOp::List => format!("read the offsets of consumer group \"{group}\""),
    };
    let mut partitions = TopicPartitionList::with_capacity(offsets.len());
    for &(partition, offset) in offsets {
        partitions
            .add_partition_offset(topic, partition, Offset::from_raw(offset))
            .map_err(|e| FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(e.to_string()))?;
    }
    with_retries(consumer, settings, &what, |deadline| {
        let mut request = issue(consumer, op, group, &partitions, deadline)?;
        match await_admin(&mut request, settings, &what, deadline)? {
            // SAFETY: the event is `request`'s, alive until it drops after this call.
            Attempt::Done(event) => unsafe { group_answer(event, settings, op, group, topic, &what) },
            Attempt::Retry(reason) => Ok(Attempt::Retry(reason)),
        }
    })
}

/// Issues one `op` request for `partitions` of `group`, without waiting.
fn issue(consumer: &KafkaConsumer, op: GroupOp, group: &str, partitions: &TopicPartitionList, deadline: Instant) -> FdwResult<AdminRequest> {
    let group_name = CString::new(group).map_err(|_| FdwError::new(ErrorKind::InvalidParameterValue, "a consumer group's name cannot contain a zero byte"))?;
    let admin_op = match op {
        GroupOp::Commit => bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS,
        GroupOp::List => bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
    };
    let request = AdminRequest::new(consumer, admin_op, deadline.saturating_duration_since(Instant::now()));
    let rk = consumer.client().native_ptr();
    // SAFETY: librdkafka copies the group's name and partitions into the argument, and the
    // argument into the request, so both are freed here; the handle, options and queue are
    // alive.
    unsafe {
        if op == GroupOp::Commit {
            let mut argument = bindings::rd_kafka_AlterConsumerGroupOffsets_new(group_name.as_ptr(), partitions.ptr());
            bindings::rd_kafka_AlterConsumerGroupOffsets(rk, &mut argument, 1, request.options, request.queue);
            bindings::rd_kafka_AlterConsumerGroupOffsets_destroy(argument);
        } else {
            let mut argument = bindings::rd_kafka_ListConsumerGroupOffsets_new(group_name.as_ptr(), partitions.ptr());
            bindings::rd_kafka_ListConsumerGroupOffsets(rk, &mut argument, 1, request.options, request.queue);
            bindings::rd_kafka_ListConsumerGroupOffsets_destroy(argument);
        }
    }
    Ok(request)
}

/// The one group's answer in the result `event` of an `op` request: (partition, offset)
/// per partition, or the group's or a partition's error.
///
/// # Safety
/// `event` must be a live result event of an `op` request.
unsafe fn group_answer(event: *mut bindings::rd_kafka_event_t, settings: &ClientSettings, op: GroupOp, group: &str, topic: &str, what: &str) -> FdwResult<Attempt<Vec<(i32, i64)>>> {
    let failed = |code: RDKafkaErrorCode, text: String, partition: Option<i32>| -> FdwResult<Attempt<Vec<(i32, i64)>>> {
        if is_transient_code(code) || code == RDKafkaErrorCode::NotCoordinator || code == RDKafkaErrorCode::CoordinatorLoadInProgress {
            return Ok(Attempt::Retry(text));
        }
        // (Only here is a refusal on the group one: scans never use theirs, see `reader`.)
        if is_refusal(code) || code == RDKafkaErrorCode::GroupAuthorizationFailed {
            let refused = if code == RDKafkaErrorCode::GroupAuthorizationFailed { Refused::Group(group) } else { Refused::Topic { topic, operation: "READ" } };
            return Err(refusal(settings, refused, &text));
        }
        let place = partition.map_or_else(String::new, |partition| format!(", partition {partition}"));
        let error = FdwError::new(ErrorKind::Kafka, format!("could not {what}{place}")).with_detail(text);
        Err(if code == RDKafkaErrorCode::UnknownMemberId || code == RDKafkaErrorCode::RebalanceInProgress {
            error.with_hint("Kafka takes offsets from outside a group only while the group has no active member: stop its consumers, or choose another group_id.")
        } else {
            error
        })
    };
    let mut offsets = Vec::new();
    // SAFETY: the group results, their errors and partition lists live as long as the
    // event (the caller's contract); the count bounds the array.
    unsafe {
        let mut count = 0;
        let results = match op {
            GroupOp::Commit => bindings::rd_kafka_AlterConsumerGroupOffsets_result_groups(bindings::rd_kafka_event_AlterConsumerGroupOffsets_result(event), &mut count),
            GroupOp::List => bindings::rd_kafka_ListConsumerGroupOffsets_result_groups(bindings::rd_kafka_event_ListConsumerGroupOffsets_result(event), &mut count),
        };
        if count != 1 {
            return Err(FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(format!("The broker answered about {count} groups.")));
        }
        let result = *results;
        let error = bindings::rd_kafka_group_result_error(result);
        if !error.is_null() {
            let code = RDKafkaErrorCode::from(bindings::rd_kafka_error_code(error));
            let text = CStr::from_ptr(bindings::rd_kafka_error_string(error)).to_string_lossy().into_owned();
            return failed(code, text, None);
        }
        let list = &*bindings::rd_kafka_group_result_partitions(result);
        for i in 0..list.cnt as usize {
            let element = &*list.elems.add(i);
            let code = RDKafkaErrorCode::from(element.err);
            if code != RDKafkaErrorCode::NoError {
                return failed(code, code.to_string(), Some(element.partition));
            }
            offsets.push((element.partition, element.offset));
        }
    }
    offsets.sort_unstable();
    Ok(Attempt::Done(offsets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::testing::*;

    /// A mock cluster with topic "orders" of `partitions`, and a client of it.
    fn orders(partitions: i32) -> (Mock, ClientSettings, KafkaConsumer) {
        let mock = mock_cluster(1);
        mock.cluster().create_topic("orders", partitions, 1).unwrap();
        let settings = test_settings(&mock.cluster().bootstrap_servers());
        let consumer = crate::kafka::new_consumer(&settings).unwrap();
        (mock, settings, consumer)
    }

    #[test]
    fn committed_offsets_read_back_per_group() {
        let (_mock, settings, consumer) = orders(3);
        assert_eq!(group_offsets(&consumer, &settings, "import-a", "orders", &[0, 1, 2]).unwrap(), []);
        commit_group_offsets(&consumer, &settings, "import-a", "orders", &[(0, 5), (2, 7)]).unwrap();
        commit_group_offsets(&consumer, &settings, "import-b", "orders", &[(0, 1)]).unwrap();
        assert_eq!(group_offsets(&consumer, &settings, "import-a", "orders", &[0, 1, 2]).unwrap(), [(0, 5), (2, 7)]);
        commit_group_offsets(&consumer, &settings, "import-a", "orders", &[(0, 9)]).unwrap();
        assert_eq!(group_offsets(&consumer, &settings, "import-a", "orders", &[0, 2]).unwrap(), [(0, 9), (2, 7)]);
        assert_eq!(group_offsets(&consumer, &settings, "import-b", "orders", &[0, 1, 2]).unwrap(), [(0, 1)]);
    }

    #[test]
    fn a_distant_broker_changes_no_answer() {
        let (mock, settings, consumer) = orders(2);
        for broker in 0..=1 {
            mock.cluster().broker_round_trip_time(broker, std::time::Duration::from_millis(300)).unwrap();
        }
        commit_group_offsets(&consumer, &settings, "far", "orders", &[(0, 3), (1, 4)]).unwrap();
        assert_eq!(group_offsets(&consumer, &settings, "far", "orders", &[0, 1]).unwrap(), [(0, 3), (1, 4)]);
    }

    #[test]
    fn a_refused_commit_names_the_group() {
        let (mock, settings, consumer) = orders(1);
        // As Kafka answers a principal without READ on the group.
        mock.cluster().request_errors(
            rdkafka::types::RDKafkaApiKey::OffsetCommit,
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED; 5],
        );
        let error = commit_group_offsets(&consumer, &settings, "import-a", "orders", &[(0, 5)]).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InsufficientPrivilege);
        assert_eq!(error.message, "permission denied for Kafka consumer group \"import-a\"");
    }
}
