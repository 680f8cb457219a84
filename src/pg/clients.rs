//! Kafka clients reused across the queries of one backend, as postgres_fdw reuses its
//! connections: a query borrows an idle client for its server and user mapping and gives
//! it back when it ends (or fails), so only the first query pays for connection setup.
//! Altering any server or user mapping retires every client made before the change.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::ffi::c_int;
use std::rc::Rc;
use std::thread::LocalKey;

use pgrx::{pg_guard, pg_sys};
use rdkafka::producer::Producer;
use rdkafka::Message;

use crate::error::FdwResult;
use crate::kafka::{self, ClientSettings, IsolationLevel, KafkaConsumer, KafkaProducer, RangeReader, ReadRange, Watermarks};
use crate::options::topics::Topics;
use crate::options::{self, ServerOptions};
use crate::pg::transactions;
use crate::pg::catalog::{self, ForeignTableDef};
use crate::pg::errors::OrRaise;

/// Checks for query cancel and backend termination; the Kafka client calls it between
/// the short slices its waits are cut into.
pub fn check_interrupts() {
    pgrx::check_for_interrupts!();
}

/// Settings of a client of a table's server for the current user.
pub fn table_client_settings(definition: &ForeignTableDef) -> ClientSettings {
    let isolation = options::isolation_level(&definition.server, Some(&definition.table));
    server_client_settings(definition.server_id, &definition.server, definition.table.buffer_delay, isolation)
}

/// Settings of a client of `server` for the current user: the server's librdkafka
/// properties, then the user mapping's (applied later, so they win).
fn server_client_settings(
    server_id: pg_sys::Oid,
    server: &ServerOptions,
    fetch_wait: std::time::Duration,
    isolation: IsolationLevel,
) -> ClientSettings {
    let mut properties = server.properties.clone();
    // SAFETY: a catalog lookup inside a transaction.
    properties.extend(unsafe { catalog::user_mapping_options(server_id) }.properties);
    ClientSettings {
        brokers: server.brokers.clone(),
        properties,
        timeout: server.timeout,
        fetch_wait,
        isolation,
        fetch_max_bytes: None,
        interrupt: check_interrupts,
    }
}

/// The pool key of a client of `server_id` for the current user's mapping, which, as
/// in postgres_fdw, must exist.
pub fn client_key(server_id: pg_sys::Oid, settings: &ClientSettings) -> ClientKey {
    // SAFETY: a catalog lookup inside a transaction; it raises if there is no mapping.
    let user_mapping = unsafe { (*catalog::current_user_mapping(server_id)).umid };
    ClientKey {
        server: server_id,
        user_mapping,
        fetch_wait: settings.consumer_fetch_wait(),
        isolation: settings.isolation,
        fetch_max_bytes: settings.fetch_max_bytes,
    }
}

/// The producer an INSERT or COPY sends with: pooled, or the backend's transactional
/// producer of the server and user mapping (see `pg::transactions`).
pub enum TableProducer {
    Pooled(PooledProducer),
    Transactional(Rc<KafkaProducer>),
}

impl Borrow<KafkaProducer> for TableProducer {
    fn borrow(&self) -> &KafkaProducer {
        match self {
            TableProducer::Pooled(pooled) => pooled.borrow(),
            TableProducer::Transactional(producer) => producer,
        }
    }
}

/// The producer for a write into a table: its server's and user mapping's transactional
/// producer, in the PostgreSQL transaction's Kafka transaction, when the table is
/// transactional; otherwise a pooled producer, shared by every table of the server and
/// user mapping.
pub fn table_producer(definition: &ForeignTableDef) -> (ClientSettings, TableProducer) {
    let mut settings = table_client_settings(definition);
    // Producers read nothing: one pooled producer serves every table of the mapping.
    settings.fetch_wait = std::time::Duration::ZERO;
    settings.isolation = IsolationLevel::ReadCommitted;
    let key = client_key(definition.server_id, &settings);
    if options::transactional(&definition.server, &definition.table) {
        let producer = transactions::producer_for_write(key, &settings);
        return (settings, TableProducer::Transactional(producer));
    }
    let producer = PooledProducer::get(key, &settings).or_raise();
    (settings, TableProducer::Pooled(producer))
}

/// How long a fetch of ANALYZE's consumer may wait on the broker for new messages: next
/// to nothing, since a sample reads messages already there.
const SAMPLE_FETCH_WAIT: std::time::Duration = std::time::Duration::from_millis(1);

