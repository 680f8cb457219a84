//! Consumer-group offsets for imports with `group_id`: once the PostgreSQL transaction
//! that stored an import's progress has committed, the progress (the next offset to read
//! per partition, as a Kafka Connect sink commits it) is committed to the group, so that
//! Kafka's tools (`kafka-consumer-groups --describe`, lag exporters) show the import's
//! lag. The offsets stored in PostgreSQL stay the truth for exactly-once: a commit to
//! Kafka that fails is a WARNING, and the next import of the pair commits them again.
//!
//! The commit runs in the transaction's commit callback, where PostgreSQL holds
//! interrupts and an ERROR would be fatal: it never raises, and waits at most
//! [`MAX_COMMIT_WAIT`] (or the server's `timeout`, if shorter).

use std::cell::RefCell;
use std::ffi::c_void;
use std::time::Duration;

use pgrx::{pg_guard, pg_sys, warning, PgTryBuilder};

use crate::kafka::{self, ClientSettings};
use crate::pg::clients::{ClientKey, PooledConsumer};

/// The longest the commit of a transaction waits on Kafka for the group's offsets.
const MAX_COMMIT_WAIT: Duration = Duration::from_secs(5);

/// Offsets to commit to a group when the current transaction commits.
pub struct GroupCommit {
    pub key: ClientKey,
    pub settings: ClientSettings,
    pub group: String,
    pub topic: String,
    /// (partition, next offset to read)
    pub offsets: Vec<(i32, i64)>,
}

thread_local! {
    static PENDING: RefCell<Vec<GroupCommit>> = const { RefCell::new(Vec::new()) };
    static CALLBACK_REGISTERED: RefCell<bool> = const { RefCell::new(false) };
}

/// Commits `commit` to its group when the current transaction commits (nothing if it
/// aborts). A later commit of the same group and topic in the transaction replaces it.
pub fn commit_after_transaction(commit: GroupCommit) {
    CALLBACK_REGISTERED.with_borrow_mut(|registered| {
        if !*registered {
            // SAFETY: registering a transaction callback is allowed any time in a backend;
            // the callback is a plain function that lives as long as the library.
            unsafe { pg_sys::RegisterXactCallback(Some(transaction_event), std::ptr::null_mut()) };
            *registered = true;
        }
    });
    PENDING.with_borrow_mut(|pending| {
        pending.retain(|other| !(other.group == commit.group && other.topic == commit.topic && other.key.server == commit.key.server));
        pending.push(commit);
    });
}

/// Nothing: interrupts are held while a transaction commits, and the wait is bounded.
fn no_interrupt() {}

/// Commits one group's offsets; a failure is a WARNING (never an ERROR: the transaction
/// has committed).
fn commit_now(commit: &GroupCommit) {
    let settings = ClientSettings { interrupt: no_interrupt, timeout: commit.settings.timeout.min(MAX_COMMIT_WAIT), ..commit.settings.clone() };
    let committed = PooledConsumer::get(commit.key, &settings)
        .and_then(|consumer| kafka::commit_group_offsets(consumer.client(), &settings, &commit.group, &commit.topic, &commit.offsets));
    if let Err(error) = committed {
        let detail = error.detail.map(|detail| format!(" ({detail})")).unwrap_or_default();
        warning!(
            "could not commit the import's offsets of topic \"{}\" to Kafka consumer group \"{}\": {}{detail}; they are stored in PostgreSQL, and the next import commits them again",
            commit.topic,
            commit.group,
            error.message
        );
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn transaction_event(event: pg_sys::XactEvent::Type, _arg: *mut c_void) {
    use pg_sys::XactEvent::*;
    match event {
        XACT_EVENT_COMMIT => {
            for commit in PENDING.with_borrow_mut(std::mem::take) {
                // Whatever goes wrong (an ERROR of PostgreSQL's own in a call, say) is a
                // WARNING here: raising in a committed transaction's callback would be fatal.
                PgTryBuilder::new(|| commit_now(&commit))
                    .catch_others(|error| warning!("could not commit the import's offsets to Kafka consumer group \"{}\": {error:?}", commit.group))
                    .execute();
            }
        }
        XACT_EVENT_PREPARE if !PENDING.with_borrow_mut(std::mem::take).is_empty() => {
            warning!("a prepared transaction does not commit the import's offsets to its Kafka consumer group; the next import does");
        }
        XACT_EVENT_ABORT => PENDING.with_borrow_mut(Vec::clear),
        _ => {}
    }
}
