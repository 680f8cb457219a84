//! Planner and executor callbacks of a foreign scan.
//!
//! Planning turns the partition/offset clauses into a template (`plan::Condition`) whose
//! values are expressions (`fdw_exprs`); estimates come from the topic's watermarks.
//! Execution evaluates the values when the scan starts or restarts, takes the high
//! watermarks once per scan, and reads exactly the resulting offset ranges.

use std::cell::RefCell;
use std::rc::Rc;
use std::collections::{BTreeMap, HashMap};
use std::ffi::{c_int, c_void, CString};
use std::time::{Duration, Instant};

use pgrx::{pg_guard, pg_sys, PgList, PgMemoryContexts};
use rdkafka::Message;

use crate::pg::catalog::{self, ForeignTableDef};
use crate::pg::compat;
use crate::pg::row_errors::{self, MessageAt};
use crate::pg::stats;
use crate::options::topics::Topics;
use crate::pg::clients::{self, PooledConsumer, TopicClient};
use crate::error::{ErrorKind, FdwError, FdwResult};
use crate::kafka::{self, Backwards, RangeReader, ReadRange, Watermarks};
use crate::options::MppExecute;
use crate::plan::parallel::{self, WorkQueue};
use crate::plan::stats::TableCounters;
use crate::pg::errors::OrRaise;
use crate::plan::{self, Column, Condition, Timestamps, Value};
use super::pushdown::{self, Classified, MetaColumns, SlotValue};
use super::private::{planned_table, PlannedTable, ScanOrder, ScanPrivate, WHOLE_ROW};
use super::row::{self, Outcome, RowBuilder};

/// Per-row cost on top of PostgreSQL's tuple cost: fetching and decoding a message.
const MESSAGE_COST: f64 = 0.02;
/// Cost of starting a scan with a pooled client: metadata and watermark round trips.
const STARTUP_COST: f64 = 25.0;
/// The smallest unit of a parallel scan, in messages: smaller ones cost more seeks than
/// they save.
const MIN_UNIT_MESSAGES: i64 = 10_000;

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_rel_size(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    foreigntableid: pg_sys::Oid,
) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let planned = planned_table(baserel, foreigntableid);
        let definition = &planned.definition;
        let condition = planning_condition(root, baserel, planned);

        // Estimates come from the watermarks, so joins with Kafka tables plan sensibly.
        let (mut messages, mut to_read) = (0, 0);
        for (topic, marks) in estimate_topics(definition) {
            messages += marks.iter().map(|w| w.high - w.low).sum::<i64>();
            let ranges = plan::read_ranges(&condition.for_topic(&topic), &marks, Timestamps::Unknown);
            to_read += ranges.iter().map(|r| r.end - r.start).sum::<i64>();
        }

        // Clauses the ranges don't cover still filter what is read.
        let mut unpushed = PgList::<pg_sys::RestrictInfo>::new();
        for rinfo in PgList::<pg_sys::RestrictInfo>::from_pg((*baserel).baserestrictinfo).iter_ptr() {
            if planned.clause(root, baserel, rinfo).condition.is_unrestricted() {
                unpushed.push(rinfo);
            }
        }
        let selectivity = pg_sys::clauselist_selectivity(
            root,
            unpushed.as_ptr(),
            (*baserel).relid as c_int,
            pg_sys::JoinType::JOIN_INNER,
            std::ptr::null_mut(),
        );
        (*baserel).tuples = messages as f64;
        (*baserel).rows = pg_sys::clamp_row_est(to_read as f64 * selectivity);
    }
}

/// The conditions of `baserel`'s restrictions on meta columns, with the values known
/// at planning time (estimates for parameters).
///
/// # Safety
/// `root` and `baserel` are the planner's, during the planning of the scan of `planned`.
unsafe fn planning_condition(root: *mut pg_sys::PlannerInfo, baserel: *mut pg_sys::RelOptInfo, planned: &PlannedTable) -> Condition<Value> {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let Classified { condition, values } = planned.clauses(root, baserel, (*baserel).baserestrictinfo);
        condition.bind_known(&mut |slot| pushdown::estimated_value(root, values[slot]))
    }
}

/// How long planning reuses a topic's watermarks for estimates. Execution always takes
/// fresh ones; estimates need only the topic's rough size.
const ESTIMATE_MAX_AGE: Duration = Duration::from_secs(10);

