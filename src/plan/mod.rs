//! From WHERE clauses on the partition and offset columns to the offset ranges a scan
//! reads.
//!
//! The planner glue turns each usable clause into a [`Condition`] whose values are slots
//! (expressions evaluated when the scan starts, so prepared-statement and nested-loop
//! parameters count), and anything else into [`Condition::Unrestricted`]. At execution
//! the slots are bound to values and [`read_ranges`] intersects the result with each
//! partition's watermarks. Because an unusable clause reads everything, an OR arm that
//! can't be pushed widens the read instead of dropping rows; PostgreSQL re-checks every
//! clause on the rows that come back, so the answer is always exactly that of a full
//! scan followed by the filter.

pub mod changes;
pub mod parallel;
pub mod progress;
pub mod sample;
pub mod schedule;
pub mod stats;

use crate::kafka::{ReadRange, Watermarks};

/// A comparison of a meta column with a value: `column <op> value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    /// The operator with its operands swapped: `value < column` is `column > value`.
    pub fn commuted(self) -> Cmp {
        match self {
            Cmp::Eq => Cmp::Eq,
            Cmp::Lt => Cmp::Gt,
            Cmp::Le => Cmp::Ge,
            Cmp::Gt => Cmp::Lt,
            Cmp::Ge => Cmp::Le,
        }
    }

    pub fn from_operator(name: &str) -> Option<Cmp> {
        Some(match name {
            "=" => Cmp::Eq,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            ">=" => Cmp::Ge,
            _ => return None,
        })
    }

    /// The values `x` with `x <op> value`, as a half-open range.
    fn range(self, value: i64) -> Span {
        let next = value.checked_add(1);
        match self {
            Cmp::Eq => Span { start: value, end: next.unwrap_or(i64::MAX) },
            Cmp::Lt => Span { start: i64::MIN, end: value },
            Cmp::Le => Span { start: i64::MIN, end: next.unwrap_or(i64::MAX) },
            Cmp::Gt => Span { start: next.unwrap_or(i64::MAX), end: i64::MAX },
            Cmp::Ge => Span { start: value, end: i64::MAX },
        }
    }
}

/// Which meta column a condition is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Partition,
    Offset,
    /// The message timestamp; values are PostgreSQL timestamptz (microseconds since
    /// 2000-01-01 UTC), Kafka's are milliseconds since 1970.
    Timestamp,
    /// The message's topic, in a table over several: only `=` and `= ANY`, with text
    /// values. [`Condition::for_topic`] decides them for each topic read; anywhere else
    /// they restrict nothing.
    Topic,
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
pub const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// How timestamp conditions become offsets.
#[derive(Clone, Copy)]
pub enum Timestamps<'a> {
    /// No lookups (plan-time estimates, partition selection): timestamp conditions
    /// restrict nothing.
    Unknown,
    /// The broker's time index, as already looked up for every threshold the condition
    /// needs (see [`timestamp_thresholds`]).
    Indexed {
        /// Whether timestamps never decrease within a partition. Only then does an upper
        /// bound end a read: otherwise a later message may still be older.
        ordered: bool,
        /// The first offset of a partition whose timestamp is at or after a Unix time
        /// in milliseconds; `None` when there is no such message.
        first_at_or_after: &'a dyn Fn(i32, i64) -> Option<i64>,
    },
}

/// Kafka's Unix millisecond bounds of a timestamptz (microseconds since 2000-01-01):
/// (floor, ceiling).
pub fn millisecond_bounds(postgres_micros: i64) -> (i64, i64) {
    let unix = postgres_micros.saturating_add(POSTGRES_EPOCH_UNIX_MICROS);
    let floor = unix.div_euclid(1000);
    (floor, if unix.rem_euclid(1000) == 0 { floor } else { floor + 1 })
}

/// What decides `timestamp <cmp> value` in Kafka's whole-millisecond timestamps: the
/// Unix milliseconds whose first offsets ("at or after") bound the matching messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Threshold {
    /// The messages from the first one at or after this millisecond on.
    From(i64),
    /// The messages before the first one at or after this millisecond.
    Before(i64),
    /// The messages of one millisecond: from the first at or after the first value,
    /// before the first at or after the second.
    Within(i64, i64),
    /// A value between two milliseconds equals no Kafka timestamp.
    Nothing,
}

