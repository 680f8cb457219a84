//! Which messages ANALYZE reads: about `target` messages spread over every partition in
//! proportion to its size, as runs of consecutive offsets placed evenly along each
//! partition. A run is Kafka's counterpart of the heap page PostgreSQL's own ANALYZE
//! samples: one seek (a fetch request) brings it. So a sample costs about `target`
//! messages fetched and one seek per run, whatever the topic's size.

use crate::kafka::{ReadRange, Watermarks};

/// Consecutive messages per run: one fetch request brings this many at once, while
/// `target / RUN_MESSAGES` runs still spread the sample along every partition (300 runs
/// for the default statistics target's 30,000 rows).
pub const RUN_MESSAGES: i64 = 100;

/// The ranges to read for a sample of at most `target` messages of the partitions
/// `marks`, in runs of at most `run` messages: the whole topic if it holds no more than
/// `target`. Each partition's share is proportional to its messages (largest remainders
/// round), so every partition holding at least `1 / target` of the topic is sampled;
/// a share is split into runs of at most `run`, one at the start of each of as many equal
/// slices of the partition.
pub fn sample_ranges(marks: &[Watermarks], target: i64, run: i64) -> Vec<ReadRange> {
    let sizes: Vec<i64> = marks.iter().map(|w| (w.high - w.low).max(0)).collect();
    let total: i64 = sizes.iter().sum();
    if total <= target {
        return marks
            .iter()
            .filter(|w| w.high > w.low)
            .map(|w| ReadRange { partition: w.partition, start: w.low, end: w.high })
            .collect();
    }
    let target = target.max(0);
    let run = run.max(1);
    // Shares of `target`, proportional to the sizes; i128 so that target * size cannot
    // overflow. Each is below its partition's size, since target < total.
    let scaled: Vec<(i64, i64)> = sizes
        .iter()
        .map(|&size| {
            let product = i128::from(target) * i128::from(size);
            ((product / i128::from(total)) as i64, (product % i128::from(total)) as i64)
        })
        .collect();
    let mut shares: Vec<i64> = scaled.iter().map(|&(share, _)| share).collect();
    let left = target - shares.iter().sum::<i64>();
    let mut by_remainder: Vec<usize> = (0..marks.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(scaled[i].1));
    for &i in by_remainder.iter().take(left as usize) {
        shares[i] += 1;
    }
    let mut ranges = Vec::new();
    for ((marks, &size), &share) in marks.iter().zip(&sizes).zip(&shares) {
        if share == 0 {
            continue;
        }
        let runs = (share + run - 1) / run;
        // Run i starts slice i of `runs` equal slices, and never reaches the next slice.
        let slice_start = |i: i64| marks.low + (i128::from(i) * i128::from(size) / i128::from(runs)) as i64;
        for i in 0..runs {
            let length = share / runs + i64::from(i < share % runs);
            let start = slice_start(i);
            ranges.push(ReadRange { partition: marks.partition, start, end: (start + length).min(slice_start(i + 1)) });
        }
    }
    ranges
}