/// What planning asked the brokers, by server and topic (or pattern), with the time it
/// was asked.
type EstimateCache<T> = RefCell<HashMap<(pg_sys::Oid, String), (Instant, T)>>;

thread_local! {
    /// Watermarks for estimates by (server, topic).
    static ESTIMATE_WATERMARKS: EstimateCache<Vec<Watermarks>> = RefCell::new(HashMap::new());
    /// The topics a pattern matched, for estimates, by (server, pattern).
    static ESTIMATE_MATCHES: EstimateCache<Vec<String>> = RefCell::new(HashMap::new());
}

/// What the cache `cache` holds for `key` if it is at most [`ESTIMATE_MAX_AGE`] old, else
/// what `fetch` gives, kept.
fn fresh_or<T: Clone>(
    cache: &'static std::thread::LocalKey<EstimateCache<T>>,
    key: (pg_sys::Oid, String),
    fetch: impl FnOnce() -> T,
) -> T {
    let cached = cache.with_borrow(|cache| cache.get(&key).filter(|(taken, _)| taken.elapsed() < ESTIMATE_MAX_AGE).map(|(_, v)| v.clone()));
    cached.unwrap_or_else(|| {
        let value = fetch();
        cache.with_borrow_mut(|cache| cache.insert(key, (Instant::now(), value.clone())));
        value
    })
}

/// Watermarks of every partition of `topic`, one of the table's.
fn estimate_watermarks(definition: &ForeignTableDef, topic: &str) -> Vec<Watermarks> {
    fresh_or(&ESTIMATE_WATERMARKS, (definition.server_id, topic.to_string()), || {
        TopicClient::for_topic(definition, topic).all_watermarks()
    })
}

/// The table's topics with the watermarks of their partitions.
fn estimate_topics(definition: &ForeignTableDef) -> Vec<(String, Vec<Watermarks>)> {
    let topics = match &definition.table.topics {
        Topics::Pattern(pattern) => fresh_or(&ESTIMATE_MATCHES, (definition.server_id, pattern.source().to_string()), || {
            TopicClient::for_topic(definition, "").topics_of(definition)
        }),
        listed => listed.resolve(|| unreachable!("only a pattern is looked up")).or_raise(),
    };
    topics.into_iter().map(|topic| (topic.clone(), estimate_watermarks(definition, &topic))).collect()
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_paths(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    foreigntableid: pg_sys::Oid,
) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        add_scan_path(root, baserel, std::ptr::null_mut(), (*baserel).rows);
        let planned = planned_table(baserel, foreigntableid);
        let definition = &planned.definition;
        // A table over several topics reads them one after another, in no offset order.
        if let Some(topic) = definition.table.topics.single() {
            if (*baserel).consider_parallel {
                add_partial_scan_path(root, baserel, definition, topic);
            }
            add_offset_ordered_path(root, baserel, planned, topic);
        }

        // Join clauses on the meta columns (`k.part = v.p`) make parameterized paths: each
        // loop of a nested loop then reads only the partition or offsets asked for.
        let mut columns = MetaColumns::new(&definition.layout.columns);
        let mut clauses: Vec<*mut pg_sys::RestrictInfo> = PgList::<pg_sys::RestrictInfo>::from_pg((*baserel).joininfo)
            .iter_ptr()
            .filter(|&rinfo| pg_sys::join_clause_is_movable_to(rinfo, baserel))
            .collect();
        let implied = pg_sys::generate_implied_equalities_for_column(
            root,
            baserel,
            Some(pushdown::is_meta_column_member),
            &mut columns as *mut MetaColumns as *mut c_void,
            (*baserel).lateral_referencers,
        );
        clauses.extend(PgList::<pg_sys::RestrictInfo>::from_pg(implied).iter_ptr());
        let mut seen_outer: Vec<pg_sys::Relids> = Vec::new();
        for rinfo in clauses {
            if planned.clause(root, baserel, rinfo).condition.is_unrestricted() {
                continue;
            }
            let required_outer = pg_sys::bms_union(
                pg_sys::bms_difference((*rinfo).clause_relids, (*baserel).relids),
                (*baserel).lateral_relids,
            );
            if compat::bitmapset_is_empty(required_outer) || seen_outer.iter().any(|&s| pg_sys::bms_equal(s, required_outer)) {
                continue;
            }
            seen_outer.push(required_outer);
            let param_info = pg_sys::get_baserel_parampathinfo(root, baserel, required_outer);
            add_scan_path(root, baserel, required_outer, (*param_info).ppi_rows);
        }
    }
}