/// A pooled consumer of one server for the current user, with its settings, and the
/// topic it asks about (none for server-wide questions).
pub struct TopicClient {
    pub settings: ClientSettings,
    pub consumer: PooledConsumer,
    pub topic: String,
}

impl TopicClient {
    /// A consumer for a table's one topic, with the table's fetch wait; for a table over
    /// several topics, an ERROR saying that `what` needs one.
    pub fn for_table(definition: &ForeignTableDef, what: &str) -> Self {
        Self::for_topic(definition, definition.single_topic(what))
    }

    /// A consumer for `topic`, one of a table's, with the table's fetch wait.
    pub fn for_topic(definition: &ForeignTableDef, topic: &str) -> Self {
        let settings = table_client_settings(definition);
        Self::with_settings(definition.server_id, settings, topic.to_string())
    }

    /// A consumer for a table's topic that fetches at most `fetch_max_bytes` at a time
    /// and never waits on the broker for more: for reading a sample in runs (ANALYZE).
    /// (A fetch prefetching past a run can reach the end of the partition and wait there
    /// for new messages, `buffer_delay`; the jump to the next run waits behind it.)
    pub fn for_sample(definition: &ForeignTableDef, topic: &str, fetch_max_bytes: usize) -> Self {
        let settings = ClientSettings {
            fetch_max_bytes: Some(fetch_max_bytes),
            fetch_wait: SAMPLE_FETCH_WAIT,
            ..table_client_settings(definition)
        };
        Self::with_settings(definition.server_id, settings, topic.to_string())
    }

    /// A consumer for server-wide questions (topic lists, samples of many topics).
    pub fn for_server(server_id: pg_sys::Oid, server: &ServerOptions) -> Self {
        let settings = server_client_settings(server_id, server, kafka::MAX_FETCH_WAIT, options::isolation_level(server, None));
        Self::with_settings(server_id, settings, String::new())
    }

    fn with_settings(server_id: pg_sys::Oid, settings: ClientSettings, topic: String) -> Self {
        let consumer = PooledConsumer::get(client_key(server_id, &settings), &settings).or_raise();
        TopicClient { settings, consumer, topic }
    }

    /// The table's topics that exist now, and those of its list that do not (a pattern's
    /// all exist); a table of one topic: that topic, without asking the brokers.
    pub fn existing_topics_of(&self, definition: &ForeignTableDef) -> (Vec<String>, Vec<String>) {
        if let Some(topic) = definition.table.topics.single() {
            return (vec![topic.to_string()], Vec::new());
        }
        let cluster: Vec<String> =
            kafka::all_topics(self.consumer.client(), &self.settings).or_raise().into_iter().map(|(topic, _)| topic).collect();
        let wanted = definition.table.topics.resolve(|| Ok(cluster.clone())).or_raise();
        wanted.into_iter().partition(|topic| cluster.contains(topic))
    }

    /// The topics a table reads now: see [`table_topics`].
    pub fn topics_of(&self, definition: &ForeignTableDef) -> Vec<String> {
        table_topics(&definition.table.topics, self.consumer.client(), &self.settings).or_raise()
    }

    pub fn partitions(&self) -> Vec<i32> {
        kafka::topic_partitions(self.consumer.client(), &self.settings, &self.topic).or_raise()
    }

    /// Low and high watermarks of every partition of the topic.
    pub fn all_watermarks(&self) -> Vec<Watermarks> {
        self.watermarks_of(&self.topic)
    }

    /// Low and high watermarks of every partition of `topic`.
    pub fn watermarks_of(&self, topic: &str) -> Vec<Watermarks> {
        let partitions = kafka::topic_partitions(self.consumer.client(), &self.settings, topic).or_raise();
        kafka::watermarks(self.consumer.client(), &self.settings, topic, &partitions).or_raise()
    }

    /// The value of the topic's message at `partition` and `offset`, read again for an
    /// error's detail (empty if it can't be read).
    pub fn payload_at(&self, partition: i32, offset: i64) -> Vec<u8> {
        let range = ReadRange { partition, start: offset, end: offset + 1 };
        let Ok(mut reader) = RangeReader::new(self.consumer.client(), self.settings.clone(), &self.topic, &[range]) else {
            return Vec::new();
        };
        match reader.next_message() {
            Ok(Some(message)) => message.payload().unwrap_or_default().to_vec(),
            _ => Vec::new(),
        }
    }

    /// A reader of the topic, reading nothing until given ranges.
    pub fn into_reader(self) -> FdwResult<RangeReader<PooledConsumer>> {
        RangeReader::new(self.consumer, self.settings, &self.topic, &[])
    }
}

