//! Which WHERE clauses a scan turns into offset ranges (planner side), and their values
//! when the scan starts (executor side). The range arithmetic itself is in `plan`.

use std::ffi::{c_void, CStr};

use pgrx::{pg_guard, pg_sys, FromDatum, PgList};

use crate::options::layout::ColumnSource;
use crate::options::MetaColumn;
use crate::plan::{Cmp, Column, Condition, Value};

/// Attribute numbers of the columns conditions can be pushed on.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaColumns {
    partition: Option<pg_sys::AttrNumber>,
    offset: Option<pg_sys::AttrNumber>,
    timestamp: Option<pg_sys::AttrNumber>,
    topic: Option<pg_sys::AttrNumber>,
}

impl MetaColumns {
    pub fn new(layout: &[ColumnSource]) -> Self {
        let attno = |wanted: MetaColumn| {
            layout
                .iter()
                .position(|source| matches!(source, ColumnSource::Meta(meta, _) if *meta == wanted))
                .map(|i| i as pg_sys::AttrNumber + 1)
        };
        MetaColumns {
            partition: attno(MetaColumn::Partition),
            offset: attno(MetaColumn::Offset),
            timestamp: attno(MetaColumn::Timestamp),
            topic: attno(MetaColumn::Topic),
        }
    }

    /// The meta column `node` is, if it is a plain Var of relation `relid`.
    ///
    /// # Safety
    /// `node` is NULL or a live expression node of the current planning.
    unsafe fn column_of(&self, node: *mut pg_sys::Node, relid: pg_sys::Index) -> Option<Column> {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            if node.is_null() || (*node).type_ != pg_sys::NodeTag::T_Var {
                return None;
            }
            let var = node as *mut pg_sys::Var;
            if (*var).varno as pg_sys::Index != relid || (*var).varlevelsup != 0 {
                return None;
            }
            match Some((*var).varattno) {
                attno if attno == self.partition => Some(Column::Partition),
                attno if attno == self.offset => Some(Column::Offset),
                attno if attno == self.timestamp => Some(Column::Timestamp),
                attno if attno == self.topic => Some(Column::Topic),
                _ => None,
            }
        }
    }
}

fn is_integer_type(type_oid: pg_sys::Oid) -> bool {
    matches!(type_oid, pg_sys::INT2OID | pg_sys::INT4OID | pg_sys::INT8OID)
}

/// Whether `column <operator> value` (`value` of `type_oid`) is one the range
/// arithmetic understands: integers with integers, timestamptz with timestamptz, and the
/// topic only with text's own `=` (other text comparisons depend on collations).
fn comparable(column: Column, operator: pg_sys::Oid, type_oid: pg_sys::Oid) -> bool {
    match column {
        Column::Partition | Column::Offset => is_integer_type(type_oid),
        Column::Timestamp => type_oid == pg_sys::TIMESTAMPTZOID,
        Column::Topic => operator == TEXT_EQUAL && type_oid == pg_sys::TEXTOID,
    }
}

/// `text = text` (pg_operator.dat's texteq).
const TEXT_EQUAL: pg_sys::Oid = pg_sys::Oid::from_u32(pg_sys::TextEqualOperator);

fn is_integer_array_type(type_oid: pg_sys::Oid) -> bool {
    matches!(type_oid, pg_sys::INT2ARRAYOID | pg_sys::INT4ARRAYOID | pg_sys::INT8ARRAYOID)
}

/// A clause (or clauses) as the scan uses them: the condition on the meta columns, whose
/// slots index `values`, the expressions compared with. Unrestricted: a clause that does
/// not narrow the read by itself (it only filters rows).
#[derive(Debug, Clone)]
pub struct Classified {
    pub condition: Condition<usize>,
    pub values: Vec<*mut pg_sys::Expr>,
}

/// The conjunction of classified clauses (PostgreSQL ANDs a relation's clauses together),
/// their slots renumbered into one list of values; clauses that restrict nothing bring no
/// values.
pub fn conjunction(clauses: impl IntoIterator<Item = Classified>) -> Classified {
    let (mut parts, mut values) = (Vec::new(), Vec::new());
    for clause in clauses.into_iter().filter(|clause| !clause.condition.is_unrestricted()) {
        let first = values.len();
        parts.push(clause.condition.bind(&mut |slot| first + slot));
        values.extend(clause.values);
    }
    Classified { condition: Condition::all(parts), values }
}

