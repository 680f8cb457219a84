//! Reading exactly a set of offset ranges: assigned once, delivered in order, ended by
//! the captured end offsets or partition EOF, never by a timeout.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, OwnedMessage};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::Message;

use crate::error::{ErrorKind, FdwError, FdwResult};

use super::config::{ClientSettings, KafkaConsumer, Refused, is_refusal, is_transient, refusal, unreachable_brokers};
use super::{POLL_SLICE, ReadRange};

/// The ranges still to read in one partition, in offset order; bookkeeping only.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct PartitionRanges(VecDeque<(i64, i64)>);

/// What the fetcher of a partition must do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Go on reading where it is.
    Continue,
    /// Jump to this offset: the next range starts there.
    Seek(i64),
    /// Nothing more to read in this partition.
    Close,
}

impl PartitionRanges {
    /// Decides about a message at `offset`: whether it is inside a range (and so handed
    /// out), and what the fetcher does next. Messages arrive in offset order, but offsets
    /// may be missing (compaction, transaction markers), so a message can skip past the
    /// end of a range or several.
    fn on_message(&mut self, offset: i64) -> (bool, Next) {
        let mut skipped_a_range = false;
        while self.0.front().is_some_and(|&(_, end)| offset >= end) {
            self.0.pop_front();
            skipped_a_range = true;
        }
        let Some(&(start, end)) = self.0.front() else {
            return (false, Next::Close);
        };
        if offset < start {
            return (false, if skipped_a_range { Next::Seek(start) } else { Next::Continue });
        }
        if offset + 1 < end {
            return (true, Next::Continue);
        }
        self.0.pop_front();
        match self.0.front() {
            Some(&(next_start, _)) => (true, Next::Seek(next_start)),
            None => (true, Next::Close),
        }
    }
}

/// Stops all fetching of a consumer and drops what it prefetched, so that its next
/// user starts clean.
pub fn clear_assignment(consumer: &KafkaConsumer) {
    // An unassign that fails leaves a fetch running that the next assign replaces.
    let _ = consumer.assign(&TopicPartitionList::new());
}

/// Reads a fixed set of offset ranges of one topic, then ends. `C` is the consumer or
/// something that lends one (a pooled client).
pub struct RangeReader<C: Borrow<KafkaConsumer>> {
    consumer: C,
    settings: ClientSettings,
    topic: String,
    /// Ranges left per partition id; empty once the partition is finished.
    partitions: Vec<PartitionRanges>,
    open_count: usize,
    /// Ranges not yet read, over every partition.
    ranges_left: usize,
    last_client_error: Option<KafkaError>,
    /// Messages received from the client over every pass, inside the ranges or not.
    pub messages_fetched: u64,
    /// Time spent waiting for the client to receive messages from the brokers (polls
    /// that found none ready), over every pass.
    pub waited: Duration,
    /// When set, a read that waits for messages ends (see [`stop_when`](Self::stop_when)).
    stop: Option<Arc<AtomicBool>>,
}

impl<C: Borrow<KafkaConsumer>> RangeReader<C> {
    /// Assigns the non-empty `ranges` to `consumer`. Empty ranges are never fetched, so a
    /// scan of empty or caught-up partitions returns at once.
    pub fn new(consumer: C, settings: ClientSettings, topic: &str, ranges: &[ReadRange]) -> FdwResult<Self> {
        let mut reader = RangeReader {
            consumer,
            settings,
            topic: topic.to_string(),
            partitions: Vec::new(),
            open_count: 0,
            ranges_left: 0,
            last_client_error: None,
            messages_fetched: 0,
            waited: Duration::ZERO,
            stop: None,
        };
        reader.restart(ranges)?;
        Ok(reader)
    }

    /// Starts over on `ranges` of another topic.
    pub fn retarget(&mut self, topic: &str, ranges: &[ReadRange]) -> FdwResult<()> {
        self.topic = topic.to_string();
        self.restart(ranges)
    }

