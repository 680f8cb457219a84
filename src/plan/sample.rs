//! Which messages ANALYZE reads: a sample whose cost is a small share of a full scan on
//! any broker, spread along the whole topic and over its partitions.
//!
//! Cost: a run of consecutive offsets costs one seek, and a seek is not cheap. The broker
//! answers it with at least the whole record batch the offset lands in (up to librdkafka's
//! `batch.size`, 1 MB, ~9,000 messages of 100 bytes) and by default up to 1 MB per
//! partition, which librdkafka unpacks before the reader can jump again (so ANALYZE's
//! consumer fetches at most [`FETCH_BYTES`] at once); some brokers do worse (tansu's SQLite
//! storage works through the partition's whole tail for every fetch). So the sample is
//! read as a few long runs rather than PostgreSQL's one short read per page: at least
//! [`MIN_PLACES`] in all, beyond that no more than one per [`RUN_SPAN`] messages of a
//! partition and [`MAX_RUNS`] per partition; and on a topic of many partitions and few
//! messages, in only some of them ([`MIN_PARTITIONS`], or one per [`RUN_SPAN`] messages of
//! the topic or per [`PARTITION_ROWS`] rows of the sample), since each sampled partition
//! costs a seek of its own. The sample holds a fortieth of the topic, within a thirtieth
//! of PostgreSQL's `targrows` (300 × the statistics target, so 1,000 rows by default) and
//! `targrows` itself: a topic of fewer than 40 × `targrows` messages gives fewer rows than
//! PostgreSQL asks for (an FDW may; `reltuples` comes from the watermarks, not from the
//! sample's size), and a larger statistics target gives a larger sample. A topic of no
//! more than twice the sample is read whole, sequentially: a sample would cost about as
//! much.
//!
//! Spread: each sampled partition's share is proportional to its messages and split into
//! equal runs, one inside each of as many equal slices of the partition, so every sampled
//! partition is sampled from beginning to end. Within its slice a run sits nearer the
//! start or the end by its partition's rank (rank k of n at (2k + 1) / 2n of the room the
//! run leaves), so partitions written side by side (round robin, by key) cover the topic's
//! history at as many places as there are runs in all, not at the same few. The
//! partitions sampled, when not all are, are spread over the partition numbers (0, 16,
//! 8, 24, … of 32) and hold more than twice the sample. What leaving partitions out
//! costs: a partition's keys (and the values that come with them) are seen only if it is
//! sampled, so on a topic keyed by a column, that column's distinct values are estimated
//! from the sampled partitions' keys (8 of 32 partitions: about a quarter of them); a
//! larger statistics target samples more partitions.

use crate::kafka::{ReadRange, Watermarks};

/// A sample holds this share (1 / SHARE) of the topic's messages, within the bounds of
/// [`sample_size`].
const SHARE: i64 = 40;

/// A sample holds at least `targrows / FLOOR` rows (or the whole topic): 1,000 at the
/// default statistics target, enough for its 100 histogram bounds and most common values.
const FLOOR: i64 = 30;

/// The most runs (seeks) per partition: the cost bound.
const MAX_RUNS: i64 = 8;

/// Beyond [`MIN_PLACES`], a partition gets at most one run per this many messages. A seek
/// costs about what a scan spends on a few thousand messages (a round trip and the 256 KB
/// fetched: ~2,300 messages of 100 bytes, and on tansu far more), so this keeps the seeks
/// near a tenth of a scan's cost, and two runs rarely land in one 1 MB record batch.
const RUN_SPAN: i64 = 25_000;

/// The sample sits at at least this many places along the topic's history (runs in all,
/// spread over its partitions), whatever the partitions' size: two runs place any
/// quantile of a column that grows with the offset within a quarter of the rows. More on
/// a small topic would cost most of a scan when its producer wrote large batches (four
/// seeks into a partition of 37,000 messages in 1 MB batches unpack all of it).
const MIN_PLACES: i64 = 2;

/// A sample reads at least this many partitions (all, if the topic has no more), and
/// beyond them one per [`RUN_SPAN`] messages of the topic and one per
/// [`PARTITION_ROWS`] rows of the sample; more partitions would cost a seek each for a
/// few hundred rows (a topic of 100,000 messages in 32 partitions).
const MIN_PARTITIONS: i64 = 8;

/// A sample reads at least one partition per this many of its rows: a larger statistics
/// target, which asks for more rows, also spreads them over more partitions.
const PARTITION_ROWS: i64 = 300;