/// Builds plan templates from clauses of one relation, collecting the value expressions
/// they compare with (the template's slots index `values`).
pub struct Extractor {
    root: *mut pg_sys::PlannerInfo,
    relid: pg_sys::Index,
    columns: MetaColumns,
    pub values: Vec<*mut pg_sys::Expr>,
}

impl Extractor {
    pub fn new(root: *mut pg_sys::PlannerInfo, relid: pg_sys::Index, columns: MetaColumns) -> Self {
        Extractor { root, relid, columns, values: Vec::new() }
    }

    /// One clause classified on its own: what it restricts, and the values its slots index.
    ///
    /// # Safety
    /// `clause` must be an expression of this extractor's relation.
    pub unsafe fn classify(&mut self, clause: *mut pg_sys::Node) -> Classified {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            self.values.clear();
            let condition = self.condition(clause);
            Classified { condition, values: std::mem::take(&mut self.values) }
        }
    }

    /// # Safety
    /// As for [`Extractor::column_of`].
    unsafe fn condition(&mut self, node: *mut pg_sys::Node) -> Condition<usize> {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            if node.is_null() {
                return Condition::Unrestricted;
            }
            match (*node).type_ {
                pg_sys::NodeTag::T_BoolExpr => {
                    let expr = node as *mut pg_sys::BoolExpr;
                    let args = PgList::<pg_sys::Node>::from_pg((*expr).args);
                    let mut parts = || args.iter_ptr().map(|arg| self.condition(arg)).collect();
                    match (*expr).boolop {
                        pg_sys::BoolExprType::AND_EXPR => Condition::all(parts()),
                        pg_sys::BoolExprType::OR_EXPR => Condition::any(parts()),
                        _ => Condition::Unrestricted,
                    }
                }
                pg_sys::NodeTag::T_OpExpr => self.comparison(node as *mut pg_sys::OpExpr),
                pg_sys::NodeTag::T_ScalarArrayOpExpr => self.any_of(node as *mut pg_sys::ScalarArrayOpExpr),
                pg_sys::NodeTag::T_RestrictInfo => self.condition((*(node as *mut pg_sys::RestrictInfo)).clause as *mut _),
                _ => Condition::Unrestricted,
            }
        }
    }

    /// `meta_column <op> value` or `value <op> meta_column`, integers only.
    ///
    /// # Safety
    /// `expr` is a live operator expression of the current planning.
    unsafe fn comparison(&mut self, expr: *mut pg_sys::OpExpr) -> Condition<usize> {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            let args = PgList::<pg_sys::Node>::from_pg((*expr).args);
            let (Some(left), Some(right), 2) = (args.get_ptr(0), args.get_ptr(1), args.len()) else {
                return Condition::Unrestricted;
            };
            let Some(cmp) = operator(expr) else { return Condition::Unrestricted };
            let (column, value, cmp) = match (self.columns.column_of(left, self.relid), self.columns.column_of(right, self.relid)) {
                (Some(column), None) => (column, right, cmp),
                (None, Some(column)) => (column, left, cmp.commuted()),
                _ => return Condition::Unrestricted,
            };
            if !comparable(column, (*expr).opno, pg_sys::exprType(value)) {
                return Condition::Unrestricted;
            }
            match self.slot(value) {
                Some(slot) => Condition::Compare(column, cmp, slot),
                None => Condition::Unrestricted,
            }
        }
    }

    /// `meta_column = ANY(array)`, which is also how `IN (…)` arrives.
    ///
    /// # Safety
    /// `expr` is a live ScalarArrayOpExpr of the current planning.
    unsafe fn any_of(&mut self, expr: *mut pg_sys::ScalarArrayOpExpr) -> Condition<usize> {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            let args = PgList::<pg_sys::Node>::from_pg((*expr).args);
            let (Some(left), Some(right)) = (args.get_ptr(0), args.get_ptr(1)) else {
                return Condition::Unrestricted;
            };
            let name = pg_sys::get_opname((*expr).opno);
            if !(*expr).useOr || name.is_null() || CStr::from_ptr(name).to_bytes() != b"=" {
                return Condition::Unrestricted;
            }
            let Some(column) = self.columns.column_of(left, self.relid) else { return Condition::Unrestricted };
            let usable = match column {
                Column::Timestamp => false,
                Column::Topic => (*expr).opno == TEXT_EQUAL && pg_sys::exprType(right) == pg_sys::TEXTARRAYOID,
                Column::Partition | Column::Offset => is_integer_array_type(pg_sys::exprType(right)),
            };
            if !usable {
                return Condition::Unrestricted;
            }
            match self.slot(right) {
                Some(slot) => Condition::AnyOf(column, slot),
                None => Condition::Unrestricted,
            }
        }
    }

    /// A slot for `value` if it can be computed before reading any row: no column of this
    /// relation, nothing volatile, no sub-plan. Constants, parameters and outer columns
    /// of a nested loop (which become parameters) qualify.
    ///
    /// # Safety
    /// `value` is a live expression node of the current planning.
    unsafe fn slot(&mut self, value: *mut pg_sys::Node) -> Option<usize> {
        // SAFETY: the caller keeps the contract above.
        unsafe {
            if pg_sys::contain_volatile_functions(value)
                || pg_sys::contain_subplans(value)
                || pg_sys::bms_is_member(self.relid as i32, pg_sys::pull_varnos(self.root, value))
            {
                return None;
            }
            self.values.push(value as *mut pg_sys::Expr);
            Some(self.values.len() - 1)
        }
    }
}