impl Threshold {
    /// `value` is a timestamptz.
    fn of(cmp: Cmp, value: i64) -> Threshold {
        let (floor, ceiling) = millisecond_bounds(value);
        match cmp {
            Cmp::Ge => Threshold::From(ceiling),
            Cmp::Gt => Threshold::From(floor.saturating_add(1)),
            Cmp::Lt => Threshold::Before(ceiling),
            Cmp::Le => Threshold::Before(floor.saturating_add(1)),
            Cmp::Eq if floor == ceiling => Threshold::Within(floor, floor.saturating_add(1)),
            Cmp::Eq => Threshold::Nothing,
        }
    }

    fn milliseconds(self) -> Vec<i64> {
        match self {
            Threshold::From(ms) | Threshold::Before(ms) => vec![ms],
            Threshold::Within(from, before) => vec![from, before],
            Threshold::Nothing => Vec::new(),
        }
    }
}

/// The Unix millisecond thresholds whose first offsets the condition's timestamp
/// comparisons need.
pub fn timestamp_thresholds(condition: &Condition<Value>) -> Vec<i64> {
    fn collect(condition: &Condition<Value>, out: &mut Vec<i64>) {
        match condition {
            Condition::Compare(Column::Timestamp, cmp, Value::Scalar(Some(value))) => {
                out.extend(Threshold::of(*cmp, *value).milliseconds())
            }
            Condition::AnyOf(Column::Timestamp, values) => {
                out.extend(values.candidates().into_iter().flat_map(|value| Threshold::of(Cmp::Eq, value).milliseconds()))
            }
            Condition::All(parts) | Condition::Any(parts) => parts.iter().for_each(|p| collect(p, out)),
            _ => {}
        }
    }
    let mut thresholds = Vec::new();
    collect(condition, &mut thresholds);
    thresholds.sort_unstable();
    thresholds.dedup();
    thresholds
}

/// A restriction on the partition and offset columns. `V` is a value slot in a plan
/// template, and the value itself once bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition<V> {
    /// A clause that says nothing usable: every offset may match.
    Unrestricted,
    /// `column <op> value`.
    Compare(Column, Cmp, V),
    /// `column = ANY(values)`, which is also how `IN (…)` arrives.
    AnyOf(Column, V),
    All(Vec<Condition<V>>),
    Any(Vec<Condition<V>>),
}

/// A value bound to a slot at execution time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A scalar; `None` is SQL NULL, which no row equals or compares with.
    Scalar(Option<i64>),
    /// An array for `= ANY`; NULL elements match nothing and are left out.
    List(Vec<i64>),
    /// A topic name; `None` is SQL NULL.
    Text(Option<String>),
    /// Topic names for `= ANY`, NULLs left out.
    Texts(Vec<String>),
}

impl Value {
    /// The values `= ANY` compares with: a list's, or a scalar's (none for NULL).
    fn candidates(&self) -> Vec<i64> {
        match self {
            Value::List(list) => list.clone(),
            Value::Scalar(value) => value.iter().copied().collect(),
            Value::Text(_) | Value::Texts(_) => Vec::new(),
        }
    }

    /// Whether a topic condition's value names `topic`.
    fn names(&self, topic: &str) -> bool {
        match self {
            Value::Text(name) => name.as_deref() == Some(topic),
            Value::Texts(names) => names.iter().any(|name| name == topic),
            Value::Scalar(_) | Value::List(_) => false,
        }
    }
}

impl Condition<Value> {
    /// The condition for the messages of `topic`: each topic comparison decided, true or
    /// false, so that a topic the condition excludes selects no offset at all, and
    /// `(topic = 'a' AND partition = 0) OR topic = 'b'` reads partition 0 of `a`, all of
    /// `b`.
    pub fn for_topic(&self, topic: &str) -> Condition<Value> {
        let decided = |selected: bool| if selected { Condition::Unrestricted } else { Condition::nothing() };
        match self {
            Condition::Compare(Column::Topic, Cmp::Eq, value) | Condition::AnyOf(Column::Topic, value) => decided(value.names(topic)),
            Condition::Compare(Column::Topic, _, _) => Condition::Unrestricted,
            Condition::All(parts) => Condition::All(parts.iter().map(|p| p.for_topic(topic)).collect()),
            Condition::Any(parts) => Condition::Any(parts.iter().map(|p| p.for_topic(topic)).collect()),
            other => other.clone(),
        }
    }
}

impl<V> Condition<V> {
    /// A condition no message satisfies: an empty disjunction.
    fn nothing() -> Condition<V> {
        Condition::Any(Vec::new())
    }