/// A scan of one partition can return its messages in offset order, either way: then
/// `ORDER BY offs [DESC] LIMIT n`, and `max(offs)`/`min(offs)` (which PostgreSQL plans as
/// such a LIMIT 1), read only the messages they return. Offered when the query wants
/// that order and its constant conditions select a single partition.
///
/// # Safety
/// As for [`planning_condition`].
unsafe fn add_offset_ordered_path(root: *mut pg_sys::PlannerInfo, baserel: *mut pg_sys::RelOptInfo, planned: &PlannedTable, topic: &str) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let wanted = PgList::<pg_sys::PathKey>::from_pg((*root).query_pathkeys);
        let (Some(pathkey), 1) = (wanted.get_ptr(0), wanted.len()) else { return };
        let definition = &planned.definition;
        let columns = MetaColumns::new(&definition.layout.columns);
        let members = PgList::<pg_sys::EquivalenceMember>::from_pg((*(*pathkey).pk_eclass).ec_members);
        let on_offset = members.iter_ptr().any(|member| {
            pushdown::is_meta_column(&columns, (*member).em_expr as *mut pg_sys::Node, (*baserel).relid, Column::Offset)
        });
        if !on_offset {
            return;
        }
        let descending = compat::pathkey_is_descending(pathkey);
        let condition = planning_condition(root, baserel, planned);
        let partitions: Vec<i32> = estimate_watermarks(definition, topic).iter().map(|w| w.partition).collect();
        if plan::selected_partitions(&condition, &partitions).len() > 1 {
            return;
        }
        let path = new_scan_path(root, baserel, std::ptr::null_mut(), (*baserel).rows);
        (*path).path.pathkeys = (*root).query_pathkeys;
        let order = if descending { ScanOrder::OffsetDescending } else { ScanOrder::OffsetAscending };
        (*path).fdw_private = order.to_list();
        pg_sys::add_path(baserel, path as *mut pg_sys::Path);
    }
}

/// A parallel path: workers share the partitions' ranges, up to one worker per
/// partition that has messages.
///
/// # Safety
/// As for [`planning_condition`].
unsafe fn add_partial_scan_path(root: *mut pg_sys::PlannerInfo, baserel: *mut pg_sys::RelOptInfo, definition: &ForeignTableDef, topic: &str) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let partitions_with_data = estimate_watermarks(definition, topic).iter().filter(|w| w.high > w.low).count();
        let workers = (pg_sys::max_parallel_workers_per_gather as usize).min(partitions_with_data);
        // The shared queue holds at least one unit per partition.
        if workers == 0 || partitions_with_data > parallel::QUEUE_CAPACITY {
            return;
        }
        // PostgreSQL's own share of work for the leader (see get_parallel_divisor).
        let leader_share = if pg_sys::parallel_leader_participation { (1.0 - 0.3 * workers as f64).max(0.0) } else { 0.0 };
        let rows = pg_sys::clamp_row_est((*baserel).rows / (workers as f64 + leader_share));
        let path = new_scan_path(root, baserel, std::ptr::null_mut(), rows);
        (*path).path.parallel_aware = true;
        (*path).path.parallel_safe = true;
        (*path).path.parallel_workers = workers as c_int;
        pg_sys::add_partial_path(baserel, path as *mut pg_sys::Path);
    }
}

/// # Safety
/// As for [`planning_condition`]; `required_outer` is NULL or a Relids set of this planning.
unsafe fn add_scan_path(root: *mut pg_sys::PlannerInfo, baserel: *mut pg_sys::RelOptInfo, required_outer: pg_sys::Relids, rows: f64) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let path = new_scan_path(root, baserel, required_outer, rows);
        pg_sys::add_path(baserel, path as *mut pg_sys::Path);
    }
}

