//! What the scan's planner callbacks keep for each other (`RelOptInfo.fdw_private`), what
//! a path tells the plan (`ForeignPath.fdw_private`) and what the plan hands to execution
//! (`ForeignScan.fdw_private`).
//!
//! As in postgres_fdw, the table's definition is read from the catalogs once per
//! planning and kept on the relation, with its clauses as they are classified. What goes
//! into a plan must survive `copyObject` (plans are cached and copied), so it is a List
//! of integer Lists, read and written only here, by name.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;

use pgrx::{pg_sys, PgList, PgMemoryContexts};

use crate::pg::catalog::{self, ForeignTableDef};

use super::pushdown::{self, Classified, Extractor, MetaColumns};

/// What the planning of a Kafka table keeps on its relation: the table's definition, and
/// the clauses classified so far, so each is classified once (as postgres_fdw classifies
/// its relation's clauses once into its relation info). Keyed by the `RestrictInfo`, which
/// stays put for the whole planning.
pub struct PlannedTable {
    pub definition: ForeignTableDef,
    classified: RefCell<HashMap<*mut pg_sys::RestrictInfo, Classified>>,
}

impl PlannedTable {
    /// A clause of this relation (a restriction, or a join clause that a parameterized path
    /// moves into it), classified.
    ///
    /// # Safety
    /// `root` and `baserel` are the planner's, during the planning of this table's scan;
    /// `rinfo` is a clause of this planning that references `baserel`.
    pub unsafe fn clause(&self, root: *mut pg_sys::PlannerInfo, baserel: *mut pg_sys::RelOptInfo, rinfo: *mut pg_sys::RestrictInfo) -> Classified {
        if let Some(classified) = self.classified.borrow().get(&rinfo) {
            return classified.clone();
        }
        // SAFETY: the caller keeps the contract above.
        let classified = unsafe {
            let mut extractor = Extractor::new(root, (*baserel).relid, MetaColumns::new(&self.definition.layout.columns));
            extractor.classify((*rinfo).clause as *mut pg_sys::Node)
        };
        self.classified.borrow_mut().insert(rinfo, classified.clone());
        classified
    }

    /// The conjunction of a `List` of this relation's `RestrictInfo`s.
    ///
    /// # Safety
    /// As for [`PlannedTable::clause`], for every clause of `clauses`.
    pub unsafe fn clauses(&self, root: *mut pg_sys::PlannerInfo, baserel: *mut pg_sys::RelOptInfo, clauses: *mut pg_sys::List) -> Classified {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            let list = PgList::<pg_sys::RestrictInfo>::from_pg(clauses);
            pushdown::conjunction(list.iter_ptr().map(|rinfo| self.clause(root, baserel, rinfo)).collect::<Vec<_>>())
        }
    }
}

/// What the planning of the Kafka table `baserel` keeps (see [`PlannedTable`]): made with
/// the table's definition on first use, kept on the relation for the rest of the planning.
///
/// # Safety
/// `baserel` is the planner's relation for foreign table `relid`, during planning; the
/// reference lives as long as the current (planner) memory context.
pub unsafe fn planned_table<'a>(baserel: *mut pg_sys::RelOptInfo, relid: pg_sys::Oid) -> &'a PlannedTable {
    // SAFETY: per the contract, `baserel` is valid; its fdw_private is ours (NULL until
    // set here) and points to a PlannedTable allocated in the planner's context.
    unsafe {
        if (*baserel).fdw_private.is_null() {
            let planned = PlannedTable { definition: catalog::foreign_table_by_id(relid), classified: RefCell::default() };
            (*baserel).fdw_private = PgMemoryContexts::CurrentMemoryContext.leak_and_drop_on_delete(planned) as *mut c_void;
        }
        &*((*baserel).fdw_private as *const PlannedTable)
    }
}

/// The order in which a scan returns its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOrder {
    /// Whatever order the partitions deliver in.
    Unordered,
    /// One partition by ascending offset.
    OffsetAscending,
    /// One partition by descending offset, read backwards in chunks.
    OffsetDescending,
}