/// The topics a table reads now: the one or those listed, or the cluster's topics its
/// pattern matches (asked of the brokers each time).
pub fn table_topics(topics: &Topics, consumer: &KafkaConsumer, settings: &ClientSettings) -> FdwResult<Vec<String>> {
    topics.resolve(|| Ok(kafka::all_topics(consumer, settings)?.into_iter().map(|(topic, _)| topic).collect()))
}

/// What a client's configuration depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientKey {
    pub server: pg_sys::Oid,
    pub user_mapping: pg_sys::Oid,
    /// Part of the consumer's configuration (`fetch.wait.max.ms`), set per table.
    pub fetch_wait: std::time::Duration,
    /// Part of the consumer's configuration (`isolation.level`), set per table.
    pub isolation: IsolationLevel,
    /// Part of the consumer's configuration (fetch sizes), set for ANALYZE.
    pub fetch_max_bytes: Option<usize>,
}

/// Idle clients by key. `generation` moves on each catalog change; a client borrowed
/// under an older generation is dropped instead of being given back.
pub struct Pool<C> {
    generation: u64,
    idle: Vec<(ClientKey, C)>,
}

/// Idle clients kept per backend; more are closed on return.
const MAX_IDLE: usize = 4;

impl<C> Pool<C> {
    const fn new() -> Self {
        Pool { generation: 0, idle: Vec::new() }
    }

    fn take(&mut self, key: ClientKey) -> Option<C> {
        let position = self.idle.iter().position(|(k, _)| *k == key)?;
        Some(self.idle.swap_remove(position).1)
    }

    /// Keeps `client` for reuse unless it predates a catalog change or the pool is full;
    /// returns it when it was not kept, so the caller decides where it is dropped.
    fn give_back(&mut self, lease: Lease, client: C) -> Option<C> {
        if lease.generation != self.generation || self.idle.len() >= MAX_IDLE {
            return Some(client);
        }
        self.idle.push((lease.key, client));
        None
    }

    /// Retires the idle clients whose key matches, and every client borrowed now (a
    /// borrowed client's key is not tracked, and catalog changes are rare).
    fn retire(&mut self, matches: impl Fn(&ClientKey) -> bool) -> Vec<(ClientKey, C)> {
        self.generation += 1;
        let (retired, kept) = std::mem::take(&mut self.idle).into_iter().partition(|(key, _)| matches(key));
        self.idle = kept;
        retired
    }
}

/// Where a borrowed client came from.
#[derive(Debug, Clone, Copy)]
struct Lease {
    key: ClientKey,
    generation: u64,
}

thread_local! {
    static CONSUMERS: RefCell<Pool<KafkaConsumer>> = const { RefCell::new(Pool::new()) };
    static PRODUCERS: RefCell<Pool<KafkaProducer>> = const { RefCell::new(Pool::new()) };
    static CALLBACKS_REGISTERED: RefCell<bool> = const { RefCell::new(false) };
}

/// A kind of client the backend keeps for reuse.
pub trait PoolableClient: Sized + 'static {
    fn create(settings: &ClientSettings) -> FdwResult<Self>;
    /// Makes a returned client fit for its next borrower; `false` when it cannot be,
    /// and it is closed instead.
    fn reset(&self) -> bool;
    fn pool() -> &'static LocalKey<RefCell<Pool<Self>>>;
}

impl PoolableClient for KafkaConsumer {
    fn create(settings: &ClientSettings) -> FdwResult<Self> {
        kafka::new_consumer(settings)
    }

    fn reset(&self) -> bool {
        kafka::clear_assignment(self);
        true
    }

    fn pool() -> &'static LocalKey<RefCell<Pool<Self>>> {
        &CONSUMERS
    }
}

impl PoolableClient for KafkaProducer {
    fn create(settings: &ClientSettings) -> FdwResult<Self> {
        kafka::new_producer(settings)
    }

    /// A producer with messages still queued or in flight (a statement that failed)
    /// would report them to the next statement; one that saw a failure may keep it.
    fn reset(&self) -> bool {
        self.in_flight_count() == 0 && !self.context().has_failed()
    }

    fn pool() -> &'static LocalKey<RefCell<Pool<Self>>> {
        &PRODUCERS
    }
}

/// A client lent by the pool; dropping it gives it back, however the borrower ends
/// (also when a query's memory goes away after an ERROR).
pub struct Pooled<C: PoolableClient> {
    client: Option<C>,
    lease: Lease,
}

pub type PooledConsumer = Pooled<KafkaConsumer>;
pub type PooledProducer = Pooled<KafkaProducer>;

