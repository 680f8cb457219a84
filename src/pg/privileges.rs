//! Privilege checks as PostgreSQL makes them, and running code as another role.
//!
//! Functions that touch Kafka or the import's tables check what the equivalent query
//! would need (SELECT on a foreign table, USAGE on a server, INSERT on a target), with
//! PostgreSQL's own error messages. Work done later on someone's behalf (a scheduled
//! task) runs in a session of that role (src/api/task_run.rs), never under the
//! scheduler's identity; the extension's own bookkeeping tables are written by the
//! extension alone, as their owner ([`as_extension`]).

use std::ffi::{c_int, CStr, CString};

use pgrx::pg_sys;

use crate::error::{ErrorKind, FdwError};
use crate::pg::compat;
use crate::pg::errors::raise;

/// Which columns a relation privilege must cover.
pub enum Columns<'a> {
    /// At least one column (what `count(*)` needs for SELECT).
    Any,
    /// Each of these attribute numbers.
    Each(&'a [i16]),
}

/// Raises PostgreSQL's "permission denied for table …" unless the current user holds
/// `mode` on relation `relid`, on the whole table or on the `columns` asked for.
pub fn require_relation_privilege(relid: pg_sys::Oid, mode: pg_sys::AclMode, columns: Columns<'_>) {
    // SAFETY: catalog lookups inside a transaction; aclcheck_error raises an ERROR.
    unsafe {
        let user = pg_sys::GetUserId();
        if pg_sys::pg_class_aclcheck(relid, user, mode) == pg_sys::AclResult::ACLCHECK_OK {
            return;
        }
        let allowed = match columns {
            Columns::Any => {
                pg_sys::pg_attribute_aclcheck_all(relid, user, mode, pg_sys::AclMaskHow::ACLMASK_ANY)
                    == pg_sys::AclResult::ACLCHECK_OK
            }
            Columns::Each(attnums) => attnums
                .iter()
                .all(|&attnum| pg_sys::pg_attribute_aclcheck(relid, attnum, user, mode) == pg_sys::AclResult::ACLCHECK_OK),
        };
        if !allowed {
            pg_sys::aclcheck_error(
                pg_sys::AclResult::ACLCHECK_NO_PRIV,
                pg_sys::get_relkind_objtype(pg_sys::get_rel_relkind(relid)),
                pg_sys::get_rel_name(relid),
            );
        }
    }
}

/// Raises "permission denied for foreign server …" unless the current user has USAGE on it.
pub fn require_server_usage(server: pg_sys::Oid, name: &str) {
    // SAFETY: a catalog lookup inside a transaction; aclcheck_error raises an ERROR.
    unsafe {
        let result = compat::foreign_server_aclcheck(server, pg_sys::ACL_USAGE as pg_sys::AclMode);
        if result != pg_sys::AclResult::ACLCHECK_OK {
            let name = CString::new(name).unwrap_or_default();
            pg_sys::aclcheck_error(result, pg_sys::ObjectType::OBJECT_FOREIGN_SERVER, name.as_ptr());
        }
    }
}

/// The attribute number of column `name` of `relid` (0 when there is none).
pub fn attnum(relid: pg_sys::Oid, name: &str) -> i16 {
    let name = CString::new(name).unwrap_or_default();
    // SAFETY: a catalog lookup inside a transaction.
    unsafe { pg_sys::get_attnum(relid, name.as_ptr()) }
}

pub fn current_user() -> pg_sys::Oid {
    // SAFETY: reads a backend global.
    unsafe { pg_sys::GetUserId() }
}

/// The OID of the role named `name`, if there is one.
pub fn role_oid(name: &str) -> Option<pg_sys::Oid> {
    let name = CString::new(name).ok()?;
    // SAFETY: a catalog lookup inside a transaction; with missing_ok it never raises.
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    (oid != pg_sys::Oid::INVALID).then_some(oid)
}