    /// Starts over on `ranges` (any order, several per partition allowed, not
    /// overlapping), reusing the client: a rescan.
    pub fn restart(&mut self, ranges: &[ReadRange]) -> FdwResult<()> {
        let mut wanted: Vec<&ReadRange> = ranges.iter().filter(|r| r.start < r.end).collect();
        wanted.sort_by_key(|r| (r.partition, r.start));
        let slots = wanted.iter().map(|r| r.partition as usize + 1).max().unwrap_or(0);
        self.partitions = vec![PartitionRanges::default(); slots];
        for range in &wanted {
            self.partitions[range.partition as usize].0.push_back((range.start, range.end));
        }
        self.open_count = self.partitions.iter().filter(|p| !p.0.is_empty()).count();
        self.ranges_left = wanted.len();
        let mut assignment = TopicPartitionList::with_capacity(self.open_count);
        for (partition, ranges) in self.partitions.iter().enumerate() {
            if let Some(&(start, _)) = ranges.0.front() {
                assignment
                    .add_partition_offset(&self.topic, partition as i32, Offset::Offset(start))
                    .map_err(|e| self.client_error("build the partition assignment", e))?;
            }
        }
        // Replacing the assignment also discards messages prefetched for the old one.
        self.consumer().assign(&assignment).map_err(|e| self.client_error("assign partitions", e))?;
        // Only errors of this pass explain its failure.
        self.last_client_error = None;
        self.consumer().context().take();
        Ok(())
    }

    /// Adds `range` to what is being read, leaving the rest undisturbed: a parallel scan's
    /// participant takes more work while it reads. Ranges of one partition must come in
    /// offset order, after the ones it was given before.
    pub fn add(&mut self, range: ReadRange) -> FdwResult<()> {
        if range.start >= range.end {
            return Ok(());
        }
        let index = range.partition as usize;
        if self.partitions.len() <= index {
            self.partitions.resize(index + 1, PartitionRanges::default());
        }
        let ranges = &mut self.partitions[index].0;
        if let Some(last) = ranges.back_mut() {
            // Still being read: its fetcher gets there by itself, with a seek only over a gap.
            if last.1 == range.start {
                last.1 = range.end;
            } else {
                ranges.push_back((range.start, range.end));
                self.ranges_left += 1;
            }
            return Ok(());
        }
        ranges.push_back((range.start, range.end));
        self.ranges_left += 1;
        self.open_count += 1;
        let mut assignment = TopicPartitionList::with_capacity(1);
        assignment
            .add_partition_offset(&self.topic, range.partition, Offset::Offset(range.start))
            .map_err(|e| self.client_error("build the partition assignment", e))?;
        self.consumer().incremental_assign(&assignment).map_err(|e| self.client_error("assign partitions", e))
    }

    /// How many of the ranges given are not read yet.
    pub fn ranges_left(&self) -> usize {
        self.ranges_left
    }

