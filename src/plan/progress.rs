//! Where an import resumes: the offsets stored for a source and target, checked against
//! the topic as it is now. No PostgreSQL in here.
//!
//! Stored offsets belong to one topic of one cluster. They are only applied to that
//! topic, and only while they still fit the partitions' watermarks: a stored offset past
//! the high watermark means the topic was re-created or truncated, and applying it would
//! skip the new messages without a word.

use crate::error::{capitalized, ErrorKind, FdwError, FdwResult};
use crate::kafka::{ReadRange, Watermarks};

/// One partition's stored progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredOffset {
    pub partition: i32,
    pub next_offset: i64,
    /// The topic the offset belongs to.
    pub topic: String,
    /// That topic's id, where the brokers reported one: a topic deleted and created
    /// again under the same name has another.
    pub topic_id: Option<String>,
    /// The cluster id the brokers reported, where they reported one.
    pub cluster: Option<String>,
}

/// What an import does when its stored offsets no longer fit the topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnReset {
    /// Raise an ERROR that says how to resume.
    Error,
    /// Start the partitions concerned from their oldest message, with a WARNING.
    Earliest,
}

impl OnReset {
    pub fn parse(value: &str) -> FdwResult<OnReset> {
        match value {
            "error" => Ok(OnReset::Error),
            "earliest" => Ok(OnReset::Earliest),
            _ => Err(FdwError::new(ErrorKind::InvalidParameterValue, format!("invalid value for on_reset: \"{value}\""))
                .with_hint("Valid values are \"error\" and \"earliest\".")),
        }
    }
}

/// The topic an import reads now.
#[derive(Debug, Clone, Copy)]
pub struct CurrentTopic<'a> {
    /// The source table, for messages.
    pub source: &'a str,
    pub target: &'a str,
    pub topic: &'a str,
    pub topic_id: Option<&'a str>,
    pub cluster: Option<&'a str>,
}

/// Where each partition's import starts and ends, and what to tell the user about it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportStart {
    /// One range per partition of the topic, from the resume point to the high watermark.
    pub ranges: Vec<ReadRange>,
    pub notices: Vec<String>,
    pub warnings: Vec<String>,
}

/// Decides where an import of `current` resumes, given what was `stored` for the same
/// source and target and the partitions' watermarks now.
///
/// - Offsets of another topic are never applied: the import starts afresh (NOTICE).
/// - Another topic id (the topic was deleted and created again), a stored offset above
///   its partition's high watermark, a stored partition the topic no longer has, or
///   another cluster id, is a reset: an ERROR by default, or with
///   [`OnReset::Earliest`] those partitions start from their oldest message (WARNING).
/// - A stored offset below the low watermark: retention deleted messages before they
///   were imported (WARNING), the import goes on from the oldest one left.
pub fn resume_points(
    stored: &[StoredOffset],
    current: CurrentTopic<'_>,
    marks: &[Watermarks],
    on_reset: OnReset,
) -> FdwResult<ImportStart> {
    let mut start = ImportStart::default();
    let mut applicable: Vec<&StoredOffset> = stored.iter().collect();
    if let Some(other) = stored.iter().find(|s| s.topic != current.topic) {
        start.notices.push(format!(
            "the topic of \"{}\" changed from \"{}\" to \"{}\": importing \"{}\" into \"{}\" from its oldest messages",
            current.source, other.topic, current.topic, current.topic, current.target
        ));
        applicable.clear();
    }

    let mut resets: Vec<String> = Vec::new();
    if let (Some(now), Some(before)) = (current.cluster, applicable.iter().find_map(|s| s.cluster.as_deref())) {
        if now != before {
            resets.push(format!("the brokers are of another cluster (cluster id \"{now}\", offsets stored for \"{before}\")"));
        }
    }
    if let (Some(now), Some(before)) = (current.topic_id, applicable.iter().find_map(|s| s.topic_id.as_deref())) {
        if now != before {
            resets.push(format!("the topic was deleted and created again (topic id {now}, offsets stored for {before})"));
        }
    }
    for s in &applicable {
        match marks.iter().find(|m| m.partition == s.partition) {
            None => resets.push(format!("partition {} no longer exists (stored next offset {})", s.partition, s.next_offset)),
            Some(m) if s.next_offset > m.high => resets.push(format!(
                "partition {}: stored next offset {} is past the high watermark {} (low watermark {})",
                s.partition, s.next_offset, m.high, m.low
            )),
            Some(_) => {}
        }
    }
    let reset = !resets.is_empty();
    if reset {
        match on_reset {
            OnReset::Error => {
                return Err(FdwError::new(
                    ErrorKind::ObjectNotInPrerequisiteState,
                    format!("the offsets stored for importing \"{}\" into \"{}\" do not fit topic \"{}\"", current.source, current.target, current.topic),
                )
                .with_detail(format!(
                    "{}. The topic was probably deleted and re-created or truncated; resuming from the stored offsets would skip messages.",
                    capitalized(&resets.join("; "))
                ))
                .with_hint(format!(
                    "To import the topic from its oldest message, run SELECT kafka_fdw.reset_import('{0}', '{1}', 'earliest'); to skip what it holds now, 'latest'. Or call kafka_fdw.import with on_reset => 'earliest'.",
                    current.source.replace('\'', "''"),
                    current.target.replace('\'', "''")
                )));
            }
            OnReset::Earliest => start.warnings.push(format!(
                "the offsets stored for importing \"{}\" into \"{}\" do not fit topic \"{}\" ({}): importing it from its oldest messages",
                current.source,
                current.target,
                current.topic,
                resets.join("; ")
            )),
        }
    }

    for m in marks {
        let stored_offset = if reset { None } else { applicable.iter().find(|s| s.partition == m.partition).map(|s| s.next_offset) };
        let first = match stored_offset {
            None => m.low,
            Some(next) if next < m.low => {
                start.warnings.push(format!(
                    "messages {} to {} of partition {} of \"{}\" were deleted by retention before they were imported",
                    next,
                    m.low - 1,
                    m.partition,
                    current.source
                ));
                m.low
            }
            Some(next) => next,
        };
        start.ranges.push(ReadRange { partition: m.partition, start: first, end: m.high });
    }
    Ok(start)
}

