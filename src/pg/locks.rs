//! Locks that only the extension can take.
//!
//! An import of a source into a target, and a run of a scheduled task, each hold a lock
//! while they work, so that two never overlap. `pg_advisory_lock` would do, but any role
//! can take any advisory lock from SQL and so stall imports and the scheduler at will.
//! These locks live in the advisory lock space with a fourth field that SQL's advisory
//! functions never use (they set it to 1 or 2), so no SQL statement can take or hold them;
//! they show in `pg_locks` as advisory locks with `objsubid` [`IMPORT`] or [`TASK`].

use pgrx::pg_sys;

/// `objsubid` of an import's lock: the source's and target's OIDs are `classid`, `objid`.
const IMPORT: u16 = 0x4B46;
/// `objsubid` of a task's lock: the task id's two halves are `classid`, `objid`.
const TASK: u16 = 0x4B47;

fn tag(first: u32, second: u32, kind: u16) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        // SAFETY: reads a backend global, set once the backend is connected to a database.
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: first,
        locktag_field3: second,
        locktag_field4: kind,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

fn task_tag(task: i64) -> pg_sys::LOCKTAG {
    tag((task >> 32) as u32, task as u32, TASK)
}

/// Waits (cancellably, with deadlock detection) for the lock of imports of `source` into
/// `target`, held until the end of the transaction.
pub fn lock_import(source: pg_sys::Oid, target: pg_sys::Oid) {
    let tag = tag(source.to_u32(), target.to_u32(), IMPORT);
    // SAFETY: a transaction-scoped lock on a tag built above, as pg_advisory_xact_lock
    // takes its own; lock waits check for interrupts.
    unsafe { pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, false, false) };
}

/// Takes the lock of task `task` for the rest of the process (a run's worker holds it
/// until it exits), or returns false when another process holds it.
pub fn try_lock_task_for_session(task: i64) -> bool {
    let tag = task_tag(task);
    // SAFETY: a session lock, released by PostgreSQL when the process exits.
    let result = unsafe { pg_sys::LockAcquire(&tag, pg_sys::ExclusiveLock as pg_sys::LOCKMODE, true, true) };
    result != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// Whether some process holds the lock of task `task`: a run of it is in progress.
pub fn task_is_running(task: i64) -> bool {
    let tag = task_tag(task);
    let mode = pg_sys::ExclusiveLock as pg_sys::LOCKMODE;
    // SAFETY: a try-lock inside a transaction, released at once when it was granted.
    unsafe {
        if pg_sys::LockAcquire(&tag, mode, false, true) == pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL {
            return true;
        }
        pg_sys::LockRelease(&tag, mode, false);
    }
    false
}