/// # Safety
/// As for [`add_scan_path`].
unsafe fn new_scan_path(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    required_outer: pg_sys::Relids,
    rows: f64,
) -> *mut pg_sys::ForeignPath {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let total_cost = STARTUP_COST + rows * (pg_sys::cpu_tuple_cost + MESSAGE_COST);
        compat::create_foreignscan_path(
            root,
            baserel,
            std::ptr::null_mut(),
            rows,
            STARTUP_COST,
            total_cost,
            std::ptr::null_mut(),
            required_outer,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn get_foreign_plan(
    root: *mut pg_sys::PlannerInfo,
    baserel: *mut pg_sys::RelOptInfo,
    foreigntableid: pg_sys::Oid,
    best_path: *mut pg_sys::ForeignPath,
    tlist: *mut pg_sys::List,
    scan_clauses: *mut pg_sys::List,
    outer_plan: *mut pg_sys::Plan,
) -> *mut pg_sys::ForeignScan {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        // scan_clauses holds the restrictions and, for a parameterized path, its join
        // clauses. Every clause also stays a filter, so rows are always re-checked.
        let planned = planned_table(baserel, foreigntableid);
        let Classified { condition: template, values: value_exprs } = planned.clauses(root, baserel, scan_clauses);
        let mut values = PgList::<pg_sys::Expr>::new();
        for value in value_exprs {
            values.push(value);
        }
        let private = ScanPrivate {
            condition: plan::encode(&template),
            used_attributes: used_attributes(baserel),
            // The order the path promised.
            order: ScanOrder::from_list((*best_path).fdw_private),
        };
        pg_sys::make_foreignscan(
            tlist,
            pg_sys::extract_actual_clauses(scan_clauses, false),
            (*baserel).relid,
            values.into_pg(),
            private.to_list(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            outer_plan,
        )
    }
}

/// The attribute numbers the query reads (target list and quals).
///
/// # Safety
/// `baserel` is the planner's relation of a Kafka table scan, during planning.
unsafe fn used_attributes(baserel: *mut pg_sys::RelOptInfo) -> Vec<i32> {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let relid = (*baserel).relid;
        let mut attrs: *mut pg_sys::Bitmapset = std::ptr::null_mut();
        pg_sys::pull_varattnos((*(*baserel).reltarget).exprs as *mut pg_sys::Node, relid, &mut attrs);
        for restriction in PgList::<pg_sys::RestrictInfo>::from_pg((*baserel).baserestrictinfo).iter_ptr() {
            pg_sys::pull_varattnos((*restriction).clause as *mut pg_sys::Node, relid, &mut attrs);
        }
        let mut used = Vec::new();
        let mut member = -1;
        loop {
            member = pg_sys::bms_next_member(attrs, member);
            if member < 0 {
                break;
            }
            let attno = member + pg_sys::FirstLowInvalidHeapAttributeNumber;
            if attno >= WHOLE_ROW {
                used.push(attno);
            }
        }
        used
    }
}

/// What a running scan keeps between calls. Owned by the executor's query memory
/// context: if the query fails, deleting that context drops this, and the pooled client
/// goes back to the pool, even though `EndForeignScan` never runs after an ERROR.
struct ScanState {
    /// `None` once the client went back to the pool.
    reader: Option<RangeReader<PooledConsumer>>,
    /// The table's topics, as its options name them.
    table_topics: Topics,
    template: Condition<usize>,
    slots: Vec<SlotValue>,
    timestamps_ordered: bool,
    /// The topics read, with their partitions and watermarks as this scan first needed
    /// them: the end of every pass of this scan, rescans included. A pattern's topics are
    /// those it matched when the scan first needed them.
    topics: Option<Vec<TopicMarks>>,
    /// The ranges of the current pass, topic by topic; `None` until the pass is planned.
    pass: Option<Vec<TopicRanges>>,
    /// The topic of the pass being read (an index in `pass`).
    reading: usize,
    /// In a parallel scan, the units shared by all participants, in dynamic shared
    /// memory; `None` again once the scan is shut down and that memory is gone.
    queue: Option<*const WorkQueue>,
    /// How many units the parallel scan shared, kept for EXPLAIN after shutdown.
    parallel_units: Option<usize>,
    /// Returning one partition's messages by descending offset.
    backwards: Option<Backwards>,
    row: RowBuilder,
    /// Whether rows were asked for: the scan counts in the statistics then (EXPLAIN
    /// without ANALYZE asks for none).
    started: bool,
    /// What this scan adds to the table's statistics when it ends.
    counters: TableCounters,
    /// The topic of the last row returned, shared with the note of its message (see
    /// `row_errors::returned`): the table's one topic, or asked of each message.
    message_topic: Rc<str>,
    one_topic: bool,
}

/// The topic of `message`, a row of the scan whose `message_topic` and `one_topic` these
/// are, as an `Rc` made anew only when the topic changes from the last row's.
fn row_topic<M: Message>(last: &mut Rc<str>, one_topic: bool, message: &M) -> Rc<str> {
    if !one_topic && **last != *message.topic() {
        *last = Rc::from(message.topic());
    }
    last.clone()
}

/// A topic a scan reads: its partitions and the watermarks taken so far.
struct TopicMarks {
    name: Rc<str>,
    partitions: Option<Vec<i32>>,
    watermarks: BTreeMap<i32, Watermarks>,
}

/// The ranges a pass reads of one topic.
struct TopicRanges {
    topic: Rc<str>,
    ranges: Vec<ReadRange>,
}

impl ScanState {
    /// The ranges the slot values select of each topic the condition leaves, inside the
    /// watermarks of this scan.
    fn plan_pass(&mut self, values: Vec<Value>) -> FdwResult<Vec<TopicRanges>> {
        let condition = self.template.bind(&mut |slot: &usize| values[*slot].clone());
        let reader = self.reader.as_ref().expect("planned only while the reader is held");
        let topics = match &mut self.topics {
            Some(topics) => topics,
            None => {
                let names = clients::table_topics(&self.table_topics, reader.consumer(), reader.settings())?;
                let topics = names.into_iter().map(|name| TopicMarks { name: name.into(), partitions: None, watermarks: BTreeMap::new() });
                self.topics.insert(topics.collect())
            }
        };
        let mut pass = Vec::new();
        for topic in topics.iter_mut() {
            let condition = condition.for_topic(&topic.name);
            if condition.selects_nothing() {
                continue;
            }
            let ranges = topic_ranges(reader, topic, &condition, self.timestamps_ordered)?;
            pass.push(TopicRanges { topic: topic.name.clone(), ranges });
        }
        Ok(pass)
    }

    /// Plans the current pass of a serial scan from the slot values and starts reading.
    fn start_pass(&mut self, values: Vec<Value>) -> FdwResult<()> {
        let pass = self.plan_pass(values)?;
        let reader = self.reader.as_mut().expect("planned only while the reader is held");
        let first = pass.first().map_or(&[][..], |topic| &topic.ranges);
        match self.backwards.as_mut() {
            // Read later, a chunk at a time from the end (a table of one topic).
            Some(backwards) => backwards.start(first),
            None => match pass.first() {
                Some(topic) => reader.retarget(&topic.topic, first)?,
                None => reader.restart(&[])?,
            },
        }
        self.pass = Some(pass);
        self.reading = 0;
        Ok(())
    }

    /// Moves a serial scan on to the pass's next topic; false when there is none.
    fn next_topic(&mut self) -> FdwResult<bool> {
        let Some(pass) = &self.pass else { return Ok(false) };
        let Some(next) = pass.get(self.reading + 1) else { return Ok(false) };
        self.reading += 1;
        self.reader.as_mut().expect("read only while the reader is held").retarget(&next.topic, &next.ranges)?;
        Ok(true)
    }

    fn messages_fetched(&self) -> u64 {
        self.reader.as_ref().map_or(0, |r| r.messages_fetched)
    }
}

/// The ranges `condition` (decided for the topic) selects of `topic`, taking the
/// partitions and watermarks it needs that the scan has not taken yet.
fn topic_ranges(
    reader: &RangeReader<PooledConsumer>,
    topic: &mut TopicMarks,
    condition: &Condition<Value>,
    timestamps_ordered: bool,
) -> FdwResult<Vec<ReadRange>> {
    let (consumer, settings, name) = (reader.consumer(), reader.settings(), &*topic.name);
    let partitions = match &topic.partitions {
        Some(partitions) => partitions,
        None => topic.partitions.insert(kafka::topic_partitions(consumer, settings, name)?),
    };
    let missing: Vec<i32> =
        plan::selected_partitions(condition, partitions).into_iter().filter(|p| !topic.watermarks.contains_key(p)).collect();
    for marks in kafka::watermarks(consumer, settings, name, &missing)? {
        topic.watermarks.insert(marks.partition, marks);
    }
    let marks: Vec<Watermarks> = topic.watermarks.values().copied().collect();
    // Timestamp bounds become offsets through the broker's time index.
    let mut time_index: HashMap<(i32, i64), Option<i64>> = HashMap::new();
    let selected: Vec<i32> = marks.iter().map(|w| w.partition).collect();
    for unix_ms in plan::timestamp_thresholds(condition) {
        for (partition, offset) in kafka::offsets_for_time(consumer, settings, name, &selected, unix_ms)? {
            time_index.insert((partition, unix_ms), offset);
        }
    }
    let first_at_or_after = |partition: i32, unix_ms: i64| time_index.get(&(partition, unix_ms)).copied().flatten();
    let timestamps = Timestamps::Indexed { ordered: timestamps_ordered, first_at_or_after: &first_at_or_after };
    Ok(plan::read_ranges(condition, &marks, timestamps))
}

#[pg_guard]
pub unsafe extern "C-unwind" fn begin_foreign_scan(node: *mut pg_sys::ForeignScanState, _eflags: c_int) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let relation = (*node).ss.ss_currentRelation;
        let definition = catalog::foreign_table(relation);
        let plan = (*node).ss.ps.plan as *mut pg_sys::ForeignScan;
        let private = ScanPrivate::from_list((*plan).fdw_private);
        let tupdesc = (*relation).rd_att;
        let needed = private.needed_attributes((*tupdesc).natts as usize);
        // Plain EXPLAIN may still plan the ranges (see explain_foreign_scan), so it gets a
        // client too; nothing is fetched until rows are asked for.
        let state = ScanState {
            // Retargeted to each topic of a pass; a parallel worker reads the one topic of
            // its table as given.
            reader: Some(TopicClient::for_topic(&definition, definition.table.topics.single().unwrap_or_default()).into_reader().or_raise()),
            message_topic: Rc::from(definition.table.topics.single().unwrap_or_default()),
            one_topic: definition.table.topics.single().is_some(),
            row: RowBuilder::new((*relation).rd_id, tupdesc, &definition, &needed),
            table_topics: definition.table.topics.clone(),
            template: plan::decode(&private.condition),
            timestamps_ordered: definition.table.timestamps_ordered,
            slots: pushdown::init_slots((*plan).fdw_exprs, node as *mut pg_sys::PlanState),
            topics: None,
            pass: None,
            reading: 0,
            queue: None,
            parallel_units: None,
            backwards: (private.order == ScanOrder::OffsetDescending).then(Backwards::default),
            started: false,
            counters: TableCounters::default(),
        };
        (*node).fdw_state = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(state) as *mut c_void;
    }
}