    /// Whether no message satisfies the condition, whatever its partition and offset: a
    /// topic it rules out (see [`Condition::for_topic`]).
    pub fn selects_nothing(&self) -> bool {
        match self {
            Condition::Any(parts) => parts.iter().all(Condition::selects_nothing),
            Condition::All(parts) => parts.iter().any(Condition::selects_nothing),
            _ => false,
        }
    }

    /// True when the condition cannot narrow the read at all.
    pub fn is_unrestricted(&self) -> bool {
        matches!(self, Condition::Unrestricted)
    }

    /// The conjunction of `parts`, simplified.
    pub fn all(parts: Vec<Condition<V>>) -> Condition<V> {
        let mut parts: Vec<Condition<V>> = parts.into_iter().filter(|c| !c.is_unrestricted()).collect();
        match parts.len() {
            0 => Condition::Unrestricted,
            1 => parts.pop().expect("one element"),
            _ => Condition::All(parts),
        }
    }

    /// The disjunction of `parts`, simplified: one unrestricted arm makes all of it so.
    pub fn any(mut parts: Vec<Condition<V>>) -> Condition<V> {
        if parts.is_empty() || parts.iter().any(Condition::is_unrestricted) {
            return Condition::Unrestricted;
        }
        if parts.len() == 1 {
            return parts.pop().expect("one element");
        }
        Condition::Any(parts)
    }

    /// Replaces each slot with what `bind` gives for it.
    pub fn bind<W>(&self, bind: &mut impl FnMut(&V) -> W) -> Condition<W> {
        match self {
            Condition::Unrestricted => Condition::Unrestricted,
            Condition::Compare(column, cmp, v) => Condition::Compare(*column, *cmp, bind(v)),
            Condition::AnyOf(column, v) => Condition::AnyOf(*column, bind(v)),
            Condition::All(parts) => Condition::All(parts.iter().map(|p| p.bind(bind)).collect()),
            Condition::Any(parts) => Condition::Any(parts.iter().map(|p| p.bind(bind)).collect()),
        }
    }
}

impl Condition<usize> {
    /// Binds the slots whose value is known now (`value` gives `Some`); a comparison with
    /// an unknown value restricts nothing. For estimates at plan time.
    pub fn bind_known(&self, value: &mut impl FnMut(usize) -> Option<Value>) -> Condition<Value> {
        match self {
            Condition::Unrestricted => Condition::Unrestricted,
            Condition::Compare(column, cmp, slot) => match value(*slot) {
                Some(v) => Condition::Compare(*column, *cmp, v),
                None => Condition::Unrestricted,
            },
            Condition::AnyOf(column, slot) => match value(*slot) {
                Some(v) => Condition::AnyOf(*column, v),
                None => Condition::Unrestricted,
            },
            Condition::All(parts) => Condition::all(parts.iter().map(|p| p.bind_known(value)).collect()),
            Condition::Any(parts) => Condition::any(parts.iter().map(|p| p.bind_known(value)).collect()),
        }
    }
}

/// The partitions (of `partitions`) in which `condition` may select anything, so only
/// their watermarks need fetching.
pub fn selected_partitions(condition: &Condition<Value>, partitions: &[i32]) -> Vec<i32> {
    partitions.iter().copied().filter(|&p| !offsets_of(condition, p, Timestamps::Unknown).0.is_empty()).collect()
}

/// A half-open span `[start, end)` of i64 values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: i64,
    end: i64,
}

/// A set of i64 values as sorted, disjoint, non-adjacent spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanSet(Vec<Span>);

impl SpanSet {
    fn empty() -> Self {
        SpanSet(Vec::new())
    }

    fn everything() -> Self {
        SpanSet(vec![Span { start: i64::MIN, end: i64::MAX }])
    }

    fn from_spans(mut spans: Vec<Span>) -> Self {
        spans.retain(|s| s.start < s.end);
        spans.sort_by_key(|s| s.start);
        let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
        for span in spans {
            match merged.last_mut() {
                Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
                _ => merged.push(span),
            }
        }
        SpanSet(merged)
    }

    fn union(&self, other: &SpanSet) -> SpanSet {
        SpanSet::from_spans(self.0.iter().chain(&other.0).copied().collect())
    }

    fn intersection(&self, other: &SpanSet) -> SpanSet {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let span = Span { start: a.start.max(b.start), end: a.end.min(b.end) };
            if span.start < span.end {
                out.push(span);
            }
            if a.end < b.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        SpanSet(out)
    }