/// The rows a full scan would return, estimated from a sample: `sample_rows` rows came
/// from `sampled_offsets` of the topic's `total_offsets` offsets. Exact when the sample
/// was the whole topic; otherwise scaled, so offsets that hold no message (compaction,
/// transaction markers) and skipped bad messages count as they did in the sample.
pub fn estimated_rows(total_offsets: i64, sampled_offsets: i64, sample_rows: usize) -> f64 {
    if sampled_offsets >= total_offsets || sampled_offsets == 0 {
        return sample_rows as f64;
    }
    (total_offsets as f64 * sample_rows as f64 / sampled_offsets as f64).round()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn marks(spans: &[(i64, i64)]) -> Vec<Watermarks> {
        spans.iter().enumerate().map(|(p, &(low, high))| Watermarks { partition: p as i32, low, high }).collect()
    }

    fn per_partition(ranges: &[ReadRange], partitions: usize) -> Vec<i64> {
        let mut sums = vec![0; partitions];
        for r in ranges {
            sums[r.partition as usize] += r.end - r.start;
        }
        sums
    }

    #[test]
    fn a_small_topic_is_read_whole() {
        let topic = marks(&[(0, 10), (5, 5), (3, 20)]);
        assert_eq!(
            sample_ranges(&topic, 30_000, RUN_MESSAGES),
            vec![ReadRange { partition: 0, start: 0, end: 10 }, ReadRange { partition: 2, start: 3, end: 20 }]
        );
        assert_eq!(sample_ranges(&topic, 27, RUN_MESSAGES).len(), 2);
        assert_eq!(sample_ranges(&marks(&[]), 100, 10), vec![]);
    }

    #[test]
    fn the_1m_topic_is_sampled_in_runs_spread_over_every_partition() {
        // The benchmark's topic: 1,000,000 messages round-robin over 32 partitions.
        let topic = marks(&[(0, 31_250); 32]);
        let ranges = sample_ranges(&topic, 30_000, RUN_MESSAGES);
        let sums = per_partition(&ranges, 32);
        assert_eq!(sums.iter().sum::<i64>(), 30_000);
        assert!(sums.iter().all(|&n| n == 937 || n == 938), "{sums:?}");
        // 938 messages in partition 0: 10 runs (8 of 94 messages, 2 of 93), one per tenth.
        let partition_0: Vec<&ReadRange> = ranges.iter().filter(|r| r.partition == 0).collect();
        assert_eq!(partition_0.len(), 10);
        assert_eq!((partition_0[0].start, partition_0[0].end), (0, 94));
        assert_eq!((partition_0[9].start, partition_0[9].end), (28_125, 28_218));
    }

    #[test]
    fn shares_follow_partition_sizes_and_offsets_start_at_the_low_watermark() {
        let topic = marks(&[(1_000, 91_000), (0, 10_000), (500, 500)]);
        let ranges = sample_ranges(&topic, 1_000, 100);
        assert_eq!(per_partition(&ranges, 3), vec![900, 100, 0]);
        assert_eq!(ranges.iter().filter(|r| r.partition == 0).map(|r| r.start).collect::<Vec<_>>(), (0..9).map(|i| 1_000 + i * 10_000).collect::<Vec<_>>());
        assert_eq!(ranges.iter().filter(|r| r.partition == 1).collect::<Vec<_>>(), vec![&ReadRange { partition: 1, start: 0, end: 100 }]);
    }

    #[test]
    fn rows_scale_from_the_sampled_offsets() {
        assert_eq!(estimated_rows(1_000_000, 30_000, 30_000), 1_000_000.0);
        // A tenth of the sampled offsets held no message (or a skipped one).
        assert_eq!(estimated_rows(1_000_000, 30_000, 27_000), 900_000.0);
        // The whole topic was read: the rows themselves.
        assert_eq!(estimated_rows(5_000, 5_000, 4_990), 4_990.0);
        assert_eq!(estimated_rows(0, 0, 0), 0.0);
    }

    proptest! {
        /// Whatever the watermarks and target: ranges lie inside their partition's
        /// watermarks, never overlap, hold at most the target (and no fewer messages than
        /// the target less one per run), and every partition with at least 1/target of the
        /// topic gets some.
        #[test]
        fn samples_stay_inside_the_watermarks(
            spans in prop::collection::vec((0i64..1_000, 0i64..50_000), 1..40),
            target in 1i64..40_000,
            run in 1i64..300,
        ) {
            let topic = marks(&spans.iter().map(|&(low, n)| (low, low + n)).collect::<Vec<_>>());
            let ranges = sample_ranges(&topic, target, run);
            let total: i64 = spans.iter().map(|&(_, n)| n).sum();
            let sampled: i64 = ranges.iter().map(|r| r.end - r.start).sum();
            prop_assert!(sampled <= target);
            prop_assert!(sampled >= total.min(target) - ranges.len() as i64);
            let mut sorted = ranges.clone();
            sorted.sort_by_key(|r| (r.partition, r.start));
            for pair in sorted.windows(2) {
                prop_assert!(pair[0].partition != pair[1].partition || pair[0].end <= pair[1].start);
            }
            for r in &ranges {
                let w = topic[r.partition as usize];
                prop_assert!(w.low <= r.start && r.start < r.end && r.end <= w.high);
                if total > target {
                    prop_assert!(r.end - r.start <= run);
                }
            }
            let sums = per_partition(&ranges, topic.len());
            for (p, &(_, n)) in spans.iter().enumerate() {
                if n * target >= total {
                    prop_assert!(sums[p] > 0, "partition {} of {} messages unsampled", p, n);
                }
            }
        }
    }
}