/// The bytes of a message's key and value, for the statistics.
fn message_bytes<M: Message>(message: &M) -> u64 {
    (message.key().map_or(0, <[u8]>::len) + message.payload().map_or(0, <[u8]>::len)) as u64
}

/// # Safety
/// `node` is a scan that [`begin_foreign_scan`] set up and that has not ended; no other reference to its state is alive.
unsafe fn scan_state<'a>(node: *mut pg_sys::ForeignScanState) -> &'a mut ScanState {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        &mut *((*node).fdw_state as *mut ScanState)
    }
}

/// Plans the pass if this is its first row: parameters are known only now.
///
/// # Safety
/// `node` is the running scan whose state `state` is.
unsafe fn ensure_pass(node: *mut pg_sys::ForeignScanState, state: &mut ScanState) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        if state.pass.is_none() {
            let values = pushdown::evaluate(&state.slots, (*node).ss.ps.ps_ExprContext);
            state.start_pass(values).or_raise();
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn iterate_foreign_scan(node: *mut pg_sys::ForeignScanState) -> *mut pg_sys::TupleTableSlot {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let slot = (*node).ss.ss_ScanTupleSlot;
        pg_sys::ExecClearTuple(slot);
        let state = scan_state(node);
        let relid = (*(*node).ss.ss_currentRelation).rd_id;
        if state.reader.is_none() {
            row_errors::forget();
            return slot;
        }
        if !state.started {
            state.started = true;
            // Counted now, so that a scan an ERROR ends counts too; a parallel scan once.
            if pg_sys::ParallelWorkerNumber < 0 {
                stats::record(relid, &TableCounters { scans: 1, ..TableCounters::default() });
            }
        }
        if state.queue.is_none() {
            ensure_pass(node, state);
        }
        if let Some(backwards) = state.backwards.as_mut() {
            let reader = state.reader.as_mut().expect("checked above");
            while let Some(message) = backwards.next(reader).or_raise() {
                state.counters.bytes_fetched += message_bytes(&message);
                if state.row.fill(slot, &message) == Outcome::Row {
                    state.counters.rows_returned += 1;
                    let topic = row_topic(&mut state.message_topic, state.one_topic, &message);
                    row_errors::returned(MessageAt { table: relid, topic, partition: message.partition(), offset: message.offset() });
                    pg_sys::ExecStoreVirtualTuple(slot);
                    return slot;
                }
            }
            row_errors::forget();
            return slot;
        }
        loop {
            let reader = state.reader.as_mut().expect("checked above");
            if let Some(queue) = state.queue {
                // A parallel participant keeps its share of units in flight, taking the
                // next one nobody has claimed as soon as one of its own is read.
                while reader.ranges_left() < (*queue).window() {
                    let Some(unit) = (*queue).claim() else { break };
                    reader.add(unit).or_raise();
                }
            }
            if reader.is_finished() {
                // A table over several topics reads them one after another.
                if state.queue.is_none() && state.next_topic().or_raise() {
                    continue;
                }
                row_errors::forget();
                return slot;
            }
            if let Some(message) = reader.next_message().or_raise() {
                state.counters.bytes_fetched += message_bytes(&message);
                if state.row.fill(slot, &message) == Outcome::Row {
                    state.counters.rows_returned += 1;
                    let topic = row_topic(&mut state.message_topic, state.one_topic, &message);
                    row_errors::returned(MessageAt { table: relid, topic, partition: message.partition(), offset: message.offset() });
                    pg_sys::ExecStoreVirtualTuple(slot);
                    return slot;
                }
            }
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn rescan_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let state = scan_state(node);
        match (state.queue, state.reader.as_mut()) {
            // The leader of a parallel scan: the queue is refilled by ReInitializeDSM.
            (Some(_), Some(reader)) => reader.restart(&[]).or_raise(),
            // Parameter values may have changed: the next row plans the pass again.
            _ => state.pass = None,
        }
    }
}

/// A parallel scan only where the server says every worker reads: Greenplum's
/// `mpp_execute 'all segments'`.
#[pg_guard]
pub unsafe extern "C-unwind" fn is_foreign_scan_parallel_safe(
    _root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    rte: *mut pg_sys::RangeTblEntry,
) -> bool {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let definition = &planned_table(rel, (*rte).relid).definition;
        definition.server.mpp_execute == MppExecute::AllSegments && !row::converts_in_subtransactions((*rte).relid, definition)
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn estimate_dsm_foreign_scan(
    _node: *mut pg_sys::ForeignScanState,
    _pcxt: *mut pg_sys::ParallelContext,
) -> pg_sys::Size {
    WorkQueue::size_for(parallel::QUEUE_CAPACITY)
}

/// The leader plans the whole scan once and shares its units.
#[pg_guard]
pub unsafe extern "C-unwind" fn initialize_dsm_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
    pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut c_void,
) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let state = scan_state(node);
        let values = pushdown::evaluate(&state.slots, (*node).ss.ps.ps_ExprContext);
        // Only a table of one topic plans a parallel scan: its one pass.
        let pass = state.plan_pass(values).or_raise();
        let ranges = pass.first().map_or(&[][..], |topic| &topic.ranges);
        let participants = (*pcxt).nworkers as usize + usize::from(pg_sys::parallel_leader_participation);
        let Some(units) = parallel::plan_units(ranges, participants, MIN_UNIT_MESSAGES, parallel::QUEUE_CAPACITY) else {
            // Partitions were added to the topic since the plan was made.
            let message = format!(
                "a parallel scan of Kafka {} cannot share more than {} partitions",
                state.table_topics.describe(),
                parallel::QUEUE_CAPACITY
            );
            crate::pg::errors::raise(
                FdwError::new(ErrorKind::FeatureNotSupported, message)
                    .with_detail("Partitions were added to the topic since the query was planned.")
                    .with_hint("Run the query again: a new plan reads the topic serially."),
            );
        };
        state.queue = Some(WorkQueue::init(coordinate as *mut u8, parallel::QUEUE_CAPACITY, &units, participants));
        state.parallel_units = Some(units.len());
        state.pass = Some(pass);
    }
}

