//! The backend's writer schemas, compiled, by registry and id: a cache bounded in bytes
//! that lets the least recently used go first, and that remembers for a short while the
//! ids a registry did not know, so that a topic full of messages naming one asks the
//! registry once, not once a message. The host fetches (over HTTP), sets the bound and
//! tells the time; everything else is here.

use std::collections::{BTreeMap, HashMap};
use super::error::CodecError;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::wire::{CompiledSchema, WriterSchema};

/// How long a registry's "no such schema" (or a schema that does not compile) is
/// believed: an id registered meanwhile is read once this passed.
pub const UNKNOWN_FOR: Duration = Duration::from_secs(10);

/// What an entry costs besides what it weighs: the maps' slots and the key's id.
const ENTRY_OVERHEAD: usize = 128;

/// Values weighing up to `capacity` bytes together; inserting beyond it drops the least
/// recently used. A value heavier than the whole capacity is not kept.
///
/// Hand-written rather than the `lru` crate's: that one bounds a count, and weighing
/// entries needs the same bookkeeping around it as these two maps.
pub struct ByteLru<K, V> {
    capacity: usize,
    used: usize,
    entries: HashMap<K, Slot<V>>,
    /// The keys by their last use, oldest first.
    by_use: BTreeMap<u64, K>,
    /// Counts uses: each get or insert takes the next number.
    clock: u64,
}

struct Slot<V> {
    value: V,
    weight: usize,
    last_use: u64,
}

impl<K: Hash + Eq + Clone, V> ByteLru<K, V> {
    pub fn new(capacity: usize) -> Self {
        ByteLru { capacity, used: 0, entries: HashMap::new(), by_use: BTreeMap::new(), clock: 0 }
    }

    /// Changes the bound, dropping what no longer fits.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict();
    }

    /// The bytes the values weigh together.
    pub fn used(&self) -> usize {
        self.used
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// The value of `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        let slot = self.entries.get_mut(key)?;
        self.clock += 1;
        let key = self.by_use.remove(&slot.last_use).expect("every entry is in by_use");
        self.by_use.insert(self.clock, key);
        slot.last_use = self.clock;
        Some(&slot.value)
    }

    /// Keeps `value` under `key` (replacing what was there), weighing `weight` bytes.
    pub fn insert(&mut self, key: K, value: V, weight: usize) {
        self.remove(&key);
        if weight > self.capacity {
            return;
        }
        self.clock += 1;
        self.by_use.insert(self.clock, key.clone());
        self.entries.insert(key, Slot { value, weight, last_use: self.clock });
        self.used += weight;
        self.evict();
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.entries.remove(key)?;
        self.by_use.remove(&slot.last_use);
        self.used -= slot.weight;
        Some(slot.value)
    }

    fn evict(&mut self) {
        while self.used > self.capacity {
            let (_, oldest) = self.by_use.pop_first().expect("weight is held by entries");
            let slot = self.entries.remove(&oldest).expect("every key in by_use is an entry");
            self.used -= slot.weight;
        }
    }
}

/// A writer schema as the cache holds it.
#[derive(Clone)]
enum Cached {
    Compiled(CompiledSchema),
    /// Why messages naming the id cannot be read, believed until `until`.
    Unknown { why: CodecError, until: Instant },
}

/// Compiled writer schemas by (source, id), where the host's source names the registry
/// and the credentials it was asked with.
pub struct SchemaCache {
    entries: ByteLru<(String, u32), Cached>,
}

impl SchemaCache {
    pub fn new(capacity: usize) -> Self {
        SchemaCache { entries: ByteLru::new(capacity) }
    }

    pub fn set_capacity(&mut self, capacity: usize) {
        self.entries.set_capacity(capacity);
    }

    /// The bytes the cached schemas weigh together (estimated: see
    /// [`CompiledSchema::heap_size`]).
    pub fn used(&self) -> usize {
        self.entries.used()
    }

