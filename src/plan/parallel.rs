//! Sharing a scan's offset ranges among PostgreSQL parallel workers.
//!
//! The leader plans the scan once (so every participant reads up to the same high
//! watermarks), cuts the ranges into units, and puts them in a queue in dynamic shared
//! memory. Each participant, leader included, claims units with one atomic increment
//! each and reads them with its own Kafka client, until none is left. Claiming instead
//! of a fixed assignment keeps every unit read exactly once even when fewer workers start
//! than were planned, and balances uneven partitions.
//!
//! A participant reads its share of the units at once (the queue's `window`), taking a
//! new unit as soon as one is done: a fetch brings a bounded amount per partition per
//! round trip, so a distant broker is read as fast as the number of partitions read
//! together allows, and the participants together read as many as a serial scan does.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::kafka::ReadRange;

/// How many units the shared queue holds; a plan with more is coarsened.
pub const QUEUE_CAPACITY: usize = 8192;

/// The queue as laid out in shared memory: a header, then `capacity` units.
#[repr(C)]
pub struct WorkQueue {
    next: AtomicUsize,
    len: usize,
    window: usize,
    units: [ReadRange; 0],
}

impl WorkQueue {
    /// Bytes of shared memory for a queue of `capacity` units.
    pub fn size_for(capacity: usize) -> usize {
        std::mem::size_of::<WorkQueue>() + capacity * std::mem::size_of::<ReadRange>()
    }

    /// Lays out a queue holding `units` in `memory`, for `participants` readers.
    ///
    /// # Safety
    /// `memory` must point to at least `size_for(capacity)` writable bytes, suitably
    /// aligned, that no participant reads yet; `units.len() <= capacity`.
    pub unsafe fn init<'a>(memory: *mut u8, capacity: usize, units: &[ReadRange], participants: usize) -> &'a WorkQueue {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            assert!(units.len() <= capacity, "more units than the queue holds");
            let queue = memory as *mut WorkQueue;
            let window = units.len().div_ceil(participants.max(1)).max(1);
            queue.write(WorkQueue { next: AtomicUsize::new(0), len: units.len(), window, units: [] });
            let slots = std::ptr::addr_of_mut!((*queue).units) as *mut ReadRange;
            std::ptr::copy_nonoverlapping(units.as_ptr(), slots, units.len());
            &*queue
        }
    }

    /// The queue another participant laid out in `memory`.
    ///
    /// # Safety
    /// `memory` must hold a queue made by [`WorkQueue::init`].
    pub unsafe fn attach<'a>(memory: *mut u8) -> &'a WorkQueue {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            &*(memory as *const WorkQueue)
        }
    }

    pub fn units(&self) -> &[ReadRange] {
        // SAFETY: `init` wrote `len` units right after the header.
        unsafe { std::slice::from_raw_parts(self.units.as_ptr(), self.len) }
    }

    /// How many units a participant reads at once: its share of them all.
    pub fn window(&self) -> usize {
        self.window
    }

    /// The next unclaimed unit, each handed out once across all participants. Units of
    /// one partition come in offset order.
    pub fn claim(&self) -> Option<ReadRange> {
        // Once all are claimed, participants only read the shared counter.
        if self.next.load(Ordering::Relaxed) >= self.len {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        self.units().get(index).copied()
    }
}

/// Cuts ranges into units of at most `unit_size` offsets, so that participants share a
/// few large partitions evenly.
pub fn units(ranges: &[ReadRange], unit_size: i64) -> Vec<ReadRange> {
    let unit_size = unit_size.max(1);
    let mut units = Vec::new();
    for range in ranges {
        let mut start = range.start;
        while start < range.end {
            let end = range.end.min(start.saturating_add(unit_size));
            units.push(ReadRange { partition: range.partition, start, end });
            start = end;
        }
    }
    units
}