/// A rescan of the Gather above: plan again, since parameters may have changed.
#[pg_guard]
pub unsafe extern "C-unwind" fn reinitialize_dsm_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
    pcxt: *mut pg_sys::ParallelContext,
    coordinate: *mut c_void,
) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        initialize_dsm_foreign_scan(node, pcxt, coordinate);
    }
}

/// The shared memory is about to go away (before EXPLAIN prints, for one).
#[pg_guard]
pub unsafe extern "C-unwind" fn shutdown_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let state = (*node).fdw_state as *mut ScanState;
        if !state.is_null() {
            (*state).queue = None;
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn initialize_worker_foreign_scan(
    node: *mut pg_sys::ForeignScanState,
    _toc: *mut pg_sys::shm_toc,
    coordinate: *mut c_void,
) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        scan_state(node).queue = Some(WorkQueue::attach(coordinate as *mut u8));
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn end_foreign_scan(node: *mut pg_sys::ForeignScanState) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let state = (*node).fdw_state as *mut ScanState;
        if !state.is_null() {
            if (*state).started {
                let mut counters = (*state).counters;
                if let Some(reader) = &(*state).reader {
                    counters.messages_fetched = reader.messages_fetched;
                    counters.broker_wait_us = u64::try_from(reader.waited.as_micros()).unwrap_or(u64::MAX);
                }
                counters.bad_messages_skipped = (*state).row.bad_messages;
                stats::record((*(*node).ss.ss_currentRelation).rd_id, &counters);
            }
            // Give the client back now rather than when the query's memory goes away.
            (*state).reader = None;
            if let Some(summary) = (*state).row.bad_message_summary() {
                pgrx::warning!("{summary}");
            }
        }
    }
}