impl ScanOrder {
    const ASCENDING: i32 = 0;
    const DESCENDING: i32 = 1;

    /// `ForeignPath.fdw_private`: `[]`, `[0]` ascending or `[1]` descending.
    ///
    /// # Safety
    /// Allocates in the current memory context (the planner's).
    pub unsafe fn to_list(self) -> *mut pg_sys::List {
        let code = match self {
            ScanOrder::Unordered => return std::ptr::null_mut(),
            ScanOrder::OffsetAscending => Self::ASCENDING,
            ScanOrder::OffsetDescending => Self::DESCENDING,
        };
        // SAFETY: appending to a new (NIL) integer list.
        unsafe { pg_sys::lappend_int(std::ptr::null_mut(), code) }
    }

    /// # Safety
    /// `list` is NIL or a list made by [`ScanOrder::to_list`].
    pub unsafe fn from_list(list: *mut pg_sys::List) -> Self {
        // SAFETY: per the contract, an integer list.
        match unsafe { PgList::<c_void>::from_pg(list) }.get_int(0) {
            Some(Self::ASCENDING) => ScanOrder::OffsetAscending,
            Some(Self::DESCENDING) => ScanOrder::OffsetDescending,
            _ => ScanOrder::Unordered,
        }
    }
}

/// Attribute number that stands for "the whole row" in the used-attributes list.
pub const WHOLE_ROW: i32 = 0;

/// What a plan hands to execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPrivate {
    /// The pushed-down condition, as `plan::encode` wrote it; its values are the plan's
    /// `fdw_exprs`.
    pub condition: Vec<i32>,
    /// Attribute numbers the query reads ([`WHOLE_ROW`] for all).
    pub used_attributes: Vec<i32>,
    pub order: ScanOrder,
}

/// Positions in `ForeignScan.fdw_private`.
const CONDITION: usize = 0;
const USED_ATTRIBUTES: usize = 1;
const ORDER: usize = 2;

impl ScanPrivate {
    /// # Safety
    /// Allocates in the current memory context (the planner's).
    pub unsafe fn to_list(&self) -> *mut pg_sys::List {
        let mut lists = [std::ptr::null_mut(); 3];
        // SAFETY: building new integer lists in the current context.
        unsafe {
            lists[CONDITION] = int_list(&self.condition);
            lists[USED_ATTRIBUTES] = int_list(&self.used_attributes);
            lists[ORDER] = self.order.to_list();
        }
        let mut private = PgList::<pg_sys::List>::new();
        for list in lists {
            private.push(list);
        }
        private.into_pg()
    }

    /// # Safety
    /// `list` is a list made by [`ScanPrivate::to_list`] (or a copy of one).
    pub unsafe fn from_list(list: *mut pg_sys::List) -> Self {
        // SAFETY: per the contract, a list of integer lists in the positions above.
        unsafe {
            let private = PgList::<pg_sys::List>::from_pg(list);
            let ints = |position: usize| -> Vec<i32> {
                PgList::<c_void>::from_pg(private.get_ptr(position).unwrap_or(std::ptr::null_mut())).iter_int().collect()
            };
            ScanPrivate {
                condition: ints(CONDITION),
                used_attributes: ints(USED_ATTRIBUTES),
                order: ScanOrder::from_list(private.get_ptr(ORDER).unwrap_or(std::ptr::null_mut())),
            }
        }
    }

    /// `needed[i]`: whether attribute `i + 1` is read.
    pub fn needed_attributes(&self, natts: usize) -> Vec<bool> {
        let mut needed = vec![false; natts];
        for &attno in &self.used_attributes {
            if attno == WHOLE_ROW {
                needed.fill(true);
            } else {
                needed[attno as usize - 1] = true;
            }
        }
        needed
    }
}

/// # Safety
/// Allocates in the current memory context.
unsafe fn int_list(values: &[i32]) -> *mut pg_sys::List {
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for &value in values {
        // SAFETY: appending to a list this function owns.
        list = unsafe { pg_sys::lappend_int(list, value) };
    }
    list
}