/// # Safety
/// `expr` is a live operator expression.
unsafe fn operator(expr: *mut pg_sys::OpExpr) -> Option<Cmp> {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let name = pg_sys::get_opname((*expr).opno);
        if name.is_null() {
            return None;
        }
        Cmp::from_operator(CStr::from_ptr(name).to_str().ok()?)
    }
}

/// The value of a slot's expression as the planner can fold it now, if it is a constant.
///
/// # Safety
/// `expr` must be a planner expression of `root`.
pub unsafe fn estimated_value(root: *mut pg_sys::PlannerInfo, expr: *mut pg_sys::Expr) -> Option<Value> {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let folded = pg_sys::estimate_expression_value(root, expr as *mut pg_sys::Node);
        if (*folded).type_ != pg_sys::NodeTag::T_Const {
            return None;
        }
        let constant = folded as *mut pg_sys::Const;
        Some(to_value((*constant).constvalue, (*constant).constisnull, (*constant).consttype))
    }
}

/// The value of an evaluated slot expression of type `type_oid`.
///
/// # Safety
/// `datum` must be a value of `type_oid`: an integer, integer-array, timestamptz, text or
/// text-array type.
pub unsafe fn to_value(datum: pg_sys::Datum, is_null: bool, type_oid: pg_sys::Oid) -> Value {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        fn list<T: Into<i64>>(values: Option<Vec<Option<T>>>) -> Value {
            Value::List(values.unwrap_or_default().into_iter().flatten().map(Into::into).collect())
        }
        match type_oid {
            pg_sys::INT2OID => Value::Scalar(i16::from_datum(datum, is_null).map(i64::from)),
            pg_sys::INT4OID => Value::Scalar(i32::from_datum(datum, is_null).map(i64::from)),
            pg_sys::INT8OID => Value::Scalar(i64::from_datum(datum, is_null)),
            // timestamptz is microseconds since 2000-01-01, passed by value.
            pg_sys::TIMESTAMPTZOID => Value::Scalar((!is_null).then(|| datum.value() as i64)),
            pg_sys::INT2ARRAYOID => list(Vec::<Option<i16>>::from_datum(datum, is_null)),
            pg_sys::INT4ARRAYOID => list(Vec::<Option<i32>>::from_datum(datum, is_null)),
            pg_sys::INT8ARRAYOID => list(Vec::<Option<i64>>::from_datum(datum, is_null)),
            pg_sys::TEXTOID => Value::Text(String::from_datum(datum, is_null)),
            pg_sys::TEXTARRAYOID => {
                Value::Texts(Vec::<Option<String>>::from_datum(datum, is_null).unwrap_or_default().into_iter().flatten().collect())
            }
            _ => unreachable!("slot expressions are integer, integer-array, timestamptz, text or text-array typed"),
        }
    }
}

/// An initialized slot expression, ready to evaluate when a scan (re)starts.
pub struct SlotValue {
    state: *mut pg_sys::ExprState,
    type_oid: pg_sys::Oid,
    parameters: Parameters,
}

/// The kinds of parameters an expression refers to.
#[derive(Default)]
struct Parameters {
    /// A statement's parameters (PARAM_EXTERN: `$1` of a prepared statement, PL/pgSQL
    /// variables), known when the statement runs with their values.
    external: bool,
    /// Executor parameters (PARAM_EXEC): nested-loop outer values, sub-plan results,
    /// which exist only while the query runs.
    executor: bool,
}

