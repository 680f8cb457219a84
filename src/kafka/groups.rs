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
use super::metadata::{await_admin, with_retries, AdminRequest, Attempt};

/// Commits `offsets` (partition, next offset to read) of `topic` to consumer group
/// `group`. Kafka accepts such a commit only while no member of the group is active.
pub fn commit_group_offsets(consumer: &KafkaConsumer, settings: &ClientSettings, group: &str, topic: &str, offsets: &[(i32, i64)]) -> FdwResult<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let what = format!("commit the offsets of consumer group \"{group}\"");
    let partitions = partition_list(topic, offsets, &what)?;
    with_retries(consumer, settings, &what, |deadline| {
        let mut request = issue(consumer, group, &partitions, bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS, deadline)?;
        // SAFETY: the result lives as long as the event, which `request` owns.
        group_answer(&mut request, settings, group, topic, &what, deadline, |event| unsafe {
            let mut count = 0;
            let groups = bindings::rd_kafka_AlterConsumerGroupOffsets_result_groups(bindings::rd_kafka_event_AlterConsumerGroupOffsets_result(event), &mut count);
            (groups, count)
        })
        .map(|answer| match answer {
            Attempt::Done(_) => Attempt::Done(()),
            Attempt::Retry(reason) => Attempt::Retry(reason),
        })
    })
}

/// The offsets consumer group `group` has committed for `partitions` of `topic`:
/// (partition, next offset to read), leaving out partitions it has none for.
pub fn group_offsets(consumer: &KafkaConsumer, settings: &ClientSettings, group: &str, topic: &str, partitions: &[i32]) -> FdwResult<Vec<(i32, i64)>> {
    let what = format!("read the offsets of consumer group \"{group}\"");
    let asked: Vec<(i32, i64)> = partitions.iter().map(|&partition| (partition, OFFSET_INVALID)).collect();
    let partitions = partition_list(topic, &asked, &what)?;
    with_retries(consumer, settings, &what, |deadline| {
        let mut request = issue(consumer, group, &partitions, bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS, deadline)?;
        // SAFETY: the result lives as long as the event, which `request` owns.
        group_answer(&mut request, settings, group, topic, &what, deadline, |event| unsafe {
            let mut count = 0;
            let groups = bindings::rd_kafka_ListConsumerGroupOffsets_result_groups(bindings::rd_kafka_event_ListConsumerGroupOffsets_result(event), &mut count);
            (groups, count)
        })
    })
    .map(|offsets| offsets.into_iter().filter(|&(_, offset)| offset >= 0).collect())
}

/// librdkafka's "no offset" (`RD_KAFKA_OFFSET_INVALID`): a partition asked about, or one
/// the group has no offset for.
const OFFSET_INVALID: i64 = -1001;

fn partition_list(topic: &str, offsets: &[(i32, i64)], what: &str) -> FdwResult<TopicPartitionList> {
    let mut list = TopicPartitionList::with_capacity(offsets.len());
    for &(partition, offset) in offsets {
        list.add_partition_offset(topic, partition, Offset::from_raw(offset))
            .map_err(|e| FdwError::new(ErrorKind::Kafka, format!("could not {what}")).with_detail(e.to_string()))?;
    }
    Ok(list)
}

/// Issues one Alter- or ListConsumerGroupOffsets request (`op`) for `partitions` of
/// `group`, without waiting.
fn issue(consumer: &KafkaConsumer, group: &str, partitions: &TopicPartitionList, op: bindings::rd_kafka_admin_op_t, deadline: Instant) -> FdwResult<AdminRequest> {
    let group_name = CString::new(group).map_err(|_| FdwError::new(ErrorKind::InvalidParameterValue, "a consumer group's name cannot contain a zero byte"))?;
    let request = AdminRequest::new(consumer, op, deadline.saturating_duration_since(Instant::now()));
    let rk = consumer.client().native_ptr();
    // SAFETY: librdkafka copies the group's name and partitions into the argument, and the
    // argument into the request, so both are freed here; the handle, options and queue are
    // alive.
    unsafe {
        if op == bindings::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERCONSUMERGROUPOFFSETS {
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

/// Awaits a group request and reads its one group's answer (`groups`: the result's
/// array of group results, and its length): (partition, offset) per partition, or the
/// group's or a partition's error.
fn group_answer(
    request: &mut AdminRequest,
    settings: &ClientSettings,
    group: &str,
    topic: &str,
    what: &str,
    deadline: Instant,
    groups: impl FnOnce(*mut bindings::rd_kafka_event_t) -> (*mut *const bindings::rd_kafka_group_result_t, usize),
) -> FdwResult<Attempt<Vec<(i32, i64)>>> {
    let event = match await_admin(request, settings, what, deadline)? {
        Attempt::Done(event) => event,
        Attempt::Retry(reason) => return Ok(Attempt::Retry(reason)),
    };
    let failed = |code: RDKafkaErrorCode, text: String, partition: Option<i32>| -> FdwResult<Attempt<Vec<(i32, i64)>>> {
        if is_transient_code(code) || code == RDKafkaErrorCode::NotCoordinator || code == RDKafkaErrorCode::CoordinatorLoadInProgress {
            return Ok(Attempt::Retry(text));
        }
        if is_refusal(code) {
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
    // event, which `request` owns; the count bounds the array.
    unsafe {
        let (results, count) = groups(event);
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

    #[test]
    fn committed_offsets_read_back_per_group() {
        let mock = mock_cluster(1);
        let brokers = mock.cluster().bootstrap_servers();
        mock.cluster().create_topic("orders", 3, 1).unwrap();
        let settings = test_settings(&brokers);
        let consumer = crate::kafka::new_consumer(&settings).unwrap();
        assert_eq!(group_offsets(&consumer, &settings, "import-a", "orders", &[0, 1, 2]).unwrap(), []);
        commit_group_offsets(&consumer, &settings, "import-a", "orders", &[(0, 5), (2, 7)]).unwrap();
        commit_group_offsets(&consumer, &settings, "import-b", "orders", &[(0, 1)]).unwrap();
        assert_eq!(group_offsets(&consumer, &settings, "import-a", "orders", &[0, 1, 2]).unwrap(), [(0, 5), (2, 7)]);
        commit_group_offsets(&consumer, &settings, "import-a", "orders", &[(0, 9)]).unwrap();
        assert_eq!(group_offsets(&consumer, &settings, "import-a", "orders", &[0, 2]).unwrap(), [(0, 9), (2, 7)]);
        assert_eq!(group_offsets(&consumer, &settings, "import-b", "orders", &[0, 1, 2]).unwrap(), [(0, 1)]);
    }

    #[test]
    fn a_refused_commit_names_the_group() {
        let mock = mock_cluster(1);
        let brokers = mock.cluster().bootstrap_servers();
        mock.cluster().create_topic("orders", 1, 1).unwrap();
        let settings = test_settings(&brokers);
        let consumer = crate::kafka::new_consumer(&settings).unwrap();
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