#[pg_guard]
pub unsafe extern "C-unwind" fn explain_foreign_scan(node: *mut pg_sys::ForeignScanState, es: *mut pg_sys::ExplainState) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let state = scan_state(node);
        let (label, topics) = state.table_topics.explained();
        explain_text(label, &topics, es);
        let ranges = match &state.pass {
            Some(pass) => describe_pass(pass, state.table_topics.single().is_some()),
            None if (*es).analyze => "none (not executed)".to_string(),
            None if state.reader.is_some()
                && pushdown::known_before_execution(&state.slots, !(*(*node).ss.ps.state).es_param_list_info.is_null()) =>
            {
                // Plain EXPLAIN: plan the first pass now, as execution would.
                ensure_pass(node, state);
                describe_pass(state.pass.as_deref().unwrap_or_default(), state.table_topics.single().is_some())
            }
            None => "chosen when the scan starts (depends on parameters)".to_string(),
        };
        explain_text("Kafka Ranges", &ranges, es);
        if state.backwards.is_some() {
            explain_text("Kafka Order", "offset descending", es);
        }
        if let Some(units) = state.parallel_units {
            // Each participant counts only its own messages, so none is shown here.
            pg_sys::ExplainPropertyInteger(c"Kafka Parallel Units".as_ptr(), std::ptr::null(), units as i64, es);
        } else if (*es).analyze {
            pg_sys::ExplainPropertyInteger(
                c"Kafka Messages Fetched".as_ptr(),
                std::ptr::null(),
                state.messages_fetched() as i64,
                es,
            );
        }
    }
}

/// # Safety
/// `es` is the ExplainState of the EXPLAIN in progress.
unsafe fn explain_text(label: &str, value: &str, es: *mut pg_sys::ExplainState) {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let label = CString::new(label).expect("no NUL in labels");
        let value = CString::new(value).unwrap_or_default();
        pg_sys::ExplainPropertyText(label.as_ptr(), value.as_ptr(), es);
    }
}

/// `0:[1001,1250) 3:[701,1250)`: per partition, the half-open offset ranges read; for
/// a table over several topics, per topic (`a 0:[0,10); b none`), those the condition
/// left.
fn describe_pass(pass: &[TopicRanges], one_topic: bool) -> String {
    fn ranges_text(ranges: &[ReadRange]) -> String {
        if ranges.is_empty() {
            return "none".to_string();
        }
        ranges.iter().map(|r| format!("{}:[{},{})", r.partition, r.start, r.end)).collect::<Vec<_>>().join(" ")
    }
    match (pass, one_topic) {
        ([topic], true) => ranges_text(&topic.ranges),
        ([], _) => "none".to_string(),
        _ => pass.iter().map(|topic| format!("{} {}", topic.topic, ranges_text(&topic.ranges))).collect::<Vec<_>>().join("; "),
    }
}