    fn contains(&self, value: i64) -> bool {
        self.0.iter().any(|s| s.start <= value && value < s.end)
    }
}

/// The offsets of `partition` that `condition` may select.
fn offsets_of(condition: &Condition<Value>, partition: i32, timestamps: Timestamps<'_>) -> SpanSet {
    match condition {
        Condition::Unrestricted => SpanSet::everything(),
        // Decided per topic before (Condition::for_topic), if at all.
        Condition::Compare(Column::Topic, _, _) | Condition::AnyOf(Column::Topic, _) => SpanSet::everything(),
        Condition::Compare(Column::Timestamp, cmp, value) => {
            let Value::Scalar(Some(value)) = value else { return SpanSet::empty() };
            timestamp_offsets(*cmp, *value, partition, timestamps)
        }
        Condition::Compare(column, cmp, value) => {
            let Value::Scalar(Some(value)) = value else { return SpanSet::empty() };
            restrict(*column, SpanSet(vec![cmp.range(*value)]), partition)
        }
        Condition::AnyOf(column, value) => {
            let values = value.candidates();
            if *column == Column::Timestamp {
                let each = values.iter().map(|&v| timestamp_offsets(Cmp::Eq, v, partition, timestamps));
                return each.fold(SpanSet::empty(), |acc, spans| acc.union(&spans));
            }
            let spans = SpanSet::from_spans(values.iter().map(|&v| Cmp::Eq.range(v)).collect());
            restrict(*column, spans, partition)
        }
        Condition::All(parts) => parts
            .iter()
            .fold(SpanSet::everything(), |acc, part| acc.intersection(&offsets_of(part, partition, timestamps))),
        Condition::Any(parts) => {
            parts.iter().fold(SpanSet::empty(), |acc, part| acc.union(&offsets_of(part, partition, timestamps)))
        }
    }
}

/// Offsets allowed by a condition on the partition or offset column whose true values
/// are `values`.
fn restrict(column: Column, values: SpanSet, partition: i32) -> SpanSet {
    match column {
        Column::Offset => values,
        Column::Partition if values.contains(partition as i64) => SpanSet::everything(),
        Column::Partition | Column::Timestamp => SpanSet::empty(),
        Column::Topic => SpanSet::everything(),
    }
}

/// Offsets of `partition` whose timestamp may satisfy `timestamp <cmp> value`.
fn timestamp_offsets(cmp: Cmp, value: i64, partition: i32, timestamps: Timestamps<'_>) -> SpanSet {
    let Timestamps::Indexed { ordered, first_at_or_after } = timestamps else {
        return SpanSet::everything();
    };
    let first = |ms: i64| first_at_or_after(partition, ms).unwrap_or(i64::MAX);
    // Every message from the first one at or after `ms` on; with no such message, none.
    let from = |ms: i64| SpanSet(vec![Span { start: first(ms), end: i64::MAX }]);
    // Every message before the first one at or after `ms`: exact only when ordered.
    let before = |ms: i64| if ordered { SpanSet(vec![Span { start: i64::MIN, end: first(ms) }]) } else { SpanSet::everything() };
    let spans = match Threshold::of(cmp, value) {
        Threshold::From(ms) => from(ms),
        Threshold::Before(ms) => before(ms),
        Threshold::Within(start, end) => from(start).intersection(&before(end)),
        Threshold::Nothing => SpanSet::empty(),
    };
    SpanSet::from_spans(spans.0)
}

/// The ranges to read: what `condition` allows of each partition, inside its watermarks
/// `[low, high)`. Partitions with nothing to read are left out.
pub fn read_ranges(condition: &Condition<Value>, watermarks: &[Watermarks], timestamps: Timestamps<'_>) -> Vec<ReadRange> {
    let mut ranges = Vec::new();
    for marks in watermarks {
        let present = SpanSet(vec![Span { start: marks.low, end: marks.high }]);
        let wanted = offsets_of(condition, marks.partition, timestamps).intersection(&present);
        ranges.extend(wanted.0.iter().map(|span| ReadRange {
            partition: marks.partition,
            start: span.start,
            end: span.end,
        }));
    }
    ranges
}

/// Serializes a plan template to integers, so it can travel in a plan's `fdw_private`.
pub fn encode(condition: &Condition<usize>) -> Vec<i32> {
    let mut out = Vec::new();
    encode_into(condition, &mut out);
    out
}

const TAG_UNRESTRICTED: i32 = 0;
const TAG_COMPARE: i32 = 1;
const TAG_ANY_OF: i32 = 2;
const TAG_ALL: i32 = 3;
const TAG_ANY: i32 = 4;