/// Cuts `ranges` (in the order they are imported) so that they hold at most `budget`
/// messages in all: the first ranges whole, the next one cut, the rest emptied (an empty
/// range still says where its partition stands).
pub fn limit_ranges(ranges: &mut [ReadRange], budget: i64) {
    let mut left = budget.max(0);
    for range in ranges {
        range.end = range.end.min(range.start.saturating_add(left));
        left -= range.end - range.start;
    }
}

/// A batch of an import: the pieces of ranges it reads, and how many messages they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub ranges: Vec<ReadRange>,
    pub messages: i64,
}

/// `ranges` cut into batches of `size` messages (the last one maybe fewer), in order; a
/// batch spans as many partitions as it takes.
pub fn batches(ranges: &[ReadRange], size: i64) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut current = Batch { ranges: Vec::new(), messages: 0 };
    for range in ranges {
        let mut start = range.start;
        while start < range.end {
            let end = range.end.min(start + (size - current.messages));
            current.ranges.push(ReadRange { partition: range.partition, start, end });
            current.messages += end - start;
            start = end;
            if current.messages >= size {
                batches.push(std::mem::replace(&mut current, Batch { ranges: Vec::new(), messages: 0 }));
            }
        }
    }
    if current.messages > 0 {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(partition: i32, start: i64, end: i64) -> ReadRange {
        ReadRange { partition, start, end }
    }

    #[test]
    fn a_budget_cuts_the_ranges_in_order() {
        let mut ranges = vec![range(0, 10, 20), range(1, 0, 30), range(2, 5, 9)];
        limit_ranges(&mut ranges, 25);
        assert_eq!(ranges, vec![range(0, 10, 20), range(1, 0, 15), range(2, 5, 5)]);
        limit_ranges(&mut ranges, -3);
        assert_eq!(ranges, vec![range(0, 10, 10), range(1, 0, 0), range(2, 5, 5)]);
    }

    #[test]
    fn batches_are_full_but_the_last_and_span_partitions() {
        let ranges = [range(0, 0, 7), range(1, 3, 3), range(2, 100, 105)];
        let batches = batches(&ranges, 5);
        assert_eq!(
            batches,
            vec![
                Batch { ranges: vec![range(0, 0, 5)], messages: 5 },
                Batch { ranges: vec![range(0, 5, 7), range(2, 100, 103)], messages: 5 },
                Batch { ranges: vec![range(2, 103, 105)], messages: 2 },
            ]
        );
        assert!(super::batches(&[range(0, 4, 4)], 5).is_empty());
        // Every message in exactly one batch, in order.
        let pieces: Vec<ReadRange> = batches.iter().flat_map(|b| b.ranges.clone()).collect();
        let total: i64 = pieces.iter().map(|r| r.end - r.start).sum();
        assert_eq!(total, 12);
    }

    fn stored(partition: i32, next_offset: i64, topic: &str) -> StoredOffset {
        StoredOffset {
            partition,
            next_offset,
            topic: topic.to_string(),
            topic_id: Some("id1".to_string()),
            cluster: Some("c1".to_string()),
        }
    }

    fn marks(spans: &[(i64, i64)]) -> Vec<Watermarks> {
        spans.iter().enumerate().map(|(p, &(low, high))| Watermarks { partition: p as i32, low, high }).collect()
    }

    fn current(topic: &str) -> CurrentTopic<'_> {
        CurrentTopic { source: "src", target: "dst", topic, topic_id: Some("id1"), cluster: Some("c1") }
    }

    fn spans(start: &ImportStart) -> Vec<(i64, i64)> {
        start.ranges.iter().map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn resumes_where_it_stopped_and_starts_new_partitions_at_their_oldest_message() {
        let start =
            resume_points(&[stored(0, 40, "t"), stored(1, 7, "t")], current("t"), &marks(&[(0, 50), (5, 9), (3, 4)]), OnReset::Error)
                .unwrap();
        assert_eq!(spans(&start), vec![(40, 50), (7, 9), (3, 4)]);
        assert!(start.notices.is_empty() && start.warnings.is_empty());
    }

    #[test]
    fn retention_gaps_warn_and_go_on_from_the_oldest_message_left() {
        let start = resume_points(&[stored(0, 10, "t")], current("t"), &marks(&[(25, 50)]), OnReset::Error).unwrap();
        assert_eq!(spans(&start), vec![(25, 50)]);
        assert_eq!(start.warnings, vec!["messages 10 to 24 of partition 0 of \"src\" were deleted by retention before they were imported"]);
    }

    #[test]
    fn an_offset_past_the_high_watermark_is_a_reset() {
        // The case: 500 stored, the topic re-created and holding 150 messages.
        let stored = [stored(0, 500, "t"), stored(1, 20, "t")];
        let error = resume_points(&stored, current("t"), &marks(&[(0, 150), (0, 30)]), OnReset::Error).unwrap_err();
        assert_eq!(error.kind, ErrorKind::ObjectNotInPrerequisiteState);
        assert!(error.detail.as_deref().unwrap().starts_with("Partition 0: stored next offset 500 is past the high watermark 150"));
        assert!(error.hint.as_deref().unwrap().contains("kafka_fdw.reset_import('src', 'dst', 'earliest')"));

        // Asked to, every partition starts over: the stored offsets of the others belong
        // to the old topic too.
        let start = resume_points(&stored, current("t"), &marks(&[(0, 150), (0, 30)]), OnReset::Earliest).unwrap();
        assert_eq!(spans(&start), vec![(0, 150), (0, 30)]);
        assert_eq!(start.warnings.len(), 1);
    }

    #[test]
    fn an_offset_at_the_high_watermark_is_caught_up_not_a_reset() {
        let start = resume_points(&[stored(0, 150, "t")], current("t"), &marks(&[(0, 150)]), OnReset::Error).unwrap();
        assert_eq!(spans(&start), vec![(150, 150)]);
    }

    #[test]
    fn a_vanished_partition_or_another_cluster_is_a_reset() {
        let error = resume_points(&[stored(0, 5, "t"), stored(3, 5, "t")], current("t"), &marks(&[(0, 10)]), OnReset::Error).unwrap_err();
        assert!(error.detail.unwrap().starts_with("Partition 3 no longer exists"));
        let elsewhere = CurrentTopic { cluster: Some("c2"), ..current("t") };
        let error = resume_points(&[stored(0, 5, "t")], elsewhere, &marks(&[(0, 10)]), OnReset::Error).unwrap_err();
        assert!(error.detail.unwrap().contains("another cluster"));
        // A broker that reports no cluster id cannot tell.
        let unknown = CurrentTopic { cluster: None, ..current("t") };
        assert_eq!(spans(&resume_points(&[stored(0, 5, "t")], unknown, &marks(&[(0, 10)]), OnReset::Error).unwrap()), vec![(5, 10)]);
    }

    #[test]
    fn a_topic_created_again_is_a_reset_even_when_it_grew_past_the_stored_offsets() {
        let again = CurrentTopic { topic_id: Some("id2"), ..current("t") };
        let error = resume_points(&[stored(0, 5, "t")], again, &marks(&[(0, 900)]), OnReset::Error).unwrap_err();
        assert!(error.detail.unwrap().starts_with("The topic was deleted and created again (topic id id2"));
        let start = resume_points(&[stored(0, 5, "t")], again, &marks(&[(0, 900)]), OnReset::Earliest).unwrap();
        assert_eq!(spans(&start), vec![(0, 900)]);
        // Brokers without topic ids cannot tell.
        let no_ids = CurrentTopic { topic_id: None, ..current("t") };
        assert_eq!(spans(&resume_points(&[stored(0, 5, "t")], no_ids, &marks(&[(0, 900)]), OnReset::Error).unwrap()), vec![(5, 900)]);
    }

    #[test]
    fn offsets_of_another_topic_are_never_applied() {
        let start = resume_points(&[stored(0, 500, "old"), stored(1, 3, "old")], current("new"), &marks(&[(0, 100), (0, 4)]), OnReset::Error)
            .unwrap();
        assert_eq!(spans(&start), vec![(0, 100), (0, 4)]);
        assert_eq!(start.notices.len(), 1);
        assert!(start.notices[0].contains("changed from \"old\" to \"new\""));
    }

    #[test]
    fn on_reset_values() {
        assert_eq!(OnReset::parse("error").unwrap(), OnReset::Error);
        assert_eq!(OnReset::parse("earliest").unwrap(), OnReset::Earliest);
        assert_eq!(OnReset::parse("latest").unwrap_err().kind, ErrorKind::InvalidParameterValue);
    }
}