/// Units for `participants` readers, in partition and offset order: about four per
/// participant, at least `min_unit_size` offsets each, and never more than `capacity`
/// (then a partition's ranges are merged into one covering range: more is read, and
/// PostgreSQL's filter, which re-checks every pushed clause, drops the extra rows).
/// `None` when even one unit per partition is more than `capacity`.
pub fn plan_units(ranges: &[ReadRange], participants: usize, min_unit_size: i64, capacity: usize) -> Option<Vec<ReadRange>> {
    let mut ranges = ranges.to_vec();
    ranges.sort_by_key(|r| (r.partition, r.start));
    let total: i64 = ranges.iter().map(|r| r.end - r.start).sum();
    let wanted_units = (participants.max(1) * 4) as i64;
    let unit_size = ((total + wanted_units - 1) / wanted_units).max(min_unit_size);
    let cut = units(&ranges, unit_size);
    if cut.len() <= capacity {
        return Some(cut);
    }
    let mut merged: Vec<ReadRange> = Vec::new();
    for range in ranges {
        match merged.last_mut() {
            Some(last) if last.partition == range.partition => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    if merged.len() > capacity {
        return None;
    }
    let cut = units(&merged, ((total + capacity as i64 - 1) / capacity as i64).max(unit_size));
    Some(if cut.len() <= capacity { cut } else { merged })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(partition: i32, start: i64, end: i64) -> ReadRange {
        ReadRange { partition, start, end }
    }

    #[test]
    fn every_unit_is_claimed_once_across_threads() {
        let units: Vec<ReadRange> = (0..1000).map(|i| range(i % 7, i as i64 * 10, i as i64 * 10 + 10)).collect();
        let mut memory = vec![0u64; WorkQueue::size_for(QUEUE_CAPACITY) / 8 + 1];
        // SAFETY: the buffer is large enough and 8-byte aligned.
        let queue = unsafe { WorkQueue::init(memory.as_mut_ptr() as *mut u8, QUEUE_CAPACITY, &units, 4) };
        assert_eq!(queue.window(), 250, "each of 4 participants reads a quarter at once");
        let claimed: Vec<Vec<ReadRange>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        while let Some(unit) = queue.claim() {
                            mine.push(unit);
                        }
                        mine
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let mut all: Vec<ReadRange> = claimed.into_iter().flatten().collect();
        all.sort_by_key(|r| r.start);
        assert_eq!(all, units);
        assert_eq!(queue.claim(), None);
    }

    #[test]
    fn units_split_large_ranges_and_cover_them_exactly() {
        let ranges = [range(0, 0, 10), range(1, 5, 6), range(2, 100, 125)];
        assert_eq!(
            units(&ranges, 10),
            vec![range(0, 0, 10), range(1, 5, 6), range(2, 100, 110), range(2, 110, 120), range(2, 120, 125)]
        );
        // Four partitions, three participants: about four units each.
        let planned = plan_units(&[range(3, 0, 1200), range(1, 0, 1200), range(2, 0, 1200), range(0, 0, 1200)], 3, 1, 100).unwrap();
        assert_eq!(planned.len(), 12);
        // In partition and offset order, whatever order the ranges came in: a
        // participant adds a partition's units to its reader in offset order.
        assert!(planned.windows(2).all(|w| (w[0].partition, w[0].start) < (w[1].partition, w[1].start)));
        assert_eq!(planned.iter().map(|r| r.end - r.start).sum::<i64>(), 4800);
    }

    #[test]
    fn too_many_units_are_merged_per_partition() {
        let ranges: Vec<ReadRange> = (0..50).map(|i| range(i % 2, i as i64 * 10, i as i64 * 10 + 1)).collect();
        let planned = plan_units(&ranges, 2, 1, 8).unwrap();
        assert!(planned.len() <= 8);
        // Every wanted offset is still covered.
        for wanted in &ranges {
            assert!(planned.iter().any(|u| u.partition == wanted.partition && u.start <= wanted.start && wanted.end <= u.end));
        }
    }

    #[test]
    fn more_partitions_than_the_queue_holds_cannot_be_shared() {
        let ranges: Vec<ReadRange> = (0..9).map(|p| range(p, 0, 100)).collect();
        assert_eq!(plan_units(&ranges, 2, 1, 8), None);
        assert_eq!(plan_units(&ranges[..8], 2, 1, 8).map(|u| u.len()), Some(8));
    }
}