fn column_code(column: Column) -> i32 {
    match column {
        Column::Partition => 0,
        Column::Offset => 1,
        Column::Timestamp => 2,
        Column::Topic => 3,
    }
}

fn cmp_code(cmp: Cmp) -> i32 {
    match cmp {
        Cmp::Eq => 0,
        Cmp::Lt => 1,
        Cmp::Le => 2,
        Cmp::Gt => 3,
        Cmp::Ge => 4,
    }
}

fn encode_into(condition: &Condition<usize>, out: &mut Vec<i32>) {
    match condition {
        Condition::Unrestricted => out.push(TAG_UNRESTRICTED),
        Condition::Compare(column, cmp, slot) => {
            out.extend([TAG_COMPARE, column_code(*column), cmp_code(*cmp), *slot as i32])
        }
        Condition::AnyOf(column, slot) => out.extend([TAG_ANY_OF, column_code(*column), *slot as i32]),
        Condition::All(parts) | Condition::Any(parts) => {
            let tag = if matches!(condition, Condition::All(_)) { TAG_ALL } else { TAG_ANY };
            out.extend([tag, parts.len() as i32]);
            for part in parts {
                encode_into(part, out);
            }
        }
    }
}

/// The inverse of [`encode`]. Panics on input `encode` did not make.
pub fn decode(encoded: &[i32]) -> Condition<usize> {
    let mut rest = encoded;
    let condition = decode_from(&mut rest);
    assert!(rest.is_empty(), "trailing data in an encoded plan");
    condition
}