/// Raises unless the current role may act as `owner`, the role that owns a job or task
/// (`object`, e.g. "import job 3"): be it, be a member of it, or be a superuser, as
/// PostgreSQL decides for ALTER and DROP of its own objects (a dropped owner's objects
/// are superusers'). `kind` ("job") and `changes` ("change or stop") word the hint.
pub fn require_owner_rights(object: &str, kind: &str, changes: &str, owner: &str, action: &str) {
    let caller = current_user();
    // SAFETY: catalog lookups inside a transaction.
    let allowed = unsafe {
        match role_oid(owner) {
            Some(owner) => pg_sys::has_privs_of_role(caller, owner),
            None => pg_sys::superuser_arg(caller),
        }
    };
    if !allowed {
        raise(
            FdwError::new(ErrorKind::InsufficientPrivilege, format!("permission denied to {action} {object}"))
                .with_detail(format!("The {kind} belongs to role \"{owner}\"."))
                .with_hint(format!("Only its owner, members of its owner and superusers may {changes} a {kind}.")),
        );
    }
}

pub fn is_superuser(role: pg_sys::Oid) -> bool {
    // SAFETY: a catalog lookup inside a transaction.
    unsafe { pg_sys::superuser_arg(role) }
}

/// A role's name, or its OID in words when it no longer exists.
pub fn role_name(role: pg_sys::Oid) -> String {
    // SAFETY: a catalog lookup inside a transaction; with noerr the result may be NULL.
    unsafe {
        let name = pg_sys::GetUserNameFromId(role, true);
        if name.is_null() {
            format!("(dropped role with OID {})", role.to_u32())
        } else {
            CStr::from_ptr(name).to_string_lossy().into_owned()
        }
    }
}

/// Runs `run` as the bootstrap superuser, who can write the extension's bookkeeping
/// tables whichever superuser installed the extension, for the extension's own fixed
/// statements on them: as PostgreSQL runs code as a table's owner in maintenance commands
/// (REFRESH MATERIALIZED VIEW), the identity cannot be changed from inside
/// (SECURITY_LOCAL_USERID_CHANGE), no session state can be left behind
/// (SECURITY_RESTRICTED_OPERATION), `search_path` is `pg_catalog, pg_temp` meanwhile (so no
/// name in the statements can be captured by another role's objects), and every setting
/// changed meanwhile is undone afterwards. Never around code of any role's choosing.
///
/// On an ERROR the surrounding (sub)transaction's abort restores the user and settings,
/// as it does for SECURITY DEFINER functions; the guard below restores the user too.
pub fn as_extension<T>(run: impl FnOnce() -> T) -> T {
    struct Restore {
        user: pg_sys::Oid,
        security_context: c_int,
    }
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: restores the identity saved below; always allowed.
            unsafe { pg_sys::SetUserIdAndSecContext(self.user, self.security_context) }
        }
    }
    let mut saved = Restore { user: pg_sys::Oid::INVALID, security_context: 0 };
    // SAFETY: the save/switch/restore sequence of PostgreSQL's ExecRefreshMatView;
    // NewGUCNestLevel and AtEOXact_GUC(false, level) bracket the setting changes.
    let nest_level = unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved.user, &mut saved.security_context);
        pg_sys::SetUserIdAndSecContext(
            pg_sys::Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID),
            saved.security_context
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as c_int
                | pg_sys::SECURITY_RESTRICTED_OPERATION as c_int,
        );
        let nest_level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            c"search_path".as_ptr(),
            c"pg_catalog, pg_temp".as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            0,
            false,
        );
        nest_level
    };
    let result = run();
    // SAFETY: rolls back every setting changed since NewGUCNestLevel (false: as on abort,
    // so a plain SET does not outlive the run either); `saved` then restores the user.
    unsafe { pg_sys::AtEOXact_GUC(false, nest_level) };
    drop(saved);
    result
}