    /// Schema `id` of `source`: cached, or fetched with `fetch` and compiled now (`now`
    /// is the time). `Err` says why messages naming it cannot be read; that answer is
    /// kept for [`UNKNOWN_FOR`]. `fetch` may unwind (a registry that cannot be asked):
    /// then nothing is kept.
    pub fn schema(
        &mut self,
        source: &str,
        id: u32,
        now: Instant,
        fetch: impl FnOnce() -> Result<WriterSchema, CodecError>,
    ) -> Result<CompiledSchema, CodecError> {
        let key = (source.to_string(), id);
        match self.entries.get(&key) {
            Some(Cached::Compiled(schema)) => return Ok(schema.clone()),
            Some(Cached::Unknown { why, until }) if now < *until => return Err(why.clone()),
            _ => {}
        }
        let key_weight = ENTRY_OVERHEAD + source.len();
        match fetch().and_then(|writer| CompiledSchema::compile(&writer)) {
            Ok(schema) => {
                self.entries.insert(key, Cached::Compiled(schema.clone()), key_weight + schema.heap_size());
                Ok(schema)
            }
            Err(why) => {
                self.entries.insert(key, Cached::Unknown { why: why.clone(), until: now + UNKNOWN_FOR }, key_weight + why.reason().len());
                Err(why)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_least_recently_used_go_first_by_weight() {
        let mut lru = ByteLru::new(100);
        lru.insert("a", 1, 40);
        lru.insert("b", 2, 40);
        assert_eq!(lru.get(&"a").copied(), Some(1));
        // 120 bytes: "b", used longest ago, goes.
        lru.insert("c", 3, 40);
        assert_eq!((lru.get(&"b").copied(), lru.len(), lru.used()), (None, 2, 80));
        // One heavy value may push out several.
        lru.insert("d", 4, 90);
        assert_eq!((lru.get(&"a").copied(), lru.get(&"c").copied(), lru.get(&"d").copied()), (None, None, Some(4)));
        assert_eq!(lru.used(), 90);
    }

    #[test]
    fn replacing_reweighs_and_what_cannot_fit_is_not_kept() {
        let mut lru = ByteLru::new(100);
        lru.insert("a", 1, 60);
        lru.insert("a", 2, 30);
        assert_eq!((lru.get(&"a").copied(), lru.used()), (Some(2), 30));
        lru.insert("b", 3, 101);
        assert_eq!((lru.get(&"b").copied(), lru.get(&"a").copied(), lru.used()), (None, Some(2), 30));
        // A smaller bound drops the oldest until the rest fits.
        lru.insert("c", 4, 50);
        lru.set_capacity(60);
        assert_eq!((lru.get(&"a").copied(), lru.get(&"c").copied(), lru.used()), (None, Some(4), 50));
        assert_eq!(lru.remove(&"c"), Some(4));
        assert_eq!((lru.len(), lru.used()), (0, 0));
    }

    fn avro(fields: usize) -> WriterSchema {
        let fields: Vec<String> = (0..fields).map(|i| format!(r#"{{"name": "f{i}", "type": "long"}}"#)).collect();
        let text = format!(r#"{{"type": "record", "name": "r", "fields": [{}]}}"#, fields.join(","));
        WriterSchema { schema_type: "AVRO".into(), text, references: Vec::new() }
    }

    #[test]
    fn schemas_are_fetched_once_while_they_fit() {
        let fetches = Cell::new(0);
        let fetch = |writer: WriterSchema| {
            || {
                fetches.set(fetches.get() + 1);
                Ok(writer)
            }
        };
        // Room for six of them.
        let one = ENTRY_OVERHEAD + "r".len() + CompiledSchema::compile(&avro(1000)).unwrap().heap_size();
        let mut cache = SchemaCache::new(6 * one);
        let now = Instant::now();
        for round in 0..3 {
            for id in 1..=5 {
                assert!(matches!(cache.schema("r", id, now, fetch(avro(1000))), Ok(CompiledSchema::Avro(_))));
            }
            assert_eq!(fetches.get(), 5, "round {round}");
        }
        // The same id from another source (registry, credentials) is another schema.
        cache.schema("s", 1, now, fetch(avro(1000))).unwrap();
        assert_eq!(fetches.get(), 6);
        assert_eq!(cache.used(), 6 * one);
        // Ten more do not fit with the first: those used longest ago are fetched again.
        for id in 6..=15 {
            cache.schema("r", id, now, fetch(avro(1000))).unwrap();
        }
        assert_eq!(cache.used(), 6 * one);
        let before = fetches.get();
        cache.schema("r", 1, now, fetch(avro(1000))).unwrap();
        assert_eq!(fetches.get(), before + 1);
        cache.schema("r", 15, now, fetch(avro(1000))).unwrap();
        assert_eq!(fetches.get(), before + 1);
    }

    #[test]
    fn unknown_ids_are_asked_again_only_after_a_while() {
        let fetches = Cell::new(0);
        let missing = || {
            fetches.set(fetches.get() + 1);
            Err(CodecError::Schema("Schema 9 not found".to_string()))
        };
        let mut cache = SchemaCache::new(1 << 20);
        let start = Instant::now();
        for second in 0..10 {
            let now = start + Duration::from_secs(second) * UNKNOWN_FOR.as_secs() as u32 / 10;
            assert_eq!(cache.schema("r", 9, now, missing).err().unwrap(), CodecError::Schema("Schema 9 not found".to_string()));
        }
        assert_eq!(fetches.get(), 1);
        // Once the while passed, the registry is asked again, and may know it now.
        let later = start + UNKNOWN_FOR;
        assert!(cache.schema("r", 9, later, || Ok(avro(1))).is_ok());
        assert!(cache.schema("r", 9, later + UNKNOWN_FOR * 2, missing).is_ok());
        assert_eq!(fetches.get(), 1);
    }

    #[test]
    fn schemas_that_do_not_compile_are_unknown_ids_too() {
        let mut cache = SchemaCache::new(1 << 20);
        let now = Instant::now();
        let broken = WriterSchema { schema_type: "AVRO".into(), text: "{\"type\": \"recordd\"}".into(), references: Vec::new() };
        let why = cache.schema("r", 3, now, || Ok(broken)).err().unwrap();
        assert!(matches!(&why, CodecError::Schema(reason) if reason.starts_with("invalid Avro schema")), "{why:?}");
        assert_eq!(cache.schema("r", 3, now, || panic!("asked again")).err(), Some(why));
    }

    /// Counts each thread's bytes allocated and not yet freed, to weigh what compiling a
    /// schema keeps. (The test binary's allocator: the system's, counted.)
    struct Counting;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
    }

    fn count(bytes: isize) {
        // Not during a thread's teardown; const-initialized, so never allocates.
        let _ = LIVE.try_with(|live| live.set(live.get() + bytes));
    }

    // SAFETY: each method passes its arguments on to the system allocator unchanged.
    unsafe impl std::alloc::GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
            count(layout.size() as isize);
            unsafe { std::alloc::System.alloc(layout) }
        }

        unsafe fn dealloc(&self, pointer: *mut u8, layout: std::alloc::Layout) {
            count(-(layout.size() as isize));
            unsafe { std::alloc::System.dealloc(pointer, layout) }
        }

        unsafe fn realloc(&self, pointer: *mut u8, layout: std::alloc::Layout, size: usize) -> *mut u8 {
            count(size as isize - layout.size() as isize);
            unsafe { std::alloc::System.realloc(pointer, layout, size) }
        }
    }

    #[global_allocator]
    static COUNTING: Counting = Counting;

    /// The bytes `compile` allocates and keeps, and what the cache weighs the result by.
    fn kept_and_weighed(writer: &WriterSchema) -> (usize, usize) {
        // Once first: libraries set up what they keep for good (Google's types).
        drop(CompiledSchema::compile(writer).unwrap());
        let before = LIVE.get();
        let compiled = CompiledSchema::compile(writer).unwrap();
        let kept = (LIVE.get() - before) as usize;
        (kept, compiled.heap_size())
    }

    #[test]
    fn a_compiled_schema_weighs_at_least_what_it_keeps() {
        let many_fields = avro(20_000);
        let documented = WriterSchema {
            schema_type: "AVRO".into(),
            text: format!(r#"{{"type": "record", "name": "r", "doc": "{}", "fields": [{{"name": "a", "type": "long"}}]}}"#, "x".repeat(1 << 20)),
            references: Vec::new(),
        };
        let nested: Vec<String> = (0..2000)
            .map(|i| {
                format!(
                    r#"{{"name": "f{i}", "type": {{"type": "record", "name": "n{i}", "fields": [{{"name": "e", "type": {{"type": "enum", "name": "e{i}", "symbols": ["A", "B", "C"]}}}}, {{"name": "u", "type": ["null", "string", "long"]}}, {{"name": "m", "type": {{"type": "map", "values": "double"}}}}]}}}}"#
                )
            })
            .collect();
        let nested = WriterSchema {
            schema_type: "AVRO".into(),
            text: format!(r#"{{"type": "record", "name": "r", "fields": [{}]}}"#, nested.join(",")),
            references: Vec::new(),
        };
        let proto = |body: String| WriterSchema {
            schema_type: "PROTOBUF".into(),
            text: format!("syntax = \"proto3\"; import \"google/protobuf/timestamp.proto\"; {body}"),
            references: Vec::new(),
        };
        let fields: String = (1..=5000).map(|i| format!("int64 field_number_{i} = {i}; ")).collect();
        let messages: String =
            (1..=1000).map(|i| format!("message M{i} {{ string a = 1; repeated M{i} b = 2; google.protobuf.Timestamp at = 3; enum E {{ X = 0; Y = 1; }} E e = 4; }} ")).collect();
        let schemas = [
            ("avro, many fields", many_fields),
            ("avro, a long doc", documented),
            ("avro, nested types", nested),
            ("protobuf, many fields", proto(format!("message M {{ {fields} }}"))),
            ("protobuf, many messages", proto(messages)),
        ];
        let weights: Vec<(&str, usize, usize)> = schemas
            .iter()
            .map(|(name, writer)| {
                let (kept, weighed) = kept_and_weighed(writer);
                eprintln!("{name}: text {} bytes, kept {kept}, weighed {weighed}", writer.text.len());
                (*name, kept, weighed)
            })
            .collect();
        for (name, kept, weighed) in weights {
            assert!(weighed >= kept, "{name}: weighed {weighed} < kept {kept}");
            assert!(weighed <= 3 * kept.max(1000), "{name}: weighed {weighed}, far more than the {kept} kept");
        }
    }

    #[test]
    fn a_fetch_that_unwinds_keeps_nothing() {
        let mut cache = SchemaCache::new(1 << 20);
        let now = Instant::now();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cache.schema("r", 1, now, || panic!("registry down"))));
        assert!(unwound.is_err());
        assert!(cache.schema("r", 1, now, || Ok(avro(1))).is_ok());
    }
}