fn decode_from(rest: &mut &[i32]) -> Condition<usize> {
    let mut next = || {
        let (first, tail) = rest.split_first().expect("truncated encoded plan");
        *rest = tail;
        *first
    };
    let column = |code: i32| [Column::Partition, Column::Offset, Column::Timestamp, Column::Topic][code as usize];
    match next() {
        TAG_UNRESTRICTED => Condition::Unrestricted,
        TAG_COMPARE => {
            let col = column(next());
            let cmp = [Cmp::Eq, Cmp::Lt, Cmp::Le, Cmp::Gt, Cmp::Ge][next() as usize];
            Condition::Compare(col, cmp, next() as usize)
        }
        TAG_ANY_OF => {
            let col = column(next());
            Condition::AnyOf(col, next() as usize)
        }
        tag @ (TAG_ALL | TAG_ANY) => {
            let count = next() as usize;
            let parts = (0..count).map(|_| decode_from(rest)).collect();
            if tag == TAG_ALL {
                Condition::All(parts)
            } else {
                Condition::Any(parts)
            }
        }
        tag => panic!("unknown tag {tag} in an encoded plan"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn plan_of(condition: &Condition<Value>, topic: &[Watermarks]) -> Vec<ReadRange> {
        read_ranges(condition, topic, Timestamps::Unknown)
    }

    fn marks(partitions: &[(i32, i64, i64)]) -> Vec<Watermarks> {
        partitions.iter().map(|&(partition, low, high)| Watermarks { partition, low, high }).collect()
    }

    fn cmp(column: Column, op: Cmp, value: i64) -> Condition<Value> {
        Condition::Compare(column, op, Value::Scalar(Some(value)))
    }

    fn range(partition: i32, start: i64, end: i64) -> ReadRange {
        ReadRange { partition, start, end }
    }

    #[test]
    fn the_reference_queries() {
        let topic = marks(&[(0, 0, 1250), (1, 0, 1250), (2, 0, 1250), (3, 0, 1250)]);
        // part = 0 AND offs > 1000
        let q1 = Condition::all(vec![cmp(Column::Partition, Cmp::Eq, 0), cmp(Column::Offset, Cmp::Gt, 1000)]);
        assert_eq!(plan_of(&q1, &topic), vec![range(0, 1001, 1250)]);
        // (part = 0 AND offs > 100) OR (part = 1 AND offs > 300) OR (part = 3 AND offs > 700)
        let q2 = Condition::any(vec![
            Condition::all(vec![cmp(Column::Partition, Cmp::Eq, 0), cmp(Column::Offset, Cmp::Gt, 100)]),
            Condition::all(vec![cmp(Column::Partition, Cmp::Eq, 1), cmp(Column::Offset, Cmp::Gt, 300)]),
            Condition::all(vec![cmp(Column::Partition, Cmp::Eq, 3), cmp(Column::Offset, Cmp::Gt, 700)]),
        ]);
        assert_eq!(plan_of(&q2, &topic), vec![range(0, 101, 1250), range(1, 301, 1250), range(3, 701, 1250)]);
    }

    #[test]
    fn contradictions_missing_partitions_and_offsets_past_the_end_read_nothing() {
        let topic = marks(&[(0, 0, 10), (1, 5, 10)]);
        let contradiction = Condition::all(vec![cmp(Column::Partition, Cmp::Eq, 0), cmp(Column::Partition, Cmp::Eq, 1)]);
        assert!(plan_of(&contradiction, &topic).is_empty());
        assert!(plan_of(&cmp(Column::Partition, Cmp::Eq, 7), &topic).is_empty());
        assert!(plan_of(&cmp(Column::Offset, Cmp::Ge, 10), &topic).is_empty());
        // Below the low watermark there is nothing either.
        assert_eq!(plan_of(&cmp(Column::Offset, Cmp::Lt, 6), &topic), vec![range(0, 0, 6), range(1, 5, 6)]);
        let null = Condition::Compare(Column::Offset, Cmp::Eq, Value::Scalar(None));
        assert!(plan_of(&null, &topic).is_empty());
    }

    #[test]
    fn an_unpushable_or_arm_widens_the_read() {
        let topic = marks(&[(0, 0, 10), (1, 0, 10)]);
        let condition = Condition::any(vec![
            Condition::all(vec![cmp(Column::Partition, Cmp::Eq, 0), cmp(Column::Offset, Cmp::Gt, 5)]),
            Condition::Unrestricted,
        ]);
        assert_eq!(plan_of(&condition, &topic), vec![range(0, 0, 10), range(1, 0, 10)]);
    }

    #[test]
    fn in_lists_and_disjoint_offset_ranges() {
        let topic = marks(&[(0, 0, 100), (1, 0, 100), (2, 0, 100)]);
        let condition = Condition::all(vec![
            Condition::AnyOf(Column::Partition, Value::List(vec![2, 0, 9])),
            Condition::any(vec![
                Condition::AnyOf(Column::Offset, Value::List(vec![50, 3, 4, 5])),
                cmp(Column::Offset, Cmp::Ge, 98),
            ]),
        ]);
        assert_eq!(
            plan_of(&condition, &topic),
            vec![range(0, 3, 6), range(0, 50, 51), range(0, 98, 100), range(2, 3, 6), range(2, 50, 51), range(2, 98, 100)]
        );
        assert!(plan_of(&Condition::AnyOf(Column::Partition, Value::List(vec![])), &topic).is_empty());
    }

    #[test]
    fn only_selected_partitions_need_watermarks() {
        let condition = Condition::any(vec![cmp(Column::Partition, Cmp::Eq, 2), cmp(Column::Partition, Cmp::Ge, 7)]);
        assert_eq!(selected_partitions(&condition, &[0, 1, 2, 3, 7, 8]), vec![2, 7, 8]);
        assert_eq!(selected_partitions(&Condition::Unrestricted, &[0, 1]), vec![0, 1]);
    }

    #[test]
    fn unknown_values_restrict_nothing_in_estimates() {
        let template = Condition::All(vec![
            Condition::Compare(Column::Partition, Cmp::Eq, 0),
            Condition::Any(vec![Condition::Compare(Column::Offset, Cmp::Gt, 1), Condition::AnyOf(Column::Offset, 2)]),
        ]);
        let known = template.bind_known(&mut |slot| (slot != 2).then_some(Value::Scalar(Some(5))));
        assert_eq!(known, cmp(Column::Partition, Cmp::Eq, 5));
    }

    #[test]
    fn timestamp_bounds_use_the_time_index() {
        let topic = marks(&[(0, 0, 100)]);
        // Message o of partition 0 has timestamp 1_000_000 + 10 o ms.
        let index = |_: i32, ms: i64| (0..100).find(|&o| timestamp_ms(0, o) >= ms);
        let at = |ms: i64| ms * 1000 - POSTGRES_EPOCH_UNIX_MICROS;
        let lower = cmp(Column::Timestamp, Cmp::Ge, at(1_000_200));
        let upper = cmp(Column::Timestamp, Cmp::Lt, at(1_000_500));
        let both = Condition::all(vec![lower.clone(), upper.clone()]);
        let ordered = Timestamps::Indexed { ordered: true, first_at_or_after: &index };
        let unordered = Timestamps::Indexed { ordered: false, first_at_or_after: &index };
        assert_eq!(read_ranges(&both, &topic, ordered), vec![range(0, 20, 50)]);
        // Without order, a later message may be older: only the lower bound narrows.
        assert_eq!(read_ranges(&both, &topic, unordered), vec![range(0, 20, 100)]);
        assert_eq!(read_ranges(&both, &topic, Timestamps::Unknown), vec![range(0, 0, 100)]);
        // Past the newest message: nothing; a bound between milliseconds rounds inward.
        assert!(read_ranges(&cmp(Column::Timestamp, Cmp::Gt, at(2_000_000)), &topic, ordered).is_empty());
        assert_eq!(read_ranges(&cmp(Column::Timestamp, Cmp::Gt, at(1_000_200) + 1), &topic, ordered), vec![range(0, 21, 100)]);
        assert!(read_ranges(&cmp(Column::Timestamp, Cmp::Eq, at(1_000_200) + 1), &topic, ordered).is_empty());
        assert_eq!(read_ranges(&cmp(Column::Timestamp, Cmp::Eq, at(1_000_200)), &topic, ordered), vec![range(0, 20, 21)]);
        assert_eq!(timestamp_thresholds(&both), vec![1_000_200, 1_000_500]);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let topic = marks(&[(0, 0, 10)]);
        assert!(plan_of(&cmp(Column::Offset, Cmp::Gt, i64::MAX), &topic).is_empty());
        assert_eq!(plan_of(&cmp(Column::Offset, Cmp::Le, i64::MAX), &topic), vec![range(0, 0, 10)]);
        assert!(plan_of(&cmp(Column::Offset, Cmp::Lt, i64::MIN), &topic).is_empty());
        assert_eq!(plan_of(&cmp(Column::Partition, Cmp::Gt, i64::MIN), &topic), vec![range(0, 0, 10)]);
    }

    #[test]
    fn topic_conditions_are_decided_per_topic() {
        let topic_is = |name: &str| Condition::Compare(Column::Topic, Cmp::Eq, Value::Text(Some(name.into())));
        let condition = Condition::Any(vec![Condition::All(vec![topic_is("a"), cmp(Column::Partition, Cmp::Eq, 0)]), topic_is("b")]);
        let topic = marks(&[(0, 0, 10), (1, 0, 10)]);
        assert_eq!(plan_of(&condition.for_topic("a"), &topic), vec![range(0, 0, 10)]);
        assert_eq!(plan_of(&condition.for_topic("b"), &topic), vec![range(0, 0, 10), range(1, 0, 10)]);
        assert!(plan_of(&condition.for_topic("c"), &topic).is_empty());
        assert!(condition.for_topic("c").selects_nothing() && !condition.for_topic("a").selects_nothing());
        let listed = Condition::AnyOf(Column::Topic, Value::Texts(vec!["a".into(), "c".into()]));
        assert!(plan_of(&listed.for_topic("b"), &topic).is_empty());
        assert_eq!(plan_of(&listed.for_topic("c"), &topic).len(), 2);
        // NULL names no topic; a topic condition not decided for a topic reads everything.
        assert!(plan_of(&Condition::Compare(Column::Topic, Cmp::Eq, Value::Text(None)).for_topic("a"), &topic).is_empty());
        assert_eq!(plan_of(&listed, &topic).len(), 2);
        let template = Condition::All(vec![Condition::Compare(Column::Topic, Cmp::Eq, 0), Condition::AnyOf(Column::Topic, 1)]);
        assert_eq!(decode(&encode(&template)), template);
    }

    /// The synthetic topic's message timestamps: increasing within each partition.
    fn timestamp_ms(partition: i32, offset: i64) -> i64 {
        1_000_000 + 1000 * partition as i64 + 10 * offset
    }

    fn truth(condition: &Condition<Value>, partition: i64, offset: i64) -> bool {
        let holds = |column: &Column, op: &Cmp, value: i64| {
            let x = match column {
                Column::Partition => partition,
                Column::Offset => offset,
                // Compare in PostgreSQL microseconds, as the database does.
                Column::Timestamp => timestamp_ms(partition as i32, offset) * 1000 - POSTGRES_EPOCH_UNIX_MICROS,
                Column::Topic => unreachable!("the generated conditions have no topic"),
            };
            match op {
                Cmp::Eq => x == value,
                Cmp::Lt => x < value,
                Cmp::Le => x <= value,
                Cmp::Gt => x > value,
                Cmp::Ge => x >= value,
            }
        };
        match condition {
            Condition::Unrestricted => true,
            Condition::Compare(column, op, Value::Scalar(Some(v))) => holds(column, op, *v),
            Condition::Compare(_, _, _) => false,
            Condition::AnyOf(column, Value::List(list)) => list.iter().any(|v| holds(column, &Cmp::Eq, *v)),
            Condition::AnyOf(column, Value::Scalar(v)) => v.is_some_and(|v| holds(column, &Cmp::Eq, v)),
            Condition::AnyOf(_, Value::Text(_) | Value::Texts(_)) => unreachable!("the generated conditions have no topic"),
            Condition::All(parts) => parts.iter().all(|p| truth(p, partition, offset)),
            Condition::Any(parts) => parts.iter().any(|p| truth(p, partition, offset)),
        }
    }

    /// Whether `condition` mentions an unusable clause anywhere.
    fn has_unrestricted(condition: &Condition<Value>) -> bool {
        match condition {
            Condition::Unrestricted => true,
            Condition::All(parts) | Condition::Any(parts) => parts.iter().any(has_unrestricted),
            _ => false,
        }
    }

    fn arbitrary_condition() -> impl Strategy<Value = Condition<Value>> {
        let column = prop_oneof![Just(Column::Partition), Just(Column::Offset)];
        let op = prop_oneof![Just(Cmp::Eq), Just(Cmp::Lt), Just(Cmp::Le), Just(Cmp::Gt), Just(Cmp::Ge)];
        // Timestamps near the synthetic topic's, sometimes between two milliseconds.
        let timestamp = (999_980i64..1_003_200, prop_oneof![3 => Just(0i64), 1 => 1i64..1000])
            .prop_map(|(ms, micros)| ms * 1000 + micros - POSTGRES_EPOCH_UNIX_MICROS);
        let leaf = prop_oneof![
            1 => Just(Condition::Unrestricted),
            6 => (column.clone(), op.clone(), prop::option::weighted(0.95, -2i64..14))
                .prop_map(|(c, o, v)| Condition::Compare(c, o, Value::Scalar(v))),
            3 => (op, timestamp).prop_map(|(o, v)| Condition::Compare(Column::Timestamp, o, Value::Scalar(Some(v)))),
            2 => (column, prop::collection::vec(-2i64..14, 0..4)).prop_map(|(c, l)| Condition::AnyOf(c, Value::List(l))),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Condition::All),
                prop::collection::vec(inner, 0..4).prop_map(Condition::Any),
            ]
        })
    }

    proptest! {
        /// The plan reads every (partition, offset) the condition selects, and, when every
        /// clause was usable, nothing else; offsets are never read twice.
        #[test]
        fn plans_match_full_scan_then_filter(condition in arbitrary_condition(), ordered in any::<bool>()) {
            let topic = marks(&[(0, 0, 10), (1, 3, 12), (2, 0, 0), (3, 5, 6)]);
            // The broker's time index: the first offset at or after a time, if any.
            let index = |partition: i32, ms: i64| {
                let w = topic.iter().find(|w| w.partition == partition).unwrap();
                (w.low..w.high).find(|&o| timestamp_ms(partition, o) >= ms)
            };
            let ranges = read_ranges(&condition, &topic, Timestamps::Indexed { ordered, first_at_or_after: &index });
            // Unordered timestamps make upper bounds unusable: then the plan need only
            // cover the answer.
            let exact = !has_unrestricted(&condition) && ordered;
            for w in &topic {
                for offset in w.low..w.high {
                    let reads = ranges.iter().filter(|r| r.partition == w.partition && r.start <= offset && offset < r.end).count();
                    prop_assert!(reads <= 1);
                    let selected = truth(&condition, w.partition as i64, offset);
                    if selected {
                        prop_assert_eq!(reads, 1, "misses partition {} offset {}", w.partition, offset);
                    } else if exact {
                        prop_assert_eq!(reads, 0, "needlessly reads partition {} offset {}", w.partition, offset);
                    }
                }
            }
            for r in &ranges {
                let w = topic.iter().find(|w| w.partition == r.partition).unwrap();
                prop_assert!(w.low <= r.start && r.start < r.end && r.end <= w.high);
            }
        }

        #[test]
        fn templates_survive_encoding(condition in arbitrary_condition()) {
            let mut slot = 0;
            let template = condition.bind(&mut |_| { slot += 1; slot });
            prop_assert_eq!(decode(&encode(&template)), template);
        }
    }
}