impl<C: PoolableClient> Pooled<C> {
    /// An idle client for `key`, or a new one.
    pub fn get(key: ClientKey, settings: &ClientSettings) -> FdwResult<Self> {
        register_invalidation_callbacks();
        let (idle, generation) = C::pool().with_borrow_mut(|pool| (pool.take(key), pool.generation));
        let client = match idle {
            Some(client) => client,
            None => C::create(settings)?,
        };
        Ok(Pooled { client: Some(client), lease: Lease { key, generation } })
    }

    pub fn client(&self) -> &C {
        self.borrow()
    }
}

impl<C: PoolableClient> Borrow<C> for Pooled<C> {
    fn borrow(&self) -> &C {
        self.client.as_ref().expect("present until dropped")
    }
}

impl<C: PoolableClient> Drop for Pooled<C> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        if !client.reset() {
            return;
        }
        let retired = C::pool().with_borrow_mut(|pool| pool.give_back(self.lease, client));
        // Closing a client can take a while; do it outside the pool's borrow.
        drop(retired);
    }
}

fn register_invalidation_callbacks() {
    CALLBACKS_REGISTERED.with_borrow_mut(|registered| {
        if *registered {
            return;
        }
        // SAFETY: registering a syscache callback is allowed any time in a backend; the
        // callback is a plain function that lives as long as the library.
        unsafe {
            for cache in [pg_sys::SysCacheIdentifier::FOREIGNSERVEROID, pg_sys::SysCacheIdentifier::USERMAPPINGOID] {
                pg_sys::CacheRegisterSyscacheCallback(cache as c_int, Some(catalog_changed), pg_sys::Datum::from(0));
            }
        }
        *registered = true;
    });
}

/// A server or user mapping changed (options, owner, drop): clients made from the old
/// definition must not serve another query. `hash_value` identifies the changed row
/// (0: possibly all of them).
#[pg_guard]
unsafe extern "C-unwind" fn catalog_changed(_arg: pg_sys::Datum, cache_id: c_int, hash_value: u32) {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let changed = |oid: pg_sys::Oid| {
            hash_value == 0 || pg_sys::GetSysCacheHashValue(cache_id, pg_sys::Datum::from(oid), 0.into(), 0.into(), 0.into()) == hash_value
        };
        let matches = |key: &ClientKey| {
            if cache_id == pg_sys::SysCacheIdentifier::FOREIGNSERVEROID as c_int {
                changed(key.server)
            } else {
                changed(key.user_mapping)
            }
        };
        let retired_consumers = CONSUMERS.with_borrow_mut(|pool| pool.retire(matches));
        let retired_producers = PRODUCERS.with_borrow_mut(|pool| pool.retire(matches));
        drop((retired_consumers, retired_producers));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(server: u32) -> ClientKey {
        ClientKey {
            server: pg_sys::Oid::from(server),
            user_mapping: pg_sys::Oid::from(1),
            fetch_wait: std::time::Duration::from_millis(10),
            isolation: IsolationLevel::ReadCommitted,
            fetch_max_bytes: None,
        }
    }

    #[test]
    fn clients_are_reused_per_key() {
        let mut pool = Pool::<&str>::new();
        assert_eq!(pool.take(key(1)), None);
        let lease = Lease { key: key(1), generation: pool.generation };
        assert_eq!(pool.give_back(lease, "a"), None);
        assert_eq!(pool.take(key(2)), None);
        assert_eq!(pool.take(key(1)), Some("a"));
        assert_eq!(pool.take(key(1)), None);
    }

    #[test]
    fn a_catalog_change_retires_matching_idle_and_all_borrowed_clients() {
        let mut pool = Pool::<&str>::new();
        let old = Lease { key: key(1), generation: pool.generation };
        pool.give_back(old, "idle");
        let borrowed = Lease { key: key(1), generation: pool.generation };
        pool.give_back(Lease { key: key(2), generation: pool.generation }, "other");
        assert_eq!(pool.retire(|k| *k == key(1)), vec![(key(1), "idle")]);
        assert_eq!(pool.give_back(borrowed, "borrowed"), Some("borrowed"));
        assert_eq!(pool.take(key(1)), None);
        assert_eq!(pool.take(key(2)), Some("other"));
    }

    #[test]
    fn the_pool_is_bounded() {
        let mut pool = Pool::<usize>::new();
        for client in 0..MAX_IDLE + 2 {
            let lease = Lease { key: key(1), generation: pool.generation };
            let kept = pool.give_back(lease, client).is_none();
            assert_eq!(kept, client < MAX_IDLE);
        }
    }
}