/// The most ANALYZE's consumer fetches at once, per partition and per fetch (librdkafka's
/// default: 1 MB per partition, 50 MB per fetch): what a fetch brings past the end of a
/// run is thrown away at the next seek, while a run of a few hundred KB still comes in a
/// couple of round trips.
pub const FETCH_BYTES: usize = 256 * 1024;

/// The rows a sample of a topic of `total` messages holds, when PostgreSQL asks for
/// `targrows`: a fortieth of the topic, within a thirtieth of `targrows` and `targrows`.
pub fn sample_size(total: i64, targrows: i64) -> i64 {
    (total / SHARE).max(targrows / FLOOR).max(1).min(targrows).max(0)
}

/// A sample of `size` rows (see [`sample_size`], of all the topics' messages) split
/// between topics of `totals` messages, in proportion (largest remainders), for a table
/// over several topics: each topic's share is the sample [`ranges_of_sample`] reads of it.
pub fn split_between_topics(size: i64, totals: &[i64]) -> Vec<i64> {
    let all: i64 = totals.iter().sum();
    if all <= 0 {
        return vec![0; totals.len()];
    }
    let exact: Vec<(i64, i64)> = totals.iter().map(|&t| ((size as i128 * t as i128 / all as i128) as i64, (size as i128 * t as i128 % all as i128) as i64)).collect();
    let mut shares: Vec<i64> = exact.iter().map(|&(share, _)| share).collect();
    let mut by_remainder: Vec<usize> = (0..totals.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(exact[i].1));
    let left = size - shares.iter().sum::<i64>();
    for &i in by_remainder.iter().take(left.max(0) as usize) {
        shares[i] += 1;
    }
    shares
}

/// The ranges ANALYZE reads for a sample of `wanted` messages of the partitions `marks`:
/// all of them if they hold no more than twice that, else runs holding that many.
pub fn ranges_of_sample(marks: &[Watermarks], wanted: i64) -> Vec<ReadRange> {
    let sizes: Vec<i64> = marks.iter().map(|w| (w.high - w.low).max(0)).collect();
    let total: i64 = sizes.iter().sum();
    if total <= 2 * wanted {
        return marks
            .iter()
            .filter(|w| w.high > w.low)
            .map(|w| ReadRange { partition: w.partition, start: w.low, end: w.high })
            .collect();
    }
    let sizes = sampled_partitions(&sizes, total, wanted);
    let shares = shares(&sizes, sizes.iter().sum(), wanted);
    let sampled = shares.iter().filter(|&&share| share > 0).count() as i64;
    let mut ranges = Vec::new();
    let mut rank = 0;
    for ((marks, &size), &share) in marks.iter().zip(&sizes).zip(&shares) {
        if share == 0 {
            continue;
        }
        let runs = (size / RUN_SPAN).max((MIN_PLACES + sampled - 1) / sampled).clamp(1, MAX_RUNS).min(share);
        // Where in its slice this partition's runs sit: from the slice's start (rank 0)
        // to its end (the last rank); in the middle for a partition alone.
        let (place, places) = (2 * rank + 1, 2 * sampled);
        let slice_start = |i: i64| marks.low + (i128::from(i) * i128::from(size) / i128::from(runs)) as i64;
        for i in 0..runs {
            let length = share / runs + i64::from(i < share % runs);
            let room = slice_start(i + 1) - slice_start(i) - length;
            let start = slice_start(i) + (i128::from(room) * i128::from(place) / i128::from(places)) as i64;
            ranges.push(ReadRange { partition: marks.partition, start, end: start + length });
        }
        rank += 1;
    }
    ranges
}

/// The partitions' sizes with those the sample leaves out set to 0: taken in an order
/// that spreads any first few over the partition numbers (bit-reversed: 0, 16, 8, 24, …
/// of 32), until there are [`MIN_PARTITIONS`], one per [`RUN_SPAN`] messages of the topic
/// (of `total`) and one per [`PARTITION_ROWS`] of the `wanted` rows, and they hold more
/// than twice `wanted`, so that every share stays below half its partition.
fn sampled_partitions(sizes: &[i64], total: i64, wanted: i64) -> Vec<i64> {
    let non_empty: Vec<usize> = (0..sizes.len()).filter(|&i| sizes[i] > 0).collect();
    // Ranks bit-reversed within the bits their count needs: a permutation whose every
    // prefix is spread evenly.
    let bits = usize::BITS - non_empty.len().leading_zeros();
    let mut ranks: Vec<usize> = (0..non_empty.len()).collect();
    ranks.sort_by_key(|&rank| rank.reverse_bits().checked_shr(usize::BITS - bits).unwrap_or(0));
    let fewest = (total / RUN_SPAN).max(wanted / PARTITION_ROWS).max(MIN_PARTITIONS) as usize;
    let mut kept = vec![0; sizes.len()];
    let mut held = 0;
    for (taken, rank) in ranks.into_iter().enumerate() {
        if taken >= fewest && held > 2 * wanted {
            break;
        }
        let partition = non_empty[rank];
        kept[partition] = sizes[partition];
        held += sizes[partition];
    }
    kept
}