    /// Makes [`next_message`](Self::next_message) fail soon after `flag` is set, while it
    /// waits for messages: for a reader on a thread of its own, whose settings interrupt
    /// nothing.
    pub fn stop_when(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    pub fn consumer(&self) -> &KafkaConsumer {
        self.consumer.borrow()
    }

    /// Whether every range has been read.
    pub fn is_finished(&self) -> bool {
        self.open_count == 0
    }

    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    fn client_error(&self, what: &str, error: KafkaError) -> FdwError {
        FdwError::new(ErrorKind::Kafka, format!("could not {what} of topic \"{}\"", self.topic)).with_detail(error.to_string())
    }

    /// The next message inside the ranges, or `None` once all of them are read.
    pub fn next_message(&mut self) -> FdwResult<Option<BorrowedMessage<'_>>> {
        // Started at the first empty poll: reading the clock per message would cost more
        // than the rest of this loop.
        let mut idle_since: Option<Instant> = None;
        while self.open_count > 0 {
            // A message ready in the client's queue is taken without reading the clock
            // (too costly per message); a wait for one is timed.
            let polled = self.consumer.borrow().poll(Duration::ZERO).or_else(|| {
                let started = Instant::now();
                let polled = self.consumer.borrow().poll(POLL_SLICE);
                self.waited += started.elapsed();
                polled
            });
            match polled {
                Some(Ok(message)) => {
                    self.messages_fetched += 1;
                    let partition = message.partition();
                    let Some(ranges) = self.partitions.get_mut(partition as usize).filter(|r| !r.0.is_empty()) else {
                        continue; // prefetched after the partition was closed
                    };
                    let before = ranges.0.len();
                    let (inside, next) = ranges.on_message(message.offset());
                    self.ranges_left -= before - ranges.0.len();
                    match next {
                        Next::Continue => {}
                        // Seeking bumps librdkafka's fetch version, so messages fetched
                        // before it never reach this loop.
                        Next::Seek(offset) => self
                            .consumer
                            .borrow()
                            .seek(&self.topic, partition, Offset::Offset(offset), Duration::ZERO)
                            .map_err(|e| self.client_error("seek", e))?,
                        Next::Close => close(self.consumer.borrow(), &self.topic, &mut self.open_count, partition),
                    }
                    if inside {
                        return Ok(Some(message));
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    // The partition has nothing past this point; later ranges lie beyond
                    // the high watermark taken at scan start, so they are empty too.
                    if let Some(ranges) = self.partitions.get_mut(partition as usize).filter(|r| !r.0.is_empty()) {
                        self.ranges_left -= ranges.0.len();
                        ranges.0.clear();
                        close(self.consumer.borrow(), &self.topic, &mut self.open_count, partition);
                    }
                    idle_since = None;
                }
                // librdkafka looks up the coordinator of the consumer's group, which
                // kafka_fdw never joins nor commits to (see `new_consumer`); a broker with
                // ACLs refuses that lookup to a role without rights on the group. Reading
                // needs nothing of the group.
                Some(Err(error)) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed) => {}
                Some(Err(error)) if error.rdkafka_error_code().is_some_and(is_refusal) => {
                    let read = Refused::Topic { topic: &self.topic, operation: "READ" };
                    return Err(refusal(&self.settings, read, &error.to_string()));
                }
                Some(Err(error)) => {
                    if matches!(error, KafkaError::MessageConsumptionFatal(_)) || !is_transient(&error) {
                        return Err(self.client_error("read messages", error));
                    }
                    self.last_client_error = Some(error);
                    (self.settings.interrupt)();
                }
                None => {
                    (self.settings.interrupt)();
                    if self.stop.as_ref().is_some_and(|stop| stop.load(Ordering::Relaxed)) {
                        return Err(FdwError::new(ErrorKind::Kafka, format!("reading topic \"{}\" was stopped", self.topic)));
                    }
                    if idle_since.get_or_insert_with(Instant::now).elapsed() >= self.settings.timeout {
                        return Err(self.stalled());
                    }
                }
            }
        }
        Ok(None)
    }

    fn stalled(&self) -> FdwError {
        let waiting: Vec<String> = self
            .partitions
            .iter()
            .enumerate()
            .filter(|(_, ranges)| !ranges.0.is_empty())
            .map(|(partition, _)| partition.to_string())
            .collect();
        let last = match &self.last_client_error {
            Some(error) => error.to_string(),
            None => self.consumer.borrow().context().take().unwrap_or_else(|| "none".to_string()),
        };
        unreachable_brokers(
            &self.settings,
            &format!("read topic \"{}\" partition(s) {}", self.topic, waiting.join(", ")),
            &last,
        )
    }
}

