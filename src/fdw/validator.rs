//! Option validation at `CREATE`/`ALTER` time.

use pgrx::prelude::*;

use crate::pg::catalog;
use crate::options::{self, OptionLevel};
use crate::pg::errors::OrRaise;

/// The wrapper's validator: PostgreSQL calls it with the complete option list of the
/// object being created or altered, and the catalog it belongs to.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn kafka_fdw_validator(options: Vec<String>, catalog: pg_sys::Oid) {
    let level = match catalog {
        pg_sys::ForeignDataWrapperRelationId => OptionLevel::Wrapper,
        pg_sys::ForeignServerRelationId => OptionLevel::Server,
        pg_sys::UserMappingRelationId => OptionLevel::UserMapping,
        pg_sys::ForeignTableRelationId => OptionLevel::Table,
        pg_sys::AttributeRelationId => OptionLevel::Column,
        _ => return,
    };
    let pairs: Vec<(String, String)> = options
        .iter()
        .map(|option| match option.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (option.clone(), String::new()),
        })
        .collect();
    // SAFETY: reads the current role's attributes from the catalog, inside a transaction.
    let superuser = unsafe { pg_sys::superuser() };
    options::validate(level, &pairs, superuser).or_raise();
}

/// Checks the rules that involve several columns of a Kafka foreign table; run by the
/// extension's event trigger after `CREATE`/`ALTER FOREIGN TABLE`.
#[pg_extern(schema = "kafka_fdw")]
#[search_path(pg_catalog, pg_temp)]
fn check_foreign_table(relid: pg_sys::Oid) {
    // SAFETY: called inside a transaction; the relation is opened and closed here.
    unsafe {
        if !catalog::is_kafka_table(relid) {
            return;
        }
        let relation = pg_sys::relation_open(relid, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        catalog::foreign_table(relation);
        pg_sys::relation_close(relation, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
    }
}