/// Shares of `wanted` proportional to `sizes` (of sum `total`, more than `wanted`),
/// rounded by largest remainders: every partition holding at least `1 / wanted` of the
/// topic gets some, and each share is below its partition's size.
fn shares(sizes: &[i64], total: i64, wanted: i64) -> Vec<i64> {
    // i128 so that wanted * size cannot overflow.
    let scaled: Vec<(i64, i64)> = sizes
        .iter()
        .map(|&size| {
            let product = i128::from(wanted) * i128::from(size);
            ((product / i128::from(total)) as i64, (product % i128::from(total)) as i64)
        })
        .collect();
    let mut shares: Vec<i64> = scaled.iter().map(|&(share, _)| share).collect();
    let left = wanted - shares.iter().sum::<i64>();
    let mut by_remainder: Vec<usize> = (0..sizes.len()).collect();
    by_remainder.sort_by_key(|&i| std::cmp::Reverse(scaled[i].1));
    for &i in by_remainder.iter().take(left as usize) {
        shares[i] += 1;
    }
    shares
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

    /// The ranges ANALYZE reads of a table of one topic of the partitions `marks` when
    /// PostgreSQL asks for `targrows` rows, as `fdw/analyze.rs` composes them (the
    /// topic's share of the sample is all of it).
    fn sample_ranges(marks: &[Watermarks], targrows: i64) -> Vec<ReadRange> {
        let total: i64 = marks.iter().map(|w| (w.high - w.low).max(0)).sum();
        let shares = split_between_topics(sample_size(total, targrows), &[total]);
        ranges_of_sample(marks, shares[0])
    }

    #[test]
    fn topics_share_a_sample_in_proportion() {
        assert_eq!(split_between_topics(100, &[300, 100, 0]), vec![75, 25, 0]);
        assert_eq!(split_between_topics(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(split_between_topics(5, &[0, 0]), vec![0, 0]);
        // Each topic's ranges hold its share, or the whole topic when it is no more than
        // twice that, as a table of one topic of their size would be read.
        let totals = [2_000_000, 150_000, 7];
        let size = sample_size(totals.iter().sum(), 30_000);
        let shares = split_between_topics(size, &totals);
        assert_eq!(shares.iter().sum::<i64>(), size);
        for (&share, total) in shares.iter().zip(totals) {
            let read: i64 = ranges_of_sample(&marks(&[(0, total)]), share).iter().map(|r| r.end - r.start).sum();
            assert_eq!(read, if total <= 2 * share { total } else { share }, "{share} of {total}");
        }
        // Two small topics: read whole, as one topic of both their messages would be.
        let size = sample_size(2_000, 30_000);
        for share in split_between_topics(size, &[1_000, 1_000]) {
            let read: i64 = ranges_of_sample(&marks(&[(0, 1_000)]), share).iter().map(|r| r.end - r.start).sum();
            assert_eq!(read, 1_000);
        }
        assert_eq!(sample_ranges(&marks(&[(0, 2_000)]), 30_000).iter().map(|r| r.end - r.start).sum::<i64>(), 2_000);
    }
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

    fn of_partition(ranges: &[ReadRange], partition: i32) -> Vec<(i64, i64)> {
        ranges.iter().filter(|r| r.partition == partition).map(|r| (r.start, r.end)).collect()
    }

    #[test]
    fn sizes_are_a_fortieth_of_the_topic_within_a_thirtieth_of_targrows_and_targrows() {
        assert_eq!(sample_size(2_000_000, 30_000), 30_000);
        assert_eq!(sample_size(1_000_000, 30_000), 25_000);
        assert_eq!(sample_size(100_000, 30_000), 2_500);
        assert_eq!(sample_size(10_000, 30_000), 1_000);
        assert_eq!(sample_size(10_000_000, 3_000), 3_000);
        // A larger statistics target, a larger sample.
        assert_eq!(sample_size(10_000, 300_000), 10_000);
        assert_eq!(sample_size(0, 30_000), 1_000);
    }

    #[test]
    fn a_small_topic_is_read_whole() {
        // 2,000 messages at most (twice a thirtieth of 30,000): read whole.
        let topic = marks(&[(0, 10), (5, 5), (3, 1_993)]);
        assert_eq!(
            sample_ranges(&topic, 30_000),
            vec![ReadRange { partition: 0, start: 0, end: 10 }, ReadRange { partition: 2, start: 3, end: 1_993 }]
        );
        assert_eq!(sample_ranges(&marks(&[(0, 2_001)]), 30_000).iter().map(|r| r.end - r.start).sum::<i64>(), 1_000);
        assert_eq!(sample_ranges(&marks(&[]), 100), vec![]);
    }

    #[test]
    fn the_benchmark_topics_are_sampled_in_a_few_long_runs() {
        // 1,000,000 messages round robin over 32 partitions: 25,000 rows, one run of 781
        // or 782 in each partition (31,250 messages: one run per 25,000; 40 partitions
        // could be sampled), partition 0's 1/64 into the room its run leaves, partition
        // 31's 63/64.
        let ranges = sample_ranges(&marks(&[(0, 31_250); 32]), 30_000);
        let sums = per_partition(&ranges, 32);
        assert_eq!(sums.iter().sum::<i64>(), 25_000);
        assert!(sums.iter().all(|&n| n == 781 || n == 782), "{sums:?}");
        assert_eq!(of_partition(&ranges, 0), vec![(476, 1_258)]);
        assert_eq!(of_partition(&ranges, 31), vec![(29_992, 30_773)]);
        // 1,000,000 messages in one partition: 25,000 rows in 8 runs of 3,125 (no more per
        // partition), one in the middle of each eighth.
        let ranges = sample_ranges(&marks(&[(0, 1_000_000)]), 30_000);
        assert_eq!(ranges.len(), 8);
        assert_eq!(of_partition(&ranges, 0)[7], (935_937, 939_062));
        // 100,000 messages in one partition: 2,500 rows in 4 runs of 625 (one per
        // 25,000), one in the middle of each quarter.
        let ranges = sample_ranges(&marks(&[(0, 100_000)]), 30_000);
        assert_eq!(of_partition(&ranges, 0), vec![(12_187, 12_812), (37_187, 37_812), (62_187, 62_812), (87_187, 87_812)]);
        // 36,000 messages (what the mock cluster keeps of one partition): 1,000 rows (a
        // thirtieth of 30,000) in 2 runs, the fewest places for a sample.
        let ranges = sample_ranges(&marks(&[(0, 36_000)]), 30_000);
        assert_eq!(of_partition(&ranges, 0), vec![(8_750, 9_250), (26_750, 27_250)]);
        // 100,000 messages over 32 partitions: 8 partitions, every fourth, one run of 312
        // or 313 in each (3,125 messages), staggered from partition to partition along
        // the topic.
        let ranges = sample_ranges(&marks(&[(0, 3_125); 32]), 30_000);
        let sums = per_partition(&ranges, 32);
        assert_eq!(sums.iter().sum::<i64>(), 2_500);
        let sampled: Vec<usize> = (0..32).filter(|&p| sums[p] > 0).collect();
        assert_eq!(sampled, vec![0, 4, 8, 12, 16, 20, 24, 28]);
        assert_eq!(ranges.len(), 8);
        assert_eq!((of_partition(&ranges, 0), of_partition(&ranges, 28)), (vec![(175, 488)], vec![(2_637, 2_949)]));
        // At statistics target 1000: 10,000 rows (a thirtieth of 300,000), over every
        // partition (one per 300 rows).
        let ranges = sample_ranges(&marks(&[(0, 3_125); 32]), 300_000);
        assert_eq!(per_partition(&ranges, 32).iter().filter(|&&n| n > 0).count(), 32);
    }

    #[test]
    fn partitions_left_out_are_spread_and_the_sampled_hold_more_than_twice_the_sample() {
        // 1,000 partitions of 100 messages: 2,500 rows from 51 of them (5,100 messages),
        // spread over the partition numbers.
        let ranges = sample_ranges(&marks(&[(0, 100); 1_000]), 30_000);
        let sums = per_partition(&ranges, 1_000);
        let sampled: Vec<usize> = (0..1_000).filter(|&p| sums[p] > 0).collect();
        assert_eq!((sums.iter().sum::<i64>(), sampled.len()), (2_500, 51));
        assert!(sampled.windows(2).all(|pair| pair[1] - pair[0] <= 32), "{sampled:?}");
        assert!(sampled[0] == 0 && sampled[50] >= 968, "{sampled:?}");
        // One large partition among 31 small ones is sampled, even where the first
        // partitions taken (0, 16, 8, …) are small ones: they are taken until they hold
        // more than twice the sample.
        let mut spans = vec![(0, 100); 32];
        spans[1] = (0, 90_000);
        let ranges = sample_ranges(&marks(&spans), 30_000);
        let sums = per_partition(&ranges, 32);
        assert_eq!(sums.iter().sum::<i64>(), 93_100 / 40);
        assert!(sums[1] > 2_000, "{sums:?}");
        assert!(sums.iter().zip(&spans).all(|(&sum, &(_, n))| sum <= n / 2 + 1), "{sums:?}");
    }

    #[test]
    fn shares_follow_partition_sizes_and_offsets_start_at_the_low_watermark() {
        let topic = marks(&[(1_000, 91_000), (0, 10_000), (500, 500)]);
        let ranges = sample_ranges(&topic, 30_000);
        assert_eq!(per_partition(&ranges, 3), vec![2_250, 250, 0]);
        // Partition 0 (rank 0 of 2): 3 runs (one per 25,000 of its 90,000 messages),
        // each a quarter into its third's room.
        let first = of_partition(&ranges, 0);
        assert_eq!(first.len(), 3);
        assert_eq!(first[0], (1_000 + (30_000 - 750) / 4, 1_000 + (30_000 - 750) / 4 + 750));
        // Partition 1 (rank 1 of 2): one run (the two places split over two partitions),
        // three quarters into its room.
        assert_eq!(of_partition(&ranges, 1), vec![(7_312, 7_562)]);
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
        /// Whatever the watermarks and targrows: the whole topic if it is at most twice
        /// the sample size, else ranges inside their partition's watermarks that never
        /// overlap and hold exactly the sample size (at most a fortieth of the topic, or
        /// a thirtieth of targrows, and at most targrows); when no more partitions hold
        /// any than MIN_PARTITIONS, one per RUN_SPAN messages or one per PARTITION_ROWS
        /// rows of the sample, all that hold at least 1/size of the topic sampled; none
        /// for more than half its messages; per sampled partition its part of MIN_PLACES
        /// runs (as its share allows), at most MAX_RUNS, and beyond that part at most one
        /// per RUN_SPAN messages; run i of a partition's n inside the i-th of n equal
        /// slices, so the sample reaches from its beginning to its end.
        #[test]
        fn samples_are_bounded_and_spread(
            scale in prop::sample::select(vec![300i64, 20_000, 200_000]),
            sizes in prop::collection::vec((0i64..1_000, 0.0f64..1.0), 1..300),
            targrows in 1i64..40_000,
        ) {
            let spans: Vec<(i64, i64)> = sizes.iter().map(|&(low, share)| (low, (share * scale as f64) as i64)).collect();
            let topic = marks(&spans.iter().map(|&(low, n)| (low, low + n)).collect::<Vec<_>>());
            let ranges = sample_ranges(&topic, targrows);
            let total: i64 = spans.iter().map(|&(_, n)| n).sum();
            let size = sample_size(total, targrows);
            let sums = per_partition(&ranges, topic.len());
            if total <= 2 * size {
                prop_assert_eq!(sums, spans.iter().map(|&(_, n)| n).collect::<Vec<_>>());
                return Ok(());
            }
            prop_assert_eq!(sums.iter().sum::<i64>(), size);
            prop_assert!(size <= targrows && size <= (total / 40).max(targrows / 30).max(1));
            let mut sorted = ranges.clone();
            sorted.sort_by_key(|r| (r.partition, r.start));
            for pair in sorted.windows(2) {
                prop_assert!(pair[0].partition != pair[1].partition || pair[0].end <= pair[1].start);
            }
            let sampled = sums.iter().filter(|&&n| n > 0).count() as i64;
            let non_empty = spans.iter().filter(|&&(_, n)| n > 0).count() as i64;
            let all_taken = non_empty <= MIN_PARTITIONS.max(total / RUN_SPAN).max(size / PARTITION_ROWS);
            let part = (MIN_PLACES + sampled - 1) / sampled;
            for (p, &(low, n)) in spans.iter().enumerate() {
                let runs = of_partition(&ranges, p as i32);
                if all_taken && n * size >= total {
                    prop_assert!(!runs.is_empty(), "partition {} of {} messages unsampled", p, n);
                }
                prop_assert!(sums[p] <= n / 2 + 1, "partition {}: {} of {} messages", p, sums[p], n);
                let count = runs.len() as i64;
                prop_assert!(count >= part.min(sums[p]));
                prop_assert!(count <= MAX_RUNS && (count <= part || count <= n / RUN_SPAN));
                for (i, &(start, end)) in runs.iter().enumerate() {
                    let slice = |i: i64| low + i * n / count;
                    prop_assert!(slice(i as i64) <= start && start < end && end <= slice(i as i64 + 1));
                }
            }
        }
    }
}
