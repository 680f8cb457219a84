//! ERRORs about the row of a Kafka message, raised again naming the message: a value a
//! column's type refuses (a cast, an input function), a constraint the row violates.
//!
//! To know the message, a Kafka scan of this backend notes the message whose row it
//! returned last ([`returned`]): an ERROR raised converting or checking that row is about
//! that message, since the executor finishes a row before it asks the scan for the next.
//! The note is cleared when the scan ends, so that an ERROR raised after the scan (an
//! AFTER trigger) names no message rather than a wrong one. The upsert and debezium
//! imports write a batch's rows after reading all of it; their statement notes the
//! message of each row as it writes it ([`written`], within [`writing_batch_of`]) and
//! clears the note when the writes are done, before the statement's AFTER triggers.

use std::cell::RefCell;
use std::rc::Rc;

use pgrx::pg_sys;
use pgrx::pg_sys::panic::ErrorReportWithLevel;
use pgrx::PgSqlErrorCode;

use crate::codec::{excerpt, invalid_value, MessagePosition};
use crate::error::FdwError;
use crate::pg::catalog::{self, ForeignTableDef};
use crate::pg::clients::TopicClient;
use crate::pg::errors::{is_of_class, raise, reported_kind};
use crate::pg::subtransaction::raise_again;

/// A message of a Kafka foreign table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageAt {
    pub table: pg_sys::Oid,
    /// Shared with the scan, which notes a message per row.
    pub topic: Rc<str>,
    pub partition: i32,
    pub offset: i64,
}

thread_local! {
    static LAST_RETURNED: RefCell<Option<MessageAt>> = const { RefCell::new(None) };
    /// The source table and topic whose messages' rows an import's batch statement
    /// writes now.
    static WRITING: RefCell<Option<(pg_sys::Oid, Rc<str>)>> = const { RefCell::new(None) };
}

/// A scan returns the row of `message`.
pub fn returned(message: MessageAt) {
    LAST_RETURNED.with_borrow_mut(|last| *last = Some(message));
}

/// A scan returned its last row (or a caller starts afresh).
pub fn forget() {
    LAST_RETURNED.with_borrow_mut(|last| *last = None);
}

/// A batch statement of an import writes rows of messages of `table`'s `topic` (until
/// `None`): [`written`] notes them.
pub fn writing_batch_of(batch: Option<(pg_sys::Oid, Rc<str>)>) {
    WRITING.with_borrow_mut(|writing| *writing = batch);
}

/// The batch statement writes the row of the message at `partition` and `offset` of its
/// topic. Outside a batch statement ([`writing_batch_of`]) nothing is noted, so a message
/// noted so is always one of the import's source and topic.
pub fn written(partition: i32, offset: i64) {
    WRITING.with_borrow(|writing| {
        if let Some((table, topic)) = writing {
            returned(MessageAt { table: *table, topic: Rc::clone(topic), partition, offset });
        }
    });
}

/// The message whose row is being processed, if a scan is between rows.
pub fn current() -> Option<MessageAt> {
    LAST_RETURNED.with_borrow(Clone::clone)
}

/// An ERROR about the row of a message, to raise again naming the message.
pub struct RefusedRow {
    pub partition: i32,
    pub offset: i64,
    /// The column whose value was refused, where known.
    pub column: Option<String>,
    code: PgSqlErrorCode,
    message: String,
    detail: Option<String>,
    hint: Option<String>,
}

impl RefusedRow {
    /// `report` as an ERROR about the row of the message at `partition` and `offset`:
    /// None unless it is a data exception, a constraint violation or names a column
    /// (a cancel, say, is not the message's doing), or already names a message.
    pub fn of(report: &ErrorReportWithLevel, partition: i32, offset: i64, column: Option<String>) -> Option<RefusedRow> {
        let code = report.sql_error_code();
        let about_the_row = [PgSqlErrorCode::ERRCODE_DATA_EXCEPTION, PgSqlErrorCode::ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION]
            .into_iter()
            .any(|class| is_of_class(code, class));
        let names_a_message = report.message().contains(" at topic \"");
        ((column.is_some() || about_the_row) && !names_a_message).then(|| RefusedRow {
            partition,
            offset,
            column,
            code,
            message: report.message().to_string(),
            detail: report.detail().map(str::to_string),
            hint: report.hint().map(str::to_string),
        })
    }

    pub fn is_data_exception(&self) -> bool {
        is_of_class(self.code, PgSqlErrorCode::ERRCODE_DATA_EXCEPTION)
    }

    /// The scan's error for a value a column's type refused (or a bad encoding); the
    /// error itself, naming the message in its detail, for a constraint. `payload`: the
    /// message's value, for the detail.
    pub fn error(self, topic: &str, payload: &[u8]) -> FdwError {
        let position = MessagePosition { topic, partition: self.partition, offset: self.offset };
        let kind = reported_kind(self.code);
        let error = if self.column.is_some() || self.is_data_exception() {
            invalid_value(kind, &position, self.column.as_deref(), &self.message, payload)
        } else {
            let named = format!("Kafka message at {}: {}.", position.describe(), excerpt(payload));
            FdwError::new(kind, self.message).with_detail(self.detail.map_or(named.clone(), |detail| format!("{detail}\n{named}")))
        };
        match self.hint {
            Some(hint) => error.with_hint(hint),
            None => error,
        }
    }

    /// Raises the error, with the message (of `topic`, one of `definition`'s) read again
    /// for its detail.
    pub fn raise(self, definition: &ForeignTableDef, topic: &str) -> ! {
        let payload = TopicClient::for_topic(definition, topic).payload_at(self.partition, self.offset);
        raise(self.error(topic, &payload))
    }
}

/// Raises `report`, caught while a statement ran, again: naming the message whose row a
/// scan was at when it was about that row ([`RefusedRow::of`]), as it was otherwise.
/// `column`: finds the column of a refused value, given the message (the caller's
/// statement converted many).
pub fn raise_naming_the_message(report: ErrorReportWithLevel, column: impl FnOnce(&MessageAt) -> Option<String>) -> ! {
    let Some(at) = current() else { raise_again(report) };
    let Some(mut refused) = RefusedRow::of(&report, at.partition, at.offset, None) else { raise_again(report) };
    if refused.is_data_exception() {
        refused.column = column(&at);
    }
    // SAFETY: a foreign table the failed statement scanned; its lock went with the
    // statement's subtransaction, so it is taken again as the scan took it.
    let definition = unsafe {
        pg_sys::LockRelationOid(at.table, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        catalog::foreign_table_by_id(at.table)
    };
    refused.raise(&definition, &at.topic)
}