/// The kinds of parameters `expr` refers to.
///
/// # Safety
/// `expr` is a valid expression tree.
unsafe fn parameters_of(expr: *mut pg_sys::Expr) -> Parameters {
    let mut found = Parameters::default();
    // SAFETY: the caller keeps the contract above; `found` outlives the walk.
    unsafe { note_parameters(expr.cast(), (&mut found as *mut Parameters).cast()) };
    found
}

/// The walker of [`parameters_of`]: notes each Param's kind in `found`.
#[pg_guard]
unsafe extern "C-unwind" fn note_parameters(node: *mut pg_sys::Node, found: *mut c_void) -> bool {
    // SAFETY: `node` is a node of the tree being walked (or null), `found` the walk's
    // Parameters (parameters_of).
    unsafe {
        if node.is_null() {
            return false;
        }
        if (*node).type_ == pg_sys::NodeTag::T_Param {
            let found = &mut *found.cast::<Parameters>();
            match (*node.cast::<pg_sys::Param>()).paramkind {
                pg_sys::ParamKind::PARAM_EXTERN => found.external = true,
                // PARAM_SUBLINK and PARAM_MULTIEXPR never reach a plan.
                _ => found.executor = true,
            }
            return false;
        }
        pg_sys::expression_tree_walker(node, Some(note_parameters), found)
    }
}

/// Initializes the plan's slot expressions (`fdw_exprs`) for `node`.
///
/// # Safety
/// `fdw_exprs` must be the plan's expression list and `node` its plan state.
pub unsafe fn init_slots(fdw_exprs: *mut pg_sys::List, node: *mut pg_sys::PlanState) -> Vec<SlotValue> {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        let exprs = PgList::<pg_sys::Expr>::from_pg(fdw_exprs);
        let states = PgList::<pg_sys::ExprState>::from_pg(pg_sys::ExecInitExprList(fdw_exprs, node));
        exprs
            .iter_ptr()
            .zip(states.iter_ptr())
            .map(|(expr, state)| SlotValue {
                state,
                type_oid: pg_sys::exprType(expr as *mut pg_sys::Node),
                parameters: parameters_of(expr),
            })
            .collect()
    }
}

/// Whether every slot can be evaluated outside of execution (for plain EXPLAIN): none
/// needs executor parameters, and statement parameters have values (`parameters_bound`:
/// `EXPLAIN EXECUTE` has them, `EXPLAIN (GENERIC_PLAN)` not).
pub fn known_before_execution(slots: &[SlotValue], parameters_bound: bool) -> bool {
    slots.iter().all(|slot| !slot.parameters.executor && (parameters_bound || !slot.parameters.external))
}

/// Evaluates every slot in `econtext`.
///
/// # Safety
/// The slots must belong to the plan state whose expression context `econtext` is.
pub unsafe fn evaluate(slots: &[SlotValue], econtext: *mut pg_sys::ExprContext) -> Vec<Value> {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        slots
            .iter()
            .map(|slot| {
                let mut is_null = false;
                let evaluate = (*slot.state).evalfunc.expect("an initialized expression has an evaluator");
                let datum = evaluate(slot.state, econtext, &mut is_null);
                to_value(datum, is_null, slot.type_oid)
            })
            .collect()
    }
}

/// Whether `node` is the given meta column of relation `relid`.
///
/// # Safety
/// `node` must be a valid expression node (or null).
pub unsafe fn is_meta_column(columns: &MetaColumns, node: *mut pg_sys::Node, relid: pg_sys::Index, column: Column) -> bool {
    // SAFETY: the caller keeps the contract above.
    unsafe {
        columns.column_of(node, relid) == Some(column)
    }
}

/// Equivalence-class members that are our meta columns: `k.part = v.p` joins become
/// parameterized scans that read only the partition (or offset) asked for.
#[pg_guard]
pub unsafe extern "C-unwind" fn is_meta_column_member(
    _root: *mut pg_sys::PlannerInfo,
    rel: *mut pg_sys::RelOptInfo,
    _ec: *mut pg_sys::EquivalenceClass,
    member: *mut pg_sys::EquivalenceMember,
    columns: *mut c_void,
) -> bool {
    // SAFETY: PostgreSQL calls this with pointers that are valid for the call (fdwapi.h).
    unsafe {
        let columns = &*(columns as *const MetaColumns);
        columns.column_of((*member).em_expr as *mut pg_sys::Node, (*rel).relid).is_some()
    }
}