/// Stops fetching a finished partition.
fn close(consumer: &KafkaConsumer, topic: &str, open_count: &mut usize, partition: i32) {
    *open_count -= 1;
    let mut finished = TopicPartitionList::with_capacity(1);
    finished.add_partition(topic, partition);
    // Unassigning only saves fetch work; a failure changes no result, since messages of
    // closed partitions are dropped above.
    let _ = consumer.incremental_unassign(&finished);
}

/// Reads ranges of one partition backwards: chunks from the end, each read forwards
/// and returned in reverse. Chunks grow from one message, so `LIMIT 1` (and `max()`)
/// fetch a single message.
#[derive(Default)]
pub struct Backwards {
    /// Not yet read, ascending; taken from the back.
    ranges: Vec<ReadRange>,
    /// The current chunk, ascending; returned from the back.
    chunk: Vec<OwnedMessage>,
    chunk_size: i64,
}

/// The largest chunk a backwards read fetches at once.
const MAX_BACKWARDS_CHUNK: i64 = 10_000;

impl Backwards {
    pub fn start(&mut self, ranges: &[ReadRange]) {
        self.ranges = ranges.to_vec();
        self.chunk.clear();
        self.chunk_size = 1;
    }

    pub fn next<C: Borrow<KafkaConsumer>>(&mut self, reader: &mut RangeReader<C>) -> FdwResult<Option<OwnedMessage>> {
        loop {
            if let Some(message) = self.chunk.pop() {
                return Ok(Some(message));
            }
            let Some(last) = self.ranges.last_mut() else { return Ok(None) };
            let start = last.start.max(last.end - self.chunk_size);
            reader.restart(&[ReadRange { partition: last.partition, start, end: last.end }])?;
            while let Some(message) = reader.next_message()? {
                self.chunk.push(message.detach());
            }
            last.end = start;
            if last.start >= last.end {
                self.ranges.pop();
            }
            self.chunk_size = (self.chunk_size * 4).min(MAX_BACKWARDS_CHUNK);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::testing::*;
    use crate::kafka::config::new_consumer;
    use crate::kafka::metadata::{topic_partitions, watermarks};
    use crate::kafka::Watermarks;
    

    #[test]
    fn reads_exactly_the_ranges_up_to_the_captured_high_watermark() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("t", 3, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        produce(&brokers, "t", 0, &lines);
        produce(&brokers, "t", 2, &lines[..7]);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();

        assert_eq!(topic_partitions(&consumer, &settings, "t").unwrap(), vec![0, 1, 2]);
        let marks = watermarks(&consumer, &settings, "t", &[0, 1, 2]).unwrap();
        assert_eq!(
            marks,
            vec![
                Watermarks { partition: 0, low: 0, high: 50 },
                Watermarks { partition: 1, low: 0, high: 0 },
                Watermarks { partition: 2, low: 0, high: 7 }
            ]
        );
        // Messages produced after the watermarks were taken are not part of this scan.
        produce(&brokers, "t", 2, &lines[..3]);

        let ranges = [
            ReadRange { partition: 0, start: 10, end: 13 },
            ReadRange { partition: 1, start: 0, end: 0 },
            ReadRange { partition: 2, start: 0, end: 7 },
        ];
        let mut reader = RangeReader::new(consumer, settings, "t", &ranges).unwrap();
        let mut rows = read_all(&mut reader);
        rows.sort();
        let mut expected: Vec<(i32, i64, String)> = (10..13).map(|o| (0, o, format!("m{o}"))).collect();
        expected.extend((0..7).map(|o| (2, o, format!("m{o}"))));
        assert_eq!(rows, expected);
        assert_eq!(reader.messages_fetched, 10);
    }

    #[test]
    fn a_refused_group_coordinator_lookup_does_not_stop_a_read() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("acl", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        produce(&brokers, "acl", 0, &lines);
        // As a broker answers a role without rights on kafka_fdw's placeholder group.
        let refusals = [rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED; 50];
        cluster.request_errors(rdkafka::types::RDKafkaApiKey::FindCoordinator, &refusals);
        let consumer = new_consumer(&test_settings(&brokers)).unwrap();
        let mut reader =
            RangeReader::new(consumer, test_settings(&brokers), "acl", &[ReadRange { partition: 0, start: 0, end: 20 }]).unwrap();
        assert_eq!(read_all(&mut reader).len(), 20);
    }

    #[test]
    fn a_read_kafka_refuses_is_a_privilege_error_naming_the_topic_and_operation() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("secret", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        produce(&brokers, "secret", 0, &["m".to_string()]);
        cluster.request_errors(
            rdkafka::types::RDKafkaApiKey::Fetch,
            &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
        );
        let consumer = new_consumer(&test_settings(&brokers)).unwrap();
        let mut reader =
            RangeReader::new(consumer, test_settings(&brokers), "secret", &[ReadRange { partition: 0, start: 0, end: 1 }]).unwrap();
        let error = reader.next_message().map(|_| ()).unwrap_err();
        assert_eq!(error.kind, ErrorKind::InsufficientPrivilege);
        assert_eq!(error.message, "permission denied for Kafka topic \"secret\"");
        assert!(error.detail.unwrap().starts_with("Kafka refused READ on topic \"secret\" to the client's principal: "));
    }

    fn ranges(spans: &[(i64, i64)]) -> PartitionRanges {
        PartitionRanges(spans.iter().copied().collect())
    }

    #[test]
    fn bookkeeping_delivers_inside_and_seeks_between_ranges() {
        let mut partition = ranges(&[(0, 2), (10, 12)]);
        assert_eq!(partition.on_message(0), (true, Next::Continue));
        assert_eq!(partition.on_message(1), (true, Next::Seek(10)));
        assert_eq!(partition.on_message(10), (true, Next::Continue));
        assert_eq!(partition.on_message(11), (true, Next::Close));
        assert_eq!(partition, ranges(&[]));
    }

    #[test]
    fn bookkeeping_survives_missing_offsets() {
        // Offset 1 is gone: 2 passes the first range, and the fetcher must jump to 10.
        let mut partition = ranges(&[(0, 2), (10, 12), (20, 22)]);
        assert_eq!(partition.on_message(0), (true, Next::Continue));
        assert_eq!(partition.on_message(2), (false, Next::Seek(10)));
        // Everything up to 20 is gone: the message at 21 is inside the last range.
        assert_eq!(partition.on_message(21), (true, Next::Close));
        // Past every range at once.
        let mut partition = ranges(&[(0, 2), (10, 12)]);
        assert_eq!(partition.on_message(50), (false, Next::Close));
    }

    #[test]
    fn reads_several_ranges_of_one_partition() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("gaps", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
        produce(&brokers, "gaps", 0, &lines);
        let consumer = new_consumer(&test_settings(&brokers)).unwrap();
        let wanted = [
            ReadRange { partition: 0, start: 4990, end: 5000 },
            ReadRange { partition: 0, start: 3, end: 5 },
            ReadRange { partition: 0, start: 2000, end: 2001 },
        ];
        let mut reader = RangeReader::new(consumer, test_settings(&brokers), "gaps", &wanted).unwrap();
        let offsets: Vec<i64> = read_all(&mut reader).iter().map(|(_, offset, _)| *offset).collect();
        let mut expected = vec![3, 4, 2000];
        expected.extend(4990..5000);
        assert_eq!(offsets, expected);
        // Seeking means the messages between the ranges were never delivered by the
        // client (a batch may still bring a few neighbours along).
        assert!(reader.messages_fetched < 1000, "fetched {}", reader.messages_fetched);
    }

    #[test]
    fn restart_reads_the_ranges_again() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("again", 2, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..20).map(|i| format!("m{i}")).collect();
        produce(&brokers, "again", 0, &lines);
        produce(&brokers, "again", 1, &lines);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();
        let first = [ReadRange { partition: 0, start: 0, end: 20 }, ReadRange { partition: 1, start: 5, end: 6 }];
        let mut reader = RangeReader::new(consumer, settings, "again", &first).unwrap();
        // Stop half-way, as a LIMIT would, then rescan with other ranges.
        for _ in 0..3 {
            reader.next_message().unwrap().unwrap();
        }
        let second = [ReadRange { partition: 0, start: 18, end: 20 }, ReadRange { partition: 1, start: 0, end: 2 }];
        reader.restart(&second).unwrap();
        let mut rows = read_all(&mut reader);
        rows.sort();
        assert_eq!(
            rows,
            vec![(0, 18, "m18".into()), (0, 19, "m19".into()), (1, 0, "m0".into()), (1, 1, "m1".into())]
        );
        reader.restart(&first).unwrap();
        assert_eq!(read_all(&mut reader).len(), 21);
        // A reused client must not sit out a librdkafka backoff (1 s once pause/resume
        // was involved) or a long broker-side fetch wait before its first fetch.
        let consumer = reader.consumer;
        clear_assignment(&consumer);
        let started = Instant::now();
        let mut reader = RangeReader::new(consumer, test_settings(&brokers), "again", &second).unwrap();
        assert_eq!(read_all(&mut reader).len(), 4);
        assert!(started.elapsed() < Duration::from_millis(500), "took {:?}", started.elapsed());
    }

    #[test]
    fn ranges_added_while_reading_are_read_once_each() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("added", 2, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        produce(&brokers, "added", 0, &lines);
        produce(&brokers, "added", 1, &lines);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();
        let mut reader = RangeReader::new(consumer, settings, "added", &[ReadRange { partition: 0, start: 0, end: 10 }]).unwrap();
        let mut rows: Vec<(i32, i64)> = Vec::new();
        for _ in 0..5 {
            let message = reader.next_message().unwrap().unwrap();
            rows.push((message.partition(), message.offset()));
        }
        // Right after the range being read: it grows. After a gap, and in a partition
        // not yet read: two more ranges. An empty one: nothing.
        reader.add(ReadRange { partition: 0, start: 10, end: 20 }).unwrap();
        assert_eq!(reader.ranges_left(), 1);
        reader.add(ReadRange { partition: 0, start: 50, end: 60 }).unwrap();
        reader.add(ReadRange { partition: 1, start: 0, end: 5 }).unwrap();
        reader.add(ReadRange { partition: 1, start: 7, end: 7 }).unwrap();
        assert_eq!(reader.ranges_left(), 3);
        while let Some(message) = reader.next_message().unwrap() {
            rows.push((message.partition(), message.offset()));
        }
        assert_eq!(reader.ranges_left(), 0);
        assert!(reader.is_finished());
        // A partition closed before is assigned again.
        reader.add(ReadRange { partition: 1, start: 90, end: 100 }).unwrap();
        assert!(!reader.is_finished());
        while let Some(message) = reader.next_message().unwrap() {
            rows.push((message.partition(), message.offset()));
        }
        rows.sort();
        let expected: Vec<(i32, i64)> =
            (0..20).chain(50..60).map(|o| (0, o)).chain((0..5).chain(90..100).map(|o| (1, o))).collect();
        assert_eq!(rows, expected);
    }

    #[test]
    fn capped_fetches_read_runs_exactly() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("runs", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        // 1 KB messages, fetched 4 KB at a time: every run takes several fetches.
        let lines: Vec<String> = (0..1000).map(|i| format!("{i:04}{}", "x".repeat(1020))).collect();
        produce(&brokers, "runs", 0, &lines);
        let settings = ClientSettings { fetch_max_bytes: Some(4096), ..test_settings(&brokers) };
        let consumer = new_consumer(&settings).unwrap();
        let runs = [(100, 130), (400, 450), (900, 1000)].map(|(start, end)| ReadRange { partition: 0, start, end });
        let mut reader = RangeReader::new(consumer, settings.clone(), "runs", &runs).unwrap();
        let offsets: Vec<i64> = read_all(&mut reader).iter().map(|(_, offset, _)| *offset).collect();
        assert_eq!(offsets, (100..130).chain(400..450).chain(900..1000).collect::<Vec<_>>());
        // The cap reaches librdkafka's configuration: one below its minimum
        // message.max.bytes (1000) is refused...
        assert!(new_consumer(&ClientSettings { fetch_max_bytes: Some(999), ..settings.clone() }).is_err());
        // ...unless the server's or user mapping's properties size fetches themselves
        // (a message.max.bytes above the cap would make librdkafka refuse it).
        let properties = vec![("message.max.bytes".to_string(), "10000000".to_string())];
        assert!(new_consumer(&ClientSettings { fetch_max_bytes: Some(999), properties, ..settings }).is_ok());
    }

    #[test]
    fn backwards_returns_the_ranges_newest_first_growing_chunks_from_one_message() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("backwards", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        let lines: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        produce(&brokers, "backwards", 0, &lines);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();
        let mut reader = RangeReader::new(consumer, settings, "backwards", &[]).unwrap();
        let ranges = [ReadRange { partition: 0, start: 3, end: 10 }, ReadRange { partition: 0, start: 40, end: 95 }];
        let mut backwards = Backwards::default();
        backwards.start(&ranges);
        // The newest message costs one fetched message, as `ORDER BY offs DESC LIMIT 1` needs.
        let first = backwards.next(&mut reader).unwrap().unwrap();
        assert_eq!((first.offset(), reader.messages_fetched), (94, 1));
        let mut offsets = vec![first.offset()];
        while let Some(message) = backwards.next(&mut reader).unwrap() {
            assert_eq!(message.payload().unwrap(), format!("m{}", message.offset()).as_bytes());
            offsets.push(message.offset());
        }
        let expected: Vec<i64> = (40..95).rev().chain((3..10).rev()).collect();
        assert_eq!(offsets, expected);
        assert_eq!(reader.messages_fetched, expected.len() as u64, "every message is fetched once");
        // Starting again reads the same again; no ranges, nothing.
        backwards.start(&ranges[..1]);
        assert_eq!(backwards.next(&mut reader).unwrap().unwrap().offset(), 9);
        backwards.start(&[]);
        assert!(backwards.next(&mut reader).unwrap().is_none());
    }

    #[test]
    fn empty_ranges_end_at_once() {
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("empty", 4, 1).unwrap();
        let settings = test_settings(&cluster.bootstrap_servers());
        let consumer = new_consumer(&settings).unwrap();
        let partitions = topic_partitions(&consumer, &settings, "empty").unwrap();
        let ranges: Vec<ReadRange> = watermarks(&consumer, &settings, "empty", &partitions)
            .unwrap()
            .iter()
            .map(|w| ReadRange { partition: w.partition, start: w.low, end: w.high })
            .collect();
        let started = Instant::now();
        let mut reader = RangeReader::new(consumer, settings, "empty", &ranges).unwrap();
        assert!(read_all(&mut reader).is_empty());
        assert!(started.elapsed() < Duration::from_millis(50));
    }

    #[test]
    fn a_range_past_the_end_is_closed_by_partition_eof() {
        // The plan may ask for more than exists (e.g. a compacted tail); EOF ends it.
        let mock = mock_cluster(1);
        let cluster = mock.cluster();
        cluster.create_topic("short", 1, 1).unwrap();
        let brokers = cluster.bootstrap_servers();
        produce(&brokers, "short", 0, &["a".to_string(), "b".to_string()]);
        let settings = test_settings(&brokers);
        let consumer = new_consumer(&settings).unwrap();
        let mut reader =
            RangeReader::new(consumer, settings, "short", &[ReadRange { partition: 0, start: 0, end: 5 }]).unwrap();
        assert_eq!(read_all(&mut reader).len(), 2);
    }
}
