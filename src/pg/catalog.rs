//! Reading a Kafka foreign table's definition from the system catalogs.

use std::ffi::CStr;

use pgrx::pg_sys;
use pgrx::PgList;

use crate::codec::ColumnType;
use crate::options::layout::{self, ColumnDef, TableLayout};
use crate::options::{self, ColumnOptions, ColumnRole, ServerOptions, TableOptions, UserMappingOptions};
use crate::pg::compat;
use crate::error::{ErrorKind, FdwError};
use crate::pg::errors::{raise, OrRaise};

/// A foreign table's options and the source of each of its attributes.
pub struct ForeignTableDef {
    pub relid: pg_sys::Oid,
    pub server_id: pg_sys::Oid,
    pub server: ServerOptions,
    pub table: TableOptions,
    pub layout: TableLayout,
}

impl ForeignTableDef {
    /// The table's one topic (option `topic`); for a table over several (`topics`,
    /// `topic_pattern`), an ERROR saying that `what` needs one.
    pub fn single_topic(&self, what: &str) -> &str {
        if let Some(topic) = self.table.topics.single() {
            return topic;
        }
        // SAFETY: a foreign table this transaction has read the definition of.
        let name = unsafe { relation_name(self.relid) };
        raise(
            FdwError::new(ErrorKind::FeatureNotSupported, format!("{what} needs a foreign table over one Kafka topic"))
                .with_detail(format!("Foreign table {name} reads {}.", self.table.topics.describe()))
                .with_hint("Use a foreign table with option \"topic\" for each topic."),
        )
    }
}

/// `schema.table`, quoted where needed.
///
/// # Safety
/// Must run inside a transaction; `relid` is a relation.
pub unsafe fn relation_name(relid: pg_sys::Oid) -> String {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let schema = pg_sys::get_namespace_name(pg_sys::get_rel_namespace(relid));
        let qualified = pg_sys::quote_qualified_identifier(schema, pg_sys::get_rel_name(relid));
        CStr::from_ptr(qualified).to_string_lossy().into_owned()
    }
}

/// `(name, value)` pairs of a `List` of `DefElem`, as catalogs store generic options.
///
/// # Safety
/// `list` must be NIL or a valid `List` of `DefElem` nodes with string values.
pub unsafe fn def_elems(list: *mut pg_sys::List) -> Vec<(String, String)> {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let list = PgList::<pg_sys::DefElem>::from_pg(list);
        list.iter_ptr()
            .map(|def| {
                let name = CStr::from_ptr((*def).defname).to_string_lossy().into_owned();
                let value = CStr::from_ptr(pg_sys::defGetString(def)).to_string_lossy().into_owned();
                (name, value)
            })
            .collect()
    }
}

fn column_type(type_oid: pg_sys::Oid) -> ColumnType {
    match type_oid {
        pg_sys::INT2OID => ColumnType::SmallInt,
        pg_sys::INT4OID => ColumnType::Integer,
        pg_sys::INT8OID => ColumnType::BigInt,
        pg_sys::TEXTOID => ColumnType::Text,
        pg_sys::BYTEAOID => ColumnType::Bytea,
        pg_sys::TIMESTAMPTZOID => ColumnType::TimestampTz,
        pg_sys::JSONOID => ColumnType::Json,
        pg_sys::JSONBOID => ColumnType::Jsonb,
        _ => ColumnType::Other,
    }
}

/// Reads and checks the definition of foreign table `relation`, raising an ERROR when an
/// option is invalid.
///
/// # Safety
/// `relation` must be an open relation of a foreign table.
pub unsafe fn foreign_table(relation: pg_sys::Relation) -> ForeignTableDef {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let relid = (*relation).rd_id;
        let foreign_table = pg_sys::GetForeignTable(relid);
        let server = pg_sys::GetForeignServer((*foreign_table).serverid);
        let tupdesc = (*relation).rd_att;
        let attrs = compat::attributes(tupdesc);
        let columns: Vec<ColumnDef> = attrs
            .iter()
            .map(|attr| {
                let options = if attr.attisdropped {
                    ColumnOptions { role: ColumnRole::Data, path: None }
                } else {
                    options::parse_column(&def_elems(pg_sys::GetForeignColumnOptions(relid, attr.attnum))).or_raise()
                };
                ColumnDef {
                    name: CStr::from_ptr(attr.attname.data.as_ptr()).to_string_lossy().into_owned(),
                    column_type: column_type(attr.atttypid),
                    options,
                    dropped: attr.attisdropped,
                }
            })
            .collect();
        let table = options::parse_table(&def_elems((*foreign_table).options)).or_raise();
        let server_options = options::parse_server(&def_elems((*server).options)).or_raise();
        options::check_table_on_server(&table, &server_options).or_raise();
        ForeignTableDef {
            relid,
            server_id: (*server).serverid,
            server: server_options,
            layout: layout::table_layout(&columns, &table).or_raise(),
            table,
        }
    }
}

/// The current user's mapping of `server_id`. Raises, as postgres_fdw does, when the
/// user has none.
///
/// # Safety
/// Must run inside a transaction.
pub unsafe fn current_user_mapping(server_id: pg_sys::Oid) -> *mut pg_sys::UserMapping {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        pg_sys::GetUserMapping(pg_sys::GetUserId(), server_id)
    }
}

/// The options of the current user's mapping of `server_id` (librdkafka properties,
/// which override the server's; Schema Registry credentials).
///
/// # Safety
/// Must run inside a transaction.
pub unsafe fn user_mapping_options(server_id: pg_sys::Oid) -> UserMappingOptions {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        options::parse_user_mapping(&def_elems((*current_user_mapping(server_id)).options)).or_raise()
    }
}

/// [`foreign_table`] by relation id, for the planner (which already holds a lock).
///
/// # Safety
/// `relid` must be a foreign table the current query has locked.
pub unsafe fn foreign_table_by_id(relid: pg_sys::Oid) -> ForeignTableDef {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let relation = pg_sys::RelationIdGetRelation(relid);
        let definition = foreign_table(relation);
        pg_sys::RelationClose(relation);
        definition
    }
}

/// Whether `relid` is a foreign table whose wrapper uses this extension's handler,
/// whatever the wrapper is called.
///
/// # Safety
/// Must run inside a transaction.
pub unsafe fn is_kafka_table(relid: pg_sys::Oid) -> bool {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        if pg_sys::get_rel_relkind(relid) != pg_sys::RELKIND_FOREIGN_TABLE as std::ffi::c_char {
            return false;
        }
        let table = pg_sys::GetForeignTable(relid);
        let server = pg_sys::GetForeignServer((*table).serverid);
        let handler = (*pg_sys::GetForeignDataWrapper((*server).fdwid)).fdwhandler;
        if handler == pg_sys::InvalidOid {
            return false;
        }
        let name = CStr::from_ptr(pg_sys::get_func_name(handler));
        let schema = CStr::from_ptr(pg_sys::get_namespace_name(pg_sys::get_func_namespace(handler)));
        name.to_bytes() == b"kafka_fdw_handler" && schema.to_bytes() == b"kafka_fdw"
    }
}
