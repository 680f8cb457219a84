//! Kafka transactions tied to the PostgreSQL transaction, for tables with
//! `transactional 'true'`: the first write begins one per server and user mapping, the
//! pre-commit phase commits it (a failure there is an ERROR that rolls the PostgreSQL
//! transaction back), and an abort of the PostgreSQL transaction, or of a subtransaction
//! that wrote (ROLLBACK TO SAVEPOINT, an EXCEPTION block that caught an error), aborts it.
//! After such a subtransaction abort the transaction can write no more to Kafka and cannot
//! commit: Kafka cannot roll back part of a transaction.
//!
//! Each backend keeps one transactional producer per server and user mapping for its
//! life. Its `transactional.id` names the cluster, database, server, user mapping and the
//! backend's slot (`compat::backend_slot`): backends alive together never share one, and a later
//! backend in a dead one's slot fences it (the broker aborts what it left open).

use std::cell::RefCell;
use std::ffi::c_void;
use std::rc::Rc;

use pgrx::{pg_guard, pg_sys, warning};

use crate::error::{ErrorKind, FdwError};
use crate::kafka::{self, ClientSettings, IsolationLevel, KafkaProducer};
use crate::pg::clients::{ClientKey, PooledConsumer};
use crate::pg::compat;
use crate::pg::errors::{raise, OrRaise};

/// The backend's transactional producer of one server and user mapping.
struct Transactional {
    key: ClientKey,
    /// What it was made with: after a change to the server or user mapping, the next
    /// transaction gets a new producer.
    settings: ClientSettings,
    producer: Rc<KafkaProducer>,
    /// A Kafka transaction is open: the current PostgreSQL transaction wrote through it.
    open: bool,
    /// The latest subtransaction that wrote in the open transaction (subtransaction ids
    /// grow, so one at or after an aborting subtransaction is inside it).
    last_writer: pg_sys::SubTransactionId,
}

thread_local! {
    static PRODUCERS: RefCell<Vec<Transactional>> = const { RefCell::new(Vec::new()) };
    /// Why the current PostgreSQL transaction may no longer write to Kafka nor commit.
    static DOOMED: RefCell<Option<String>> = const { RefCell::new(None) };
    static CALLBACKS_REGISTERED: RefCell<bool> = const { RefCell::new(false) };
}

/// The transactional producer of `key`, inside the current PostgreSQL transaction's
/// Kafka transaction (begun now if this is its first write).
pub fn producer_for_write(key: ClientKey, settings: &ClientSettings) -> Rc<KafkaProducer> {
    register_callbacks();
    if let Some(reason) = DOOMED.with_borrow(Clone::clone) {
        raise(
            FdwError::new(ErrorKind::InvalidTransactionState, "cannot write to a transactional Kafka table in this transaction")
                .with_detail(reason)
                .with_hint("Roll the transaction back and run it again."),
        );
    }
    // SAFETY: called while executing a statement, inside a transaction.
    let writer = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let (found, stale) = PRODUCERS.with_borrow_mut(|producers| {
        let position = producers.iter().position(|p| p.key == key)?;
        let entry = &mut producers[position];
        if entry.open || same_client(&entry.settings, settings) {
            return Some((Some(position), None));
        }
        Some((None, Some(producers.swap_remove(position))))
    })
    .unwrap_or((None, None));
    // A producer made before a catalog change closes here, outside the borrow.
    drop(stale);
    let position = match found {
        Some(position) => position,
        None => {
            let producer = kafka::transactional_producer(settings, &transactional_id(&key)).or_raise();
            PRODUCERS.with_borrow_mut(|producers| {
                producers.push(Transactional { key, settings: settings.clone(), producer: Rc::new(producer), open: false, last_writer: writer });
                producers.len() - 1
            })
        }
    };
    let (producer, begin) = PRODUCERS.with_borrow_mut(|producers| {
        let entry = &mut producers[position];
        let begin = !entry.open;
        entry.open = true;
        entry.last_writer = if begin { writer } else { entry.last_writer.max(writer) };
        (entry.producer.clone(), begin)
    });
    if begin {
        if let Err(error) = kafka::begin_transaction(&producer) {
            forget(&key);
            raise(error);
        }
    }
    producer
}

/// Whether a producer made with `old` serves `new` (the same brokers, properties and
/// timeout; the rest of the settings are the statement's).
fn same_client(old: &ClientSettings, new: &ClientSettings) -> bool {
    old.brokers == new.brokers && old.properties == new.properties && old.timeout == new.timeout
}

/// `kafka_fdw-<system identifier>-<database>-<server>-<user mapping>-<backend slot>`.
fn transactional_id(key: &ClientKey) -> String {
    // SAFETY: plain reads of backend globals, set before any query runs.
    let (system, database, slot) = unsafe { (pg_sys::GetSystemIdentifier(), pg_sys::MyDatabaseId, compat::backend_slot()) };
    format!("kafka_fdw-{system}-{}-{}-{}-{slot}", database.to_u32(), key.server.to_u32(), key.user_mapping.to_u32())
}

/// Drops the producer of `key`, whatever state its transaction is in: the next producer
/// of its id fences it.
fn forget(key: &ClientKey) {
    let removed = PRODUCERS.with_borrow_mut(|producers| {
        let position = producers.iter().position(|p| p.key == *key)?;
        Some(producers.swap_remove(position))
    });
    drop(removed);
}

/// The open transactions' producers and settings, marked closed.
fn take_open() -> Vec<(ClientKey, ClientSettings, Rc<KafkaProducer>)> {
    PRODUCERS.with_borrow_mut(|producers| {
        producers
            .iter_mut()
            .filter(|p| p.open)
            .map(|p| {
                p.open = false;
                (p.key, p.settings.clone(), p.producer.clone())
            })
            .collect()
    })
}

/// Commits every open Kafka transaction, or raises (after dropping the producer that
/// failed; the PostgreSQL transaction's abort then aborts the others).
fn commit_open() {
    if let Some(reason) = DOOMED.with_borrow(Clone::clone) {
        raise(
            FdwError::new(ErrorKind::InvalidTransactionState, "cannot commit a transaction whose Kafka writes were rolled back")
                .with_detail(reason)
                .with_hint("Run the transaction again without rolling back to a savepoint after writing to a transactional Kafka table."),
        );
    }
    let open = PRODUCERS.with_borrow(|producers| producers.iter().filter(|p| p.open).map(|p| p.key).collect::<Vec<_>>());
    for key in open {
        let Some((settings, producer)) = PRODUCERS.with_borrow(|producers| {
            producers.iter().find(|p| p.key == key).map(|p| (p.settings.clone(), p.producer.clone()))
        }) else {
            continue;
        };
        let committed = kafka::commit_transaction(&producer, &settings);
        PRODUCERS.with_borrow_mut(|producers| {
            if let Some(entry) = producers.iter_mut().find(|p| p.key == key) {
                entry.open = false;
            }
        });
        match committed {
            Ok(written) => await_visible(key, &settings, &written),
            Err(error) => {
                drop(producer);
                forget(&key);
                raise(error.with_hint(
                    "The PostgreSQL transaction is rolled back. If the commit reached the broker after all, its messages are in the topic.",
                ));
            }
        }
    }
}

/// Waits until read_committed readers (this session's next scan too) see what a
/// committed Kafka transaction wrote, so that COMMIT returns with its messages readable.
/// The Kafka transaction is committed: a failure here is a WARNING, never an ERROR.
fn await_visible(key: ClientKey, settings: &ClientSettings, written: &kafka::WrittenOffsets) {
    if written.is_empty() {
        return;
    }
    let settings = ClientSettings { isolation: IsolationLevel::ReadCommitted, ..settings.clone() };
    let consumer = PooledConsumer::get(ClientKey { isolation: IsolationLevel::ReadCommitted, ..key }, &settings);
    if let Err(error) = consumer.and_then(|consumer| kafka::await_visible(consumer.client(), &settings, written)) {
        warning!("{}: {}", error.message, error.detail.as_deref().unwrap_or_default());
    }
}

/// Aborts every open Kafka transaction; never raises (it runs while PostgreSQL aborts).
fn abort_open() {
    for (key, settings, producer) in take_open() {
        if let Err(error) = kafka::abort_transaction(&producer, &settings) {
            warning!("could not abort a Kafka transaction: {}; the broker aborts it when it times out or when this backend's next transaction fences it", error.detail.as_deref().unwrap_or(&error.message));
            drop(producer);
            forget(&key);
        }
    }
}

fn register_callbacks() {
    CALLBACKS_REGISTERED.with_borrow_mut(|registered| {
        if *registered {
            return;
        }
        // SAFETY: registering transaction callbacks is allowed any time in a backend; the
        // callbacks are plain functions that live as long as the library.
        unsafe {
            pg_sys::RegisterXactCallback(Some(transaction_event), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(subtransaction_event), std::ptr::null_mut());
        }
        *registered = true;
    });
}

#[pg_guard]
unsafe extern "C-unwind" fn transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_PRE_COMMIT | XACT_EVENT_PARALLEL_PRE_COMMIT => commit_open(),
        XACT_EVENT_PRE_PREPARE => {
            let wrote = DOOMED.with_borrow(Option::is_some) || PRODUCERS.with_borrow(|producers| producers.iter().any(|p| p.open));
            if wrote {
                raise(FdwError::new(
                    ErrorKind::FeatureNotSupported,
                    "cannot PREPARE a transaction that has written to a transactional Kafka table",
                ));
            }
        }
        XACT_EVENT_ABORT | XACT_EVENT_PARALLEL_ABORT => {
            abort_open();
            DOOMED.with_borrow_mut(|doomed| *doomed = None);
        }
        _ => DOOMED.with_borrow_mut(|doomed| *doomed = None),
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn subtransaction_event(
    event: pg_sys::SubXactEvent::Type,
    subtransaction: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut c_void,
) {
    if event != pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        return;
    }
    let rolled_back = PRODUCERS.with_borrow(|producers| producers.iter().any(|p| p.open && p.last_writer >= subtransaction));
    if rolled_back {
        DOOMED.with_borrow_mut(|doomed| {
            *doomed = Some(
                "A subtransaction that wrote to a transactional Kafka table was rolled back (ROLLBACK TO SAVEPOINT, or an exception caught in PL/pgSQL); Kafka cannot roll back part of a transaction, so its Kafka transaction was aborted."
                    .to_string(),
            )
        });
        abort_open();
    }
}
